"""A training run's recipe (`Recipe`, the paper's defaults) and session (`_Session`: model, optimizer,
batches, device, DDP), and the recipe's command-line form (`cli_args`) that torchrun jobs carry.
"""

import dataclasses
import datetime
import glob
import math
import os
import re

import torch
import torch.distributed as dist
from transformers import AutoTokenizer

from t2scaling.atomic import atomic_file
from t2scaling.model import build_model, model_counts
from t2scaling.data import load_tokens
from t2scaling.train.batches import TokenWindows
from t2scaling.train.device import (_attention_kernel, _autocast_dtype, _distributed, _keep_freed_memory, _pick_device,
                                    matmul_peak_flops)
from t2scaling.train.schedule import DECAY_SHAPES


STATE_PATTERN = re.compile(r"^step-(\d{9})\.pt$")


@dataclasses.dataclass
class Recipe:
    """Training settings shared by train_cell, train_trunk and train_decay (keyword arguments of each)."""

    lr: float = 3e-3
    betas: tuple = (0.9, 0.95)
    weight_decay: float = 1e-4
    warmup_tokens: float | None = None  # default N; cosine caps warmup at half the run
    grad_clip: float = 1.0
    z_loss: float = 1e-4
    seed: int = 0
    decay_fraction: float = 0.2  # wsd: share of D spent decaying
    decay_shape: str = "1-sqrt"  # wsd: "1-sqrt" or "linear"
    micro_batch_size: int | None = None  # sequences per forward on one device; default: the rank's whole share
    head_dim: int = 64
    ffn_multiple: int = 256
    vocab_size: int | None = None  # default: len(tokenizer)
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    precision: str = "auto"  # auto (bf16 autocast where the device has native bf16, else fp32), bf16, fp32
    compile: bool = False
    deterministic: bool = False  # CUDA: deterministic kernels (bitwise resume/reruns, slower); CPU always is
    threads: int | None = None  # CPU threads; default OMP_NUM_THREADS or torch's choice
    checkpoint_every_s: float = 120.0
    checkpoint_every_steps: int | None = None
    log_every: int = 10  # steps between loss syncs, log records and NaN checks
    peak_flops: float | None = None  # per device, for MFU; default: measured matmul peak
    val_max_tokens: int | None = None
    val_batch_size: int | None = None
    keep_scratch: bool = False
    progress: bool = True  # tqdm bar on rank 0

    def __post_init__(self):
        self.betas = tuple(self.betas)
        if self.decay_shape not in DECAY_SHAPES:
            raise ValueError(f"decay_shape must be one of {DECAY_SHAPES}, got {self.decay_shape!r}")
        if not 0 < self.decay_fraction <= 1:
            raise ValueError(f"decay_fraction must be in (0, 1], got {self.decay_fraction}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.lr <= 0 or self.grad_clip <= 0 or self.log_every < 1:
            raise ValueError(f"lr ({self.lr}), grad_clip ({self.grad_clip}) and log_every ({self.log_every}) "
                             "must be positive")


class _Session:
    """Everything one invocation holds: device, ranks, data, model, optimizer and the run's identity."""

    def __init__(self, *, width, depth, seq_len, batch_size, train_tokens_path, tokenizer_dir, recipe):
        self.recipe, self.seq_len, self.batch_size = recipe, seq_len, batch_size
        self.width, self.depth, self.tokenizer_dir = width, depth, tokenizer_dir
        self.rank, self.world, local_rank = _distributed()
        if recipe.threads:
            torch.set_num_threads(recipe.threads)
        if recipe.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.device = _pick_device(recipe.device, local_rank, self.world)
        if self.device.type == "cpu":
            _keep_freed_memory()
        if self.world > 1 and not dist.is_initialized():
            # Rank 0 alone runs validation and export while the others wait: allow an hour for that.
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo",
                                    timeout=datetime.timedelta(hours=1))
        if batch_size % self.world:
            raise ValueError(f"batch_size {batch_size} (global) must be divisible by the {self.world} processes")
        self.local_batch = batch_size // self.world
        self.micro_batch = min(recipe.micro_batch_size or self.local_batch, self.local_batch)
        if self.local_batch % self.micro_batch:
            raise ValueError(f"micro_batch_size {self.micro_batch} must divide the per-process batch "
                             f"{self.local_batch} (batch_size {batch_size} / {self.world} processes)")

        if not os.path.isdir(tokenizer_dir):
            raise FileNotFoundError(f"tokenizer dir {tokenizer_dir} not found; write it with `t2scaling tokenize`")
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        self.vocab_size = recipe.vocab_size or len(tokenizer)
        if self.vocab_size < len(tokenizer):
            raise ValueError(f"vocab_size {self.vocab_size} is smaller than the tokenizer in {tokenizer_dir} "
                             f"({len(tokenizer)} tokens); pass vocab_size >= {len(tokenizer)}")
        self.train_tokens_path = train_tokens_path
        self.train_tokens = load_tokens(train_tokens_path, "train token")
        head = int(self.train_tokens[: 10_000_000].max())
        if head >= self.vocab_size:
            raise ValueError(f"{train_tokens_path}: token id {head} >= vocab_size {self.vocab_size}; the token "
                             f"file was not made with the tokenizer in {tokenizer_dir}")
        self.windows = TokenWindows(self.train_tokens, seq_len, recipe.seed, train_tokens_path)

        shape = dict(head_dim=recipe.head_dim, ffn_multiple=recipe.ffn_multiple)
        self.counts = model_counts(width, depth, self.vocab_size, seq_len, **shape)
        self.autocast_dtype = _autocast_dtype(recipe.precision, self.device)
        self.precision = "bf16" if self.autocast_dtype is not None else "fp32"
        self.raw_model = build_model(width, depth, self.vocab_size, seq_len, seed=recipe.seed,
                                     attn_implementation=_attention_kernel(self.device, self.autocast_dtype),
                                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                     pad_token_id=tokenizer.pad_token_id, **shape).to(self.device)
        self.raw_model.train()
        self.tokens_per_step = batch_size * seq_len
        warmup_tokens = self.counts["N"] if recipe.warmup_tokens is None else recipe.warmup_tokens
        self.warmup_steps = math.ceil(warmup_tokens / self.tokens_per_step)

        decay, no_decay = [], []
        for name, p in self.raw_model.named_parameters():
            (decay if p.dim() >= 2 and "embed_tokens" not in name else no_decay).append(p)
        groups = [dict(params=decay, weight_decay=recipe.weight_decay), dict(params=no_decay, weight_decay=0.0)]
        # Fused AdamW: one kernel for all tensors (CUDA and CPU); bitwise deterministic on CPU.
        self.optimizer = torch.optim.AdamW(groups, lr=recipe.lr, betas=recipe.betas, eps=1e-8, fused=True)

        model = torch.compile(self.raw_model) if recipe.compile else self.raw_model
        if self.world > 1:
            devices = [self.device] if self.device.type == "cuda" else None
            model = torch.nn.parallel.DistributedDataParallel(model, device_ids=devices, gradient_as_bucket_view=True)
        self.model = model
        peak_dtype = "bfloat16" if self.autocast_dtype is not None else "float32"
        self.peak_flops = recipe.peak_flops or (matmul_peak_flops(str(self.device), peak_dtype)
                                                if self.rank == 0 else float("nan"))
        # The run's identity: a resumed or branched state must come from a run with the same values.
        self.identity = dict(width=width, depth=depth, vocab_size=self.vocab_size, seq_len=seq_len,
                             batch_size=batch_size, lr=recipe.lr, betas=list(recipe.betas),
                             weight_decay=recipe.weight_decay, warmup_steps=self.warmup_steps,
                             grad_clip=recipe.grad_clip, z_loss=recipe.z_loss, seed=recipe.seed,
                             head_dim=recipe.head_dim, ffn_multiple=recipe.ffn_multiple,
                             precision=self.precision, train_tokens=len(self.train_tokens))

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def save_state(self, path, step, history, records, elapsed, identity):
        if self.rank != 0:
            return
        state = dict(model=self.raw_model.state_dict(), optimizer=self.optimizer.state_dict(), step=step,
                     history=history, records=records, elapsed=elapsed, identity=identity,
                     rng=torch.get_rng_state(),
                     cuda_rng=torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None)
        with atomic_file(path) as tmp:
            torch.save(state, tmp)

    def load_state(self, path, identity):
        state = torch.load(path, map_location=self.device, weights_only=True)
        mismatched = {k: (state["identity"].get(k), v) for k, v in identity.items() if state["identity"].get(k) != v}
        if mismatched:
            raise ValueError(f"{path} was saved by a different run (saved vs now: {mismatched}); delete "
                             f"{os.path.dirname(path)} to start over, or restore the original settings")
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"].cpu())
        if state["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        return state


def _state_files(directory):
    """{step: path} of the saved training states in a directory."""
    out = {}
    for path in glob.glob(os.path.join(directory, "step-*.pt")):
        match = STATE_PATTERN.match(os.path.basename(path))
        if match:
            out[int(match.group(1))] = path
    return out


def _state_path(directory, step):
    return os.path.join(directory, f"step-{step:09d}.pt")


_CLI_OPTIONS = {  # Recipe field -> type, for --field-name flags
    "lr": float, "weight_decay": float, "warmup_tokens": float, "grad_clip": float, "z_loss": float, "seed": int,
    "decay_fraction": float, "decay_shape": str, "micro_batch_size": int, "head_dim": int, "ffn_multiple": int,
    "vocab_size": int, "device": str, "precision": str, "threads": int, "checkpoint_every_s": float,
    "checkpoint_every_steps": int, "log_every": int, "peak_flops": float, "val_max_tokens": int,
    "val_batch_size": int,
}


def cli_args(**kwargs):
    """The `t2scaling train` flags equivalent to train_cell keyword arguments (for torchrun launches)."""
    paths = dict(cell_id="--cell", train_tokens_path="--train-tokens", val_tokens_path="--val-tokens",
                 tokenizer_dir="--tokenizer")
    out = []
    for key, value in kwargs.items():
        if value is None or value is False or (isinstance(value, (list, tuple)) and not value):
            continue
        flag = paths.get(key, "--" + key.replace("_", "-"))
        if value is True:
            out.append(flag)
        elif isinstance(value, (list, tuple)):
            out += [flag, *map(str, value)]
        else:
            out += [flag, str(value)]
    return out
