"""Best-of-N from the CLI: candidates side by side, each with its own outcome, then a pick."""

from __future__ import annotations

import pytest

from tests.deployment import git

pytestmark = pytest.mark.docker

# Candidate 2 fails, the others leave different results; CHATOPS_ATTEMPT tells them apart.
CANDIDATES = """\
# Write the answer
if [ "$CHATOPS_ATTEMPT" = 2 ]; then echo "candidate two gives up"; exit 5; fi
echo "answer from attempt $CHATOPS_ATTEMPT" > answer.txt
echo "attempt $CHATOPS_ATTEMPT wrote the answer" > "$CHATOPS_SUMMARY_FILE"
"""


def test_candidates_run_side_by_side_and_the_pick_opens_the_pull_request(deployment):
    deployment.start_worker()
    result = deployment.cli("exec", "--env", "ok", "--attempts", "3", CANDIDATES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 of 3 attempts ready" in result.stdout
    assert "attempt 2: failed: the agent exited with status 5" in result.stdout
    [task] = deployment.json("tasks", "list")
    shown = deployment.json("tasks", "show", task["id"])
    assert [(a["number"], a["ok"]) for a in shown["attempts"]] == [(1, True), (2, False), (3, True)]
    assert shown["pull_request"] is None  # nothing is delivered until someone picks

    diff = deployment.cli("diff", task["id"], "--attempt", "3").stdout
    assert "+answer from attempt 3" in diff
    logs = deployment.cli("logs", task["id"]).stdout
    assert "[attempt 2] candidate two gives up" in logs

    refused = deployment.cli("pick", task["id"], "2")
    assert refused.returncode == 2 and "cannot be delivered" in refused.stderr
    picked = deployment.cli("pick", task["id"], "3")
    assert picked.returncode == 0, picked.stdout + picked.stderr
    delivery = next(t for t in deployment.json("tasks", "list") if t["id"] != task["id"])
    assert delivery["parent_task_id"] == task["id"] and delivery["from_attempt"] == 3
    branch = delivery["pull_request"]["branch"]
    assert git("show", f"{branch}:answer.txt", cwd=deployment.repo) == "answer from attempt 3\n"
    assert "attempt 3 wrote the answer" in delivery["pull_request"]["body"]
    again = deployment.cli("pick", task["id"], "3", "--detach")
    assert again.stdout.strip() == delivery["id"]  # a second pick of the same one is the same


def test_when_every_candidate_fails_the_task_fails_with_each_reason(deployment):
    task_id = deployment.cli("exec", "--env", "ok", "--attempts", "2", "--detach",
                             'echo "no luck $CHATOPS_ATTEMPT"; exit 3').stdout.strip()
    deployment.work()
    task = deployment.runtime.store.get(task_id)
    assert task.state.value == "failed"
    assert "none of the 2 attempts produced a change" in task.reason
    assert "1: the agent exited with status 3" in task.reason
    assert [a.ok for a in task.candidates] == [False, False]
