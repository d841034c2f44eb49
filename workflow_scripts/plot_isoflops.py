import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from pathlib import Path

from t2scaling.fitresult import load_fit
from t2scaling.plots import plot_isoflop_profiles

# Per task, or the macro average when the rule hands over every task.
fits = [load_fit(path) for path in snakemake.input.fits]
observations = snakemake.input.observations
observations = [observations] if isinstance(observations, str) else list(observations)
tasks = {task: (path, {fit.law: fit for fit in fits if fit.task == task})
         for task, path in zip(snakemake.params.tasks, observations)}
levels = [(c_train, cells) for c_train, cells in snakemake.params.levels]
plot_isoflop_profiles(tasks, levels, snakemake.params.c_inf, snakemake.output[0])
log.info("isoFLOP profiles of %s at %d levels, C_inf = %g", ", ".join(tasks), len(levels), snakemake.params.c_inf)
