"""Fit speed and quality beside the naive baselines, measured in the same run (issue 2, Performance).

(a) Chinchilla on 250 points: t2scaling's vectorised multistart over Hoffmann's 4,500-start grid vs a plain
    loop of scipy L-BFGS-B (same analytic gradient, bounds and tolerances) from every grid point.
(b) Approach 1, 500 restarts on 100 checkpoints x 12 k: t2scaling vs a naive loop of L-BFGS-B with a
    finite-difference gradient from each of the same 500 starts.
Naive loops that would take minutes are timed on a random subset of their starts and extrapolated (said so in
the output); `--full` runs them completely. Usage: python benchmarks/bench_fit.py [--full] [--subset 0.1]
"""

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from t2scaling import fit
from t2scaling.laws import get_law

EPOCH = Path(__file__).resolve().parents[2] / "shared/holdout/chinchilla_epoch/svg_extracted_data.csv"
TIGHT = dict(maxiter=5000, maxfun=20000, ftol=1e-15, gtol=1e-12, maxcor=20)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def naive_loop(objective, starts, bounds, options, fraction, rng, jac=True):
    """Best objective of L-BFGS-B from (a random subset of) the starts; seconds extrapolated to all starts."""
    n = len(starts) if fraction >= 1 else max(1, int(round(fraction * len(starts))))
    chosen = starts[rng.choice(len(starts), n, replace=False)] if n < len(starts) else starts

    def one(x0):
        if jac:
            return minimize(lambda x: tuple(v[0] for v in objective(x[None])), x0, jac=True, method="L-BFGS-B",
                            bounds=bounds, options=options).fun
        return minimize(lambda x: objective(x[None])[0][0], x0, method="L-BFGS-B", bounds=bounds,
                        options=options).fun

    with np.errstate(all="ignore"):
        values, seconds = timed(lambda: [one(x0) for x0 in chosen])
    return float(np.nanmin(values)), seconds * len(starts) / n, n


def report(ours, naive, objective, best):
    verdict = "equal or better" if objective <= best * (1 + 1e-9) else "WORSE"
    print(f"    speed-up x{naive / ours:.0f}; objective {verdict} "
          f"(relative difference {(objective - best) / best:+.1e})")


def chinchilla_case(name, N, D, L, fraction, rng):
    result, ours = timed(lambda: fit.fit_chinchilla(N, D, L))
    # The same units and starts as the fitter: log N, log D relative to their geometric means, a', b' from log L.
    log_ref = fit.diagnostics._reference(N, D)
    logN, logD, logL = np.log(N) - log_ref[0], np.log(D) - log_ref[1], np.log(L)
    best, naive, n = naive_loop(lambda X: fit.objectives._chinchilla_objective(X, logN, logD, logL, np.ones_like(L)),
                                fit.diagnostics._with_scale(fit.chinchilla.HOFFMANN_GRID, L), fit.chinchilla.CHINCHILLA_BOUNDS, TIGHT, fraction, rng)
    how = "all 4,500 starts" if n == len(fit.chinchilla.HOFFMANN_GRID) else f"{n} random starts, time x{4500 / n:.1f}"
    print(f"(a) Chinchilla, {name}, {len(L)} points")
    print(f"    t2scaling multistart : {ours:7.2f} s   objective {result.objective:.12g}   (target <= 2 s)")
    print(f"    plain L-BFGS-B loop  : {naive:7.2f} s   objective {best:.12g}   ({how})")
    report(ours, naive, result.objective, best)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="run the naive loops over every start (minutes)")
    parser.add_argument("--subset", type=float, default=0.1, help="fraction of starts the naive loops time")
    args = parser.parse_args()
    fraction = 1.0 if args.full else args.subset
    rng = np.random.default_rng(0)

    truth = dict(A=406.4, B=410.7, E=1.69, alpha=0.34, beta=0.28)
    N, D = 10 ** rng.uniform(7, 10, 250), 10 ** rng.uniform(9, 12, 250)
    L = get_law("chinchilla").predict(truth, N, D) * np.exp(0.02 * rng.standard_normal(250))
    chinchilla_case("synthetic (2% noise)", N, D, L, fraction, rng)
    if EPOCH.exists():
        frame = pd.read_csv(EPOCH)
        frame = frame[frame["loss"] < sorted(frame["loss"])[-5]]
        N = frame["Model Size"].to_numpy()
        chinchilla_case("Epoch's reconstructed Hoffmann points", N, frame["Training FLOP"].to_numpy() / (6 * N),
                        frame["loss"].to_numpy(), fraction, rng)

    t2 = dict(A=300.0, B=800.0, E=0.3, alpha=0.33, beta=0.3, G=2.0, gamma=0.4)
    N, D = 10 ** rng.uniform(6, 9, 100), 10 ** rng.uniform(8, 11, 100)
    k = 2.0 ** np.arange(12)
    Q = get_law("approach1").predict(t2, N[:, None], D[:, None], k[None, :])
    Q = Q * np.exp(0.01 * rng.standard_normal(Q.shape))
    result, ours = timed(lambda: fit.fit_approach1(N[:, None], D[:, None], k[None, :], Q, restarts=500))
    log_ref = fit.diagnostics._reference(N, D)
    flat = [a.ravel() for a in np.broadcast_arrays(np.log(N)[:, None] - log_ref[0], np.log(D)[:, None] - log_ref[1],
                                                   np.log(k)[None], Q)]
    starts = fit.approach1._approach1_starts(500, np.random.default_rng(0), Q)  # the starts fit_approach1 draws (seed 0)
    best, naive, n = naive_loop(lambda X: fit.objectives._approach1_objective(X, *flat), starts, fit.approach1.APPROACH1_BOUNDS,
                                dict(maxiter=5000), fraction, rng, jac=False)
    how = "all 500 starts" if n == 500 else f"{n} random starts, time x{500 / n:.1f}"
    print("(b) Approach 1, 100 checkpoints x 12 k, 500 restarts")
    print(f"    t2scaling multistart : {ours:7.2f} s   objective {result.objective:.12g}   (target <= 10 s)")
    print(f"    naive loop (FD grad) : {naive:7.2f} s   objective {best:.12g}   ({how})")
    report(ours, naive, result.objective, best)


if __name__ == "__main__":
    main()
