"""`t2scaling lawbench`: the command line of `t2scaling.lawbench`."""

import logging

from t2scaling.lawbench import COLUMNS, DATASETS, DEFAULT_RESTARTS, SPLITS, run_bench


def add_arguments(parser):
    parser.add_argument("--data", nargs="+", metavar="NAME", choices=list(DATASETS),
                        help="datasets to benchmark (default: every shipped one, and those found under --data-dir): "
                             + ", ".join(DATASETS))
    parser.add_argument("--data-dir", metavar="DIR", help="folder holding your copies of the unshipped sources "
                        "(" + ", ".join(sorted({d.file for d in DATASETS.values() if not d.shipped})) + ")")
    parser.add_argument("--split", nargs="+", default=list(SPLITS), choices=list(SPLITS), help="held-out splits")
    parser.add_argument("--restarts", type=int, default=DEFAULT_RESTARTS, help="starts per fit")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fits' random starts")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="write DIR/lawbench.csv (columns " + ", ".join(COLUMNS) + "), DIR/lawbench.md, .html and "
                             "one figure per dataset, DIR/lawbench_<dataset>.png (PDF beside)")


def run(args):
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    table = run_bench(args.data, args.out, args.data_dir, args.split, args.restarts, args.seed)
    pooled = table[table["k"] == "all"]
    print(pooled[["dataset", "split", "law", "metric", "n_points", "mean_rel_error", "median_rel_error",
                  "converged"]].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"-> {args.out}/lawbench.csv, lawbench.md, lawbench_<dataset>.png")
    return 0
