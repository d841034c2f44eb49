import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
import json
from pathlib import Path

import pandas as pd

rows = []
for directory in snakemake.input.checkpoints:
    meta = json.loads((Path(directory) / "t2_meta.json").read_text())
    rows.append({"checkpoint": meta["cell"], "N": meta["N"], "D": meta["D"], "loss": meta["val_loss"],
                 "N_non_embedding": meta["N_non_embedding"], "C_train": meta["C_train"]})
table = pd.DataFrame(rows)
table.to_csv(snakemake.output[0], index=False)
log.info("validation losses of %d trained checkpoints", len(table))
