import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call
from t2scaling.inputs import grouped

out = snakemake.output
call(snakemake, "t2scaling.tables:write_task_grades", grouped(snakemake.input, "observations"),
     snakemake.params.levels, snakemake.input.losses, out.csv, out.markdown, html_path=out.html)
