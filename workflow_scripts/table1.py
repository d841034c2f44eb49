import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
import pandas as pd

from t2scaling.tables import table1, write_table

p = snakemake.params
laws, tasks = list(p.laws), list(p.tasks)
frontiers = list(snakemake.input.frontiers)  # task-major, law-minor (rules/common.smk all_frontiers)
rows = [
    table1(task, observations, frontiers[i * len(laws): (i + 1) * len(laws)], p.checkpoints, p.c_train, p.c_inf)
    for i, (task, observations) in enumerate(zip(tasks, snakemake.input.observations))
]
table = pd.concat(rows, ignore_index=True)
write_table(table, snakemake.output.csv, snakemake.output.markdown,
            title=f"Best overtrained vs Chinchilla-optimal checkpoint at C_train = {p.c_train:.3g} FLOPs, "
                  f"C_inf = {p.c_inf:.3g} FLOPs per token")
log.info("Table 1 for %d tasks at C_train %g", len(tasks), p.c_train)
