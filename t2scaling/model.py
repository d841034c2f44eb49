"""The model family: a Llama/OpenLM-style decoder with QK-norm, built as a `transformers` Qwen3 causal LM.

Pre-norm RMSNorm, RoPE, SwiGLU MLP, RMSNorm on queries and keys (per head), no biases, tied input/output
embeddings, full multi-head attention (as many key/value heads as query heads), SDPA attention kernels.
A (width, depth) pair, the vocabulary and the two shape knobs (head_dim, which must divide the width, and
ffn_multiple, the d_ff rounding: 256 at paper scale, 16-32 for tiny CPU models) fix the model; every
checkpoint loads with `AutoModelForCausalLM.from_pretrained`.

The counts (N in Porian's convention, N_non_embedding, N_exact, flops_per_token) come from ONE function,
`t2scaling.flops.model_counts` (torch-free, so the workflow sizes grid cells without torch); it is re-exported
here and the shapes below are read from it, so the grid's N and the trained model's N cannot drift apart.
"""

import logging

from t2scaling.flops import model_counts  # the one counter, re-exported here

logger = logging.getLogger(__name__)

HEAD_DIM = 64  # Porian et al. / OpenLM; tiny CPU models use 16-32
FFN_MULTIPLE = 256  # d_ff rounding at paper scale


def build_config(width, depth, vocab_size, seq_len, *, head_dim=HEAD_DIM, ffn_multiple=FFN_MULTIPLE,
                 rope_theta=10000.0, init_std=0.02, attn_implementation="sdpa", bos_token_id=None,
                 eos_token_id=None, pad_token_id=None):
    """The `transformers.Qwen3Config` of a (width, depth) model, shaped by `model_counts`."""
    from transformers import Qwen3Config

    for name, value in (("width", width), ("depth", depth), ("vocab_size", vocab_size), ("seq_len", seq_len)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"model {name} must be a positive integer, got {value!r}")
    if head_dim % 2:
        raise ValueError(f"head_dim must be even (RoPE rotates pairs of channels), got {head_dim}")
    counts = model_counts(width, depth, vocab_size, seq_len, head_dim=head_dim, ffn_multiple=ffn_multiple)
    config = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=counts["d_ff"],
        num_hidden_layers=depth,
        num_attention_heads=counts["n_heads"],
        num_key_value_heads=counts["n_heads"],
        head_dim=head_dim,
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
