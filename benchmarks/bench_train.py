"""Training throughput of t2scaling.train's loop vs a plain reference loop, and the token cost of WSD grids.

    python benchmarks/bench_train.py [--threads 1] [--rounds 5] [--device cpu]

1. Tokens/s on models of 0.1M-5M parameters (vocab 1024, seq 128, batch 32: the embedded default), measured
   side by side in one process, interleaved round by round (median of the rounds; the machine may be shared):
   - reference: the same HF model, fp32, SDPA, no autocast, no compile, `model(input_ids, labels=...).loss`,
     default `torch.optim.AdamW`, `clip_grad_norm_`, `zero_grad()`;
   - ours: `_train_steps` exactly as train_cell runs it (`precision=auto`), and the same at `precision=fp32`
     to separate the loss/optimizer gains from the bf16 gain.
   MFU = flops_per_token · tokens/s / peak, against the fp32 and bf16 torch.matmul peaks measured here.
2. WSD vs cosine on a grid of 4 D values per size: tokens processed from the planner (`wsd_plan`, the same
   step arithmetic as train_trunk/train_decay) for several grid spacings and decay fractions, and from
   actual runs (trunk + 4 decays vs 4 cosine runs of a tiny model).
"""

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from t2scaling import train as T  # noqa: E402
from t2scaling.model import build_model, model_counts  # noqa: E402

VOCAB, SEQ, BATCH = 1024, 128, 32
SIZES = [(48, 2), (96, 4), (128, 6), (256, 6)]  # ≈ 0.10M, 0.54M, 1.33M, 5.08M parameters


def write_data(root, n_tokens=400_000):
    rng = np.random.default_rng(0)
    np.save(os.path.join(root, "train.npy"), rng.integers(0, VOCAB, n_tokens, dtype=np.uint16))
    np.save(os.path.join(root, "val.npy"), rng.integers(0, VOCAB, 20_000, dtype=np.uint16))
    words = {f"t{i}": i for i in range(VOCAB - 1)} | {"<eos>": VOCAB - 1}
    backend = Tokenizer(models.WordLevel(words, unk_token="<eos>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>").save_pretrained(os.path.join(root, "tok"))


def shape_options(width):
    return dict(head_dim=16 if width < 128 else 32, ffn_multiple=32)


class Ours:
    """train_cell's loop on a _Session; each call trains `steps` more steps and returns their tokens/s."""

    def __init__(self, root, width, depth, precision, threads, device):
        recipe = T.Recipe(**shape_options(width), precision=precision, threads=threads, device=device,
                          checkpoint_every_s=1e9, progress=False, peak_flops=1.0)
        self.s = T.session._Session(width=width, depth=depth, seq_len=SEQ, batch_size=BATCH, recipe=recipe,
                            train_tokens_path=os.path.join(root, "train.npy"), tokenizer_dir=os.path.join(root, "tok"))
        self.state_dir = tempfile.mkdtemp(dir=root)
        self.step, self.history, self.records = 0, [], []

    def __call__(self, steps):
        self.s.recipe.log_every = steps  # one record (one timing) per call, taken before the state is saved
        lr_fn = lambda step: 1e-3  # noqa: E731  (throughput only)
        T.loop._train_steps(self.s, cell_id="bench", start_step=self.step, stop_step=self.step + steps, lr_fn=lr_fn,
                       history=self.history, records=self.records, elapsed=0.0, identity={},
                       state_dir=self.state_dir)
        self.step += steps
        return self.records[-1]["tokens_per_s"]


class Reference:
    """The plain loop a user would write around the same HF model."""

    def __init__(self, width, depth, device, windows):
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))
        self.model = build_model(width, depth, VOCAB, SEQ, seed=0, **shape_options(width)).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=1e-4)
        self.windows, self.step = windows, 0

    def __call__(self, steps):
        start = time.perf_counter()
        for _ in range(steps):
            batch = torch.from_numpy(self.windows.rows(self.step * BATCH, BATCH)).to(self.device)
            loss = self.model(input_ids=batch[:, :-1], labels=batch[:, :-1]).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.optimizer.zero_grad()
            self.step += 1
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return steps * BATCH * SEQ / (time.perf_counter() - start)


def throughput(root, args):
    device = T.device._pick_device(args.device, 0, 1)
    peak = {dtype: T.matmul_peak_flops(str(device), dtype, seconds=1.0) for dtype in ("float32", "bfloat16")}
    print(f"device {device}, {torch.get_num_threads()} thread(s); torch.matmul peak: fp32 "
          f"{peak['float32'] / 1e9:.0f} GFLOP/s, bf16 {peak['bfloat16'] / 1e9:.0f} GFLOP/s")
    auto = T.device._autocast_dtype("auto", device)
    print(f"train_cell's precision=auto here: {'bf16 autocast' if auto is not None else 'fp32'}, attention "
          f"{T.device._attention_kernel(device, auto)}\n")
    header = (f"{'width':>5} {'depth':>5} {'N':>9} | {'reference':>9} {'ours fp32':>9} {'ours auto':>9} tok/s | "
              f"speedup auto (fp32) | MFU: reference, ours fp32 (of the fp32 peak), ours auto (of its peak)")
    print(header)
    print("-" * len(header))
    for width, depth in SIZES:
        counts = model_counts(width, depth, VOCAB, SEQ, **shape_options(width))
        steps = max(1, round(args.tokens_per_round / (BATCH * SEQ) / max(1, counts["N"] / 1e6)))
        windows = T.TokenWindows(np.load(os.path.join(root, "train.npy"), mmap_mode="r"), SEQ, seed=0)
        runs = dict(reference=Reference(width, depth, args.device, windows),
                    fp32=Ours(root, width, depth, "fp32", args.threads, args.device),
                    auto=Ours(root, width, depth, "auto", args.threads, args.device))
        for run in runs.values():  # warm-up: allocator, kernel selection
            run(2)
        rates = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                rates[name].append(run(steps))
        tok = {name: statistics.median(r) for name, r in rates.items()}
        flops = counts["flops_per_token"]
        auto_peak = peak["bfloat16" if auto is not None else "float32"]
        mfu = [flops * tok["reference"] / peak["float32"], flops * tok["fp32"] / peak["float32"],
               flops * tok["auto"] / auto_peak]
        speedup = {name: tok[name] / tok["reference"] for name in ("auto", "fp32")}
        print(f"{width:5d} {depth:5d} {counts['N']:9,d} | {tok['reference']:9.0f} {tok['fp32']:9.0f} "
              f"{tok['auto']:9.0f}       | {speedup['auto']:8.2f}x ({speedup['fp32']:.2f}x)"
              f"  | {mfu[0]:6.1%} {mfu[1]:6.1%} {mfu[2]:6.1%}")


def wsd_costs(root, args):
    print("\nWSD vs cosine, 4 D values per size: tokens processed (planner = train_trunk/train_decay arithmetic)")
    step = BATCH * SEQ
    grids = {"D0*(1,2,3,4)": [1, 2, 3, 4], "D0*sqrt2^(0..3)": [2 ** (j / 2) for j in range(4)],
             "D0*2^(0..3)": [2 ** j for j in range(4)]}
    print(f"{'grid':>18} | " + " ".join(f"f={f:<5}" for f in (0.1, 0.2)) + " | floor (f->0): max D / sum D")
    for name, scale in grids.items():
        ratios = [T.wsd_plan([s * 1000 * step for s in scale], step, f)["ratio"] for f in (0.1, 0.2)]
        print(f"{name:>18} | " + " ".join(f"{r:7.3f}" for r in ratios) + f" | {max(scale) / sum(scale):.3f}")

    # Actual runs of a tiny model: one trunk + 4 decays against 4 cosine runs, counting tokens each processed.
    d0, fraction = 40 * step, 0.1
    grid = [d0 * s for s in (1, 2, 3, 4)]
    common = dict(width=32, depth=2, train_tokens_path=os.path.join(root, "train.npy"),
                  tokenizer_dir=os.path.join(root, "tok"), seq_len=SEQ, batch_size=BATCH, head_dim=16,
                  ffn_multiple=32, threads=args.threads, device=args.device, progress=False, val_max_tokens=2048,
                  warmup_tokens=10 * step, decay_fraction=fraction)
    val = os.path.join(root, "val.npy")
    work = tempfile.mkdtemp(dir=root)
    cosine = sum(T.train_cell(os.path.join(work, f"cos{i}"), cell_id=f"cos{i}", tokens=d, val_tokens_path=val,
                              **common)["tokens_processed"] for i, d in enumerate(grid))
    trunk_dir = os.path.join(work, "trunk")
    trunk = sum(T.train_trunk(trunk_dir, branch_tokens=[d], **common)["tokens_processed"] for d in grid)
    decays = sum(T.train_decay(os.path.join(work, f"wsd{i}"), cell_id=f"wsd{i}", trunk_dir=trunk_dir, tokens=d,
                               val_tokens_path=val, **common)["tokens_processed"] for i, d in enumerate(grid))
    print(f"actual runs, D0*(1,2,3,4), f={fraction}: cosine {cosine:,d} tokens; WSD trunk {trunk:,d} + decays "
          f"{decays:,d} = {trunk + decays:,d}; ratio {(trunk + decays) / cosine:.3f} "
          f"(planner {T.wsd_plan(grid, step, fraction)['ratio']:.3f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for every loop (default 1)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens-per-round", type=float, default=12_000,
                        help="tokens per round for a 1M-parameter model (scaled by 1/N)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-wsd", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as root:
        write_data(root)
        throughput(root, args)
        if not args.skip_wsd:
            wsd_costs(root, args)


if __name__ == "__main__":
    main()
