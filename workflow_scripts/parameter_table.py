import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call

out = snakemake.output
call(snakemake, "t2scaling.tables:write_parameter_table", list(snakemake.input.fits), out.csv, out.markdown,
     html_path=out.html)
