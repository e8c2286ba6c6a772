"""Human-readable rendering of decisions for the CLI and the demo."""

from __future__ import annotations

import orjson

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
        for rank, item in enumerate(proposition.items, 1):
            tag = "fallback" if item.fallback else f"rule {item.rule}"
            lines.append(
                f"  {proposition.placement_id:<14} #{rank} {item.offer_id:<24} {tag:<26} "
                f"prio {item.priority:<4} {_summary(item.content_json)}"
            )
    return "\n".join(lines)


def _value(value: object) -> str:
    from google.protobuf import json_format, struct_pb2

    assert isinstance(value, struct_pb2.Value)
    return orjson.dumps(json_format.MessageToDict(value)).decode()
