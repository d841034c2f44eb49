import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

start(snakemake)
from t2scaling.tables import write_parameter_table

write_parameter_table(list(snakemake.input.fits), snakemake.output.csv, snakemake.output.markdown)
