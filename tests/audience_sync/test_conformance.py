"""Conformance: the orchestrator's documented payload shapes, through ``load``, ``apply`` and ``receive``, each
checked by real Decides of a real decision server (gRPC on loopback, the session's real Redis).

Every payload below is one of Adobe's published examples, copied as published (ids, statuses, timestamps,
extra members), and each is cited where it is defined. Where a page shows a fragment (a ``segmentMembership``
without an ``identityMap``), the fragment is completed with the documented shape of the missing part, from
the page cited beside it. Dates in the past are kept: a ``validUntil`` of 2019 is an expired membership, and
the Decides say so; a copy with its dates moved into the future shows the same shape as a membership.

The shapes covered: ``identityMap`` lists with several namespaces and several ids each (two ECIDs and two
hashed emails for one person), ids flagged ``primary`` or not; ``ups`` and other segment namespaces
(``AAM``, ``Email``); ``xdm:``-prefixed keys; ``realized``, ``existing`` and ``exited``; ``validUntil``;
timestamps with ``Z``, ``+00:00``, ``+0000`` and milliseconds; extra members (``name``, ``createdAt``,
``xdm:version``, ``xdm:payload``...); and the same profiles as Parquet, with map-typed columns and with
struct-typed columns as Spark writes JSON-inferred data (a null for every absent audience and namespace).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audience_sync.attribute_mapping import AttributeSource
from audience_sync.cli.main import main
from audience_sync.formats.xdm import XdmOptions
from audience_sync.receive.app import AppOptions
from audience_sync.receive.auth import ENV_TOKENS, Access
from audience_sync.receive.payloads import PayloadOptions
from audience_sync.receive.server import ReceiverConfig, start_receiver
from audience_sync.store import SyncStore
from decision.api.server import RunningServer
from inbound_common.secret_files import load_tokens
from tests.conftest import StartServer, decision_stub
from tests.decision.helpers import decide_request, registry_heard

# -- the documented payloads ---------------------------------------------------------------------------------

# Adobe Experience League, "HTTP API connection", section "Exported data" (the JSON the HTTP API destination
# POSTs): https://experienceleague.adobe.com/docs/experience-platform/destinations/catalog/streaming/http-destination.html#exported-data
# One person with two ECIDs and two hashed emails (no id flagged primary), one audience exited, three realized.
HTTP_API_EXPORTED: Final[dict[str, Any]] = {
    "person": {"birthDate": "YYYY-MM-DD", "name": {"firstName": "John", "lastName": "Doe"}},
    "personalEmail": {"address": "john.doe@acme.com"},
    "segmentMembership": {
        "ups": {
            "7841ba61-23c1-4bb3-a495-00d3g5fe1e93": {
                "lastQualificationTime": "2022-01-11T21:24:39Z",
                "status": "exited",
            },
            "59bd2fkd-3c48-4b18-bf56-4f5c5e6967ae": {
                "lastQualificationTime": "2022-01-02T23:37:33Z",
                "status": "realized",
            },
            "947c1c46-008d-40b0-92ec-3af86eaf41c1": {
                "lastQualificationTime": "2021-08-25T23:37:33Z",
                "status": "realized",
            },
            "5114d758-ce71-43ba-b53e-e2a91d67b67f": {
                "lastQualificationTime": "2022-01-11T23:37:33Z",
                "status": "realized",
            },
        }
    },
    "identityMap": {
        "ecid": [{"id": "14575006536349286404619648085736425115"}, {"id": "66478888669296734530114754794777368480"}],
        "email_lc_sha256": [{"id": "655332b5fa2aea4498bf7a290cff017cb4"}, {"id": "66baf76ef9de8b42df8903f00e0e3dc0b7"}],
    },
}

# The same page, the export "with Include Segment Names and Include Segment Timestamps" (a segmentMembership
# fragment: ``+0000`` offsets, ``name`` and epoch-ms members; the second audience is not mapped, so unnamed),
# under an identityMap of the first example's shape (the page shows none for this fragment).
HTTP_API_WITH_NAMES: Final[dict[str, Any]] = {
    "segmentMembership": {
        "ups": {
            "5b998cb9-9488-4ec3-8d95-fa8338ced490": {
                "lastQualificationTime": "2019-04-15T02:41:50+0000",
                "status": "realized",
                "createdAt": 1648553325000,
                "updatedAt": 1648553330000,
                "mappingCreatedAt": 1649856570000,
                "mappingUpdatedAt": 1649856570000,
                "name": "First name equals John",
            },
            "354e086f-2e11-49a2-9e39-e5d9a76be683": {
                "lastQualificationTime": "2020-04-15T02:41:50+0000",
                "status": "realized",
            },
        }
    },
    "identityMap": {"ecid": [{"id": "27835617328376493058236498765193572201"}]},
}

# Destination SDK, "Message format", sections "Create a template that sends audiences and identities" (two
# profiles: several emails and an external_id, realized and exited) and "Example 2 with segmentMembership,
# identityMap and attributes" (milliseconds and a ``+0000`` offset, a ``mobileIds`` namespace, attributes):
# https://experienceleague.adobe.com/docs/experience-platform/destinations/destination-sdk/functionality/destination-server/message-format.html#segments-and-identities
SDK_PROFILE_1: Final[dict[str, Any]] = {
    "identityMap": {
        "email": [{"id": "johndoe@example.com"}, {"id": "jd@example.com"}],
        "external_id": [{"id": "123456"}],
    },
    "segmentMembership": {
        "ups": {
            "36a51c13-9dd6-4d2c-8aa3-07d785ea5075": {
                "lastQualificationTime": "2019-11-20T13:15:49Z",
                "status": "realized",
            },
            "788d8874-8007-4253-92b7-ee6b6c20c6f3": {
                "lastQualificationTime": "2019-11-20T13:15:49Z",
                "status": "realized",
            },
            "8f812592-3f06-416b-bd50-e7831848a31a": {
                "lastQualificationTime": "2019-11-20T13:15:49Z",
                "status": "exited",
            },
        }
    },
}
SDK_PROFILE_2: Final[dict[str, Any]] = {
    "identityMap": {"email": [{"id": "jane.doe@example.com"}]},
    "segmentMembership": {
        "ups": {
            "36a51c13-9dd6-4d2c-8aa3-07d785ea5075": {
                "lastQualificationTime": "2021-08-31T10:01:42Z",
                "status": "realized",
            }
        }
    },
}
SDK_EXAMPLE_2: Final[dict[str, Any]] = {
    "segmentMembership": {
        "ups": {
            "11111111-1111-1111-1111-111111111111": {
                "lastQualificationTime": "2019-04-15T02:41:50.000+0000",
                "status": "realized",
            }
        }
    },
    "identityMap": {"mobileIds": [{"id": "e86fb215-0921-4537-bc77-969ff775752c"}]},
    "attributes": {"lastName": "lastName"},
}

# XDM, "Segment Membership Details schema field group": a segmentMembership populated by the system, every key
# ``xdm:``-prefixed, segment namespaces ``AAM`` and ``Email`` (not ``ups``), ``validUntil``, ``version`` and
# ``payload``: https://experienceleague.adobe.com/docs/experience-platform/xdm/field-groups/profile/segmentation.html
XDM_SEGMENT_MEMBERSHIP: Final[dict[str, Any]] = {
    "xdm:segmentMembership": {
        "AAM": {
            "04a81716-43d6-4e7a-a49c-f1d8b3129ba9": {
                "xdm:version": "15",
                "xdm:lastQualificationTime": "2018-04-26T15:52:25+00:00",
                "xdm:validUntil": "2019-04-26T15:52:25+00:00",
                "xdm:status": "realized",
                "xdm:payload": {"xdm:payloadBooleanValue": True, "xdm:payloadType": "boolean"},
            },
            "53cba6b2-a23b-454a-8069-fc41308f1c0f": {
                "xdm:version": "3",
                "xdm:lastQualificationTime": "2018-04-26T15:52:25+00:00",
                "xdm:validUntil": "2018-04-27T15:52:25+00:00",
                "xdm:status": "realized",
                "xdm:payload": {"xdm:payloadPropensityValue": 0.5, "xdm:payloadType": "propensity"},
            },
        },
        "Email": {
            "abcd@adobe.com": {
                "xdm:version": "1",
                "xdm:lastQualificationTime": "2017-09-26T15:52:25+00:00",
                "xdm:validUntil": "2017-12-26T15:52:25+00:00",
                "xdm:status": "exited",
            }
        },
    }
}
# Under the identityMap of XDM's "IdentityMap schema field group" example (an ECID flagged primary, with its
# authenticatedState): https://experienceleague.adobe.com/docs/experience-platform/xdm/field-groups/profile/identitymap.html
# ("each top-level key is a namespace and the value is an array of identity descriptors", id / authenticatedState
# / primary: https://experienceleague.adobe.com/en/docs/experience-platform/collection/identity/identity-map).
XDM_PROFILE: Final[dict[str, Any]] = {
    "identityMap": {
        "ECID": [{"id": "83238819066235616291057085344313877718", "authenticatedState": "ambiguous", "primary": True}]
    },
    **XDM_SEGMENT_MEMBERSHIP,
}


def xdm_profile_in_the_future() -> dict[str, Any]:
    """The XDM example with its memberships valid until 2099, another ECID (primary) besides a non-primary
    one, and its second audience ``existing`` ("existing: entity continues to be in the segment", a status
    of a member: https://experienceleague.adobe.com/en/docs/journeys/using/building-advanced-conditions-journeys/main-functions-journey/adobe-experience-platform/functioninsegment)."""
    body = copy.deepcopy(XDM_PROFILE)
    body["identityMap"]["ECID"] = [
        {"id": "11111111111111111111111111111111111111", "authenticatedState": "ambiguous", "primary": False},
        {"id": "83238819066235616291057085344313877719", "authenticatedState": "authenticated", "primary": True},
    ]
    aam = body["xdm:segmentMembership"]["AAM"]
    for state in aam.values():
        state["xdm:validUntil"] = "2099-04-26T15:52:25+00:00"
    aam["53cba6b2-a23b-454a-8069-fc41308f1c0f"]["xdm:status"] = "existing"
    return body


# -- what the Decides must answer -------------------------------------------------------------------------------

AEP_PROFILES: Final = [HTTP_API_EXPORTED, HTTP_API_WITH_NAMES, SDK_PROFILE_1, SDK_PROFILE_2, SDK_EXAMPLE_2]
AEP_NAMESPACES: Final = ("ecid", "email_lc_sha256", "email", "external_id", "mobileIds")  # every one listed above
XDM_PROFILES: Final = [XDM_PROFILE, xdm_profile_in_the_future()]
ATTRIBUTES: Final = ("person.name.firstName=first_name", "attributes.lastName=last_name")

JOHN: Final = {
    "59bd2fkd-3c48-4b18-bf56-4f5c5e6967ae",
    "947c1c46-008d-40b0-92ec-3af86eaf41c1",
    "5114d758-ce71-43ba-b53e-e2a91d67b67f",
}
JOHN_DOE: Final = {"36a51c13-9dd6-4d2c-8aa3-07d785ea5075", "788d8874-8007-4253-92b7-ee6b6c20c6f3"}
NAMED: Final = {"5b998cb9-9488-4ec3-8d95-fa8338ced490", "354e086f-2e11-49a2-9e39-e5d9a76be683"}
# identity -> the audiences a Decide for it must find (every id listed under each chosen namespace).
AEP_EXPECTED: Final[dict[str, set[str]]] = {
    "14575006536349286404619648085736425115": JOHN,
    "66478888669296734530114754794777368480": JOHN,  # John's second device
    "655332b5fa2aea4498bf7a290cff017cb4": JOHN,
    "66baf76ef9de8b42df8903f00e0e3dc0b7": JOHN,
    "27835617328376493058236498765193572201": NAMED,
    "johndoe@example.com": JOHN_DOE,
    "jd@example.com": JOHN_DOE,
    "123456": JOHN_DOE,
    "jane.doe@example.com": {"36a51c13-9dd6-4d2c-8aa3-07d785ea5075"},
    "e86fb215-0921-4537-bc77-969ff775752c": {"11111111-1111-1111-1111-111111111111"},
}
XDM_EXPECTED: Final[dict[str, set[str]]] = {
    "83238819066235616291057085344313877718": set(),  # validUntil 2019: expired
    "83238819066235616291057085344313877719": {
        "04a81716-43d6-4e7a-a49c-f1d8b3129ba9",
        "53cba6b2-a23b-454a-8069-fc41308f1c0f",
    },
    "11111111111111111111111111111111111111": set(),  # not primary, and no namespace chosen: not written
    "abcd@adobe.com": set(),  # a segment of the "Email" namespace, not an identity
}
# Content rendered from the mapped attributes, per identity.
GREETINGS: Final[dict[str, str]] = {
    **{i: "Hi John" for i, audiences in AEP_EXPECTED.items() if audiences == JOHN},
    "e86fb215-0921-4537-bc77-969ff775752c": "Bye lastName",
}

EVERY_AUDIENCE: Final = sorted(
    {a for p in AEP_PROFILES for a in p["segmentMembership"]["ups"]}
    | set(XDM_SEGMENT_MEMBERSHIP["xdm:segmentMembership"]["AAM"])
    | {"abcd@adobe.com"}
)


def rules() -> str:
    """An offer per audience (its id, shortened), one greeting by first name, one by last name; a fallback."""
    offers = ["  - {id: fb, placements: [banner], priority: -1, eligibility: {audiences: {all: [nobody]}}}"]
    for audience in EVERY_AUDIENCE:
        content = ""
        if audience == "59bd2fkd-3c48-4b18-bf56-4f5c5e6967ae":
            content = ", content: {title: 'Hi {{profile.first_name | default: \"there\"}}'}"
        if audience == "11111111-1111-1111-1111-111111111111":
            content = ", content: {title: 'Bye {{profile.last_name | default: \"you\"}}'}"
        eligibility = f"eligibility: {{audiences: {{all: ['{audience}']}}}}"
        offers.append(f"  - {{id: {offer(audience)}, placements: [banner], {eligibility}{content}}}")
    return (
        "profile_attributes: {first_name: string, last_name: string}\n"
        "placements: [{id: banner, channels: [web], max_items: 20, fallback: fb}]\n"
        "offers:\n" + "\n".join(offers) + "\n"
    )


def offer(audience: str) -> str:
    return "o-" + audience.split("-")[0].split("@")[0]


async def decides_as_expected(server: RunningServer, expected: dict[str, set[str]], greetings: dict[str, str]) -> None:
    """A Decide for every identity proposes exactly the offers of its audiences (else the fallback), with its
    attributes rendered."""
    await registry_heard(server)
    async with decision_stub(server.port) as stub:
        for identity, audiences in expected.items():
            response = await stub.Decide(decide_request(identity, ["banner"]), timeout=5)
            (proposition,) = response.propositions
            proposed = {item.offer_id: orjson.loads(item.content_json or "{}") for item in proposition.items}
            assert set(proposed) == ({offer(a) for a in audiences} or {"fb"}), identity
            assert not response.degraded
            if identity in greetings:
                titles = {content.get("title") for content in proposed.values()} - {None}
                assert titles == {greetings[identity]}, identity


# -- inputs: NDJSON export lines, Parquet with map or struct columns --------------------------------------------


def ndjson(path: Path, profiles: Iterable[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in profiles))
    return path


def parquet_structs(path: Path, profiles: list[dict[str, Any]]) -> Path:
    """As Spark writes JSON it inferred a schema for: a struct field for every audience, namespace and member seen
    in any profile, null in the profiles that lack it (pyarrow infers the same merged structs)."""
    columns = dict.fromkeys(k for p in profiles for k in p)
    table = pa.table({name: pa.array([p.get(name) for p in profiles]) for name in columns})
    assert pa.types.is_struct(table.schema.field("segmentMembership").type)
    assert table.column("segmentMembership").to_pylist()[0]["ups"]["36a51c13-9dd6-4d2c-8aa3-07d785ea5075"] is None
    pq.write_table(table, path)
    return path


def parquet_maps(path: Path, profiles: list[dict[str, Any]]) -> Path:
    """identityMap and segmentMembership as map columns (as a profile dataset's schema types them); the other
    members as structs."""
    states = [s for p in profiles for ns in p["segmentMembership"].values() for s in ns.values()]
    state = pa.array(states).type
    identity = pa.array([i for p in profiles for ids in p["identityMap"].values() for i in ids]).type
    types = {
        "identityMap": pa.map_(pa.string(), pa.list_(identity)),
        "segmentMembership": pa.map_(pa.string(), pa.map_(pa.string(), state)),
    }

    def as_map(name: str, value: dict[str, Any]) -> list[tuple[str, Any]]:
        if name == "segmentMembership":
            return [(ns, list(audiences.items())) for ns, audiences in value.items()]
        return list(value.items())

    columns = dict.fromkeys(k for p in profiles for k in p)
    table = pa.table(
        {
            name: pa.array([as_map(name, p[name]) for p in profiles], types[name])
            if name in types
            else pa.array([p.get(name) for p in profiles])
            for name in columns
        }
    )
    assert pa.types.is_map(table.schema.field("segmentMembership").type)
    pq.write_table(table, path)
    return path


# -- the paths ------------------------------------------------------------------------------------------------

PUSH_TOKEN: Final = "conformance-push-token-0123456789"


@asynccontextmanager
async def receiver(redis_url: str, tmp_path: Path, xdm: XdmOptions) -> AsyncIterator[str]:
    """A real ``audience-sync receive`` HTTP endpoint on loopback (as ``--token-file``, ``--attribute`` and
    ``--identity-namespace`` configure it); its URL."""
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{PUSH_TOKEN} audiences\n")
    sources = tuple(AttributeSource.parse(spec) for spec in ATTRIBUTES)
    access = Access(load_tokens(str(tokens), {}, ENV_TOKENS))
    running = await start_receiver(
        ReceiverConfig(redis_url=redis_url, access=access, app=AppOptions(PayloadOptions(xdm, attributes=sources)))
    )
    try:
        yield running.url
    finally:
        await running.stop()


async def push(url: str, profiles: list[dict[str, Any]]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {PUSH_TOKEN}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(url + "/v1/profiles", data=orjson.dumps(profiles), headers=headers) as response,
    ):
        answer: dict[str, Any] = await response.json()
        assert response.status == 200, answer
        return answer


def run(*args: str) -> None:
    """The ``audience-sync`` command, in-process (in the main thread: it handles signals)."""
    assert main(list(args)) == 0, args


def namespaces(names: Iterable[str]) -> list[str]:
    return [arg for name in names for arg in ("--identity-namespace", name)]


ATTRIBUTE_ARGS: Final = [arg for spec in ATTRIBUTES for arg in ("--attribute", spec)]


def by_command(
    command: str, redis_url: str, tmp_path: Path, make: Callable[[Path, list[dict[str, Any]]], Path]
) -> None:
    """``load`` (a snapshot: its attributes by ``attributes``, as ``--attribute`` needs a file per audience) or
    ``apply`` (deltas with their attributes), of the AEP profiles and of the XDM field-group profiles."""
    url = ["--redis-url", redis_url]
    aep = make(tmp_path / "aep", AEP_PROFILES)
    if command == "load":
        # An audience of this export has only exits (7841ba61...): an audience without members, on purpose.
        run("load", str(aep), *namespaces(AEP_NAMESPACES), "--allow-empty", *url)
        run("attributes", str(aep), *namespaces(AEP_NAMESPACES), *ATTRIBUTE_ARGS, *url)
    else:
        run("apply", str(aep), *namespaces(AEP_NAMESPACES), *ATTRIBUTE_ARGS, *url)
    if make is ndjson:  # the xdm:-prefixed field-group examples: no namespace chosen (primary), AAM segments
        xdm = make(tmp_path / "xdm", XDM_PROFILES)
        run(command, str(xdm), "--segment-namespace", "AAM", *url)


# -- the tests --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "make"),
    [
        ("load", ndjson),
        ("apply", ndjson),
        ("load", parquet_maps),
        ("load", parquet_structs),
        ("apply", parquet_structs),
    ],
    ids=["load-ndjson", "apply-ndjson", "load-parquet-maps", "load-parquet-structs", "apply-parquet-structs"],
)
async def test_documented_exports_through_the_commands_then_decide(
    start_server: StartServer,
    write_rules: Callable[[str], Path],
    store: SyncStore,
    redis_url: str,
    tmp_path: Path,
    command: str,
    make: Callable[[Path, list[dict[str, Any]]], Path],
) -> None:
    server = await start_server(write_rules(rules()))
    by_command(command, redis_url, tmp_path, make)
    await decides_as_expected(server, AEP_EXPECTED, GREETINGS)
    if make is ndjson:
        await decides_as_expected(server, XDM_EXPECTED, {})


async def test_documented_pushes_through_the_receiver_then_decide(
    start_server: StartServer, write_rules: Callable[[str], Path], store: SyncStore, redis_url: str, tmp_path: Path
) -> None:
    server = await start_server(write_rules(rules()))
    async with receiver(redis_url, tmp_path, XdmOptions(AEP_NAMESPACES)) as url:
        answer = await push(url, AEP_PROFILES)
    # Five people, ten identities: the first has two ECIDs and two hashed emails.
    assert (answer["profiles"], answer["identities"]) == (5, 10)
    assert answer["changes"] == 4 * 4 + 2 * 1 + 3 * 3 + 1 + 1  # one per audience per identity
    async with receiver(redis_url, tmp_path, XdmOptions((), segment_namespace="AAM")) as url:
        answer = await push(url, XDM_PROFILES)
    assert (answer["profiles"], answer["identities"], answer["expired"]) == (2, 2, 2)
    await decides_as_expected(server, AEP_EXPECTED, GREETINGS)
    await decides_as_expected(server, XDM_EXPECTED, {})
