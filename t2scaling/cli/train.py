"""`t2scaling train`: the command line of `t2scaling.train`."""

import json
import logging
import os

import torch.distributed as dist

from t2scaling.cli import DEVICE_HELP
from t2scaling.train.cell import train_cell
from t2scaling.train.schedule import SCHEDULES
from t2scaling.train.session import _CLI_OPTIONS, Recipe


_CLI_HELP = {  # Recipe field -> help text of its --field-name flag (the Recipe comments, for a person)
    "lr": "peak AdamW learning rate",
    "weight_decay": "AdamW weight decay, on matrices only (not norms or the embedding)",
    "warmup_tokens": "tokens of linear lr warmup (default: N; cosine caps it at half the run)",
    "grad_clip": "clip the global gradient norm to this",
    "z_loss": "weight of the z-loss term mean(logsumexp(logits)^2)",
    "seed": "seed of the initial weights and the data order",
    "decay_fraction": "wsd: share of the D tokens spent decaying the lr to zero",
    "decay_shape": "wsd: decay curve, 1-sqrt or linear",
    "micro_batch_size": "sequences per forward pass on one device; gradients are accumulated over the rest of "
                        "the step (default: the device's whole share of --batch-size)",
    "head_dim": "channels per attention head (must divide --width)",
    "ffn_multiple": "round the SwiGLU hidden size d_ff up to a multiple of this",
    "vocab_size": "embedding rows (default: the tokenizer's size; never fewer)",
    "device": DEVICE_HELP,
    "precision": "auto (bf16 autocast where the device has native bf16, else fp32), bf16 or fp32",
    "threads": "CPU threads for torch (default: OMP_NUM_THREADS or torch's choice)",
    "checkpoint_every_s": "seconds between saves of the resumable state",
    "checkpoint_every_steps": "also save the resumable state every this many steps",
    "log_every": "steps between loss syncs, log records and NaN checks",
    "peak_flops": "peak FLOP/s of one device, for MFU (default: a measured matmul peak)",
    "val_max_tokens": "val tokens, from the start, scored for the final validation loss (default: all)",
    "val_batch_size": "sequences per forward pass of the final validation (default: the micro-batch size)",
}


def add_arguments(parser):
    from t2scaling.config import schema_default

    # A setting the pipeline has too defaults to the config schema's value, so `t2scaling train --width 64
    # --depth 2` trains the pipeline's w64-l2; the other defaults are Recipe's.
    schema_keys = {"lr": "training.lr", "weight_decay": "training.weight_decay", "grad_clip": "training.grad_clip",
                   "z_loss": "training.z_loss", "seed": "seed", "decay_fraction": "training.decay_fraction",
                   "head_dim": "model.head_dim", "ffn_multiple": "model.ffn_multiple", "device": "training.device"}
    parser.add_argument("--out", required=True, help="checkpoint dir to write")
    parser.add_argument("--cell", dest="cell_id", help="cell id (default: the --out dir's name)")
    parser.add_argument("--width", type=int, required=True, help="model width w (hidden size)")
    parser.add_argument("--depth", type=int, required=True, help="transformer blocks")
    parser.add_argument("--tokens", type=float, required=True, help="training tokens D")
    parser.add_argument("--data", help="dir with train.npy, val.npy and tokenizer/")
    parser.add_argument("--train-tokens", dest="train_tokens_path", help="train token file (default DATA/train.npy)")
    parser.add_argument("--val-tokens", dest="val_tokens_path", help="val token file (default DATA/val.npy)")
    parser.add_argument("--tokenizer", dest="tokenizer_dir", help="tokenizer dir (default DATA/tokenizer)")
    parser.add_argument("--seq-len", type=int, default=schema_default("model.seq_len"),
                        help="tokens per training sequence (the model's context)")
    parser.add_argument("--batch-size", type=int, default=schema_default("training.batch_size"),
                        help="sequences per optimizer step (global)")
    parser.add_argument("--schedule", choices=SCHEDULES, default=schema_default("training.schedule"),
                        help="lr schedule: cosine to zero at D, or wsd (a shared trunk, then a decay)")
    parser.add_argument("--trunk-dir", help="wsd: the model size's trunk dir")
    parser.add_argument("--branch-tokens", type=float, nargs="+", default=(),
                        help="wsd: the other D values of this size, whose branch points the trunk saves too")
    parser.add_argument("--scratch-dir", help="resumable state (default OUT.scratch)")
    parser.add_argument("--log-path", help="JSONL training log")
    parser.add_argument("--betas", type=float, nargs=2,
                        default=(schema_default("training.beta1"), schema_default("training.beta2")),
                        metavar=("BETA1", "BETA2"), help="AdamW betas")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--deterministic", action="store_true", help="CUDA: deterministic kernels (slower)")
    parser.add_argument("--keep-scratch", action="store_true",
                        help="keep the resumable state after the checkpoint is written")
    for name, kind in _CLI_OPTIONS.items():
        default = schema_default(schema_keys[name]) if name in schema_keys else getattr(Recipe, name)
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=default, help=_CLI_HELP[name])


def run(args):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    paths = dict(train_tokens_path=("train.npy", "--train-tokens"), val_tokens_path=("val.npy", "--val-tokens"),
                 tokenizer_dir=("tokenizer", "--tokenizer"))
    for key, (name, flag) in paths.items():
        if getattr(args, key) is None:
            if args.data is None:
                raise ValueError(f"t2scaling train: give --data DIR (holding {name}) or {flag} explicitly")
            setattr(args, key, os.path.join(args.data, name))
    recipe = {name: getattr(args, name) for name in _CLI_OPTIONS}
    tokens = int(args.tokens) if float(args.tokens).is_integer() else args.tokens
    try:
        meta = train_cell(args.out, cell_id=args.cell_id or os.path.basename(os.path.normpath(args.out)),
                          width=args.width, depth=args.depth, tokens=tokens,
                          train_tokens_path=args.train_tokens_path, val_tokens_path=args.val_tokens_path,
                          tokenizer_dir=args.tokenizer_dir, seq_len=args.seq_len, batch_size=args.batch_size,
                          schedule=args.schedule, trunk_dir=args.trunk_dir, scratch_dir=args.scratch_dir,
                          branch_tokens=[int(d) if float(d).is_integer() else d for d in args.branch_tokens],
                          log_path=args.log_path, betas=tuple(args.betas), compile=args.compile,
                          deterministic=args.deterministic,
                          keep_scratch=args.keep_scratch, **recipe)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(meta, indent=1))
    return 0
