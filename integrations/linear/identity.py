"""The bot's Linear user id: configured, or learned once from ``viewer { id }``.

The webhook handler needs it before it answers, and must not wait on Linear to answer, so
the lookup starts in the background when the app starts and is only waited for briefly.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Executor, Future

from integrations.linear import documents
from integrations.linear.client import LinearClient

log = logging.getLogger(__name__)

# Seconds a webhook waits for the first viewer lookup before going on without the id
# (then only mentions by name trigger); the lookup is retried on the next delivery.
LOOKUP_WAIT_S = 5.0


class BotIdentity:
    def __init__(self, client: LinearClient | None, user_id: str = "",
                 executor: Executor | None = None, wait_s: float = LOOKUP_WAIT_S) -> None:
        self.client = client
        self.executor = executor
        self.wait_s = wait_s
        self._user_id = user_id
        self._lock = threading.Lock()
        self._lookup: Future[str] | None = None
        if not user_id and executor is not None:
            self._start()

    def __call__(self) -> str:
        return self.user_id()

    def user_id(self) -> str:
        if self._user_id or self.client is None:
            return self._user_id
        if self.executor is None:  # a worker: look it up in place
            try:
                self._user_id = self._fetch()
            except Exception as exc:
                log.warning("could not learn the Linear bot's user id: %s", exc)
            return self._user_id
        lookup = self._start()
        try:
            self._user_id = lookup.result(timeout=self.wait_s)
        except Exception as exc:
            log.warning("could not learn the Linear bot's user id: %s", exc)
            with self._lock:
                if self._lookup is lookup and lookup.done():
                    self._lookup = None  # try again on the next call
        return self._user_id

    def _start(self) -> Future[str]:
        assert self.executor is not None
        with self._lock:
            if self._lookup is None:
                self._lookup = self.executor.submit(self._fetch)
            return self._lookup

    def _fetch(self) -> str:
        assert self.client is not None
        viewer = self.client.execute(documents.VIEWER).get("viewer") or {}
        return str(viewer.get("id") or "")
