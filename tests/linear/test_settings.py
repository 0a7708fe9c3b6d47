"""Linear's settings, read once from the environment."""

from __future__ import annotations

import pytest

from chatops.app.settings import LINEAR_TRIGGERS, Settings
from chatops.core.errors import ConfigError
from integrations.linear.events import TRIGGERS


def test_defaults():
    settings = Settings.from_env({})
    assert not settings.linear_configured
    assert settings.linear_api_url == "https://api.linear.app/graphql"
    assert settings.linear_bot_name == "chatops"
    assert settings.linear_trigger_label == "codex-ready"
    assert settings.linear_triggers == frozenset(TRIGGERS) == frozenset(LINEAR_TRIGGERS)


def test_values_and_a_comma_list_of_triggers():
    settings = Settings.from_env({"LINEAR_API_KEY": "lin_api_secret", "LINEAR_BOT_NAME": "@robot",
                                  "LINEAR_TRIGGERS": " Assign, mention ,"})
    assert settings.linear_configured and settings.linear_bot_name == "robot"
    assert settings.linear_triggers == frozenset({"assign", "mention"})
    assert "lin_api_secret" not in repr(settings)


def test_an_unknown_trigger_names_the_known_ones():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"LINEAR_TRIGGERS": "assign,telepathy"})
    assert "telepathy" in info.value.message and "mention" in info.value.hint
