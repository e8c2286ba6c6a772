"""``audience-sync receive``: the HTTP endpoint changes are pushed to (AEP HTTP API destination), until SIGTERM.

aiohttp, the ``receive`` extra, is imported to run: without it, the other commands work and this one says
what to install."""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import sys
from typing import Any

from audience_sync.attribute_options import add_arguments as add_attribute_arguments
from audience_sync.attribute_options import sources_of, time_field_argument
from audience_sync.cli.options import (
    UsageError,
    add_audience_column,
    add_batch_size,
    add_id_column,
    add_identity_namespace,
    add_segment_namespace,
    identity_namespaces,
)
from audience_sync.formats.ndjson_rows import NdjsonOptions
from audience_sync.formats.xdm import XdmOptions
from audience_sync.receive.auth import ENV_TOKENS, Access
from audience_sync.receive.payloads import PayloadOptions
from inbound_common.cli import Exit, option, port, seconds, size, some_seconds


def _serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM/SIGINT. Raises AuthConfigError (a ValueError) on bad credentials files."""
    try:
        from audience_sync.receive.app import AppOptions  # the optional extra (aiohttp)
        from audience_sync.receive.server import ReceiverConfig, serve
    except ImportError as exc:  # pragma: no cover - the optional extra is missing
        raise UsageError(f"{exc}: install the 'receive' extra (pip install 'inbound-decisioning[receive]')") from None
    access = (
        Access(enabled=False)
        if args.no_auth
        else Access.load(args.token_file, args.oauth_clients, os.environ, args.oauth_token_ttl)
    )
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    payload = PayloadOptions(
        XdmOptions(identity_namespaces(args), args.segment_namespace),
        NdjsonOptions(args.id_column, args.audience_column),
        tuple(sources_of(args)),
        args.time_column,
    )
    config = ReceiverConfig(
        redis_url=args.redis_url,
        access=access,
        app=AppOptions(payload, args.max_body, args.redis_timeout),
        key_prefix=args.key_prefix,
        host=args.host,
        port=args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        max_batch=args.batch_size,
        shutdown_timeout=args.shutdown_timeout,
        source=args.source,
    )
    asyncio.run(serve(config))


def run(args: argparse.Namespace) -> int:
    try:
        _serve(args)
    except ValueError as exc:  # bad credentials files (AuthConfigError), options
        raise UsageError(str(exc)) from None
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        # As `decision serve` says it, with the same status: the port is unavailable, not a usage error.
        reason = os.strerror(exc.errno) if exc.errno != errno.EADDRINUSE else "the port is in use"
        print(f"audience-sync receive: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return Exit.UNAVAILABLE
    return Exit.OK


def add_command(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("receive", parents=[common], help="HTTP endpoint for pushed changes (AEP HTTP API "
                                 "destination, delta records)")  # fmt: skip
    option(parser, "--host", env="AUDIENCE_SYNC_RECEIVE_HOST", default="0.0.0.0", help="address to listen on")
    option(parser, "--port", env="AUDIENCE_SYNC_RECEIVE_PORT", type=port, default=8080, help="port to listen on")
    option(parser, "--token-file", help="accepted bearer tokens, one per line (optionally followed by scopes; "
           f"pushing needs 'audiences'); also ${ENV_TOKENS}")  # fmt: skip
    option(parser, "--oauth-clients", help="OAuth2 client credentials, '<client id> <secret>' per line: "
           "enables POST /oauth/token (grant_type=client_credentials)")  # fmt: skip
    option(parser, "--oauth-token-ttl", type=some_seconds, default=900.0, help="seconds an issued token lasts")
    option(parser, "--no-auth", action="store_true", help="accept pushes without credentials (tests only)")
    option(parser, "--tls-cert", help="serve HTTPS with this certificate chain (PEM)")
    option(parser, "--tls-key", help="the certificate's private key (PEM)")
    option(parser, "--max-body", type=size, default=4 << 20,
           help="largest request body, larger ones get 413 (bytes, or with k/m)")  # fmt: skip
    add_identity_namespace(parser)
    add_segment_namespace(parser)
    add_id_column(parser, "delta records: member")
    add_audience_column(parser, "delta records: member")
    add_attribute_arguments(parser, what="JSON member or dotted XDM path of a pushed object (written under the "
                            "identities of its memberships; docs/receive.md)")  # fmt: skip
    time_field_argument(parser, fallback="the object's top-level timestamp, else the request's arrival")
    add_batch_size(parser, 5000, "changes of concurrent requests written together")
    option(parser, "--redis-timeout", type=some_seconds, default=2.0, help="seconds before Redis counts as down (503)")
    option(parser, "--shutdown-timeout", type=seconds, default=30.0, help="on SIGTERM: time to finish requests")
    option(parser, "--source", default="receive", help="recorded in the registry")
    parser.set_defaults(func=run)
