"""Fit scaling laws (DESIGN.md §2.3–2.5): Chinchilla, T² Approach 1 and T² Approach 2, and `t2scaling fit`.

Every fitter returns a `FitResult` (the Fit JSON of §5). Objectives are written once, batched over many
parameter vectors (rows of X) with analytic gradients. `_multistart` runs a vectorised BFGS from every start
at once, drops the worse half every few steps, then polishes the best few distinct candidates with scipy's
L-BFGS-B; the best objective wins. Optimiser space = `law.pack` order (positive scales as logs), with N and D
in reference units N/N_ref, D/D_ref (geometric means of the data): there a' = log A' where A/N^alpha =
A' (N/N_ref)^-alpha, so A = A' N_ref^alpha, and log A', log B' are logs of loss terms at the data whatever the
exponents (with raw N, D, log A = log A' + alpha log N_ref grows with alpha and a bound on it caps alpha). Fits
store natural parameters (A, B for raw N, D) and record N_ref, D_ref in their options.
"""

import logging

import numpy as np

from t2scaling import measure, observations
from t2scaling.fit.approach1 import fit_approach1
from t2scaling.fit.approach2 import fit_approach2
from t2scaling.fit.beta import fit_beta_chinchilla
from t2scaling.fit.chinchilla import fit_chinchilla
from t2scaling.laws import LAWS

logger = logging.getLogger(__name__)


VARIANTS = {name: law.variants for name, law in LAWS.items() if law.variants}  # law -> its fits, default first
PER_QUESTION_LAWS = ("approach2", "beta_chinchilla")  # fitted to per-question data
DEFAULT_K_GRID = measure.DEFAULT_K_GRID


def fit_table(law, table_path, out_path=None, *, task="", columns=None, k_grid=None, restarts=None, bootstrap=0,
              variant=None, source="auto", stage1="huber", seed=0, allow_unconverged=False):
    """Read an observation table (CSV/Parquet, DESIGN.md §5), fit `law`, write the Fit JSON to out_path."""
    variant = _variant(law, variant, table_path)
    obs = observations.read_table(table_path, columns)
    result = fit_observations(law, obs, task=task, k_grid=k_grid, restarts=restarts, bootstrap=bootstrap,
                              variant=variant, source=source, stage1=stage1, seed=seed,
                              allow_unconverged=allow_unconverged, label=str(table_path))
    result.input_hash = obs.sha256
    result.options.update(table=str(table_path), columns=dict(columns or {}))
    if out_path:
        result.to_json(out_path)
        logger.info("%s: wrote %s", table_path, out_path)
    logger.info("%s %s: params %s, R^2 %.4f, %.2f s", result.task, result.law, result.params, result.r2,
                result.seconds)
    return result


def _variant(law, variant, label):
    if law not in VARIANTS:
        raise ValueError(f"unknown law {law!r} for fitting; choose from {', '.join(VARIANTS)}")
    variant = variant or VARIANTS[law][0]
    if variant not in VARIANTS[law]:
        raise ValueError(f"{label}: unknown {law} variant {variant!r}; choose from {VARIANTS[law]}")
    return variant


def require_form(law, obs, label=None):
    """Stop early when a table's form cannot feed `law` (Approach 2 and Beta-Chinchilla need per-question data)."""
    if law in PER_QUESTION_LAWS and obs.form != "per_question":
        raise ValueError(f"{label or obs.path}: {law} needs a per-question table (checkpoint, N, D, question, "
                         f"nll/p and/or n_samples/n_correct); this is a {obs.form} table — fit approach1 instead")


def fit_observations(law, obs, *, task="", k_grid=None, restarts=None, bootstrap=0, variant=None, source="auto",
                     stage1="huber", seed=0, allow_unconverged=False, label=None):
    """Fit `law` to validated `observations.Observations` (all of a table, or a subset of its checkpoints).

    The one path from a table to a fit: `fit_table` and the extrapolation experiment both use it. The fit's
    input_hash is that of the arrays fitted; options record the table form and the data source used.
    """
    label = label or obs.path
    variant = _variant(law, variant, label)
    require_form(law, obs, label)
    common = dict(task=task, label=label, bootstrap=bootstrap, seed=seed, allow_unconverged=allow_unconverged)
    used = "loss" if law == "chinchilla" else observations.choose_source(obs, source)
    if law == "chinchilla":
        N, D, L, var = measure.loss_points(obs)  # the fitted target (measure.target_of) with its variance
        result = fit_chinchilla(N, D, L, variant=variant, variance=var, **common)
    elif law == "approach1":
        names, N, D, k, Q = measure.fitted_target(obs, law, k_grid, used)
        _require_task_loss(label, names, k, Q)
        result = fit_approach1(N[:, None], D[:, None], k[None, :], Q, restarts=restarts, **common)
    elif law == "beta_chinchilla":
        _, N, D, k, acc = measure.fitted_target(obs, law, _with_one(measure.k_grid_for(obs, k_grid, used)), used)
        result = fit_beta_chinchilla(N, D, k, acc, observations.likelihood_data(obs, used)[1], restarts=restarts,
                                     **common)
    else:
        N, D, nll, var = measure.loss_points(obs)  # stage 1: Chinchilla on the task NLL
        _, _, _, k, acc = measure.fitted_target(obs, law, k_grid, used)
        likelihood = observations.likelihood_data(obs, used)[1] if variant == "likelihood" else None
        result = fit_approach2(N, D, nll, k, acc, variant=variant, likelihood=likelihood, stage1=stage1,
                               nll_variance=var, restarts=restarts, **common)
    result.options.update(form=obs.form, source=used)
    return result


def _with_one(k):
    """The k grid with k = 1 first (Beta-Chinchilla's starts read pass@1)."""
    return np.unique(np.r_[1.0, k])


def _require_task_loss(label, names, k, Q):
    """Approach 1 fits task loss Q (C, K) > 0; where it is 0 (-log pass@k of a checkpoint that solves every
    question with certainty) name the checkpoint and k rather than a point index."""
    zero = np.argwhere(~(Q > 0))
    if len(zero):
        i, j = zero[0]
        raise ValueError(f"{label}: checkpoint {str(names[i])!r} solves every question with certainty at k = {k[j]:g}, so "
                         "its task loss -log(pass@k) is 0, which Approach 1 cannot fit; drop the checkpoint or leave "
                         "that k out of the k grid (--k-grid)")
