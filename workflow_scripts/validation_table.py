import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from pathlib import Path

import pandas as pd

from t2scaling.atomic import atomic_file
from t2scaling.plots import plot_checkpoint_grid
from t2scaling.tables import write_table
from t2scaling.validate import load_fits_by_task, read_plan, validation_markdown, validation_table

plan = read_plan(snakemake.input.plan)
cells, tasks = list(snakemake.params.cells), list(snakemake.params.tasks)
evals = list(snakemake.input.evals)  # task-major, cell-minor (rules/common.smk validation_evals)
evals = {(task, cell): evals[i * len(cells) + j] for i, task in enumerate(tasks) for j, cell in enumerate(cells)}
fits = load_fits_by_task(snakemake.input.fits, tasks=tasks)
table = validation_table(plan, evals, fits)
write_table(table, snakemake.output.csv)
with atomic_file(snakemake.output.markdown) as tmp:
    Path(tmp).write_text(validation_markdown(table))
log.info("validation at C_train %g, C_inf %g:\n%s", plan["c_train"], plan["c_inf"], table.to_string(index=False))

# The checkpoint grid again, with the cells this stage added.
grid = pd.DataFrame(snakemake.params.grid)
added = {role["cell"]: role for role in plan["roles"] if role["cell"] not in set(grid["name"])}
grid = pd.concat([grid, pd.DataFrame([{"name": cell, "N": role["N"], "D": role["tokens"], "origin": "validation"}
                                      for cell, role in added.items()])], ignore_index=True)
plot_checkpoint_grid(grid, snakemake.output.grid, title="Checkpoints, with the validation cells")
