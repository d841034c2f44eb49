"""Extrapolation experiment (DESIGN.md §2.7, the paper's Fig. 4): fit each law on part of the checkpoints, predict
the held-out ones (typically the most overtrained, D/N above a threshold) at every k, report relative errors.

Every law and baseline is judged in one space, mean pass@k (metric `pass_at_k`; measured as the fits measure it,
by `measure.pass_at_k_matrix`), and laws that predict a loss also in nats (metric `task_loss`: Approach 1's
Q = mean -log pass@k, or -log mean pass@k from samples or aggregated pass@k, §2.4; Chinchilla's mean task NLL at
k = 1). Approach 1's pass@k prediction is exp(-L̂). Two baselines give the numbers a scale: `nearest_checkpoint`
(the measured pass@k of the fitted checkpoint nearest in (log N, log D); on a loss table its loss) and
`chinchilla` (its predicted loss mapped to pass@k through that nearest checkpoint's per-question NLLs, or its
per-question c/n for sample counts; `shifted_pass_at_k`). Fits go through `fit.fit_observations`.
Works on any observation table, imported or collected; nothing is trained.
"""

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from t2scaling import fit, observations
from t2scaling.atomic import atomic_file
from t2scaling.grid import holds_out, is_held_out
from t2scaling.laws import get_law
from t2scaling.measure import TARGETS, on_k_grid, pass_at_k_matrix, target_of

logger = logging.getLogger(__name__)

LAWS = tuple(fit.VARIANTS)  # chinchilla, approach1, approach2, beta_chinchilla
BASELINES = ("nearest_checkpoint", "chinchilla")
ORDER = ("approach1", "approach2", "beta_chinchilla", "chinchilla", "nearest_checkpoint")  # the T² laws, then the baselines beside them
METRICS = ("pass_at_k", "task_loss")
METRIC_OF = {"pass_at_k": "pass_at_k", "task_loss": "task_loss", "nll": "task_loss"}  # measure.TARGETS -> METRICS
COLUMNS = ["task", "approach", "metric", "checkpoint", "N", "D", "tokens_per_param", "k", "measured", "predicted",
           "rel_abs_error"]
SUMMARY_COLUMNS = ["task", "approach", "metric", "k", "n_checkpoints", "n_points", "mean_rel_error_pct",
                   "median_rel_error_pct", "max_rel_error_pct", "mean_abs_log_ratio"]
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
    if not holds_out(named, min_tokens_per_param):
        raise ValueError(f"{label}: nothing to hold out; give min_tokens_per_param (CLI --holdout-tokens-per-param) "
                         "and/or checkpoint names (CLI --holdout)")
    index = checkpoints_frame.index.astype(str)
    unknown = [c for c in named if c not in index]
    if unknown:
        raise ValueError(f"{label}: held-out checkpoint(s) {_names(unknown)} not in the table; available "
                         f"checkpoints: {_names(index)}")
    ratio = (checkpoints_frame["D"] / checkpoints_frame["N"]).to_numpy(dtype=float)
    if min_tokens_per_param is not None and not (np.isfinite(min_tokens_per_param) and min_tokens_per_param > 0):
        raise ValueError(f"{label}: min_tokens_per_param = {min_tokens_per_param!r} must be a positive number "
                         "of training tokens per parameter (D/N), e.g. 100")
    # The one held-out rule, also the checkpoint-grid figure's (grid.is_held_out).
    N, D = checkpoints_frame["N"].to_numpy(dtype=float), checkpoints_frame["D"].to_numpy(dtype=float)
    mask = np.array([is_held_out(name, n, d, named, min_tokens_per_param) for name, n, d in zip(index, N, D)],
                    dtype=bool)
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
    return dataclasses.replace(obs, frame=obs.frame.assign(checkpoint=observations.row_names(obs)))


def _subset(obs, keep):
    """The rows of checkpoints `keep`; index labels (data rows of the file) are kept."""
    frame = obs.frame[obs.frame["checkpoint"].isin(keep)].copy()
    return dataclasses.replace(obs, frame=frame, sha256="")


def nearest(N, D, held):
    """Index (into N, D) of the fitted checkpoint nearest each held-out one in (log N, log D), Euclidean; a tie
    goes to the first fitted one. held: boolean mask (C,) of the held-out checkpoints."""
    logs = np.log(np.stack([N, D], axis=1).astype(float))
    dist = np.linalg.norm(logs[held][:, None, :] - logs[~held][None, :, :], axis=-1)
    return np.flatnonzero(~held)[dist.argmin(axis=1)]


def shifted_pass_at_k(obs, names, N, D, neighbours, nll, k):
    """Mean pass@k (H, K) of held-out checkpoints `names` (with N, D) whose per-question success probabilities are
    those of their nearest fitted checkpoints `neighbours`, each scaled by one factor to match the predicted
    loss `nll` (H,) as the Chinchilla fit measured it (`measure.loss_points`). With likelihoods the mean
    NLL: NLL_i + (nll - mean_i NLL_i). From sample counts -log(mean pass@1): p_i = c_i/n_i times
    exp(-nll)/mean_i p_i, capped at 1. Measured like any checkpoint, by `measure.pass_at_k_matrix` on the
    scaled questions."""
    if not obs.has_p:
        return _scaled_samples_pass_at_k(obs, names, N, D, neighbours, nll, k)
    questions = obs.frame[["checkpoint", "question", "nll"]].rename(columns={"checkpoint": "neighbour"})
    frame = pd.DataFrame({"checkpoint": names, "N": N, "D": D, "neighbour": neighbours, "target": nll})
    frame = frame.merge(questions, on="neighbour")
    frame["nll"] += frame["target"] - frame.groupby("checkpoint")["nll"].transform("mean")
    low = frame["nll"] < 0
    if low.any():  # p = exp(-NLL) cannot exceed 1: those questions become certain and the mean NLL ends higher
        logger.info("%s: chinchilla's shift puts %d of %d per-question NLLs below 0; clipped to 0", obs.path,
                    int(low.sum()), len(frame))
    frame["nll"] = frame["nll"].clip(lower=0.0)
    frame["p"] = np.exp(-frame["nll"])
    return _measure_p(obs, frame, names, k)


def _measure_p(obs, frame, names, k):
    ckpts, _, acc = pass_at_k_matrix(dataclasses.replace(obs, frame=frame, sha256=""), k, "p")
    return pd.DataFrame(acc, index=ckpts.index).loc[names].to_numpy()


def _scaled_samples_pass_at_k(obs, names, N, D, neighbours, nll, k):
    """shifted_pass_at_k from sample counts: the plug-in pass@k of the scaled c/n (a neighbour that solved
    nothing stays at 0)."""
    questions = obs.frame[["checkpoint", "question", "n_samples", "n_correct"]].rename(
        columns={"checkpoint": "neighbour"})
    frame = pd.DataFrame({"checkpoint": names, "N": N, "D": D, "neighbour": neighbours, "target": nll})
    frame = frame.merge(questions, on="neighbour")
    p = frame["n_correct"] / frame["n_samples"]
    mean = p.groupby(frame["checkpoint"]).transform("mean")
    factor = np.where(mean > 0, np.exp(-frame["target"]) / mean.where(mean > 0, 1.0), 0.0)
    frame["p"] = np.minimum(p * factor, 1.0)
    return _measure_p(obs, frame.drop(columns=["n_samples", "n_correct"]), names, k)


def extrapolate(observations_table, laws, *, baselines=BASELINES, min_tokens_per_param=None, checkpoints=(),
                k_grid=None, restarts=None, seed=0, approach2_variant="sse", chinchilla_variant="huber",
                allow_unconverged=False, task="", columns=None, source="auto"):
    """Fit each of `laws` (and the Chinchilla baseline) on the checkpoints not held out, predict the held-out ones
    at every k of the k grid, beside the `baselines`.

    observations_table: a path (CSV/Parquet, read by `observations.read_table` with `columns`) or an
    `observations.Observations`. Returns (table, fits): a DataFrame with COLUMNS, one row per law or baseline x
    metric x held-out checkpoint x k, rel_abs_error = |predicted - measured| / |measured|; and {law: FitResult}.
    Metric 'pass_at_k' (mean pass@k) for every law and baseline; 'task_loss' (nats) for approach1 (Q at every k)
    and chinchilla (mean NLL, k = 1). Baselines that a table cannot support are skipped with a note: chinchilla
    needs per-question data (likelihoods or sample counts); on a loss table nearest_checkpoint predicts the loss
    (metric 'task_loss'). Points whose measured value is 0 (relative error
    undefined) are left out with a warning.
    """
    obs = observations_table
    if not isinstance(obs, observations.Observations):
        obs = observations.read_table(obs, columns)
    laws = [laws] if isinstance(laws, str) else list(dict.fromkeys(laws))
    baselines = [baselines] if isinstance(baselines, str) else list(dict.fromkeys(baselines))
    unknown = [law for law in laws if law not in LAWS] + [b for b in baselines if b not in BASELINES]
    if unknown or not laws:
        raise ValueError(f"unknown or no laws {unknown or laws}; choose among {', '.join(LAWS)} (baselines: "
                         f"{', '.join(BASELINES)})")
    obs = _with_ids(obs)
    # Chinchilla's loss reaches pass@k only through per-question data; a loss table has no pass@k at all.
    nll_to_pass = obs.form == "per_question" and (obs.has_p or obs.has_samples)
    fitted = list(laws)
    if "chinchilla" in baselines and "chinchilla" not in laws:
        if nll_to_pass:
            fitted.append("chinchilla")
        else:
            logger.info("%s: chinchilla baseline skipped: mapping its loss to pass@k needs per-question data, and "
                        "this is a %s table", obs.path, obs.form)
    ckpts = observations.checkpoints(obs)
    out = held_out(ckpts, min_tokens_per_param, checkpoints, fitted, obs.path)
    train = _subset(obs, set(ckpts.index) - set(out))
    # Measure first: a table that cannot feed a law stops before any (slow) fit; one k grid for fit and targets.
    for law in fitted:
        fit.require_form(law, obs)
    # Each law's own target (measure.target_of), and pass@k (else a loss table's loss) for every law and baseline.
    needed = {target_of(law) for law in fitted} | {"pass_at_k" if obs.form != "loss" else "nll"}
    measured = {target: on_k_grid(obs, target, k_grid, source) for target in TARGETS if target in needed}
    acc, nll = measured.get("pass_at_k"), measured.get("nll")
    label = f"{obs.path} (without the {len(out)} held-out checkpoints)"
    parts, fits = [], {}

    def add(law, metric, target, predict, why):
        names, N, D, k, values = target
        pick = np.isin(names, out)
        parts.append(_rows(task, law, metric, names[pick], N[pick], D[pick], k, values[pick],
                           predict(N[pick], D[pick], k), why))

    for law in fitted:
        result = fit.fit_observations(
            law, train, task=task, k_grid=None if law == "chinchilla" else acc[3], restarts=restarts, seed=seed,
            variant={"approach2": approach2_variant, "chinchilla": chinchilla_variant}.get(law), source=source,
            stage1=chinchilla_variant, allow_unconverged=allow_unconverged, label=label)
        result.options.update(table=obs.path, held_out=out, min_tokens_per_param=min_tokens_per_param)
        fits[law] = result
        why = f"fit converged: {result.converged}"
        curve = lambda N, D, k, r=result: r.predict(N[:, None], D[:, None], k[None, :])  # noqa: E731
        own = target_of(law)
        add(law, METRIC_OF[own], measured[own], curve, why)  # the nll target's k grid is k = 1 alone
        if own == "task_loss":  # approach1: its pass@k is exp(-L)
            add(law, "pass_at_k", acc, lambda N, D, k: np.exp(-curve(N, D, k)), why)
        elif own == "nll" and nll_to_pass:  # chinchilla: its pass@k through the nearest checkpoint's questions
            held = np.isin(acc[0], out)
            near = acc[0][nearest(acc[1], acc[2], held)]
            add(law, "pass_at_k", acc, lambda N, D, k: shifted_pass_at_k(
                obs, acc[0][held], N, D, near, result.predict(N, D), k), why)
        elif own == "nll":
            logger.info("%s: chinchilla predicts task loss only: its pass@k needs per-question data", obs.path)
    if "nearest_checkpoint" in baselines:  # pass@k where there is any, else the loss of a loss table
        metric, target = ("pass_at_k", acc) if acc is not None else ("task_loss", nll)
        held = np.isin(target[0], out)
        near = target[4][nearest(target[1], target[2], held)]
        add("nearest_checkpoint", metric, target, lambda N, D, k: near, f"the nearest checkpoint's {metric}")
    table = pd.concat(parts, ignore_index=True)[COLUMNS]
    if table.empty:
        raise ValueError(f"{obs.path}: every held-out point has measured value 0, so no relative error is defined; "
                         "hold out other checkpoints or use another k grid")
    for (law, metric), rows in table.groupby(["approach", "metric"], sort=False):
        logger.info("%s: %s predicts %d held-out %s points, mean relative error %.2f %%", obs.path, law, len(rows),
                    metric, 100 * rows["rel_abs_error"].mean())
    return table, fits


def _rows(task, law, metric, names, N, D, k, values, predicted, why):
    C, K = values.shape
    frame = pd.DataFrame({
        "task": task, "approach": law, "metric": metric, "checkpoint": np.repeat(names, K), "N": np.repeat(N, K),
        "D": np.repeat(D, K), "tokens_per_param": np.repeat(D / N, K), "k": np.tile(k, C),
        "measured": values.ravel(), "predicted": np.broadcast_to(predicted, values.shape).ravel()})
    bad = ~np.isfinite(frame["predicted"].to_numpy()) | ~np.isfinite(frame["measured"].to_numpy())
    if bad.any():
        row = frame[bad].iloc[0]
        raise ValueError(f"{law}: predicted {metric} {row.predicted} vs measured {row.measured} at checkpoint "
                         f"{row.checkpoint!r}, k = {row.k:g} ({why}); the fit is unusable for extrapolation: "
                         "refit with more restarts or more checkpoints")
    zero = frame["measured"].to_numpy() == 0
    if zero.any():
        logger.warning("%s: %d of %d held-out points have measured %s = 0, where a relative error is undefined; "
                       "left out", law, int(zero.sum()), len(frame), metric)
        frame = frame[~zero].copy()
    frame["rel_abs_error"] = (frame["predicted"] - frame["measured"]).abs() / frame["measured"].abs()
    return frame


def _read(table):
    where = "extrapolation table" if isinstance(table, pd.DataFrame) else str(table)
    if isinstance(table, pd.DataFrame):
        frame = table.copy()
    else:
        frame = pd.read_parquet(where) if where.endswith((".parquet", ".pq")) else pd.read_csv(where)
    missing = [c for c in ("task", "approach", "metric", "checkpoint", "k", "rel_abs_error") if c not in frame]
    if missing:
        raise ValueError(f"{where}: missing columns {missing} of an extrapolation table; write it with "
                         "`t2scaling extrapolate` (columns: " + ", ".join(COLUMNS) + ")")
    return frame


def summarise(table):
    """Relative absolute error (percent) per task, law or baseline, and metric, pooled over held-out checkpoints
    and k (k: the range pooled), plus an 'all tasks' row (every held-out point of every task): n_checkpoints,
    n_points, mean, median, max, and the mean |log(predicted / measured)|. Rows by metric (pass_at_k first), then task, then the laws with the baselines
    beside them. table: the DataFrame from `extrapolate` or its CSV/Parquet."""
    frame = _read(table)
    frame["task"] = frame["task"].fillna("").astype(str)  # CSV reads an empty task name as NaN
    frame["pair"] = frame["task"] + "\0" + frame["checkpoint"].astype(str)  # a checkpoint counts once per task
    frame["err"] = 100 * frame["rel_abs_error"].astype(float)
    # Decades off: meaningful where a relative error is not (a measured task loss of ~1e-11 nats at large k).
    frame["log_ratio"] = np.abs(np.log(frame["predicted"].astype(float) / frame["measured"].astype(float))) \
        if {"predicted", "measured"} <= set(frame.columns) else np.nan
    both = pd.concat([frame, frame.assign(task=ALL_TASKS)], ignore_index=True)
    out = both.groupby(["task", "approach", "metric"], sort=False).agg(
        k_lo=("k", "min"), k_hi=("k", "max"), n_checkpoints=("pair", "nunique"), n_points=("err", "size"),
        mean_rel_error_pct=("err", "mean"), median_rel_error_pct=("err", "median"),
        max_rel_error_pct=("err", "max"), mean_abs_log_ratio=("log_ratio", "mean")).reset_index()
    out["k"] = [f"{lo:g}" if lo == hi else f"{lo:g}..{hi:g}" for lo, hi in zip(out["k_lo"], out["k_hi"])]
    rank = {"task": list(dict.fromkeys(both["task"])), "metric": list(METRICS),
            "approach": list(ORDER) + sorted(set(frame["approach"]) - set(ORDER))}
    out = out.sort_values(["metric", "task", "approach"], kind="stable",
                          key=lambda s: s.map({v: i for i, v in enumerate(rank[s.name])}).fillna(len(rank[s.name])))
    return out[SUMMARY_COLUMNS].reset_index(drop=True)


def _write_frame(frame, path):
    with atomic_file(path) as tmp:
        if str(path).endswith((".parquet", ".pq")):
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


def summary_paths(summary, out):
    """(CSV, Markdown or None) for --summary: a .md path gets the CSV beside it, any other path is the CSV; never
    the per-point table --out (the CSV then takes a _summary suffix)."""
    md = Path(summary) if Path(summary).suffix == ".md" else None
    csv = md.with_suffix(".csv") if md else Path(summary)
    if csv.resolve() == Path(out).resolve():
        csv = csv.with_name(f"{csv.stem}_summary.csv")
    return csv, md


# ---- the workflow's jobs ----

def extrapolate_task(observations_table, settings, out_path, task=""):
    """Rule extrapolate: `extrapolate` one task's observations with the experiment's settings and write the
    per-point table (CSV) to out_path; returns it. settings: the config narrowed to seed, the `fits` options
    (k_grid, restarts, approach2_variant, chinchilla_variant, allow_unconverged) and `extrapolation` (laws,
    checkpoints, min_tokens_per_param: the held-out rule, grid.is_held_out)."""
    e, f = settings["extrapolation"], settings["fits"]
    table, _ = extrapolate(observations_table, e["laws"], min_tokens_per_param=e["min_tokens_per_param"],
                           checkpoints=e["checkpoints"], k_grid=f["k_grid"], restarts=f["restarts"],
                           approach2_variant=f["approach2_variant"], chinchilla_variant=f["chinchilla_variant"],
                           allow_unconverged=f["allow_unconverged"], seed=settings["seed"], task=task)
    _write_frame(table, out_path)
    logger.info("%s: %d held-out predictions, mean relative error %s", task, len(table),
                table.groupby(["approach", "metric"])["rel_abs_error"].mean().round(4).to_dict())
    return table


def write_summary(tables, csv_path, md_path, plot_path, html_path=None):
    """Rule extrapolation_summary: the per-point tables of every task (CSV paths) pooled, summarised (`summarise`)
    into csv_path and md_path, and plotted (predicted vs measured) into plot_path; returns the summary."""
    from t2scaling.plots import plot_extrapolation
    from t2scaling.tables import write_table

    table = pd.concat([pd.read_csv(path) for path in tables], ignore_index=True)
    summary = summarise(table)
    write_table(summary, csv_path, md_path, html_path=html_path,
                title="Relative absolute error of held-out predictions")
    plot_extrapolation(table, plot_path)
    logger.info("extrapolation over %d tasks:\n%s", table["task"].nunique(), summary.to_string(index=False))
    return summary
