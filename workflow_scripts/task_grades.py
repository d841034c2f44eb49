import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.tables import task_grades, write_table

table = task_grades(dict(zip(snakemake.params.tasks, snakemake.input.observations)), dict(snakemake.params.levels),
                    snakemake.input.losses)
write_table(table, snakemake.output.csv, snakemake.output.markdown,
            title="Measured pass@1 per isoFLOP level: best cell, and its gain over the lowest level's best (95 % CI)")
for problem in table.attrs["problems"]:
    log.warning(problem)
