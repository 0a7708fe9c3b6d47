import pytest

from retry import retry


def flaky(failures):
    calls = {"n": 0}

    def operation():
        calls["n"] += 1
        if calls["n"] <= failures:
            raise ConnectionError("transient")
        return "ok"

    return operation


def test_succeeds_on_the_last_attempt():
    assert retry(flaky(2), attempts=3) == "ok"


def test_gives_up_after_the_last_attempt():
    with pytest.raises(ConnectionError):
        retry(flaky(5), attempts=3)
