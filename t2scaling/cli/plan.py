"""`t2scaling plan`: the command line of `t2scaling.plan`."""

from t2scaling.cli.frontier import add_search_arguments, parse_band, parse_budgets
from t2scaling.frontier import load_fits
from t2scaling.plan import format_plan, plan


def add_arguments(parser):
    parser.add_argument("fits", nargs="+", metavar="FIT.json",
                        help="fit JSONs written by `t2scaling fit`: one plan each, or with --macro one for all")
    parser.add_argument("--c-train", required=True, metavar="FLOPS", help="training budget, FLOPs (e.g. 1e23)")
    parser.add_argument("--c-inf", metavar="FLOPS",
                        help="inference budget, FLOPs per served token (e.g. 1.4e11); not needed for Chinchilla")
    add_search_arguments(parser)


def _one_budget(text, flag):
    values = parse_budgets(text, flag)
    if values.size != 1:
        raise ValueError(f"{flag} {text!r}: plan takes one budget; use `t2scaling frontier` for a range")
    return float(values[0])


def run(args):
    fits = load_fits(args.fits)
    for path, fit in zip(args.fits, fits):
        if args.c_inf is None and fit.model.uses_k:
            raise ValueError(f"{path}: law {fit.law} depends on k; give --c-inf (FLOPs per served token)")
    c_train = _one_budget(args.c_train, "--c-train")
    c_inf = None if args.c_inf is None else _one_budget(args.c_inf, "--c-inf")
    band = parse_band(args.band)
    search = dict(n_min=args.n_min, n_max=args.n_max, band=band)
    if args.macro:
        reports = [format_plan(plan(fits, c_train, c_inf, macro=True, **search), band,
                               tasks=[fit.task for fit in fits])]
    else:
        reports = [format_plan(plan(fit, c_train, c_inf, **search), band) for fit in fits]
    ignored = [fit for fit in fits if not fit.model.uses_k]
    if c_inf is not None and ignored:
        reports.append(f"note: --c-inf does not apply to law {ignored[0].law} (no k): its plan is the k = 1 optimum")
    print("\n\n".join(reports))
    return 0
