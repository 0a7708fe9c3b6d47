"""GitHub delivery: the Forge port on github.com or GitHub Enterprise Server.

``GitHubForge`` opens (or finds) pull requests over the REST API, as a personal access token's
user or as a GitHub App installation, and gives ``GitRepository`` the git configuration that
authenticates pushes with the same credentials. ``forge_settings_from`` reads its settings
from a mapping of variables, for the composition root.
"""

from integrations.github.auth import AppCredentials, Credentials, TokenCredentials
from integrations.github.forge import GIT_USER, GitHubForge
from integrations.github.host import GitHubHost, RepositoryRef, web_url_for
from integrations.github.payloads import FORGE_NAME, InstallationToken
from integrations.github.ratelimit import RetryPolicy
from integrations.github.settings import DEFAULT_API_URL, GitHubSettings, forge_settings_from

__all__ = [
    "DEFAULT_API_URL",
    "FORGE_NAME",
    "GIT_USER",
    "AppCredentials",
    "Credentials",
    "GitHubForge",
    "GitHubHost",
    "GitHubSettings",
    "InstallationToken",
    "RepositoryRef",
    "RetryPolicy",
    "TokenCredentials",
    "forge_settings_from",
    "web_url_for",
]
