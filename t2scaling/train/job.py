"""The workflow's training job: a cell's arguments from the config (`cell_kwargs`), on one process or under
torchrun (`torchrun_command`).
"""

import json
import logging
import os
import sys

from t2scaling.grid import trunk_name
from t2scaling.train.cell import train_cell
from t2scaling.train.session import cli_args

logger = logging.getLogger(__name__)


SCRATCH_ROOT = "results/scratch"  # undeclared by the workflow: a killed job's state survives for its rerun


def cell_kwargs(cell, settings, hints, *, train_tokens_path, val_tokens_path, tokenizer_dir, job_log, threads,
                scratch_root=SCRATCH_ROOT):
    """`train_cell` keyword arguments of one workflow cell.

    cell: {cell_id, width, depth, tokens}; settings: the config narrowed to what training reads (seed, model,
    corpus.vocab_size, training); hints: what the job uses that no result depends on (kept out of the compared
    params): branch_tokens, the D of the cell's WSD siblings (grid.wsd_siblings), val_max_tokens, and
    micro_batch_size and checkpoint_every_s (rules/common.smk train_hints).
    Resumable state goes to scratch_root/<cell>, the WSD trunk to scratch_root/<grid.trunk_name>, the JSONL
    training log beside the job's log."""
    model, training = settings["model"], settings["training"]
    kwargs = dict(
        cell_id=cell["cell_id"], width=cell["width"], depth=cell["depth"], tokens=cell["tokens"],
        train_tokens_path=train_tokens_path, val_tokens_path=val_tokens_path, tokenizer_dir=tokenizer_dir,
        seq_len=model["seq_len"], batch_size=training["batch_size"], schedule=training["schedule"],
        scratch_dir=os.path.join(scratch_root, cell["cell_id"]),
        log_path=os.path.splitext(os.fspath(job_log))[0] + ".jsonl",
        vocab_size=settings["corpus"]["vocab_size"], head_dim=model["head_dim"],
        ffn_multiple=model["ffn_multiple"], lr=training["lr"], betas=(training["beta1"], training["beta2"]),
        weight_decay=training["weight_decay"], grad_clip=training["grad_clip"], z_loss=training["z_loss"],
        seed=settings["seed"], decay_fraction=training["decay_fraction"], device=training["device"],
        compile=training["compile"], threads=threads, val_max_tokens=hints["val_max_tokens"], progress=False,
        micro_batch_size=hints["micro_batch_size"], checkpoint_every_s=hints["checkpoint_every_s"],
    )
    if training["schedule"] == "wsd":
        # One stable trunk per model size; it saves the branch point of every D of this size in one pass.
        kwargs["trunk_dir"] = os.path.join(scratch_root, trunk_name(cell["width"], cell["depth"]))
        kwargs["branch_tokens"] = hints["branch_tokens"]
    return kwargs


def torchrun_command(out_dir, gpus, kwargs):
    """The command that trains a cell with one DDP process per GPU: torchrun on `t2scaling train`, whose flags
    carry the same settings (`cli_args`)."""
    return ["torchrun", "--standalone", f"--nproc_per_node={gpus}", "-m", "t2scaling.cli", "train",
            "--out", os.fspath(out_dir), *cli_args(**kwargs)]


def train_job(out_dir, cell, settings, hints, *, train_tokens_path, val_tokens_path, tokenizer_dir, job_log,
              threads, gpus=0, scratch_root=SCRATCH_ROOT):
    """Rule train: train one cell (`cell_kwargs`) into out_dir, in this process, or with gpus > 1 through
    torchrun (`torchrun_command`; its output goes to this process's stderr, the job's log). Returns the
    checkpoint's t2_meta.json dict (read back from out_dir after a torchrun launch)."""
    kwargs = cell_kwargs(cell, settings, hints, train_tokens_path=train_tokens_path,
                         val_tokens_path=val_tokens_path, tokenizer_dir=tokenizer_dir, job_log=job_log,
                         threads=threads, scratch_root=scratch_root)
    if int(gpus) > 1:
        import subprocess

        cmd = torchrun_command(out_dir, int(gpus), kwargs)
        logger.info("launching %s", " ".join(cmd))
        subprocess.run(cmd, check=True, stderr=sys.stderr, stdout=sys.stderr, env=os.environ)
        with open(os.path.join(out_dir, "t2_meta.json")) as fh:
            meta = json.load(fh)
    else:
        meta = train_cell(out_dir, **kwargs)
    logger.info("trained %s: D = %s tokens, val loss %.4f nats/token", cell["cell_id"], meta["D"], meta["val_loss"])
    return meta
