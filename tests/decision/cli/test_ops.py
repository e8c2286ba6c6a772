"""``decision rules`` and a server without --rules, as an operator runs them: real processes, workers, /metrics."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import orjson
import pytest
import redis as sync_redis
from prometheus_client.parser import text_string_to_metric_families

from decision.store.embedded import free_port
from decision.v1 import decision_pb2_grpc
from tests.decision.cli.test_main import decision_command, wait_serving
from tests.decision.helpers import decide_request
from tests.waiting import eventually_sync

RULES = """
version: {version}
placements: [{{id: banner, channels: [web], fallback: fb}}]
offers:
  - {{id: fb, placements: [banner]}}
  - {{id: offer_{version}, placements: [banner], priority: 5}}
"""


@pytest.fixture
def clean_redis(redis_url: str) -> Iterator[str]:
    if redis_url.startswith("redis+cluster://"):
        cluster = sync_redis.RedisCluster.from_url(redis_url.replace("redis+cluster://", "redis://", 1))
        cluster.flushall(target_nodes=sync_redis.RedisCluster.PRIMARIES)
        cluster.close()
    else:
        client = sync_redis.Redis.from_url(redis_url)
        client.flushall()
        client.close()
    yield redis_url


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DECISION_")}
    return subprocess.run(decision_command(*args), capture_output=True, text=True, check=False, env=env, timeout=60)


def rules_file(tmp_path: Path, version: str) -> str:
    path = tmp_path / f"{version}.yaml"
    path.write_text(RULES.format(version=version))
    return str(path)


def served_version(target: str) -> str:
    with grpc.insecure_channel(target) as channel:  # a new connection: any of the workers
        return str(decision_pb2_grpc.DecisionServiceStub(channel).Decide(decide_request(), timeout=5).ruleset_version)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def workers_serving(metrics_port: int, version: str) -> set[str]:
    """Pids of the workers whose active-ruleset gauge names ``version``."""
    return {
        dict(labels)["pid"]
        for (name, labels), value in scrape(metrics_port).items()
        if name == "decision_ruleset_active" and dict(labels).get("version") == version and value == 1
    }


def test_publish_serve_from_redis_with_workers_metrics_and_json_logs(clean_redis: str, tmp_path: Path) -> None:
    redis_url = clean_redis
    refused = run("serve", "--redis-url", redis_url, "--port", "0")
    assert refused.returncode == 1 and "no ruleset has been published" in refused.stderr
    published = run("rules", "publish", rules_file(tmp_path, "v1"), "--redis-url", redis_url)
    assert published.returncode == 0, published.stderr
    assert "published v1 (#1" in published.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("placements: []\noffers: [{id: x}]\n")
    invalid = run("rules", "publish", str(bad), "--redis-url", redis_url)
    assert invalid.returncode == 1 and f"{bad}:2" in invalid.stderr and "nothing was published" in invalid.stderr

    port, metrics_port = free_port(), free_port()
    args = ["serve", "--redis-url", redis_url, "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    args += ["--metrics-port", str(metrics_port), "--log-format", "json", "--drain", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DECISION_")}
    process = subprocess.Popen(
        decision_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        target = f"127.0.0.1:{port}"
        wait_serving(target)
        assert served_version(target) == "v1"
        eventually_sync(lambda: len(workers_serving(metrics_port, "v1")) == 2, "both workers on v1", interval=0.05)

        v2 = run("rules", "publish", rules_file(tmp_path, "v2"), "--redis-url", redis_url)
        assert v2.returncode == 0, v2.stderr
        notified = re.search(r"(\d+) server process\(es\) notified", v2.stdout)
        assert notified is not None and int(notified.group(1)) == 2  # one subscription per worker
        eventually_sync(lambda: len(workers_serving(metrics_port, "v2")) == 2, "both workers on v2", interval=0.05)
        calls = 0
        for _ in range(10):
            assert served_version(target) == "v2"
            calls += 1

        def ok_calls() -> float:
            return sum(
                value
                for (name, labels), value in scrape(metrics_port).items()
                if name == "decision_rpc_calls_total"
                and dict(labels) == {"method": "/decision.v1.DecisionService/Decide", "code": "OK"}
            )

        # Summed over both workers (the first call was on v1), once each worker's count is exported.
        eventually_sync(lambda: ok_calls() == calls + 1, f"{calls + 1} calls counted", interval=0.05)

        back = run("rules", "rollback", "--redis-url", redis_url)
        assert back.returncode == 0 and "rolled back to v1" in back.stdout
        eventually_sync(lambda: len(workers_serving(metrics_port, "v1")) == 2, "both workers on v1", interval=0.05)
        listed = run("rules", "list", "--redis-url", redis_url)
        assert listed.returncode == 0
        lines = listed.stdout.splitlines()
        assert any(line.startswith("*") and " v1 " in line for line in lines)
        assert any(line.startswith(" ") and " v2 " in line for line in lines)
        assert "active: v1 (by rollback" in listed.stdout
        as_json = orjson.loads(run("rules", "list", "--redis-url", redis_url, "--json").stdout)
        assert [v["version"] for v in as_json["versions"]] == ["v1", "v2"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    logged = [orjson.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert logged, stderr
    swaps = [entry for entry in logged if entry.get("event") == "ruleset_swap"]
    assert {entry["ruleset_version"] for entry in swaps} == {"v1", "v2"}
    assert len({entry["pid"] for entry in swaps}) == 2  # each worker logs its own swaps
    assert all({"ts", "level", "logger", "msg"} <= entry.keys() for entry in logged)
