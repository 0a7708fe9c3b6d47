"""The network policy in environments files, and how refusals read in a task's result."""

from datetime import UTC, datetime

import pytest

from chatops.core import texts
from chatops.core.environment import parse_environments
from chatops.core.errors import ConfigError
from chatops.core.lifecycle import TaskState
from chatops.core.network import BlockedRequest, NetworkPolicy
from chatops.core.task import CliOrigin, Task, TaskRequest

ALLOWLIST = """
[environments.web]
repository = "/srv/web.git"
[environments.web.network]
mode = "allowlist"
allow = ["PyPI.org.", "*.pythonhosted.org", "files.internal"]
methods = ["get", "head", "OPTIONS"]
"""


def test_allowlist_table_is_parsed_and_normalized():
    policy = parse_environments(ALLOWLIST).get("web").network
    assert policy.mode == "allowlist"
    assert policy.allow == ("pypi.org", "*.pythonhosted.org", "files.internal")
    assert policy.methods == ("GET", "HEAD", "OPTIONS")
    assert policy.describe() == (
        "network allowlist [pypi.org *.pythonhosted.org files.internal] (GET/HEAD/OPTIONS)")


def test_short_forms_and_default_methods():
    env = parse_environments("[environments.a]\nrepository='x'\nnetwork='on'").get("a")
    assert env.network.mode == "on" and env.network.describe() == "network on"
    policy = NetworkPolicy(mode="allowlist", allow=("pypi.org",))
    assert policy.methods == ("GET", "HEAD")


@pytest.mark.parametrize(("host", "allowed"), [
    ("pypi.org", True), ("PYPI.ORG.", True), ("evil-pypi.org", False), ("pypi.org.evil", False),
    ("files.pythonhosted.org", True), ("pythonhosted.org", True), ("a.b.pythonhosted.org", True),
    ("xpythonhosted.org", False), ("10.0.0.1", False),
])
def test_allows_host_matches_names_and_wildcards(host, allowed):
    policy = NetworkPolicy(mode="allowlist", allow=("pypi.org", "*.pythonhosted.org"))
    assert policy.allows_host(host) is allowed


@pytest.mark.parametrize(("table", "message"), [
    ("mode = 'allowlist'", "needs at least one domain in `allow`"),
    ("mode = 'on'\nallow = ['pypi.org']", "`allow` only applies to mode \"allowlist\""),
    ("mode = 'allowlist'\nallow = ['10.1.2.3']", "is an IP address"),
    ("mode = 'allowlist'\nallow = ['[::1]']", "is an IP address"),
    ("mode = 'allowlist'\nallow = ['127.1']", "IP address in another notation"),
    ("mode = 'allowlist'\nallow = ['2130706433']", "IP address in another notation"),
    ("mode = 'allowlist'\nallow = ['0x7f.0x1']", "IP address in another notation"),
    ("mode = 'allowlist'\nallow = ['https://pypi.org/simple']", "is not a domain name"),
    ("mode = 'allowlist'\nallow = ['pypi.org:443']", "is not a domain name"),
    ("mode = 'allowlist'\nallow = ['*']", "is not a domain name"),
    ("mode = 'allowlist'\nallow = ['*.org']", "too broad"),
    ("mode = 'allowlist'\nallow = ['pypi.org']\nmethods = ['FETCH']", "unknown HTTP method"),
    ("mode = 'allowlist'\nallow = ['pypi.org']\nmethods = []", "at least one method"),
    ("mode = 'sometimes'", "environments.web.network.mode"),
])
def test_bad_policies_name_the_field_and_the_fix(table, message):
    text = f"[environments.web]\nrepository = 'x'\n[environments.web.network]\n{table}\n"
    with pytest.raises(ConfigError) as caught:
        parse_environments(text)
    assert "environments.web.network" in str(caught.value)
    assert message in str(caught.value)


def _task(state: TaskState, blocked: list[BlockedRequest]) -> Task:
    now = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    return Task(id="t1", state=state, environment="web", queue="default", created_at=now,
                updated_at=now, reason="the agent exited with status 1",
                request=TaskRequest(instruction="x", requester="ann", origin=CliOrigin()),
                blocked=tuple(blocked))


def _refused(method: str, host: str, reason: str = "host") -> BlockedRequest:
    return BlockedRequest(at=datetime(2026, 11, 22, 3, 1, tzinfo=UTC), method=method, host=host,
                          url=f"http://{host}/", reason=reason)  # type: ignore[arg-type]


def test_the_result_names_what_was_blocked_and_how_to_allow_it():
    task = _task(TaskState.FAILED, [_refused("GET", "evil.test"), _refused("GET", "evil.test"),
                                    _refused("POST", "pypi.org", "method")])
    line = texts.final_line(task)
    assert line.startswith("failed: the agent exited with status 1")
    assert ("The network allowlist blocked 3 requests: `GET evil.test` (2 times), "
            "`POST pypi.org`." in line)
    assert "add `evil.test` to `network.allow` and add `POST` to `network.methods`" in line
    assert "of environment web" in line and "`chatops logs t1`" in line
    assert texts.blocked_summary(task) in texts.linear_final(task)


def test_what_the_agent_asked_for_is_shown_as_code_never_rendered():
    summary = texts.blocked_summary(_task(TaskState.FAILED, [_refused("GET", "**x**`y`.test")]))
    assert "`GET **x**'y'.test`" in summary and "add `**x**'y'.test`" in summary


def test_nothing_blocked_says_nothing_and_many_hosts_are_counted():
    assert texts.blocked_summary(_task(TaskState.SUCCEEDED, [])) == ""
    many = [_refused("GET", f"h{i}.test") for i in range(8)]
    summary = texts.blocked_summary(_task(TaskState.SUCCEEDED, many))
    assert "blocked 8 requests" in summary and "and 3 more" in summary

