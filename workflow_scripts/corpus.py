import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from pathlib import Path

from t2scaling.data import prepare_corpus

c = snakemake.params.settings["corpus"]
world = Path("results/world/corpus")
summary = prepare_corpus(
    str(world / "train.jsonl") if c["train"] == "world" else c["train"],
    str(world / "val.jsonl") if c["val"] == "world" else c["val"],
    Path(snakemake.output.summary).parent,
    tokenizer=c["tokenizer"],
    vocab_size=c["vocab_size"],
    text_field=c["text_field"],
)
log.info("corpus ready: %s", summary)
