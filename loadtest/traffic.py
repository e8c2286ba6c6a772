"""Realistic Decide traffic: many profiles, varied channels, placements and contexts.

The benchmark's one-body runs (h2load) replay a single request; these requests
differ call to call as production's do, so the caches of one profile or one
context cannot flatter the figures. Written as JSON (protobuf's JSON mapping of
DecideRequest) for k6, which replays them in turn.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from loadtest.rulegen import CATEGORIES, DEVICES, PLACEMENTS

CHANNELS = ("web", "mobile")


def request(rng: random.Random, profiles: int, index: int) -> dict[str, Any]:
    channel = rng.choice(CHANNELS)
    shown = [placement for placement, channels, _ in PLACEMENTS if channel in channels]
    placements = rng.sample(shown, rng.randint(1, min(2, len(shown))))
    context: dict[str, Any] = {
        "cart_value": rng.choice((0, 15, 45, 80, 120, 200, 300)),
        "device": rng.choice(DEVICES if channel == "mobile" else ("desktop",)),
        "page_path": f"/{rng.choice(CATEGORIES)}",
        "logged_in": rng.random() < 0.6,
        "visits_30d": rng.randrange(0, 12),
        "cart_categories": rng.sample(CATEGORIES, rng.randrange(0, 3)),
    }
    return {
        "profileId": f"p{rng.randrange(profiles)}",
        "channel": channel,
        "placements": [{"placementId": p} for p in placements],
        "context": context,
        "requestId": f"k6-{index}",
    }


def write_requests(path: Path, count: int, profiles: int, seed: int) -> None:
    rng = random.Random(seed)
    path.write_text(json.dumps([request(rng, profiles, index) for index in range(count)]))
