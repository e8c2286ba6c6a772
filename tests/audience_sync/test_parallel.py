"""``load --jobs N``: the same snapshot as one process, one cutover; refused or failed, Redis as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from audience_sync import blocks
from audience_sync.formats import InputOptions
from audience_sync.parallel import ParallelLoad
from audience_sync.report import ErrorReport
from audience_sync.snapshot import LoadOptions, SnapshotLoad, SnapshotRefused
from tests.audience_sync.helpers import cli, dumped, write_lines


def export(path: Path, profiles: int, bad_every: int = 0) -> Path:
    lines = []
    for i in range(profiles):
        segments = {f"aud-{j}": {"status": "realized" if (i + j) % 7 else "exited"} for j in range(i % 4 + 1)}
        lines.append(
            orjson.dumps({"identityMap": {"CRMID": [{"id": f"c{i}"}]}, "segmentMembership": {"ups": segments}})
        )
        if bad_every and i % bad_every == bad_every - 1:
            lines.append(b'{"identityMap": {"CRMID": [{"id": ""}]}}')
    return write_lines(path, lines)


def state(store: Any) -> dict[bytes, Any]:
    """Every key but the registry's times."""
    out = {}
    for key, value in dumped(store).items():
        if b"registry" not in key:
            out[key] = value
    registry = store.registry_state()
    out[b"registry"] = sorted((a, e.code, e.generation, e.members) for a, e in registry.entries.items())
    return out


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 4 KiB: a small export spans many, handed to the workers in turn (spawned workers read the
    input in the driver: only the driver's block size matters)."""
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 4096)
    original = blocks.text_blocks
    monkeypatch.setattr(blocks, "text_blocks", lambda *a, **k: original(*a, **{**k, "size": 4096}))


def test_jobs_write_what_one_process_writes(store: Any, tmp_path: Path, redis_url: str, small_blocks: None) -> None:
    path = export(tmp_path / "export.json", 600)
    options = LoadOptions(input=InputOptions(identity_namespaces=("CRMID",)), batch_size=50)
    one = SnapshotLoad(store, options, ErrorReport(show=0)).run([str(path)])
    expected, expected_tallies = state(store), {a: (t.members, t.exited) for a, t in one.audiences.items()}
    store.client.flushall()
    load = ParallelLoad(store, options, ErrorReport(show=0), url=redis_url, jobs=2)
    outcome = load.run([str(path)])
    assert state(store) == expected
    assert {a: (t.members, t.exited) for a, t in outcome.audiences.items()} == expected_tallies
    assert outcome.stats == one.stats and outcome.version == 1
    assert 1 <= len(load.usage.max_rss_kib) <= 2  # the workers that wrote blocks (on a busy box, maybe one)


def test_a_bad_line_in_any_job_refuses_the_whole_snapshot(
    store: Any, tmp_path: Path, redis_url: str, small_blocks: None, capsys: Any
) -> None:
    url = ["--redis-url", redis_url]
    assert cli(capsys, "load", str(export(tmp_path / "old.json", 50)), "--identity-namespace", "CRMID", *url)[0] == 0
    before = dumped(store)
    path = export(tmp_path / "new.json", 600, bad_every=150)  # 4 bad lines of 604, far apart: several blocks
    status, _, err = cli(capsys, "load", str(path), "--identity-namespace", "CRMID", "--jobs", "2",
                         "--max-bad-ratio", "0.5%", "--batch-size", "20", *url)  # fmt: skip
    assert status == 1, err
    assert err.splitlines()[:4] == [f"{path}:{151 * k}: identityMap.CRMID[0].id: empty" for k in (1, 2, 3, 4)]
    assert "exceed the threshold" in err and "the registry is as it was" in err
    assert dumped(store) == before


def test_a_dry_run_with_jobs_writes_nothing(store: Any, tmp_path: Path, redis_url: str, small_blocks: None) -> None:
    path = export(tmp_path / "export.json", 300)
    options = LoadOptions(input=InputOptions(identity_namespaces=("CRMID",)), dry_run=True)
    one = SnapshotLoad(store, options, ErrorReport(show=0)).run([str(path)])
    many = ParallelLoad(store, options, ErrorReport(show=0), url=redis_url, jobs=2).run([str(path)])
    assert dumped(store) == {}
    assert {a: t.members for a, t in many.audiences.items()} == {a: t.members for a, t in one.audiences.items()}


def test_an_empty_audience_with_jobs_is_refused(store: Any, tmp_path: Path, redis_url: str) -> None:
    path = write_lines(tmp_path / "x.csv", ["profile_id,audience_id", "p1,a"])
    load = ParallelLoad(store, LoadOptions(audiences=frozenset(["a", "b"])), ErrorReport(show=0), url=redis_url, jobs=2)
    with pytest.raises(SnapshotRefused, match="leaves b without members"):
        load.run([str(path)])
    assert dumped(store) == {}
