"""T² Approach 2 (DESIGN.md §2.5): a Chinchilla fit of the mean task NLL (stage 1), then the Beta links of
per-question accuracy by SSE on pass@k or by likelihood (stage 2).
"""

import time

import numpy as np
from scipy.optimize import least_squares
from scipy.special import expit

from t2scaling import observations
from t2scaling.fit.chinchilla import _chinchilla
from t2scaling.fit.diagnostics import (_array_hash, _bootstrap, _data_range, _derived, _finish, _points, _problems, _r2,
                                       _require_restarts, _verdict)
from t2scaling.fit.objectives import _approach2_nll_objective, _approach2_sse_objective
from t2scaling.fit.optimize import _blockwise, _multistart, _refit_best
from t2scaling.fitresult import FitResult
from t2scaling.laws import get_law
from t2scaling.passk import beta_pass_at_k


THETA_BOUNDS = np.array([(-50, 50), (0, 1e3), (1e-6, 1), (-25, 25), (-25, 25)], dtype=float)  # theta0..theta4


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
    variants = get_law("approach2").variants
    if variant not in variants:
        raise ValueError(f"{label}: unknown approach2 variant {variant!r}; choose from {variants}")
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
