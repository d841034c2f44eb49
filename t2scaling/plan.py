"""`t2scaling plan`: the T² recommendation (N, D, k) for one training and inference budget, beside Chinchilla.

    t2scaling plan results/tasks/arc_easy/fits/approach2.json --c-train 1e23 --c-inf 1.4e11
    t2scaling plan results/tasks/*/fits/approach2.json --macro --c-train 1e23 --c-inf 1.4e11

One P1 row of `frontier.frontier` (DESIGN.md §2.6) per fit, or with --macro one row for the mean predicted metric
over the fits' tasks, printed for people: the T²-optimal plan, the Chinchilla optimum (k = 1) and the same
Chinchilla model served with its inference-corrected k = C_inf/(2N). A law without k (Chinchilla) gets its
k = 1 optimum only: no inference budget changes it.
"""

import numpy as np

from t2scaling.fitresult import FitResult
from t2scaling.frontier import N_MIN, frontier
from t2scaling.units import format_flops, format_number, format_params, format_tokens

METRIC_LABELS = {"loss": "task loss -log pass@k (nats), lower is better",
                 "accuracy": "pass@k accuracy, higher is better"}
HEADER = ("", "N", "D", "tokens/param", "k")


def plan(fits, c_train, c_inf=None, n_min=N_MIN, n_max=np.inf, band=(5.0, 95.0), macro=None):
    """The frontier row (a pandas Series) at C_train FLOPs and C_inf FLOPs per served token for one fit, or for
    the mean metric over a list of fits of one law (the macro average, task "macro"; macro=None: for more than
    one fit). C_inf is ignored for a law without k (Chinchilla) and may then be None."""
    fits = [fits] if isinstance(fits, FitResult) else list(fits)
    macro = len(fits) > 1 if macro is None else macro
    if len(fits) > 1 and not macro:
        raise ValueError("plan: several fits give one plan only as their macro average (macro=True)")
    uses_k = any(fit.model.uses_k for fit in fits)
    if uses_k and c_inf is None:
        raise ValueError(f"law {fits[0].law} depends on k: give C_inf (--c-inf, FLOPs per served token)")
    c_inf = c_inf if uses_k else None
    row = frontier(fits, c_train=[c_train], c_inf=None if c_inf is None else [c_inf], macro=macro,
                   n_min=n_min, n_max=n_max, band=band).iloc[0]
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


def _table(rows, metric_header):
    """Rows of (label, N, D, tokens/param, k, metric) strings as aligned text: the label left, numbers right."""
    rows = [HEADER + (metric_header,)] + rows
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
            .rstrip() for row in rows]


def format_plan(row, band=(5.0, 95.0), tasks=None):
    """Human-readable report of one frontier row: recommendation, both Chinchilla baselines, gains, bands.
    tasks: the task names a macro row averages (named in the heading)."""
    metric = row["metric_name"]
    short = "loss" if metric == "loss" else "accuracy"

    def line(label, N, D, k, metric_value):
        ratio = format_number(float(D / N)) if np.isfinite(N) else "n/a"
        value = f"{metric_value:.4f}" if np.isfinite(metric_value) else "n/a"
        return (label, format_params(float(N)), format_tokens(float(D)), ratio, format_number(float(k)), value)

    who = (f"the mean over {len(tasks)} task{'s' * (len(tasks) != 1)} ({', '.join(tasks)})"
           if row["task"] == "macro" and tasks
           else f"task {row['task']!r}")
    if not np.isfinite(row["c_inf"]):  # a law without k: the k = 1 (Chinchilla) optimum is the whole answer
        lines = [
            f"Compute-optimal plan for {who}, law {row['approach']} ({METRIC_LABELS[metric]})",
            f"Budget: C_train = {format_flops(row['c_train'])} (the law has no k: no inference budget applies)",
            "",
            *_table([line("Chinchilla optimum (k = 1)", row["N_star"], row["D_star"], 1.0, row["predicted_metric"])],
                    short),
        ]
        return "\n".join(lines + _extrapolation_lines(row))
    lines = [
        f"T² plan for {who}, law {row['approach']} ({METRIC_LABELS[metric]})",
        f"Budget: C_train = {format_flops(row['c_train'])}, C_inf = {format_flops(row['c_inf'])} per served token",
        "",
        *_table([
            line("T² optimum", row["N_star"], row["D_star"], row["k_star"], row["predicted_metric"]),
            line("T² optimum at k_int = floor(k*)", row["N_star"], row["D_star"], row["k_int"],
                 row["predicted_metric_at_k_int"]),
            line("Chinchilla (k = 1)", row["chinchilla_N"], row["chinchilla_D"], 1.0, row["chinchilla_metric"]),
            line("Chinchilla, inference-corrected k", row["chinchilla_N"], row["chinchilla_D"], row["chinchilla_k"],
                 row["chinchilla_metric_inference_corrected"]),
        ], short),
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
