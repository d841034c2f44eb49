"""Config validation: every problem named by its key, before any job runs."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from t2scaling.config import (coerce_numbers, config_problems, duplicate_keys, load_config, load_schema, resolve,
                              schema_default, with_defaults)
from t2scaling.grid import bracketing_problems, design_problems, grid_cells, parse_cell

REPO = Path(__file__).resolve().parents[1]


def smoke():
    return yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())


@pytest.mark.parametrize("path", ["config.yaml", "configs/smoke.yaml", "configs/paper.yaml"])
def test_shipped_configs_are_valid(path):
    assert config_problems(yaml.safe_load((REPO / path).read_text())) == []


BAD = [
    # (mutation, text the message must contain)
    (lambda c: c["training"].update(batchsize=8), "'batchsize' was unexpected"),
    (lambda c: c["grid"]["extra_cells"].append({"width": 32, "depth": 1, "tokens": 0}), "['extra_cells'][0]['tokens']"),
    (lambda c: c["fits"].update(k_grid=[0.5, 2, 4]), "config['fits']['k_grid'][0]"),
    (lambda c: c["tasks"].update(mystery={"kind": "trivia"}), "config['tasks']['mystery']['kind']"),
    (lambda c: c["fits"].update(laws=["chinchilla", "kaplan"]), "config['fits']['laws'][1]"),
    (lambda c: c["grid"]["shapes"].append({"width": 40, "depth": 1}), "width 40 is not a multiple of head_dim 16"),
    (lambda c: c["grid"].update(tokens_per_param=[100, 10]), "min 100 > max 10"),
    (lambda c: c["imported_observations"].update({"nope": ["x.csv"]}), "no task of that name"),
    (lambda c: c["training"].update(lr="fast"), "config['training']['lr']"),
    (lambda c: c["posttrain"].update(tasks=["knowledge", "trivia"]), "config['posttrain']['tasks'][1]: no task 'trivia'"),
    (lambda c: c["posttrain"].update(modes=["rlhf"]), "config['posttrain']['modes'][0]"),
    (lambda c: c["extrapolation"].update(checkpoints=["w16-l1-d1"]),
     "config['extrapolation']['checkpoints'][0]: no checkpoint 'w16-l1-d1'; the grid and imported checkpoints are w16"),
    (lambda c: c.update(validation={"c_train": -1}), "config['validation']['c_train']"),
]


@pytest.mark.parametrize("mutate,expected", BAD)
def test_each_mistake_is_named(mutate, expected):
    config = smoke()
    config.setdefault("imported_observations", {})
    config["grid"].setdefault("extra_cells", [])
    mutate(config)
    problems = config_problems(config)
    assert len(problems) == 1, problems
    assert expected in problems[0]


def test_all_problems_reported_at_once():
    config = smoke()
    config["training"]["batchsize"] = 8
    config["fits"]["k_grid"] = [0, 2]
    config["model"]["seq_len"] = "long"
    assert len(config_problems(config)) == 3


def test_defaults_injected_recursively():
    config = with_defaults({"tasks": {"t": {"kind": "knowledge"}}})
    assert config["training"]["lr"] == 0.003
    assert config["fits"]["k_grid"] is None  # derived by resolve() from the inference budgets
    assert config["world"]["questions"] == 1000


def test_relative_inference_budgets_resolve_to_flops_of_the_largest_model():
    config = with_defaults(smoke())
    config["frontier"]["c_inf"] = [{"forward_passes_of_largest": 1}, 2e9, {"forward_passes_of_largest": 70}]
    config["plots"]["c_inf"] = {"forward_passes_of_largest": 0.5}
    config["validation"]["c_inf"] = {"forward_passes_of_largest": 2}
    config["fits"]["k_grid"] = None
    sizes = [cell.N for cell in grid_cells(config)]
    resolve(config)
    n_max, n_min = max(sizes), min(sizes)
    assert config["frontier"]["c_inf"] == [2.0 * n_max, 2e9, 140.0 * n_max]
    assert config["plots"]["c_inf"] == n_max and config["validation"]["c_inf"] == 4.0 * n_max
    # The default k grid: powers of 2 up to the largest k any budget gives the smallest model (>= 1024).
    k_max = 2e9 / (2 * n_min)
    grid = config["fits"]["k_grid"]
    assert grid[0] == 1 and all(b == 2 * a for a, b in zip(grid, grid[1:]))
    assert grid[-1] >= k_max > grid[-2] and grid[-1] >= 1024


def test_relative_budget_without_any_model_is_named():
    config = smoke()
    config["grid"] = {}
    config["imported_observations"] = {"knowledge": ["obs.csv"]}
    config["plots"] = {"c_inf": {"forward_passes_of_largest": 1}}
    problems = config_problems(config)
    assert problems == ["config['plots']['c_inf']: {'forward_passes_of_largest': 1} is relative to the grid's "
                        "largest model, but the config trains and imports no model; give the budget in FLOPs "
                        "per served token"]
    config["plots"] = {"c_inf": {"forward_passes": 1}}
    assert "config['plots']['c_inf']" in config_problems(config)[0]


def test_grid_cells_are_whole_steps_inside_the_window():
    config = with_defaults(smoke())
    step = config["training"]["batch_size"] * config["model"]["seq_len"]
    cells = grid_cells(config)
    assert len(cells) == 9
    lo, hi = config["grid"]["tokens_per_param"]
    for cell in cells:
        assert cell.tokens % step == 0
        assert lo <= cell.tokens_per_param <= hi
        assert parse_cell(cell.name) == (cell.width, cell.depth, cell.tokens)


def test_bad_config_stops_snakemake_before_any_job(tmp_path):
    config = smoke()
    config["training"]["batchsize"] = 8
    config["fits"]["k_grid"] = [0, 2]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad), "--directory", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True,
    )
    assert run.returncode != 0
    assert "invalid config (2 problems)" in run.stderr + run.stdout
    assert "'batchsize' was unexpected" in run.stderr + run.stdout
    assert not (tmp_path / "results").exists()


def test_default_grid_can_identify_the_laws_and_a_thin_grid_is_told_why_not():
    config = with_defaults(yaml.safe_load((REPO / "config.yaml").read_text()))
    cells = grid_cells(config)
    assert design_problems([c.N for c in cells], [c.isoflop for c in cells]) == []
    thin = grid_cells(with_defaults(smoke()))  # 3 sizes over 2.3x at 3 levels
    problems = design_problems([c.N for c in thin], [c.isoflop for c in thin])
    assert len(problems) == 3
    assert problems[0].startswith("3 distinct model sizes; give at least 5")
    assert "span at least 10x" in problems[1] and "3 isoFLOP levels" in problems[2]


def test_measured_optimum_must_be_bracketed_at_the_top_two_levels():
    levels = {1e12: [(1e5, 3.0), (2e5, 2.9), (4e5, 3.1)],  # bracketed
              2e12: [(1e5, 3.0), (2e5, 2.8), (4e5, 2.7)],  # falls to the largest model: not bracketed
              5e11: [(1e5, 3.0), (2e5, 3.1)]}  # a lower level is not checked
    problems = bracketing_problems(levels)
    assert len(problems) == 1 and problems[0].startswith("isoFLOP level 2e+12 FLOPs: the lowest loss is at its "
                                                         "largest model (N = 4e+05, 3 cells)")
    assert "add shapes above it" in problems[0]
    levels[2e12] = [(1e5, 3.0), (2e5, 2.6), (4e5, 2.7)]
    assert bracketing_problems(levels) == []


# ------------------------------------------------------------------- numbers, duplicate keys, spelling (issue 12)

NUMBERS = """\
grid:
  isoflops: [1e10, 2e10, 4e10]
training: {lr: 1e-4, batch_size: 8}
evaluation: {val_tokens: 5e3}
fits: {restarts: 1e1, k_grid: [1, 4e0, 16]}
frontier: {c_train_min: 1e9, c_train_max: 1e20, c_inf: [2e9, {forward_passes_of_largest: 7e1}]}
posttrain: {lr: 2.5e-5, max_steps: 3}
validation: {c_train: 4e10, c_inf: 1e6}
tasks:
  knowledge: {kind: knowledge, limit: 1e2}
experiment: 3e12
"""


def smoke_with(text):
    config = smoke()
    for key, value in yaml.safe_load(text).items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
    return config


def test_numbers_written_3e12_are_numbers_where_the_schema_wants_one(tmp_path):
    raw = yaml.safe_load(NUMBERS)
    assert raw["grid"]["isoflops"] == ["1e10", "2e10", "4e10"]  # YAML 1.1: strings
    assert config_problems(smoke_with(NUMBERS)) == []
    path = tmp_path / "c.yaml"
    path.write_text(NUMBERS)
    config = load_config(path)
    assert config["grid"]["isoflops"] == [1e10, 2e10, 4e10]  # a nested list
    assert config["training"]["lr"] == 1e-4 and isinstance(config["training"]["lr"], float)
    assert config["evaluation"]["val_tokens"] == 5000 and isinstance(config["evaluation"]["val_tokens"], int)
    assert config["fits"]["restarts"] == 10 and isinstance(config["fits"]["restarts"], int)
    assert config["fits"]["k_grid"] == [1, 4.0, 16]
    assert config["frontier"]["c_inf"] == [2e9, {"forward_passes_of_largest": 70.0}]  # through oneOf and $ref
    assert config["posttrain"]["lr"] == 2.5e-5 and config["validation"]["c_inf"] == 1e6
    assert config["tasks"]["knowledge"]["limit"] == 100  # through additionalProperties
    assert config["experiment"] == "3e12"  # the schema wants a string: left alone
    assert coerce_numbers({"training": {"lr": "fast"}})["training"]["lr"] == "fast"  # still named by the schema


def test_a_number_the_schema_cannot_take_is_still_named():
    config = smoke_with("training: {batch_size: 8.5e0}\ngrid: {isoflops: [1e10, 'lots']}\n")
    problems = config_problems(config)
    assert len(problems) == 2
    assert "config['grid']['isoflops'][1]: 'lots'" in problems[0]
    assert problems[1].startswith("config['training']['batch_size']: 8.5 is not of type 'integer'")


def test_duplicate_keys_are_named_with_file_and_line(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("tasks:\n  knowledge: {kind: knowledge}\n  knowledge: {kind: spatial}\n"
                    "grid:\n  shapes:\n    - {width: 16, depth: 1, width: 32}\n")
    problems = duplicate_keys(path)
    assert problems == [
        f"{path}, line 3: key config['tasks']['knowledge'] is written twice (first on line 2) and YAML keeps only "
        "the last; delete or merge one of them",
        f"{path}, line 6: key config['grid']['shapes'][0]['width'] is written twice (first on line 6) and YAML keeps "
        "only the last; delete or merge one of them",
    ]
    with pytest.raises(ValueError, match="config\\['tasks'\\]\\['knowledge'\\] is written twice"):
        load_config(path)
    assert duplicate_keys(REPO / "configs" / "smoke.yaml") == []


@pytest.mark.parametrize("mutate,expected", [
    (lambda c: c["training"].update(batchsize=8), "did you mean 'batch_size' instead of 'batchsize'?"),
    (lambda c: c.update(trainig=c.pop("training")), "config: Additional properties are not allowed ('trainig' was "
                                                    "unexpected); did you mean 'training' instead of 'trainig'?"),
    (lambda c: c["fits"].update(restart=5), "did you mean 'restarts' instead of 'restart'?"),
    (lambda c: c["model"].update(flux=5), "the keys allowed here are ffn_multiple, head_dim, seq_len"),
])
def test_a_misspelled_key_gets_a_suggestion(mutate, expected):
    config = smoke()
    mutate(config)
    problems = config_problems(config)
    assert len(problems) == 1 and expected in problems[0], problems


def test_a_grid_with_no_cell_in_the_window_is_named_before_any_job():
    config = smoke()
    config["grid"]["tokens_per_param"] = [5000, 10000]
    problems = config_problems(config)
    assert len(problems) == 1, problems
    assert problems[0].startswith("config['grid']['tokens_per_param']: no cell of grid.isoflops x grid.shapes has "
                                  "D/N inside [5000, 10000]; its cells span D/N ")
    assert "widen grid.tokens_per_param" in problems[0]
    lo, hi = (float(x) for x in problems[0].split("span D/N ")[1].split(",")[0].split(" to "))
    config["grid"]["tokens_per_param"] = [lo, hi]  # the span it names holds every cell
    assert config_problems(config) == [] and len(grid_cells(with_defaults(config))) == 9


def test_a_batch_the_gpus_cannot_split_is_named():
    config = smoke()
    config["training"].update(gpus=3, batch_size=8)
    assert config_problems(config) == [
        "config['training']['batch_size']: 8 sequences per step do not split evenly over training.gpus = 3 DDP "
        "processes; make batch_size a multiple of gpus (e.g. 6 or 9) or change training.gpus"]
    config["training"].update(gpus=4)
    assert config_problems(config) == []


def test_a_paper_cell_that_cannot_fit_a_gpu_is_refused_naming_the_micro_batch_that_fits():
    """Issue 13: 256 x 2,048 tokens of the 902M model in one pass need ~1.9 TB; the config is refused before any
    job, naming training.micro_batch_size and the largest divisor that fits training.gpu_memory_gb."""
    config = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    assert config["training"]["micro_batch_size"] == "auto" and config_problems(config) == []
    config["training"]["micro_batch_size"] = None
    (problem,) = config_problems(config)
    assert problem.startswith("config['training']['micro_batch_size']: the largest model (width 1504, depth 30, "
                              "seq_len 2048) needs ~")
    assert problem.endswith("set training.micro_batch_size to 8 (the largest divisor of the 256 sequences per GPU "
                            "per step that fits) or to auto")
    config["training"].update(micro_batch_size=8)
    assert config_problems(config) == []
    config["training"].update(micro_batch_size=16)
    assert "set training.micro_batch_size to 8" in config_problems(config)[0]
    config["training"].update(micro_batch_size="auto", gpu_memory_gb=4)
    assert "even one sequence does not fit" in config_problems(config)[0]
    config["training"].update(micro_batch_size=7, gpu_memory_gb=80)
    assert config_problems(config) == [
        "config['training']['micro_batch_size']: 7 does not divide the 256 sequences each device takes per step "
        "(batch_size / gpus); pick a divisor such as 4, or null for the whole batch"]


def test_a_context_longer_than_the_validation_corpus_is_named():
    config = smoke()
    config["evaluation"]["val_tokens"] = 50
    problems = config_problems(config)
    assert len(problems) == 1 and problems[0].startswith(
        "config['model']['seq_len']: a context window is seq_len + 1 = 65 tokens but evaluation.val_tokens = 50")
    assert "raise evaluation.val_tokens to at least 65 or lower model.seq_len" in problems[0]
    config = smoke()
    config["world"]["options"] = {"n_documents": 40}  # 1 val document: at most 2049 tokens
    config["model"]["seq_len"] = 2048
    config["evaluation"]["val_tokens"] = 10**6
    config["grid"]["tokens_per_param"] = [1, 10**6]
    assert config_problems(config) == []  # a window of 2049 tokens: just possible
    config["model"]["seq_len"] = 2049
    assert config_problems(config) == [
        "config['model']['seq_len']: a context window is seq_len + 1 = 2050 tokens but the world's val corpus has 1 "
        "documents, at most 2049 tokens; lower model.seq_len below that or raise world.options.n_documents (or "
        "val_fraction)"]


def test_snakemake_reads_3e12_and_refuses_a_duplicate_key(tmp_path):
    text = (REPO / "configs" / "smoke.yaml").read_text()
    text = text.replace("isoflops: [1.0e+10, 2.0e+10, 4.0e+10]", "isoflops: [1e10, 2e10, 4e10]")
    text = text.replace("c_train_min: 1.0e+9", "c_train_min: 1e9")
    assert "1e10, 2e10" in text and "c_train_min: 1e9" in text
    numbers, dup = tmp_path / "numbers.yaml", tmp_path / "dup.yaml"
    numbers.write_text(text)
    dup.write_text(text.replace("  arithmetic: {kind: arithmetic}\n",
                                "  arithmetic: {kind: arithmetic}\n  knowledge: {kind: spatial}\n"))

    def dry_run(path):
        return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(path), "--directory",
                               str(tmp_path / path.stem)], cwd=REPO, capture_output=True, text=True)

    run = dry_run(numbers)
    assert run.returncode == 0, run.stderr[-3000:]
    run = dry_run(dup)
    assert run.returncode != 0
    assert "invalid config (1 problem)" in run.stderr + run.stdout
    line = dup.read_text().splitlines().index("  knowledge: {kind: spatial}") + 1
    assert f"{dup}, line {line}: key config['tasks']['knowledge'] is written twice" in run.stderr + run.stdout


# ------------------------------------------------------------------------------ CLI defaults = schema defaults

CLI_DEFAULTS = [
    # (module, required argv, argparse dest, schema key)
    ("fit", ["chinchilla", "t.csv"], "restarts", "fits.restarts"),
    ("fit", ["chinchilla", "t.csv"], "bootstrap", "fits.bootstrap"),
    ("fit", ["chinchilla", "t.csv"], "stage1", "fits.chinchilla_variant"),
    ("fit", ["chinchilla", "t.csv"], "seed", "seed"),
    ("extrapolate", ["t.csv", "--out", "o.csv"], "restarts", "fits.restarts"),
    ("extrapolate", ["t.csv", "--out", "o.csv"], "law", "extrapolation.laws"),
    ("extrapolate", ["t.csv", "--out", "o.csv"], "holdout", "extrapolation.checkpoints"),
    ("extrapolate", ["t.csv", "--out", "o.csv"], "variant", "fits.approach2_variant"),
    ("extrapolate", ["t.csv", "--out", "o.csv"], "chinchilla_variant", "fits.chinchilla_variant"),
    ("world", ["--out", "w"], "seed", "world.seed"),
    ("world", ["--out", "w"], "n_questions", "world.questions"),
    ("world", ["--out", "w"], "n_train_questions", "world.train_questions"),
    ("data", ["--train", "a", "--out-dir", "o"], "vocab_size", "corpus.vocab_size"),
    ("data", ["--train", "a", "--out-dir", "o"], "text_field", "corpus.text_field"),
]
TRAIN_ARGV = ["--out", "o", "--width", "64", "--depth", "2", "--tokens", "1000"]
TORCH_DEFAULTS = [
    ("train", TRAIN_ARGV, dest, key) for dest, key in [
        ("seq_len", "model.seq_len"), ("head_dim", "model.head_dim"), ("ffn_multiple", "model.ffn_multiple"),
        ("batch_size", "training.batch_size"), ("schedule", "training.schedule"), ("lr", "training.lr"),
        ("weight_decay", "training.weight_decay"), ("grad_clip", "training.grad_clip"), ("z_loss", "training.z_loss"),
        ("decay_fraction", "training.decay_fraction"), ("device", "training.device"), ("seed", "seed")]
] + [
    ("evaluate", ["--checkpoint", "c", "--task", "t", "--out", "o"], dest, key) for dest, key in [
        ("mode", "evaluation.mode"), ("n", "evaluation.n_samples"), ("temperature", "evaluation.temperature"),
        ("batch_size", "evaluation.batch_size"), ("seed", "seed"), ("device", "training.device")]
] + [
    ("posttrain", ["--checkpoint", "c", "--task-table", "t", "--out", "o"], dest, key) for dest, key in [
        ("epochs", "posttrain.epochs"), ("batch_size", "posttrain.batch_size"), ("lr", "posttrain.lr"),
        ("max_steps", "posttrain.max_steps"), ("seed", "seed"), ("device", "training.device")]
]


def cli_defaults(module, argv):
    import argparse
    import importlib

    parser = argparse.ArgumentParser()
    command = {"data": "tokenize", "evaluate": "eval"}.get(module, module)  # the library module's command
    importlib.import_module(f"t2scaling.cli.{command}").add_arguments(parser)
    return vars(parser.parse_args(argv))


@pytest.mark.parametrize("module,argv,dest,key", CLI_DEFAULTS + TORCH_DEFAULTS)
def test_cli_defaults_are_the_schema_defaults(module, argv, dest, key):
    if (module, argv, dest, key) in TORCH_DEFAULTS:
        pytest.importorskip("torch")
    schema = load_schema()
    prop = schema
    for part in key.split("."):
        prop = prop["properties"][part]
    assert cli_defaults(module, argv)[dest] == prop["default"] == schema_default(key)


def test_train_cli_defaults_build_the_pipelines_model():
    pytest.importorskip("torch")
    from t2scaling.flops import model_counts
    from t2scaling.grid import counts_for

    args = cli_defaults("train", TRAIN_ARGV)
    assert args["betas"] == (schema_default("training.beta1"), schema_default("training.beta2"))
    pipeline = with_defaults({"tasks": {"t": {"kind": "knowledge"}}})
    assert model_counts(64, 2, pipeline["corpus"]["vocab_size"], args["seq_len"], head_dim=args["head_dim"],
                        ffn_multiple=args["ffn_multiple"]) == counts_for(pipeline, 64, 2)


def test_schema_default_names_an_unknown_key():
    with pytest.raises(KeyError, match="'fits.restart' is not a config key"):
        schema_default("fits.restart")
    with pytest.raises(KeyError, match="no default"):
        schema_default("tasks")
