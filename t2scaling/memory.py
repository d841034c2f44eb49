"""Per-device memory and time of training one grid cell. Pure arithmetic, like flops.py: no torch, so the
workflow can size a cell's job, or pick its micro-batch, while it builds the DAG.

The bytes are those of `t2scaling.train` in eager PyTorch (no activation checkpointing) for one micro-batch on
one device; `torch.compile` fuses some saved tensors away, so there the estimate errs high.
"""

import math

from t2scaling.flops import model_counts

LOSS_CHUNK_ELEMENTS = 2 ** 26  # fp32 elements of one chunk of train.CrossEntropyZLoss (256 MiB)
LOSS_KEEP_ELEMENTS = 2 ** 23  # logits up to this many elements keep their fp32 exponentials for the backward
LOSS_CHUNK_MIN_ROWS = 16  # CUDA sums a row differently in a tensor of fewer rows (CPU: in a one-row tensor)
FIXED_OVERHEAD_BYTES = 2 ** 30  # CUDA context and cuBLAS/NCCL workspaces on a GPU; the Python/torch runtime on CPU
FRAGMENTATION = 0.10  # share of the tensors' bytes lost to the caching allocator's fragmentation


def loss_chunks(rows, vocab_size):
    """(start, stop) row ranges in which train.CrossEntropyZLoss processes `rows` rows of logits in fp32: about
    LOSS_CHUNK_ELEMENTS elements each, cut so that each row's arithmetic is that of one pass over all rows
    (train.CrossEntropyZLoss says when that holds bitwise). A chunk starts at a multiple of 64 elements: PyTorch's
    CPU kernels compute a tensor's last elements before a multiple of their SIMD step on a scalar path, whose exp2
    may differ in the last bit. A chunk holds at least LOSS_CHUNK_MIN_ROWS rows: a shorter remainder joins the
    last chunk, which so holds at most LOSS_CHUNK_MIN_ROWS - 1 rows more than the others."""
    unit = 64 // math.gcd(vocab_size, 64)  # rows that make a multiple of 64 elements
    size = unit * max(-(-LOSS_CHUNK_MIN_ROWS // unit), LOSS_CHUNK_ELEMENTS // vocab_size // unit)
    starts = list(range(0, rows, size))
    if len(starts) > 1 and rows - starts[-1] < LOSS_CHUNK_MIN_ROWS:
        starts.pop()
    return list(zip(starts, starts[1:] + [rows]))


def training_memory(width, depth, *, vocab_size, seq_len, micro_batch_size, head_dim=64, ffn_multiple=256,
                    precision="bf16"):
    """Peak bytes on one device while training a (width, depth) model on micro-batches of `micro_batch_size`
    sequences; precision "bf16" (autocast) or "fp32". Returns a dict of bytes:

      states       fp32 weights, gradients and AdamW's two moments: 16 bytes per parameter (N_exact)
      activations  what autograd keeps from the forward for the backward, counted per token from what this model
                   family saves (tests/test_memory.py measures it with saved-tensor hooks). Per layer:
                   fp32: 14 width-sized tensors (the block input, both RMSNorms' normalised input and output, q and
                     k before and after QK-norm and after RoPE, v, the attention output, the mid-block residual)
                     and 4 d_ff-sized (gate, SiLU(gate), up, their product);
                   bf16 autocast: the residual stream stays fp32 (the embedding is fp32 and each residual add
                     promotes), so 6 width-sized tensors are fp32 (both blocks' inputs and normalised inputs, q
                     and k upcast by QK-norm) and 11 are bf16 (autocast casts an RMSNorm output once per
                     projection: 3 + 2 casts; q and k after QK-norm; SDPA's q, k, v; the attention output),
                     and the 4 d_ff-sized ones are bf16;
                   plus fp32 per-row scalars (2 RMSNorm scales, 2 per head for QK-norm, SDPA's logsumexp per
                   head). SDPA keeps no T x T score matrix. Outside the layers: the final RMSNorm's input and
                   normalised input (fp32), the lm_head input, the token ids, RoPE's cos and sin tables; under
                   bf16 also autocast's bf16 copies of the weight matrices (2 bytes per parameter of N), which the
                   backward keeps.
      logits       the logits in the compute dtype and their gradient, and one fp32 chunk of the loss
                   (`loss_chunks`; logits of at most LOSS_KEEP_ELEMENTS keep it from forward to backward)
      workspace    FIXED_OVERHEAD_BYTES plus FRAGMENTATION of the above
      total        the sum
    """
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be bf16 or fp32, got {precision!r}")
    c = model_counts(width, depth, vocab_size, seq_len, head_dim=head_dim, ffn_multiple=ffn_multiple)
    d_ff, heads, tokens = c["d_ff"], c["n_heads"], micro_batch_size * seq_len
    scalars = 4 * (2 + 3 * heads)
    if precision == "bf16":
        per_layer = 4 * 6 * width + 2 * 11 * width + 2 * 4 * d_ff + scalars
        outside = 4 * (2 * width + 1) + 2 * width + 8
        weight_copies, compute_bytes = 2 * c["N"], 2
    else:
        per_layer = 4 * (14 * width + 4 * d_ff) + scalars
        outside = 4 * (3 * width + 1) + 8
        weight_copies, compute_bytes = 0, 4
    rope = 2 * 4 * seq_len * head_dim  # fp32 cos and sin per position, shared by all sequences and layers
    out = dict(states=16 * c["N_exact"], activations=tokens * (depth * per_layer + outside) + rope + weight_copies)
    chunk_rows = max(stop - start for start, stop in loss_chunks(tokens, vocab_size))
    out["logits"] = 2 * compute_bytes * tokens * vocab_size + 4 * chunk_rows * vocab_size
    tensors = sum(out.values())
    out["workspace"] = FIXED_OVERHEAD_BYTES + round(FRAGMENTATION * tensors)
    out["total"] = tensors + out["workspace"]
    return out


def largest_micro_batch(width, depth, *, budget_bytes, batch_size, **shape):
    """The largest divisor of `batch_size` (sequences per optimizer step on one device) whose
    `training_memory(...)["total"]` fits in `budget_bytes`, or None when not even one sequence fits.
    shape: the other keyword arguments of training_memory (vocab_size, seq_len, head_dim, ...)."""
    for micro in sorted((m for m in range(1, batch_size + 1) if batch_size % m == 0), reverse=True):
        if training_memory(width, depth, micro_batch_size=micro, **shape)["total"] <= budget_bytes:
            return micro
    return None


def training_seconds(flops, sustained_flops_per_s):
    """Wall seconds to train `flops` FLOPs (e.g. flops_per_token * D) at a sustained FLOP/s (peak * MFU)."""
    return flops / sustained_flops_per_s


# ------------------------------------------------------------------------------------ host memory of a job

HOST_RUNTIME_BYTES = 3 * 2 ** 30  # resident torch + CUDA libraries and context of one process driving a GPU


def evaluation_memory(width, depth, *, vocab_size, seq_len, batch_size, head_dim=64, ffn_multiple=256):
    """Peak bytes of scoring a checkpoint (rules evaluate and val_loss) on one device: fp32 weights, a batch's
    fp32 logits three times over (the logits, their log-softmax, the gathered scores' temporaries), its
    activations (no autograd: about two width-sized and one d_ff-sized tensors per layer alive at once), and
    FIXED_OVERHEAD_BYTES."""
    c = model_counts(width, depth, vocab_size, seq_len, head_dim=head_dim, ffn_multiple=ffn_multiple)
    tokens = batch_size * seq_len
    return 4 * c["N_exact"] + 3 * 4 * tokens * vocab_size + 4 * tokens * (2 * width + c["d_ff"]) \
        + FIXED_OVERHEAD_BYTES


def host_memory_mb(device_bytes, *, n_params, processes=1, saves_state=True):
    """Host memory (MB, for a job's `mem_mb`) of a job whose per-device peak is `device_bytes` (training_memory or
    evaluation_memory's total): on CPU (processes=0) that peak itself (its FIXED_OVERHEAD_BYTES standing for the
    Python/torch runtime); with `processes` GPU
    processes, each one's resident libraries (HOST_RUNTIME_BYTES) and fp32 weights loaded on the host before the
    copy to the device, plus (saves_state) rank 0's host copy of the weights and AdamW state when it saves a
    resumable state (16 bytes per parameter)."""
    if processes == 0:
        return math.ceil(device_bytes / 2 ** 20)
    return math.ceil((processes * (HOST_RUNTIME_BYTES + 4 * n_params) + 16 * n_params * saves_state) / 2 ** 20)


# ---------------------------------------------------------------------------------- a workflow cell's job

def _model_shape(config):
    """The keyword arguments every estimate takes besides width and depth, from the experiment's config."""
    m = config["model"]
    return dict(vocab_size=config["corpus"]["vocab_size"], seq_len=m["seq_len"], head_dim=m["head_dim"],
                ffn_multiple=m["ffn_multiple"])


def train_job(width, depth, tokens, *, config):
    """What the training job of one cell asks and uses, from the experiment's config (defaults injected):
    micro_batch_size (training.micro_batch_size, "auto" resolved to the largest that fits training.gpu_memory_gb),
    mem_mb (host memory: at least training.mem_mb) and runtime (minutes: twice the estimate at
    training.sustained_tflops per GPU, within [training.runtime_min, training.runtime_max_min]). On a GPU the estimate is for bf16 autocast, which
    precision "auto" picks there; on CPU for fp32, the larger of the two."""
    t = config["training"]
    shape = _model_shape(config)
    per_device = t["batch_size"] // max(1, t["gpus"])
    micro = t["micro_batch_size"]
    if micro == "auto":
        micro = (largest_micro_batch(width, depth, budget_bytes=t["gpu_memory_gb"] * 1e9, batch_size=per_device,
                                     **shape) or 1) if t["gpus"] else None
    peak = training_memory(width, depth, micro_batch_size=micro or per_device,
                           precision="bf16" if t["gpus"] else "fp32", **shape)["total"]
    counts = model_counts(width, depth, **shape)
    mem_mb = max(t["mem_mb"], host_memory_mb(peak, n_params=counts["N_exact"], processes=t["gpus"]))
    runtime = t["runtime_min"]
    if t["sustained_tflops"] and t["gpus"]:
        seconds = training_seconds(counts["flops_per_token"] * tokens, t["sustained_tflops"] * 1e12 * t["gpus"])
        runtime = max(runtime, math.ceil(2 * seconds / 60))
    return dict(micro_batch_size=micro, mem_mb=mem_mb, runtime=min(runtime, t["runtime_max_min"]))


def gpu_memory_problem(config):
    """Why the config's largest cell cannot train on one GPU of training.gpu_memory_gb at
    training.micro_batch_size (a message naming the fix), or None. Judged before any job is submitted."""
    t, g, m = config["training"], config["grid"], config["model"]
    shapes = g["shapes"] + g["extra_cells"]
    if not t["gpus"] or not shapes:
        return None
    shape = _model_shape(config)
    big = max(shapes, key=lambda s: model_counts(s["width"], s["depth"], **shape)["N"])
    per_device, budget = t["batch_size"] // t["gpus"], t["gpu_memory_gb"] * 1e9
    fits = largest_micro_batch(big["width"], big["depth"], budget_bytes=budget, batch_size=per_device, **shape)
    micro = 1 if t["micro_batch_size"] == "auto" else t["micro_batch_size"] or per_device
    need = training_memory(big["width"], big["depth"], micro_batch_size=micro, **shape)["total"]
    if need <= budget:
        return None
    where = (f"the largest model (width {big['width']}, depth {big['depth']}, seq_len {m['seq_len']}) needs "
             f"~{need / 1e9:.0f} GB per GPU at a micro-batch of {micro} sequences (t2scaling.memory), more than "
             f"training.gpu_memory_gb = {t['gpu_memory_gb']:g}")
    if fits is None:
        return (f"config['training']['gpu_memory_gb']: {where}, and even one sequence does not fit; use GPUs with "
                "more memory (and say so in gpu_memory_gb) or a shorter model.seq_len")
    return (f"config['training']['micro_batch_size']: {where}; set training.micro_batch_size to {fits} (the largest "
            f"divisor of the {per_device} sequences per GPU per step that fits) or to auto")


def checkpoint_job_mem_mb(width, depth, *, config, fine_tune=False):
    """Host memory (MB) of a job on one checkpoint of the grid: scoring it (rules evaluate, val_loss: a batch of
    evaluation.batch_size sequences, evaluation_memory) or fine-tuning it (rule posttrain: training_memory at
    posttrain.batch_size), on one GPU when training.gpus > 0, else on CPU."""
    t = config["training"]
    shape = _model_shape(config)
    if fine_tune:
        peak = training_memory(width, depth, micro_batch_size=config["posttrain"]["batch_size"],
                               precision="bf16" if t["gpus"] else "fp32", **shape)["total"]
    else:
        peak = evaluation_memory(width, depth, batch_size=config["evaluation"]["batch_size"], **shape)
    return host_memory_mb(peak, n_params=model_counts(width, depth, **shape)["N_exact"], processes=min(1, t["gpus"]),
                          saves_state=False)
