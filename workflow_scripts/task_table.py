import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call

# split: test (the evaluation questions) or train (the post-training examples)
call(snakemake, "t2scaling.tasks:write_task_split", snakemake.wildcards.task, snakemake.params.settings["task"],
     snakemake.params.split, snakemake.output[0], world_files=list(snakemake.input.world))
