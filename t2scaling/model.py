"""The model family: a Llama/OpenLM-style decoder with QK-norm, built as a `transformers` Qwen3 causal LM.

Pre-norm RMSNorm, RoPE, SwiGLU MLP, RMSNorm on queries and keys (per head), no biases, tied input/output
embeddings, full multi-head attention (as many key/value heads as query heads). One (width, depth) pair and
the tokenizer's vocabulary fix the model; every checkpoint loads with `AutoModelForCausalLM.from_pretrained`.

Counting conventions (DESIGN.md §2.1), all from `model_counts`:
- N (Porian et al. 2024): (4w + 3·d_ff)·w·depth + vocab·w — every matmul weight, the tied embedding once;
- N_non_embedding: N − vocab·w;
- N_exact: N plus the RMSNorm gains (2w + 2·head_dim per block, w for the final norm) = the module's numel;
- flops_per_token: forward + backward FLOPs of one training token. A multiply-add is 2 FLOPs and backward
  costs twice forward, so the weight matmuls (lm_head included, the embedding lookup is free) give 6·N;
  attention scores and the value mix give 2·2·w·ctx forward per block, ctx = (seq_len + 1)/2 being the mean
  causal context, hence 6·depth·w·(seq_len + 1) in total. Elementwise work (norms, RoPE, SiLU, softmax) is
  left out: O(w) per token, under 1 % at every size of the grid.
"""

import logging
import math

logger = logging.getLogger(__name__)

HEAD_DIM = 64  # Porian et al. / OpenLM
FFN_MULTIPLE = 256  # d_ff rounding at paper scale; tiny CPU models pass a smaller multiple


def ffn_width(width, ffn_multiple=FFN_MULTIPLE):
    """SwiGLU hidden width d_ff = m·ceil((8w/3)/m) for rounding multiple m."""
    return ffn_multiple * math.ceil(8 * width / 3 / ffn_multiple)


def num_heads(width, head_dim=HEAD_DIM):
    """Number of attention heads: the divisor of `width` closest to width/head_dim with an even head size
    (RoPE rotates pairs), ties going to more heads. Tiny widths (< head_dim) get one head of size width."""
    if width < 2 or width % 2:
        raise ValueError(f"model width must be an even integer ≥ 2 (RoPE rotates pairs), got {width}")
    target = width / head_dim
    candidates = [h for h in range(1, width // 2 + 1) if width % h == 0 and (width // h) % 2 == 0]
    return min(candidates, key=lambda h: (abs(math.log(h / target)), -h))


def _check_shape(width, depth, vocab_size, seq_len):
    for name, value in (("width", width), ("depth", depth), ("vocab_size", vocab_size), ("seq_len", seq_len)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"model {name} must be a positive integer, got {value!r}")


def model_counts(width, depth, vocab_size, seq_len, *, head_dim=HEAD_DIM, ffn_multiple=FFN_MULTIPLE):
    """Parameter and FLOP counts of the model `build_model` makes with the same arguments (see module doc).

    Returns dict(N, N_non_embedding, N_exact, flops_per_token, flops_per_token_6N, d_ff, n_heads, head_dim).
    """
    _check_shape(width, depth, vocab_size, seq_len)
    d_ff = ffn_width(width, ffn_multiple)
    heads = num_heads(width, head_dim)
    size_head = width // heads
    n_non_embedding = (4 * width + 3 * d_ff) * width * depth
    n_total = n_non_embedding + vocab_size * width
    n_norms = depth * (2 * width + 2 * size_head) + width
    attention_flops = 6 * depth * width * (seq_len + 1)
    return dict(
        N=n_total,
        N_non_embedding=n_non_embedding,
        N_exact=n_total + n_norms,
        flops_per_token=6 * n_total + attention_flops,
        flops_per_token_6N=6 * n_total,
        d_ff=d_ff,
        n_heads=heads,
        head_dim=size_head,
    )


def build_config(width, depth, vocab_size, seq_len, *, head_dim=HEAD_DIM, ffn_multiple=FFN_MULTIPLE,
                 rope_theta=10000.0, init_std=0.02, attn_implementation="sdpa", bos_token_id=None,
                 eos_token_id=None, pad_token_id=None):
    """The `transformers.Qwen3Config` of a (width, depth) model; see `model_counts` for the shape rules."""
    from transformers import Qwen3Config

    counts = model_counts(width, depth, vocab_size, seq_len, head_dim=head_dim, ffn_multiple=ffn_multiple)
    config = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=counts["d_ff"],
        num_hidden_layers=depth,
        num_attention_heads=counts["n_heads"],
        num_key_value_heads=counts["n_heads"],
        head_dim=counts["head_dim"],
        hidden_act="silu",
        max_position_embeddings=seq_len,
        initializer_range=init_std,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        attention_bias=False,
        attention_dropout=0.0,
        use_sliding_window=False,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    config._attn_implementation = attn_implementation
    return config


def build_model(width, depth, vocab_size, seq_len, *, seed=None, **config_kwargs):
    """A freshly initialised `Qwen3ForCausalLM` (fp32, on CPU); `seed` seeds torch's RNG for the init."""
    import torch
    from transformers import Qwen3ForCausalLM

    config = build_config(width, depth, vocab_size, seq_len, **config_kwargs)
    if seed is not None:
        torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    logger.info("built model width=%d depth=%d vocab=%d heads=%d d_ff=%d: %d parameters", width, depth,
                vocab_size, config.num_attention_heads, config.intermediate_size,
                sum(p.numel() for p in model.parameters()))
    return model
