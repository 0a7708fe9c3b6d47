"""Serving the Bolt app from Starlette: translate the request, dispatch off the event loop."""

from __future__ import annotations

from slack_bolt import App, BoltRequest, BoltResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

# Bytes; Slack's event payloads are a few KB, a few hundred KB with huge blocks.
MAX_BODY_BYTES = 1024 * 1024


async def handle(app: App, request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return JSONResponse({"error": "request body too large"}, status_code=413)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return JSONResponse({"error": "request body is not UTF-8"}, status_code=400)
    bolt_request = BoltRequest(body=text, query=dict(request.query_params),
                               headers=dict(request.headers))
    # Bolt's dispatch is synchronous (it runs our listeners, which write to the database):
    # in the thread pool, a burst of events is acknowledged concurrently.
    answer: BoltResponse = await run_in_threadpool(app.dispatch, bolt_request)
    return Response(content=answer.body, status_code=answer.status,
                    headers=answer.first_headers_without_set_cookie())
