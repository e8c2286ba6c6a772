"""decision.core.stats against scipy.stats (a test dependency only)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps  # type: ignore[import-untyped]
from scipy.special import gammaincc  # type: ignore[import-untyped]

from decision.core.stats import Z95, chi_square_sf, gamma_q, normal_sf, sample_ratio, two_proportion, wilson


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
