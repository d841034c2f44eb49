"""`t2scaling frontier`: the command line of `t2scaling.frontier`."""

import logging

import numpy as np

from t2scaling.frontier import N_MIN, frontier, load_fits, write_csv
from t2scaling.laws import get_law

logger = logging.getLogger(__name__)


def parse_budgets(text, option):
    """'LO:HI:STEPS' (log-spaced, inclusive) or 'X[,Y...]' -> array of positive floats; errors name `option`."""
    hint = f"{option} {text!r}: expected LO:HI:STEPS (log-spaced, e.g. 1e18:1e25:50) or X[,Y...] (e.g. 2e9,1.4e11)"
    parts = text.split(":")
    try:
        if len(parts) == 3:
            lo, hi, steps = float(parts[0]), float(parts[1]), int(parts[2])
        elif len(parts) == 1:
            values = np.array([float(v) for v in text.split(",")])
        else:
            raise ValueError
    except ValueError:
        raise ValueError(hint) from None
    if len(parts) == 3:
        if not (0 < lo <= hi < np.inf) or steps < 1 or (steps == 1 and lo != hi):
            raise ValueError(f"{hint}; need 0 < LO <= HI and STEPS >= 2 (or LO == HI with STEPS = 1)")
        return np.geomspace(lo, hi, steps)
    if not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"{hint}; every value must be finite and > 0")
    return values


def parse_band(text):
    """'LO,HI' percentiles, 0 <= LO < HI <= 100."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--band {text!r}: expected two percentiles LO,HI such as 5,95") from None
    if not 0 <= lo < hi <= 100:
        raise ValueError(f"--band {text!r}: need 0 <= LO < HI <= 100")
    return lo, hi


def add_arguments(parser):
    parser.add_argument("fits", nargs="+", metavar="FIT.json", help="fit JSONs written by `t2scaling fit`")
    parser.add_argument("--c-train", metavar="LO:HI:STEPS",
                        help="P1 training budgets, FLOPs: log-spaced LO:HI:STEPS (e.g. 1e18:1e25:50) or X[,Y...]")
    parser.add_argument("--c-inf", metavar="X[,Y...]",
                        help="P1 inference budgets, FLOPs per served token, as for --c-train (not needed for a "
                             "Chinchilla fit)")
    parser.add_argument("--c-total", metavar="LO:HI:STEPS",
                        help="P2 total budgets (training + lifetime inference), FLOPs, as for --c-train")
    parser.add_argument("--t-inf", metavar="T[,T...]", help="P2 lifetime served tokens, as for --c-train")
    add_search_arguments(parser)
    parser.add_argument("--no-bands", action="store_true", help="skip bootstrap bands even where fits have them")
    parser.add_argument("--out", required=True, metavar="FRONTIER.csv", help="output CSV (written atomically)")


def add_search_arguments(parser):
    """Options shared with `t2scaling plan`: the macro average, the searched model sizes, the bootstrap band."""
    parser.add_argument("--macro", action="store_true",
                        help="optimise the mean predicted metric over all fits (one law, the tasks' macro "
                             "average, task = macro) instead of each fit on its own")
    parser.add_argument("--n-min", type=float, default=N_MIN, metavar="PARAMS", help="smallest model searched")
    parser.add_argument("--n-max", type=float, default=np.inf, metavar="PARAMS",
                        help="largest model searched; inf: no limit")
    parser.add_argument("--band", default="5,95", metavar="LO,HI",
                        help="percentiles of the bootstrap band, where the fits carry bootstrap replicates")


def summary_line(table, out_path):
    """One line saying what a frontier table holds and where it went, for people."""
    groups = list(dict.fromkeys(table["task"]))
    what = "macro average of the tasks" if groups == ["macro"] else \
        f"{len(groups)} task{'s' if len(groups) != 1 else ''} ({', '.join(map(str, groups))})"
    problems = ", ".join(f"{n} {p}" for p, n in table["problem"].value_counts(sort=False).items())
    laws = ", ".join(dict.fromkeys(table["approach"]))
    flagged = int(table["extrapolated"].sum())
    infeasible = int((~table["feasible"].astype(bool)).sum())
    notes = [f"{flagged} extrapolated beyond the fitted data"] if flagged else []
    notes += [f"{infeasible} infeasible"] if infeasible else []
    return (f"wrote {len(table)} frontier rows ({problems}) for {what}, law {laws}, to {out_path}"
            + (f"; {', '.join(notes)}" if notes else ""))


def run(args):
    fits = load_fits(args.fits)
    needs_c_inf = any(get_law(fit.law).uses_k for fit in fits)
    if args.c_train is None and args.c_inf is not None or args.c_train is not None and args.c_inf is None \
            and needs_c_inf:
        raise ValueError("P1 needs both --c-train and --c-inf (FLOPs per served token); only a Chinchilla fit "
                         "(no k) needs no --c-inf")
    if (args.c_total is None) != (args.t_inf is None):
        raise ValueError("P2 needs both --c-total (FLOPs) and --t-inf (lifetime served tokens)")
    if args.c_train is None and args.c_total is None:
        raise ValueError("give --c-train and --c-inf (P1), and/or --c-total and --t-inf (P2)")
    budgets = {}
    for option in ("c_train", "c_inf", "c_total", "t_inf"):
        text = getattr(args, option)
        if text is not None:
            budgets[option] = parse_budgets(text, "--" + option.replace("_", "-"))
    table = frontier(fits, macro=args.macro, n_min=args.n_min, n_max=args.n_max,
                     band=parse_band(args.band), bands=not args.no_bands, **budgets)
    write_csv(table, args.out)
    flagged = table[table["extrapolated"]]
    if len(flagged):
        dims = sorted({d for text in flagged["extrapolated_in"] for d in str(text).split(",") if d})
        logger.warning("%d of %d rows plan outside the fitted data (in %s): see columns extrapolated, "
                       "extrapolated_in", len(flagged), len(table), ", ".join(dims))
    print(summary_line(table, args.out))
