"""Figures a researcher would put in a paper (DESIGN.md §2.6–2.7): fit quality, compute-optimal frontiers,
isoFLOP profiles, the checkpoint grid, held-out extrapolation and frontiers across post-training variants.

Conventions: log axes where values span decades, units on every axis, one colour per approach
(Approach 1 blue, Approach 2 red, Chinchilla black), PNG and PDF side by side, sized for a paper column.
Every figure has constrained layout and its legend outside the data; counts read "59K params"; the style applies
inside each plotting function only (`styled`), and `save` logs any text that overlaps other text (`text_overlaps`).
"""

import functools
import logging
import os
from pathlib import Path

import matplotlib
import matplotlib.cm
import matplotlib.colors
import matplotlib.patches
import matplotlib.text
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from t2scaling import flops
from t2scaling.atomic import atomic_file
from t2scaling.frontier import isoflop_optima
from t2scaling.laws import CHINCHILLA_PREFERENCE, T2_LAWS
from t2scaling.measure import fitted_target, macro_at_k
from t2scaling.observations import checkpoints, read_table
from t2scaling.units import format_flops, format_params, format_sci

logger = logging.getLogger(__name__)

APPROACH_STYLE = {
    "approach1": {"color": "tab:blue", "label": "T² Approach 1"},
    "approach2": {"color": "tab:red", "label": "T² Approach 2"},
    "chinchilla": {"color": "black", "label": "Chinchilla"},
    "naive": {"color": "tab:gray", "label": "naive sigmoid"},
    "beta_chinchilla": {"color": "tab:purple", "label": "Beta-Chinchilla"},
    "nearest_checkpoint": {"color": "tab:green", "label": "nearest checkpoint"},  # a baseline, not a law
}
C_INF_LINESTYLES = ["-", "--", ":", "-."]
METRIC_LABEL = {"accuracy": "mean pass@k", "loss": "task loss −log pass@k (nats)"}
ORIGIN_MARKERS = {"trained": "o", "imported": "s", "validation": "^", "held_out": "D"}
VARIANT_LINESTYLES = {"base": "-", "ft": "--", "sft": ":"}
# Sized for a paper column; applied inside each plotting function (`styled`), never to the global rcParams.
STYLE = {"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 7, "figure.dpi": 150,
         "savefig.bbox": "tight"}


def styled(function):
    """Run a plotting function under the module's STYLE (a `matplotlib.rc_context`), leaving rcParams as they were."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return function(*args, **kwargs)
    return wrapper


def new_figure(nrows=1, ncols=1, figsize=(3.4, 2.8), **subplots):
    """A constrained-layout figure on its own Agg canvas (no pyplot: no global figure or backend state) and its
    axes, as `plt.subplots` returns them."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **subplots)


def _drawn_texts(fig):
    """Every visible, non-empty text the renderer draws: titles, axis and tick labels (only ticks inside the view),
    annotations, legend entries and titles, colorbar labels."""
    ticks = {}
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                inside = lo - 1e-9 * abs(lo) <= tick.get_loc() <= hi + 1e-9 * abs(hi)
                ticks.update({id(label): inside for label in (tick.label1, tick.label2)})
    texts = []
    for text in fig.findobj(matplotlib.text.Text):
        shown = text.get_visible() and text.get_text().strip() and ticks.get(id(text), True)
        if shown and (text.axes is None or text.axes.get_visible()):
            texts.append(text)
    return texts


def text_overlaps(fig, tolerance=0.5):
    """Pairs (a, b) of text artists whose rendered boxes overlap by more than `tolerance` pixels each way, drawn
    with the Agg renderer: colliding tick labels, a y label running into the next panel, a legend over a title."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = _drawn_texts(fig)
    boxes = [text.get_window_extent(renderer) for text in texts]
    pairs = []
    for i, a in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            b = boxes[j]
            if min(a.x1, b.x1) - max(a.x0, b.x0) > tolerance and min(a.y1, b.y1) - max(a.y0, b.y0) > tolerance:
                pairs.append((texts[i], texts[j]))
    return pairs


def _describe(pairs):
    return "; ".join(f"{a.get_text()!r} / {b.get_text()!r}" for a, b in pairs)


def _nice_log_ticks(axis, max_labels=4):
    """Readable ticks on a log axis: below a decade, a few 1-2-5 values labelled like 2×10⁶ (matplotlib would
    label every minor tick, and they run together on a narrow panel); above, decades only."""
    if axis.get_scale() != "log" or not isinstance(axis.get_major_locator(), matplotlib.ticker.LogLocator):
        return  # linear, or ticks the figure chose itself
    lo, hi = sorted(axis.get_view_interval())
    if not (lo > 0 and np.isfinite(hi)):
        return
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if np.log10(hi / lo) >= 1.0:
        return
    for steps in ([1, 2, 5], [1, 3], [1]):
        values = [m * 10.0**e for e in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
                  for m in steps if lo <= m * 10.0**e <= hi]
        if len(values) <= max_labels:
            break
    if len(values) < 2:  # not even two 1-2-5 values inside: label both ends
        values = [lo, hi]
    axis.set_major_locator(matplotlib.ticker.FixedLocator(values))
    axis.set_major_formatter(matplotlib.ticker.LogFormatterSciNotation(labelOnlyBase=False))


def save(fig, path):
    """Write PNG at `path` and a PDF beside it, atomically, with readable log ticks; log a warning naming any
    text that overlaps other text (`text_overlaps`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for ax in fig.axes:
        _nice_log_ticks(ax.xaxis)
        _nice_log_ticks(ax.yaxis)
    overlaps = text_overlaps(fig)
    if overlaps:
        logger.warning("%s: overlapping text in the figure: %s", path, _describe(overlaps))
    for target in (path, path.with_suffix(".pdf")):
        with atomic_file(target) as tmp:
            fig.savefig(tmp, format=target.suffix[1:])


@styled
def plot_fit_quality(observations, fit, k_grid, out_path):
    """Observed metric vs k per checkpoint (points) and the fitted law at the same (N, D) (lines), with residuals;
    one colour per model size, legend beside the panels. For Chinchilla (no k): task NLL against D.
    fit: a FitResult or its JSON path."""
    if isinstance(fit, (str, os.PathLike)):
        from t2scaling.fitresult import load_fit

        fit = load_fit(fit)
    obs = read_table(observations) if isinstance(observations, (str, os.PathLike)) else observations
    _, N, D, k, values = fitted_target(obs, fit.law, k_grid, fit.options.get("source", "auto"))
    N, D = np.asarray(N, float), np.asarray(D, float)
    sizes = np.unique(N)
    colours = dict(zip(sizes, matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, len(sizes)))))
    fig, (ax, res) = new_figure(1, 2, figsize=(7.0, 2.8), gridspec_kw={"width_ratios": [3, 2]})
    if fit.law == "chinchilla":
        for n in sizes:
            pick = N == n
            d_dense = np.geomspace(D[pick].min() / 1.5, D[pick].max() * 1.5, 50)
            ax.scatter(D[pick], values[pick, 0], s=10, color=colours[n], zorder=3)
            ax.plot(d_dense, fit.predict(n, d_dense), color=colours[n], lw=0.9)
            res.scatter(D[pick], values[pick, 0] - fit.predict(n, D[pick]), s=8, color=colours[n])
        xlabel, ylabel = "training tokens D", "mean task NLL (nats)"
    else:
        k_dense = np.geomspace(k.min(), k.max(), 100)
        for i in range(len(N)):
            ax.scatter(k, values[i], s=10, color=colours[N[i]], zorder=3)
            ax.plot(k_dense, fit.predict(N[i], D[i], k_dense), color=colours[N[i]], lw=0.9)
            res.scatter(k, values[i] - fit.predict(N[i], D[i], k), s=8, color=colours[N[i]])
        xlabel, ylabel = "samples k", METRIC_LABEL[fit.metric]
    ax.set(xscale="log", xlabel=xlabel, ylabel=ylabel)
    res.set(xscale="log", xlabel=xlabel, ylabel="observed − fitted", title="residuals")
    res.axhline(0, color="black", lw=0.6)
    ax.set_title(f"{fit.task}: {APPROACH_STYLE.get(fit.law, {'label': fit.law})['label']} (R² = {fit.r2:.3f})")
    handles = [Line2D([], [], color=colours[n], lw=0.9, marker="o", markersize=3, label=format_params(n))
               for n in sizes]
    fig.legend(handles=handles, loc="outside right upper", frameon=False, title="model size N",
               title_fontsize=7, ncols=-(-len(sizes) // 14))
    save(fig, out_path)
    logger.info("fit-quality plot of %s (%s): %s", fit.law, fit.task, out_path)


def _split_by_range(ax, x, y, extrapolated, **style):
    """One curve: solid where the plan lies inside the fitted data, dashed where it extrapolates."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    out = np.asarray(extrapolated, bool)
    inside = np.where(out, np.nan, y)
    # Dashed over the whole curve keeps it continuous across the edge; solid on top where it is measured.
    ax.plot(x, y, ls="--", lw=0.9, **{k: v for k, v in style.items() if k != "label"})
    ax.plot(x, inside, ls="-", lw=1.3, **style)


def _shade(colour, j):
    """The j-th inference budget of one law: the law's colour, lighter for each further budget."""
    rgb = np.array(matplotlib.colors.to_rgb(colour))
    return tuple(rgb + (1.0 - rgb) * min(0.55, 0.3 * j))


@styled
def plot_frontiers(frontier_csvs, out_path, c_inf=None):
    """Three panels against C_train: optimal tokens/param (with the 20 tokens/param line), N* and D*, for every
    law in the tables and each C_inf, with the Chinchilla (k = 1) optimum in black. Solid where the plan lies
    inside the data the fits saw (frontier column `extrapolated`), dashed where it extrapolates; the fitted
    C_train range is shaded; the legend says which is which."""
    table = pd.concat([pd.read_csv(path) for path in frontier_csvs], ignore_index=True)
    table = table[(table["problem"] == "P1") & table["feasible"]]
    if c_inf is not None:
        table = table[table["c_inf"].isin(list(c_inf)) | table["c_inf"].isna()]
    if "extrapolated" not in table:  # tables written before the flag existed: say nothing is measured
        table = table.assign(extrapolated=True, data_c_train_min=np.nan, data_c_train_max=np.nan)
    fig, axes = new_figure(1, 3, figsize=(7.5, 2.9))
    panels = [("tokens_per_param", "chinchilla_tokens_per_param", "tokens per parameter D*/N*"),
              ("N_star", "chinchilla_N", "optimal parameters N*"),
              ("D_star", "chinchilla_D", "optimal tokens D*")]
    c_infs = sorted(table["c_inf"].dropna().unique())
    lo, hi = table["data_c_train_min"].min(), table["data_c_train_max"].max()
    for ax, (column, baseline, label) in zip(axes, panels):
        if np.isfinite(lo) and np.isfinite(hi):
            ax.axvspan(lo, hi, color="0.85", lw=0, label="C_train range of the fitted data")
        for law, by_law in table.groupby("approach"):
            style = APPROACH_STYLE.get(law, {"color": "tab:green", "label": law})
            if law == "chinchilla":
                continue  # its k = 1 optimum is the baseline drawn below
            for j, ci in enumerate(c_infs):
                rows = by_law[by_law["c_inf"] == ci].sort_values("c_train")
                _split_by_range(ax, rows["c_train"], rows[column], rows["extrapolated"], color=_shade(style["color"], j),
                                label=f"{style['label']}, C_inf = {format_flops(ci)} per token")
        # Chinchilla's own fit when it is in the tables, else the k = 1 baseline carried by the T² rows.
        own = table[table["approach"] == "chinchilla"]
        chin = (own if len(own) else table).drop_duplicates("c_train").sort_values("c_train")
        flags = chin["extrapolated"] if len(own) else (chin["c_train"] < lo) | (chin["c_train"] > hi) | ~np.isfinite(lo)
        _split_by_range(ax, chin["c_train"], chin[column if len(own) else baseline], flags, color="black",
                        label="Chinchilla (k = 1)")
        if column == "tokens_per_param":
            ax.axhline(20, color="gray", ls=":", lw=0.8, label="20 tokens/param")
        ax.set(xscale="log", yscale="log", xlabel="training compute C_train (FLOPs)", ylabel=label)
    task = ", ".join(sorted(table["task"].unique()))
    fig.suptitle(f"Compute-optimal allocation: {task}")
    handles, _ = axes[0].get_legend_handles_labels()
    handles += [Line2D([], [], color="dimgray", lw=1.3, label="solid: inside the fitted data"),
                Line2D([], [], color="dimgray", lw=0.9, ls="--", label="dashed: extrapolated")]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
    save(fig, out_path)
    logger.info("frontier plot from %d frontier tables: %s", len(frontier_csvs), out_path)


# ---------------------------------------------------------------------------------------- isoFLOP profiles

def _level_colours(c_train):
    """One colour per isoFLOP level (sequential, light end cut so it stays visible) and a discrete colorbar."""
    colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, len(c_train)))
    cmap = ListedColormap(colours)
    edges = np.arange(len(c_train) + 1) - 0.5
    return colours, matplotlib.cm.ScalarMappable(BoundaryNorm(edges, cmap.N), cmap)


def _add_level_colorbar(fig, axes, c_train, mappable):
    bar = fig.colorbar(mappable, ax=axes, ticks=np.arange(len(c_train)), fraction=0.04, pad=0.02, aspect=30)
    bar.ax.set_yticklabels([format_sci(c, 2) for c in c_train])
    bar.set_label("training compute C_train (FLOPs)")


@styled
def plot_isoflop_profiles(tasks, levels, c_inf, out_path, title=None):
    """IsoFLOP profiles of the T² laws: predicted metric vs N along D = C_train/(6N), one curve per level.

    tasks: {task: (observations path or table, {law: FitResult})}; with several tasks the macro average (the
    mean over tasks of predicted and of measured metric). levels: [(C_train FLOPs, [checkpoint names]), ...].
    Rows: k = 1 and the inference-corrected k = c_inf/(2N) (c_inf FLOPs per served token); columns: the T² laws
    every task has. Points: measured metric of each level's checkpoints (exact pass@k from per-question nll);
    stars: each curve's optimum as frontier.frontier gives it (k = 1: the law's own chinchilla_N; below: N_star);
    diamonds: the Chinchilla-optimal N (the chinchilla fit's, else the T² law's k = 1 baseline).
    Returns a frame of everything marked: task, law, row, c_train, c_inf, kind (measured | optimum | chinchilla),
    checkpoint, N, D, k, metric.
    """
    if not tasks:
        raise ValueError("plot_isoflop_profiles: no tasks given; pass {task: (observations, {law: fit})}")
    if not levels:
        raise ValueError("plot_isoflop_profiles: no isoFLOP levels given; pass [(c_train, [checkpoint, ...]), ...]")
    names = list(tasks)
    obs = {t: read_table(o) if isinstance(o, (str, os.PathLike)) else o for t, (o, _) in tasks.items()}
    fits = {t: f for t, (_, f) in tasks.items()}
    laws = [law for law in T2_LAWS if all(law in fits[t] for t in names)]
    if not laws:
        raise ValueError(f"plot_isoflop_profiles: no T² law ({', '.join(T2_LAWS)}) is fitted for every task "
                         f"({names}); fit approach1 or approach2")
    macro = len(names) > 1
    label = "macro" if macro else names[0]
    c_train = np.array([float(c) for c, _ in levels])
    order = np.argsort(c_train)
    levels, c_train = [levels[i] for i in order], c_train[order]
    frontiers, chin_N, ref = isoflop_optima(fits, laws, c_train, c_inf)

    def predict(law, N, D, k):
        return sum(fits[t][law].predict(N, D, k) for t in names) / len(names)

    sizes = checkpoints(obs[names[0]])
    for t in names:
        absent = sorted({str(n) for _, cells in levels for n in cells} - set(checkpoints(obs[t]).index))
        if absent:
            raise ValueError(f"{obs[t].path}: isoFLOP checkpoints {absent[:5]} are not in the observations of task "
                             f"{t!r}; evaluate them on this task or drop them from the levels")

    def measured(law, cells, k_of_N):
        """Mean over tasks of the measured metric, checkpoints measurable on every task."""
        cells = [str(c) for c in cells]
        seen = macro_at_k({t: (obs[t], fits[t][law]) for t in names}, cells,
                          k_of_N(sizes.loc[cells, "N"].to_numpy(float)))
        for path, name, why in seen.attrs["dropped"]:
            logger.warning("%s: %s: checkpoint %r %s; it is left out of the isoFLOP figure", path, law, name, why)
        return seen

    colours, mappable = _level_colours(c_train)
    rows = [("k = 1", lambda N: np.ones_like(N)), ("k = C_inf/(2N)", lambda N: flops.samples_at(c_inf, N))]
    fig, axes = new_figure(2, len(laws), figsize=(3.1 * len(laws) + 0.9, 5.0), squeeze=False)
    marks = []
    for j, law in enumerate(laws):
        table = frontiers[law]
        for i, (row_name, k_of_N) in enumerate(rows):
            ax = axes[i, j]
            corrected = i == 1
            for lvl, ((ct, cells), colour) in enumerate(zip(levels, colours)):
                seen = measured(law, cells, k_of_N)
                opt_N = table["N_star" if corrected else "chinchilla_N"].iloc[lvl]
                anchors = [n for n in (*seen["N"], opt_N, chin_N[lvl]) if np.isfinite(n)]
                lo, hi = min(anchors) / 3.0, max(anchors) * 3.0
                if corrected:
                    hi = min(hi, c_inf / 2.0)  # k >= 1
                if lo < hi:
                    N = np.geomspace(lo, hi, 200)
                    ax.plot(N, predict(law, N, flops.tokens_at(ct, N), k_of_N(N)), color=colour, lw=1.1)
                ax.scatter(seen["N"], seen["metric"], s=14, color=colour, edgecolor="white", lw=0.4, zorder=3)
                marks += [dict(kind="measured", checkpoint=c, N=r.N, D=r.D, k=r.k, metric=r.metric, law=law,
                               row=row_name, c_train=ct) for c, r in seen.iterrows()]
                for kind, n, marker, size in (("optimum", opt_N, "*", 90), ("chinchilla", chin_N[lvl], "D", 26)):
                    k = float(k_of_N(np.array(n)))
                    if not (np.isfinite(n) and k >= 1.0):
                        continue  # infeasible: no plan within C_inf
                    d = flops.tokens_at(ct, n)
                    value = table["predicted_metric"].iloc[lvl] if kind == "optimum" and corrected \
                        else float(predict(law, n, d, k))
                    ax.scatter([n], [value], marker=marker, s=size, color=colour, edgecolor="black", lw=0.6,
                               zorder=4)
                    marks.append(dict(kind=kind, checkpoint="", N=n, D=d, k=k, metric=value, law=law, row=row_name,
                                      c_train=ct))
            # Zoom on the measured points and the optima: a loss law extrapolated to tiny N shoots up by orders of
            # magnitude and would flatten the region the figure is about.
            shown = [m["metric"] for m in marks if m["law"] == law and m["row"] == row_name and np.isfinite(m["metric"])]
            if shown:
                low, high = min(shown), max(shown)
                pad = 0.35 * (high - low) if high > low else 0.1 * max(abs(high), 1e-3)
                ax.set_ylim(low - pad, high + pad)
            style = APPROACH_STYLE[law]
            ax.set_title(f"{style['label']}, {row_name}", color=style["color"])
            ax.set(xscale="log", ylabel=METRIC_LABEL[fits[names[0]][law].metric])
            if i == 1:
                ax.set_xlabel("model size N (params), D = C_train/(6N)")
    _add_level_colorbar(fig, axes, c_train, mappable)
    handles = [Line2D([], [], marker="o", ls="", color="gray", markeredgecolor="white", label="measured checkpoint"),
               Line2D([], [], marker="*", ls="", color="gray", markeredgecolor="black", markersize=10,
                      label="curve optimum (top: law's k = 1; bottom: T² frontier)"),
               Line2D([], [], marker="D", ls="", color="gray", markeredgecolor="black", markersize=5,
                      label=f"Chinchilla-optimal N ({APPROACH_STYLE[ref]['label']} fit)")]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False)
    what = f"{len(names)}-task macro average" if macro else label
    fig.suptitle(title or f"IsoFLOP profiles: {what}, C_inf = {format_sci(c_inf)} FLOPs per served token")
    save(fig, out_path)
    out = pd.DataFrame(marks)
    out.insert(0, "task", label)
    out.insert(4, "c_inf", float(c_inf))
    return out


# ----------------------------------------------------------------------------------------- checkpoint grid

def plot_isoflop_files(observations, fit_paths, levels, c_inf, out_path):
    """Rule plot_isoflops (one task) and plot_macro_isoflops (every task): `plot_isoflop_profiles` from files.

    observations: {task: observation table}; fit_paths: fit JSONs, each paired with the observations of the task
    it names; levels: [(C_train, [cell names]), ...] or {C_train: [...]} (grid.isoflop_levels)."""
    from t2scaling.fitresult import load_fit

    fits = [load_fit(path) for path in fit_paths]
    tasks = {task: (path, {fit.law: fit for fit in fits if fit.task == task}) for task, path in observations.items()}
    levels = [(c_train, cells) for c_train, cells in (levels.items() if isinstance(levels, dict) else levels)]
    marked = plot_isoflop_profiles(tasks, levels, c_inf, out_path)
    logger.info("isoFLOP profiles of %s at %d levels, C_inf = %g", ", ".join(tasks), len(levels), c_inf)
    return marked


def write_frontier_comparison(frontiers, c_train, c_inf, csv_path, md_path, plot_path, html_path=None):
    """Rule posttrain_compare (a wrapper makes one library call): the comparison table of {variant: [frontier
    CSVs]} (`tables.write_comparison`) and the variants' frontiers drawn into plot_path; returns the table."""
    from t2scaling.tables import write_comparison

    table = write_comparison(frontiers, c_train, c_inf, csv_path, md_path, html_path)
    plot_variant_frontiers(frontiers, plot_path, c_inf)
    return table


def _require_columns(frame, columns, where):
    missing = [c for c in columns if c not in frame]
    if missing:
        raise ValueError(f"{where}: missing columns {missing}; it has {list(frame.columns)}")


def compute_levels(C, rtol=0.05, min_gap_decades=0.2):
    """The distinct training budgets among compute values C (FLOPs): values within `rtol` of each other are one
    level (whole-step rounding moves a cell's 6ND slightly off its isoFLOP level), at their geometric mean; the
    most populated levels first, any closer than `min_gap_decades` to one already kept dropped (tick labels)."""
    C = np.sort(np.asarray(C, float))
    groups = np.split(C, np.flatnonzero(C[1:] > C[:-1] * (1.0 + rtol)) + 1)
    kept = []
    for group in sorted(groups, key=len, reverse=True):
        level = float(np.exp(np.mean(np.log(group))))
        if all(abs(np.log10(level / other)) >= min_gap_decades for other in kept):
            kept.append(level)
    return sorted(kept)


@styled
def plot_checkpoint_grid(cells, out_path, title=None):
    """Every checkpoint as a point: N (params) vs C_train = 6ND (FLOPs), coloured by tokens/param D/N, marker by
    origin (trained, imported, validation, held_out), with iso-tokens/param guide lines (paper Fig. 8).
    cells: frame (or CSV path) with columns name, N, D, origin."""
    if isinstance(cells, (str, os.PathLike)):
        where, cells = str(cells), pd.read_csv(cells)
    else:
        where, cells = "checkpoint grid table", pd.DataFrame(cells)
    _require_columns(cells, ["name", "N", "D", "origin"], where)
    N, D = cells["N"].to_numpy(float), cells["D"].to_numpy(float)
    bad = ~(np.isfinite(N) & np.isfinite(D) & (N > 0) & (D > 0))
    if bad.any():
        raise ValueError(f"{where}: checkpoint {cells['name'].iloc[np.flatnonzero(bad)[0]]!r} has N or D not a "
                         "positive number; fix its size")
    unknown = sorted(set(cells["origin"]) - set(ORIGIN_MARKERS))
    if unknown:
        raise ValueError(f"{where}: unknown origin {unknown}; use one of {list(ORIGIN_MARKERS)}")
    logger.info("checkpoint grid: %s", cells["origin"].value_counts().to_dict())
    C, ratio = flops.c_train(N, D), D / N
    fig, ax = new_figure(figsize=(3.6, 3.4))
    xlim, ylim = (C.min() / 2.5, C.max() * 2.5), (N.min() / 2.5, N.max() * 2.5)
    c_line = np.geomspace(*xlim, 50)
    decades = range(int(np.floor(np.log10(ratio.min()))), int(np.ceil(np.log10(ratio.max()))) + 1)
    for r in sorted({20.0} | {10.0**e for e in decades if e != 1}):  # 10 would crowd the 20 line
        n_line = np.sqrt(c_line / (6.0 * r))  # N at D/N = r: C = 6 r N^2
        guide = dict(color="gray", lw=0.8, ls="--") if r == 20 else dict(color="silver", lw=0.6, ls=":")
        ax.plot(c_line, n_line, zorder=1, **guide)
        if ylim[0] < n_line[-1] < ylim[1]:  # label where the guide leaves the plot on the right
            ax.text(xlim[1] / 1.15, n_line[-1] * 1.12, f"{r:g}", fontsize=6, color="dimgray", ha="right",
                    va="bottom")
    norm = LogNorm(ratio.min() / 1.5, ratio.max() * 1.5)
    handles = []
    for origin, marker in ORIGIN_MARKERS.items():
        pick = (cells["origin"] == origin).to_numpy()
        if pick.any():
            scatter = ax.scatter(C[pick], N[pick], c=ratio[pick], cmap="viridis", norm=norm, marker=marker, s=28,
                                 edgecolor="black", lw=0.4, zorder=3)
            handles.append(Line2D([], [], marker=marker, ls="", color="white", markeredgecolor="black",
                                  label=f"{origin.replace('_', '-')} ({pick.sum()})"))
    fig.colorbar(scatter, ax=ax, label="tokens per parameter D/N")
    handles.append(Line2D([], [], color="gray", lw=0.8, ls="--", label="20 tokens/param"))
    handles.append(Line2D([], [], color="silver", lw=0.6, ls=":", label="other D/N (labelled)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False, columnspacing=1.0,
               handletextpad=0.3)
    ax.set(xscale="log", yscale="log", xlim=xlim, ylim=ylim, xlabel="training compute C_train = 6ND (FLOPs)",
           ylabel="model size N (params)", title=title or f"Checkpoints ({len(cells)})")
    # The isoFLOP levels as the compute axis' ticks (a grid spans a decade or two: one decade tick at most).
    levels = compute_levels(C)
    ax.set_xticks(levels, labels=[format_sci(c, 2) for c in levels], rotation=90 if len(levels) > 3 else 0)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    save(fig, out_path)


# ------------------------------------------------------------------------------------------- extrapolation

EXTRAPOLATION_COLUMNS = ["task", "approach", "metric", "checkpoint", "N", "D", "tokens_per_param", "k", "measured",
                         "predicted", "rel_abs_error"]


@styled
def plot_extrapolation(table, out_path):
    """Predicted vs measured on held-out checkpoints with the y = x line, one panel per metric: mean pass@k (every
    law and baseline) and task loss in nats (the laws that predict it); colour per law or baseline, marker per
    task. The pass@k legend gives each one's mean relative absolute error; the loss legend the mean |log(predicted
    / measured)|, which stays meaningful where the measured loss is ~0 (a relative error there runs to 1e13 %).
    table: frame or CSV path of `extrapolate.COLUMNS` (rel_abs_error = |predicted − measured|/measured, a fraction).
    Returns the summary: approach, metric, n, mean_rel_abs_error_percent, mean_abs_log_ratio (loss panels only)."""
    where = str(table) if isinstance(table, (str, os.PathLike)) else "extrapolation table"
    table = pd.read_csv(table) if isinstance(table, (str, os.PathLike)) else pd.DataFrame(table)
    column = "metric"
    _require_columns(table, EXTRAPOLATION_COLUMNS, where)
    if table.empty:
        raise ValueError(f"{where}: no held-out rows; hold out checkpoints (extrapolation.checkpoints in config)")
    meas, pred = table["measured"].to_numpy(float), table["predicted"].to_numpy(float)
    expected = np.abs(pred - meas) / np.abs(meas)
    off = ~np.isclose(table["rel_abs_error"].to_numpy(float), expected, rtol=1e-6, atol=1e-12)
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(f"{where}: row {i + 1}: rel_abs_error = {float(table['rel_abs_error'].iloc[i]):.6g} is not "
                         f"|predicted − measured|/measured = {expected[i]:.6g}; write it as a fraction, not percent")
    losses = {"task_loss"}
    labels = {"pass_at_k": "mean pass@k", "task_loss": "task loss (nats)"}
    styles = APPROACH_STYLE
    metrics = [m for m in ("pass_at_k", "task_loss") if m in set(table[column])]
    metrics += sorted(set(table[column]) - set(metrics))
    tasks = list(dict.fromkeys(table["task"].fillna("").astype(str)))
    markers = dict(zip(tasks, ["o", "s", "^", "D", "v", "P", "X", "*"] * (len(tasks) // 8 + 1)))
    fig, axes = new_figure(1, len(metrics), figsize=(3.6 * len(metrics), 3.6), squeeze=False)
    summary = []
    for ax, metric in zip(axes[0], metrics):
        rows = table[table[column] == metric]
        values = rows[["measured", "predicted"]].to_numpy(float)
        lo, hi = values.min(), values.max()
        log = lo > 0 and hi / lo > 10.0  # log-log only where values span a decade or more
        pad = (hi / lo) ** 0.08 if log else 0.08 * (hi - lo or abs(hi) or 1.0)
        lim = (lo / pad, hi * pad) if log else (lo - pad, hi + pad)
        ax.plot(lim, lim, color="black", lw=0.7, ls="--", zorder=1)
        handles = [Line2D([], [], color="black", lw=0.7, ls="--", label="y = x")]
        for approach, part in rows.groupby("approach", sort=True):
            style = styles.get(approach, {"color": "tab:purple", "label": approach})
            for task, points in part.groupby(part["task"].fillna("").astype(str), sort=False):
                # the laws on top of the baselines, whose points would otherwise hide them where they agree
                ax.scatter(points["measured"], points["predicted"], s=16, marker=markers[task], color=style["color"],
                           edgecolor="white", lw=0.4, zorder=4 if approach in T2_LAWS else 3)
            error = 100.0 * part["rel_abs_error"].mean()
            # Near a measured loss of 0 the relative error explodes; the log-ratio counts decades off instead.
            ratio = np.abs(np.log(part["predicted"] / part["measured"])).mean() if metric in losses else np.nan
            shown = f"{ratio:.3g}" if metric in losses else f"{error:.1f} %"
            handles.append(Line2D([], [], color=style["color"], lw=4, label=f"{style['label']}: {shown} "
                                  f"(n = {len(part)})"))
            summary.append(dict(approach=approach, metric=metric, n=len(part), mean_rel_abs_error_percent=error,
                                mean_abs_log_ratio=ratio))
        name = labels.get(metric, metric)
        ax.set(xlim=lim, ylim=lim, xlabel=f"measured {name}", ylabel=f"predicted {name}", aspect="equal")
        if log:
            ax.set(xscale="log", yscale="log")
        ax.set_title(f"held-out checkpoints: {'task loss' if metric in losses else 'pass@k'}")
        # Below the panel: the under-predicted points of a baseline fill the lower-right corner.
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.24), frameon=False, title_fontsize=7,
                  title="mean |log(pred / meas)|" if metric in losses else "mean |relative error|")
    fig.legend(handles=[Line2D([], [], marker=m, ls="", color="gray", markeredgecolor="white", label=t or "(no task)")
                        for t, m in markers.items()], loc="outside lower center", frameon=False,
               ncols=min(len(tasks), 4), title="task (marker)", title_fontsize=7)
    save(fig, out_path)
    return pd.DataFrame(summary)


# ------------------------------------------------------------------------------------ post-training variants

@styled
def plot_variant_frontiers(frontiers, out_path, c_inf):
    """Optimal tokens/param vs C_train per task for the base model and its post-trained variants (paper Fig. 5).

    frontiers: {variant: [frontier CSV, ...]} (P1 tables of frontier.write_csv); c_inf: FLOPs per served token.
    Colour per T² approach, linestyle per variant; the Chinchilla k = 1 optimum in black and 20 tokens/param in
    gray."""
    from t2scaling.tables import variant_frontiers

    table = variant_frontiers(frontiers, c_inf)
    tasks = list(dict.fromkeys(table["task"]))
    variants = list(frontiers)
    styles = {v: VARIANT_LINESTYLES.get(v, C_INF_LINESTYLES[(i + 3) % len(C_INF_LINESTYLES)])
              for i, v in enumerate(variants)}
    cols = min(len(tasks), 4)
    rows_n = -(-len(tasks) // cols)
    fig, axes = new_figure(rows_n, cols, figsize=(1.9 * cols + 1.2, 1.9 * rows_n + 0.7), squeeze=False,
                           sharex=True, sharey=True)
    approaches = [a for a in T2_LAWS if a in set(table["approach"])]
    approaches += sorted(set(table["approach"]) - set(approaches) - {"chinchilla"})
    for ax, task in zip(axes.flat, tasks):
        if "data_c_train_min" in table:  # the base model's measured range; extrapolated beyond it
            base = table[(table["task"] == task) & (table["variant"] == variants[0])]
            if np.isfinite(base["data_c_train_min"].min()) and np.isfinite(base["data_c_train_max"].max()):
                ax.axvspan(base["data_c_train_min"].min(), base["data_c_train_max"].max(), color="0.85", lw=0)
        for variant in variants:
            mine = table[(table["task"] == task) & (table["variant"] == variant)]
            for approach in approaches:
                rows = mine[mine["approach"] == approach].sort_values("c_train")
                ax.plot(rows["c_train"], rows["tokens_per_param"], ls=styles[variant], lw=1.1,
                        color=APPROACH_STYLE.get(approach, {"color": "tab:green"})["color"])
            ref = next((a for a in CHINCHILLA_PREFERENCE if a in set(mine["approach"])), None)
            if ref is not None:
                rows = mine[mine["approach"] == ref].sort_values("c_train")
                ax.plot(rows["c_train"], rows["chinchilla_tokens_per_param"], color="black", lw=0.9,
                        ls=styles[variant])
        ax.axhline(20, color="gray", ls=":", lw=0.8)
        ax.set(xscale="log", yscale="log", title=task)
    for ax in axes.flat[len(tasks):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("training compute C_train (FLOPs)")
    for ax in axes[:, 0]:
        ax.set_ylabel("optimal tokens/param D*/N*")
    handles = [Line2D([], [], color=APPROACH_STYLE.get(a, {"color": "tab:green"})["color"],
                      label=APPROACH_STYLE.get(a, {"label": a})["label"]) for a in approaches]
    handles += [Line2D([], [], color="black", lw=0.9, label="Chinchilla (k = 1)"),
                Line2D([], [], color="gray", ls=":", lw=0.8, label="20 tokens/param")]
    handles += [Line2D([], [], color="dimgray", ls=styles[v], label=v) for v in variants]
    if "data_c_train_min" in table:
        handles.append(matplotlib.patches.Patch(color="0.85", lw=0, label="C_train range of the fitted data"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), frameon=False)
    fig.suptitle(f"Optimal tokens/param by variant, C_inf = {format_sci(c_inf)} FLOPs per served token")
    save(fig, out_path)
