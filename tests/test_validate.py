"""Closing the loop (DESIGN.md §2.7): candidate shapes, the validation plan (rounding, agreement with the macro
frontier, in-grid cells, warnings), the measured-vs-predicted table and the `t2scaling validate` CLI."""

import copy
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from t2scaling import cli
from t2scaling.config import with_defaults
from t2scaling.fitresult import FitResult
from t2scaling.frontier import frontier
from t2scaling.grid import counts_for, grid_cells, parse_cell, tokens_per_step
from t2scaling.validate import (candidate_shapes, plan_cell_names, plan_cells, read_plan, validation_grid,
                                validation_markdown, validation_table, write_plan, write_validation,
                                write_validation_plan)

SMOKE = {  # configs/smoke.yaml's structure
    "experiment": "smoke",
    "world": {"questions": 40, "train_questions": 20, "options": {"n_documents": 400}},
    "corpus": {"vocab_size": 384},
    "model": {"seq_len": 64, "head_dim": 16, "ffn_multiple": 16},
    "training": {"batch_size": 8, "threads": 1},
    "grid": {"isoflops": [1.0e10, 2.0e10, 4.0e10],
             "shapes": [{"width": 16, "depth": 1}, {"width": 32, "depth": 1}, {"width": 32, "depth": 2}],
             "tokens_per_param": [1, 1000]},
    "tasks": {"knowledge": {"kind": "knowledge"}, "arithmetic": {"kind": "arithmetic"}},
    "fits": {"allow_unconverged": True, "restarts": 10, "k_grid": [1, 4, 16, 64, 256]},
    "frontier": {"c_train_min": 1.0e9, "c_train_max": 1.0e20, "steps": 12},
}
CHIN = dict(A=100.0, B=100.0, E=1.0, alpha=0.35, beta=0.35)  # optima of 1e4-1e5 params at C_train ~ 1e10-1e11
C_TRAIN, C_INF = 4e10, 1e6


def config(**validation):
    out = with_defaults(copy.deepcopy(SMOKE))
    out.setdefault("validation", {}).update(validation)
    return out


def fits(laws=("chinchilla", "approach1", "approach2")):
    out = {}
    for task, scale in (("knowledge", 1.0), ("arithmetic", 1.3)):
        chin = dict(CHIN, A=CHIN["A"] * scale)
        params = {"chinchilla": chin, "approach1": dict(chin, G=2.0, gamma=0.4),
                  "approach2": dict(chin, theta0=4.5, theta1=2.0, theta2=0.9, theta3=1.0, theta4=-0.2)}
        out[task] = {law: FitResult(law=law, params=params[law], task=task) for law in laws}
    return out


def role(plan, name):
    return next(r for r in plan["roles"] if r["role"] == name)


def test_candidate_shapes_are_the_grid_plus_a_buildable_family():
    cfg = config()
    shapes = candidate_shapes(cfg)
    pairs = [(s["width"], s["depth"]) for s in shapes]
    assert {(16, 1), (32, 1), (32, 2)} <= set(pairs) and len(set(pairs)) == len(pairs)
    for s in shapes:
        assert s["width"] % 16 == 0 and 16 <= s["width"] <= 64 and 1 <= s["depth"] <= 4
        assert 8 <= s["width"] / s["depth"] <= 64  # the grid's ratios 16..32, widened 2x each way
        assert s["N"] == counts_for(cfg, s["width"], s["depth"])["N"]
    assert [s["N"] for s in shapes] == sorted(s["N"] for s in shapes)
    given = candidate_shapes(config(shapes=[{"width": 48, "depth": 2}, {"width": 16, "depth": 3}]))
    assert [(s["width"], s["depth"]) for s in given] == [(16, 3), (48, 2)]
    with pytest.raises(ValueError, match=r"config\['validation'\]\['shapes'\]\[0\]: width 40 is not a multiple"):
        candidate_shapes(config(shapes=[{"width": 40, "depth": 2}]))


def test_plan_rounds_to_the_nearest_shape_in_log_n_and_whole_steps():
    cfg = config()
    plan = plan_cells(fits(), cfg, C_TRAIN, C_INF)
    shapes = candidate_shapes(cfg)
    step = tokens_per_step(cfg)
    assert [r["role"] for r in plan["roles"]] == ["approach1", "approach2", "chinchilla"]
    for r in plan["roles"]:
        distance = [abs(math.log(s["N"] / r["N_star"])) for s in shapes]
        nearest = shapes[int(np.argmin(distance))]
        assert (r["width"], r["depth"], r["N"]) == (nearest["width"], nearest["depth"], nearest["N"])
        assert r["tokens"] % step == 0 and r["tokens"] == round(C_TRAIN / (6 * r["N"]) / step) * step
        assert parse_cell(r["cell"]) == (r["width"], r["depth"], r["tokens"])
        assert r["cell_k"] == pytest.approx(C_INF / (2 * r["N"]), rel=1e-15)
        assert r["warnings"] == []
    assert plan_cell_names(plan) == [r["cell"] for r in plan["roles"]]  # three different cells here


def test_plan_equals_the_macro_frontier_and_overtrains():
    plan = plan_cells(fits(), config(), C_TRAIN, C_INF)
    by_task = fits()
    for law in ("approach1", "approach2"):
        row = frontier([by_task[t][law] for t in by_task], c_train=[C_TRAIN], c_inf=[C_INF], macro=True,
                       bands=False).iloc[0]
        r = role(plan, law)
        for key in ("N_star", "D_star", "k_star", "predicted_metric"):
            assert r[key] == row[key]
        assert r["metric_name"] == ("accuracy" if law == "approach2" else "loss")
    chin_row = frontier([by_task[t]["chinchilla"] for t in by_task], c_train=[C_TRAIN], c_inf=[C_INF], macro=True,
                        bands=False).iloc[0]
    chin = role(plan, "chinchilla")
    assert chin["N_star"] == chin_row["chinchilla_N"] and chin["law"] == "chinchilla"
    assert chin["k_star"] == pytest.approx(C_INF / (2 * chin_row["chinchilla_N"]), rel=1e-15)
    for law in ("approach1", "approach2"):  # T² moves to smaller models trained on more tokens per parameter
        assert role(plan, law)["N_star"] < chin["N_star"] and role(plan, law)["N"] < chin["N"]
        assert role(plan, law)["tokens_per_param"] > chin["tokens_per_param"]


def test_chinchilla_role_falls_back_to_the_t2_baseline():
    plan = plan_cells(fits(("approach1", "approach2")), config(), C_TRAIN, C_INF)
    by_task = fits(("approach2",))
    row = frontier([by_task[t]["approach2"] for t in by_task], c_train=[C_TRAIN], c_inf=[C_INF], macro=True,
                   bands=False).iloc[0]
    chin = role(plan, "chinchilla")
    assert chin["law"] == "approach2" and "of the approach2 fits" in chin["source"]
    assert chin["N_star"] == row["chinchilla_N"] and chin["predicted_metric"] == row["chinchilla_metric"]


def test_in_grid_and_warnings():
    cfg = config()
    plan = plan_cells(fits(), cfg, C_TRAIN, 2e5)  # a tighter C_inf: Approach 1 lands on a grid cell
    names = {c.name for c in grid_cells(cfg)}
    a1 = role(plan, "approach1")
    assert a1["cell"] == "w32-l2-d171520" and a1["cell"] in names and a1["in_grid"] is True
    assert [r["in_grid"] for r in plan["roles"]] == [r["cell"] in names for r in plan["roles"]] == [True, False, False]
    chin = role(plan, "chinchilla")  # 101K params cannot serve one sample at 2e5 FLOPs per token
    assert chin["cell_k"] < 1 and "cannot serve one sample" in chin["warnings"][0]
    one = plan_cells(fits(), config(shapes=[{"width": 16, "depth": 1}]), C_TRAIN, C_INF)
    assert plan_cell_names(one) == ["w16-l1-d704000"]  # every role shares the one buildable cell
    chin = role(one, "chinchilla")  # N* ~ 1e5 is > 2x the only shape's 9,472 params
    assert any("outside the buildable range" in w for w in chin["warnings"])


def test_plan_json_round_trip(tmp_path):
    plan = plan_cells(fits(), config(), C_TRAIN, 2e5)
    path = tmp_path / "v" / "plan.json"
    write_plan(plan, path)
    assert read_plan(path) == json.loads(json.dumps(plan)) and read_plan(path)["c_inf"] == 2e5
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not a validation plan"):
        read_plan(tmp_path / "bad.json")


def write_eval(path, nll, samples=None):
    frame = pd.DataFrame({"question": [f"q{i}" for i in range(len(nll))], "nll": nll,
                          "n_answer_tokens": np.ones(len(nll), int)})
    if samples is not None:
        frame["n_samples"], frame["n_correct"] = samples
    frame.to_parquet(path, index=False)
    return str(path)


def eval_tables(tmp_path, plan, tasks=("knowledge", "arithmetic")):
    rng = np.random.default_rng(0)
    out, nll = {}, {}
    for t in tasks:
        for cell in plan_cell_names(plan):
            nll[t, cell] = rng.uniform(0.1, 6.0, 5)
            out[t, cell] = write_eval(tmp_path / f"{t}-{cell}.parquet", nll[t, cell])
    return out, nll


def test_validation_table_measures_pass_at_k_by_hand(tmp_path):
    by_task = fits()
    plan = plan_cells(by_task, config(), C_TRAIN, C_INF)
    evals, nll = eval_tables(tmp_path, plan)
    table = validation_table(plan, evals, by_task)
    assert list(table["task"]) == ["knowledge"] * 3 + ["arithmetic"] * 3 + ["macro"] * 3
    for row in table[table["task"] != "macro"].itertuples():
        k = C_INF / (2 * row.N)
        p = np.exp(-nll[row.task, row.cell])
        by_hand = 1 - (1 - p) ** k
        assert row.k == k and row.k_int == math.floor(k) and row.feasible
        assert row.measured_pass_at_k == pytest.approx(by_hand.mean(), rel=1e-12)
        assert row.measured_pass_at_k_int == pytest.approx((1 - (1 - p) ** math.floor(k)).mean(), rel=1e-12)
        assert row.measured_task_loss == pytest.approx(-np.log(by_hand).mean(), rel=1e-12)
        assert row.measured_nll == pytest.approx(nll[row.task, row.cell].mean(), rel=1e-12)
        assert row.predicted_approach2 == float(by_task[row.task]["approach2"].predict(row.N, row.D, k))
        assert row.predicted_approach1 == float(by_task[row.task]["approach1"].predict(row.N, row.D, k))
        chin = table[(table["task"] == row.task) & (table["role"] == "chinchilla")].iloc[0]
        assert row.gain_pass_at_k == pytest.approx(row.measured_pass_at_k - chin["measured_pass_at_k"], abs=1e-15)
        assert row.gain_task_loss == pytest.approx(chin["measured_task_loss"] - row.measured_task_loss, abs=1e-15)
    macro = table[table["task"] == "macro"].set_index("role")
    tasks = table[table["task"] != "macro"]
    for column in ("measured_pass_at_k", "measured_task_loss", "predicted_approach2", "gain_pass_at_k"):
        np.testing.assert_allclose(macro[column], tasks.groupby("role", sort=False)[column].mean(), rtol=1e-12)
    assert macro.loc["approach2", "rel_error_approach2"] == pytest.approx(
        abs(macro.loc["approach2", "predicted_approach2"] / macro.loc["approach2", "measured_pass_at_k"] - 1))
    assert "| macro | approach2 |" in validation_markdown(table)
    # 95 % question-bootstrap intervals, paired against the Chinchilla cell (zero-width gain there).
    assert np.all(table["ci_low"] <= table["measured_pass_at_k"]) and np.all(
        table["measured_pass_at_k"] <= table["ci_high"])
    chin_rows = table[table["role"] == "chinchilla"]
    assert (chin_rows["gain_ci_low"] == 0).all() and (chin_rows["gain_ci_high"] == 0).all()
    others = table[table["role"] != "chinchilla"]
    assert np.all(others["gain_ci_low"] <= others["gain_pass_at_k"] + 1e-15)
    assert np.all(others["gain_pass_at_k"] <= others["gain_ci_high"] + 1e-15)


def test_validation_table_infeasible_cell_and_samples(tmp_path):
    by_task = fits(("approach1", "approach2"))
    plan = plan_cells(by_task, config(), C_TRAIN, 2e5)  # the Chinchilla cell has k < 1
    evals, nll = eval_tables(tmp_path, plan, tasks=("knowledge",))
    a1 = role(plan, "approach1")["cell"]
    evals["knowledge", a1] = write_eval(tmp_path / "s.parquet", nll["knowledge", a1], ([4] * 5, [0, 1, 2, 4, 3]))
    table = validation_table(plan, evals, {"knowledge": by_task["knowledge"]})
    chin = table[(table["task"] == "knowledge") & (table["role"] == "chinchilla")].iloc[0]
    assert not chin["feasible"] and np.isnan(chin["measured_pass_at_k"]) and np.isnan(chin["predicted_approach2"])
    assert np.isfinite(chin["measured_nll"]) and np.isnan(chin["ci_low"]) and table["gain_ci_low"].isna().all()
    row = table[(table["task"] == "knowledge") & (table["role"] == "approach1")].iloc[0]
    assert row["k_int"] == 2  # k = 2e5 / (2 * 38,912) = 2.57: the unbiased estimator at k = 2 of 4 samples
    by_hand = np.mean([1 - math.comb(4 - c, 2) / math.comb(4, 2) for c in (0, 1, 2, 4, 3)])
    assert row["measured_pass_at_k_int_samples"] == pytest.approx(by_hand, rel=1e-12)


def test_errors(tmp_path):
    by_task = fits()
    plan = plan_cells(by_task, config(), C_TRAIN, C_INF)
    evals, _ = eval_tables(tmp_path, plan)
    cell = plan_cell_names(plan)[1]
    del evals["arithmetic", cell]
    with pytest.raises(ValueError, match=f"no evaluation of cell '{cell}' on task 'arithmetic'"):
        validation_table(plan, evals, by_task)
    with pytest.raises(ValueError, match=r"no feasible approach1 plan at C_train = 4\.0e10 FLOPs, C_inf = 1\.0e3 "
                                         r"FLOPs.*raise the inference budget"):
        plan_cells(by_task, config(), C_TRAIN, 1e3)  # k >= 1 needs N <= 500 params, below any model searched
    uneven = fits()
    del uneven["arithmetic"]["approach2"]
    with pytest.raises(ValueError, match="task 'arithmetic' has fits"):
        plan_cells(uneven, config(), C_TRAIN, C_INF)


def write_fits(directory, by_task):
    paths = []
    for task, laws in by_task.items():
        for law, fit in laws.items():
            paths.append(str(directory / f"{task}-{law}.json"))
            fit.to_json(paths[-1])
    return paths


def test_cli_plan_then_table(tmp_path, capsys):
    by_task = fits()
    paths = write_fits(tmp_path, by_task)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(SMOKE))
    plan_path = tmp_path / "plan.json"
    argv = ["validate", "plan", "--fits", *paths, "--config", str(tmp_path / "config.yaml"), "--c-train", "4e10",
            "--c-inf", "1e6", "--out", str(plan_path)]
    assert cli.main(argv) == 0
    plan = read_plan(plan_path)
    assert plan == json.loads(json.dumps(plan_cells(by_task, config(), C_TRAIN, C_INF)))
    printed = capsys.readouterr().out
    assert all(r["cell"] in printed for r in plan["roles"])
    evals, nll = eval_tables(tmp_path, plan)
    argv = ["validate", "table", "--plan", str(plan_path), "--fits", *paths, "--out", str(tmp_path / "t.csv"),
            "--markdown", str(tmp_path / "t.md")]
    for (task, cell), path in evals.items():
        argv += ["--eval", task, cell, path]
    assert cli.main(argv) == 0
    table = pd.read_csv(tmp_path / "t.csv")
    expected = validation_table(plan, evals, by_task)
    np.testing.assert_allclose(table["measured_pass_at_k"], expected["measured_pass_at_k"], rtol=1e-12)
    assert (tmp_path / "t.md").read_text().startswith("## Measured vs predicted")
    capsys.readouterr()
    assert cli.main(argv[:-4]) == 2  # the last eval left out
    task, cell = list(evals)[-1]
    assert f"no evaluation of cell '{cell}' on task '{task}'" in capsys.readouterr().err


def test_cli_names_a_fit_of_the_wrong_law_or_task(tmp_path, capsys):
    paths = write_fits(tmp_path, fits())
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(SMOKE))
    naive = FitResult(law="naive", params=dict(CHIN, theta0=4.5, theta1=2.0, theta2=0.9), task="knowledge")
    naive.to_json(str(tmp_path / "naive.json"))
    stray = FitResult(law="chinchilla", params=CHIN, task="sciq")
    stray.to_json(str(tmp_path / "sciq.json"))
    base = ["validate", "plan", "--config", str(tmp_path / "config.yaml"), "--c-train", "4e10", "--c-inf", "1e6",
            "--out", str(tmp_path / "p.json"), "--fits", *paths]
    assert cli.main(base + [str(tmp_path / "naive.json")]) == 2
    assert "naive.json: a 'naive' fit" in capsys.readouterr().err
    assert cli.main(base + [str(tmp_path / "sciq.json")]) == 2
    assert "sciq.json: task 'sciq' is not among the config's tasks" in capsys.readouterr().err
    assert cli.main(base + [paths[0]]) == 2
    assert "a second chinchilla fit of task 'knowledge'" in capsys.readouterr().err


# ------------------------------------------------------------------------ the workflow's jobs (rule wrappers)

def test_write_validation_plan_writes_the_plan_and_needs_a_budget(tmp_path):
    paths = write_fits(tmp_path, fits())
    out = tmp_path / "plan.json"
    plan = write_validation_plan(paths, config(), C_TRAIN, C_INF, out, tasks=["arithmetic", "knowledge"])
    assert read_plan(out) == json.loads(json.dumps(plan)) == json.loads(
        json.dumps(plan_cells(fits(), config(), C_TRAIN, C_INF)))
    with pytest.raises(ValueError, match="validation.c_train: not set and the grid has no isoFLOP levels"):
        write_validation_plan(paths, config(), None, C_INF, out)
    with pytest.raises(ValueError, match="task 'knowledge' is not among the config's tasks"):
        write_validation_plan(paths, config(), C_TRAIN, C_INF, out, tasks=["arithmetic"])


def test_validation_grid_adds_the_plan_cells_that_are_not_in_the_grid():
    plan = {"roles": [{"cell": "w16-l1-d176128", "N": 9472, "tokens": 176128},
                      {"cell": "w64-l2-d5120", "N": 123456, "tokens": 5120},
                      {"cell": "w64-l2-d5120", "N": 123456, "tokens": 5120}]}  # two roles may share a cell
    grid = [{"name": "w16-l1-d176128", "N": 9472, "D": 176128, "origin": "trained"},
            {"name": "w32-l1-d260608", "N": 25600, "D": 260608, "origin": "held_out"}]
    assert validation_grid(grid, plan) == [*grid, {"name": "w64-l2-d5120", "N": 123456, "D": 5120,
                                                   "origin": "validation"}]
    assert len(grid) == 2  # the rule's params are left alone


def test_write_validation_tabulates_and_draws_the_grid(tmp_path):
    by_task = fits()
    plan = plan_cells(by_task, config(), C_TRAIN, C_INF)
    write_plan(plan, tmp_path / "plan.json")
    evals, _ = eval_tables(tmp_path, plan)
    grid = [{"name": "w16-l1-d176128", "N": 9472, "D": 176128, "origin": "trained"}]
    out = {name: tmp_path / f"table.{name}" for name in ("csv", "md", "png")}
    table = write_validation(tmp_path / "plan.json", evals, write_fits(tmp_path, by_task), grid, out["csv"],
                             out["md"], out["png"], tasks=list(by_task))
    expected = validation_table(plan, evals, by_task)
    np.testing.assert_allclose(table["measured_pass_at_k"], expected["measured_pass_at_k"], rtol=1e-12)
    assert list(pd.read_csv(out["csv"])["cell"]) == list(expected["cell"])
    assert out["md"].read_text() == validation_markdown(table)
    assert out["png"].stat().st_size > 0 and out["png"].with_suffix(".pdf").exists()


def test_cli_plan_reads_the_config_as_the_workflow_does(tmp_path, capsys):
    """`validate plan --config` takes 3e12-style numbers (strings to YAML 1.1) and refuses a duplicated key."""
    paths = write_fits(tmp_path, fits())
    text = yaml.safe_dump(SMOKE).replace("e+", "e")  # 1.0e+10 -> 1.0e10, which PyYAML reads as a string
    assert re.search(r"\d\.\d+e\d", text)
    (tmp_path / "config.yaml").write_text(text)
    argv = ["validate", "plan", "--fits", *paths, "--config", str(tmp_path / "config.yaml"), "--c-train", "4e10",
            "--c-inf", "1e6", "--out", str(tmp_path / "plan.json")]
    assert cli.main(argv) == 0
    assert read_plan(tmp_path / "plan.json") == json.loads(json.dumps(plan_cells(fits(), config(), C_TRAIN, C_INF)))
    (tmp_path / "config.yaml").write_text(text + "seed: 1\nseed: 2\n")
    capsys.readouterr()
    assert cli.main(argv) == 2
    assert "key config['seed'] is written twice" in capsys.readouterr().err
