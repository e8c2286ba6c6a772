"""The Changes page: the published versions (``decision rules list``), the diff of two (``decision rules diff``:
decision.rules.diff), and a candidate ruleset compared with the active one on a sample of the profiles Redis holds
(``decision simulate --compare``: decision.core.comparison over decision.service.samples).

The candidate is the one input the console takes: at most ``MAX_CANDIDATE`` bytes, parsed by the ruleset loader
as data (YAML, never evaluated), compiled off the event loop, never stored nor published.
"""

from __future__ import annotations

import asyncio
import time

from multidict import MultiMapping

from decision.console.backend import Backend
from decision.console.errors import PageError
from decision.console.markup import Html, html, join, link, table
from decision.core.comparison import Comparison, compare, winners_text
from decision.core.requests import context_of_pairs
from decision.core.simulation import Profile, profile_from_json
from decision.rules.diff import RulesetChanges, diff
from decision.rules.engine import compile_and_load
from decision.rules.errors import RulesetInvalid
from decision.rules.types import utc_iso
from decision.service.rulesets import change_summary, parse_checked
from decision.service.samples import sample_profiles

MAX_CANDIDATE = 2 * 1024 * 1024  # bytes of a candidate ruleset
MAX_SAMPLE = 5000
CANDIDATE_SOURCE = "candidate"


async def changes_page(backend: Backend) -> Html:
    versions = await backend.control.versions()
    pointer = await backend.control.active()
    active = pointer.version if pointer is not None else ""
    if not versions:
        listing = html("<p>Nothing published yet (<code>decision rules publish RULES</code>).</p>")
    else:
        rows = [
            (
                e.seq,
                html("<strong>{} (active)</strong>", e.version) if e.version == active else e.version,
                utc_iso(e.published_at, "seconds"),
                e.author or "-",
                e.source,
                e.sha256[:12],
                change_summary(e),
            )
            for e in reversed(versions)
        ]
        listing = table(("#", "version", "published (UTC)", "author", "source", "sha256", "changes"), rows, "data")
    activated = (
        html(
            "<p>Active: {}, by {} at {}.</p>",
            pointer.version,
            pointer.action or "?",
            utc_iso(pointer.activated_at, "seconds"),
        )
        if pointer is not None
        else Html("")
    )
    names = [e.version for e in versions]
    older = names[-2] if len(names) > 1 else (names[0] if names else "")
    return html(
        "<h2>Published versions</h2>{}{}<h2>Compare two versions</h2>{}<h2>Try a candidate ruleset</h2>{}",
        listing,
        activated,
        _diff_form(names, older, active or (names[-1] if names else "")),
        compare_form(backend.config.sample_size),
    )


def _diff_form(names: list[str], a: str, b: str) -> Html:
    def select(name: str, chosen: str) -> Html:
        options = join(html("<option{}>{}</option>", " selected" if n == chosen else "", n) for n in names)
        return html('<select name="{}">{}</select>', name, options)

    if not names:
        return html("<p>Nothing to compare yet.</p>")
    return html(
        '<form class="inline" method="get" action="/changes/diff"><label>From{}</label><label>To{}</label>'
        '<button class="primary" type="submit">Diff</button></form>',
        select("a", a),
        select("b", b),
    )


def compare_form(sample_size: int, text: str = "", context: str = "") -> Html:
    return html(
        '<form method="post" action="/changes/compare" enctype="multipart/form-data">'
        '<p><label>A ruleset file<input type="file" name="file" accept=".yaml,.yml,text/yaml"></label></p>'
        '<p><label>or its text<textarea name="candidate" rows="10" cols="100">{}</textarea></label></p>'
        '<div class="inline"><label>Context of every profile, key=value a line'
        '<textarea name="context" rows="2" cols="40">{}</textarea></label>'
        '<label>Profiles (a sample of Redis, at most {})<input name="sample" type="number" min="1" max="{}" '
        'value="{}"></label> <button class="primary" type="submit">Compare with the active ruleset</button></div>'
        "</form><p class=hint>Each profile is decided in every placement both rulesets have, as "
        "<code>decision simulate --compare</code> does (one request per placement, caps not applied); nothing is "
        "published. At most {} KiB.</p>",
        text,
        context,
        MAX_SAMPLE,
        MAX_SAMPLE,
        sample_size,
        MAX_CANDIDATE // 1024,
    )


def changes_html(changes: RulesetChanges) -> Html:
    css = {"+": "diff-add", "-": "diff-remove", "~": "diff-change"}
    lines = join(html('<li class="{}"><code>{}</code></li>', css.get(line[:1], ""), line) for line in changes.lines())
    return html("<p><strong>{}</strong></p><ul>{}</ul>", changes.summary(), lines)


async def diff_page(backend: Backend, query: MultiMapping[str]) -> Html:
    a, b = query.get("a", "").strip(), query.get("b", "").strip()
    if not a or not b:
        raise PageError(400, "Bad input", "a and b: name two published versions")
    old, new = await backend.version(a), await backend.version(b)
    try:
        changes = diff(backend.parsed(old), backend.parsed(new))
    except RulesetInvalid as exc:
        raise PageError(422, "Invalid ruleset", f"a published version no longer validates: {exc}") from None
    return html(
        "<h2>{} → {}</h2>{}<p>{}</p>",
        a,
        b,
        changes_html(changes),
        link("/changes", "All versions"),
    )


async def compare_page(backend: Backend, fields: dict[str, str | bytes]) -> Html:
    """``fields``: the posted form (``file`` and/or ``candidate``, ``context``, ``sample``)."""
    upload = fields.get("file", b"")
    data = upload if isinstance(upload, bytes) and upload.strip() else str(fields.get("candidate", "")).encode()
    context_text = str(fields.get("context", ""))
    form = compare_form(backend.config.sample_size, data.decode(errors="replace"), context_text)
    if not data.strip():
        raise PageError(400, "Bad input", "give a ruleset file or its text", hint=form)
    try:
        sample = int(str(fields.get("sample", "")) or backend.config.sample_size)
    except ValueError:
        raise PageError(400, "Bad input", "sample: not a number", hint=form) from None
    if not 1 <= sample <= MAX_SAMPLE:
        raise PageError(400, "Bad input", f"sample: from 1 to {MAX_SAMPLE} profiles", hint=form)
    lines = [
        (f"context line {n}:", line.strip()) for n, line in enumerate(context_text.splitlines(), 1) if line.strip()
    ]
    try:
        extra = profile_from_json({"profile": "-", "context": context_of_pairs(lines)}, "context").context
    except ValueError as exc:
        raise PageError(400, "Bad input", str(exc), hint=form) from None
    try:
        candidate, _ = parse_checked(data, CANDIDATE_SOURCE)
    except RulesetInvalid as exc:
        problems = join(html("<li><code>{}</code></li>", str(p)) for p in exc.problems)
        raise PageError(400, "Invalid candidate", "the candidate ruleset is invalid:", hint=html(
            "<ul>{}</ul>{}", problems, form)) from None  # fmt: skip
    entry = await backend.active()
    if entry is None:
        raise PageError(409, "Nothing to compare with", "no ruleset is published to this Redis: nothing is active",
                        hint=html("<code>decision rules publish RULES</code> first"))  # fmt: skip
    active = await backend.compiled(entry)
    compiled = await asyncio.to_thread(compile_and_load, candidate)
    now = time.time()
    profiles = await sample_profiles(backend.control.client, backend.keys, sample, now)
    with_context = [Profile(p.profile_id, p.audiences, {**extra, **p.context}, p.attributes) for p in profiles]
    result = await asyncio.to_thread(compare, active, compiled, with_context, now)
    return html(
        "{}<h2>What the candidate changes in {}</h2>{}<h2>Try another</h2>{}",
        comparison_html(result),
        entry.version,
        changes_html(diff(active.ruleset, candidate)),
        form,
    )


def comparison_html(result: Comparison) -> Html:
    skipped = f" ({len(result.skipped)} skipped: context rejected)" if result.skipped else ""
    rows = []
    for p in result.placements.values():
        moves = join(
            html(
                "<li>{} → {}: {} (e.g. {})</li>",
                winners_text(old),
                winners_text(new),
                count,
                join((link("/profile", pid, {"id": pid}) for pid in p.examples[(old, new)]), ", "),
            )
            for (old, new), count in p.moves.most_common()
        )
        rows.append((p.placement_id, p.decisions, p.changed, f"{100 * p.share:.1f}%", html("<ul>{}</ul>", moves)))
    placements = table(("placement", "decisions", "changed", "share", "winners before → after"), rows, "data")
    notes = [html("<p>Placements removed: {}</p>", ", ".join(result.only_old))] if result.only_old else []
    notes += [html("<p>Placements added: {}</p>", ", ".join(result.only_new))] if result.only_new else []
    return html(
        "<h2>{} → {}: {} profiles{}</h2><p><strong>changed: {} of {} decisions ({:.1f}%)</strong></p>{}{}",
        result.old_version,
        result.new_version,
        result.profiles,
        skipped,
        result.changed,
        result.decisions,
        100 * result.share,
        placements,
        join(notes),
    )
