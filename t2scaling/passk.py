"""pass@k estimators: the one place in the project where pass@k is computed.

Three forms (DESIGN.md §2.2):
- `pass_at_k_exact(p, k)`: from per-question single-sample success probabilities p (the paper's measurement,
  p = exp(-NLL)); k is real-valued.
- `pass_at_k_unbiased(n, c, k)`: from n real samples with c correct (Chen et al. 2021).
- `beta_pass_at_k(a, b, k)`: expected pass@k when p ~ Beta(a, b) (T² Approach 2).
"""

import numpy as np
from scipy.special import betaln


def pass_at_k_exact(p, k):
    """1 - (1 - p)^k, accurate for tiny p and huge k. p in [0, 1], k real >= 1; broadcasts."""
    p = np.asarray(p, dtype=float)
    k = np.asarray(k, dtype=float)
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("pass_at_k_exact: p must lie in [0, 1] (a probability such as exp(-NLL))")
    if np.any(~np.isfinite(k)) or np.any(k < 1):
        raise ValueError("pass_at_k_exact: k must be a finite real >= 1")
    with np.errstate(divide="ignore"):
        return -np.expm1(k * np.log1p(-p))


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


def beta_pass_at_k(a, b, k):
    """E[1 - (1 - p)^k] for p ~ Beta(a, b): 1 - B(a, b + k) / B(a, b), via betaln. k real >= 1."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    k = np.asarray(k, dtype=float)
    if np.any(~(a > 0)) or np.any(~(b > 0)):
        raise ValueError("beta_pass_at_k: Beta parameters a and b must be > 0")
    if np.any(~np.isfinite(k)) or np.any(k < 1):
        raise ValueError("beta_pass_at_k: k must be a finite real >= 1")
    return -np.expm1(betaln(a, b + k) - betaln(a, b))
