"""The watcher's metrics (Prometheus) and its HTTP endpoints: liveness, readiness, metrics.

GET /live     200 while the poll loop runs (it polled recently, or is applying an export)
GET /health   readiness, as ``receive``'s: 200 when Redis takes a write and the storage was listed at
              the last poll; else 503 saying why
GET /metrics  Prometheus text
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

APPLY_BUCKETS: Final = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
log = logging.getLogger("audience_sync.watch")
Check = Callable[[], str]  # '' fine, else the problem


class WatchMetrics:
    """The watcher's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = Counter(
            "audience_sync_watch_polls", "Polls, by role (leader, standby) or failure (storage_error, redis_error)",
            ["result"], registry=r,
        )  # fmt: skip
        self.exports = Counter(
            "audience_sync_watch_exports", "Exports handled, by kind and outcome (applied, refused, superseded, "
            "failed)", ["kind", "outcome"], registry=r,
        )  # fmt: skip
        self.files = Counter(
            "audience_sync_watch_files", "Files of the exports handled, by kind and outcome", ["kind", "outcome"],
            registry=r,
        )  # fmt: skip
        self.seconds = Histogram(
            "audience_sync_watch_apply_seconds", "Time to fetch and apply an export", ["kind"], buckets=APPLY_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.due = Gauge("audience_sync_watch_due_exports", "Exports complete and not applied yet", registry=r)
        self.waiting = Gauge(
            "audience_sync_watch_waiting_exports", "Exports still being written, and those they hold back", registry=r
        )
        self.leader = Gauge("audience_sync_watch_leader", "1 when this watcher holds the lease", registry=r)
        self.lease_lost = Counter("audience_sync_watch_lease_lost", "Leases lost (the export abandoned)", registry=r)
        self.last_export = Gauge(
            "audience_sync_watch_last_applied_export_time_seconds", "Export time of the last export applied",
            registry=r,
        )  # fmt: skip


class HealthServer:
    """The endpoints, on a thread of their own (the poll loop is synchronous)."""

    def __init__(self, host: str, port: int, metrics: WatchMetrics, *, live: Check = str, ready: Check = str) -> None:
        """Binds the port (OSError when it cannot); answers once started. ``live``, ``ready``: '' while fine."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.metrics = metrics
        self.live = live
        self.ready = ready
        self._problem = ""
        self.http = ThreadingHTTPServer((host, port), Handler)
        self.http.daemon_threads = True
        self.port = int(self.http.server_address[1])
        self._thread = threading.Thread(target=self.http.serve_forever, name="watch-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(request, 200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST)
        elif path == "/live":
            problem = self.live()
            self._json(request, 503 if problem else 200, {"error": problem} if problem else {"status": "alive"})
        elif path == "/health":
            problem = self.ready()
            self._readiness_changed(problem)
            self._json(request, 503 if problem else 200, {"error": problem} if problem else {"status": "ok"})
        else:
            self._json(request, 404, {"error": "not found"})

    def _readiness_changed(self, problem: str) -> None:
        if problem != self._problem:
            if problem:
                log.warning("not ready (GET /health answers 503): %s", problem)
            else:
                log.warning("ready again")
            self._problem = problem

    def _json(self, request: BaseHTTPRequestHandler, status: int, body: dict[str, str]) -> None:
        self._send(request, status, orjson.dumps(body), "application/json")

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)
