from pathlib import Path

import pytest

from chatops.core.environment import DEFAULT_TIMEOUT_S, parse_environments
from chatops.core.errors import ConfigError, UnknownEnvironment

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """
[environments.web]
repository = "repos/web.git"
"""


def test_minimal_environment_gets_safe_defaults():
    env = parse_environments(MINIMAL, base_dir="/srv").get("web")
    assert env.repository == "/srv/repos/web.git"
    assert env.network.mode == "off"
    assert env.agent.preset == "script"
    assert env.timeout == DEFAULT_TIMEOUT_S
    assert env.read_only is True
    assert env.job_timeout > env.timeout + env.setup_timeout


def test_units_secrets_and_agents_are_understood():
    env = parse_environments("""
[environments.api]
repository = "https://git.example.test/org/api.git"
timeout = "10m"
setup_timeout = 90
secrets = ["NPM_TOKEN", { name = "PIP_INDEX_URL", from_env = "API_PIP_INDEX" }]
agent = { preset = "claude-code", credentials = ["EXTRA_KEY"] }
[environments.api.resources]
memory = "512m"
cpus = 0.5
""").get("api")
    assert env.repository.startswith("https://")
    assert env.timeout == 600 and env.setup_timeout == 90
    assert env.resources.memory == 512 * 1024**2
    assert [(s.name, s.source) for s in env.secrets] == [
        ("NPM_TOKEN", "NPM_TOKEN"), ("PIP_INDEX_URL", "API_PIP_INDEX")]
    assert env.agent.resolved_credentials == ("ANTHROPIC_API_KEY", "EXTRA_KEY")
    assert "claude" in env.agent.resolved_command


@pytest.mark.parametrize(("text", "message"), [
    ("[environments.web]\nrepository = 'x'\nmemory = '1g'",
     "environments.web.memory: unknown field"),
    ("[environments.web]\nbase_branch = 'main'", "environments.web.repository: required field"),
    ("[environments.web]\nrepository = 'x'\ntimeout = 'soon'",
     "environments.web.timeout: invalid duration 'soon'"),
    ("[environments.web]\nrepository = 'x'\nagent = 'gpt-9'", "unknown agent preset 'gpt-9'"),
    ("[environments.web]\nrepository = 'x'\nnetwork = 'maybe'", "environments.web.network"),
    ("[environments.web]\nrepository = 'x'\nsecrets = ['bad-name']",
     "environments.web.secrets.0.name: 'bad-name' is not a valid environment variable name"),
    ("[environments.web]\nrepository = 'x'\nsecrets = ['A']\nenv = { A = '1' }",
     "A is both a secret and a plain env var"),
    ("[environments.Web]\nrepository = 'x'", "environment name 'Web'"),
    ("[environments.web\nrepository = 'x'", "not valid TOML"),
    ("title = 'x'", "unknown top-level key(s): title"),
    ("", "declare at least one"),
])
def test_invalid_files_name_the_field(text, message):
    with pytest.raises(ConfigError) as info:
        parse_environments(text, source="envs.toml")
    assert message in info.value.message
    assert info.value.message.startswith("envs.toml")


def test_choice_is_explicit_or_the_only_one():
    one = parse_environments(MINIMAL)
    env, why = one.choose(None)
    assert env.name == "web" and "only environment" in why
    two = parse_environments(MINIMAL + "[environments.api]\nrepository = 'y'\n")
    assert two.choose("api")[0].name == "api"
    with pytest.raises(UnknownEnvironment, match="names no environment and there are several"):
        two.choose(None)
    with pytest.raises(UnknownEnvironment, match=r"named 'nope' \(known: api, web\)"):
        two.choose("nope")


def test_the_shipped_example_file_is_valid():
    catalogue = parse_environments((ROOT / "environments.example.toml").read_text())
    assert len(catalogue) >= 2
