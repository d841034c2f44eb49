"""Post-training: the SFT/FT loss mask token by token (with a tokenizer that merges across the prompt/answer
boundary), padding, answer NLL going down, steps, determinism, the saved checkpoint and its meta, errors, CLI.

Fixtures: tiny random-init models (Qwen3-style, and GPT-2 with dropout) and hand-built byte-level BPE
tokenizers, saved to tmp dirs; no downloads.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, PreTrainedTokenizerFast

from t2scaling import cli
from t2scaling.model import build_model
from t2scaling.posttrain import IGNORE, encode_examples, example_order, lm_loss, loss_mask, posttrain
from t2scaling.tasks import write_task_table

EOS, BOS = "<|endoftext|>", "<s>"
# byte-level forms: "Ġ" is the space. "is Q" and ", 7" become single tokens spanning prompt | answer.
BOUNDARY_MERGES = [("i", "s"), ("Ġ", "Q"), ("is", "ĠQ"), (",", "Ġ"), (",Ġ", "7")]


def byte_bpe(merges=(), bos=False):
    """Byte-level BPE: one token per byte plus `merges`, no pre-splitting (so merges may cross words);
    GPT-2-style trimmed offsets; eos; optionally a BOS prepended by the post-processor; no pad token."""
    vocab = {EOS: 0, BOS: 1}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=list(merges)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    steps = [processors.ByteLevel(trim_offsets=True)]
    if bos:
        steps.append(processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, 1)]))
    tok.post_processor = processors.Sequence(steps)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=BOS if bos else None)


# (prompt, answer, prompt tokens, answer tokens) under the merging tokenizer and under the plain one (+ BOS)
MERGED_CASES = [
    ("the answer is", " Q", [*"the", "Ġ", *"answer", "Ġ"], ["isĠQ"]),
    ("3, 5, 6,", " 7", ["3", ",Ġ", "5", ",Ġ", "6"], [",Ġ7"]),
    ("count:", " 42", [*"count:"], ["Ġ", "4", "2"]),
]
PLAIN_CASES = [
    ("the answer is", " Q", [BOS, *"the", "Ġ", *"answer", "Ġ", *"is"], ["Ġ", "Q"]),
    ("3, 5, 6,", " 7", [BOS, "3", ",", "Ġ", "5", ",", "Ġ", "6", ","], ["Ġ", "7"]),
    ("count:", " 42", [BOS, *"count:"], ["Ġ", "4", "2"]),
]


@pytest.mark.parametrize("mode", ["sft", "ft"])
@pytest.mark.parametrize("tokenizer, cases", [(byte_bpe(BOUNDARY_MERGES), MERGED_CASES),
                                              (byte_bpe(bos=True), PLAIN_CASES)], ids=["merging", "plain+bos"])
def test_loss_mask_token_by_token(tokenizer, cases, mode):
    prompts, answers = [c[0] for c in cases], [c[1] for c in cases]
    input_ids, attention_mask, labels = loss_mask(tokenizer, prompts, answers, mode)
    width = max(len(p) + len(a) + 1 for _, _, p, a in cases)
    assert input_ids.shape == attention_mask.shape == labels.shape == (len(cases), width)
    eos = tokenizer.eos_token_id
    for row, (_, _, prompt_tokens, answer_tokens) in enumerate(cases):
        n = len(prompt_tokens) + len(answer_tokens) + 1
        assert tokenizer.convert_ids_to_tokens(input_ids[row, :n].tolist()) == prompt_tokens + answer_tokens + [EOS]
        assert input_ids[row, n:].eq(eos).all()  # no pad token: pads with eos, masked out below
        assert attention_mask[row].tolist() == [1] * n + [0] * (width - n)
        real = input_ids[row, :n].tolist()
        in_loss = real[len(prompt_tokens):] if mode == "sft" else real
        expected = [IGNORE] * (n - len(in_loss)) + in_loss + [IGNORE] * (width - n)
        assert labels[row].tolist() == expected


@pytest.mark.parametrize("tokenizer, cases", [(byte_bpe(BOUNDARY_MERGES), MERGED_CASES),
                                              (byte_bpe(bos=True), PLAIN_CASES)], ids=["merging", "plain+bos"])
def test_sft_trains_on_exactly_the_tokens_evaluation_scores(tokenizer, cases):
    from t2scaling.evaluate import encode_questions

    prompts, answers = [c[0] for c in cases], [c[1] for c in cases]
    for (ids, labels), question in zip(encode_examples(tokenizer, prompts, answers, "sft"),
                                       encode_questions(tokenizer, prompts, answers)):
        trained = [i for i, label in enumerate(labels[:-1]) if label != IGNORE]  # without the closing eos
        assert ids[:len(question.ids)] == question.ids
        assert trained == list(range(question.start, len(question.ids)))


def test_loss_mask_keeps_a_tokenizer_appended_eos_once():
    tokenizer = byte_bpe()
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", special_tokens=[(EOS, 0)])
    input_ids, _, labels = loss_mask(tokenizer, ["ab"], [" c"], "sft")
    assert tokenizer.convert_ids_to_tokens(input_ids[0].tolist()) == ["a", "b", "Ġ", "c", EOS]
    assert labels[0].tolist() == [IGNORE, IGNORE, *input_ids[0, 2:].tolist()]


def test_loss_mask_errors():
    tokenizer = byte_bpe()
    with pytest.raises(ValueError, match="unknown post-training mode 'lm'; use one of ft, sft"):
        loss_mask(tokenizer, ["a"], [" b"], "lm")
    with pytest.raises(ValueError, match="example 0: nothing precedes the answer"):
        loss_mask(tokenizer, [""], ["b"], "sft")


def test_example_order_is_one_permutation_per_epoch():
    order = example_order(5, 12, seed=3)
    assert len(order) == 12
    assert sorted(order[:5]) == sorted(order[5:10]) == list(range(5))
    assert np.array_equal(order, example_order(5, 12, seed=3))
    assert not np.array_equal(order, example_order(5, 12, seed=4))


# --------------------------------------------------------------------------------------------- training

WORDS = ["ab", "cd", "ef", "gh", "ij", "kl", "mn", "op", "qr", "st", "uv", "wx"]


def task_table():
    rows = [{"id": f"tr{i}", "prompt": f"the {w} is", "answer": " Q" if i % 2 else " R", "split": "train"}
            for i, w in enumerate(WORDS)]
    rows += [{"id": "te0", "prompt": "the yz is", "answer": " Q", "split": "test"}]
    return pd.DataFrame(rows)


def save_base(path, kind="qwen3", merges=BOUNDARY_MERGES):
    tokenizer = byte_bpe(merges)
    if kind == "qwen3":
        model = build_model(32, 2, len(tokenizer), 64, head_dim=16, ffn_multiple=16, seed=0, eos_token_id=0)
    else:  # GPT-2 keeps its default dropout 0.1, so determinism needs the torch seed
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32,
                                                            n_layer=2, n_head=2, eos_token_id=0))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "t2_meta.json").write_text(json.dumps({"cell": "tiny", "N": 12345, "D": 67890}))
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return save_base(tmp_path_factory.mktemp("base") / "ckpt")


@pytest.fixture(scope="module")
def table_path(tmp_path_factory):
    return write_task_table(task_table(), tmp_path_factory.mktemp("tasks") / "facts.parquet")


@torch.no_grad()
def answer_nll(checkpoint):
    """Summed answer NLL (nats) of each train example, one unpadded forward pass per example."""
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    train = task_table().query("split == 'train'")
    out = []
    for ids, labels in encode_examples(tokenizer, train["prompt"], train["answer"], "sft"):
        ids, labels = torch.tensor([ids[:-1]]), torch.tensor(labels[:-1])  # drop eos: the answer only
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
        targets = labels[1:]
        keep = targets != IGNORE
        out.append(-logp[keep].gather(-1, targets[keep, None]).sum().item())
    return np.array(out)


def test_padded_loss_matches_unpadded_forward_passes(base):
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(base)
    prompts, answers = [c[0] for c in MERGED_CASES], [c[1] for c in MERGED_CASES]
    for mode in ("sft", "ft"):
        with torch.no_grad():
            padded = lm_loss(model, *loss_mask(tokenizer, prompts, answers, mode)).item()
            sums, counts = 0.0, 0
            for ids, labels in encode_examples(tokenizer, prompts, answers, mode):
                targets = torch.tensor(labels[1:])
                logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, :-1], -1)
                keep = targets != IGNORE
                sums -= logp[keep].gather(-1, targets[keep, None]).sum().item()
                counts += int(keep.sum())
        assert padded == pytest.approx(sums / counts, rel=1e-5)


@pytest.mark.parametrize("mode", ["sft", "ft"])
def test_posttraining_lowers_answer_nll_and_saves_a_checkpoint(base, table_path, tmp_path, mode):
    out = tmp_path / mode
    meta = posttrain(base, table_path, out, mode=mode, batch_size=4, lr=1e-2, epochs=6, threads=1,
                     log_path=tmp_path / "log.jsonl")
    before, after = answer_nll(base), answer_nll(out)
    assert after.mean() < 0.4 * before.mean()  # from ~ln(vocab) per answer token to well below
    assert (after < before).all()

    saved = json.loads((out / "t2_meta.json").read_text())
    assert saved == json.loads(json.dumps(meta))
    assert (saved["cell"], saved["N"], saved["D"]) == ("tiny", 12345, 67890)  # base fields kept
    post = saved["posttrain"]
    assert (post["mode"], post["task"], post["epochs"], post["batch_size"], post["lr"]) == (mode, "facts", 6, 4, 1e-2)
    assert post["steps"] == math.ceil(6 * 12 / 4) and post["n_train_examples"] == 12
    assert post["final_loss"] < post["initial_loss"] and post["seconds"] > 0
    assert post["base_checkpoint"] == str(base)
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == post["steps"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind
    reloaded = AutoTokenizer.from_pretrained(out)
    assert reloaded.convert_ids_to_tokens(reloaded("is Q")["input_ids"]) == ["isĠQ"]


def test_default_steps_and_cap(base, table_path, tmp_path):
    meta = posttrain(base, table_path, tmp_path / "a", max_steps=2, threads=1)
    assert (meta["posttrain"]["steps"], meta["posttrain"]["lr"], meta["posttrain"]["batch_size"]) == (2, 2e-5, 8)
    frame = task_table()  # a DataFrame works too; the default is ceil(6 * 12 / 8) = 9 steps
    meta = posttrain(base, frame, tmp_path / "b", epochs=6, threads=1, task="facts")
    assert meta["posttrain"]["steps"] == 9 and meta["posttrain"]["task"] == "facts"


@pytest.mark.parametrize("kind", ["qwen3", "gpt2"])
def test_deterministic_given_the_seed(tmp_path, table_path, kind):
    base = save_base(tmp_path / "base", kind)
    weights = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        posttrain(base, table_path, tmp_path / name, mode="sft", batch_size=4, lr=1e-3, max_steps=3, seed=seed,
                  threads=1)
        weights[name] = AutoModelForCausalLM.from_pretrained(tmp_path / name).state_dict()
    assert all(torch.equal(weights["a"][k], weights["b"][k]) for k in weights["a"])
    assert not all(torch.equal(weights["a"][k], weights["c"][k]) for k in weights["a"])


def test_errors_name_the_file_and_the_fix(base, tmp_path):
    no_train = write_task_table(task_table().query("split == 'test'"), tmp_path / "lambada.parquet")
    with pytest.raises(ValueError, match=r"lambada\.parquet: the task has no train split"):
        posttrain(base, no_train, tmp_path / "out")
    no_split = write_task_table(task_table().drop(columns="split"), tmp_path / "nosplit.parquet")
    with pytest.raises(ValueError, match=r"nosplit\.parquet: the task has no train split"):
        posttrain(base, no_split, tmp_path / "out")
    with pytest.raises(ValueError, match="use one of ft, sft"):
        posttrain(base, no_train, tmp_path / "out", mode="full")
    with pytest.raises(ValueError, match="is the base checkpoint"):
        posttrain(base, no_train, base)
    assert not (tmp_path / "out").exists()


def test_cli(base, table_path, tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli.main(["posttrain", "--checkpoint", str(base), "--task-table", str(table_path), "--out", str(out),
                     "--mode", "ft", "--max-steps", "2", "--batch-size", "4", "--threads", "1"]) == 0
    post = json.loads((out / "t2_meta.json").read_text())["posttrain"]
    assert (post["mode"], post["steps"], post["batch_size"]) == ("ft", 2, 4)
    bad = write_task_table(task_table().query("split == 'test'"), tmp_path / "t.parquet")
    assert cli.main(["posttrain", "--checkpoint", str(base), "--task-table", str(bad), "--out", str(out)]) == 2
    assert "t.parquet: the task has no train split" in capsys.readouterr().err


@pytest.fixture
def job_log(tmp_path, monkeypatch):
    """A function that makes the rest of the test run as a workflow job does: `jobs.open_job_log` (stderr to a
    file, not a terminal; Hugging Face bars off); returns the log's path. Opened inside the test's body, since
    pytest resets sys.stderr between setup and call. Stderr, logging, environment and the bar switches are
    restored after the test."""
    import logging
    import sys

    import transformers.utils.logging as hf_logging

    from t2scaling import jobs

    root = logging.getLogger()
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    monkeypatch.setattr(root, "handlers", [])  # pytest's own handlers stay untouched
    monkeypatch.setattr(root, "level", root.level)
    for variable in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(variable, raising=False)
    bars = hf_logging.is_progress_bar_enabled()
    opened = []

    def start():
        jobs.open_job_log(tmp_path / "job.log", "posttrain")
        opened.append(sys.stderr)
        return tmp_path / "job.log"

    yield start
    for stream in opened:
        stream.close()
    if bars:
        hf_logging.enable_progress_bar()


def test_a_job_log_gets_progress_lines_and_no_bars(base, table_path, tmp_path, job_log, monkeypatch):
    import t2scaling.posttrain as P

    monkeypatch.setattr(P, "PROGRESS_EVERY_S", 0.0)  # a line after every step
    log = job_log()
    meta = posttrain(base, table_path, tmp_path / "out", batch_size=4, max_steps=3, threads=1, task="facts")
    text = log.read_text()
    assert "\r" not in text
    for bar in ("Loading weights", "Writing model shards", "it/s]", "step/s]"):
        assert bar not in text
    lines = [line for line in text.splitlines() if ": sft facts: step " in line]
    assert [line.split(": step ")[1].split(" ")[0] for line in lines] == ["1/3", "2/3", "3/3"], text
    assert all(", loss " in line and " steps/s, elapsed " in line and ", ETA " in line for line in lines)
    assert f"loss {meta['posttrain']['initial_loss']:.4f}" in lines[0]
