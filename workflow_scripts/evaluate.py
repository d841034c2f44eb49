import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call

s = snakemake.params.settings
e = s["evaluation"]
call(snakemake, "t2scaling.evaluate:evaluate_task", snakemake.params.checkpoint, snakemake.input.questions,
     snakemake.output[0], mode=e["mode"], n_samples=e["n_samples"], temperature=e["temperature"],
     batch_size=e["batch_size"], device=s["training"]["device"],
     task=s["task"]["kind"])  # the task kind picks the verifier (e.g. numeric equality for arithmetic)
