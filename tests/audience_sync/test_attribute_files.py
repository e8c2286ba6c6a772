"""``audience-sync attributes``: profile attributes from CSV and NDJSON files, all or nothing per run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from audience_sync.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_USAGE, main
from audience_sync.store import SyncStore
from decision.store.codecs import profile_attributes


def attributes_of(store: SyncStore, profile_id: str) -> dict[str, object]:
    return profile_attributes(store.client.hgetall(store.keys.membership(profile_id)), set())


def test_csv_and_ndjson_files(store: SyncStore, redis_url: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "crm.csv"
    csv_file.write_text("profile_id,tier,ltv,updated\np1,gold,120.5,2026-01-01T00:00:00Z\np2,silver,,\n")
    ndjson = tmp_path / "profiles.ndjson"
    ndjson.write_text('{"id": "p1", "person": {"name": {"firstName": "Ana"}}, "stores": ["lyon"]}\n')
    url = ["--redis-url", redis_url]
    argv = ["attributes", str(csv_file), "--attribute", "tier", "--attribute", "ltv:number", "--time-column", "updated"]
    assert main([*argv, *url]) == EXIT_OK
    spec = ["--attribute", "person.name.firstName=first_name", "--attribute", "stores:list", "--id-column", "id"]
    assert main(["attributes", str(ndjson), *spec, *url]) == EXIT_OK
    assert attributes_of(store, "p1") == {"tier": "gold", "ltv": 120.5, "first_name": "Ana", "stores": ("lyon",)}
    assert attributes_of(store, "p2") == {"tier": "silver"}  # empty cells write nothing

    # An older export (by its file time) does not overwrite a newer one's values.
    csv_file.write_text("profile_id,tier\np2,bronze\n")
    os.utime(csv_file, (1_000_000_000, 1_000_000_000))
    assert main(["attributes", str(csv_file), "--attribute", "tier", *url]) == EXIT_OK
    assert attributes_of(store, "p2") == {"tier": "silver"}


def test_bad_lines_write_nothing(
    store: SyncStore, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.ndjson"
    path.write_text('{"profile_id": "p1", "ltv": 3}\n{"profile_id": "p2", "ltv": "lots"}\nnot json\n{"ltv": 1}\n')
    assert main(["attributes", str(path), "--attribute", "ltv:number", "--redis-url", redis_url]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{path}:2: ltv: expected a number, got str" in err
    assert f"{path}:3: invalid JSON" in err
    assert f"{path}:4: profile_id: missing" in err
    assert "3 bad line(s): nothing written" in err
    assert store.client.exists(store.keys.membership("p1")) == 0
    assert main(["attributes", str(path), "--attribute", "ltv:money", "--redis-url", redis_url]) == EXIT_USAGE
