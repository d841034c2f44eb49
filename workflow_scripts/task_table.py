import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.tasks import load_task, write_task_table

options = dict(snakemake.params.task)
kind = options.pop("kind")
limit = options.pop("limit", None)
if snakemake.input and str(snakemake.input[0]).endswith(".jsonl"):
    options["path"] = str(snakemake.input[0])  # a synthetic family from the embedded world
table = load_task(kind, **options)
table = table[table["split"] == "test"]
if limit:
    table = table.head(limit)
write_task_table(table, snakemake.output[0])
log.info("task %s (%s): %d test questions", snakemake.wildcards.task, kind, len(table))
