"""Read a decision server's Prometheus metrics: how the benchmarks count gRPC failures h2load cannot see."""

from __future__ import annotations

import re
import urllib.request

_SAMPLE = re.compile(r"^([a-zA-Z_:]+)(\{[^}]*\})? ([0-9.eE+-]+|NaN)$")


def scrape(port: int, timeout: float = 5.0) -> dict[str, float]:
    """Every sample, keyed by name and labels as exposed (``name{label="v"}``)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout).read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values


def decide_calls(metrics: dict[str, float]) -> tuple[int, int, int]:
    """(Decide calls answered OK, Decide calls with another status, degraded answers)."""
    ok = not_ok = 0.0
    for key, value in metrics.items():
        if key.startswith("decision_rpc_calls_total{") and "Decide" in key:
            if 'code="OK"' in key:
                ok += value
            else:
                not_ok += value
    return int(ok), int(not_ok), int(metrics.get("decision_degraded_total", 0))


def stage_seconds(metrics: dict[str, float]) -> dict[str, tuple[float, int]]:
    """Stage -> (seconds spent, timings recorded), from decision.service.stages' counters."""
    stages: dict[str, tuple[float, int]] = {}
    for key, value in metrics.items():
        for name, index in (("decision_stage_seconds_total{", 0), ("decision_stage_calls_total{", 1)):
            if key.startswith(name):
                stage = key.split('stage="', 1)[1].split('"', 1)[0]
                pair = list(stages.get(stage, (0.0, 0)))
                pair[index] = value if index == 0 else int(value)
                stages[stage] = (pair[0], int(pair[1]))
    return stages
