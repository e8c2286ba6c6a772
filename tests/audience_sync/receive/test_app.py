"""`audience-sync receive` over real HTTP on loopback, writing to a real Redis."""

from __future__ import annotations

import base64
import logging
from typing import Any

import aiohttp
import orjson
import pytest
import redis

from audience_sync.receive.server import RunningReceiver
from audience_sync.store import SyncStore
from decision.store.embedded import EmbeddedRedis, free_port
from tests.audience_sync.helpers import dump, seen_by_readers
from tests.audience_sync.receive.conftest import AUTH, StartReceiver

T0, T1, T2 = "2026-11-01T10:00:00Z", "2026-11-02T10:00:00Z", "2026-11-03T10:00:00Z"


def profile(crmid: str, segments: dict[str, Any], prefixed: bool = False) -> dict[str, Any]:
    """A profile as the AEP HTTP API destination sends it (identities, memberships, a mapped attribute)."""
    body = {
        "identityMap": {"ECID": [{"id": f"ecid-{crmid}", "primary": True}], "CRMID": [{"id": crmid}]},
        "segmentMembership": {"ups": segments},
        "person": {"name": {"firstName": "Ada"}},
    }
    return {"xdm:" + k: v for k, v in body.items()} if prefixed else body


def seg(status: str, when: str) -> dict[str, str]:
    return {"status": status, "lastQualificationTime": when}


async def post(
    http: aiohttp.ClientSession, receiver: RunningReceiver, body: object, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    sent = {"Content-Type": "application/json", **(AUTH if headers is None else headers)}
    async with http.post(receiver.url + "/v1/profiles", data=data, headers=sent) as response:
        return response.status, await response.json(content_type=None)


async def test_aep_profiles_are_applied_before_the_answer(
    receiver: RunningReceiver, http: aiohttp.ClientSession, store: SyncStore
) -> None:
    one = profile("c-1", {"vip": seg("realized", T1), "gold": seg("existing", T1)})
    status, answer = await post(http, receiver, one)
    assert status == 200, answer
    assert answer == {"profiles": 1, "identities": 1, "changes": 2, "added": 2, "removed": 0, "unchanged": 0,
                      "stale": 0, "expired": 0}  # fmt: skip
    assert seen_by_readers(store) == {"ecid-c-1": {"vip", "gold"}}  # no namespace chosen: the primary identity
    # An array, with xdm: prefixes: an exit, a stale exit (older than the last change), a new member.
    batch = [
        profile("c-1", {"vip": seg("exited", T2)}, prefixed=True),
        profile("c-1", {"gold": seg("exited", T0)}),
        profile("c-2", {"vip": {"xdm:status": "realized", "xdm:lastQualificationTime": T1}}, prefixed=True),
    ]
    status, answer = await post(http, receiver, batch)
    assert status == 200, answer
    # c-1 twice and c-2: two profiles
    assert (answer["profiles"], answer["identities"], answer["added"], answer["removed"], answer["stale"]) == (
        2, 2, 1, 1, 1,
    )  # fmt: skip
    assert seen_by_readers(store) == {"ecid-c-1": {"gold"}, "ecid-c-2": {"vip"}}
    # Sent again (the sender retries): nothing changes.
    status, answer = await post(http, receiver, batch)
    assert (status, answer["added"], answer["removed"]) == (200, 0, 0)
    assert seen_by_readers(store) == {"ecid-c-1": {"gold"}, "ecid-c-2": {"vip"}}


async def test_several_identity_namespaces(start: StartReceiver, http: aiohttp.ClientSession, store: SyncStore) -> None:
    from audience_sync.formats.xdm import XdmOptions
    from audience_sync.receive.app import AppOptions
    from audience_sync.receive.payloads import PayloadOptions

    receiver = await start(app=AppOptions(PayloadOptions(XdmOptions(("ECID", "CRMID")))))
    status, answer = await post(http, receiver, [profile("c-1", {"vip": seg("realized", T1)})])
    assert (status, answer["profiles"], answer["identities"], answer["added"]) == (200, 1, 2, 2)
    assert seen_by_readers(store) == {"ecid-c-1": {"vip"}, "c-1": {"vip"}}


async def test_every_id_of_each_namespace(start: StartReceiver, http: aiohttp.ClientSession, store: SyncStore) -> None:
    """One person, two devices: AEP lists two ECIDs; each id of each chosen namespace gets the memberships."""
    from audience_sync.formats.xdm import XdmOptions
    from audience_sync.receive.app import AppOptions
    from audience_sync.receive.payloads import PayloadOptions

    receiver = await start(app=AppOptions(PayloadOptions(XdmOptions(("ecid", "email")))))
    body = {
        "identityMap": {"ECID": [{"id": "e-1"}, {"id": "e-2"}], "Email": [{"id": "ada@example.com"}]},
        "segmentMembership": {"ups": {"vip": seg("realized", T1)}},
    }
    status, answer = await post(http, receiver, [body])
    assert (status, answer["profiles"], answer["identities"], answer["added"]) == (200, 1, 3, 3)
    assert seen_by_readers(store) == {"e-1": {"vip"}, "e-2": {"vip"}, "ada@example.com": {"vip"}}
    # The same person again with a third device, and a record: two profiles, five identities (the three
    # known ones already have this qualification).
    body["identityMap"]["ECID"].append({"id": "e-3"})  # type: ignore[index]
    status, answer = await post(http, receiver, [body, {"profile_id": "p9", "audience_id": "vip"}])
    assert (answer["profiles"], answer["identities"], answer["added"], answer["stale"]) == (2, 5, 2, 3)
    assert seen_by_readers(store)["e-3"] == {"vip"}


async def test_delta_records_as_ndjson(
    receiver: RunningReceiver, http: aiohttp.ClientSession, store: SyncStore
) -> None:
    lines = [
        {"profile_id": "p1", "audience_id": "vip", "status": "realized", "event_time": T1},
        {"profile_id": "p1", "audience_id": "vip", "status": "exited", "event_time": T0},  # older: skipped
        {"profile_id": "p2", "audience_id": "vip", "valid_until": 4102444800},
    ]
    body = b"\n".join(orjson.dumps(line) for line in lines) + b"\n"
    headers = {**AUTH, "Content-Type": "application/x-ndjson"}
    async with http.post(receiver.url + "/v1/profiles", data=body, headers=headers) as response:
        assert response.status == 200
        answer = await response.json()
    assert (answer["added"], answer["stale"]) == (2, 1)
    assert seen_by_readers(store) == {"p1": {"vip"}, "p2": {"vip"}}
    assert store.read_membership("p2") == {b"1:1": b"4102444800"}


async def test_a_bad_payload_is_refused_whole_naming_the_field(
    receiver: RunningReceiver, http: aiohttp.ClientSession, store: SyncStore
) -> None:
    await post(http, receiver, profile("c-0", {"vip": seg("realized", T0)}))
    before = dump(store)
    batch = [
        profile("c-1", {"vip": seg("realized", T1)}),
        profile("c-2", {"seg-2": seg("realized", "yesterday")}),
        profile("c-3", {"seg-1": {"status": "qualified"}}),
        17,
        {"profile_id": "p", "audience_id": ""},
    ]
    status, answer = await post(http, receiver, batch)
    assert status == 400
    assert answer["errors"] == [
        "[1].segmentMembership.ups.seg-2.lastQualificationTime: bad timestamp 'yesterday' "
        "(expected ISO 8601 or epoch seconds)",
        "[2].segmentMembership.ups.seg-1.status: unknown status 'qualified' "
        "(expected one of realized, existing, exited, add, remove)",
        "[3]: expected a JSON object, got number",
        "[4].audience_id: empty",
    ]
    assert answer["error"] == answer["errors"][0] and answer["bad_items"] == 4
    assert dump(store) == before  # c-1, which was good, is not written either
    for body, error in [
        (b"{", "body: not JSON"),
        (b"\xff\xfe", "body: not JSON (invalid UTF-8 at byte offset 0)"),
        (b'"x"', "body: expected a JSON object, got string"),
        (orjson.dumps({"identityMap": {"CRMID": [{"id": "c"}]}}), "identityMap: no primary identity"),
    ]:
        status, answer = await post(http, receiver, body)
        assert status == 400 and answer["error"].startswith(error), answer
    assert dump(store) == before


async def test_credentials(receiver: RunningReceiver, http: aiohttp.ClientSession, store: SyncStore) -> None:
    from tests.audience_sync.receive.conftest import CLIENT_ID, CLIENT_SECRET, DECIDE_ONLY_TOKEN

    body = [profile("c-1", {"vip": seg("realized", T1)})]
    for headers, expected in [
        ({}, 401),
        ({"Authorization": "Bearer not-a-token-of-ours"}, 401),
        ({"Authorization": "Basic eDp5"}, 401),
        ({"Authorization": f"Bearer {DECIDE_ONLY_TOKEN}"}, 403),
        ({"Authorization": "Bearer ast1.YWVwLWRlc3RpbmF0aW9u.9999999999.forged"}, 401),
    ]:
        status, answer = await post(http, receiver, body, headers)
        assert status == expected, (headers, answer)
    assert dump(store) == {}
    # OAuth2 client credentials: form fields, or HTTP Basic.
    token_url = receiver.url + "/oauth/token"
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    async with http.post(token_url, data=form) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        issued = await response.json()
    assert (issued["token_type"], issued["expires_in"]) == ("Bearer", 60)
    status, _ = await post(http, receiver, body, {"Authorization": f"Bearer {issued['access_token']}"})
    assert status == 200
    grant = {"grant_type": "client_credentials"}
    async with http.post(token_url, data=grant, headers=basic(CLIENT_ID, CLIENT_SECRET)) as response:
        assert response.status == 200
    for data, headers, expected in [
        ({**form, "client_secret": "wrong-wrong-wrong-wrong"}, {}, 401),
        ({**form, "grant_type": "password"}, {}, 400),
        (grant, basic(CLIENT_ID, "nope"), 401),
        (grant, {"Authorization": "Basic !!"}, 401),
        (grant, {}, 401),
    ]:
        async with http.post(token_url, data=data, headers=headers) as response:
            assert response.status == expected, data


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_issued_tokens_expire_and_are_bound_to_the_secret(access: Any) -> None:
    import pytest

    from audience_sync.receive.auth import Authenticator, Client, Refused
    from tests.audience_sync.receive.conftest import CLIENT_ID, CLIENT_SECRET

    authenticator = Authenticator(access)
    token, lifetime = authenticator.issue(CLIENT_ID, CLIENT_SECRET, now=1000.0)
    authenticator.check_push(f"Bearer {token}", now=1000.0 + lifetime - 1)
    with pytest.raises(Refused, match="expired"):
        authenticator.check_push(f"Bearer {token}", now=1000.0 + lifetime)
    rotated = type(access)(access.tokens, {CLIENT_ID: Client.of_secret("another-secret-entirely")}, access.token_ttl)
    with pytest.raises(Refused, match="signature"):
        Authenticator(rotated).check_push(f"Bearer {token}", now=1000.0)


async def test_a_body_over_the_limit_gets_413(start: StartReceiver, http: aiohttp.ClientSession, store: Any) -> None:
    from audience_sync.receive.app import AppOptions

    receiver = await start(app=AppOptions(max_body=1000))
    big = [profile(f"c-{i}", {"vip": seg("realized", T1)}) for i in range(50)]
    status, _ = await post(http, receiver, big)
    assert status == 413
    assert dump(store) == {}
    status, _ = await post(http, receiver, big[:1])
    assert status == 200


async def test_redis_not_answering_gets_503(start: StartReceiver, http: aiohttp.ClientSession) -> None:
    receiver = await start(redis_url=f"redis://127.0.0.1:{free_port()}")
    status, answer = await post(http, receiver, [profile("c-1", {"vip": seg("realized", T1)})])
    assert status == 503 and "Redis unavailable" in answer["error"]
    async with http.get(receiver.url + "/health") as response:
        assert response.status == 503
    async with http.get(receiver.url + "/metrics") as response:
        assert 'audience_sync_receive_requests_total{endpoint="/v1/profiles",status="503"} 1.0' in await response.text()


async def health(http: aiohttp.ClientSession, receiver: RunningReceiver) -> tuple[int, dict[str, str]]:
    async with http.get(receiver.url + "/health") as response:
        return response.status, await response.json()


async def test_health_fails_while_redis_refuses_writes_and_recovers_after(
    start: StartReceiver, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Readiness says what a push would meet: a full Redis (OOM) or a replica (READONLY) answers PING but
    refuses every push, so the receiver is not ready then, and is again once Redis takes writes."""
    caplog.set_level(logging.WARNING, logger="audience_sync.receive")
    with EmbeddedRedis() as own:  # a redis-server of this test's own: it is made to refuse writes
        admin = redis.Redis.from_url(own.url)
        receiver = await start(redis_url=own.url)
        push = [profile("c-1", {"vip": seg("realized", T1)})]
        assert await health(http, receiver) == (200, {"status": "ok"})
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")  # full: "OOM command not allowed when used memory > 'maxmemory'"
        status, answer = await health(http, receiver)
        assert status == 503 and answer["error"].startswith(
            "Redis refuses writes: OutOfMemoryError: command not allowed"
        ), answer
        assert (await post(http, receiver, push))[0] == 503  # what readiness foretold
        admin.config_set("maxmemory", "0")
        assert await health(http, receiver) == (200, {"status": "ok"})
        admin.replicaof("127.0.0.1", str(free_port()))  # a replica (of a primary that is not there): READONLY
        status, answer = await health(http, receiver)
        assert status == 503 and answer["error"].startswith(
            "Redis refuses writes: ReadOnlyError: You can't write against"
        ), answer
        admin.replicaof("NO", "ONE")
        assert await health(http, receiver) == (200, {"status": "ok"})
        assert (await post(http, receiver, push))[0] == 200
        await receiver.stop()
        admin.close()
    changes = [r.getMessage() for r in caplog.records if "ready" in r.getMessage()]
    down, up = "not ready (GET /health answers 503)", "ready again"
    assert [line.split(":")[0] for line in changes] == [down, up, down, up]  # logged once per change


async def test_health_and_metrics(receiver: RunningReceiver, http: aiohttp.ClientSession) -> None:
    async with http.get(receiver.url + "/health") as response:
        assert (response.status, await response.json()) == (200, {"status": "ok"})
    await post(http, receiver, [profile("c-1", {"vip": seg("realized", T1)}), profile("c-2", {})])
    await post(http, receiver, [17])
    async with http.get(receiver.url + "/nowhere") as response:
        assert response.status == 404
    async with http.get(receiver.url + "/metrics") as response:
        text = await response.text()
    for line in [
        'audience_sync_receive_requests_total{endpoint="/v1/profiles",status="200"} 1.0',
        'audience_sync_receive_requests_total{endpoint="/v1/profiles",status="400"} 1.0',
        'audience_sync_receive_requests_total{endpoint="other",status="404"} 1.0',
        "audience_sync_receive_profiles_total 1.0",  # c-2 has no membership: nothing to apply
        "audience_sync_receive_identities_total 1.0",
        'audience_sync_receive_changes_total{result="added"} 1.0',
        'audience_sync_receive_request_seconds_count{endpoint="/v1/profiles"} 2.0',
    ]:
        assert line in text, line


async def test_https(start: StartReceiver, certs: Any, store: SyncStore) -> None:
    import ssl

    receiver = await start(tls_cert=str(certs.server.cert), tls_key=str(certs.server.key))
    assert receiver.url.startswith("https://")
    context = ssl.create_default_context(cafile=str(certs.ca.cert))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as https:
        status, _ = await post(https, receiver, [profile("c-1", {"vip": seg("realized", T1)})])
    assert status == 200
    assert seen_by_readers(store) == {"ecid-c-1": {"vip"}}


def test_credentials_files(tmp_path: Any) -> None:
    import pytest

    from audience_sync.receive.auth import Access, Authenticator, Refused
    from inbound_common.secret_files import AuthConfigError

    path = tmp_path / "tokens"
    path.write_text("# ops\nall-scopes-0123456789\n")
    everything = Access.load(str(path), None, {}, 60)
    Authenticator(everything).check_push("Bearer all-scopes-0123456789", now=0)
    env = {"AUDIENCE_SYNC_RECEIVE_TOKENS": "env-token-0123456789,other-token-0123456"}
    from_env = Access.load(None, None, env, 60)
    Authenticator(from_env).check_push("bearer other-token-0123456", now=0)
    with pytest.raises(Refused):
        Authenticator(from_env).check_push("Bearer all-scopes-0123456789", now=0)
    path.write_text("short\n")
    with pytest.raises(AuthConfigError, match=rf"{path}:1: a token must be at least 16 characters"):
        Access.load(str(path), None, {}, 60)
    path.write_text("push-token-0123456789 audience\n")  # a misspelt scope: refused, not a token that gets 403
    with pytest.raises(AuthConfigError, match=rf"{path}:1: unknown scope 'audience'"):
        Access.load(str(path), None, {}, 60)
    with pytest.raises(AuthConfigError, match="no credentials"):
        Access.load(None, None, {}, 60)


def test_the_command_refuses_to_start_without_credentials(capsys: Any, redis_url: str, tmp_path: Any) -> None:
    from tests.audience_sync.helpers import cli

    status, _, err = cli(capsys, "receive", "--redis-url", redis_url)
    assert status == 2 and "no credentials: pass --token-file, --oauth-clients" in err
    status, _, err = cli(capsys, "receive", "--redis-url", redis_url, "--no-auth", "--tls-cert", "x.pem")
    assert status == 2 and "--tls-cert and --tls-key go together" in err
    clients = tmp_path / "clients"
    clients.write_text("aep short\n")
    status, _, err = cli(capsys, "receive", "--redis-url", redis_url, "--oauth-clients", str(clients))
    assert status == 2 and f"{clients}:1: expected '<client id> <secret>'" in err and "short" not in err.split(":1:")[1]
