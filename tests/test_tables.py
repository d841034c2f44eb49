"""Paper tables: Table 1 (measured vs planned at one budget), fitted parameters, frontier comparison across
post-training variants, and the CSV/Markdown writer."""

import os

import numpy as np
import pandas as pd
import pytest

from t2scaling import frontier as fr
from t2scaling import tables
from t2scaling.fitresult import FitResult
from t2scaling.passk import pass_at_k_unbiased
from t2scaling.units import format_flops

CHIN = dict(A=478.0, B=2143.0, E=1.817, alpha=0.347, beta=0.367)
A1 = dict(CHIN, G=1.0, gamma=0.3)
A2 = dict(CHIN, theta0=2.5, theta1=4.0, theta2=0.9, theta3=1.0, theta4=-0.2)
C_TRAIN, C_INF = 6.4e18, 2e9


def fits(task="t"):
    return {law: FitResult(law=law, params=params, task=task)
            for law, params in (("chinchilla", CHIN), ("approach1", A1), ("approach2", A2))}


def frontier_csvs(tmp_path, task="t", c_train=(1e18, C_TRAIN, 1e20), c_inf=(C_INF, 1.4e11), scale_b=1.0, tag=""):
    paths = []
    for law, fit in fits(task).items():
        fit.params["B"] *= scale_b  # a "variant": more data-hungry or less
        path = tmp_path / f"{tag}{task}_{law}.csv"
        fr.write_csv(fr.frontier([fit], c_train=list(c_train), c_inf=list(c_inf), bands=False), path)
        paths.append(str(path))
    return paths


def observations(tmp_path, sizes, nll_of, name="obs.csv", questions=5):
    """Per-question table: checkpoint name -> N; D = C_TRAIN/(6N); nll_of(N, question index) nats."""
    rows = [dict(checkpoint=c, N=N, D=C_TRAIN / (6 * N), question=f"q{i}", nll=nll_of(N, i))
            for c, N in sizes.items() for i in range(questions)]
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path), pd.DataFrame(rows)


def chinchilla_N():
    return fr.frontier([fits()["chinchilla"]], c_train=[C_TRAIN], c_inf=[C_INF], bands=False)["chinchilla_N"][0]


def test_table1_copies_frontier_numbers_and_measures_pass_at_k_by_hand(tmp_path):
    csvs = frontier_csvs(tmp_path)
    n_chin = chinchilla_N()
    sizes = {"big": 4 * n_chin, "chin": 1.1 * n_chin, "small": n_chin / 4, "tiny": n_chin / 16}
    # Smaller models are less accurate per sample but get more samples: "small" wins at its k.
    skill = {"big": 3.0, "chin": 3.5, "small": 4.5, "tiny": 7.0}
    name_of = {N: c for c, N in sizes.items()}
    path, frame = observations(tmp_path, sizes, lambda N, i: skill[name_of[N]] + 0.5 * i)
    table = tables.table1("t", path, csvs, list(sizes), C_TRAIN, C_INF)

    hand = {}
    for c, N in sizes.items():
        p = np.exp(-frame.loc[frame["checkpoint"] == c, "nll"].to_numpy())
        hand[c] = np.mean(1.0 - (1.0 - p) ** (C_INF / (2 * N)))
    best = max((c for c in sizes if sizes[c] < sizes["chin"]), key=hand.get)
    assert best == "small"
    chin_row, over_row = table.iloc[0], table.iloc[1]
    assert list(table["role"]) == ["chinchilla_optimal", "best_overtrained"]
    assert chin_row["checkpoint"] == "chin" and over_row["checkpoint"] == best
    assert chin_row["measured_pass_at_k"] == pytest.approx(hand["chin"], rel=1e-12)
    assert over_row["measured_pass_at_k"] == pytest.approx(hand[best], rel=1e-12)
    assert over_row["gain"] == pytest.approx(hand[best] - hand["chin"], rel=1e-12)
    assert chin_row["gain"] == 0.0
    # 95 % question-bootstrap intervals: around each measured value, paired for the gain (zero-width at chin).
    for row in (chin_row, over_row):
        assert row["ci_low"] < row["measured_pass_at_k"] < row["ci_high"]
    assert chin_row["gain_ci_low"] == chin_row["gain_ci_high"] == 0.0
    assert over_row["gain_ci_low"] < over_row["gain"] < over_row["gain_ci_high"]
    assert over_row["k"] == C_INF / (2 * sizes[best])
    assert over_row["c_train_actual"] == pytest.approx(C_TRAIN, rel=1e-12)
    assert "exact" in over_row["estimator"]

    # Frontier numbers: exactly the CSV values (no re-solve, no rounding).
    for path in csvs:
        row = pd.read_csv(path, **tables.EXACT_FLOATS)
        row = row[(row["problem"] == "P1") & (row["c_train"] == C_TRAIN) & (row["c_inf"] == C_INF)].iloc[0]
        if row["approach"] == "chinchilla":
            assert (table["chinchilla_N"] == row["chinchilla_N"]).all()
            assert (table["chinchilla_tokens_per_param"] == row["chinchilla_tokens_per_param"]).all()
            continue
        for column in ("N_star", "tokens_per_param", "k_star", "predicted_metric"):
            assert (table[f"{row['approach']}_{column}"] == row[column]).all()
    assert set(table["chinchilla_from"]) == {"chinchilla"}


def test_table1_says_when_no_candidate_is_overtrained(tmp_path):
    n_chin = chinchilla_N()
    sizes = {"chin": n_chin, "bigger": 3 * n_chin}
    path, _ = observations(tmp_path, sizes, lambda N, i: 3.0 + i)
    table = tables.table1("t", path, frontier_csvs(tmp_path), list(sizes), C_TRAIN, C_INF)
    over = table.iloc[1]
    assert over["checkpoint"] == "" and np.isnan(over["measured_pass_at_k"])
    assert "no candidate with more tokens/param" in over["note"]


def test_table1_missing_budget_names_the_file_and_the_budgets_it_has(tmp_path):
    csvs = frontier_csvs(tmp_path, c_train=(1e18, 1e20))
    path, _ = observations(tmp_path, {"a": 1e8, "b": 1e7}, lambda N, i: 3.0)
    with pytest.raises(ValueError, match=r"t_chinchilla\.csv: no P1 row at c_train = 6\.4e\+18; it has "
                                         r"c_train = \[1e\+18, 1e\+20\]"):
        tables.table1("t", path, csvs, ["a", "b"], C_TRAIN, C_INF)
    with pytest.raises(ValueError, match=r"no P1 row at c_inf = 5e\+09; it has c_inf = \[2e\+09, 1\.4e\+11\]"):
        tables.table1("t", path, frontier_csvs(tmp_path), ["a", "b"], C_TRAIN, 5e9)
    with pytest.raises(ValueError, match=r"candidate checkpoints \['zzz'\] are not in the observations"):
        tables.table1("t", path, frontier_csvs(tmp_path), ["a", "zzz"], C_TRAIN, C_INF)


def test_table1_from_sample_counts_rounds_k_down_and_says_so(tmp_path):
    n_chin = chinchilla_N()
    sizes = {"chin": n_chin, "small": n_chin / 8}
    n = 1000
    rows = [dict(checkpoint=c, N=N, D=C_TRAIN / (6 * N), question=f"q{i}", n_samples=n, n_correct=3 + i)
            for c, N in sizes.items() for i in range(4)]
    path = tmp_path / "samples.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    table = tables.table1("t", path, frontier_csvs(tmp_path), list(sizes), C_TRAIN, C_INF).set_index("checkpoint")
    k = C_INF / (2 * sizes["small"])
    assert table.loc["small", "k"] == k and table.loc["small", "k_used"] == np.floor(k) != k
    expected = pass_at_k_unbiased(np.full(4, n), 3 + np.arange(4), int(np.floor(k))).mean()
    assert table.loc["small", "measured_pass_at_k"] == pytest.approx(expected, rel=1e-12)
    assert "k rounded down" in table.loc["small", "estimator"]


def test_write_table_csv_is_exact_and_markdown_readable(tmp_path):
    frame = pd.DataFrame({"task": ["a|b"], "N": [123456789.0], "c_train": [6.4e18], "tokens_per_param": [2833.41],
                          "k_star": [1 / 3], "feasible": [True], "lo": [np.nan]})
    tables.write_table(frame, tmp_path / "t.csv", tmp_path / "t.md", title="Demo")
    back = pd.read_csv(tmp_path / "t.csv", **tables.EXACT_FLOATS)
    assert back["k_star"][0] == 1 / 3 and back["N"][0] == 123456789.0
    assert open(tmp_path / "t.csv").read().splitlines()[1].endswith(",True,")  # missing -> blank
    md = open(tmp_path / "t.md").read()
    assert md.startswith("## Demo\n")
    assert "| a\\|b | 123M | 6.40e18 | 2,833 | 0.333 | yes |  |" in md
    assert sorted(os.listdir(tmp_path)) == ["t.csv", "t.md"]  # no temp files left behind


def test_parameter_table_values_and_intervals():
    boot = FitResult(law="chinchilla", params=CHIN, task="t", r2=0.99, n_points=30, converged=True,
                     derived={"n_star_exponent": 0.5},
                     intervals={**{p: [v * 0.9, v * 1.1] for p, v in CHIN.items()}, "n_star_exponent": [0.4, 0.6]},
                     bootstrap_params=[CHIN])
    plain = FitResult(law="approach1", params=A1, task="t", r2=0.9, n_points=40)
    table = tables.parameter_table([boot, plain])
    chin = table[table["law"] == "chinchilla"].set_index("parameter")
    for p, v in CHIN.items():
        assert chin.loc[p, "value"] == v
        assert (chin.loc[p, "lo"], chin.loc[p, "hi"]) == (v * 0.9, v * 1.1)
    assert chin.loc["n_star_exponent", "value"] == 0.5
    a1 = table[table["law"] == "approach1"].set_index("parameter")
    assert dict(a1["value"]) == A1 and a1["lo"].isna().all() and a1["hi"].isna().all()
    assert table[["r2", "n_points", "converged"]].notna().all().all()
    md = tables.parameter_markdown(table)
    assert "| t | chinchilla | 478.0 [430.2, 525.8] |" in md and "| t | approach1 | 478.0 |" in md

    boot.intervals.pop("alpha")
    with pytest.raises(ValueError, match=r"t/chinchilla: bootstrap replicates but no intervals for \['alpha'\]"):
        tables.parameter_table([boot])


def test_frontier_comparison_ratio_to_base_and_nearest_budget(tmp_path):
    c_train = np.geomspace(1e18, 1e22, 9)
    variants = {"base": frontier_csvs(tmp_path, c_train=c_train, tag="base_"),
                "ft": frontier_csvs(tmp_path, c_train=c_train, scale_b=2.0, tag="ft_")}
    asked = [1e20 * 1.005, 1e21]  # the first is 0.5 % off a tabulated budget
    table = tables.frontier_comparison(variants, asked, C_INF)
    assert len(table) == 2 * 3 * 2  # variants x approaches x budgets
    assert set(table["c_train"]) == {1e20, 1e21} and set(table["c_train_requested"]) == set(asked)
    key = ["task", "approach", "c_train_requested"]
    base = table[table["variant"] == "base"].set_index(key)["tokens_per_param"]
    ft = table[table["variant"] == "ft"].set_index(key)
    np.testing.assert_array_equal(ft["ratio_to_base"], ft["tokens_per_param"] / base.loc[ft.index])
    assert (table.loc[table["variant"] == "base", "ratio_to_base"] == 1.0).all()
    # A heavier data term (larger B) after fine-tuning: the T² optimum trains on more tokens per parameter.
    assert (ft.loc[ft.index.get_level_values("approach") != "chinchilla", "ratio_to_base"] > 1).all()
    raw = pd.read_csv(variants["ft"][1], **tables.EXACT_FLOATS)
    raw = raw[(raw["c_train"] == 1e21) & (raw["c_inf"] == C_INF)].iloc[0]
    assert ft.loc[("t", "approach1", 1e21), "N_star"] == raw["N_star"]

    with pytest.raises(ValueError, match=r"no P1 row within 1 % of c_train = 1\.5e\+20 .* it has c_train = \[1e\+18, "):
        tables.frontier_comparison(variants, [1.5e20], C_INF)
    with pytest.raises(ValueError, match=r"variant 'ft' has \(t, approach1\) .* but the 'base' variant does not"):
        tables.frontier_comparison({"base": variants["base"][:1], "ft": variants["ft"]}, [1e21], C_INF)


def test_pass_at_1_by_level_says_whether_a_task_is_graded(tmp_path):
    # Six checkpoints at three levels; pass@1 = mean exp(-nll) rises with the level's best cell.
    nll = {"a1": 3.0, "a2": 2.5, "b1": 2.0, "b2": 2.2, "c1": 1.0, "c2": 1.5}
    sizes = {name: 1e5 * (i + 1) for i, name in enumerate(nll)}
    path, frame = observations(tmp_path, sizes, lambda N, i: nll[[c for c, n in sizes.items() if n == N][0]] + 0.1 * i)
    levels = {1e12: ["a1", "a2"], 4e12: ["c1", "c2"], 2e12: ["b1", "b2"]}
    table = tables.pass_at_1_by_level("t", path, levels)
    assert list(table["c_train"]) == [1e12, 2e12, 4e12]
    assert list(table["best_checkpoint"]) == ["a2", "b1", "c1"]
    by_hand = {c: np.exp(-frame.loc[frame["checkpoint"] == c, "nll"].to_numpy()).mean() for c in nll}
    assert table["best_pass_at_1"].tolist() == pytest.approx([by_hand["a2"], by_hand["b1"], by_hand["c1"]], rel=1e-12)
    assert table["mean_pass_at_1"].iloc[2] == pytest.approx((by_hand["c1"] + by_hand["c2"]) / 2, rel=1e-12)
    top = table.iloc[-1]
    assert top["gain_over_lowest"] == pytest.approx(by_hand["c1"] - by_hand["a2"], rel=1e-12)
    assert 0 < top["gain_ci_low"] <= top["gain_over_lowest"] <= top["gain_ci_high"]
    assert table.iloc[0]["gain_ci_low"] == table.iloc[0]["gain_ci_high"] == 0.0


def test_task_grades_name_an_ungraded_task_and_an_unbracketed_grid(tmp_path):
    sizes = {"a1": 1e5, "a2": 2e5, "b1": 3e5, "b2": 4e5}
    rising, _ = observations(tmp_path, sizes, lambda N, i: 4.0 - N / 1e5 + 0.1 * i, name="rising.csv")
    flat, _ = observations(tmp_path, sizes, lambda N, i: 3.0 + 0.1 * i, name="flat.csv")
    levels = {1e12: ["a1", "a2"], 2e12: ["b1", "b2"]}
    losses = pd.DataFrame({"checkpoint": list(sizes), "N": list(sizes.values()), "loss": [3.0, 2.9, 2.8, 2.7]})
    table = tables.task_grades({"rising": rising, "flat": flat}, levels, losses)
    assert list(table["task"]) == ["rising", "rising", "flat", "flat"]
    problems = table.attrs["problems"]
    assert problems[0].startswith("task 'flat': pass@1 does not rise with C_train")
    assert not any("'rising'" in p for p in problems)
    assert any(p.startswith("4 distinct model sizes; give at least 5") for p in problems)
    assert any(p.startswith("isoFLOP level 2e+12 FLOPs: the lowest loss is at its largest model") for p in problems)


# ------------------------------------------------------------------------- the workflow's tables (rule jobs)

def test_write_table1_pairs_each_task_with_its_own_files_by_name(tmp_path):
    # Two tasks whose observations differ; the dicts come in different orders: pairing is by name, not position.
    n_chin = chinchilla_N()
    sizes = {"big": 4 * n_chin, "chin": 1.1 * n_chin, "small": n_chin / 4}
    easy, _ = observations(tmp_path, sizes, lambda N, i: 0.5 + 0.1 * i, name="easy.csv")
    hard, _ = observations(tmp_path, sizes, lambda N, i: 5.0 + 0.1 * i, name="hard.csv")
    frontiers = {"hard": frontier_csvs(tmp_path, task="hard"), "easy": frontier_csvs(tmp_path, task="easy")}
    csv, md = tmp_path / "table1.csv", tmp_path / "table1.md"
    table = tables.write_table1({"easy": easy, "hard": hard}, frontiers, list(sizes), C_TRAIN, C_INF, csv, md)
    by_hand = pd.concat([tables.table1(task, path, frontiers[task], list(sizes), C_TRAIN, C_INF)
                         for task, path in (("easy", easy), ("hard", hard))], ignore_index=True)
    pd.testing.assert_frame_equal(table, by_hand)
    assert list(table["task"]) == ["easy", "easy", "hard", "hard"]
    assert pd.read_csv(csv)["measured_pass_at_k"].tolist() == pytest.approx(table["measured_pass_at_k"].tolist())
    assert md.read_text().startswith(f"## Best overtrained vs Chinchilla-optimal checkpoint at C_train = "
                                     f"{format_flops(C_TRAIN)}, C_inf = {format_flops(C_INF)} per served token")
    with pytest.raises(ValueError, match=r"tasks \['easy', 'hard'\] and \['hard'\] differ"):
        tables.write_table1({"easy": easy, "hard": hard}, {"hard": frontiers["hard"]}, list(sizes), C_TRAIN, C_INF,
                            csv, md)


def test_write_task_grades_logs_each_problem(tmp_path, caplog):
    sizes = {"a1": 1e5, "a2": 2e5, "b1": 3e5, "b2": 4e5}
    flat, _ = observations(tmp_path, sizes, lambda N, i: 3.0 + 0.1 * i, name="flat.csv")
    levels = [[1e12, ["a1", "a2"]], [2e12, ["b1", "b2"]]]  # as the rule's params carry them
    csv, md = tmp_path / "grades.csv", tmp_path / "grades.md"
    with caplog.at_level("WARNING", logger="t2scaling.tables"):
        table = tables.write_task_grades({"flat": flat}, levels, None, csv, md)
    assert table.attrs["problems"] and [r.message for r in caplog.records] == table.attrs["problems"]
    assert list(pd.read_csv(csv)["c_train"]) == [1e12, 2e12]
    assert md.read_text().startswith("## Measured pass@1 per isoFLOP level")


def test_write_parameter_table_reads_the_fit_files(tmp_path):
    paths = []
    for law, fit in fits().items():
        paths.append(tmp_path / f"{law}.json")
        fit.to_json(paths[-1])
    csv, md = tmp_path / "parameters.csv", tmp_path / "parameters.md"
    table = tables.write_parameter_table(paths, csv, md)
    assert table.equals(tables.parameter_table(list(fits().values())))
    assert md.read_text() == tables.parameter_markdown(table, title="Fitted parameters")
    assert len(pd.read_csv(csv)) == len(table)
