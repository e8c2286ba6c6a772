"""``decision console``: the read-only web console for marketing ops (decision.console; docs/console.md).

Signed in with the service's bearer tokens holding the ``console`` scope; TLS with the server's options; its
pages read Redis (``--redis-url``), ask the running decision service (``--target``) for "decide as this profile",
and read the replicas' ``/metrics`` (``--metrics-url``, repeatable) for the Live page.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
from typing import Any
from urllib.parse import urlsplit

from decision.cli.client import add_client_options
from decision.cli.options import add_auth_tokens_file, add_redis_options, add_tls_server_options, auth_tokens, fail
from decision.cli.redis_access import need_redis
from inbound_common.cli import Exit, option, port, positive, some_seconds
from inbound_common.urls import mask_url

DEFAULT_PORT = 8080


def metrics_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {text!r}")
    return text


def add_command(commands: Any) -> None:
    console = commands.add_parser(
        "console",
        help="the web console: profiles, why not, offers and experiments, changes, live (read-only)",
        description="A read-only web console over the same code as the commands: one profile and what it gets "
        "(and why not another offer), how the offers and experiments are doing, who published what and what a "
        "candidate ruleset would change, and the replicas live. Sign in with a token holding the console scope.",
    )
    add_redis_options(console)
    option(console, "--host", env="DECISION_CONSOLE_HOST", default="127.0.0.1", help="address to listen on")
    option(
        console,
        "--port",
        env="DECISION_CONSOLE_PORT",
        type=port,
        default=DEFAULT_PORT,
        help="port to listen on (0: any)",
    )
    add_auth_tokens_file(
        console,
        "bearer tokens, one per line, as the server's (a line '<token> console' for the console; also "
        "DECISION_AUTH_TOKENS): a browser signs in with one holding the console scope",
    )
    add_tls_server_options(console, "serve HTTPS (the session cookie is then Secure)")
    option(
        console,
        "--metrics-url",
        action="append",
        default=[],
        type=metrics_url,
        metavar="URL",
        help="a replica's /metrics (a server's --metrics-port), for the Live page (repeatable)",
    )
    option(
        console,
        "--scrape-interval",
        type=some_seconds,
        default=5.0,
        metavar="SECONDS",
        help="how often each --metrics-url is read (the Live page's figures are over this interval)",
    )
    option(
        console,
        "--session-lifetime",
        type=some_seconds,
        default=8 * 3600.0,
        metavar="SECONDS",
        help="how long a sign-in lasts (a restart of the console signs everybody out)",
    )
    option(
        console,
        "--sample",
        type=positive,
        default=500,
        metavar="N",
        help="profiles read from Redis to compare a candidate ruleset with the active one (the form can change it)",
    )
    add_client_options(console, old_token_flag=False)  # the decision service that "decide as this profile" asks
    console.set_defaults(func=cmd_console)


def cmd_console(args: argparse.Namespace) -> int:
    # lazy, start-up (loadtest.startup): gRPC ~50 ms
    from decision.api.tls import channel_credentials, server_ssl_context

    try:
        from decision.console.app import Listener, serve
        from decision.console.backend import Backend, ConsoleConfig, DecideTarget
        from decision.console.sessions import CONSOLE_SCOPE, Sessions
    except ImportError as exc:  # aiohttp is an extra
        message = f"{exc}: install the 'console' extra (pip install 'inbound-decisioning[console]')"
        return fail("console", message, Exit.USAGE)

    if not need_redis(args, "console"):
        return int(Exit.USAGE)
    try:
        tokens = auth_tokens(args)
        context = server_ssl_context(args.tls_cert, args.tls_key)
        tls = args.tls or args.tls_ca or args.tls_client_cert or args.tls_client_key
        credentials = channel_credentials(args.tls_ca, args.tls_client_cert, args.tls_client_key) if tls else None
    except ValueError as exc:  # a bad token file or TLS option: say which, never print a secret
        return fail("console", str(exc), Exit.USAGE)
    if not any(CONSOLE_SCOPE in t.scopes for t in tokens):
        said = "no token accepted" if not tokens else "no token has the console scope"
        return fail(
            "console",
            f"{said}: give --auth-tokens-file with a line '<token> console' (or DECISION_AUTH_TOKENS)",
            Exit.USAGE,
        )
    config = ConsoleConfig(
        redis_url=args.redis_url,
        key_prefix=args.key_prefix,
        decide=DecideTarget(args.target, credentials, args.auth_token, args.deadline_ms / 1000),
        metrics_urls=tuple(dict.fromkeys(args.metrics_url)),
        scrape_interval=args.scrape_interval,
        sample_size=args.sample,
    )
    print(f"redis: {mask_url(args.redis_url)}; decisions from {args.target}", flush=True)

    async def run() -> None:
        sessions = Sessions(tokens, lifetime=args.session_lifetime, secure=context is not None)
        await serve(Backend(config), sessions, Listener(args.host, args.port, context))

    try:
        asyncio.run(run())
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            reason = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            return fail("console", f"cannot listen on {args.host}:{args.port}: {reason}", Exit.UNAVAILABLE)
        raise
    return int(Exit.OK)
