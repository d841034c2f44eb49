"""Tables a researcher would put in a paper (DESIGN.md §2.7): measured vs planned (paper Table 1), fitted
parameters, and frontiers across post-training variants (paper Table 2). CSV keeps full precision; the Markdown
beside it is for reading (3–4 significant digits, units from t2scaling.units).

Frontier numbers are copied verbatim from the frontier CSVs (floats parsed round-trip exactly), so a table
never disagrees with the planner's output in the last digit.
"""

import logging
import math
import os

import numpy as np
import pandas as pd

from t2scaling import flops, observations as obs_mod
from t2scaling.atomic import atomic_file
from t2scaling.bootstrap import question_bootstrap
from t2scaling.laws import CHINCHILLA_PREFERENCE
from t2scaling.measure import at_k
from t2scaling.units import format_count, format_flops, format_number, format_sci

logger = logging.getLogger(__name__)

FRONTIER_COPIED = ("N_star", "tokens_per_param", "k_star", "predicted_metric")
BUDGET_RTOL = 1e-9  # a frontier row "is" a requested budget within this relative tolerance
# pandas >= 3 parses floats round-trip exactly (and deprecates the option); older pandas needs it asked for.
EXACT_FLOATS = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


# ------------------------------------------------------------------------------------------------ writing

def _num(x, digits=3):
    """A plain number at `digits` significant digits; 1e5 and above in scientific notation (3.9e6, not 3,875,684)."""
    return format_sci(x, digits) if math.isfinite(x) and abs(x) >= 1e5 else format_number(x, digits)


def cell_text(column, value, digits=3):
    """One table cell as a reader sees it (Markdown and HTML views): counts as 1.23M, FLOPs as 1.2e18, other
    numbers at `digits` significant digits, booleans as yes/no, missing values blank."""
    if value is None or (isinstance(value, str) and value == ""):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}" if abs(int(value)) >= 10_000 else str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return ""
        name = column.split("_")
        if column.startswith(("c_", "C_")) or "flops" in column.lower():
            return format_sci(value, digits)
        if "N" in name or "D" in name:  # N, D, N_star, chinchilla_N, approach2_N_star, ...
            return format_count(value, digits)
        return _num(value, digits)
    return str(value)


def _cell(column, value, digits=3):
    """One Markdown cell: `cell_text`, with pipes escaped and newlines folded."""
    return cell_text(column, value, digits).replace("|", "\\|").replace("\n", " ")


def markdown(frame, title=None, digits=3, right=None):
    """A pipe table of `frame` (numeric columns, or those named in `right`, right-aligned), with an optional
    '## title' heading."""
    header = [str(c) for c in frame.columns]
    numeric = [c in right if right is not None else
               pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    rows = [[_cell(str(c), v, digits) for c, v in zip(frame.columns, values)]
            for values in frame.itertuples(index=False)]
    lines = [f"## {title}", ""] if title else []
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---:" if n else ":---" for n in numeric) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


_HTML_STYLE = ("body{font-family:system-ui,sans-serif;font-size:14px;margin:1em}"
               "table{border-collapse:collapse}th,td{padding:2px 8px;border-bottom:1px solid #ddd}"
               "th{text-align:left;background:#f4f4f4;position:sticky;top:0}td.num,th.num{text-align:right}"
               "td.num{font-variant-numeric:tabular-nums}tr:hover td{background:#f8f8ff}")


def html_table(frame, title=None, digits=3, note=None):
    """A standalone HTML page of `frame` (what the Snakemake report shows inline): every column, cells formatted
    as in the Markdown view (`cell_text`), numeric columns right-aligned, an optional <h2> title and a note
    below the table."""
    from html import escape

    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    align = [' class="num"' if n else "" for n in numeric]
    head = "".join(f"<th{a}>{escape(str(c))}</th>" for c, a in zip(frame.columns, align))
    body = "\n".join(
        "<tr>" + "".join(f"<td{a}>{escape(cell_text(str(c), v, digits))}</td>"
                         for c, v, a in zip(frame.columns, values, align)) + "</tr>"
        for values in frame.itertuples(index=False))
    heading = escape(title) if title else "table"
    parts = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">', f"<title>{heading}</title>",
             f"<style>{_HTML_STYLE}</style></head><body>"]
    if title:
        parts.append(f"<h2>{escape(title)}</h2>")
    parts += ["<table>", f"<thead><tr>{head}</tr></thead>", f"<tbody>\n{body}\n</tbody>", "</table>"]
    extra = f" {escape(note)}" if note else ""
    parts.append(f"<p>{len(frame)} rows. Full precision in the CSV beside this file.{extra}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_table(frame, csv_path, md_path=None, title=None, html_path=None, digits=3):
    """Write `frame` as CSV (full precision, blank for missing) and, if md_path, as Markdown and, if html_path, as
    an HTML page (`html_table`, the view the report shows); all atomically."""
    with atomic_file(csv_path) as tmp:
        frame.to_csv(tmp, index=False)
    if md_path:
        with atomic_file(md_path) as tmp, open(tmp, "w") as fh:
            fh.write(markdown(frame, title, digits))
    if html_path:
        with atomic_file(html_path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            fh.write(html_table(frame, title, digits))


def read_frontier(path):
    """A frontier CSV with its floats exactly as written."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: frontier table not found; run `t2scaling frontier` (or the frontier rule)")
    table = pd.read_csv(path, **EXACT_FLOATS)
    missing = [c for c in ("task", "approach", "problem", "c_train", "c_inf", "N_star") if c not in table]
    if missing:
        raise ValueError(f"{path}: not a frontier table (missing columns {missing}); write it with frontier.write_csv")
    return table


def _at_budget(table, path, column, value, what):
    """Rows of `table` whose `column` equals `value` within BUDGET_RTOL; error listing the values it has."""
    hit = table[np.isclose(table[column].to_numpy(float), value, rtol=BUDGET_RTOL, atol=0.0)]
    if hit.empty:
        have = ", ".join(f"{v:.6g}" for v in sorted(table[column].dropna().unique()))
        raise ValueError(f"{path}: no {what} row at {column} = {value:.6g}; it has {column} = [{have}]. "
                         f"Re-run the frontier with {column} including {value:.6g}")
    return hit



# ------------------------------------------------------------------------------------------- paper Table 1

def _frontier_rows(frontier_csvs, task, c_train, c_inf):
    """{approach: the P1 row at (task, c_train, c_inf)} over the frontier CSVs, exact budgets required."""
    rows = {}
    for path in frontier_csvs:
        table = read_frontier(path)
        table = table[table["problem"] == "P1"]
        if task not in set(table["task"]):
            raise ValueError(f"{path}: no P1 rows for task {task!r} (tasks: {sorted(set(table['task']))}); "
                             "pass that task's frontier tables")
        table = _at_budget(table[table["task"] == task], path, "c_inf", c_inf, "P1")
        table = _at_budget(table, path, "c_train", c_train, "P1")
        for approach, row in table.groupby("approach"):
            if approach in rows:
                raise ValueError(f"{path}: a second frontier row for ({task}, {approach}) at c_train = "
                                 f"{c_train:.6g}, c_inf = {c_inf:.6g}; pass each approach's table once")
            rows[approach] = row.iloc[0]
    return rows


def table1(task, observations, frontier_csvs, checkpoints, c_train, c_inf):
    """Paper Table 1 for one task: the Chinchilla-optimal and the best overtrained checkpoint at budget c_train
    (FLOPs), compared by measured inference-corrected pass@k at k = c_inf/(2N) (c_inf FLOPs per served token).

    checkpoints: the names trained at (about) c_train; the Chinchilla-optimal one is the candidate closest in
    log N to the frontier's chinchilla_N, the best overtrained one the candidate with the highest measured pass@k
    among those with more tokens/param. Frontier columns are copied verbatim from the P1 rows at exactly
    (c_train, c_inf). Returns one row per role; `gain` = the row's measured pass@k minus the Chinchilla-optimal's.
    """
    if not len(checkpoints):
        raise ValueError(f"table1 {task}: no candidate checkpoints at c_train = {c_train:.6g}; list the cells of "
                         "the largest isoFLOP level")
    rows = _frontier_rows(frontier_csvs, task, c_train, c_inf)
    ref = next((a for a in CHINCHILLA_PREFERENCE if a in rows), None) or sorted(rows)[0]
    frontier_cols = {"chinchilla_from": ref, "chinchilla_N": rows[ref]["chinchilla_N"],
                     "chinchilla_tokens_per_param": rows[ref]["chinchilla_tokens_per_param"]}
    for approach in sorted(a for a in rows if a != "chinchilla"):
        for column in FRONTIER_COPIED:
            frontier_cols[f"{approach}_{column}"] = rows[approach][column]

    obs = obs_mod.read_table(observations) if isinstance(observations, (str, os.PathLike)) else observations
    sizes = obs_mod.checkpoints(obs)
    absent = [str(n) for n in checkpoints if str(n) not in sizes.index]
    if absent:
        raise ValueError(f"{obs.path}: candidate checkpoints {absent} are not in the observations of task {task!r}; "
                         "evaluate them or drop them from the candidates")
    N = sizes.loc[[str(n) for n in checkpoints], "N"].to_numpy(float)
    measured = at_k(obs, checkpoints, flops.samples_at(c_inf, N), missing="drop")
    cand = sizes.loc[[str(n) for n in checkpoints], ["N", "D"]].copy()
    cand["k"] = flops.samples_at(c_inf, cand["N"])
    cand = cand.join(measured[["k_used", "estimator", "value"]])
    cand["tokens_per_param"] = cand["D"] / cand["N"]

    chin = cand.index[np.argmin(np.abs(np.log(cand["N"].to_numpy()) - np.log(frontier_cols["chinchilla_N"])))]
    pool = cand[(cand["tokens_per_param"] > cand.loc[chin, "tokens_per_param"]) & cand["value"].notna()]
    best = pool["value"].idxmax() if len(pool) else None
    intervals = _question_intervals(measured, chin, [chin, best])

    def row(role, name, note=""):
        out = {"task": task, "role": role, "checkpoint": name or ""}
        c = cand.loc[name] if name is not None else pd.Series(np.nan, index=cand.columns)
        out.update(N=c["N"], D=c["D"], tokens_per_param=c["tokens_per_param"], c_train=float(c_train),
                   c_train_actual=flops.c_train(c["N"], c["D"]), c_inf=float(c_inf), k=c["k"], k_used=c["k_used"],
                   estimator=c["estimator"] if name is not None else "", measured_pass_at_k=c["value"])
        if name is not None and name in measured.attrs["dropped"]:
            note = f"not measured: checkpoint {measured.attrs['dropped'][name]}"
        ci = intervals.get(name, {})
        out.update(ci_low=ci.get("ci_low", np.nan), ci_high=ci.get("ci_high", np.nan),
                   gain=c["value"] - cand.loc[chin, "value"], gain_ci_low=ci.get("gain_ci_low", np.nan),
                   gain_ci_high=ci.get("gain_ci_high", np.nan))
        return {**out, **frontier_cols, "note": note}

    return pd.DataFrame([
        row("chinchilla_optimal", chin, f"closest in log N to chinchilla_N of the {ref} frontier"),
        row("best_overtrained", best, "" if best is not None else
            "no candidate with more tokens/param than the Chinchilla-optimal checkpoint (and a measured pass@k)"),
    ])


def _question_intervals(measured, reference, names):
    """{name: {ci_low, ci_high, gain_ci_low, gain_ci_high}}: 95 % paired question-bootstrap intervals of the
    measured pass@k of `names` and of their gain over `reference` (empty where a table has no per-question data).
    """
    per_question = measured.attrs.get("per_question")
    names = [n for n in dict.fromkeys(names) if n is not None and n in measured.index]
    if per_question is None or reference not in names:
        return {}
    rows = [measured.index.get_loc(n) for n in names]
    ci = question_bootstrap([per_question[rows]], reference=names.index(reference))
    return {n: {key: float(ci[key][i]) for key in ("ci_low", "ci_high", "gain_ci_low", "gain_ci_high")}
            for i, n in enumerate(names)}


# ------------------------------------------------------------------------------------- task grading

def pass_at_1_by_level(task, observations, levels):
    """Is the task graded? Measured pass@1 of its checkpoints at each isoFLOP level (levels: {C_train FLOPs:
    [checkpoint names]}): the best and the mean over the level's cells, and for the best cell of every level
    its gain over the best cell of the lowest level with a 95 % paired question-bootstrap interval. A task
    whose pass@1 does not rise with C_train (the interval of the top level's gain includes 0) carries no
    signal for the laws. One row per level, lowest first.
    """
    obs = obs_mod.read_table(observations) if isinstance(observations, (str, os.PathLike)) else observations
    rows, best = [], []
    for c_train in sorted(levels):
        measured = at_k(obs, levels[c_train], 1.0)
        top = measured["value"].idxmax()
        per_question = measured.attrs.get("per_question")  # absent for aggregated tables: no interval
        best.append(per_question[measured.index.get_loc(top)] if per_question is not None else np.zeros(0))
        rows.append({"task": task, "c_train": float(c_train), "n_cells": len(measured), "best_checkpoint": top,
                     "best_pass_at_1": measured.loc[top, "value"], "mean_pass_at_1": measured["value"].mean()})
    table = pd.DataFrame(rows)
    for column in ("gain_over_lowest", "gain_ci_low", "gain_ci_high"):
        table[column] = np.nan
    if len(best) > 1 and best[0].size:
        ci = question_bootstrap([np.stack(best)], reference=0)
        table["gain_over_lowest"], table["gain_ci_low"], table["gain_ci_high"] = (
            ci["gain"], ci["gain_ci_low"], ci["gain_ci_high"])
    return table


def task_grades(observations_by_task, levels, losses=None):
    """`pass_at_1_by_level` of every task, one frame; `attrs["problems"]` lists what keeps the grid from
    identifying the laws: tasks whose pass@1 does not rise with C_train (the top level's gain interval includes
    0), and, given per-checkpoint validation losses (a frame or CSV with checkpoint, N, loss), a grid that is too
    thin (`grid.design_problems`) or whose top two levels do not bracket their measured k = 1 optimum."""
    from t2scaling.grid import bracketing_problems, design_problems

    table = pd.concat([pass_at_1_by_level(task, obs, levels) for task, obs in observations_by_task.items()],
                      ignore_index=True)
    problems = []
    for task, rows in table.groupby("task", sort=False):
        top = rows.iloc[-1]
        if not top["gain_ci_low"] > 0:
            problems.append(f"task {task!r}: pass@1 does not rise with C_train ({top['best_pass_at_1']:.3g} at "
                            f"{top['c_train']:.3g} FLOPs vs {rows.iloc[0]['best_pass_at_1']:.3g} at "
                            f"{rows.iloc[0]['c_train']:.3g}, gain 95 % CI [{top['gain_ci_low']:.3g}, "
                            f"{top['gain_ci_high']:.3g}]): its fits carry little signal; add easier items")
    if losses is not None:
        losses = pd.read_csv(losses) if isinstance(losses, (str, os.PathLike)) else losses
        loss = losses.set_index("checkpoint")
        problems += design_problems(loss["N"].tolist(), list(levels))
        problems += bracketing_problems({c: [(loss.loc[n, "N"], loss.loc[n, "loss"]) for n in names if n in loss.index]
                                         for c, names in levels.items()})
    table.attrs["problems"] = problems
    return table


# ---------------------------------------------------------------------------------------- fitted parameters

def parameter_table(fits):
    """Long table of fitted parameters and derived quantities (e.g. n_star_exponent) with bootstrap intervals.

    Columns task, law, parameter, value, lo, hi, r2, n_points, converged. lo/hi are the fit's bootstrap
    percentiles; they are missing (blank in CSV) only for a fit without bootstrap, never for one with it.
    """
    rows = []
    for fit in fits:
        values = {**fit.params, **fit.derived}
        if fit.bootstrap_params or fit.intervals:
            lacking = [p for p in values if p not in fit.intervals]
            if lacking:
                raise ValueError(f"fit {fit.task or '?'}/{fit.law}: bootstrap replicates but no intervals for "
                                 f"{lacking}; refit with bootstrap so every parameter has an interval")
        for name, value in values.items():
            lo, hi = fit.intervals.get(name, (np.nan, np.nan))
            rows.append(dict(task=fit.task, law=fit.law, parameter=name, value=float(value), lo=float(lo),
                             hi=float(hi), r2=float(fit.r2), n_points=int(fit.n_points),
                             converged=bool(fit.converged)))
    if not rows:
        raise ValueError("parameter_table: no fits given; pass at least one fit")
    return pd.DataFrame(rows)


def parameter_markdown(frame, title=None, digits=4):
    """Wide Markdown view of parameter_table: one row per (task, law), cells 'value [lo, hi]'."""
    def cell(r):
        value = _num(r["value"], digits)
        if np.isnan(r["lo"]):
            return value
        return f"{value} [{_num(r['lo'], digits)}, {_num(r['hi'], digits)}]"

    frame = frame.assign(cell=frame.apply(cell, axis=1))
    keys = ["task", "law"]
    wide = frame.pivot_table(index=keys, columns="parameter", values="cell", aggfunc="first", sort=False)
    # Parameters in fit order; blank where a law lacks one.
    wide = wide[list(dict.fromkeys(frame["parameter"]))].fillna("")
    meta = frame.groupby(keys, sort=False)[["r2", "n_points", "converged"]].first()
    meta["r2"] = meta["r2"].map(lambda v: format_number(v, digits))
    meta["n_points"] = meta["n_points"].astype(str)
    meta["converged"] = meta["converged"].map(lambda v: "yes" if v else "no")
    return markdown(wide.join(meta).reset_index().astype(str), title, right=[*wide.columns, "r2", "n_points"])


# ------------------------------------------------------------------------------------------- paper Table 2

COMPARISON = ["N_star", "D_star", "k_star", "tokens_per_param", "predicted_metric", "chinchilla_tokens_per_param"]


def frontier_comparison(frontiers, c_train, c_inf, base="base"):
    """Paper Table 2: optimal allocation per post-training variant at budgets c_train (FLOPs) and c_inf.

    frontiers: {variant: [frontier CSV, ...]}. For every variant, task, approach and requested budget, the P1 row
    at exactly c_inf and at the c_train nearest in log (within 1 %; `c_train` is the one used,
    `c_train_requested` the one asked). ratio_to_base = tokens_per_param / the `base` variant's (the first
    variant if none is called `base`) at the same (task, approach, requested budget).
    """
    if not frontiers:
        raise ValueError("frontier_comparison: no variants given; pass {variant: [frontier CSVs]}")
    base = base if base in frontiers else next(iter(frontiers))
    out = []
    for variant, paths in frontiers.items():
        if not len(paths):
            raise ValueError(f"frontier_comparison: variant {variant!r} has no frontier tables")
        for path in paths:
            table = read_frontier(path)
            table = table[table["problem"] == "P1"]
            for ci in np.atleast_1d(np.asarray(c_inf, dtype=float)):
                at_inf = _at_budget(table, path, "c_inf", ci, "P1")
                for (task, approach), rows in at_inf.groupby(["task", "approach"], sort=False):
                    have = rows["c_train"].to_numpy(float)
                    for ct in np.atleast_1d(np.asarray(c_train, dtype=float)):
                        i = int(np.argmin(np.abs(np.log(have / ct))))
                        if abs(have[i] / ct - 1.0) > 0.01:
                            listed = ", ".join(f"{v:.4g}" for v in np.sort(have))
                            raise ValueError(f"{path}: ({task}, {approach}) has no P1 row within 1 % of c_train = "
                                             f"{ct:.4g} at c_inf = {ci:.4g}; it has c_train = [{listed}]. Re-run the "
                                             "frontier over a range that includes it")
                        row = rows.iloc[i]
                        out.append({"variant": variant, "task": task, "approach": approach, "c_train_requested": ct,
                                    "c_train": row["c_train"], "c_inf": ci, "feasible": row["feasible"],
                                    **{c: row[c] for c in COMPARISON}})
    table = pd.DataFrame(out)
    keys = ["task", "approach", "c_train_requested", "c_inf"]
    ref = table[table["variant"] == base].set_index(keys)["tokens_per_param"]
    if ref.index.duplicated().any():
        raise ValueError(f"frontier_comparison: variant {base!r} has two frontier tables for the same task and "
                         "approach; pass each once")
    joined = table.join(ref.rename("base_tokens_per_param"), on=keys)
    lacking = joined[joined["base_tokens_per_param"].isna() & joined["tokens_per_param"].notna()]
    if len(lacking):
        r = lacking.iloc[0]
        raise ValueError(f"frontier_comparison: variant {r['variant']!r} has ({r['task']}, {r['approach']}) at "
                         f"c_train = {r['c_train_requested']:.4g} but the {base!r} variant does not; add the "
                         f"{base} frontier table of task {r['task']!r}")
    table["ratio_to_base"] = joined["tokens_per_param"] / joined["base_tokens_per_param"]
    return table


def variant_frontiers(frontiers, c_inf):
    """The feasible P1 rows at inference budget c_inf (FLOPs per served token) of every variant's frontier tables,
    with a `variant` column: what the variants' frontier figure draws. frontiers: {variant: [frontier CSV, ...]}."""
    if not frontiers:
        raise ValueError("variant_frontiers: no variants given; pass {variant: [frontier CSVs]}")
    parts = []
    for variant, paths in frontiers.items():
        for path in paths:
            table = read_frontier(path)
            table = table[table["problem"] == "P1"]
            hit = np.isclose(table["c_inf"].to_numpy(float), c_inf, rtol=BUDGET_RTOL, atol=0.0)
            if not hit.any():
                have = ", ".join(f"{v:.4g}" for v in sorted(table["c_inf"].unique()))
                raise ValueError(f"{path}: no P1 rows at c_inf = {c_inf:.4g}; it has c_inf = [{have}]. Re-run the "
                                 "frontier with that inference budget")
            parts.append(table[hit & table["feasible"].astype(bool)].assign(variant=variant))
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------------------------- the workflow's tables

def _same_tasks(first, second, what):
    """The tasks of two {task: ...} inputs, which must be the same (in the first's order)."""
    if set(first) != set(second):
        raise ValueError(f"{what}: tasks {sorted(first)} and {sorted(second)} differ; pass both for every task")
    return list(first)


def write_table1(observations, frontiers, checkpoints, c_train, c_inf, csv_path, md_path, html_path=None):
    """Rule table1: `table1` of every task into csv_path and md_path; returns the table (tasks in the order given).

    observations: {task: observation table}; frontiers: {task: [that task's frontier CSVs, one per law]}, paired
    by task name; checkpoints: the cells of the grid's largest isoFLOP level, c_train (FLOPs) that level
    (grid.isoflop_levels), c_inf FLOPs per served token."""
    tasks = _same_tasks(observations, frontiers, "table1 observations and frontiers")
    table = pd.concat([table1(task, observations[task], frontiers[task], checkpoints, c_train, c_inf)
                       for task in tasks], ignore_index=True)
    write_table(table, csv_path, md_path, html_path=html_path,
                title=f"Best overtrained vs Chinchilla-optimal checkpoint at C_train = {format_flops(c_train)}, "
                      f"C_inf = {format_flops(c_inf)} per served token")
    logger.info("Table 1 for %d tasks at C_train %g", len(tasks), c_train)
    return table


def write_task_grades(observations, levels, losses, csv_path, md_path, html_path=None):
    """Rule task_grades: `task_grades` into csv_path and md_path, each of its problems logged as a warning;
    returns the table. observations: {task: observation table}; levels: {C_train: [cell names]} or its items
    (grid.isoflop_levels); losses: the pretraining validation-loss CSV (or None)."""
    table = task_grades(dict(observations), dict(levels), losses)
    write_table(table, csv_path, md_path, html_path=html_path,
                title="Measured pass@1 per isoFLOP level: best cell, and its gain over the lowest level's best "
                      "(95 % CI)")
    for problem in table.attrs["problems"]:
        logger.warning(problem)
    return table


def write_parameter_table(fit_paths, csv_path, md_path, html_path=None):
    """Rule parameter_table: `parameter_table` of the fit JSONs into csv_path (and its HTML view into html_path),
    its wide view into md_path."""
    from t2scaling.fitresult import load_fit

    table = parameter_table([load_fit(path) for path in fit_paths])
    write_table(table, csv_path, html_path=html_path, digits=4, title="Fitted parameters")
    with atomic_file(md_path) as tmp, open(tmp, "w") as fh:
        fh.write(parameter_markdown(table, title="Fitted parameters"))
    logger.info("parameter table: %d rows", len(table))
    return table


def write_comparison(frontiers, c_train, c_inf, csv_path, md_path, html_path=None):
    """`frontier_comparison` of {variant: [frontier CSVs]} (base first) into csv_path and md_path (and HTML);
    returns the table. The rule's job, with the figure, is `plots.write_frontier_comparison`."""
    table = frontier_comparison(frontiers, c_train, c_inf)
    write_table(table, csv_path, md_path, html_path=html_path,
                title="Optimal tokens per parameter, base vs post-trained, "
                      f"C_inf = {format_flops(c_inf)} per served token")
    logger.info("post-training comparison of %s: %d rows", ", ".join(frontiers), len(table))
    return table
