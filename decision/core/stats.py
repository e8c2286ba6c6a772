"""The statistics of ``decision report``: intervals, tests and tails from the standard library only. Pure.

Checked against scipy.stats in tests/decision/core/test_stats.py (scipy is a test dependency, never a
runtime one). Conventions: 95 % two-sided (z = 1.959964); p-values two-sided.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile
_EPS = 1e-15
_MAX_ITER = 10_000


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) without trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # The interval holds p (exactly 1 or 0 at the ends, which rounding would miss by an ulp).
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


@dataclass(frozen=True, slots=True)
class Comparison:
    """A treatment's rate against the control's (two-proportion z-test, pooled under the null)."""

    difference: float  # rate - control rate
    difference_interval: tuple[float, float]  # 95 %, unpooled standard error (Wald)
    lift: float | None  # rate / control rate - 1; None when the control's rate is 0
    lift_interval: tuple[float, float] | None  # 95 %, from the log of the rate ratio (Katz); None if a rate is 0
    z: float
    p_value: float


def two_proportion(x_control: int, n_control: int, x: int, n: int, z_level: float = Z95) -> Comparison | None:
    """Compare x/n with x_control/n_control; None when either has no trials."""
    if n <= 0 or n_control <= 0:
        return None
    p_c, p_t = x_control / n_control, x / n
    pooled = (x_control + x) / (n_control + n)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_control + 1 / n))
    z = (p_t - p_c) / se_pooled if se_pooled > 0 else 0.0
    p_value = 2 * normal_sf(abs(z)) if se_pooled > 0 else 1.0
    se = math.sqrt(p_c * (1 - p_c) / n_control + p_t * (1 - p_t) / n)
    difference = p_t - p_c
    lift = lift_interval = None
    if p_c > 0:
        lift = p_t / p_c - 1
        if p_t > 0:
            se_log = math.sqrt(1 / x - 1 / n + 1 / x_control - 1 / n_control)
            log_ratio = math.log(p_t / p_c)
            lift_interval = (math.exp(log_ratio - z_level * se_log) - 1, math.exp(log_ratio + z_level * se_log) - 1)
    return Comparison(difference, (difference - z_level * se, difference + z_level * se), lift, lift_interval, z,
                      p_value)  # fmt: skip


def gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x) (series below a + 1, continued fraction above)."""
    if a <= 0:
        raise ValueError("a must be positive")
    if x <= 0:
        return 1.0
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:  # P(a, x) by its series; Q = 1 - P
        term = total = 1.0 / a
        ap = a
        for _ in range(_MAX_ITER):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    # Q(a, x) by Lentz's continued fraction
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < _EPS:
            break
    return math.exp(log_prefix) * h


def chi_square_sf(statistic: float, df: int) -> float:
    """P(X > statistic) for a chi-square X with ``df`` degrees of freedom."""
    return gamma_q(df / 2, statistic / 2)


@dataclass(frozen=True, slots=True)
class SampleRatio:
    """Observed counts against the expected shares: chi-square goodness of fit."""

    statistic: float
    df: int
    p_value: float

    def mismatch(self, alpha: float = 0.001) -> bool:
        return self.p_value < alpha


def sample_ratio(observed: Sequence[int], weights: Sequence[float]) -> SampleRatio | None:
    """Chi-square test of ``observed`` against shares proportional to ``weights``; None below 2 groups or 1 count."""
    total, weight = sum(observed), sum(weights)
    if len(observed) < 2 or total <= 0 or weight <= 0:
        return None
    statistic = 0.0
    for count, w in zip(observed, weights, strict=True):
        expected = total * w / weight
        statistic += (count - expected) ** 2 / expected if expected > 0 else 0.0
    df = len(observed) - 1
    return SampleRatio(statistic, df, chi_square_sf(statistic, df))
