"""The status message: what the network allowlist refused is shown, as literal text."""

from datetime import UTC, datetime

from chatops.core.lifecycle import TaskState
from chatops.core.network import BlockedRequest
from chatops.core.task import SlackThread, Task, TaskRequest
from integrations.slack.blocks import status_message

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def _task(blocked: tuple[BlockedRequest, ...]) -> Task:
    origin = SlackThread(team_id="T1", channel_id="C1", thread_ts="1.0", message_ts="1.0")
    return Task(id="t1", state=TaskState.FAILED, environment="web", queue="default",
                created_at=NOW, updated_at=NOW, reason="the agent exited with status 1",
                request=TaskRequest(instruction="x", requester="U1", origin=origin),
                blocked=blocked)


def test_blocked_requests_get_their_own_section_with_slack_markup_escaped():
    refused = BlockedRequest(at=NOW, method="GET", host="<!channel>.test", reason="host")
    _, blocks = status_message(_task((refused,)))
    [section] = [b for b in blocks if "allowlist" in b.get("text", {}).get("text", "")]
    text = section["text"]["text"]
    assert text.startswith(":shield: The network allowlist blocked 1 request: `GET")
    assert "&lt;!channel&gt;.test" in text and "<!channel>" not in text


def test_no_section_when_nothing_was_blocked():
    _, blocks = status_message(_task(()))
    assert not any("allowlist" in b.get("text", {}).get("text", "") for b in blocks)
