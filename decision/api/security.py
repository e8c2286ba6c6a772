"""What the server puts in front of its services: authentication (applied by ``decision.api.guards``), TLS on
the port, warnings at start."""

from __future__ import annotations

import ipaddress
import logging

import grpc

from decision.api.auth import TokenAuth
from decision.api.tls import server_credentials
from decision.core.tokens import TOKEN_FORMAT
from decision.settings import Settings

log = logging.getLogger(__name__)


def authentication(settings: Settings) -> TokenAuth | None:
    """Bearer-token authentication when tokens are configured, else None."""
    return TokenAuth(settings.auth_tokens) if settings.auth_tokens else None


class PortUnavailable(OSError):
    """The port cannot be listened on: in use by another program, or not allowed."""


def add_port(server: grpc.aio.Server, settings: Settings) -> int:
    """Listen on ``host:port`` with TLS (or mutual TLS) when configured, else plaintext; returns the port."""
    address = f"{settings.host}:{settings.port}"
    credentials = server_credentials(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    try:
        if credentials is None:
            return int(server.add_insecure_port(address))
        return int(server.add_secure_port(address, credentials))
    except RuntimeError as exc:  # grpc's only failure here: "Failed to bind to address ..."
        raise PortUnavailable(f"cannot listen on {address}: the port is in use or not allowed") from exc


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def warn_if_exposed(settings: Settings) -> None:
    """WARNING at start for settings an operator would not choose on purpose (the server still starts)."""
    if not is_loopback(settings.host) and settings.tls_cert is None and not settings.auth_tokens:
        log.warning(
            "serving on %s without TLS or bearer tokens: anyone who reaches the port can read decisions for any "
            "profile and record events (give --tls-cert/--tls-key and/or --auth-tokens-file; SECURITY.md)",
            settings.host,
        )
    if settings.token_keys.ephemeral:
        log.warning(
            "no --token-keys-file or DECISION_TOKEN_KEYS: tracking tokens are signed with a random key made at "
            "start; tokens from before a restart or from another instance will not verify (their events are "
            "rejected). Configure shared keys in production (SECURITY.md)"
        )
    if settings.token_keys.signing_format != TOKEN_FORMAT:
        log.warning(
            "--token-format %d: tracking tokens are signed in the previous release's format, not bound to a profile "
            "(an event may replay one for another profile). Only while servers of the previous release still "
            "record events: then restart with --token-format %d (SECURITY.md, upgrading)",
            settings.token_keys.signing_format,
            TOKEN_FORMAT,
        )
