import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

start(snakemake)
from t2scaling.inputs import grouped
from t2scaling.tables import write_table1

p, out = snakemake.params, snakemake.output
write_table1(grouped(snakemake.input, "observations"), grouped(snakemake.input, "frontiers"), p.checkpoints,
             p.c_train, p.c_inf, out.csv, out.markdown, html_path=out.html)
