import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
import json
from pathlib import Path

from t2scaling.atomic import atomic_file
from t2scaling.data import load_tokens
from t2scaling.evaluate import load_checkpoint, validation_loss

s = snakemake.params.settings
meta = json.loads((Path(snakemake.input.checkpoint) / "t2_meta.json").read_text())
model, _ = load_checkpoint(snakemake.input.checkpoint, s["training"]["device"])
loss = validation_loss(model, load_tokens(snakemake.input.val), meta["seq_len"], s["evaluation"]["batch_size"],
                       model.device, max_tokens=s["evaluation"]["val_tokens"])
row = {key: meta[key] for key in ("cell", "N", "N_non_embedding", "D", "C_train")}
row.update(val_loss=loss, val_tokens=s["evaluation"]["val_tokens"])
with atomic_file(snakemake.output[0]) as tmp:
    Path(tmp).write_text(json.dumps(row, indent=1))
log.info("%s: validation loss %.4f nats/token over the first %d validation tokens", row["cell"], loss,
         row["val_tokens"])
