"""The console over HTTP on loopback: a real console, a real decision server and Redis, the retail example.

Statuses, sign-in and scopes, headers, escaping, error pages, and every page's figures against the code the
commands use (service.inspection, service.reporting, core.comparison, the server's own why-not answer).
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import AsyncIterator
from html import unescape

import aiohttp
import pytest
import redis.asyncio as aioredis
from yarl import URL

from decision.api.tls import TlsConfigError, server_ssl_context
from decision.console.app import Listener, RunningConsole, start_console
from decision.console.backend import Backend, ConsoleConfig, DecideTarget
from decision.console.sessions import COOKIE, Sessions
from decision.core.comparison import compare
from decision.core.simulation import Profile
from decision.present.outcomes import rate_text, stop_text
from decision.rules.engine import compile_and_load
from decision.service.inspection import inspect_profile, published_ruleset
from decision.service.reporting import ReportRequest, read_report_by_day
from decision.service.rulesets import change_summary, parse_checked, parse_published
from decision.service.samples import sample_profiles
from decision.store.connect import connect
from decision.store.control import ControlStore
from decision.store.embedded import free_port
from inbound_common.codecs import PublishedRuleset
from inbound_common.keys import KeySpace
from tests.certs import TestCertificates
from tests.conftest import StartServer, decision_stub
from tests.decision.console.world import (
    CONSOLE_TOKEN,
    DECIDE_TOKEN,
    ONE_MISS,
    SCRIPT_ATTRIBUTES,
    SCRIPT_ID,
    SCRIPTED,
    TOKENS,
    V1,
    V2,
    World,
    candidate,
    retail_world,
)
from tests.decision.helpers import decide_request
from tests.waiting import eventually

BEARER = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}


@pytest.fixture
async def world(start_server: StartServer, redis_url: str) -> World:
    return await retail_world(start_server, redis_url)


async def started(config: ConsoleConfig) -> RunningConsole:
    return await start_console(Backend(config), Sessions(TOKENS), Listener(port=0))


@pytest.fixture
async def console(world: World) -> AsyncIterator[RunningConsole]:
    config = ConsoleConfig(
        world.redis_url, decide=DecideTarget(world.target), metrics_urls=(world.metrics_url,), scrape_interval=0.2
    )
    running = await started(config)
    yield running
    await running.stop()


async def get(console: RunningConsole, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(console.url + path, headers=headers or BEARER) as response:
        return response.status, await response.text()


def text_of(page: str) -> str:
    """The page's text as a reader sees it (tags dropped, entities decoded)."""
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


async def test_every_page_needs_a_token_with_the_console_scope(console: RunningConsole) -> None:
    pages = ["/", "/profile?id=p-1001", "/offers", "/changes", "/live", "/decide?id=p-1001"]
    for path in pages:
        async with aiohttp.ClientSession() as http:
            async with http.get(console.url + path) as response:
                assert response.status == 401, path
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                assert 'action="/login"' in await response.text()
            async with http.get(console.url + path, headers={"Authorization": f"Bearer {DECIDE_TOKEN}"}) as response:
                assert response.status == 403, path
                assert "lacks the 'console' scope" in text_of(await response.text())
            async with http.get(console.url + path, headers={"Authorization": "Bearer not-a-token-at-all"}) as response:
                assert response.status == 401, path
        status, _ = await get(console, path)
        assert status in (200, 400), path  # /decide without its fields is bad input, once signed in


async def test_signing_in_gives_a_strict_cookie_holding_no_token(console: RunningConsole) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies of 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        origin = {"Origin": console.url}
        async with http.post(console.url + "/login", data={"token": "wrong-token-0123456789"}, headers=origin,
                             allow_redirects=False) as response:  # fmt: skip
            assert response.status == 401
        async with http.post(console.url + "/login", data={"token": DECIDE_TOKEN}, headers=origin,
                             allow_redirects=False) as response:  # fmt: skip
            assert response.status == 403
        async with http.post(console.url + "/login", data={"token": CONSOLE_TOKEN, "next": "//evil.example/x"},
                             headers=origin, allow_redirects=False) as response:  # fmt: skip
            assert response.status == 303 and response.headers["Location"] == "/"
            cookie = response.headers["Set-Cookie"]
        attributes = [part.strip().lower() for part in cookie.split(";")]
        assert "httponly" in attributes and "samesite=strict" in attributes and "path=/" in attributes
        assert "secure" not in attributes  # plain HTTP here; with --tls-cert it is Secure (test_sessions)
        assert CONSOLE_TOKEN not in cookie
        async with http.get(console.url + "/profile?id=p-1001") as response:
            assert response.status == 200
        async with http.post(console.url + "/logout", headers={"Origin": "http://evil.example"},
                             allow_redirects=False) as response:  # fmt: skip
            assert response.status == 403  # a form posted from another site
        async with http.post(console.url + "/logout", headers=origin, allow_redirects=False) as response:
            assert response.status == 303
        async with http.get(console.url + "/profile?id=p-1001") as response:
            assert response.status == 401
        forged = {COOKIE: cookie.split(";")[0].split("=", 1)[1][:-4] + "0000"}
        http.cookie_jar.update_cookies(forged, URL(console.url))
        async with http.get(console.url + "/profile?id=p-1001") as response:
            assert response.status == 401


async def test_every_response_forbids_scripts_and_framing(console: RunningConsole) -> None:
    async with aiohttp.ClientSession() as http:
        for path, headers in [("/", BEARER), ("/", {}), ("/nope", BEARER), ("/console.css", {})]:
            async with http.get(console.url + path, headers=headers) as response:
                policy = response.headers["Content-Security-Policy"]
                assert "script-src 'none'" in policy and "frame-ancestors 'none'" in policy, path
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                assert response.headers["Cache-Control"] == "no-store"
    status, page = await get(console, "/nope")
    assert status == 404 and "no page at /nope" in page


async def test_the_profile_page_shows_what_decision_profile_reads(console: RunningConsole, world: World) -> None:
    status, page = await get(console, "/profile?id=p-1001")
    assert status == 200
    store = ControlStore(connect(world.redis_url, timeout=5.0), KeySpace())
    try:
        ruleset = await published_ruleset(store)
        view = await inspect_profile(store.client, store.keys, "p-1001", ruleset=ruleset, now=time.time())
    finally:
        await store.close()
    said = text_of(page)
    for membership in view.stored.memberships:
        assert membership.audience_id is not None and membership.audience_id in said
    assert "tier" in said and "1234.5" in said and "counts" in said
    for usage in view.controls:
        assert f"{usage.count} of {usage.limit}" in said
    assert "web_banners_weekly" in said and "Decide as this profile" in said
    status, page = await get(console, "/profile?id=nobody-here")
    assert status == 404 and "no profile 'nobody-here' in Redis" in text_of(page)
    status, page = await get(console, "/profile?id=a%01b")
    assert status == 400


async def test_values_are_shown_as_text_never_as_markup(console: RunningConsole) -> None:
    status, page = await get(console, f"/profile?id={SCRIPTED}")
    assert status == 200
    for _, value in SCRIPT_ATTRIBUTES.values():
        assert value not in page  # never as markup...
        assert value in text_of(page)  # ... always as text
    async with (
        aiohttp.ClientSession() as http,
        http.get(console.url + "/profile", params={"id": SCRIPT_ID}, headers=BEARER) as response,
    ):
        assert response.status == 200
        page = await response.text()
    assert SCRIPT_ID not in page and SCRIPT_ID in text_of(page)
    assert "<script" not in page.lower()


async def test_decide_as_and_why_not_are_the_servers_answers(console: RunningConsole, world: World) -> None:
    query = {"id": ONE_MISS, "channel": "web", "placement": "home_banner", "context": "page_path=/"}
    async with aiohttp.ClientSession() as http:
        async with http.get(console.url + "/decide", params=query, headers=BEARER) as response:
            assert response.status == 200
            decided = text_of(await response.text())
        async with http.get(console.url + "/why-not", params={**query, "offer": "vip_early_access"},
                            headers=BEARER) as response:  # fmt: skip
            assert response.status == 200
            why = text_of(await response.text())
    assert "vip_early_access in_excluded_audience in excluded audience 'email-unsubscribed'" in decided
    assert "welcome_generic selected" in decided  # the banner it got instead
    async with decision_stub(world.server.port) as stub:
        request = decide_request(ONE_MISS, ("home_banner",), context={"page_path": "/"}, why_not=["vip_early_access"])
        [answer] = (await stub.Decide(request, timeout=10)).why_not
    [remedy] = answer.remedies  # missed by one condition: one change
    assert [c.text for c in remedy.changes] == ["the profile leaves audience 'email-unsubscribed'"]
    assert remedy.text in why and "Outcome: in_excluded_audience" in why
    # Bad input and an unreachable service are pages with their status.
    status, _ = await get(console, "/decide?id=p-1001&channel=web&placement=home_banner&context=no-equals-sign")
    assert status == 400
    status, page = await get(console, "/decide?id=p-1001&channel=web&placement=nowhere")
    assert status == 400 and "unknown placement 'nowhere'" in text_of(page)


async def test_the_offers_page_shows_the_core_report(console: RunningConsole, world: World) -> None:
    status, page = await get(console, "/offers")
    assert status == 200
    said = text_of(page)
    day = re.search(r"today is (\d{4}-\d\d-\d\d)", said)
    assert day is not None
    store = ControlStore(connect(world.redis_url, timeout=5.0), KeySpace())
    try:
        days = tuple(sorted({day.group(1)}))
        report, _ = await read_report_by_day(store, ReportRequest(days))
    finally:
        await store.close()
    assert report.offers and report.experiments and report.allocations
    for line in report.offers:
        assert rate_text(line.ctr) in said
    for experiment in report.experiments:
        assert stop_text(experiment, report.min_lift) in said
    assert report.sequential in said and report.stop_rule in said and "Sample ratio" in said
    assert "Thompson allocation now" in said and "sneaker_socks" in said
    assert page.count("<svg") >= 3
    status, page = await get(console, "/offers?from=2026-13-01")
    assert status == 400 and "from: '2026-13-01' is not a date" in text_of(page)
    status, _ = await get(console, "/offers?metric=clicks!")
    assert status == 400


async def test_changes_list_diff_and_a_candidate_compared(console: RunningConsole, world: World) -> None:
    status, page = await get(console, "/changes")
    said = text_of(page)
    assert status == 200 and f"{V2} (active)" in said and "campaign-manager" in said and "marketing-ops" in said
    entry = await _published(world, V2)
    assert change_summary(entry) in said and f"(vs {V1})" in said
    status, page = await get(console, f"/changes/diff?a={V1}&b={V2}")
    said = text_of(page)
    assert status == 200 and "~ offer welcome_generic: content" in said and "~ placement cart_upsell" in said
    status, _ = await get(console, f"/changes/diff?a={V1}&b=never-published")
    assert status == 404
    form = aiohttp.FormData()
    form.add_field("file", candidate().encode(), filename="candidate.yaml", content_type="application/x-yaml")
    form.add_field("context", "page_path=/\ncart_value=30")
    form.add_field("sample", "200")
    async with aiohttp.ClientSession() as http, http.post(console.url + "/changes/compare", data=form,
                         headers={**BEARER, "Origin": console.url}) as response:  # fmt: skip
        assert response.status == 200
        said = text_of(await response.text())
    # The core's comparison of the same sample.
    client = connect(world.redis_url, timeout=5.0)
    try:
        now = time.time()
        profiles = await sample_profiles(client, KeySpace(), 200, now)
    finally:
        await client.aclose()
    old = compile_and_load(parse_published(await _published(world, V2)))
    new = compile_and_load(parse_checked(candidate().encode(), "candidate")[0])
    result = compare(old, new, [Profile(p.profile_id, p.audiences, {"page_path": "/", "cart_value": 30.0},
                                        p.attributes) for p in profiles], now)  # fmt: skip
    assert result.changed > 0
    assert f"changed: {result.changed} of {result.decisions} decisions" in said
    moves = result.placements["home_banner"].moves
    count = moves[(("vip_early_access",), ("welcome_generic",))]
    assert count > 0 and f"vip_early_access → welcome_generic: {count}" in said
    assert "~ offer vip_early_access: eligibility" in said


async def _published(world: World, version: str) -> PublishedRuleset:
    store = ControlStore(connect(world.redis_url, timeout=5.0), KeySpace())
    try:
        entry = await store.version(version)
        assert entry is not None
        return entry
    finally:
        await store.close()


async def test_a_bad_candidate_is_refused_with_its_located_problems(console: RunningConsole) -> None:
    async with aiohttp.ClientSession() as http:
        headers = {**BEARER, "Origin": console.url}
        bad = "version: x\nplacements: [{id: home, channels: [web]}]\noffers: [{id: a, placements: [home]}]\n"
        async with http.post(console.url + "/changes/compare", data={"candidate": bad}, headers=headers) as response:
            assert response.status == 400
            assert "candidate:2: placements[0].fallback" in text_of(await response.text())
        big = "#" * (3 * 1024 * 1024)
        async with http.post(console.url + "/changes/compare", data={"candidate": big}, headers=headers) as response:
            assert response.status == 413
        yaml_bomb = "a: &a [1, 1]\nb: &b [*a, *a]\nc: !!python/object:os.system {}\n"
        async with http.post(console.url + "/changes/compare", data={"candidate": yaml_bomb},
                             headers=headers) as response:  # fmt: skip
            assert response.status == 400  # parsed as data: a tag of code is refused, nothing runs


async def test_the_live_page_reads_the_replicas_metrics(console: RunningConsole, world: World) -> None:
    async with decision_stub(world.server.port) as stub:

        async def busy() -> bool:
            await stub.Decide(decide_request("p-1001", ("home_banner",), context={"page_path": "/"}), timeout=10)
            status, page = await get(console, "/live")
            said = text_of(page)
            moving = re.search(r"up \S+ s ago [1-9][0-9.]* ", said) is not None
            return status == 200 and moving and "single: closed" in said  # the breaker is sampled every second

        await eventually(busy, "the Live page showing decisions/s above 0 and the breaker of the Redis")
    _, page = await get(console, "/live")
    assert f"ruleset {V2}" in text_of(page) and 'http-equiv="refresh"' in page


async def test_pages_say_when_redis_or_the_service_is_down(redis_client: aioredis.Redis, redis_url: str) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    running = await started(ConsoleConfig(down, decide=DecideTarget(f"127.0.0.1:{free_port()}"), redis_timeout=1.0))
    try:
        for path in ("/", "/profile?id=p-1001", "/offers", "/changes"):
            status, page = await get(running, path)
            assert status == 503 and "Redis did not answer" in text_of(page), path
    finally:
        await running.stop()
    running = await started(ConsoleConfig(redis_url, decide=DecideTarget(f"127.0.0.1:{free_port()}", deadline=1.0)))
    try:
        status, page = await get(running, "/decide?id=p-1001&channel=web&placement=home_banner")
        assert status == 502 and "did not answer" in text_of(page)
        status, page = await get(running, "/live")
        assert status == 200 and "--metrics-url" in text_of(page)
    finally:
        await running.stop()


async def test_without_a_published_ruleset_the_pages_say_so(redis_client: aioredis.Redis, redis_url: str) -> None:
    running = await started(ConsoleConfig(redis_url))
    try:
        status, page = await get(running, "/changes")
        assert status == 200 and "Nothing published yet" in text_of(page)
        status, page = await get(running, "/")
        assert status == 200 and "No ruleset is published" in text_of(page)
        async with (
            aiohttp.ClientSession() as http,
            http.post(running.url + "/changes/compare", data={"candidate": candidate()},
                      headers={**BEARER, "Origin": running.url}) as response,
        ):  # fmt: skip
            assert response.status == 409
        status, page = await get(running, "/decide?id=p-1001&channel=web&placement=home_banner")
        assert status == 503 and "without --target" in text_of(page)
    finally:
        await running.stop()


async def test_over_tls_the_session_cookie_is_secure(
    redis_client: aioredis.Redis, redis_url: str, certs: TestCertificates
) -> None:
    context = server_ssl_context(str(certs.server.cert), str(certs.server.key))
    running = await start_console(Backend(ConsoleConfig(redis_url)), Sessions(TOKENS, secure=True),
                                  Listener(port=0, ssl_context=context))  # fmt: skip
    trust = ssl.create_default_context(cafile=str(certs.ca.cert))
    try:
        assert running.url.startswith("https://")
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as http,
            http.post(running.url + "/login", data={"token": CONSOLE_TOKEN}, headers={"Origin": running.url},
                      allow_redirects=False) as response,
        ):  # fmt: skip
            assert response.status == 303
            assert "secure" in [part.strip().lower() for part in response.headers["Set-Cookie"].split(";")]
    finally:
        await running.stop()
    with pytest.raises(TlsConfigError, match="--tls-cert and --tls-key go together"):
        server_ssl_context(str(certs.server.cert), None)
    with pytest.raises(TlsConfigError, match="not a matching certificate and key"):
        server_ssl_context(str(certs.server.cert), str(certs.client.key))
