"""Signature and freshness checks on raw bodies."""

from __future__ import annotations

import pytest

from integrations.linear.webhook import (
    Unverified,
    check_fresh,
    signature,
    verify_signature,
)

SECRET = "whsec-test"
BODY = b'{"type":"Issue","action":"update","webhookTimestamp":1700000000000}'


def test_a_matching_signature_passes_whatever_the_header_case():
    verify_signature(BODY, {"Linear-Signature": signature(BODY, SECRET)}, SECRET)
    verify_signature(BODY, {"linear-signature": signature(BODY, SECRET).upper()}, SECRET)


@pytest.mark.parametrize("headers", [
    {},
    {"Linear-Signature": ""},
    {"Linear-Signature": signature(BODY, "other")},
    {"Linear-Signature": signature(BODY + b" ", SECRET)},
])
def test_missing_or_wrong_signatures_fail(headers):
    with pytest.raises(Unverified):
        verify_signature(BODY, headers, SECRET)


def test_no_secret_means_nothing_verifies():
    with pytest.raises(Unverified):
        verify_signature(BODY, {"Linear-Signature": signature(BODY, "")}, "")


def test_freshness_within_a_minute_either_way():
    check_fresh({"webhookTimestamp": 1_000_000}, now_ms=1_060_000)
    check_fresh({"webhookTimestamp": 1_060_000.0}, now_ms=1_000_000)
    with pytest.raises(Unverified):
        check_fresh({"webhookTimestamp": 1_000_000}, now_ms=1_060_001)
    with pytest.raises(Unverified):
        check_fresh({"webhookTimestamp": 2_000_000}, now_ms=1_000_000)


@pytest.mark.parametrize("stamp", [None, "1700000000000", True])
def test_a_missing_or_non_numeric_timestamp_is_malformed(stamp):
    payload = {} if stamp is None else {"webhookTimestamp": stamp}
    with pytest.raises(ValueError) as info:
        check_fresh(payload, now_ms=0)
    assert not isinstance(info.value, Unverified)
