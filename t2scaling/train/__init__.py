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

Modules: `schedule` (the lr as a function of the step, torch-free), `batches` (the data order), `device`
(device, precision, attention kernel), `session` (the recipe and a run's model, optimizer and batches), `loop` (the
training loop and its loss), `state` (resumable state, the log, export, locks), `cell` (`train_cell`), `wsd`
(`train_trunk`, `train_decay`), `job` (the workflow's job, locally or under torchrun).
"""

from t2scaling.train.batches import TokenWindows
from t2scaling.train.cell import train_cell
from t2scaling.train.device import matmul_peak_flops
from t2scaling.train.job import SCRATCH_ROOT, cell_kwargs, torchrun_command, train_job
from t2scaling.train.loop import CrossEntropyZLoss
from t2scaling.train.schedule import DECAY_SHAPES, SCHEDULES, decay_start_step, lr_at, steps_for, wsd_plan
from t2scaling.train.session import Recipe, cli_args
from t2scaling.train.wsd import train_decay, train_trunk

__all__ = ["CrossEntropyZLoss", "DECAY_SHAPES", "Recipe", "SCHEDULES", "SCRATCH_ROOT", "TokenWindows", "cell_kwargs",
           "cli_args", "decay_start_step", "lr_at", "matmul_peak_flops", "steps_for", "torchrun_command",
           "train_cell", "train_decay", "train_job", "train_trunk", "wsd_plan"]
