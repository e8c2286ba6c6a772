"""Random and malformed payloads, with mapped attributes: the receiver answers 200 or 400 — never 500 — and a
400 writes nothing."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from audience_sync.attribute_mapping import AttributeSource
from audience_sync.formats.xdm import XdmOptions
from audience_sync.receive.app import AppOptions
from audience_sync.receive.payloads import PayloadOptions
from audience_sync.receive.server import RunningReceiver
from audience_sync.store import SyncStore
from tests.audience_sync.helpers import dump
from tests.audience_sync.receive.conftest import AUTH, StartReceiver

MAPPING = ("person.name.firstName=first_name", "loyalty.tier=tier", "loyalty.points:number=points",
           "loyalty.since:timestamp=since", "loyalty.vip:bool=vip", "stores:list")  # fmt: skip

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)
times = st.sampled_from(["2026-11-01T10:00:00Z", "2026-11-01", "1780000000", "", "soon", 1.78e9, -5, 1e300, None])
statuses = st.sampled_from(["realized", "existing", "exited", "EXITED", "qualified", "", None, 3])
ids = st.text(min_size=0, max_size=6) | st.sampled_from(["c-1", "}x", "a\x00b", "é" * 100]) | json_values
prefix = st.sampled_from(["", "xdm:"])


@st.composite
def profiles(draw: st.DrawFn) -> Any:
    """Profiles shaped like the AEP HTTP API destination's, some fields broken."""
    p = draw(prefix)
    namespace = draw(st.sampled_from(["ECID", "ecid", "CRMID", "Email"]))
    identity = {p + "id": draw(ids), p + "primary": draw(st.booleans() | json_values)}
    segment = {p + "status": draw(statuses), p + "lastQualificationTime": draw(times)}
    if draw(st.booleans()):
        segment[p + "validUntil"] = draw(times)
    body: dict[str, Any] = {
        p + "identityMap": draw(st.just({namespace: [identity]}) | json_values),
        p + "segmentMembership": draw(st.just({"ups": {draw(ids.filter(lambda i: isinstance(i, str))): segment}})),
    }
    if draw(st.booleans()):
        body["person"] = draw(json_values | st.builds(lambda v: {"name": {"firstName": v}}, json_values))
    if draw(st.booleans()):
        body["loyalty"] = draw(
            st.fixed_dictionaries({}, optional=dict.fromkeys(("tier", "points", "since", "vip"), json_values | times))
        )
    if draw(st.booleans()):
        body[draw(st.sampled_from(["stores", "timestamp", "xdm:timestamp"]))] = draw(json_values | times)
    return body


@pytest.fixture
async def receiver(start: StartReceiver, store: object) -> RunningReceiver:
    """A receiver mapping attributes of every type, on an emptied Redis."""
    sources = tuple(AttributeSource.parse(spec) for spec in MAPPING)
    return await start(app=AppOptions(PayloadOptions(XdmOptions(("ECID", "CRMID")), attributes=sources)))


good_ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E).filter(lambda c: c not in "{}"), min_size=1)
good_profiles = st.builds(
    lambda crmid, segments, loyalty: {
        "identityMap": {"ECID": [{"id": "e" + crmid, "primary": True}]},
        "segmentMembership": {"ups": segments},
        "loyalty": loyalty,
    },
    good_ids,
    st.dictionaries(
        good_ids,
        st.fixed_dictionaries(
            {"status": st.sampled_from(["realized", "exited"]), "lastQualificationTime": st.integers(0, 2 * 10**9)}
        ),
        max_size=3,
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "tier": st.text(max_size=5) | st.none(),
            "points": st.integers(-(10**9), 10**9),
            "vip": st.booleans(),
        },
    ),
)
records = st.fixed_dictionaries(
    {"profile_id": ids, "audience_id": ids},
    optional={"status": statuses, "event_time": times, "valid_until": times},
)
items = good_profiles | profiles() | records | json_values


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["array", "object", "ndjson", "bytes"]))
    content_type = draw(st.sampled_from(["application/json", "application/x-ndjson", "text/plain"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200)), content_type
    if kind == "object":
        return orjson.dumps(draw(items)), content_type
    values = draw(st.lists(items, max_size=5))
    if kind == "array":
        return orjson.dumps(values), content_type
    return b"\n".join(orjson.dumps(v) for v in values), "application/x-ndjson"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies())
async def test_no_500_and_a_400_writes_nothing(
    receiver: RunningReceiver, http: aiohttp.ClientSession, store: SyncStore, body: tuple[bytes, str]
) -> None:
    data, content_type = body
    before = dump(store)
    headers = {**AUTH, "Content-Type": content_type}
    async with http.post(receiver.url + "/v1/profiles", data=data, headers=headers) as response:
        answer = await response.json()
        assert response.status in (200, 400), (response.status, answer, data[:300])
    event(f"status {response.status}")  # --hypothesis-show-statistics: both kinds are exercised
    if response.status == 200 and answer.get("attributes", {}).get("written"):
        event("attributes written")
    if response.status == 400:
        assert answer["error"] and answer["errors"][0] == answer["error"]
        assert dump(store) == before, data[:300]
