"""Observation tables: reading, column mapping, every validation error, and the shapes handed to fitters."""

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest

from t2scaling import measure
from t2scaling import observations as obs_mod
from t2scaling.measure import k_grid_for, loss_points, pass_at_k_matrix, task_loss_matrix
from t2scaling.observations import collect_observations, likelihood_data, read_table, require_points


def per_question_frame(n_ckpt=3, n_q=4, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_ckpt):
        for q in range(n_q):
            rows.append(dict(checkpoint=f"c{i}", N=1e6 * 2**i, D=2e7 * 2**i, question=f"q{q}",
                             nll=float(rng.uniform(0.05, 4.0))))
    return pd.DataFrame(rows)


def write(tmp_path, frame, name="obs.csv"):
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def test_reads_csv_and_parquet_alike_with_file_hash(tmp_path):
    frame = per_question_frame()
    csv, parquet = write(tmp_path, frame), write(tmp_path, frame, "obs.parquet")
    a, b = read_table(csv), read_table(parquet)
    assert a.form == b.form == "per_question"
    pd.testing.assert_frame_equal(a.frame, b.frame)
    np.testing.assert_allclose(a.frame["p"], np.exp(-frame["nll"]), rtol=1e-15)
    assert a.sha256 == "sha256:" + hashlib.sha256(csv.read_bytes()).hexdigest()


def test_column_mapping_and_n_c_aliases(tmp_path):
    frame = per_question_frame().rename(columns={"N": "params", "D": "tokens", "nll": "answer_nats"})
    frame["n"], frame["c"] = 10, 3
    obs = read_table(write(tmp_path, frame), columns={"N": "params", "D": "tokens", "nll": "answer_nats"})
    assert {"N", "D", "nll", "p", "n_samples", "n_correct"} <= set(obs.frame.columns)
    assert obs.has_p and obs.has_samples


def test_p_column_gives_nll(tmp_path):
    frame = per_question_frame()
    frame["p"] = np.exp(-frame.pop("nll"))
    obs = read_table(write(tmp_path, frame))
    np.testing.assert_allclose(obs.frame["nll"], -np.log(frame["p"]), rtol=1e-14)


def bad(tmp_path, frame, *fragments, columns=None, name="obs.csv"):
    path = write(tmp_path, frame, name)
    with pytest.raises(ValueError) as err:
        read_table(path, columns)
    for fragment in (str(path),) + fragments:
        assert fragment in str(err.value), str(err.value)
    return str(err.value)


def test_missing_column_names_it_and_the_fix(tmp_path):
    bad(tmp_path, per_question_frame().drop(columns="D"), "missing column 'D'", "--column D=")


def test_missing_sample_count_column(tmp_path):
    frame = per_question_frame()
    frame["n_samples"] = 10
    bad(tmp_path, frame, "missing column 'n_correct'")


@pytest.mark.parametrize("value, problem", [(0.0, "must be > 0"), (-3e6, "must be > 0"),
                                            (np.nan, "not a finite number"), (np.inf, "not a finite number")])
def test_bad_N_names_row_and_line(tmp_path, value, problem):
    frame = per_question_frame()
    frame.loc[5, "N"] = value
    bad(tmp_path, frame, "column 'N'", "row 6 (line 7)", problem)


def test_non_numeric_D(tmp_path):
    frame = per_question_frame().astype({"D": object})
    frame.loc[0, "D"] = "lots"
    bad(tmp_path, frame, "column 'D'", "row 1 (line 2)", "not a finite number")


def test_parquet_rows_have_no_line_numbers(tmp_path):
    frame = per_question_frame()
    frame.loc[2, "D"] = -1.0
    message = bad(tmp_path, frame, "column 'D'", "row 3:", name="obs.parquet")
    assert "(line" not in message


@pytest.mark.parametrize("value", [0.0, 1.5, -0.2])
def test_p_outside_unit_interval(tmp_path, value):
    frame = per_question_frame()
    frame["p"] = np.exp(-frame.pop("nll"))
    frame.loc[3, "p"] = value
    bad(tmp_path, frame, "column 'p'", "row 4 (line 5)", "outside (0, 1]")


def test_negative_nll_and_underflowing_nll(tmp_path):
    frame = per_question_frame()
    frame.loc[1, "nll"] = -0.5
    bad(tmp_path, frame, "column 'nll'", "row 2", "negative")
    frame.loc[1, "nll"] = 800.0
    bad(tmp_path, frame, "column 'nll'", "row 2", "underflow")


def test_nll_and_p_must_agree(tmp_path):
    frame = per_question_frame()
    frame["p"] = np.exp(-frame["nll"])
    frame.loc[0, "p"] = 0.5 * frame.loc[0, "p"]
    bad(tmp_path, frame, "column 'p'", "row 1", "disagrees")


def test_c_greater_than_n(tmp_path):
    frame = per_question_frame()
    frame["n_samples"], frame["n_correct"] = 8, 2
    frame.loc[7, "n_correct"] = 9
    bad(tmp_path, frame, "column 'n_correct'", "row 8 (line 9)", "exceeds n_samples")


def test_fractional_counts(tmp_path):
    frame = per_question_frame()
    frame["n_samples"], frame["n_correct"] = 8, 2.5
    bad(tmp_path, frame, "column 'n_correct'", "whole number")


def aggregated_frame():
    return pd.DataFrame([dict(checkpoint=f"c{i}", N=1e6 * 2**i, D=1e8, k=k, pass_at_k=min(1.0, 0.1 * k * (i + 1)))
                         for i in range(3) for k in (1, 2, 4)])


def test_aggregated_k_greater_than_n(tmp_path):
    frame = aggregated_frame()
    frame["n_samples"] = 4
    frame.loc[2, "n_samples"] = 3
    bad(tmp_path, frame, "column 'k'", "row 3 (line 4)", "exceeds n_samples")


def test_aggregated_pass_at_k_range(tmp_path):
    frame = aggregated_frame()
    frame.loc[4, "pass_at_k"] = 45.0
    bad(tmp_path, frame, "column 'pass_at_k'", "row 5", "outside [0, 1]")


def test_k_grid_beyond_sample_counts(tmp_path):
    frame = per_question_frame()
    frame["n_samples"], frame["n_correct"] = 16, 3
    obs = read_table(write(tmp_path, frame))
    with pytest.raises(ValueError, match=r"column 'n_samples', row 1 \(line 2\).*largest k = 32.*smaller values"):
        k_grid_for(obs, [1, 2, 32], "samples")
    assert list(k_grid_for(obs, None, "samples")) == [1, 2, 4, 8, 16]  # default grid capped at n


def test_duplicates_inconsistent_sizes_and_question_sets(tmp_path):
    frame = per_question_frame()
    bad(tmp_path, pd.concat([frame, frame.iloc[[2]]]), "row 13", "repeats an earlier row's checkpoint and question")
    shifted = frame.copy()
    shifted.loc[1, "N"] = 5e6
    bad(tmp_path, shifted, "column 'N'", "row 2", "differs from an earlier row of the same checkpoint")
    bad(tmp_path, frame.drop(index=5), "do not share one question set", "'c1'")


def test_unrecognised_table_and_bad_mapping(tmp_path):
    bad(tmp_path, pd.DataFrame({"N": [1.0], "D": [2.0], "score": [0.3]}), "cannot tell what the table holds")
    bad(tmp_path, per_question_frame(), "names a column 'params' the file lacks", columns={"N": "params"})
    bad(tmp_path, per_question_frame(), "unknown standard column 'size'", columns={"size": "N"})


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "obs.xlsx").write_text("x")
    with pytest.raises(ValueError, match="save it as .csv or .parquet"):
        read_table(tmp_path / "obs.xlsx")


def test_require_points_message():
    with pytest.raises(ValueError, match=r"t\.csv: 4 points for the chinchilla law, which has 5 parameters"):
        require_points(4, "chinchilla", "t.csv")
    require_points(5, "chinchilla", "t.csv")


def test_loss_points_mean_nll_and_variance(tmp_path):
    frame = per_question_frame(n_q=6)
    N, D, loss, var = loss_points(read_table(write(tmp_path, frame)))
    grouped = frame.groupby("checkpoint")["nll"]
    np.testing.assert_allclose(loss, grouped.mean().to_numpy(), rtol=1e-14)
    np.testing.assert_allclose(var, grouped.var(ddof=1).to_numpy() / 6, rtol=1e-12)
    np.testing.assert_allclose(N, [1e6, 2e6, 4e6])


def test_loss_table_passes_rows_through(tmp_path):
    frame = pd.DataFrame({"N": [1e6, 2e6, 3e6], "D": [1e8, 1e8, 2e8], "loss": [3.0, 2.9, 2.7]})
    N, D, loss, var = loss_points(read_table(write(tmp_path, frame)))
    assert var is None and list(loss) == [3.0, 2.9, 2.7]


def test_pass_at_k_from_p_is_exact_mean(tmp_path):
    frame = per_question_frame()
    obs = read_table(write(tmp_path, frame))
    ckpts, k, acc = pass_at_k_matrix(obs, [1, 3, 10])
    for i, name in enumerate(ckpts.index):
        p = np.exp(-frame.loc[frame.checkpoint == name, "nll"].to_numpy())
        for j, kk in enumerate(k):
            assert acc[i, j] == pytest.approx(np.mean([1 - (1 - pi) ** int(kk) for pi in p]), rel=1e-12)


def test_pass_at_k_from_samples_is_unbiased_mean(tmp_path):
    frame = per_question_frame()
    rng = np.random.default_rng(1)
    frame["n_samples"], frame["n_correct"] = 12, rng.integers(0, 13, len(frame))
    frame = frame.drop(columns="nll")
    obs = read_table(write(tmp_path, frame))
    ckpts, k, acc = pass_at_k_matrix(obs, [1, 4])
    for i, name in enumerate(ckpts.index):
        c = frame.loc[frame.checkpoint == name, "n_correct"].to_numpy()
        want = [np.mean([1 - math.comb(12 - ci, kk) / math.comb(12, kk) for ci in c]) for kk in (1, 4)]
        np.testing.assert_allclose(acc[i], want, rtol=1e-12)


def test_aggregated_pass_at_k_and_missing_k(tmp_path):
    frame = aggregated_frame()
    obs = read_table(write(tmp_path, frame))
    ckpts, k, acc = pass_at_k_matrix(obs)
    assert list(k) == [1, 2, 4] and acc[1, 2] == pytest.approx(0.8)
    obs = read_table(write(tmp_path, frame.drop(index=4)))
    with pytest.raises(ValueError, match="checkpoint 'c1' has no pass_at_k row for k = 2"):
        pass_at_k_matrix(obs)


def test_task_loss_from_p_is_mean_neg_log_and_from_samples_neg_log_mean(tmp_path):
    frame = per_question_frame()
    frame["n_samples"], frame["n_correct"] = 4, 1
    obs = read_table(write(tmp_path, frame))
    ckpts, k, Q = task_loss_matrix(obs, [1, 2], source="p")
    p = np.exp(-frame.loc[frame.checkpoint == "c0", "nll"].to_numpy())
    assert Q[0, 1] == pytest.approx(np.mean(-np.log(1 - (1 - p) ** 2)), rel=1e-12)
    _, _, Qs = task_loss_matrix(obs, [1, 2], source="samples")
    assert Qs[0, 1] == pytest.approx(-np.log(1 - math.comb(3, 2) / math.comb(4, 2)), rel=1e-12)


def test_task_loss_from_samples_with_no_success(tmp_path):
    frame = per_question_frame().drop(columns="nll")
    frame["n_samples"], frame["n_correct"] = 4, 0
    frame.loc[frame.checkpoint == "c2", "n_correct"] = 1
    with pytest.raises(ValueError, match="checkpoint 'c0' solves no question at k = 1"):
        task_loss_matrix(read_table(write(tmp_path, frame)), [1, 2])


def test_task_loss_from_p_does_not_underflow_when_every_question_is_solved(tmp_path):
    frame = per_question_frame()
    frame.loc[frame.checkpoint == "c2", "nll"] = [1e-3, 0.02, 0.3, 0.6]  # p = 0.999 .. 0.55
    ckpts, k, Q = task_loss_matrix(read_table(write(tmp_path, frame)))  # default k grid, 1 .. 1024
    p = np.exp(-frame.loc[frame.checkpoint == "c2", "nll"].to_numpy())
    assert np.all(Q > 0) and np.all(np.isfinite(Q))
    # k = 16: mean of -log(1 - (1 - p)^k) ~ mean (1 - p)^k, far below what 1 - pass@k can resolve
    assert Q[2, list(k).index(16.0)] == pytest.approx(np.mean(-np.log1p(-(1 - p) ** 16)), rel=1e-12)
    assert Q[2, -1] == pytest.approx(np.mean((1 - p) ** 1024), rel=1e-12)  # ~ 1e-285, no longer 0
    frame.loc[frame.checkpoint == "c2", "nll"] = 0.05  # p = 0.95: (1 - p)^1024 ~ 1e-1340 for every question
    assert task_loss_matrix(read_table(write(tmp_path, frame)))[2][2, -1] == np.finfo(float).tiny
    frame.loc[frame.checkpoint == "c2", "nll"] = 0.0  # p = 1 exactly: the loss is 0, and stays so
    assert np.all(task_loss_matrix(read_table(write(tmp_path, frame)))[2][2] == 0)


def test_likelihood_statistics(tmp_path):
    frame = per_question_frame()
    frame["n_samples"], frame["n_correct"] = 5, np.arange(len(frame)) % 3
    obs = read_table(write(tmp_path, frame))
    ckpts, beta = likelihood_data(obs, "p")
    nll = frame.loc[frame.checkpoint == "c1", "nll"].to_numpy()
    assert beta["sum_log_p"][1] == pytest.approx(-nll.sum())
    assert beta["sum_log_1mp"][1] == pytest.approx(np.log(1 - np.exp(-nll)).sum())
    _, bb = likelihood_data(obs, "samples")
    assert bb["count"].sum() == len(frame) and set(bb["c"]) == {0, 1, 2}


def test_collect_joins_evaluations_and_validates(tmp_path):
    frame = per_question_frame()
    evals = {}
    for name, part in frame.groupby("checkpoint"):
        evals[name] = write(tmp_path, part.drop(columns=["checkpoint", "N", "D"]), f"{name}.parquet")
    sizes = {name: {"N": g.N.iloc[0], "D": g.D.iloc[0]} for name, g in frame.groupby("checkpoint")}
    out = tmp_path / "task" / "observations.parquet"
    table = collect_observations(evals, sizes, out)
    assert len(table) == len(frame) and read_table(out).form == "per_question"
    broken = pd.read_parquet(evals["c1"])
    broken.loc[2, "nll"] = -1.0
    broken.to_parquet(evals["c1"], index=False)
    with pytest.raises(ValueError, match=r"c1\.parquet: column 'nll', row 3: .*negative"):
        collect_observations(evals, sizes, tmp_path / "again.parquet")
    assert not (tmp_path / "again.parquet").exists()


def test_default_k_grid():
    assert measure.DEFAULT_K_GRID == tuple(float(2**i) for i in range(11))


def test_collect_joins_imported_tables_given_p_or_nll(tmp_path):
    """An imported per-question table with p alone (or nll) joins evaluated checkpoints; one that lacks a
    measurement the evaluations carry is refused by name, never padded with NaN."""
    frame = per_question_frame(n_ckpt=3)
    evaluated = frame[frame["checkpoint"] != "c2"].assign(n_answer_tokens=2)
    evals, sizes = {}, {}
    for name, part in evaluated.groupby("checkpoint"):
        evals[name] = write(tmp_path, part.drop(columns=["checkpoint", "N", "D"]), f"{name}.parquet")
        sizes[name] = {"N": part.N.iloc[0], "D": part.D.iloc[0]}
    mine = frame[frame["checkpoint"] == "c2"].assign(p=lambda d: np.exp(-d["nll"])).drop(columns=["nll"])
    imported = write(tmp_path, mine.assign(n_answer_tokens=2), "mine.csv")
    table = collect_observations(evals, sizes, tmp_path / "joint.parquet", imported=[imported])
    assert not table.isna().any().any() and "p" not in table
    joint = read_table(tmp_path / "joint.parquet").frame.set_index(["checkpoint", "question"])["nll"]
    np.testing.assert_allclose(joint.loc["c2"], frame[frame["checkpoint"] == "c2"].set_index("question")["nll"])
    lacking = write(tmp_path, mine, "lacking.csv")
    with pytest.raises(ValueError, match=r"lacking\.csv: no 'n_answer_tokens' column, but .*c\d\.parquet"):
        collect_observations(evals, sizes, tmp_path / "again.parquet", imported=[lacking])


def test_loss_table_of_the_validation_losses_is_a_loss_table(tmp_path):
    # rule pretrain_losses: the val_loss JSONs (evaluate.write_val_loss) -> the pretraining loss law's data
    paths = []
    for i, (N, D, loss) in enumerate(((9472, 176128, 4.1), (25600, 65024, 3.9))):
        paths.append(tmp_path / f"c{i}.json")
        paths[-1].write_text(json.dumps({"cell": f"c{i}", "N": N, "N_non_embedding": N // 2, "D": D,
                                         "C_train": 6.0 * N * D, "val_loss": loss, "val_tokens": 5000}))
    table = obs_mod.write_loss_table(paths, tmp_path / "losses.csv")
    assert list(table.columns) == ["checkpoint", "N", "D", "loss", "N_non_embedding", "C_train"]
    assert table.to_dict("list") == {"checkpoint": ["c0", "c1"], "N": [9472, 25600], "D": [176128, 65024],
                                     "loss": [4.1, 3.9], "N_non_embedding": [4736, 12800],
                                     "C_train": [6.0 * 9472 * 176128, 6.0 * 25600 * 65024]}
    obs = read_table(tmp_path / "losses.csv")
    assert obs.form == "loss" and list(obs.frame["checkpoint"]) == ["c0", "c1"]
