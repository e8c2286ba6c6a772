"""The service's settings, in one explicit object (built by the CLI from flags and environment)."""

from __future__ import annotations

from dataclasses import dataclass, field


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


@dataclass(frozen=True, slots=True)
class Settings:
    rules_path: str | None = None
    # None: start an embedded redis-server (demo, local runs).
    redis_url: str | None = None
    host: str = "0.0.0.0"
    port: int = 50051
    workers: int = 1
    key_prefix: str = "ib"
    # Longest wait for Redis in a decision; shortened to fit the call's deadline.
    redis_timeout: float = 0.050
    # Kept from the deadline for evaluating and answering after the Redis read.
    deadline_margin: float = 0.002
    # How often the audience registry is re-read, besides published changes.
    registry_poll_interval: float = 1.0
    # How long in-flight calls may take to finish on SIGTERM.
    shutdown_grace: float = 10.0
    limits: Limits = field(default_factory=Limits)
