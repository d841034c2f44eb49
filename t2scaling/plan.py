"""`t2scaling plan`: the T² recommendation (N, D, k) for one training and inference budget, beside Chinchilla.

    t2scaling plan results/arc_easy/fit_approach2.json --c-train 1e23 --c-inf 1.4e11

One P1 row of `frontier.frontier` (DESIGN.md §2.6), printed for people: the T²-optimal plan, the Chinchilla
optimum (k = 1) and the same Chinchilla model served with its inference-corrected k = C_inf/(2N).
"""

import numpy as np

from t2scaling.frontier import N_MIN, frontier, load_fits, parse_band, parse_budgets
from t2scaling.units import format_flops, format_number, format_params, format_tokens

METRIC_LABELS = {"loss": "task loss -log pass@k (nats), lower is better",
                 "accuracy": "pass@k accuracy, higher is better"}


def plan(fit, c_train, c_inf=None, n_min=N_MIN, n_max=np.inf, band=(5.0, 95.0)):
    """The frontier row (a pandas Series) for one fit at C_train FLOPs and C_inf FLOPs per served token (None
    for a law without k, such as Chinchilla)."""
    row = frontier([fit], c_train=[c_train], c_inf=None if c_inf is None else [c_inf], n_min=n_min, n_max=n_max,
                   band=band).iloc[0]
    if not row["feasible"] and c_inf is None:
        raise ValueError(f"no feasible plan for C_train = {format_flops(c_train)}: one training token needs "
                         f"N <= C_train/6 = {format_params(c_train / 6)}, below the smallest model searched "
                         f"(--n-min {n_min:g}); raise --c-train or lower --n-min")
    if not row["feasible"]:
        raise ValueError(
            f"no feasible plan for C_train = {format_flops(c_train)} and C_inf = {format_flops(c_inf)} per token: "
            f"serving one sample (k >= 1) needs N <= C_inf/2 = {format_params(c_inf / 2)} and one training token "
            f"needs N <= C_train/6 = {format_params(c_train / 6)}, below the smallest model searched "
            f"(--n-min {n_min:g}); raise --c-inf/--c-train or lower --n-min"
        )
    return row


def format_plan(row, band=(5.0, 95.0)):
    """Human-readable report of one frontier row: recommendation, both Chinchilla baselines, gains, bands."""
    metric = row["metric_name"]
    short = "loss" if metric == "loss" else "accuracy"

    def value(x):
        return f"{x:.4f}" if np.isfinite(x) else "n/a"

    def line(label, N, D, k, metric_value):
        ratio = format_number(D / N) if np.isfinite(N) else "n/a"
        return (f"  {label:<34}{format_params(N):>14}{format_tokens(D):>15}{ratio:>13}"
                f"{format_number(k):>11}{value(metric_value):>11}")

    if not np.isfinite(row["c_inf"]):  # a law without k: the k = 1 (Chinchilla) optimum is the whole answer
        lines = [
            f"Compute-optimal plan for task {row['task']!r}, law {row['approach']} ({METRIC_LABELS[metric]})",
            f"Budget: C_train = {format_flops(row['c_train'])} (the law has no k: no inference budget applies)",
            "",
            f"  {'':<34}{'N':>14}{'D':>15}{'tokens/param':>13}{'k':>11}{short:>11}",
            line("Chinchilla optimum (k = 1)", row["N_star"], row["D_star"], 1.0, row["predicted_metric"]),
        ]
        return "\n".join(lines + _extrapolation_lines(row))
    lines = [
        f"T² plan for task {row['task']!r}, law {row['approach']} ({METRIC_LABELS[metric]})",
        f"Budget: C_train = {format_flops(row['c_train'])}, C_inf = {format_flops(row['c_inf'])} per served token",
        "",
        f"  {'':<34}{'N':>14}{'D':>15}{'tokens/param':>13}{'k':>11}{short:>11}",
        line("T² optimum", row["N_star"], row["D_star"], row["k_star"], row["predicted_metric"]),
        line("T² optimum at k_int = floor(k*)", row["N_star"], row["D_star"], row["k_int"],
             row["predicted_metric_at_k_int"]),
        line("Chinchilla (k = 1)", row["chinchilla_N"], row["chinchilla_D"], 1.0, row["chinchilla_metric"]),
        line("Chinchilla, inference-corrected k", row["chinchilla_N"], row["chinchilla_D"], row["chinchilla_k"],
             row["chinchilla_metric_inference_corrected"]),
        "",
        f"Gain of T² ({short}, positive = T² better): {row['gain_vs_chinchilla']:+.4f} over Chinchilla at k = 1",
    ]
    if row["chinchilla_feasible"]:
        lines[-1] += f", {row['gain_vs_chinchilla_inference_corrected']:+.4f} over inference-corrected Chinchilla"
    else:
        lines.append(f"The Chinchilla model ({format_params(row['chinchilla_N'])}) cannot serve even one sample per "
                     f"token within C_inf (k = {row['chinchilla_k']:.3g} < 1): no inference-corrected baseline.")
    if "N_star_lo" in row.index and np.isfinite(row["N_star_lo"]):
        lines.append(
            f"Bootstrap {band[0]:g}-{band[1]:g} % band ({int(row['n_bootstrap'])} replicates): "
            f"N* {format_params(row['N_star_lo'])} - {format_params(row['N_star_hi'])}, "
            f"D* {format_tokens(row['D_star_lo'])} - {format_tokens(row['D_star_hi'])}, "
            f"tokens/param {format_number(row['tokens_per_param_lo'])} - {format_number(row['tokens_per_param_hi'])}, "
            f"k* {format_number(row['k_star_lo'])} - {format_number(row['k_star_hi'])}"
        )
    return "\n".join(lines + _extrapolation_lines(row))


def _extrapolation_lines(row):
    """A warning when the plan lies outside the data the fit saw (frontier columns extrapolated*)."""
    if not row.get("extrapolated", False):
        return []
    text = f"warning: this plan extrapolates beyond the fitted data in {row['extrapolated_in']}"
    if np.isfinite(row.get("data_c_train_max", np.nan)):
        text += (f" (the fit saw C_train {format_flops(row['data_c_train_min'])} - "
                 f"{format_flops(row['data_c_train_max'])})")
    return ["", text]


def add_arguments(parser):
    parser.add_argument("fit", metavar="FIT.json", help="fit JSON written by `t2scaling fit`")
    parser.add_argument("--c-train", required=True, metavar="FLOPS", help="training budget, FLOPs (e.g. 1e23)")
    parser.add_argument("--c-inf", metavar="FLOPS",
                        help="inference budget, FLOPs per served token (e.g. 1.4e11); not needed for Chinchilla")
    parser.add_argument("--n-min", type=float, default=N_MIN, help=f"smallest model searched, params ({N_MIN:g})")
    parser.add_argument("--n-max", type=float, default=np.inf, help="largest model searched, params (no limit)")
    parser.add_argument("--band", default="5,95", help="bootstrap percentile band LO,HI (5,95)")


def run(args):
    budgets = {}
    (fit,) = load_fits([args.fit])
    if args.c_inf is None and fit.model.uses_k:
        raise ValueError(f"{args.fit}: law {fit.law} depends on k; give --c-inf (FLOPs per served token)")
    for option in ("c_train", "c_inf"):
        if getattr(args, option) is None:
            continue
        flag = "--" + option.replace("_", "-")
        values = parse_budgets(getattr(args, option), flag)
        if values.size != 1:
            raise ValueError(f"{flag} {getattr(args, option)!r}: plan takes one budget; use `t2scaling frontier` "
                             "for a range")
        budgets[option] = float(values[0])
    band = parse_band(args.band)
    row = plan(fit, n_min=args.n_min, n_max=args.n_max, band=band, **budgets)
    print(format_plan(row, band))
