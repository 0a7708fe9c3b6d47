import itertools

import pytest

from chatops.core.errors import InvalidTransition
from chatops.core.lifecycle import TERMINAL_STATES, TRANSITIONS, TaskState, check_transition

HAPPY_PATH = [TaskState.QUEUED, TaskState.PROVISIONING, TaskState.RUNNING,
              TaskState.DELIVERING, TaskState.SUCCEEDED]


def test_the_happy_path_is_allowed_step_by_step():
    for current, target in itertools.pairwise(HAPPY_PATH):
        check_transition(current, target)


@pytest.mark.parametrize("state", [s for s in TaskState if not s.terminal])
def test_every_live_state_can_fail_or_be_cancelled(state):
    check_transition(state, TaskState.FAILED)
    check_transition(state, TaskState.CANCELLED)


@pytest.mark.parametrize("state", sorted(TERMINAL_STATES))
def test_terminal_states_never_move(state):
    assert TRANSITIONS[state] == frozenset()
    with pytest.raises(InvalidTransition, match=f"from {state.value} to queued"):
        check_transition(state, TaskState.QUEUED)


def test_skipping_a_phase_is_refused_with_the_allowed_moves():
    with pytest.raises(InvalidTransition) as info:
        check_transition(TaskState.QUEUED, TaskState.DELIVERING)
    assert "cannot move a task from queued to delivering" in info.value.message
    assert "provisioning" in info.value.hint
