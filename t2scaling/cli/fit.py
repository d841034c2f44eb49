"""`t2scaling fit`: the command line of `t2scaling.fit`."""

import argparse
import logging
import math
from pathlib import Path

from t2scaling.fit import VARIANTS, fit_table


def add_fitting_arguments(parser):
    """The options of every command that fits an observation table (fit, extrapolate)."""
    from t2scaling.config import schema_default

    parser.add_argument("--task", help="task name recorded in the output (default: from the table's path: "
                                       ".../TASK/observations.parquet gives TASK, any other file its name's stem)")
    parser.add_argument("--k-grid", type=k_grid_arg, metavar="K[,K...]",
                        help="comma-separated k values to fit at (default: 1,2,4,...,1024, capped at the "
                             "smallest n_samples of a sample-count table)")
    parser.add_argument("--restarts", type=int, default=schema_default("fits.restarts"),
                        help="random starts of the optimiser (approach1, approach2)")
    parser.add_argument("--source", default="auto", choices=["auto", "p", "samples", "aggregated"],
                        help="which columns pass@k comes from: per-question likelihoods (p or nll), sample counts "
                             "(n_samples, n_correct) or an aggregated pass_at_k; auto picks what the table has")
    parser.add_argument("--column", action="append", default=[], metavar="STD=YOURS",
                        help="map a column of yours to a standard name, e.g. N=params (repeatable)")
    parser.add_argument("--seed", type=int, default=schema_default("seed"),
                        help="random seed of the restarts and the bootstrap")
    parser.add_argument("--allow-unconverged", action="store_true",
                        help="keep a fit that did not converge (it is flagged converged = false) instead of failing")


def add_arguments(parser):
    from t2scaling.config import schema_default

    parser.add_argument("law", choices=list(VARIANTS), help="law to fit: chinchilla (a loss table: N, D, loss), "
                        "approach1 or approach2 (a task's pass@k), beta_chinchilla (per-question data)")
    parser.add_argument("table", help="observation table, CSV or Parquet (docs/contracts.md)")
    parser.add_argument("--out", metavar="FIT.json", help="write the Fit JSON here (default: print the fit only)")
    parser.add_argument("--bootstrap", type=int, default=schema_default("fits.bootstrap"),
                        help="bootstrap replicates for intervals (0: none)")
    parser.add_argument("--variant", help="the fit's variant: chinchilla huber|profile_e (default huber), "
                                          "approach2 sse|likelihood (default sse)")
    parser.add_argument("--stage1", default=schema_default("fits.chinchilla_variant"), choices=VARIANTS["chinchilla"],
                        help="approach2's stage 1, the Chinchilla fit of the per-checkpoint task NLL")
    add_fitting_arguments(parser)


def k_grid_arg(text):
    """argparse type for --k-grid: comma-separated k values, each a finite number >= 1."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated numbers like 1,2,4,8") from None
    if not values or not all(math.isfinite(v) and v >= 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: every k must be a finite number >= 1 (samples per question)")
    return values


def task_name(task, table_path):
    """--task, or the task a table's path names: .../TASK/observations.parquet -> TASK, else the file's stem."""
    if task:
        return task
    path = Path(table_path)
    if path.stem == "observations" and path.parent.name not in ("", ".", ".."):
        return path.parent.name
    return path.stem


def parse_columns(items):
    """--column STD=YOURS items -> {standard name: your name}."""
    columns = {}
    for item in items:
        std, sep, user = item.partition("=")
        if not sep or not std or not user:
            raise ValueError(f"--column {item!r}: write it as standard=yours, e.g. --column N=params")
        columns[std] = user
    return columns


def run(args):
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    columns = parse_columns(args.column)
    task = task_name(args.task, args.table)
    fit = fit_table(args.law, args.table, args.out, task=task, columns=columns, k_grid=args.k_grid,
                    restarts=args.restarts, bootstrap=args.bootstrap, variant=args.variant, source=args.source,
                    stage1=args.stage1, seed=args.seed, allow_unconverged=args.allow_unconverged)
    for name, value in fit.params.items():
        lo_hi = fit.intervals.get(name)
        band = f"  [{lo_hi[0]:.4g}, {lo_hi[1]:.4g}]" if lo_hi else ""
        print(f"{name:>8} = {value:.6g}{band}")
    print(f"{fit.law} fit of {args.table} (task {task}): R^2 {fit.r2:.4f}, objective {fit.objective:.6g}, "
          f"{fit.n_points} points, converged {fit.converged}, {fit.seconds:.2f} s"
          + (f" -> {args.out}" if args.out else ""))
    return 0
