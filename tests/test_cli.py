"""The `t2scaling` command line as a person meets it: help text with defaults, one-line errors that name the file,
task names taken from paths, and the README's CLI examples run as written."""

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.optimize import brentq
from scipy.special import digamma, expit

from t2scaling import cli, fit
from t2scaling.cli import fit as fit_cli
from t2scaling.fitresult import FitResult, load_fit
from t2scaling.laws import get_law

ROOT = Path(__file__).resolve().parents[1]
CHIN = dict(A=478.0, B=2143.0, E=1.817, alpha=0.347, beta=0.367)
A1 = dict(CHIN, G=1.0, gamma=0.3)
TRUTH = dict(A=50.0, B=200.0, E=1.0, alpha=0.3, beta=0.28, theta0=3.0, theta1=2.0, theta2=0.9, theta3=1.5,
             theta4=-0.2)
TORCH_FREE = ("fit", "frontier", "plan", "extrapolate")


def per_question_table(path, n_questions=60):
    """Per-question NLLs at 20 cells of 5-40 tokens per parameter and 3 overtrained ones (300): p as quantiles
    (deterministic) of a Beta whose mean is the Approach 2 link of the Chinchilla task NLL."""
    sizes = 1e6 * 2.0 ** np.arange(5)
    cells = [(n, n * r) for n in sizes for r in (5, 10, 20, 40)] + [(n, n * 300) for n in sizes[:3]]
    rows = []
    for i, (N, D) in enumerate(cells):
        L = get_law("chinchilla").predict(TRUTH, N, D)
        mu = TRUTH["theta2"] * expit(-TRUTH["theta1"] * (L - TRUTH["theta0"]))
        # the Beta precision whose mean -log p is L, so the checkpoint's task NLL follows Chinchilla exactly
        nu = np.exp(brentq(lambda v: digamma(np.exp(v)) - digamma(mu * np.exp(v)) - L, -10, 20))
        p = stats.beta.ppf((np.arange(n_questions) + 0.5) / n_questions, mu * nu, (1 - mu) * nu)
        rows += [dict(checkpoint=f"c{i}", N=N, D=D, question=f"q{j}", nll=-np.log(p[j])) for j in range(n_questions)]
    frame = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path) if path.suffix == ".parquet" else frame.to_csv(path, index=False)
    return path


def loss_table(path):
    """Chinchilla losses (columns N, D, loss) on a 4 x 4 grid with a little deterministic noise."""
    N, D = (a.ravel() for a in np.meshgrid(1e6 * 3.0 ** np.arange(4), 2e7 * 3.0 ** np.arange(4)))
    noise = 1 + 0.002 * np.sin(np.arange(N.size))
    pd.DataFrame(dict(N=N, D=D, loss=get_law("chinchilla").predict(CHIN, N, D) * noise)).to_csv(path, index=False)
    return path


def write_fit(path, **kwargs):
    FitResult(**kwargs).to_json(str(path))
    return str(path)


def options(command):
    """(subparser, its actions) for a command, nested sub-commands included."""
    parser = cli.build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    found = [(sub, sub._actions)]
    for action in sub._actions:
        if isinstance(action, argparse._SubParsersAction):
            found += [(p, p._actions) for p in action.choices.values()]
    return found


# ---------------------------------------------------------------------------------------------------- help

def test_top_level_help_describes_the_tool_for_a_user(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert "Train-to-Test (T²) scaling laws" in text and "samples" in text
    assert "`t2scaling COMMAND --help`" in text  # the epilog keeps its layout


@pytest.mark.parametrize("command", TORCH_FREE)
def test_every_option_has_help_and_shows_its_default(command, capsys):
    for parser, actions in options(command):
        for action in actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"{command}: {action.dest} has no help text"
        assert isinstance(parser.formatter_class("x"), cli.HelpFormatter)
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = capsys.readouterr().out
    assert "(default: " in text and "(default: None)" not in text and "(default: False)" not in text


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_command_documents_every_option(command):
    """Every option and positional of every command (nested sub-commands and their ACTION included) has help."""
    missing = [f"{parser.prog}: {'/'.join(action.option_strings) or action.dest}"
               for parser, actions in options(command) for action in actions
               if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()]
    assert not missing, f"options without help text: {', '.join(missing)}"


def test_train_help_runs_and_explains_the_micro_batch():
    result = subprocess.run([sys.executable, "-m", "t2scaling.cli", "train", "--help"], capture_output=True,
                            text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "--micro-batch-size" in text and "sequences per forward pass on one device" in text
    assert "micro-batch" in text and "(default: 1-sqrt)" in text


def test_defaults_show_in_plan_and_frontier_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["frontier", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "smallest model searched (default: 1000.0)" in text and "(default: 5,95)" in text
    with pytest.raises(SystemExit):
        cli.main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 500)" in text  # --restarts, from the config schema


def test_nested_validate_subcommands_show_defaults_too():
    parsers = [p for p, _ in options("validate")]
    assert len(parsers) == 3 and all(p.formatter_class is cli.HelpFormatter for p in parsers)


# ----------------------------------------------------------------------------------------------- task names

@pytest.mark.parametrize("path, task", [
    ("results/tasks/knowledge/observations.parquet", "knowledge"),
    ("data/arc_easy.csv", "arc_easy"),
    ("observations.csv", "observations"),
])
def test_task_name_from_the_table_path(path, task):
    assert fit_cli.task_name("", path) == task and fit_cli.task_name(None, path) == task
    assert fit_cli.task_name("mine", path) == "mine"


def test_cli_fit_without_task_takes_it_from_the_path(tmp_path, capsys):
    table = loss_table(tmp_path / "loss.csv")
    nested = tmp_path / "results" / "tasks" / "knowledge" / "observations.csv"
    nested.parent.mkdir(parents=True)
    shutil.copy(table, nested)
    assert cli.main(["fit", "chinchilla", str(nested), "--out", str(tmp_path / "a.json")]) == 0
    assert load_fit(tmp_path / "a.json").task == "knowledge"
    assert "(task knowledge)" in capsys.readouterr().out
    assert cli.main(["fit", "chinchilla", str(table), "--out", str(tmp_path / "b.json")]) == 0
    assert load_fit(tmp_path / "b.json").task == "loss"
    assert cli.main(["fit", "chinchilla", str(table), "--task", "pre", "--out", str(tmp_path / "c.json")]) == 0
    assert load_fit(tmp_path / "c.json").task == "pre"


# -------------------------------------------------------------------------------------------------- errors

def run_error(capsys, argv):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err and len(err.splitlines()) == 1, captured.err
    assert err.startswith(f"t2scaling {argv[0]}: error: ")
    assert "np.float64" not in err and "np.int64" not in err
    return err


def test_a_parquet_table_given_as_fit_json(tmp_path, capsys):
    table = per_question_table(tmp_path / "observations.parquet", n_questions=4)
    err = run_error(capsys, ["plan", str(table), "--c-train", "1e23", "--c-inf", "1e11"])
    assert f"{table}: not a fit JSON (a Parquet file" in err
    err = run_error(capsys, ["frontier", str(table), "--c-train", "1e23", "--c-inf", "1e11",
                             "--out", str(tmp_path / "f.csv")])
    assert f"{table}: not a fit JSON" in err


@pytest.mark.parametrize("content, message", [
    (b"[1, 2]", "not a fit JSON (its top level is a list, expected an object with 'law' and 'params')"),
    (b'"approach1"', "not a fit JSON (its top level is a string"),
    (b"N,D,loss\n1,2,3\n", "not a fit JSON (Expecting value"),
    (b"\xff\xfe\x00binary", "not a fit JSON (binary, not UTF-8 text"),
    (json.dumps(dict(law="nope", params=CHIN)).encode(), "unknown law 'nope' in the fit JSON; known laws: "),
    (json.dumps(dict(law="chinchilla", params=[1, 2])).encode(), "'params' is a list"),
    (json.dumps(dict(law="chinchilla", params=dict(CHIN, A="big"))).encode(), "could not convert string to float"),
    (json.dumps(dict(law="approach1", params=CHIN)).encode(), "lacks parameters ['G', 'gamma']"),
])
def test_bad_fit_json_names_the_file(tmp_path, capsys, content, message):
    path = tmp_path / "fit.json"
    path.write_bytes(content)
    err = run_error(capsys, ["plan", str(path), "--c-train", "1e23", "--c-inf", "1e11"])
    assert f"{path}: " in err and message in err


def test_missing_fit_json_names_the_file(tmp_path, capsys):
    err = run_error(capsys, ["plan", str(tmp_path / "nope.json"), "--c-train", "1e23"])
    assert f"{tmp_path / 'nope.json'}: fit JSON not found" in err


def test_non_utf8_csv_names_the_file(tmp_path, capsys):
    path = tmp_path / "latin1.csv"
    path.write_bytes("N,D,loss,note\n1e6,2e7,3.0,caf\xe9\n".encode("latin-1"))
    err = run_error(capsys, ["fit", "chinchilla", str(path)])
    assert f"{path}: cannot read the table: not UTF-8 text (found byte 0xe9); save the CSV as UTF-8" in err


def test_a_csv_named_parquet_names_the_file(tmp_path, capsys):
    path = tmp_path / "table.parquet"
    path.write_text("N,D,loss\n1,2,3\n")
    err = run_error(capsys, ["fit", "chinchilla", str(path)])
    assert f"{path}: cannot read the table (" in err and "check it is valid Parquet" in err


def test_runtime_error_is_one_line_naming_the_command(tmp_path, capsys, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("the optimiser gave up")

    monkeypatch.setattr(fit_cli, "fit_table", boom)
    err = run_error(capsys, ["fit", "chinchilla", str(loss_table(tmp_path / "l.csv"))])
    assert err == "t2scaling fit: error: the optimiser gave up"


def test_key_error_prints_without_quotes(capsys, monkeypatch):
    import t2scaling.cli.plan

    def boom(args):
        raise KeyError("unknown law 'x'; known laws: a, b")

    monkeypatch.setattr(t2scaling.cli.plan, "run", boom)
    assert run_error(capsys, ["plan", "f.json", "--c-train", "1"]) == \
        "t2scaling plan: error: unknown law 'x'; known laws: a, b"


def test_k_grid_errors_print_plain_numbers(tmp_path, capsys):
    table = per_question_table(tmp_path / "t.csv", n_questions=4)
    with pytest.raises(SystemExit):
        cli.main(["fit", "approach1", str(table), "--k-grid", "0.5,1"])
    assert "every k must be a finite number >= 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"k grid \[0\.5, 1\.0\] must hold finite values >= 1") as info:
        fit.fit_table("approach1", table, k_grid=[np.float64(0.5), 1.0])
    assert "np.float64" not in str(info.value)


# ------------------------------------------------------------------------------------------------ frontier

def test_frontier_prints_one_summary_line(tmp_path, capsys):
    a = write_fit(tmp_path / "a.json", law="approach1", params=A1, task="a")
    b = write_fit(tmp_path / "b.json", law="approach1", params=dict(A1, A=300.0), task="b")
    out = tmp_path / "f.csv"
    assert cli.main(["frontier", a, b, "--c-train", "1e18:1e20:3", "--c-inf", "2e9", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [f"wrote 6 frontier rows (6 P1) for 2 tasks (a, b), law approach1, to {out}; "
                     "6 extrapolated beyond the fitted data"]
    assert cli.main(["frontier", a, b, "--macro", "--c-train", "1e20", "--c-inf", "2e9", "--c-total", "1e22",
                     "--t-inf", "1e10", "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("wrote 2 frontier rows (1 P1, 1 P2) for macro average of the tasks, law approach1")


# ----------------------------------------------------------------------------------------- README examples

def readme_commands():
    """The shell lines of the README's "## The library and CLI without Snakemake" code block, continuations
    joined and trailing comments dropped."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## The library and CLI without Snakemake", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            lines.append(words)
    return lines


NEEDS_TORCH = ("world", "tokenize", "train", "eval", "posttrain")


def test_readme_cli_examples_run_as_written(tmp_path):
    """Every torch-free README example runs on tables this test writes, as the default run lays them out: the
    observations under results/tasks/knowledge/, the fits validate plan globs under results/tasks/*/fits/."""
    commands = readme_commands()
    ran = [words[1] for words in commands if words[0] == "t2scaling" and words[1] not in NEEDS_TORCH]
    assert {"fit", "frontier", "plan", "extrapolate", "validate"} <= set(ran), commands
    # `world ... && tokenize ...` chains commands that train a tokenizer: not run here (torch), only parsed
    skipped = {words[1] for words in commands if words[1] in NEEDS_TORCH}
    assert skipped <= set(NEEDS_TORCH)
    obs = per_question_table(tmp_path / "results" / "tasks" / "knowledge" / "observations.parquet")
    loss_table(tmp_path / "losses.csv")
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    fits_dir = tmp_path / "results" / "tasks" / "knowledge" / "fits"
    for words in commands:
        if words[0] != "t2scaling" or words[1] in NEEDS_TORCH:
            continue
        argv = [str(obs.relative_to(tmp_path)) if w == "observations.parquet" else w for w in words[1:]]
        if any("*" in w for w in argv):  # the shell's globs, expanded as the shell would (on the fits made above)
            fits_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(tmp_path / "fit.json", fits_dir / "approach1.json")
            argv = [p for w in argv for p in (sorted(str(g.relative_to(tmp_path)) for g in tmp_path.glob(w))
                                              if "*" in w else [w])]
        result = subprocess.run([sys.executable, "-m", "t2scaling", *argv], cwd=tmp_path, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, f"{shlex.join(words)}\n{result.stdout}\n{result.stderr}"
        if argv[0] == "plan":
            assert "optimum" in result.stdout and "tokens" in result.stdout
            if "--macro" in argv:
                assert "the mean over 1 task (knowledge)" in result.stdout
    assert load_fit(tmp_path / "fit.json").task == "knowledge"  # from the observations' path
    assert len(load_fit(tmp_path / "chin.json").bootstrap_params) == 200
    assert len(pd.read_csv(tmp_path / "frontier.csv")) == 50
    per_point = pd.read_csv(tmp_path / "heldout.csv")  # not overwritten by the summary CSV
    assert "rel_abs_error" in per_point and set(per_point["checkpoint"]) == {"c20", "c21", "c22"}
    assert "mean_rel_error_pct" in pd.read_csv(tmp_path / "heldout_summary.csv")
    assert (tmp_path / "heldout.md").exists() and (tmp_path / "heldout.png").exists()
    assert json.loads((tmp_path / "plan.json").read_text())["roles"]



CHATTY = """
import sys, types
from t2scaling import cli
module = types.ModuleType("chatty")
module.add_arguments = lambda parser: None
def run(args):
    for _ in range(100000):  # far more than a pipe holds
        print("x" * 80)
module.run = run
sys.modules["chatty"] = module
cli.COMMANDS["chatty"] = ("chatty", "prints a lot")
sys.exit(cli.main(["chatty"]))
"""


def test_a_closed_pipe_is_not_a_traceback(tmp_path):
    """`t2scaling plan ... | head`: the reader closes the pipe early; no BrokenPipeError traceback, status 0."""
    import shlex
    import subprocess
    import sys

    run = subprocess.run(f"{sys.executable} -c {shlex.quote(CHATTY)} | head -c 1 >/dev/null; "
                         "echo status ${PIPESTATUS[0]} >&2", shell=True, executable="/bin/bash",
                         capture_output=True, text=True, cwd=tmp_path)
    assert "Traceback" not in run.stderr and "BrokenPipeError" not in run.stderr, run.stderr
    assert "status 0" in run.stderr
