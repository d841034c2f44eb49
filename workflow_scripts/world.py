import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.world import write_configured_world

summary = write_configured_world(snakemake.params.settings["world"], snakemake.output.world)
log.info("world written: %s", summary)
