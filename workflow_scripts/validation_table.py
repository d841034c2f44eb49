import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call
from t2scaling.inputs import grouped

p, out = snakemake.params, snakemake.output
call(snakemake, "t2scaling.validate:write_validation", snakemake.input.plan, grouped(snakemake.input, "eval"),
     list(snakemake.input.fits), p.grid, out.csv, out.markdown, out.grid, tasks=p.tasks, html_path=out.html)
