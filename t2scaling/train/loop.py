"""The one training loop (`_train_steps`) and its loss: cross-entropy with z-loss (`CrossEntropyZLoss`), in row
chunks; gradient accumulation, progress, SIGTERM and out-of-memory handling.
"""

import contextlib
import json
import logging
import math
import os
import signal
import sys
import threading
import time

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from t2scaling.jobs import PROGRESS_EVERY_S
from t2scaling.memory import LOSS_KEEP_ELEMENTS, largest_micro_batch, loss_chunks, training_memory
from t2scaling.train.session import _state_files, _state_path
from t2scaling.units import format_count

logger = logging.getLogger(__name__)


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
        chunks = loss_chunks(*flat.shape)
        tops, totals = [], []
        for start, stop in chunks:
            rows = slice(start, stop)
            tops.append(flat[rows].amax(-1, keepdim=True).to(dtype))  # = the max of the fp32 copy, exactly
            exps = _exp(flat[rows], tops[-1])
            totals.append(exps.sum(-1, keepdim=True))
        # Small logits (tiny CPU models) keep their exponentials for the backward: recomputing them costs more
        # than holding them, and the backward then does the same arithmetic on the same values.
        ctx.exps = exps if len(chunks) == 1 and flat.numel() <= LOSS_KEEP_ELEMENTS else None
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
        exps, ctx.exps = ctx.exps, None  # used once: a second backward (retain_graph) recomputes them
        if exps is not None:
            return exps.mul_(scale).scatter_add_(-1, targets, at_target).to(logits.dtype).view_as(logits), None
        grad = torch.empty_like(flat)
        for start, stop in loss_chunks(*flat.shape):
            rows = slice(start, stop)  # one expression: the chunk's temporary is freed before the next one's
            grad[rows] = _exp(flat[rows], top[rows]).mul_(scale[rows]).scatter_add_(-1, targets[rows], at_target[rows])
        return grad.view_as(logits), None


def _exp(logits, top):
    """exp(logits − top) in top's dtype (fp32 or wider), as exp2 of the log2(e)-scaled difference: exp2 is ~3x
    faster than exp on CPU. The subtraction promotes logits exactly and makes the one fresh tensor the rest
    works in place on; the input itself is never written."""
    return torch.sub(logits, top).mul_(1 / math.log(2)).exp2_()


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
