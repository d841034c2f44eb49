"""The Chinchilla fit (DESIGN.md §2.3): L(N, D) = E + A/N^alpha + B/D^beta on losses (nats), Huber on log
residuals from Hoffmann's start grid, or the paper's profile-E variant.
"""

import time

import numpy as np

from t2scaling import flops, observations
from t2scaling.fit.diagnostics import (_array_hash, _bootstrap, _data_range, _derived, _finish, _natural,
                                       _negligible_terms, _points, _problems, _r2, _reference, _require_spread,
                                       _verdict, _with_scale)
from t2scaling.fit.objectives import _chinchilla_objective, HUBER_DELTA
from t2scaling.fit.optimize import _blockwise, _multistart, _refit_best
from t2scaling.fitresult import FitResult
from t2scaling.laws import get_law


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


def _isoflop_weights(N, D, variance):
    """Inverse-variance weights, the variance pooled over each isoFLOP group (C = 6ND within 10 %), mean 1.

    `variance` is each point's sampling variance (for task NLL: var over questions / n questions); without it
    the weights are uniform.
    """
    if variance is None:
        return np.ones_like(N), "uniform (no per-point variance)"
    log_c = np.log(flops.c_train(N, D))
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
    variants = get_law("chinchilla").variants
    if variant not in variants:
        raise ValueError(f"{label}: unknown chinchilla variant {variant!r}; choose from {variants}")
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
