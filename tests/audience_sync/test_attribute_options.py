"""``--attribute-map FILE``: the ``--attribute`` mapping in a YAML or JSON file (load, apply, attributes, receive)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from audience_sync.attribute_mapping import AttributeSource
from audience_sync.attribute_options import read_map, sources_of
from audience_sync.cli.main import main
from audience_sync.store import SyncStore
from inbound_common.cli import Exit
from inbound_common.codecs import AudienceDirectory, profile_attributes
from tests.audience_sync.helpers import spawn

YAML_MAP = "person.name.firstName: first_name\nloyalty.tier: tier\nltv: lifetime_value:number\n"
EXPECTED = [
    AttributeSource("person.name.firstName", "string", "first_name"),
    AttributeSource("loyalty.tier", "string", "tier"),
    AttributeSource("ltv", "number", "lifetime_value"),
]


def attributes_of(store: SyncStore, profile_id: str) -> dict[str, object]:
    return profile_attributes(store.client.hgetall(store.keys.membership(profile_id)), set())


def test_yaml_and_json_maps(tmp_path: Path) -> None:
    yaml_file, json_file = tmp_path / "map.yaml", tmp_path / "map.json"
    yaml_file.write_text(YAML_MAP)
    json_file.write_text(orjson.dumps({s.source: f"{s.name}:{s.type}" for s in EXPECTED}).decode())
    assert read_map(str(yaml_file)) == read_map(str(json_file)) == EXPECTED
    both = argparse.Namespace(attribute=["vip:bool"], attribute_map=str(yaml_file))
    assert sources_of(both) == [AttributeSource("vip", "bool", "vip"), *EXPECTED]  # the options' first


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ltv: value:money\n", "ltv: value:money: unknown type 'money'"),
        ("ltv: bad-name\n", "'bad-name' is not an attribute name"),
        ("- ltv\n", "expected a mapping of source: name[:type]"),
        ("ltv: [a]\n", "'ltv': expected 'source: name[:type]'"),
        ("ltv: {\n", "cannot read the attribute map"),
        ("", "expected a mapping"),
    ],
)
def test_a_bad_map_names_the_file_and_entry(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=str(path)) as error:
        read_map(str(path))
    assert reason in str(error.value)
    with pytest.raises(ValueError, match="cannot read"):
        read_map(str(tmp_path / "missing.yaml"))


def test_one_name_from_two_sources_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text("loyalty.tier: tier\n")
    with pytest.raises(ValueError, match="'tier' is mapped from more than one source"):
        sources_of(argparse.Namespace(attribute=["tier"], attribute_map=str(path)))


def test_attributes_apply_and_load_read_the_map(
    store: SyncStore, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = tmp_path / "map.yaml"
    mapping.write_text(YAML_MAP)
    url = ["--redis-url", redis_url, "--attribute-map", str(mapping)]
    profiles = tmp_path / "profiles.ndjson"
    profiles.write_text('{"profile_id": "p1", "person": {"name": {"firstName": "Ana"}}, "ltv": 12}\n')
    assert main(["attributes", str(profiles), *url]) == Exit.OK
    assert attributes_of(store, "p1") == {"first_name": "Ana", "lifetime_value": 12.0}

    changes = tmp_path / "changes.ndjson"
    changes.write_text('{"profile_id": "p2", "audience_id": "vip", "status": "realized", "loyalty": {"tier": "x"}}\n')
    assert main(["apply", str(changes), *url]) == Exit.OK
    assert attributes_of(store, "p2") == {"tier": "x"}

    snapshot = tmp_path / "gold.csv"
    snapshot.write_text("profile_id,loyalty.tier\np3,gold\n")
    assert main(["load", str(snapshot), "--audience", "gold", *url]) == Exit.OK
    state = store.registry_state()
    directory = AudienceDirectory.build(state.version, state.entries)
    assert directory.attributes(store.client.hgetall(store.keys.membership("p3"))) == {"tier": "gold"}

    capsys.readouterr()
    assert main(["attributes", str(profiles), "--redis-url", redis_url]) == Exit.USAGE
    assert "--attribute-map FILE" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("ltv: x:money\n")
    assert main(["attributes", str(profiles), "--redis-url", redis_url, "--attribute-map", str(bad)]) == Exit.USAGE
    assert f"{bad}: ltv: x:money: unknown type 'money'" in capsys.readouterr().err


async def test_receive_reads_the_map(redis_url: str, store: SyncStore, tmp_path: Path) -> None:
    mapping = tmp_path / "map.json"
    mapping.write_text('{"person.name.firstName": "first_name", "loyalty.tier": "tier"}')
    args = ("--host", "127.0.0.1", "--port", "0", "--no-auth", "--attribute-map", str(mapping),
            "--attribute-time-field", "_acme.profileUpdatedAt")  # fmt: skip
    process = spawn(
        "receive", *args, "--identity-namespace", "ECID", "--identity-namespace", "CRMID", redis_url=redis_url
    )
    try:
        assert process.stdout is not None
        line = await asyncio.to_thread(process.stdout.readline)
        assert b"listening on http://127.0.0.1:" in line, line
        url = line.decode().split("listening on ")[1].strip()
        pushed: dict[str, Any] = {
            "identityMap": {"ECID": [{"id": "e-1"}], "CRMID": [{"id": "c-1"}]},
            "segmentMembership": {
                "ups": {"vip": {"status": "realized", "lastQualificationTime": "2026-11-02T10:00:00Z"}}
            },
            "person": {"name": {"firstName": "Ada"}},
            "loyalty": {"tier": "gold"},
            "_acme": {"profileUpdatedAt": 1_790_000_000.5},
        }
        async with aiohttp.ClientSession() as http, http.post(url + "/v1/profiles", json=[pushed]) as response:
            answer = await response.json()
        assert response.status == 200, answer
        assert answer["attributes"] == {"values": 4, "written": 4, "unchanged": 0, "stale": 0}
        assert attributes_of(store, "e-1") == attributes_of(store, "c-1") == {"first_name": "Ada", "tier": "gold"}
        assert store.client.hget(store.keys.membership("c-1"), "@tier") == b"s1790000000500|gold"  # the named time
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 30)
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()
