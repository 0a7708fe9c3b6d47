"""Serving the Bolt app from Starlette: verify, translate, dispatch off the event loop."""

from __future__ import annotations

from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk.signature import SignatureVerifier
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

# Bytes; Slack's event payloads are a few KB, a few hundred KB with huge blocks.
MAX_BODY_BYTES = 1024 * 1024


class SlackEndpoint:
    def __init__(self, app: App, signing_secret: str) -> None:
        self.app = app
        # v0 signatures, compared in constant time, timestamps within 5 minutes.
        self.verifier = SignatureVerifier(signing_secret)

    async def __call__(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": "request body too large"}, status_code=413)
        # Checked before anything parses the body, so unsigned input is never interpreted.
        if not self.verifier.is_valid_request(body, dict(request.headers)):
            return JSONResponse({"error": "invalid or stale Slack signature"}, status_code=401)
        try:
            bolt_request = BoltRequest(body=body.decode("utf-8"),
                                       query=dict(request.query_params),
                                       headers=dict(request.headers))
        except ValueError as exc:  # undecodable bytes or JSON
            return JSONResponse({"error": f"malformed Slack payload: {exc}"}, status_code=400)
        # Bolt's dispatch is synchronous (our listeners write to the database): in the thread
        # pool, a burst of events is acknowledged concurrently.
        answer: BoltResponse = await run_in_threadpool(self.app.dispatch, bolt_request)
        return Response(content=answer.body, status_code=answer.status,
                        headers=answer.first_headers_without_set_cookie())
