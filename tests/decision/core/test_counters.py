"""Field names of a profile's counters hash (decision/core/counters.py): one field per thing counted, no clash."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from decision.core.counters import STICKY_PREFIX, offer_counter_field, policy_counter_field, sticky_variant_field

IDS = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,12}", fullmatch=True)  # ID_PATTERN, shorter
COUNTED = st.sampled_from(["decision", "impression", "click", "dismiss", "custom:buy", "custom:a|b"])


def test_the_names_as_docs_redis_keys_md_lists_them() -> None:
    assert offer_counter_field("promo", "impression") == "o|promo|impression"
    assert policy_counter_field("daily") == "p|daily"
    assert sticky_variant_field("hero-copy") == STICKY_PREFIX + "hero-copy" == "x|hero-copy"


@given(st.lists(st.one_of(st.tuples(st.just("offer"), IDS, COUNTED), st.tuples(st.just("policy"), IDS),
                          st.tuples(st.just("sticky"), IDS)), unique=True, max_size=8))  # fmt: skip
def test_different_things_counted_never_share_a_field(things: list[tuple[str, ...]]) -> None:
    def name(thing: tuple[str, ...]) -> str:
        if thing[0] == "offer":
            return offer_counter_field(thing[1], thing[2])
        return policy_counter_field(thing[1]) if thing[0] == "policy" else sticky_variant_field(thing[1])

    assert len({name(t) for t in things}) == len(things)
