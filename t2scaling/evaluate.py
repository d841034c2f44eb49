"""Evaluate a causal LM: held-out validation loss, and per-question task observations (DESIGN.md §2.1, §5).

- `validation_loss`: token-weighted mean NLL (nats/token) over a flat token array.
"""

import logging

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)


@torch.no_grad()
def validation_loss(model, val_tokens, seq_len, batch_size, device, max_tokens=None):
    """Token-weighted mean next-token NLL (nats/token) of `model` on a flat array of token ids.

    The first `max_tokens` tokens (all if None) are cut into non-overlapping windows of seq_len + 1 tokens;
    each window predicts its last seq_len tokens from the preceding ones. A final shorter window (>= 2 tokens)
    is evaluated too, so every token but each window's first is counted exactly once. Documents are
    concatenated with eos in between, as in training. Deterministic; puts the model in eval mode.
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
