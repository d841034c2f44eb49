"""Frontier solver (DESIGN.md §2.6): exactness against the closed form, the paper's overtraining result,
feasibility, baselines, P2, macro averages, bootstrap bands and the `t2scaling frontier` CLI."""

import logging
import os

import numpy as np
import pandas as pd
import pytest

from t2scaling import cli
from t2scaling.fitresult import FitResult, load_fit
from t2scaling.cli.frontier import parse_budgets
from t2scaling.frontier import COLUMNS, frontier, solve_p1, solve_p2, write_frontier
from t2scaling.laws import Chinchilla

CHIN = dict(A=478.0, B=2143.0, E=1.817, alpha=0.347, beta=0.367)  # Epoch's refit of Chinchilla
A1 = dict(CHIN, G=1.0, gamma=0.3)
A2 = dict(CHIN, theta0=2.5, theta1=4.0, theta2=0.9, theta3=1.0, theta4=-0.2)
C_TRAIN = np.geomspace(1e18, 1e25, 8)


def random_chinchilla(rng):
    return dict(A=rng.uniform(100, 2000), B=rng.uniform(300, 5000), E=rng.uniform(0.5, 2.5),
                alpha=rng.uniform(0.2, 0.6), beta=rng.uniform(0.2, 0.6))


def members(fit):
    return [(fit.model, fit.params)]


def test_p1_equals_closed_form_chinchilla_without_inference_limit():
    rng = np.random.default_rng(1)
    for _ in range(5):
        params = random_chinchilla(rng)
        n_closed, d_closed = Chinchilla.optimum(params, C_TRAIN)
        no_g = dict(params, G=0.0, gamma=0.4)  # Approach 1 without its k term is Chinchilla with E' = E
        for fit in (FitResult(law="chinchilla", params=params), FitResult(law="approach1", params=no_g)):
            table = frontier([fit], c_train=C_TRAIN, c_inf=[1e40], n_min=1.0)
            np.testing.assert_allclose(table["N_star"], n_closed, rtol=1e-6)
            np.testing.assert_allclose(table["D_star"], d_closed, rtol=1e-6)
            np.testing.assert_allclose(table["chinchilla_N"], n_closed, rtol=1e-12)
            assert np.all(np.abs(table["gain_vs_chinchilla"]) < 1e-12)


def test_approach1_with_g_overtrains_relative_to_chinchilla():
    rng = np.random.default_rng(2)
    for _ in range(8):
        params = dict(random_chinchilla(rng), G=rng.uniform(0.05, 3.0), gamma=rng.uniform(0.1, 1.0))
        table = frontier([FitResult(law="approach1", params=params)], c_train=C_TRAIN, c_inf=[2e9, 1.4e11])
        assert table["feasible"].all()
        assert np.all(table["tokens_per_param"] > table["chinchilla_tokens_per_param"])
        assert np.all(table["k_star"] >= 1.0)
        # Against Chinchilla at k = 1 T² wins wherever that model can serve a sample (k_chin >= 1); elsewhere
        # the k = 1 baseline breaks the inference budget, and may look better.
        assert np.all(table.loc[table["chinchilla_feasible"], "gain_vs_chinchilla"] > 0)


@pytest.mark.parametrize("law, params", [("approach1", A1), ("approach2", A2)])
def test_p1_optimum_beats_a_dense_brute_force_grid(law, params):
    fit = FitResult(law=law, params=params)
    sign = -1.0 if fit.model.higher_is_better else 1.0
    c_train, c_inf = np.geomspace(1e18, 1e25, 5), 1.4e11
    table = frontier([fit], c_train=c_train, c_inf=[c_inf])
    for row, ct in zip(table.itertuples(), c_train):
        N = np.exp(np.linspace(np.log(1e3), np.log(min(c_inf / 2, ct / 6)), 20001))
        brute = sign * fit.predict(N, ct / (6 * N), np.maximum(c_inf / (2 * N), 1.0))
        assert sign * row.predicted_metric <= brute.min() + 1e-12
        assert row.predicted_metric == pytest.approx(float(fit.predict(row.N_star, row.D_star, row.k_star)), abs=1e-15)
        if sign * row.predicted_metric < brute.min() - 1e-9:  # a sharp optimum: the grid argmin is next to it
            assert abs(np.log(N[np.argmin(brute)] / row.N_star)) < 1e-3


def test_k_constraint_binds_at_n_equal_half_c_inf():
    # Approach 1 with a negligible k term: its optimum is Chinchilla's unless k >= 1 binds.
    fit = FitResult(law="approach1", params={**CHIN, "G": 1e-12, "gamma": 0.5})
    n_chin, _ = Chinchilla.optimum(CHIN, 1e24)
    c_inf = n_chin  # k >= 1 allows only N <= n_chin / 2
    row = frontier([fit], c_train=[1e24], c_inf=[c_inf]).iloc[0]
    assert row["N_star"] == pytest.approx(c_inf / 2, rel=1e-9)
    assert row["k_star"] == 1.0 and row["k_int"] == 1.0
    assert row["chinchilla_k"] == pytest.approx(0.5)
    assert not row["chinchilla_feasible"] and np.isnan(row["chinchilla_metric_inference_corrected"])


def test_chinchilla_frontier_needs_no_c_inf_and_is_not_capped_by_it():
    fit = FitResult(law="chinchilla", params=CHIN)
    n_chin, d_chin = Chinchilla.optimum(CHIN, 1e25)
    free = frontier([fit], c_train=[1e25]).iloc[0]
    assert np.isnan(free["c_inf"]) and free["k_star"] == 1.0
    assert free["N_star"] == pytest.approx(n_chin, rel=1e-8) and free["D_star"] == pytest.approx(d_chin, rel=1e-8)
    small = frontier([fit], c_train=[1e25], c_inf=[2e9]).iloc[0]  # C_inf/2 = 1e9 params would cap a k law
    assert small["N_star"] == pytest.approx(n_chin, rel=1e-8) and small["N_star"] > 1e11
    with pytest.raises(ValueError, match="needs both c_train"):
        frontier([FitResult(law="approach1", params=A1)], c_train=[1e20])


def test_rows_outside_the_fitted_data_are_flagged():
    rng = dict(N=[1e6, 1e8], D=[1e8, 1e10], C_train=[1e15, 1e18], tokens_per_param=[5.0, 200.0], k=[1.0, 64.0])
    fit = FitResult(law="approach1", params=A1, task="arc")
    fit.data_range = rng
    table = frontier([fit], c_train=[1e17, 1e24], c_inf=[2e8, 2e13])
    inside = table[(table["c_train"] == 1e17) & (table["c_inf"] == 2e8)].iloc[0]
    far = table[(table["c_train"] == 1e24) & (table["c_inf"] == 2e13)].iloc[0]
    assert far["extrapolated"] and {"N", "C_train", "k"} <= set(far["extrapolated_in"].split(","))
    expected = [d for d, v in (("N", inside["N_star"]), ("D", inside["D_star"]), ("k", inside["k_star"]),
                               ("tokens_per_param", inside["tokens_per_param"]))
                if not rng[d][0] <= v <= rng[d][1]]
    assert set(filter(None, inside["extrapolated_in"].split(","))) == set(expected)
    assert inside["extrapolated"] == bool(expected)
    assert (table["data_c_train_min"] == 1e15).all() and (table["data_c_train_max"] == 1e18).all()
    # A fit without a recorded range cannot claim to interpolate.
    assert frontier([FitResult(law="approach1", params=A1)], c_train=[1e17], c_inf=[2e8])["extrapolated"].all()


def test_infeasible_budgets_are_flagged_not_clipped(caplog):
    fit = FitResult(law="approach1", params=A1, task="arc")
    with caplog.at_level(logging.WARNING, logger="t2scaling.frontier"):
        table = frontier([fit], c_train=[1e20, 1e21], c_inf=[100.0, 2e9])
    bad = table[table["c_inf"] == 100.0]
    good = table[table["c_inf"] == 2e9]
    assert len(bad) == 2 and not bad["feasible"].any() and good["feasible"].all()
    for column in ("N_star", "D_star", "k_star", "k_int", "predicted_metric", "gain_vs_chinchilla"):
        assert bad[column].isna().all() and good[column].notna().all()
    assert "arc P1: 2 budgets have no feasible plan" in caplog.text and "c_inf=100" in caplog.text
    with pytest.raises(ValueError, match="budgets must be finite and > 0"):
        frontier([fit], c_train=[1e20, -1.0], c_inf=[2e9])


def test_optimum_on_smallest_model_warns(caplog):
    fit = FitResult(law="approach1", params=A1, task="arc")
    with caplog.at_level(logging.WARNING, logger="t2scaling.frontier"):
        table = frontier([fit], c_train=[1e22], c_inf=[1.4e11], n_min=5e9)
    assert table["N_star"].iloc[0] == pytest.approx(5e9)
    assert "sits on the smallest model searched" in caplog.text


def test_k_int_metric_and_gain_signs():
    for law, params in (("approach1", A1), ("approach2", A2)):
        fit = FitResult(law=law, params=params)
        table = frontier([fit], c_train=C_TRAIN, c_inf=[2e9, 1.4e11])
        np.testing.assert_array_equal(table["k_int"], np.floor(table["k_star"]))
        np.testing.assert_allclose(table["predicted_metric_at_k_int"],
                                   fit.predict(table["N_star"], table["D_star"], table["k_int"]), rtol=1e-12)
        sign = 1.0 if fit.model.higher_is_better else -1.0
        np.testing.assert_allclose(table["gain_vs_chinchilla"],
                                   sign * (table["predicted_metric"] - table["chinchilla_metric"]), rtol=1e-12)
        # The T² optimum is at least as good as any feasible N, the inference-corrected Chinchilla model included.
        ok = table["chinchilla_feasible"]
        assert ok.any() and np.all(table.loc[ok, "gain_vs_chinchilla_inference_corrected"] >= -1e-12)
        k_chin = table["c_inf"] / (2 * table["chinchilla_N"])
        np.testing.assert_allclose(table["chinchilla_k"], k_chin, rtol=1e-12)


def test_inference_corrected_chinchilla_is_non_monotonic_in_c_train():
    table = frontier([FitResult(law="approach2", params=A2)], c_train=C_TRAIN, c_inf=[1.4e11])
    acc = table.loc[table["chinchilla_feasible"], "chinchilla_metric_inference_corrected"].to_numpy()
    peak = int(np.argmax(acc))
    assert 0 < peak < len(acc) - 1  # rises with C_train, then falls as the bigger model affords fewer samples
    assert np.all(np.diff(table["predicted_metric"]) > 0)  # the T² frontier itself keeps improving


@pytest.mark.parametrize("law, params", [("approach1", A1), ("approach2", A2)])
def test_p2_spends_the_budget_and_beats_random_plans(law, params):
    fit = FitResult(law=law, params=params)
    sign = -1.0 if fit.model.higher_is_better else 1.0
    c_total, t_inf = np.array([1e21, 1e23]), 1e11
    out = solve_p2(members(fit), c_total, t_inf)
    assert out["feasible"].all() and np.all(out["k"] >= 1)
    spent = 6 * out["N"] * out["D"] + 2 * out["N"] * out["k"] * t_inf
    np.testing.assert_allclose(spent, c_total, rtol=1e-12)
    rng = np.random.default_rng(3)
    for i, C in enumerate(c_total):
        f = rng.uniform(0, 1, 20000)  # random training shares and model sizes on the budget surface
        N = np.exp(rng.uniform(np.log(1e3), np.log(C / 6), f.size))
        k = (1 - f) * C / (2 * N * t_inf)
        ok = k >= 1
        best = (sign * fit.predict(N[ok], f[ok] * C / (6 * N[ok]), k[ok])).min()
        assert sign * out["metric"][i] <= best + 1e-12


def test_p2_small_t_inf_recovers_chinchilla():
    c_total = np.geomspace(1e20, 1e25, 4)
    n_closed, _ = Chinchilla.optimum(CHIN, c_total)
    out = solve_p2(members(FitResult(law="chinchilla", params=CHIN)), c_total, 1e-6)
    np.testing.assert_allclose(out["N"], n_closed, rtol=1e-6)
    errors = [np.max(np.abs(solve_p2(members(FitResult(law="approach1", params=A1)), c_total, t)["N"] / n_closed - 1))
              for t in (1e-2, 1e-5, 1e-9)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-3


def test_p2_rows_in_the_table():
    fit = FitResult(law="approach1", params=A1, task="t")
    table = frontier([fit], c_total=[1e22, 1e24], t_inf=[1e9, 1e12, 1e30])
    assert list(table["problem"].unique()) == ["P2"] and len(table) == 6
    assert not table.loc[table["t_inf"] == 1e30, "feasible"].any()
    ok = table["feasible"]
    np.testing.assert_allclose(table.loc[ok, "c_train"], 6 * table.loc[ok, "N_star"] * table.loc[ok, "D_star"])
    np.testing.assert_allclose(table.loc[ok, "c_inf"], 2 * table.loc[ok, "N_star"] * table.loc[ok, "k_star"])
    n_chin, _ = Chinchilla.optimum(A1, table.loc[ok, "c_train"])
    np.testing.assert_allclose(table.loc[ok, "chinchilla_N"], n_chin)


def test_macro_of_identical_fits_equals_the_single_fit():
    for law, params in (("approach1", A1), ("approach2", A2)):
        fit = FitResult(law=law, params=params, task="only")
        single = frontier([fit], c_train=C_TRAIN, c_inf=[2e9, 1.4e11])
        macro = frontier([fit, fit, fit], c_train=C_TRAIN, c_inf=[2e9, 1.4e11], macro=True)
        assert (macro["task"] == "macro").all()
        numeric = single.columns[single.dtypes == float]
        np.testing.assert_allclose(macro[numeric], single[numeric], rtol=1e-6)


def test_macro_optimises_the_mean_over_tasks():
    other = dict(A2, A=300.0, theta1=6.0)
    fits = [FitResult(law="approach2", params=A2, task="a"), FitResult(law="approach2", params=other, task="b")]
    c_train, c_inf = 1e21, 1.4e11
    row = frontier(fits, c_train=[c_train], c_inf=[c_inf], macro=True).iloc[0]
    N = np.exp(np.linspace(np.log(1e3), np.log(c_inf / 2), 20001))
    mean = sum(f.predict(N, c_train / (6 * N), c_inf / (2 * N)) for f in fits) / 2
    assert row["predicted_metric"] >= mean.max() - 1e-12
    assert row["N_star"] == pytest.approx(N[np.argmax(mean)], rel=2e-3)
    with pytest.raises(ValueError, match="one law"):
        frontier([fits[0], FitResult(law="approach1", params=A1)], c_train=[1e21], c_inf=[2e9], macro=True)


def test_bootstrap_bands_are_percentiles_of_replicate_optima():
    rng = np.random.default_rng(4)
    replicates = [{k: v * (1 + 0.05 * rng.standard_normal()) for k, v in A1.items()} for _ in range(9)]
    fit = FitResult(law="approach1", params=A1, task="t", bootstrap_params=replicates)
    table = frontier([fit], c_train=C_TRAIN, c_inf=[1.4e11], band=(10, 90))
    optima = np.array([solve_p1([(fit.model, p)], C_TRAIN, 1.4e11)["N"] for p in replicates])
    np.testing.assert_allclose(table["N_star_lo"], np.percentile(optima, 10, axis=0), rtol=1e-12)
    np.testing.assert_allclose(table["N_star_hi"], np.percentile(optima, 90, axis=0), rtol=1e-12)
    assert (table["n_bootstrap"] == 9).all()
    for name in ("D_star", "k_star", "tokens_per_param", "predicted_metric"):
        assert np.all(table[f"{name}_lo"] <= table[f"{name}_hi"])
    assert "N_star_lo" not in frontier([fit], c_train=C_TRAIN, c_inf=[1.4e11], bands=False).columns
    broken = FitResult(law="approach1", params=A1, task="t", bootstrap_params=[{"A": 1.0}])
    with pytest.raises(ValueError, match="bootstrap replicate 0 lacks parameters"):
        frontier([broken], c_train=C_TRAIN, c_inf=[1.4e11])


def test_parse_budgets():
    values = parse_budgets("1e18:1e25:8", "--c-train")
    np.testing.assert_allclose(values, np.geomspace(1e18, 1e25, 8))
    assert values[0] == 1e18 and values[-1] == pytest.approx(1e25, rel=1e-15)
    np.testing.assert_array_equal(parse_budgets("2e9,1.4e11", "--c-inf"), [2e9, 1.4e11])
    for text in ("1e18:1e25", "1e18:1e25:x", "a,b", "1e25:1e18:5", "1e18:1e25:1", "0:1e25:5", "1e9,-2"):
        with pytest.raises(ValueError, match="--c-train"):
            parse_budgets(text, "--c-train")


def write_fit(path, **kwargs):
    FitResult(**kwargs).to_json(str(path))
    return str(path)


def test_cli_frontier_writes_the_csv(tmp_path):
    a = write_fit(tmp_path / "arc.json", law="approach2", params=A2, task="arc")
    b = write_fit(tmp_path / "sciq.json", law="approach2", params=dict(A2, A=300.0))
    out = tmp_path / "out" / "frontier.csv"
    assert cli.main(["frontier", a, b, "--c-train", "1e18:1e25:5", "--c-inf", "2e9,1.4e11", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == COLUMNS
    assert len(table) == 20 and sorted(table["task"].unique()) == ["arc", "sciq"]  # unnamed fit -> file stem
    assert os.listdir(out.parent) == ["frontier.csv"]  # the temp file was renamed, not left behind
    macro = tmp_path / "macro.csv"
    assert cli.main(["frontier", a, b, "--macro", "--c-train", "1e20", "--c-inf", "2e9",
                     "--c-total", "1e22:1e23:2", "--t-inf", "1e10", "--out", str(macro)]) == 0
    table = pd.read_csv(macro)
    assert list(table["task"]) == ["macro"] * 3 and list(table["problem"]) == ["P1", "P2", "P2"]


@pytest.mark.parametrize("argv, message", [
    (["--c-train", "1e18:1e25", "--c-inf", "2e9"], "--c-train '1e18:1e25': expected LO:HI:STEPS"),
    (["--c-train", "1e18:1e25:5", "--c-inf=-2e9"], "--c-inf '-2e9'"),
    (["--c-train", "1e18:1e25:5"], "P1 needs both --c-train and --c-inf"),
    (["--c-total", "1e22:1e24:3"], "P2 needs both --c-total"),
    (["--c-train", "1e20", "--c-inf", "2e9", "--band", "95,5"], "--band '95,5'"),
])
def test_cli_frontier_errors(tmp_path, capsys, argv, message):
    fit = write_fit(tmp_path / "fit.json", law="approach1", params=A1)
    out = tmp_path / "f.csv"
    assert cli.main(["frontier", fit, *argv, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cli_frontier_missing_fit(tmp_path, capsys):
    assert cli.main(["frontier", str(tmp_path / "nope.json"), "--c-train", "1e20", "--c-inf", "2e9",
                     "--out", str(tmp_path / "f.csv")]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_a_grid_budget_a_hair_above_the_rounded_cells_is_not_extrapolated():
    fit = FitResult(law="chinchilla", params=CHIN, task="t")
    n, _ = Chinchilla.optimum(CHIN, 2e12)
    fit.data_range = dict(N=[n / 2, n * 2], D=[1e5, 1e9], C_train=[1e11, 2e12 * (1 - 1.1e-4)],
                          tokens_per_param=[1.0, 1e4], k=[1.0, 1.0])
    row = frontier([fit], c_train=[2e12]).iloc[0]
    assert not row["extrapolated"] and row["extrapolated_in"] == ""
    assert frontier([fit], c_train=[2.1e12]).iloc[0]["extrapolated_in"] == "C_train"


def test_the_rule_jobs_write_one_fits_frontier_and_the_macro_one(tmp_path):
    a = write_fit(tmp_path / "arc.json", law="approach2", params=A2, task="arc")
    b = write_fit(tmp_path / "sciq.json", law="approach2", params=dict(A2, A=300.0), task="sciq")
    c_train, c_inf = [1e18, 1e20], [2e9]
    table = write_frontier([a], c_train, c_inf, tmp_path / "arc.csv")
    fits = [load_fit(a), load_fit(b)]
    pd.testing.assert_frame_equal(table, frontier(fits[:1], c_train, c_inf))
    assert list(pd.read_csv(tmp_path / "arc.csv")["task"]) == ["arc", "arc"]
    macro = write_frontier([a, b], c_train, c_inf, tmp_path / "macro.csv", macro=True)
    pd.testing.assert_frame_equal(macro, frontier(fits, c_train, c_inf, macro=True))
    assert set(pd.read_csv(tmp_path / "macro.csv")["task"]) == {"macro"}
