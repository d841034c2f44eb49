from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless --configfile names another experiment (which then replaces it whole rather
# than merging into it: a smaller task set must not inherit the default's tasks).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/fit.smk"
include: "rules/frontier.smk"
include: "rules/plots.smk"
include: "rules/tables.smk"
include: "rules/extrapolate.smk"
include: "rules/posttrain.smk"
include: "rules/validate.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
