"""The service's settings, in one explicit object (built by the CLI from flags and environment)."""

from __future__ import annotations

from dataclasses import dataclass, field

from decision.core.tokens import TokenKeys
from inbound_common.secret_files import BearerToken


@dataclass(frozen=True, slots=True)
class Limits:
    """Request limits; a request over any of them gets INVALID_ARGUMENT naming the field."""

    max_message_bytes: int = 1024 * 1024
    max_profile_id_bytes: int = 256
    max_channel_bytes: int = 64
    max_request_id_bytes: int = 128
    max_placements: int = 16
    max_items_per_placement: int = 100
    max_context_keys: int = 64
    max_context_key_bytes: int = 128
    max_string_bytes: int = 4096
    max_list_items: int = 100
    max_why_not: int = 8


@dataclass(frozen=True, slots=True)
class Settings:
    rules_path: str | None = None
    # None: start an embedded redis-server (demo, local runs). Not in repr: it may hold a password.
    redis_url: str | None = field(default=None, repr=False)
    host: str = "0.0.0.0"
    port: int = 50051
    workers: int = 1
    key_prefix: str = "ib"
    # Longest wait for Redis in a decision; shortened to fit the call's deadline.
    redis_timeout: float = 0.050
    # Kept from the deadline for evaluating and answering after the Redis read: a fifth of the
    # time remaining, at least deadline_margin, at most deadline_margin_max (a busy event loop
    # can take milliseconds to come back to a request whose read timed out).
    deadline_margin: float = 0.003
    deadline_margin_max: float = 0.010
    # How often the audience registry is re-read, besides published changes.
    registry_poll_interval: float = 1.0
    # On SIGTERM: how long to keep serving while reporting NOT_SERVING (load balancers and
    # endpoints stop sending), then how long the calls in flight may take to finish.
    shutdown_drain: float = 5.0
    shutdown_grace: float = 10.0
    # A connection is sent a GOAWAY at this age (+-10 %), so that a stop can wait for every connection to
    # go instead of cancelling the calls grpc queued (decision/api/shutdown.py). None: half of shutdown_grace.
    max_connection_age: float | None = None
    limits: Limits = field(default_factory=Limits)
    # Published rulesets (no rules_path): how often the active pointer is polled besides announcements.
    rules_poll_interval: float = 0.5
    # Prometheus /metrics on this port (0: any free port); None: no metrics.
    metrics_port: int | None = None
    # "text" or "json" (one JSON object per line).
    log_format: str = "text"
    # OpenTelemetry spans for Decide (needs opentelemetry-api).
    otel: bool = False
    # TLS on the gRPC port (PEM file paths); a client CA turns on mutual TLS.
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    # Bearer tokens accepted on the API (health and reflection stay open); empty: no authentication.
    auth_tokens: tuple[BearerToken, ...] = field(default=(), repr=False)
    # Tracking-token signing keys (the last signs, all verify). Default: a random key made with the settings,
    # so with --workers N every worker gets the same one (the settings are sent to them); a restart changes it.
    token_keys: TokenKeys = field(default_factory=TokenKeys.generate, repr=False)
    # Circuit breaker on Redis reads: opens after this many consecutive failures,
    # then lets one probe read through every interval (seconds).
    breaker_failures: int = 5
    breaker_probe_interval: float = 0.2
    # Feedback events: a retried event id counts once within this window (seconds); older events are refused.
    event_dedupe_window: float = 86_400.0
    # How long after its decision a tracking token is accepted with events (seconds): each token counts each event
    # type once, which Redis remembers this long (docs/redis-keys.md); events with an older token are refused.
    token_lifetime: float = 86_400.0
    # How far ahead of the server's clock an event's timestamp may be (seconds).
    event_max_skew: float = 300.0
    # Longest wait for Redis when recording a batch of events.
    event_timeout: float = 2.0
    # How often a server re-reads the counters of total caps (seconds), off the decision path.
    totals_refresh_interval: float = 1.0
    # Outcome counters (what each offer achieved, per day): kept this long after their day (seconds);
    # each worker adds its proposal counts this often (seconds): what a crash can lose.
    outcome_retention: float = 90 * 86_400.0
    outcome_flush_interval: float = 1.0
    # How often each worker re-reads the counts learned rankings draw from (seconds), off the decision path.
    learning_refresh_interval: float = 5.0
