import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.validate import load_fits_by_task, plan_cells, write_plan

p = snakemake.params
if p.c_train is None:
    raise ValueError("config validation.c_train: not set and the grid has no isoFLOP levels to default to; "
                     "give validation.c_train in FLOPs")
fits = load_fits_by_task(snakemake.input.fits, tasks=p.tasks)
plan = plan_cells(fits, p.settings, p.c_train, p.c_inf)  # the config narrowed to what the plan reads
write_plan(plan, snakemake.output[0])
for role in plan["roles"]:
    log.info("%s: N* %.3g -> cell %s (N %d, in grid: %s)", role["role"], role["N_star"], role["cell"], role["N"],
             role["in_grid"])
