"""Closing the loop (DESIGN.md §2.7, paper Table 1): train the predicted-optimal cells at one budget, then compare.

    t2scaling validate plan --fits results/tasks/*/fits/*.json --config config.yaml --c-train 3e12 --c-inf 2e9 \\
        --out plan.json
    t2scaling validate table --plan plan.json --eval knowledge w64-l2-d7811072 eval.parquet ... \\
        --fits results/tasks/*/fits/*.json --out table.csv --markdown table.md

`plan_cells` solves the macro-averaged P1 frontier (frontier.frontier, macro=True) at exactly (C_train, C_inf)
for each T² approach, takes the Chinchilla optimum (k = 1) beside them, and rounds every optimum N* to the
buildable shape nearest in log N with D = C_train/(6N) in whole optimizer steps: a grid.Cell name
w{W}-l{L}-d{D} the workflow can train. The Chinchilla optimum is the k = 1 argmin of the macro-mean Chinchilla
fits when every task has one; otherwise the T² rows' own Chinchilla baseline (Approach 2's stage 1 is the
Chinchilla fit of the task NLL, Approach 1's k = 1 form is Chinchilla with E' = E + G), Approach 2 first.
The plan's `chinchilla` role says which in `source`.

`validation_table` tabulates, per task and role, the measured inference-corrected pass@k of each trained cell
at its own real-valued k = C_inf/(2N) beside each law's prediction, and the measured gain over the Chinchilla
cell; "macro" rows average the tasks.
"""

import json
import logging
import math

import numpy as np
import pandas as pd

from t2scaling import flops, observations
from t2scaling.atomic import atomic_file
from t2scaling.bootstrap import question_bootstrap
from t2scaling.fitresult import load_fit
from t2scaling.flops import n_heads, whole_steps
from t2scaling.frontier import frontier
from t2scaling.grid import Cell, counts_for, grid_cells, tokens_per_step
from t2scaling.laws import CHINCHILLA_STAND_INS, T2_LAWS
from t2scaling.measure import cell_metrics, target_of
from t2scaling.passk import pass_at_k_exact
from t2scaling.units import format_count, format_flops, format_params

logger = logging.getLogger(__name__)

LAWS = T2_LAWS + ("chinchilla",)  # also the order of the plan's roles
OUT_OF_RANGE = 2.0  # warn when N* lies more than this factor outside the buildable range
TOKEN_ROUNDING = 1.25  # warn when whole optimizer steps move D (and so C_train) by more than this factor
CELL_COLUMNS = ("task", "role", "law", "cell", "width", "depth", "N", "D", "tokens_per_param", "c_train", "c_inf",
                "k", "k_int", "feasible")
# Each law is compared with measured_<what it is fitted to> (measure.target_of; DESIGN.md §2.3-2.5).
MEASURED = ("measured_nll", "measured_pass_at_k", "measured_pass_at_k_int", "measured_task_loss")


# ------------------------------------------------------------------------------------------------ the shapes

def candidate_shapes(config):
    """The (width, depth) shapes the model family builds for validation, as dicts {width, depth, N}, by N.

    config["validation"]["shapes"] when non-empty. Otherwise the grid's shapes (and extra cells' shapes) plus a
    derived family: widths that are multiples of model.head_dim from head_dim (at least 8) up to twice the
    largest grid width, depths 1 to twice the largest grid depth, keeping width/depth within the grid's range
    of aspect ratios widened by 2x each way (so the family looks like the models the laws were fitted on).
    N is the total parameter count of grid.counts_for, the one counter.
    """
    head_dim = config["model"]["head_dim"]
    given = (config.get("validation") or {}).get("shapes") or []
    if given:
        pairs = {(int(s["width"]), int(s["depth"])): f"config['validation']['shapes'][{i}]"
                 for i, s in enumerate(given)}
    else:
        grid = config["grid"]
        base = [(int(s["width"]), int(s["depth"])) for s in grid["shapes"] + grid["extra_cells"]]
        if not base:
            raise ValueError("config['grid']: no shapes or extra_cells to derive validation shapes from; give "
                             "config['validation']['shapes'] as a list of {width, depth}")
        ratios = [w / d for w, d in base]
        lo, hi = min(ratios) / 2.0, max(ratios) * 2.0
        widths = [w for w in range(head_dim, 2 * max(w for w, _ in base) + 1, head_dim) if w >= 8]
        depths = range(1, 2 * max(d for _, d in base) + 1)
        family = [(w, d) for w in widths for d in depths if lo <= w / d <= hi]
        pairs = {pair: "config['grid']" for pair in base + family}
    shapes = []
    for (width, depth), key in pairs.items():
        try:
            n_heads(width, head_dim)
        except ValueError as err:
            raise ValueError(f"{key}: {err} (model.head_dim = {head_dim})") from None
        if depth < 1:
            raise ValueError(f"{key}: depth {depth} must be >= 1")
        shapes.append({"width": width, "depth": depth, "N": int(counts_for(config, width, depth)["N"])})
    return sorted(shapes, key=lambda s: (s["N"], s["width"], s["depth"]))


# -------------------------------------------------------------------------------------------------- the fits

def _check_fits(fits_by_task):
    """(tasks, laws) of {task: {law: FitResult}}; every task needs the same laws, so macro means compare."""
    if not fits_by_task:
        raise ValueError("no fits given; pass the fit JSONs of every task (chinchilla, approach1, approach2)")
    laws = None
    for task, fits in fits_by_task.items():
        for law, fit in fits.items():
            if law not in LAWS:
                raise ValueError(f"fits for task {task!r}: law {law!r} is not one of {', '.join(LAWS)}; drop it")
            if fit.law != law or fit.task not in ("", task):
                raise ValueError(f"fits for task {task!r} under law {law!r} hold a {fit.law} fit of task "
                                 f"{fit.task!r}; key each fit by its own task and law")
        if laws is None:
            laws, first = set(fits), task
        elif set(fits) != laws:
            raise ValueError(f"task {task!r} has fits {sorted(fits)} but task {first!r} has {sorted(laws)}; "
                             "give every task the same laws (the plan averages them over tasks)")
    return list(fits_by_task), [law for law in LAWS if law in laws]


def load_fits_by_task(paths, tasks=None):
    """{task: {law: FitResult}} from fit JSONs; errors name the file (wrong law, no or unknown task, duplicate)."""
    out, where = {}, {}
    for path in paths:
        fit = load_fit(path)
        if fit.law not in LAWS:
            raise ValueError(f"{path}: a {fit.law!r} fit; validation uses {', '.join(LAWS)} fits only: drop it")
        if not fit.task:
            raise ValueError(f"{path}: the fit names no task; refit with `t2scaling fit ... --task TASK`")
        if tasks is not None and fit.task not in tasks:
            raise ValueError(f"{path}: task {fit.task!r} is not among the config's tasks {sorted(tasks)}; "
                             "pass the fits of this experiment")
        if (fit.task, fit.law) in where:
            raise ValueError(f"{path}: a second {fit.law} fit of task {fit.task!r} (the first is "
                             f"{where[fit.task, fit.law]}); pass one fit per task and law")
        where[fit.task, fit.law] = path
        out.setdefault(fit.task, {})[fit.law] = fit
    return out


# ------------------------------------------------------------------------------------------------- the plan

def _plain(value):
    """JSON-ready scalar: numpy types to Python, NaN/inf to None (JSON has no NaN)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def plan_cells(fits_by_task, config, c_train, c_inf):
    """The cells to train at C_train (FLOPs) and C_inf (FLOPs per served token): one role per T² law present,
    plus "chinchilla". Returns a JSON-serialisable dict (layout: see write_plan)."""
    tasks, laws = _check_fits(fits_by_task)
    t2 = [law for law in T2_LAWS if law in laws]
    if not t2:
        raise ValueError(f"fits have laws {laws} only; the plan needs approach1 and/or approach2 fits")
    c_train, c_inf = float(c_train), float(c_inf)
    rows = {law: frontier([fits_by_task[t][law] for t in tasks], c_train=[c_train], c_inf=[c_inf], macro=True,
                          bands=False).iloc[0] for law in laws}
    for law in t2:
        if not rows[law]["feasible"]:
            raise ValueError(
                f"no feasible {law} plan at C_train = {format_flops(c_train)}, C_inf = {format_flops(c_inf)} per "
                f"served token: one sample per token (k >= 1) needs N <= C_inf/2 = {format_params(c_inf / 2)} and "
                f"one training token needs N <= C_train/6 = {format_params(c_train / 6)}, below the smallest "
                "model the planner searches; raise the inference budget (validation.c_inf, --c-inf) or the "
                "training budget (validation.c_train, --c-train)")
    targets = []
    for law in t2:
        row = rows[law]
        targets.append(dict(role=law, law=law, source=f"macro P1 frontier of {law} over {len(tasks)} tasks",
                            metric_name=row["metric_name"], N_star=row["N_star"], D_star=row["D_star"],
                            k_star=row["k_star"], predicted_metric=row["predicted_metric"]))
    base = "chinchilla" if "chinchilla" in laws else next(law for law in CHINCHILLA_STAND_INS if law in laws)
    row = rows[base]
    source = ("k = 1 optimum of the macro-mean chinchilla fits" if base == "chinchilla"
              else f"chinchilla baseline (k = 1 optimum) of the {base} fits; no chinchilla fits given")
    targets.append(dict(role="chinchilla", law=base, source=source, metric_name=row["metric_name"],
                        N_star=row["chinchilla_N"], D_star=row["chinchilla_D"],
                        k_star=flops.samples_at(c_inf, row["chinchilla_N"]),  # served with its inference-corrected k
                        predicted_metric=row["chinchilla_metric"]))  # the law's metric at k = 1

    shapes = candidate_shapes(config)
    shape_n = np.array([s["N"] for s in shapes], dtype=float)
    n_lo, n_hi = shape_n.min(), shape_n.max()
    step = tokens_per_step(config)
    grid_names = {cell.name for cell in grid_cells(config)}
    roles = []
    for t in targets:
        shape = shapes[int(np.argmin(np.abs(np.log(shape_n) - np.log(t["N_star"]))))]
        exact = flops.tokens_at(c_train, shape["N"])
        cell = Cell(shape["width"], shape["depth"], whole_steps(exact, step), shape["N"])
        k = flops.samples_at(c_inf, cell.N)
        warnings = []
        if not n_lo / OUT_OF_RANGE <= t["N_star"] <= n_hi * OUT_OF_RANGE:
            warnings.append(f"{t['role']}: N* = {format_params(t['N_star'])} lies more than {OUT_OF_RANGE:g}x "
                            f"outside the buildable range {format_count(n_lo)}-{format_count(n_hi)} params; "
                            f"rounded to {cell.shape}. Add shapes (validation.shapes) to test this optimum")
        if abs(math.log(cell.tokens / exact)) > math.log(TOKEN_ROUNDING):
            warnings.append(f"{t['role']}: whole optimizer steps of {step} tokens move D from {exact:.4g} to "
                            f"{cell.tokens} tokens (C_train x{cell.c_train / c_train:.3g}); use a smaller batch "
                            "or a larger C_train")
        if k < 1.0:
            warnings.append(f"{t['role']}: cell {cell.name} (N = {format_params(cell.N)}) cannot serve one sample "
                            f"per token within C_inf = {format_flops(c_inf)} (k = {k:.3g} < 1); its "
                            "inference-corrected pass@k is undefined. Raise C_inf")
        for text in warnings:
            logger.warning(text)
        t.update(tokens_per_param=t["D_star"] / t["N_star"], width=cell.width, depth=cell.depth, N=cell.N,
                 tokens=cell.tokens, cell=cell.name, cell_tokens_per_param=cell.tokens_per_param, cell_k=k,
                 cell_c_train=cell.c_train, in_grid=cell.name in grid_names, warnings=warnings)
        roles.append({key: _plain(value) for key, value in t.items()})
    return {"c_train": c_train, "c_inf": c_inf, "tasks": tasks, "laws": laws, "tokens_per_step": step,
            "candidates": {"count": len(shapes), "N_min": int(n_lo), "N_max": int(n_hi),
                           "source": "validation.shapes" if (config.get("validation") or {}).get("shapes")
                           else "grid shapes + derived family"},
            "roles": roles}


def write_plan(plan, path):
    """Write the plan as JSON, atomically. Layout: c_train, c_inf, tasks, laws, tokens_per_step,
    candidates {count, N_min, N_max, source}, roles [{role, law, source, metric_name, N_star, D_star, k_star,
    predicted_metric, tokens_per_param, width, depth, N, tokens, cell, cell_tokens_per_param, cell_k,
    cell_c_train, in_grid, warnings}] (undefined numbers as null)."""
    with atomic_file(path) as tmp, open(tmp, "w") as fh:
        fh.write(json.dumps(plan, indent=2, allow_nan=False) + "\n")


def read_plan(path):
    try:
        with open(path) as fh:
            plan = json.load(fh)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid plan JSON ({err}); re-run `t2scaling validate plan`") from err
    missing = [key for key in ("c_train", "c_inf", "roles") if key not in plan]
    if missing or not plan.get("roles"):
        raise ValueError(f"{path}: not a validation plan (missing {missing or ['roles']}); write it with "
                         "`t2scaling validate plan`")
    return plan


def plan_cell_names(plan):
    """The plan's distinct cell names, in role order (several roles may share a cell)."""
    return list(dict.fromkeys(role["cell"] for role in plan["roles"]))


def plan_sizes(plan):
    """{cell: {"N": params, "D": tokens}} of the plan's cells, as planned."""
    return {role["cell"]: {"N": role["N"], "D": role["tokens"]} for role in plan["roles"]}


# ------------------------------------------------------------------------------------------------ the table

def _task_observations(task, cells, evals, sizes):
    """{cell: validated per-question Observations (checkpoint = cell name)} of one task's evaluations."""
    out = {}
    for cell in cells:
        if (task, cell) not in evals:
            raise ValueError(f"no evaluation of cell {cell!r} on task {task!r}; evaluate it (rule evaluate: "
                             f"results/eval/{task}/{cell}.parquet) and pass it (--eval {task} {cell} PATH)")
        if cell not in sizes:
            raise ValueError(f"cell {cell!r} has no N, D in the sizes given; add sizes[{cell!r}] = {{N, D}}")
        path = str(evals[task, cell])
        out[cell] = observations.from_eval(path, cell, sizes[cell])
        if "nll" not in out[cell].given_columns:
            raise ValueError(f"{path}: missing column 'nll' (summed NLL of the gold answer, nats); measured "
                             "pass@k at a real-valued k needs likelihoods: evaluate with mode likelihood")
    # One question set across the cells, so their means compare (checked on the columns all evals share).
    paths = ", ".join(obs.path for obs in out.values())
    both = pd.concat([obs.frame[["checkpoint", "N", "D", "question", "nll"]] for obs in out.values()],
                     ignore_index=True)
    observations.validate(observations.Observations(f"evaluations of task {task!r} ({paths})", "per_question",
                                                     both, ""))
    return out


def _derived(frame, laws):
    """Relative errors of each law against its measured counterpart, and gains over the chinchilla role
    (positive = better than the Chinchilla cell), within each task."""
    for law in laws:
        measured = frame[f"measured_{target_of(law)}"]  # what the law is fitted to, as measured at the cell
        frame[f"rel_error_{law}"] = (frame[f"predicted_{law}"] - measured).abs() / measured
    chin = frame[frame["role"] == "chinchilla"].set_index("task")

    def at_chin(column):  # the same task's Chinchilla-cell value, row by row
        return frame["task"].map(chin[column])

    frame["gain_pass_at_k"] = frame["measured_pass_at_k"] - at_chin("measured_pass_at_k")
    frame["gain_task_loss"] = at_chin("measured_task_loss") - frame["measured_task_loss"]
    if "approach2" in laws:
        frame["predicted_gain_approach2"] = frame["predicted_approach2"] - at_chin("predicted_approach2")
    if "approach1" in laws:
        frame["predicted_gain_approach1"] = at_chin("predicted_approach1") - frame["predicted_approach1"]
    return frame


def validation_table(plan, evals, fits_by_task, sizes=None):
    """Measured vs predicted at the plan's cells: one row per (task, role), then "macro" rows (task means).

    evals: {(task, cell): per-question eval table path (question or id, nll[, n_samples, n_correct])};
    sizes: {cell: {N, D}} (default: the plan's N and planned tokens). k = C_inf/(2N) per cell, real-valued.
    Columns: task, role, law, cell, width, depth, N, D, tokens_per_param, c_train (6ND), c_inf, k, k_int,
    feasible (k >= 1), n_questions, measured_nll (mean summed NLL, nats), measured_pass_at_k (exact, at k),
    measured_pass_at_k_int (at floor k), measured_task_loss (mean_i -log pass@k_i), [measured_pass_at_k_int_samples
    (unbiased, where evals carry samples)], predicted_<law> (chinchilla: NLL at k = 1; approach1: task loss;
    approach2: pass@k), rel_error_<law> (|predicted - measured| / measured), gain_pass_at_k, gain_task_loss
    (measured, over the Chinchilla cell, positive = better), predicted_gain_<T² law>. Where k < 1 (a cell that
    cannot serve one sample within C_inf) the k-dependent columns are NaN and feasible is False. Macro rows
    average measured and predicted columns over tasks; their errors and gains are recomputed from those means.
    """
    tasks, laws = _check_fits(fits_by_task)
    if not any(role["role"] == "chinchilla" for role in plan["roles"]):
        raise ValueError("the plan has no chinchilla role to compare with; re-run `t2scaling validate plan`")
    sizes = sizes or plan_sizes(plan)
    cells = plan_cell_names(plan)
    c_inf = float(plan["c_inf"])
    rows, per_question = [], {}
    for task in tasks:
        measured = _task_observations(task, cells, evals, sizes)
        for role in plan["roles"]:
            cell = role["cell"]
            N, D = float(sizes[cell]["N"]), float(sizes[cell]["D"])
            k = flops.samples_at(c_inf, N)
            feasible = k >= 1.0
            k_int = float(math.floor(k * (1.0 + 1e-12))) if feasible else np.nan  # 2.9999999999999996 is 3
            row = dict(task=task, role=role["role"], law=role["law"], cell=cell, width=role["width"],
                       depth=role["depth"], N=N, D=D, tokens_per_param=D / N, c_train=flops.c_train(N, D), c_inf=c_inf,
                       k=k, k_int=k_int, feasible=feasible)
            row.update(cell_metrics(measured[cell], k, k_int))
            if feasible:  # pass@k_i by question id, so every role's values line up for the paired bootstrap
                frame = measured[cell].frame.sort_values("question")
                per_question[task, role["role"]] = pass_at_k_exact(np.exp(-frame["nll"].to_numpy(float)), k)
            for law in laws:
                fit = fits_by_task[task][law]
                usable = feasible or not fit.model.uses_k
                row[f"predicted_{law}"] = float(fit.predict(N, D, max(k, 1.0))) if usable else np.nan
            rows.append(row)
            if not feasible:
                logger.warning("%s %s: cell %s has k = C_inf/(2N) = %.3g < 1 at C_inf = %g; its pass@k and task "
                               "loss are undefined (NaN)", task, role["role"], cell, k, c_inf)
    samples = ["measured_pass_at_k_int_samples"] if any("measured_pass_at_k_int_samples" in r for r in rows) else []
    values = ["n_questions", *MEASURED, *samples, *(f"predicted_{law}" for law in laws)]
    table = pd.DataFrame(rows).reindex(columns=[*CELL_COLUMNS, *values])  # a column NaN in every row still appears
    macro = table.groupby("role", sort=False).agg(
        {**{c: "first" for c in table.columns if c not in values + ["task", "role"]}, **{c: "mean" for c in values}})
    macro = macro.reset_index().assign(task="macro")
    table = pd.concat([table, macro[table.columns]], ignore_index=True)
    return _intervals(_derived(table, laws), per_question, tasks, [role["role"] for role in plan["roles"]])


def _intervals(table, per_question, tasks, roles):
    """95 % question-bootstrap intervals of measured pass@k (ci_low, ci_high) and of its gain over the
    Chinchilla cell (gain_ci_low, gain_ci_high), paired over questions; the macro rows resample each task's
    questions. Roles that cannot serve one sample (k < 1) get none."""
    for column in ("ci_low", "ci_high", "gain_ci_low", "gain_ci_high"):
        table[column] = np.nan
    served = [r for r in roles if all((t, r) in per_question for t in tasks)]
    if "chinchilla" not in served:
        return table
    groups = [(task, [task]) for task in tasks] + [("macro", tasks)]
    for name, members in groups:
        ci = question_bootstrap([np.stack([per_question[t, r] for r in served]) for t in members],
                                reference=served.index("chinchilla"))
        for i, role in enumerate(served):
            at = (table["task"] == name) & (table["role"] == role)
            for column in ("ci_low", "ci_high", "gain_ci_low", "gain_ci_high"):
                table.loc[at, column] = ci[column][i]
    return table


def validation_markdown(table, title=None):
    """A readable Markdown view of validation_table: the cells, measured pass@k and loss, predictions, gains."""
    from t2scaling.tables import markdown

    keep = [c for c in ("task", "role", "cell", "N", "D", "tokens_per_param", "k", "measured_pass_at_k", "ci_low",
                        "ci_high", "predicted_approach2", "gain_pass_at_k", "gain_ci_low", "gain_ci_high",
                        "measured_task_loss", "predicted_approach1",
                        "gain_task_loss") if c in table]
    if title is None:
        title = validation_title(table)
    return markdown(table[keep], title)


def validation_title(table):
    """The heading of validation_table's views (None for an empty table)."""
    return f"Measured vs predicted at C_inf = {format_flops(table['c_inf'].iloc[0])} per served token" if len(table) \
        else None


# ------------------------------------------------------------------------------------------ the workflow's jobs

def write_validation_plan(fit_paths, settings, c_train, c_inf, out_path, tasks=None):
    """Checkpoint validation_plan: `plan_cells` from the fit JSONs of every task, written to out_path; returns it.

    settings: the config narrowed to what the plan reads (model, corpus.vocab_size, training.batch_size, grid,
    validation); c_train: validation.c_train, else the grid's largest isoFLOP level (grid.isoflop_levels), None
    when the grid has none; tasks: the experiment's tasks (a fit of another task is refused)."""
    if c_train is None:
        raise ValueError("config validation.c_train: not set and the grid has no isoFLOP levels to default to; "
                         "give validation.c_train in FLOPs")
    plan = plan_cells(load_fits_by_task(fit_paths, tasks=tasks), settings, c_train, c_inf)
    write_plan(plan, out_path)
    for role in plan["roles"]:
        logger.info("%s: N* %.3g -> cell %s (N %d, in grid: %s)", role["role"], role["N_star"], role["cell"],
                    role["N"], role["in_grid"])
    return plan


def validation_grid(grid, plan):
    """The checkpoint-grid rows ({name, N, D, origin}, as grid.checkpoint_origins gives them) with the plan's cells
    that are not in the grid added as origin "validation" (N as planned, D = the cell's tokens)."""
    rows = [dict(row) for row in grid]
    known = {row["name"] for row in rows}
    for role in plan["roles"]:
        if role["cell"] not in known:
            rows.append({"name": role["cell"], "N": role["N"], "D": role["tokens"], "origin": "validation"})
            known.add(role["cell"])
    return rows


def write_validation(plan_path, evals, fit_paths, grid, csv_path, md_path, grid_path, tasks=None,
                     html_path=None):
    """Rule validation_table: `validation_table` of the plan at plan_path into csv_path and md_path, and the
    checkpoint grid with the validation cells (`validation_grid`) plotted into grid_path; returns the table.

    evals: {(task, cell): per-question evaluation}, named by task and cell; fit_paths: the fit JSONs of every
    task (tasks: the experiment's); grid: the checkpoint-grid rows."""
    from t2scaling.plots import plot_checkpoint_grid
    from t2scaling.tables import write_table

    plan = read_plan(plan_path)
    table = validation_table(plan, dict(evals), load_fits_by_task(fit_paths, tasks=tasks))
    write_table(table, csv_path, html_path=html_path, title=validation_title(table))
    with atomic_file(md_path) as tmp, open(tmp, "w") as fh:
        fh.write(validation_markdown(table))
    logger.info("validation at C_train %g, C_inf %g:\n%s", plan["c_train"], plan["c_inf"],
                table.to_string(index=False))
    plot_checkpoint_grid(validation_grid(grid, plan), grid_path, title="Checkpoints, with the validation cells")
    return table
