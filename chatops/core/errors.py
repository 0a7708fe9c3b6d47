"""One exception root for everything chatops raises on purpose.

Every error carries a ``message`` (what went wrong) and a ``hint`` (how to fix it), so that
whichever door a request came in by, its origin is told the cause and the fix.

    ChatopsError
    ├── ConfigError              an environment file or setting is invalid
    ├── UnknownEnvironment       a request named an environment that does not exist
    │   └── AmbiguousEnvironment several fit and nothing says which: ask the requester
    ├── NotAuthorized            the requester may not use the environment
    ├── TaskNotFound
    ├── InvalidTransition        a lifecycle transition the table does not allow
    ├── QueueUnavailable         Redis cannot be reached
    ├── MissingSecret            a secret the environment needs has no value
    ├── TaskCancelled            the task was cancelled while it ran
    ├── SandboxError
    │   ├── SandboxUnavailable   the Docker engine cannot be reached
    │   ├── ImageMissing         the environment's image is not on the engine
    │   ├── SetupFailed          the setup or maintenance script exited non-zero
    │   ├── AgentFailed          the agent exited non-zero
    │   ├── AgentTimedOut        the agent ran past the environment's timeout
    │   └── WorkspaceTooLarge    the agent's result exceeds the size cap
    └── DeliveryError
        ├── NoChanges            the agent changed nothing
        ├── PatchDoesNotApply    the patch conflicts with the target tree
        ├── RepositoryError      cloning, committing or pushing failed
        └── ForgeError           the forge refused to open the pull request
"""

from __future__ import annotations


class ChatopsError(Exception):
    """Root of every error chatops raises deliberately."""

    default_hint = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(ChatopsError):
    default_hint = "fix the file and try again; `chatops envs list` validates it"


class UnknownEnvironment(ChatopsError):
    default_hint = "run `chatops envs list` to see the environments you can use"


class AmbiguousEnvironment(UnknownEnvironment):
    default_hint = "name one, e.g. `--env NAME` or `env:NAME` in the message"

    def __init__(self, message: str, choices: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.choices = choices


class NotAuthorized(ChatopsError):
    default_hint = "ask an admin to add you to the environment's allowed users"


class TaskNotFound(ChatopsError):
    default_hint = "run `chatops tasks list` to see task ids"


class InvalidTransition(ChatopsError):
    pass


class QueueUnavailable(ChatopsError):
    default_hint = "start Redis or point CHATOPS_REDIS_URL at a running server"


class MissingSecret(ChatopsError):
    default_hint = "export the variable in the worker's environment and restart the worker"


class TaskCancelled(ChatopsError):
    pass


class SandboxError(ChatopsError):
    pass


class SandboxUnavailable(SandboxError):
    default_hint = "start the Docker engine or set DOCKER_HOST to a reachable one"


class ImageMissing(SandboxError):
    default_hint = "build it with `chatops image build` or `docker build` (nothing can be pulled)"


class SetupFailed(SandboxError):
    default_hint = "read the setup log with `chatops logs TASK` and fix the environment's script"


class AgentFailed(SandboxError):
    default_hint = "read the agent log with `chatops logs TASK`"


class AgentTimedOut(SandboxError):
    default_hint = "raise the environment's `timeout` or narrow the instruction"


class WorkspaceTooLarge(SandboxError):
    default_hint = "ignore build output in .gitignore or raise the workspace cap"


class DeliveryError(ChatopsError):
    pass


class NoChanges(DeliveryError):
    default_hint = "the agent finished without editing any file; rephrase the instruction"


class PatchDoesNotApply(DeliveryError):
    default_hint = "the target tree moved; rebase or re-run the task on the new base"


class RepositoryError(DeliveryError):
    default_hint = "check the environment's `repository` and that the worker can reach it"


class ForgeError(DeliveryError):
    default_hint = "check the forge's credentials and the repository name"
