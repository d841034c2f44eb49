"""WSD: one stable trunk per model size (`train_trunk`), saving a state at each D's branch point, and a short
decay per D from it (`train_decay`).
"""

import functools
import json
import logging
import os

from t2scaling.train.loop import _train_steps
from t2scaling.flops import steps_for
from t2scaling.train.schedule import decay_start_step, lr_at
from t2scaling.train.session import _Session, _state_files, _state_path, Recipe
from t2scaling.train.state import (_base_meta, _cell_lock, _finish, _finished_meta, _locked, _resume, _rewrite_log,
                                   _write_atomic)

logger = logging.getLogger(__name__)


def _trunk_identity(s):
    return dict(s.identity, schedule="trunk")


def train_trunk(trunk_dir, *, width, depth, branch_tokens, train_tokens_path, tokenizer_dir, seq_len,
                batch_size, log_path=None, **recipe):
    """Train (or extend) the WSD trunk of one model size: warmup, then constant lr, saving the full training
    state at the branch point (1 − decay_fraction)·D of every D in branch_tokens as trunk_dir/step-*.pt.

    Only missing branch points are trained, starting from the newest saved state below the first of them,
    so a larger D later continues the trunk instead of restarting it. Returns dict(trunk_dir, branch_steps,
    start_step, stop_step, tokens_processed).
    """
    r = Recipe(**recipe)
    s = _Session(width=width, depth=depth, seq_len=seq_len, batch_size=batch_size,
                 train_tokens_path=train_tokens_path, tokenizer_dir=tokenizer_dir, recipe=r)
    branches = {}
    for tokens in branch_tokens:
        total = steps_for(tokens, s.tokens_per_step)
        branch = decay_start_step(total, r.decay_fraction)
        if branch < max(1, s.warmup_steps):
            raise ValueError(
                f"wsd: D = {tokens} tokens ({total} steps) branches off the trunk at step {branch}, inside the "
                f"{s.warmup_steps}-step warmup (warmup_tokens = {s.warmup_steps * s.tokens_per_step}) or before "
                "any trunk step; use schedule cosine for this cell, a larger D, or fewer warmup tokens")
        branches[branch] = tokens
    identity = _trunk_identity(s)
    lr_fn = functools.partial(lr_at, lr=r.lr, warmup_steps=s.warmup_steps, schedule="constant")
    with _locked(os.path.join(trunk_dir, ".lock"), s.rank):
        s.barrier()
        meta_path = os.path.join(trunk_dir, "trunk_meta.json")
        known = json.load(open(meta_path)) if os.path.exists(meta_path) else dict(identity=identity, branches={})
        if known["identity"] != identity:
            diff = {k: (known["identity"].get(k), v) for k, v in identity.items() if known["identity"].get(k) != v}
            raise ValueError(f"{meta_path}: the trunk was trained with other settings (saved vs now: {diff}); "
                             "use another trunk_dir or the original settings")
        keep = sorted({int(k) for k in known["branches"]} | set(branches))
        missing = sorted(b for b in branches if b not in _state_files(trunk_dir))
        result = dict(trunk_dir=trunk_dir, branch_steps=sorted(branches), start_step=None, stop_step=None,
                      tokens_processed=0)
        if s.rank == 0:
            known["branches"].update({str(b): tokens for b, tokens in branches.items()})
            _write_atomic(meta_path, json.dumps(known, indent=1))
        if missing:
            history, records = [], []
            start, elapsed = _resume(s, trunk_dir, identity, missing[0], history, records)
            _rewrite_log(log_path, records, s.rank)
            stop = missing[-1]
            logger.info("trunk w%d-l%d: steps %d -> %d for branch points %s", width, depth, start, stop, missing)
            _train_steps(s, cell_id=f"trunk-w{width}-l{depth}", start_step=start, stop_step=stop, lr_fn=lr_fn,
                         history=history, records=records, elapsed=elapsed, identity=identity,
                         state_dir=trunk_dir, keep_steps=keep, log_path=log_path)
            result.update(start_step=start, stop_step=stop, tokens_processed=(stop - start) * s.tokens_per_step)
        s.barrier()
    return result


def train_decay(out_dir, *, cell_id, trunk_dir, tokens, width, depth, train_tokens_path, val_tokens_path,
                tokenizer_dir, seq_len, batch_size, scratch_dir=None, log_path=None, **recipe):
    """Finish a WSD cell: load the trunk state at this D's branch point and decay the lr to zero at D;
    writes the same checkpoint dir as train_cell and returns its meta. D and C_train count the trunk's tokens
    too (the model saw them); tokens_processed and wall_seconds count this decay's own work only."""
    r = Recipe(**recipe)
    s = _Session(width=width, depth=depth, seq_len=seq_len, batch_size=batch_size,
                 train_tokens_path=train_tokens_path, tokenizer_dir=tokenizer_dir, recipe=r)
    total = steps_for(tokens, s.tokens_per_step)
    branch = decay_start_step(total, r.decay_fraction)
    identity = dict(s.identity, schedule="wsd", total_steps=total, branch_step=branch,
                    decay_fraction=r.decay_fraction, decay_shape=r.decay_shape)
    lr_fn = functools.partial(lr_at, lr=r.lr, warmup_steps=s.warmup_steps, total_steps=total, schedule="wsd",
                              decay_fraction=r.decay_fraction, decay_shape=r.decay_shape)
    scratch_dir = scratch_dir or f"{out_dir.rstrip(os.sep)}.scratch"
    with _cell_lock(s, scratch_dir, out_dir) as finished_elsewhere:
        if finished_elsewhere:
            return _finished_meta(out_dir, cell_id)
        return _decay_locked(s, out_dir, cell_id=cell_id, trunk_dir=trunk_dir, tokens=tokens, total=total,
                             branch=branch, identity=identity, lr_fn=lr_fn, val_tokens_path=val_tokens_path,
                             scratch_dir=scratch_dir, log_path=log_path)


def _decay_locked(s, out_dir, *, cell_id, trunk_dir, tokens, total, branch, identity, lr_fn, val_tokens_path,
                  scratch_dir, log_path):
    r = s.recipe
    os.makedirs(scratch_dir, exist_ok=True)
    history, records = [], []
    start, elapsed = _resume(s, scratch_dir, identity, total, history, records)
    if start == 0:
        trunk_state = _state_path(trunk_dir, branch)
        if not os.path.exists(trunk_state):
            raise FileNotFoundError(f"{trunk_state}: no trunk state at step {branch}, the branch point of D = "
                                    f"{tokens}; run train_trunk with branch_tokens including {tokens} first")
        state = s.load_state(trunk_state, _trunk_identity(s))
        history[:], records[:] = state["history"], state["records"]
        start = branch
    _rewrite_log(log_path, records, s.rank)
    elapsed = _train_steps(s, cell_id=cell_id, start_step=start, stop_step=total, lr_fn=lr_fn, history=history,
                           records=records, elapsed=elapsed, identity=identity, state_dir=scratch_dir,
                           log_path=log_path)
    meta = _base_meta(s, cell_id, total, "wsd", s.warmup_steps, elapsed)
    meta.update(resumed_from_step=start, tokens_processed=(total - start) * s.tokens_per_step,
                trunk_dir=os.path.abspath(trunk_dir), branch_step=branch, decay_fraction=r.decay_fraction,
                decay_shape=r.decay_shape)
    return _finish(s, out_dir, val_tokens_path=val_tokens_path, meta=meta, history=history, records=records,
                   scratch_dir=scratch_dir)
