"""Profile attribute fields and values: what the writer encodes, the reader decodes, for every type."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from inbound_common.codecs import (
    ATTRIBUTE_TAGS,
    attribute_field,
    attribute_value,
    decode_attribute,
    profile_attributes,
)

typed_values = st.one_of(
    st.tuples(st.just("string"), st.text(max_size=50)),
    st.tuples(st.just("number"), st.floats(allow_nan=False, allow_infinity=False)),
    st.tuples(st.just("timestamp"), st.floats(0, 1e11)),
    st.tuples(st.just("bool"), st.booleans()),
    st.tuples(st.just("list"), st.lists(st.text(max_size=10), max_size=5)),
    st.tuples(st.sampled_from(sorted(ATTRIBUTE_TAGS)), st.none()),
)


@given(typed_values, st.integers(0, 10**15), st.sampled_from(["tier", "_x", "A9"]))
def test_values_round_trip(typed: tuple[str, object], event_ms: int, name: str) -> None:
    type_name, value = typed
    raw = attribute_value(type_name, value, event_ms).encode()
    expected = tuple(value) if isinstance(value, list) else value
    if isinstance(value, float) and type_name == "number":
        expected = float(value)
    assert decode_attribute(raw) == (event_ms, expected)
    field = attribute_field(name).encode()
    seen = profile_attributes({field: raw, b"3:1": b""}, set())
    assert seen == ({} if value is None else {name: expected})


def test_membership_and_attribute_fields_never_collide() -> None:
    assert attribute_field("tier") == "@tier"
    assert attribute_field("tier", (3, 7)) == "@tier/3:7"
    assert all(not attribute_field(n)[0].isdigit() for n in ("a", "_1"))


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_any_stored_bytes_decode_or_are_left_out(field: bytes, value: bytes) -> None:
    seen = profile_attributes({b"@" + field: value}, {b"1:1"})
    for decoded in seen.values():
        assert not (isinstance(decoded, float) and not math.isfinite(decoded))
