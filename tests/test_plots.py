"""Paper figures: every plot writes a valid PNG and PDF, and the numbers a figure marks are the planner's."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from t2scaling import frontier as fr
from t2scaling import plots, tables, units
from t2scaling.fitresult import FitResult

CHIN = dict(A=478.0, B=2143.0, E=1.817, alpha=0.347, beta=0.367)
A1 = dict(CHIN, G=1.0, gamma=0.3)
A2 = dict(CHIN, theta0=2.5, theta1=4.0, theta2=0.9, theta3=1.0, theta4=-0.2)
C_INF = 2e9
LEVELS = [(1e18, [0.25, 1.0, 4.0]), (1e19, [0.25, 1.0, 4.0])]  # model sizes as multiples of Chinchilla's N


def fits(task, shift=1.0):
    chin = dict(CHIN, E=CHIN["E"] * shift)
    return {"chinchilla": FitResult(law="chinchilla", params=chin, task=task),
            "approach1": FitResult(law="approach1", params=dict(A1, E=chin["E"]), task=task),
            "approach2": FitResult(law="approach2", params=dict(A2, E=chin["E"]), task=task)}


def grid(tmp_path, task="t", shift=1.0):
    """Per-question observations on LEVELS; question i has nll = L(N, D)·(0.5 + 0.25 i) nats."""
    levels, rows = [], []
    for c_train, multiples in LEVELS:
        n_chin = fr.Chinchilla.optimum(CHIN, c_train)[0]
        names = []
        for m in multiples:
            N = float(np.round(m * n_chin, -3))
            name = f"c{c_train:.0e}_x{m:g}"
            loss = fits(task, shift)["chinchilla"].predict(N, c_train / (6 * N))
            rows += [dict(checkpoint=name, N=N, D=c_train / (6 * N), question=f"q{i}",
                          nll=float(loss) * (0.5 + 0.25 * i)) for i in range(4)]
            names.append(name)
        levels.append((c_train, names))
    path = tmp_path / f"obs_{task}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path), levels, pd.DataFrame(rows)


def assert_figure(path):
    with Image.open(path) as image:
        image.verify()
        assert image.format == "PNG"
    with open(str(path)[:-4] + ".pdf", "rb") as fh:
        assert fh.read(5) == b"%PDF-"


def test_isoflop_markers_are_the_frontier_numbers(tmp_path):
    path, levels, frame = grid(tmp_path)
    task_fits = fits("t")
    marks = plots.plot_isoflop_profiles({"t": (path, task_fits)}, levels, C_INF, tmp_path / "iso.png")
    assert_figure(tmp_path / "iso.png")
    c_train = [c for c, _ in levels]
    chin = fr.frontier([task_fits["chinchilla"]], c_train=c_train, c_inf=[C_INF], bands=False)
    for law in ("approach1", "approach2"):
        table = fr.frontier([task_fits[law]], c_train=c_train, c_inf=[C_INF], bands=False)
        mine = marks[marks["law"] == law]
        optimum = mine[(mine["kind"] == "optimum") & (mine["row"] == "k = C_inf/(2N)")]
        np.testing.assert_array_equal(optimum["N"], table["N_star"])
        np.testing.assert_array_equal(optimum["metric"], table["predicted_metric"])
        at_k1 = mine[(mine["kind"] == "optimum") & (mine["row"] == "k = 1")]
        np.testing.assert_array_equal(at_k1["N"], table["chinchilla_N"])  # the law's own k = 1 optimum
        for row in ("k = 1", "k = C_inf/(2N)"):
            chinchilla = mine[(mine["kind"] == "chinchilla") & (mine["row"] == row)]
            np.testing.assert_array_equal(chinchilla["N"], chin["chinchilla_N"])
    # Measured points: exact pass@k at k = C_inf/(2N), by hand.
    seen = marks[(marks["kind"] == "measured") & (marks["law"] == "approach2") & (marks["row"] == "k = C_inf/(2N)")]
    # The 4x-Chinchilla model at 1e19 FLOPs has k = C_inf/(2N) < 1: it cannot serve a sample, so no point.
    assert sorted(seen["checkpoint"]) == sorted(c for _, cells in levels for c in cells if c != "c1e+19_x4")
    for _, point in seen.iterrows():
        p = np.exp(-frame.loc[frame["checkpoint"] == point["checkpoint"], "nll"].to_numpy())
        k = C_INF / (2 * point["N"])
        assert point["k"] == k
        assert point["metric"] == pytest.approx(np.mean(1 - (1 - p) ** k), rel=1e-12)
    loss = marks[(marks["kind"] == "measured") & (marks["law"] == "approach1") & (marks["row"] == "k = 1")].iloc[0]
    p = np.exp(-frame.loc[frame["checkpoint"] == loss["checkpoint"], "nll"].to_numpy())
    assert loss["metric"] == pytest.approx(np.mean(-np.log(p)), rel=1e-12)  # task loss at k = 1 is the mean NLL


def test_isoflop_macro_averages_tasks(tmp_path):
    path_a, levels, frame_a = grid(tmp_path, "a")
    path_b, _, frame_b = grid(tmp_path, "b", shift=1.1)
    fits_a, fits_b = fits("a"), fits("b", 1.1)
    marks = plots.plot_isoflop_profiles({"a": (path_a, fits_a), "b": (path_b, fits_b)}, levels, C_INF,
                                        tmp_path / "macro.png", title="macro")
    assert_figure(tmp_path / "macro.png")
    assert set(marks["task"]) == {"macro"}
    table = fr.frontier([fits_a["approach2"], fits_b["approach2"]], c_train=[c for c, _ in levels], c_inf=[C_INF],
                        macro=True, bands=False)
    optimum = marks[(marks["law"] == "approach2") & (marks["kind"] == "optimum") & (marks["row"] != "k = 1")]
    np.testing.assert_array_equal(optimum["N"], table["N_star"])
    point = marks[(marks["kind"] == "measured") & (marks["law"] == "approach2") & (marks["row"] == "k = 1")].iloc[0]
    means = [np.mean(np.exp(-f.loc[f["checkpoint"] == point["checkpoint"], "nll"].to_numpy()))
             for f in (frame_a, frame_b)]
    assert point["metric"] == pytest.approx(np.mean(means), rel=1e-12)


def test_isoflop_aggregated_table_shows_only_the_k_it_has(tmp_path, caplog):
    _, levels, frame = grid(tmp_path)
    rows = []
    for (name, N, D), part in frame.groupby(["checkpoint", "N", "D"]):
        p = np.exp(-part["nll"].to_numpy())
        rows += [dict(checkpoint=name, N=N, D=D, k=k, pass_at_k=np.mean(1 - (1 - p) ** k)) for k in (1, 2, 4)]
    path = tmp_path / "agg.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    task_fits = {"approach1": FitResult(law="approach1", params=A1, task="t", options={"source": "aggregated"})}
    with caplog.at_level(logging.WARNING, logger="t2scaling.plots"):
        marks = plots.plot_isoflop_profiles({"t": (path, task_fits)}, levels, C_INF, tmp_path / "agg.png")
    assert_figure(tmp_path / "agg.png")
    measured = marks[marks["kind"] == "measured"]
    assert set(measured["row"]) == {"k = 1"} and len(measured) == 6
    assert "has no pass_at_k row at k =" in caplog.text and "left out of the isoFLOP figure" in caplog.text


def test_isoflop_errors_name_the_problem(tmp_path):
    path, levels, _ = grid(tmp_path)
    with pytest.raises(ValueError, match=r"no T² law .* is fitted for every task"):
        plots.plot_isoflop_profiles({"t": (path, {"chinchilla": fits("t")["chinchilla"]})}, levels, C_INF,
                                    tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"obs_t\.csv: isoFLOP checkpoints \['ghost'\] are not in the observations"):
        plots.plot_isoflop_profiles({"t": (path, fits("t"))}, [(1e18, ["ghost"])], C_INF, tmp_path / "x.png")


def test_checkpoint_grid(tmp_path):
    cells = pd.DataFrame({"name": list("abcde"), "N": [1e7, 3e7, 1e8, 5e6, 2e6], "D": [2e8, 6e8, 2e9, 5e10, 1e11],
                          "origin": ["trained", "trained", "imported", "validation", "held_out"]})
    plots.plot_checkpoint_grid(cells, tmp_path / "grid.png", title="grid")
    assert_figure(tmp_path / "grid.png")
    with pytest.raises(ValueError, match=r"unknown origin \['mystery'\]; use one of"):
        plots.plot_checkpoint_grid(cells.assign(origin="mystery"), tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"missing columns \['origin'\]"):
        plots.plot_checkpoint_grid(cells.drop(columns="origin"), tmp_path / "bad.png")


def test_extrapolation(tmp_path):
    rows = []
    for approach, err in (("approach1", 0.02), ("approach2", 0.1)):
        for i, (metric, measured) in enumerate([("pass_at_k", 0.3), ("pass_at_k", 0.6), ("task_loss", 0.05),
                                                ("task_loss", 2.0)]):
            predicted = measured * (1 + err * (-1) ** i)
            rows.append(dict(task="t", approach=approach, checkpoint=f"c{i}", N=1e7, D=1e11, tokens_per_param=1e4,
                             k=100.0, metric=metric, measured=measured, predicted=predicted,
                             rel_abs_error=abs(predicted - measured) / measured))
    path = tmp_path / "extrapolation.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    summary = plots.plot_extrapolation(path, tmp_path / "ex.png").set_index(["approach", "metric"])
    assert_figure(tmp_path / "ex.png")
    assert summary.loc[("approach1", "task_loss"), "mean_rel_abs_error_percent"] == pytest.approx(2.0)
    assert summary.loc[("approach1", "task_loss"), "mean_abs_log_ratio"] == pytest.approx(
        np.mean(np.abs(np.log([1.02, 0.98]))))
    assert summary.loc[("approach2", "pass_at_k"), "mean_rel_abs_error_percent"] == pytest.approx(10.0)
    percent = pd.DataFrame(rows).assign(rel_abs_error=lambda f: 100 * f["rel_abs_error"])
    with pytest.raises(ValueError, match=r"row 1: rel_abs_error = 2 is not .*= 0\.02; write it as a fraction"):
        plots.plot_extrapolation(percent, tmp_path / "bad.png")


def test_variant_frontiers(tmp_path):
    variants = {}
    for variant, scale in (("base", 1.0), ("ft", 2.0), ("sft", 3.0)):
        paths = []
        for law, fit in fits("t").items():
            fit.params["B"] *= scale
            path = tmp_path / f"{variant}_{law}.csv"
            fr.write_csv(fr.frontier([fit], c_train=np.geomspace(1e18, 1e22, 5), c_inf=[C_INF, 1.4e11],
                                     bands=False), path)
            paths.append(str(path))
        variants[variant] = paths
    plots.plot_variant_frontiers(variants, tmp_path / "variants.png", C_INF)
    assert_figure(tmp_path / "variants.png")
    with pytest.raises(ValueError, match=r"base_chinchilla\.csv: no P1 rows at c_inf = 5e\+09; it has c_inf = "
                                         r"\[2e\+09, 1\.4e\+11\]"):
        plots.plot_variant_frontiers(variants, tmp_path / "bad.png", 5e9)


def test_isoflop_files_pair_each_task_with_its_own_fits(tmp_path):
    # rule plot_macro_isoflops: observations named by task, fits in any order, levels as the rule's params
    path_a, levels, _ = grid(tmp_path, "a")
    path_b, _, _ = grid(tmp_path, "b", shift=1.1)
    paths = []
    for task, shift in (("b", 1.1), ("a", 1.0)):
        for law, fit in fits(task, shift).items():
            paths.append(tmp_path / f"{task}_{law}.json")
            fit.to_json(paths[-1])
    marks = plots.plot_isoflop_files({"a": path_a, "b": path_b}, paths, [list(level) for level in levels], C_INF,
                                     tmp_path / "files.png")
    direct = plots.plot_isoflop_profiles({"a": (path_a, fits("a")), "b": (path_b, fits("b", 1.1))}, levels, C_INF,
                                         tmp_path / "direct.png")
    pd.testing.assert_frame_equal(marks, direct)
    assert_figure(tmp_path / "files.png")
    one = plots.plot_isoflop_files({"a": path_a}, paths, dict(levels), C_INF, tmp_path / "one.png")  # per task
    assert set(one["task"]) == {"a"}


def test_frontier_comparison_job_writes_table_and_figure(tmp_path):
    variants = {}
    for variant, scale in (("base", 1.0), ("ft", 2.0)):
        variants[variant] = []
        for law, fit in fits("t").items():
            fit.params["B"] *= scale
            variants[variant].append(str(tmp_path / f"{variant}_{law}.csv"))
            fr.write_csv(fr.frontier([fit], c_train=np.geomspace(1e18, 1e22, 5), c_inf=[C_INF], bands=False),
                         variants[variant][-1])
    out = {name: tmp_path / f"cmp.{name}" for name in ("csv", "md", "png")}
    table = plots.write_frontier_comparison(variants, [1e20], C_INF, out["csv"], out["md"], out["png"])
    assert table.equals(tables.frontier_comparison(variants, [1e20], C_INF))
    assert list(pd.read_csv(out["csv"])["variant"]) == list(table["variant"])
    assert out["md"].read_text().startswith(
        "## Optimal tokens per parameter, base vs post-trained, C_inf = 2.0e9 FLOPs per served token")
    assert_figure(out["png"])


# ------------------------------------------------------------------------------------------ readable figures

@pytest.fixture
def drawn(monkeypatch):
    """{file name: figure} of every figure the plot functions save during the test."""
    figures = {}
    real = plots.save

    def keep(fig, path):
        real(fig, path)
        figures[Path(path).name] = fig

    monkeypatch.setattr(plots, "save", keep)
    return figures


def every_figure(tmp_path):
    """Each public plot function once, on small synthetic inputs."""
    path, levels, _ = grid(tmp_path)
    task_fits = fits("t")
    for law, fit in task_fits.items():
        plots.plot_fit_quality(path, fit, [1, 4, 16, 64], tmp_path / f"fit_{law}.png")
    csvs = []
    for law, fit in task_fits.items():
        csvs.append(tmp_path / f"frontier_{law}.csv")
        fr.write_csv(fr.frontier([fit], c_train=np.geomspace(1e17, 1e24, 8), c_inf=[C_INF, 1.4e11], bands=False),
                     csvs[-1])
    plots.plot_frontiers(csvs, tmp_path / "frontier.png")
    plots.plot_isoflop_profiles({"t": (path, task_fits)}, levels, C_INF, tmp_path / "iso.png")
    plots.plot_checkpoint_grid(GRID, tmp_path / "grid.png")
    test_extrapolation(tmp_path)
    test_variant_frontiers(tmp_path)


GRID = pd.DataFrame({"name": list("abcdefg"), "N": [1e7, 3e7, 1e8, 5e6, 2e6, 1e7, 3e7],
                     "D": [2e8, 6e8, 2e9, 5e10, 1e11, 4e8, 1.2e9],
                     "origin": ["trained", "trained", "imported", "validation", "held_out", "trained", "trained"]})


def test_text_overlaps_finds_colliding_tick_labels_and_text():
    fig, ax = plots.new_figure(figsize=(2.0, 2.0))
    ax.set(xscale="log", xlim=(1.5e6, 7e6))  # under a decade: every minor tick labelled, as in the old residuals
    ax.xaxis.set_minor_formatter(matplotlib.ticker.LogFormatterSciNotation(labelOnlyBase=False,
                                                                           minor_thresholds=(10, 10)))
    ax.text(0.2, 0.5, "one label", transform=ax.transAxes)
    ax.text(0.25, 0.5, "another label", transform=ax.transAxes)
    pairs = {(a.get_text(), b.get_text()) for a, b in plots.text_overlaps(fig)}
    assert ("one label", "another label") in pairs
    assert any("10^{6}" in a and "10^{6}" in b for a, b in pairs)  # 2×10⁶ runs into 3×10⁶
    fig, ax = plots.new_figure()
    ax.set(xlabel="x", ylabel="y", title="fine")
    assert plots.text_overlaps(fig) == []


def test_every_figure_has_no_overlapping_text(tmp_path, drawn, caplog):
    with caplog.at_level(logging.WARNING, logger="t2scaling.plots"):
        every_figure(tmp_path)
    assert {"fit_chinchilla.png", "fit_approach1.png", "fit_approach2.png", "frontier.png", "iso.png", "grid.png",
            "ex.png", "variants.png"} <= set(drawn)
    for name, fig in drawn.items():
        assert plots.text_overlaps(fig) == [], name
        assert fig.get_layout_engine() is not None, f"{name}: no constrained layout"
    assert "overlapping text" not in caplog.text


def test_residual_ticks_are_few_and_readable(tmp_path, drawn):
    path, _, _ = grid(tmp_path)
    plots.plot_fit_quality(path, fits("t")["chinchilla"], [1], tmp_path / "fit.png")
    residuals = drawn["fit.png"].axes[1]
    shown = [t.get_text() for t in residuals.get_xticklabels(minor=True) if t.get_text()]
    assert shown == []  # no labelled minor ticks
    assert all("params" in t.get_text() for t in drawn["fit.png"].legends[0].get_texts())  # "59K params", not 5.9e+04


def test_checkpoint_grid_ticks_are_the_isoflop_levels(tmp_path, drawn):
    plots.plot_checkpoint_grid(GRID, tmp_path / "grid.png")
    ax = drawn["grid.png"].axes[0]
    C = 6 * GRID["N"] * GRID["D"]
    levels = plots.compute_levels(C)
    assert len(levels) == 5  # 6ND = 1.2e16 ... 1.2e18 (two cells); 1.5e18 is too close to 1.2e18 for a label
    np.testing.assert_allclose(ax.get_xticks(), levels)
    assert [t.get_text() for t in ax.get_xticklabels()] == [units.format_sci(c, 2) for c in levels]


def test_frontier_figure_marks_the_fitted_range(tmp_path, drawn):
    csvs = []
    for law, fit in fits("t").items():
        csvs.append(tmp_path / f"{law}.csv")
        table = fr.frontier([fit], c_train=np.geomspace(1e17, 1e24, 8), c_inf=[C_INF], bands=False)
        table = table.assign(extrapolated=table["c_train"] > 1e19, data_c_train_min=1e17, data_c_train_max=1e19)
        fr.write_csv(table, csvs[-1])
    plots.plot_frontiers(csvs, tmp_path / "frontier.png")
    labels = [t.get_text() for t in drawn["frontier.png"].legends[0].get_texts()]
    assert {"C_train range of the fitted data", "solid: inside the fitted data", "dashed: extrapolated"} <= set(labels)
    assert any("C_inf = 2.0e9 FLOPs per token" in label for label in labels)


def test_plots_leave_global_rcparams_alone(tmp_path):
    code = ("import matplotlib; before = matplotlib.rcParams.copy(); import t2scaling.plots; "
            "after = matplotlib.rcParams.copy(); "
            "print(sorted(k for k in before if before[k] != after[k]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "MPLBACKEND"})
    assert run.stdout.strip() == "[]", run.stdout + run.stderr
    before = matplotlib.rcParams.copy()
    plots.plot_checkpoint_grid(GRID, tmp_path / "grid.png")
    after = matplotlib.rcParams.copy()  # copies: reading the global "backend" would resolve it
    assert sorted(k for k in before if before[k] != after[k]) == []
