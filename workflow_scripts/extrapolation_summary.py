import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call

out = snakemake.output
call(snakemake, "t2scaling.extrapolate:write_summary", list(snakemake.input.tables), out.csv, out.markdown, out.plot,
     html_path=out.html)
