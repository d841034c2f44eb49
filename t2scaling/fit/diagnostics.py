"""Checks of fit inputs and honest verdicts on fit outputs: points, reference units, data ranges,
convergence problems, bootstrap replicates and their intervals.
"""

import hashlib
import logging
import time

import numpy as np
from tqdm import tqdm

from t2scaling import flops
from t2scaling.laws import get_law

logger = logging.getLogger(__name__)


# Legitimate values on a bound: theta2 = 1 (every question solvable in the limit) and E ~ 0 (no loss floor, as
# for task loss -log pass@k, which tends to 0 as k grows).
LEGAL_AT_BOUND = {("theta2", "upper"), ("E", "lower")}


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
    values = dict(N=N, D=D, C_train=flops.c_train(N, D), tokens_per_param=D / N, k=k)
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


def _finish(fit, t0, samples, failed, bootstrap, seed):
    fit.bootstrap_params, fit.intervals = samples, _intervals(samples)
    fit.options.update(seed=seed, bootstrap=bootstrap, bootstrap_failed=failed)
    fit.seconds = time.perf_counter() - t0
    return fit
