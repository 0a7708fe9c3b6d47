"""forge_settings_from, GitHubForge.from_settings, and which URLs are on the configured host."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatops.core.errors import ConfigError, ForgeError
from integrations.github import (
    AppCredentials,
    GitHubForge,
    GitHubHost,
    RepositoryRef,
    TokenCredentials,
    forge_settings_from,
    web_url_for,
)
from tests.integrations.github.support import APP_ID, PAT, AppKey


def test_nothing_set_is_not_configured() -> None:
    settings = forge_settings_from({})
    assert settings.api_url == "https://api.github.com"
    assert not settings.configured and not settings.uses_app


def test_a_token() -> None:
    settings = forge_settings_from({"GITHUB_TOKEN": f" {PAT}\n",
                                    "GITHUB_API_URL": "https://ghe.corp/api/v3/"})
    assert (settings.token, settings.api_url) == (PAT, "https://ghe.corp/api/v3")
    assert settings.configured and not settings.uses_app
    assert PAT not in repr(settings)


def test_an_app_with_a_key_on_one_line() -> None:
    one_line = "-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----"
    settings = forge_settings_from({"GITHUB_APP_ID": "123", "GITHUB_APP_PRIVATE_KEY": one_line,
                                    "GITHUB_APP_INSTALLATION_ID": "99"})
    assert settings.uses_app and settings.installation_id == 99
    assert settings.private_key == "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    assert "AAAA" not in repr(settings)


@pytest.mark.parametrize(("environ", "named"), [
    ({"GITHUB_TOKEN": "t", "GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY": "k"}, "both"),
    ({"GITHUB_APP_ID": "1"}, "without the App's private key"),
    ({"GITHUB_APP_PRIVATE_KEY_PATH": "/k.pem"}, "GITHUB_APP_ID is not"),
    ({"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY": "k", "GITHUB_APP_PRIVATE_KEY_PATH": "p"},
     "both GITHUB_APP_PRIVATE_KEY and"),
    ({"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY": "k", "GITHUB_APP_INSTALLATION_ID": "x"},
     "GITHUB_APP_INSTALLATION_ID 'x'"),
    ({"GITHUB_TOKEN": "t", "GITHUB_APP_INSTALLATION_ID": "5"}, "GITHUB_APP_ID is not"),
    ({"GITHUB_APP_ID": "1 2", "GITHUB_APP_PRIVATE_KEY": "k"}, "not an App id"),
    ({"GITHUB_TOKEN": "t", "GITHUB_API_URL": "api.github.com"}, "not an http(s) URL"),
])
def test_contradictions_name_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        forge_settings_from(environ)
    assert named in caught.value.message


def test_from_settings_reads_the_key_file(tmp_path: Path, app_key: AppKey) -> None:
    (tmp_path / "app.pem").write_text(app_key.pem)
    settings = forge_settings_from({"GITHUB_APP_ID": APP_ID,
                                    "GITHUB_APP_PRIVATE_KEY_PATH": str(tmp_path / "app.pem")})
    with GitHubForge.from_settings(settings) as forge:
        assert isinstance(forge.credentials, AppCredentials)
        assert forge.credentials.app_id == APP_ID
    with GitHubForge.from_settings(forge_settings_from({"GITHUB_TOKEN": PAT})) as forge:
        assert isinstance(forge.credentials, TokenCredentials)
        assert forge.host.web_url == "https://github.com"


def test_from_settings_with_a_missing_key_file(tmp_path: Path) -> None:
    settings = forge_settings_from({"GITHUB_APP_ID": APP_ID,
                                    "GITHUB_APP_PRIVATE_KEY_PATH": str(tmp_path / "nope.pem")})
    with pytest.raises(ConfigError) as caught:
        GitHubForge.from_settings(settings)
    assert "nope.pem" in caught.value.message and "No such file" in caught.value.message


@pytest.mark.parametrize(("api", "web"), [
    ("https://api.github.com", "https://github.com"),
    ("https://api.github.com/", "https://github.com"),
    ("https://api.acme.ghe.com", "https://acme.ghe.com"),
    ("https://ghe.corp/api/v3", "https://ghe.corp"),
    ("https://ghe.corp:8443/api/v3/", "https://ghe.corp:8443"),
    ("http://127.0.0.1:8080/api/v3", "http://127.0.0.1:8080"),
])
def test_web_url_for(api: str, web: str) -> None:
    assert web_url_for(api) == web



@pytest.mark.parametrize("url", [
    "https://ghe.corp/octo/demo", "https://ghe.corp/octo/demo.git", "https://ghe.corp/octo/demo/",
    "https://GHE.corp:443/octo/demo.git", "https://x-access-token:t@ghe.corp/octo/demo.git",
    "git@ghe.corp:octo/demo.git", "ssh://git@ghe.corp:2222/octo/demo.git",
])
def test_urls_on_an_enterprise_server(url: str) -> None:
    assert GitHubHost("https://ghe.corp/api/v3").repository(url) == RepositoryRef("octo", "demo")


def test_https_url_drops_userinfo_and_is_none_for_ssh() -> None:
    host = GitHubHost("https://api.github.com")
    assert host.https_url("https://u:p@github.com/o/r.git") == "https://github.com/o/r.git"
    assert host.https_url("git@github.com:o/r.git") is None
    assert host.https_url("https://github.com.evil.example/o/r.git") is None
    assert host.https_url("http://github.com/o/r.git") is None  # not the configured scheme


@pytest.mark.parametrize("url", [
    "https://github.com/o/r.git", "https://ghe.corp:8443/o/r.git", "/srv/git/r.git",
    "git@github.com:o/r.git", "file:///ghe.corp/o/r.git",
])
def test_urls_elsewhere_are_refused(url: str) -> None:
    with pytest.raises(ForgeError) as caught:
        GitHubHost("https://ghe.corp/api/v3").repository(url)
    assert "not on the configured GitHub (ghe.corp)" in caught.value.message


@pytest.mark.parametrize("url", ["https://ghe.corp/octo", "https://ghe.corp/octo/demo/tree/main",
                                 "https://ghe.corp/"])
def test_urls_that_name_no_repository(url: str) -> None:
    with pytest.raises(ForgeError) as caught:
        GitHubHost("https://ghe.corp/api/v3").repository(url)
    assert "does not name a repository" in caught.value.message


def test_a_token_in_a_url_stays_out_of_the_message() -> None:
    with pytest.raises(ForgeError) as caught:
        GitHubHost("https://api.github.com").repository("https://me:ghp_secret@gitlab.com/o/r")
    assert "ghp_secret" not in str(caught.value)
