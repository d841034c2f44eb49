import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call
from t2scaling.inputs import grouped

call(snakemake, "t2scaling.observations:collect_observations", grouped(snakemake.input, "eval"),
     snakemake.params.sizes, snakemake.output[0], imported=list(snakemake.input.imported))
