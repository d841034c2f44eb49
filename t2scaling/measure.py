"""The one place observations become measured metrics (pass@k, task loss, NLL) at given k.

- `target_of`, `fitted_target`: what a law is fitted to (from its metadata in `t2scaling.laws`), measured;
- `on_k_grid`: every checkpoint over a k grid, as the fits see them (fits' targets, held-out errors), built on
  `pass_at_k_matrix`, `task_loss_matrix` and `loss_points` over the k grid of `k_grid_for`;
- `at_k`: chosen checkpoints each at its own real-valued k, with the estimator a table or figure reports and the
  per-question values a question bootstrap resamples (Table 1, task grades, isoFLOP profiles); `macro_at_k`: the
  mean of that over tasks;
- `cell_metrics`: one evaluated cell at a real k and at whole k (the validation table).
pass@k itself is only ever computed by `t2scaling.passk`.
"""

import logging
import os

import numpy as np
import pandas as pd

from t2scaling import observations as obs_mod
from t2scaling.laws import get_law
from t2scaling.passk import neg_log_pass_at_k_exact, pass_at_k_exact, pass_at_k_unbiased

logger = logging.getLogger(__name__)

K_RTOL = 1e-9  # an aggregated table's k matches a requested k within this relative tolerance
DEFAULT_K_GRID = tuple(2.0**i for i in range(11))  # 1, 2, 4, ..., 1024
TARGETS = ("pass_at_k", "task_loss", "nll")  # what `on_k_grid` measures


def target_of(law):
    """What `law` (a name) is fitted to, one of TARGETS: mean pass@k for a law of accuracy, the task loss
    -log pass@k (Approach 1's Q) for a loss law of k, the mean task NLL at k = 1 for one without k (Chinchilla)."""
    law = get_law(law)
    if law.metric == "accuracy":
        return "pass_at_k"
    return "task_loss" if law.uses_k else "nll"


def fitted_target(obs, law, k_grid=None, source="auto"):
    """The measured values `law` is fitted to (`target_of`), every checkpoint over the k grid: `on_k_grid`."""
    return on_k_grid(obs, target_of(law), k_grid, source)


def on_k_grid(obs, target, k_grid=None, source="auto"):
    """Measured values of every checkpoint: (names (C,), N (C,), D (C,), k (K,), values (C, K)).

    target 'pass_at_k': mean over questions of pass@k_i (`pass_at_k_matrix`, the one measurement of
    pass@k); 'task_loss': Approach 1's Q (nats); 'nll': mean task NLL (nats) at k = 1, Chinchilla's target (per row
    of a loss table). k_grid as `k_grid_for` (None: the fit's default grid).
    """
    if target == "nll":
        N, D, loss, _ = loss_points(obs)
        names = obs_mod.row_names(obs) if obs.form == "loss" else obs_mod.checkpoints(obs).index
        return np.asarray(names, dtype=str), N, D, np.ones(1), np.asarray(loss, dtype=float)[:, None]
    matrix = task_loss_matrix if target == "task_loss" else pass_at_k_matrix
    ckpts, k, values = matrix(obs, k_grid, obs_mod.choose_source(obs, source))
    return ckpts.index.to_numpy(dtype=str), ckpts["N"].to_numpy(), ckpts["D"].to_numpy(), k, values


def loss_points(obs):
    """Per-point (N, D, loss nats, variance of the loss or None) for a loss-law fit.

    Loss tables give their rows. Per-question tables give each checkpoint's mean task NLL over questions and
    its sampling variance var(nll)/n_questions; without likelihoods, -log(mean c/n) per checkpoint instead.
    """
    if obs.form == "loss":
        f = obs.frame
        return f["N"].to_numpy(), f["D"].to_numpy(), f["loss"].to_numpy(), None
    if obs.form != "per_question":
        raise ValueError(f"{obs.path}: a loss fit needs a 'loss' column or per-question 'nll'/'p'; this is a "
                         f"{obs.form} table (fit it with approach1 instead)")
    ckpts = obs_mod.checkpoints(obs)
    if obs.has_p:
        _, nll = obs_mod.question_matrix(obs, "nll")
        var = nll.var(axis=1, ddof=1) / nll.shape[1] if nll.shape[1] > 1 else None
        return ckpts["N"].to_numpy(), ckpts["D"].to_numpy(), nll.mean(axis=1), var
    acc = pass_at_k_matrix(obs, [1.0], "samples")[2][:, 0]
    _positive(obs, ckpts.index, [1.0], acc[:, None])
    logger.info("%s: no likelihoods; per-checkpoint loss is -log(mean pass@1) from samples", obs.path)
    return ckpts["N"].to_numpy(), ckpts["D"].to_numpy(), -np.log(acc), None


def k_grid_for(obs, k_grid=None, source="auto"):
    """The k grid a fit uses: as given (validated), else the default 1..1024 (capped at n for samples), else
    every k of an aggregated table."""
    source = obs_mod.choose_source(obs, source)
    if k_grid is None:
        if source == "aggregated":
            k_grid = np.unique(obs.frame["k"].to_numpy())
        elif source == "samples":
            n_min = obs.frame["n_samples"].min()
            k_grid = [k for k in DEFAULT_K_GRID if k <= n_min]
            logger.info("%s: default k grid capped at n_samples = %d: %s", obs.path, n_min, k_grid)
        else:
            k_grid = DEFAULT_K_GRID
    k = np.asarray(k_grid, dtype=float).ravel()
    if k.size == 0 or not np.all(np.isfinite(k)) or np.any(k < 1):
        raise ValueError(f"{obs.path}: k grid {[float(v) for v in k]} must hold finite values >= 1; fix --k-grid")
    if source == "samples":
        if np.any(k != np.round(k)):
            raise ValueError(f"{obs.path}: k grid {[float(v) for v in k]} must be integers for sample counts; "
                             "fix --k-grid")
        n = obs.frame["n_samples"].to_numpy()
        obs_mod.reject_rows(obs, "n_samples", n < k.max(), f"is below the largest k = {k.max():g} of the k grid",
                            "draw at least k samples per question or use a k grid with smaller values")
    return np.unique(k)


def pass_at_k_matrix(obs, k_grid=None, source="auto"):
    """Empirical mean pass@k per checkpoint: (checkpoints, k (K,), pass@k (C, K)).

    From p: exact pass@k averaged over questions; from (n, c): the unbiased estimator averaged over questions;
    aggregated tables: their pass_at_k at each k (every checkpoint must have every k of the grid).
    """
    source = obs_mod.choose_source(obs, source)
    k = k_grid_for(obs, k_grid, source)
    ckpts = obs_mod.checkpoints(obs)
    if source == "aggregated":
        wide = obs.frame.pivot(index="checkpoint", columns="k", values="pass_at_k").reindex(index=ckpts.index,
                                                                                          columns=k)
        gaps = np.argwhere(wide.isna().to_numpy())
        if len(gaps):
            i, j = gaps[0]
            raise ValueError(f"{obs.path}: checkpoint {ckpts.index[i]!r} has no pass_at_k row for k = {k[j]:g}; add "
                             "it, or pass a k grid (--k-grid) of values every checkpoint has")
        return ckpts, k, wide.to_numpy(dtype=float)
    if source == "p":
        _, p = obs_mod.question_matrix(obs, "p")
        return ckpts, k, np.stack([pass_at_k_exact(p, kk).mean(axis=1) for kk in k], axis=1)
    _, n = obs_mod.question_matrix(obs, "n_samples")
    _, c = obs_mod.question_matrix(obs, "n_correct")
    acc = [[pass_at_k_unbiased(n[i], c[i], kk).mean() for kk in k] for i in range(len(ckpts))]
    return ckpts, k, np.array(acc)


def task_loss_matrix(obs, k_grid=None, source="auto"):
    """Approach 1's target Q per checkpoint and k (nats): (checkpoints, k, Q (C, K)).

    From p: Q = mean_i[-log pass@k_i], each term without underflow (passk.neg_log_pass_at_k_exact); where every
    term is below the smallest normal double (every question solved with certainty to double precision), Q is
    that number, 2.2e-308 nats, not 0, so a fit can use it (it cannot tell them apart); Q = 0 only where p = 1
    on every question. From samples or aggregated pass@k, where some per-question pass@k are 0,
    Q = -log(mean_i pass@k_i) (DESIGN.md §2.4).
    """
    source = obs_mod.choose_source(obs, source)
    if source != "p":
        ckpts, k, acc = pass_at_k_matrix(obs, k_grid, source)
        _positive(obs, ckpts.index, k, acc)
        return ckpts, k, -np.log(acc)
    k = k_grid_for(obs, k_grid, source)
    ckpts, p = obs_mod.question_matrix(obs, "p")
    Q = np.stack([neg_log_pass_at_k_exact(p, kk).mean(axis=1) for kk in k], axis=1)
    uncertain = np.any(p < 1, axis=1, keepdims=True)  # then Q > 0 exactly, however small
    return ckpts, k, np.where(uncertain, np.maximum(Q, np.finfo(float).tiny), Q)


def _positive(obs, names, k, acc):
    """-log pass@k is finite only where pass@k > 0: stop naming the first checkpoint and k where it is not."""
    zero = np.argwhere(~(acc > 0))
    if len(zero):
        i, j = zero[0]
        raise ValueError(f"{obs.path}: checkpoint {names[i]!r} solves no question at k = {k[j]:g}, so its task loss "
                         "-log(pass@k) is infinite; drop the checkpoint, draw more samples, or use larger k only")



def at_k(obs, names, k, metric="accuracy", source="auto", missing="raise"):
    """Measured metric of checkpoints `names` at their own real-valued k (array aligned with names).

    metric "accuracy": mean pass@k; "loss": task loss, mean_i[-log pass@k_i] from likelihoods, else -log(mean
    pass@k) (as Approach 1 is fitted, DESIGN.md §2.4). Sources as observations.choose_source: exact pass@k from
    p = exp(-nll) at k itself; the unbiased estimator from (n, c) at k rounded down; aggregated tables only at a
    k they hold. Returns a frame indexed by checkpoint: N, D, k, k_used, value, estimator (and for per-question
    sources `attrs["per_question"]`: pass@k_i, rows as the index, for the question bootstrap). missing="drop" leaves
    out checkpoints whose value cannot be measured (absent from the table, k < 1, k not in an aggregated table)
    and lists them in `frame.attrs["dropped"]`; "raise" stops with an error naming the file and the checkpoint.
    """
    obs = obs_mod.read_table(obs) if isinstance(obs, (str, os.PathLike)) else obs
    source = obs_mod.choose_source(obs, source)
    ckpts = obs_mod.checkpoints(obs)
    names = [str(n) for n in names]
    k = np.broadcast_to(np.asarray(k, dtype=float), (len(names),)).copy()
    why = {}
    for name, kk in zip(names, k):
        if name not in ckpts.index:
            why[name] = "is not in the table"
        elif not kk >= 1:
            why[name] = f"has k = {kk:.3g} < 1 (cannot serve one sample within the inference budget)"
    if source == "samples":
        fewest = obs.frame.groupby("checkpoint")["n_samples"].min()
        for name, kk in zip(names, k):
            if name not in why and np.floor(kk * (1.0 + 1e-12)) > fewest[name]:
                why[name] = (f"needs k = {np.floor(kk * (1.0 + 1e-12)):g} samples but has n_samples = "
                             f"{fewest[name]} (draw more samples)")
    if source == "aggregated":
        for name, kk in zip(names, k):
            have = obs.frame.loc[obs.frame["checkpoint"] == name, "k"].to_numpy(float)
            if name not in why and not np.isclose(have, kk, rtol=K_RTOL, atol=0).any():
                listed = ", ".join(f"{v:g}" for v in sorted(have))
                why[name] = f"has no pass_at_k row at k = {kk:.6g} (aggregated table; it has k = {listed})"
    if why and missing == "raise":
        name, text = next(iter(why.items()))
        raise ValueError(f"{obs.path}: checkpoint {name!r} {text}; fix the checkpoint list or the observations")
    keep = [i for i, name in enumerate(names) if name not in why]
    names, k = [names[i] for i in keep], k[keep]
    out = pd.DataFrame({"N": ckpts.loc[names, "N"].to_numpy(float), "D": ckpts.loc[names, "D"].to_numpy(float),
                        "k": k}, index=pd.Index(names, name="checkpoint"))
    out.attrs["dropped"] = why
    rows = ckpts.index.get_indexer(names)
    if source == "p":
        _, p = obs_mod.question_matrix(obs, "p")
        per_question = pass_at_k_exact(p[rows], k[:, None])
        out["k_used"], out["estimator"] = k, "exact pass@k from per-question nll"
        out["value"] = per_question.mean(axis=1) if metric == "accuracy" else -np.log(per_question).mean(axis=1)
        out.attrs["per_question"] = per_question  # rows as out.index: the question bootstrap resamples these
        return out
    if source == "samples":
        _, n = obs_mod.question_matrix(obs, "n_samples")
        _, c = obs_mod.question_matrix(obs, "n_correct")
        k_used = np.floor(k * (1.0 + 1e-12))  # k = 3 computed as 2.9999999999999996 is still 3
        per_question = np.array([pass_at_k_unbiased(n[r], c[r], kk) for r, kk in zip(rows, k_used)])
        out.attrs["per_question"] = per_question.reshape(len(rows), -1)
        acc = per_question.mean(axis=1) if len(rows) else np.zeros(0)
        out["k_used"], out["estimator"] = k_used, "unbiased pass@k from n samples, k rounded down"
    else:
        frame = obs.frame
        acc = np.array([frame.loc[(frame["checkpoint"] == name)
                                  & np.isclose(frame["k"], kk, rtol=K_RTOL, atol=0), "pass_at_k"].iloc[0]
                        for name, kk in zip(names, k)])
        out["k_used"], out["estimator"] = k, "aggregated pass@k from the table"
    if metric == "loss" and np.any(acc <= 0):
        name = names[int(np.flatnonzero(acc <= 0)[0])]
        raise ValueError(f"{obs.path}: checkpoint {name!r} solves no question, so its task loss -log pass@k is "
                         "infinite; drop the checkpoint or draw more samples")
    out["value"] = acc if metric == "accuracy" else -np.log(acc)
    return out


def macro_at_k(tasks, names, k):
    """Mean over tasks of the measured metric of checkpoints `names` at their k (`at_k`), each task measured as
    its fit is (the fit's metric and source); only checkpoints measurable on every task. tasks: {task:
    (Observations, FitResult)}. Returns a frame indexed by checkpoint: N, D, k, metric; `attrs["dropped"]`:
    (table path, checkpoint, why) of each checkpoint a task could not measure."""
    parts, dropped = [], []
    for obs, fit in tasks.values():
        part = at_k(obs, names, k, fit.metric, fit.options.get("source", "auto"), missing="drop")
        dropped += [(obs.path, name, why) for name, why in part.attrs["dropped"].items()]
        parts.append(part)
    common = [c for c in names if all(c in part.index for part in parts)]
    out = parts[0].loc[common, ["N", "D", "k"]].copy()
    out["metric"] = sum(part.loc[common, "value"].to_numpy() for part in parts) / len(parts)
    out.attrs["dropped"] = dropped
    return out


def cell_metrics(obs, k, k_int):
    """Measured metrics of one cell's evaluation at real-valued k (and k_int = floor k): pass@k exact from
    p = exp(-nll), task loss mean_i[-log pass@k_i] (DESIGN.md §2.4, as Approach 1 is fitted)."""
    out = {"n_questions": len(obs.frame), "measured_nll": float(obs.frame["nll"].mean())}
    if not k >= 1.0:
        return out
    out["measured_pass_at_k"] = pass_at_k_matrix(obs, [k], "p")[2][0, 0]
    out["measured_pass_at_k_int"] = pass_at_k_matrix(obs, [k_int], "p")[2][0, 0]
    out["measured_task_loss"] = task_loss_matrix(obs, [k], "p")[2][0, 0]
    if obs.has_samples and k_int <= obs.frame["n_samples"].min():  # the unbiased estimator needs k_int <= n
        out["measured_pass_at_k_int_samples"] = pass_at_k_matrix(obs, [k_int], "samples")[2][0, 0]
    return out
