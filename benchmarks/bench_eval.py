"""Evaluation speed, each figure beside a naive baseline measured in the same run (DESIGN.md §6).

1. Likelihood mode: a 1,000-question task on a ~1M-parameter model (target <= 5 s on a laptop CPU), vs
   one question at a time without padding.
2. Sampling mode, n = 64: the shared prompt KV cache (with and without early stopping of samples that can no
   longer match) vs `model.generate(num_return_sequences=n)` on the same model, questions, budgets and stop
   tokens (target >= 3x faster), with the success rates (|z| < 3: the same within sampling error). With the
   budget equal to the answer's length, the rates also match the likelihood's mean p = mean exp(-NLL).

The model is a random-init (width 128, depth 4) decoder whose logits are sharpened, so that answers drawn
from it (the gold answers here) are likely and success rates are far from 0 (with the answer + 8 budget they
are 0: an untrained model never ends a sample at the answer); the tokenizer is a byte-level BPE trained on
the task text. Run: `python benchmarks/bench_eval.py [--questions 1000 --sampled 50 --device cpu]`.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from t2scaling.evaluate import (answer_nll, count_correct, encode_questions, evaluate_questions, evaluate_task,
                                load_checkpoint, question_seed, sample_answers, stop_token_mask)
from t2scaling.model import build_model
from t2scaling.tasks import exact_match, write_task_table

SYLLABLES = ["ka", "lo", "mi", "ru", "ten", "vor", "sa", "quel", "dan", "pri", "zo", "hel", "ast", "mun"]
TEMPLATES = ["The capital of {x} is", "In the old tales, the river {x} flows into", "Question: Who rules {x}?\nAnswer:",
             "{x} was founded by a trader from", "Everyone in the valley knows that {x} trades mostly with"]


def synthetic_prompts(n, seed=0):
    rng = np.random.default_rng(seed)
    names = ["".join(rng.choice(SYLLABLES, rng.integers(2, 4))).capitalize() for _ in range(n)]
    return [TEMPLATES[i % len(TEMPLATES)].format(x=name) for i, name in enumerate(names)]


def train_tokenizer(texts, vocab_size=1024):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def build_task(n_questions, checkpoint_dir):
    """Save a sharpened ~1M-param model + tokenizer; gold answers are 1-3 tokens drawn from the model."""
    prompts = synthetic_prompts(n_questions)
    tokenizer = train_tokenizer(prompts * 3 + [" ".join(SYLLABLES)] * 50)
    model = build_model(128, 4, 1024, 256, head_dim=32, ffn_multiple=32, seed=0, eos_token_id=0)
    with torch.no_grad():
        model.model.norm.weight.mul_(40.0)  # sharpen: answers drawn from the model stay likely
    model.eval()
    # draw each gold answer with one sample, as a fresh question with a 1-3 token budget
    stub = encode_questions(tokenizer, prompts, [" x"] * n_questions)
    budgets = np.random.default_rng(1).integers(1, 4, n_questions)
    drawn = sample_answers(model, stub, 1, budgets, stop_token_mask(tokenizer, model),
                           [question_seed(12345, i) for i in range(n_questions)])
    answers = [tokenizer.decode([t for t in tokens[0] if t != 0]) for tokens, _ in drawn]
    table = pd.DataFrame({"id": [f"q{i}" for i in range(n_questions)], "prompt": prompts, "answer": answers})
    table = table[(table["answer"].str.strip() != "") & ~table["answer"].str.contains("\n")].reset_index(drop=True)
    model.save_pretrained(checkpoint_dir)
    tokenizer.save_pretrained(checkpoint_dir)
    return table


def timed(fn, repeats):
    """(result, best wall seconds) over `repeats` runs: the minimum is robust to a shared, busy CPU."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return result, best


def bench_likelihood(checkpoint_dir, table, table_path, tmp, repeats, device):
    model, tokenizer = load_checkpoint(checkpoint_dir, device)
    out, end_to_end = timed(lambda: evaluate_task(checkpoint_dir, table_path, tmp / "eval.parquet", batch_size=32,
                                                  device=device), repeats)
    encoded = encode_questions(tokenizer, table["prompt"], table["answer"])

    subset = encoded[: max(1, len(encoded) // 5)]  # the baseline is linear in questions: time a fifth, scale up

    @torch.no_grad()
    def one_at_a_time():  # baseline: no batching, no padding, full logits
        nll = []
        for q in subset:
            logp = torch.log_softmax(model(input_ids=torch.tensor([q.ids], device=device)).logits[0, :-1], -1).cpu()
            nll.append(-logp[torch.arange(q.start - 1, len(q.ids) - 1), torch.tensor(q.ids[q.start:])].sum().item())
        return np.array(nll)

    batched, core = timed(lambda: answer_nll(model, encoded, batch_size=32), repeats)
    naive, naive_s = timed(one_at_a_time, 1)
    naive_s *= len(encoded) / len(subset)
    print(f"likelihood, {len(table)} questions, {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params:")
    print(f"  evaluate_task end to end (load, tokenise, score, write): {end_to_end:.2f} s  (target <= 5 s)")
    print(f"  batched scoring {core:.2f} s vs one at a time {naive_s:.2f} s (timed on {len(subset)}, scaled): "
          f"{naive_s / core:.1f}x; max |diff| {np.abs(batched[: len(naive)] - naive).max():.1e} nats, "
          f"mean p {np.exp(-out['nll']).mean():.3f}")


def generate_counts(model, tokenizer, encoded, answers, n, budgets, stop):
    """Baseline: model.generate(num_return_sequences=n) per question, same budgets and stop tokens."""
    torch.manual_seed(0)
    counts = []
    for q, answer, budget in zip(encoded, answers, budgets):
        out = model.generate(torch.tensor([q.ids[: q.start]], device=model.device), do_sample=True,
                             num_return_sequences=n, top_k=0, top_p=1.0, temperature=1.0,
                             max_new_tokens=int(budget), pad_token_id=0, eos_token_id=stop.nonzero()[:, 0].tolist())
        token_lists = [[t for t in row if t != 0] for row in out[:, q.start:].tolist()]
        counts.append(count_correct(tokenizer, q, answer, token_lists, exact_match))
    return np.array(counts)


def bench_sampling(checkpoint_dir, table, n, repeats, device):
    model, tokenizer = load_checkpoint(checkpoint_dir, device)
    encoded = encode_questions(tokenizer, table["prompt"], table["answer"])
    stop = stop_token_mask(tokenizer, model)
    mean_p = np.exp(-answer_nll(model, encoded)).mean()
    print(f"sampling, {len(table)} questions x n = {n} (likelihood mean p = {mean_p:.4f}):")
    n_answer = np.array([q.n_answer_tokens for q in encoded])
    for label, budgets in (("budget = answer tokens", n_answer), ("budget = answer tokens + 8", n_answer + 8)):
        runs = {
            "shared cache + early stop": lambda: evaluate_questions(
                model, tokenizer, table, mode="sampling", n_samples=n, max_new_tokens=budgets, progress=False
            )["n_correct"].to_numpy(),
            "shared cache": lambda: evaluate_questions(
                model, tokenizer, table, mode="sampling", n_samples=n, max_new_tokens=budgets, early_stop=False,
                progress=False)["n_correct"].to_numpy(),
            "generate": lambda: generate_counts(model, tokenizer, encoded, table["answer"], n, budgets, stop),
        }
        counts, seconds = {name: None for name in runs}, {name: float("inf") for name in runs}
        for _ in range(repeats):  # interleaved, so a busy spell on the shared CPU hits all three alike
            for name, fn in runs.items():
                counts[name], s = timed(fn, 1)
                seconds[name] = min(seconds[name], s)
        print(f"  {label}:")
        for name, c in counts.items():
            other = counts["generate"]
            pooled = (c + other) / (2 * n)
            var = (2 * n * pooled * (1 - pooled)).sum()
            z = (c.sum() - other.sum()) / np.sqrt(var) if var > 0 else 0.0
            print(f"    {name:26s} {seconds[name]:7.2f} s  {seconds['generate'] / seconds[name]:5.1f}x vs generate  "
                  f"success rate {c.sum() / (n * len(c)):.4f}  (z vs generate {z:+.2f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--sampled", type=int, default=50, help="questions in the sampling comparison")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timings are the best of this many runs")
    args = parser.parse_args()
    print(f"device {args.device}, torch threads: {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        table = build_task(args.questions + 50, tmp / "ckpt").iloc[: args.questions].reset_index(drop=True)
        table_path = write_task_table(table, tmp / "task.parquet")
        bench_likelihood(tmp / "ckpt", table, table_path, tmp, args.repeats, args.device)
        sampled = table.iloc[: args.sampled].reset_index(drop=True)
        bench_sampling(tmp / "ckpt", sampled, args.n, args.repeats, args.device)


if __name__ == "__main__":
    main()
