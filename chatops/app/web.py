"""The web app: a health check, a JSON task API, Slack's events and Linear's webhook.

With CHATOPS_API_TOKEN set, every API call needs it as a Bearer token. Without it, only
loopback clients may read, and nobody may start or stop work over HTTP.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chatops.app.views import environment_view, task_view
from chatops.app.wiring import Runtime
from chatops.core.errors import (
    ChatopsError,
    ConfigError,
    QueueUnavailable,
    TaskNotFound,
    UnknownEnvironment,
)
from chatops.core.task import CliOrigin, TaskRequest

# Bytes; a task request is an instruction and a few fields, never megabytes.
MAX_BODY_BYTES = 256 * 1024
Endpoint = Callable[[Request], Awaitable[Response]]


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instruction: str = Field(min_length=1)
    environment: str | None = None
    requester: str = "api"


def create_app(runtime: Runtime) -> Starlette:
    token = runtime.settings.api_token

    def guarded(endpoint: Endpoint, writes: bool = False) -> Endpoint:
        async def handler(request: Request) -> Response:
            if not token and (writes or not _loopback(request)):
                return _error(403, "the task API needs a token for this",
                              "set CHATOPS_API_TOKEN on the server and send it as a Bearer token")
            if token:
                given = request.headers.get("authorization", "").removeprefix("Bearer ")
                if not hmac.compare_digest(given.encode(), token.encode()):
                    return _error(401, "missing or wrong bearer token")
            try:
                return await endpoint(request)
            except TaskNotFound as exc:
                return _error(404, exc.message, exc.hint)
            except (UnknownEnvironment, ConfigError) as exc:
                return _error(422, exc.message, exc.hint)
            except QueueUnavailable as exc:
                return _error(503, exc.message, exc.hint)
            except ChatopsError as exc:
                return _error(400, exc.message, exc.hint)
        return handler

    async def health(request: Request) -> Response:
        checks = await run_in_threadpool(_health_checks, runtime)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "degraded", **checks},
                            status_code=200 if ok else 503)

    async def list_tasks(request: Request) -> Response:
        limit = _int(request.query_params.get("limit"), 50, upper=500)
        tasks = await run_in_threadpool(runtime.store.recent, limit)
        return JSONResponse({"tasks": [task_view(t) for t in tasks]})

    async def submit(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, f"request body over {MAX_BODY_BYTES} bytes")
        try:
            data = SubmitBody.model_validate(json.loads(body or b"null"))
        except (ValueError, ValidationError) as exc:
            return _error(400, f"invalid task request: {exc}")
        task_request = TaskRequest(origin=CliOrigin(user=data.requester),
                                   requester=data.requester, instruction=data.instruction,
                                   environment=data.environment)
        task = await run_in_threadpool(runtime.service.submit, task_request)
        return JSONResponse(task_view(task), status_code=201)

    async def show(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        task = await run_in_threadpool(runtime.store.get, task_id)
        return JSONResponse(task_view(task, runtime.store))

    async def logs(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        await run_in_threadpool(runtime.store.get, task_id)
        after = _int(request.query_params.get("after"), 0)
        entries = await run_in_threadpool(runtime.store.logs, task_id, after)
        return JSONResponse({
            "entries": [{"id": e.id, "phase": e.phase, "text": e.text, "at": e.at.isoformat()}
                        for e in entries],
            "last": entries[-1].id if entries else after,
        })

    async def diff(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        patch = await run_in_threadpool(runtime.store.patch, task_id)
        if not patch:
            return _error(404, f"task {task_id} has no patch yet")
        return Response(patch, media_type="text/x-diff")

    async def cancel(request: Request) -> Response:
        task = await run_in_threadpool(runtime.service.cancel, request.path_params["task_id"])
        return JSONResponse(task_view(task), status_code=202)

    slack_endpoint = None
    if runtime.slack_app is not None:
        from integrations.slack.starlette import SlackEndpoint

        slack_endpoint = SlackEndpoint(runtime.slack_app, runtime.settings.slack_signing_secret)

    async def slack_events(request: Request) -> Response:
        if slack_endpoint is None:
            return _error(404, "Slack is not configured on this server",
                          "set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET")
        return await slack_endpoint(request)

    linear_endpoint = None
    if runtime.linear_intake is not None:
        from integrations.linear.starlette import LinearEndpoint

        linear_endpoint = LinearEndpoint(runtime.linear_intake)

    async def linear_webhook(request: Request) -> Response:
        if linear_endpoint is None:
            return _error(404, "Linear is not configured on this server",
                          "set LINEAR_WEBHOOK_SECRET and LINEAR_API_KEY (or LINEAR_OAUTH_TOKEN)")
        return await linear_endpoint(request)

    async def environments(request: Request) -> Response:
        return JSONResponse({"environments": [environment_view(e) for e in runtime.catalogue]})

    return Starlette(routes=[
        Route("/healthz", health),
        Route("/api/tasks", guarded(list_tasks), methods=["GET"]),
        Route("/api/tasks", guarded(submit, writes=True), methods=["POST"]),
        Route("/api/tasks/{task_id}", guarded(show)),
        Route("/api/tasks/{task_id}/logs", guarded(logs)),
        Route("/api/tasks/{task_id}/diff", guarded(diff)),
        Route("/api/tasks/{task_id}/cancel", guarded(cancel, writes=True), methods=["POST"]),
        Route("/api/environments", guarded(environments)),
        Route("/slack/events", slack_events, methods=["POST"]),
        Route("/linear/webhook", linear_webhook, methods=["POST"]),
    ])


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _health_checks(runtime: Runtime) -> dict[str, str]:
    checks = {}
    try:
        runtime.store.recent(limit=1)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc}"
    try:
        runtime.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc}"
    return checks


def _error(status: int, message: str, hint: str = "") -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if hint:
        body["fix"] = hint
    return JSONResponse(body, status_code=status)


def _int(value: str | None, default: int, upper: int | None = None) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        number = default
    number = max(number, 0)
    return min(number, upper) if upper else number
