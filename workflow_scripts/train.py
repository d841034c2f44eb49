import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
import os
import subprocess
from pathlib import Path

p = snakemake.params
cell, s, hints = p.cell, p.settings, p.hints
model, training = s["model"], s["training"]
kwargs = dict(
    cell_id=cell["cell_id"],
    width=cell["width"],
    depth=cell["depth"],
    tokens=cell["tokens"],
    train_tokens_path=snakemake.input.train,
    val_tokens_path=snakemake.input.val,
    tokenizer_dir=snakemake.input.tokenizer,
    seq_len=model["seq_len"],
    batch_size=training["batch_size"],
    schedule=training["schedule"],
    # Undeclared scratch: survives a killed job so the rerun resumes instead of restarting.
    scratch_dir=str(Path("results/scratch") / cell["cell_id"]),
    log_path=str(Path(snakemake.log[0]).with_suffix(".jsonl")),
    vocab_size=s["corpus"]["vocab_size"],
    head_dim=model["head_dim"],
    ffn_multiple=model["ffn_multiple"],
    lr=training["lr"],
    betas=(training["beta1"], training["beta2"]),
    weight_decay=training["weight_decay"],
    grad_clip=training["grad_clip"],
    z_loss=training["z_loss"],
    seed=s["seed"],
    decay_fraction=training["decay_fraction"],
    device=training["device"],
    compile=training["compile"],
    threads=snakemake.threads,
    val_max_tokens=hints["val_max_tokens"],
    progress=False,
)
if training["schedule"] == "wsd":
    # One stable trunk per model size; it saves the branch point of every D of this size in one pass (a hint
    # outside the compared params: adding a cell never re-runs its siblings).
    kwargs["trunk_dir"] = str(Path("results/scratch") / f"trunk-w{cell['width']}-l{cell['depth']}")
    kwargs["branch_tokens"] = hints["branch_tokens"]
out_dir = snakemake.output[0]
gpus = int(snakemake.resources.get("gpu", 0))
if gpus > 1:
    # Multi-GPU: one DDP process per GPU through torchrun; the CLI takes the same settings.
    from t2scaling.train import cli_args

    cmd = ["torchrun", "--standalone", f"--nproc_per_node={gpus}", "-m", "t2scaling.cli", "train",
           "--out", out_dir, *cli_args(**kwargs)]
    log.info("launching %s", " ".join(cmd))
    subprocess.run(cmd, check=True, stderr=sys.stderr, stdout=sys.stderr, env=os.environ)
else:
    from t2scaling.train import train_cell

    meta = train_cell(out_dir, **kwargs)
    log.info("trained %s: D = %s tokens, val loss %.4f nats/token", cell["cell_id"], meta["D"], meta["val_loss"])
