"""Compute-optimal frontiers (DESIGN.md §2.6): the T² planner, vectorised over arrays of budgets.

P1, the paper's problem — separate budgets: C_train = 6·N·D FLOPs of pretraining and C_inf = 2·N·k FLOPs per
served token, so D = C_train/(6N), k = C_inf/(2N) and the plan is one-dimensional in log N. Feasibility is
k >= 1, i.e. N <= C_inf/2 (also D >= 1 token and the searched range [n_min, n_max] of model sizes). For all
budgets at once: a dense log-N grid, a bracket around the best grid point, then bisection on the sign of a
finite-difference slope. That reaches ~1e-11 in ln N on smooth laws, where golden section on the metric itself
stalls at ~sqrt(machine eps) ~ 1e-8 relative accuracy in N.

P2, beyond the paper (Sardana et al. 2024) — one total budget C = 6·N·D + 2·N·k·T_inf for a lifetime of T_inf
served tokens, optimised over (N, D, k): profiled over the training share f = C_train/C (in logit f), with P1
solved inside at C_train = f·C and C_inf = (1 − f)·C/T_inf. (For a law that ignores k, such as chinchilla, any
split with k >= 1 and a negligible inference share is optimal, so its reported k* is arbitrary.)

Every row also carries two baselines: the Chinchilla optimum (argmin over N of the fit's k = 1 form; the closed
form `Chinchilla.optimum` of the stage-1 parameters for the registry's Chinchilla-based laws) with its metric at
k = 1, and that same model served with its inference-corrected k = C_inf/(2·N_chin). For P2 rows the baselines
use the T² plan's own split (C_train = 6·N*·D*, C_inf = 2·N*·k*), so all three spend the same total budget.
Gains are signed so that positive means T² is better.
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit
from tqdm import tqdm

from t2scaling import flops
from t2scaling.atomic import atomic_file
from t2scaling.fitresult import load_fit
from t2scaling.laws import CHINCHILLA_PREFERENCE, LAWS, Chinchilla, get_law

logger = logging.getLogger(__name__)

# Laws whose k = 1 form is Chinchilla's L(N, D) through a monotone link (Law.k1_is_chinchilla) have the Chinchilla
# baseline in closed form. Any other law gets its baseline numerically: the optimum of the law itself at k = 1.
CHINCHILLA_BASED = frozenset(name for name, law in LAWS.items() if law.k1_is_chinchilla)
N_MIN = 1e3  # smallest model the planner considers, params; below it a law is pure extrapolation
LOG_N_GRID = 128  # grid points per budget over [ln n_min, ln n_hi] (~0.2 apart); brackets a unimodal optimum
LOGIT_F_GRID = 64  # P2: grid points over the logit of the training share
PROFILE_STEPS = 20  # P2: inner P1 bisection steps while profiling the split (ln N to ~4e-7)
SPLIT_STEPS = 36  # P2: bisection steps on logit f (to ~5e-11)
BISECT_STEPS = 44  # the bracket (two grid steps) shrinks by 2^-44, far below the noise of any law
# Step of the fourth-order central difference in ln N (or logit f) whose sign steers the bisection: wide enough
# that a law's rounding noise (Approach 2's betaln differences carry ~1e-12 absolute) cannot flip the sign
# near a flat optimum, while the stencil's truncation bias, ~h^4 f^(5)/(30 f''), stays ~1e-10 in ln N.
SLOPE_STEP = 1e-2
LOGIT_F_CAP = 46.0  # P2 searches training shares f with |logit f| <= 46, i.e. 1e-20 < f < 1 - 1e-20
RANGE_COLUMNS = ("N", "D", "C_train", "tokens_per_param", "k")  # FitResult.data_range keys
# A plan within 1 % of the data's edge is inside it: whole-step rounding of D leaves a grid level's cells a
# fraction of a percent off the level, and a frontier row exactly at that level must not read as extrapolated.
RANGE_RTOL = 1e-2
BANDED = ("N_star", "D_star", "k_star", "tokens_per_param", "predicted_metric")

COLUMNS = [
    "task", "approach", "problem", "c_train", "c_inf", "t_inf", "c_total", "feasible",
    "N_star", "D_star", "k_star", "k_int", "tokens_per_param",
    "metric_name", "predicted_metric", "predicted_metric_at_k_int",
    "chinchilla_N", "chinchilla_D", "chinchilla_tokens_per_param", "chinchilla_metric",
    "chinchilla_k", "chinchilla_feasible", "chinchilla_metric_inference_corrected",
    "gain_vs_chinchilla", "gain_vs_chinchilla_inference_corrected",
    "extrapolated", "extrapolated_in", "data_c_train_min", "data_c_train_max",
]


# ---------------------------------------------------------------------------------------------------- solvers

def _minimise(cost, lo, hi, grid, steps=BISECT_STEPS, slope_step=SLOPE_STEP):
    """Per-row argmin of cost over x in [lo[b], hi[b]]; cost maps x of shape (B, M) to values (B, M).

    Grid, then bisection inside the bracket of the best grid point on the sign of the slope at the midpoint m,
    8·(f(m+h) − f(m−h)) − (f(m+2h) − f(m−2h)). The probes are symmetric about m and stay inside [lo, hi] (laws
    may reject k < 1), so an optimum on a bound converges onto it and one just inside is not pulled onto it.
    """
    rows = np.arange(len(lo))
    x = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, grid)
    values = cost(x)
    values = np.where(np.isnan(values), np.inf, values)
    best = np.argmin(values, axis=1)
    best_value = values[rows, best]
    a = x[rows, np.maximum(best - 1, 0)]
    b = x[rows, np.minimum(best + 1, grid - 1)]
    for _ in range(steps):
        m = 0.5 * (a + b)
        h = np.minimum(slope_step, 0.5 * np.minimum(m - lo, hi - m))[:, None]
        f = cost(m[:, None] + h * np.array([-2.0, -1.0, 1.0, 2.0]))
        rising = 8.0 * (f[:, 2] - f[:, 1]) - (f[:, 3] - f[:, 0]) > 0
        a, b = np.where(rising, a, m), np.where(rising, m, b)
    x_star = 0.5 * (a + b)
    # Guard: the refinement must not end worse than the grid (it could on a non-unimodal stretch).
    final = cost(x_star[:, None])[:, 0]
    failed = ~(final <= best_value + 1e-12 * (1.0 + np.abs(best_value)))
    return np.where(failed, x[rows, best], x_star), np.where(failed, best_value, final)


def _sign(members):
    """+1 where lower is better (loss), −1 for accuracy, so every solver minimises."""
    laws = {law.name for law, _ in members}
    if len(laws) != 1:
        raise ValueError(f"a frontier averages fits of one law; got laws {sorted(laws)}: pass fits of one law")
    return -1.0 if members[0][0].higher_is_better else 1.0


def _mean_metric(members, N, D, k):
    """Predicted metric averaged over members [(law, params), ...] (one task, or the tasks of a macro)."""
    return sum(law.predict(params, N, D, k) for law, params in members) / len(members)


def solve_p1(members, c_train, c_inf, n_min=N_MIN, n_max=np.inf, steps=BISECT_STEPS):
    """T² optimum for budgets C_train (FLOPs) × C_inf (FLOPs per served token), broadcast elementwise.

    members: [(law, params), ...], averaged (one member for a single task). Returns arrays N, D, k, metric
    (the law's metric at the optimum, NaN where infeasible), feasible, at_lower (N* pinned on n_min).
    """
    sign = _sign(members)
    c_train, c_inf = (a.ravel().astype(float) for a in np.broadcast_arrays(c_train, c_inf))
    uses_k = members[0][0].uses_k
    # k >= 1 (only for laws that depend on k: C_inf neither caps nor matters for Chinchilla), D >= 1, n_max
    n_hi = np.minimum(np.minimum(c_inf / 2.0, c_train / 6.0) if uses_k else c_train / 6.0, n_max)
    lo, hi, feasible = np.full(c_train.shape, np.log(n_min)), np.log(n_hi), n_hi >= n_min
    out = {key: np.full(c_train.shape, np.nan) for key in ("N", "D", "k", "metric")}
    out["feasible"], out["at_lower"] = feasible, np.zeros(c_train.shape, bool)
    if not feasible.any():
        return out
    ct, ci = c_train[feasible, None], c_inf[feasible, None]

    def cost(log_n):
        N = np.exp(log_n)
        # k >= 1 holds exactly for N <= C_inf/2; the maximum only absorbs rounding at that bound.
        return sign * _mean_metric(members, N, flops.tokens_at(ct, N), np.maximum(flops.samples_at(ci, N), 1.0))

    log_n, value = _minimise(cost, lo[feasible], hi[feasible], LOG_N_GRID, steps)
    if not np.all(np.isfinite(value)):
        raise ValueError(
            f"law {members[0][0].name!r} predicts a non-finite metric at every N for "
            f"{int(np.sum(~np.isfinite(value)))} budgets; check the fit's parameters (refit)"
        )
    # Snap onto the upper bound within the solver's accuracy, so an active k >= 1 constraint reads k* = 1 exactly.
    N = np.where(log_n >= hi[feasible] - 1e-9, n_hi[feasible], np.exp(log_n))
    out["N"][feasible] = N
    out["D"][feasible] = flops.tokens_at(ct[:, 0], N)
    out["k"][feasible] = np.maximum(flops.samples_at(ci[:, 0], N), 1.0) if uses_k else 1.0
    out["metric"][feasible] = sign * value
    out["at_lower"][feasible] = (log_n <= lo[feasible] + 1e-6) & (hi[feasible] > lo[feasible] + 1e-6)
    return out


def solve_p2(members, c_total, t_inf, n_min=N_MIN, n_max=np.inf):
    """T² optimum over (N, D, k) for total budgets C = 6·N·D + 2·N·k·T_inf (FLOPs), T_inf served tokens.

    Returns solve_p1's arrays plus c_train = f*·C and c_inf = (1 − f*)·C/T_inf, the optimal split.
    """
    sign = _sign(members)
    c_total, t_inf = (a.ravel().astype(float) for a in np.broadcast_arrays(c_total, t_inf))
    # Some split is feasible iff C_train = f·C >= 6·n_min and C_inf = (1 − f)·C/T >= 2·n_min for one f.
    train_floor, serve_floor = 6.0 * n_min / c_total, 2.0 * n_min * t_inf / c_total
    feasible = (train_floor + serve_floor <= 1.0) & (n_max >= n_min)
    out = {key: np.full(c_total.shape, np.nan) for key in ("N", "D", "k", "metric", "c_train", "c_inf")}
    out["feasible"], out["at_lower"] = feasible, np.zeros(c_total.shape, bool)
    if not feasible.any():
        return out
    C, T = c_total[feasible, None], t_inf[feasible, None]
    with np.errstate(divide="ignore"):
        z_lo = np.log(train_floor[feasible]) - np.log1p(-train_floor[feasible])
        z_hi = np.log1p(-serve_floor[feasible]) - np.log(serve_floor[feasible])
    z_lo, z_hi = np.clip(z_lo, -LOGIT_F_CAP, LOGIT_F_CAP), np.clip(z_hi, -LOGIT_F_CAP, LOGIT_F_CAP)

    def split(z):
        return C * expit(z), C * expit(-z) / T  # expit(−z) = 1 − f without cancellation

    def profile(z):
        c_train, c_inf = split(z)
        # The profile's value is second-order in the inner ln N error, so a coarser inner bisection suffices.
        inner = solve_p1(members, c_train, c_inf, n_min, n_max, steps=PROFILE_STEPS)
        return sign * inner["metric"].reshape(z.shape)  # NaN (rounding at the split bounds) counts as +inf

    z, _ = _minimise(profile, z_lo, z_hi, LOGIT_F_GRID, SPLIT_STEPS)
    c_train, c_inf = (a[:, 0] for a in split(z[:, None]))
    inner = solve_p1(members, c_train, c_inf, n_min, n_max)
    for key in ("N", "D", "k", "metric", "at_lower"):
        out[key][feasible] = inner[key]
    out["c_train"][feasible], out["c_inf"][feasible] = c_train, c_inf
    return out


# --------------------------------------------------------------------------------------------------- baselines

def _k1_loss(law, params):
    """The fit's k = 1 form as a lower-is-better function of (N, D); the Chinchilla baseline minimises it."""
    if law.name in CHINCHILLA_BASED:
        chinchilla = get_law("chinchilla")
        return lambda N, D: chinchilla.predict(params, N, D)
    sign = -1.0 if law.higher_is_better else 1.0
    return lambda N, D: sign * law.predict(params, N, D, 1.0)


def chinchilla_baseline(members, c_train, c_inf, n_min=N_MIN, n_max=np.inf):
    """Chinchilla optimum at each C_train (k = 1) and the same model at its inference-corrected k.

    Returns arrays N, D, metric (at k = 1), k = C_inf/(2·N), feasible (k >= 1), metric_ic (at that k; NaN
    where k < 1: the Chinchilla model cannot serve even one sample per token within C_inf).
    """
    _sign(members)
    c_train, c_inf = (a.ravel().astype(float) for a in np.broadcast_arrays(c_train, c_inf))
    law, params = members[0]
    if len(members) == 1 and law.name in CHINCHILLA_BASED:
        N, D = Chinchilla.optimum(params, c_train)
    else:  # a macro average or a law without a closed form: the same grid + bisection in ln N
        losses = [_k1_loss(m_law, m_params) for m_law, m_params in members]
        ct = c_train[:, None]

        def cost(log_n):
            N = np.exp(log_n)
            return sum(loss(N, flops.tokens_at(ct, N)) for loss in losses) / len(losses)

        log_hi = np.log(np.minimum(c_train / 6.0, n_max))
        log_n, _ = _minimise(cost, np.minimum(np.log(n_min), log_hi), log_hi, LOG_N_GRID)
        N = np.exp(log_n)
        D = flops.tokens_at(c_train, N)
    # A law without k serves at k = 1 whatever C_inf is (and C_inf may be absent: NaN).
    k = flops.samples_at(c_inf, N) if law.uses_k else np.ones_like(N)
    feasible = k >= 1.0
    metric_ic = np.full(c_train.shape, np.nan)
    metric_ic[feasible] = _mean_metric(members, N[feasible], D[feasible], k[feasible])
    return {"N": N, "D": D, "metric": _mean_metric(members, N, D, 1.0), "k": k, "feasible": feasible,
            "metric_ic": metric_ic}


# ------------------------------------------------------------------------------------------------- the table

def _rows(members, problem, c_train, c_inf, c_total, t_inf, n_min, n_max):
    """One group's (task or macro) frontier columns: optimum, k_int, baselines, gains."""
    law = members[0][0]
    sign = _sign(members)
    if problem == "P1":
        opt = solve_p1(members, c_train, c_inf, n_min, n_max)
    else:
        opt = solve_p2(members, c_total, t_inf, n_min, n_max)
        c_train, c_inf = opt["c_train"], opt["c_inf"]
    ok = opt["feasible"]
    k_int = np.floor(opt["k"] * (1.0 + 1e-12))  # k* = 3 computed as 2.9999999999999996 is still 3
    at_k_int = np.full(ok.shape, np.nan)
    at_k_int[ok] = _mean_metric(members, opt["N"][ok], opt["D"][ok], k_int[ok])
    base = {key: np.full(ok.shape, np.nan) for key in ("N", "D", "metric", "k", "metric_ic")}
    base["feasible"] = np.zeros(ok.shape, bool)
    known = np.isfinite(c_train)  # P2 rows with no feasible split have no split to compare at
    if known.any():
        for key, value in chinchilla_baseline(members, c_train[known], c_inf[known], n_min, n_max).items():
            base[key][known] = value
    return {
        "problem": problem, "c_train": c_train, "c_inf": c_inf, "t_inf": t_inf, "c_total": c_total,
        "feasible": ok, "N_star": opt["N"], "D_star": opt["D"], "k_star": opt["k"],
        "k_int": np.where(ok, k_int, np.nan), "tokens_per_param": opt["D"] / opt["N"],
        "metric_name": law.metric, "predicted_metric": opt["metric"], "predicted_metric_at_k_int": at_k_int,
        "chinchilla_N": base["N"], "chinchilla_D": base["D"], "chinchilla_tokens_per_param": base["D"] / base["N"],
        "chinchilla_metric": base["metric"], "chinchilla_k": base["k"], "chinchilla_feasible": base["feasible"],
        "chinchilla_metric_inference_corrected": base["metric_ic"],
        "gain_vs_chinchilla": sign * (base["metric"] - opt["metric"]),
        "gain_vs_chinchilla_inference_corrected": sign * (base["metric_ic"] - opt["metric"]),
        "at_lower": opt["at_lower"],
    }


def _bands(fits, problem, c_train, c_inf, c_total, t_inf, n_min, n_max, band, feasible):
    """Percentile bands of BANDED columns over bootstrap replicates (paired across the tasks of a macro)."""
    replicates = min(len(fit.bootstrap_params) for fit in fits)
    if replicates == 0:
        return {}
    law = get_law(fits[0].law)
    for fit in fits:
        for j, params in enumerate(fit.bootstrap_params[:replicates]):
            missing = [p for p in law.param_names if p not in params]
            if missing:
                raise ValueError(f"fit for task {fit.task!r}: bootstrap replicate {j} lacks parameters {missing}; "
                                 "refit with bootstrap, or pass --no-bands")
    draws = {key: np.full((replicates, len(feasible)), np.nan) for key in BANDED}
    name = fits[0].task if len(fits) == 1 else "macro"
    for j in tqdm(range(replicates), desc=f"bootstrap {name} {problem}", leave=False):
        members = [(law, fit.bootstrap_params[j]) for fit in fits]
        if problem == "P1":
            opt = solve_p1(members, c_train, c_inf, n_min, n_max)
        else:
            opt = solve_p2(members, c_total, t_inf, n_min, n_max)
        for key, value in zip(BANDED, (opt["N"], opt["D"], opt["k"], opt["D"] / opt["N"], opt["metric"])):
            draws[key][j] = value
    out = {}
    for key in BANDED:
        lo, hi = np.full(len(feasible), np.nan), np.full(len(feasible), np.nan)
        if feasible.any():
            lo[feasible], hi[feasible] = np.percentile(draws[key][:, feasible], band, axis=0)
        out[f"{key}_lo"], out[f"{key}_hi"] = lo, hi
    out["n_bootstrap"] = replicates
    return out


def _check_budgets(name, values):
    values = np.atleast_1d(np.asarray(values, dtype=float)).ravel()
    if values.size == 0:
        raise ValueError(f"{name}: no budgets given; pass at least one positive value")
    bad = values[~(np.isfinite(values) & (values > 0))]
    if bad.size:
        raise ValueError(f"{name}: budgets must be finite and > 0, got {bad[:3].tolist()}")
    return values


def frontier(fits, c_train=None, c_inf=None, c_total=None, t_inf=None, macro=False, n_min=N_MIN,
             n_max=np.inf, band=(5.0, 95.0), bands=True):
    """Frontier table (DESIGN.md §5) for FitResults over the cartesian product of budgets.

    P1 rows for every (C_inf, C_train) pair when c_train (FLOPs) and c_inf (FLOPs per served token) are given;
    P2 rows for every (T_inf, C_total) pair when c_total (FLOPs) and t_inf (served tokens) are given. One group
    of rows per fit, or with macro=True one group "macro" for the mean predicted metric over all fits (one law).
    Bootstrap bands (percentiles `band`) where every fit of a group has bootstrap_params, unless bands=False
    (each replicate is a full solve: ~5 ms per P1 and ~0.1 s per P2 call).
    """
    fits = list(fits)
    if not fits:
        raise ValueError("frontier: no fits given; pass at least one fit JSON")
    uses_k = any(get_law(fit.law).uses_k for fit in fits)
    if c_train is not None and c_inf is None and not uses_k:
        c_inf = [np.nan]  # a law without k (Chinchilla) needs no inference budget
    if (c_train is None) != (c_inf is None):
        raise ValueError("frontier P1 needs both c_train (FLOPs) and c_inf (FLOPs per served token)")
    if (c_total is None) != (t_inf is None):
        raise ValueError("frontier P2 needs both c_total (FLOPs) and t_inf (served tokens)")
    if c_train is None and c_total is None:
        raise ValueError("frontier: give c_train and c_inf (P1) and/or c_total and t_inf (P2)")
    if not (0 < n_min < n_max):
        raise ValueError(f"frontier: need 0 < n_min < n_max (params), got n_min={n_min:g}, n_max={n_max:g}")
    problems = []
    if c_train is not None:
        no_k = not uses_k and np.isnan(np.asarray(c_inf, dtype=float)).all()
        ct, ci = np.meshgrid(_check_budgets("c_train", c_train),
                             np.array([np.nan]) if no_k else _check_budgets("c_inf", c_inf))
        problems.append(("P1", dict(c_train=ct.ravel(), c_inf=ci.ravel(), c_total=np.full(ct.size, np.nan),
                                    t_inf=np.full(ct.size, np.nan))))
    if c_total is not None:
        cc, ti = np.meshgrid(_check_budgets("c_total", c_total), _check_budgets("t_inf", t_inf))
        problems.append(("P2", dict(c_train=None, c_inf=None, c_total=cc.ravel(), t_inf=ti.ravel())))
    groups = [("macro", fits)] if macro else [(fit.task, [fit]) for fit in fits]
    tables = []
    for task, group in groups:
        members = [(get_law(fit.law), fit.params) for fit in group]
        _sign(members)
        for problem, budgets in problems:
            columns = _rows(members, problem, n_min=n_min, n_max=n_max, **budgets)
            if bands:
                columns.update(_bands(group, problem, n_min=n_min, n_max=n_max, band=band,
                                      feasible=columns["feasible"], **budgets))
            columns.update(_extrapolation(group, columns))
            _warn(task, problem, columns, n_min)
            columns.pop("at_lower")
            table = pd.DataFrame(columns)
            table.insert(0, "approach", members[0][0].name)
            table.insert(0, "task", task)
            tables.append(table)
    out = pd.concat(tables, ignore_index=True)
    extra = [c for c in out.columns if c not in COLUMNS]
    return out[COLUMNS + extra]


def isoflop_optima(fits_by_task, laws, c_train, c_inf):
    """What isoFLOP profiles mark at training budgets c_train (FLOPs, ascending) and one inference budget c_inf:
    ({law: its P1 frontier, one row per budget}, the Chinchilla-optimal N per budget, the law that N comes from).

    fits_by_task: {task: {law: FitResult}}, averaged over tasks when several (macro); laws: those to solve, each
    fitted for every task. The Chinchilla-optimal N is the chinchilla fit's where every task has one, else the
    k = 1 baseline of the first stand-in law every task has (laws.CHINCHILLA_PREFERENCE), else of laws[0]."""
    tasks = list(fits_by_task)

    def solve(law):
        table = frontier([fits_by_task[t][law] for t in tasks], c_train=c_train, c_inf=[c_inf],
                         macro=len(tasks) > 1, bands=False)
        assert np.allclose(table["c_train"], c_train, rtol=1e-12), "frontier rows follow c_train order"
        return table

    frontiers = {law: solve(law) for law in laws}
    ref = next((a for a in CHINCHILLA_PREFERENCE if all(a in fits_by_task[t] for t in tasks)), laws[0])
    chinchilla_N = (frontiers[ref] if ref in frontiers else solve(ref))["chinchilla_N"].to_numpy()
    return frontiers, chinchilla_N, ref


def data_range(fits):
    """The range of data every fit in `fits` was fitted on (their intersection): {dimension: (lo, hi)}, or None
    when a fit does not record one (fits written before `data_range` existed)."""
    ranges = [getattr(fit, "data_range", None) for fit in fits]
    if not all(ranges):
        return None
    return {key: (max(r[key][0] for r in ranges), min(r[key][1] for r in ranges)) for key in RANGE_COLUMNS}


def _extrapolation(fits, columns):
    """Where each row's plan lies outside the data its fits saw: `extrapolated` (bool), `extrapolated_in` (the
    dimensions, e.g. "N,k"), and the fitted C_train range (for figures that draw the measured range solid)."""
    rng = data_range(fits)
    n = len(columns["feasible"])
    if rng is None:
        return {"extrapolated": np.ones(n, bool), "extrapolated_in": np.full(n, "unknown (no data_range in fit)"),
                "data_c_train_min": np.full(n, np.nan), "data_c_train_max": np.full(n, np.nan)}
    uses_k = get_law(fits[0].law).uses_k
    values = {"N": columns["N_star"], "D": columns["D_star"], "tokens_per_param": columns["tokens_per_param"],
              "C_train": flops.c_train(columns["N_star"], columns["D_star"])}
    if uses_k:
        values["k"] = columns["k_star"]
    outside = {key: ~((v >= rng[key][0] * (1 - RANGE_RTOL)) & (v <= rng[key][1] * (1 + RANGE_RTOL)))
               for key, v in values.items()}
    names = np.array([",".join(key for key in outside if outside[key][i]) for i in range(n)], dtype=object)
    feasible = columns["feasible"]
    return {"extrapolated": feasible & (names != ""), "extrapolated_in": np.where(feasible, names, ""),
            "data_c_train_min": np.full(n, rng["C_train"][0]), "data_c_train_max": np.full(n, rng["C_train"][1])}


def _warn(task, problem, columns, n_min):
    """Say which budgets have no feasible plan, or an optimum pinned to the smallest model searched."""
    first, second = ("c_train", "c_inf") if problem == "P1" else ("c_total", "t_inf")

    def listed(mask):
        pairs = list(zip(columns[first][mask], columns[second][mask]))
        shown = ", ".join(f"({first}={a:.3g}, {second}={b:.3g})" for a, b in pairs[:3])
        return shown + (" ..." if len(pairs) > 3 else "")

    infeasible = ~columns["feasible"]
    if infeasible.any():
        why = ("k >= 1 needs N <= c_inf/2 and D >= 1 token needs N <= c_train/6" if problem == "P1"
               else "the budget cannot train and serve even the smallest model: c_total < n_min*(6 + 2*t_inf)")
        logger.warning("%s %s: %d budgets have no feasible plan with N >= n_min = %.3g params (%s): %s; "
                       "their optimum columns are NaN. Raise the budgets or lower n_min.",
                       task, problem, int(infeasible.sum()), n_min, why, listed(infeasible))
    if columns["at_lower"].any():
        logger.warning("%s %s: the optimum sits on the smallest model searched (n_min = %.3g params) for %d "
                       "budgets: %s; lower n_min to find the true optimum.",
                       task, problem, n_min, int(columns["at_lower"].sum()), listed(columns["at_lower"]))


def write_csv(table, path):
    """Write a table atomically: temp file in the target directory, then rename."""
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as fh:
        table.to_csv(fh, index=False)


def load_fits(paths):
    """Load fit JSONs; a fit without a task name is named after its file."""
    fits = []
    for path in paths:
        fit = load_fit(path)
        fit.task = fit.task or Path(path).stem
        fits.append(fit)
    return fits


def write_frontier(fit_paths, c_train, c_inf, out_path, macro=False):
    """Rules frontier (one fit) and macro_frontier (one law's fits of every task, macro=True): the P1 `frontier`
    over budgets c_train (FLOPs) x c_inf (FLOPs per served token), written to out_path; returns it."""
    fits = [load_fit(path) for path in fit_paths]
    table = frontier(fits, c_train, c_inf, macro=macro)
    write_csv(table, out_path)
    if macro:
        logger.info("macro frontier of %d tasks: %d rows", len(fits), len(table))
    else:
        logger.info("%s frontier: %d budgets", ", ".join(f"{fit.task} {fit.law}" for fit in fits), len(table))
    return table
