"""The task pipeline end to end, from the CLI, on real Redis, Docker and git."""

from __future__ import annotations

import subprocess

import pytest

from tests.deployment import CANARY, git

pytestmark = pytest.mark.docker

FIX = """\
# Fix retry: try the operation up to `attempts` times
cat > retry.py <<'PY'
def retry(op, attempts=3):
    for attempt in range(attempts):
        try:
            return op()
        except Exception:
            if attempt == attempts - 1:
                raise
PY
printf '\\x00\\x01binary\\xff' > fixture.bin
echo "retry now makes every attempt" > "$CHATOPS_SUMMARY_FILE"
"""


def labelled_containers(docker_client, task_id):
    return docker_client.containers.list(all=True, sparse=True,
                                         filters={"label": f"chatops.task={task_id}"})


def test_exec_opens_a_pull_request_end_to_end(deployment, docker_client):
    worker = deployment.start_worker()
    result = deployment.cli("exec", "--env", "ok", FIX)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pull request #1 ready" in result.stdout
    for line in ("setting up the environment", "agent running", "opening the pull request"):
        assert line in result.stdout

    [task] = deployment.json("tasks", "list")
    shown = deployment.json("tasks", "show", task["id"])
    assert shown["state"] == "succeeded"
    assert [t["to"] for t in shown["transitions"]] == [
        "queued", "provisioning", "running", "delivering", "succeeded"]
    assert "environment ok" in shown["transitions"][0]["reason"]
    pr = shown["pull_request"]
    assert pr["number"] == 1 and pr["branch"] == f"chatops/{task['id']}"
    assert pr["title"] == "Fix retry: try the operation up to `attempts` times"
    assert "retry now makes every attempt" in pr["body"]
    assert shown["diffstat"] == "2 files changed, +6 -1"  # the def line is unchanged

    # The branch really is on the remote, with the agent's bytes, and nothing from setup.
    assert "range(attempts)" in git("show", f"{pr['branch']}:retry.py", cwd=deployment.repo)
    blob = subprocess.run(["git", "show", f"{pr['branch']}:fixture.bin"], cwd=deployment.repo,
                          capture_output=True, check=True).stdout
    assert blob == b"\x00\x01binary\xff"
    tree = git("ls-tree", "-r", "--name-only", pr["branch"], cwd=deployment.repo).split()
    assert ".deps/marker" not in tree

    diff = deployment.cli("diff", task["id"])
    assert "GIT binary patch" in diff.stdout
    assert "+    for attempt in range(attempts):" in diff.stdout

    logs = deployment.cli("logs", task["id"]).stdout
    assert "setup sees ***" in logs
    assert CANARY not in logs
    assert not labelled_containers(docker_client, task["id"])
    worker.terminate()


def test_apply_puts_the_patch_in_the_working_tree(deployment, tmp_path):
    task_id = deployment.submit(FIX)
    deployment.work()
    clone = tmp_path / "clone"
    git("clone", "-q", str(deployment.repo), str(clone), cwd=tmp_path)
    check = deployment.cli("apply", "--check", task_id, cwd=clone)
    assert check.returncode == 0, check.stderr
    assert "applies cleanly" in check.stdout
    assert "range(attempts)" not in (clone / "retry.py").read_text()
    result = deployment.cli("apply", task_id, cwd=clone)
    assert result.returncode == 0, result.stderr
    assert "range(attempts)" in (clone / "retry.py").read_text()
    assert (clone / "fixture.bin").read_bytes() == b"\x00\x01binary\xff"
    again = deployment.cli("apply", task_id, cwd=clone)
    assert again.returncode == 2
    assert "error:" in again.stderr and "fix:" in again.stderr
