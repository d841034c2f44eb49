import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from pathlib import Path

from t2scaling.atomic import atomic_file
from t2scaling.fitresult import load_fit
from t2scaling.tables import parameter_markdown, parameter_table, write_table

table = parameter_table([load_fit(path) for path in snakemake.input.fits])
write_table(table, snakemake.output.csv)
with atomic_file(snakemake.output.markdown) as tmp:
    Path(tmp).write_text(parameter_markdown(table, title="Fitted parameters"))
log.info("parameter table: %d rows", len(table))
