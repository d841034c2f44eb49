import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.inputs import grouped
from t2scaling.observations import collect_observations

table = collect_observations(grouped(snakemake.input, "eval"), snakemake.params.sizes, snakemake.output[0],
                             imported=list(snakemake.input.imported))
log.info("%s: %d observation rows from %d checkpoints", snakemake.wildcards.task, len(table),
         table["checkpoint"].nunique())
