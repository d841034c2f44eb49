"""`train_cell`: one (N, D) grid cell, cosine or WSD (the trunk and its decay branch).
"""

import functools
import logging
import os

from t2scaling.grid import trunk_name
from t2scaling.train.loop import _train_steps
from t2scaling.flops import steps_for
from t2scaling.train.schedule import lr_at, SCHEDULES
from t2scaling.train.session import _Session, Recipe
from t2scaling.train.state import _base_meta, _cell_lock, _finish, _finished_meta, _resume, _rewrite_log
from t2scaling.train.wsd import train_decay, train_trunk

logger = logging.getLogger(__name__)


def train_cell(out_dir, *, cell_id, width, depth, tokens, train_tokens_path, val_tokens_path, tokenizer_dir,
               seq_len, batch_size, schedule="cosine", trunk_dir=None, branch_tokens=(), scratch_dir=None,
               log_path=None, **recipe):
    """Train one grid cell to D = `tokens` (rounded to whole steps of batch_size·seq_len tokens) and write
    its checkpoint dir to out_dir; returns the t2_meta.json dict. Keyword options: the fields of `Recipe`.

    schedule="wsd" extends (or starts) the size's trunk in trunk_dir (default: a `trunk-w{W}-l{L}` dir beside
    out_dir) to this D's branch point, then runs the decay. Pass the other D values of this size in the grid as
    branch_tokens: the trunk then saves all their branch points in one pass, whichever cell runs first. A
    killed run resumes from scratch_dir (default `{out_dir}.scratch`), removed after success unless keep_scratch.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    common = dict(width=width, depth=depth, train_tokens_path=train_tokens_path, tokenizer_dir=tokenizer_dir,
                  seq_len=seq_len, batch_size=batch_size)
    if schedule == "wsd":
        trunk_dir = trunk_dir or os.path.join(os.path.dirname(os.path.abspath(out_dir)), trunk_name(width, depth))
        train_trunk(trunk_dir, branch_tokens=[tokens, *branch_tokens], log_path=log_path, **common, **recipe)
        return train_decay(out_dir, cell_id=cell_id, trunk_dir=trunk_dir, tokens=tokens,
                           val_tokens_path=val_tokens_path, scratch_dir=scratch_dir, log_path=log_path,
                           **common, **recipe)
    r = Recipe(**recipe)
    s = _Session(recipe=r, **common)
    total = steps_for(tokens, s.tokens_per_step)
    warmup = min(s.warmup_steps, total // 2)
    if warmup < s.warmup_steps:
        logger.warning("cell %s: warmup of %d steps (%d tokens) exceeds half the run's %d steps; capped at %d",
                       cell_id, s.warmup_steps, s.warmup_steps * s.tokens_per_step, total, warmup)
    identity = dict(s.identity, schedule="cosine", total_steps=total, warmup_steps=warmup)
    lr_fn = functools.partial(lr_at, lr=r.lr, warmup_steps=warmup, total_steps=total, schedule="cosine")
    scratch_dir = scratch_dir or f"{out_dir.rstrip(os.sep)}.scratch"
    with _cell_lock(s, scratch_dir, out_dir) as finished_elsewhere:
        if finished_elsewhere:
            return _finished_meta(out_dir, cell_id)
        os.makedirs(scratch_dir, exist_ok=True)
        history, records = [], []
        start, elapsed = _resume(s, scratch_dir, identity, total, history, records)
        _rewrite_log(log_path, records, s.rank)
        logger.info("cell %s: N = %d, D = %d tokens (%d steps of %d), from step %d on %s", cell_id, s.counts["N"],
                    total * s.tokens_per_step, total, s.tokens_per_step, start, s.device)
        elapsed = _train_steps(s, cell_id=cell_id, start_step=start, stop_step=total, lr_fn=lr_fn, history=history,
                               records=records, elapsed=elapsed, identity=identity, state_dir=scratch_dir,
                               log_path=log_path)
        meta = _base_meta(s, cell_id, total, "cosine", warmup, elapsed)
        meta.update(resumed_from_step=start, tokens_processed=(total - start) * s.tokens_per_step)
        return _finish(s, out_dir, val_tokens_path=val_tokens_path, meta=meta, history=history, records=records,
                       scratch_dir=scratch_dir)
