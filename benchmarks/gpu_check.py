"""The GPU check (issue 13 §3): what only a CUDA machine can show, in one run meant to take at most 8 minutes on one
H100/H200 (estimated: ~4 min on one GPU, the DDP check adds ~1 min with two).

    bash scripts/gpu-check.sh                         # on a CUDA machine
    bash scripts/gpu-check.sh --device cpu --quick    # the same path on CPU, tiny models (tests/test_gpu_check.py)

1. train: bf16 training of a ~25M and a ~150M model of the paper grid (configs/paper.yaml's w320-l10 and
   w704-l19; vocab 32768, seq_len 1024, head_dim 32) for 300 steps of 32 x 1024 tokens: tokens/s and MFU against
   the measured bf16 matmul peak (train.matmul_peak_flops), the median of the trainer's own records.
2. resume: a deterministic run SIGKILLed in a subprocess after its first saved state and rerun to completion ends
   with bitwise the weights of an uninterrupted run (as the train tests check on CPU).
3. ddp: the workflow's job (train.train_job) on 2 GPUs through torchrun and nccl vs the same job in one process.
4. evaluate / posttrain: per-question NLLs and a few post-training steps on CUDA vs CPU.
5. memory: the peak allocated CUDA memory of each cell of check 1 vs memory.training_memory.

Fixtures (a character tokenizer, a learnable token corpus, a task table) are written at run time; nothing is
downloaded. Prints one markdown table, written to --out (default $OUT/gpu-check.md, else results/gpu-check.md);
exits 1 when a check fails.
"""

import argparse
import contextlib
import gc
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from t2scaling import train as T  # noqa: E402
from t2scaling.evaluate import evaluate_task  # noqa: E402
from t2scaling.memory import training_memory  # noqa: E402
from t2scaling.model import build_model, model_counts  # noqa: E402
from t2scaling.posttrain import posttrain  # noqa: E402
from t2scaling.tasks import write_task_table  # noqa: E402
from t2scaling.units import format_count  # noqa: E402

# Shapes from configs/paper.yaml's grid (24M and 143M parameters here); seq_len halved and a 32k vocabulary, so both
# cells train in ~1.5 min (estimated at 20-40 % MFU).
FULL = dict(vocab_size=32768, seq_len=1024, head_dim=32, ffn_multiple=256, batch_size=32, steps=300,
            cells=((320, 10), (704, 19)), small_batch=8, resume_steps=40, ddp_steps=40, train_tokens=2 ** 23,
            val_tokens=2 ** 16, questions=64, posttrain_steps=10)
QUICK = dict(vocab_size=512, seq_len=64, head_dim=16, ffn_multiple=32, batch_size=8, steps=60,
             cells=((32, 2), (64, 2)), small_batch=8, resume_steps=30, ddp_steps=20, train_tokens=2 ** 17,
             val_tokens=4096, questions=16, posttrain_steps=4)
STATE_EVERY = 10  # resume check: steps between saved states; the child is killed 3 steps after the first

# Tolerances. Rounding makes DDP differ from one process (gradient sums in another order) and CUDA post-training
# (bf16 autocast) from CPU (fp32); weights are compared by their update, ||w_a - w_b|| / ||w_a - w_start|| over all
# parameters (`update_gap`: 0 when equal, ~1 for unrelated updates). Measured on CPU with a 2M model (40 bf16
# steps; 10 SFT steps): bf16 vs fp32 or 2 accumulated micro-batches vs 1 give loss rel diffs <= 4e-4 and gaps of
# 0.005-0.01; other training data gives 0.05 and 0.7, a learning rate 10 % off 0.02 and 0.15.
NLL_ATOL = 1e-3  # nats per question: fp32 on both devices (TF32 off, as in an evaluation job)
LOSS_RTOL, UPDATE_GAP = 1e-2, 0.1  # DDP vs 1 process, and post-training on CUDA vs CPU
# Peak allocated / the estimate's tensors (states, activations, logits; its workspace share stands for the CUDA
# context, which the allocator does not count, and fragmentation): about 1 expected, as the gradients and the
# logits' gradient are alive together with the activations only briefly, and the estimate errs high.
MEMORY_RATIO = (0.5, 1.1)

# A resume-check child: trains a cell; with a marker path, hangs 3 steps after its first saved state (marker
# written) until the parent SIGKILLs it, as tests/test_train.py does on CPU.
CHILD = """
import json, sys, time
import t2scaling.train as T
out, kwargs, marker = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
if marker:
    save, loss, seen = T.session._Session.save_state, T.loop._loss_terms, {"saved": False, "calls": 0}
    def save_state(self, *args):
        save(self, *args)
        seen["saved"] = True
    def loss_terms(*args):
        if seen["saved"]:
            seen["calls"] += 1
            if seen["calls"] > 3:
                open(marker, "w").close()
                time.sleep(3600)
        return loss(*args)
    T.session._Session.save_state, T.loop._loss_terms = save_state, loss_terms
T.train_cell(out, **kwargs)
"""


def log(message):
    print(f"[gpu-check] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ fixtures

ALPHABET = "abcdefghijklmnopqrstuvwxyz .,?:"


def char_tokenizer():
    """Byte-level BPE, one token per character of ALPHABET, and an eos (as tests/test_evaluate.py builds it):
    fast, with the character offsets that evaluation and post-training read."""
    byte = {c: pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(c)[0][0] for c in ALPHABET}
    vocab = {"<|endoftext|>": 0} | {byte[c]: i + 1 for i, c in enumerate(ALPHABET)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def pair_tokens(n, ranks, value_of, rng):
    """Keys drawn by Zipf's law over the vocabulary (`ranks`: the key of each rank), each followed by its fixed value
    token (`value_of`): the loss falls from ln(vocab) within steps (the unigram) and on (the values)."""
    p = 1 / np.arange(1, len(ranks) + 1)
    keys = ranks[rng.choice(len(ranks), size=n // 2, p=p / p.sum())]
    return np.stack([keys, value_of[keys]], 1).ravel().astype(np.uint16)


def write_fixtures(root, size):
    """Token files, the tokenizer dir and a task table (half train, half test) under root; returns their paths."""
    rng = np.random.default_rng(0)
    ranks, value_of = rng.permutation(size["vocab_size"]), rng.permutation(size["vocab_size"])
    for name in ("train", "val"):
        np.save(os.path.join(root, f"{name}.npy"), pair_tokens(size[f"{name}_tokens"], ranks, value_of, rng))
    char_tokenizer().save_pretrained(os.path.join(root, "tokenizer"))
    letters = np.array(list(ALPHABET[:26]))
    rows = [dict(id=f"q{i}", prompt="".join(rng.choice(letters, rng.integers(8, 30))) + " is",
                 answer=" " + "".join(rng.choice(letters, rng.integers(1, 5))), split=("train", "test")[i % 2])
            for i in range(size["questions"])]
    write_task_table(pd.DataFrame(rows), os.path.join(root, "task.parquet"))
    return {name: os.path.join(root, name) for name in ("train.npy", "val.npy", "tokenizer", "task.parquet")}


def run_kwargs(paths, size, width, depth, steps, batch_size, device, **overrides):
    """train_cell keyword arguments of one check run (cosine schedule, warmup over a quarter of the run)."""
    step_tokens = batch_size * size["seq_len"]
    kwargs = dict(cell_id=f"w{width}-l{depth}", width=width, depth=depth, tokens=steps * step_tokens,
                  train_tokens_path=paths["train.npy"], val_tokens_path=paths["val.npy"],
                  tokenizer_dir=paths["tokenizer"], seq_len=size["seq_len"], batch_size=batch_size,
                  vocab_size=size["vocab_size"], head_dim=size["head_dim"], ffn_multiple=size["ffn_multiple"],
                  device=str(device), warmup_tokens=steps // 4 * step_tokens, log_every=max(1, steps // 20),
                  checkpoint_every_s=1e9, val_max_tokens=size["val_tokens"], val_batch_size=1, progress=False,
                  threads=1 if device.type == "cpu" else None)  # CPU: one thread, see main
    return kwargs | overrides


# ------------------------------------------------------------------------------------------------ helpers

def weights(checkpoint):
    return load_file(os.path.join(checkpoint, "model.safetensors"))


def max_abs_diff(a, b):
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def update_gap(a, b, start):
    """||a - b|| / ||a - start|| over all tensors (L2): how far two runs' updates from one start disagree."""
    num = sum((a[k].double() - b[k].double()).square().sum().item() for k in a)
    den = sum((a[k].double() - start[k].double()).square().sum().item() for k in a)
    return math.sqrt(num / den)


def jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def gib(n):
    return f"{n / 2 ** 30:.2f} GiB"


@contextlib.contextmanager
def no_tf32():
    """fp32 matmuls in full precision, as in a fresh evaluation or post-training job: training turned TF32 on for
    this whole process (train.device._pick_device)."""
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def free_cuda_cache():
    """Hand this process's cached CUDA blocks back before child processes train on the same GPU."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def child(out, kwargs, marker="", env=None):
    return subprocess.Popen([sys.executable, "-c", CHILD, str(out), json.dumps(kwargs), str(marker)], cwd=REPO,
                            env=env)


def run_child(out, kwargs, env):
    if child(out, kwargs, env=env).wait():
        raise RuntimeError(f"training child for {out} failed (its log is above)")
    return weights(out)


# ------------------------------------------------------------------------------------------------ checks

def train_checks(paths, size, device, peak, work):
    """Checks 1 and 5: train each cell in this process; throughput from the trainer's records, peak memory."""
    rows, checkpoints = [], {}
    cuda = device.type == "cuda"
    precision = "bf16" if cuda else "auto"
    for width, depth in size["cells"]:
        kwargs = run_kwargs(paths, size, width, depth, size["steps"], size["batch_size"], device,
                            precision=precision, peak_flops=peak, log_path=os.path.join(work, f"w{width}.jsonl"))
        n = model_counts(width, depth, size["vocab_size"], size["seq_len"], head_dim=size["head_dim"],
                         ffn_multiple=size["ffn_multiple"])["N"]
        name = f"w{width}-l{depth} ({format_count(n)})"
        log(f"training {name}: {size['steps']} steps of {size['batch_size']} x {size['seq_len']} tokens")
        try:
            free_cuda_cache()
            if cuda:  # this run's peak alone: nothing cached from the last one, the peak reset to what is held now
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
                held = torch.cuda.memory_allocated(device)
            start = time.perf_counter()
            out = os.path.join(work, f"w{width}-l{depth}")
            meta = T.train_cell(out, **kwargs)
            if cuda:
                torch.cuda.synchronize(device)
                allocated = torch.cuda.max_memory_allocated(device) - held
                reserved = torch.cuda.max_memory_reserved(device)
            wall = time.perf_counter() - start
            checkpoints[width, depth] = out
            timed = jsonl(kwargs["log_path"])[1:]  # the first record holds the warm-up (kernels, allocator)
            tokens_per_s = float(np.median([r["tokens_per_s"] for r in timed]))
            mfu = float(np.median([r["mfu"] for r in timed]))
            ceiling = math.log(size["vocab_size"]) - 1
            ok = 0 < mfu <= 1 and meta["final_train_loss"] < ceiling
            rows.append(dict(check=f"train {name} {meta['precision']}",
                             figure=f"{tokens_per_s:,.0f} tokens/s, MFU {mfu:.1%} of {peak / 1e12:.1f} TFLOP/s; "
                                    f"loss {math.log(size['vocab_size']):.2f} -> {meta['final_train_loss']:.2f}; "
                                    f"{wall:.0f} s",
                             expect=f"0 < MFU <= 100%; final loss < ln V - 1 = {ceiling:.2f}", ok=ok))
        except Exception as error:
            traceback.print_exc()
            rows.append(dict(check=f"train {name}", figure=f"error: {error}", expect="trains", ok=False))
            rows.append(dict(check=f"memory {name}", figure="not measured: training failed", expect="", ok=False))
            continue
        estimate = training_memory(width, depth, vocab_size=size["vocab_size"], seq_len=size["seq_len"],
                                   micro_batch_size=size["batch_size"], head_dim=size["head_dim"],
                                   ffn_multiple=size["ffn_multiple"], precision=meta["precision"])
        tensors = estimate["total"] - estimate["workspace"]
        expect = f"{MEMORY_RATIO[0]} <= peak allocated / estimated tensors <= {MEMORY_RATIO[1]}; reserved <= total"
        if cuda:
            ratio = allocated / tensors
            ok = MEMORY_RATIO[0] <= ratio <= MEMORY_RATIO[1] and reserved <= estimate["total"]
            rows.append(dict(check=f"memory {name}", ok=ok, expect=expect,
                             figure=f"peak allocated {gib(allocated)} = {ratio:.2f} x the estimate's tensors "
                                    f"{gib(tensors)}; reserved {gib(reserved)} of total {gib(estimate['total'])}"))
        else:
            rows.append(dict(check=f"memory {name}", ok=None, expect=expect,
                             figure=f"skipped: no CUDA allocator on cpu (estimate {gib(estimate['total'])})"))
    return rows, checkpoints


def resume_check(paths, size, device, peak, work):
    """Check 2: SIGKILL a deterministic run after its first saved state, rerun it, compare with a straight run.
    On CUDA, deterministic=True sets torch.use_deterministic_algorithms(True, warn_only=True), under which PyTorch's
    flash-attention backward stays non-deterministic (it warns only): a second straight run that differs too points
    there rather than at the resume."""
    width, depth = size["cells"][0]
    kwargs = run_kwargs(paths, size, width, depth, size["resume_steps"], size["small_batch"], device,
                        deterministic=True, checkpoint_every_steps=STATE_EVERY, log_every=1, peak_flops=peak)
    env = os.environ | {"PYTHONPATH": REPO}  # fresh processes: deterministic kernels from the start
    free_cuda_cache()
    straight = run_child(os.path.join(work, "straight"), kwargs, env)
    out, marker = os.path.join(work, "killed"), os.path.join(work, "hung")
    logged = dict(kwargs, log_path=os.path.join(work, "killed.jsonl"))
    proc = child(out, logged, marker, env)
    deadline = time.time() + 600
    while not os.path.exists(marker) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if not os.path.exists(marker):
        proc.kill()
        raise RuntimeError("the child never reached the kill point (after its first saved state)")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = len(jsonl(logged["log_path"]))
    resumed = run_child(out, logged, env)
    meta = json.load(open(os.path.join(out, "t2_meta.json")))
    diff = max_abs_diff(resumed, straight)
    figure = (f"killed at step {killed_at}, resumed from step {meta['resumed_from_step']}: "
              f"max abs weight diff to a straight run {diff:.3g}")
    if diff:  # tell a resume bug from kernels that are not deterministic: does a plain rerun match?
        rerun = max_abs_diff(run_child(os.path.join(work, "rerun"), kwargs, env), straight)
        figure += f" (a second straight run: {rerun:.3g})"
    ok = diff == 0 and meta["resumed_from_step"] == STATE_EVERY and killed_at > STATE_EVERY
    return [dict(check=f"resume after SIGKILL ({device.type}, deterministic)", figure=figure,
                 expect=f"bitwise equal (0); resumed from step {STATE_EVERY}", ok=ok)]


def ddp_check(paths, size, device, work):
    """Check 3: the workflow's train job on 2 GPUs (torchrun, nccl) vs the same job in one process."""
    name = "ddp torchrun 2 GPUs (nccl) vs 1 process"
    if device.type != "cuda":
        return [dict(check=name, figure="skipped: no CUDA (nccl)", expect="", ok=None)]
    if torch.cuda.device_count() < 2:
        return [dict(check=name, figure="skipped: 1 GPU", expect="", ok=None)]
    width, depth = size["cells"][0]
    r = T.Recipe()  # the recipe's defaults, as the config schema's
    settings = dict(seed=0, corpus=dict(vocab_size=size["vocab_size"]),
                    model=dict(seq_len=size["seq_len"], head_dim=size["head_dim"], ffn_multiple=size["ffn_multiple"]),
                    training=dict(batch_size=size["batch_size"], schedule="cosine", lr=r.lr, beta1=r.betas[0],
                                  beta2=r.betas[1], weight_decay=r.weight_decay, grad_clip=r.grad_clip, z_loss=r.z_loss,
                                  decay_fraction=r.decay_fraction, device="cuda", compile=False))
    hints = dict(val_max_tokens=size["val_tokens"], micro_batch_size=None, checkpoint_every_s=1e9, branch_tokens=[])
    cell = dict(cell_id=f"w{width}-l{depth}-ddp", width=width, depth=depth,
                tokens=size["ddp_steps"] * size["batch_size"] * size["seq_len"])
    # torchrun from this interpreter's environment (train_job runs the `torchrun` on PATH)
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    os.environ["PYTHONPATH"] = REPO + os.pathsep + os.environ.get("PYTHONPATH", "")
    free_cuda_cache()
    runs = {}
    for gpus in (1, 2):
        out = os.path.join(work, f"ddp{gpus}")
        meta = T.train_job(out, cell, settings, hints, train_tokens_path=paths["train.npy"],
                           val_tokens_path=paths["val.npy"], tokenizer_dir=paths["tokenizer"],
                           job_log=os.path.join(work, f"ddp{gpus}.log"), threads=None, gpus=gpus,
                           scratch_root=os.path.join(work, f"scratch{gpus}"))
        runs[gpus] = meta, [rec["loss"] for rec in jsonl(os.path.join(work, f"ddp{gpus}.jsonl"))], weights(out)
    start = build_model(width, depth, size["vocab_size"], size["seq_len"], seed=0, head_dim=size["head_dim"],
                        ffn_multiple=size["ffn_multiple"]).state_dict()
    (meta1, loss1, w1), (meta2, loss2, w2) = runs[1], runs[2]
    rel = float(np.max(np.abs(np.array(loss2) - loss1) / np.array(loss1)))
    gap = update_gap(w2, w1, start)
    ok = meta2["world_size"] == 2 and len(loss1) == len(loss2) and rel <= LOSS_RTOL and gap <= UPDATE_GAP
    return [dict(check=name, ok=ok, expect=f"max rel loss diff <= {LOSS_RTOL}; update gap <= {UPDATE_GAP}",
                 figure=f"world size {meta2['world_size']}, {meta1['precision']}, {len(loss1)} logged losses: max rel "
                        f"diff {rel:.2g}; update gap {gap:.3g}")]


def evaluate_check(checkpoint, paths, device, work):
    """Check 4a: the per-question table of one trained checkpoint on the device vs on CPU."""
    with no_tf32():
        ref = evaluate_task(checkpoint, paths["task.parquet"], os.path.join(work, "eval-ref.parquet"), device="cpu",
                            batch_size=8)
        got = evaluate_task(checkpoint, paths["task.parquet"], os.path.join(work, "eval-dev.parquet"),
                            device=str(device), batch_size=8)
    diff = float(np.max(np.abs(got["nll"].to_numpy() - ref["nll"].to_numpy())))
    ok = list(got["question"]) == list(ref["question"]) and diff <= NLL_ATOL
    return [dict(check=f"evaluate {device.type} vs cpu", ok=ok, expect=f"max abs NLL diff <= {NLL_ATOL} nats (fp32)",
                 figure=f"{len(ref)} questions, mean NLL {ref['nll'].mean():.3f}: max abs NLL diff {diff:.2g} nats")]


def posttrain_check(checkpoint, paths, size, device, work):
    """Check 4b: a few SFT steps on the device (bf16 autocast on CUDA) vs on CPU (fp32) from one checkpoint."""
    runs = []
    with no_tf32():
        for name, dev in (("ref", "cpu"), ("dev", str(device))):
            out, log_path = os.path.join(work, f"post-{name}"), os.path.join(work, f"post-{name}.jsonl")
            meta = posttrain(checkpoint, paths["task.parquet"], out, mode="sft", max_steps=size["posttrain_steps"],
                             device=dev, log_path=log_path)
            runs.append((meta["posttrain"], [r["loss"] for r in jsonl(log_path)], weights(out)))
    (ref, loss_ref, w_ref), (got, loss, w) = runs
    rel = float(np.max(np.abs(np.array(loss) - loss_ref) / np.array(loss_ref)))
    gap = update_gap(w, w_ref, weights(checkpoint))
    ok = rel <= LOSS_RTOL and gap <= UPDATE_GAP
    return [dict(check=f"posttrain {device.type} ({got['precision']}) vs cpu ({ref['precision']})", ok=ok,
                 expect=f"max rel loss diff <= {LOSS_RTOL}; update gap <= {UPDATE_GAP}",
                 figure=f"{len(loss)} SFT steps, loss {loss_ref[0]:.3f} -> {loss_ref[-1]:.3f}: max rel loss diff "
                        f"{rel:.2g}; update gap {gap:.3g}")]


# ------------------------------------------------------------------------------------------------ main

def table(rows, caption):
    lines = [caption, "", "| check | figure | expectation | result |", "|---|---|---|---|"]
    for row in rows:
        result = "skip" if row["ok"] is None else ("pass" if row["ok"] else "FAIL")
        cells = [str(row[k]).replace("|", "\\|") for k in ("check", "figure", "expect")] + [result]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def guarded(name, fn, *args):
    """Run one check; an exception becomes a failed row (the table is still printed)."""
    try:
        return fn(*args)
    except Exception as error:
        traceback.print_exc()
        return [dict(check=name, figure=f"error: {type(error).__name__}: {str(error).splitlines()[0][:200]}",
                     expect="runs", ok=False)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny models and few steps (the CPU path's test)")
    parser.add_argument("--out", help="markdown table path (default $OUT/gpu-check.md, else results/gpu-check.md)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (checkpoints, logs)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu-check: no CUDA device here; run `bash scripts/gpu-check.sh --device cpu --quick` for the CPU path",
              file=sys.stderr)
        return 2
    if device.type == "cuda":
        device = torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
        torch.cuda.set_device(device)
    out_path = args.out or os.path.join(os.environ.get("OUT") or os.path.join(REPO, "results"), "gpu-check.md")
    size = QUICK if args.quick else FULL
    if device.type == "cpu":  # a thread per process: several threads spin on a shared machine's busy cores
        torch.set_num_threads(1)
    t0 = time.perf_counter()
    work = tempfile.mkdtemp(prefix="gpu-check-")
    log(f"work dir {work}")
    paths = write_fixtures(work, size)
    # The MFU denominator, measured once in the dtype training computes in (bf16 on CUDA).
    autocast = T.device._autocast_dtype("bf16" if device.type == "cuda" else "auto", device)
    peak = T.matmul_peak_flops(str(device), "bfloat16" if autocast is not None else "float32")
    log(f"matmul peak {peak / 1e12:.1f} TFLOP/s")

    train_rows, checkpoints = train_checks(paths, size, device, peak, work)
    checkpoint = checkpoints.get(size["cells"][0])
    rows = [r for r in train_rows if r["check"].startswith("train")]
    rows += guarded("resume after SIGKILL", resume_check, paths, size, device, peak, work)
    rows += guarded("ddp torchrun", ddp_check, paths, size, device, work)
    if checkpoint is None:
        rows += [dict(check=f"{name} {device.type} vs cpu", figure="no checkpoint: training failed", expect="",
                      ok=False) for name in ("evaluate", "posttrain")]
    else:
        rows += guarded(f"evaluate {device.type} vs cpu", evaluate_check, checkpoint, paths, device, work)
        rows += guarded(f"posttrain {device.type} vs cpu", posttrain_check, checkpoint, paths, size, device, work)
    rows += [r for r in train_rows if r["check"].startswith("memory")]

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    caption = (f"GPU check{' (quick)' if args.quick else ''} on {where} ({torch.cuda.device_count()} CUDA devices "
               f"visible), torch {torch.__version__}, {time.perf_counter() - t0:.0f} s")
    text = table(rows, caption)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        f.write(text)
    log(f"wrote {out_path}")
    if args.keep:
        log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any(r["ok"] is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
