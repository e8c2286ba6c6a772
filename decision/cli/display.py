"""Human-readable rendering of decisions for the CLI and the demo."""

from __future__ import annotations

import orjson

from decision.api.convert import outcome_of
from decision.v1 import decision_pb2


def _summary(content_json: str, width: int = 48) -> str:
    try:
        content = orjson.loads(content_json)
    except orjson.JSONDecodeError:
        return content_json[:width]
    if isinstance(content, dict):
        for key in ("title", "headline", "text", "name"):
            text = content.get(key)
            if isinstance(text, str):
                return text if len(text) <= width else text[: width - 1] + "…"
    return content_json[:width]


def format_decision(request: decision_pb2.DecideRequest, response: decision_pb2.DecideResponse) -> str:
    context = ", ".join(f"{k}={_value(v)}" for k, v in sorted(request.context.items())) or "-"
    lines = [
        f"profile {request.profile_id} on {request.channel} (context: {context})",
        f"  ruleset {response.ruleset_version}, decision {response.decision_id[:12]}"
        + ("  DEGRADED: Redis unavailable, fallbacks served" if response.degraded else ""),
    ]
    for proposition in response.propositions:
        if not proposition.items:
            lines.append(f"  {proposition.placement_id:<14} (nothing: {_experiment(proposition).strip()})")
        for rank, item in enumerate(proposition.items, 1):
            tag = "fallback" if item.fallback else f"rule {item.rule}"
            score = f"  score {item.score:g}" if item.score else ""
            lines.append(
                f"  {proposition.placement_id:<14} #{rank} {item.offer_id:<24} {tag:<26} "
                f"prio {item.priority:<4} {_summary(item.content_json)}{score}{_experiment(item)}"
            )
    return "\n".join(lines)


def _experiment(part: decision_pb2.Item | decision_pb2.Proposition) -> str:
    return f"  [experiment {part.experiment_id}: {part.variant}]" if part.experiment_id else ""


def _value(value: object) -> str:
    # lazy, start-up (loadtest.startup): protobuf ~30 ms
    from google.protobuf import json_format, struct_pb2

    assert isinstance(value, struct_pb2.Value)
    return orjson.dumps(json_format.MessageToDict(value)).decode()


def format_explanations(response: decision_pb2.DecideResponse) -> str:
    """One row per (placement, offer): the outcome and its reason, as `decision explain` prints them."""
    rows = [("PLACEMENT", "OFFER", "OUTCOME", "REASON")]
    for e in response.explanations:
        rows.append((e.placement_id, e.offer_id, outcome_of(e.outcome).value, e.reason))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}".rstrip() for row in rows
    )
