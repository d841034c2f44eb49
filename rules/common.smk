import re
import sys
from pathlib import Path

from snakemake.utils import validate

REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO))

from t2scaling.config import config_problems, resolve, SYNTHETIC_KINDS  # noqa: E402
from t2scaling.grid import counts_for, grid_cells, log_spaced, parse_cell  # noqa: E402

_problems = config_problems(config)
if _problems:
    raise ValueError(
        "invalid config ({} problem{}):\n  - {}".format(
            len(_problems), "s" * (len(_problems) > 1), "\n  - ".join(_problems)
        )
    )
validate(config, schema="../schemas/config.schema.yaml")
# Relative inference budgets -> FLOPs, the default fit k grid -> powers of 2 covering them: once, here.
resolve(config)


##### grid, tasks, imported checkpoints #####

CELLS = {cell.name: cell for cell in grid_cells(config)}
IMPORTED = {c["name"]: c for c in config["imported_checkpoints"]}
CHECKPOINTS = list(CELLS) + list(IMPORTED)
TASKS = config["tasks"]
LAWS = config["fits"]["laws"]
USES_WORLD = config["corpus"]["train"] == "world" or any(
    t["kind"] in SYNTHETIC_KINDS for t in TASKS.values()
)
# The grid's isoFLOP levels, each with its cells: the isoFLOP profiles, Table 1 and the frontiers' budgets.
LEVELS = {}
for _cell in CELLS.values():
    if _cell.isoflop > 0:
        LEVELS.setdefault(_cell.isoflop, []).append(_cell.name)
LEVELS = dict(sorted(LEVELS.items()))
EXTRAPOLATION = config["extrapolation"]
EXTRAPOLATE = EXTRAPOLATION["min_tokens_per_param"] is not None or bool(
    EXTRAPOLATION["checkpoints"]
)
POSTTRAIN_MODES = config["posttrain"]["modes"]
POSTTRAIN_TASKS = config["posttrain"]["tasks"] or list(TASKS)


wildcard_constraints:
    task="|".join(map(re.escape, TASKS)),
    # grid and imported checkpoints, and the cells the validate stage derives from the frontier
    cell="|".join([*map(re.escape, CHECKPOINTS), r"w\d+-l\d+-d\d+"]),
    law="|".join(LAWS),
    mode="ft|sft",


# Library modules each stage imports: declared as inputs so that editing one re-runs exactly the rules
# that use it (and what is downstream), never training when only fitting code changed.
LIBRARY = {
    "world": ["world.py"],
    "data": ["data.py"],
    "tasks": ["tasks.py"],
    "train": ["train.py", "model.py", "flops.py", "data.py"],
    "evaluate": ["evaluate.py", "tasks.py"],
    "collect": ["observations.py"],
    "fit": ["fit.py", "observations.py", "laws.py", "passk.py", "fitresult.py"],
    "frontier": ["frontier.py", "laws.py", "passk.py", "fitresult.py"],
    "plots": [
        "plots.py",
        "tables.py",
        "units.py",
        "frontier.py",
        "observations.py",
        "passk.py",
        "laws.py",
        "fitresult.py",
        "atomic.py",
    ],
    "tables": ["tables.py", "units.py", "observations.py", "passk.py", "atomic.py"],
    "extrapolate": [
        "extrapolate.py",
        "fit.py",
        "observations.py",
        "laws.py",
        "passk.py",
    ],
    "posttrain": ["posttrain.py", "tasks.py"],
    "validate": [
        "validate.py",
        "frontier.py",
        "grid.py",
        "flops.py",
        "passk.py",
        "observations.py",
        "fitresult.py",
        "laws.py",
        "units.py",
        "atomic.py",
    ],
}


def library(stage):
    return [str(REPO / "t2scaling" / name) for name in LIBRARY[stage]]


def settings(value):
    """A config section with keys in sorted order: reordering a YAML file must not look like a param change."""
    if isinstance(value, dict):
        return {key: settings(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [settings(item) for item in value]
    return value


##### input functions #####


def world_task_file(wildcards):
    kind = TASKS[wildcards.task]["kind"]
    return [f"results/world/tasks/{kind}.jsonl"] if kind in SYNTHETIC_KINDS else []


def corpus_inputs(wildcards):
    c = config["corpus"]
    return (
        ["results/world/corpus/train.jsonl", "results/world/corpus/val.jsonl"]
        if "world" in (c["train"], c["val"])
        else []
    )


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
    return expand(
        "results/eval/{task}/{cell}.parquet", task=wildcards.task, cell=CHECKPOINTS
    )


def task_imports(wildcards):
    return config["imported_observations"].get(wildcards.task, [])


def trained_checkpoints(wildcards):
    return expand("results/checkpoints/{cell}", cell=list(CELLS))


def task_fits(wildcards):
    return expand(
        "results/tasks/{task}/fits/{law}.json", task=list(TASKS), law=wildcards.law
    )


def cell_params(wildcards):
    """Shape and tokens of a grid cell, or of a cell the validate stage derived (named w<W>-l<L>-d<D>)."""
    width, depth, tokens = parse_cell(wildcards.cell)
    return {"cell_id": wildcards.cell, "width": width, "depth": depth, "tokens": tokens}


def checkpoint_sizes():
    """Static N and D of every checkpoint (grid cells from the config, imported ones as declared)."""
    key = "N" if config["fits"]["param_count"] == "total" else "N_non_embedding"
    out = {
        name: {"N": counts_for(config, c.width, c.depth)[key], "D": c.tokens}
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


def fit_options(wildcards, law=None):
    law = law or wildcards.law
    options = {arg: config["fits"][key] for key, arg in FIT_OPTIONS[law].items()}
    return settings({"law": law, **options})


def c_train_grid():
    """Frontier budgets: the log-spaced range plus the grid's isoFLOP levels (Table 1 reads those rows)."""
    f = config["frontier"]
    return sorted(
        set(log_spaced(f["c_train_min"], f["c_train_max"], f["steps"])) | set(LEVELS)
    )


def frontier_c_inf():
    """Inference budgets of the frontier tables: the configured ones plus the in-suite one of the plots."""
    return sorted(set(config["frontier"]["c_inf"]) | {config["plots"]["c_inf"]})


def isoflop_levels():
    return [[c_train, cells] for c_train, cells in LEVELS.items()]


def task_fit_files(wildcards):
    return {law: f"results/tasks/{wildcards.task}/fits/{law}.json" for law in LAWS}


def all_fit_files(wildcards=None):
    return expand("results/tasks/{task}/fits/{law}.json", task=list(TASKS), law=LAWS)


def all_observations(wildcards=None):
    return expand("results/tasks/{task}/observations.parquet", task=list(TASKS))


def all_frontiers(wildcards=None):
    return expand("results/tasks/{task}/frontier/{law}.csv", task=list(TASKS), law=LAWS)


def grid_cells_table():
    """Every checkpoint with its origin, for the checkpoint-grid figure."""
    held = set(EXTRAPOLATION["checkpoints"])
    tpp = EXTRAPOLATION["min_tokens_per_param"]
    rows = []
    for name, size in checkpoint_sizes().items():
        origin = "trained" if name in CELLS else "imported"
        if EXTRAPOLATE and (
            name in held or (tpp is not None and size["D"] / size["N"] >= tpp)
        ):
            origin = "held_out"
        rows.append({"name": name, "N": size["N"], "D": size["D"], "origin": origin})
    return rows


def posttrain_checkpoint(wildcards):
    """The base checkpoint a post-training job fine-tunes (trained cell or local imported dir)."""
    return checkpoint_dir(wildcards)


def posttrain_evals(wildcards):
    return expand(
        "results/posttrain/{mode}/eval/{task}/{cell}.parquet",
        mode=wildcards.mode,
        task=wildcards.task,
        cell=CHECKPOINTS,
    )


def posttrain_frontiers(wildcards=None):
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
    return out


def validation_c_train():
    """The validate stage's training budget: configured, else the grid's largest isoFLOP level."""
    c_train = config["validation"]["c_train"]
    if c_train is None and LEVELS:
        c_train = max(LEVELS)
    return c_train


def validation_cells(wildcards):
    """The cells the validation plan chose (read once the validation_plan checkpoint has run)."""
    from t2scaling.validate import plan_cell_names, read_plan

    return plan_cell_names(read_plan(checkpoints.validation_plan.get().output[0]))


def validation_evals(wildcards):
    return expand(
        "results/eval/{task}/{cell}.parquet",
        task=list(TASKS),
        cell=validation_cells(wildcards),
    )


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
        out += ["results/tables/table1.csv"]
    if CELLS:
        out += ["results/pretrain/chinchilla.json"]
    if EXTRAPOLATE:
        out += ["results/extrapolation/summary.csv"]
    if POSTTRAIN_MODES:
        out += ["results/posttrain/comparison.csv"]
    return out
