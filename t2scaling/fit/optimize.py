"""The optimiser every fit uses: vectorised BFGS from many starts with halving, then L-BFGS-B polish and a
Newton-step stationarity check (`_multistart`, `_polish`).
"""

import numpy as np
from scipy.optimize import minimize


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


def fd_hessian(fun, x, idx):
    """The Hessian of `fun` over coordinates `idx` at x by central differences of its analytic gradient (steps
    1e-6 relative), symmetrised."""
    h = 1e-6 * np.maximum(1.0, np.abs(x[idx]))
    X = np.repeat(x[None], 2 * idx.size, axis=0)
    X[np.arange(idx.size), idx] += h
    X[idx.size + np.arange(idx.size), idx] -= h
    G = fun(X)[1][:, idx]
    H = (G[: idx.size] - G[idx.size:]) / (2 * h[:, None])
    return 0.5 * (H + H.T)


def _newton_step(fun, x, g, free):
    """Newton step over the free coordinates and the objective decrease it predicts (inf unless the
    finite-difference Hessian is positive definite)."""
    idx = np.flatnonzero(free)
    step = np.zeros_like(x)
    if idx.size == 0:
        return 0.0, step
    lam, V = np.linalg.eigh(fd_hessian(fun, x, idx))
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


def _refit_best(fun, starts, bounds, scale):
    """Bootstrap refit: short multistart from the full-data local optima; None when it does not converge."""
    results = _multistart(fun, starts, bounds, scale, keep=2)
    return results[0].x if results and results[0].stationary else None
