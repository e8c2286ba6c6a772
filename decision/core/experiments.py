"""Experiment assignment: deterministic from (experiment id, profile id), uniform over the weights. Pure.

The 64-bit BLAKE2b digest of ``experiment id NUL profile id`` picks a point
in [0, total weight): the holdout group takes the first ``holdout_weight``
points, then each variant its ``weight`` in the order written. Every replica
computes the same assignment with no shared state, across restarts and
releases; a different experiment id reshuffles profiles independently.
Changing the weights moves only the profiles whose point changes group.
"""

from __future__ import annotations

import hashlib

from decision.rules.types import Experiment, Variant


def point(experiment_id: str, profile_id: str, total: int) -> int:
    """A point in [0, total), uniform over profiles (bias below total / 2**64)."""
    digest = hashlib.blake2b(f"{experiment_id}\x00{profile_id}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") * total) >> 64


def assign(experiment: Experiment, profile_id: str) -> Variant | None:
    """The profile's variant, or None when it falls in the holdout group."""
    spot = point(experiment.id, profile_id, experiment.total_weight)
    if spot < experiment.holdout_weight:
        return None
    spot -= experiment.holdout_weight
    for variant in experiment.variants:
        if spot < variant.weight:
            return variant
        spot -= variant.weight
    raise AssertionError("a point beyond the total weight")  # unreachable: point < total
