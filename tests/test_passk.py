"""pass@k estimators against brute-force references (exact binomial sums, math.comb, Monte Carlo, quadrature)."""

import math
from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np
import pytest
from scipy import integrate, stats

from t2scaling.passk import beta_pass_at_k, pass_at_k_exact, pass_at_k_unbiased


def at_least_one_success(p, k):
    """P(at least one of k Bernoulli(p) draws succeeds), summed exactly over the binomial distribution."""
    p = Fraction(p)
    return float(sum(math.comb(k, j) * p**j * (1 - p) ** (k - j) for j in range(1, k + 1)))


@pytest.mark.parametrize("p", [1e-6, 0.013, 0.25, 0.5, 0.9, 0.999999])
@pytest.mark.parametrize("k", [1, 2, 7, 64])
def test_exact_matches_binomial_sum(p, k):
    assert pass_at_k_exact(p, k) == pytest.approx(at_least_one_success(p, k), rel=1e-12)


def test_exact_real_k_edges_and_broadcasting():
    assert pass_at_k_exact(0.3, 2.5) == pytest.approx(1 - 0.7**2.5, rel=1e-14)
    assert pass_at_k_exact(0.0, 10) == 0.0 and pass_at_k_exact(1.0, 3.7) == 1.0
    out = pass_at_k_exact(np.array([[0.1], [0.2]]), np.array([1, 4, 16]))
    assert out.shape == (2, 3)
    assert out[1, 2] == pytest.approx(1 - 0.8**16, rel=1e-14)


def test_exact_is_stable_for_tiny_p_and_huge_k():
    getcontext().prec = 60
    p, k = 1e-12, 10**6
    reference = float(1 - (1 - Decimal(p)) ** k)  # 60-digit arithmetic
    assert pass_at_k_exact(p, k) == pytest.approx(reference, rel=1e-12)
    assert 1 - (1 - p) ** k != pytest.approx(reference, rel=1e-6)  # the naive formula is not


@pytest.mark.parametrize("bad_p", [-0.1, 1.5, np.nan])
def test_exact_rejects_bad_p(bad_p):
    with pytest.raises(ValueError, match="p must lie in"):
        pass_at_k_exact(bad_p, 2)


def test_exact_rejects_k_below_one():
    with pytest.raises(ValueError, match="k must be"):
        pass_at_k_exact(0.5, 0.5)


def test_unbiased_matches_comb_for_every_n_c_k():
    for n in range(1, 21):
        for c in range(n + 1):
            for k in range(1, n + 1):
                reference = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
                assert pass_at_k_unbiased(n, c, k) == pytest.approx(float(reference), rel=1e-12, abs=1e-15)


def test_unbiased_vectorised_over_questions_and_large_n():
    n = np.array([100, 100, 1000, 1000])
    c = np.array([0, 3, 500, 1000])
    got = pass_at_k_unbiased(n, c, 10)
    want = [1 - Fraction(math.comb(ni - ci, 10), math.comb(ni, 10)) for ni, ci in zip(n.tolist(), c.tolist())]
    np.testing.assert_allclose(got, np.array(want, dtype=float), rtol=1e-12, atol=1e-15)


def test_unbiased_is_unbiased_for_exact_pass_at_k():
    # E over c ~ Binomial(n, p) of the estimator equals 1 - (1 - p)^k exactly.
    n, p = 30, 0.07
    c = np.arange(n + 1)
    for k in (1, 5, 30):
        expected = (stats.binom.pmf(c, n, p) * pass_at_k_unbiased(np.full(n + 1, n), c, k)).sum()
        assert expected == pytest.approx(pass_at_k_exact(p, k), rel=1e-10)


def test_unbiased_k_greater_than_n_is_an_error():
    with pytest.raises(ValueError, match=r"k = 9 exceeds the number of samples n = 8"):
        pass_at_k_unbiased(8, 2, 9)


@pytest.mark.parametrize("n, c, k, message", [(5, 6, 1, "0 <= c <= n"), (5, 2, 1.5, "integer"), (0, 0, 1, "n >= 1")])
def test_unbiased_rejects_bad_counts(n, c, k, message):
    with pytest.raises(ValueError, match=message):
        pass_at_k_unbiased(n, c, k)


@pytest.mark.parametrize("a, b", [(0.3, 2.0), (2.0, 5.0), (0.05, 0.5)])
@pytest.mark.parametrize("k", [1, 3, 50])
def test_beta_pass_at_k_matches_product_formula(a, b, k):
    # Integer k: E[(1-p)^k] = prod_{j<k} (b + j) / (a + b + j).
    reference = 1 - math.prod((b + j) / (a + b + j) for j in range(k))
    assert beta_pass_at_k(a, b, k) == pytest.approx(reference, rel=1e-11)


def test_beta_pass_at_k_matches_quadrature_at_real_k():
    a, b, k = 0.7, 3.0, 12.5
    reference = integrate.quad(lambda p: (1 - (1 - p) ** k) * stats.beta.pdf(p, a, b), 0, 1, limit=200)[0]
    assert beta_pass_at_k(a, b, k) == pytest.approx(reference, rel=1e-8)


def test_beta_pass_at_k_matches_monte_carlo():
    rng = np.random.default_rng(0)
    a, b = 0.4, 1.5
    p = rng.beta(a, b, size=400_000)
    for k in (1.0, 8.0, 100.0):
        draws = pass_at_k_exact(p, k)
        standard_error = draws.std() / np.sqrt(draws.size)
        assert abs(beta_pass_at_k(a, b, k) - draws.mean()) < 4 * standard_error


def test_beta_pass_at_k_rejects_bad_parameters():
    with pytest.raises(ValueError, match="must be > 0"):
        beta_pass_at_k(0.0, 1.0, 2)
    with pytest.raises(ValueError, match="k must be"):
        beta_pass_at_k(1.0, 1.0, 0.5)
