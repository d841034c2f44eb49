"""The paired question bootstrap behind every interval on a measured comparison."""

import numpy as np
import pytest

from t2scaling.bootstrap import question_bootstrap


def test_interval_matches_the_normal_approximation_of_a_mean():
    rng = np.random.default_rng(1)
    values = rng.random((1, 4000)) ** 3  # skewed per-question pass@k values
    ci = question_bootstrap([values], seed=0)
    half = 1.959964 * values.std() / np.sqrt(values.shape[1])
    assert ci["mean"][0] == pytest.approx(values.mean(), rel=1e-14)
    assert ci["ci_low"][0] == pytest.approx(values.mean() - half, abs=0.1 * half)
    assert ci["ci_high"][0] == pytest.approx(values.mean() + half, abs=0.1 * half)


def test_gain_interval_is_paired_over_questions():
    rng = np.random.default_rng(2)
    base = rng.random(500)
    rows = np.stack([base, base + 0.05, rng.random(500)])  # row 1 beats row 0 by exactly 0.05 on every question
    ci = question_bootstrap([rows], reference=0, seed=3)
    assert ci["gain"][0] == 0.0 and ci["gain_ci_low"][0] == 0.0 and ci["gain_ci_high"][0] == 0.0
    assert ci["gain_ci_low"][1] == pytest.approx(0.05, abs=1e-12)
    assert ci["gain_ci_high"][1] == pytest.approx(0.05, abs=1e-12)
    # An unrelated row's gain interval is about sqrt(2) times its own interval: nothing cancels.
    assert ci["gain_ci_high"][2] - ci["gain_ci_low"][2] > 1.2 * (ci["ci_high"][2] - ci["ci_low"][2])


def test_macro_resamples_each_task_and_averages_task_means():
    rng = np.random.default_rng(4)
    a, b = rng.random((2, 300)), rng.random((2, 50))
    ci = question_bootstrap([a, b], reference=0, seed=5)
    np.testing.assert_allclose(ci["mean"], (a.mean(1) + b.mean(1)) / 2, rtol=1e-14)
    assert np.all(ci["ci_low"] < ci["mean"]) and np.all(ci["mean"] < ci["ci_high"])
    again = question_bootstrap([a, b], reference=0, seed=5)
    assert all(np.array_equal(ci[key], again[key]) for key in ci)  # deterministic given the seed


@pytest.mark.parametrize("arrays, message", [
    ([np.zeros((2, 3)), np.zeros((3, 3))], "the same rows"),
    ([np.array([[0.1, np.nan]])], "non-finite"),
    ([np.zeros((1, 0))], "no questions"),
])
def test_bad_input_is_refused(arrays, message):
    with pytest.raises(ValueError, match=message):
        question_bootstrap(arrays)
