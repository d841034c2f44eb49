import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.tasks import load_task, write_task_table

options = dict(snakemake.params.settings["task"])
kind = options.pop("kind")
limit = options.pop("limit", None)
if snakemake.input and str(snakemake.input[0]).endswith(".jsonl"):
    options["path"] = str(snakemake.input[0])  # a synthetic family from the embedded world
table = load_task(kind, **options)
split = snakemake.params.split  # test: the evaluation questions; train: the post-training examples
table = table[table["split"] == split]
if table.empty:
    raise ValueError(f"task {snakemake.wildcards.task!r} ({kind}): no {split} split; "
                     + ("post-train only tasks with a train split (config posttrain.tasks)" if split == "train"
                        else "give a task source with a test split"))
if limit and split == "test":
    table = table.head(limit)
write_task_table(table, snakemake.output[0])
log.info("task %s (%s): %d %s questions", snakemake.wildcards.task, kind, len(table), split)
