"""Partitions of one export written by a Dask cluster of worker processes, one cutover by the driver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client, LocalCluster

from audience_sync.formats import InputOptions
from audience_sync.partitions import Partition, PartitionedLoad, partitions_of, write_batches
from audience_sync.report import ErrorReport
from audience_sync.snapshot import LoadOptions, SnapshotLoad, SnapshotRefused
from tests.audience_sync.helpers import dumped, seen_by_readers, write_lines


@pytest.fixture(scope="module")
def dask() -> Iterator[Client]:
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield client


def part(path: Path, first: int, count: int, bad: bool = False) -> Path:
    realized = {"status": "realized"}
    lines = [
        orjson.dumps({"identityMap": {"CRMID": [{"id": f"c{i}"}]},
                      "segmentMembership": {"ups": {f"aud-{i % 3}": realized, "all": realized}}})
        for i in range(first, first + count)
    ]  # fmt: skip
    if bad:
        lines.insert(5, b'{"identityMap": {"CRMID": [{"id": "}x"}]}}')
    return write_lines(path, lines)


def state(store: Any) -> tuple[Any, Any]:
    registry = store.registry_state()
    return seen_by_readers(store), sorted((a, e.generation, e.members) for a, e in registry.entries.items())


def test_a_dask_cluster_writes_the_partitions_of_one_snapshot(store: Any, tmp_path: Path, redis_url: str,
                                                              dask: Client) -> None:  # fmt: skip
    paths = [str(part(tmp_path / f"part-{k}.json", k * 100, 100)) for k in range(3)]
    table = pa.table({"profile_id": [f"c{i}" for i in range(300, 340)], "audience_id": ["all"] * 40})
    pq.write_table(table, tmp_path / "part-3.parquet", row_group_size=10)
    paths.append(str(tmp_path / "part-3.parquet"))
    options = LoadOptions(input=InputOptions(identity_namespaces=("CRMID",)), batch_size=30)
    SnapshotLoad(store, options, ErrorReport(show=0)).run(paths)
    expected = state(store)
    store.client.flushall()
    partitions = partitions_of(paths)
    assert len(partitions) == 3 + 4  # a Parquet file: one partition per row group
    load = PartitionedLoad(store, options, ErrorReport(show=0), url=redis_url, submit=dask.submit)
    outcome = load.run_partitions(partitions)
    assert state(store) == expected
    assert outcome.audiences["all"].members == 340 and outcome.version == 1


def test_a_refused_partition_aborts_the_snapshot_cleanly(store: Any, tmp_path: Path, redis_url: str,
                                                         dask: Client) -> None:  # fmt: skip
    options = LoadOptions(input=InputOptions(identity_namespaces=("CRMID",)), batch_size=30, max_bad_ratio=0)
    SnapshotLoad(store, options, ErrorReport(show=0)).run([str(part(tmp_path / "old.json", 0, 20))])
    before = dumped(store)
    paths = [str(part(tmp_path / "a.json", 0, 100)), str(part(tmp_path / "b.json", 100, 100, bad=True))]
    report = ErrorReport(show=0)
    load = PartitionedLoad(store, options, report, url=redis_url, submit=dask.submit)
    with pytest.raises(SnapshotRefused, match="exceed the threshold"):
        load.run_partitions(partitions_of(paths))
    assert report.shown == [] and report.count == 1
    assert dumped(store) == before


def test_a_failed_partition_aborts_the_snapshot_cleanly(store: Any, tmp_path: Path, redis_url: str,
                                                        dask: Client) -> None:  # fmt: skip
    before = dumped(store)
    partitions = [Partition(str(part(tmp_path / "a.json", 0, 100))), Partition(str(tmp_path / "gone.json"))]
    load = PartitionedLoad(store, LoadOptions(input=InputOptions(identity_namespaces=("CRMID",))), ErrorReport(),
                           url=redis_url, submit=dask.submit)  # fmt: skip
    with pytest.raises(OSError, match=r"gone\.json"):
        load.run_partitions(partitions)
    assert load.cleanup is not None and load.cleanup.fields_removed == 200
    assert dumped(store) == before


def test_arrow_batches_of_a_spark_partition_are_written_as_mapinarrow_would(
    store: Any, tmp_path: Path, redis_url: str
) -> None:
    """What the Spark sample of docs/scale.md does, without Spark: the driver begins the named audiences, each
    partition's batches are written by ``write_batches``, the answers merged in order, one cutover."""
    table = pa.table({"profile_id": [f"p{i}" for i in range(50)], "audience_id": ["a", "b"] * 25})
    pq.write_table(table, tmp_path / "export.parquet")
    options = LoadOptions(audiences=frozenset(["a", "b"]), batch_size=7)
    SnapshotLoad(store, options, ErrorReport(show=0)).run([str(tmp_path / "export.parquet")])
    expected = state(store)
    store.client.flushall()
    load = PartitionedLoad(store, options, ErrorReport(show=0), url=redis_url)
    plan, fields = load.start()
    try:
        for first, batch in ((1, table.slice(0, 20)), (21, table.slice(20))):  # two Spark partitions
            answer = write_batches(plan, fields, batch.to_batches(max_chunksize=8), "export", first_row=first)
            load.merge(answer.result)
        outcome = load.finish()
    finally:
        load.clean_up()
    assert state(store) == expected and outcome.audiences["a"].members == 25
