"""Extrapolation experiment: a correctly specified law predicts held-out overtrained checkpoints, the table's values
are the fitted quantities, held-out selection refuses bad requests, and `t2scaling extrapolate` runs end to end."""

import logging

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.optimize import brentq
from scipy.special import digamma, expit

import t2scaling.plots
from t2scaling import cli, fit
from t2scaling.extrapolate import COLUMNS, SUMMARY_COLUMNS, extrapolate, held_out, summarise
from t2scaling.fitresult import load_fit
from t2scaling.laws import get_law

AP2 = dict(A=50.0, B=200.0, E=1.0, alpha=0.3, beta=0.28, theta0=3.0, theta1=2.0, theta2=0.9, theta3=1.5,
           theta4=-0.2)
T2 = dict(A=300.0, B=800.0, E=0.3, alpha=0.33, beta=0.3, G=2.0, gamma=0.4)
SIZES = 1e6 * 2.0 ** np.arange(5)
# 20 base cells at 5-40 tokens per parameter, 3 overtrained cells at 300 to hold out.
CELLS = [(n, n * r) for n in SIZES for r in (5, 10, 20, 40)] + [(n, n * 300) for n in SIZES[:3]]
HELD = ["c20", "c21", "c22"]
K = [1, 4, 16, 64]


def cells():
    return np.array([c[0] for c in CELLS]), np.array([c[1] for c in CELLS])


@pytest.fixture(scope="module")
def p_table(tmp_path_factory):
    """Per-question p ~ Beta at the Approach 2 mean link, with the precision that makes each checkpoint's mean NLL
    the true Chinchilla task NLL (so both stages have an exact truth); 100 Beta quantiles per checkpoint."""
    N, D = cells()
    L = get_law("chinchilla").predict(AP2, N, D)
    mu = AP2["theta2"] * expit(-AP2["theta1"] * (L - AP2["theta0"]))
    nu = np.exp([brentq(lambda v: digamma(np.exp(v)) - digamma(m * np.exp(v)) - x, -10, 20) for m, x in zip(mu, L)])
    p = stats.beta.ppf(((np.arange(100) + 0.5) / 100)[None, :], (mu * nu)[:, None], ((1 - mu) * nu)[:, None])
    rows = [dict(checkpoint=f"c{i}", N=N[i], D=D[i], question=f"q{j}", nll=-np.log(p[i, j]))
            for i in range(len(N)) for j in range(p.shape[1])]
    path = tmp_path_factory.mktemp("obs") / "p.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def aggregated(tmp_path, edit=None):
    """Aggregated pass@k = exp(-Q) with Q exactly the Approach 1 law; edit(frame) may change held-out rows."""
    N, D = cells()
    k = 2.0 ** np.arange(7)
    Q = get_law("approach1").predict(T2, N[:, None], D[:, None], k[None, :])
    frame = pd.DataFrame([dict(checkpoint=f"c{i}", N=N[i], D=D[i], k=k[j], pass_at_k=np.exp(-Q[i, j]))
                          for i in range(len(N)) for j in range(len(k))])
    if edit:
        edit(frame)
    frame.to_csv(tmp_path / "agg.csv", index=False)
    return tmp_path / "agg.csv"


def test_correct_law_predicts_held_out_overtrained_checkpoints(p_table, tmp_path):
    table, fits = extrapolate(p_table, ["chinchilla", "approach1", "approach2"], min_tokens_per_param=100, k_grid=K,
                              restarts=20, task="synthetic")
    assert list(table.columns) == COLUMNS and not table.isna().any().any()
    assert sorted(table["checkpoint"].unique()) == HELD and (table["tokens_per_param"] == 300).all()
    assert table.groupby("approach").size().to_dict() == {"chinchilla": 3, "approach1": 12, "approach2": 12}
    assert set(table["task"]) == {"synthetic"}
    a2 = table[table["approach"] == "approach2"]
    assert a2["rel_abs_error"].mean() < 0.02 and a2["rel_abs_error"].max() < 0.05  # the log link is approximate
    assert table.loc[table["approach"] == "chinchilla", "rel_abs_error"].max() < 0.002  # stage 1 is exact
    np.testing.assert_allclose(table["rel_abs_error"], (table["predicted"] - table["measured"]).abs()
                               / table["measured"].abs(), rtol=1e-15)
    # measured, by hand from the file: each law's fitted quantity
    nll = pd.read_csv(p_table).query("checkpoint == 'c21'")["nll"].to_numpy()
    p = np.exp(-nll)

    def pass_at(k):  # 1 - (1 - p)^k without cancellation at tiny p (log1p(-1) = -inf at p = 1 is right)
        with np.errstate(divide="ignore"):
            return -np.expm1(k * np.log1p(-p))

    row = lambda law, k: table.query(f"approach == '{law}' and checkpoint == 'c21' and k == {k}").iloc[0]  # noqa: E731
    assert row("approach2", 16).measured == pytest.approx(np.mean(pass_at(16)), rel=1e-12)
    assert row("approach1", 4).measured == pytest.approx(np.mean(-np.log(pass_at(4))), rel=1e-12)
    assert row("chinchilla", 1).measured == pytest.approx(np.mean(nll), rel=1e-12)
    assert row("approach2", 16).metric_name == "accuracy" and row("approach1", 4).metric_name == "loss"
    a2 = row("approach2", 16)
    assert a2.predicted == pytest.approx(fits["approach2"].predict(a2.N, a2.D, 16.0), rel=1e-14)
    # the fit is exactly the workflow's fit of the table without the held-out checkpoints
    frame = pd.read_csv(p_table)
    frame[~frame["checkpoint"].isin(HELD)].to_csv(tmp_path / "base.csv", index=False)
    direct = fit.fit_table("approach2", tmp_path / "base.csv", k_grid=K, restarts=20)
    assert fits["approach2"].params == direct.params and fits["approach2"].converged
    assert fits["approach2"].options["held_out"] == HELD and fits["approach2"].task == "synthetic"


def test_approach1_and_chinchilla_extrapolate_exactly_from_imported_tables(tmp_path):
    table, fits = extrapolate(aggregated(tmp_path), ["approach1"], min_tokens_per_param=100, restarts=10)
    assert table["rel_abs_error"].max() < 1e-6 and fits["approach1"].options["source"] == "aggregated"
    assert set(table["k"]) == set(2.0 ** np.arange(7)) and set(table["metric_name"]) == {"loss"}
    N, D = cells()
    loss = pd.DataFrame({"N": N, "D": D, "loss": get_law("chinchilla").predict(AP2, N, D)})  # no checkpoint column
    loss.to_csv(tmp_path / "loss.csv", index=False)
    table, _ = extrapolate(tmp_path / "loss.csv", "chinchilla", checkpoints=["row 21", "row 23"])
    assert list(table["checkpoint"]) == ["row 21", "row 23"] and table["rel_abs_error"].max() < 1e-5
    assert list(table["k"]) == [1.0, 1.0] and set(table["metric_name"]) == {"loss"}


def test_zero_measured_points_are_dropped_with_a_count_or_refused(tmp_path, caplog):
    def solved_at_64(frame):  # c20 solves every question at k = 64: task loss 0, relative error undefined
        frame.loc[(frame["checkpoint"] == "c20") & (frame["k"] == 64), "pass_at_k"] = 1.0

    with caplog.at_level(logging.WARNING, logger="t2scaling.extrapolate"):
        table, _ = extrapolate(aggregated(tmp_path, solved_at_64), ["approach1"], min_tokens_per_param=100,
                               k_grid=K, restarts=10)
    assert len(table) == 3 * 4 - 1 and not ((table["checkpoint"] == "c20") & (table["k"] == 64)).any()
    assert "1 of 12 held-out points have measured loss = 0" in caplog.text

    def all_solved(frame):
        frame.loc[frame["checkpoint"] == "c20", "pass_at_k"] = 1.0

    with pytest.raises(ValueError, match="every held-out point has measured loss = 0"):
        extrapolate(aggregated(tmp_path, all_solved), ["approach1"], checkpoints=["c20"], k_grid=K, restarts=10)


def test_held_out_selection_and_its_errors():
    frame = pd.DataFrame({"N": [1e6] * 4 + [2e6] * 4, "D": [5e6, 1e7, 1e8, 5e8, 1e7, 2e7, 1.5e8, 2e9]},
                         index=[f"c{i}" for i in range(8)])
    assert held_out(frame, 100) == ["c2", "c3", "c7"]  # D/N >= 100, the threshold itself included
    assert held_out(frame, 200, ["c1"]) == ["c1", "c3", "c7"]
    assert held_out(frame, checkpoints="c0") == ["c0"]
    with pytest.raises(ValueError, match=r"obs\.csv: held-out checkpoint\(s\) c9 not in the table; available "
                                         r"checkpoints: c0, c1, c2, c3, c4, c5, c6, c7"):
        held_out(frame, 100, ["c1", "c9"], label="obs.csv")
    with pytest.raises(ValueError, match=r"nothing held out: no checkpoint has D/N >= 2000 \(the largest is 1000\)"):
        held_out(frame, 2000)
    with pytest.raises(ValueError, match=r"holding out 4 of 8 checkpoints leaves 4 to fit, too few \(approach1 needs "
                                         r"5, approach2 needs 5"):
        held_out(frame, 50, laws=["approach1", "approach2"])
    with pytest.raises(ValueError, match="nothing to hold out; give min_tokens_per_param"):
        held_out(frame)
    with pytest.raises(ValueError, match="must be a positive number"):
        held_out(frame, -1.0)


def test_table_form_is_checked_before_any_fit(tmp_path):
    with pytest.raises(ValueError, match="approach2 needs a per-question table.*this is a pass_at_k table"):
        extrapolate(aggregated(tmp_path), ["approach1", "approach2"], min_tokens_per_param=100)
    with pytest.raises(ValueError, match=r"unknown or no laws \['naive'\]"):
        extrapolate(aggregated(tmp_path), ["naive"], min_tokens_per_param=100)


def test_summarise_per_task_and_pooled_over_tasks(tmp_path):
    table = pd.DataFrame({"task": ["", "", "", "b", "b"], "approach": ["approach1"] * 5,
                          "checkpoint": ["c1", "c1", "c2", "c1", "c1"],
                          "rel_abs_error": [0.01, 0.03, 0.08, 0.02, 0.06]})
    table.to_csv(tmp_path / "t.csv", index=False)  # the empty task name reads back as NaN
    s = summarise(tmp_path / "t.csv")
    assert list(s.columns) == SUMMARY_COLUMNS and list(s["task"]) == ["", "b", "all tasks"]
    assert list(s["n_points"]) == [3, 2, 5] and list(s["n_checkpoints"]) == [2, 1, 3]
    np.testing.assert_allclose(s["mean_rel_error_pct"], [4.0, 4.0, 4.0])
    np.testing.assert_allclose(s["median_rel_error_pct"], [3.0, 4.0, 3.0])
    np.testing.assert_allclose(s["max_rel_error_pct"], [8.0, 6.0, 8.0])
    with pytest.raises(ValueError, match=r"missing columns \['rel_abs_error'\] of an extrapolation table"):
        summarise(table.drop(columns="rel_abs_error"))


def test_cli_end_to_end_and_bad_holdout(p_table, tmp_path, capsys):
    out, summary, fits_dir = tmp_path / "extrap.csv", tmp_path / "summary.md", tmp_path / "fits"
    argv = ["extrapolate", str(p_table), "--law", "approach1", "approach2", "--holdout-tokens-per-param", "100",
            "--k-grid", "1,4,16", "--restarts", "10", "--out", str(out), "--summary", str(summary),
            "--fits-dir", str(fits_dir), "--task", "synthetic"]
    plot = hasattr(t2scaling.plots, "plot_extrapolation")
    rc = cli.main(argv + (["--plot", str(tmp_path / "fig.png")] if plot else []))
    assert rc == 0
    table = pd.read_csv(out)
    assert list(table.columns) == COLUMNS and len(table) == 2 * 3 * 3 and set(table["checkpoint"]) == set(HELD)
    assert "all tasks" in summary.read_text() and "approach2" in summary.read_text()
    written = pd.read_csv(tmp_path / "summary.csv")  # the CSV beside the Markdown
    assert list(written["task"]) == ["synthetic", "all tasks"] * 2 and set(written["n_points"]) == {9}
    assert load_fit(fits_dir / "approach2.json").options["held_out"] == HELD
    assert "all tasks" in capsys.readouterr().out
    if plot:
        assert (tmp_path / "fig.png").stat().st_size > 0
    rc = cli.main(["extrapolate", str(p_table), "--holdout", "c99", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "held-out checkpoint(s) c99 not in the table" in err and "c0, c1" in err
