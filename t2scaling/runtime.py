"""What training, evaluation and post-training share at run time: the device, loading a checkpoint, and which
tokens of prompt + answer are the answer's.

The answer-token rule lives here once: evaluation scores exactly the tokens that SFT trains on, and if the rule
changes both change together.
"""

from pathlib import Path

import numpy as np
import torch

from t2scaling.checkpoint import check_checkpoint_weights


def pick_device(name="auto", local_rank=0, world=1):
    """torch.device for `name` (auto, cpu, cuda or cuda:N); auto takes CUDA where there is one. Under torchrun
    (world > 1) plain `cuda` is this process's local rank. A CUDA device becomes the current device."""
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for but CUDA is not available; pass --device cpu or auto")
        if name == "cuda":
            name = f"cuda:{local_rank if world > 1 else torch.cuda.current_device()}"
        torch.cuda.set_device(name)
    elif name != "cpu":
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    return torch.device(name)


def bf16_autocast(device):
    """Whether bf16 autocast applies on `device` (CUDA with bf16 support)."""
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def load_checkpoint(checkpoint_dir, device="auto"):
    """(model in eval mode, fast tokenizer) from an HF checkpoint dir (ours, or e.g. a Pythia-style one), or from
    a hub id already in the local Hugging Face cache (nothing is downloaded). Our checkpoints' weights are checked
    against their recorded digest first (checkpoint.check_checkpoint_weights)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = Path(checkpoint_dir).is_dir()
    if local and not (Path(checkpoint_dir) / "config.json").exists():
        raise FileNotFoundError(f"checkpoint {checkpoint_dir}: no config.json; pass an HF checkpoint directory")
    if not local:
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(str(checkpoint_dir), "config.json"), str):
            raise FileNotFoundError(
                f"checkpoint {checkpoint_dir}: not a local directory, and not a hub id in the local Hugging Face "
                "cache; download it where the hub is reachable (`hf download ID`) or give a local path")
    checkpoint_dir = Path(checkpoint_dir) if local else str(checkpoint_dir)
    if local:
        check_checkpoint_weights(checkpoint_dir)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir, local_files_only=not local)
    if not tokenizer.is_fast:
        raise ValueError(f"checkpoint {checkpoint_dir}: the tokenizer is not a fast tokenizer; answer tokens are "
                         "found from character offsets, which need tokenizer.json (save a PreTrainedTokenizerFast)")
    model = AutoModelForCausalLM.from_pretrained(checkpoint_dir, dtype=torch.float32, local_files_only=not local)
    return model.to(pick_device(device)).eval(), tokenizer


def encode_with_answer_tokens(tokenizer, prompts, answers):
    """Tokenise each prompt + answer jointly (special tokens added) and mark the answer's tokens: those whose
    character span overlaps the answer's characters. Yields (ids list, special mask, span end per token, answer
    mask) per example.

    Tokenizers that trim offsets report a lone leading-space token as an empty span just after its space; such a
    span is read as covering that space.
    """
    prompts, answers = [str(p) for p in prompts], [str(a) for a in answers]
    enc = tokenizer([p + a for p, a in zip(prompts, answers)], add_special_tokens=True,
                    return_offsets_mapping=True, return_special_tokens_mask=True)
    for i, (prompt, answer) in enumerate(zip(prompts, answers)):
        spans = np.array(enc["offset_mapping"][i], dtype=np.int64).reshape(-1, 2)
        special = np.array(enc["special_tokens_mask"][i], dtype=bool)
        empty = spans[:, 0] == spans[:, 1]
        lo = np.where(empty, np.maximum(spans[:, 0] - 1, 0), spans[:, 0])
        hi = np.maximum(spans[:, 1], lo + empty)
        in_answer = ~special & (hi > len(prompt)) & (lo < len(prompt) + len(answer))
        yield list(enc["input_ids"][i]), special, hi, in_answer
