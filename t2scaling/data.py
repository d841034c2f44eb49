"""Corpora, tokenizers and token files (DESIGN.md §3.2-3.4): text in through `datasets`, ids out as `.npy`.

- `load_texts`: documents from local .jsonl/.json/.txt/.parquet/.csv files or folders (datasets' packaged
  builders), or a hub dataset name (from the local cache when offline), optionally streamed.
- `train_tokenizer` / `load_tokenizer`: a byte-level BPE trained with `tokenizers` and saved as a
  `transformers` fast tokenizer (so checkpoints load with `AutoTokenizer`), or any pretrained one.
- `write_tokens` / `load_tokens`: one flat array of ids per split, each document followed by the end-of-text
  id; uint16 when the vocabulary fits, else uint32; read back memory-mapped.
- `prepare_corpus`: all of the above for a train and a val source, plus corpus.json with the counts and the
  unigram entropy of the train tokens (the loss of the best context-free model: training must beat it).
"""

import itertools
import json
import logging
import os
import struct

import numpy as np
from tqdm.auto import tqdm

from t2scaling.atomic import atomic_dir, atomic_file

logger = logging.getLogger(__name__)

EOS = "<|endoftext|>"  # also the bos token: documents are separated, not wrapped
PAD = "<|pad|>"
BUILDERS = {".jsonl": "json", ".json": "json", ".txt": "text", ".text": "text", ".parquet": "parquet", ".csv": "csv"}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}


# ---------------------------------------------------------------------------------------------------------
# Loading text.

def _local_builder(path):
    name = path.lower()
    for suffix in COMPRESSIONS:
        name = name.removesuffix(suffix)
    return BUILDERS.get(os.path.splitext(name)[1])


def _looks_local(source):
    return source.startswith(("/", "./", "../", "~")) or _local_builder(source) is not None


def _hub_error(name, split, text_field, err):
    return ValueError(
        f"could not load dataset {name!r} (split {split!r}) through `datasets`: {type(err).__name__}: {err}. "
        "Without network (HF_DATASETS_OFFLINE=1) a hub dataset must already be in the local cache; otherwise "
        f"pass local files instead: a .jsonl/.json/.parquet file or folder with a {text_field!r} field, or .txt "
        "files (one document per line)")


def load_texts(source, *, split="train", text_field="text", streaming=False, limit=None, skip=0, cache_dir=None):
    """Iterator over the documents (strings) of one split of a corpus.

    source: a local file (.jsonl/.json/.parquet/.csv with a `text_field` column, or .txt with one document
    per line; optionally compressed), a local folder of such files (datasets infers the splits from file
    names: train*, val*/validation*, test*), or a hub dataset id, "owner/name" or "owner/name:config".
    split: used for folders and hub datasets ("val" means "validation"); a single file is its own split.
    streaming: read lazily (for corpora larger than the disk cache should hold). limit/skip: the number of
    documents to yield / to pass over first. Loading and the field check happen now; rows are read lazily.
    """
    import datasets

    source = os.path.expanduser(os.fspath(source))
    split = SPLIT_ALIASES.get(split, split)
    options = {"streaming": streaming, "cache_dir": cache_dir}
    if os.path.isfile(source):
        builder = _local_builder(source)
        if builder is None:
            raise ValueError(f"{source}: unknown file type; use one of {sorted(BUILDERS)} (optionally {COMPRESSIONS})")
        dataset = datasets.load_dataset(builder, data_files={"train": source}, split="train", **options)
    elif os.path.isdir(source):
        try:
            dataset = datasets.load_dataset(source, split=split, **options)
        except ValueError as err:
            raise ValueError(f"{source}: no split {split!r} among its files ({err}); name the files train.jsonl, "
                             "val.jsonl, ... or pass one file") from err
    elif _looks_local(source):
        raise FileNotFoundError(f"corpus file {source} does not exist; check the path (or generate it, e.g. "
                                "`t2scaling world --out DIR` writes DIR/corpus/train.jsonl and val.jsonl)")
    else:
        name, _, config = source.partition(":")
        try:
            dataset = datasets.load_dataset(name, config or None, split=split, **options)
        except Exception as err:  # network, cache and missing-dataset errors all end here
            raise _hub_error(source, split, text_field, err) from err
    columns = dataset.column_names  # None for some streamed formats: then checked row by row
    if columns is not None:
        if text_field not in columns:
            raise ValueError(f"{source}: no field {text_field!r}; its fields are {columns}. "
                             f"Pass the right one with text_field / --text-field")
        dataset = dataset.select_columns([text_field])  # do not decode the other columns
    return _iterate(dataset, source, text_field, skip, limit)


def _iterate(dataset, source, text_field, skip, limit):
    rows = itertools.islice(dataset, skip, None if limit is None else skip + limit)
    for index, row in enumerate(rows, start=skip):
        if text_field not in row:
            raise ValueError(f"{source}: row {index} has no field {text_field!r} (fields {sorted(row)}); "
                             "pass the right one with text_field / --text-field")
        text = row[text_field]
        if not isinstance(text, str):
            raise ValueError(f"{source}: row {index}, field {text_field!r} is {type(text).__name__}, not text; "
                             "drop or fix that row")
        yield text


# ---------------------------------------------------------------------------------------------------------
# Tokenizers.

def train_tokenizer(texts, vocab_size, out_dir=None):
    """Train a byte-level BPE of vocab_size ids (256 bytes + merges + EOS + PAD) on an iterable of strings.

    Any unicode round-trips (decode(encode(x)) == x): no normalizer, no unknown token, no added prefix space.
    Returns a `transformers.PreTrainedTokenizerFast` with eos = bos = "<|endoftext|>" and pad = "<|pad|>",
    saved to out_dir (atomically) when given.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + 2:
        raise ValueError(f"vocab_size = {vocab_size}: a byte-level BPE needs at least {len(alphabet) + 2} "
                         "(256 bytes + end-of-text + pad)")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS, PAD],
                                  initial_alphabet=alphabet, show_progress=logger.isEnabledFor(logging.INFO))
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=EOS, eos_token=EOS, pad_token=PAD,
                                        clean_up_tokenization_spaces=False)
    if len(tokenizer) < vocab_size:
        logger.warning("the corpus supports only %d of the %d requested ids (no more pairs occur twice)",
                       len(tokenizer), vocab_size)
    if out_dir is not None:
        with atomic_dir(out_dir) as tmp:  # a killed job never leaves half a tokenizer
            tokenizer.save_pretrained(tmp)
        logger.info("trained a byte-level BPE of %d ids -> %s", len(tokenizer), out_dir)
    return tokenizer


def load_tokenizer(name_or_path):
    """A fast tokenizer from a folder or a hub id (cached when offline), with an eos and a pad token."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(os.fspath(name_or_path))
    except (OSError, ValueError) as err:
        raise ValueError(f"could not load tokenizer {name_or_path!r}: {err}. Give a folder written by "
                         "`t2scaling tokenize` (its tokenizer/) or a hub id that is already cached") from err
    if not tokenizer.is_fast:
        raise ValueError(f"tokenizer {name_or_path!r} is not a fast (Rust) tokenizer; batched encoding needs one")
    if tokenizer.eos_token_id is None:
        raise ValueError(f"tokenizer {name_or_path!r} has no eos token; documents could not be separated. "
                         "Add one (tokenizer.add_special_tokens) and save it, or train one with --vocab-size")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # the common convention (e.g. GPT-NeoX); pads are masked anyway
    return tokenizer


# ---------------------------------------------------------------------------------------------------------
# Token files.

def token_dtype(vocab_size):
    """uint16 when every id fits (vocab_size <= 65536), else uint32."""
    return np.dtype(np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.uint32)


def _npy_header(dtype, length, size=128):
    """A version-1.0 .npy header of fixed size, so the length can be filled in after streaming the data."""
    text = "{'descr': '%s', 'fortran_order': False, 'shape': (%d,), }" % (dtype.str, length)
    header = text.ljust(size - 11) + "\n"  # 10 bytes of magic/version/length before it; total 64-aligned
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1")


def write_tokens(texts, tokenizer, path, *, batch_size=1024, total=None):
    """Encode documents in batches and write them as one flat .npy of ids, each followed by the eos id.

    Streams to a temp file in the target folder and renames it at the end (atomic, constant memory).
    total: number of documents, for the progress bar. Returns {"path", "n_tokens", "n_documents", "dtype"}.
    """
    backend = tokenizer.backend_tokenizer
    eos = tokenizer.eos_token_id
    dtype = token_dtype(len(tokenizer))
    path = os.path.abspath(path)
    if total is None and hasattr(texts, "__len__"):
        total = len(texts)
    n_tokens = n_documents = 0
    with atomic_file(path) as tmp, open(tmp, "wb") as f, \
            tqdm(total=total, unit="doc", desc=os.path.basename(path)) as bar:
        f.write(_npy_header(dtype, 0))
        texts = iter(texts)
        while batch := list(itertools.islice(texts, batch_size)):
            ids = [e.ids for e in backend.encode_batch_fast(batch, add_special_tokens=False)]
            flat = np.empty(sum(map(len, ids)) + len(ids), dtype)
            position = 0
            for doc in ids:
                flat[position:position + len(doc)] = doc
                position += len(doc)
                flat[position] = eos
                position += 1
            f.write(flat.tobytes())
            n_tokens += len(flat)
            n_documents += len(batch)
            bar.update(len(batch))
            bar.set_postfix(tokens=n_tokens, refresh=False)
        f.seek(0)
        f.write(_npy_header(dtype, n_tokens))
    logger.info("wrote %d tokens (%d documents, %s) to %s", n_tokens, n_documents, dtype.name, path)
    return {"path": path, "n_tokens": n_tokens, "n_documents": n_documents, "dtype": dtype.name}


def load_tokens(path, what="token"):
    """The flat integer token array of a split, memory-mapped read-only; `what` names the split in errors."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file {path} not found; write it with `t2scaling tokenize`")
    tokens = np.load(path, mmap_mode="r")
    if tokens.ndim != 1 or tokens.dtype.kind not in "iu":
        raise ValueError(f"{path}: expected a flat integer token array, got shape {tokens.shape} {tokens.dtype}")
    return tokens


def unigram_entropy(tokens, vocab_size, chunk=1 << 24):
    """Entropy (nats) of the token frequency distribution: the cross-entropy of the best unigram model."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in range(0, len(tokens), chunk):
        counts += np.bincount(tokens[start:start + chunk], minlength=vocab_size)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


# ---------------------------------------------------------------------------------------------------------
# The whole preparation.

def prepare_corpus(train_source, val_source, out_dir, *, tokenizer="train", vocab_size=1024, text_field="text",
                   train_split="train", val_split="validation", val_documents=None, tokenizer_documents=None,
                   streaming=False):
    """Tokenizer + train.npy + val.npy + corpus.json in out_dir; returns the corpus.json dict.

    tokenizer: "train" (a byte-level BPE of vocab_size ids trained on the train source, at most
    tokenizer_documents documents) or a pretrained name/path (copied into out_dir/tokenizer/ so checkpoints
    carry it). val_source None: the first val_documents documents of the train source are the val split and
    the train split starts after them.
    """
    os.makedirs(out_dir, exist_ok=True)
    read = dict(text_field=text_field, streaming=streaming)
    train_skip = 0
    if val_source is None:
        if not val_documents:
            raise ValueError("no validation corpus: pass val_source (--val) or val_documents (--val-documents) "
                             "to hold out the first documents of the train source")
        val_source, val_split, train_skip = train_source, train_split, val_documents
    tokenizer_dir = os.path.join(out_dir, "tokenizer")
    if tokenizer == "train":
        texts = load_texts(train_source, split=train_split, skip=train_skip, limit=tokenizer_documents, **read)
        tok = train_tokenizer(texts, vocab_size, tokenizer_dir)
    else:
        tok = load_tokenizer(tokenizer)
        with atomic_dir(tokenizer_dir) as tmp:
            tok.save_pretrained(tmp)
    train = write_tokens(load_texts(train_source, split=train_split, skip=train_skip, **read), tok,
                         os.path.join(out_dir, "train.npy"))
    val = write_tokens(load_texts(val_source, split=val_split, limit=val_documents, **read), tok,
                       os.path.join(out_dir, "val.npy"))
    if train["n_tokens"] == 0 or val["n_tokens"] == 0:
        empty = train_source if train["n_tokens"] == 0 else val_source
        raise ValueError(f"{empty}: no documents were read; check the source and split")
    summary = {
        "tokenizer": tokenizer if tokenizer != "train" else "trained byte-level BPE",
        "vocab_size": len(tok),
        "eos_id": tok.eos_token_id,
        "pad_id": tok.pad_token_id,
        "dtype": train["dtype"],
        "text_field": text_field,
        "train": {"source": os.fspath(train_source), "split": train_split, "skip": train_skip,
                  "n_tokens": train["n_tokens"], "n_documents": train["n_documents"]},
        "val": {"source": os.fspath(val_source), "split": val_split,
                "n_tokens": val["n_tokens"], "n_documents": val["n_documents"]},
        "unigram_entropy_nats": unigram_entropy(load_tokens(train["path"]), len(tok)),
    }
    with atomic_file(os.path.join(out_dir, "corpus.json")) as tmp, open(tmp, "w") as f:
        json.dump(summary, f, indent=2)
    logger.info("corpus in %s: %d train / %d val tokens, vocab %d, unigram entropy %.3f nats", out_dir,
                train["n_tokens"], val["n_tokens"], len(tok), summary["unigram_entropy_nats"])
    return summary


def prepare_configured_corpus(corpus, summary_path, world=None):
    """Rule corpus: `prepare_corpus` as the config's `corpus` section says, into the directory of summary_path
    (corpus.json; tokenizer/, train.npy and val.npy beside it); returns the summary.

    corpus: {train, val, tokenizer, vocab_size, text_field}; a train or val source "world" reads the embedded
    world's corpus file of that split, given in world ({"train": path, "val": path}, the rule's named inputs)."""
    world = world or {}
    sources = {}
    for split in ("train", "val"):
        if corpus[split] == "world" and split not in world:
            raise ValueError(f"config corpus.{split} is 'world' but no {split} file of the embedded world is given")
        sources[split] = world[split] if corpus[split] == "world" else corpus[split]
    return prepare_corpus(sources["train"], sources["val"], os.path.dirname(os.fspath(summary_path)) or ".",
                          tokenizer=corpus["tokenizer"], vocab_size=corpus["vocab_size"],
                          text_field=corpus["text_field"])


# ---------------------------------------------------------------------------------------------------------
