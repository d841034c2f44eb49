"""`t2scaling extrapolate`: the command line of `t2scaling.extrapolate`."""

import logging
import os

from t2scaling import fit
from t2scaling.cli import fit as fit_cli
from t2scaling.extrapolate import (BASELINES, COLUMNS, LAWS, SUMMARY_COLUMNS, _write_frame, extrapolate, summarise,
                                   summary_paths)
from t2scaling.units import format_number


def add_arguments(parser):
    from t2scaling.config import schema_default

    parser.add_argument("table", help="observation table, CSV or Parquet (docs/contracts.md): per-question or "
                                      "aggregated")
    parser.add_argument("--law", nargs="+", default=schema_default("extrapolation.laws"), choices=list(LAWS),
                        help="laws to fit and test")
    parser.add_argument("--baselines", nargs="*", default=list(BASELINES), choices=list(BASELINES),
                        help="baselines reported beside the laws (--baselines alone: none)")
    parser.add_argument("--holdout-tokens-per-param", type=float, metavar="D/N",
                        help="hold out every checkpoint with D/N at or above this")
    parser.add_argument("--holdout", nargs="+", default=schema_default("extrapolation.checkpoints"), metavar="CKPT",
                        help="hold out these checkpoints too (by name)")
    parser.add_argument("--out", required=True, metavar="POINTS.csv",
                        help="write the per-point table here (CSV or Parquet): one row per law or baseline x metric "
                             "(pass_at_k; task_loss for approach1 and chinchilla) x held-out checkpoint x k, "
                             "columns " + ", ".join(COLUMNS))
    parser.add_argument("--summary", metavar="SUMMARY.md",
                        help="write the error summary here: a .md path gets Markdown and the CSV beside it "
                             "(SUMMARY.csv, or SUMMARY_summary.csv where that is --out), any other path the CSV; "
                             "columns " + ", ".join(SUMMARY_COLUMNS))
    parser.add_argument("--plot", metavar="FIGURE.png", help="write the predicted-vs-measured figure here (PDF beside)")
    parser.add_argument("--fits-dir", metavar="DIR", help="write each law's Fit JSON here as DIR/{law}.json")
    parser.add_argument("--variant", default=schema_default("fits.approach2_variant"),
                        choices=fit.VARIANTS["approach2"], help="approach2's fit")
    parser.add_argument("--chinchilla-variant", default=schema_default("fits.chinchilla_variant"),
                        choices=fit.VARIANTS["chinchilla"], help="the Chinchilla fit, also approach2's stage 1")
    fit_cli.add_fitting_arguments(parser)


def run(args):
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    table, fits = extrapolate(
        args.table, args.law, baselines=args.baselines, min_tokens_per_param=args.holdout_tokens_per_param,
        checkpoints=args.holdout, k_grid=args.k_grid, restarts=args.restarts, seed=args.seed,
        approach2_variant=args.variant, chinchilla_variant=args.chinchilla_variant,
        allow_unconverged=args.allow_unconverged, task=fit_cli.task_name(args.task, args.table),
        columns=fit_cli.parse_columns(args.column), source=args.source)
    _write_frame(table, args.out)
    if args.fits_dir:
        for law, result in fits.items():
            result.to_json(os.path.join(args.fits_dir, f"{law}.json"))
    summary = summarise(table)
    written = [args.out]
    if args.summary:
        from t2scaling.tables import write_table

        csv, md = summary_paths(args.summary, args.out)
        write_table(summary, csv, md, title=f"Relative absolute error of held-out predictions ({args.table})")
        written += [str(p) for p in (md, csv) if p]
    if args.plot:
        from t2scaling.plots import plot_extrapolation  # lazily: matplotlib only when a figure is asked for

        plot_extrapolation(table, args.plot)
    print(summary.to_string(index=False, float_format=format_number))
    written += [p for p in (args.plot, args.fits_dir) if p]
    print(f"{table['checkpoint'].nunique()} held-out checkpoints, {len(table)} points -> {', '.join(written)}")
    return 0
