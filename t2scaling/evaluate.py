"""Evaluate a causal LM: per-question task observations and held-out validation loss (DESIGN.md §2.1, §2.2, §5).

- likelihood mode (the paper's): NLL_i = summed NLL (nats) of the gold answer tokens given the prompt, at
  temperature 1, so p_i = exp(-NLL_i) is the chance that one sample reproduces the gold answer exactly;
- sampling mode: n real samples per question, verified by the task's verifier -> (n_samples, n_correct);
  the prompt is encoded once and its KV cache shared by the n samples;
- `validation_loss`: token-weighted mean NLL (nats/token) over a flat token array.

Tokenisation boundary: prompt + answer is tokenised jointly and the answer tokens are those whose character
span overlaps the answer text, so a token merged across the boundary ("is Q") counts as an answer token and
the context is the tokens before it. Sampling starts from the same context and must regenerate the prompt
characters inside that token before the answer.
"""

import dataclasses
import inspect
import logging
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from t2scaling.atomic import atomic_file
from t2scaling.runtime import encode_with_answer_tokens, load_checkpoint

logger = logging.getLogger(__name__)

ANSWER_MARGIN_TOKENS = 8  # sampling budget beyond the gold answer's length (room for "Paris." + newline)
SAMPLING_CACHE_TOKENS_PER_QUESTION = 2048  # sampling groups hold <= batch_size * this many cached tokens


# --------------------------------------------------------------------------------------------- loading

# --------------------------------------------------------------------------------------------- encoding

@dataclasses.dataclass
class EncodedQuestion:
    ids: list  # joint tokens of prompt + answer, up to the last answer token
    start: int  # index of the first answer token; ids[:start] is the context
    prefix_text: str  # prompt characters covered by the first answer token (usually "")

    @property
    def n_answer_tokens(self):
        return len(self.ids) - self.start


def encode_questions(tokenizer, prompts, answers, ids=None):
    """Tokenise prompt + answer jointly; the answer tokens are those whose span overlaps the answer characters
    (`runtime.encode_with_answer_tokens`, the rule post-training's SFT loss uses too)."""
    prompts, answers = [str(p) for p in prompts], [str(a) for a in answers]
    out = []
    for i, (tokens, special, hi, in_answer) in enumerate(encode_with_answer_tokens(tokenizer, prompts, answers)):
        where = np.flatnonzero(in_answer)
        name = ids[i] if ids is not None else i
        if where.size == 0:
            raise ValueError(f"question {name!r}: no token covers the answer {answers[i]!r}; check the task table")
        start, end = int(where[0]), int(where[-1]) + 1
        if start == 0:
            raise ValueError(f"question {name!r}: nothing precedes the answer (empty prompt and no BOS token); "
                             "give the question a prompt")
        context_end = int(hi[:start][~special[:start]].max(initial=0))
        out.append(EncodedQuestion(tokens[:end], start, prompts[i][context_end:]))
    return out


def truncate_contexts(encoded, max_length, ids=None):
    """Drop the oldest context tokens of questions longer than `max_length` (the model's position limit),
    as evaluation harnesses do; the answer and at least one context token always stay."""
    truncated = 0
    for i, q in enumerate(encoded):
        excess = len(q.ids) - max_length
        if excess > 0:
            if q.n_answer_tokens >= max_length:
                name = ids[i] if ids is not None else i
                raise ValueError(f"question {name!r}: its answer has {q.n_answer_tokens} tokens, beyond the model's "
                                 f"{max_length} positions; drop the question or use a longer-context model")
            q.ids, q.start = q.ids[excess:], q.start - excess
            truncated += 1
    if truncated:
        logger.warning("%d question(s) longer than the model's %d positions: oldest context tokens dropped",
                       truncated, max_length)
    return encoded


def _length_order(lengths):
    """Longest first (a memory error shows at once), stable, so batches and results are deterministic."""
    return np.argsort(-np.asarray(lengths), kind="stable")


def _pad(rows, pad_id, side):
    """(ids, attention_mask, position_ids, offsets) for a list of token lists, padded on `side`. Padding is
    masked out, so any id will do (tokenizers without a pad token need none)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    offsets = []
    for b, r in enumerate(rows):
        off = width - len(r) if side == "left" else 0
        ids[b, off: off + len(r)] = torch.tensor(r, dtype=torch.long)
        mask[b, off: off + len(r)] = 1
        offsets.append(off)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions, offsets


# --------------------------------------------------------------------------------------------- likelihood

def _accepts_logits_to_keep(model):
    return "logits_to_keep" in inspect.signature(model.forward).parameters


@torch.no_grad()
def answer_nll(model, encoded, batch_size=32, padding_side="left", progress=False):
    """Summed NLL (nats, temperature 1) of each question's answer tokens given its context; float64 array.

    Batches of `batch_size` questions of similar length, padded on `padding_side` with attention mask and
    position ids; logits are computed only for the columns that predict answer tokens.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    device = next(model.parameters()).device
    keep_logits = _accepts_logits_to_keep(model)
    nll = np.zeros(len(encoded))
    order = _length_order([len(q.ids) for q in encoded])
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="likelihood", unit="batch", disable=not progress):
        rows = [encoded[j] for j in batch]
        ids, mask, positions, offsets = _pad([q.ids for q in rows], 0, padding_side)
        # column c predicts token c + 1; the answer of row b sits at [off + start, off + len)
        first = [off + q.start - 1 for off, q in zip(offsets, rows)]
        last = [off + len(q.ids) - 1 for off, q in zip(offsets, rows)]  # exclusive
        lo, hi = min(first), max(last)
        kwargs = {}
        if keep_logits:
            kwargs["logits_to_keep"] = ids.shape[1] - lo if hi == ids.shape[1] - 1 else torch.arange(lo, hi)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                       position_ids=positions.to(device), **kwargs).logits
        logits = logits[:, : hi - lo] if keep_logits else logits[:, lo:hi]
        columns = torch.arange(lo, hi)
        targets = ids[:, lo + 1: hi + 1]
        in_answer = (columns >= torch.tensor(first)[:, None]) & (columns < torch.tensor(last)[:, None])
        logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.to(device)[..., None])[..., 0]
        nll[batch] = -torch.where(in_answer.to(device), logp.double(), 0.0).sum(-1).cpu().numpy()
    return nll


# --------------------------------------------------------------------------------------------- sampling

def question_seed(seed, question_id):
    """A per-question seed, so a question's samples do not depend on batching or on the other questions."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(str(question_id).encode())]).generate_state(1)[0])


def stop_token_mask(tokenizer, model):
    """Boolean (vocab,) mask of tokens that end a sample: eos, or any token whose text holds a newline."""
    vocab = model.get_output_embeddings().weight.shape[0]
    texts = tokenizer.batch_decode([[i] for i in range(min(vocab, len(tokenizer)))])
    stop = torch.zeros(vocab, dtype=torch.bool)
    stop[: len(texts)] = torch.tensor(["\n" in t for t in texts])
    generation_config = getattr(model, "generation_config", None)
    eos = {tokenizer.eos_token_id, *np.atleast_1d(getattr(generation_config, "eos_token_id", None) or [])} - {None}
    stop[[int(e) for e in eos if int(e) < vocab]] = True
    return stop


@torch.no_grad()
def sample_answers(model, encoded, n, max_new_tokens, stop_mask, seeds, temperature=1.0, batch_size=32,
                   still_possible=None, progress=False):
    """n samples per question from its context: the prompt is encoded once and its KV cache shared.

    The cache holds one row per distinct sample prefix (at first one per question; rows split as samples
    diverge and are dropped as they finish), so identical prefixes are computed once: the same samples as
    expanding the cache to n rows per question, at a fraction of the work for peaked models.

    max_new_tokens: per-question token budgets; a sample also ends at a `stop_mask` token (kept in its
    output). Each question draws its uniforms from its own torch.Generator (`seeds`), and tokens by
    inverse-CDF sampling, so results do not depend on how questions are grouped.
    still_possible(question_index, token_lists) -> bools: optional early stop for samples that can no
    longer verify (their later tokens could not change the verdict, and other samples are unaffected).
    Returns, per question, (list of n token-id lists, float64 array of the n samples' summed log-probs).
    """
    from transformers import DynamicCache

    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (got {temperature}); greedy decoding is not sampling")
    device = next(model.parameters()).device
    stop_mask = stop_mask.to(device)
    max_new_tokens = np.broadcast_to(np.asarray(max_new_tokens, dtype=np.int64), (len(encoded),))
    if np.any(max_new_tokens < 1):
        raise ValueError(f"max_new_tokens must be >= 1 for every question (got {int(max_new_tokens.min())})")
    keep_last = {"logits_to_keep": 1} if _accepts_logits_to_keep(model) else {}
    results = [None] * len(encoded)
    order = _length_order([q.start for q in encoded])
    budget = batch_size * SAMPLING_CACHE_TOKENS_PER_QUESTION
    groups, i = [], 0
    while i < len(order):  # longest first: the first question of a group bounds its cache length
        per_question = n * (encoded[order[i]].start + int(max_new_tokens[order[i]]))
        size = int(np.clip(budget // per_question, 1, batch_size))
        groups.append(order[i: i + size])
        i += size
    bar = tqdm(total=len(encoded), desc="sampling", unit="question", disable=not progress)
    for group in groups:
        contexts = [encoded[j].ids[: encoded[j].start] for j in group]
        ids, mask, positions, _ = _pad(contexts, 0, "left")
        cache = DynamicCache(config=model.config)
        # the prompt, encoded once: cache row ("node") q holds question q's context
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                       past_key_values=cache, use_cache=True, **keep_last).logits[:, -1]
        mask = mask.to(device)
        node_pos = torch.tensor([len(c) for c in contexts], device=device)  # position of a node's next token
        steps = int(max_new_tokens[group].max())
        uniforms = torch.stack([
            torch.rand((n, steps), generator=torch.Generator().manual_seed(seeds[j]), dtype=torch.float64)
            for j in group]).reshape(len(group) * n, steps).to(device)
        limit = torch.as_tensor(max_new_tokens[group], device=device).repeat_interleave(n)
        row = torch.arange(len(group) * n, device=device)  # each live sample's index among the group's rows
        node = row // n  # each live sample's cache row: samples with the same tokens so far share one
        tokens_out = torch.full((len(group) * n, steps), -1, dtype=torch.long, device=device)
        logp_out = torch.zeros(len(group) * n, dtype=torch.float64, device=device)
        for t in range(steps):
            logp = torch.log_softmax(logits.float() / temperature, dim=-1)
            cdf = logp.exp().cumsum(-1)[node]
            u = (uniforms[:, t] * cdf[:, -1].double()).float()[:, None]
            token = torch.searchsorted(cdf, u, right=True)[:, 0].clamp(max=cdf.shape[-1] - 1)
            tokens_out[row, t] = token
            logp_out[row] += logp[node, token].double()
            alive = ~stop_mask[token] & (t + 1 < limit)
            if still_possible is not None and alive.any():
                live = alive.nonzero()[:, 0]
                so_far = tokens_out[row[live], : t + 1].tolist()
                questions, counts = torch.unique_consecutive(row[live] // n, return_counts=True)  # rows stay sorted
                verdict, k = [], 0
                for q, count in zip(questions.tolist(), counts.tolist()):
                    verdict += still_possible(group[q], so_far[k: k + count])
                    k += count
                alive[live[~torch.tensor(verdict, dtype=torch.bool, device=device)]] = False
            if not alive.any():
                break
            keep = alive.nonzero()[:, 0]
            token, node, limit, uniforms, row = (x[keep] for x in (token, node, limit, uniforms, row))
            # one cache row per distinct (prefix, token): duplicates are computed once, finished samples dropped
            vocab = logits.shape[-1]
            unique, node = torch.unique(node * vocab + token, return_inverse=True)
            parent, fed = unique // vocab, unique % vocab
            cache.batch_select_indices(parent)
            mask = torch.cat([mask[parent], torch.ones_like(mask[parent, :1])], dim=1)
            logits = model(input_ids=fed[:, None], attention_mask=mask, position_ids=node_pos[parent, None],
                           past_key_values=cache, use_cache=True).logits[:, -1]
            node_pos = node_pos[parent] + 1
        tokens_out, logp_out = tokens_out.cpu().reshape(len(group), n, steps), logp_out.cpu().reshape(len(group), n)
        for q, j in enumerate(group):
            results[j] = ([[tok for tok in r if tok >= 0] for r in tokens_out[q].tolist()], logp_out[q].numpy())
        bar.update(len(group))
    bar.close()
    return results


def sample_texts(tokenizer, question, token_lists, context_tokens=8):
    """The text each sample adds after the context, cut at the first newline. Decoded after the context's
    last few tokens, so tokenizers that drop a leading space when decoding a sequence's start are handled."""
    context = question.ids[max(question.start - context_tokens, 0): question.start]
    kw = dict(skip_special_tokens=True, clean_up_tokenization_spaces=False)
    head = len(tokenizer.decode(context, **kw))
    texts = tokenizer.batch_decode([context + tokens for tokens in token_lists], **kw)
    return [t[head:].split("\n", 1)[0] for t in texts]


def count_correct(tokenizer, question, answer, token_lists, verifier):
    """Number of samples whose text, after the prompt characters inside the boundary token, verifies."""
    correct = 0
    for text in sample_texts(tokenizer, question, token_lists):
        if text.startswith(question.prefix_text):
            correct += bool(verifier(text[len(question.prefix_text):], answer))
    return correct


# --------------------------------------------------------------------------------------------- task evaluation

def _atomic_parquet(df, path):
    with atomic_file(path) as tmp:
        df.to_parquet(tmp, index=False)


def evaluate_questions(model, tokenizer, table, *, mode="likelihood", verifier=None, n_samples=64,
                       temperature=1.0, batch_size=32, seed=0, max_new_tokens=None, padding_side="left",
                       early_stop=True, progress=True):
    """The per-question table (DESIGN.md §5) of `model` on a task table (id, prompt, answer, ...).

    Sampling mode adds n_samples and n_correct beside the likelihood columns; max_new_tokens defaults to
    each answer's token count + ANSWER_MARGIN_TOKENS. early_stop: end a sample once it can no longer verify
    (verifiers with a `could_match` method, e.g. exact match); the counts are the same either way.
    """
    from t2scaling.tasks import exact_match

    if mode not in ("likelihood", "sampling"):
        raise ValueError(f"mode must be 'likelihood' or 'sampling', got {mode!r}")
    model.eval()
    encoded = encode_questions(tokenizer, table["prompt"], table["answer"], ids=list(table["id"]))
    max_length = getattr(model.config, "max_position_embeddings", None)
    if max_length:
        encoded = truncate_contexts(encoded, max_length, ids=list(table["id"]))
    nll = answer_nll(model, encoded, batch_size=batch_size, padding_side=padding_side, progress=progress)
    if not np.all(np.isfinite(nll)):
        bad = table["id"].iloc[int(np.flatnonzero(~np.isfinite(nll))[0])]
        raise ValueError(f"non-finite NLL for question {bad!r}; the checkpoint's weights may be corrupt")
    out = pd.DataFrame({
        "question": table["id"].astype(str).to_numpy(),
        "nll": nll,
        "n_answer_tokens": [q.n_answer_tokens for q in encoded],
        "n_context_tokens": [q.start for q in encoded],
        "prompt_chars": table["prompt"].str.len().to_numpy(),
        "answer_chars": table["answer"].str.len().to_numpy(),
    })
    if mode == "sampling":
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        budgets = (out["n_answer_tokens"].to_numpy() + ANSWER_MARGIN_TOKENS if max_new_tokens is None
                   else max_new_tokens)
        seeds = [question_seed(seed, q) for q in out["question"]]
        verifier = verifier or exact_match
        could_match = getattr(verifier, "could_match", None)

        def still_possible(j, token_lists):
            q, answer = encoded[j], table["answer"].iloc[j]
            # the sample must first regenerate the prompt characters inside the boundary token
            return [could_match(text[len(q.prefix_text):], answer) if text.startswith(q.prefix_text)
                    else q.prefix_text.startswith(text) for text in sample_texts(tokenizer, q, token_lists)]

        drawn = sample_answers(model, encoded, n_samples, budgets, stop_token_mask(tokenizer, model), seeds,
                               temperature=temperature, batch_size=batch_size, progress=progress,
                               still_possible=still_possible if could_match and early_stop else None)
        out["n_samples"] = n_samples
        out["n_correct"] = [count_correct(tokenizer, q, a, tokens, verifier)
                            for q, a, (tokens, _) in zip(encoded, table["answer"], drawn)]
    return out


def evaluate_task(checkpoint_dir, task_table_path, out_path, *, mode="likelihood", n_samples=64, temperature=1.0,
                  batch_size=32, device="auto", seed=0, limit=None, task=None, max_new_tokens=None):
    """Evaluate a checkpoint on a task table's test split; write the per-question table (Parquet, atomically).

    task_table_path: a task table file (or a DataFrame). The sampling verifier is that of `task`, else of the
    registered task named by the file's stem, else exact match. limit: only the first `limit` test questions.
    """
    from t2scaling.tasks import TASKS, get_verifier, read_task_table, validate_task_table

    t0 = time.perf_counter()
    if isinstance(task_table_path, pd.DataFrame):
        table, source = validate_task_table(task_table_path), "task table"
    else:
        table, source = read_task_table(task_table_path), str(task_table_path)
        task = task or (Path(task_table_path).stem if Path(task_table_path).stem in TASKS else None)
    if "split" in table.columns:
        table = table[table["split"] == "test"].reset_index(drop=True)
        if table.empty:
            raise ValueError(f"{source}: no rows with split == 'test'; the evaluation uses the test split")
    if limit is not None:
        table = table.iloc[: int(limit)].reset_index(drop=True)
    model, tokenizer = load_checkpoint(checkpoint_dir, device)
    logger.info("evaluating %s on %s: %d questions, mode %s", checkpoint_dir, source, len(table), mode)
    out = evaluate_questions(model, tokenizer, table, mode=mode, verifier=get_verifier(task) if task else None,
                             n_samples=n_samples, temperature=temperature, batch_size=batch_size, seed=seed,
                             max_new_tokens=max_new_tokens,
                             progress=sys.stderr.isatty())  # a bar on a terminal; a job log gets the summary line
    _atomic_parquet(out, out_path)
    summary = f"mean NLL {out['nll'].mean():.4f} nats, mean p {np.exp(-out['nll']).mean():.4f}"
    if mode == "sampling":
        summary += f", sampled success rate {out['n_correct'].sum() / out['n_samples'].sum():.4f}"
    logger.info("wrote %s (%d questions; %s) in %.1f s", out_path, len(out), summary, time.perf_counter() - t0)
    return out


# --------------------------------------------------------------------------------------------- validation loss

@torch.no_grad()
def validation_loss(model, val_tokens, seq_len, batch_size, device, max_tokens=None):
    """Token-weighted mean next-token NLL (nats/token) of `model` on a flat array of token ids.

    The first `max_tokens` tokens (all if None) are cut into non-overlapping windows of seq_len + 1 tokens;
    each window predicts its last seq_len tokens from the preceding ones. A final shorter window (>= 2 tokens)
    is evaluated too. Documents are concatenated with eos in between, as in training. Deterministic; puts
    the model in eval mode (and restores its mode after).
    """
    tokens = np.asarray(val_tokens if max_tokens is None else val_tokens[: int(max_tokens)])
    if tokens.ndim != 1 or tokens.size < 2:
        raise ValueError(
            f"validation_loss: need a flat array of at least 2 token ids, got shape {tokens.shape}; "
            "pass the held-out token file (and a max_tokens >= 2)"
        )
    if seq_len < 1 or batch_size < 1:
        raise ValueError(f"validation_loss: seq_len ({seq_len}) and batch_size ({batch_size}) must be >= 1")
    was_training = model.training
    model.eval()
    window = seq_len + 1
    n_full = tokens.size // window
    windows = [tokens[: n_full * window].reshape(n_full, window)] if n_full else []
    tail = tokens[n_full * window:]
    total_nll, total_count = 0.0, 0
    batches = [w[i: i + batch_size] for w in windows for i in range(0, len(w), batch_size)]
    if tail.size >= 2:
        batches.append(tail[None, :])
    for chunk in batches:
        ids = torch.as_tensor(np.asarray(chunk, dtype=np.int64), device=device)
        logits = model(input_ids=ids[:, :-1]).logits
        nll = F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten(), reduction="sum")
        total_nll += nll.item()
        total_count += ids[:, 1:].numel()
    model.train(was_training)
    return total_nll / total_count


VAL_LOSS_SIZES = ("cell", "N", "N_non_embedding", "D", "C_train")  # copied from the checkpoint's t2_meta.json


def write_val_loss(checkpoint_dir, val_tokens_path, out_path, *, device, batch_size, max_tokens):
    """Rule val_loss: the validation loss (nats/token) of a trained checkpoint over the first `max_tokens` tokens
    of the validation token file, written to out_path as JSON beside the checkpoint's sizes (VAL_LOSS_SIZES, from
    its t2_meta.json), with val_loss and val_tokens; returns that dict. Read back by
    `observations.write_loss_table`."""
    import json

    from t2scaling.data import load_tokens

    meta = json.loads((Path(checkpoint_dir) / "t2_meta.json").read_text())
    model, _ = load_checkpoint(checkpoint_dir, device)
    loss = validation_loss(model, load_tokens(val_tokens_path), meta["seq_len"], batch_size, model.device,
                           max_tokens=max_tokens)
    row = {key: meta[key] for key in VAL_LOSS_SIZES}
    row.update(val_loss=loss, val_tokens=max_tokens)
    with atomic_file(out_path) as tmp:
        Path(tmp).write_text(json.dumps(row, indent=1))
    logger.info("%s: validation loss %.4f nats/token over the first %d validation tokens", row["cell"], loss,
                max_tokens)
    return row
