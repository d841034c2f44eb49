import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
import json
from pathlib import Path

import pandas as pd

rows = []
for path in snakemake.input.losses:
    row = json.loads(Path(path).read_text())  # rule val_loss: the checkpoint's sizes and its validation loss
    rows.append({"checkpoint": row["cell"], "N": row["N"], "D": row["D"], "loss": row["val_loss"],
                 "N_non_embedding": row["N_non_embedding"], "C_train": row["C_train"]})
table = pd.DataFrame(rows)
table.to_csv(snakemake.output[0], index=False)
log.info("validation losses of %d trained checkpoints", len(table))
