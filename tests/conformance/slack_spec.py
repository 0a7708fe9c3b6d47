"""Checks Slack Web API calls against Slack's published OpenAPI 2.0 contract.

The spec (``specs/slack/slack_web_openapi_v2_without_examples.json`` in the shared folder,
read by path) has one path per method, ``/chat.postMessage`` and so on, each with a single
operation whose ``parameters`` are flat scalars: ``in`` is ``formData`` for POST methods and
``query`` for GET ones, and ``token`` is a ``header`` (or ``query``) parameter. Structured
arguments (``blocks``, ``attachments``) are typed ``string`` because on a form they travel as
JSON text; clients that send a JSON body pass them as lists and objects instead.

The spec dates from 2021 and lags Slack: newer arguments (``metadata``, ``markdown_text``)
and methods are missing, some required arguments are not marked required, and a few types are
off (``conversations.replies`` ``ts`` is a ``number``). ``SPEC_GAPS`` lists the arguments Slack
accepts today that the spec lacks; whether to allow them is the caller's decision.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The token travels in the Authorization header, whatever the spec says about its location.
IGNORED_PARAMS = frozenset({"token"})
_BOOL_STRINGS = frozenset({"true", "false", "1", "0"})
_INTEGER = re.compile(r"-?\d+")

# Arguments current Slack (and slack_sdk's WebClient) accept that the 2021 spec does not list.
SPEC_GAPS: Mapping[str, frozenset[str]] = {
    "chat.postMessage": frozenset({"metadata", "markdown_text"}),
    "chat.update": frozenset({"metadata", "markdown_text", "file_ids", "reply_broadcast"}),
    "chat.postEphemeral": frozenset({"markdown_text"}),
    "conversations.replies": frozenset({"include_all_metadata"}),
}


@dataclass(frozen=True)
class Param:
    """One spec parameter of a method."""

    name: str
    location: str  # formData, query or header
    type: str | None
    required: bool


class SlackWebSpec:
    """The methods and parameters of the Slack Web API spec, and a checker for calls."""

    def __init__(self, methods: Mapping[str, Mapping[str, Param]]) -> None:
        self._methods = {name: dict(params) for name, params in methods.items()}

    @classmethod
    def load(cls, path: Path | str) -> SlackWebSpec:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        if document.get("swagger") != "2.0":
            raise ValueError(f"{path}: not an OpenAPI 2.0 (swagger) document")
        methods: dict[str, dict[str, Param]] = {}
        for route, operations in document["paths"].items():
            params: dict[str, Param] = {}
            for operation in operations.values():
                for raw in operation.get("parameters", []):
                    params[raw["name"]] = Param(raw["name"], raw["in"], raw.get("type"),
                                                bool(raw.get("required", False)))
            methods[route.lstrip("/")] = params
        return cls(methods)

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(self._methods)

    def params(self, method: str) -> Mapping[str, Param]:
        """The parameters of ``method``; KeyError for a method the spec does not know."""
        return self._methods[method]

    def check_call(self, method: str, args: Mapping[str, Any], *,
                   allow_unlisted: Iterable[str] = ()) -> list[str]:
        """Problems with calling ``method`` with ``args``; empty when the call conforms.

        ``None`` values count as absent (clients drop them). Arguments the spec does not list
        are problems unless named in ``allow_unlisted`` (see ``SPEC_GAPS``).
        """
        if method not in self._methods:
            return [f"{method}: unknown method (not in the spec)"]
        spec = self._methods[method]
        given = {name: value for name, value in args.items()
                 if value is not None and name not in IGNORED_PARAMS}
        allowed = frozenset(allow_unlisted)
        problems = [f"{method}: required parameter {param.name!r} is missing"
                    for param in spec.values()
                    if param.required and param.name not in IGNORED_PARAMS
                    and param.name not in given]
        for name, value in given.items():
            param = spec.get(name)
            if param is None:
                if name not in allowed:
                    problems.append(f"{method}: parameter {name!r} is not in the spec")
            elif not _fits(param.type, value):
                problems.append(f"{method}: parameter {name!r} should be {param.type},"
                                f" got {type(value).__name__} {value!r}")
        return problems


def _fits(expected: str | None, value: Any) -> bool:
    """Whether a scalar is plausible for the spec type, as sent in a form or a JSON body."""
    if isinstance(value, list | dict):
        # Structured arguments are JSON text on a form ("string"), JSON values in a body.
        return expected in {None, "string"}
    if expected == "boolean":
        return isinstance(value, bool) or value in (0, 1) or (
            isinstance(value, str) and value.lower() in _BOOL_STRINGS)
    if expected == "integer":
        if isinstance(value, str):
            return _INTEGER.fullmatch(value.strip()) is not None
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                return False
            return True
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected == "string":
        return isinstance(value, str)
    return True
