"""Every sentence chatops says to a person, in one place so they can be read and improved."""

from __future__ import annotations

from chatops.core.environment import Environment
from chatops.core.lifecycle import TaskState
from chatops.core.task import Attempt, CliOrigin, LinearIssue, SlackThread, Task, TaskRequest

TITLE_LIMIT = 72  # characters; what forges show without truncating

STATE_LINES = {
    TaskState.QUEUED: "queued",
    TaskState.PROVISIONING: "setting up the environment",
    TaskState.RUNNING: "agent running",
    TaskState.DELIVERING: "opening the pull request",
    TaskState.SUCCEEDED: "pull request ready",
    TaskState.FAILED: "failed",
    TaskState.CANCELLED: "cancelled",
}


def pull_request_title(request: TaskRequest) -> str:
    first = next((line.strip() for line in request.instruction.splitlines() if line.strip()), "")
    first = first.lstrip("#").strip() or "changes requested"
    if len(first) > TITLE_LIMIT:
        first = first[: TITLE_LIMIT - 1].rstrip() + "…"
    return first


def origin_line(request: TaskRequest) -> str:
    origin = request.origin
    if isinstance(origin, SlackThread):
        where = f"[a Slack thread]({origin.url})" if origin.url else "a Slack thread"
        return f"Requested by {request.requester} in {where} (channel {origin.channel_id})."
    if isinstance(origin, LinearIssue):
        issue = origin.identifier or origin.issue_id
        where = f"[{issue}]({origin.url})" if origin.url else issue
        return f"Requested by {request.requester} on Linear issue {where}."
    assert isinstance(origin, CliOrigin)
    return f"Requested by {request.requester} from the command line."


def pull_request_body(task: Task, diffstat: str) -> str:
    parts = [
        "## Summary",
        task.summary.strip() or "_The agent left no summary._",
        "",
        "## Request",
        "\n".join(f"> {line}" for line in task.request.instruction.strip().splitlines()),
        "",
        origin_line(task.request),
        # The receipt reads "environment NAME: why it was chosen".
        f"{task.environment_reason[:1].upper()}{task.environment_reason[1:]}.",
        f"Changes: {diffstat}.",
        f"Task: `{task.id}` — `chatops logs {task.id}` shows every phase's log.",
    ]
    blocked = blocked_summary(task)
    if blocked:
        parts += ["", blocked]
    return "\n".join(parts)


def follow_up_comment(task: Task, diffstat: str) -> str:
    quoted = "\n".join(f"> {line}" for line in task.request.instruction.strip().splitlines())
    summary = task.summary.strip() or "_The agent left no summary._"
    return (f"Follow-up from task `{task.id}` ({diffstat}):\n\n{quoted}\n\n{summary}\n\n"
            f"{origin_line(task.request)}")


def commit_message(task: Task) -> str:
    return f"{pull_request_title(task.request)}\n\nchatops task {task.id}\n"


def environment_receipt(name: str, why: str) -> str:
    return f"environment {name}: {why}"


def agent_receipt(env: Environment) -> str:
    agent = env.agent.preset or "custom command"
    network = env.network.describe()
    return f"{agent} agent, {network}, {env.timeout} s limit"


def final_line(task: Task) -> str:
    return _with_blocked(_final_line(task), task)


def _final_line(task: Task) -> str:
    if task.state is TaskState.SUCCEEDED and task.request.attempts > 1:
        return task.reason
    if task.state is TaskState.SUCCEEDED and task.pull_request:
        pr = task.pull_request
        return f"pull request #{pr.number} ready: {pr.url} ({task.diffstat})"
    if task.state is TaskState.CANCELLED:
        return f"cancelled: {task.reason}" if task.reason else "cancelled"
    return f"failed: {task.reason} — see `chatops logs {task.id}`"


# Requests named one by one in a result; the rest are counted.
BLOCKED_SHOWN = 5


def blocked_summary(task: Task) -> str:
    """What the network allowlist refused, for the result; empty when it refused nothing.

    Grouped by method and host, most frequent first, so a loop of retries reads as one line.
    """
    if not task.blocked:
        return ""
    counts: dict[tuple[str, str], int] = {}
    for request in task.blocked:
        counts[request.method, request.host] = counts.get((request.method, request.host), 0) + 1
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    shown = [_code(f"{method} {host}") + (f" ({n} times)" if n > 1 else "")
             for (method, host), n in ranked[:BLOCKED_SHOWN]]
    if len(ranked) > BLOCKED_SHOWN:
        shown.append(f"and {len(ranked) - BLOCKED_SHOWN} more")
    total = len(task.blocked)
    requests = "request" if total == 1 else "requests"
    hosts = sorted({r.host for r in task.blocked if r.reason == "host"})
    methods = sorted({r.method for r in task.blocked if r.reason == "method"})
    fixes = []
    if hosts:
        listed = ", ".join(_code(host) for host in hosts[:BLOCKED_SHOWN])
        fixes.append(f"add {listed} to `network.allow`")
    if methods:
        fixes.append(f"add {', '.join(_code(m) for m in methods)} to `network.methods`")
    fix = (f" If the agent needs them, {' and '.join(fixes)} of environment "
           f"{task.environment}." if fixes else "")
    return (f"The network allowlist blocked {total} {requests}: {', '.join(shown)}.{fix} "
            f"Times and URLs: `chatops logs {task.id}`.")


def _code(text: str) -> str:
    """``text`` as inline code: what the agent asked for is shown, never rendered."""
    return "`" + text.replace("`", "'") + "`"


def _with_blocked(line: str, task: Task) -> str:
    summary = blocked_summary(task)
    return f"{line}\n{summary}" if summary else line


def context_markdown(request: TaskRequest) -> str:
    """The thread or issue as the agent reads it: one section per message, links kept."""
    if not request.context:
        return ""
    lines = ["# Conversation this request came from", ""]
    for message in request.context:
        when = f" ({message.at:%Y-%m-%d %H:%M} UTC)" if message.at else ""
        lines.append(f"## {message.author}{when}")
        lines.append(message.text.strip())
        lines.extend(f"- {link}" for link in message.links)
        lines.append("")
    return "\n".join(lines)


CHAT_USAGE = (
    "Tell me what to do after the mention, e.g. `@chatops fix the flaky retry test`. "
    "Add `env:NAME` to pick the environment (or name its repository)."
)


def chat_refusal(message: str, hint: str) -> str:
    fix = f" {hint[0].upper()}{hint[1:]}." if hint else ""
    return f"Sorry, I can't take this one: {message}.{fix}"


def chat_picked(environment: str, user_mention: str) -> str:
    return f"Using environment *{environment}* (picked by {user_mention})."


# -- Linear ------------------------------------------------------------------------------

LINEAR_STATE_MARKS = {
    TaskState.QUEUED: "⏳",
    TaskState.PROVISIONING: "🛠️",
    TaskState.RUNNING: "🤖",
    TaskState.DELIVERING: "📦",
    TaskState.SUCCEEDED: "✅",
    TaskState.FAILED: "❌",
    TaskState.CANCELLED: "🚫",
}

# The agent-session `action` activity for each working state: what is being done.
LINEAR_ACTIONS = {
    TaskState.PROVISIONING: "Setting up the environment",
    TaskState.RUNNING: "Running the agent",
    TaskState.DELIVERING: "Opening the pull request",
}


def linear_usage(bot_name: str) -> str:
    return (f"Tell me what to do after the mention, e.g. `@{bot_name} fix the flaky retry "
            "test`, or assign the issue to me and I'll work from its title and description. "
            "Add `env:NAME` to pick the environment (or name its repository).")


def linear_queued(task: Task) -> str:
    """The first word in an agent session: taken, and where it will run."""
    follow = (f" It continues task `{task.request.parent_task_id}`."
              if task.request.parent_task_id else "")
    return (f"On it: task `{task.id}` is queued in environment **{task.environment}** "
            f"({task.environment_reason}).{follow}")


def linear_final(task: Task) -> str:
    """The closing `response` (or `error`) of an agent session."""
    return _with_blocked(_linear_final(task), task)


def _linear_final(task: Task) -> str:
    if task.state is TaskState.SUCCEEDED and task.pull_request:
        pr = task.pull_request
        return f"Pull request [#{pr.number} {pr.title}]({pr.url}) is ready ({task.diffstat})."
    if task.state is TaskState.CANCELLED:
        reason = f": {task.reason}" if task.reason else ""
        return f"Stopped{reason}. Task `{task.id}` will do nothing more."
    return f"Failed: {task.reason}. `chatops logs {task.id}` shows every phase's log."


def linear_status_comment(task: Task) -> str:
    """The one comment a task keeps up to date on an issue outside agent sessions."""
    mark = LINEAR_STATE_MARKS[task.state]
    if task.state.terminal:
        headline = linear_final(task)
    else:
        headline = STATE_LINES[task.state].capitalize()
        if task.state is not TaskState.QUEUED and task.reason:
            headline += f" — {task.reason}"
    receipt = [f"Environment **{task.environment}**: {task.environment_reason}",
               f"task `{task.id}`"]
    if task.request.parent_task_id:
        receipt.append(f"follows up `{task.request.parent_task_id}`")
    return f"{mark} **{headline}**\n\n{' · '.join(receipt)}"


def linear_which_environment(why: str, choices: list[str], bot_name: str,
                             in_session: bool) -> str:
    listed = ", ".join(f"`{name}`" for name in choices)
    how = ("Answer with one of them." if in_session else
           f"Reply with `@{bot_name} env:NAME` to start.")
    return f"Which environment should I use? {why}.\n\nChoices: {listed}. {how}"


def linear_not_a_choice(answer: str, choices: list[str]) -> str:
    listed = ", ".join(f"`{name}`" for name in choices)
    return f"`{answer.strip()[:60]}` is not one of the environments I asked about: {listed}."


LINEAR_NOTHING_TO_STOP = "Nothing of mine is running in this session, so there is nothing to stop."


def linear_tracked_elsewhere(task: Task) -> str:
    """A session opened for a request another event of the same mention already started."""
    return (f"Already on it as task `{task.id}`: its progress is in the status comment "
            "on this issue.")


def linear_attachment_title(task: Task) -> str:
    assert task.pull_request is not None
    return f"Pull request #{task.pull_request.number}: {task.pull_request.title}"


def attempts_summary(attempts: list[Attempt]) -> str:
    """One line per candidate, for `tasks show`, chat messages and the record."""
    return "\n".join(
        f"attempt {a.number}: " + (f"{a.diffstat}" + (f" — {a.summary.strip().splitlines()[0]}"
                                                     if a.summary.strip() else "")
                                  if a.ok else f"failed: {a.reason}")
        for a in attempts)


def pick_prompt(ready: int, total: int) -> str:
    return (f"{ready} of {total} attempts ready: pick one to open its pull request "
            "(`chatops pick TASK N`, or its button)")
