import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
import pandas as pd

from t2scaling.plots import plot_checkpoint_grid

cells = pd.DataFrame(snakemake.params.cells)
plot_checkpoint_grid(cells, snakemake.output[0])
log.info("checkpoint grid: %s", cells["origin"].value_counts().to_dict())
