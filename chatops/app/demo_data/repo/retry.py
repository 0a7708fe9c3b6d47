"""Retry an operation that may fail transiently."""

import time


def retry(operation, attempts=3, delay=0.0, sleep=time.sleep):
    """Call ``operation`` until it succeeds, at most ``attempts`` times; re-raise the last error."""
    for attempt in range(1, attempts):
        try:
            return operation()
        except Exception:
            if attempt == attempts:
                raise
            sleep(delay)
