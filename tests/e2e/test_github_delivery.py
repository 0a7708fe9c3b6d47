"""The whole pipeline delivering to GitHub: a loopback REST API and a real smart-HTTP git
remote (`git http-backend`) that, like GitHub, wants the token; the agent looks for it."""

from __future__ import annotations

import time

import pytest

from chatops.core.lifecycle import TaskState
from tests.integrations.github.fake_github import FakeGitHub
from tests.integrations.github.git_http import GitHttpServer, make_served_repository
from tests.integrations.github.support import PAT, REPO
from tests.integrations.gitutil import make_origin, text

pytestmark = pytest.mark.docker

# The agent searches its whole world for the token: environment, every process, every file it
# can read, and records what it found in the checkout, which comes back as the patch.
# (The token is spelled in two halves, so that the instruction file itself does not hold it.)
HUNT = f"""\
# Update the README and report whether any credential is visible
echo "updated by the agent" >> README.md
first='{PAT[:8]}'; second='{PAT[8:16]}'; needle="$first$second"
found=no
env | grep -q "$needle" && found=env
cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -q "$needle" && found=proc
grep -rqs "$needle" /workspace /chatops /home /tmp /etc 2>/dev/null && found=files
echo "token visible to the agent: $found" > hunt.txt
"""


@pytest.fixture
def github_remote(tmp_path):
    github = FakeGitHub(clock=time.time, tokens=(PAT,)).start()
    origin = make_origin(tmp_path / "seed", {"README.md": b"# demo\n"})
    served = make_served_repository(tmp_path / "srv", REPO, origin)
    server = GitHttpServer(served.parents[1], accepts=lambda token: token in github.valid_tokens)
    server.start()
    yield github, server, served
    server.stop()
    github.stop()


def test_a_task_delivers_to_github_without_the_token_reaching_the_agent(deployment,
                                                                       github_remote):
    github, server, served = github_remote
    deployment.write_environments(replace=(
        f'[environments.gh]\nrepository = "{server.url}/{REPO}.git"\nqueue = "{{queue}}"\n'
        'forge = "github"\ndraft = true\n'))
    deployment.environ.update({"GITHUB_TOKEN": PAT, "GITHUB_API_URL": github.url,
                               "GITHUB_WEB_URL": server.url})
    task_id = deployment.submit(HUNT, env="gh")
    deployment.work()

    task = deployment.runtime.store.get(task_id)
    assert task.state is TaskState.SUCCEEDED, task.reason
    [pull] = github.open_pulls(REPO)
    assert pull["head"]["ref"] == task.branch and pull["draft"] is True
    assert task.pull_request.number == pull["number"]
    assert text(served, "show", f"{task.branch}:hunt.txt") == "token visible to the agent: no"
    assert server.authorizations, "the push went through the authenticating remote"

    patch = deployment.runtime.store.patch(task_id) or b""
    logs = "".join(entry.text for entry in deployment.runtime.store.logs(task_id))
    assert PAT.encode() not in patch and PAT not in logs
    assert PAT not in deployment.cli("tasks", "show", task_id, "--json").stdout


def test_a_refused_token_fails_the_task_with_the_fix(deployment, github_remote):
    github, server, _ = github_remote
    deployment.write_environments(replace=(
        f'[environments.gh]\nrepository = "{server.url}/{REPO}.git"\nqueue = "{{queue}}"\n'
        'forge = "github"\n'))
    deployment.environ.update({"GITHUB_TOKEN": "ghp_revoked0000000000000000000000000000",
                               "GITHUB_API_URL": github.url, "GITHUB_WEB_URL": server.url})
    task_id = deployment.submit("echo change >> README.md", env="gh")
    deployment.work()
    task = deployment.runtime.store.get(task_id)
    assert task.state is TaskState.FAILED
    assert "ghp_revoked" not in task.reason
    assert "refused the worker's credentials" in task.reason
    assert "GITHUB_TOKEN" in task.reason
