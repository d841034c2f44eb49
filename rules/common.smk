import re
import sys
from pathlib import Path

from snakemake.utils import validate

REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO))

from t2scaling.config import config_problems, SYNTHETIC_KINDS  # noqa: E402
from t2scaling.grid import counts_for, grid_cells, log_spaced  # noqa: E402

_problems = config_problems(config)
if _problems:
    raise ValueError(
        "invalid config ({} problem{}):\n  - {}".format(
            len(_problems), "s" * (len(_problems) > 1), "\n  - ".join(_problems)
        )
    )
validate(config, schema="../schemas/config.schema.yaml")


##### grid, tasks, imported checkpoints #####

CELLS = {cell.name: cell for cell in grid_cells(config)}
IMPORTED = {c["name"]: c for c in config["imported_checkpoints"]}
CHECKPOINTS = list(CELLS) + list(IMPORTED)
TASKS = config["tasks"]
LAWS = config["fits"]["laws"]
USES_WORLD = config["corpus"]["train"] == "world" or any(
    t["kind"] in SYNTHETIC_KINDS for t in TASKS.values()
)


wildcard_constraints:
    task="|".join(map(re.escape, TASKS)),
    cell="|".join(map(re.escape, CHECKPOINTS)) or "NONE",
    law="|".join(LAWS),


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
    "plots": ["plots.py", "units.py"],
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
    """A trained cell's checkpoint dir, or an imported one (a local dir is tracked; a hub id is not a file)."""
    if wildcards.cell in CELLS:
        return f"results/checkpoints/{wildcards.cell}"
    path = IMPORTED[wildcards.cell]["path"]
    return [path] if Path(path).exists() else []


def checkpoint_ref(wildcards):
    """What the evaluation loads: the path or hub id of the checkpoint."""
    if wildcards.cell in CELLS:
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
    cell = CELLS[wildcards.cell]
    return {
        "cell_id": cell.name,
        "width": cell.width,
        "depth": cell.depth,
        "tokens": cell.tokens,
    }


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
    "chinchilla": {"bootstrap": "bootstrap", "allow_unconverged": "allow_unconverged"},
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
    },
}


def fit_options(wildcards, law=None):
    law = law or wildcards.law
    options = {arg: config["fits"][key] for key, arg in FIT_OPTIONS[law].items()}
    return settings({"law": law, **options})


def c_train_grid():
    f = config["frontier"]
    return log_spaced(f["c_train_min"], f["c_train_max"], f["steps"])


def all_outputs():
    out = expand("results/tasks/{task}/frontier/{law}.csv", task=list(TASKS), law=LAWS)
    out += expand("results/macro/frontier/{law}.csv", law=LAWS)
    out += expand(
        "results/tasks/{task}/plots/fit_{law}.png", task=list(TASKS), law=LAWS
    )
    out += expand("results/tasks/{task}/plots/frontier.png", task=list(TASKS))
    out += ["results/macro/plots/frontier.png"]
    if CELLS:
        out += ["results/pretrain/chinchilla.json"]
    return out
