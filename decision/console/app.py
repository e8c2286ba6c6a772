"""The console's web application (aiohttp): its routes, its sign-in, its headers and its error pages.

Every page is rendered on the server from the same code as the commands (decision.service, decision.core,
decision.present) through ``decision.console.markup``, which escapes every value. No script runs: the
Content-Security-Policy forbids all of it (``script-src 'none'``), styles come from the console's own sheet
only, and the pages may not be framed. A failure is a page of its own with its status: 400 bad input, 401 not
signed in, 403 no ``console`` scope or a cross-site form, 404 unknown, 409 nothing published, 413 too large,
502 the decision service failed, 503 Redis unavailable.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from decision.console.backend import Backend
from decision.console.changes import MAX_CANDIDATE, changes_page, compare_page, diff_page
from decision.console.errors import PageError
from decision.console.layout import CSS, error_page, page
from decision.console.live import live_page
from decision.console.markup import Html, html, link
from decision.console.offers import offers_page
from decision.console.profile import decide_page, profile_page, why_not_page
from decision.console.sessions import CONSOLE_SCOPE, COOKIE, Identity, Sessions, local_path
from decision.rules.errors import RulesetInvalid
from decision.rules.types import utc_iso
from decision.service.rulesets import change_summary
from decision.store.connect import StoreError

log = logging.getLogger(__name__)

BACKEND = web.AppKey("backend", Backend)
SESSIONS = web.AppKey("sessions", Sessions)
IDENTITY = web.RequestKey("identity", Identity)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make a browser send "Origin: null" with forms
    "Cache-Control": "no-store",
}
PUBLIC = frozenset({"/login", "/console.css"})
MAX_TOKEN = 4096


def _html(body: Html, status: int = 200) -> web.Response:
    return web.Response(text=str(body), status=status, content_type="text/html", charset="utf-8")


def login_form(next_path: str = "/", message: str = "") -> Html:
    said = html('<p class="error">{}</p>', message) if message else Html("")
    return html(
        '{}<form method="post" action="/login"><input type="hidden" name="next" value="{}">'
        '<p><label>Token<input type="password" name="token" size="50" autocomplete="current-password" required '
        'autofocus></label></p><p><button class="primary" type="submit">Sign in</button></p></form>'
        '<p class="hint">A bearer token of the decision service with the <code>console</code> scope (a line '
        "<code>&lt;token&gt; console</code> of the console's <code>--auth-tokens-file</code>).</p>",
        said,
        next_path,
    )


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(SECURITY_HEADERS)
        raise
    response.headers.update(SECURITY_HEADERS)
    return response


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as a page with its status."""
    signed_in = IDENTITY in request
    try:
        return await handler(request)
    except PageError as exc:
        return _html(error_page(exc.status, exc.title, exc.message, hint=exc.hint, signed_in=signed_in), exc.status)
    except web.HTTPRedirection:
        raise
    except web.HTTPException as exc:
        reason = exc.reason or "error"
        message = {404: f"no page at {request.path}", 405: f"{request.method} is not allowed here",
                   413: f"the request is larger than this console takes ({MAX_CANDIDATE // 1024} KiB)"}.get(
            exc.status, reason)  # fmt: skip
        return _html(error_page(exc.status, reason, message, signed_in=signed_in), exc.status)
    except StoreError as exc:
        message = f"Redis did not answer: {type(exc).__name__}: {exc}".rstrip(": ")
        return _html(error_page(503, "Redis unavailable", message, signed_in=signed_in,
                                hint="The page will show again once Redis answers."), 503)  # fmt: skip
    except RulesetInvalid as exc:
        return _html(error_page(500, "Invalid published ruleset", f"the active ruleset does not validate: {exc}",
                                signed_in=signed_in), 500)  # fmt: skip
    except Exception:
        log.exception("console: %s %s failed", request.method, request.path)
        return _html(error_page(500, "Internal error", "the console failed on this page (see its log)",
                                signed_in=signed_in), 500)  # fmt: skip


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


@web.middleware
async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Signed in with a token holding the console scope (session cookie or bearer header), or refused."""
    if request.method == "POST" and not _same_origin(request):
        raise PageError(403, "Cross-site request refused", "this form was posted from another site")
    if request.path in PUBLIC:
        return await handler(request)
    identity = request.app[SESSIONS].identify(request.headers.get("Authorization"), request.cookies.get(COOKIE))
    if identity is None:
        response = _html(page("Sign in", login_form(request.path_qs), signed_in=False), 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="decision console"'
        return response
    if not identity.allowed:
        return _refused(identity)
    request[IDENTITY] = identity
    return await handler(request)


def _refused(identity: Identity) -> web.Response:
    scopes = ", ".join(sorted(identity.scopes)) or "none"
    message = f"this token lacks the {CONSOLE_SCOPE!r} scope (it has: {scopes})"
    return _html(error_page(403, "Forbidden", message, signed_in=False, hint=html(
        'Sign in with another token: {}', link("/login", "sign in"))), 403)  # fmt: skip


# -- routes -----------------------------------------------------------------------------------------------------


async def login_get(request: web.Request) -> web.Response:
    return _html(page("Sign in", login_form(local_path(request.query.get("next"))), signed_in=False))


async def login_post(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    token, next_path = str(form.get("token", "")), local_path(str(form.get("next", "/")))
    sessions = request.app[SESSIONS]
    scopes, cookie = sessions.sign_in(token.strip()[:MAX_TOKEN])
    if scopes is None:
        body = page("Sign in", login_form(next_path, "not a token this console accepts"), signed_in=False)
        return _html(body, 401)
    if CONSOLE_SCOPE not in scopes:
        return _refused(Identity(scopes, "session"))
    response = web.HTTPSeeOther(next_path)
    response.set_cookie(COOKIE, cookie, max_age=int(sessions.lifetime), path="/", httponly=True,
                        samesite="Strict", secure=sessions.secure)  # fmt: skip
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    request.app[SESSIONS].sign_out(request.cookies.get(COOKIE))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


async def style(request: web.Request) -> web.Response:
    return web.Response(text=CSS, content_type="text/css", charset="utf-8")


def _page(title: str, here: str, render: Callable[[Backend, web.Request], Awaitable[Html]]) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return _html(page(title, await render(request.app[BACKEND], request), here=here))

    return handler


async def _home(backend: Backend, request: web.Request) -> Html:
    entry = await backend.active()
    if entry is None:
        active = html("<p>No ruleset is published to this Redis yet (<code>decision rules publish RULES</code>).</p>")
    else:
        active = html("<p>Active ruleset: <strong>{}</strong>, published {} by {}: {}.</p>", entry.version,
                      utc_iso(entry.published_at, "seconds"), entry.author or "?", change_summary(entry))  # fmt: skip
    pages = (
        ("/profile", "Profile", "what one customer is: audiences, attributes, caps; what they get, and why not"),
        ("/offers", "Offers and experiments", "how each offer is doing; can we stop the test?"),
        ("/changes", "Changes", "who published what; what a change would do before it is published"),
        ("/live", "Live", "the replicas now: decisions/s, degraded share, latency, Redis breakers"),
    )
    cards = [html('<div class="card"><h2>{}</h2><p>{}</p></div>', link(p, label), say) for p, label, say in pages]
    return html('{}<div class="cards">{}</div>', active, Html("".join(cards)))


async def _profile(backend: Backend, request: web.Request) -> Html:
    return await profile_page(backend, request.query)


async def _decide(backend: Backend, request: web.Request) -> Html:
    return await decide_page(backend, request.query)


async def _why_not(backend: Backend, request: web.Request) -> Html:
    return await why_not_page(backend, request.query)


async def _offers(backend: Backend, request: web.Request) -> Html:
    return await offers_page(backend, request.query)


async def _changes(backend: Backend, request: web.Request) -> Html:
    return await changes_page(backend)


async def _diff(backend: Backend, request: web.Request) -> Html:
    return await diff_page(backend, request.query)


async def _compare(backend: Backend, request: web.Request) -> Html:
    posted = await request.post()
    fields: dict[str, str | bytes] = {}
    for name in ("file", "candidate", "context", "sample"):
        value = posted.get(name)
        if isinstance(value, web.FileField):
            fields[name] = value.file.read(MAX_CANDIDATE + 1)
        elif value is not None:
            fields[name] = str(value)
    if any(len(v) > MAX_CANDIDATE for v in fields.values()):
        raise PageError(413, "Too large", f"the candidate is larger than {MAX_CANDIDATE // 1024} KiB")
    return await compare_page(backend, fields)


def build_app(backend: Backend, sessions: Sessions) -> web.Application:
    """The console; ``backend`` is started with the application and stopped with it."""
    app = web.Application(middlewares=[headers, errors, access], client_max_size=MAX_CANDIDATE + 64 * 1024)
    app[BACKEND] = backend
    app[SESSIONS] = sessions

    async def started(app: web.Application) -> None:
        await backend.start()

    async def stopped(app: web.Application) -> None:
        await backend.stop()

    app.on_startup.append(started)
    app.on_cleanup.append(stopped)
    live_refresh = max(2, int(backend.config.scrape_interval))
    routes = [
        web.get("/", _page("Console", "/", _home)),
        web.get("/login", login_get),
        web.post("/login", login_post),
        web.post("/logout", logout),
        web.get("/console.css", style),
        web.get("/profile", _page("Profile", "/profile", _profile)),
        web.get("/decide", _page("Decide as this profile", "/profile", _decide)),
        web.get("/why-not", _page("Why not this offer?", "/profile", _why_not)),
        web.get("/offers", _page("Offers and experiments", "/offers", _offers)),
        web.get("/changes", _page("Changes", "/changes", _changes)),
        web.get("/changes/diff", _page("Changes: diff", "/changes", _diff)),
        web.post("/changes/compare", _page("Changes: a candidate compared", "/changes", _compare)),
        web.get("/live", _live_handler(live_refresh)),
    ]
    app.add_routes(routes)
    return app


def _live_handler(refresh: int) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return _html(page("Live", live_page(request.app[BACKEND]), here="/live", refresh=refresh))

    return handler


# -- running -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listener:
    host: str = "127.0.0.1"
    port: int = 8080  # 0: a free port
    ssl_context: ssl.SSLContext | None = None  # HTTPS


class RunningConsole:
    def __init__(self, runner: web.AppRunner, port: int, scheme: str, host: str) -> None:
        self.runner = runner
        self.port = port
        self.url = f"{scheme}://{host}:{port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_console(backend: Backend, sessions: Sessions, listener: Listener) -> RunningConsole:
    app = build_app(backend, sessions)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = listener.ssl_context
    try:
        site = web.TCPSite(runner, listener.host, listener.port, ssl_context=context)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    port = int(runner.addresses[0][1])
    host = "127.0.0.1" if listener.host in ("0.0.0.0", "") else listener.host
    return RunningConsole(runner, port, "https" if context else "http", host)


async def serve(backend: Backend, sessions: Sessions, listener: Listener) -> None:
    """Serve until SIGTERM or SIGINT."""
    running = await start_console(backend, sessions, listener)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"listening on {running.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await running.stop()
