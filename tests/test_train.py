"""Pretraining: schedules, data order, the fused loss, learning, determinism, kill-and-resume, DDP, WSD, NaN."""

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from t2scaling import memory as M
from t2scaling import train as T
from t2scaling.cli import train as train_cli
from t2scaling.checkpoint import sha256_of
from t2scaling.data import unigram_entropy
from t2scaling.evaluate import validation_loss
from t2scaling.model import build_model, model_counts

VOCAB, SEQ, BATCH = 256, 32, 8
STEP_TOKENS = SEQ * BATCH
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def markov_tokens(n, rng, successors):
    """A sparse first-order Markov chain (4 successors per token, 5 % uniform jumps): learnable, far below
    the unigram entropy."""
    out = np.empty(n, dtype=np.uint16)
    choice, jump, anywhere = rng.integers(0, 4, n), rng.random(n) < 0.05, rng.integers(0, VOCAB, n)
    token = 0
    for i in range(n):
        token = anywhere[i] if jump[i] else successors[token, choice[i]]
        out[i] = token
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    successors = rng.integers(0, VOCAB, size=(VOCAB, 4))
    np.save(root / "train.npy", markov_tokens(60_000, rng, successors))
    np.save(root / "val.npy", markov_tokens(8_000, rng, successors))
    words = {f"t{i}": i for i in range(VOCAB - 1)} | {"<eos>": VOCAB - 1}
    backend = Tokenizer(models.WordLevel(words, unk_token="<eos>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>").save_pretrained(root / "tokenizer")
    return root


def cell(data, steps, **overrides):
    """train_cell keyword arguments of a tiny cell trained for `steps` optimizer steps."""
    kwargs = dict(cell_id="w32-l2-test", width=32, depth=2, tokens=steps * STEP_TOKENS,
                  train_tokens_path=str(data / "train.npy"), val_tokens_path=str(data / "val.npy"),
                  tokenizer_dir=str(data / "tokenizer"), seq_len=SEQ, batch_size=BATCH, head_dim=16,
                  ffn_multiple=16, threads=1, device="cpu", log_every=1, progress=False, val_max_tokens=4096,
                  peak_flops=1e11)
    return kwargs | overrides


def losses(log_path):
    with open(log_path) as f:
        return [json.loads(line)["loss"] for line in f]


def weights(checkpoint):
    return load_file(os.path.join(checkpoint, "model.safetensors"))


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


# ------------------------------------------------------------------------------------------- pure parts

def test_cosine_schedule_warms_up_then_reaches_zero_at_D():
    lr = [T.lr_at(s, lr=1.0, warmup_steps=10, total_steps=110) for s in range(110)]
    assert lr[0] == pytest.approx(0.1) and lr[9] == pytest.approx(1.0)
    assert lr[10] == pytest.approx(1.0) and lr[60] == pytest.approx(0.5)
    assert 0 < lr[109] < 1e-3 and all(a >= b for a, b in zip(lr[10:], lr[11:]))


@pytest.mark.parametrize("shape", ["1-sqrt", "linear"])
def test_wsd_schedule_holds_then_decays_over_the_last_fraction(shape):
    kw = dict(lr=1.0, warmup_steps=10, total_steps=100, schedule="wsd", decay_fraction=0.2, decay_shape=shape)
    lr = [T.lr_at(s, **kw) for s in range(100)]
    assert T.decay_start_step(100, 0.2) == 80
    assert lr[10:81] == [1.0] * 71  # the trunk's constant lr, up to and including the branch step
    half = {"1-sqrt": 1 - 0.5 ** 0.5, "linear": 0.5}[shape]
    assert lr[90] == pytest.approx(half) and 0 < lr[99] < lr[98]
    trunk = [T.lr_at(s, lr=1.0, warmup_steps=10, schedule="constant") for s in range(80)]
    assert trunk == lr[:80]  # a branch continues the trunk's schedule exactly


def test_wsd_plan_counts_one_trunk_plus_decays():
    plan = T.wsd_plan([1000, 2000, 3000, 4000], tokens_per_step=10, decay_fraction=0.1)
    assert plan["cosine_tokens"] == 10_000
    assert plan["trunk_tokens"] == 3600 and plan["decay_tokens"] == 1000
    assert plan["ratio"] == pytest.approx(0.46)


def test_data_order_is_a_seeded_epoch_permutation_shared_by_ranks():
    tokens = np.arange(1 + 10 * 4)  # 10 windows of seq_len 4
    windows = T.TokenWindows(tokens, 4, seed=3)
    rows = windows.rows(0, 25)  # two and a half epochs
    starts = rows[:, 0] // 4
    assert sorted(starts[:10]) == list(range(10)) and sorted(starts[10:20]) == list(range(10))
    assert not np.array_equal(starts[:10], starts[10:20])  # a fresh permutation per epoch
    assert np.array_equal(rows[:, 1:], rows[:, :-1] + 1)  # contiguous windows of seq_len + 1
    # Two ranks reading their halves of a global batch see exactly the one-process batch.
    halves = np.concatenate([T.TokenWindows(tokens, 4, seed=3).rows(14 + r * 3, 3) for r in (0, 1)])
    assert np.array_equal(halves, windows.rows(14, 6))
    assert not np.array_equal(T.TokenWindows(tokens, 4, seed=4).rows(0, 10), rows[:10])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_loss_matches_autograd_reference(dtype):
    torch.manual_seed(0)
    logits = (3 * torch.randn(3, 7, 50, dtype=dtype)).requires_grad_()
    targets = torch.randint(0, 50, (3, 7))
    before = logits.detach().clone()
    nll, z = T.CrossEntropyZLoss.apply(logits, targets)
    (0.7 * nll + 0.3 * z).backward()
    assert torch.equal(logits.detach(), before)  # the input is never modified in place
    fused_grad, logits.grad = logits.grad, None
    lse = logits.logsumexp(-1)
    ref_nll = (lse - logits.gather(-1, targets[..., None]).squeeze(-1)).mean()
    ref_z = lse.square().mean()
    (0.7 * ref_nll + 0.3 * ref_z).backward()
    torch.testing.assert_close(nll, ref_nll)
    torch.testing.assert_close(z, ref_z)
    torch.testing.assert_close(fused_grad, logits.grad)


def test_fused_loss_on_bf16_logits_computes_in_fp32():
    logits = torch.randn(4, 9, 30).bfloat16().requires_grad_()
    targets = torch.randint(0, 30, (4, 9))
    nll, z = T.CrossEntropyZLoss.apply(logits, targets)
    exact = torch.nn.functional.cross_entropy(logits.detach().float().flatten(0, 1), targets.flatten())
    assert nll.dtype == torch.float32 and nll.item() == pytest.approx(exact.item(), rel=1e-6)
    nll.backward()
    assert logits.grad.dtype == torch.bfloat16


class PreChunkingLoss(torch.autograd.Function):
    """CrossEntropyZLoss as it was before chunking, frozen: one fp32 copy of all the logits. Every checkpoint
    trained so far depends on its bits."""

    @staticmethod
    def forward(ctx, logits, targets):
        exp = logits.to(torch.promote_types(logits.dtype, torch.float32), copy=True)
        top = exp.amax(-1, keepdim=True)
        exp.sub_(top).mul_(1 / math.log(2)).exp2_()
        total = exp.sum(-1, keepdim=True)
        lse = (top + total.log()).squeeze(-1)
        nll = lse - logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1).float()
        ctx.save_for_backward(exp, total, targets, lse)
        ctx.logits_dtype = logits.dtype
        return nll.mean(), lse.square().mean()

    @staticmethod
    def backward(ctx, grad_nll, grad_z):
        exp, total, targets, lse = ctx.saved_tensors
        n = lse.numel()
        grad = exp.mul_((grad_nll + 2 * grad_z * lse.unsqueeze(-1)) / (n * total))
        grad.scatter_add_(-1, targets.unsqueeze(-1), (-grad_nll / n).expand(targets.shape).unsqueeze(-1))
        return grad.to(ctx.logits_dtype), None


def loss_and_grad(loss, logits, targets):
    """(nll, z-loss, d(0.7 nll + 0.3 z)/dlogits) of an autograd.Function loss."""
    logits = logits.detach().clone().requires_grad_()
    nll, z = loss.apply(logits, targets)
    (0.7 * nll + 0.3 * z).backward()
    return nll, z, logits.grad


def assert_bitwise(a, b):
    for name, x, y in zip(("nll", "z-loss", "gradient"), a, b):
        assert x.dtype == y.dtype and torch.equal(x, y), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape, chunk_rows, chunks", [
    ((3, 39, 64), 20, 6),  # 117 rows: 5 chunks of 20, a last partial one of 17
    ((3, 37, 64), 20, 5),  # 111 rows: the 11-row remainder joins the last chunk (31 rows)
    ((4, 64, 1024), 40, 7),  # big enough for CPU kernels to split a pass among threads
])
def test_chunked_loss_is_bitwise_the_single_pass_loss(monkeypatch, dtype, shape, chunk_rows, chunks):
    torch.manual_seed(0)
    logits = (3 * torch.randn(shape)).to(dtype)
    targets = torch.randint(0, shape[-1], shape[:-1])
    rows, vocab = logits.numel() // shape[-1], shape[-1]
    single = loss_and_grad(T.CrossEntropyZLoss, logits, targets)
    assert len(M.loss_chunks(rows, vocab)) == 1
    monkeypatch.setattr(M, "LOSS_CHUNK_ELEMENTS", chunk_rows * vocab)
    assert len(M.loss_chunks(rows, vocab)) == chunks
    chunked = loss_and_grad(T.CrossEntropyZLoss, logits, targets)
    assert_bitwise(chunked, single)
    assert_bitwise(chunked, loss_and_grad(PreChunkingLoss, logits, targets))


def test_chunked_loss_holds_at_most_one_chunk_in_fp32(monkeypatch):
    """Chunks of 16 rows of bf16 logits (4, 64, 1000): no fp32 tensor the loss makes (forward or backward) is
    larger than one chunk, and it keeps only per-row fp32 statistics for the backward. The pre-chunking loss
    made, and kept until the backward, an fp32 copy of all 256 rows."""
    from torch.utils._python_dispatch import TorchDispatchMode

    made, kept = [], []

    class RecordFp32(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            made.extend(t.numel() for t in (out if isinstance(out, (tuple, list)) else [out])
                        if isinstance(t, torch.Tensor) and t.dtype == torch.float32)
            return out

    def pack(tensor):
        if tensor.dtype == torch.float32:
            kept.append(tensor.numel())
        return tensor

    monkeypatch.setattr(M, "LOSS_CHUNK_ELEMENTS", 16 * 1000)
    assert M.loss_chunks(256, 1000) == [(start, start + 16) for start in range(0, 256, 16)]
    logits = (3 * torch.randn(4, 64, 1000)).bfloat16().requires_grad_()
    targets = torch.randint(0, 1000, (4, 64))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), RecordFp32():
        nll, z = T.CrossEntropyZLoss.apply(logits, targets)
        (nll + z).backward()
    assert max(made) == 16 * 1000  # one chunk at a time, in forward and backward
    assert kept and max(kept) == 256  # per row: the max, the sum of exponentials, the logsumexp
    assert logits.grad.dtype == torch.bfloat16


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_small_logits_keep_their_exponentials_and_give_the_recomputed_gradient(monkeypatch, dtype):
    """Logits of at most LOSS_KEEP_ELEMENTS reuse the forward's exponentials in the backward (a tiny CPU model's
    step is ~25 % faster): bitwise the gradient that recomputing them gives, also on a second backward."""
    torch.manual_seed(0)
    logits = (3 * torch.randn(4, 64, 1024)).to(dtype)
    targets = torch.randint(0, 1024, (4, 64))
    assert logits.numel() <= M.LOSS_KEEP_ELEMENTS
    kept = loss_and_grad(T.CrossEntropyZLoss, logits, targets)
    leaf = logits.detach().clone().requires_grad_()
    nll, z = T.CrossEntropyZLoss.apply(leaf, targets)
    (0.7 * nll + 0.3 * z).backward(retain_graph=True)
    first = leaf.grad.clone()
    leaf.grad = None
    (0.7 * nll + 0.3 * z).backward()  # the kept exponentials were used up: recomputed
    assert torch.equal(leaf.grad, first)
    monkeypatch.setattr(T.loop, "LOSS_KEEP_ELEMENTS", 0)
    recomputed = loss_and_grad(T.CrossEntropyZLoss, logits, targets)
    assert_bitwise(kept, recomputed)
    assert torch.equal(first, recomputed[2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows", [4096, 2 * 1330 + 7])  # paper scale: a last partial chunk; a merged remainder
def test_chunked_loss_is_bitwise_the_pre_chunking_loss_on_cuda(dtype, rows):
    vocab = 50432
    assert M.loss_chunks(rows, vocab)[0] == (0, 1330) and len(M.loss_chunks(rows, vocab)) == (4 if rows == 4096 else 2)
    torch.manual_seed(0)
    logits = (3 * torch.randn(1, rows, vocab, device="cuda")).to(dtype)
    targets = torch.randint(0, vocab, (1, rows), device="cuda")
    assert_bitwise(loss_and_grad(T.CrossEntropyZLoss, logits, targets), loss_and_grad(PreChunkingLoss, logits, targets))


def test_cli_args_round_trip_through_the_parser():
    kwargs = dict(cell_id="w32-l2-d1", width=32, depth=2, tokens=2048, train_tokens_path="a/train.npy",
                  val_tokens_path="a/val.npy", tokenizer_dir="a/tok", seq_len=32, batch_size=8, lr=1e-3,
                  betas=(0.9, 0.99), compile=True, threads=1, log_path="x.jsonl", scratch_dir="s",
                  branch_tokens=[4096, 8192], vocab_size=None)
    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    args = parser.parse_args(["--out", "o", *T.cli_args(**kwargs)])
    assert (args.cell_id, args.width, args.tokens, args.train_tokens_path, args.tokenizer_dir) == \
        ("w32-l2-d1", 32, 2048.0, "a/train.npy", "a/tok")
    assert args.betas == [0.9, 0.99] and args.compile and args.lr == 1e-3 and args.log_path == "x.jsonl"
    assert args.branch_tokens == [4096.0, 8192.0] and args.vocab_size is None and not args.deterministic
    assert T.cli_args(branch_tokens=[], compile=False) == []


# ------------------------------------------------------------------------------------- the workflow's job

SETTINGS = {  # settings_for("train"): the config narrowed to what training reads
    "seed": 3, "corpus": {"vocab_size": 384}, "model": {"seq_len": 64, "head_dim": 16, "ffn_multiple": 16},
    "training": {"schedule": "cosine", "decay_fraction": 0.2, "batch_size": 8, "lr": 3e-3, "beta1": 0.9,
                 "beta2": 0.95, "weight_decay": 1e-4, "grad_clip": 1.0, "z_loss": 1e-4, "compile": False,
                 "device": "cpu"}}
CELL = {"cell_id": "w32-l1-d130048", "width": 32, "depth": 1, "tokens": 130048}
HINTS = {"branch_tokens": [65024, 260608], "val_max_tokens": 5000, "micro_batch_size": 4, "checkpoint_every_s": 30}
PATHS = dict(train_tokens_path="results/data/train.npy", val_tokens_path="results/data/val.npy",
             tokenizer_dir="results/data/tokenizer", job_log="logs/train/w32-l1-d130048.log", threads=2)


def test_a_workflow_cell_trains_with_exactly_the_configured_settings():
    kwargs = T.cell_kwargs(CELL, SETTINGS, HINTS, **PATHS)
    assert kwargs == dict(
        cell_id="w32-l1-d130048", width=32, depth=1, tokens=130048, train_tokens_path="results/data/train.npy",
        val_tokens_path="results/data/val.npy", tokenizer_dir="results/data/tokenizer", seq_len=64, batch_size=8,
        schedule="cosine", scratch_dir="results/scratch/w32-l1-d130048", log_path="logs/train/w32-l1-d130048.jsonl",
        vocab_size=384, head_dim=16, ffn_multiple=16, lr=3e-3, betas=(0.9, 0.95), weight_decay=1e-4, grad_clip=1.0,
        z_loss=1e-4, seed=3, decay_fraction=0.2, device="cpu", compile=False, threads=2, val_max_tokens=5000,
        progress=False, micro_batch_size=4, checkpoint_every_s=30)
    wsd = dict(SETTINGS, training=dict(SETTINGS["training"], schedule="wsd"))
    kwargs = T.cell_kwargs(CELL, wsd, HINTS, **PATHS, scratch_root="/scratch")
    assert kwargs["trunk_dir"] == "/scratch/trunk-w32-l1" and kwargs["branch_tokens"] == [65024, 260608]
    assert kwargs["scratch_dir"] == "/scratch/w32-l1-d130048" and kwargs["schedule"] == "wsd"


def test_a_multi_gpu_job_launches_torchrun_with_the_same_settings(tmp_path, monkeypatch):
    kwargs = T.cell_kwargs(CELL, SETTINGS, HINTS, **PATHS)
    cmd = T.torchrun_command(tmp_path / "out", 4, kwargs)
    assert cmd[:8] == ["torchrun", "--standalone", "--nproc_per_node=4", "-m", "t2scaling.cli", "train", "--out",
                       str(tmp_path / "out")]
    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    args = parser.parse_args(cmd[6:])
    for key in ("cell_id", "width", "depth", "seq_len", "batch_size", "schedule", "scratch_dir", "log_path",
                "vocab_size", "head_dim", "ffn_multiple", "lr", "weight_decay", "grad_clip", "z_loss", "seed",
                "decay_fraction", "device", "threads", "val_max_tokens", "train_tokens_path", "tokenizer_dir"):
        assert getattr(args, key) == kwargs[key], key
    assert args.tokens == 130048 and tuple(args.betas) == (0.9, 0.95) and not args.compile

    launched, trained = [], []

    def fake_run(command, check, **_):
        launched.append(command)
        os.makedirs(command[7], exist_ok=True)
        with open(os.path.join(command[7], "t2_meta.json"), "w") as fh:
            json.dump({"D": 130048, "val_loss": 2.5}, fh)

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(T.job, "train_cell", lambda out_dir, **kw: trained.append((out_dir, kw)) or {"D": 1, "val_loss": 1})
    meta = T.train_job(str(tmp_path / "out"), CELL, SETTINGS, HINTS, gpus=2, **PATHS)
    assert meta == {"D": 130048, "val_loss": 2.5} and not trained
    assert launched == [T.torchrun_command(str(tmp_path / "out"), 2, kwargs)]
    T.train_job("o", CELL, SETTINGS, HINTS, gpus=1, **PATHS)  # one GPU (or none): in this process
    assert trained == [("o", kwargs)] and len(launched) == 1


# ------------------------------------------------------------------------------------------- training

@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """One uninterrupted 30-step run: the baseline of the determinism and kill-and-resume tests."""
    root = tmp_path_factory.mktemp("reference")
    meta = T.train_cell(str(root / "ckpt"), **cell(data, 30, log_path=str(root / "log.jsonl")))
    return root, meta


def test_tiny_cell_learns_and_its_checkpoint_reloads(data, tmp_path):
    out = tmp_path / "w32-l2-learn"
    start = time.perf_counter()
    meta = T.train_cell(str(out), **cell(data, 300, log_every=25))
    assert time.perf_counter() - start < 30
    counts = model_counts(32, 2, VOCAB, SEQ, head_dim=16, ffn_multiple=16)
    assert (meta["N"], meta["N_non_embedding"], meta["flops_per_token"]) == \
        (counts["N"], counts["N_non_embedding"], counts["flops_per_token"])
    assert meta["D"] == 300 * STEP_TOKENS and meta["C_train"] == 6 * counts["N"] * meta["D"]
    entropy = unigram_entropy(np.load(data / "val.npy"), VOCAB)
    assert meta["val_loss"] < entropy - 2.0, (meta["val_loss"], entropy)  # learned the transitions
    saved = json.load(open(out / "t2_meta.json"))
    assert saved == meta and saved["schedule"] == "cosine" and saved["version"]
    assert not os.path.exists(f"{out}.scratch")  # scratch removed after success
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) == VOCAB and model.config.eos_token_id == tokenizer.eos_token_id
    val = validation_loss(model, np.load(data / "val.npy"), SEQ, BATCH, "cpu", max_tokens=4096)
    assert val == pytest.approx(meta["val_loss"], rel=1e-6)
    # What the directory tells a reader: its context length, a model card, the weights' digest.
    assert tokenizer.model_max_length == SEQ
    card = (out / "README.md").read_text()
    assert card.startswith("# w32-l2-test\n") and "300 steps" in card and f"{meta['val_loss']:.4f} nats/token" in card
    assert meta["weights_sha256"] == {"model.safetensors": sha256_of(out / "model.safetensors")}


def test_a_truncated_checkpoint_is_named_before_loading_and_a_finite_blow_up_fails(data, reference, tmp_path,
                                                                                   monkeypatch):
    from t2scaling.evaluate import load_checkpoint

    root, _ = reference
    broken = tmp_path / "w32-l2-broken"
    shutil.copytree(root / "ckpt", broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"checkpoint .*w32-l2-broken: model.safetensors missing or not the file "
                                         r"training wrote .* delete the directory to retrain it"):
        load_checkpoint(broken)
    # A run that ends no better than a uniform guess over the vocabulary writes no checkpoint.
    monkeypatch.setattr("t2scaling.evaluate.validation_loss", lambda *a, **k: math.log(VOCAB) + 0.5)
    with pytest.raises(RuntimeError, match=r"cell w32-l2-blown: training diverged: validation loss .* no better "
                                           r"than a uniform guess .*lower the learning rate"):
        T.train_cell(str(tmp_path / "blown"), **cell(data, 4, cell_id="w32-l2-blown"))
    assert not (tmp_path / "blown").exists()


def test_same_seed_gives_the_same_run_and_another_seed_does_not(data, reference, tmp_path):
    root, meta = reference
    again = T.train_cell(str(tmp_path / "again"), **cell(data, 30, log_path=str(tmp_path / "again.jsonl")))
    assert losses(tmp_path / "again.jsonl") == losses(root / "log.jsonl")
    assert again["val_loss"] == meta["val_loss"]
    assert_same_weights(tmp_path / "again", root / "ckpt")
    T.train_cell(str(tmp_path / "seed1"), **cell(data, 30, seed=1, log_path=str(tmp_path / "seed1.jsonl")))
    assert losses(tmp_path / "seed1.jsonl") != losses(root / "log.jsonl")


KILLED_CHILD = """
import json, sys, time
import t2scaling.train as T
out, kwargs, marker = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
save, loss, seen = T.session._Session.save_state, T.loop._loss_terms, {"saved": False, "calls": 0}
def save_state(self, path, step, *args):
    save(self, path, step, *args)
    seen["saved"] = seen["saved"] or step >= 10
def loss_terms(*args):
    if seen["saved"]:  # three more steps after the step-10 state, then hang mid-step until SIGKILL
        seen["calls"] += 1
        if seen["calls"] > 3:
            open(marker, "w").close()
            time.sleep(600)
    return loss(*args)
T.session._Session.save_state, T.loop._loss_terms = save_state, loss_terms
T.train_cell(out, **kwargs)
"""


def test_sigkill_and_restart_ends_with_the_uninterrupted_weights(data, reference, tmp_path):
    root, meta = reference
    out, log, marker = tmp_path / "killed", tmp_path / "killed.jsonl", tmp_path / "hung"
    kwargs = cell(data, 30, checkpoint_every_steps=5, log_path=str(log))
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(out), json.dumps(kwargs), str(marker)],
                             cwd=REPO, env=os.environ | {"PYTHONPATH": REPO})
    deadline = time.time() + 60
    while not marker.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the child never reached the kill point"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert sorted(os.listdir(f"{out}.scratch")) == ["step-000000010.pt"]  # only the newest state is kept
    assert not out.exists() and len(losses(log)) == 13  # steps 11-13 ran after the state and are lost

    resumed = T.train_cell(str(out), **kwargs)
    assert resumed["resumed_from_step"] == 10 and resumed["tokens_processed"] == 20 * STEP_TOKENS
    assert_same_weights(out, root / "ckpt")
    assert losses(log) == losses(root / "log.jsonl")  # the log holds each step once, as uninterrupted
    assert resumed["val_loss"] == meta["val_loss"]


TERMINATED_CHILD = """
import json, os, signal, sys
import t2scaling.train as T
out, kwargs = sys.argv[1], json.loads(sys.argv[2])
loss, seen = T.loop._loss_terms, {"calls": 0}
def loss_terms(*args):
    seen["calls"] += 1
    if seen["calls"] == 7:  # mid-step 7: the scheduler's time limit
        os.kill(os.getpid(), signal.SIGTERM)
    return loss(*args)
T.loop._loss_terms = loss_terms
T.train_cell(out, **kwargs)
"""


def test_sigterm_saves_a_state_at_the_next_sync_and_the_rerun_resumes_there(data, reference, tmp_path):
    """A job killed at its time limit (SIGTERM, then SIGKILL a little later) loses no more than the steps to the
    next loss sync: the state is saved there, the job fails naming it, and the retry ends with the uninterrupted
    weights."""
    root, meta = reference
    out = tmp_path / "terminated"
    kwargs = cell(data, 30, checkpoint_every_steps=1000, log_every=2, log_path=str(tmp_path / "log.jsonl"))
    child = subprocess.run([sys.executable, "-c", TERMINATED_CHILD, str(out), json.dumps(kwargs)], cwd=REPO,
                           env=os.environ | {"PYTHONPATH": REPO}, capture_output=True, text=True, timeout=120)
    assert child.returncode == 1, child.stderr[-2000:]
    assert "stopped by SIGTERM after step 8 of 30" in child.stderr, child.stderr[-2000:]
    assert sorted(os.listdir(f"{out}.scratch")) == ["step-000000008.pt"] and not out.exists()
    resumed = T.train_cell(str(out), **kwargs)
    assert resumed["resumed_from_step"] == 8
    assert_same_weights(out, root / "ckpt")


PAUSED_CHILD = """
import json, sys, time
import t2scaling.train as T
out, kwargs, marker = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
loss, seen = T.loop._loss_terms, {"calls": 0}
def loss_terms(*args):
    seen["calls"] += 1
    if seen["calls"] == 5:  # mid-run: let the second trainer arrive and wait for the cell's lock
        open(marker, "w").close()
        time.sleep(3)
    return loss(*args)
T.loop._loss_terms = loss_terms
T.train_cell(out, **kwargs)
"""


def test_a_second_trainer_of_a_cell_waits_and_keeps_the_first_ones_checkpoint(data, reference, tmp_path):
    """A resubmitted job whose first copy still runs (a driver restarted after a lost session) must neither train
    over the first copy's scratch state nor delete its checkpoint: it waits for the cell's lock, then keeps it."""
    root, meta = reference
    out, marker = tmp_path / "twice", tmp_path / "paused"
    kwargs = cell(data, 30, checkpoint_every_steps=5, log_path=str(tmp_path / "first.jsonl"))
    first = subprocess.Popen([sys.executable, "-c", PAUSED_CHILD, str(out), json.dumps(kwargs), str(marker)],
                             cwd=REPO, env=os.environ | {"PYTHONPATH": REPO})
    try:
        deadline = time.time() + 60
        while not marker.exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the first trainer never reached its pause"
        second = T.train_cell(str(out), **{**kwargs, "log_path": str(tmp_path / "second.jsonl")})
        assert first.wait(timeout=60) == 0
    finally:
        first.kill()
    assert second == json.loads((out / "t2_meta.json").read_text())  # the first trainer's checkpoint, kept
    assert second["val_loss"] == meta["val_loss"] and not (tmp_path / "second.jsonl").exists()
    assert_same_weights(out, root / "ckpt")
    assert not os.path.exists(f"{out}.scratch")


def test_divergence_stops_with_the_cell_and_step(data, tmp_path):
    with pytest.raises(RuntimeError, match=r"cell w32-l2-nan: training diverged at step \d+ .*lower the learning"):
        T.train_cell(str(tmp_path / "nan"), **cell(data, 30, cell_id="w32-l2-nan", lr=1e6, warmup_tokens=0))
    assert not (tmp_path / "nan").exists()


def test_accumulated_micro_batches_train_the_weights_of_one_forward(data, tmp_path, monkeypatch):
    """Batch 32 as 4 accumulated micro-batches of 8 gives the weights one forward of 32 gives, to fp32 rounding
    (only the order of the gradient sums differs)."""
    loss_terms, rows = T.loop._loss_terms, []
    monkeypatch.setattr(T.loop, "_loss_terms", lambda model, inputs, *args: rows.append(len(inputs)) or
                        loss_terms(model, inputs, *args))
    kwargs = cell(data, 3, batch_size=32, tokens=3 * 32 * SEQ, precision="fp32")
    T.train_cell(str(tmp_path / "one"), **kwargs, log_path=str(tmp_path / "one.jsonl"))
    T.train_cell(str(tmp_path / "four"), **kwargs, micro_batch_size=8, log_path=str(tmp_path / "four.jsonl"))
    assert rows == [32] * 3 + [8] * 12  # 3 steps of one forward, then of 4 micro-batches
    np.testing.assert_allclose(losses(tmp_path / "four.jsonl"), losses(tmp_path / "one.jsonl"), rtol=1e-6)
    # AdamW moves a weight by ~lr·g/(|g| + eps): where g is a near-cancelling sum of order eps (an embedding row of a
    # rare token), the summation order's rounding shows at ~1e-3·lr (2e-6 here, in 2 of 8192 embedding weights).
    w1, w4 = weights(tmp_path / "one"), weights(tmp_path / "four")
    for key in w1:
        torch.testing.assert_close(w4[key], w1[key], rtol=1e-5, atol=1e-5)


def test_out_of_memory_names_the_cell_the_estimate_and_a_micro_batch_to_use(data, tmp_path, monkeypatch):
    def out_of_memory(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(T.loop, "_loss_terms", out_of_memory)
    with pytest.raises(RuntimeError) as caught:
        T.train_cell(str(tmp_path / "oom"), **cell(data, 3, cell_id="w32-l2-oom", micro_batch_size=4, precision="fp32"))
    assert type(caught.value) is RuntimeError and isinstance(caught.value.__cause__, torch.cuda.OutOfMemoryError)
    need = M.training_memory(32, 2, vocab_size=VOCAB, seq_len=SEQ, micro_batch_size=4, head_dim=16, ffn_multiple=16,
                             precision="fp32")["total"]
    message = str(caught.value)
    assert message.startswith("cell w32-l2-oom: out of memory on cpu training micro-batches of 4 sequences")
    assert f"estimated need {need / 2**30:.1f} GiB" in message and "device total " in message
    # The estimate fits the whole batch of 8 in this host's memory, so the advice is the next smaller divisor.
    assert message.endswith("set training.micro_batch_size (config) / --micro-batch-size (CLI) to a smaller divisor "
                            "of the per-device batch 8, e.g. 2"), message


def test_wsd_branches_share_one_trunk_that_resumes(data, tmp_path):
    trunk = tmp_path / "trunk"
    kw = cell(data, 0, warmup_tokens=10 * STEP_TOKENS, decay_fraction=0.25)
    common = {k: kw[k] for k in kw if k not in ("cell_id", "tokens", "val_tokens_path")}
    d1, d2 = 40 * STEP_TOKENS, 80 * STEP_TOKENS  # branch points: steps 30 and 60

    first = T.train_trunk(str(trunk), branch_tokens=[d1], **common)
    assert (first["start_step"], first["stop_step"]) == (0, 30)
    meta1 = T.train_decay(str(tmp_path / "d1"), cell_id="d1", trunk_dir=str(trunk), tokens=d1,
                          val_tokens_path=kw["val_tokens_path"], **common)
    assert (meta1["schedule"], meta1["D"], meta1["tokens_processed"]) == ("wsd", d1, 10 * STEP_TOKENS)
    AutoModelForCausalLM.from_pretrained(tmp_path / "d1")

    second = T.train_trunk(str(trunk), branch_tokens=[d2], **common)  # continues from step 30, not 0
    assert (second["start_step"], second["stop_step"], second["tokens_processed"]) == (30, 60, 30 * STEP_TOKENS)
    assert sorted(os.listdir(trunk)) == [".lock", "step-000000030.pt", "step-000000060.pt", "trunk_meta.json"]
    meta2 = T.train_cell(str(tmp_path / "d2"), **kw | dict(cell_id="d2", tokens=d2, schedule="wsd",
                                                           trunk_dir=str(trunk)))
    assert (meta2["D"], meta2["branch_step"], meta2["tokens_processed"]) == (d2, 60, 20 * STEP_TOKENS)
    assert meta2["val_loss"] < meta1["val_loss"]

    # The resumed trunk equals one trained straight through: same D2 weights from a fresh trunk dir, which
    # also saves the branch point of D1 on its way (branch_tokens: the other D values of the size).
    T.train_cell(str(tmp_path / "d2-fresh"), **kw | dict(cell_id="d2", tokens=d2, schedule="wsd",
                                                         trunk_dir=str(tmp_path / "fresh"), branch_tokens=[d1]))
    assert_same_weights(tmp_path / "d2", tmp_path / "d2-fresh")
    assert {"step-000000030.pt", "step-000000060.pt"} <= set(os.listdir(tmp_path / "fresh"))


def test_wsd_branch_inside_warmup_is_refused(data, tmp_path):
    kw = cell(data, 20, schedule="wsd", trunk_dir=str(tmp_path / "trunk"))
    with pytest.raises(ValueError, match="inside the .*warmup.*use schedule cosine"):
        T.train_cell(str(tmp_path / "short"), **kw)


@pytest.mark.slow
def test_ddp_two_processes_match_one_process(data, tmp_path):
    """torchrun, 2 CPU processes (gloo), each reading half of the global batch: same losses and weights as one
    process within fp32 rounding. Runs through the CLI (python -m t2scaling.cli train)."""
    kwargs = cell(data, 12, precision="fp32", log_path=str(tmp_path / "one.jsonl"))
    T.train_cell(str(tmp_path / "one"), **kwargs)
    flags = T.cli_args(**kwargs | dict(log_path=str(tmp_path / "two.jsonl"), progress=None))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "t2scaling.cli", "train", "--out", str(tmp_path / "two"), *flags]
    done = subprocess.run(cmd, cwd=REPO, env=os.environ | {"PYTHONPATH": REPO}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.load(open(tmp_path / "two" / "t2_meta.json"))
    assert meta["world_size"] == 2 and meta["D"] == 12 * STEP_TOKENS
    np.testing.assert_allclose(losses(tmp_path / "two.jsonl"), losses(tmp_path / "one.jsonl"), rtol=1e-5)
    one, two = weights(tmp_path / "one"), weights(tmp_path / "two")
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5)


def test_cpu_fp32_attention_is_plain_sdpa_with_and_without_padding():
    """The "sdpa_fp32" attention that CPU bf16 training uses computes what HF's SDPA computes."""
    fp32 = build_model(64, 2, 384, 32, head_dim=16, ffn_multiple=32, seed=0, attn_implementation="sdpa_fp32")
    plain = build_model(64, 2, 384, 32, head_dim=16, ffn_multiple=32, seed=0, attn_implementation="sdpa")
    ids = torch.randint(0, 384, (2, 32))
    padded = torch.ones(2, 32, dtype=torch.long)
    padded[1, :5] = 0
    with torch.no_grad():
        for mask in (None, padded):
            torch.testing.assert_close(fp32(input_ids=ids, attention_mask=mask).logits,
                                       plain(input_ids=ids, attention_mask=mask).logits, rtol=0, atol=0)


def test_a_job_log_gets_progress_lines_and_no_bar(data, tmp_path, monkeypatch):
    """Run as a workflow job does (`jobs.open_job_log`: stderr to a file, not a terminal): one human-readable
    line per loss sync here (PROGRESS_EVERY_S = 0), no tqdm frames even with progress on, the JSONL log as before."""
    import logging

    import transformers.utils.logging as hf_logging

    from t2scaling import jobs

    root = logging.getLogger()
    bars = hf_logging.is_progress_bar_enabled()
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    monkeypatch.setattr(root, "handlers", [])  # pytest's own handlers stay untouched
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setattr(T.loop, "PROGRESS_EVERY_S", 0.0)
    jobs.open_job_log(tmp_path / "job.log", "train")
    try:
        T.train_cell(str(tmp_path / "ckpt"), **cell(data, 6, log_every=2, progress=True,
                                                    log_path=str(tmp_path / "train.jsonl")))
    finally:
        sys.stderr.close()
        if bars:
            hf_logging.enable_progress_bar()
    text = (tmp_path / "job.log").read_text()
    assert "\r" not in text and "step/s]" not in text and "Writing model shards" not in text
    lines = [line for line in text.splitlines() if ": w32-l2-test: step " in line]
    assert [line.split(": step ")[1].split(" ")[0] for line in lines] == ["2/6", "4/6", "6/6"], text
    records = [json.loads(line) for line in open(tmp_path / "train.jsonl")]
    assert [r["step"] for r in records] == [2, 4, 6]
    for line, record in zip(lines, records):
        assert f"loss {record['loss']:.4f}, " in line and " tokens/s, MFU " in line and ", ETA " in line
