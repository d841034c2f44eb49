"""pass@k estimators against brute-force references (exact binomial sums, math.comb, Monte Carlo, quadrature,
60-digit mpmath)."""

import math
from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np
import pytest
from scipy import integrate, stats

from t2scaling.passk import (beta_pass_at_k, digamma_diff, lgamma_diff, log_beta_ratio, log_beta_ratio_grad,
                             neg_log_pass_at_k_exact, pass_at_k_exact, pass_at_k_unbiased)


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


# ---- Beta pass@k at any precision (issue 11) ----

MUS = [1e-8, 1e-5, 1e-3, 0.01, 0.1, 0.5, 0.9, 0.999, 1 - 1e-5, 1 - 1e-8]
NUS = [np.exp(-30), 1e-3, 0.1, 1, 3, 10, 1e2, 1e4, 1e6, 1e8, 1e10, 1e12, np.exp(30)]  # laws.LOG_NU_RANGE and more
KS = [1, 1.5, 2, 7.3, 100, 1e3, 1e5, 1e7]


def mp_log_beta_ratio(a, b, k):
    """log B(a, b+k)/B(a, b) in 60-digit arithmetic (mpmath), the reference for the whole grid."""
    import mpmath

    with mpmath.workdps(60):
        a, b, k = (mpmath.mpf(float(v)) for v in (a, b, k))
        return float(mpmath.loggamma(b + k) + mpmath.loggamma(a + b) - mpmath.loggamma(b) - mpmath.loggamma(a + b + k))


@pytest.fixture(scope="module")
def beta_grid():
    pytest.importorskip("mpmath")
    mu, nu, k = (v.ravel() for v in np.meshgrid(MUS, NUS, KS, indexing="ij"))
    a, b = mu * nu, (1 - mu) * nu
    return a, b, k, np.array([mp_log_beta_ratio(*v) for v in zip(a, b, k)])


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_beta_pass_at_k_is_accurate_at_any_precision(beta_grid):
    a, b, k, log_ratio = beta_grid
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        got = beta_pass_at_k(a, b, k)
        got_log = log_beta_ratio(a, b, k)
    want = -np.expm1(log_ratio)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=0)
    np.testing.assert_allclose(got_log, log_ratio, rtol=1e-10, atol=0)  # so 1 - accuracy is accurate too
    # the betaln difference this replaces: at nu = e^36, mu = 0.01, k = 5 it gave 0.99999999 (truth 0.049)
    assert beta_pass_at_k(0.01 * np.exp(36), 0.99 * np.exp(36), 5) == pytest.approx(1 - 0.99**5, rel=1e-10)
    assert beta_pass_at_k(1e-4 * np.exp(36), (1 - 1e-4) * np.exp(36), 5) == pytest.approx(1 - (1 - 1e-4) ** 5,
                                                                                         rel=1e-10)


@pytest.mark.parametrize("mu, nu, k", [(1e-4, 2.0, 1e3), (1e-3, 0.5, 7.3), (0.05, 0.2, 3.0), (0.02, 30.0, 40.5),
                                       (0.3, 3.0, 100.0), (0.9, 50.0, 2.5), (0.6, 8.0, 1e4)])
def test_beta_pass_at_k_matches_mpmath_quadrature(mu, nu, k):
    """The definition itself: E[1 - (1 - p)^k] over the Beta(a, b) density, integrated in 40-digit arithmetic,
    where quadrature is itself reliable to 1e-8 (no near-1/p endpoint singularity, no spike; the grid test covers
    those with the closed form)."""
    mpmath = pytest.importorskip("mpmath")
    a, b = mu * nu, (1 - mu) * nu
    with mpmath.workdps(40):
        A, B, K = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(k)

        def integrand(p, q, log_q):  # q = 1 - p given exactly, so neither endpoint singularity is rounded away
            return -mpmath.expm1(K * log_q) * p ** (A - 1) * q ** (B - 1)

        lower = mpmath.quad(lambda p: integrand(p, 1 - p, mpmath.log1p(-p)), sorted({0, 1e-6, 1e-3, min(mu, 0.5), 0.5}))
        upper = mpmath.quad(lambda q: integrand(1 - q, q, mpmath.log(q)), [0, 1e-6, 1e-3, 0.5])
        reference = (lower + upper) / mpmath.beta(A, B)
    assert beta_pass_at_k(a, b, k) == pytest.approx(float(reference), rel=1e-8)


def test_log_beta_ratio_derivatives_against_mpmath(beta_grid):
    import mpmath  # beta_grid skips without it

    a, b, k, _ = beta_grid
    pick = np.random.default_rng(0).choice(len(a), 150, replace=False)
    a, b, k = a[pick], b[pick], k[pick]
    da, db = log_beta_ratio_grad(a, b, k)
    with mpmath.workdps(60):
        ref = np.array([[float(mpmath.digamma(A + B) - mpmath.digamma(A + B + K)),
                         float(mpmath.digamma(B + K) + mpmath.digamma(A + B) - mpmath.digamma(B)
                               - mpmath.digamma(A + B + K))]
                        for A, B, K in ((mpmath.mpf(float(x)) for x in v) for v in zip(a, b, k))])
    np.testing.assert_allclose(da, ref[:, 0], rtol=1e-12)
    np.testing.assert_allclose(db, ref[:, 1], rtol=1e-9)


def test_lgamma_and_digamma_differences_against_mpmath():
    mpmath = pytest.importorskip("mpmath")

    x = np.array([1e-12, 1e-3, 0.5, 3.0, 9.99, 10.0, 50.0, 1e4, 1e9, 1e13])[:, None]
    k = np.array([0.0, 0.5, 1.0, 7.3, 1e3, 1e7])[None, :]
    with mpmath.workdps(60):
        X, K = np.vectorize(mpmath.mpf)(x), np.vectorize(mpmath.mpf)(k)
        lg = np.vectorize(lambda u, v: float(mpmath.loggamma(u + v) - mpmath.loggamma(u)))(X, K)
        dg = np.vectorize(lambda u, v: float(mpmath.digamma(u + v) - mpmath.digamma(u)))(X, K)
    np.testing.assert_allclose(lgamma_diff(x, k), lg, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(digamma_diff(x, k), dg, rtol=1e-13, atol=0)


def test_neg_log_pass_at_k_exact_is_stable_at_both_ends():
    getcontext().prec = 60
    for p, k in [(1e-12, 1.0), (1e-12, 1e6), (0.3, 2.5), (0.5, 1024.0), (0.9, 300.0), (0.999, 100.0)]:
        exact = -(1 - (1 - Decimal(p)) ** Decimal(k)).ln()
        assert neg_log_pass_at_k_exact(p, k) == pytest.approx(float(exact), rel=1e-12)
    assert neg_log_pass_at_k_exact(0.5, 1024.0) > 0  # ~ 2^-1024: pass@k rounds to 1, its loss does not
    assert neg_log_pass_at_k_exact(1.0, 4.0) == 0.0 and neg_log_pass_at_k_exact(0.0, 4.0) == np.inf
    with pytest.raises(ValueError, match="p must lie in"):
        neg_log_pass_at_k_exact(1.5, 2)
