"""decision.core.stats against scipy (a test dependency only) and a published worked example (GrowthBook's)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize  # type: ignore[import-untyped]
from scipy import stats as sps
from scipy.special import gammaincc  # type: ignore[import-untyped]

from decision.core.stats import (
    Z95,
    chi_square_sf,
    gamma_q,
    normal_sf,
    sample_ratio,
    sequential_rho,
    sequential_two_proportion,
    two_proportion,
    wilson,
)


def close(a: float, b: float, rel: float = 1e-9, absolute: float = 1e-12) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=absolute)


def test_z95_is_the_normal_quantile() -> None:
    assert close(Z95, float(sps.norm.ppf(0.975)))


@given(st.floats(-30, 30))
def test_normal_tail(z: float) -> None:
    assert close(normal_sf(z), float(sps.norm.sf(z)), rel=1e-9, absolute=1e-300)


@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_wilson_interval(successes: int, failures: int) -> None:
    trials = successes + failures
    if trials == 0:
        assert wilson(0, 0) == (0.0, 1.0)
        return
    low, high = wilson(successes, trials)
    expected = sps.binomtest(successes, trials).proportion_ci(0.95, method="wilson")
    assert close(low, float(expected.low), rel=1e-9, absolute=1e-12)
    assert close(high, float(expected.high), rel=1e-9, absolute=1e-12)


@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 5000))
def test_two_proportion_z_test(x1: int, f1: int, x2: int, f2: int) -> None:
    n1, n2 = x1 + f1, x2 + f2
    result = two_proportion(x1, n1, x2, n2)
    assert result is not None
    table = [[x2, n2 - x2], [x1, n1 - x1]]
    chi2, p, _, _ = sps.chi2_contingency(table, correction=False)  # the z-test squared, two-sided
    if chi2 > 0:
        assert close(result.z**2, float(chi2), rel=1e-7)
        assert close(result.p_value, float(p), rel=1e-6, absolute=1e-250)
    rr = sps.contingency.relative_risk(x2, n2, x1, n1).confidence_interval(0.95)
    assert result.lift_interval is not None
    assert close(result.lift_interval[0], float(rr.low) - 1, rel=1e-6, absolute=1e-9)
    assert close(result.lift_interval[1], float(rr.high) - 1, rel=1e-6, absolute=1e-9)


@given(st.floats(0.05, 500), st.floats(0, 2000))
def test_regularized_upper_gamma(a: float, x: float) -> None:
    assert close(gamma_q(a, x), float(gammaincc(a, x)), rel=1e-8, absolute=1e-200)


@pytest.mark.parametrize("df", [1, 2, 3, 9, 99])
@pytest.mark.parametrize("statistic", [0.0, 0.5, 3.84, 10.0, 50.0, 300.0])
def test_chi_square_tail(statistic: float, df: int) -> None:
    assert close(chi_square_sf(statistic, df), float(sps.chi2.sf(statistic, df)), rel=1e-8, absolute=1e-200)


@given(st.lists(st.integers(0, 100_000), min_size=2, max_size=6), st.data())
def test_sample_ratio_mismatch(observed: list[int], data: st.DataObject) -> None:
    weights = data.draw(st.lists(st.integers(1, 100), min_size=len(observed), max_size=len(observed)))
    result = sample_ratio(observed, weights)
    if sum(observed) == 0:
        assert result is None
        return
    assert result is not None
    total = sum(observed)
    expected = [total * w / sum(weights) for w in weights]
    statistic, p = sps.chisquare(observed, expected)
    assert close(result.statistic, float(statistic), rel=1e-9, absolute=1e-9)
    assert close(result.p_value, float(p), rel=1e-7, absolute=1e-200)


def test_two_proportion_edges() -> None:
    assert two_proportion(0, 0, 1, 10) is None
    everything = two_proportion(5, 5, 7, 7)  # no variance: no evidence of a difference
    assert everything is not None and everything.p_value == 1.0
    nothing = two_proportion(0, 100, 3, 100)  # the control never converts: no relative lift
    assert nothing is not None and nothing.lift is None and nothing.lift_interval is None


def test_a_clear_sample_ratio_mismatch_is_flagged() -> None:
    result = sample_ratio([5_000, 5_400], [1, 1])
    assert result is not None and result.mismatch()
    fine = sample_ratio([5_000, 5_040], [1, 1])
    assert fine is not None and not fine.mismatch()


# -- always-valid confidence sequences -----------------------------------------------------------------------------


def test_growthbooks_worked_example() -> None:
    """GrowthBook's own test of its sequential test on proportions (gbstats, packages/stats/tests/frequentist/
    test_tests.py, TestSequentialTTest.test_sequential_test_runs_prop: 1396/3000 against 2422/3461, default
    tuning 5000, alpha 0.05, relative effect): lift 0.50386, interval (0.40098, 0.60675), standard error 0.03386."""
    result = sequential_two_proportion(1396, 3000, 2422, 3461)
    assert result is not None and result.lift is not None
    assert round(result.lift.estimate, 5) == 0.50386
    assert (round(result.lift.interval[0], 5), round(result.lift.interval[1], 5)) == (0.40098, 0.60675)
    assert round(result.lift.std_error, 5) == 0.03386
    assert result.lift.p_value < 1e-40  # GrowthBook prints 0.0


def _mixture_log_e(theta: float, estimate: float, s2: float, n: int, rho: float) -> float:
    """log of the normal-mixture e-value of ``estimate == theta``, integrated numerically (scipy):
    the integral over lambda ~ N(0, rho²) of exp(lambda x - lambda² n / 2), x = n (estimate - theta) / sqrt(s2)."""
    x = n * (estimate - theta) / math.sqrt(s2)
    peak = x / (n + 1 / rho**2)  # the integrand's mode: integrate around it

    def integrand(lam: float) -> float:
        return math.exp(lam * x - lam * lam * n / 2 - (lam * lam - peak * peak) / (2 * rho * rho) - peak * x
                        + peak * peak * n / 2) / (rho * math.sqrt(2 * math.pi))  # fmt: skip

    width = 12 / math.sqrt(n + 1 / rho**2)
    value, _ = integrate.quad(integrand, peak - width, peak + width, epsabs=0, epsrel=1e-10, limit=200)
    return math.log(value) - peak * peak / (2 * rho * rho) + peak * x - peak * peak * n / 2


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 400), st.integers(200, 5000), st.integers(1, 400), st.integers(200, 5000),
       st.sampled_from([0.05, 0.01, 0.1]), st.sampled_from([1000.0, 5000.0, 20000.0]))  # fmt: skip
def test_the_sequence_inverts_the_mixture_martingale(
    x_c: int, n_c: int, x_t: int, n_t: int, alpha: float, tuning: float
) -> None:
    """An independent computation: the interval's ends are where the numerically integrated mixture e-value
    reaches 1/alpha (scipy's quad and brentq), and the p-value is 1 / the e-value at 0."""
    assume(x_c < n_c and x_t < n_t)
    result = sequential_two_proportion(x_c, n_c, x_t, n_t, alpha=alpha, tuning=tuning)
    assert result is not None
    d = result.difference
    n = n_c + n_t
    s2 = (x_c / n_c * (1 - x_c / n_c) / n_c + x_t / n_t * (1 - x_t / n_t) / n_t) * n
    rho = sequential_rho(alpha, tuning)
    target = math.log(1 / alpha)
    upper = optimize.brentq(lambda t: _mixture_log_e(t, d.estimate, s2, n, rho) - target, d.estimate, d.estimate + 1)
    lower = optimize.brentq(lambda t: _mixture_log_e(t, d.estimate, s2, n, rho) - target, d.estimate - 1, d.estimate)
    assert close(d.interval[1], upper, rel=1e-6, absolute=1e-9)
    assert close(d.interval[0], lower, rel=1e-6, absolute=1e-9)
    expected_p = min(1.0, math.exp(-_mixture_log_e(0.0, d.estimate, s2, n, rho)))
    assert close(d.p_value, expected_p, rel=1e-6, absolute=1e-300)


@given(st.floats(0.01, 0.5), st.floats(0.01, 0.5), st.integers(100, 50_000))
def test_the_sequence_holds_the_estimate_is_wider_than_one_look_and_narrows_with_n(
    p_c: float, p_t: float, n: int
) -> None:
    first = sequential_two_proportion(round(p_c * n), n, round(p_t * n), n)
    later = sequential_two_proportion(round(p_c * 4 * n), 4 * n, round(p_t * 4 * n), 4 * n)
    assert first is not None and later is not None
    for a in (first.difference, first.lift, later.difference, later.lift):
        if a is None:
            continue
        low, high = a.interval  # the centre, and wider than one look's interval from the same standard error
        assert low <= a.estimate - Z95 * a.std_error <= a.estimate <= a.estimate + Z95 * a.std_error <= high
    width = first.difference.interval[1] - first.difference.interval[0]
    assert later.difference.interval[1] - later.difference.interval[0] < width


def test_looking_every_day_the_sequence_keeps_its_promise_and_the_fixed_interval_does_not() -> None:
    """Why the method exists: 400 A/A tests (both rates 10 %), looked at 30 times (every 300 exposures per group).
    The always-valid interval of the difference excludes 0 — a false "stop" — in at most 5 % of the tests (within
    simulation error); the fixed-horizon 95 % interval, checked at every look, does far more often."""
    rng = np.random.default_rng(20261206)
    tests, looks, step, rate = 400, 30, 300, 0.10
    control = rng.binomial(step, rate, size=(tests, looks)).cumsum(axis=1)
    treated = rng.binomial(step, rate, size=(tests, looks)).cumsum(axis=1)
    always_wrong = fixed_wrong = 0
    for t in range(tests):
        sequence_excluded = fixed_excluded = False
        for k in range(looks):
            n = step * (k + 1)
            result = sequential_two_proportion(int(control[t, k]), n, int(treated[t, k]), n)
            assert result is not None
            d = result.difference
            sequence_excluded |= d.interval[0] > 0 or d.interval[1] < 0
            fixed = two_proportion(int(control[t, k]), n, int(treated[t, k]), n)  # the report's fixed-horizon
            assert fixed is not None
            fixed_excluded |= fixed.difference_interval[0] > 0 or fixed.difference_interval[1] < 0
        always_wrong += sequence_excluded
        fixed_wrong += fixed_excluded
    assert always_wrong / tests <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / tests)  # 1 - alpha, within simulation error
    assert fixed_wrong / tests > 0.15  # peeking: about a quarter of the A/A tests "win" at some look
