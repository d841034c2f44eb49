"""The learning-rate schedule as a pure function of the step (torch-free): cosine with warmup, and WSD's
warmup-stable-decay with its branch points.
"""

import math

from t2scaling.flops import steps_for

SCHEDULES = ("cosine", "wsd")
DECAY_SHAPES = ("1-sqrt", "linear")


def decay_start_step(total_steps, decay_fraction):
    """The step at which a WSD run of `total_steps` leaves the trunk and starts decaying."""
    return min(total_steps - 1, round((1 - decay_fraction) * total_steps))


def lr_at(step, *, lr, warmup_steps, total_steps=None, schedule="cosine", decay_fraction=0.2,
          decay_shape="1-sqrt"):
    """Learning rate of update `step` (0-based). schedule: cosine, wsd, or constant (the WSD trunk).

    Linear warmup to `lr` over `warmup_steps`; cosine then falls to zero at `total_steps`; wsd holds `lr` until
    `decay_start_step` and falls to zero at `total_steps` along `decay_shape`.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if schedule == "wsd":
        start = decay_start_step(total_steps, decay_fraction)
        if step < start:
            return lr
        progress = min(1.0, (step - start) / (total_steps - start))
        return lr * (1 - progress if decay_shape == "linear" else 1 - math.sqrt(progress))
    raise ValueError(f"schedule must be one of {SCHEDULES} (or 'constant' for a trunk), got {schedule!r}")


def wsd_plan(branch_tokens, tokens_per_step, decay_fraction):
    """Tokens a WSD grid processes for one model size (one trunk + one decay per D) vs the cosine grid.

    Returns dict(trunk_tokens, decay_tokens, wsd_tokens, cosine_tokens, ratio); the same step arithmetic
    as train_trunk/train_decay.
    """
    totals = [steps_for(d, tokens_per_step) for d in branch_tokens]
    starts = [decay_start_step(t, decay_fraction) for t in totals]
    trunk = max(starts) * tokens_per_step
    decay = sum(t - s for t, s in zip(totals, starts)) * tokens_per_step
    cosine = sum(totals) * tokens_per_step
    return dict(trunk_tokens=trunk, decay_tokens=decay, wsd_tokens=trunk + decay, cosine_tokens=cosine,
                ratio=(trunk + decay) / cosine)
