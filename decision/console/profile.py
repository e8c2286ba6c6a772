"""The Profile page (one profile as Redis holds it: ``decision profile``), "decide as this profile" (the running
service's Decide with its explanations: ``decision explain``) and Why not (``decision explain --why-not``)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from multidict import MultiMapping

from decision.api.convert import outcome_of
from decision.console.backend import Backend
from decision.console.errors import PageError
from decision.console.markup import Html, html, join, link, table
from decision.core.requests import context_of_pairs
from decision.core.types import Outcome
from decision.present.profile import (
    attribute_value_text,
    audience_text,
    change_text,
    control_text,
    duration_text,
    generation_text,
    membership_state_text,
    namespaces_text,
    reached_text,
    since_text,
    times_text,
    whose_text,
    writer_text,
)
from decision.rules.types import Ruleset, utc_iso
from decision.service.inspection import ProfileView, inspect_profile
from decision.v1 import decision_pb2

MAX_ID_BYTES = 256  # as the service (docs/api.md)
MAX_CONTEXT_TEXT = 16 * 1024
SHOWN = (Outcome.SELECTED, Outcome.FALLBACK)


def _one(query: MultiMapping[str], name: str, limit: int = 1024) -> str:
    value = query.get(name, "")
    if len(value.encode()) > limit:
        raise PageError(400, "Bad input", f"{name}: at most {limit} bytes")
    return value.strip() if name != "context" else value


def profile_id_of(query: MultiMapping[str]) -> str:
    profile_id = _one(query, "id", MAX_ID_BYTES)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in profile_id):
        raise PageError(400, "Bad input", "id: a profile id has no control characters")
    return profile_id


# -- the Profile page -------------------------------------------------------------------------------------------


def search_form(profile_id: str = "") -> Html:
    return html(
        '<form class="search" method="get" action="/profile"><label>Profile id<input name="id" value="{}" '
        'size="40" required autofocus></label><button class="primary" type="submit">Show</button></form>'
        '<p class="hint">A profile is stored under each of its ids: the id of any identity namespace audience-sync '
        "was told to write (<code>--identity-namespace</code>: ECID, CRMID, ...; else the export's primary "
        "identity or the file's profile id). The layout links no ids: another id of the same person is another "
        "profile, with its own counters.</p>",
        profile_id,
    )


async def profile_page(backend: Backend, query: MultiMapping[str]) -> Html:
    profile_id = profile_id_of(query)
    if not profile_id:
        return search_form()
    ruleset = await backend.active_ruleset()
    view = await inspect_profile(backend.control.client, backend.keys, profile_id, ruleset=ruleset, now=time.time())
    if not view.stored.found:
        where = f"{backend.keys.membership(profile_id)} nor its counters"
        raise PageError(404, "Unknown profile", f"no profile {profile_id!r} in Redis (nothing under {where})",
                        hint=search_form(profile_id))  # fmt: skip
    return join([search_form(profile_id), profile_body(view), decide_form(ruleset, profile_id)])


def profile_body(view: ProfileView) -> Html:
    stored = view.stored
    parts = [
        html(
            '<p class="hint">Read {} from {}. Ids stored {}.</p>',
            utc_iso(stored.read_at, "seconds"),
            ", ".join(stored.keys),
            namespaces_text(stored.identity_namespaces),
        ),
        html("<h2>Audiences</h2><p class=hint>registry version {}</p>", stored.registry_version),
    ]
    if stored.memberships:
        rows = [
            (audience_text(m), m.name or "-", generation_text(m), membership_state_text(m), change_text(m))
            for m in stored.memberships
        ]
        parts.append(table(("audience", "name", "generation", "state", "last change"), rows, "data"))
    else:
        parts.append(html("<p>none: the profile is in no audience</p>"))
    parts.append(html("<h2>Attributes</h2>"))
    if stored.attributes:
        cells: list[tuple[object, ...]] = [
            (
                a.name,
                html('<span class="value">{}</span>', attribute_value_text(a)),
                a.type or "?",
                utc_iso(a.event_time, "seconds") if a.event_time else "-",
                writer_text(a),
                a.state.value,
            )
            for a in stored.attributes
        ]
        parts.append(table(("name", "value", "type", "event time", "written by", "state"), cells, "data"))
    else:
        parts.append(html("<p>none</p>"))
    parts.append(_counters(view))
    return join(parts)


def _counters(view: ProfileView) -> Html:
    stored = view.stored
    expiry = (
        "" if stored.counters_ttl_ms is None else f"; they expire in {duration_text(stored.counters_ttl_ms / 1000)}"
    )
    if view.ruleset_version is None:
        stored_rows = [(name, times_text(times)) for name, times in view.unread_counters.items()]
        return html(
            "<h2>Counters</h2><p class=hint>no ruleset published: shown as stored{}</p>{}",
            expiry,
            table(("field", "times"), stored_rows, "data") if stored_rows else html("<p>none</p>"),
        )
    rows = [
        (whose_text(u), control_text(u), f"{u.count} of {u.limit}", since_text(u), reached_text(u))
        for u in view.controls
    ]
    parts = [
        html(
            "<h2>Caps and contact policies</h2><p class=hint>as ruleset {} counts them{}</p>",
            view.ruleset_version,
            expiry,
        ),
        table(("offer / policy", "control", "counted", "since", "state"), rows, "data")
        if rows
        else html("<p>the ruleset has none</p>"),
    ]
    parts += [html("<p>experiment {}: keeps variant {}</p>", e, v) for e, v in sorted(view.variants.items())]
    parts += [
        html("<p>{} (not read by this ruleset): {}</p>", name, times_text(t))
        for name, t in sorted(view.unread_counters.items())
    ]
    return join(parts)


# -- decide as this profile ---------------------------------------------------------------------------------------


def decide_form(ruleset: Ruleset | None, profile_id: str, chosen: DecideForm | None = None) -> Html:
    """The form of a Decide for this profile: a channel, placements, the request's context."""
    if ruleset is None:
        return html("<h2>Decide as this profile</h2><p>No ruleset is published: nothing to decide with.</p>")
    channels = sorted({c for p in ruleset.placements.values() for c in p.channels})
    channel = chosen.channel if chosen else ("web" if "web" in channels else channels[0] if channels else "")
    wanted = set(chosen.placements) if chosen else {p.id for p in ruleset.placements.values() if channel in p.channels}
    channel_options = join(html("<option{}>{}</option>", " selected" if c == channel else "", c) for c in channels)
    boxes = join(
        html(
            '<label class="check"><span><input type="checkbox" name="placement" value="{}"{}> {}</span></label>',
            p.id,
            " checked" if p.id in wanted else "",
            f"{p.id} ({', '.join(sorted(p.channels))})",
        )
        for p in ruleset.placements.values()
    )
    declared = ", ".join(f"{name} ({kind})" for name, kind in ruleset.attributes.items()) or "none declared"
    return html(
        "<h2>Decide as this profile</h2>"
        '<form class="inline" method="get" action="/decide"><input type="hidden" name="id" value="{}">'
        "<label>Channel<select name=channel>{}</select></label><div>{}</div>"
        '<label>Context, key=value a line<textarea name="context" rows="4" cols="40">{}</textarea></label>'
        '<button class="primary" type="submit">Decide</button></form>'
        '<p class="hint">The request\'s context: a value that parses as JSON is taken as such (120, true, ["a"]). '
        "The ruleset declares: {}. The decision is the running service's, as a dry run: what the profile would get "
        "now, counted nowhere (as <code>decision explain</code>).</p>",
        profile_id,
        channel_options,
        boxes,
        chosen.context_text if chosen else "",
        declared,
    )


@dataclass(frozen=True, slots=True)
class DecideForm:
    profile_id: str
    channel: str
    placements: tuple[str, ...]
    context_text: str
    context: Mapping[str, Any]

    def query(self, **more: str) -> list[tuple[str, object]]:
        pairs: list[tuple[str, object]] = [("id", self.profile_id), ("channel", self.channel)]
        pairs += [("placement", p) for p in self.placements]
        if self.context_text.strip():
            pairs.append(("context", self.context_text))
        return pairs + list(more.items())


def decide_form_of(query: MultiMapping[str]) -> DecideForm:
    profile_id = profile_id_of(query)
    channel = _one(query, "channel", 256)
    placements = tuple(dict.fromkeys(p.strip() for p in query.getall("placement", []) if p.strip()))
    text = _one(query, "context", MAX_CONTEXT_TEXT)
    if not profile_id:
        raise PageError(400, "Bad input", "id: the profile id is required")
    if not channel:
        raise PageError(400, "Bad input", "channel: required")
    if not placements:
        raise PageError(400, "Bad input", "placement: choose at least one placement")
    if len(placements) > 64:
        raise PageError(400, "Bad input", "placement: at most 64")
    lines = [(f"context line {n}:", line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    try:
        context = context_of_pairs(lines)
    except ValueError as exc:
        raise PageError(400, "Bad input", str(exc)) from None
    return DecideForm(profile_id, channel, placements, text, context)


def _request(form: DecideForm, why_not: Sequence[str] = ()) -> decision_pb2.DecideRequest:
    request = decision_pb2.DecideRequest(
        profile_id=form.profile_id,
        channel=form.channel,
        placements=[decision_pb2.PlacementRequest(placement_id=p) for p in form.placements],
        request_id=f"console-{int(time.time() * 1000)}",
        explain=True,
        why_not=list(why_not),
    )
    for key, value in form.context.items():
        try:
            json_format.ParseDict(value, request.context[key])
        except json_format.ParseError as exc:
            raise PageError(400, "Bad input", f"context {key}: {exc}") from None
    return request


def _content_title(content_json: str) -> str:
    try:
        content = orjson.loads(content_json)
    except orjson.JSONDecodeError:
        return content_json[:80]
    if isinstance(content, dict):
        for key in ("title", "headline", "text", "name"):
            if isinstance(content.get(key), str):
                return str(content[key])
    return content_json[:80]


def propositions(response: decision_pb2.DecideResponse) -> Html:
    parts = []
    for proposition in response.propositions:
        rows = [
            (
                rank,
                item.offer_id,
                "fallback" if item.fallback else item.rule,
                item.priority,
                f"{item.score:g}" if item.score else "",
                _content_title(item.content_json),
                f"{item.experiment_id}: {item.variant}" if item.experiment_id else "",
                html('<span class="value">{}</span>', item.content_json),
            )
            for rank, item in enumerate(proposition.items, 1)
        ]
        held = f" — experiment {proposition.experiment_id}: {proposition.variant}" if proposition.experiment_id else ""
        parts.append(html("<h3>{}{}</h3>", proposition.placement_id, held))
        parts.append(
            table(("#", "offer", "rule", "priority", "score", "title", "experiment", "content"), rows, "data")
            if rows
            else html("<p>nothing proposed</p>")
        )
    return join(parts)


def verdicts(response: decision_pb2.DecideResponse, form: DecideForm) -> Html:
    """Every offer of every requested placement, in rank order, with its outcome and reason (the server's)."""
    parts = []
    for placement in form.placements:
        rows = []
        for e in (e for e in response.explanations if e.placement_id == placement):
            outcome = outcome_of(e.outcome)
            ask = (
                link("/why-not", "why not?", form.query(offer=e.offer_id))
                if outcome not in SHOWN and outcome is not Outcome.PROFILE_UNAVAILABLE
                else ""
            )
            rows.append(html('<tr class="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>', outcome.value,
                             e.offer_id, outcome.value, e.reason, ask))  # fmt: skip
        parts.append(html("<h3>{}</h3>", placement))
        parts.append(
            html(
                "<table class=data><thead><tr><th>offer</th><th>outcome</th><th>reason</th><th></th></tr></thead>"
                "<tbody>{}</tbody></table>",
                join(rows),
            )
        )
    return join(parts)


async def decide_page(backend: Backend, query: MultiMapping[str]) -> Html:
    form = decide_form_of(query)
    response = await backend.decide(_request(form))
    ruleset = await backend.active_ruleset()
    degraded = (
        html('<p class="error">DEGRADED: the service could not read the profile in time; fallbacks served.</p>')
        if response.degraded
        else Html("")
    )
    return html(
        "<p>Profile {} on {}, ruleset {}, dry run <code>{}</code> (counted nowhere). {}</p>{}<h2>Propositions</h2>{}"
        "<h2>Every offer's verdict, in rank order</h2>{}{}",
        link("/profile", form.profile_id, {"id": form.profile_id}),
        form.channel,
        response.ruleset_version,
        response.decision_id[:12],
        link("/why-not", "Why not another offer?", form.query()),
        degraded,
        propositions(response),
        verdicts(response, form),
        decide_form(ruleset, form.profile_id, form),
    )


# -- why not ------------------------------------------------------------------------------------------------------


def _offer_form(form: DecideForm, ruleset: Ruleset | None, offer: str) -> Html:
    offers = [
        o.id for o in (ruleset.offers.values() if ruleset else ()) if set(o.placements).intersection(form.placements)
    ]
    hidden = join(html('<input type="hidden" name="{}" value="{}">', k, v) for k, v in form.query())
    options = join(html("<option{}>{}</option>", " selected" if o == offer else "", o) for o in offers)
    return html(
        '<form class="inline" method="get" action="/why-not">{}<label>Offer<select name="offer">{}</select></label>'
        '<button class="primary" type="submit">Why not?</button></form>',
        hidden,
        options,
    )


def answer(why: decision_pb2.WhyNot) -> Html:
    outcome = outcome_of(why.outcome).value
    if why.shown:
        return html("<h3>{} in {}</h3><p>It is shown ({}): nothing to change.</p>", why.offer_id, why.placement_id,
                    outcome)  # fmt: skip
    remedies = join(
        html(
            '<li class="remedy">{}{}<br><span class="hint">eligibility rule {}</span></li>',
            r.text,
            html("<ul>{}</ul>", join(html("<li>{}</li>", c.text) for c in r.changes)) if len(r.changes) > 1 else "",
            r.rule or "-",
        )
        for r in why.remedies
    )
    never = join(html("<li>{}</li>", n) for n in why.never)
    return html(
        "<h3>{} in {}</h3><p>Outcome: <strong>{}</strong>.</p>{}{}",
        why.offer_id,
        why.placement_id,
        outcome,
        html("<p>The smallest changes that would make it win, fewest first:</p><ol>{}</ol>", remedies)
        if why.remedies
        else html("<p>No change found that makes it win.</p>"),
        html("<p>What closes the other ways:</p><ul>{}</ul>", never) if why.never else Html(""),
    )


async def why_not_page(backend: Backend, query: MultiMapping[str]) -> Html:
    form = decide_form_of(query)
    offer = _one(query, "offer", 256)
    ruleset = await backend.active_ruleset()
    intro = html(
        "<p>For profile {} on {} ({}), context {}: pick an offer that lost. The answer is the server's, "
        "computed from the decision's own verdicts (as <code>decision explain --why-not</code>).</p>{}",
        link("/profile", form.profile_id, {"id": form.profile_id}),
        form.channel,
        ", ".join(form.placements),
        ", ".join(f"{k}={orjson.dumps(v).decode()}" for k, v in form.context.items()) or "none",
        _offer_form(form, ruleset, offer),
    )
    if not offer:
        return intro
    response = await backend.decide(_request(form, [offer]))
    answers = join(answer(why) for why in response.why_not)
    return html(
        "{}<h2>Why not {}?</h2><p class=hint>ruleset {}, dry run <code>{}</code> (counted nowhere) — {}</p>{}",
        intro,
        offer,
        response.ruleset_version,
        response.decision_id[:12],
        link("/decide", "the whole decision", form.query()),
        answers,
    )
