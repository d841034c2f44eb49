"""The one parameter and FLOP counter (DESIGN.md §2.1). Pure arithmetic: no torch, so the workflow's DAG
construction can size every grid cell without importing a deep-learning stack."""

import math


def ffn_width(width, ffn_multiple=256):
    """SwiGLU hidden size: d_ff = m * ceil((8w/3) / m) (m = 256 at paper scale, smaller for tiny models)."""
    return ffn_multiple * math.ceil(8 * width / 3 / ffn_multiple)


def n_heads(width, head_dim):
    if width % head_dim:
        raise ValueError(f"width {width} is not a multiple of head_dim {head_dim}; pick a width divisible by it")
    return width // head_dim


def model_counts(width, depth, vocab_size, seq_len, *, head_dim=64, ffn_multiple=256):
    """Parameter counts and training FLOPs per token of the decoder family (tied embeddings, SwiGLU, QK-norm).

    Returns a dict:
      N                total params, Porian et al. convention: (4w + 3 d_ff) w depth + vocab w
      N_non_embedding  N without the (tied) embedding matrix
      N_exact          what the instantiated model holds: N plus RMSNorm gains (2 per block, q/k norms, final)
      flops_per_token  training FLOPs per token (forward + backward = 3x forward), attention included:
                       forward = 2 (N_non_embedding + vocab w) + 4 depth seq_len w (scores and values, full window)
    """
    d_ff = ffn_width(width, ffn_multiple)
    heads = n_heads(width, head_dim)
    per_block = 4 * width * width + 3 * d_ff * width
    n_non_embedding = per_block * depth
    n_total = n_non_embedding + vocab_size * width
    norms = depth * (2 * width + 2 * head_dim) + width
    forward = 2 * (n_non_embedding + vocab_size * width) + 4 * depth * seq_len * width
    return {
        "N": n_total,
        "N_non_embedding": n_non_embedding,
        "N_exact": n_total + norms,
        "d_ff": d_ff,
        "n_heads": heads,
        "flops_per_token": 3 * forward,
    }


# ---- the compute identities (DESIGN.md §2.1): every C = 6ND, D = C/6N and k = C_inf/2N is one of these ----

def c_train(N, D):
    """Training FLOPs of N params on D tokens: C = 6 N D."""
    return 6.0 * N * D


def tokens_at(c_train, N):
    """Training tokens D that a budget of c_train FLOPs buys an N-param model: D = C/(6N)."""
    return c_train / (6.0 * N)


def samples_at(c_inf, N):
    """Samples per question k that c_inf FLOPs per served token buy an N-param model: k = C_inf/(2N), two FLOPs
    per parameter per forward pass (not rounded, not floored at 1)."""
    return c_inf / (2.0 * N)


def steps_for(tokens, tokens_per_step):
    """Optimizer steps that consume `tokens` tokens, rounded to a whole step (at least one)."""
    if not tokens > 0:
        raise ValueError(f"training tokens D must be positive, got {tokens}")
    return max(1, round(tokens / tokens_per_step))


def whole_steps(tokens, tokens_per_step):
    """`tokens` rounded to whole optimizer steps (at least one): the D a cell really trains on."""
    return steps_for(tokens, tokens_per_step) * tokens_per_step
