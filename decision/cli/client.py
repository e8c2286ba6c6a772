"""How CLI commands reach a running server: ``--target``, TLS and bearer-token options, the channel."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from decision.cli.options import EXIT_INVALID, EXIT_UNAVAILABLE


def add_client_options(parser: argparse.ArgumentParser, *, token_flag: str = "--token") -> None:
    """``token_flag``: the bearer token's option (``decision events`` keeps ``--token`` for tracking tokens)."""
    parser.add_argument("--target", default="localhost:50051", help="host:port of the server")
    parser.add_argument("--deadline-ms", type=float, default=1000.0)
    parser.add_argument("--tls", action="store_true", help="connect with TLS (the system's CAs unless --tls-ca)")
    parser.add_argument("--tls-ca", help="PEM CA bundle that signed the server's certificate (implies --tls)")
    parser.add_argument("--tls-client-cert", help="PEM client certificate, for mutual TLS")
    parser.add_argument("--tls-client-key", help="PEM key of --tls-client-cert")
    parser.add_argument(
        token_flag,
        dest="auth_token",
        default=os.environ.get("DECISION_AUTH_TOKEN"),
        help="bearer token (env DECISION_AUTH_TOKEN)",
    )


def client_channel(args: argparse.Namespace) -> Any:
    """A gRPC channel to ``--target``: TLS when any TLS option is given, else plaintext."""
    import grpc

    from decision.api.tls import channel_credentials

    if not (args.tls or args.tls_ca or args.tls_client_cert or args.tls_client_key):
        return grpc.insecure_channel(args.target)
    credentials = channel_credentials(args.tls_ca, args.tls_client_cert, args.tls_client_key)
    return grpc.secure_channel(args.target, credentials)


def call_metadata(args: argparse.Namespace) -> list[tuple[str, str]] | None:
    return [("authorization", f"Bearer {args.auth_token}")] if args.auth_token else None


def rpc_failure(command: str, exc: Any) -> int:
    """Say why a call failed; the exit status: unavailable (retry later) or refused."""
    import grpc

    code = exc.code()
    print(f"decision {command}: {code.name}: {exc.details()}", file=sys.stderr)
    return (
        EXIT_UNAVAILABLE if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) else EXIT_INVALID
    )
