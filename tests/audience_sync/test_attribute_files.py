"""``audience-sync attributes``: profile attributes from CSV, NDJSON and Parquet files, all or nothing per run."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from audience_sync.cli.main import main
from audience_sync.store import SyncStore
from inbound_common.cli import Exit
from inbound_common.codecs import AudienceDirectory, profile_attributes


def attributes_of(store: SyncStore, profile_id: str) -> dict[str, object]:
    return profile_attributes(store.client.hgetall(store.keys.membership(profile_id)), set())


def test_csv_and_ndjson_files(store: SyncStore, redis_url: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "crm.csv"
    csv_file.write_text("profile_id,tier,ltv,updated\np1,gold,120.5,2026-01-01T00:00:00Z\np2,silver,,\n")
    ndjson = tmp_path / "profiles.ndjson"
    ndjson.write_text('{"id": "p1", "person": {"name": {"firstName": "Ana"}}, "stores": ["lyon"]}\n')
    url = ["--redis-url", redis_url]
    argv = ["attributes", str(csv_file), "--attribute", "tier", "--attribute", "ltv:number",
            "--attribute-time-field", "updated"]  # fmt: skip
    assert main([*argv, *url]) == Exit.OK
    spec = ["--attribute", "person.name.firstName=first_name", "--attribute", "stores:list", "--id-column", "id"]
    assert main(["attributes", str(ndjson), *spec, *url]) == Exit.OK
    assert attributes_of(store, "p1") == {"tier": "gold", "ltv": 120.5, "first_name": "Ana", "stores": ("lyon",)}
    assert attributes_of(store, "p2") == {"tier": "silver"}  # empty cells write nothing

    # An older export (by its file time) does not overwrite a newer one's values.
    csv_file.write_text("profile_id,tier\np2,bronze\n")
    os.utime(csv_file, (1_000_000_000, 1_000_000_000))
    assert main(["attributes", str(csv_file), "--attribute", "tier", *url]) == Exit.OK
    assert attributes_of(store, "p2") == {"tier": "silver"}


def test_a_tie_goes_to_the_later_line_and_a_rerun_is_unchanged(
    store: SyncStore, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lines of one file share its time: the later line wins, then the later file of a run, then the later run —
    never the values' order. The same file again changes nothing (unchanged, not stale)."""
    url = ["--redis-url", redis_url]
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("profile_id,tier\np1,gold\np1,bronze\np2,gold\n")
    second.write_text("profile_id,tier\np2,bronze\n")
    for path in (first, second):
        os.utime(path, (1_780_000_000, 1_780_000_000))
    assert main(["attributes", str(first), str(second), "--attribute", "tier", *url]) == Exit.OK
    assert (attributes_of(store, "p1"), attributes_of(store, "p2")) == ({"tier": "bronze"}, {"tier": "bronze"})
    capsys.readouterr()
    assert main(["attributes", str(second), "--attribute", "tier", *url]) == Exit.OK
    assert capsys.readouterr().out == "0 attribute values written, 1 unchanged, 0 older than the stored ones skipped\n"
    second.write_text("profile_id,tier\np2,gold\n")  # another export with the same time: the later run wins
    os.utime(second, (1_780_000_000, 1_780_000_000))
    assert main(["attributes", str(second), "--attribute", "tier", *url]) == Exit.OK
    assert attributes_of(store, "p2") == {"tier": "gold"}
    # A membership's lastQualificationTime is not the attributes' time unless named.
    xdm = tmp_path / "export.json"
    xdm.write_text(xdm_line("e1", None, "Ana"))
    os.utime(xdm, (1_800_000_000, 1_800_000_000))
    spec = ["--attribute", "person.name.firstName=first_name", *url]
    assert main(["attributes", str(xdm), *spec]) == Exit.OK
    assert store.client.hget(store.keys.membership("e1"), "@first_name") == b"s1800000000000|Ana"
    named = "segmentMembership.ups.gold.lastQualificationTime"
    assert main(["attributes", str(xdm), *spec, "--attribute-time-field", named, "--json"]) == Exit.OK
    assert orjson.loads(capsys.readouterr().out.splitlines()[-1])["stale"] == 1  # 2026-11-01: older


def test_bad_lines_write_nothing(
    store: SyncStore, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.ndjson"
    path.write_text('{"profile_id": "p1", "ltv": 3}\n{"profile_id": "p2", "ltv": "lots"}\nnot json\n{"ltv": 1}\n')
    assert main(["attributes", str(path), "--attribute", "ltv:number", "--redis-url", redis_url]) == Exit.INVALID
    err = capsys.readouterr().err
    assert f"{path}:2: ltv: expected a number, got str" in err
    assert f"{path}:3: invalid JSON" in err
    assert f"{path}:4: profile_id: missing" in err
    assert "3 line(s) with bad attributes: nothing written" in err
    assert store.client.exists(store.keys.membership("p1")) == 0
    assert main(["attributes", str(path), "--attribute", "ltv:money", "--redis-url", redis_url]) == Exit.USAGE


def seen_by_readers(store: SyncStore, profile_id: str) -> dict[str, object]:
    state = store.registry_state()
    directory = AudienceDirectory.build(state.version, state.entries)
    return directory.attributes(store.client.hgetall(store.keys.membership(profile_id)))


def test_load_switches_the_attributes_with_the_snapshot(store: SyncStore, redis_url: str, tmp_path: Path) -> None:
    url = ["--redis-url", redis_url]
    path = tmp_path / "gold.csv"
    path.write_text("profile_id,tier\np1,gold\np2,gold\n")
    load = ["load", str(path), "--audience", "gold", "--attribute", "tier", *url]
    assert main(load) == Exit.OK
    assert seen_by_readers(store, "p1") == seen_by_readers(store, "p2") == {"tier": "gold"}
    path.write_text("profile_id,tier\np2,platinum\n")  # the next snapshot: p1 is no longer in it
    os.utime(path, (1_000_000_000, 1_000_000_000))  # even an older file: a snapshot replaces its predecessor's
    assert main(load) == Exit.OK
    assert seen_by_readers(store, "p1") == {}
    assert seen_by_readers(store, "p2") == {"tier": "platinum"}

    both = tmp_path / "both.csv"
    both.write_text("profile_id,audience_id,tier\np3,a,x\np3,b,y\n")
    assert main(["load", str(both), "--attribute", "tier", *url]) == Exit.INVALID  # one audience per snapshot
    assert seen_by_readers(store, "p3") == {}


def test_apply_writes_attributes_as_changes(store: SyncStore, redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "delta.ndjson"
    path.write_text('{"profile_id": "p1", "audience_id": "vip", "status": "realized", "ltv": 40}\n')
    argv = ["apply", str(path), "--attribute", "ltv:number", "--time-column", "t", "--redis-url", redis_url]
    assert main(argv) == Exit.OK
    assert seen_by_readers(store, "p1") == {"ltv": 40.0}
    assert set(store.client.hkeys(store.keys.membership("p1"))) == {b"1:1", b"@ltv"}


def xdm_line(ecid: str, crmid: str | None, name: str) -> str:
    identity_map: dict[str, object] = {"ECID": [{"id": ecid, "primary": True}]}
    if crmid is not None:
        identity_map["CRMID"] = [{"id": crmid}]
    membership = {"ups": {"gold": {"status": "realized", "lastQualificationTime": "2026-11-01T00:00:00Z"}}}
    body = {"identityMap": identity_map, "segmentMembership": membership, "person": {"name": {"firstName": name}}}
    return orjson.dumps(body).decode() + "\n"


def test_xdm_attributes_go_under_the_identities_of_the_memberships(
    store: SyncStore, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "export.json"
    path.write_text(xdm_line("e1", "c1", "Ana") + xdm_line("e2", None, "Bo"))
    spec = ["--attribute", "person.name.firstName=first_name", "--redis-url", redis_url]
    namespaces = ["--identity-namespace", "ECID", "--identity-namespace", "CRMID"]
    assert main(["load", str(path), *namespaces, *spec]) == Exit.OK
    for profile_id, name in [("e1", "Ana"), ("c1", "Ana"), ("e2", "Bo")]:
        assert seen_by_readers(store, profile_id) == {"first_name": name}
        assert store.client.hexists(store.keys.membership(profile_id), "1:1")

    # Without a namespace: the primary identity, as for memberships.
    path.write_text(xdm_line("e3", "c3", "Cy"))
    assert main(["attributes", str(path), *spec]) == Exit.OK
    assert attributes_of(store, "e3") == {"first_name": "Cy"}
    assert store.client.exists(store.keys.membership("c3")) == 0

    # Every id listed under a namespace (two devices: two ECIDs), and the counts say so.
    body = orjson.loads(xdm_line("e4", "c4", "Di"))
    body["identityMap"]["ECID"].append({"id": "e5"})
    path.write_text(orjson.dumps(body).decode() + "\n")
    assert main(["attributes", str(path), *namespaces, *spec]) == Exit.OK
    assert (
        "3 attribute values written, 0 unchanged, 0 older than the stored ones skipped; 1 profile under 3 identities"
        in (capsys.readouterr().out)
    )
    for profile_id in ("e4", "e5", "c4"):
        assert attributes_of(store, profile_id) == {"first_name": "Di"}


def test_json_summaries(store: SyncStore, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = ["--redis-url", redis_url]
    path = tmp_path / "delta.ndjson"
    path.write_text('{"profile_id": "p1", "audience_id": "vip", "status": "realized", "ltv": 40}\n')
    assert main(["attributes", str(path), "--attribute", "ltv:number", "--json", *url]) == Exit.OK
    summary = orjson.loads(capsys.readouterr().out)
    assert (summary["command"], summary["ok"], summary["values"], summary["written"]) == ("attributes", True, 1, 1)

    # apply: one JSON object on stdout, the attributes in it (the same value of the same file again: unchanged)
    assert main(["apply", str(path), "--attribute", "ltv:number", "--json", *url]) == Exit.OK
    (line,) = capsys.readouterr().out.splitlines()
    assert orjson.loads(line)["attributes"] == {"values": 1, "written": 0, "unchanged": 1, "stale": 0}

    snapshot = tmp_path / "gold.csv"
    snapshot.write_text("profile_id,tier\np2,gold\n")
    assert main(["load", str(snapshot), "--audience", "gold", "--attribute", "tier", "--json", *url]) == Exit.OK
    summary = orjson.loads(capsys.readouterr().out)
    assert (summary["applied"], summary["attributes"]) == (
        True,
        {"values": 1, "written": 1, "unchanged": 0, "stale": 0},
    )

    path.write_text('{"profile_id": "p1", "ltv": "lots"}\n')
    assert main(["attributes", str(path), "--attribute", "ltv:number", "--json", *url]) == Exit.INVALID
    summary = orjson.loads(capsys.readouterr().out)
    assert (summary["ok"], summary["refused"]) == (False, "1 line(s) with bad attributes: nothing written")


def test_stdin_and_unreadable_parquet_are_refused_for_attributes(
    store: SyncStore, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "export.parquet"
    path.write_bytes(b"PAR1")  # Parquet is read (tests/audience_sync/test_parquet.py), but this is not Parquet
    argv = ["--attribute", "tier", "--audience", "gold", "--redis-url", redis_url]
    assert main(["load", str(path), *argv]) == Exit.INVALID  # input that cannot be read
    assert f"{path}: not a readable Parquet file" in capsys.readouterr().err
    assert main(["load", "-", *argv]) == Exit.USAGE  # --attribute with stdin: the command line
    assert store.client.dbsize() == 0
