"""Experiment config checks: every problem in a config reported at once, before any job runs.

The JSON schema (schemas/config.schema.yaml) catches types, unknown keys and ranges; `config_problems` adds
the cross-field checks a schema cannot express (a width the head size does not divide, an empty grid, a task
that needs local files, an imported table for an unknown task).
"""

import copy
import math
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"
SYNTHETIC_KINDS = ("knowledge", "arithmetic", "analogy", "spatial")


def load_schema(path=SCHEMA_PATH):
    with open(path) as fh:
        return yaml.safe_load(fh)


def _where(error):
    return "config" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in error.absolute_path)


def schema_problems(config, schema=None):
    """One message per schema violation, each naming the key."""
    validator = jsonschema.Draft202012Validator(schema or load_schema())
    out = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        if error.validator == "additionalProperties":
            out.append(f"{_where(error)}: {error.message} (check the spelling against schemas/config.schema.yaml)")
        else:
            out.append(f"{_where(error)}: {error.message}")
    return out


def semantic_problems(config):
    """Cross-field problems of a config that already passed the schema (defaults injected)."""
    from t2scaling.flops import n_heads

    out = []
    grid, model = config["grid"], config["model"]
    for i, shape in enumerate(grid["shapes"] + grid["extra_cells"]):
        key = f"grid['shapes'][{i}]" if i < len(grid["shapes"]) else f"grid['extra_cells'][{i - len(grid['shapes'])}]"
        try:
            n_heads(shape["width"], model["head_dim"])
        except ValueError as err:
            out.append(f"config[{key}]: {err} (model.head_dim = {model['head_dim']})")
    lo, hi = grid["tokens_per_param"]
    if lo > hi:
        out.append(f"config['grid']['tokens_per_param']: min {lo} > max {hi}; give [min, max]")
    if not (grid["isoflops"] and grid["shapes"]) and not grid["extra_cells"] and not config["imported_checkpoints"] \
            and not config["imported_observations"]:
        out.append("config['grid']: no cells, checkpoints or observations; give grid.isoflops and grid.shapes, "
                   "grid.extra_cells, imported_checkpoints or imported_observations")
    f = config["frontier"]
    if f["c_train_min"] >= f["c_train_max"]:
        out.append(f"config['frontier']: c_train_min {f['c_train_min']:g} must be below c_train_max {f['c_train_max']:g}")
    for name in config["imported_observations"]:
        if name not in config["tasks"]:
            out.append(f"config['imported_observations'][{name!r}]: no task of that name in config['tasks']")
    names = [c["name"] for c in config["imported_checkpoints"]]
    for name in {n for n in names if names.count(n) > 1}:
        out.append(f"config['imported_checkpoints']: name {name!r} is used twice; names must be unique")
    for i, name in enumerate(config["posttrain"]["tasks"]):
        if name not in config["tasks"]:
            out.append(f"config['posttrain']['tasks'][{i}]: no task {name!r} in config['tasks']")
    held = config["extrapolation"]["checkpoints"]
    if held:
        from t2scaling.grid import grid_cells

        known = [c.name for c in grid_cells(config)] + names
        for i, name in enumerate(held):
            if name not in known:
                out.append(f"config['extrapolation']['checkpoints'][{i}]: no checkpoint {name!r}; the grid and "
                           f"imported checkpoints are {', '.join(known) or 'none'}")
    k_grid = config["fits"]["k_grid"]
    if k_grid is not None and sorted(set(k_grid)) != list(k_grid):
        out.append("config['fits']['k_grid']: must be strictly increasing (e.g. [1, 2, 4, ...])")
    return out


def config_problems(config, schema=None):
    """All problems of a raw config: schema violations first; cross-field checks only once the schema passes."""
    problems = schema_problems(config, schema)
    if problems:
        return problems
    filled = with_defaults(copy.deepcopy(config), schema)
    problems = semantic_problems(filled)
    if not problems:
        try:
            resolve(filled)
        except ValueError as err:
            problems.append(str(err))
    return problems


def _model_sizes(config):
    """Params of every model the config trains or imports (grid cells, extra cells, imported checkpoints)."""
    from t2scaling.grid import grid_cells

    return [cell.N for cell in grid_cells(config)] + [float(c["N"]) for c in config["imported_checkpoints"]]


def _budget_flops(value, n_max, key):
    if not isinstance(value, dict):
        return float(value)
    if n_max is None:
        raise ValueError(f"config[{key}]: {value} is relative to the grid's largest model, but the config trains "
                         "and imports no model; give the budget in FLOPs per served token")
    return float(value["forward_passes_of_largest"]) * 2.0 * n_max


def resolve(config):
    """Resolve the config's relative settings in place (defaults already injected) and return it.

    Inference budgets given as {forward_passes_of_largest: x} become x * 2 * N_max FLOPs per served token
    (N_max: the largest grid or imported model), so every rule sees plain FLOPs. A null fits.k_grid becomes
    powers of 2 from 1 to the largest k = C_inf / (2 N_min) that any configured budget gives the smallest
    model (at least 1024): the fits then cover every k that the frontier, Table 1 and validation evaluate.
    """
    sizes = _model_sizes(config)
    n_max, n_min = (max(sizes), min(sizes)) if sizes else (None, None)
    f, v = config["frontier"], config["validation"]
    f["c_inf"] = [_budget_flops(c, n_max, f"'frontier']['c_inf'][{i}") for i, c in enumerate(f["c_inf"])]
    config["plots"]["c_inf"] = _budget_flops(config["plots"]["c_inf"], n_max, "'plots']['c_inf'")
    if v["c_inf"] is not None:
        v["c_inf"] = _budget_flops(v["c_inf"], n_max, "'validation']['c_inf'")
    if config["fits"]["k_grid"] is None:
        budgets = f["c_inf"] + [config["plots"]["c_inf"]] + ([v["c_inf"]] if v["c_inf"] else [])
        k_max = max(budgets) / (2.0 * n_min) if n_min else 1.0
        top = max(10, math.ceil(math.log2(max(k_max, 1.0)) - 1e-9))
        config["fits"]["k_grid"] = [float(2**j) for j in range(top + 1)]
    return config


def with_defaults(config, schema=None):
    """Inject schema defaults in place (recursively through objects) and return the config."""
    schema = schema or load_schema()

    def fill(instance, sub):
        if not isinstance(instance, dict) or sub.get("type") != "object":
            return
        for key, prop in sub.get("properties", {}).items():
            if key not in instance and "default" in prop:
                instance[key] = copy.deepcopy(prop["default"])
            if key in instance:
                fill(instance[key], prop)
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict):
            for key in set(instance) - set(sub.get("properties", {})):
                fill(instance[key], extra)

    fill(config, schema)
    return config

