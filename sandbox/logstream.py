"""Container output as redacted lines, read in the background and handed over on request.

The engine streams output in arbitrary chunks, so a secret can arrive split across two of
them. ``Redactor`` therefore only releases text whose end cannot be the start of a secret:
whole lines, or for an overlong line everything but a tail shorter than the longest secret.
``LogPump`` drains a stream in a daemon thread so that the runner's own thread stays free to
watch the clock and the cancel flag; the lines reach ``SandboxEvents.log`` on that thread.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

MASK = "***"
# 64 KiB: a line longer than this (a progress bar redrawn with \r, a minified file printed) is
# released in pieces rather than held in memory until its newline.
MAX_LINE_BYTES = 64 * 1024


class Redactor:
    """Turns a byte stream into lines with every secret value replaced by ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._needles = sorted({s.encode() for s in secrets if s}, key=len, reverse=True)
        self._keep = max((len(n) for n in self._needles), default=1) - 1
        self._buffer = b""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def redact(self, data: bytes) -> bytes:
        for needle in self._needles:
            data = data.replace(needle, MASK.encode())
        return data

    def redact_text(self, text: str) -> str:
        return self.redact(text.encode(errors="surrogateescape")).decode(errors="replace")

    def feed(self, chunk: bytes) -> list[str]:
        """The lines completed by ``chunk`` (without their line ends), redacted."""
        *complete, self._buffer = (self._buffer + chunk).split(b"\n")
        lines = [self._text(line) for line in complete]
        if len(self._buffer) > MAX_LINE_BYTES:
            # Masking first means no secret straddles the cut: a complete one is gone already,
            # and the start of an incomplete one fits in the tail that is kept back.
            masked = self.redact(self._buffer)
            cut = len(masked) - self._keep
            lines.append(self._decoder.decode(masked[:cut]))
            self._buffer = masked[cut:]
        return lines

    def flush(self) -> list[str]:
        """What is left once the stream has ended."""
        rest, self._buffer = self._buffer, b""
        text = self._decoder.decode(self.redact(rest), final=True)
        return [text.removesuffix("\r")] if text else []

    def _text(self, line: bytes) -> str:
        return self._decoder.decode(self.redact(line)).removesuffix("\r")


class LogPump:
    """Reads ``chunks`` to the end in a daemon thread; ``take`` returns the lines so far."""

    def __init__(
        self,
        chunks: Iterable[bytes],
        redactor: Redactor,
        name: str,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._chunks = chunks
        self._on_close = on_close
        self._redactor = redactor
        self._lines: queue.Queue[str] = queue.Queue()
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for chunk in self._chunks:
                for line in self._redactor.feed(chunk):
                    self._lines.put(line)
        except Exception as exc:  # a killed container may end its stream with any socket error
            log.debug("log stream %s ended: %r", self._thread.name, exc)
        finally:
            for line in self._redactor.flush():
                self._lines.put(line)
            self._finished.set()

    @property
    def finished(self) -> bool:
        """True once the stream ended and every line was taken."""
        return self._finished.is_set() and self._lines.empty()

    def take(self, timeout: float) -> list[str]:
        """Lines read so far; waits up to ``timeout`` seconds for the first one."""
        try:
            lines = [self._lines.get(timeout=timeout)]
        except queue.Empty:
            return []
        with contextlib.suppress(queue.Empty):
            while True:
                lines.append(self._lines.get_nowait())
        return lines

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the stream to end."""
        self._finished.wait(timeout)

    def close(self) -> None:
        """Stop reading: ``on_close`` releases the stream, and the thread then ends."""
        if self._on_close is not None:
            with contextlib.suppress(Exception):
                self._on_close()
