"""Intervals on measured comparisons: a paired bootstrap over questions.

A measured pass@k is a mean over a task's questions, so its sampling error is that of the question set. Every
row (checkpoint) of a comparison is scored on the same questions, so one resample of question indices is
applied to all rows at once: the interval of a difference between two rows is then paired, far tighter than
two independent intervals would suggest. For a macro average the questions of each task are resampled
separately and the task means averaged, as the point estimate is.
"""

import numpy as np

REPLICATES = 2000
LEVEL = 0.95


def question_bootstrap(per_question, reference=None, replicates=REPLICATES, level=LEVEL, seed=0):
    """Percentile intervals of row means and of paired differences to row `reference`.

    per_question: one array (R rows, Q_t questions) per task, the same R rows in each (e.g. per-question
    pass@k_i of R checkpoints); NaN-free. The statistic of row r is the mean over tasks of its mean over
    questions. Returns a dict of (R,) arrays: mean, ci_low, ci_high and, with `reference` (a row index),
    gain = mean - mean[reference], gain_ci_low, gain_ci_high (all zero for the reference row itself).
    """
    arrays = [np.atleast_2d(np.asarray(a, dtype=float)) for a in per_question]
    if not arrays or len({a.shape[0] for a in arrays}) != 1:
        raise ValueError("question_bootstrap: give one (rows, questions) array per task, with the same rows")
    for t, a in enumerate(arrays):
        if a.shape[1] == 0 or not np.all(np.isfinite(a)):
            raise ValueError(f"question_bootstrap: task {t} has no questions or non-finite per-question values")
    rng = np.random.default_rng(seed)
    draws = np.zeros((arrays[0].shape[0], replicates))
    for a in arrays:
        idx = rng.integers(0, a.shape[1], size=(replicates, a.shape[1]))
        draws += a[:, idx].mean(axis=-1)  # (R, replicates): one resampled question set, shared by all rows
    draws /= len(arrays)
    q = 100.0 * (1.0 - level) / 2.0
    out = {"mean": np.mean([a.mean(axis=1) for a in arrays], axis=0)}
    out["ci_low"], out["ci_high"] = np.percentile(draws, [q, 100.0 - q], axis=1)
    if reference is not None:
        out["gain"] = out["mean"] - out["mean"][reference]
        out["gain_ci_low"], out["gain_ci_high"] = np.percentile(draws - draws[reference], [q, 100.0 - q], axis=1)
    return out
