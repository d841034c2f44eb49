import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

start(snakemake)
from t2scaling.inputs import grouped
from t2scaling.tables import write_task_grades

out = snakemake.output
write_task_grades(grouped(snakemake.input, "observations"), snakemake.params.levels, snakemake.input.losses,
                  out.csv, out.markdown, html_path=out.html)
