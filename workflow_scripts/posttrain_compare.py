import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.plots import plot_variant_frontiers
from t2scaling.tables import frontier_comparison, write_table

p = snakemake.params
frontiers = {variant: list(snakemake.input[variant]) for variant in p.variants}
table = frontier_comparison(frontiers, p.c_train, p.c_inf)
write_table(table, snakemake.output.csv, snakemake.output.markdown,
            title=f"Optimal tokens per parameter, base vs post-trained, C_inf = {p.c_inf:.3g} FLOPs per token")
plot_variant_frontiers(frontiers, snakemake.output.plot, p.c_inf)
log.info("post-training comparison of %s: %d rows", ", ".join(p.variants), len(table))
