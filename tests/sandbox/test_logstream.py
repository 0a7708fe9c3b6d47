"""Redacted lines from chunked output, and the background pump."""

from __future__ import annotations

import time
from collections.abc import Iterator

from sandbox.logstream import MAX_LINE_BYTES, LogPump, Redactor

SECRET = "s3cr3t-value-0123456789"


def lines(redactor: Redactor, *chunks: bytes) -> list[str]:
    out: list[str] = []
    for chunk in chunks:
        out += redactor.feed(chunk)
    return out + redactor.flush()


def test_a_secret_split_across_chunks_is_masked() -> None:
    data = f"token={SECRET} done\nnext\n".encode()
    for cut in range(1, len(data)):
        assert lines(Redactor([SECRET]), data[:cut], data[cut:]) == ["token=*** done", "next"]


def test_every_secret_is_masked_longest_first() -> None:
    assert lines(Redactor(["abc", "abcdef", ""]), b"abcdef abc x\n") == ["*** *** x"]


def test_a_trailing_line_without_newline_is_flushed_masked() -> None:
    assert lines(Redactor([SECRET]), b"a\r\nb " + SECRET.encode()) == ["a", "b ***"]


def test_an_overlong_line_is_released_in_pieces_without_leaking() -> None:
    filler = b"y" * (MAX_LINE_BYTES + 5)
    redactor = Redactor([SECRET])
    # The secret straddles the point where the line gets too long.
    first = filler + SECRET.encode()[:7]
    released = redactor.feed(first)
    assert released and SECRET[:7] not in "".join(released)[-len(SECRET):]
    rest = lines(redactor, SECRET.encode()[7:] + b" tail\n")
    text = "".join(released + rest)
    assert SECRET not in text
    assert text.endswith("*** tail")
    assert text.count("y") == len(filler)


def test_multibyte_characters_survive_chunking() -> None:
    data = "héllo wörld ✓\n".encode()
    assert lines(Redactor([]), *(data[i : i + 1] for i in range(len(data)))) == ["héllo wörld ✓"]


def test_the_pump_hands_over_every_line_then_finishes() -> None:
    def slow() -> Iterator[bytes]:
        yield b"one\ntw"
        time.sleep(0.05)
        yield f"o {SECRET}\nthree".encode()

    closed: list[bool] = []
    pump = LogPump(slow(), Redactor([SECRET]), "test", on_close=lambda: closed.append(True))
    pump.wait(5)
    assert pump.take(timeout=1) == ["one", "two ***", "three"]
    assert pump.finished
    pump.close()
    assert closed == [True]
