"""Field checks shared by the parsers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audience_sync.records import InvalidField, check_id, check_profile_id, check_status, expiry, parse_time


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2999, 1, 1), timezones=st.just(UTC)))
def test_iso_and_epoch_timestamps_agree(moment: datetime) -> None:
    epoch = moment.timestamp()
    assert parse_time(moment.isoformat(), "t") == pytest.approx(epoch)
    assert parse_time(moment.isoformat().replace("+00:00", "Z"), "t") == pytest.approx(epoch)
    assert parse_time(moment.replace(tzinfo=None).isoformat(), "t") == pytest.approx(epoch)  # no offset: UTC
    assert parse_time(epoch, "t") == epoch
    assert parse_time(str(epoch), "t") == pytest.approx(epoch)
    shifted = moment.astimezone(timezone(timedelta(hours=2)))
    assert parse_time(shifted.isoformat(), "t") == pytest.approx(epoch)


@pytest.mark.parametrize("value", ["", "soon", "2026-02-30T00:00:00Z", float("nan"), -1, 1e12, True, [1], None])
def test_bad_timestamps_name_the_field(value: object) -> None:
    with pytest.raises(InvalidField, match=r"^validUntil: "):
        parse_time(value, "validUntil")


def test_expiry_is_whole_seconds_or_none() -> None:
    assert expiry(None, "v") is None and expiry("", "v") is None
    assert expiry("1970-01-01T00:00:10.9Z", "v") == 10


@pytest.mark.parametrize(("value", "member"), [("realized", True), ("existing", True), ("Exited", False)])
def test_statuses(value: str, member: bool) -> None:
    assert check_status(value, "status") is member


@pytest.mark.parametrize(
    ("value", "reason"),
    [(None, "missing"), ("", "empty"), (5, "expected a string, got int"), ("a\nb", "control character"),
     ("é" * 129, "longer than 256 bytes")],
)  # fmt: skip
def test_ids(value: object, reason: str) -> None:
    with pytest.raises(InvalidField, match=reason):
        check_id(value, "profile_id")
    assert check_id("é" * 128, "profile_id") == "é" * 128


def test_a_profile_id_must_form_a_hash_tag() -> None:
    with pytest.raises(InvalidField, match="may not start with '}'"):
        check_profile_id("}x", "profile_id")
    assert check_profile_id("a}b", "profile_id") == "a}b"
