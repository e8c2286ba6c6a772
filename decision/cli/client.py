"""How CLI commands reach a running server: ``--target``, TLS and bearer-token options, the channel."""

from __future__ import annotations

import argparse
from typing import Any

from decision.cli.options import fail
from inbound_common.cli import Exit, milliseconds, option


def add_client_options(parser: argparse.ArgumentParser, *, old_token_flag: bool = True) -> None:
    """The bearer token is ``--auth-token`` everywhere; ``old_token_flag``: also accept ``--token``, its earlier
    name (not on ``decision events``, whose ``--token`` is the tracking token)."""
    option(parser, "--target", env="DECISION_TARGET", default="localhost:50051", help="host:port of the server")
    option(parser, "--deadline-ms", type=milliseconds, default=1000.0, help="gRPC deadline of each call")
    option(parser, "--tls", action="store_true", help="connect with TLS (the system's CAs unless --tls-ca)")
    option(parser, "--tls-ca", metavar="PEM", help="CA bundle that signed the server's certificate (implies --tls)")
    option(parser, "--tls-client-cert", metavar="PEM", help="client certificate, for mutual TLS")
    option(parser, "--tls-client-key", metavar="PEM", help="key of --tls-client-cert")
    flags = ("--auth-token", "--token") if old_token_flag else ("--auth-token",)
    option(parser, *flags, dest="auth_token", env="DECISION_AUTH_TOKEN", help="bearer token sent with each call")


def client_channel(args: argparse.Namespace) -> Any:
    """A gRPC channel to ``--target``: TLS when any TLS option is given, else plaintext."""
    # lazy, start-up (loadtest.startup): gRPC ~50 ms
    import grpc

    from decision.api.tls import channel_credentials

    if not (args.tls or args.tls_ca or args.tls_client_cert or args.tls_client_key):
        return grpc.insecure_channel(args.target)
    credentials = channel_credentials(args.tls_ca, args.tls_client_cert, args.tls_client_key)
    return grpc.secure_channel(args.target, credentials)


def call_metadata(args: argparse.Namespace) -> list[tuple[str, str]] | None:
    return [("authorization", f"Bearer {args.auth_token}")] if args.auth_token else None


def rpc_failure(command: str, exc: Any, target: str) -> int:
    """Say why a call failed, on one line; the exit status: unavailable (retry later) or refused."""
    # lazy, start-up (loadtest.startup): gRPC ~50 ms
    import grpc

    code = exc.code()
    unreachable = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    where = f" ({target})" if unreachable else ""
    return fail(command, f"{code.name}{where}: {exc.details()}", Exit.UNAVAILABLE if unreachable else Exit.INVALID)
