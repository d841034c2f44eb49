"""The model family: shapes, the one counter (N, N_exact, FLOPs) against the instantiated model, HF round trip."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from t2scaling.model import build_config, build_model, model_counts

SHAPES = [  # width, depth, vocab, seq_len, head_dim, ffn_multiple
    (32, 1, 256, 32, 16, 16),
    (64, 2, 384, 64, 16, 32),
    (96, 3, 1024, 128, 32, 32),
    (96, 3, 50432, 2048, 32, 256),  # Porian's smallest paper model (5.2M)
]


@pytest.mark.parametrize("shape", SHAPES)
def test_counts_match_the_instantiated_model(shape):
    width, depth, vocab, seq_len, head_dim, ffn_multiple = shape
    counts = model_counts(width, depth, vocab, seq_len, head_dim=head_dim, ffn_multiple=ffn_multiple)
    model = build_model(width, depth, vocab, seq_len, head_dim=head_dim, ffn_multiple=ffn_multiple, seed=0)
    assert counts["N_exact"] == sum(p.numel() for p in model.parameters())
    d_ff = counts["d_ff"]
    assert d_ff == ffn_multiple * -(-8 * width // (3 * ffn_multiple))  # 256·ceil((8w/3)/256) at paper scale
    assert counts["N"] == (4 * width + 3 * d_ff) * width * depth + vocab * width
    assert counts["N_non_embedding"] == counts["N"] - vocab * width
    # Every matmul weight counted once: the non-embedding 2-D weights plus the tied embedding.
    matrices = sum(p.numel() for p in model.parameters() if p.dim() == 2)
    assert matrices == counts["N"]
    # Training FLOPs/token: 6 per matmul weight plus attention scores/values, 3 x (2·2·seq·w) per block.
    assert counts["flops_per_token"] == 6 * counts["N"] + 12 * depth * seq_len * width


def test_paper_scale_shape():
    counts = model_counts(96, 3, 50432, 2048, head_dim=32, ffn_multiple=256)
    assert counts["d_ff"] == 256 and round(counts["N"] / 1e6, 1) == 5.2


def test_architecture_is_llama_style_with_qk_norm():
    model = build_model(64, 2, 384, 64, head_dim=16, ffn_multiple=32, seed=0)
    cfg = model.config
    assert cfg.tie_word_embeddings and model.lm_head.weight is model.model.embed_tokens.weight
    assert cfg.num_attention_heads == cfg.num_key_value_heads == 4 and cfg.head_dim == 16
    assert cfg.hidden_act == "silu" and not cfg.attention_bias
    assert not any(name.endswith("bias") for name, _ in model.named_parameters())
    names = {name for name, _ in model.named_parameters()}
    assert "model.layers.0.self_attn.q_norm.weight" in names and "model.layers.0.self_attn.k_norm.weight" in names
    assert model.model.layers[0].input_layernorm.__class__.__name__.endswith("RMSNorm")


def test_seeded_init_is_reproducible_and_seed_sensitive():
    a, b, c = (build_model(32, 1, 256, 32, head_dim=16, ffn_multiple=16, seed=s) for s in (0, 0, 1))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)


def test_eager_and_sdpa_attention_agree():
    """CPU bf16 training uses eager attention, everything else SDPA: they must be the same function."""
    sdpa = build_model(64, 2, 384, 64, head_dim=16, ffn_multiple=32, seed=0, attn_implementation="sdpa")
    eager = build_model(64, 2, 384, 64, head_dim=16, ffn_multiple=32, seed=0, attn_implementation="eager")
    ids = torch.randint(0, 384, (2, 64))
    with torch.no_grad():
        torch.testing.assert_close(sdpa(input_ids=ids).logits, eager(input_ids=ids).logits, rtol=1e-5, atol=1e-5)


def test_round_trip_through_from_pretrained(tmp_path):
    model = build_model(32, 1, 256, 32, head_dim=16, ffn_multiple=16, seed=0)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids = torch.randint(0, 256, (1, 32))
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits, rtol=0, atol=0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(width=48, head_dim=32), "multiple of head_dim"),
    (dict(width=48, head_dim=3), "even"),
    (dict(width=48, depth=0), "depth"),
])
def test_bad_shapes_are_rejected(kwargs, match):
    args = dict(width=48, depth=1, vocab_size=256, seq_len=32, head_dim=16, ffn_multiple=16) | kwargs
    with pytest.raises(ValueError, match=match):
        build_config(**args)
