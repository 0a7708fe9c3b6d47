"""Serving the intake from Starlette: read the raw body, handle it off the event loop."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from integrations.linear.intake import LinearIntake

# Bytes; Linear's payloads are a few KB, tens of KB with a long description.
MAX_BODY_BYTES = 1024 * 1024


class LinearEndpoint:
    def __init__(self, intake: LinearIntake) -> None:
        self.intake = intake

    async def __call__(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": "request body too large"}, status_code=413)
        # The handler writes to the database: in the thread pool, a burst is taken in parallel.
        status, answer = await run_in_threadpool(self.intake.handle, body,
                                                 dict(request.headers))
        return JSONResponse(answer, status_code=status)
