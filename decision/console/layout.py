"""The console's page frame (title, navigation, sign-out), its style sheet, and the page of an error."""

from __future__ import annotations

from decision.console.markup import Html, html, join
from decision.present.outcomes_html import EXTRA_STYLE, STYLE

# (path, label): the navigation, in order.
PAGES = (
    ("/profile", "Profile"),
    ("/offers", "Offers and experiments"),
    ("/changes", "Changes"),
    ("/live", "Live"),
)

CSS = (
    STYLE
    + EXTRA_STYLE
    + """
body { margin: 0; }
header { background: #1f3f66; color: #fff; padding: 0.6em 2em; display: flex; align-items: center; gap: 2em; }
header a { color: #fff; text-decoration: none; } header a.here { text-decoration: underline; font-weight: bold; }
header .brand { font-weight: bold; } header nav { display: flex; gap: 1.4em; flex: 1; }
header form { margin: 0; } header button { background: none; border: 1px solid #fff; color: #fff; cursor: pointer; }
main { margin: 1.5em 2em 3em; max-width: 1200px; }
form.search, form.inline { display: flex; gap: 0.6em; align-items: end; flex-wrap: wrap; margin: 0.8em 0; }
label { display: flex; flex-direction: column; font-size: 12px; color: #444; gap: 2px; }
input, select, textarea, button { font: inherit; } textarea { font-family: ui-monospace, monospace; }
button.primary { background: #1f3f66; color: #fff; border: 0; padding: 4px 14px; border-radius: 3px; cursor: pointer; }
.error { border-left: 4px solid #a33; padding: 0.4em 1em; background: #fbeeee; }
.hint { color: #555; font-size: 13px; }
.selected td { background: #e4f1e4; } .fallback td { background: #f1f1e4; }
table.data td, table.data th { text-align: left; vertical-align: top; }
code, .value { font-family: ui-monospace, monospace; } .value { white-space: pre-wrap; word-break: break-all; }
.cards { display: flex; gap: 1.5em; flex-wrap: wrap; } .card { border: 1px solid #ddd; padding: 0.6em 1em; }
.remedy { margin: 0.4em 0; } .open { color: #a33; font-weight: bold; } .closed { color: #2a7a2a; }
.diff-add { color: #2a7a2a; } .diff-remove { color: #a33; } .diff-change { color: #8a6d00; }
"""
)


def page(title: str, body: Html, *, here: str = "", signed_in: bool = True, refresh: int | None = None) -> Html:
    """A whole page: ``body`` under the navigation (``here``: the current page's path)."""
    nav = join(
        html('<a href="{}" class="{}">{}</a>', path, "here" if path == here else "", label) for path, label in PAGES
    )
    sign_out = (
        html('<form method="post" action="/logout"><button type="submit">Sign out</button></form>')
        if signed_in
        else Html("")
    )
    head_extra = html('<meta http-equiv="refresh" content="{}">', refresh) if refresh else Html("")
    return html(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">{}'
        '<title>{} — decision console</title><link rel="stylesheet" href="/console.css"></head>'
        '<body><header><a class="brand" href="/">decision console</a><nav>{}</nav>{}</header>'
        "<main><h1>{}</h1>{}</main></body></html>",
        head_extra,
        title,
        nav if signed_in else Html(""),
        sign_out,
        title,
        body,
    )


def error_page(status: int, title: str, message: str, *, signed_in: bool = True, hint: Html | str = "") -> Html:
    """The page of a failure: what went wrong in one sentence, and what to do about it."""
    body = html('<p class="error">{}</p>', message)
    if hint:
        body = html('{}<p class="hint">{}</p>', body, hint)
    return page(f"{title} ({status})", body, signed_in=signed_in)
