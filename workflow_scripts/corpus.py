import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.data import prepare_configured_corpus
from t2scaling.inputs import grouped

summary = prepare_configured_corpus(snakemake.params.settings["corpus"], snakemake.output.summary,
                                    world=grouped(snakemake.input, "world"))
log.info("corpus ready: %s", summary)
