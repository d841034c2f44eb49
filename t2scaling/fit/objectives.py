"""Objectives of the fits, batched over parameter rows X with analytic gradients: each returns value (S,)
and gradient (S, d). Optimiser coordinates as in `t2scaling.fit` (reference units).
"""

import numpy as np
from scipy.special import betaln, digamma, gammaln

from t2scaling.laws import approach2_link
from t2scaling.passk import digamma_diff, lgamma_diff, log_beta_ratio, log_beta_ratio_grad


HUBER_DELTA = 1e-3


def _chinchilla_objective(X, logN, logD, logL, weight):
    """sum_i w_i Huber(log L̂_i - log L_i), log L̂ = log(e^(a - alpha log N) + e^(b - beta log D) + e^e).

    logN, logD in reference units (log N/N_ref, log D/D_ref; a, b = a', b'). Inside CHINCHILLA_BOUNDS every
    exponent lies in (-700, 700) while N and D each span less than 1e40, so no max-shift is needed.
    """
    eA = np.exp(X[:, :1] - X[:, 3:4] * logN)
    eB = np.exp(X[:, 1:2] - X[:, 4:5] * logD)
    eE = np.exp(X[:, 2:3])
    total = eA + eB + eE
    r = np.log(total) - logL
    clipped = np.clip(r, -HUBER_DELTA, HUBER_DELTA)  # Huber'(r); Huber(r) = clipped * (r - clipped / 2)
    dr = weight * clipped / total  # times each term = d Huber / d (log of that term)
    gA, gB = dr * eA, dr * eB
    grad = np.stack([gA.sum(1), gB.sum(1), dr.sum(1) * eE[:, 0], -(gA * logN).sum(1), -(gB * logD).sum(1)], axis=1)
    return (weight * clipped * (r - 0.5 * clipped)).sum(axis=1), grad


def _approach1_objective(X, logN, logD, logk, Q):
    """sum_i (L̂_i - Q_i)^2, L̂ = A/N^alpha + B/D^beta + E + G/k^gamma; X = (a, b, e, alpha, beta, g, gamma)."""
    tA = np.exp(X[:, :1] - X[:, 3:4] * logN)
    tB = np.exp(X[:, 1:2] - X[:, 4:5] * logD)
    tG = np.exp(X[:, 5:6] - X[:, 6:7] * logk)
    r2 = 2.0 * (tA + tB + np.exp(X[:, 2:3]) + tG - Q)
    gA, gB, gG = r2 * tA, r2 * tB, r2 * tG
    grad = np.stack([gA.sum(1), gB.sum(1), r2.sum(1) * np.exp(X[:, 2]), -(gA * logN).sum(1), -(gB * logD).sum(1),
                     gG.sum(1), -(gG * logk).sum(1)], axis=1)
    return 0.25 * (r2 * r2).sum(axis=1), grad


def _beta_ab(T, L):
    """Approach 2 links (laws.approach2_link, as prediction) at task NLL L: Beta (a, b) (S, n), their
    theta-derivatives (5, S, n), and which rows keep every log nu inside laws.LOG_NU_RANGE (unclipped)."""
    mu, nu, dmu, dnu, inside = approach2_link(T.T[:, :, None], L, derivatives=True)
    return mu * nu, (1 - mu) * nu, dmu * nu + mu * dnu, -dmu * nu + (1 - mu) * dnu, np.all(inside, axis=1)


def _approach2_sse_objective(T, L, k, acc):
    """sum_i (Acc(L_i, k_i) - acc_i)^2 over checkpoints x k, Acc = 1 - B(a, b+k)/B(a, b)."""
    a, b, da, db, valid = _beta_ab(T, L)
    log_ratio = log_beta_ratio(a, b, k)  # log(1 - Acc), accurate at any precision nu
    ratio = np.exp(log_ratio)
    r2 = 2.0 * (-np.expm1(log_ratio) - acc)
    dlr_da, dlr_db = log_beta_ratio_grad(a, b, k)
    ga, gb = -r2 * ratio * dlr_da, -r2 * ratio * dlr_db
    return _walled(0.25 * (r2 * r2).sum(axis=1), (ga * da + gb * db).sum(axis=-1).T, valid)


def _approach2_nll_objective(T, L, data):
    """Negative log-likelihood (nats) of per-question p (Beta) or (n, c) (Beta-binomial) at links of L."""
    return beta_nll(*_beta_ab(T, L), data)


def beta_nll(a, b, da, db, valid, data):
    """Negative log-likelihood (nats) (S,) and its gradient (S, P) of per-question data under Beta(a, b) per
    checkpoint: a, b (S, C); da, db (P, S, C) their derivatives in P parameters; valid (S,) rows inside the
    links' accurate region (others are walled off). data: observations.likelihood_data — Beta on p, or
    Beta-binomial on distinct (checkpoint, n, c) rows with counts."""
    if data["kind"] == "beta":  # sufficient statistics per checkpoint: m, sum log p, sum log(1 - p)
        m, ab = data["m"], digamma(a + b)
        value = -((a - 1) * data["sum_log_p"] + (b - 1) * data["sum_log_1mp"] - m * betaln(a, b)).sum(axis=1)
        ga = -(data["sum_log_p"] - m * (digamma(a) - ab))
        gb = -(data["sum_log_1mp"] - m * (digamma(b) - ab))
    else:  # Beta-binomial log pmf by lnΓ/ψ differences that stay accurate at large nu (scipy's
        # betabinom.logpmf subtracts betaln values ~ nu log nu)
        n, c, w, rows = data["n"], data["c"], data["count"], data["ckpt"]
        a, b, da, db = a[:, rows], b[:, rows], da[..., rows], db[..., rows]
        log_comb = gammaln(n + 1) - gammaln(c + 1) - gammaln(n - c + 1)
        value = -(w * (log_comb + lgamma_diff(a, c) + lgamma_diff(b, n - c) - lgamma_diff(a + b, n))).sum(axis=1)
        common = digamma_diff(a + b, n)
        ga = -w * (digamma_diff(a, c) - common)
        gb = -w * (digamma_diff(b, n - c) - common)
    return _walled(value, (ga * da + gb * db).sum(axis=-1).T, valid)


def _walled(value, grad, valid):
    """Outside the region where the objective is accurate it is +inf, so line searches step back."""
    return np.where(valid, value, np.inf), np.where(valid[:, None], grad, 0.0)
