"""Tracking tokens of format 4 (bound to the profile) against format 3 (the previous release's), in one process:
their size, and what signing and verifying one costs (µs of CPU, the best of several interleaved rounds, and the
ratio).

Usage: ``python -m loadtest.token_cost [--rounds 7] [--tokens 20000]``.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

from decision.core.tokens import PREVIOUS_FORMAT, TOKEN_FORMAT, TokenKey, TokenKeys, TrackingToken

KEY = TokenKey("k1", b"s" * 48)
PROFILE = "58bd1ad0-7ae1-4c2f-9f21-3c8cb5d0e6a7"  # an ECID-sized profile id
TOKENS = {
    "plain": TrackingToken("0123456789abcdef" * 2, "home_banner", "spring_sale_20", "sha256:0123456789ab",
                           1_780_000_000_000, "web"),
    "experiment": TrackingToken("0123456789abcdef" * 2, "home_banner", "spring_sale_20", "sha256:0123456789ab",
                                1_780_000_000_000, "web", "hero-copy", "treatment"),
}  # fmt: skip


def best_us(action: Callable[[], object], count: int) -> float:
    """µs of this thread's CPU per call (thread time: other processes of a busy machine do not count)."""
    start = time.thread_time()
    for _ in range(count):
        action()
    return (time.thread_time() - start) / count * 1e6


def main(rounds: int, count: int) -> None:
    keys = {f: TokenKeys((KEY,), signing_format=f) for f in (PREVIOUS_FORMAT, TOKEN_FORMAT)}
    for name, token in TOKENS.items():
        unsigned = token.encode()
        signed = {f: k.sign(unsigned, PROFILE) for f, k in keys.items()}
        print(f"{name}: {len(signed[PREVIOUS_FORMAT])} characters (format {PREVIOUS_FORMAT}), "
              f"{len(signed[TOKEN_FORMAT])} (format {TOKEN_FORMAT})")  # fmt: skip
        sign: dict[int, list[float]] = {f: [] for f in keys}
        verify: dict[int, list[float]] = {f: [] for f in keys}
        for _ in range(rounds):  # interleaved: both formats see the same machine load
            for f, k in keys.items():
                sign[f].append(best_us(functools.partial(k.sign, unsigned, PROFILE), count))
                verify[f].append(best_us(functools.partial(k.open, signed[f], PROFILE), count))
        for what, times in (("sign", sign), ("verify", verify)):
            old, new = min(times[PREVIOUS_FORMAT]), min(times[TOKEN_FORMAT])
            print(f"  {what}: {old:.2f} µs (format {PREVIOUS_FORMAT}), {new:.2f} µs (format {TOKEN_FORMAT}): "
                  f"x{new / old:.2f}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=20_000)
    args = parser.parse_args()
    main(args.rounds, args.tokens)
