import functools
import os
import re
import sys
from pathlib import Path

from snakemake.utils import validate

REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO))

from t2scaling.config import (  # noqa: E402
    SYNTHETIC_KINDS,
    coerce_numbers,
    config_problems,
    duplicate_keys,
    resolve,
)
from t2scaling.deps import (  # noqa: E402
    constant,
    library_files,
    project,
    script_files,
    sort_keys,
    undeclared,
)
from t2scaling.grid import (  # noqa: E402
    checkpoint_origins,
    counts_for,
    grid_cells,
    holds_out,
    isoflop_levels,
    log_spaced,
    parse_cell,
    wsd_siblings,
)
from t2scaling.inputs import named  # noqa: E402
from t2scaling.memory import checkpoint_job_mem_mb, train_job  # noqa: E402
from t2scaling.units import register_report_filters  # noqa: E402

# Report captions (report/*.rst) format config values with t2scaling.units: {{ x|flops }}, |si, |number.
register_report_filters()

# YAML 1.1 reads 3e12 as a string: a number wherever the schema wants one. Snakemake keeps the last of two
# equal keys silently, so the config files it read are read again for duplicates.
coerce_numbers(config)
_problems = [
    p for f in workflow.configfiles if Path(f).exists() for p in duplicate_keys(f)
] + config_problems(config)
if _problems:
    raise ValueError(
        "invalid config ({} problem{}):\n  - {}".format(
            len(_problems), "s" * (len(_problems) > 1), "\n  - ".join(_problems)
        )
    )
validate(config, schema="../t2scaling/config.schema.yaml")
# Relative inference budgets -> FLOPs, the default fit k grid -> powers of 2 covering them: once, here.
resolve(config)


def unset_site_variables(resource_settings, environ):
    """$NAMES that the profile's resources read (profiles/slurm: partitions and account) and the environment
    lacks: Snakemake would hand sbatch the literal text, and the cluster's error would not say what to set.
    """
    raw = [r.raw for r in (resource_settings.default_resources or {}).values()]
    raw += [
        r.raw
        for rule in resource_settings.overwrite_resources.values()
        for r in rule.values()
    ]
    names = re.findall(r"\$\{?(\w+)", " ".join(v for v in raw if isinstance(v, str)))
    return sorted(set(n for n in names if n not in environ))


_unset = unset_site_variables(workflow.resource_settings, os.environ)
if _unset:
    raise ValueError(
        "the profile's resources read site settings from the environment, and {} unset: export {} "
        "(`sinfo -s` lists the partitions, `sacctmgr show assoc user=$USER format=account` your accounts; an "
        "empty account submits without one); README 'On a cluster'".format(
            " and ".join(_unset) + (" is" if len(_unset) == 1 else " are"),
            " ".join(f"{n}=..." for n in _unset),
        )
    )


##### grid, tasks, imported checkpoints #####

CELLS = {cell.name: cell for cell in grid_cells(config)}
IMPORTED = {c["name"]: c for c in config["imported_checkpoints"]}
CHECKPOINTS = list(CELLS) + list(IMPORTED)
# By name: the order of the tasks in a YAML file must not reach any params (macro tables and plots list them).
TASKS = {name: config["tasks"][name] for name in sorted(config["tasks"])}
LAWS = config["fits"]["laws"]
USES_WORLD = config["corpus"]["train"] == "world" or any(
    t["kind"] in SYNTHETIC_KINDS for t in TASKS.values()
)
# The grid's isoFLOP levels, each with its cells: the isoFLOP profiles, Table 1 and the frontiers' budgets.
LEVELS = isoflop_levels(CELLS.values())
EXTRAPOLATION = config["extrapolation"]
EXTRAPOLATE = holds_out(
    EXTRAPOLATION["checkpoints"], EXTRAPOLATION["min_tokens_per_param"]
)
POSTTRAIN_MODES = config["posttrain"]["modes"]
POSTTRAIN_TASKS = config["posttrain"]["tasks"] or list(TASKS)


wildcard_constraints:
    task="|".join(map(re.escape, TASKS)),
    # grid and imported checkpoints, and the cells the validate stage derives from the frontier
    cell="|".join([*map(re.escape, CHECKPOINTS), r"w\d+-l\d+-d\d+"]),
    law="|".join(LAWS),
    mode="ft|sft",


##### what re-runs what (README "Incremental re-runs", DESIGN.md §4.2) #####

# Config key -> the rules whose output it changes. A rule's params are the config projected onto exactly its
# keys (`settings_for`; or values derived from that projection alone), so changing a key re-runs those rules
# and what is downstream of them, and nothing else. `use rule X as Y` copies take X's params. A job with a
# {task} or {law} wildcard narrows further to its own task's entry, or to its law's options (FIT_OPTIONS).
# Jobs read no config: every value a wrapper uses comes through params, input, threads or resources.
# (SIZES: the rules whose params carry the checkpoints' N and D.)
SIZES = ["collect", "plot_grid", "validation_table"]
PARAM_KEYS = {
    "seed": ["train", "posttrain", "fit", "pretrain_fit", "extrapolate", "lawbench"],
    "lawbench": ["lawbench"],
    "world": ["world"],
    "corpus.train": ["corpus"],
    "corpus.val": ["corpus"],
    "corpus.text_field": ["corpus"],
    "corpus.tokenizer": ["corpus"],
    "corpus.vocab_size": ["corpus", "train", "validation_plan", *SIZES],
    "model.seq_len": ["train", "validation_plan", *SIZES],
    "model.head_dim": ["train", "validation_plan", *SIZES],
    "model.ffn_multiple": ["train", "validation_plan", *SIZES],
    "training.schedule": ["train"],
    "training.decay_fraction": ["train"],
    "training.batch_size": ["train", "validation_plan"],
    "training.lr": ["train"],
    "training.beta1": ["train"],
    "training.beta2": ["train"],
    "training.weight_decay": ["train"],
    "training.grad_clip": ["train"],
    "training.z_loss": ["train"],
    "training.compile": ["train"],
    "training.device": ["train", "val_loss", "evaluate", "posttrain"],
    "grid": ["validation_plan"],
    "tasks": ["task_table", "evaluate"],
    "evaluation.mode": ["evaluate"],
    "evaluation.n_samples": ["evaluate"],
    "evaluation.temperature": ["evaluate"],
    "evaluation.batch_size": ["evaluate", "val_loss"],
    "evaluation.val_tokens": ["val_loss"],
    "fits.k_grid": ["fit", "extrapolate", "plot_fit"],
    "fits.chinchilla_variant": ["fit", "pretrain_fit", "extrapolate"],
    "fits.restarts": ["fit", "extrapolate"],
    "fits.bootstrap": ["fit", "pretrain_fit"],
    "fits.approach2_variant": ["fit", "extrapolate"],
    "fits.allow_unconverged": ["fit", "pretrain_fit", "extrapolate"],
    "fits.param_count": SIZES,
    "frontier.c_inf": [
        "frontier",
        "macro_frontier",
        "plot_frontier",
        "plot_macro_frontier",
    ],
    "frontier.c_train_min": ["frontier", "macro_frontier"],
    "frontier.c_train_max": ["frontier", "macro_frontier"],
    "frontier.steps": ["frontier", "macro_frontier"],
    "plots.c_inf": [
        "frontier",
        "macro_frontier",
        "plot_isoflops",
        "plot_macro_isoflops",
        "table1",
        "posttrain_compare",
        "validation_plan",
    ],
    "extrapolation.min_tokens_per_param": [
        "extrapolate",
        "plot_grid",
        "validation_table",
    ],
    "extrapolation.checkpoints": ["extrapolate", "plot_grid", "validation_table"],
    "extrapolation.laws": ["extrapolate"],
    "posttrain.epochs": ["posttrain"],
    "posttrain.batch_size": ["posttrain"],
    "posttrain.lr": ["posttrain"],
    "posttrain.max_steps": ["posttrain"],
    "posttrain.compare_c_train": ["posttrain_compare"],
    "validation": ["validation_plan"],
}
# Where and how fast a job runs, never what it computes: resources, never params.
RESOURCE_KEYS = [
    "training.threads",
    "training.gpus",
    "training.runtime_min",
    "training.runtime_max_min",
    "training.mem_mb",
    "training.micro_batch_size",
    "training.gpu_memory_gb",
    "training.sustained_tflops",
    "training.checkpoint_every_s",
]
# Keys that shape the DAG: which cells, checkpoints, tasks, laws and modes exist (jobs come and go, and the
# params derived from them change where they list them), and the report's title.
DAG_KEYS = [
    "experiment",
    "grid",
    "imported_checkpoints",
    "imported_observations",
    "tasks",
    "fits.laws",
    "posttrain.modes",
    "posttrain.tasks",
    "extrapolation",
]
_missing, _unknown = undeclared(config, [*PARAM_KEYS, *RESOURCE_KEYS, *DAG_KEYS])
if _missing or _unknown:
    raise ValueError(
        "rules/common.smk: declare every config key in PARAM_KEYS (with the rules whose output it changes), "
        f"RESOURCE_KEYS or DAG_KEYS; undeclared: {_missing}; declared but not in the schema: {_unknown}"
    )


@functools.cache
def settings_for(rule):
    """The config narrowed to the keys PARAM_KEYS declares for `rule` (nested like the config, keys sorted)."""
    keys = [key for key, rules in PARAM_KEYS.items() if rule in rules]
    if not keys:
        raise ValueError(f"no config keys declared for {rule!r} in PARAM_KEYS")
    return project(config, keys)


def task_settings(rule):
    """Params of a {task} job: settings_for(rule) with `tasks` narrowed to the job's own entry, as `task`."""

    def narrowed(wildcards):
        s = dict(settings_for(rule))
        s["task"] = s.pop("tasks")[wildcards.task]
        return s

    return narrowed


# Versioned stages: keyed to a declared version of what they compute (a param), not to the library's source,
# so a comment, a refactor or a speed-up re-runs none of them; a change that alters their output bumps it
# (t2scaling/versions.py). Rule -> (library file, constant).
VERSIONS = {
    "world": ("world.py", "VERSION"),
    "corpus": ("versions.py", "DATA_VERSION"),
    "task_table": ("versions.py", "TASKS_VERSION"),
    "train": ("versions.py", "TRAIN_RECIPE_VERSION"),
    "evaluate": ("versions.py", "EVAL_VERSION"),
    "val_loss": ("versions.py", "EVAL_VERSION"),
    "posttrain": ("versions.py", "POSTTRAIN_VERSION"),
}


def version(rule):
    path, name = VERSIONS[rule]
    return constant(REPO / "t2scaling" / path, name)


@functools.cache
def library(script):
    """workflow_scripts/<script>.py, the helpers next to it and the library files it imports, directly or not:
    inputs of the cheap stages, so that editing one re-runs exactly the rules that run it (never the versioned
    stages, keyed to versions; profiles/default turns off Snakemake's script-mtime trigger).
    """
    path = REPO / "workflow_scripts" / f"{script}.py"
    return [str(p) for p in script_files(path) + library_files(path)]


##### resources: where and how fast a job runs, never what it computes (t2scaling.memory) #####


def train_resource(key):
    """A cell's training job's `key` (mem_mb, runtime): t2scaling.memory.train_job, floored by the config."""

    def get(wildcards):
        width, depth, tokens = parse_cell(wildcards.cell)
        return train_job(width, depth, tokens, config=config)[key]

    return get


def checkpoint_mem_mb(fine_tune=False):
    """Host memory of scoring (or fine-tuning) one checkpoint, from its shape; an imported checkpoint, whose
    shape the DAG does not know, asks training.mem_mb."""

    def get(wildcards):
        if wildcards.cell in IMPORTED:
            return config["training"]["mem_mb"]
        width, depth, _ = parse_cell(wildcards.cell)
        return checkpoint_job_mem_mb(width, depth, config=config, fine_tune=fine_tune)

    return get


# The path to `validate`'s plan (the grid's trainings and evaluations, the task fits, the plan) runs first: the
# plan's own trainings then start as soon as the fits exist, while post-training, plots and tables fill the
# other cores. Only the order of jobs changes, never what they compute.
CRITICAL_PATH_PRIORITY = 10

# A checkpoint job on a GPU gets training.threads CPUs (tokenising, data loading); on CPU one thread each, so
# that a workstation runs one job per core and a cluster job computes exactly what a local one does.
CHECKPOINT_JOB_THREADS = (
    config["training"]["threads"] if config["training"]["gpus"] else 1
)


##### input functions #####


def world_task_file(wildcards):
    kind = TASKS[wildcards.task]["kind"]
    return [f"results/world/tasks/{kind}.jsonl"] if kind in SYNTHETIC_KINDS else []


def corpus_inputs(wildcards):
    """The embedded world's corpus files, named by split, when the corpus reads the world."""
    c = config["corpus"]
    world = {split: f"results/world/corpus/{split}.jsonl" for split in ("train", "val")}
    return named("world", world) if "world" in (c["train"], c["val"]) else {}


def checkpoint_dir(wildcards):
    """A trained cell's checkpoint dir (grid or validation), or an imported one (a local dir is tracked; a hub
    id is not a file)."""
    if wildcards.cell not in IMPORTED:
        return f"results/checkpoints/{wildcards.cell}"
    path = IMPORTED[wildcards.cell]["path"]
    return [path] if Path(path).exists() else []


def checkpoint_ref(wildcards):
    """What the evaluation loads: the path or hub id of the checkpoint."""
    if wildcards.cell not in IMPORTED:
        return f"results/checkpoints/{wildcards.cell}"
    return IMPORTED[wildcards.cell]["path"]


def task_evals(wildcards):
    """Each checkpoint's evaluation on the job's task, named by checkpoint (t2scaling.inputs)."""
    return named(
        "eval",
        {cell: f"results/eval/{wildcards.task}/{cell}.parquet" for cell in CHECKPOINTS},
    )


def task_imports(wildcards):
    return config["imported_observations"].get(wildcards.task, [])


def val_losses(wildcards):
    return expand("results/pretrain/val_loss/{cell}.json", cell=list(CELLS))


def task_fits(wildcards):
    return expand(
        "results/tasks/{task}/fits/{law}.json", task=list(TASKS), law=wildcards.law
    )


def cell_params(wildcards):
    """Shape and tokens of a grid cell, or of a cell the validate stage derived (named w<W>-l<L>-d<D>)."""
    width, depth, tokens = parse_cell(wildcards.cell)
    return {"cell_id": wildcards.cell, "width": width, "depth": depth, "tokens": tokens}


def train_hints(wildcards, resources):
    """What a training job uses that no result of the workflow depends on, kept out of the compared params
    (Snakemake compares no param derived from a job's resources): the other D values of the cell's size, whose
    WSD branch points the trunk saves in the same pass (so adding a cell never re-runs its siblings), and how
    many validation tokens score the checkpoint's own t2_meta.json loss (the workflow reads rule val_loss's), the
    micro-batch (gradient accumulation gives the same step up to float rounding) and the state-save interval.
    """
    width, depth, tokens = parse_cell(wildcards.cell)
    return {
        "branch_tokens": wsd_siblings(CELLS.values(), wildcards.cell),
        "val_max_tokens": config["evaluation"]["val_tokens"],
        "micro_batch_size": train_job(width, depth, tokens, config=config)[
            "micro_batch_size"
        ],
        "checkpoint_every_s": config["training"]["checkpoint_every_s"],
    }


def checkpoint_sizes(rule):
    """Static N and D of every checkpoint (grid cells from the config, imported ones as declared)."""
    s = settings_for(rule)
    key = "N" if s["fits"]["param_count"] == "total" else "N_non_embedding"
    out = {
        name: {"N": counts_for(s, c.width, c.depth)[key], "D": c.tokens}
        for name, c in CELLS.items()
    }
    out.update({name: {"N": c["N"], "D": c["D"]} for name, c in IMPORTED.items()})
    return out


# Which fit settings (config key -> fit_table argument) each law reads: changing one re-runs only the
# fits that use it.
FIT_OPTIONS = {
    "chinchilla": {
        "bootstrap": "bootstrap",
        "allow_unconverged": "allow_unconverged",
        "chinchilla_variant": "variant",
    },
    "approach1": {
        "k_grid": "k_grid",
        "restarts": "restarts",
        "bootstrap": "bootstrap",
        "allow_unconverged": "allow_unconverged",
    },
    "approach2": {
        "allow_unconverged": "allow_unconverged",
        "k_grid": "k_grid",
        "restarts": "restarts",
        "bootstrap": "bootstrap",
        "approach2_variant": "variant",
        "chinchilla_variant": "stage1",
    },
}


def fit_options(wildcards, law=None, rule="fit"):
    law = law or wildcards.law
    fits = settings_for(rule)["fits"]
    options = {arg: fits[key] for key, arg in FIT_OPTIONS[law].items()}
    return sort_keys({"law": law, **options})


def c_train_grid(rule):
    """Frontier budgets: the log-spaced range plus the grid's isoFLOP levels (Table 1 reads those rows)."""
    f = settings_for(rule)["frontier"]
    return sorted(
        set(log_spaced(f["c_train_min"], f["c_train_max"], f["steps"])) | set(LEVELS)
    )


def frontier_c_inf(rule):
    """Inference budgets of the frontier tables: the configured ones plus the in-suite one of the plots."""
    s = settings_for(rule)
    return sorted(set(s["frontier"]["c_inf"]) | {s["plots"]["c_inf"]})


def level_params():
    """The grid's isoFLOP levels (LEVELS) as params: [[C_train, [cell names]], ...], levels ascending."""
    return [[c_train, cells] for c_train, cells in LEVELS.items()]


def task_fit_files(wildcards):
    return {law: f"results/tasks/{wildcards.task}/fits/{law}.json" for law in LAWS}


def all_fit_files(wildcards=None):
    return expand("results/tasks/{task}/fits/{law}.json", task=list(TASKS), law=LAWS)


def observations_by_task(wildcards):
    """The observation table of the job's task, or of every task for a job without one, named by task."""
    tasks = [wildcards.task] if hasattr(wildcards, "task") else list(TASKS)
    return named(
        "observations",
        {task: f"results/tasks/{task}/observations.parquet" for task in tasks},
    )


def table1_inputs(wildcards):
    """Table 1's inputs, named by task: each task's observations and its frontier tables (one per law)."""
    frontiers = {
        task: expand("results/tasks/{task}/frontier/{law}.csv", task=task, law=LAWS)
        for task in TASKS
    }
    return {**observations_by_task(wildcards), **named("frontiers", frontiers)}


def all_frontiers(wildcards=None):
    return expand("results/tasks/{task}/frontier/{law}.csv", task=list(TASKS), law=LAWS)


def grid_cells_table(rule):
    """Every checkpoint with its origin (trained, imported or held out), for the checkpoint-grid figure."""
    e = settings_for(rule)["extrapolation"]
    return checkpoint_origins(
        checkpoint_sizes(rule), CELLS, e["checkpoints"], e["min_tokens_per_param"]
    )


def posttrain_checkpoint(wildcards):
    """The base checkpoint a post-training job fine-tunes (trained cell or local imported dir)."""
    return checkpoint_dir(wildcards)


def posttrain_evals(wildcards):
    """Each post-trained checkpoint's evaluation on the job's task, named by checkpoint."""
    w = wildcards
    return named(
        "eval",
        {
            cell: f"results/posttrain/{w.mode}/eval/{w.task}/{cell}.parquet"
            for cell in CHECKPOINTS
        },
    )


def posttrain_frontiers(wildcards=None):
    """The frontier tables of the base models and of each post-training mode, named by variant."""
    out = {
        "base": expand(
            "results/tasks/{task}/frontier/{law}.csv", task=POSTTRAIN_TASKS, law=LAWS
        )
    }
    for mode in POSTTRAIN_MODES:
        out[mode] = expand(
            "results/posttrain/{mode}/tasks/{task}/frontier/{law}.csv",
            mode=mode,
            task=POSTTRAIN_TASKS,
            law=LAWS,
        )
    return named("frontiers", out)


def validation_c_train():
    """The validate stage's training budget: configured, else the grid's largest isoFLOP level."""
    c_train = settings_for("validation_plan")["validation"]["c_train"]
    if c_train is None and LEVELS:
        c_train = max(LEVELS)
    return c_train


def validation_c_inf():
    """The validate stage's inference budget: configured, else the plots' in-suite one."""
    s = settings_for("validation_plan")
    return s["validation"]["c_inf"] or s["plots"]["c_inf"]


def validation_cells(wildcards):
    """The cells the validation plan chose (read once the validation_plan checkpoint has run)."""
    from t2scaling.validate import plan_cell_names, read_plan

    return plan_cell_names(read_plan(checkpoints.validation_plan.get().output[0]))


def validation_evals(wildcards):
    """Each validation cell's evaluation on each task, named by (task, cell)."""
    cells = validation_cells(wildcards)
    return named(
        "eval",
        {
            (task, cell): f"results/eval/{task}/{cell}.parquet"
            for task in TASKS
            for cell in cells
        },
    )


def lawbench_data():
    """The data files `snakemake lawbench` reads: shipped ones (data/public) and the user's (lawbench.data_dir)."""
    files = constant(REPO / "t2scaling" / "lawbench.py", "DATASET_FILES")
    bench = config["lawbench"]
    names = bench["datasets"] or [
        n
        for n, (f, shipped) in files.items()
        if shipped or (bench["data_dir"] and (Path(bench["data_dir"]) / f).is_file())
    ]
    roots = {True: REPO / "data" / "public", False: Path(bench["data_dir"] or ".")}
    return sorted({str(roots[files[n][1]] / files[n][0]) for n in names})


def all_outputs():
    """The default target: everything but the data-dependent validate stage."""
    out = all_frontiers()
    out += expand("results/macro/frontier/{law}.csv", law=LAWS)
    out += expand(
        "results/tasks/{task}/plots/{figure}.png",
        task=list(TASKS),
        figure=[f"fit_{law}" for law in LAWS] + ["frontier", "isoflops"],
    )
    out += ["results/macro/plots/frontier.png", "results/macro/plots/isoflops.png"]
    out += ["results/plots/checkpoint_grid.png", "results/tables/parameters.csv"]
    if LEVELS:
        out += ["results/tables/table1.csv", "results/tables/task_grades.csv"]
    if CELLS:
        out += ["results/pretrain/chinchilla.json"]
    if EXTRAPOLATE:
        out += ["results/extrapolation/summary.csv"]
    if POSTTRAIN_MODES:
        out += ["results/posttrain/comparison.csv"]
    return out


# On a cluster, only these rules are submitted as jobs: they train, fine-tune, evaluate or score checkpoints, or
# build the corpus. Every other rule (tasks, collection, fits, frontiers, plots, tables, extrapolation,
# validation) takes seconds and runs on the submit host instead of one sbatch each (88 submissions for the smoke
# config). tests/test_profiles.py checks that the two lists cover every rule.
CLUSTER_RULES = [
    "train",
    "evaluate",
    "posttrain",
    "posttrain_evaluate",
    "val_loss",
    "corpus",
    "world",
]


localrules:
    all,
    task_table,
    task_train_table,
    collect,
    fit,
    pretrain_losses,
    pretrain_fit,
    frontier,
    macro_frontier,
    plot_fit,
    plot_frontier,
    plot_macro_frontier,
    plot_isoflops,
    plot_macro_isoflops,
    plot_grid,
    table1,
    parameter_table,
    task_grades,
    extrapolate,
    extrapolation_summary,
    lawbench,
    posttrain_collect,
    posttrain_fit,
    posttrain_frontier,
    posttrain_compare,
    validation_plan,
    validation_table,
    validate,
