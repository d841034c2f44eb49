"""The one place observations become measured metrics (pass@k, task loss, NLL) at given k.

- `on_k_grid`: every checkpoint over a k grid, as the fits see them (fits' targets, held-out errors);
- `at_k`: chosen checkpoints each at its own real-valued k, with the estimator a table or figure reports and the
  per-question values a question bootstrap resamples (Table 1, task grades, isoFLOP profiles);
- `cell_metrics`: one evaluated cell at a real k and at whole k (the validation table).
All of them compute pass@k through `observations.pass_at_k_matrix`/`task_loss_matrix` or `t2scaling.passk`.
"""

import os

import numpy as np
import pandas as pd

from t2scaling import observations as obs_mod
from t2scaling.passk import pass_at_k_exact, pass_at_k_unbiased

K_RTOL = 1e-9  # an aggregated table's k matches a requested k within this relative tolerance


def on_k_grid(obs, target, k_grid=None, source="auto"):
    """Measured values of every checkpoint: (names (C,), N (C,), D (C,), k (K,), values (C, K)).

    target 'pass_at_k': mean over questions of pass@k_i (`obs_mod.pass_at_k_matrix`, the one measurement of
    pass@k); 'task_loss': Approach 1's Q (nats); 'nll': mean task NLL (nats) at k = 1, Chinchilla's target (per row
    of a loss table). k_grid as `obs_mod.k_grid_for` (None: the fit's default grid).
    """
    if target == "nll":
        N, D, loss, _ = obs_mod.loss_points(obs)
        names = obs.frame["checkpoint"] if obs.form == "loss" else obs_mod.checkpoints(obs).index
        return np.asarray(names, dtype=str), N, D, np.ones(1), np.asarray(loss, dtype=float)[:, None]
    matrix = obs_mod.task_loss_matrix if target == "task_loss" else obs_mod.pass_at_k_matrix
    ckpts, k, values = matrix(obs, k_grid, obs_mod.choose_source(obs, source))
    return ckpts.index.to_numpy(dtype=str), ckpts["N"].to_numpy(), ckpts["D"].to_numpy(), k, values


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


def cell_metrics(obs, k, k_int):
    """Measured metrics of one cell's evaluation at real-valued k (and k_int = floor k): pass@k exact from
    p = exp(-nll), task loss mean_i[-log pass@k_i] (DESIGN.md §2.4, as Approach 1 is fitted)."""
    out = {"n_questions": len(obs.frame), "measured_nll": float(obs.frame["nll"].mean())}
    if not k >= 1.0:
        return out
    out["measured_pass_at_k"] = obs_mod.pass_at_k_matrix(obs, [k], "p")[2][0, 0]
    out["measured_pass_at_k_int"] = obs_mod.pass_at_k_matrix(obs, [k_int], "p")[2][0, 0]
    out["measured_task_loss"] = obs_mod.task_loss_matrix(obs, [k], "p")[2][0, 0]
    if obs.has_samples and k_int <= obs.frame["n_samples"].min():  # the unbiased estimator needs k_int <= n
        out["measured_pass_at_k_int_samples"] = obs_mod.pass_at_k_matrix(obs, [k_int], "samples")[2][0, 0]
    return out
