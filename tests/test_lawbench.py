"""The law benchmark: splits hold out what they say, every law and baseline is scored on held-out runs, the
Beta-Chinchilla law recovers its parameters and plans a frontier, the shipped data load with provenance, and
`t2scaling lawbench` runs end to end. The unshipped sources are read from ../shared/holdout (see its SOURCE.md)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from t2scaling import cli, lawbench, observations
from t2scaling.fit import fit_observations
from t2scaling.frontier import frontier
from t2scaling.laws import beta_chinchilla_ab, get_law

HOLDOUT = Path(__file__).resolve().parents[2] / "shared" / "holdout"
CHIN = dict(A=400.0, B=900.0, E=1.7, alpha=0.34, beta=0.29)
BETA = dict(A=30.0, B=60.0, E=0.05, alpha=0.3, beta=0.25, nu0=0.5, nu1=-1.0)
N_GRID = 1e6 * 4.0 ** np.arange(5)  # 1M..256M params
RATIOS = (5, 10, 20, 40, 80)  # tokens per parameter


def grid():
    N = np.repeat(N_GRID, len(RATIOS))
    return N, N * np.tile(RATIOS, len(N_GRID))


def loss_obs(noise=0.0):
    N, D = grid()
    loss = get_law("chinchilla").predict(CHIN, N, D) * np.exp(noise * np.random.default_rng(1).standard_normal(len(N)))
    frame = pd.DataFrame({"checkpoint": [f"r{i}" for i in range(len(N))], "N": N, "D": D, "loss": loss})
    return observations.from_frame(frame, "synthetic loss runs")


def sample_obs(questions=400, n=64, seed=0):
    """Per-question sample counts drawn from the Beta-Chinchilla law itself."""
    rng = np.random.default_rng(seed)
    N, D = grid()
    a, b = beta_chinchilla_ab(BETA, N, D)
    p = rng.beta(a[:, None], b[:, None], (len(N), questions))
    c = rng.binomial(n, p)
    frame = pd.DataFrame({"checkpoint": np.repeat([f"r{i}" for i in range(len(N))], questions),
                          "N": np.repeat(N, questions), "D": np.repeat(D, questions),
                          "question": np.tile(np.arange(questions), len(N)), "n_samples": n, "n_correct": c.ravel()})
    return observations.from_frame(frame, "synthetic samples")


def test_splits_hold_out_the_top_fifth_of_the_log_span_and_the_overtrained_runs():
    N, D = grid()
    for split in lawbench.SPLITS:
        fit, held = lawbench.split_masks(N, D, split)
        assert held.any() and fit.any() and not (fit & held).any()
    logD, logN = np.log(D), np.log(N)
    fit, held = lawbench.split_masks(N, D, "later")
    np.testing.assert_array_equal(held, logD >= logD.max() - 0.2 * np.ptp(logD))
    fit, held = lawbench.split_masks(N, D, "larger")
    np.testing.assert_array_equal(held, N == N.max())  # 256M is the only size in the top fifth of the span
    fit, held = lawbench.split_masks(N, D, "both")
    # the largest model at D >= 3.9e9, the top fifth of log D (5e6..2.05e10)
    assert set(zip(N[held], D[held])) == {(256e6, 256e6 * r) for r in (20, 40, 80)}
    assert not ((N[fit] == N.max()) | (logD[fit] >= logD.max() - 0.2 * np.ptp(logD))).any()
    fit, held = lawbench.split_masks(N, D, "overtrained")
    np.testing.assert_array_equal(held, D / N > 20)
    with pytest.raises(ValueError, match="unknown split 'sideways'; choose from later"):
        lawbench.split_masks(N, D, "sideways")
    # one model size: no `larger` part at all (the split is then skipped, not faked)
    assert not lawbench.split_masks(np.full(3, 1e6), [1e7, 2e7, 4e7], "larger")[1].any()


def test_a_loss_law_that_is_true_beats_the_nearest_run_and_the_table_has_its_columns():
    points, skipped = lawbench.bench_dataset(loss_obs(), "synthetic", restarts=4)
    assert not skipped
    table = lawbench.summarise(points)
    assert list(table.columns) == lawbench.COLUMNS
    pooled = table[table["k"] == "all"].set_index(["split", "law"])
    assert set(pooled.index.get_level_values("law")) == {"chinchilla", "nearest_checkpoint"}
    assert set(table["metric"]) == {"task_loss"}
    for split in lawbench.SPLITS:
        assert pooled.loc[(split, "chinchilla"), "mean_rel_error"] < 1e-6  # the law generated the data
        assert pooled.loc[(split, "nearest_checkpoint"), "mean_rel_error"] > 1e-3
        assert pooled.loc[(split, "chinchilla"), "converged"]
    later = pooled.loc[("later", "chinchilla")]
    # the top fifth of log D (5e6..2.05e10) starts at 3.9e9: 64M x 80 and 256M x 20, 40, 80 tokens/param
    assert (later.n_fit, later.n_held_out) == (21, 4)
    text = lawbench.markdown(table, [("x", "later", "2 runs to fit (needs 5), 1 held out")])
    assert "| chinchilla |" in text and "**" in text and "## Skipped" in text and "x, later: 2 runs" in text


def test_beta_chinchilla_recovers_its_parameters_from_samples_and_plans_a_frontier():
    result = fit_observations("beta_chinchilla", sample_obs(), restarts=8)
    assert result.converged and result.law == "beta_chinchilla" and result.options["likelihood"] == "betabinom"
    for name in ("alpha", "beta", "nu1"):
        assert result.params[name] == pytest.approx(BETA[name], rel=0.25, abs=0.1), name
    N, D = grid()
    truth = get_law("beta_chinchilla").predict(BETA, N[:, None], D[:, None], np.array([1.0, 8.0, 64.0]))
    np.testing.assert_allclose(result.predict(N[:, None], D[:, None], np.array([1.0, 8.0, 64.0])), truth, rtol=0.1)
    table = frontier([result], c_train=[1e15, 1e17], c_inf=[1e9])
    assert table["N_star"].notna().all() and (table["predicted_metric"].between(0, 1)).all()
    assert table["metric_name"].iloc[0] == "accuracy"


def test_beta_chinchilla_refuses_tables_without_per_question_data(tmp_path):
    with pytest.raises(ValueError, match="beta_chinchilla needs a per-question table"):
        fit_observations("beta_chinchilla", loss_obs())


def test_shipped_data_load_with_provenance_and_unshipped_ones_name_the_fix(tmp_path):
    for name, dataset in lawbench.DATASETS.items():
        if dataset.shipped:
            obs = lawbench.load(name)
            assert obs.form == "loss" and len(obs.frame) >= 30, name
            assert (lawbench.shipped_dir() / dataset.file).parent.joinpath("SOURCE.md").is_file()
    assert set(lawbench.available()) == {n for n, d in lawbench.DATASETS.items() if d.shipped}
    with pytest.raises(ValueError, match="pythia_gsm8k' is not shipped .* pass --data-dir DIR where "
                                         "DIR/schaeffer_monkeys/pythia_nd_grid_gsm8k_math_per_problem.csv"):
        lawbench.load("pythia_gsm8k")
    with pytest.raises(FileNotFoundError, match="dataset 'chinchilla_epoch' not found there"):
        lawbench.load("chinchilla_epoch", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        lawbench.load("nope")


@pytest.mark.skipif(not HOLDOUT.is_dir(), reason="../shared/holdout (the unshipped sources) is not here")
def test_on_pythia_gsm8k_beta_chinchilla_beats_the_nearest_run_on_the_both_split():
    obs = lawbench.load("pythia_gsm8k", HOLDOUT)
    ckpts = observations.checkpoints(obs)
    assert len(ckpts) == 79 and obs.frame.groupby("checkpoint").size().nunique() == 1  # 2 solve nothing
    points, skipped = lawbench.bench_dataset(obs, "pythia_gsm8k", ["both"], laws=["beta_chinchilla"], restarts=32)
    assert not skipped
    pooled = lawbench.summarise(points).query("k == 'all' and metric == 'pass_at_k'").set_index("law")
    assert set(pooled.index) == {"beta_chinchilla", "chinchilla", "nearest_checkpoint"}
    assert pooled.loc["beta_chinchilla", "converged"]
    assert pooled.loc["beta_chinchilla", "mean_rel_error"] < 0.5 < pooled.loc["nearest_checkpoint", "mean_rel_error"]


def test_cli_writes_the_table_markdown_and_a_figure_per_dataset(tmp_path, capsys):
    out = tmp_path / "bench"
    assert cli.main(["lawbench", "--data", "gadre_c4", "porian_rw", "--split", "later", "overtrained",
                     "--restarts", "2", "--out", str(out)]) == 0
    table = pd.read_csv(out / "lawbench.csv")
    assert list(table.columns) == lawbench.COLUMNS
    assert set(table["dataset"]) == {"gadre_c4", "porian_rw"} and set(table["split"]) == {"later", "overtrained"}
    assert (out / "lawbench.md").read_text().count("| chinchilla |") == 2
    assert "mean_rel_error_pct" in (out / "lawbench.html").read_text()
    for name in ("gadre_c4", "porian_rw"):
        assert (out / f"lawbench_{name}.png").stat().st_size > 10_000 and (out / f"lawbench_{name}.pdf").is_file()
    assert "gadre_c4" in capsys.readouterr().out
    assert cli.main(["lawbench", "--data", "pythia_math", "--out", str(out)]) == 2
    assert "not shipped" in capsys.readouterr().err
