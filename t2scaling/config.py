"""Experiment config checks: every problem in a config reported at once, before any job runs.

The JSON schema (t2scaling/config.schema.yaml, shipped inside the package) is the one place every key, type,
range and default is written; `config_problems` adds the cross-field checks a schema cannot express (a width
the head size does not divide, an empty grid, a batch the GPUs cannot split, a task that needs local files, an
imported table for an unknown task). `load_config` reads a config file the way the workflow does, refusing
duplicate keys; `coerce_numbers` turns YAML 1.1's numeric strings (`3e12`) into numbers where the schema wants
one; `schema_default` gives the CLI its defaults.
"""

import copy
import difflib
import functools
import importlib.resources
import math
import re
from pathlib import Path

import jsonschema
import yaml

from t2scaling import flops

SCHEMA_NAME = "config.schema.yaml"
SCHEMA_PATH = importlib.resources.files("t2scaling") / SCHEMA_NAME
SYNTHETIC_KINDS = ("knowledge", "arithmetic", "analogy", "spatial")


@functools.lru_cache(maxsize=None)
def _packaged_schema():
    return yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def load_schema(path=None):
    """The config schema: the packaged one (a fresh copy each call), or the YAML file at `path`."""
    if path is None:
        return copy.deepcopy(_packaged_schema())
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _property(schema, key):
    """The schema of the dotted config key `key` ("training.lr"), through nested objects."""
    sub = schema
    for part in key.split("."):
        properties = sub.get("properties", {})
        if part not in properties:
            raise KeyError(f"{key!r} is not a config key of {SCHEMA_NAME}")
        sub = properties[part]
    return sub


def schema_default(key):
    """The schema's default of the dotted config key `key` (e.g. "fits.restarts"): the CLI's defaults read it,
    so a default is written once, in the schema."""
    schema = _packaged_schema()
    prop = _property(schema, key)
    if "default" not in prop:
        raise KeyError(f"config key {key!r} has no default in {SCHEMA_NAME}")
    return coerce_numbers(copy.deepcopy(prop["default"]), prop, schema)


# ------------------------------------------------------------------------------------- reading YAML

# YAML 1.2's float syntax; YAML 1.1 (PyYAML) needs a dot and a signed exponent, so it reads 3e12 as a string.
_NUMBER = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


def _resolve_ref(sub, root):
    while isinstance(sub, dict) and "$ref" in sub:
        ref = sub["$ref"]
        if not ref.startswith("#/"):
            break
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        sub = {**{k: v for k, v in sub.items() if k != "$ref"}, **target}
    return sub


def _types(sub, root):
    """The JSON types a (sub)schema admits, through $ref and oneOf/anyOf branches."""
    sub = _resolve_ref(sub, root)
    kinds = sub.get("type", [])
    kinds = {kinds} if isinstance(kinds, str) else set(kinds)
    for branch in sub.get("oneOf", []) + sub.get("anyOf", []):
        kinds |= _types(branch, root)
    return kinds


def coerce_numbers(config, schema=None, root=None):
    """Numbers written as YAML 1.1 reads them (`3e12`, `1e-4` become strings) turned back into numbers wherever
    the schema wants a number or an integer (an integer-only key gets an int when the value is whole); a
    string where the schema wants a string is left alone. Works in place through nested objects and lists
    and returns the config."""
    if schema is None:
        root = schema = _packaged_schema()
    root = schema if root is None else root
    sub = _resolve_ref(schema, root)
    kinds = _types(sub, root)
    if isinstance(config, str) and kinds & {"number", "integer"} and "string" not in kinds \
            and _NUMBER.fullmatch(config.strip()):
        config = float(config.strip())
    if isinstance(config, float) and "integer" in kinds and "number" not in kinds and config.is_integer():
        config = int(config)
    branches = [sub] + [_resolve_ref(b, root) for b in sub.get("oneOf", []) + sub.get("anyOf", [])]
    if isinstance(config, dict):
        for branch in branches:
            if "properties" not in branch and not isinstance(branch.get("additionalProperties"), dict):
                continue
            properties = branch.get("properties", {})
            extra = branch.get("additionalProperties")
            for key in config:
                if key in properties:
                    config[key] = coerce_numbers(config[key], properties[key], root)
                elif isinstance(extra, dict):
                    config[key] = coerce_numbers(config[key], extra, root)
            break
    elif isinstance(config, list):
        items = next((b["items"] for b in branches if isinstance(b.get("items"), dict)), None)
        if items is not None:
            config[:] = [coerce_numbers(value, items, root) for value in config]
    return config


def duplicate_keys(path):
    """One message per key written twice in the same mapping of the YAML (or JSON) file at `path`: PyYAML and
    Snakemake keep the last silently (a duplicated task silently changes kind)."""
    with open(path, encoding="utf-8") as fh:
        root = yaml.compose(fh, Loader=yaml.SafeLoader)
    out = []

    def walk(node, where):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node.value)
                label = f"{where}[{key!r}]"
                if key in seen:
                    out.append(f"{path}, line {key_node.start_mark.line + 1}: key {label} is written twice (first on "
                               f"line {seen[key] + 1}) and YAML keeps only the last; delete or merge one of them")
                else:
                    seen[key] = key_node.start_mark.line
                walk(value_node, label)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{where}[{i}]")

    if root is not None:
        walk(root, "config")
    return out


def load_config(path):
    """A config file as a dict, as the workflow reads it: duplicate keys refused (ValueError naming each), and
    YAML 1.1's numeric strings turned into numbers where the schema wants one. Defaults are not injected."""
    problems = duplicate_keys(path)
    if problems:
        raise ValueError("\n".join(problems))
    with open(path, encoding="utf-8") as fh:
        config = yaml.safe_load(fh) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a config is a YAML mapping of keys at the top level, not a {type(config).__name__}")
    return coerce_numbers(config)


def _where(error):
    return "config" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in error.absolute_path)


def schema_problems(config, schema=None):
    """One message per schema violation, each naming the key."""
    validator = jsonschema.Draft202012Validator(schema or load_schema())
    out = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        if error.validator == "additionalProperties":
            out.append(f"{_where(error)}: {error.message}; {_spelling_hint(error)}")
        else:
            out.append(f"{_where(error)}: {error.message}")
    return out


def _spelling_hint(error):
    """For unknown keys: the closest allowed key at that level of the schema, or the allowed keys."""
    allowed = sorted(error.schema.get("properties", {}))
    unknown = [key for key in error.instance if key not in allowed]
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        if close:
            hints.append(f"did you mean {close[0]!r} instead of {key!r}?")
    if len(hints) == len(unknown):
        return " ".join(hints)
    return " ".join(hints + [f"the keys allowed here are {', '.join(allowed) or 'none'} ({SCHEMA_NAME})"])


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
    elif not out:
        out += _window_problems(config)
    out += _batch_problems(config) + _seq_len_problems(config)
    from t2scaling.memory import gpu_memory_problem

    out += [p for p in [gpu_memory_problem(config)] if p]
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


def _window_problems(config):
    """isoFLOP levels x shapes of which no cell falls inside grid.tokens_per_param (the grid would plan every
    job and fail only at collect)."""
    from t2scaling.flops import whole_steps
    from t2scaling.grid import counts_for, grid_cells, tokens_per_step

    grid = config["grid"]
    if not (grid["isoflops"] and grid["shapes"]) or any(cell.isoflop > 0 for cell in grid_cells(config)):
        return []
    step = tokens_per_step(config)
    ratios = []
    for shape in grid["shapes"]:
        n = counts_for(config, shape["width"], shape["depth"])["N"]
        ratios += [whole_steps(flops.tokens_at(c, n), step) / n for c in grid["isoflops"]]
    lo, hi = grid["tokens_per_param"]

    def outward(x, up):  # 3 significant digits, rounded away from the span so the named range holds it
        scale = 10.0 ** (math.floor(math.log10(x)) - 2)
        return f"{(math.ceil if up else math.floor)(x / scale) * scale:.3g}"

    return [f"config['grid']['tokens_per_param']: no cell of grid.isoflops x grid.shapes has D/N inside "
            f"[{lo:g}, {hi:g}]; its cells span D/N {outward(min(ratios), False)} to {outward(max(ratios), True)}, "
            "so widen grid.tokens_per_param to overlap that span, or change grid.isoflops or grid.shapes"]


def _batch_problems(config):
    t = config["training"]
    if t["gpus"] > 1 and t["batch_size"] % t["gpus"]:
        below, above = t["batch_size"] // t["gpus"] * t["gpus"], -(-t["batch_size"] // t["gpus"]) * t["gpus"]
        return [f"config['training']['batch_size']: {t['batch_size']} sequences per step do not split evenly over "
                f"training.gpus = {t['gpus']} DDP processes; make batch_size a multiple of gpus (e.g. "
                f"{below or above} or {above}) or change training.gpus"]
    per_device, micro = t["batch_size"] // max(1, t["gpus"]), t["micro_batch_size"]
    if isinstance(micro, int) and per_device % micro:
        divisors = [m for m in range(1, per_device + 1) if per_device % m == 0]
        return [f"config['training']['micro_batch_size']: {micro} does not divide the {per_device} sequences each "
                f"device takes per step (batch_size / gpus); pick a divisor such as "
                f"{max(m for m in divisors if m <= micro)}, or null for the whole batch"]
    return []


# Bytes of one document of the embedded world, at most: a document joins at most 6 passages
# (world.PASSAGES_PER_DOCUMENT) of a few short sentences, the longest passage about 0.25 KB, so under 1.5 KB.
WORLD_DOCUMENT_MAX_BYTES = 2048


def _seq_len_problems(config):
    """A context window (seq_len + 1 tokens: seq_len inputs and the next-token targets) that the validation
    corpus cannot fill, judged before any job from config values alone.

    Two bounds: the validation loss scores the first evaluation.val_tokens tokens of the val corpus; and the
    world's val corpus is max(1, round(n_documents * val_fraction)) documents (write_world), each at most
    WORLD_DOCUMENT_MAX_BYTES bytes, and a byte-level BPE token covers at least one byte, so it holds at most
    documents * (WORLD_DOCUMENT_MAX_BYTES + 1) tokens (one eos per document). An upper bound: a config it
    rejects cannot work; a file or hub corpus is only known once tokenized (train.py then names the problem).
    """
    window = config["model"]["seq_len"] + 1
    out = []
    val_tokens = config["evaluation"]["val_tokens"]
    if window > val_tokens:
        out.append(f"config['model']['seq_len']: a context window is seq_len + 1 = {window} tokens but "
                   f"evaluation.val_tokens = {val_tokens}, so the validation loss would never score a full window; "
                   f"raise evaluation.val_tokens to at least {window} or lower model.seq_len")
    if config["corpus"]["val"] == "world":
        from t2scaling.deps import keyword_defaults

        # read, not imported: the cheap stages that import this module must not depend on world.py's code
        defaults = keyword_defaults(Path(__file__).with_name("world.py"), "write_world")
        options = {**defaults, **config["world"]["options"]}
        n, fraction = options["n_documents"], options["val_fraction"]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (n, fraction))
        documents = max(1, round(n * fraction)) if numbers else None
        most = documents * (WORLD_DOCUMENT_MAX_BYTES + 1) if numbers else math.inf
        if window > most:
            out.append(f"config['model']['seq_len']: a context window is seq_len + 1 = {window} tokens but the "
                       f"world's val corpus has {documents} documents, at most {most} tokens; lower model.seq_len "
                       "below that or raise world.options.n_documents (or val_fraction)")
    return out


def config_problems(config, schema=None):
    """All problems of a raw config: schema violations first; cross-field checks only once the schema passes.

    Judged as `load_config` would hand it on: YAML 1.1's numeric strings (`3e12`) count as numbers where the
    schema wants one (a config parsed elsewhere, e.g. by Snakemake, gets the same with `coerce_numbers`).
    """
    schema = schema or load_schema()
    config = coerce_numbers(copy.deepcopy(config), schema)
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
        k_max = flops.samples_at(max(budgets), n_min) if n_min else 1.0
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

