"""T² Approach 1 (DESIGN.md §2.4): Q(N, D, k) = E + A/N^alpha + B/D^beta + G/k^gamma by SSE.
"""

import time

import numpy as np

from t2scaling import observations
from t2scaling.fit.chinchilla import CHINCHILLA_BOUNDS
from t2scaling.fit.diagnostics import (_array_hash, _bootstrap, _data_range, _derived, _finish, _natural,
                                       _negligible_terms, _points, _problems, _r2, _reference, _require_restarts,
                                       _require_spread, _verdict, _with_scale)
from t2scaling.fit.objectives import _approach1_objective
from t2scaling.fit.optimize import _blockwise, _multistart, _refit_best
from t2scaling.fitresult import FitResult
from t2scaling.laws import get_law


APPROACH1_BOUNDS = np.vstack([CHINCHILLA_BOUNDS, [(-10, 6), (0, 5)]])  # + log G, gamma


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
