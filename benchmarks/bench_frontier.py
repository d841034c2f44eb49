"""Frontier solver speed: 200 budgets x 3 task fits, vectorised `frontier` vs a naive per-budget scipy loop.

Target (issue 2): <= 1 s for the vectorised table. The naive loop calls `minimize_scalar(method="bounded")` on
the same objective once per (task, budget) and evaluates the same baselines with scalar calls; both run here,
side by side, and the script prints times, the ratio and how far apart the two optima are.

    .venv/bin/python benchmarks/bench_frontier.py
"""

import time

import numpy as np
from scipy.optimize import minimize_scalar

from t2scaling.fitresult import FitResult
from t2scaling.frontier import N_MIN, frontier
from t2scaling.laws import Chinchilla

C_TRAIN = np.geomspace(1e18, 1e25, 200)  # FLOPs
C_INF = 1.4e11  # FLOPs per served token


def task_fits(law):
    rng = np.random.default_rng(0)
    fits = []
    for task in range(3):
        params = dict(A=478.0 * rng.uniform(0.7, 1.4), B=2143.0 * rng.uniform(0.7, 1.4), E=1.8,
                      alpha=rng.uniform(0.3, 0.4), beta=rng.uniform(0.3, 0.4))
        if law == "approach1":
            params.update(G=rng.uniform(0.5, 2.0), gamma=rng.uniform(0.2, 0.5))
        else:
            params.update(theta0=2.5, theta1=rng.uniform(3, 5), theta2=0.9, theta3=1.0, theta4=-0.2)
        fits.append(FitResult(law=law, params=params, task=f"task{task}"))
    return fits


def naive(fits):
    """One bounded Brent search per (task, budget), plus the same baselines, all with scalar law calls."""
    rows = []
    for fit in fits:
        sign = -1.0 if fit.model.higher_is_better else 1.0
        for c_train in C_TRAIN:
            def cost(log_n):
                N = np.exp(log_n)
                return sign * float(fit.predict(N, c_train / (6 * N), max(C_INF / (2 * N), 1.0)))

            hi = np.log(min(C_INF / 2, c_train / 6))
            res = minimize_scalar(cost, bounds=(np.log(N_MIN), hi), method="bounded", options={"xatol": 1e-10})
            N = np.exp(res.x)
            D, k = c_train / (6 * N), C_INF / (2 * N)
            at_k_int = float(fit.predict(N, D, np.floor(k)))
            n_chin, d_chin = Chinchilla.optimum(fit.params, c_train)
            k_chin = C_INF / (2 * n_chin)
            chin = float(fit.predict(n_chin, d_chin, 1.0))
            chin_ic = float(fit.predict(n_chin, d_chin, k_chin)) if k_chin >= 1 else np.nan
            rows.append((N, sign * res.fun, at_k_int, chin, chin_ic))
    return np.array(rows)


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main():
    print(f"frontier: {len(C_TRAIN)} budgets x 3 tasks, C_inf = {C_INF:.1e} FLOPs/token")
    for law in ("approach1", "approach2"):
        fits = task_fits(law)
        fast, table = best_of(lambda: frontier(fits, c_train=C_TRAIN, c_inf=[C_INF]), 3)
        slow, rows = best_of(lambda: naive(fits), 1)
        n_gap = np.max(np.abs(table["N_star"].to_numpy() / rows[:, 0] - 1))
        m_gap = np.max(np.abs(table["predicted_metric"].to_numpy() - rows[:, 1]))
        sign = -1.0 if fits[0].model.higher_is_better else 1.0
        naive_better = np.max(sign * (table["predicted_metric"].to_numpy() - rows[:, 1]))
        print(f"  {law:10s} vectorised {fast:7.3f} s   naive scipy loop {slow:7.3f} s   ratio {slow / fast:6.1f}x   "
              f"(target <= 1 s: {'ok' if fast <= 1 else 'MISSED'})")
        print(f"  {'':10s} max |N*/N*_naive - 1| = {n_gap:.1e}, max |metric gap| = {m_gap:.1e}, "
              f"naive better by at most {max(naive_better, 0):.1e}")


if __name__ == "__main__":
    main()
