"""Request checks (decision/core/requests.py), pure: placements, channels, context types, the profile's scope."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decision.core.requests import check_request, with_profile
from decision.core.types import DecisionRequest, InvalidRequest, PlacementRequest
from decision.rules.types import Context, ContextValue
from tests.decision.rules.parsed import loaded

RULES = loaded(
    """
attributes: {cart: number, device: string, member: bool, tags: list}
profile_attributes: {tier: string, points: number}
placements:
  - {id: banner, channels: [web, app], fallback: fb}
  - {id: inbox, channels: [app], fallback: fb}
offers:
  - {id: fb, placements: [banner, inbox]}
"""
)
TYPES = {"cart": float, "device": str, "member": bool, "tags": tuple}


def request(
    placements: tuple[str, ...] = ("banner",),
    channel: str = "web",
    context: Context | None = None,
    **named: ContextValue,
) -> DecisionRequest:
    return DecisionRequest("p", channel, tuple(PlacementRequest(p) for p in placements), {**(context or {}), **named})


@pytest.mark.parametrize(
    ("asked", "field", "reason"),
    [
        (request(("baner",)), "placements[0].placement_id", "unknown placement 'baner' (did you mean 'banner'?)"),
        (request(("banner", "banner")), "placements[1].placement_id", "placement 'banner' is requested twice"),
        (request(("inbox",)), "placements[0].placement_id",
         "placement 'inbox' is not served on channel 'web' (only app)"),
        (request(cart="12"), "context.cart", "the ruleset declares a number, the request sent a string"),
        (request(member=1.0), "context.member", "the ruleset declares a bool, the request sent a number"),
        (request(tags="a"), "context.tags", "the ruleset declares a list, the request sent a string"),
        (request(context={"profile.tier": "gold"}), "context.profile.tier",
         "names starting with 'profile.' are reserved"),
    ],
)  # fmt: skip
def test_a_refused_request_names_its_field(asked: DecisionRequest, field: str, reason: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_request(RULES, asked)
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_undeclared_context_and_absent_values_pass() -> None:
    check_request(RULES, request(("banner", "inbox"), "app", page="home", cart=3.0, tags=("a",)))


def test_the_profiles_declared_attributes_join_the_context() -> None:
    asked = request(cart=1.0)
    joined = with_profile(RULES, asked, {"tier": "gold", "points": 3.0, "secret": "x"})
    assert joined.context == {"cart": 1.0, "profile.tier": "gold", "profile.points": 3.0}
    assert with_profile(RULES, asked, {"secret": "x"}) is asked  # nothing declared: the same request


VALUES = st.one_of(
    st.text(max_size=3), st.floats(allow_nan=False), st.booleans(), st.lists(st.text(max_size=2), max_size=2).map(tuple)
)


def _of_declared_type(name: str, value: ContextValue) -> bool:
    declared = TYPES.get(name)
    if declared is None:
        return True  # not declared: any value
    return isinstance(value, declared) and (declared is bool or not isinstance(value, bool))


@settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "300")), deadline=None)
@given(
    placements=st.lists(st.sampled_from(["banner", "inbox", "other"]), min_size=1, max_size=3),
    channel=st.sampled_from(["web", "app", "email"]),
    context=st.dictionaries(st.sampled_from([*TYPES, "page", "profile.tier"]), VALUES, max_size=4),
)
def test_checks_accept_exactly_the_valid_requests(
    placements: list[str], channel: str, context: dict[str, ContextValue]
) -> None:
    served = {"banner": {"web", "app"}, "inbox": {"app"}}
    valid = (
        all(p in served and channel in served[p] for p in placements)
        and len(set(placements)) == len(placements)
        and all(_of_declared_type(name, value) for name, value in context.items())
        and "profile.tier" not in context
    )
    try:
        check_request(RULES, request(tuple(placements), channel, context))
    except InvalidRequest as refused:
        assert not valid, refused
        assert refused.field.startswith(("placements[", "context."))
    else:
        assert valid
