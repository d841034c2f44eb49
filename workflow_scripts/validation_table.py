import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

start(snakemake)
from t2scaling.inputs import grouped
from t2scaling.validate import write_validation

p, out = snakemake.params, snakemake.output
write_validation(snakemake.input.plan, grouped(snakemake.input, "eval"), list(snakemake.input.fits), p.grid,
                 out.csv, out.markdown, out.grid, tasks=p.tasks, html_path=out.html)
