"""Evaluation: likelihood NLL vs a slow reference, tokenisation boundary, sampling vs likelihood, the shared
prompt cache vs model.generate, validation loss, the per-question table and the CLI.

Fixtures are tiny random-init models (Qwen3-style and GPTNeoX/Pythia-style) with a hand-built byte-level BPE
tokenizer (one token per character, plus optional merges), saved to tmp dirs; no downloads.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import AutoModelForCausalLM, GPTNeoXConfig, PreTrainedTokenizerFast, Qwen3Config

from t2scaling import cli
from t2scaling.evaluate import (answer_nll, count_correct, encode_questions, evaluate_questions, evaluate_task,
                                load_checkpoint, question_seed, sample_answers, stop_token_mask, validation_loss,
                                write_val_loss)
from t2scaling.tasks import write_task_table

ALPHABET = "abcdefghijklmnopqrstuvwxyzQ .,?:"
BOUNDARY_MERGES = [("i", "s"), (" ", "Q"), ("is", " Q")]  # "is Q" becomes one token across prompt | answer


def char_tokenizer(merges=()):
    """Byte-level BPE over ALPHABET, one token per character plus `merges`; eos, no pad; GPT-2-style trimmed
    offsets (a lone space token reports an empty span)."""
    byte = {c: pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(c)[0][0] for c in ALPHABET}
    vocab = {"<|endoftext|>": 0}
    for c in ALPHABET:
        vocab[byte[c]] = len(vocab)
    merges = [("".join(byte[c] for c in a), "".join(byte[c] for c in b)) for a, b in merges]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def tiny_model(kind, vocab_size, seed=0, logit_scale=1.0):
    torch.manual_seed(seed)
    if kind == "qwen3":
        config = Qwen3Config(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=256,
                             tie_word_embeddings=True, eos_token_id=0)
    else:  # Pythia-style
        config = GPTNeoXConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=4, rotary_pct=0.25, max_position_embeddings=256,
                               use_parallel_residual=True, tie_word_embeddings=False, eos_token_id=0)
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():  # a peaked model: logits scaled through the final norm's gain
        final_norm = model.model.norm if kind == "qwen3" else model.gpt_neox.final_layer_norm
        final_norm.weight.mul_(logit_scale)
    return model


def save_checkpoint(model, tokenizer, path):
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def random_questions(n, seed=0, boundary_every=3):
    """Prompts of 3-30 characters and answers of 1-5 (leading space); every `boundary_every`-th question ends
    in 'is' with an answer starting ' Q' (the merged boundary token, for tokenizers that have it)."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz .,"))
    rows = []
    for i in range(n):
        prompt = "".join(rng.choice(letters, rng.integers(3, 31))).strip() or "x"
        answer = " " + "".join(rng.choice(letters[:26], rng.integers(1, 6)))
        if i % boundary_every == 0:
            prompt, answer = prompt + " is", " Q" + answer[1:]
        rows.append({"id": f"q{i}", "prompt": prompt, "answer": answer, "split": "test"})
    return pd.DataFrame(rows)


@torch.no_grad()
def reference_nll(model, tokenizer, prompt, answer, n_answer_tokens):
    """One question, no padding: summed NLL of the last n_answer_tokens of prompt + answer."""
    ids = torch.tensor([tokenizer(prompt + answer)["input_ids"]])
    logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), -1)
    targets = ids[0, 1:]
    return -logp[torch.arange(len(targets)), targets][-n_answer_tokens:].sum().item()


@pytest.fixture(scope="module")
def questions():
    return random_questions(40)


@pytest.fixture(scope="module", params=["qwen3", "gpt_neox"])
def char_setup(request):
    tokenizer = char_tokenizer()
    return request.param, tiny_model(request.param, len(tokenizer)), tokenizer


# ------------------------------------------------------------------------------------------- likelihood

@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("batch_size", [1, 32])
def test_likelihood_matches_unpadded_reference(char_setup, questions, padding_side, batch_size):
    kind, model, tokenizer = char_setup
    encoded = encode_questions(tokenizer, questions["prompt"], questions["answer"])
    # one token per character: the answer tokens are exactly the answer's characters
    assert [q.n_answer_tokens for q in encoded] == [len(a) for a in questions["answer"]]
    nll = answer_nll(model, encoded, batch_size=batch_size, padding_side=padding_side)
    expected = [reference_nll(model, tokenizer, p, a, len(a)) for p, a in zip(questions["prompt"], questions["answer"])]
    np.testing.assert_allclose(nll, expected, rtol=0, atol=1e-5)
    assert np.all(nll > 0)


def test_boundary_merge_token_counts_as_answer():
    tokenizer = char_tokenizer(BOUNDARY_MERGES)
    model = tiny_model("qwen3", len(tokenizer))
    (q,) = encode_questions(tokenizer, ["the x is"], [" Qab"])
    assert tokenizer.convert_ids_to_tokens(q.ids[q.start:]) == ["isĠQ", "a", "b"]
    assert tokenizer.convert_ids_to_tokens(q.ids[: q.start]) == ["t", "h", "e", "Ġ", "x", "Ġ"]
    assert q.prefix_text == "is"
    # a lone leading-space token (empty trimmed offsets) belongs to the answer, a trailing prompt space does not
    (q,) = encode_questions(tokenizer, ["a b "], [" c"])
    assert tokenizer.convert_ids_to_tokens(q.ids[q.start:]) == ["Ġ", "c"] and q.start == 4

    table = random_questions(30, seed=1)
    encoded = encode_questions(tokenizer, table["prompt"], table["answer"])
    merged = [q for q in encoded if tokenizer.convert_ids_to_tokens(q.ids[q.start]) == "isĠQ"]
    assert len(merged) == 10
    for side in ("left", "right"):
        nll = answer_nll(model, encoded, batch_size=32, padding_side=side)
        expected = [reference_nll(model, tokenizer, p, a, q.n_answer_tokens)
                    for p, a, q in zip(table["prompt"], table["answer"], encoded)]
        np.testing.assert_allclose(nll, expected, rtol=0, atol=1e-5)


def test_boundary_merge_sampling_verification():
    tokenizer = char_tokenizer(BOUNDARY_MERGES)
    (q,) = encode_questions(tokenizer, ["the x is"], [" Qa"])
    ids = tokenizer.convert_tokens_to_ids
    samples = [
        [ids("isĠQ"), ids("a")],  # the canonical path
        ids(["i", "s", "Ġ", "Q", "a"]),  # another path to the same text: still correct
        [ids("isĠQ"), ids("b")],  # wrong answer
        ids(["i", "s", "Ġ", "Q"]) + [ids("a"), 0],  # a sample ending at eos: correct
        ids(["x", "Ġ", "Q", "a"]),  # does not regenerate the prompt's "is"
    ]
    assert count_correct(tokenizer, q, " Qa", samples, lambda pred, gold: pred == gold) == 3


def test_contexts_beyond_the_position_limit_keep_their_latest_tokens():
    tokenizer = char_tokenizer()
    model = tiny_model("qwen3", len(tokenizer))  # 256 positions
    table = pd.DataFrame({"id": ["long", "short"], "prompt": ["ab c" * 100, "abc"], "answer": [" dd", " e"]})
    out = evaluate_questions(model, tokenizer, table, progress=False)
    assert out["n_context_tokens"].tolist() == [256 - 3, 3]
    full = table["prompt"][0] + table["answer"][0]
    expected = reference_nll(model, tokenizer, full[-256:-3], full[-3:], 3)
    assert out["nll"][0] == pytest.approx(expected, abs=1e-5)
    table.loc[0, "answer"] = " " + "d" * 300
    with pytest.raises(ValueError, match="question 'long': its answer has 301 tokens, beyond the model's 256"):
        evaluate_questions(model, tokenizer, table, progress=False)


def test_empty_prompt_without_bos_is_an_error():
    with pytest.raises(ValueError, match="question 'q7'.*nothing precedes the answer"):
        encode_questions(char_tokenizer(), [""], [" ab"], ids=["q7"])


# ------------------------------------------------------------------------------------------- sampling

@pytest.fixture(scope="module")
def peaked_task():
    """A peaked model and questions whose gold answers it finds likely: each answer is a continuation drawn
    from the model itself (eos excluded), so p_i = exp(-NLL_i) spreads over (0, 1)."""
    tokenizer = char_tokenizer()
    model = tiny_model("qwen3", len(tokenizer), seed=3, logit_scale=11.0)
    table = random_questions(30, seed=2, boundary_every=10**9)
    gen = torch.Generator().manual_seed(0)
    answers = []
    with torch.no_grad():
        for prompt, length in zip(table["prompt"], np.random.default_rng(0).integers(2, 5, len(table))):
            ids = tokenizer(prompt)["input_ids"]
            for _ in range(length):
                probs = torch.softmax(model(input_ids=torch.tensor([ids])).logits[0, -1], -1)
                probs[0] = 0  # no eos inside a gold answer
                ids.append(int(torch.multinomial(probs, 1, generator=gen)))
            answers.append(tokenizer.decode(ids[len(tokenizer(prompt)["input_ids"]):]))
    table["answer"] = answers
    table = table[table["answer"].str.strip() != ""].reset_index(drop=True)
    return model, tokenizer, table


def strict(pred, gold):
    return pred == gold


def test_sampling_agrees_with_likelihood(peaked_task):
    model, tokenizer, table = peaked_task
    encoded = encode_questions(tokenizer, table["prompt"], table["answer"])
    budgets = [q.n_answer_tokens for q in encoded]  # stop exactly at the answer length: success == gold tokens
    out = evaluate_questions(model, tokenizer, table, mode="sampling", verifier=strict, n_samples=64,
                             max_new_tokens=budgets, seed=0, progress=False)
    p = np.exp(-out["nll"].to_numpy())
    assert 0.15 < p.mean() < 0.85 and (p > 0.05).sum() >= 10, "the task must not be trivially ~0 or ~1"
    n, c = out["n_samples"].to_numpy(), out["n_correct"].to_numpy()
    variance = n * p * (1 - p)
    z = (c.sum() - (n * p).sum()) / np.sqrt(variance.sum())
    assert abs(z) < 4, f"total successes {c.sum()} vs expected {(n * p).sum():.1f}: z = {z:.2f}"
    chi2 = ((c - n * p) ** 2 / np.maximum(variance, 1e-12)).sum()
    assert chi2 < stats.chi2.ppf(1 - 1e-4, len(p)), f"chi-square {chi2:.1f} over {len(p)} questions"


def test_early_stop_changes_no_count(peaked_task):
    """Ending samples that can no longer match (exact match) saves work but leaves every count unchanged."""
    model, tokenizer, table = peaked_task
    kw = dict(mode="sampling", n_samples=32, seed=5, progress=False)  # default budgets: answer + margin
    fast = evaluate_questions(model, tokenizer, table, early_stop=True, **kw)
    slow = evaluate_questions(model, tokenizer, table, early_stop=False, **kw)
    pd.testing.assert_frame_equal(fast, slow)
    assert fast["n_correct"].sum() > 0


def test_shared_cache_sampler_log_probs_are_exact(peaked_task):
    """Each sample's accumulated log-prob equals a fresh, unpadded forward pass over context + sample: the
    shared, left-padded, row-dropping cache conditions every token correctly."""
    model, tokenizer, table = peaked_task
    encoded = encode_questions(tokenizer, table["prompt"][:8], table["answer"][:8])
    stop = stop_token_mask(tokenizer, model)
    drawn = sample_answers(model, encoded, 6, 5, stop, [question_seed(0, i) for i in range(8)], batch_size=4)
    with torch.no_grad():
        for q, (token_lists, logps) in zip(encoded, drawn):
            for tokens, logp in zip(token_lists, logps):
                assert 1 <= len(tokens) <= 5 and (len(tokens) == 5 or stop[tokens[-1]])
                ids = torch.tensor([q.ids[: q.start] + tokens])
                ref = torch.log_softmax(model(input_ids=ids).logits[0, q.start - 1: -1].double(), -1)
                expected = ref[torch.arange(len(tokens)), torch.tensor(tokens)].sum().item()
                assert logp == pytest.approx(expected, abs=1e-4)


def test_sampling_is_seeded_and_independent_of_batching(peaked_task):
    model, tokenizer, table = peaked_task
    encoded = encode_questions(tokenizer, table["prompt"][:6], table["answer"][:6])
    stop = stop_token_mask(tokenizer, model)
    seeds = [question_seed(7, i) for i in range(6)]
    a = sample_answers(model, encoded, 8, 4, stop, seeds, batch_size=1)
    b = sample_answers(model, encoded, 8, 4, stop, seeds, batch_size=6)
    assert [x[0] for x in a] == [x[0] for x in b]
    c = sample_answers(model, encoded, 8, 4, stop, [question_seed(8, i) for i in range(6)], batch_size=6)
    assert [x[0] for x in a] != [x[0] for x in c]


def test_shared_cache_sampler_matches_generate(peaked_task):
    model, tokenizer, table = peaked_task
    table = table.iloc[:6].reset_index(drop=True)
    encoded = encode_questions(tokenizer, table["prompt"], table["answer"])
    n = 200
    ours = evaluate_questions(model, tokenizer, table, mode="sampling", verifier=strict, n_samples=n,
                              max_new_tokens=[q.n_answer_tokens for q in encoded], progress=False)["n_correct"]
    torch.manual_seed(0)
    theirs = []
    for q, answer in zip(encoded, table["answer"]):
        out = model.generate(torch.tensor([q.ids[: q.start]]), do_sample=True, num_return_sequences=n, top_k=0,
                             top_p=1.0, temperature=1.0, max_new_tokens=q.n_answer_tokens, pad_token_id=0)
        token_lists = [[t for t in row if t != 0] for row in out[:, q.start:].tolist()]
        theirs.append(count_correct(tokenizer, q, answer, token_lists, strict))
    ours, theirs = ours.to_numpy(), np.array(theirs)
    pooled = (ours + theirs) / (2 * n)
    z = (ours.sum() - theirs.sum()) / np.sqrt((2 * n * pooled * (1 - pooled)).sum())
    assert abs(z) < 4, f"shared-cache successes {ours} vs generate {theirs}"
    assert ours.sum() > 0.1 * n * len(ours)


# ------------------------------------------------------------------------------------------- validation loss

def test_validation_loss_is_token_weighted_mean_nll():
    model = tiny_model("qwen3", 40)
    tokens = np.random.default_rng(0).integers(0, 40, 2 * 9 + 5)  # two windows of seq_len + 1 = 9, tail of 5
    model.train()
    loss = validation_loss(model, tokens, seq_len=8, batch_size=1, device="cpu")
    assert model.training  # mode restored
    with torch.no_grad():
        model.eval()
        nll, count = 0.0, 0
        for chunk in (tokens[:9], tokens[9:18], tokens[18:]):
            ids = torch.tensor(chunk)[None]
            logp = torch.log_softmax(model(input_ids=ids[:, :-1]).logits[0].double(), -1)
            nll -= logp[torch.arange(len(chunk) - 1), ids[0, 1:]].sum().item()
            count += len(chunk) - 1
    assert loss == pytest.approx(nll / count, rel=1e-6)
    assert validation_loss(model, tokens, 8, 4, "cpu") == pytest.approx(loss, rel=1e-6)
    capped = validation_loss(model, tokens, 8, 4, "cpu", max_tokens=9)
    assert capped == pytest.approx(validation_loss(model, tokens[:9], 8, 1, "cpu"), rel=1e-12) and capped != loss
    with pytest.raises(ValueError, match="at least 2 token ids"):
        validation_loss(model, tokens[:1], 8, 4, "cpu")



def test_the_val_loss_job_scores_a_checkpoint_and_copies_its_sizes(tmp_path):
    # rule val_loss: the first max_tokens of the validation tokens, written beside the checkpoint's sizes
    model = tiny_model("qwen3", len(ALPHABET) + 1)
    checkpoint = save_checkpoint(model, char_tokenizer(), tmp_path / "w32-l2-d64")
    meta = {"cell": "w32-l2-d64", "N": 1000, "N_non_embedding": 600, "D": 64, "C_train": 384000.0, "seq_len": 8}
    (checkpoint / "t2_meta.json").write_text(json.dumps(meta))
    tokens = np.random.default_rng(0).integers(0, len(ALPHABET) + 1, 40).astype(np.uint16)
    np.save(tmp_path / "val.npy", tokens)
    out = tmp_path / "loss" / "w32-l2-d64.json"
    row = write_val_loss(checkpoint, tmp_path / "val.npy", out, device="cpu", batch_size=2, max_tokens=20)
    loaded, _ = load_checkpoint(checkpoint, "cpu")
    expected = validation_loss(loaded, tokens, 8, 2, "cpu", max_tokens=20)
    assert row == {**{k: meta[k] for k in ("cell", "N", "N_non_embedding", "D", "C_train")},
                   "val_loss": pytest.approx(expected, rel=1e-12), "val_tokens": 20}
    assert json.loads(out.read_text()) == row


# ------------------------------------------------------------------------------------------- task evaluation, CLI

@pytest.mark.parametrize("kind", ["qwen3", "gpt_neox"])
def test_evaluate_task_writes_per_question_table(tmp_path, questions, kind):
    tokenizer = char_tokenizer(BOUNDARY_MERGES)
    model = tiny_model(kind, len(tokenizer))
    checkpoint = save_checkpoint(model, tokenizer, tmp_path / kind)
    table = pd.concat([questions, questions.iloc[:5].assign(id=lambda d: "train-" + d["id"], split="train")])
    table_path = write_task_table(table, tmp_path / "knowledge.parquet")
    out = evaluate_task(checkpoint, table_path, tmp_path / "eval" / "cell.parquet", batch_size=8, limit=30)
    assert list(out["question"]) == list(questions["id"][:30])  # test split only, first 30, table order
    written = pd.read_parquet(tmp_path / "eval" / "cell.parquet")
    pd.testing.assert_frame_equal(written, out)
    assert {"question", "nll", "n_answer_tokens"} <= set(written.columns)
    assert [p.name for p in (tmp_path / "eval").iterdir()] == ["cell.parquet"]  # no temp file left
    loaded, tok = load_checkpoint(checkpoint, "cpu")
    encoded = encode_questions(tok, questions["prompt"][:30], questions["answer"][:30])
    expected = [reference_nll(loaded, tok, p, a, q.n_answer_tokens)
                for p, a, q in zip(questions["prompt"][:30], questions["answer"][:30], encoded)]
    np.testing.assert_allclose(out["nll"], expected, rtol=0, atol=1e-5)


def test_cli_eval_sampling(tmp_path, questions):
    tokenizer = char_tokenizer()
    checkpoint = save_checkpoint(tiny_model("qwen3", len(tokenizer)), tokenizer, tmp_path / "ckpt")
    table_path = write_task_table(questions, tmp_path / "arithmetic.parquet")
    out_path = tmp_path / "out.parquet"
    argv = ["eval", "--checkpoint", str(checkpoint), "--task", str(table_path), "--out", str(out_path),
            "--mode", "sampling", "--n", "4", "--limit", "10", "--seed", "3"]
    assert cli.main(argv) == 0
    out = pd.read_parquet(out_path)
    assert len(out) == 10 and (out["n_samples"] == 4).all() and out["n_correct"].between(0, 4).all()
    assert cli.main(argv) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out_path), out)  # deterministic
    bad = ["eval", "--checkpoint", str(tmp_path / "nowhere"), "--task", str(table_path), "--out", str(out_path)]
    assert cli.main(bad) == 2

    # a registered task name with its files: the world's family jsonl
    family = tmp_path / "world" / "tasks" / "knowledge.jsonl"
    family.parent.mkdir(parents=True)
    questions.to_json(family, orient="records", lines=True)
    argv = ["eval", "--checkpoint", str(checkpoint), "--task", "knowledge", "--world-dir", str(tmp_path / "world"),
            "--out", str(tmp_path / "k.parquet"), "--limit", "5", "--kind", "arithmetic"]
    assert cli.main(argv) == 0
    assert pd.read_parquet(tmp_path / "k.parquet")["question"].tolist() == list(questions["id"][:5])


def test_hub_id_loads_from_the_local_cache_only(tmp_path):
    """An imported checkpoint given as a hub id loads from the Hugging Face cache; one not cached is an error
    that says how to fix it (nothing is downloaded)."""
    tokenizer = char_tokenizer()
    snapshot = tmp_path / "hub" / "models--t2org--tiny" / "snapshots" / "0123abcd"
    save_checkpoint(tiny_model("qwen3", len(tokenizer)), tokenizer, snapshot)
    (tmp_path / "hub" / "models--t2org--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--t2org--tiny" / "refs" / "main").write_text("0123abcd")
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1")
    script = ("import sys; from t2scaling.evaluate import load_checkpoint\n"
              "try:\n    model, tok = load_checkpoint(sys.argv[1], 'cpu'); print('hidden', model.config.hidden_size)\n"
              "except FileNotFoundError as err:\n    print('error', err)\n")
    found = subprocess.run([sys.executable, "-c", script, "t2org/tiny"], env=env, capture_output=True, text=True,
                           check=True, cwd=tmp_path)
    assert "hidden 32" in found.stdout, found.stderr
    missing = subprocess.run([sys.executable, "-c", script, "t2org/absent"], env=env, capture_output=True,
                             text=True, check=True, cwd=tmp_path)
    assert "t2org/absent: not a local directory, and not a hub id in the local Hugging Face cache" in missing.stdout
