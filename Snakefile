from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/fit.smk"
include: "rules/frontier.smk"
include: "rules/plots.smk"


rule all:
    input:
        all_outputs(),
    default_target: True
