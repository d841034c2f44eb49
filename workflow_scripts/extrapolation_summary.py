import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
import pandas as pd

from t2scaling.extrapolate import summarise
from t2scaling.plots import plot_extrapolation
from t2scaling.tables import write_table

table = pd.concat([pd.read_csv(path) for path in snakemake.input.tables], ignore_index=True)
summary = summarise(table)
write_table(summary, snakemake.output.csv, snakemake.output.markdown,
            title="Relative absolute error of held-out predictions")
plot_extrapolation(table, snakemake.output.plot)
log.info("extrapolation over %d tasks:\n%s", table["task"].nunique(), summary.to_string(index=False))
