"""Fitting the Beta-Chinchilla law (laws.BetaChinchilla) by maximum likelihood of per-question data.

Every question of a checkpoint draws its accuracy p from Beta(mu nu, (1 - mu) nu), mu = exp(-L(N, D)),
nu = exp(nu0) L^nu1, L = E + A/N^alpha + B/D^beta. The seven parameters are fitted jointly to the per-question
data (Beta on p, Beta-binomial on sample counts), so the mean and the spread of question difficulty, which
sets pass@k's growth with k, are both learnt from every question. Optimiser coordinates are those of the
Chinchilla fit (a', b' in units of the data's geometric-mean N and D, log E, alpha, beta) plus nu0, nu1.
"""

import time

import numpy as np

from t2scaling import observations
from t2scaling.fit.approach2 import _subset_likelihood, best_log_nu
from t2scaling.fit.chinchilla import _chinchilla, CHINCHILLA_BOUNDS
from t2scaling.fit.diagnostics import (_array_hash, _bootstrap, _data_range, _derived, _finish, _natural,
                                       _negligible_terms, _points, _problems, _r2, _reference, _require_restarts,
                                       _require_spread, _verdict)
from t2scaling.fit.objectives import beta_nll
from t2scaling.fit.optimize import _blockwise, _multistart, _polish, _refit_best, fd_hessian
from t2scaling.fitresult import FitResult
from t2scaling.laws import get_law, LOG_NU_RANGE, MU_RANGE


BOUNDS = np.vstack([CHINCHILLA_BOUNDS, [(-25, 25), (-25, 25)]])  # + nu0, nu1


def _objective(X, logN, logD, data):
    """Negative log-likelihood (nats) (S,) and gradient (S, 7) at parameter rows X over C checkpoints at
    (logN, logD) (reference units). Rows whose mu or nu would be clipped anywhere are walled off."""
    tA = np.exp(X[:, :1] - X[:, 3:4] * logN)
    tB = np.exp(X[:, 1:2] - X[:, 4:5] * logD)
    tE = np.broadcast_to(np.exp(X[:, 2:3]), tA.shape)
    L = tA + tB + tE
    logL = np.log(L)
    mu = np.exp(-L)
    log_nu = X[:, 5:6] + X[:, 6:7] * logL
    nu = np.exp(np.clip(log_nu, *LOG_NU_RANGE))
    valid = np.all((mu >= MU_RANGE[0]) & (mu <= MU_RANGE[1]) & (log_nu >= LOG_NU_RANGE[0])
                   & (log_nu <= LOG_NU_RANGE[1]), axis=1)
    zero = np.zeros_like(L)
    dL = np.stack([tA, tB, tE, -tA * logN, -tB * logD, zero, zero])  # (7, S, C)
    dlog_nu = X[:, 6:7] / L * dL + np.stack([zero] * 5 + [np.ones_like(L), logL])
    dmu, dnu = -mu * dL, nu * dlog_nu
    a, b = mu * nu, (1 - mu) * nu
    return beta_nll(a, b, dmu * nu + mu * dnu, -dmu * nu + (1 - mu) * dnu, valid, data)


def _starts(N, D, log_ref, k, acc, restarts, rng, label):
    """A Chinchilla fit of -log(mean pass@1) per checkpoint (a checkpoint that solves nothing counts as half
    the smallest non-zero pass@1) and a log-linear regression of each checkpoint's best-matching Beta precision
    on that loss; then `restarts - 1` starts jittered around it."""
    acc1 = acc[:, 0]
    floor = 0.5 * acc1[acc1 > 0].min() if np.any(acc1 > 0) else 1e-9
    loss = -np.log(np.clip(acc1, floor, MU_RANGE[1]))
    chin, _ = _chinchilla(N, D, loss, "huber", None, "", label + " (start)", allow_unconverged=True)
    x = get_law("chinchilla").pack(chin.params)
    x[:2] -= x[3:5] * log_ref  # natural a, b -> reference units
    L = get_law("chinchilla").predict(chin.params, N, D)
    slope, intercept = np.polyfit(np.log(L), best_log_nu(acc1, k, acc), 1) if np.unique(L).size > 1 else \
        (0.0, 0.0)
    init = np.clip(np.r_[x, intercept, slope], BOUNDS[:, 0], BOUNDS[:, 1])
    jitter = rng.standard_normal((restarts - 1, 7)) * [1.0, 1.0, 0.5, 0.2, 0.2, 2.0, 1.0]
    return np.vstack([init, np.clip(init + jitter, BOUNDS[:, 0], BOUNDS[:, 1])])


def _repolish(objective, result, steps=60):
    """Damped Newton steps, then the standard polish and stationarity check (optimize._polish).

    The likelihood is badly conditioned: B/D^beta with a small beta couples log B and beta into a narrow curved
    valley (curvatures from ~1e-3 to ~1e6 nats), where L-BFGS-B stalls short of a stationary point. Seven
    parameters make a Newton step with a finite-difference Hessian cheap. E -> 0 (pass@1 saturating at 1) is
    legal and flat in log E: at its lower bound log E is pinned there.
    """
    lo, hi = BOUNDS[:, 0].copy(), BOUNDS[:, 1].copy()
    x = result.x.copy()
    if x[2] - lo[2] <= 1e-6 * abs(lo[2]):
        x[2] = hi[2] = lo[2]
    f, g = (v[0] for v in objective(x[None]))
    damping = 1e-3
    for _ in range(steps):
        free = (lo < hi) & ~(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))
        H = fd_hessian(objective, x, np.flatnonzero(free))
        gf = g[free]
        moved = False
        while damping < 1e12:
            step = np.zeros_like(x)
            step[free] = -np.linalg.solve(H + damping * np.diag(np.maximum(np.abs(np.diag(H)), 1e-12)), gf)
            trial = np.clip(x + step, lo, hi)
            f_trial, g_trial = (v[0] for v in objective(trial[None]))
            if f_trial < f:
                x, f, g, moved = trial, f_trial, g_trial, True
                damping = max(damping / 10, 1e-9)
                break
            damping *= 10
        if not moved or np.abs(gf).max() < 1e-6:
            break
    return _polish(objective, x, lo, hi, 0.0)


def fit_beta_chinchilla(N, D, k, pass_at_k, likelihood, *, restarts=None, bootstrap=0, seed=0, task="",
                        label="arrays", allow_unconverged=False):
    """Fit laws.BetaChinchilla to C checkpoints at N params, D tokens (C,) by maximum likelihood of their
    per-question data `likelihood` (observations.likelihood_data: Beta on p or Beta-binomial on (n, c), rows
    indexed by checkpoint 0..C-1). k (K,) and the measured mean pass@k (C, K) give the starts and R^2 (k[0]
    must be 1). `restarts` starts (fits.restarts by default); bootstrap resamples checkpoints.
    """
    t0 = time.perf_counter()
    restarts = _require_restarts(label, restarts)
    N, D = _points(label, N=N, D=D)
    k = np.asarray(k, dtype=float).ravel()
    acc = np.asarray(pass_at_k, dtype=float).reshape(len(N), len(k))
    if k[0] != 1 or not np.all(np.isfinite(acc)) or np.any((acc < 0) | (acc > 1)):
        raise ValueError(f"{label}: the k grid must start at k = 1 and pass@k lie in [0, 1]; fix the k grid or "
                         "the observations")
    law = get_law("beta_chinchilla")
    observations.require_points(len(N), "beta_chinchilla", label, "checkpoints (one per parameter of L(N, D) "
                                "at least)")
    _require_spread(label, N, D)
    log_ref = _reference(N, D)
    logN, logD = np.log(N) - log_ref[0], np.log(D) - log_ref[1]
    rows = len(N) if likelihood["kind"] == "beta" else len(likelihood["ckpt"])

    def make(pick, data):
        return _blockwise(lambda X: _objective(X, logN[pick], logD[pick], data), rows)

    rng = np.random.default_rng(seed)
    starts = _starts(N, D, log_ref, k, acc, restarts, rng, label)
    objective = make(np.arange(len(N)), likelihood)
    with np.errstate(all="ignore"):  # trial steps may leave the region where the links are finite; they lose
        results = sorted((_repolish(objective, r) for r in _multistart(objective, starts, BOUNDS, scale=0.0)),
                         key=lambda r: r.fun if np.isfinite(r.fun) else np.inf)
    best = results[0] if results else None
    x = best.x if best is not None else np.full(7, np.nan)
    params = law.unpack(_natural(x, log_ref))
    predicted = law.predict(params, N[:, None], D[:, None], k[None, :]) if best is not None else None
    r2 = _r2(acc.ravel(), predicted.ravel()) if best is not None else float("nan")
    problems = _problems(law.param_names, params, best, x, BOUNDS, r2)
    problems += _negligible_terms(params, N, D) if best is not None else []
    converged = _verdict(label, "beta_chinchilla", problems, "Add checkpoints whose accuracy varies with N and "
                           "D, or more questions.", allow_unconverged)
    fit = FitResult(
        law="beta_chinchilla", params=params, task=task, derived=_derived(params), r2=r2, n_points=int(acc.size),
        objective=float(best.fun) if best is not None else float("nan"), restarts=restarts, converged=converged,
        input_hash=_array_hash(N, D, k, acc), k_grid=k.tolist(), data_range=_data_range(N, D, k),
        options=dict(variant="likelihood", objective="negative log-likelihood (nats)", likelihood=likelihood["kind"],
                     N_ref=float(np.exp(log_ref[0])), D_ref=float(np.exp(log_ref[1]))))
    warm = np.array([r.x for r in results])

    def refit(_, pick):  # resampled checkpoints, warm-started from the full-data optima
        x_b = _refit_best(make(pick, _subset_likelihood(likelihood, pick)), warm, BOUNDS, 0.0)
        return _natural(x_b, log_ref)

    samples, failed = _bootstrap(refit, np.arange(len(N)), bootstrap, seed, "beta_chinchilla")
    return _finish(fit, t0, samples, failed, bootstrap, seed)
