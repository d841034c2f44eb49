"""Post-training (DESIGN.md §2.7): fine-tune a checkpoint on a task's train split, FT or SFT.

- FT: next-token loss on every token of prompt + answer (+ eos);
- SFT: loss on the answer tokens (+ eos) only; the prompt is context.

Recipe defaults are the paper's: 6 epochs, batch 8, constant lr 2e-5 with AdamW, a fixed number of steps
per checkpoint = ceil(epochs * n_train / batch). Otherwise HF Trainer's defaults: betas (0.9, 0.999), no
weight decay, gradient clipping at norm 1.0. bf16 autocast on CUDA, fp32 on CPU; fp32 master weights.

Tokenisation boundary (as in evaluation): prompt + answer is tokenised jointly and the answer tokens are
those whose character span overlaps the answer, so a token merged across the boundary ("is Q") is an answer
token. An eos token ends every example and is in the loss in both modes: the model learns to stop after the
answer, which sampling-based evaluation relies on; the likelihood evaluation scores the answer tokens only.
"""

import contextlib
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from t2scaling.atomic import atomic_dir, atomic_file
from t2scaling.checkpoint import weights_sha256
from t2scaling.jobs import PROGRESS_EVERY_S
from t2scaling.runtime import bf16_autocast, encode_with_answer_tokens, load_checkpoint, pick_device

logger = logging.getLogger(__name__)

MODES = ("ft", "sft")
IGNORE = -100  # label of tokens outside the loss (torch's cross_entropy ignore_index)
BETAS = (0.9, 0.999)
WEIGHT_DECAY = 0.0
GRAD_CLIP = 1.0


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"unknown post-training mode {mode!r}; use one of {', '.join(MODES)} "
                         "(ft: loss on prompt + answer, sft: loss on answer tokens only)")


# --------------------------------------------------------------------------------------------- batches

def encode_examples(tokenizer, prompts, answers, mode):
    """Per example, (input ids, labels) as lists: prompt + answer tokenised jointly, then eos; the labels
    are the ids on loss tokens and IGNORE elsewhere (SFT: the answer tokens of `runtime.encode_with_answer_tokens`,
    exactly those evaluation scores, and eos; FT: every token)."""
    _check_mode(mode)
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos token; set tokenizer.eos_token (examples end with eos)")
    answers = [str(a) for a in answers]
    out = []
    for i, (ids, _, _, in_loss) in enumerate(encode_with_answer_tokens(tokenizer, prompts, answers)):
        if not in_loss.any():
            raise ValueError(f"example {i}: no token covers the answer {answers[i]!r}; check the task table")
        if in_loss.argmax() == 0:
            raise ValueError(f"example {i}: nothing precedes the answer {answers[i]!r} (empty prompt and no BOS "
                             "token), so its first token cannot be predicted; give the example a prompt")
        if ids[-1] == eos:  # the tokenizer appends eos itself
            in_loss[-1] = True
        else:
            ids.append(eos)
            in_loss = np.append(in_loss, True)
        if mode == "ft":
            in_loss[:] = True
        out.append((ids, [t if keep else IGNORE for t, keep in zip(ids, in_loss)]))
    return out


def pad_batch(examples, pad_id):
    """(input_ids, attention_mask, labels) long tensors from (ids, labels) lists, padded on the right with
    `pad_id` (attention 0, label IGNORE)."""
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for b, (ids, lab) in enumerate(examples):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        attention_mask[b, : len(ids)] = 1
        labels[b, : len(ids)] = torch.tensor(lab)
    return input_ids, attention_mask, labels


def _pad_id(tokenizer):
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def loss_mask(tokenizer, prompts, answers, mode):
    """The padded batch (input_ids, attention_mask, labels) of prompt/answer pairs for `mode` (ft or sft)."""
    return pad_batch(encode_examples(tokenizer, prompts, answers, mode), _pad_id(tokenizer))


def lm_loss(model, input_ids, attention_mask, labels):
    """Mean next-token NLL (nats/token) over the tokens whose label is not IGNORE."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    return F.cross_entropy(logits.float().flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE)


# --------------------------------------------------------------------------------------------- training

def read_train_split(task_table):
    """(train rows of a task table, its name for messages); the table is a DataFrame or a file path."""
    from t2scaling.tasks import read_task_table, validate_task_table

    if isinstance(task_table, pd.DataFrame):
        table, source = validate_task_table(task_table), "task table"
    else:
        table, source = read_task_table(task_table), str(task_table)
    if "split" not in table.columns or not (table["split"] == "train").any():
        raise ValueError(f"{source}: the task has no train split (no rows with split == 'train'); post-training "
                         "needs one: add train rows, or post-train only tasks that have a train split")
    return table[table["split"] == "train"].reset_index(drop=True), source


def example_order(n_examples, n_draws, seed):
    """Indices of the examples each step draws: one fresh permutation per epoch, `n_draws` in all."""
    rng = np.random.default_rng(seed)
    epochs = math.ceil(n_draws / n_examples)
    return np.concatenate([rng.permutation(n_examples) for _ in range(epochs)])[:n_draws]


def _save_checkpoint(model, tokenizer, meta, out_dir):
    """HF checkpoint dir + t2_meta.json (with the new weights' sha256), built in a temp dir beside out_dir and
    renamed into place."""
    with atomic_dir(out_dir) as tmp:  # a rerun replaces the old dir
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        meta["weights_sha256"] = weights_sha256(tmp)  # the base's digest would not match these weights
        with open(os.path.join(tmp, "t2_meta.json"), "w") as f:
            json.dump(meta, f, indent=1)


def posttrain(checkpoint_dir, task_table, out_dir, *, mode="sft", epochs=6, batch_size=8, lr=2e-5,
              max_steps=None, seed=0, device="auto", threads=None, log_path=None, task=None):
    """Fine-tune an HF causal LM checkpoint on a task table's train split; write the result to out_dir.

    task_table: DataFrame or file (.parquet/.csv/.jsonl) with columns id, prompt, answer, split.
    Steps = ceil(epochs * n_train / batch_size), capped by max_steps; every step is a full batch (epochs
    run on into the next one's permutation). log_path: optional JSONL of per-step losses. task: its name
    for the meta (default: the table file's stem). Deterministic given seed (on CPU bit for bit).
    Returns the t2_meta.json dict: the base checkpoint's fields plus `posttrain`.
    """
    t0 = time.perf_counter()
    _check_mode(mode)
    if not (epochs > 0 and batch_size >= 1 and lr > 0 and (max_steps is None or max_steps >= 1)):
        raise ValueError(f"need epochs > 0, batch_size >= 1, lr > 0 and max_steps >= 1 (got epochs={epochs}, "
                         f"batch_size={batch_size}, lr={lr}, max_steps={max_steps})")
    checkpoint_dir = Path(checkpoint_dir)
    if not (checkpoint_dir / "config.json").exists():
        raise FileNotFoundError(f"checkpoint {checkpoint_dir}: no config.json; pass an HF checkpoint directory")
    if checkpoint_dir.resolve() == Path(out_dir).resolve():
        raise ValueError(f"out dir {out_dir} is the base checkpoint; write the post-trained model elsewhere")
    table, source = read_train_split(task_table)
    task = task or (Path(task_table).stem if not isinstance(task_table, pd.DataFrame) else None)
    if threads:
        torch.set_num_threads(int(threads))
    device = pick_device(device)
    bf16 = bf16_autocast(device)

    torch.manual_seed(seed)  # dropout, in models that have it
    model, tokenizer = load_checkpoint(checkpoint_dir, device)
    examples = encode_examples(tokenizer, table["prompt"], table["answer"], mode)
    n_train = len(examples)
    longest = max(len(ids) for ids, _ in examples)
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions and longest > max_positions:
        logger.warning("%s: the longest example has %d tokens, beyond the model's %d positions", source, longest,
                       max_positions)
    steps = math.ceil(epochs * n_train / batch_size)
    steps = min(steps, int(max_steps)) if max_steps is not None else steps
    order = example_order(n_train, steps * batch_size, seed)
    logger.info("%s of %s on %s: %d train examples, %d steps of %d, lr %g, %s", mode.upper(), checkpoint_dir,
                source, n_train, steps, batch_size, lr, f"{device} bf16" if bf16 else f"{device} fp32")

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=BETAS, weight_decay=WEIGHT_DECAY)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    pad_id = _pad_id(tokenizer)
    model.train()
    losses, records = [], []
    name = f"{mode} {task or ''}".strip()
    # Progress: a tqdm bar on a terminal; otherwise (a job's log) a logged line after the first step, then every
    # PROGRESS_EVERY_S, and after the last one.
    show_bar = sys.stderr.isatty()
    bar = tqdm(range(steps), desc=name, unit="step", disable=not show_bar)
    loop_start = line_time = time.perf_counter()
    line_step = 0
    for step in bar:
        batch = pad_batch([examples[j] for j in order[step * batch_size: (step + 1) * batch_size]], pad_id)
        input_ids, attention_mask, labels = (t.to(device) for t in batch)
        with autocast:
            loss = lm_loss(model, input_ids, attention_mask, labels)
        if not torch.isfinite(loss):
            raise ValueError(f"post-training {checkpoint_dir} on {source}: loss is {loss.item()} at step {step}; "
                             "lower the learning rate or check the checkpoint's weights")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        losses.append(loss.item())
        records.append({"step": step + 1, "loss": losses[-1], "seconds": time.perf_counter() - t0})
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        now = time.perf_counter()
        if not show_bar and (step == 0 or now - line_time >= PROGRESS_EVERY_S or step + 1 == steps):
            done = step + 1
            pace = (done - line_step) / max(now - line_time, 1e-9)  # steps/s since the last line
            logger.info("%s: step %d/%d (%.0f%%), loss %.4f, %.3g steps/s, elapsed %s, ETA %s", name, done, steps,
                        100 * done / steps, losses[-1], pace, tqdm.format_interval(now - loop_start),
                        tqdm.format_interval((steps - done) / pace))
            line_time, line_step = now, done
    bar.close()
    model.eval()

    meta_path = checkpoint_dir / "t2_meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta["posttrain"] = dict(
        mode=mode, task=task, epochs=epochs, steps=steps, batch_size=batch_size, lr=lr, n_train_examples=n_train,
        initial_loss=losses[0], final_loss=float(np.mean(losses[-min(10, steps):])),
        seconds=time.perf_counter() - t0,
        base_checkpoint=os.fspath(checkpoint_dir), seed=seed, betas=list(BETAS), weight_decay=WEIGHT_DECAY,
        grad_clip=GRAD_CLIP, precision="bf16" if bf16 else "fp32", device=str(device))
    _save_checkpoint(model, tokenizer, meta, out_dir)
    if log_path:
        with atomic_file(log_path) as tmp, open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
    logger.info("%s: loss %.4f -> %.4f (mean of the last steps) in %.1f s -> %s", mode.upper(), losses[0],
                meta["posttrain"]["final_loss"], meta["posttrain"]["seconds"], out_dir)
    return meta
