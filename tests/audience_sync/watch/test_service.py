"""The watcher's endpoints: liveness, readiness failing while Redis refuses writes or storage is unreachable."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import redis

from decision.store.embedded import EmbeddedRedis
from tests.audience_sync.watch.conftest import WatchProcess
from tests.waiting import eventually_sync as wait_for


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_readiness_fails_while_redis_refuses_writes_or_storage_is_unreachable(
    s3: Any, watchers: Callable[..., WatchProcess]
) -> None:
    with EmbeddedRedis() as own:  # a redis-server of this test's own: it is made to refuse writes
        admin = redis.Redis.from_url(own.url)
        watcher = watchers(
            f"s3://{s3.test_bucket}/aep/", "--snapshot", "*_full_*", "--poll-interval", "0.2", "--redis-url", own.url,
            "--storage-option", f"endpoint_url={s3.test_endpoint}", "--host", "127.0.0.1",
        )  # fmt: skip
        found = wait_for(lambda: re.search(r"on http://127.0.0.1:(\d+)", watcher.stderr()), "the watcher to listen")
        port = int(found.group(1))
        assert get(port, "/live") == (200, '{"status":"alive"}')
        wait_for(lambda: get(port, "/health") == (200, '{"status":"ok"}'), "readiness")
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")  # full: OOM
        status, body = get(port, "/health")
        assert status == 503 and "Redis refuses writes: OutOfMemoryError" in body, body
        admin.config_set("maxmemory", "0")
        assert get(port, "/health") == (200, '{"status":"ok"}')

        s3.rm(s3.test_bucket, recursive=True)  # the bucket is gone: listing fails
        status, body = wait_for(lambda: (r := get(port, "/health"))[0] == 503 and r, "readiness to fail")
        assert "storage unreachable: " in body, body
        s3.mkdir(s3.test_bucket)
        wait_for(lambda: get(port, "/health") == (200, '{"status":"ok"}'), "readiness again")
        assert get(port, "/live")[0] == 200
        leading = 'audience_sync_watch_polls_total{result="leader"}'
        status, metrics = wait_for(lambda: leading in (r := get(port, "/metrics"))[1] and r, "a poll as leader")
        assert status == 200 and 'audience_sync_watch_polls_total{result="storage_error"}' in metrics
        assert "audience_sync_watch_leader 1.0" in metrics, metrics
        assert watcher.stop() == 0
        admin.close()
