"""Corpus loading through `datasets`, the byte-level BPE tokenizer, token files and prepare_corpus."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from t2scaling import data
from t2scaling.world import write_world

UNICODE = ["naïve café — déjà vu", "日本語のテキスト", "emoji 🙂🚀 and ZWJ 👩‍👩‍👧", "tabs\tand\nnewlines\r\n",
           "  leading and trailing spaces  ", "e\u0301 (decomposed) vs \u00e9", "\x00\x01 control", "Ελληνικά ∑∫",
           ""]


@pytest.fixture(autouse=True)
def private_datasets_cache(monkeypatch, tmp_path_factory):
    # datasets caches local files as Arrow; keep that out of the user's ~/.cache.
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.getbasetemp() / "hf-datasets"))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("world"))
    write_world(out, n_questions=50, n_train_questions=0, n_entities=40, n_documents=250, val_fraction=0.1)
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("hf-cache"))


@pytest.fixture(scope="module")
def tokenizer_dir(world, cache, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("tok") / "tokenizer")
    data.train_tokenizer(data.load_texts(f"{world}/corpus/train.jsonl", cache_dir=cache), 400, out)
    return out


def world_texts(world, split="train"):
    with open(f"{world}/corpus/{split}.jsonl") as f:
        return [json.loads(line)["text"] for line in f]


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


# -- load_texts -------------------------------------------------------------------------------------------

def test_load_local_formats(tmp_path, cache):
    docs = ["first document", "second one, with ünïcode", "third"]
    write_jsonl(tmp_path / "c.jsonl", [{"text": d, "meta": i} for i, d in enumerate(docs)])
    (tmp_path / "c.txt").write_text("\n".join(docs) + "\n")
    pd.DataFrame({"content": docs, "n": [1, 2, 3]}).to_parquet(tmp_path / "c.parquet")
    assert list(data.load_texts(tmp_path / "c.jsonl", cache_dir=cache)) == docs
    assert list(data.load_texts(str(tmp_path / "c.txt"), cache_dir=cache)) == docs
    assert list(data.load_texts(tmp_path / "c.parquet", text_field="content", cache_dir=cache)) == docs
    assert list(data.load_texts(tmp_path / "c.jsonl", streaming=True)) == docs
    assert list(data.load_texts(tmp_path / "c.jsonl", limit=2, cache_dir=cache)) == docs[:2]
    assert list(data.load_texts(tmp_path / "c.jsonl", skip=1, limit=1, streaming=True)) == docs[1:2]


def test_load_folder_splits(world, cache):
    folder = f"{world}/corpus"
    assert list(data.load_texts(folder, split="val", cache_dir=cache)) == world_texts(world, "val")
    assert list(data.load_texts(folder, split="train", limit=5, cache_dir=cache)) == world_texts(world)[:5]
    with pytest.raises(ValueError, match="no split 'test'"):
        data.load_texts(folder, split="test", cache_dir=cache)


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "train.jsonl"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        data.load_texts(missing)


@pytest.mark.parametrize("streaming", [False, True])
def test_missing_text_field_names_file_and_field(tmp_path, cache, streaming):
    path = tmp_path / "c.jsonl"
    write_jsonl(path, [{"content": "a"}, {"content": "b"}])
    with pytest.raises(ValueError, match=r"c\.jsonl.*'text'.*content"):
        list(data.load_texts(path, streaming=streaming, cache_dir=cache))


def test_non_text_value_names_the_row(tmp_path, cache):
    path = tmp_path / "c.jsonl"
    write_jsonl(path, [{"text": "fine"}, {"text": None}])
    with pytest.raises(ValueError, match=r"row 1, field 'text'"):
        list(data.load_texts(path, cache_dir=cache))


def test_uncached_hub_dataset_offline_is_a_clear_error(monkeypatch):
    import datasets
    import huggingface_hub

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match=r"'nobody/no-such-corpus'.*cache.*local files"):
        data.load_texts("nobody/no-such-corpus")


# -- tokenizer --------------------------------------------------------------------------------------------

def test_tokenizer_round_trip_and_special_tokens(world, tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert len(tok) == 400
    assert tok.eos_token == tok.bos_token == data.EOS and tok.pad_token == data.PAD
    assert tok.pad_token_id != tok.eos_token_id
    for text in world_texts(world)[:50] + world_texts(world, "val") + UNICODE:
        ids = tok(text)["input_ids"]
        assert tok.eos_token_id not in ids  # nothing added: documents are separated by write_tokens
        assert tok.decode(ids) == text
    # A BPE actually learned: world text takes far fewer tokens than bytes.
    text = " ".join(world_texts(world)[:20])
    assert len(tok(text)["input_ids"]) < len(text.encode()) / 1.8


def test_prompt_tokens_prefix_prompt_plus_answer(world, tokenizer_dir):
    # Answers carry their leading space, so the prompt's tokens are a prefix of prompt + answer's tokens.
    tok = data.load_tokenizer(tokenizer_dir)
    for family in ("knowledge", "arithmetic", "analogy", "spatial"):
        with open(f"{world}/tasks/{family}.jsonl") as f:
            for row in map(json.loads, f):
                prompt = tok(row["prompt"])["input_ids"]
                full = tok(row["prompt"] + row["answer"])["input_ids"]
                assert full[:len(prompt)] == prompt and len(full) > len(prompt), row


def test_tokenizer_vocab_too_small():
    with pytest.raises(ValueError, match="at least 258"):
        data.train_tokenizer(["abc"], 100)


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(ValueError, match="could not load tokenizer"):
        data.load_tokenizer(tmp_path / "empty")


# -- token files ------------------------------------------------------------------------------------------

def test_write_tokens_contents_and_eos(world, tokenizer_dir, tmp_path):
    tok = data.load_tokenizer(tokenizer_dir)
    docs = world_texts(world)[:30] + ["", "ünïcode 🙂"]
    info = data.write_tokens(iter(docs), tok, tmp_path / "t.npy", batch_size=7)
    tokens = data.load_tokens(tmp_path / "t.npy")
    assert isinstance(tokens, np.memmap) and tokens.dtype == np.uint16
    expected = np.concatenate([tok(d)["input_ids"] + [tok.eos_token_id] for d in docs])
    np.testing.assert_array_equal(tokens, expected)
    assert info == {"path": str(tmp_path / "t.npy"), "n_tokens": len(expected), "n_documents": len(docs),
                    "dtype": "uint16"}
    ends = np.flatnonzero(tokens == tok.eos_token_id)
    assert len(ends) == len(docs) and ends[-1] == len(tokens) - 1
    assert tok.decode(tokens[ends[-2] + 1:ends[-1]].tolist()) == docs[-1]


def test_large_vocab_gets_uint32(world, tokenizer_dir, tmp_path):
    assert data.token_dtype(65536) == np.uint16 and data.token_dtype(65537) == np.uint32
    tok = data.load_tokenizer(tokenizer_dir)

    class BigVocab:  # the same ids, reported as a vocabulary too large for uint16
        backend_tokenizer, eos_token_id = tok.backend_tokenizer, tok.eos_token_id

        def __len__(self):
            return 100_000

    docs = world_texts(world)[:5]
    data.write_tokens(docs, BigVocab(), tmp_path / "t.npy")
    tokens = data.load_tokens(tmp_path / "t.npy")
    assert tokens.dtype == np.uint32
    np.testing.assert_array_equal(tokens, np.concatenate([tok(d)["input_ids"] + [tok.eos_token_id] for d in docs]))


def test_write_tokens_is_atomic(tokenizer_dir, tmp_path):
    def broken():
        yield from ["some text"] * 10
        raise RuntimeError("source died")

    tok = data.load_tokenizer(tokenizer_dir)
    with pytest.raises(RuntimeError):
        data.write_tokens(broken(), tok, tmp_path / "t.npy", batch_size=4)
    assert os.listdir(tmp_path) == []


def test_load_tokens_missing_or_not_flat_integers(tmp_path):
    with pytest.raises(FileNotFoundError, match="train token file .*train.npy not found; write it with `t2scaling tokenize`"):
        data.load_tokens(tmp_path / "train.npy", "train token")
    np.save(tmp_path / "floats.npy", np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"floats.npy: expected a flat integer token array, got shape \(4, 2\) float64"):
        data.load_tokens(tmp_path / "floats.npy")


# -- prepare_corpus / CLI ---------------------------------------------------------------------------------

def test_prepare_corpus(world, tmp_path):
    from transformers import AutoTokenizer

    out = tmp_path / "corpus"
    summary = data.prepare_corpus(f"{world}/corpus/train.jsonl", f"{world}/corpus/val.jsonl", out, vocab_size=500)
    assert json.load(open(out / "corpus.json")) == summary
    tok = AutoTokenizer.from_pretrained(out / "tokenizer")
    train, val = data.load_tokens(out / "train.npy"), data.load_tokens(out / "val.npy")
    assert summary["vocab_size"] == len(tok) == 500 and summary["eos_id"] == tok.eos_token_id
    assert summary["train"]["n_tokens"] == len(train) and summary["val"]["n_tokens"] == len(val)
    assert (train == tok.eos_token_id).sum() == summary["train"]["n_documents"] == len(world_texts(world))
    assert (val == tok.eos_token_id).sum() == len(world_texts(world, "val"))
    counts = np.bincount(train, minlength=len(tok))
    p = counts[counts > 0] / len(train)
    assert summary["unigram_entropy_nats"] == pytest.approx(-(p * np.log(p)).sum(), rel=1e-12)
    assert 3.0 < summary["unigram_entropy_nats"] < np.log(500)

    # A pretrained tokenizer (by path) is reused, not retrained: identical ids.
    again = data.prepare_corpus(f"{world}/corpus/train.jsonl", f"{world}/corpus/val.jsonl", tmp_path / "again",
                                tokenizer=str(out / "tokenizer"))
    assert again["vocab_size"] == 500
    np.testing.assert_array_equal(data.load_tokens(tmp_path / "again" / "train.npy"), train)


def test_prepare_corpus_holds_out_val_documents(world, tmp_path):
    summary = data.prepare_corpus(f"{world}/corpus/train.jsonl", None, tmp_path, vocab_size=300, val_documents=20)
    n_train = len(world_texts(world))
    assert summary["val"]["n_documents"] == 20 and summary["train"]["n_documents"] == n_train - 20
    with pytest.raises(ValueError, match="val_documents"):
        data.prepare_corpus(f"{world}/corpus/train.jsonl", None, tmp_path / "x", vocab_size=300)


def test_cli_tokenize(world, tmp_path):
    from t2scaling.cli import main

    assert main(["tokenize", "--train", f"{world}/corpus/train.jsonl", "--val", f"{world}/corpus/val.jsonl",
                 "--out-dir", str(tmp_path), "--vocab-size", "300"]) == 0
    assert json.load(open(tmp_path / "corpus.json"))["vocab_size"] == 300
    assert main(["tokenize", "--train", str(tmp_path / "missing.jsonl"), "--val", "x.jsonl",
                 "--out-dir", str(tmp_path / "y")]) == 2


def test_the_corpus_job_reads_the_world_where_the_config_says_world(world, tmp_path):
    # rule corpus: config corpus section + the world's corpus files named by split
    corpus = {"train": "world", "val": f"{world}/corpus/val.jsonl", "tokenizer": "train", "vocab_size": 300,
              "text_field": "text"}
    files = {"train": f"{world}/corpus/train.jsonl", "val": "never/read.jsonl"}
    summary = data.prepare_configured_corpus(corpus, tmp_path / "data" / "corpus.json", world=files)
    assert summary["train"]["source"] == f"{world}/corpus/train.jsonl"
    assert summary["val"]["source"] == f"{world}/corpus/val.jsonl"  # a path given in the config is used as is
    assert json.load(open(tmp_path / "data" / "corpus.json")) == summary
    assert sorted(os.listdir(tmp_path / "data")) == ["corpus.json", "tokenizer", "train.npy", "val.npy"]
    with pytest.raises(ValueError, match="config corpus.train is 'world' but no train file of the embedded world"):
        data.prepare_configured_corpus(corpus, tmp_path / "x" / "corpus.json")
