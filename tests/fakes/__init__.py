"""Loopback fakes of the external services chatops talks to, driven through the real clients.

``slack_api.FakeSlack`` serves the Slack Web API over HTTP on 127.0.0.1 (its methods'
semantics live in ``slack_workspace``); ``slack_signing`` builds the signed requests Slack
sends to our endpoints.
"""

from tests.fakes.slack_api import BOT_TOKEN, Call, FakeSlack
from tests.fakes.slack_workspace import SlackError, SlackWorkspace

__all__ = ["BOT_TOKEN", "Call", "FakeSlack", "SlackError", "SlackWorkspace"]
