"""Figures a researcher would put in a paper: fit quality and compute-optimal frontiers (DESIGN.md §2.6).

Conventions: log axes where values span decades, units on every axis, one colour per approach
(Approach 1 blue, Approach 2 red, Chinchilla black), PNG and PDF side by side, sized for a paper column.
"""

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

APPROACH_STYLE = {
    "approach1": {"color": "tab:blue", "label": "T² Approach 1"},
    "approach2": {"color": "tab:red", "label": "T² Approach 2"},
    "chinchilla": {"color": "black", "label": "Chinchilla"},
    "naive": {"color": "tab:gray", "label": "naive sigmoid"},
}
C_INF_LINESTYLES = ["-", "--", ":", "-."]
plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 7,
                     "figure.dpi": 150, "savefig.bbox": "tight"})


def save(fig, path):
    """Write PNG at `path` and a PDF beside it, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for target in (path, path.with_suffix(".pdf")):
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=target.suffix)
        os.close(fd)
        fig.savefig(tmp, format=target.suffix[1:])
        os.replace(tmp, target)
    plt.close(fig)


def observed_metric(observations, fit, k_grid):
    """What `fit` was fitted to, per checkpoint: (checkpoints frame with N, D; k (K,); values (C, K)).

    Chinchilla: mean task NLL (nats, one column); Approach 1: task loss -log pass@k; Approach 2: mean pass@k.
    """
    from t2scaling import observations as obs_mod

    obs = obs_mod.read_table(observations) if isinstance(observations, (str, os.PathLike)) else observations
    source = fit.options.get("source", "auto")
    if fit.law == "chinchilla":
        N, D, loss, _ = obs_mod.loss_points(obs)
        return pd.DataFrame({"N": N, "D": D}), np.ones(1), np.asarray(loss)[:, None]
    if fit.metric == "accuracy":
        return obs_mod.pass_at_k_matrix(obs, k_grid, source)
    return obs_mod.task_loss_matrix(obs, k_grid, source)


def plot_fit_quality(observations, fit, k_grid, out_path):
    """Observed metric vs k per checkpoint (points) and the fitted law at the same (N, D) (lines), with residuals.
    For Chinchilla (no k): task NLL against D, one colour per model size."""
    ckpts, k, values = observed_metric(observations, fit, k_grid)
    N, D = ckpts["N"].to_numpy(float), ckpts["D"].to_numpy(float)
    fig, (ax, res) = plt.subplots(1, 2, figsize=(6.8, 2.8), gridspec_kw={"width_ratios": [3, 2]})
    if fit.law == "chinchilla":
        sizes = np.unique(N)
        cmap = plt.get_cmap("viridis", max(len(sizes), 2))
        for i, n in enumerate(sizes):
            pick = N == n
            d_dense = np.geomspace(D[pick].min() / 1.5, D[pick].max() * 1.5, 50)
            ax.scatter(D[pick], values[pick, 0], s=10, color=cmap(i), zorder=3)
            ax.plot(d_dense, fit.predict(n, d_dense), color=cmap(i), lw=0.9, label=f"N = {n:.2g}")
            res.scatter(D[pick], values[pick, 0] - fit.predict(n, D[pick]), s=8, color=cmap(i))
        ax.set(xscale="log", xlabel="training tokens D", ylabel="mean task NLL (nats)")
        res.set(xscale="log", xlabel="training tokens D")
    else:
        cmap = plt.get_cmap("viridis", max(len(N), 2))
        k_dense = np.geomspace(k.min(), k.max(), 100)
        for i in range(len(N)):
            ax.scatter(k, values[i], s=10, color=cmap(i), zorder=3)
            ax.plot(k_dense, fit.predict(N[i], D[i], k_dense), color=cmap(i), lw=0.9,
                    label=f"N={N[i]:.2g}, D={D[i]:.2g}")
            res.scatter(k, values[i] - fit.predict(N[i], D[i], k), s=8, color=cmap(i))
        ylabel = "mean pass@k" if fit.metric == "accuracy" else "task loss −log pass@k (nats)"
        ax.set(xscale="log", xlabel="samples k", ylabel=ylabel)
        res.set(xscale="log", xlabel="samples k")
    ax.set_title(f"{fit.task}: {APPROACH_STYLE.get(fit.law, {'label': fit.law})['label']} (R² = {fit.r2:.3f})")
    res.axhline(0, color="black", lw=0.6)
    res.set(ylabel="observed − fitted", title="residuals")
    if len(N) <= 12 or fit.law == "chinchilla":
        ax.legend(frameon=False, loc="best")
    save(fig, out_path)


def plot_frontiers(frontier_csvs, out_path, c_inf=None):
    """Three panels against C_train: optimal tokens/param (with the 20 tokens/param line), N* and D*, for every
    law in the tables and each C_inf, with the Chinchilla (k = 1) optimum in black."""
    table = pd.concat([pd.read_csv(path) for path in frontier_csvs], ignore_index=True)
    table = table[(table["problem"] == "P1") & table["feasible"]]
    if c_inf is not None:
        table = table[table["c_inf"].isin(list(c_inf))]
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.4))
    panels = [("tokens_per_param", "chinchilla_tokens_per_param", "tokens per parameter D*/N*"),
              ("N_star", "chinchilla_N", "optimal parameters N*"),
              ("D_star", "chinchilla_D", "optimal tokens D*")]
    c_infs = sorted(table["c_inf"].unique())
    for ax, (column, baseline, label) in zip(axes, panels):
        for law, by_law in table.groupby("approach"):
            style = APPROACH_STYLE.get(law, {"color": "tab:green", "label": law})
            if law == "chinchilla":
                continue  # its k = 1 optimum is the baseline drawn below
            for j, ci in enumerate(c_infs):
                rows = by_law[by_law["c_inf"] == ci].sort_values("c_train")
                ax.plot(rows["c_train"], rows[column], color=style["color"],
                        ls=C_INF_LINESTYLES[j % len(C_INF_LINESTYLES)],
                        label=f"{style['label']}, C_inf={ci:.1e}")
        # Chinchilla's own fit when it is in the tables, else the k = 1 baseline carried by the T² rows.
        own = table[table["approach"] == "chinchilla"]
        chin = (own if len(own) else table).drop_duplicates("c_train").sort_values("c_train")
        ax.plot(chin["c_train"], chin[column if len(own) else baseline], color="black", lw=1.2,
                label="Chinchilla (k = 1)")
        if column == "tokens_per_param":
            ax.axhline(20, color="gray", ls=":", lw=0.8, label="20 tokens/param")
        ax.set(xscale="log", yscale="log", xlabel="training compute C_train (FLOPs)", ylabel=label)
    task = ", ".join(sorted(table["task"].unique()))
    fig.suptitle(f"Compute-optimal allocation: {task}", y=1.02)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, frameon=False)
    fig.tight_layout()
    save(fig, out_path)
