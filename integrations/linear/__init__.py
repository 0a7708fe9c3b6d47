"""Linear: webhooks in, issue context, agent activities or one status comment out.

    webhook.py    signature and freshness checks on the raw body (pure)
    events.py     pure parsing of webhook payloads into what to do (Start, Answer, Stop, ...)
    intake.py     the thin handler: verify, parse, call the TaskDesk, reply after the 2xx
    starlette.py  mounting the intake on the ASGI web app without blocking it
    documents.py  every GraphQL document chatops sends to Linear
    client.py     the httpx GraphQL client: auth, rate limits, errors
    errors.py     the Linear branch of the ChatopsError tree
    issue.py      the issue as context (a ContextSource)
    notifier.py   the Notifier: agent activities, or one comment updated in place
"""
