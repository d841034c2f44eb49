"""Pretrain one (N, D) grid cell into an HF checkpoint dir (DESIGN.md §3.2, §4.2, §5).

One training loop (`_train_steps`) serves three entry points; the schedule is a pure function of the step:
- `train_cell`: one run per cell. `cosine` (paper): linear warmup over `warmup_tokens` (default N) then
  cosine to zero at exactly D tokens. `wsd` runs `train_trunk` + `train_decay` below.
- `train_trunk`: warmup then constant lr, shared by every D of one model size; saves its full state at each
  D's branch point (1 − decay_fraction)·D. Extending the trunk for a larger D resumes from its newest state.
- `train_decay`: loads a trunk branch state and decays the lr to zero over the last decay_fraction·D tokens,
  `1-sqrt` (lr·(1 − √progress), Hägele et al. 2024, the default) or `linear`.

Recipe (the paper's): AdamW lr 3e-3, β = (0.9, 0.95), weight decay 1e-4 on matrices only (RMSNorm gains and
the tied embedding are exempt: an embedding row of a rare token receives few gradient updates, so decay would
shrink it toward zero between them), grad clip 1.0, z-loss 1e-4·mean(logsumexp(logits)²) with a fused analytic
loss (`CrossEntropyZLoss`), bf16 autocast where the device has native bf16 (`precision`; CUDA, and CPUs with
AVX512-BF16/AMX), SDPA attention (flash kernels on CUDA; run in fp32 on CPU, where that is faster), optional
`torch.compile`, `torchrun` DDP when WORLD_SIZE is set (gloo on CPU, nccl on CUDA).

Data order: the train token file is cut into non-overlapping windows of seq_len + 1 tokens; each epoch visits
all of them in a permutation seeded by (seed, epoch). Global sample g = step·batch_size + row, so the batch of
a step is a pure function of (seed, step): resuming needs only the step, every rank reads its own rows of the
global batch, and a WSD branch sees exactly the data a cosine run with the same seed sees.

Resumable state (model, optimizer, step, torch RNG, loss history, log records) goes to `step-XXXXXXXXX.pt` files
in the scratch dir every `checkpoint_every_s` seconds (and every `checkpoint_every_steps` steps), written
atomically; a run killed at any point and restarted ends with bitwise the same weights (tested on CPU; on CUDA
with `deterministic=True`, as far as PyTorch has deterministic kernels). The checkpoint dir is built beside
`out_dir` and renamed into place.
"""

import contextlib
import ctypes
import dataclasses
import datetime
import fcntl
import functools
import glob
import json
import logging
import math
import os
import re
import shutil
import signal
import sys
import threading
import time

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm
from transformers import AttentionInterface, AutoTokenizer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from t2scaling import __version__
from t2scaling.atomic import atomic_dir, atomic_file
from t2scaling.jobs import PROGRESS_EVERY_S
from t2scaling.grid import trunk_name
from t2scaling.checkpoint import diverged, model_card, weights_sha256
from t2scaling.memory import largest_micro_batch, loss_chunks, training_memory
from t2scaling.model import build_model, model_counts
from t2scaling.runtime import pick_device
from t2scaling.units import format_count

logger = logging.getLogger(__name__)

STATE_PATTERN = re.compile(r"^step-(\d{9})\.pt$")
SCHEDULES = ("cosine", "wsd")
DECAY_SHAPES = ("1-sqrt", "linear")


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


# ---------------------------------------------------------------------------------------------- schedule

def steps_for(tokens, tokens_per_step):
    """Optimizer steps that consume `tokens` tokens, rounded to a whole step (at least one)."""
    if not tokens > 0:
        raise ValueError(f"training tokens D must be positive, got {tokens}")
    return max(1, round(tokens / tokens_per_step))


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


# -------------------------------------------------------------------------------------------------- data

class TokenWindows:
    """Deterministic batches of (seq_len + 1)-token windows from a flat token array (see module doc)."""

    def __init__(self, tokens, seq_len, seed, path="train tokens"):
        self.tokens, self.seq_len, self.seed = tokens, seq_len, seed
        self.n_windows = (len(tokens) - 1) // seq_len
        if self.n_windows < 1:
            raise ValueError(f"{path}: {len(tokens)} tokens, fewer than seq_len + 1 = {seq_len + 1}; "
                             "use a larger corpus or a shorter --seq-len")
        self._epoch, self._order = None, None

    def _permutation(self, epoch):
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)
        return self._order

    def rows(self, first, count):
        """Global samples first..first+count-1 as an int64 array (count, seq_len + 1)."""
        index = np.arange(first, first + count)
        epochs = index // self.n_windows
        windows = np.empty(count, dtype=np.int64)
        for epoch in np.unique(epochs):
            hit = epochs == epoch
            windows[hit] = self._permutation(int(epoch))[index[hit] % self.n_windows]
        offsets = windows[:, None] * self.seq_len + np.arange(self.seq_len + 1)
        return np.asarray(self.tokens[offsets], dtype=np.int64)


def _load_tokens(path, what):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} token file {path} not found; write it with `t2scaling tokenize`")
    tokens = np.load(path, mmap_mode="r")
    if tokens.ndim != 1 or tokens.dtype.kind not in "iu":
        raise ValueError(f"{path}: expected a flat integer token array, got shape {tokens.shape} {tokens.dtype}")
    return tokens


# ------------------------------------------------------------------------------------------- environment

def _distributed():
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) when not launched by it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def _pick_device(name, local_rank, world):
    device = pick_device(name, local_rank, world)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 leftovers (optimizer, norms) on tensor cores
        torch.backends.cudnn.allow_tf32 = True
    return device


@functools.lru_cache(maxsize=None)
def _keep_freed_memory():
    """glibc hands large freed blocks back to the OS, so each CPU training step page-faults its big temporaries
    (logits, attention) in afresh: ~2,000 faults a step for a 0.1M model, ~10 % of its time. Keep them in the
    heap instead (mmap threshold at glibc's 32 MiB maximum, trim threshold 1 GiB). Process-wide, glibc only."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    libc.mallopt(m_mmap_threshold, 32 << 20)
    libc.mallopt(m_trim_threshold, 1 << 30)


def _cpu_has_native_bf16():
    """AVX512-BF16 or AMX: bf16 matmuls run 2-4x faster than fp32 (not merely emulated)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def _autocast_dtype(precision, device):
    """bf16 autocast (None = fp32) for `precision` auto/bf16/fp32. auto: bf16 on CUDA with bf16 support, and on
    CPUs with native bf16 (benchmarks/bench_train.py: 1.5-2.3x faster steps than fp32 for 0.1M-5M models);
    else fp32.
    fp16 would need loss scaling and is not offered."""
    if precision == "fp32":
        return None
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else _cpu_has_native_bf16()
    if precision == "auto":
        return torch.bfloat16 if native else None
    if device.type == "cuda" and not native:
        raise ValueError(f"precision bf16 asked for but {torch.cuda.get_device_name(device)} lacks bf16")
    return torch.bfloat16


def _sdpa_fp32_attention(module, query, key, value, attention_mask, **kwargs):
    """HF's SDPA attention run in fp32 inside CPU bf16 autocast: PyTorch's CPU flash-attention kernels are
    2-4x faster in fp32 than in bf16 (forward + backward of a (32, 3, 128, 16) attention: 9 ms vs 36 ms on
    AVX512-BF16), and faster than eager bf16 matmuls. Registered as attn_implementation "sdpa_fp32"; a
    runtime choice only, never saved in config.json."""
    with torch.autocast("cpu", enabled=False):
        out, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask,
                                              **kwargs)
    return out.to(value.dtype), weights


AttentionInterface.register("sdpa_fp32", _sdpa_fp32_attention)
AttentionMaskInterface.register("sdpa_fp32", sdpa_mask)


def _attention_kernel(device, autocast_dtype):
    """SDPA everywhere (flash kernels on CUDA); on CPU under bf16 autocast, SDPA in fp32 (see above)."""
    return "sdpa_fp32" if device.type == "cpu" and autocast_dtype is not None else "sdpa"


@functools.lru_cache(maxsize=None)
def matmul_peak_flops(device="cpu", dtype="float32", seconds=0.3):
    """Measured dense matmul FLOP/s of one device (the MFU denominator): best of repeated square products."""
    device = torch.device(device)
    torch_dtype = getattr(torch, dtype)
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=torch_dtype)
    b = torch.randn(n, n, device=device, dtype=torch_dtype)
    best, deadline = 0.0, time.perf_counter() + seconds
    for i in range(1000):
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        if i:  # the first product warms the kernels up
            best = max(best, 2 * n ** 3 / elapsed)
        if i >= 3 and time.perf_counter() > deadline:
            break
    return best


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
        self.train_tokens = _load_tokens(train_tokens_path, "train")
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


# --------------------------------------------------------------------------------------------- the loop

class CrossEntropyZLoss(torch.autograd.Function):
    """(mean next-token NLL, mean logsumexp²) of logits (..., V) against integer targets, in fp32 whatever the
    logits' dtype, with an analytic backward: d/dlogits = softmax·(g_nll + 2·g_z·lse)/n − (g_nll/n at the target).

    Replaces HF's label-shifting loss path, with the z-loss (PaLM) from the same logsumexp. Holds at most one chunk
    of rows in fp32 (`memory.loss_chunks`, ~256 MiB; paper-scale logits take 413 MB per sequence in fp32): forward
    keeps per row only the max and the sum of exponentials, backward recomputes a chunk's exponentials from the
    logits (kept in their own dtype) and writes its gradient straight into the gradient tensor.

    Bitwise the pre-chunking loss (one fp32 pass over all rows, which every trained checkpoint used): each row
    goes through the same operations, and each elementwise result and row sum comes out the same, on CUDA (checked
    by tests/test_train.py where a GPU is present) and on one CPU thread; on any number of CPU threads while the
    logits fit one chunk (e.g. configs/smoke.yaml). Not beyond that on several CPU threads: they split a pass into
    ranges, whose last elements short of the SIMD step take exp2's scalar path, which may differ in the last bit;
    chunked and whole passes then agree only when every range is a multiple of 32 elements (e.g. a vocabulary that
    is a multiple of 256 with up to 8 threads).
    """

    @staticmethod
    def forward(ctx, logits, targets):
        flat = logits.reshape(-1, logits.shape[-1])
        dtype = torch.promote_types(logits.dtype, torch.float32)
        tops, totals = [], []
        for start, stop in loss_chunks(*flat.shape):
            rows = slice(start, stop)
            tops.append(flat[rows].amax(-1, keepdim=True).to(dtype))  # = the max of the fp32 copy, exactly
            totals.append(_exp(flat[rows], tops[-1]).sum(-1, keepdim=True))
        top = torch.cat(tops).view(*logits.shape[:-1], 1)
        total = torch.cat(totals).view_as(top)
        lse = (top + total.log()).squeeze(-1)
        nll = lse - logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1).float()
        ctx.save_for_backward(logits, targets, top, total, lse)
        return nll.mean(), lse.square().mean()

    @staticmethod
    def backward(ctx, grad_nll, grad_z):
        logits, targets, top, total, lse = ctx.saved_tensors
        n = lse.numel()
        scale = ((grad_nll + 2 * grad_z * lse.unsqueeze(-1)) / (n * total)).view(-1, 1)
        at_target = (-grad_nll / n).expand(n, 1)
        flat, top, targets = logits.reshape(n, -1), top.view(-1, 1), targets.reshape(-1, 1)
        grad = torch.empty_like(flat)
        for start, stop in loss_chunks(*flat.shape):
            rows = slice(start, stop)  # one expression: the chunk's temporary is freed before the next one's
            grad[rows] = _exp(flat[rows], top[rows]).mul_(scale[rows]).scatter_add_(-1, targets[rows], at_target[rows])
        return grad.view_as(logits), None


def _exp(logits, top):
    """exp(logits − top) in top's dtype (fp32 or wider), as exp2 of the log2(e)-scaled difference: exp2 is ~3x
    faster than exp on CPU. In place on one fresh copy, never the input itself."""
    return logits.to(top.dtype, copy=True).sub_(top).mul_(1 / math.log(2)).exp2_()


def _loss_terms(model, inputs, targets, z_loss, autocast):
    """(mean NLL, z-loss term) of one micro-batch: logits under autocast, the loss in fp32 outside it."""
    with autocast:
        logits = model(input_ids=inputs, use_cache=False).logits
    nll, lse_squared = CrossEntropyZLoss.apply(logits, targets)
    return nll, z_loss * lse_squared


def _log_progress(cell_id, step, stop_step, record, *, steps_per_s, tokens_per_s):
    """One human-readable progress line: step/total, loss, throughput, MFU, lr, ETA at the recent pace."""
    eta = tqdm.format_interval((stop_step - step) / steps_per_s) if steps_per_s > 0 else "?"
    logger.info("%s: step %d/%d (%.0f%%), loss %.4f, %s tokens/s, MFU %.1f%%, lr %.3g, elapsed %s, ETA %s",
                cell_id, step, stop_step, 100 * step / stop_step, record["loss"], format_count(tokens_per_s),
                100 * record["mfu"], record["lr"], tqdm.format_interval(record["elapsed_s"]), eta)


@contextlib.contextmanager
def _noting_sigterm():
    """Yields a function telling whether SIGTERM arrived (a scheduler's time limit or `scancel`; SLURM sends
    SIGKILL KillWait seconds later): the loop then saves a resumable state at its next loss sync and stops, so
    the retried job resumes there rather than at the last periodic state. Only the main thread can set a handler."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        yield lambda: bool(seen)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _any_rank(s, flag):
    """flag on any rank (all ranks call this at the same step)."""
    if s.world == 1:
        return flag
    value = torch.tensor([float(flag)], device=s.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _train_steps(s, *, cell_id, start_step, stop_step, lr_fn, history, records, elapsed, identity,
                 state_dir, keep_steps=(), log_path=None):
    """The one training loop: updates start_step..stop_step-1 of run `s` (a _Session).

    history: per-step mean train NLL (global), extended in place; records: JSONL log records, extended in
    place. Saves a state at every step in keep_steps (kept), every checkpoint_every_s / _steps (only the
    newest is kept) and at stop_step. Returns the elapsed training seconds (across invocations).
    Progress (rank 0): a tqdm bar on a terminal (unless recipe.progress is off); otherwise, as in a job's log,
    a logged line (`_log_progress`) at the first loss sync, then every PROGRESS_EVERY_S, and at stop_step.
    """
    r = s.recipe
    keep_steps = set(keep_steps)
    n_micro = s.local_batch // s.micro_batch
    cuda = s.device.type == "cuda"
    autocast = (torch.autocast(s.device.type, dtype=s.autocast_dtype) if s.autocast_dtype is not None
                else contextlib.nullcontext())
    params = list(s.raw_model.parameters())
    losses, norms = [], []
    last_save = last_flush = time.perf_counter()
    flush_step = start_step
    show_bar = s.rank == 0 and r.progress and sys.stderr.isatty()
    bar = tqdm(total=stop_step, initial=start_step, desc=cell_id, unit="step", mininterval=2,
               disable=not show_bar)
    log_lines = s.rank == 0 and not show_bar
    line_time, line_step = None, start_step  # the last progress line (None: none yet)
    log_file = open(log_path, "a") if (log_path and s.rank == 0) else None

    def flush(step):
        """Sync the buffered losses (all ranks), check them, log; `step` = updates done."""
        nonlocal losses, norms, last_flush, flush_step, line_time, line_step
        stacked = torch.stack([torch.stack(losses), torch.stack(norms)])
        if s.world > 1:
            dist.all_reduce(stacked)
            stacked[0] /= s.world  # mean loss over ranks; the grad norm is already global
        values = stacked.cpu().tolist()
        for i, (loss, norm) in enumerate(zip(*values)):
            if not (math.isfinite(loss) and math.isfinite(norm)):
                bad = flush_step + i + 1
                raise RuntimeError(
                    f"cell {cell_id}: training diverged at step {bad} of {stop_step} (loss {loss}, grad norm "
                    f"{norm}, lr {lr_fn(bad - 1):.3g}); lower the learning rate (now {r.lr:g}) or lengthen the "
                    "warmup")
        history.extend(values[0])
        now = time.perf_counter()
        tokens_per_s = (step - flush_step) * s.tokens_per_step / max(now - last_flush, 1e-9)
        record = dict(step=step, tokens=step * s.tokens_per_step, loss=values[0][-1], lr=lr_fn(step - 1),
                      grad_norm=values[1][-1], tokens_per_s=tokens_per_s,
                      mfu=s.counts["flops_per_token"] * tokens_per_s / (s.peak_flops * s.world),
                      elapsed_s=elapsed + now - t0)
        records.append(record)
        if log_file:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
        bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{tokens_per_s:.3g}", mfu=f"{record['mfu']:.1%}")
        if log_lines and (line_time is None or now - line_time >= PROGRESS_EVERY_S or step == stop_step):
            since = now - (t0 if line_time is None else line_time)
            steps_per_s = (step - line_step) / max(since, 1e-9)
            _log_progress(cell_id, step, stop_step, record, steps_per_s=steps_per_s,
                          tokens_per_s=steps_per_s * s.tokens_per_step)
            line_time, line_step = now, step
        losses, norms, last_flush, flush_step = [], [], now, step

    t0 = time.perf_counter()
    terminate = contextlib.ExitStack()
    terminated = terminate.enter_context(_noting_sigterm())
    try:
        for step in range(start_step, stop_step):
            lr = lr_fn(step)
            for group in s.optimizer.param_groups:
                group["lr"] = lr
            rows = s.windows.rows(step * s.batch_size + s.rank * s.local_batch, s.local_batch)
            batch = torch.from_numpy(rows)
            batch = batch.pin_memory().to(s.device, non_blocking=True) if cuda else batch
            step_loss = torch.zeros((), device=s.device)
            for i in range(n_micro):
                micro = batch[i * s.micro_batch:(i + 1) * s.micro_batch]
                # DDP all-reduces gradients only on the last micro-batch of the step.
                sync = s.world == 1 or i == n_micro - 1
                with contextlib.nullcontext() if sync else s.model.no_sync():
                    nll, z = _loss_terms(s.model, micro[:, :-1], micro[:, 1:], r.z_loss, autocast)
                    ((nll + z) / n_micro).backward()
                step_loss += nll.detach() / n_micro
            norms.append(torch.nn.utils.clip_grad_norm_(params, r.grad_clip, foreach=True))
            s.optimizer.step()
            s.optimizer.zero_grad(set_to_none=True)
            losses.append(step_loss)
            done = step + 1
            bar.update(1)
            every = r.checkpoint_every_steps
            must_save = done in keep_steps or done == stop_step or bool(every and done % every == 0)
            if must_save or done % r.log_every == 0:
                flush(done)
                timed = s.rank == 0 and time.perf_counter() - last_save >= r.checkpoint_every_s
                stop = _any_rank(s, terminated()) and done < stop_step
                if must_save or timed or stop:
                    spent = elapsed + time.perf_counter() - t0
                    s.save_state(_state_path(state_dir, done), done, history, records, spent, identity)
                    if s.rank == 0:  # keep branch points and the newest state only
                        for old, path in _state_files(state_dir).items():
                            if old < done and old not in keep_steps:
                                os.remove(path)
                    last_save = time.perf_counter()
                if stop:
                    raise SystemExit(f"cell {cell_id}: stopped by SIGTERM after step {done} of {stop_step}; its "
                                     f"state is saved in {state_dir}, and running the job again resumes there")
    except torch.cuda.OutOfMemoryError as error:
        raise RuntimeError(_out_of_memory_message(s, cell_id)) from error
    finally:
        terminate.close()
        bar.close()
        if log_file:
            log_file.close()
    s.barrier()
    return elapsed + time.perf_counter() - t0


def _device_memory_bytes(device):
    """Total memory of a CUDA device, or of the host for a CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _out_of_memory_message(s, cell_id):
    """What an out-of-memory training step of run `s` needed, what the device has, and the micro-batch to use."""
    shape = dict(vocab_size=s.vocab_size, seq_len=s.seq_len, head_dim=s.recipe.head_dim,
                 ffn_multiple=s.recipe.ffn_multiple, precision=s.precision)
    need = training_memory(s.width, s.depth, micro_batch_size=s.micro_batch, **shape)["total"]
    have = _device_memory_bytes(s.device)
    fits = largest_micro_batch(s.width, s.depth, budget_bytes=have, batch_size=s.local_batch, **shape)
    if fits is None or fits >= s.micro_batch:  # the estimate is no help here: the next smaller divisor
        fits = max((m for m in range(1, s.micro_batch) if s.local_batch % m == 0), default=None)
    fix = (f"set training.micro_batch_size (config) / --micro-batch-size (CLI) to a smaller divisor of the "
           f"per-device batch {s.local_batch}, e.g. {fits}" if fits else
           "even one sequence does not fit: use a device with more memory, a shorter seq_len or a smaller model")
    return (f"cell {cell_id}: out of memory on {s.device} training micro-batches of {s.micro_batch} sequences "
            f"(width {s.width}, depth {s.depth}, seq_len {s.seq_len}, {s.precision}); estimated need "
            f"{need / 2**30:.1f} GiB (t2scaling.memory.training_memory), device total {have / 2**30:.1f} GiB; {fix}")


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


# ------------------------------------------------------------------------------------------------ export

def _finish(s, out_dir, *, val_tokens_path, meta, history, records, scratch_dir):
    """Validation loss (a run no better than a uniform guess fails here, like a NaN), then the checkpoint dir (HF
    files, tokenizer, t2_meta.json with the weights' sha256, README.md model card, train_log.jsonl) built beside
    out_dir and renamed into place. Rank 0 works, the others wait; every rank returns the meta."""
    from t2scaling.evaluate import validation_loss  # lazy: evaluation code loads only when needed

    r = s.recipe
    if s.rank == 0:
        val_tokens = _load_tokens(val_tokens_path, "validation")
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
                N_exact=c["N_exact"], D=D, C_train=6.0 * c["N"] * D, flops_per_token=c["flops_per_token"],
                schedule=schedule, seed=s.recipe.seed, steps=total_steps, seq_len=s.seq_len,
                batch_size=s.batch_size, vocab_size=s.vocab_size, lr=s.recipe.lr, betas=list(s.recipe.betas),
                weight_decay=s.recipe.weight_decay, warmup_steps=warmup_steps, grad_clip=s.recipe.grad_clip,
                z_loss=s.recipe.z_loss, precision=s.precision, wall_seconds=elapsed)


# --------------------------------------------------------------------------------------------- entry points

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


# ------------------------------------------------------------------------------------------- the workflow's job

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
