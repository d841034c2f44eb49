import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

start(snakemake)
from t2scaling.observations import write_loss_table

write_loss_table(list(snakemake.input.losses), snakemake.output[0])
