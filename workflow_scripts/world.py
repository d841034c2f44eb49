import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from pathlib import Path

from t2scaling.world import write_world

opts = snakemake.params.settings["world"]
summary = write_world(
    Path(snakemake.output.world).parent,
    seed=opts["seed"],
    n_questions=opts["questions"],
    n_train_questions=opts["train_questions"],
    **opts["options"],
)
log.info("world written: %s", summary)
