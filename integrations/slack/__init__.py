"""Slack: mentions in, thread context, one status message per task, Block Kit buttons.

    mention.py    pure parsing of app_mention events into a Mention
    thread.py     the thread as context (conversations.replies, every page)
    blocks.py     Block Kit for status messages and environment choices
    notifier.py   the Notifier: 👀, the status message updated in place, the final reply
    bolt_app.py   the Bolt app: listeners that translate and call the TaskDesk
    starlette.py  mounting the Bolt app on the ASGI web app without blocking it
"""
