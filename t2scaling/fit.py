"""Fit scaling laws (DESIGN.md §2.3–2.5): Chinchilla, T² Approach 1 and T² Approach 2, and `t2scaling fit`.

Every fitter returns a `FitResult` (the Fit JSON of §5). Objectives are written once, batched over many
parameter vectors (rows of X) with analytic gradients. `_multistart` runs a vectorised BFGS from every start
at once, drops the worse half every few steps, then polishes the best few distinct candidates with scipy's
L-BFGS-B; the best objective wins. Optimiser space = `law.pack` order (positive scales as logs), with N and D
in reference units N/N_ref, D/D_ref (geometric means of the data): there a' = log A' where A/N^alpha =
A' (N/N_ref)^-alpha, so A = A' N_ref^alpha, and log A', log B' are logs of loss terms at the data whatever the
exponents (with raw N, D, log A = log A' + alpha log N_ref grows with alpha and a bound on it caps alpha). Fits
store natural parameters (A, B for raw N, D) and record N_ref, D_ref in their options.
"""

import hashlib
import logging
import time

import numpy as np
from scipy.optimize import least_squares, minimize
from scipy.special import betaln, digamma, expit, gammaln
from tqdm import tqdm

from t2scaling import observations
from t2scaling.fitresult import FitResult
from t2scaling.laws import approach2_link, get_law
from t2scaling.passk import beta_pass_at_k, digamma_diff, lgamma_diff, log_beta_ratio, log_beta_ratio_grad

logger = logging.getLogger(__name__)

HUBER_DELTA = 1e-3
# Hoffmann et al.'s 4,500 starts: alpha, beta in {0, .5, .., 2}, e in {-1, -.5, .., 1}. Their a, b in {0, 5, .., 25}
# were log A, log B for raw N, D. In reference units a', b' are the logs of the N and D terms at the data's
# geometric-mean N and D, each a part of the loss there, so their six values are log(mean loss) + {-5, -4, .., 0}:
# a term from e^-5 ~ 0.7 % of the loss to all of it, at any loss scale. HOFFMANN_GRID holds these offsets and
# `_with_scale` adds the scale. (Starts above the loss mostly lose; from 10 random Approach 1 starts they also
# often end in a local minimum with a dead N term.)
_HALVES, _ES, _AB = np.arange(0, 2.01, 0.5), np.arange(-1, 1.01, 0.5), np.arange(-5, 0.01, 1.0)
HOFFMANN_GRID = np.stack(np.meshgrid(_AB, _AB, _ES, _HALVES, _HALVES, indexing="ij"), -1).reshape(-1, 5)
# Optimiser-space bounds (a', b' in reference units), wide on purpose: a fit that ends on one is reported as not
# converged. A term of e^30 nats at the data is absurd and one of e^-30 is nil, so a', b' never bind a real fit,
# whatever alpha and beta.
CHINCHILLA_BOUNDS = np.array([(-30, 30), (-30, 30), (-10, 6), (0, 5), (0, 5)], dtype=float)  # a', b', e, alpha, beta
APPROACH1_BOUNDS = np.vstack([CHINCHILLA_BOUNDS, [(-10, 6), (0, 5)]])  # + log G, gamma
THETA_BOUNDS = np.array([(-50, 50), (0, 1e3), (1e-6, 1), (-25, 25), (-25, 25)], dtype=float)  # theta0..theta4
# Legitimate values on a bound: theta2 = 1 (every question solvable in the limit) and E ~ 0 (no loss floor, as
# for task loss -log pass@k, which tends to 0 as k grows).
LEGAL_AT_BOUND = {("theta2", "upper"), ("E", "lower")}
VARIANTS = {"chinchilla": ("huber", "profile_e"), "approach1": ("sse",), "approach2": ("sse", "likelihood"),
            "beta_chinchilla": ("likelihood",)}
PER_QUESTION_LAWS = ("approach2", "beta_chinchilla")  # fitted to per-question data
DEFAULT_K_GRID = observations.DEFAULT_K_GRID


# ---- objectives: rows of X are parameter vectors; each returns value (S,) and gradient (S, d) ----

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


# ---- optimiser ----

def _blockwise(objective, points, budget=1 << 15):
    """Evaluate an objective over blocks of rows of ~`budget` array elements: large temporaries cost page
    faults on every call, small ones stay in cache (about 4x faster for 4,500 starts x 250 points)."""
    rows = max(1, budget // max(points, 1))

    def run(X):
        if len(X) <= rows:
            return objective(X)
        parts = [objective(X[i:i + rows]) for i in range(0, len(X), rows)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    return run


def _bfgs_steps(fun, state, steps):
    """`steps` projected BFGS iterations on every row at once, each with its own backtracking line search."""
    X, lo, hi, f, G, H = state
    S, d = X.shape
    eye = np.eye(d)
    free = lo < hi
    for _ in range(steps):
        P = -np.einsum("sij,sj->si", H, G)
        slope = (P * G).sum(1)
        restart = ~(slope < 0)  # not a descent direction: steepest descent with a unit-length step
        H[restart] = eye
        P[restart] = -G[restart] / np.maximum(np.linalg.norm(G[restart], axis=1, keepdims=True), 1e-300)
        slope[restart] = (P[restart] * G[restart]).sum(1)
        t = np.ones(S)
        Xn = np.clip(X + P, lo, hi)
        fn, Gn = fun(Xn)
        todo = ~(fn <= f + 1e-4 * slope)  # Armijo; NaN fails
        for _ in range(40):
            if not todo.any():
                break
            t[todo] *= 0.25
            Xn[todo] = np.clip(X[todo] + t[todo, None] * P[todo], lo[todo], hi[todo])
            fn[todo], Gn[todo] = fun(Xn[todo])
            todo &= ~(fn <= f + 1e-4 * t * slope)
        Xn[todo], fn[todo], Gn[todo] = X[todo], f[todo], G[todo]  # no acceptable step: stay, restart next time
        Gn = Gn * free
        s, y = Xn - X, Gn - G
        sy = (s * y).sum(1)
        ok = sy > 1e-12 * np.linalg.norm(s, axis=1) * np.linalg.norm(y, axis=1) + 1e-300
        fresh = ok & np.all(H == eye, axis=(1, 2))
        H[fresh] *= (sy[fresh] / (y[fresh] ** 2).sum(1))[:, None, None]  # scale the first inverse Hessian
        if ok.any():
            Hs, so, yo, rho = H[ok], s[ok], y[ok], 1.0 / sy[ok]
            Hy = np.einsum("sij,sj->si", Hs, yo)
            H[ok] = (Hs - rho[:, None, None] * (so[:, :, None] * Hy[:, None, :] + Hy[:, :, None] * so[:, None, :])
                     + (rho**2 * (yo * Hy).sum(1) + rho)[:, None, None] * so[:, :, None] * so[:, None, :])
        H[todo] = eye
        X, f, G = Xn, fn, Gn
    return [X, lo, hi, f, G, H]


def _polish(fun, x0, lo, hi, scale):
    """L-BFGS-B to tight tolerances (the paper: up to 5,000 iterations, tol 1e-15), then up to 5 Newton steps.

    Converged ("stationary") = a Newton step over the free coordinates (finite-difference Hessian of the
    analytic gradient) would lower the objective by at most 1e-9 of (objective + 1e-6 `scale`), `scale` being
    the objective of a constant model. scipy's own verdict is not enough: a line search that cannot move is
    reported as success, and minima in narrow valleys end in "abnormal termination".
    """

    def single(x):
        f, g = fun(x[None])
        return float(f[0]), g[0]

    res = minimize(single, x0, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)),
                   options=dict(maxiter=5000, maxfun=20000, ftol=1e-15, gtol=1e-12, maxcor=20))
    x, f, g = res.x, res.fun, single(res.x)[1]
    for steps in range(6):  # the Newton check runs at every point it may return, the last one included
        held = ((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)) | (lo == hi)  # at an active bound, or fixed
        gain, step = _newton_step(fun, x, g, ~held)
        if not gain > 1e-9 * (abs(f) + 1e-6 * scale) or steps == 5:
            break
        trial = np.clip(x + step, lo, hi)
        f_trial, g_trial = single(trial)
        if not f_trial < f:
            break
        x, f, g = trial, f_trial, g_trial
    res.x, res.fun, res.jac = x, f, g
    res.pgrad = float(np.abs(np.where(held, 0.0, g)).max())
    res.stationary = bool(np.isfinite(f) and gain <= 1e-9 * (abs(f) + 1e-6 * scale))
    return res


def _newton_step(fun, x, g, free):
    """Newton step over the free coordinates and the objective decrease it predicts (inf unless the
    finite-difference Hessian is positive definite)."""
    idx = np.flatnonzero(free)
    step = np.zeros_like(x)
    if idx.size == 0:
        return 0.0, step
    h = 1e-6 * np.maximum(1.0, np.abs(x[idx]))
    X = np.repeat(x[None], 2 * idx.size, axis=0)
    X[np.arange(idx.size), idx] += h
    X[idx.size + np.arange(idx.size), idx] -= h
    G = fun(X)[1][:, idx]
    H = (G[: idx.size] - G[idx.size:]) / (2 * h[:, None])
    lam, V = np.linalg.eigh(0.5 * (H + H.T))
    if not np.all(np.isfinite(lam)) or lam[0] <= 0:
        return np.inf, step
    c = V.T @ g[idx]
    step[idx] = -V @ (c / lam)
    return float(0.5 * (c**2 / lam).sum()), step


def _multistart(fun, starts, bounds, scale, keep=8, prune_steps=5, final_steps=40):
    """Minimise `fun` from every start; returns the polished candidates (scipy results), best first.

    All starts take `prune_steps` vectorised BFGS steps, the worse half is dropped, and so on until 4 * keep
    remain; those take `final_steps` more, and the best `keep` distinct ones are polished by L-BFGS-B.
    """
    X = np.array(starts, dtype=float)
    lo = np.broadcast_to(bounds[..., 0], X.shape).copy()
    hi = np.broadcast_to(bounds[..., 1], X.shape).copy()
    X = np.clip(X, lo, hi)
    with np.errstate(all="ignore"):  # overflow at wild starts is expected: such rows lose and are dropped
        f, G = fun(X)
        bad = ~np.isfinite(f) | ~np.all(np.isfinite(G), axis=1)
        f[bad], G[bad] = np.inf, 0.0
        state = [X, lo, hi, f, G * (lo < hi), np.tile(np.eye(X.shape[1]), (len(X), 1, 1))]
        while len(state[0]) > 4 * keep:
            state = _bfgs_steps(fun, state, prune_steps)
            order = np.argsort(np.nan_to_num(state[3], nan=np.inf), kind="stable")
            state = [a[order[: max(4 * keep, len(order) // 2)]] for a in state]
        X, lo, hi, f = _bfgs_steps(fun, state, final_steps)[:4]
        order = np.argsort(np.nan_to_num(f, nan=np.inf), kind="stable")
        _, first = np.unique(np.round(X[order], 3), axis=0, return_index=True)
        picks = order[np.sort(first)][:keep]
        results = [_polish(fun, X[i], lo[i], hi[i], scale) for i in picks if np.isfinite(f[i])]
    return sorted(results, key=lambda r: r.fun if np.isfinite(r.fun) else np.inf)


# ---- shared checks and reporting ----

def _points(label, **arrays):
    out = [np.asarray(v, dtype=float) for v in arrays.values()]
    try:
        out = np.broadcast_arrays(*out)
    except ValueError as err:
        raise ValueError(f"{label}: arrays {list(arrays)} have incompatible shapes {[a.shape for a in out]}") from err
    for name, v in zip(arrays, out):
        bad = ~(np.isfinite(v) & (v > 0))
        if bad.any():  # name the point by its coordinates (N, D, k ...), not a flat index
            first = np.unravel_index(np.flatnonzero(bad)[0], v.shape)
            where = ", ".join(f"{n} = {a[first]:g}" for n, a in zip(arrays, out))
            raise ValueError(f"{label}: {name} must be finite and > 0 everywhere, but is not at {int(bad.sum())} of "
                             f"{v.size} points, the first at {where}; fix or drop those points")
    return [v.ravel() for v in out]


def _data_range(N, D, k=1.0):
    """The span of the fitted data (DESIGN.md §2.6, honest extrapolation): [min, max] of N, D, C_train = 6ND,
    tokens per parameter D/N and k (1 for laws without k), as plain floats."""
    N, D, k = (np.asarray(v, dtype=float) for v in (N, D, k))
    values = dict(N=N, D=D, C_train=6 * N * D, tokens_per_param=D / N, k=k)
    return {name: [float(v.min()), float(v.max())] for name, v in values.items()}


def _reference(N, D):
    """log N_ref, log D_ref: geometric means of the data (the optimiser's units, see the module docstring)."""
    return np.array([np.log(N).mean(), np.log(D).mean()])


def _with_scale(starts, loss):
    """Starts whose a', b' are offsets from the log of the mean loss (nats) -> starts in reference units."""
    starts = np.array(starts, dtype=float)
    starts[:, :2] += np.log(np.mean(loss))
    return starts


def _natural(x, log_ref):
    """Optimiser vector(s) with a', b' in reference units -> natural a = log A, b = log B (None stays None)."""
    if x is None:
        return None
    x = np.array(x, dtype=float)
    x[..., :2] += x[..., 3:5] * log_ref
    return x


def _require_spread(label, N, D):
    for name, v in (("N", N), ("D", D)):
        if np.unique(v).size < 2:
            raise ValueError(f"{label}: every point has the same {name} = {v[0]:g}, so the law cannot separate its "
                             f"{name} term from E; add checkpoints with other {name}")


def _require_restarts(label, restarts):
    """`restarts`, or the schema's fits.restarts when None (the default is written once, in the schema)."""
    if restarts is None:
        from t2scaling.config import schema_default

        restarts = schema_default("fits.restarts")
    if not (isinstance(restarts, (int, np.integer)) and restarts >= 1):
        raise ValueError(f"{label}: restarts = {restarts!r} must be an integer >= 1 (the paper uses 500)")
    return restarts


def _array_hash(*arrays):
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(np.ascontiguousarray(np.asarray(a, dtype=float)).tobytes())
    return "sha256:" + digest.hexdigest()


def _r2(observed, predicted):
    ss_tot = ((observed - observed.mean()) ** 2).sum()
    return float(1.0 - ((observed - predicted) ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan")


def _problems(names, values, best, x, bounds, r2, stage=""):
    """Honest reasons a fit is not a converged fit (empty list = converged). values: natural parameters; x and
    bounds: the optimiser's coordinates (reference units), where the bounds apply."""
    where = f"{stage}: " if stage else ""
    if best is None or not np.isfinite(best.fun):
        return [f"{where}the optimiser failed from every start (no finite objective)"]
    out = [] if best.stationary else [f"{where}L-BFGS-B stopped before a stationary point ({best.message}; "
                                      f"projected gradient {best.pgrad:.2g})"]
    for name, xi, (lo, hi) in zip(names, x, bounds):
        for side, edge in (("lower", lo), ("upper", hi)):
            if lo < hi and abs(xi - edge) <= 1e-6 * max(1.0, abs(edge)) and (name, side) not in LEGAL_AT_BOUND:
                out.append(f"{where}{name} = {values[name]:.4g} sits at its {side} bound ({edge:g} in the optimiser's "
                           "coordinate)")
    if r2 is not None and not (np.isfinite(r2) and r2 >= 0):
        out.append(f"{where}R^2 = {r2:.3g} (the law explains none of the variation)")
    return out


def _negligible_terms(params, N, D, k=None):
    """A power-law term that varies by less than 1e-4 of the prediction over the data is unidentified: tiny (its
    exponent is arbitrary) or flat (exponent ~0, so it cannot be told from E)."""
    terms = {"A/N^alpha": ("N", params["A"] * N ** -params["alpha"]),
             "B/D^beta": ("D", params["B"] * D ** -params["beta"])}
    if k is not None:
        terms["G/k^gamma"] = ("k", params["G"] * k ** -params["gamma"])
    total = params["E"] + sum(t for _, t in terms.values())
    return [f"{name} varies by less than 1e-4 of the prediction over the data (the data show no dependence on "
            f"{var})" for name, (var, t) in terms.items() if not np.ptp(t) >= 1e-4 * total.min()]


def _verdict(label, law_name, problems, fix, allow_unconverged):
    if not problems:
        return True
    text = f"{label}: the {law_name} fit did not converge to a usable fit: {'; '.join(problems)}. {fix}"
    if allow_unconverged:
        logger.warning("%s (kept with converged=false)", text)
        return False
    raise ValueError(text + " To keep it anyway with converged=false, pass allow_unconverged=True "
                            "(CLI: --allow-unconverged).")


def _bootstrap(refit, groups, replicates, seed, law):
    """Refit on `replicates` resamples of the groups (checkpoints); returns (params list, failures)."""
    rng = np.random.default_rng(seed)
    ids = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in ids]
    out, failed = [], 0
    if not replicates:
        return out, failed
    for _ in tqdm(range(replicates), desc=f"bootstrap {law}", disable=None, leave=False):
        pick = rng.choice(len(ids), size=len(ids), replace=True)
        x = refit(np.concatenate([members[i] for i in pick]), pick)
        if x is None:
            failed += 1
        else:
            out.append(get_law(law).unpack(x))
    if failed:
        logger.warning("bootstrap %s: %d of %d replicates did not converge and were left out", law, failed,
                       replicates)
    return out, failed


def _derived(params):
    return {"n_star_exponent": params["beta"] / (params["alpha"] + params["beta"])}


def _intervals(samples, level=0.95):
    """Percentile intervals of every parameter and derived quantity over bootstrap replicates."""
    if not samples:
        return {}
    rows = [{**p, **_derived(p)} for p in samples]
    q = 100 * (1 - level) / 2
    return {name: np.percentile([r[name] for r in rows], [q, 100 - q]).tolist() for name in rows[0]}


def _refit_best(fun, starts, bounds, scale):
    """Bootstrap refit: short multistart from the full-data local optima; None when it does not converge."""
    results = _multistart(fun, starts, bounds, scale, keep=2)
    return results[0].x if results and results[0].stationary else None


# ---- Chinchilla ----

def _isoflop_weights(N, D, variance):
    """Inverse-variance weights, the variance pooled over each isoFLOP group (C = 6ND within 10 %), mean 1.

    `variance` is each point's sampling variance (for task NLL: var over questions / n questions); without it
    the weights are uniform.
    """
    if variance is None:
        return np.ones_like(N), "uniform (no per-point variance)"
    log_c = np.log(6 * N * D)
    order = np.argsort(log_c)
    group = np.empty(len(N), dtype=int)
    group[order] = np.cumsum(np.r_[0, np.diff(log_c[order]) > np.log(1.1)])
    pooled = np.array([variance[group == g].mean() for g in range(group.max() + 1)])[group]
    if not np.all(pooled > 0):
        return np.ones_like(N), "uniform (zero variance in an isoFLOP group)"
    w = 1.0 / pooled
    return w / w.mean(), "inverse variance pooled per isoFLOP group"


def _chinchilla(N, D, L, variant, variance, task, label, allow_unconverged):
    """Fit points; returns (FitResult without bootstrap, refit(idx) -> x or None for bootstrap resamples)."""
    t0 = time.perf_counter()
    if variant not in VARIANTS["chinchilla"]:
        raise ValueError(f"{label}: unknown chinchilla variant {variant!r}; choose from {VARIANTS['chinchilla']}")
    N, D, L = _points(label, N=N, D=D, loss=L)
    observations.require_points(len(L), "chinchilla", label)
    _require_spread(label, N, D)
    log_ref = _reference(N, D)
    logN, logD, logL = np.log(N) - log_ref[0], np.log(D) - log_ref[1], np.log(L)
    if variant == "huber":
        weight, note = np.ones_like(L), "uniform"
        starts, bounds = _with_scale(HOFFMANN_GRID, L), CHINCHILLA_BOUNDS
    else:  # profile E over 40 values in [0.01, 0.95] min(L); (a, b, alpha, beta) from Hoffmann's grid at each
        variance = None if variance is None else np.broadcast_to(np.asarray(variance, dtype=float), L.shape)
        weight, note = _isoflop_weights(N, D, variance)
        e_grid = np.log(np.linspace(0.01, 0.95, 40) * L.min())
        rest = np.unique(_with_scale(HOFFMANN_GRID, L)[:, [0, 1, 3, 4]], axis=0)
        starts = np.array([[a, b, e, al, be] for e in e_grid for a, b, al, be in rest])
        bounds = _fix_e(starts)

    def objective(idx):
        data = logN[idx], logD[idx], logL[idx], weight[idx]
        return _blockwise(lambda X: _chinchilla_objective(X, *data), len(idx))

    spread = logL - logL.mean()
    clipped = np.clip(spread, -HUBER_DELTA, HUBER_DELTA)
    scale = (weight * clipped * (spread - 0.5 * clipped)).sum()  # objective of a constant model
    results = _multistart(objective(np.arange(len(L))), starts, bounds, scale)
    law = get_law("chinchilla")
    best = results[0] if results else None
    x = best.x if best is not None else np.full(5, np.nan)
    params = law.unpack(_natural(x, log_ref))
    r2 = _r2(L, law.predict(params, N, D)) if best is not None else float("nan")
    problems = _problems(law.param_names, params, best, x, bounds.reshape(-1, 5, 2)[0], r2)
    problems += _negligible_terms(params, N, D) if best is not None else []
    if variant == "profile_e" and best is not None and np.isclose(x[2], e_grid[-1]):  # the low end means E ~ 0
        problems.append(f"E = {np.exp(x[2]):.4g} sits at the top of its profile grid, 0.95 min(loss)")
    converged = _verdict(label, "chinchilla", problems, "Add points over a wider range of N and D, or check the "
                         "losses are in nats.", allow_unconverged)
    # Bootstrap refits start from the full-data local optima (profile E: the best fit moved to every grid E).
    refit_starts = np.array([r.x for r in results]) if variant == "huber" else \
        np.array([[x[0], x[1], e, x[3], x[4]] for e in e_grid])
    refit_bounds = bounds if variant == "huber" else _fix_e(refit_starts)
    fit = FitResult(
        law="chinchilla", params=params, task=task, derived=_derived(params), r2=r2, n_points=len(L),
        objective=float(best.fun) if best is not None else float("nan"), restarts=len(starts), converged=converged,
        seconds=time.perf_counter() - t0, input_hash=_array_hash(N, D, L), data_range=_data_range(N, D),
        options=dict(variant=variant, huber_delta=HUBER_DELTA, weights=note, N_ref=float(np.exp(log_ref[0])),
                     D_ref=float(np.exp(log_ref[1]))))
    # resamples keep the full data's reference units, so the full-data optima are valid starts
    return fit, lambda idx: _natural(_refit_best(objective(idx), refit_starts, refit_bounds, scale), log_ref)


def _fix_e(starts):
    """Per-start bounds with log E fixed at the start's value (profile E)."""
    bounds = np.broadcast_to(CHINCHILLA_BOUNDS, (len(starts), 5, 2)).copy()
    bounds[:, 2, :] = starts[:, 2:3]
    return bounds


def _finish(fit, t0, samples, failed, bootstrap, seed):
    fit.bootstrap_params, fit.intervals = samples, _intervals(samples)
    fit.options.update(seed=seed, bootstrap=bootstrap, bootstrap_failed=failed)
    fit.seconds = time.perf_counter() - t0
    return fit


def fit_chinchilla(N, D, loss, *, variant="huber", variance=None, bootstrap=0, seed=0, task="", label="arrays",
                   allow_unconverged=False):
    """Fit L(N, D) = E + A/N^alpha + B/D^beta to losses (nats) at N params, D tokens (DESIGN.md §2.3).

    variant "huber": sum of Huber_1e-3 on log residuals from Hoffmann's 4,500-point start grid. "profile_e":
    E profiled over 40 values in [0.01, 0.95] min(loss) with inverse-variance weights pooled per isoFLOP group
    (`variance`: per-point sampling variance, e.g. of a mean task NLL). bootstrap: replicates resampling points.
    """
    t0 = time.perf_counter()
    fit, refit = _chinchilla(N, D, loss, variant, variance, task, label, allow_unconverged)
    samples, failed = _bootstrap(lambda idx, _: refit(idx), np.arange(fit.n_points), bootstrap, seed, "chinchilla")
    return _finish(fit, t0, samples, failed, bootstrap, seed)


# ---- Approach 1 ----

def _approach1_starts(restarts, rng, loss=1.0):
    """Random starts (a', b', e, alpha, beta, g, gamma) over ranges like Hoffmann's grid: a', b' in reference units,
    log(mean loss) + [-5, 0] as HOFFMANN_GRID (loss: the fitted task losses, nats)."""
    lo = np.array([-5, -5, -3, 0, 0, -3, 0.0])
    hi = np.array([0, 0, 2, 2, 2, 2, 1.5])
    return _with_scale(lo + (hi - lo) * rng.random((restarts, 7)), loss)


def fit_approach1(N, D, k, Q, *, restarts=None, bootstrap=0, seed=0, task="", label="arrays",
                  allow_unconverged=False):
    """Fit Q(N, D, k) = E + A/N^alpha + B/D^beta + G/k^gamma (task loss, nats) by SSE (DESIGN.md §2.4).

    N, D, k, Q broadcast to one point each (checkpoints x k grid). `restarts` random starts, best objective
    wins. Bootstrap resamples checkpoints (points sharing N and D) with their whole k curve.
    """
    t0 = time.perf_counter()
    restarts = _require_restarts(label, restarts)
    N, D, k, Q = _points(label, N=N, D=D, k=k, Q=Q)
    if np.any(k < 1):
        raise ValueError(f"{label}: k must be >= 1 (samples per question)")
    observations.require_points(len(Q), "approach1", label, "points (checkpoints x k)")
    _require_spread(label, N, D)
    if np.unique(k).size < 2:
        raise ValueError(f"{label}: a single k = {k[0]:g}: G/k^gamma cannot be told from E; use a k grid with "
                         "several values (e.g. 1,2,4,...,1024)")
    log_ref = _reference(N, D)
    logN, logD, logk = np.log(N) - log_ref[0], np.log(D) - log_ref[1], np.log(k)

    def make(idx):
        data = logN[idx], logD[idx], logk[idx], Q[idx]
        return _blockwise(lambda X: _approach1_objective(X, *data), len(idx))

    rng = np.random.default_rng(seed)
    scale = ((Q - Q.mean()) ** 2).sum()
    results = _multistart(make(np.arange(len(Q))), _approach1_starts(restarts, rng, Q), APPROACH1_BOUNDS, scale)
    law = get_law("approach1")
    best = results[0] if results else None
    x = best.x if best is not None else np.full(7, np.nan)
    params = law.unpack(_natural(x, log_ref))
    r2 = _r2(Q, law.predict(params, N, D, k)) if best is not None else float("nan")
    problems = _problems(law.param_names, params, best, x, APPROACH1_BOUNDS, r2)
    problems += _negligible_terms(params, N, D, k) if best is not None else []
    converged = _verdict(label, "approach1", problems, "Add checkpoints, widen the k grid, or check Q is a loss "
                         "in nats.", allow_unconverged)
    fit = FitResult(
        law="approach1", params=params, task=task, derived=_derived(params), r2=r2, n_points=len(Q),
        objective=float(best.fun) if best is not None else float("nan"), restarts=restarts, converged=converged,
        input_hash=_array_hash(N, D, k, Q), k_grid=sorted(set(k.tolist())), data_range=_data_range(N, D, k),
        options=dict(variant="sse", N_ref=float(np.exp(log_ref[0])), D_ref=float(np.exp(log_ref[1]))))
    groups = np.unique(np.stack([N, D], 1), axis=0, return_inverse=True)[1].ravel()
    starts = np.array([r.x for r in results])
    samples, failed = _bootstrap(lambda idx, _: _natural(_refit_best(make(idx), starts, APPROACH1_BOUNDS, scale),
                                                         log_ref), groups, bootstrap, seed, "approach1")
    return _finish(fit, t0, samples, failed, bootstrap, seed)


# ---- Approach 2 ----

def _theta_init(L, k, acc):
    """Start for theta0..theta4: a plain sigmoid fit of pass@1 vs L̂ gives theta0..2 (0 < theta2 <= 1); a
    per-checkpoint precision nu fitted to its pass@k curve, regressed log-linearly on L̂, gives theta3, theta4."""
    acc1 = acc[:, list(k).index(1.0)] if 1.0 in k else acc[:, 0]
    spread = max(L.std(), 1e-3)
    fit = least_squares(lambda t: t[2] * expit(-t[1] * (L - t[0])) - acc1, [np.median(L), 2 / spread,
                        min(1.0, max(acc1.max(), 1e-3))], bounds=([-50, 0, 1e-6], [50, 1e3, 1]))
    best = best_log_nu(acc1, k, acc)
    slope, intercept = np.polyfit(L, best, 1) if np.unique(L).size > 1 else (0.0, best.mean())
    return np.clip(np.r_[fit.x, intercept, slope], THETA_BOUNDS[:, 0], THETA_BOUNDS[:, 1])


def best_log_nu(acc1, k, acc):
    """Per checkpoint, the log precision (of 161 in [-6, 10]) of a Beta with mean pass@1 `acc1` (C,) whose pass@k
    over the k grid (K,) best matches the measured `acc` (C, K) by SSE: a start for precision links."""
    mu = np.clip(acc1, 1e-6, 1 - 1e-6)[:, None, None]
    log_nu = np.linspace(-6, 10, 161)[None, :, None]
    nu = np.exp(log_nu)
    sse = ((beta_pass_at_k(mu * nu, (1 - mu) * nu, k[None, None, :]) - acc[:, None, :]) ** 2).sum(-1)
    return log_nu[0, sse.argmin(1), 0]


def _theta_starts(init, restarts, L, rng):
    jitter = rng.standard_normal((restarts - 1, 5)) * [0.5 * max(L.std(), 0.1), 0.5, 0.2, 2.0, 1.0]
    starts = np.tile(init, (restarts - 1, 1))
    starts[:, [0, 3, 4]] += jitter[:, [0, 3, 4]]
    starts[:, [1, 2]] *= np.exp(jitter[:, [1, 2]])
    return np.vstack([init, np.clip(starts, THETA_BOUNDS[:, 0], THETA_BOUNDS[:, 1])])


def _stage2_objective(variant, L, k, acc, likelihood):
    if variant == "sse":
        Lp, kp = np.repeat(L, len(k)), np.tile(k, len(L))
        return _blockwise(lambda T: _approach2_sse_objective(T, Lp, kp, acc.ravel()), acc.size)
    rows = len(L) if likelihood["kind"] == "beta" else len(likelihood["ckpt"])
    return _blockwise(lambda T: _approach2_nll_objective(T, L, likelihood), rows)


def _subset_likelihood(data, pick):
    """Likelihood statistics of resampled checkpoints `pick` (indices, with repeats), renumbered 0..len-1."""
    if data["kind"] == "beta":
        return dict(kind="beta", **{key: data[key][pick] for key in ("m", "sum_log_p", "sum_log_1mp")})
    rows = [(np.flatnonzero(data["ckpt"] == c), i) for i, c in enumerate(pick)]
    idx = np.concatenate([r for r, _ in rows])
    return dict(kind="betabinom", ckpt=np.concatenate([np.full(len(r), i) for r, i in rows]),
                **{key: data[key][idx] for key in ("n", "c", "count")})


def fit_approach2(N, D, nll, k, pass_at_k, *, variant="sse", likelihood=None, stage1="huber", nll_variance=None,
                  restarts=None, bootstrap=0, seed=0, task="", label="arrays", allow_unconverged=False):
    """Fit T² Approach 2 (DESIGN.md §2.5) to C checkpoints: N, D, mean task nll (nats) (C,), k grid (K,) and
    empirical mean pass@k (C, K).

    Stage 1: Chinchilla (variant `stage1`) on the mean task NLL gives L̂(N, D). Stage 2: theta0..theta4 by SSE
    against pass@k over checkpoints x k ("sse"), or by maximum likelihood of the per-question data
    ("likelihood"; `likelihood` = observations.likelihood_data: Beta on p, Beta-binomial on (n, c)), from
    `restarts` starts around a sigmoid fit of pass@1 vs L̂. Bootstrap resamples checkpoints, refitting both.
    """
    t0 = time.perf_counter()
    if variant not in VARIANTS["approach2"]:
        raise ValueError(f"{label}: unknown approach2 variant {variant!r}; choose from {VARIANTS['approach2']}")
    restarts = _require_restarts(label, restarts)
    if variant == "likelihood" and likelihood is None:
        raise ValueError(f"{label}: the likelihood variant needs per-question data (p/nll or n_samples/n_correct)")
    N, D, nll = _points(label, N=N, D=D, nll=nll)
    k = np.asarray(k, dtype=float).ravel()
    acc = np.asarray(pass_at_k, dtype=float).reshape(len(N), len(k))
    if not np.all(np.isfinite(acc)) or np.any((acc < 0) | (acc > 1)) or np.any(k < 1):
        raise ValueError(f"{label}: pass@k must lie in [0, 1] and k >= 1; fix the observations")
    observations.require_points(len(N), "chinchilla", label, "checkpoints for stage 1 (Chinchilla on task NLL)")
    observations.require_points(acc.size + len(N), "approach2", label, "points (checkpoints + checkpoints x k)")
    stage1_fit, stage1_refit = _chinchilla(N, D, nll, stage1, nll_variance, task, label + " (stage 1)",
                                           allow_unconverged)
    chin = get_law("chinchilla")
    L = chin.predict(stage1_fit.params, N, D)
    rng = np.random.default_rng(seed)
    starts = _theta_starts(_theta_init(L, k, acc), restarts, L, rng)
    scale = ((acc - acc.mean()) ** 2).sum() if variant == "sse" else 0.0
    results = _multistart(_stage2_objective(variant, L, k, acc, likelihood), starts, THETA_BOUNDS, scale)
    law = get_law("approach2")
    best = results[0] if results else None
    theta = best.x if best is not None else np.full(5, np.nan)
    params = {**stage1_fit.params, **{f"theta{i}": float(v) for i, v in enumerate(theta)}}
    r2 = _r2(acc.ravel(), law.predict(params, N[:, None], D[:, None], k[None, :]).ravel()) \
        if best is not None else float("nan")
    problems = _problems(law.param_names[5:], params, best, theta, THETA_BOUNDS, r2, stage="stage 2 (theta)")
    converged = _verdict(label, "approach2", problems, "Add checkpoints whose accuracy varies, or use a k grid "
                         "where pass@k is neither 0 nor 1 everywhere.", allow_unconverged) and stage1_fit.converged
    fit = FitResult(
        law="approach2", params=params, task=task, derived=_derived(params), r2=r2, n_points=int(acc.size),
        objective=float(best.fun) if best is not None else float("nan"), restarts=restarts,
        converged=bool(converged), input_hash=_array_hash(N, D, nll, k, acc), k_grid=k.tolist(),
        data_range=_data_range(N, D, k),
        options=dict(variant=variant, stage1=stage1, stage1_objective=stage1_fit.objective, stage1_r2=stage1_fit.r2,
                     N_ref=stage1_fit.options["N_ref"], D_ref=stage1_fit.options["D_ref"],
                     objective="sse" if variant == "sse" else "negative log-likelihood (nats)",
                     likelihood=None if likelihood is None else likelihood["kind"]))
    theta_starts = np.array([r.x for r in results])

    def refit(_, pick):  # resampled checkpoints: both stages again, warm-started from the full-data optima
        x1 = stage1_refit(pick)
        if x1 is None:
            return None
        Lb = chin.predict(chin.unpack(x1), N[pick], D[pick])
        data = _subset_likelihood(likelihood, pick) if variant == "likelihood" else None
        x2 = _refit_best(_stage2_objective(variant, Lb, k, acc[pick], data), theta_starts, THETA_BOUNDS, scale)
        return None if x2 is None else np.r_[x1, x2]

    samples, failed = _bootstrap(refit, np.arange(len(N)), bootstrap, seed, "approach2")
    return _finish(fit, t0, samples, failed, bootstrap, seed)


# ---- tables and CLI ----

def fit_table(law, table_path, out_path=None, *, task="", columns=None, k_grid=None, restarts=None, bootstrap=0,
              variant=None, source="auto", stage1="huber", seed=0, allow_unconverged=False):
    """Read an observation table (CSV/Parquet, DESIGN.md §5), fit `law`, write the Fit JSON to out_path."""
    variant = _variant(law, variant, table_path)
    obs = observations.read_table(table_path, columns)
    result = fit_observations(law, obs, task=task, k_grid=k_grid, restarts=restarts, bootstrap=bootstrap,
                              variant=variant, source=source, stage1=stage1, seed=seed,
                              allow_unconverged=allow_unconverged, label=str(table_path))
    result.input_hash = obs.sha256
    result.options.update(table=str(table_path), columns=dict(columns or {}))
    if out_path:
        result.to_json(out_path)
        logger.info("%s: wrote %s", table_path, out_path)
    return result


def _variant(law, variant, label):
    if law not in VARIANTS:
        raise ValueError(f"unknown law {law!r} for fitting; choose from {', '.join(VARIANTS)}")
    variant = variant or VARIANTS[law][0]
    if variant not in VARIANTS[law]:
        raise ValueError(f"{label}: unknown {law} variant {variant!r}; choose from {VARIANTS[law]}")
    return variant


def require_form(law, obs, label=None):
    """Stop early when a table's form cannot feed `law` (Approach 2 and Beta-Chinchilla need per-question data)."""
    if law in PER_QUESTION_LAWS and obs.form != "per_question":
        raise ValueError(f"{label or obs.path}: {law} needs a per-question table (checkpoint, N, D, question, "
                         f"nll/p and/or n_samples/n_correct); this is a {obs.form} table — fit approach1 instead")


def fit_observations(law, obs, *, task="", k_grid=None, restarts=None, bootstrap=0, variant=None, source="auto",
                     stage1="huber", seed=0, allow_unconverged=False, label=None):
    """Fit `law` to validated `observations.Observations` (all of a table, or a subset of its checkpoints).

    The one path from a table to a fit: `fit_table` and the extrapolation experiment both use it. The fit's
    input_hash is that of the arrays fitted; options record the table form and the data source used.
    """
    label = label or obs.path
    variant = _variant(law, variant, label)
    require_form(law, obs, label)
    common = dict(task=task, label=label, bootstrap=bootstrap, seed=seed, allow_unconverged=allow_unconverged)
    used = "loss"
    if law == "chinchilla":
        N, D, L, var = observations.loss_points(obs)
        result = fit_chinchilla(N, D, L, variant=variant, variance=var, **common)
    elif law == "approach1":
        used = observations.choose_source(obs, source)
        ckpts, k, Q = observations.task_loss_matrix(obs, k_grid, used)
        _require_task_loss(label, ckpts.index, k, Q)
        result = fit_approach1(ckpts["N"].to_numpy()[:, None], ckpts["D"].to_numpy()[:, None], k[None, :], Q,
                               restarts=restarts, **common)
    elif law == "beta_chinchilla":
        from t2scaling.fit_beta import fit_beta_chinchilla  # it builds on this module's optimiser

        used = observations.choose_source(obs, source)
        ckpts, k, acc = observations.pass_at_k_matrix(obs, _with_one(observations.k_grid_for(obs, k_grid, used)),
                                                      used)
        result = fit_beta_chinchilla(ckpts["N"].to_numpy(), ckpts["D"].to_numpy(), k, acc,
                                     observations.likelihood_data(obs, used)[1], restarts=restarts, **common)
    else:
        used = observations.choose_source(obs, source)
        N, D, nll, var = observations.loss_points(obs)
        ckpts, k, acc = observations.pass_at_k_matrix(obs, k_grid, used)
        likelihood = observations.likelihood_data(obs, used)[1] if variant == "likelihood" else None
        result = fit_approach2(N, D, nll, k, acc, variant=variant, likelihood=likelihood, stage1=stage1,
                               nll_variance=var, restarts=restarts, **common)
    result.options.update(form=obs.form, source=used)
    return result


def _with_one(k):
    """The k grid with k = 1 first (Beta-Chinchilla's starts read pass@1)."""
    return np.unique(np.r_[1.0, k])


def _require_task_loss(label, names, k, Q):
    """Approach 1 fits task loss Q (C, K) > 0; where it is 0 (-log pass@k of a checkpoint that solves every
    question with certainty) name the checkpoint and k rather than a point index."""
    zero = np.argwhere(~(Q > 0))
    if len(zero):
        i, j = zero[0]
        raise ValueError(f"{label}: checkpoint {names[i]!r} solves every question with certainty at k = {k[j]:g}, so "
                         "its task loss -log(pass@k) is 0, which Approach 1 cannot fit; drop the checkpoint or leave "
                         "that k out of the k grid (--k-grid)")
