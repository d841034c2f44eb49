"""Config validation: every problem named by its key, before any job runs."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from t2scaling.config import config_problems, resolve, with_defaults
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
