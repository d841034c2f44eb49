"""Extrapolation experiment (DESIGN.md §2.7, the paper's Fig. 4): fit each law on part of the checkpoints, predict
the held-out ones (typically the most overtrained, D/N above a threshold) at every k, report relative errors.

Fits go through the workflow's own `fit.fit_observations`; the measured value of a held-out point is what its law
is fitted to, from the same `observations` helpers: Chinchilla mean task NLL (nats, k = 1); Approach 1 task loss
(nats: mean -log pass@k from likelihoods, -log mean pass@k from samples or aggregated pass@k, §2.4); Approach 2
mean pass@k. Works on any observation table, imported or collected; nothing is trained.
"""

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from t2scaling import fit, observations
from t2scaling.atomic import atomic_file
from t2scaling.laws import get_law
from t2scaling.units import format_number

logger = logging.getLogger(__name__)

LAWS = tuple(fit.VARIANTS)  # chinchilla, approach1, approach2
COLUMNS = ["task", "approach", "checkpoint", "N", "D", "tokens_per_param", "k", "metric_name", "measured",
           "predicted", "rel_abs_error"]
SUMMARY_COLUMNS = ["task", "approach", "n_checkpoints", "n_points", "mean_rel_error_pct", "median_rel_error_pct",
                   "max_rel_error_pct"]
ALL_TASKS = "all tasks"
# The (N, D) part of every law (A, B, E, alpha, beta) takes one value per checkpoint (Chinchilla's loss, Approach
# 1's k-curve level, Approach 2's stage-1 NLL), so fewer checkpoints than that cannot pin it.
MIN_FIT_CHECKPOINTS = {law: len(get_law("chinchilla").param_names) for law in LAWS}


def _names(items, limit=20):
    items = [str(i) for i in items]
    return ", ".join(items[:limit]) + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def held_out(checkpoints_frame, min_tokens_per_param=None, checkpoints=(), laws=LAWS, label="observations"):
    """Names of the held-out checkpoints (in the frame's order): every one with D/N >= min_tokens_per_param,
    and/or those named. checkpoints_frame: one row per checkpoint, indexed by name, with N and D columns
    (`observations.checkpoints`). Refuses unknown names, an empty hold-out, and too few checkpoints left to fit
    `laws`."""
    named = [checkpoints] if isinstance(checkpoints, str) else [str(c) for c in checkpoints]
    if min_tokens_per_param is None and not named:
        raise ValueError(f"{label}: nothing to hold out; give min_tokens_per_param (CLI --holdout-tokens-per-param) "
                         "and/or checkpoint names (CLI --holdout)")
    index = checkpoints_frame.index.astype(str)
    unknown = [c for c in named if c not in index]
    if unknown:
        raise ValueError(f"{label}: held-out checkpoint(s) {_names(unknown)} not in the table; available "
                         f"checkpoints: {_names(index)}")
    mask = index.isin(named)
    ratio = (checkpoints_frame["D"] / checkpoints_frame["N"]).to_numpy(dtype=float)
    if min_tokens_per_param is not None:
        if not (np.isfinite(min_tokens_per_param) and min_tokens_per_param > 0):
            raise ValueError(f"{label}: min_tokens_per_param = {min_tokens_per_param!r} must be a positive number "
                             "of training tokens per parameter (D/N), e.g. 100")
        mask |= ratio >= min_tokens_per_param
    if not mask.any():
        raise ValueError(f"{label}: nothing held out: no checkpoint has D/N >= {min_tokens_per_param:g} (the largest "
                         f"is {ratio.max():.4g}); lower --holdout-tokens-per-param or name checkpoints (--holdout)")
    left = int((~mask).sum())
    short = {law: MIN_FIT_CHECKPOINTS[law] for law in laws if left < MIN_FIT_CHECKPOINTS[law]}
    if short:
        needs = ", ".join(f"{law} needs {n}" for law, n in short.items())
        raise ValueError(f"{label}: holding out {int(mask.sum())} of {len(mask)} checkpoints leaves {left} to fit, "
                         f"too few ({needs}: one per parameter of A/N^alpha + B/D^beta + E); hold out fewer")
    return list(index[mask])


def _with_ids(obs):
    """A loss table without a checkpoint column names each row 'row i' (1-based data row, as errors do)."""
    if "checkpoint" in obs.frame:
        return obs
    ids = [f"row {i + 1}" for i in range(len(obs.frame))]
    return dataclasses.replace(obs, frame=obs.frame.assign(checkpoint=ids))


def _subset(obs, keep):
    """The rows of checkpoints `keep`; index labels (data rows of the file) are kept."""
    frame = obs.frame[obs.frame["checkpoint"].isin(keep)].copy()
    return dataclasses.replace(obs, frame=frame, sha256="")


def measured(obs, law, k_grid=None, source="auto"):
    """What `law` is fitted to: (checkpoint names (C,), N (C,), D (C,), k (K,), values (C, K)).

    Chinchilla: mean task NLL (nats) at k = 1 (per row of a loss table); Approach 1: task loss (nats); Approach 2:
    mean pass@k. k_grid as `observations.k_grid_for` (None: the fit's default grid).
    """
    fit.require_form(law, obs)
    if law == "chinchilla":
        N, D, loss, _ = observations.loss_points(obs)
        names = obs.frame["checkpoint"] if obs.form == "loss" else observations.checkpoints(obs).index
        return np.asarray(names, dtype=str), N, D, np.ones(1), np.asarray(loss, dtype=float)[:, None]
    used = observations.choose_source(obs, source)
    k = observations.k_grid_for(obs, k_grid, used)
    matrix = observations.task_loss_matrix if law == "approach1" else observations.pass_at_k_matrix
    ckpts, k, values = matrix(obs, k, used)
    return ckpts.index.to_numpy(dtype=str), ckpts["N"].to_numpy(), ckpts["D"].to_numpy(), k, values


def extrapolate(observations_table, laws, *, min_tokens_per_param=None, checkpoints=(), k_grid=None, restarts=500,
                seed=0, approach2_variant="sse", allow_unconverged=False, task="", columns=None, source="auto"):
    """Fit each of `laws` on the checkpoints not held out, predict the held-out ones at every k of the k grid.

    observations_table: a path (CSV/Parquet, read by `observations.read_table` with `columns`) or an
    `observations.Observations`. Returns (table, fits): a DataFrame with COLUMNS, one row per law x held-out
    checkpoint x k (Chinchilla: k = 1), metric_name the law's metric ("loss" in nats or "accuracy"), rel_abs_error =
    |predicted - measured| / |measured|; and {law: FitResult}. Points whose measured value is 0 (relative error
    undefined) are left out with a warning.
    """
    obs = observations_table
    if not isinstance(obs, observations.Observations):
        obs = observations.read_table(obs, columns)
    laws = [laws] if isinstance(laws, str) else list(dict.fromkeys(laws))
    unknown = [law for law in laws if law not in LAWS]
    if unknown or not laws:
        raise ValueError(f"unknown or no laws {unknown or laws}; choose among {', '.join(LAWS)}")
    obs = _with_ids(obs)
    ckpts = observations.checkpoints(obs)
    out = held_out(ckpts, min_tokens_per_param, checkpoints, laws, obs.path)
    train = _subset(obs, set(ckpts.index) - set(out))
    # Measure first: a table that cannot feed a law stops before any (slow) fit; one k grid for fit and targets.
    targets = {law: measured(obs, law, k_grid, source) for law in laws}
    label = f"{obs.path} (without the {len(out)} held-out checkpoints)"
    parts, fits = [], {}
    for law in laws:
        names, N, D, k, values = targets[law]
        result = fit.fit_observations(
            law, train, task=task, k_grid=None if law == "chinchilla" else k, restarts=restarts, seed=seed,
            variant=approach2_variant if law == "approach2" else None, source=source,
            allow_unconverged=allow_unconverged, label=label)
        result.options.update(table=obs.path, held_out=out, min_tokens_per_param=min_tokens_per_param)
        fits[law] = result
        pick = np.isin(names, out)
        predicted = result.predict(N[pick, None], D[pick, None], k[None, :])
        parts.append(_rows(task, law, names[pick], N[pick], D[pick], k, values[pick], predicted, result))
    table = pd.concat(parts, ignore_index=True)[COLUMNS]
    for law, rows in table.groupby("approach", sort=False):
        logger.info("%s: %s predicts %d held-out points, mean relative error %.2f %%", obs.path, law, len(rows),
                    100 * rows["rel_abs_error"].mean())
    return table, fits


def _rows(task, law, names, N, D, k, values, predicted, result):
    C, K = values.shape
    metric = get_law(law).metric
    frame = pd.DataFrame({
        "task": task, "approach": law, "checkpoint": np.repeat(names, K), "N": np.repeat(N, K),
        "D": np.repeat(D, K), "tokens_per_param": np.repeat(D / N, K), "k": np.tile(k, C), "metric_name": metric,
        "measured": values.ravel(), "predicted": np.broadcast_to(predicted, values.shape).ravel()})
    bad = ~np.isfinite(frame["predicted"].to_numpy()) | ~np.isfinite(frame["measured"].to_numpy())
    if bad.any():
        row = frame[bad].iloc[0]
        raise ValueError(f"{law}: predicted {row.predicted} vs measured {row.measured} at checkpoint "
                         f"{row.checkpoint!r}, k = {row.k:g} (fit converged: {result.converged}); the fit is unusable "
                         "for extrapolation: refit with more restarts or more checkpoints")
    zero = frame["measured"].to_numpy() == 0
    if zero.any():
        logger.warning("%s: %d of %d held-out points have measured %s = 0, where a relative error is undefined; "
                       "left out", law, int(zero.sum()), len(frame), metric)
        frame = frame[~zero].copy()
        if frame.empty:
            raise ValueError(f"{law}: every held-out point has measured {metric} = 0, so no relative error is "
                             "defined; hold out other checkpoints or use another k grid")
    frame["rel_abs_error"] = (frame["predicted"] - frame["measured"]).abs() / frame["measured"].abs()
    return frame


def _read(table):
    where = "extrapolation table" if isinstance(table, pd.DataFrame) else str(table)
    if isinstance(table, pd.DataFrame):
        frame = table.copy()
    else:
        frame = pd.read_parquet(where) if where.endswith((".parquet", ".pq")) else pd.read_csv(where)
    missing = [c for c in ("task", "approach", "checkpoint", "rel_abs_error") if c not in frame]
    if missing:
        raise ValueError(f"{where}: missing columns {missing} of an extrapolation table; write it with "
                         "`t2scaling extrapolate` (columns: " + ", ".join(COLUMNS) + ")")
    return frame


def summarise(table):
    """Relative absolute error (percent) per task and approach, plus an 'all tasks' row per approach (pooled
    over every held-out point of every task): n_checkpoints, n_points, mean, median, max. Rows grouped by approach.
    table: the DataFrame from `extrapolate` or its CSV/Parquet."""
    frame = _read(table)
    frame["task"] = frame["task"].fillna("").astype(str)  # CSV reads an empty task name as NaN
    rows = []
    for law, by_law in frame.groupby("approach", sort=False):
        groups = [(task, g) for task, g in by_law.groupby("task", sort=False)] + [(ALL_TASKS, by_law)]
        for task, g in groups:
            err = 100 * g["rel_abs_error"].to_numpy(dtype=float)
            n_checkpoints = len(g[["task", "checkpoint"]].drop_duplicates())
            rows.append(dict(task=task, approach=law, n_checkpoints=n_checkpoints, n_points=len(g),
                             mean_rel_error_pct=err.mean(), median_rel_error_pct=np.median(err),
                             max_rel_error_pct=err.max()))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _write_frame(frame, path):
    with atomic_file(path) as tmp:
        if str(path).endswith((".parquet", ".pq")):
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


# ---- CLI ----

def add_arguments(parser):
    parser.add_argument("table", help="observation table, CSV or Parquet (DESIGN.md §5): per-question or aggregated")
    parser.add_argument("--law", nargs="+", default=["approach1", "approach2"], choices=list(LAWS),
                        help="laws to fit and test (default approach1 approach2)")
    parser.add_argument("--holdout-tokens-per-param", type=float, metavar="D/N",
                        help="hold out every checkpoint with D/N at or above this")
    parser.add_argument("--holdout", nargs="+", default=[], metavar="CKPT", help="hold out these checkpoints too")
    parser.add_argument("--out", required=True, help="write the per-point table here (CSV or Parquet)")
    parser.add_argument("--summary", help="write the error summary here (.md: Markdown and CSV beside; else CSV)")
    parser.add_argument("--plot", help="write the predicted-vs-measured figure here (PNG, PDF beside)")
    parser.add_argument("--fits-dir", help="write each law's Fit JSON here as {law}.json")
    parser.add_argument("--variant", default="sse", choices=fit.VARIANTS["approach2"], help="approach2's fit")
    fit.add_fitting_arguments(parser)


def run(args):
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    table, fits = extrapolate(
        args.table, args.law, min_tokens_per_param=args.holdout_tokens_per_param, checkpoints=args.holdout,
        k_grid=args.k_grid, restarts=args.restarts, seed=args.seed, approach2_variant=args.variant,
        allow_unconverged=args.allow_unconverged, task=args.task, columns=fit.parse_columns(args.column),
        source=args.source)
    _write_frame(table, args.out)
    if args.fits_dir:
        for law, result in fits.items():
            result.to_json(os.path.join(args.fits_dir, f"{law}.json"))
    summary = summarise(table)
    if args.summary:  # a .md path gets Markdown and the CSV beside it; any other path gets CSV
        from t2scaling.tables import write_table

        md = args.summary if Path(args.summary).suffix == ".md" else None
        write_table(summary, Path(args.summary).with_suffix(".csv") if md else args.summary, md,
                    title=f"Relative absolute error of held-out predictions ({args.table})")
    if args.plot:
        from t2scaling.plots import plot_extrapolation  # lazily: matplotlib only when a figure is asked for

        plot_extrapolation(table, args.plot)
    print(summary.to_string(index=False, float_format=format_number))
    written = [p for p in (args.out, args.summary, args.plot, args.fits_dir) if p]
    print(f"{table['checkpoint'].nunique()} held-out checkpoints, {len(table)} points -> {', '.join(written)}")
    return 0
