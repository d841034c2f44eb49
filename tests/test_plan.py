"""`t2scaling plan` and the units formatting it prints with."""

import re

import numpy as np
import pytest

from t2scaling import cli
from t2scaling.fitresult import FitResult
from t2scaling.frontier import frontier
from t2scaling.plan import format_plan, plan
from t2scaling.units import format_count, format_flops, format_number, format_params, format_sci, format_tokens

CHIN = dict(A=478.0, B=2143.0, E=1.817, alpha=0.347, beta=0.367)
A1 = dict(CHIN, G=1.0, gamma=0.3)
A2 = dict(CHIN, theta0=2.5, theta1=4.0, theta2=0.9, theta3=1.0, theta4=-0.2)


@pytest.mark.parametrize("value, text", [
    (1.23e9, "1.2B"), (3.4e12, "3.4T"), (5.2e6, "5.2M"), (123456, "123K"), (512, "512"), (12.4e9, "12B"),
    (999.7e6, "1.0B"), (9.96e6, "10M"), (2e15, "2.0e15"), (float("nan"), "n/a"),
])
def test_format_count(value, text):
    assert format_count(value) == text


def test_units_strings():
    assert format_params(1.23e9) == "1.2B params"
    assert format_tokens(3.4e12) == "3.4T tokens"
    assert format_flops(1e23) == "1.0e23 FLOPs"
    assert format_flops(1.4e11) == "1.4e11 FLOPs"
    assert format_sci(3.2e-5) == "3.2e-5"
    assert format_number(2833.4) == "2,833"
    assert format_number(58.33) == "58.3"
    assert format_number(9.999) == "10.0"
    assert format_number(1.0) == "1.00"


def write_fit(path, **kwargs):
    FitResult(**kwargs).to_json(str(path))
    return str(path)


def test_plan_is_the_frontier_row():
    fit = FitResult(law="approach2", params=A2, task="arc")
    row = plan(fit, 1e23, 1.4e11)
    table = frontier([fit], c_train=[1e23], c_inf=[1.4e11])
    assert row.equals(table.iloc[0])


def test_cli_plan_prints_recommendation_and_baselines(tmp_path, capsys):
    path = write_fit(tmp_path / "arc.json", law="approach2", params=A2, task="arc")
    assert cli.main(["plan", path, "--c-train", "1e23", "--c-inf", "1.4e11"]) == 0
    text = capsys.readouterr().out
    row = plan(FitResult(law="approach2", params=A2, task="arc"), 1e23, 1.4e11)
    assert "task 'arc', law approach2 (pass@k accuracy, higher is better)" in text
    assert "C_train = 1.0e23 FLOPs, C_inf = 1.4e11 FLOPs per served token" in text
    optimum = next(line for line in text.splitlines() if line.strip().startswith("T² optimum "))
    for piece in (format_params(row["N_star"]), format_tokens(row["D_star"]), format_number(row["k_star"]),
                  format_number(row["tokens_per_param"]), f"{row['predicted_metric']:.4f}"):
        assert piece in optimum
    chinchilla = next(line for line in text.splitlines() if "Chinchilla (k = 1)" in line)
    assert format_params(row["chinchilla_N"]) in chinchilla and f"{row['chinchilla_metric']:.4f}" in chinchilla
    corrected = next(line for line in text.splitlines() if "inference-corrected k" in line)
    assert format_number(row["chinchilla_k"]) in corrected
    assert f"{row['gain_vs_chinchilla']:+.4f} over Chinchilla at k = 1" in text
    assert f"{row['gain_vs_chinchilla_inference_corrected']:+.4f} over inference-corrected Chinchilla" in text


def test_plan_says_when_chinchilla_cannot_serve_and_shows_bands():
    rng = np.random.default_rng(0)
    replicates = [{k: v * (1 + 0.03 * rng.standard_normal()) for k, v in A1.items()} for _ in range(5)]
    fit = FitResult(law="approach1", params=A1, task="gsm", bootstrap_params=replicates)
    text = format_plan(plan(fit, 1e23, 2e9))
    assert "task loss -log pass@k (nats), lower is better" in text
    assert "cannot serve even one sample per token" in text and "k = 0.0335 < 1" in text
    assert "Bootstrap 5-95 % band (5 replicates): N* " in text


@pytest.mark.parametrize("argv, message", [
    (["--c-train", "1e23", "--c-inf", "1e3"], "no feasible plan for C_train = 1.0e23 FLOPs and C_inf = 1.0e3 FLOPs"),
    (["--c-train", "1e22:1e24:3", "--c-inf", "2e9"], "--c-train '1e22:1e24:3': plan takes one budget"),
    (["--c-train", "lots", "--c-inf", "2e9"], "--c-train 'lots': expected"),
])
def test_cli_plan_errors(tmp_path, capsys, argv, message):
    path = write_fit(tmp_path / "fit.json", law="approach1", params=A1)
    assert cli.main(["plan", path, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("t2scaling plan: error:") and message in err


def test_cli_plan_on_chinchilla_needs_no_c_inf_and_prints_only_k1(tmp_path, capsys):
    path = write_fit(tmp_path / "pretrain.json", law="chinchilla", params=CHIN, task="pretrain")
    assert cli.main(["plan", path, "--c-train", "1e25"]) == 0
    text = capsys.readouterr().out
    row = plan(FitResult(law="chinchilla", params=CHIN, task="pretrain"), 1e25)
    assert row["N_star"] > 3e11  # not capped at C_inf/2 by any inference budget
    assert "Chinchilla optimum (k = 1)" in text and format_params(row["N_star"]) in text
    assert "T² optimum" not in text and "no inference budget applies" in text


def test_plan_warns_when_it_extrapolates():
    fit = FitResult(law="approach2", params=A2, task="arc")
    fit.data_range = dict(N=[1e6, 1e8], D=[1e8, 1e10], C_train=[1e15, 1e18], tokens_per_param=[5.0, 200.0],
                          k=[1.0, 64.0])
    text = format_plan(plan(fit, 1e23, 1.4e11))
    last = text.splitlines()[-1]
    assert last.startswith("warning: this plan extrapolates beyond the fitted data in ")
    assert "C_train" in last and "the fit saw C_train 1.0e15 FLOPs - 1.0e18 FLOPs" in last


def test_cli_plan_on_a_k_law_without_c_inf_says_so(tmp_path, capsys):
    path = write_fit(tmp_path / "fit.json", law="approach1", params=A1)
    assert cli.main(["plan", path, "--c-train", "1e23"]) == 2
    assert "depends on k; give --c-inf" in capsys.readouterr().err


def table_rows(text):
    """The plan's table lines (label, N, D, tokens/param, k, metric), split on the two-space column gaps."""
    return [re.split(r" {2,}", line.strip()) for line in text.splitlines()
            if "params" in line and "tokens" in line and not line.startswith(("Bootstrap", "The Chinchilla"))]


def test_plan_table_columns_never_run_together(tmp_path, capsys):
    path = write_fit(tmp_path / "a.json", law="approach1", params=A1, task="a")
    assert cli.main(["plan", path, "--c-train", "1e29", "--c-inf", "1.4e16"]) == 0
    text = capsys.readouterr().out
    rows = table_rows(text)
    assert len(rows) == 4 and all(len(r) == 6 for r in rows), rows  # every cell separated from the next
    row = plan(FitResult(law="approach1", params=A1, task="a"), 1e29, 1.4e16)
    assert rows[0][1:5] == [format_params(row["N_star"]), format_tokens(row["D_star"]),
                            format_number(row["tokens_per_param"]), format_number(row["k_star"])]
    lines = [line for line in text.splitlines() if "params" in line and "tokens" in line]
    header = next(line for line in text.splitlines() if "tokens/param" in line)
    ends = {len(line) for line in lines + [header]}
    assert len(ends) == 1  # right-aligned: the metric column ends in one place on every line
    assert "np.float64" not in text


def test_cli_plan_macro_averages_the_tasks(tmp_path, capsys):
    a = write_fit(tmp_path / "a.json", law="approach1", params=A1, task="a")
    b = write_fit(tmp_path / "b.json", law="approach1", params=dict(A1, A=300.0), task="b")
    assert cli.main(["plan", a, b, "--macro", "--c-train", "1e23", "--c-inf", "1.4e11"]) == 0
    text = capsys.readouterr().out
    fits = [FitResult(law="approach1", params=A1, task="a"), FitResult(law="approach1", params=dict(A1, A=300.0),
                                                                        task="b")]
    row = frontier(fits, c_train=[1e23], c_inf=[1.4e11], macro=True).iloc[0]
    assert "T² plan for the mean over 2 tasks (a, b), law approach1" in text
    assert table_rows(text)[0][1] == format_params(row["N_star"]) and f"{row['predicted_metric']:.4f}" in text
    # without --macro: one plan per fit
    assert cli.main(["plan", a, b, "--c-train", "1e23", "--c-inf", "1.4e11"]) == 0
    text = capsys.readouterr().out
    assert "T² plan for task 'a'" in text and "T² plan for task 'b'" in text and "mean over" not in text
    single = plan(fits[1], 1e23, 1.4e11)
    assert format_params(single["N_star"]) in text


def test_cli_plan_macro_of_different_laws_is_refused(tmp_path, capsys):
    a = write_fit(tmp_path / "a.json", law="approach1", params=A1, task="a")
    b = write_fit(tmp_path / "b.json", law="approach2", params=A2, task="b")
    assert cli.main(["plan", a, b, "--macro", "--c-train", "1e23", "--c-inf", "1.4e11"]) == 2
    assert "averages fits of one law" in capsys.readouterr().err


def test_cli_plan_on_chinchilla_with_c_inf_still_prints_only_k1(tmp_path, capsys):
    path = write_fit(tmp_path / "pretrain.json", law="chinchilla", params=CHIN, task="pretrain")
    assert cli.main(["plan", path, "--c-train", "1e25", "--c-inf", "1.4e11"]) == 0
    text = capsys.readouterr().out
    assert "T² optimum" not in text and "inference-corrected" not in text
    rows = table_rows(text)
    assert len(rows) == 1 and rows[0][0] == "Chinchilla optimum (k = 1)" and rows[0][4] == "1.00"
    assert "--c-inf does not apply to law chinchilla" in text
