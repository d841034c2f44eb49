"""Resumable state and export: `step-XXXXXXXXX.pt` files in the scratch dir, the JSONL log, the HF
checkpoint with its t2_meta.json, and the locks that keep one writer per cell.
"""

import contextlib
import fcntl
import json
import logging
import math
import os
import shutil

import numpy as np
import torch.distributed as dist

from t2scaling import __version__, flops
from t2scaling.atomic import atomic_dir, atomic_file
from t2scaling.checkpoint import diverged, model_card, weights_sha256
from t2scaling.data import load_tokens
from t2scaling.train.session import _state_files

logger = logging.getLogger(__name__)


def _resume(s, state_dir, identity, max_step, history, records):
    """Load the newest state in state_dir at or below max_step into s; returns (step, elapsed seconds)."""
    saved = {k: v for k, v in _state_files(state_dir).items() if k <= max_step}
    if not saved:
        return 0, 0.0
    step = max(saved)
    state = s.load_state(saved[step], identity)
    history[:] = state["history"]
    records[:] = state["records"]
    logger.info("resuming from %s (step %d)", saved[step], step)
    return step, state["elapsed"]


def _rewrite_log(log_path, records, rank):
    """Make the JSONL log hold exactly the records of the state being resumed (atomic)."""
    if not log_path or rank != 0:
        return
    _write_atomic(log_path, "".join(json.dumps(rec) + "\n" for rec in records))


def _write_atomic(path, text):
    with atomic_file(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def _finish(s, out_dir, *, val_tokens_path, meta, history, records, scratch_dir):
    """Validation loss (a run no better than a uniform guess fails here, like a NaN), then the checkpoint dir (HF
    files, tokenizer, t2_meta.json with the weights' sha256, README.md model card, train_log.jsonl) built beside
    out_dir and renamed into place. Rank 0 works, the others wait; every rank returns the meta."""
    from t2scaling.evaluate import validation_loss  # lazy: evaluation code loads only when needed

    r = s.recipe
    if s.rank == 0:
        val_tokens = load_tokens(val_tokens_path, "validation token")
        meta["val_loss"] = validation_loss(s.raw_model, val_tokens, s.seq_len, r.val_batch_size or s.micro_batch,
                                           s.device, max_tokens=r.val_max_tokens)
        if diverged(meta["val_loss"], s.vocab_size):
            raise RuntimeError(
                f"cell {meta['cell']}: training diverged: validation loss {meta['val_loss']:.4g} nats/token after "
                f"{meta['steps']} steps is no better than a uniform guess over the vocabulary (ln "
                f"{s.vocab_size} = {math.log(s.vocab_size):.3f}); lower the learning rate (now {r.lr:g}) or "
                "lengthen the warmup")
        last = history[-min(10, len(history)):]
        meta.update(final_train_loss=float(np.mean(last)), device=str(s.device), world_size=s.world,
                    version=__version__)
        with atomic_dir(out_dir) as tmp:  # a rerun replaces the old checkpoint dir
            s.raw_model.save_pretrained(tmp)
            for name in sorted(os.listdir(s.tokenizer_dir)):
                if os.path.isfile(os.path.join(s.tokenizer_dir, name)):
                    shutil.copy2(os.path.join(s.tokenizer_dir, name), os.path.join(tmp, name))
            config_path = os.path.join(tmp, "tokenizer_config.json")
            if os.path.exists(config_path):  # the context the model was trained on, not HF's 1e30 "no limit"
                with open(config_path) as f:
                    tokenizer_config = json.load(f)
                tokenizer_config["model_max_length"] = s.seq_len
                with open(config_path, "w") as f:
                    json.dump(tokenizer_config, f, indent=2)
            meta["weights_sha256"] = weights_sha256(tmp)
            with open(os.path.join(tmp, "t2_meta.json"), "w") as f:
                json.dump(meta, f, indent=1)
            with open(os.path.join(tmp, "README.md"), "w") as f:
                f.write(model_card(meta))
            with open(os.path.join(tmp, "train_log.jsonl"), "w") as f:
                f.writelines(json.dumps(rec) + "\n" for rec in records)
        if scratch_dir and not r.keep_scratch:
            shutil.rmtree(scratch_dir, ignore_errors=True)
        logger.info("cell %s: D = %d tokens, final train loss %.4f, val loss %.4f -> %s", meta["cell"], meta["D"],
                    meta["final_train_loss"], meta["val_loss"], out_dir)
    if s.world > 1:
        box = [meta]
        dist.broadcast_object_list(box, src=0)
        meta = box[0]
    return meta


def _base_meta(s, cell_id, total_steps, schedule, warmup_steps, elapsed):
    D = total_steps * s.tokens_per_step
    c = s.counts
    return dict(cell=cell_id, width=s.width, depth=s.depth, N=c["N"], N_non_embedding=c["N_non_embedding"],
                N_exact=c["N_exact"], D=D, C_train=flops.c_train(c["N"], D), flops_per_token=c["flops_per_token"],
                schedule=schedule, seed=s.recipe.seed, steps=total_steps, seq_len=s.seq_len,
                batch_size=s.batch_size, vocab_size=s.vocab_size, lr=s.recipe.lr, betas=list(s.recipe.betas),
                weight_decay=s.recipe.weight_decay, warmup_steps=warmup_steps, grad_clip=s.recipe.grad_clip,
                z_loss=s.recipe.z_loss, precision=s.precision, wall_seconds=elapsed)


@contextlib.contextmanager
def _locked(lock_path, rank):
    """Exclusive lock on `lock_path` (rank 0 holds it for the job): on a trunk dir's `.lock`, two cells of one
    size never extend the same trunk at once; beside a cell's scratch dir, two trainers never share it."""
    if rank != 0:
        yield
        return
    os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _cell_lock(s, scratch_dir, out_dir):
    """Hold the cell's lock (`{scratch_dir}.lock`) while training it; yields True when another trainer of the same
    cell (a resubmitted job whose first copy kept running) finished it while this one waited: then the caller keeps
    that checkpoint instead of training over the other's scratch state and deleting it."""
    meta_path = os.path.join(out_dir, "t2_meta.json")
    existed = os.path.exists(meta_path)
    with _locked(f"{scratch_dir.rstrip(os.sep)}.lock", s.rank):
        finished = [not existed and os.path.exists(meta_path)]
        if s.world > 1:
            dist.broadcast_object_list(finished, src=0)
        yield finished[0]


def _finished_meta(out_dir, cell_id):
    logger.info("cell %s: another trainer finished it while this one waited for its lock; keeping %s", cell_id,
                out_dir)
    with open(os.path.join(out_dir, "t2_meta.json")) as fh:
        return json.load(fh)
