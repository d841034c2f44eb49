import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call

s = snakemake.params.settings
call(snakemake, "t2scaling.evaluate:write_val_loss", snakemake.input.checkpoint, snakemake.input.val,
     snakemake.output[0], device=s["training"]["device"], batch_size=s["evaluation"]["batch_size"],
     max_tokens=s["evaluation"]["val_tokens"])
