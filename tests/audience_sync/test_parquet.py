"""Parquet inputs: flat and XDM columns, bad rows located as file:row N, detection by magic or suffix."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audience_sync.formats import Format, InputOptions, parse
from audience_sync.records import Change, LineError, ParseStats
from audience_sync.sources import open_input
from audience_sync.store import SyncStore
from inbound_common.cli import Exit
from inbound_common.codecs import AudienceDirectory
from tests.audience_sync.helpers import cli, seen_by_readers

T1 = datetime(2026, 11, 2, 10, 0)
IDENTITY = pa.struct([("id", pa.string()), ("primary", pa.bool_())])
IDENTITY_MAP = pa.map_(pa.string(), pa.list_(IDENTITY))
SEGMENT = pa.struct([("status", pa.string()), ("lastQualificationTime", pa.timestamp("ms", tz="UTC"))])
MEMBERSHIP = pa.map_(pa.string(), pa.map_(pa.string(), SEGMENT))


def read(path: Path, **options: Any) -> tuple[list[Change], list[str], ParseStats]:
    stats = ParseStats()
    with open_input(str(path)) as opened:
        assert opened.format is Format.PARQUET
        items = list(parse(opened.lines, path.name, opened.format, InputOptions(**options), stats))
    return [i for i in items if isinstance(i, Change)], [str(i) for i in items if isinstance(i, LineError)], stats


def flat(path: Path) -> Path:
    table = pa.table(
        {
            "profile_id": ["p1", "p2", "p3", None],
            "audience_id": ["vip", "vip", "gold", "vip"],
            "status": ["realized", "exited", "qualified", "realized"],
            "valid_until": pa.array([None, None, None, T1], pa.timestamp("s")),
            "event_time": pa.array([T1, T1, None, None], pa.timestamp("us")),
        }
    )
    pq.write_table(table, path)
    return path


def xdm(path: Path) -> Path:
    identities = [
        [
            ("ECID", [{"id": "e-1", "primary": True}, {"id": "e-1b", "primary": None}]),
            ("CRMID", [{"id": "c-1", "primary": False}]),
        ],
        [("ECID", [{"id": "e-2", "primary": True}])],
        None,
    ]
    when = T1.replace(tzinfo=UTC)
    memberships = [
        [("ups", [("vip", {"status": "realized", "lastQualificationTime": when})])],
        [("ups", [("vip", {"status": "exited", "lastQualificationTime": when})])],
        [("ups", [("vip", {"status": "realized", "lastQualificationTime": when})])],
    ]
    table = pa.table(
        {
            "identityMap": pa.array(identities, IDENTITY_MAP),
            "segmentMembership": pa.array(memberships, MEMBERSHIP),
            "person": pa.array([{"age": 30}, {"age": 31}, {"age": 32}]),
        }
    )
    pq.write_table(table, path)
    return path


def test_flat_columns_and_located_bad_rows(tmp_path: Path) -> None:
    changes, errors, stats = read(flat(tmp_path / "memberships.parquet"))
    epoch = T1.replace(tzinfo=UTC).timestamp()
    assert [(c.profile_id, c.audience_id, c.member, c.expires_at, c.event_time, c.line) for c in changes] == [
        ("p1", "vip", True, None, epoch, 1),
        ("p2", "vip", False, None, epoch, 2),
    ]
    assert errors == [
        "memberships.parquet:row 3: status: unknown status 'qualified' "
        "(expected one of realized, existing, exited, add, remove)",
        "memberships.parquet:row 4: profile_id: missing",
    ]
    assert (stats.lines, stats.bad) == (4, 2)


def test_xdm_columns_maps_and_several_identities(tmp_path: Path) -> None:
    path = xdm(tmp_path / "export.bin")  # no suffix: recognised by its magic
    changes, errors, stats = read(path, identity_namespaces=("ECID", "CRMID"))
    assert [(c.profile_id, c.audience_id, c.member) for c in changes] == [
        ("e-1", "vip", True),
        ("e-1b", "vip", True),  # every id of the namespace, not only its primary one
        ("c-1", "vip", True),
        ("e-2", "vip", False),
    ]
    assert errors == ["export.bin:row 3: identityMap: missing"]
    assert (stats.lines, stats.bad, stats.profiles, stats.identities) == (3, 1, 2, 4)


def test_load_and_apply_parquet_with_the_command(store: SyncStore, tmp_path: Path, capsys: Any, redis_url: str) -> None:
    export = xdm(tmp_path / "export.parquet")
    status, _, err = cli(capsys, "load", str(export), "--max-bad-ratio", "50%", "--redis-url", redis_url)
    assert status == 0, err
    assert "export.parquet:row 3: identityMap: missing" in err
    assert seen_by_readers(store) == {"e-1": {"vip"}}
    changes = flat(tmp_path / "changes.parquet")
    status, _, err = cli(capsys, "apply", str(changes), "--max-bad-ratio", "50%", "--redis-url", redis_url)
    assert status == 0, err
    assert seen_by_readers(store) == {"e-1": {"vip"}, "p1": {"vip"}}


@pytest.mark.parametrize("name", ["broken.parquet", "forced.csv"])
def test_a_file_that_is_not_parquet_is_refused(
    store: SyncStore, tmp_path: Path, capsys: Any, redis_url: str, name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"profile_id,audience_id\np1,vip\n")
    fmt = ["--format", "parquet"] if name == "forced.csv" else []
    status, _, err = cli(capsys, "load", str(path), *fmt, "--redis-url", redis_url)
    assert status == Exit.INVALID  # input that cannot be read, as an unreadable file (decision validate too)
    assert f"{path}: not a readable Parquet file" in err
    assert store.registry_state().pending == []


# -- struct columns, as Spark writes JSON-inferred data ---------------------------------------------------
STATE = pa.struct([("lastQualificationTime", pa.string()), ("status", pa.string()), ("validUntil", pa.string())])
LISTED = pa.list_(pa.struct([("id", pa.string()), ("primary", pa.bool_())]))
SPARK_SCHEMA = pa.schema(
    [
        ("identityMap", pa.struct([("ECID", LISTED), ("Email", LISTED)])),
        ("segmentMembership", pa.struct([("ups", pa.struct([("seg-1", STATE), ("seg-2", STATE)]))])),
        ("person", pa.struct([("name", pa.struct([("firstName", pa.string()), ("lastName", pa.string())]))])),
    ]
)


def spark_structs(path: Path) -> Path:
    """An export written the way Spark writes JSON it inferred a schema for: one struct field per audience and
    namespace seen anywhere in the file, null in every row that lacks it (no maps)."""
    rows = [
        {
            "identityMap": {"ECID": [{"id": "e-1", "primary": True}, {"id": "e-2"}], "Email": [{"id": "ada@x.org"}]},
            "segmentMembership": {
                "ups": {"seg-1": {"status": "realized", "lastQualificationTime": "2026-11-02T10:00:00Z"}}
            },
            "person": {"name": {"firstName": "Ada"}},
        },
        {
            "identityMap": {"ECID": [{"id": "e-3", "primary": True}]},
            "segmentMembership": {
                "ups": {"seg-2": {"status": "exited", "lastQualificationTime": "2026-11-02T10:00:00Z"}}
            },
        },
    ]
    table = pa.Table.from_pylist(rows, schema=SPARK_SCHEMA)
    assert table.column("segmentMembership").to_pylist()[0]["ups"]["seg-2"] is None  # as Spark leaves it
    pq.write_table(table, path)
    return path


def test_struct_columns_null_means_absent(tmp_path: Path) -> None:
    changes, errors, stats = read(spark_structs(tmp_path / "part-00000.parquet"), identity_namespaces=("ECID", "Email"))
    assert errors == []
    assert [(c.profile_id, c.audience_id, c.member) for c in changes] == [
        ("e-1", "seg-1", True),
        ("e-2", "seg-1", True),
        ("ada@x.org", "seg-1", True),
        ("e-3", "seg-2", False),
    ]
    assert (stats.profiles, stats.identities) == (2, 4)


def test_load_struct_columns_with_attributes_under_every_identity(
    store: SyncStore, tmp_path: Path, capsys: Any, redis_url: str
) -> None:
    export = spark_structs(tmp_path / "part-00000.parquet")
    url = ["--redis-url", redis_url]
    old = tmp_path / "old.ndjson"
    old.write_text('{"profile_id": "e-2", "person": {"name": {"lastName": "Lovelace"}}}\n')
    os.utime(old, (1_000_000_000, 1_000_000_000))
    names = ["--attribute", "person.name.firstName=first_name", "--attribute", "person.name.lastName=last_name"]
    assert cli(capsys, "attributes", str(old), *names, *url)[0] == 0
    namespaces = ["--identity-namespace", "ECID", "--identity-namespace", "Email"]
    status, out, err = cli(capsys, "load", str(export), "--audience", "seg-1", *namespaces, *names, *url)
    assert status == 0, err
    assert "2 profiles under 4 identities" in out
    assert seen_by_readers(store) == {"e-1": {"seg-1"}, "e-2": {"seg-1"}, "ada@x.org": {"seg-1"}}
    state = store.registry_state()
    directory = AudienceDirectory.build(state.version, state.entries)
    for profile_id in ("e-1", "e-2", "ada@x.org"):
        attributes = directory.attributes(store.client.hgetall(store.keys.membership(profile_id)))
        # lastName is null in the struct column: absent, so e-2's older value stays
        assert attributes == (
            {"first_name": "Ada", "last_name": "Lovelace"} if profile_id == "e-2" else {"first_name": "Ada"}
        )
    status, out, _ = cli(capsys, "attributes", str(export), *names, *namespaces, "--json", *url)
    summary = orjson.loads(out)
    assert (status, summary["profiles"], summary["identities"], summary["values"]) == (0, 2, 4, 3)
