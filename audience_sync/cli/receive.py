"""The ``audience-sync receive`` command's options (imports nothing optional: aiohttp is loaded to run)."""

from __future__ import annotations

import argparse
import asyncio
import os

from audience_sync.attribute_options import add_arguments as attribute_arguments
from audience_sync.attribute_options import sources_of, time_field_argument
from audience_sync.formats.ndjson_rows import NdjsonOptions
from audience_sync.formats.xdm import XdmOptions


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20}
    value = int(text[:-1]) * units[text[-1].lower()] if text[-1:].lower() in units else int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("expected a positive size, e.g. 4m")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=os.environ.get("AUDIENCE_SYNC_RECEIVE_HOST", "0.0.0.0"),
                        help="address to listen on (env AUDIENCE_SYNC_RECEIVE_HOST)")  # fmt: skip
    parser.add_argument("--port", type=int, default=int(os.environ.get("AUDIENCE_SYNC_RECEIVE_PORT", "8080")),
                        help="port to listen on (env AUDIENCE_SYNC_RECEIVE_PORT)")  # fmt: skip
    parser.add_argument("--token-file", help="accepted bearer tokens, one per line (optionally followed by scopes; "
                        "pushing needs 'audiences'); also $AUDIENCE_SYNC_RECEIVE_TOKENS")  # fmt: skip
    parser.add_argument("--oauth-clients", help="OAuth2 client credentials, '<client id> <secret>' per line: "
                        "enables POST /oauth/token (grant_type=client_credentials)")  # fmt: skip
    parser.add_argument("--oauth-token-ttl", type=float, default=900.0, help="seconds an issued token lasts")
    parser.add_argument("--no-auth", action="store_true", help="accept pushes without credentials (tests only)")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate chain (PEM)")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    parser.add_argument(
        "--max-body", type=_size, default=4 << 20, help="largest request body, larger ones get 413 (bytes, or with k/m)"
    )
    parser.add_argument("--identity-namespace", action="append", help="XDM: an identityMap namespace; a profile is "
                        "written under every id listed under it (repeatable; default: its primary identity "
                        "only)")  # fmt: skip
    parser.add_argument("--segment-namespace", default="ups", help="XDM: segmentMembership namespace")
    parser.add_argument("--id-column", default="profile_id", help="delta records: member holding the profile id")
    parser.add_argument("--audience-column", default="audience_id", help="delta records: member of the audience")
    attribute_arguments(parser, what="JSON member or dotted XDM path of a pushed object (written under the "
                        "identities of its memberships; docs/receive.md)")  # fmt: skip
    time_field_argument(parser, fallback="the object's top-level timestamp, else the request's arrival")
    parser.add_argument("--batch-size", type=int, default=5000, help="changes of concurrent requests written together")
    parser.add_argument("--redis-timeout", type=float, default=2.0, help="seconds before Redis counts as down (503)")
    parser.add_argument("--shutdown-timeout", type=float, default=30.0, help="on SIGTERM: time to finish requests")
    parser.add_argument("--source", default="receive", help="recorded in the registry")


def run(args: argparse.Namespace, redis_url: str) -> int:
    """Serve until SIGTERM/SIGINT. Raises AuthConfigError (a usage error) on bad credentials files."""
    try:
        from audience_sync.receive.app import AppOptions
        from audience_sync.receive.auth import Access
        from audience_sync.receive.payloads import PayloadOptions
        from audience_sync.receive.server import ReceiverConfig, serve
    except ImportError as exc:  # pragma: no cover - the optional extra is missing
        raise ImportError(f"{exc}: install the 'receive' extra (pip install 'inbound-decisioning[receive]')") from None
    access = (
        Access(enabled=False)
        if args.no_auth
        else Access.load(args.token_file, args.oauth_clients, os.environ, args.oauth_token_ttl)
    )
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    payload = PayloadOptions(
        XdmOptions(tuple(dict.fromkeys(args.identity_namespace or ())), args.segment_namespace),
        NdjsonOptions(args.id_column, args.audience_column),
        tuple(sources_of(args)),
        args.time_column,
    )
    config = ReceiverConfig(
        redis_url=redis_url,
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
    return 0
