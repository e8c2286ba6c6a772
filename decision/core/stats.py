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


# -- Always-valid inference: asymptotic confidence sequences ---------------------------------------------------
#
# Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas, "Time-uniform central limit theory and asymptotic confidence
# sequences" (Annals of Statistics, 2024; arXiv:2103.06476v7): with a normal mixture of width rho, the interval
#     estimate ± sqrt(s2) * sqrt(2 (n rho² + 1) / (n² rho²) * ln(sqrt(n rho² + 1) / alpha))        (their eq. 9)
# covers the true value at every n at once with probability at least 1 - alpha (asymptotically), where s2 is the
# per-observation variance (the estimator's variance times n). rho is tuned so that the sequence is narrowest near
# n = N, the tuning parameter (their eq. 161):  rho² = (-2 ln alpha + ln(-2 ln alpha + 1)) / N. The always-valid
# p-value is the inverse of the mixture's e-value (their eq. 155), min(1, sqrt(n rho² + 1) exp(-rho² S² / (2 (n rho²
# + 1)))) with S² = n² estimate² / s2. GrowthBook's sequential testing computes the same (gbstats,
# packages/stats/gbstats/frequentist/tests.py: sequential_rho, sequential_interval_halfwidth,
# SequentialTwoSidedTTest, default N = 5000), with n the exposures of both groups together.

DEFAULT_TUNING = 5000.0  # N: where the sequence is narrowest (total exposures of the two groups), GrowthBook's default
ALPHA = 0.05
SEQUENTIAL_NAME = (
    "always-valid 95 % confidence sequence (asymptotic, normal mixture; Waudby-Smith et al. 2024, as GrowthBook's "
    "sequential testing), tuned for N = {tuning:g} exposures"
)


def sequential_rho(alpha: float = ALPHA, tuning: float = DEFAULT_TUNING) -> float:
    """The mixture's width for ``alpha``, narrowest near ``tuning`` observations (Waudby-Smith et al., eq. 161)."""
    if not 0 < alpha < 1 or tuning <= 0:
        raise ValueError("alpha must be in (0, 1) and the tuning parameter positive")
    log_alpha = math.log(alpha)
    return math.sqrt((-2 * log_alpha + math.log(-2 * log_alpha + 1)) / tuning)


def sequential_halfwidth(s2: float, n: int, alpha: float = ALPHA, rho: float | None = None) -> float:
    """Half the width of the two-sided always-valid interval after ``n`` observations of variance ``s2`` (eq. 9)."""
    r2 = (sequential_rho(alpha) if rho is None else rho) ** 2
    return math.sqrt(s2) * math.sqrt(2 * (n * r2 + 1) * math.log(math.sqrt(n * r2 + 1) / alpha) / (n * n * r2))


def always_valid_p(estimate: float, s2: float, n: int, rho: float) -> float:
    """The always-valid p-value of ``estimate == 0``: 1 / the mixture e-value, at most 1 (eq. 155)."""
    if s2 <= 0:
        return 1.0
    r2, st2 = rho * rho, n * n * estimate * estimate / s2  # (n estimate)² / (n s2): the standardized sum, squared
    log_e = r2 * st2 / (2 * (n * r2 + 1)) - 0.5 * math.log(n * r2 + 1)
    return 1.0 if log_e <= 0 else math.exp(-log_e)


@dataclass(frozen=True, slots=True)
class AlwaysValid:
    """An estimate with its always-valid interval: it holds at every look at once, however often one looks."""

    estimate: float
    interval: tuple[float, float]
    p_value: float  # always-valid
    # The estimate's standard error (the delta method's for the lift), as the sequence reads it: s = std_error·√n.
    # No fixed-horizon interval here: the report's are ``Comparison``'s (Wald difference, Katz lift), one of each.
    std_error: float


@dataclass(frozen=True, slots=True)
class SequentialComparison:
    """A treatment against the control with always-valid intervals: the difference of the rates and the lift."""

    difference: AlwaysValid
    lift: AlwaysValid | None  # None while the control has no conversion
    alpha: float
    tuning: float


def sequential_two_proportion(
    x_control: int, n_control: int, x: int, n: int, *, alpha: float = ALPHA, tuning: float = DEFAULT_TUNING
) -> SequentialComparison | None:
    """x/n against x_control/n_control: the difference and the relative lift (delta method, as GrowthBook's
    relative effect), each with its confidence sequence; None when either group has no exposure."""
    if n <= 0 or n_control <= 0:
        return None
    rho, total = sequential_rho(alpha, tuning), n + n_control
    p_c, p_t = x_control / n_control, x / n
    v_c, v_t = p_c * (1 - p_c), p_t * (1 - p_t)

    def sequence(estimate: float, variance: float) -> AlwaysValid:
        s2 = variance * total
        half = sequential_halfwidth(s2, total, alpha, rho) if s2 > 0 else 0.0
        return AlwaysValid(estimate, (estimate - half, estimate + half), always_valid_p(estimate, s2, total, rho),
                           math.sqrt(variance))  # fmt: skip

    difference = sequence(p_t - p_c, v_c / n_control + v_t / n)
    lift = None
    if p_c > 0:
        lift = sequence(p_t / p_c - 1, v_t / (p_c**2 * n) + v_c * p_t**2 / (p_c**4 * n_control))
    return SequentialComparison(difference, lift, alpha, tuning)
