"""The ``decision`` command: serve, validate, decide, demo."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from decision.cli import authoring, client, console, events, ops, profile, report
from decision.cli.limits_config import limits_from
from decision.cli.options import (
    add_auth_tokens_file,
    add_json,
    add_redis_options,
    add_tls_server_options,
    auth_tokens,
    epilog,
    fail,
    parse_context,
)
from decision.cli.redis_access import check_published, lint_warnings, redis_failure
from decision.core.tokens import FORMATS, PREVIOUS_FORMAT, TOKEN_FORMAT
from decision.rules.errors import Problem, RulesetInvalid, Severity
from decision.rules.types import Location, Ruleset
from decision.settings import Settings
from decision.store.embedded import EmbeddedRedis, EmbeddedRedisError
from inbound_common.cli import (
    Exit,
    add_key_prefix,
    add_redis_url,
    flushed,
    integer,
    milliseconds,
    option,
    port,
    positive,
    program,
    seconds,
    some_seconds,
)
from inbound_common.urls import mask_url

# The samples ship in the package (decision/examples, a link to the checkout's examples/): found from a wheel too.
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _settings(args: argparse.Namespace) -> Settings:
    """The serve options as settings. Raises ValueError for a connection age the grace cannot wait for."""
    if args.max_connection_age is not None and args.max_connection_age > args.grace / 2:
        raise ValueError(
            f"--max-connection-age {args.max_connection_age:g} is more than half of --grace {args.grace:g}: "
            "a stop could not wait for every connection to go"
        )
    return Settings(
        rules_path=args.rules,
        redis_url=args.redis_url,
        host=args.host,
        port=args.port,
        workers=args.workers,
        key_prefix=args.key_prefix,
        redis_timeout=args.redis_timeout_ms / 1000,
        shutdown_drain=args.drain,
        shutdown_grace=args.grace,
        max_connection_age=args.max_connection_age,
        metrics_port=args.metrics_port,
        log_format=args.log_format,
        otel=args.otel,
    )


def _secured(settings: Settings, args: argparse.Namespace) -> Settings:
    """Add the TLS, authentication and limits options (checked now: a server never starts misconfigured)."""
    # lazy, start-up (loadtest.startup): gRPC ~50 ms
    from decision.api.tls import server_credentials
    from decision.api.token_keys import load_token_keys

    server_credentials(args.tls_cert, args.tls_key, args.tls_client_ca)
    return dataclasses.replace(
        settings,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        auth_tokens=auth_tokens(args),
        token_keys=dataclasses.replace(
            load_token_keys(args.token_keys_file, os.environ) or settings.token_keys,
            signing_format=int(args.token_format),
        ),
        token_lifetime=args.token_lifetime,
        limits=limits_from(args.limits, args.limit, settings.limits),
    )


def cmd_serve(args: argparse.Namespace) -> int:
    # lazy, start-up (loadtest.startup): the server ~300 ms, redis-py ~120 ms
    from decision.api.server import configure_logging, serve_workers
    from decision.service.active import load_compiled
    from decision.service.rulesets import PublishError
    from decision.store.connect import StoreError

    configure_logging(log_format=args.log_format)
    try:
        settings = _secured(_settings(args), args)
    except ValueError as exc:  # a bad TLS, token or limits option: say which, never print a secret
        return fail("serve", str(exc), Exit.USAGE)
    # Before anything starts (a worker, the embedded Redis): one line of ours, not grpc's log line and ours.
    _check_port(settings.host, settings.port)
    try:  # never start on an invalid ruleset: the file's, or without one the one published to Redis
        if args.rules is not None:
            load_compiled(args.rules)
        else:
            check_published(args.redis_url, args.key_prefix)
    except RulesetInvalid as exc:
        print(f"decision: refusing to start, the ruleset is invalid:\n{exc}", file=sys.stderr)
        return Exit.INVALID
    except PublishError as exc:
        return fail("serve", f"refusing to start: {exc}", Exit.INVALID)
    except StoreError as exc:
        return redis_failure("serve", exc)

    def ready(port: int) -> None:
        print(f"listening on {settings.host}:{port}", flush=True)

    def run(redis_url: str) -> int:
        status = _load_audiences(args.load_audiences, redis_url)
        return status if status else serve_workers(settings, redis_url, ready)

    if settings.redis_url:
        print(f"redis: {mask_url(settings.redis_url)}", file=sys.stderr, flush=True)
        return run(settings.redis_url)
    with EmbeddedRedis() as redis_server:
        print(f"no --redis-url: started an embedded redis-server at {redis_server.url}", file=sys.stderr, flush=True)
        return run(redis_server.url)


def _check_port(host: str, port: int) -> None:
    """Raise PortUnavailable unless the server's workers can bind ``host:port`` (as they do: with SO_REUSEPORT)."""
    # lazy, start-up (loadtest.startup): gRPC ~50 ms
    from decision.api.security import PortUnavailable

    if port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind(address)
    except OSError as exc:
        reason = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise PortUnavailable(f"cannot listen on {host}:{port}: {reason}") from exc


def _load_audiences(paths: Sequence[str], redis_url: str) -> int:
    """``--load-audiences``: CSV files of ``profile_id,audience_id`` written with audience_sync's writer."""
    # lazy, start-up (loadtest.startup): redis-py ~120 ms
    from decision.cli.demo import load_audiences

    for path in paths:
        try:
            count = load_audiences(redis_url, Path(path))
        except OSError as exc:
            return fail("serve", f"--load-audiences {path}: cannot read: {exc.strerror}", Exit.INVALID)
        except KeyError as exc:
            return fail("serve", f"--load-audiences {path}: no column {exc} (profile_id,audience_id)", Exit.INVALID)
        print(f"loaded {count} audience memberships from {path}", file=sys.stderr, flush=True)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    # lazy, start-up (loadtest.startup): the rule engine ~30 ms, YAML ~40 ms
    from decision.rules.compiler import compile_ruleset
    from decision.rules.loader import parse

    status = 0
    reports: list[dict[str, Any]] = []
    for path in args.rules:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            problems = [Problem(Location(path, 0), "file", f"cannot read: {exc.strerror}")]
            ruleset = None
        else:
            ruleset, problems = parse(data, path)
        if ruleset is not None:
            try:
                compile_ruleset(ruleset)
            except RulesetInvalid as exc:
                problems.extend(exc.problems)
        if ruleset is not None and not any(p.severity is Severity.ERROR for p in problems):
            problems.extend(lint_warnings(ruleset, args.redis_url, args.key_prefix))
        problems.sort(key=lambda p: p.location.line)
        errors = sum(1 for p in problems if p.severity is Severity.ERROR)
        warnings = len(problems) - errors
        if errors:
            status = Exit.INVALID
        if args.json:
            reports.append(_validate_report(path, ruleset if not errors else None, problems))
            continue
        for problem in problems:
            print(problem)
        if errors:
            print(f"{path}: {errors} error(s), {warnings} warning(s)", file=sys.stderr)
        else:
            assert ruleset is not None
            print(
                f"{path}: ok, version {ruleset.version}, {len(ruleset.placements)} placements, "
                f"{len(ruleset.offers)} offers" + (f", {warnings} warning(s)" if warnings else ""),
                file=sys.stderr,
            )
    if args.json:
        print(orjson.dumps(reports, option=orjson.OPT_INDENT_2).decode())
    return status


def _validate_report(path: str, ruleset: Ruleset | None, problems: list[Problem]) -> dict[str, Any]:
    return {
        "file": path,
        "ok": ruleset is not None,
        "version": ruleset.version if ruleset is not None else None,
        "placements": len(ruleset.placements) if ruleset is not None else None,
        "offers": len(ruleset.offers) if ruleset is not None else None,
        "problems": [
            {
                "line": p.location.line,
                "field": p.field,
                "reason": p.reason,
                "severity": p.severity.value,
            }
            for p in problems
        ],
    }


def cmd_decide(args: argparse.Namespace) -> int:
    # lazy, start-up (loadtest.startup): gRPC ~50 ms, protobuf ~30 ms
    import grpc
    from google.protobuf import json_format

    from decision.cli.client import call_metadata, client_channel, rpc_failure
    from decision.cli.display import format_decision, format_explanations
    from decision.v1 import decision_pb2, decision_pb2_grpc

    try:
        context = parse_context(args.context)
    except ValueError as exc:
        return fail(args.command, str(exc), Exit.USAGE)
    request = decision_pb2.DecideRequest(
        profile_id=args.profile,
        channel=args.channel,
        placements=[decision_pb2.PlacementRequest(placement_id=p, max_items=args.max_items) for p in args.placement],
        request_id=args.request_id or "",
        explain=args.explain or args.command == "explain" or bool(args.why_not),
        why_not=args.why_not,
    )
    for key, value in context.items():
        json_format.ParseDict(value, request.context[key])
    try:
        channel = client_channel(args)
    except ValueError as exc:
        return fail(args.command, str(exc), Exit.USAGE)
    metadata = call_metadata(args)
    with channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        try:
            response = stub.Decide(request, timeout=args.deadline_ms / 1000, metadata=metadata)
        except grpc.RpcError as exc:
            return rpc_failure(args.command, exc, args.target)
    if args.json:
        print(json_format.MessageToJson(response, always_print_fields_with_no_presence=True))
    else:
        print(format_decision(request, response))
        if response.explanations:
            print()
            print(format_explanations(response))
        for answer in response.why_not:
            print()
            print(answer.text)
    return 0


def cmd_redis(args: argparse.Namespace) -> int:
    """A local redis-server (the embedded binary) in the foreground, until Ctrl-C or SIGTERM."""
    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # taken by sigwait below, not as KeyboardInterrupt
    try:
        with EmbeddedRedis(host=args.host, port=args.port) as server:
            print(f"listening on {server.url} (redis-server, nothing kept on disk; Ctrl-C stops it)", flush=True)
            received = signal.sigwait(stop)
    except EmbeddedRedisError as exc:
        return fail("redis", str(exc).splitlines()[0], Exit.UNAVAILABLE)
    return Exit.INTERRUPTED if received == signal.SIGINT else Exit.OK


def cmd_demo(args: argparse.Namespace) -> int:
    # lazy, start-up (loadtest.startup): the server ~300 ms, redis-py ~120 ms
    from decision.api.server import configure_logging
    from decision.cli.demo import run_demo

    configure_logging()
    return asyncio.run(run_demo(Path(args.example), port=args.port, once=args.once))


def _add_serve(commands: Any) -> None:
    defaults = Settings()
    serve = commands.add_parser(
        "serve", help="run the gRPC decision service", description="Run the gRPC decision service."
    )
    option(
        serve,
        "--rules",
        metavar="FILE",
        help="ruleset YAML file (reloaded on SIGHUP); without it, the ruleset published to Redis "
        "(decision rules publish), followed as new ones are published",
    )
    add_redis_url(serve, "; without it: start an embedded redis-server on a free loopback port, stopped on exit")
    option(
        serve,
        "--load-audiences",
        action="append",
        default=[],
        metavar="CSV",
        help="before serving, load a profile_id,audience_id CSV into the Redis with audience-sync's writer "
        "(repeatable; handy with the embedded Redis)",
    )
    option(serve, "--host", env="DECISION_HOST", default=defaults.host, help="address to listen on")
    option(serve, "--port", env="DECISION_PORT", type=port, default=defaults.port, help="port to listen on (0: any)")
    option(
        serve,
        "--workers",
        env="DECISION_WORKERS",
        type=positive,
        default=defaults.workers,
        help="server processes sharing the port (SO_REUSEPORT)",
    )
    add_key_prefix(serve)
    option(
        serve,
        "--redis-timeout-ms",
        env="DECISION_REDIS_TIMEOUT_MS",
        type=milliseconds,
        default=defaults.redis_timeout * 1000,
        help="longest wait for Redis per decision; later, the answer is the fallbacks with degraded=true",
    )
    option(
        serve,
        "--drain",
        env="DECISION_DRAIN",
        type=seconds,
        default=defaults.shutdown_drain,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, keep serving this long while health reports NOT_SERVING, so load balancers "
        "stop sending; then close the listener (new connections are refused: clients go elsewhere) and serve the "
        "open connections until each reaches --max-connection-age; a second signal ends the drain",
    )
    option(
        serve,
        "--grace",
        env="DECISION_GRACE",
        type=seconds,
        default=defaults.shutdown_grace,
        metavar="SECONDS",
        help="after the drain, the longest wait for the open connections to go and their calls to finish; "
        "calls still queued then are cancelled",
    )
    option(
        serve,
        "--max-connection-age",
        env="DECISION_MAX_CONNECTION_AGE",
        type=seconds,
        default=None,
        metavar="SECONDS",
        help="a connection is sent an HTTP/2 GOAWAY at this age (+-10 %; its calls finish, the client reconnects), "
        "so that a stop never cancels a call (default, and at most: half of --grace)",
    )
    option(
        serve,
        "--metrics-port",
        env="DECISION_METRICS_PORT",
        type=port,
        help="serve Prometheus metrics on http://HOST:PORT/metrics (default: no metrics)",
    )
    option(
        serve,
        "--log-format",
        env="DECISION_LOG_FORMAT",
        choices=("text", "json"),
        default=defaults.log_format,
        help="log lines as text or one JSON object per line",
    )
    option(serve, "--otel", action="store_true", help="OpenTelemetry spans for Decide (needs opentelemetry-api)")
    add_tls_server_options(serve)
    option(
        serve,
        "--tls-client-ca",
        env="DECISION_TLS_CLIENT_CA",
        metavar="PEM",
        help="CA bundle: require client certificates",
    )
    add_auth_tokens_file(
        serve,
        "bearer tokens, one per line: calls need 'authorization: Bearer <token>' "
        "(also DECISION_AUTH_TOKENS, comma-separated; health and reflection stay open)",
    )
    option(
        serve,
        "--token-keys-file",
        env="DECISION_TOKEN_KEYS_FILE",
        metavar="FILE",
        help="tracking-token signing keys, '<key id> <secret>' per line, the last signs, all verify "
        "(also DECISION_TOKEN_KEYS, 'id:secret' comma-separated; without: a random key per start)",
    )
    option(
        serve,
        "--token-format",
        env="DECISION_TOKEN_FORMAT",
        choices=tuple(str(f) for f in FORMATS),
        default=str(TOKEN_FORMAT),
        help=f"tracking tokens are signed in format {TOKEN_FORMAT} (bound to the profile) or {PREVIOUS_FORMAT} (the "
        "previous release's: only while servers of that release still record events, the first step of an upgrade, "
        "SECURITY.md); both are verified",
    )
    option(
        serve,
        "--token-lifetime",
        env="DECISION_TOKEN_LIFETIME",
        type=some_seconds,
        default=defaults.token_lifetime,
        metavar="SECONDS",
        help="how long after its decision a tracking token is accepted with events (each token counts each event "
        "type once: Redis keeps that this long, docs/redis-keys.md); events with an older token are rejected",
    )
    option(serve, "--limits", metavar="FILE", help="request limits, TOML or .json (docs/api.md)")
    option(
        serve,
        "--limit",
        action="append",
        default=[],
        metavar="NAME=N",
        help="one request limit, e.g. max_placements=8 (repeatable)",
    )
    serve.set_defaults(func=cmd_serve)


def _add_decide(commands: Any) -> None:
    decide = commands.add_parser(
        "decide",
        aliases=["explain"],
        help="ask a running server for a decision (`explain`: and why each offer was or was not proposed)",
    )
    option(decide, "--profile", required=True, help="profile id, as audience-sync stored it")
    option(decide, "--channel", required=True, help="channel of the request, e.g. web or mobile")
    option(decide, "--placement", action="append", required=True, help="placement id (repeatable)")
    option(decide, "--max-items", type=integer, default=0, help="items per placement (0: the placement's max_items)")
    option(
        decide,
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='a context attribute; a value that parses as JSON is taken as such (120, true, ["a"]) (repeatable)',
    )
    option(decide, "--request-id", help="echoed in the response (default: generated by the server)")
    option(decide, "--explain", action="store_true", help="add why each offer was or was not proposed")
    option(
        decide,
        "--why-not",
        action="append",
        default=[],
        metavar="OFFER",
        help="for this offer, the smallest changes that would make it win for this profile (implies --explain; "
        "repeatable)",
    )
    add_json(decide, "the response")
    client.add_client_options(decide)
    decide.set_defaults(func=cmd_decide)


def build_parser() -> argparse.ArgumentParser:
    parser, commands = program("decision", "Inbound Decisioning: next-best-message decisions.")
    _add_serve(commands)

    validate = commands.add_parser("validate", help="check ruleset files; print every problem")
    validate.add_argument("rules", nargs="+", help="ruleset YAML file(s)")
    add_redis_options(validate)  # with a Redis: also warn of audiences the registry does not know
    add_json(validate, "every file's problems")
    validate.set_defaults(func=cmd_validate)

    _add_decide(commands)

    demo = commands.add_parser("demo", help="embedded Redis + sample audiences + server + example decisions")
    option(
        demo,
        "--example",
        default=str(EXAMPLES / "retail"),
        metavar="DIR",
        help="rules.yaml, audiences.csv, requests.yaml",
    )
    option(demo, "--port", type=port, default=50051, help="port to listen on (0: any)")
    option(demo, "--once", action="store_true", help="exit after printing the example decisions")
    demo.set_defaults(func=cmd_demo)
    redis = commands.add_parser(
        "redis",
        help="run a local redis-server for trying things out (nothing kept on disk; Ctrl-C stops it)",
    )
    option(redis, "--host", default="127.0.0.1", help="address to listen on")
    option(redis, "--port", type=port, default=6379, help="port to listen on (0: any)")
    redis.set_defaults(func=cmd_redis)
    ops.add_commands(commands)  # rules publish|rollback|list, simulate
    authoring.add_schema_command(commands)
    events.add_events_command(commands)
    report.add_command(commands)  # report: the outcome counters
    profile.add_command(commands)  # profile: one profile as stored
    console.add_command(commands)  # console: the web console
    parser.epilog = epilog(parser)  # after every command added its options: the whole list
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every failure a user can cause ends with one line on stderr and an exit status (Exit)."""
    args: argparse.Namespace | None = None
    try:
        args = parsed = build_parser().parse_args(argv)
        return flushed(lambda: parsed.func(parsed))
    except KeyboardInterrupt:
        print("decision: interrupted", file=sys.stderr)
        return Exit.INTERRUPTED
    except Exception as exc:
        status = _failure(_command(args), exc)
        if status is None:  # not a failure a user can cause: a bug, shown as one
            raise
        return status


def _failure(command: str, exc: Exception) -> int | None:
    """Say a failure a user can cause (Redis or the port unavailable, a file unreadable); its exit status."""
    # Imported once something failed: redis-py and gRPC cost ~150 ms of CPU at start (python -m loadtest.startup),
    # which the commands that use neither (decision --help, validate) do not pay.
    from redis.exceptions import RedisClusterException, RedisError

    from decision.api.security import PortUnavailable

    if isinstance(exc, PortUnavailable | EmbeddedRedisError):
        return fail(command, str(exc).splitlines()[0], Exit.UNAVAILABLE)
    if isinstance(exc, RedisError | RedisClusterException | ConnectionError | TimeoutError):  # Redis down
        return redis_failure(command, exc)
    if isinstance(exc, OSError):  # a file the command could not read or write
        where = f"{exc.filename}: " if exc.filename else ""
        return fail(command, f"{where}{exc.strerror or exc}", Exit.INVALID)
    return None


def _command(args: argparse.Namespace | None) -> str:
    return str(getattr(args, "command", "") or "")
