import os
import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

start(snakemake)
from t2scaling.lawbench import run_bench

s = snakemake.params.settings
b = s["lawbench"]
run_bench(b["datasets"], os.path.dirname(snakemake.output.csv), b["data_dir"], b["splits"], b["restarts"], s["seed"],
          figures_dir=snakemake.output.figures)
