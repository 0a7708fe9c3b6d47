"""Git on the worker's host: the Repository port, and applying a task's patch to a worktree."""

from integrations.git.patches import AppliedPatch, apply_to_worktree
from integrations.git.repository import DEFAULT_DEPTH, GitRepository, NetworkConfig

__all__ = ["DEFAULT_DEPTH", "AppliedPatch", "GitRepository", "NetworkConfig", "apply_to_worktree"]
