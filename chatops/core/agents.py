"""Agent presets: the command each known coding agent runs in the checkout.

An agent is a shell command run in ``/workspace`` as the unprivileged sandbox user. The runner
hands it the task through files whose paths are in these variables:

    CHATOPS_INSTRUCTION_FILE  the instruction alone
    CHATOPS_CONTEXT_FILE      the thread or issue the request came from, as Markdown
    CHATOPS_PROMPT_FILE       instruction and context together, ready for an LLM agent
    CHATOPS_SUMMARY_FILE      where the agent may write a short summary for the pull request

The binaries of the LLM presets are not shipped: build them into the environment's image. They
also need their model API: give the agent phase network (``network = "on"``) and pass the key
with ``agent.credentials`` (which, unlike ``secrets``, the agent can see).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgentPreset:
    name: str
    command: str
    description: str
    credentials: tuple[str, ...] = ()


PRESETS: dict[str, AgentPreset] = {
    preset.name: preset
    for preset in (
        AgentPreset(
            name="script",
            command='sh -eu "$CHATOPS_INSTRUCTION_FILE"',
            description="the instruction is a shell script run in the checkout (offline, for "
            "demos, tests and mechanical changes)",
        ),
        AgentPreset(
            name="codex",
            command='codex exec --dangerously-bypass-approvals-and-sandbox --skip-git-repo-check '
            '- < "$CHATOPS_PROMPT_FILE"',
            description="OpenAI Codex CLI in non-interactive mode; the container is its sandbox",
            credentials=("OPENAI_API_KEY",),
        ),
        AgentPreset(
            name="claude-code",
            command='claude -p --dangerously-skip-permissions --output-format text '
            '< "$CHATOPS_PROMPT_FILE"',
            description="Anthropic Claude Code in print mode; the container is its sandbox",
            credentials=("ANTHROPIC_API_KEY",),
        ),
        AgentPreset(
            name="aider",
            command='aider --yes-always --no-auto-commits --no-check-update '
            '--message-file "$CHATOPS_PROMPT_FILE"',
            description="Aider with one message and no commits of its own",
            credentials=("OPENAI_API_KEY",),
        ),
    )
}
