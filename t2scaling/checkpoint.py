"""What a trained checkpoint directory holds beside the Hugging Face files: the sha256 of its weights (checked
before every load, so a truncated or swapped file is named instead of failing deep inside transformers) and a
short model card. Checkpoints written before these existed carry no digest and load unchecked."""

import hashlib
import json
import math
import os

from t2scaling.units import format_count, format_flops

WEIGHT_SUFFIXES = (".safetensors", ".bin")


def weight_files(checkpoint_dir):
    return sorted(n for n in os.listdir(checkpoint_dir) if n.endswith(WEIGHT_SUFFIXES))


def sha256_of(path, chunk_bytes=1 << 22):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(checkpoint_dir):
    """{weight file name: sha256 hex} of a checkpoint directory (t2_meta.json's `weights_sha256`)."""
    return {name: sha256_of(os.path.join(checkpoint_dir, name)) for name in weight_files(checkpoint_dir)}


def check_weights(checkpoint_dir, meta):
    """Raise naming the directory when its weight files differ from the digests its t2_meta.json recorded."""
    recorded = meta.get("weights_sha256")
    if not recorded:
        return
    found = weights_sha256(checkpoint_dir)
    bad = sorted(name for name in recorded.keys() | found.keys() if recorded.get(name) != found.get(name))
    if bad:
        raise ValueError(f"checkpoint {checkpoint_dir}: {', '.join(bad)} missing or not the file training wrote "
                         "(its sha256 differs from t2_meta.json's weights_sha256): truncated or replaced; delete "
                         "the directory to retrain it")


def check_checkpoint_weights(checkpoint_dir):
    """check_weights against the checkpoint's own t2_meta.json; a directory without one (imported) passes."""
    meta_path = os.path.join(checkpoint_dir, "t2_meta.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            check_weights(checkpoint_dir, json.load(f))


def diverged(val_loss, vocab_size):
    """A finished run's validation loss that is no better than a uniform guess over the vocabulary (ln V nats per
    token), or not finite: the run blew up even if no step's loss became NaN."""
    return not math.isfinite(val_loss) or val_loss > math.log(vocab_size)


def model_card(meta):
    """README.md of a checkpoint directory: what the model is and how it was made, from its t2_meta.json."""
    D, N = meta["D"], meta["N"]
    lines = [
        f"# {meta['cell']}",
        "",
        f"A decoder-only language model trained by t2scaling {meta.get('version', '')} as one cell of a "
        "Train-to-Test scaling-law grid. Load it with `transformers.AutoModelForCausalLM.from_pretrained` and "
        "`AutoTokenizer.from_pretrained` on this directory.",
        "",
        "| | |",
        "|---|---|",
        f"| shape | width {meta['width']}, depth {meta['depth']}, context {meta['seq_len']} tokens |",
        f"| parameters N | {N:,} ({format_count(N)}; {meta['N_non_embedding']:,} without the tied embedding) |",
        f"| training tokens D | {D:,} ({format_count(D)}; {D / N:.3g} tokens per parameter, {meta['steps']} "
        "steps) |",
        f"| training compute C = 6ND | {format_flops(meta['C_train'])} |",
        f"| schedule, seed | {meta['schedule']}, {meta['seed']} |",
        f"| trained on | {meta.get('device', '?')}, {meta.get('world_size', 1)} process(es), "
        f"{meta.get('precision', '?')} compute |",
        f"| validation loss | {meta['val_loss']:.4f} nats/token |",
        f"| final train loss | {meta['final_train_loss']:.4f} nats/token |",
        "",
        "`t2_meta.json` holds every setting and measurement (`flops_per_token` counts attention, which C = 6ND "
        "leaves out); `train_log.jsonl` the training curve; `weights_sha256` the digest of each weight file, "
        "checked before every load.",
        "",
    ]
    return "\n".join(lines)
