import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

start(snakemake)
from t2scaling.extrapolate import write_summary

out = snakemake.output
write_summary(list(snakemake.input.tables), out.csv, out.markdown, out.plot, html_path=out.html)
