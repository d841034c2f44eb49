"""`t2scaling lawbench`: every law in the registry judged on public training runs, beside honest baselines.

For each dataset and each split the laws are fitted on one part of the runs and predict the held-out part
(`extrapolate.extrapolate`, the one held-out experiment; fits keep converged=false rather than stop, and the
table says which did not converge). Splits, over the distinct runs of a dataset:
- `later`: fit on D below the top TOP_FRACTION of the dataset's log-D span, predict the rest (more tokens);
- `larger`: the same in log N (bigger models);
- `both`: fit where neither holds, predict where both hold (bigger models trained longer);
- `overtrained`: fit D/N <= 20 tokens per parameter, predict beyond.
Loss datasets are judged by relative error of the loss (metric `task_loss`), per-question datasets by mean
pass@k at every k of the k grid (and Approach 1 and Chinchilla also by their loss). Baselines: the nearest
fitted run in (log N, log D) and plain Chinchilla (on a loss, or on -log mean pass@1 mapped to pass@k through
the nearest run's questions).

Datasets whose licence allows it ship with the project (`data/public/`, see each SOURCE.md); the others are
read from the user's own copy (`--data-dir`, a folder holding the source folders named in DATASETS).
"""

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from t2scaling import extrapolate, flops, observations
from t2scaling.atomic import atomic_file

logger = logging.getLogger(__name__)

SPLITS = ("later", "larger", "both", "overtrained")
TOP_FRACTION = 0.2  # `later`/`larger` hold out the top fifth of the log-D / log-N span
OVERTRAINED_TOKENS_PER_PARAM = 20.0
LOSS_LAWS = ("chinchilla",)
PASS_AT_K_LAWS = ("approach1", "approach2", "beta_chinchilla")
BASELINES = ("nearest_checkpoint", "chinchilla")
ORDER = PASS_AT_K_LAWS + BASELINES
COLUMNS = ["dataset", "split", "law", "metric", "k", "n_points", "mean_rel_error", "median_rel_error", "converged",
           "n_fit", "n_held_out"]
DEFAULT_RESTARTS = 64  # per law and split; the workflow's fits use fits.restarts


# name -> (file, shipped): the file relative to the shipped folder (data/public) or to --data-dir; shipped where its
# licence allows. A literal, so the workflow reads it without importing this module (deps.constant).
DATASET_FILES = {
    "gadre_c4": ("gadre_overtraining/runs.csv", True),
    "gadre_rpj": ("gadre_overtraining/runs.csv", True),
    "gadre_rw": ("gadre_overtraining/runs.csv", True),
    "porian_rw": ("porian_isoflop/points.csv", True),
    "porian_owt2": ("porian_isoflop/points.csv", True),
    "chinchilla_epoch": ("chinchilla_epoch/svg_extracted_data.csv", False),
    "pythia_gsm8k": ("schaeffer_monkeys/pythia_nd_grid_gsm8k_math_per_problem.csv", False),
    "pythia_math": ("schaeffer_monkeys/pythia_nd_grid_gsm8k_math_per_problem.csv", False),
}


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    read: callable  # path -> standard observation frame

    @property
    def file(self):
        return DATASET_FILES[self.name][0]

    @property
    def shipped(self):
        return DATASET_FILES[self.name][1]


def _gadre(corpus):
    def read(path):
        runs = pd.read_csv(path)
        runs = runs[runs["train_dataset"] == corpus]
        return pd.DataFrame({"checkpoint": runs["run"], "N": runs["N_params"], "D": runs["D_tokens"],
                             "loss": runs["loss_c4_val"]})
    return read


def _porian(corpus):
    def read(path):
        points = pd.read_csv(path)
        points = points[(points["dataset"] == corpus) & (points["hparams"] == "base") & (points["warmup"] == "short")
                        & (points["decay"] == "chinchilla")]
        names = [f"C{c:.3g}-N{n:.4g}" for c, n in zip(points["flops"], points["N"])]
        return pd.DataFrame({"checkpoint": names, "N": points["N"], "D": points["D"], "loss": points["loss"]})
    return read


def _chinchilla_epoch(path):
    """Hoffmann et al.'s Figure 4 points as Epoch AI reconstructed them: D = C/6N; the 5 highest losses are
    dropped, as Epoch's own fits do."""
    points = pd.read_csv(path)
    points = points[points["loss"] < np.sort(points["loss"].to_numpy())[-5]]
    N, C = points["Model Size"].to_numpy(float), points["Training FLOP"].to_numpy(float)
    return pd.DataFrame({"checkpoint": [f"point {i + 1}" for i in points.index], "N": N, "D": flops.tokens_at(C, N),
                         "loss": points["loss"].to_numpy(float)})


def _pythia(benchmark):
    def read(path):
        rows = pd.read_csv(path)
        rows = rows[rows["benchmark"] == benchmark]
        frame = pd.DataFrame({"checkpoint": rows["model"], "N": rows["N_params"], "D": rows["D_tokens"],
                              "question": rows["problem_idx"], "n_samples": rows["n_samples"],
                              "n_correct": rows["n_correct"]})
        solved = frame.groupby("checkpoint")["n_correct"].transform("sum") > 0
        if not solved.all():  # -log pass@k is infinite there: no law's loss can be fitted to it
            logger.info("%s: dropping checkpoints that solve no %s question in any sample: %s", path, benchmark,
                        ", ".join(sorted(frame.loc[~solved, "checkpoint"].unique())))
            frame = frame[solved]
        shared = frame.groupby("question")["checkpoint"].nunique() == frame["checkpoint"].nunique()
        if not shared.all():  # means over questions are comparable only on one question set
            logger.info("%s: keeping the %d %s questions every checkpoint has (of %d)", path, int(shared.sum()),
                        benchmark, len(shared))
            frame = frame[frame["question"].isin(shared.index[shared])]
        return frame
    return read


DATASETS = {d.name: d for d in [
    Dataset("gadre_c4", "Gadre et al. 2024, trained on C4, C4 eval loss", _gadre("c4_original")),
    Dataset("gadre_rpj", "Gadre et al. 2024, trained on RedPajama, C4 eval loss", _gadre("rpj")),
    Dataset("gadre_rw", "Gadre et al. 2024, trained on RefinedWeb, C4 eval loss", _gadre("rw_original")),
    Dataset("porian_rw", "Porian et al. 2024 IsoFLOP runs, RefinedWeb, cosine decay, val loss", _porian("rw")),
    Dataset("porian_owt2", "Porian et al. 2024 IsoFLOP runs, OpenWebText2, cosine decay, val loss",
            _porian("owt2")),
    Dataset("chinchilla_epoch", "Hoffmann et al. 2022 Fig. 4 as reconstructed by Epoch AI (Besiroglu et al. "
            "2024), final train loss", _chinchilla_epoch),
    Dataset("pythia_gsm8k", "Pythia N x D checkpoints, GSM8K per-problem samples (Schaeffer et al. 2025)",
            _pythia("GSM8K")),
    Dataset("pythia_math", "Pythia N x D checkpoints, MATH per-problem samples (Schaeffer et al. 2025)",
            _pythia("MATH")),
]}


def shipped_dir():
    """The shipped public data: inside an installed wheel (t2scaling/public_data) or the checkout's data/public."""
    here = Path(__file__).resolve().parent
    return next((p for p in (here / "public_data", here.parent / "data" / "public") if p.is_dir()),
                here.parent / "data" / "public")


def load(name, data_dir=None):
    """The `observations.Observations` of dataset `name`; unshipped datasets are read from data_dir."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    dataset = DATASETS[name]
    if dataset.shipped:
        path = shipped_dir() / dataset.file
    elif data_dir is None:
        raise ValueError(f"dataset {name!r} is not shipped (its source has no licence that allows it); pass "
                         f"--data-dir DIR where DIR/{dataset.file} is your copy")
    else:
        path = Path(data_dir) / dataset.file
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dataset {name!r} not found there; it should hold {dataset.file} "
                                "(see data/public/*/SOURCE.md for what each source is)")
    return observations.from_frame(dataset.read(path), f"{name} ({path})")


def available(data_dir=None):
    """Datasets that can run: every shipped one, and the others whose file is under data_dir."""
    return [n for n, d in DATASETS.items() if d.shipped or (data_dir and (Path(data_dir) / d.file).is_file())]


def split_masks(N, D, split, top=TOP_FRACTION):
    """(fit, held out) boolean masks over runs at N params, D tokens for one of SPLITS."""
    N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
    if split == "overtrained":
        ratio = D / N
        return ratio <= OVERTRAINED_TOKENS_PER_PARAM, ratio > OVERTRAINED_TOKENS_PER_PARAM

    def upper(v):
        logs = np.log(v)
        return logs >= logs.max() - top * np.ptp(logs) if np.ptp(logs) > 0 else np.zeros(len(v), dtype=bool)

    late, big = upper(D), upper(N)
    if split == "later":
        return ~late, late
    if split == "larger":
        return ~big, big
    if split == "both":
        return ~late & ~big, late & big
    raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")


def bench_dataset(obs, name, splits=SPLITS, laws=None, restarts=DEFAULT_RESTARTS, seed=0):
    """Per-point held-out predictions of every applicable law and baseline on every split (extrapolate's
    COLUMNS plus dataset, split, converged, n_fit, n_held_out) and a list of skipped splits with reasons."""
    per_question = obs.form == "per_question"
    laws = [law for law in (laws or (PASS_AT_K_LAWS if per_question else LOSS_LAWS))
            if per_question or law in LOSS_LAWS]
    ckpts = observations.checkpoints(obs)
    parts, skipped = [], []
    for split in splits:
        fit_mask, held = split_masks(ckpts["N"], ckpts["D"], split)
        need = extrapolate.MIN_FIT_CHECKPOINTS["chinchilla"]
        if held.sum() == 0 or fit_mask.sum() < need:
            why = f"{int(fit_mask.sum())} runs to fit (needs {need}), {int(held.sum())} held out"
            logger.info("%s, %s split: skipped (%s)", name, split, why)
            skipped.append((name, split, why))
            continue
        subset = extrapolate._subset(obs, set(ckpts.index[fit_mask | held]))
        out = list(ckpts.index[held])
        # Each law in its own call: one law's failure must not hide the others'. The last call fits Chinchilla
        # and gives both baselines.
        calls = [([law], ()) for law in laws if law != "chinchilla"] + [(["chinchilla"], ["nearest_checkpoint"])]
        for call_laws, baselines in calls:
            try:
                table, fits = extrapolate.extrapolate(subset, call_laws, baselines=baselines, checkpoints=out,
                                                      restarts=restarts, seed=seed, allow_unconverged=True,
                                                      task=name)
            except ValueError as err:
                logger.warning("%s, %s split: %s failed: %s", name, split, "/".join(call_laws), err)
                skipped.append((name, split, f"{'/'.join(call_laws)}: {err}"))
                continue
            converged = {law: fit.converged for law, fit in fits.items()}
            table["converged"] = table["approach"].map(converged).fillna(True).astype(bool)
            parts.append(table.assign(dataset=name, split=split, n_fit=int(fit_mask.sum()),
                                      n_held_out=int(held.sum())))
    return (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()), skipped


def summarise(points):
    """The lawbench table (COLUMNS): relative errors (fractions: 0.35 = 35 %) per dataset, split, law, metric and
    k, plus one row per dataset, split, law and metric pooled over every k (k = 'all')."""
    frame = points.rename(columns={"approach": "law"})
    keys = ["dataset", "split", "law", "metric"]
    stats = dict(n_points=("rel_abs_error", "size"), mean_rel_error=("rel_abs_error", "mean"),
                 median_rel_error=("rel_abs_error", "median"), converged=("converged", "all"),
                 n_fit=("n_fit", "first"), n_held_out=("n_held_out", "first"))
    per_k = frame.groupby(keys + ["k"], sort=False).agg(**stats).reset_index()
    per_k["k"] = per_k["k"].map(lambda v: f"{v:g}")
    pooled = frame.groupby(keys, sort=False).agg(**stats).reset_index().assign(k="all")
    table = pd.concat([per_k, pooled], ignore_index=True)
    rank = {"split": list(SPLITS), "law": list(ORDER), "metric": list(extrapolate.METRICS)}
    sort = {column: table[column].map({v: i for i, v in enumerate(values)}) for column, values in rank.items()}
    table = table.assign(**{f"_{c}": s for c, s in sort.items()}, _pooled=table["k"] == "all",
                         _k=pd.to_numeric(table["k"], errors="coerce"))
    table = table.sort_values(["dataset", "_metric", "_split", "_law", "_pooled", "_k"], kind="stable")
    return table[COLUMNS].reset_index(drop=True)


def markdown(table, skipped=()):
    """Per dataset and metric: laws x splits, each cell the mean (median) relative error in percent pooled over
    k; † marks a fit that did not converge; bold the lowest mean of each split."""
    pooled = table[table["k"] == "all"]
    lines = ["# Law benchmark: relative error of held-out predictions", "",
             "Mean (median) relative error in %, pooled over held-out runs and every k; bold: lowest mean of the "
             "split; †: the fit did not converge (kept to show it). Splits: " + ", ".join(SPLITS) + ".", ""]
    for (dataset, metric), rows in pooled.groupby(["dataset", "metric"], sort=False):
        splits = [s for s in SPLITS if s in set(rows["split"])]
        lines += [f"## {dataset}: {metric}", "", f"*{DATASETS[dataset].description}*" if dataset in DATASETS else "",
                  "", "| law | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
        best = rows.groupby("split")["mean_rel_error"].min()
        for law in [law for law in ORDER if law in set(rows["law"])]:
            cells = []
            for split in splits:
                row = rows[(rows["law"] == law) & (rows["split"] == split)]
                if row.empty:
                    cells.append("–")
                    continue
                r = row.iloc[0]
                text = f"{100 * r.mean_rel_error:.3g} ({100 * r.median_rel_error:.3g})" + ("" if r.converged else " †")
                cells.append(f"**{text}**" if r.mean_rel_error == best[split] else text)
            lines.append(f"| {law} | " + " | ".join(cells) + " |")
        held = rows.groupby("split")[["n_fit", "n_held_out"]].first()
        lines += ["", "Runs fitted / held out: " + ", ".join(
            f"{s} {int(held.loc[s, 'n_fit'])}/{int(held.loc[s, 'n_held_out'])}" for s in splits), ""]
    if skipped:
        lines += ["## Skipped", ""] + [f"- {d}, {s}: {why}" for d, s, why in skipped] + [""]
    return "\n".join(lines)


def html(table, skipped=()):
    """The report's view: the rows pooled over k, errors in percent."""
    from t2scaling.tables import html_table

    pooled = table[table["k"] == "all"].drop(columns="k")
    pooled = pooled.assign(mean_rel_error=100 * pooled["mean_rel_error"],
                           median_rel_error=100 * pooled["median_rel_error"]).rename(
        columns={"mean_rel_error": "mean_rel_error_pct", "median_rel_error": "median_rel_error_pct"})
    note = "Pooled over held-out runs and every k; per-k rows in lawbench.csv." + (
        " Skipped: " + "; ".join(f"{d}, {s}: {why}" for d, s, why in skipped) if skipped else "")
    return html_table(pooled, "Law benchmark: relative error of held-out predictions", note=note)


def plot(table, dataset, path):
    """Grouped bars per split and law: mean relative error (%, log scale) pooled over k; diamonds mark medians;
    hatched bars are fits that did not converge. One panel per metric."""
    from matplotlib.patches import Patch

    from t2scaling.plots import APPROACH_STYLE, new_figure, save, styled

    @styled
    def draw():
        pooled = table[(table["k"] == "all") & (table["dataset"] == dataset)]
        metrics = [m for m in extrapolate.METRICS if m in set(pooled["metric"])]
        fig, axes = new_figure(1, len(metrics), figsize=(3.4 * len(metrics), 3.0), squeeze=False)
        handles = {}
        for ax, metric in zip(axes[0], metrics):
            rows = pooled[pooled["metric"] == metric]
            splits = [s for s in SPLITS if s in set(rows["split"])]
            laws = [law for law in ORDER if law in set(rows["law"])]
            width = 0.8 / len(laws)
            for j, law in enumerate(laws):
                color, label = APPROACH_STYLE[law]["color"], APPROACH_STYLE[law]["label"]
                for i, split in enumerate(splits):
                    got = rows[(rows["law"] == law) & (rows["split"] == split)]
                    if got.empty:
                        continue
                    r, x = got.iloc[0], i + (j - (len(laws) - 1) / 2) * width
                    ax.bar(x, 100 * r.mean_rel_error, width, color=color, edgecolor="white", linewidth=0.5,
                           hatch=None if r.converged else "///")
                    ax.plot(x, 100 * r.median_rel_error, "D", ms=3, mfc="white", mec="black", mew=0.6)
                handles.setdefault(label, Patch(color=color))
            ax.set_yscale("log")
            ax.set_xticks(range(len(splits)), splits)
            ax.set_xlabel("held-out split")
            ax.set_ylabel(f"relative error of {'mean pass@k' if metric == 'pass_at_k' else 'loss'} (%)")
            ax.set_title(f"{dataset}: {'pass@k' if metric == 'pass_at_k' else 'loss'}")
        from matplotlib.lines import Line2D

        handles["median"] = Line2D([], [], ls="", marker="D", ms=3, mfc="white", mec="black", mew=0.6)
        handles["fit not converged"] = Patch(facecolor="white", edgecolor="black", hatch="///")
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=2 * len(metrics),
                   frameon=False)
        return fig

    save(draw(), path)


def run_bench(datasets, out_dir, data_dir=None, splits=SPLITS, restarts=DEFAULT_RESTARTS, seed=0, figures_dir=None):
    """Benchmark `datasets` (names; None: every available one) into out_dir: lawbench.csv, lawbench.md,
    lawbench.html (the report's view) and lawbench_<dataset>.png/.pdf (in figures_dir, default out_dir). Returns
    the table."""
    t0 = time.perf_counter()
    names = list(datasets) if datasets else available(data_dir)
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; choose from {', '.join(DATASETS)}")
    if not datasets:
        missing = [n for n in DATASETS if n not in names]
        if missing:
            logger.info("not shipped and not under --data-dir, so left out: %s", ", ".join(missing))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts, skipped = [], []
    for name in names:
        logger.info("%s: %s", name, DATASETS[name].description)
        points, skips = bench_dataset(load(name, data_dir), name, splits, restarts=restarts, seed=seed)
        parts.append(points)
        skipped += skips
    points = pd.concat([p for p in parts if not p.empty], ignore_index=True) if any(not p.empty for p in parts) \
        else pd.DataFrame()
    if points.empty:
        raise ValueError(f"no split of {', '.join(names)} could be fitted: " + "; ".join(w for _, _, w in skipped))
    table = summarise(points)
    with atomic_file(out_dir / "lawbench.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_file(out_dir / "lawbench.md") as tmp, open(tmp, "w") as fh:
        fh.write(markdown(table, skipped))
    with atomic_file(out_dir / "lawbench.html") as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(html(table, skipped))
    figures_dir = Path(figures_dir or out_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    for name in table["dataset"].unique():
        plot(table, name, figures_dir / f"lawbench_{name}.png")
    logger.info("lawbench: %d datasets, %d rows in %.0f s -> %s", len(names), len(table),
                time.perf_counter() - t0, out_dir)
    return table
