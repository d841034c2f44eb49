import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call
from t2scaling.inputs import grouped

p, out = snakemake.params, snakemake.output
call(snakemake, "t2scaling.tables:write_table1", grouped(snakemake.input, "observations"),
     grouped(snakemake.input, "frontiers"), p.checkpoints, p.c_train, p.c_inf, out.csv, out.markdown,
     html_path=out.html)
