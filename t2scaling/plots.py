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


def plot_fit_quality(observations, fit, k_grid, out_path):
    """Observed metric vs k per checkpoint (points) and the fitted law at the same (N, D) (lines)."""
    from t2scaling.observations import empirical_metric, read_observations

    table = read_observations(observations) if isinstance(observations, (str, os.PathLike)) else observations
    k_grid = np.asarray(k_grid, dtype=float)
    if not fit.model.uses_k:
        k_grid = k_grid[:1]
    observed = empirical_metric(table, fit.law, k_grid)  # columns: checkpoint, N, D, k, value
    checkpoints = observed.drop_duplicates("checkpoint").sort_values(["N", "D"])
    cmap = plt.get_cmap("viridis", max(len(checkpoints), 2))
    fig, (ax, res) = plt.subplots(1, 2, figsize=(6.8, 2.8), gridspec_kw={"width_ratios": [3, 2]})
    k_dense = np.geomspace(k_grid.min(), k_grid.max(), 100) if len(k_grid) > 1 else k_grid
    for i, row in enumerate(checkpoints.itertuples()):
        points = observed[observed["checkpoint"] == row.checkpoint]
        colour = cmap(i)
        ax.scatter(points["k"], points["value"], s=10, color=colour, zorder=3)
        ax.plot(k_dense, fit.predict(row.N, row.D, k_dense), color=colour, lw=0.9,
                label=f"N={row.N:.2g}, D={row.D:.2g}")
        res.scatter(points["k"], points["value"] - fit.predict(row.N, row.D, points["k"].to_numpy()),
                    s=8, color=colour)
    ax.set_xscale("log" if len(k_grid) > 1 else "linear")
    res.set_xscale("log" if len(k_grid) > 1 else "linear")
    ylabel = "mean pass@k" if fit.metric == "accuracy" else "task loss (nats)"
    ax.set(xlabel="samples k", ylabel=ylabel,
           title=f"{fit.task}: {APPROACH_STYLE.get(fit.law, {'label': fit.law})['label']} (R² = {fit.r2:.3f})")
    res.axhline(0, color="black", lw=0.6)
    res.set(xlabel="samples k", ylabel="observed − fitted", title="residuals")
    if len(checkpoints) <= 12:
        ax.legend(ncol=1, frameon=False, loc="best")
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
