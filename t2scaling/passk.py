"""pass@k estimators: the one place in the project where pass@k is computed.

Three forms (DESIGN.md §2.2):
- `pass_at_k_exact(p, k)`: from per-question single-sample success probabilities p (the paper's measurement,
  p = exp(-NLL)); k is real-valued. `neg_log_pass_at_k_exact(p, k)` is its task loss -log pass@k.
- `pass_at_k_unbiased(n, c, k)`: from n real samples with c correct (Chen et al. 2021).
- `beta_pass_at_k(a, b, k)`: expected pass@k when p ~ Beta(a, b) (T² Approach 2), with the log Beta ratio and
  its derivatives (`log_beta_ratio`, `log_beta_ratio_grad`) for the fitter.

The Beta forms need differences of lnΓ and ψ at arguments up to ~1e13 that are tiny next to the values
themselves (betaln(a, b + k) - betaln(a, b) loses every digit at nu = a + b ~ 1e12). `lgamma_diff`,
`digamma_diff` and the log Beta ratio take those differences analytically: the recurrences
lnΓ(z) = lnΓ(z + 1) - ln z and ψ(z) = ψ(z + 1) - 1/z lift the smallest argument to >= _Z0, where Stirling's
series holds, and the differences of its leading terms are written with log1p so nothing cancels.
"""

import numpy as np


def _exact_args(p, k, name):
    p = np.asarray(p, dtype=float)
    k = np.asarray(k, dtype=float)
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"{name}: p must lie in [0, 1] (a probability such as exp(-NLL))")
    if np.any(~np.isfinite(k)) or np.any(k < 1):
        raise ValueError(f"{name}: k must be a finite real >= 1")
    with np.errstate(divide="ignore"):  # p = 1: log1p(-1) = -inf, (1 - p)^k = 0 as it should
        return k * np.log1p(-p)  # log (1 - p)^k <= 0


def pass_at_k_exact(p, k):
    """1 - (1 - p)^k, accurate for tiny p and huge k. p in [0, 1], k real >= 1; broadcasts."""
    return -np.expm1(_exact_args(p, k, "pass_at_k_exact"))


def neg_log_pass_at_k_exact(p, k):
    """Task loss -log pass@k = -log(1 - (1 - p)^k) (nats), accurate at both ends; p in [0, 1], k real >= 1.

    With y = k log1p(-p): -log(-expm1(y)) where pass@k is small, -log1p(-exp(y)) where it is near 1, so a
    question solved almost surely gives its tiny loss ~ (1 - p)^k (down to ~1e-308) instead of 0.
    """
    y = _exact_args(p, k, "neg_log_pass_at_k_exact")
    with np.errstate(divide="ignore"):  # the branch np.where discards may take log(0)
        return -np.where(y > -np.log(2.0), np.log(-np.expm1(y)), np.log1p(-np.exp(y)))


def pass_at_k_unbiased(n, c, k):
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k)/C(n, k), vectorised over questions.

    Computed as 1 - prod_{j=n-c+1}^{n} (1 - k/j), which is exact and never overflows; equals 1 when
    n - c < k. k must be an integer-valued 1 <= k <= n (a larger k cannot be estimated from n samples).
    """
    n = np.asarray(n)
    c = np.asarray(c)
    k = np.asarray(k)
    n, c, k = np.broadcast_arrays(n, c, k)
    if np.any(n < 1) or np.any(c < 0) or np.any(c > n):
        raise ValueError("pass_at_k_unbiased: need n >= 1 and 0 <= c <= n for every question")
    if np.any(k < 1) or np.any(k != np.round(k)):
        raise ValueError("pass_at_k_unbiased: k must be an integer >= 1")
    if np.any(k > n):
        raise ValueError(
            f"pass_at_k_unbiased: k = {int(k.max())} exceeds the number of samples n = {int(n.min())}; "
            "draw at least k samples per question or use a smaller k"
        )
    n = n.astype(float)
    c = c.astype(float)
    k = k.astype(float)
    out = np.ones(n.shape)
    # Only questions with n - c >= k need the product; loop over the largest c (products have c factors).
    live = (n - c) >= k
    if np.any(live):
        nl, cl, kl = n[live], c[live], k[live]
        cmax = int(cl.max()) if cl.size else 0
        j = np.arange(cmax)[None, :]  # offsets 0..cmax-1 from the top: j-th factor uses n - j
        denom = nl[:, None] - j
        factors = np.where(j < cl[:, None], 1.0 - kl[:, None] / np.maximum(denom, 1.0), 1.0)
        out[live] = 1.0 - np.prod(factors, axis=1)
    return out


# ---- Beta pass@k: differences of lnΓ and ψ without cancellation ----

_Z0 = 10.0  # Stirling's series below holds to < 1e-18 absolute for z >= _Z0
_BERNOULLI = np.array([1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510])  # B_2 .. B_16
_TWO_N = 2.0 * np.arange(1, 9)
# lnΓ(z) = (z - 1/2) ln z - z + ln(2π)/2 + 1/(12 z) + sum_{n>=2} c_n z^(1-2n); the 1/(12z) term is differenced
# exactly below (its rounding would otherwise dominate results ~1e-8), so the tail starts at z^-3.
_LGAMMA_TAIL = (_BERNOULLI / (_TWO_N * (_TWO_N - 1)))[1:]
_DIGAMMA_TAIL = -_BERNOULLI / _TWO_N  # ψ(z) = ln z - 1/(2z) + sum_{n>=1} c_n z^(-2n)


def _tails(coef, power, plus, minus):
    """sum_{z in plus} t(z) - sum_{z in minus} t(z), t(z) = z^-power sum_i coef[i] z^(-2i): one Horner pass."""
    w = 1.0 / np.stack(np.broadcast_arrays(*plus, *minus))  # 1/z first: z^2 may overflow, 1/z^2 only underflows
    w2 = w * w
    out = coef[-1] * w2
    for c in coef[-2:0:-1]:
        out = (out + c) * w2
    out = (out + coef[0]) * w**power
    return out[: len(plus)].sum(axis=0) - out[len(plus):].sum(axis=0)


def _lift(x, term):
    """(sum_{j<m} term(x + j), x + m) with one m for all elements, so that every x + m >= _Z0."""
    m = int(max(0.0, np.ceil(_Z0 - np.min(x)))) if np.size(x) else 0
    total = np.zeros(np.shape(x))
    for j in range(m):
        total += term(x + j)
    return total, x + m


def _float(*arrays):
    return np.broadcast_arrays(*[np.asarray(v, dtype=float) for v in arrays])


def lgamma_diff(x, k):
    """lnΓ(x + k) - lnΓ(x) for x > 0, k >= 0, accurate to ~1e-16 of |k ln x| at any x (broadcasts)."""
    x, k = _float(x, k)
    low, y = _lift(x, lambda u: np.log1p(k / u))  # lnΓ(u+k) - lnΓ(u) = [same at u+1] - log1p(k/u)
    lead = (y - 0.5) * np.log1p(k / y) + k * (np.log(y + k) - 1.0) - k / y / (y + k) / 12
    return lead + _tails(_LGAMMA_TAIL, 3, (y + k,), (y,)) - low


def digamma_diff(x, k):
    """ψ(x + k) - ψ(x) > 0 for x > 0, k >= 0, to relative accuracy ~1e-15 at any x (broadcasts)."""
    x, k = _float(x, k)
    low, y = _lift(x, lambda u: k / u / (u + k))  # 1/u - 1/(u+k)
    return low + np.log1p(k / y) + 0.5 * k / y / (y + k) + _tails(_DIGAMMA_TAIL, 2, (y + k,), (y,))


def _log_term(u, a, k):
    """ln(u+a) + ln(u+k) - ln u - ln(u+a+k) = log1p(ak / (u(u+a+k))) >= 0."""
    return np.log1p(a / u * (k / (u + a + k)))


def _inverse_term(u, a, k):
    """-(1/(u+a) + 1/(u+k) - 1/u - 1/(u+a+k)) = ak(2u+a+k) / (u(u+a)(u+k)(u+a+k)) >= 0."""
    return a / u / (u + a) * (k * (2 * u + a + k) / (u + k) / (u + a + k))


def log_beta_ratio(a, b, k):
    """log B(a, b + k) / B(a, b) = lnΓ(b+k) + lnΓ(a+b) - lnΓ(b) - lnΓ(a+b+k) <= 0, to relative accuracy
    ~1e-13 for any a, b > 0 and k >= 0 (it tends to k log(1 - mu) as nu = a + b grows at mean mu = a/nu).

    With Stirling's series at y = b lifted to >= _Z0, the second difference of its leading terms is
    (y - 1/2) L - a log1p(k/(y+a)) - k log1p(a/(y+k)), L = _log_term(y): no term is much larger than the
    result, so nothing cancels.
    """
    a, b, k = _float(a, b, k)
    low, y = _lift(b, lambda u: _log_term(u, a, k))
    lead = (y - 0.5) * _log_term(y, a, k) - a * np.log1p(k / (y + a)) - k * np.log1p(a / (y + k))
    lead -= _inverse_term(y, a, k) / 12
    return lead + _tails(_LGAMMA_TAIL, 3, (y + a, y + k), (y, y + a + k)) - low


def log_beta_ratio_grad(a, b, k):
    """(d/da, d/db) of `log_beta_ratio`: ψ(a+b) - ψ(a+b+k) and ψ(b+k) + ψ(a+b) - ψ(b) - ψ(a+b+k), the second
    taken as one difference (not a difference of two digamma_diff) so it stays accurate when a << b."""
    a, b, k = _float(a, b, k)
    low, y = _lift(b, lambda u: _inverse_term(u, a, k))
    d_b = low + _log_term(y, a, k) + 0.5 * _inverse_term(y, a, k)
    return -digamma_diff(a + b, k), d_b + _tails(_DIGAMMA_TAIL, 2, (y + a, y + k), (y, y + a + k))


def beta_pass_at_k(a, b, k):
    """E[1 - (1 - p)^k] for p ~ Beta(a, b): 1 - B(a, b + k) / B(a, b). a, b > 0 finite, k real >= 1.

    Accurate to ~1e-13 relative for any a, b (precision nu = a + b from ~0 to ~1e13 and beyond; as nu grows it
    tends to 1 - (1 - mu)^k, mu = a / nu) and at tiny pass@k (via -expm1 of the log ratio).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    k = np.asarray(k, dtype=float)
    if np.any(~(a > 0)) or np.any(~(b > 0)) or np.any(~np.isfinite(a)) or np.any(~np.isfinite(b)):
        raise ValueError("beta_pass_at_k: Beta parameters a and b must be > 0 and finite")
    if np.any(~np.isfinite(k)) or np.any(k < 1):
        raise ValueError("beta_pass_at_k: k must be a finite real >= 1")
    return -np.expm1(log_beta_ratio(a, b, k))
