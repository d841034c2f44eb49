"""Extrapolation experiment: a correctly specified law predicts held-out overtrained checkpoints, every law and
baseline is judged on measured pass@k (and the loss laws on task loss too), the baselines do what they say,
held-out selection refuses bad requests, and `t2scaling extrapolate` runs end to end."""

import logging

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.optimize import brentq
from scipy.special import digamma, expit

import t2scaling.plots
from t2scaling import cli, fit
from t2scaling.extrapolate import (COLUMNS, SUMMARY_COLUMNS, extrapolate, extrapolate_task, held_out,
                                  summarise, write_summary)
from t2scaling.fitresult import load_fit
from t2scaling.laws import get_law
from t2scaling.passk import pass_at_k_exact

AP2 = dict(A=50.0, B=200.0, E=1.0, alpha=0.3, beta=0.28, theta0=3.0, theta1=2.0, theta2=0.9, theta3=1.5,
           theta4=-0.2)
T2 = dict(A=300.0, B=800.0, E=0.3, alpha=0.33, beta=0.3, G=2.0, gamma=0.4)
SIZES = 1e6 * 2.0 ** np.arange(5)
# 20 base cells at 5-40 tokens per parameter, 3 overtrained cells at 300 to hold out.
CELLS = [(n, n * r) for n in SIZES for r in (5, 10, 20, 40)] + [(n, n * 300) for n in SIZES[:3]]
HELD = ["c20", "c21", "c22"]
NEAREST = {"c20": "c7", "c21": "c11", "c22": "c15"}  # by hand: each held-out cell's neighbour in (log N, log D)
K = [1, 4, 16, 64]
OFFSETS = np.linspace(-0.8, 0.8, 9)  # per-question NLL offsets around the checkpoint's mean (mean 0)


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


def offset_table(tmp_path, samples=False, edit=None):
    """Per-question NLL = the Chinchilla law's NLL of the checkpoint + a fixed offset per question (OFFSETS), so
    the mean NLL follows the law exactly and every checkpoint's questions are one shift of any other's. samples:
    n = 64 sample counts with c = round(64 p) instead of nll; edit(frame) may change rows."""
    N, D = cells()
    nll = get_law("chinchilla").predict(AP2, N, D)[:, None] + OFFSETS[None, :]
    frame = pd.DataFrame({"checkpoint": np.repeat([f"c{i}" for i in range(len(N))], len(OFFSETS)),
                          "N": np.repeat(N, len(OFFSETS)), "D": np.repeat(D, len(OFFSETS)),
                          "question": np.tile([f"q{j}" for j in range(len(OFFSETS))], len(N)), "nll": nll.ravel()})
    if samples:
        frame = frame.assign(n_samples=64, n_correct=np.round(64 * np.exp(-frame.pop("nll"))).astype(int))
    if edit:
        edit(frame)
    frame.to_csv(tmp_path / "offsets.csv", index=False)
    return tmp_path / "offsets.csv"


def rows(table, law, metric):
    return table[(table["approach"] == law) & (table["metric"] == metric)]


def test_correct_law_predicts_held_out_overtrained_checkpoints(p_table, tmp_path):
    table, fits = extrapolate(p_table, ["chinchilla", "approach1", "approach2"], min_tokens_per_param=100, k_grid=K,
                              restarts=20, task="synthetic")
    assert list(table.columns) == COLUMNS and not table.isna().any().any()
    assert sorted(table["checkpoint"].unique()) == HELD and (table["tokens_per_param"] == 300).all()
    assert table.groupby(["approach", "metric"]).size().to_dict() == {
        ("approach1", "pass_at_k"): 12, ("approach1", "task_loss"): 12, ("approach2", "pass_at_k"): 12,
        ("chinchilla", "pass_at_k"): 12, ("chinchilla", "task_loss"): 3, ("nearest_checkpoint", "pass_at_k"): 12}
    assert set(table["task"]) == {"synthetic"} and set(fits) == {"chinchilla", "approach1", "approach2"}
    a2 = rows(table, "approach2", "pass_at_k")
    assert a2["rel_abs_error"].mean() < 0.02 and a2["rel_abs_error"].max() < 0.05  # the log link is approximate
    assert rows(table, "chinchilla", "task_loss")["rel_abs_error"].max() < 0.002  # stage 1 is exact
    np.testing.assert_allclose(table["rel_abs_error"], (table["predicted"] - table["measured"]).abs()
                               / table["measured"].abs(), rtol=1e-15)
    # measured, by hand from the file: mean pass@k for every law, each loss law's own loss
    nll = pd.read_csv(p_table).query("checkpoint == 'c21'")["nll"].to_numpy()
    p = np.exp(-nll)

    def pass_at(k):  # 1 - (1 - p)^k without cancellation at tiny p (log1p(-1) = -inf at p = 1 is right)
        with np.errstate(divide="ignore"):
            return -np.expm1(k * np.log1p(-p))

    def row(law, metric, k):
        return table.query(f"approach == '{law}' and metric == '{metric}' and checkpoint == 'c21' and k == {k}").iloc[0]

    for law in ("approach1", "approach2", "chinchilla", "nearest_checkpoint"):
        assert row(law, "pass_at_k", 16).measured == pytest.approx(np.mean(pass_at(16)), rel=1e-12)
    assert row("approach1", "task_loss", 4).measured == pytest.approx(np.mean(-np.log(pass_at(4))), rel=1e-12)
    assert row("chinchilla", "task_loss", 1).measured == pytest.approx(np.mean(nll), rel=1e-12)
    a1 = row("approach1", "task_loss", 4)
    assert a1.predicted == pytest.approx(fits["approach1"].predict(a1.N, a1.D, 4.0), rel=1e-14)
    assert row("approach1", "pass_at_k", 4).predicted == pytest.approx(np.exp(-a1.predicted), rel=1e-14)
    a2 = row("approach2", "pass_at_k", 16)
    assert a2.predicted == pytest.approx(fits["approach2"].predict(a2.N, a2.D, 16.0), rel=1e-14)
    # the fit is exactly the workflow's fit of the table without the held-out checkpoints
    frame = pd.read_csv(p_table)
    frame[~frame["checkpoint"].isin(HELD)].to_csv(tmp_path / "base.csv", index=False)
    direct = fit.fit_table("approach2", tmp_path / "base.csv", k_grid=K, restarts=20)
    assert fits["approach2"].params == direct.params and fits["approach2"].converged
    assert fits["approach2"].options["held_out"] == HELD and fits["approach2"].task == "synthetic"


def test_nearest_checkpoint_baseline_is_the_nearest_measured_pass_at_k(tmp_path):
    path = offset_table(tmp_path)
    table, fits = extrapolate(path, ["chinchilla"], min_tokens_per_param=100, k_grid=K)
    near = rows(table, "nearest_checkpoint", "pass_at_k")
    assert len(near) == 12 and set(fits) == {"chinchilla"}
    p = pd.read_csv(path).pivot(index="checkpoint", columns="question", values="nll").pipe(lambda f: np.exp(-f))
    expected = [pass_at_k_exact(p.loc[NEAREST[c]].to_numpy(), k).mean() for c, k in zip(near["checkpoint"], near["k"])]
    np.testing.assert_allclose(near["predicted"], expected, rtol=1e-15, atol=0)
    # its measured value is the held-out checkpoint's own mean pass@k, as for every law
    own = [pass_at_k_exact(p.loc[c].to_numpy(), k).mean() for c, k in zip(near["checkpoint"], near["k"])]
    np.testing.assert_allclose(near["measured"], own, rtol=1e-15, atol=0)


def test_chinchilla_baseline_maps_its_nll_to_pass_at_k_exactly_under_a_shift_pattern(tmp_path):
    # approach1 cannot be fitted here (no k-curve shape) and is kept only to show the baseline's own fit
    table, fits = extrapolate(offset_table(tmp_path), ["approach1"], baselines=["chinchilla"], min_tokens_per_param=100,
                              k_grid=K, restarts=5, allow_unconverged=True)
    assert set(fits) == {"approach1", "chinchilla"} and fits["chinchilla"].converged
    assert set(table["approach"]) == {"approach1", "chinchilla"}  # only the baselines asked for
    chin = rows(table, "chinchilla", "pass_at_k")
    assert len(chin) == 12 and chin["rel_abs_error"].max() < 1e-9  # the law and the offsets are exact
    assert rows(table, "chinchilla", "task_loss")["rel_abs_error"].max() < 1e-9
    # the held-out checkpoints really differ from their neighbours: the shift, not the copy, makes it exact
    near, _ = extrapolate(offset_table(tmp_path), ["chinchilla"], baselines=["nearest_checkpoint"],
                          min_tokens_per_param=100, k_grid=K)
    assert rows(near, "nearest_checkpoint", "pass_at_k")["rel_abs_error"].min() > 1e-3


def test_sample_count_tables_map_the_chinchilla_baseline_through_scaled_c_over_n_and_refuse_all_zero_points(tmp_path):
    table, fits = extrapolate(offset_table(tmp_path, samples=True), ["approach2"], min_tokens_per_param=100,
                              k_grid=K, restarts=5, allow_unconverged=True)  # the law is not the point here
    assert set(table["approach"]) == {"approach2", "chinchilla", "nearest_checkpoint"}
    # Chinchilla is fitted to -log(mean pass@1) and reaches pass@k through the neighbour's c/n, scaled by one
    # factor to its predicted mean pass@1: the plug-in 1 - (1 - p)^k of those scaled p, computed here by hand.
    frame = pd.read_csv(tmp_path / "offsets.csv")
    N, D = cells()
    chin = rows(table, "chinchilla", "pass_at_k")
    for held, near in NEAREST.items():
        i = int(held[1:])
        p = (frame.loc[frame["checkpoint"] == near, "n_correct"] / 64).to_numpy()
        scaled = np.minimum(p * np.exp(-fits["chinchilla"].predict(N[i], D[i])) / p.mean(), 1.0)
        expected = [np.mean(1 - (1 - scaled) ** k) for k in K]
        np.testing.assert_allclose(chin.loc[chin["checkpoint"] == held, "predicted"], expected, rtol=1e-12)

    def unsolved(frame):  # the held-out checkpoints solve nothing: pass@k 0, no relative error anywhere
        frame.loc[frame["checkpoint"].isin(HELD), "n_correct"] = 0

    with pytest.raises(ValueError, match="every held-out point has measured value 0"):
        extrapolate(offset_table(tmp_path, samples=True, edit=unsolved), ["approach2"], baselines=["nearest_checkpoint"],
                    min_tokens_per_param=100, k_grid=K, restarts=5, allow_unconverged=True)
    # the Chinchilla baseline's loss, -log(mean pass@1), is infinite there: it says which checkpoint
    with pytest.raises(ValueError, match="checkpoint 'c20' solves no question at k = 1"):
        extrapolate(offset_table(tmp_path, samples=True, edit=unsolved), ["approach2"], min_tokens_per_param=100,
                    k_grid=K, restarts=5, allow_unconverged=True)


def test_approach1_and_chinchilla_extrapolate_exactly_from_imported_tables(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="t2scaling.extrapolate"):
        table, fits = extrapolate(aggregated(tmp_path), ["approach1"], min_tokens_per_param=100, restarts=10)
    assert "chinchilla baseline skipped" in caplog.text and set(fits) == {"approach1"}
    a1 = table[table["approach"] == "approach1"]
    assert a1["rel_abs_error"].max() < 1e-6 and fits["approach1"].options["source"] == "aggregated"
    assert set(table["k"]) == set(2.0 ** np.arange(7))
    # both metric spaces; from aggregated pass@k, Q = -log pass@k, so exp(-Q) is the pass@k prediction exactly
    assert a1.groupby("metric").size().to_dict() == {"pass_at_k": 21, "task_loss": 21}
    loss, acc = rows(table, "approach1", "task_loss"), rows(table, "approach1", "pass_at_k")
    np.testing.assert_allclose(acc["predicted"], np.exp(-loss["predicted"]), rtol=1e-15)
    np.testing.assert_allclose(acc["measured"], np.exp(-loss["measured"]), rtol=1e-15)
    N, D = cells()
    loss = pd.DataFrame({"N": N, "D": D, "loss": get_law("chinchilla").predict(AP2, N, D)})  # no checkpoint column
    loss.to_csv(tmp_path / "loss.csv", index=False)
    table, _ = extrapolate(tmp_path / "loss.csv", "chinchilla", checkpoints=["row 21", "row 23"])
    law = rows(table, "chinchilla", "task_loss")
    assert list(law["checkpoint"]) == ["row 21", "row 23"] and law["rel_abs_error"].max() < 1e-5
    assert list(table["k"]) == [1.0] * 4 and set(table["metric"]) == {"task_loss"}  # no pass@k in a loss table
    # on a loss table the nearest-checkpoint baseline predicts the neighbour's loss: rows 21 and 23 are cells
    # c20 and c22, and with c21 (row 22, 2M params at 300 tokens/param) left in the fit it is both one's neighbour
    near = rows(table, "nearest_checkpoint", "task_loss")
    np.testing.assert_array_equal(near["predicted"], loss["loss"].to_numpy()[[21, 21]])


def test_measured_loss_near_zero_keeps_pass_at_k_errors_finite(tmp_path, caplog):
    def solved(frame):  # c20 all but solves every question at k = 32 and solves all at 64: task loss ~0 and 0
        c20 = frame["checkpoint"] == "c20"
        frame.loc[c20 & (frame["k"] == 32), "pass_at_k"] = 1 - 1e-13
        frame.loc[c20 & (frame["k"] == 64), "pass_at_k"] = 1.0

    with caplog.at_level(logging.WARNING, logger="t2scaling.extrapolate"):
        table, _ = extrapolate(aggregated(tmp_path, solved), ["approach1"], min_tokens_per_param=100, k_grid=K + [32],
                               restarts=10)
    assert "approach1: 1 of 15 held-out points have measured task_loss = 0" in caplog.text
    loss = rows(table, "approach1", "task_loss")
    assert len(loss) == 14 and not ((loss["checkpoint"] == "c20") & (loss["k"] == 64)).any()
    assert loss["rel_abs_error"].max() > 1e6  # why the README compares laws on pass@k
    for law in ("approach1", "nearest_checkpoint"):
        acc = rows(table, law, "pass_at_k")
        assert len(acc) == 15 and np.isfinite(acc["rel_abs_error"]).all()
    acc = rows(table, "approach1", "pass_at_k")
    assert acc["rel_abs_error"].max() < 1  # pass@k in (0, 1] against a measured 1: bounded, where the loss is not
    assert acc.loc[acc["checkpoint"] != "c20", "rel_abs_error"].max() < 1e-6
    s = summarise(table)
    assert np.isfinite(s[["mean_rel_error_pct", "median_rel_error_pct", "max_rel_error_pct"]].to_numpy()).all()


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


def test_summarise_per_task_metric_and_pooled_with_baselines_beside_laws(tmp_path):
    table = pd.DataFrame({"task": ["", "", "", "b", "b", "b", "b", ""],
                          "approach": ["approach1"] * 5 + ["nearest_checkpoint", "chinchilla", "approach1"],
                          "metric": ["pass_at_k"] * 4 + ["task_loss", "pass_at_k", "pass_at_k", "task_loss"],
                          "checkpoint": ["c1", "c1", "c2", "c1", "c1", "c1", "c1", "c2"],
                          "k": [1, 4, 1, 16, 1, 1, 4, 1],
                          "rel_abs_error": [0.01, 0.03, 0.08, 0.02, 0.06, 0.5, 0.2, 0.1]})
    table.to_csv(tmp_path / "t.csv", index=False)  # the empty task name reads back as NaN
    s = summarise(tmp_path / "t.csv")
    assert list(s.columns) == SUMMARY_COLUMNS
    assert list(zip(s["metric"], s["task"], s["approach"])) == [
        ("pass_at_k", "", "approach1"), ("pass_at_k", "b", "approach1"), ("pass_at_k", "b", "chinchilla"),
        ("pass_at_k", "b", "nearest_checkpoint"), ("pass_at_k", "all tasks", "approach1"),
        ("pass_at_k", "all tasks", "chinchilla"), ("pass_at_k", "all tasks", "nearest_checkpoint"),
        ("task_loss", "", "approach1"), ("task_loss", "b", "approach1"), ("task_loss", "all tasks", "approach1")]
    assert list(s["k"])[:2] == ["1..4", "16"] and list(s["k"])[4] == "1..16"
    assert list(s["n_points"]) == [3, 1, 1, 1, 4, 1, 1, 1, 1, 2] and list(s["n_checkpoints"])[:5] == [2, 1, 1, 1, 3]
    np.testing.assert_allclose(s["mean_rel_error_pct"][:5], [4.0, 2.0, 20.0, 50.0, 3.5])
    np.testing.assert_allclose(s["median_rel_error_pct"][[0, 4, 9]], [3.0, 2.5, 8.0])
    np.testing.assert_allclose(s["max_rel_error_pct"][[0, 4]], [8.0, 8.0])
    with pytest.raises(ValueError, match=r"missing columns \['metric'\] of an extrapolation table"):
        summarise(table.drop(columns="metric"))


def test_extrapolation_figure_marks_tasks_and_uses_log_ratio_for_loss(tmp_path):
    table, _ = extrapolate(offset_table(tmp_path), ["chinchilla"], min_tokens_per_param=100, k_grid=K, task="a")
    table = pd.concat([table, table.assign(task="b", measured=table["measured"] * 1e-12,
                                           rel_abs_error=lambda f: (f.predicted - f.measured).abs() / f.measured)])
    summary = t2scaling.plots.plot_extrapolation(table, tmp_path / "fig.png").set_index(["approach", "metric"])
    assert (tmp_path / "fig.png").stat().st_size > 0 and (tmp_path / "fig.pdf").stat().st_size > 0
    loss = summary.loc[("chinchilla", "task_loss")]
    assert loss.mean_rel_abs_error_percent > 1e12 and loss.mean_abs_log_ratio < 30  # ~ln(1e12) / 2, not 1e12 %
    assert np.isnan(summary.loc[("nearest_checkpoint", "pass_at_k"), "mean_abs_log_ratio"])


def test_cli_end_to_end_and_bad_holdout(p_table, tmp_path, capsys):
    out, summary, fits_dir = tmp_path / "extrap.csv", tmp_path / "summary.md", tmp_path / "fits"
    argv = ["extrapolate", str(p_table), "--law", "approach1", "approach2", "--holdout-tokens-per-param", "100",
            "--k-grid", "1,4,16", "--restarts", "10", "--out", str(out), "--summary", str(summary),
            "--fits-dir", str(fits_dir), "--task", "synthetic", "--plot", str(tmp_path / "fig.png")]
    assert cli.main(argv) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == COLUMNS and set(table["checkpoint"]) == set(HELD)
    assert len(table) == 5 * 3 * 3 + 3  # 5 law/baseline x metric sets at every k, chinchilla's NLL at k = 1
    assert "all tasks" in summary.read_text() and "nearest_checkpoint" in summary.read_text()
    written = pd.read_csv(tmp_path / "summary.csv")  # the CSV beside the Markdown
    assert list(written.columns) == SUMMARY_COLUMNS
    assert list(written["approach"])[:4] == ["approach1", "approach2", "chinchilla", "nearest_checkpoint"]
    assert list(written["task"]) == ["synthetic"] * 4 + ["all tasks"] * 4 + ["synthetic"] * 2 + ["all tasks"] * 2
    assert set(written.loc[written["metric"] == "pass_at_k", "n_points"]) == {9}
    assert load_fit(fits_dir / "approach2.json").options["held_out"] == HELD
    assert load_fit(fits_dir / "chinchilla.json").options["held_out"] == HELD  # the baseline's fit too
    assert "all tasks" in capsys.readouterr().out and (tmp_path / "fig.png").stat().st_size > 0
    # --summary beside --out with one stem: the summary CSV must not overwrite the per-point table
    argv = ["extrapolate", str(p_table), "--law", "chinchilla", "--baselines", "--holdout", "c21",
            "--out", str(tmp_path / "x.csv"), "--summary", str(tmp_path / "x.md")]
    assert cli.main(argv) == 0
    assert list(pd.read_csv(tmp_path / "x.csv").columns) == COLUMNS
    assert list(pd.read_csv(tmp_path / "x_summary.csv").columns) == SUMMARY_COLUMNS
    assert str(tmp_path / "x_summary.csv") in capsys.readouterr().out
    rc = cli.main(["extrapolate", str(p_table), "--holdout", "c99", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "held-out checkpoint(s) c99 not in the table" in err and "c0, c1" in err


def test_the_rule_job_reads_the_settings_and_writes_what_extrapolate_gives(tmp_path):
    # rule extrapolate: the config's settings (the projection the rule passes) -> extrapolate -> CSV
    settings = {"seed": 0,
                "extrapolation": {"laws": ["chinchilla"], "checkpoints": ["c1"], "min_tokens_per_param": 100},
                "fits": {"k_grid": K, "restarts": 5, "approach2_variant": "sse", "chinchilla_variant": "huber",
                         "allow_unconverged": False}}
    table = extrapolate_task(offset_table(tmp_path), settings, tmp_path / "x.csv", task="a")
    direct, _ = extrapolate(offset_table(tmp_path), ["chinchilla"], min_tokens_per_param=100, checkpoints=["c1"],
                            k_grid=K, restarts=5, task="a")
    pd.testing.assert_frame_equal(table, direct)
    assert set(table["checkpoint"]) == {"c1", *HELD}
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "x.csv"), direct, check_exact=False, rtol=1e-15)
    csv, md, png = tmp_path / "s.csv", tmp_path / "s.md", tmp_path / "s.png"
    summary = write_summary([tmp_path / "x.csv", tmp_path / "x.csv"], csv, md, png)
    assert summary.equals(summarise(pd.concat([pd.read_csv(tmp_path / "x.csv")] * 2, ignore_index=True)))
    assert md.read_text().startswith("## Relative absolute error of held-out predictions")
    assert png.stat().st_size > 0 and list(pd.read_csv(csv).columns) == SUMMARY_COLUMNS
