"""The ``decision`` command: serve, validate, decide, demo."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from decision.observe.redact import mask_url
from decision.rules.errors import RulesetInvalid, Severity
from decision.settings import Settings

EXIT_INVALID = 1
EXIT_USAGE = 2


def _settings(args: argparse.Namespace) -> Settings:
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
        metrics_port=args.metrics_port,
        log_format=args.log_format,
        otel=args.otel,
    )


def _secured(settings: Settings, args: argparse.Namespace) -> Settings:
    """Add the TLS, authentication and limits options (checked now: a server never starts misconfigured)."""
    from decision.api.auth import load_tokens
    from decision.api.tls import server_credentials
    from decision.api.token_keys import load_token_keys
    from decision.cli.limits_config import limits_from

    server_credentials(args.tls_cert, args.tls_key, args.tls_client_ca)
    return dataclasses.replace(
        settings,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        auth_tokens=load_tokens(args.auth_tokens_file, os.environ),
        token_keys=load_token_keys(args.token_keys_file, os.environ) or settings.token_keys,
        limits=limits_from(args.limits, args.limit, settings.limits),
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from decision.api.server import configure_logging, serve_workers
    from decision.service.active import load_compiled
    from decision.store.embedded import EmbeddedRedis

    configure_logging(log_format=args.log_format)
    try:
        settings = _secured(_settings(args), args)
    except ValueError as exc:  # a bad TLS, token or limits option: say which, never print a secret
        print(f"decision serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from decision.cli.ops import check_published
    from decision.service.rulesets import PublishError

    try:  # never start on an invalid ruleset: the file's, or without one the one published to Redis
        if args.rules is not None:
            load_compiled(args.rules)
        else:
            check_published(args.redis_url, args.key_prefix)
    except RulesetInvalid as exc:
        print(f"decision: refusing to start, the ruleset is invalid:\n{exc}", file=sys.stderr)
        return EXIT_INVALID
    except PublishError as exc:
        print(f"decision: refusing to start: {exc}", file=sys.stderr)
        return EXIT_INVALID

    def ready(port: int) -> None:
        print(f"listening on {settings.host}:{port}", flush=True)

    if settings.redis_url:
        print(f"redis: {mask_url(settings.redis_url)}", file=sys.stderr, flush=True)
        return serve_workers(settings, settings.redis_url, ready)
    with EmbeddedRedis() as redis_server:
        print(f"no --redis-url: started an embedded redis-server at {redis_server.url}", file=sys.stderr, flush=True)
        return serve_workers(settings, redis_server.url, ready)


def cmd_validate(args: argparse.Namespace) -> int:
    from decision.rules.compiler import compile_ruleset
    from decision.rules.loader import parse

    status = 0
    for path in args.rules:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            print(f"{path}:0: file: cannot read: {exc.strerror}")
            status = EXIT_INVALID
            continue
        ruleset, problems = parse(data, path)
        if ruleset is not None:
            try:
                compile_ruleset(ruleset)
            except RulesetInvalid as exc:
                problems.extend(exc.problems)
        if ruleset is not None and not any(p.severity is Severity.ERROR for p in problems):
            from decision.cli.ops import lint_warnings

            problems.extend(lint_warnings(ruleset, args.redis_url, args.key_prefix))
        for problem in sorted(problems, key=lambda p: p.location.line):
            print(problem)
        errors = sum(1 for p in problems if p.severity is Severity.ERROR)
        warnings = len(problems) - errors
        if errors:
            status = EXIT_INVALID
            print(f"{path}: {errors} error(s), {warnings} warning(s)", file=sys.stderr)
        else:
            assert ruleset is not None
            print(
                f"{path}: ok, version {ruleset.version}, {len(ruleset.placements)} placements, "
                f"{len(ruleset.offers)} offers" + (f", {warnings} warning(s)" if warnings else ""),
                file=sys.stderr,
            )
    return status


def parse_context(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs; a value that parses as JSON is taken as such (120, true, ["a"]), else as a string."""
    context: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--context {pair!r}: expected key=value")
        try:
            context[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            context[key] = raw
    return context


def client_channel(args: argparse.Namespace) -> Any:
    """A gRPC channel to ``--target``: TLS when any TLS option is given, else plaintext."""
    import grpc

    from decision.api.tls import channel_credentials

    if not (args.tls or args.tls_ca or args.tls_client_cert or args.tls_client_key):
        return grpc.insecure_channel(args.target)
    credentials = channel_credentials(args.tls_ca, args.tls_client_cert, args.tls_client_key)
    return grpc.secure_channel(args.target, credentials)


def cmd_decide(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf import json_format

    from decision.cli.display import format_decision, format_explanations
    from decision.v1 import decision_pb2, decision_pb2_grpc

    try:
        context = parse_context(args.context)
    except ValueError as exc:
        print(f"decision decide: {exc}", file=sys.stderr)
        return EXIT_USAGE
    request = decision_pb2.DecideRequest(
        profile_id=args.profile,
        channel=args.channel,
        placements=[decision_pb2.PlacementRequest(placement_id=p, max_items=args.max_items) for p in args.placement],
        request_id=args.request_id or "",
        explain=args.explain or args.command == "explain",
    )
    for key, value in context.items():
        json_format.ParseDict(value, request.context[key])
    try:
        channel = client_channel(args)
    except ValueError as exc:
        print(f"decision decide: {exc}", file=sys.stderr)
        return EXIT_USAGE
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else None
    with channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        try:
            response = stub.Decide(request, timeout=args.deadline_ms / 1000, metadata=metadata)
        except grpc.RpcError as exc:
            print(f"decision decide: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return EXIT_INVALID
    if args.json:
        print(json_format.MessageToJson(response, always_print_fields_with_no_presence=True))
    else:
        print(format_decision(request, response))
        if response.explanations:
            print()
            print(format_explanations(response))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from decision.api.server import configure_logging
    from decision.cli.demo import run_demo

    configure_logging()
    return asyncio.run(run_demo(Path(args.example), port=args.port, once=args.once))


def _seconds(text: str) -> float:
    """A duration option: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="decision", description="Inbound Decisioning: next-best-message decisions.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC decision service")
    serve.add_argument(
        "--rules",
        help="ruleset YAML file (reloaded on SIGHUP); without it, the ruleset published to Redis "
        "(decision rules publish), followed as new ones are published",
    )
    serve.add_argument(
        "--redis-url",
        default=os.environ.get("DECISION_REDIS_URL"),
        help="redis://[:password@]host:port/db, rediss:// for TLS, redis+cluster:// for Redis Cluster "
        "(env DECISION_REDIS_URL; default: start an embedded redis-server)",
    )
    serve.add_argument("--host", default=os.environ.get("DECISION_HOST", "0.0.0.0"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("DECISION_PORT", "50051")))
    defaults = Settings()
    serve.add_argument("--workers", type=int, default=int(os.environ.get("DECISION_WORKERS", "1")))
    serve.add_argument("--key-prefix", default=os.environ.get("DECISION_KEY_PREFIX", "ib"))
    serve.add_argument("--redis-timeout-ms", type=float, default=50.0, help="longest wait for Redis per decision")
    serve.add_argument(
        "--drain",
        type=_seconds,
        default=os.environ.get("DECISION_DRAIN", str(defaults.shutdown_drain)),  # a string default goes through type=
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, keep serving this long while health reports NOT_SERVING, so load balancers "
        "stop sending; then refuse new calls with UNAVAILABLE (retry-safe) and stop (env DECISION_DRAIN; "
        "default %(default)s; a second signal ends the drain)",
    )
    serve.add_argument(
        "--grace",
        type=_seconds,
        default=os.environ.get("DECISION_GRACE", str(defaults.shutdown_grace)),
        metavar="SECONDS",
        help="after the drain, how long calls in flight may take to finish before they are cancelled "
        "(env DECISION_GRACE; default %(default)s)",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ["DECISION_METRICS_PORT"]) if os.environ.get("DECISION_METRICS_PORT") else None,
        help="serve Prometheus metrics on http://HOST:PORT/metrics (env DECISION_METRICS_PORT)",
    )
    serve.add_argument("--log-format", choices=("text", "json"), default=os.environ.get("DECISION_LOG_FORMAT", "text"))
    serve.add_argument("--otel", action="store_true", help="OpenTelemetry spans for Decide (needs opentelemetry-api)")
    env = os.environ.get
    serve.add_argument("--tls-cert", default=env("DECISION_TLS_CERT"), help="PEM certificate chain: serve TLS")
    serve.add_argument("--tls-key", default=env("DECISION_TLS_KEY"), help="PEM private key of --tls-cert")
    serve.add_argument(
        "--tls-client-ca", default=env("DECISION_TLS_CLIENT_CA"), help="PEM CA bundle: require client certificates"
    )
    serve.add_argument(
        "--auth-tokens-file",
        default=env("DECISION_AUTH_TOKENS_FILE"),
        help="bearer tokens, one per line: calls need 'authorization: Bearer <token>' "
        "(also env DECISION_AUTH_TOKENS, comma-separated; health and reflection stay open)",
    )
    serve.add_argument(
        "--token-keys-file",
        default=env("DECISION_TOKEN_KEYS_FILE"),
        help="tracking-token signing keys, '<key id> <secret>' per line, the last signs, all verify "
        "(also env DECISION_TOKEN_KEYS, 'id:secret' comma-separated; without: a random key per start)",
    )
    serve.add_argument("--limits", metavar="FILE", help="request limits, TOML or .json (docs/api.md)")
    serve.add_argument(
        "--limit", action="append", default=[], metavar="NAME=N", help="one request limit, e.g. max_placements=8"
    )
    serve.set_defaults(func=cmd_serve)

    validate = commands.add_parser("validate", help="check ruleset files; print every problem")
    validate.add_argument("rules", nargs="+", help="ruleset YAML file(s)")
    from decision.cli.ops import add_commands, add_redis_options
    from decision.cli.report import add_command as add_report

    add_redis_options(validate)  # with a Redis: also warn of audiences the registry does not know
    validate.set_defaults(func=cmd_validate)

    decide = commands.add_parser(
        "decide",
        aliases=["explain"],
        help="ask a running server for a decision (`explain`: and why each offer was or was not proposed)",
    )
    decide.add_argument("--target", default="localhost:50051", help="host:port of the server")
    decide.add_argument("--profile", required=True)
    decide.add_argument("--channel", required=True)
    decide.add_argument("--placement", action="append", required=True, help="placement id (repeatable)")
    decide.add_argument("--max-items", type=int, default=0)
    decide.add_argument("--context", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    decide.add_argument("--request-id")
    decide.add_argument("--explain", action="store_true")
    decide.add_argument("--deadline-ms", type=float, default=1000.0)
    decide.add_argument("--json", action="store_true", help="print the response as JSON")
    decide.add_argument("--tls", action="store_true", help="connect with TLS (the system's CAs unless --tls-ca)")
    decide.add_argument("--tls-ca", help="PEM CA bundle that signed the server's certificate (implies --tls)")
    decide.add_argument("--tls-client-cert", help="PEM client certificate, for mutual TLS")
    decide.add_argument("--tls-client-key", help="PEM key of --tls-client-cert")
    decide.add_argument(
        "--token", default=os.environ.get("DECISION_AUTH_TOKEN"), help="bearer token (env DECISION_AUTH_TOKEN)"
    )
    decide.set_defaults(func=cmd_decide)

    demo = commands.add_parser("demo", help="embedded Redis + sample audiences + server + example decisions")
    demo.add_argument("--example", default=str(Path(__file__).resolve().parents[2] / "examples" / "retail"))
    demo.add_argument("--port", type=int, default=50051)
    demo.add_argument("--once", action="store_true", help="exit after printing the example decisions")
    demo.set_defaults(func=cmd_demo)
    add_commands(commands)  # rules publish|rollback|list, simulate (decision/cli_ops.py)
    add_report(commands)  # report: outcome counters (decision/cli/report.py)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
