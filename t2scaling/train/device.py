"""Device and precision choices of training: torchrun's ranks, CUDA/CPU, bf16 autocast where native,
the attention kernel, the host allocator, and a matmul peak for throughput reports.
"""

import ctypes
import functools
import os
import sys
import time

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from t2scaling.runtime import pick_device


def _distributed():
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) when not launched by it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def _pick_device(name, local_rank, world):
    device = pick_device(name, local_rank, world)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 leftovers (optimizer, norms) on tensor cores
        torch.backends.cudnn.allow_tf32 = True
    return device


@functools.lru_cache(maxsize=None)
def _keep_freed_memory():
    """glibc hands large freed blocks back to the OS, so each CPU training step page-faults its big temporaries
    (logits, attention) in afresh: ~2,000 faults a step for a 0.1M model, ~10 % of its time. Keep them in the
    heap instead (mmap threshold at glibc's 32 MiB maximum, trim threshold 1 GiB). Process-wide, glibc only."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    libc.mallopt(m_mmap_threshold, 32 << 20)
    libc.mallopt(m_trim_threshold, 1 << 30)


def _cpu_has_native_bf16():
    """AVX512-BF16 or AMX: bf16 matmuls run 2-4x faster than fp32 (not merely emulated)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def _autocast_dtype(precision, device):
    """bf16 autocast (None = fp32) for `precision` auto/bf16/fp32. auto: bf16 on CUDA with bf16 support, and on
    CPUs with native bf16 (benchmarks/bench_train.py: 1.5-2.3x faster steps than fp32 for 0.1M-5M models);
    else fp32.
    fp16 would need loss scaling and is not offered."""
    if precision == "fp32":
        return None
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else _cpu_has_native_bf16()
    if precision == "auto":
        return torch.bfloat16 if native else None
    if device.type == "cuda" and not native:
        raise ValueError(f"precision bf16 asked for but {torch.cuda.get_device_name(device)} lacks bf16")
    return torch.bfloat16


def _sdpa_fp32_attention(module, query, key, value, attention_mask, **kwargs):
    """HF's SDPA attention run in fp32 inside CPU bf16 autocast: PyTorch's CPU flash-attention kernels are
    2-4x faster in fp32 than in bf16 (forward + backward of a (32, 3, 128, 16) attention: 9 ms vs 36 ms on
    AVX512-BF16), and faster than eager bf16 matmuls. Registered as attn_implementation "sdpa_fp32"; a
    runtime choice only, never saved in config.json."""
    with torch.autocast("cpu", enabled=False):
        out, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask,
                                              **kwargs)
    return out.to(value.dtype), weights


AttentionInterface.register("sdpa_fp32", _sdpa_fp32_attention)
AttentionMaskInterface.register("sdpa_fp32", sdpa_mask)


def _attention_kernel(device, autocast_dtype):
    """SDPA everywhere (flash kernels on CUDA); on CPU under bf16 autocast, SDPA in fp32 (see above)."""
    return "sdpa_fp32" if device.type == "cpu" and autocast_dtype is not None else "sdpa"


@functools.lru_cache(maxsize=None)
def matmul_peak_flops(device="cpu", dtype="float32", seconds=0.3):
    """Measured dense matmul FLOP/s of one device (the MFU denominator): best of repeated square products."""
    device = torch.device(device)
    torch_dtype = getattr(torch, dtype)
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=torch_dtype)
    b = torch.randn(n, n, device=device, dtype=torch_dtype)
    best, deadline = 0.0, time.perf_counter() + seconds
    for i in range(1000):
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        if i:  # the first product warms the kernels up
            best = max(best, 2 * n ** 3 / elapsed)
        if i >= 3 and time.perf_counter() > deadline:
            break
    return best
