import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

start(snakemake)
from t2scaling.tables import write_parameter_table

out = snakemake.output
write_parameter_table(list(snakemake.input.fits), out.csv, out.markdown, html_path=out.html)
