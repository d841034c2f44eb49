"""The library as a package: a wheel built from this repository and installed with its runtime dependencies into
a fresh virtual environment outside the checkout runs `t2scaling --version`, `python -m t2scaling --help` and the
torch-free commands (fit, frontier, plan, validate plan) on inputs written here. Needs the package index that pip
is configured with (the dependencies' wheels; pip's cache makes re-runs faster)."""

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import t2scaling
from t2scaling.laws import get_law

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# What a build must not see: environments, run outputs and earlier builds.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__",
                                    ".pytest_cache", ".snakemake", "results", "logs", "benchmarks_out", "scratch")
CHIN = dict(A=100.0, B=100.0, E=1.0, alpha=0.35, beta=0.35)  # optima of 1e4-1e5 params at C_train ~ 1e10-1e11
APPROACH1 = dict(CHIN, G=2.0, gamma=0.4)
CONFIG = """\
experiment: wheel
corpus: {vocab_size: 384}
model: {seq_len: 64, head_dim: 16, ffn_multiple: 16}
training: {batch_size: 8}
grid:
  isoflops: [1.0e+10, 2.0e+10, 4.0e+10]
  shapes: [{width: 16, depth: 1}, {width: 32, depth: 1}, {width: 32, depth: 2}]
tasks: {knowledge: {kind: knowledge}}
"""


def check(cmd, **kwargs):
    run = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert run.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run


def build_isolation():
    """--no-build-isolation when this environment's setuptools meets pyproject's build requirement (fast, offline);
    otherwise pip builds in an isolated environment from the index."""
    need = re.search(r'"setuptools>=(\d+)', (REPO / "pyproject.toml").read_text())
    try:
        have = int(importlib.metadata.version("setuptools").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return []
    return ["--no-build-isolation"] if need and have >= int(need.group(1)) else []


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel, venv python, environment, work dir outside the checkout, timings in seconds)."""
    root = tmp_path_factory.mktemp("package")
    timings = {}
    start = time.perf_counter()
    source = root / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)  # the build's build/ and egg-info stay out of the checkout
    check([sys.executable, "-m", "pip", "wheel", "--no-deps", *build_isolation(), "-q", "-w", str(root / "dist"),
           str(source)])
    (wheel,) = (root / "dist").glob("t2scaling-*.whl")
    timings["build"] = time.perf_counter() - start

    start = time.perf_counter()
    venv = root / "venv"
    check([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    timings["venv"] = time.perf_counter() - start
    start = time.perf_counter()
    check([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-compile", str(wheel)])
    timings["install"] = time.perf_counter() - start
    print("wheel test timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = str(python.parent) + os.pathsep + env.get("PATH", "")
    work = root / "work"
    work.mkdir()
    return wheel, python, env, work, timings


def run_in(installed, *cmd):
    _, python, env, work, _ = installed
    exe = str(python) if cmd[0] == "python" else str(python.parent / cmd[0])
    return check([exe, *cmd[1:]], cwd=work, env=env)


def test_the_wheel_ships_the_schema_license_and_metadata(installed):
    wheel = installed[0]
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "t2scaling/config.schema.yaml" in names and "t2scaling/__main__.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "schemas/", "rules/")) for n in names)
    assert f"Version: {t2scaling.__version__}" in meta and "License-Expression: MIT" in meta
    assert "Author: the t2scaling authors" in meta


def test_version_help_and_the_packaged_schema(installed):
    work = installed[3]
    assert run_in(installed, "t2scaling", "--version").stdout.strip() == f"t2scaling {t2scaling.__version__}"
    help_text = run_in(installed, "python", "-m", "t2scaling", "--help").stdout
    assert "docs/contracts.md" in help_text and "docs/science.md" in help_text and "validate" in help_text
    probe = run_in(installed, "python", "-c", "import importlib.util, t2scaling.config as c; "
                   "print(c.__file__); print(c.schema_default('fits.restarts')); "
                   "print(importlib.util.find_spec('torch') is None)").stdout.split("\n")
    location = Path(probe[0]).resolve()
    assert installed[1].parent.parent.resolve() in location.parents and REPO not in location.parents
    assert probe[1] == "500" and probe[2] == "True"  # the schema read from the wheel; torch absent
    assert REPO not in work.resolve().parents


def test_fit_frontier_plan_and_validate_plan_run_from_the_wheel(installed):
    work = installed[3]
    rng = np.random.default_rng(0)
    N, D = 10 ** rng.uniform(3.8, 5.3, 24), 10 ** rng.uniform(4.5, 6.5, 24)
    pd.DataFrame({"N": N, "D": D, "loss": get_law("chinchilla").predict(CHIN, N, D)}).to_csv(
        work / "loss.csv", index=False)
    k = 2.0 ** np.arange(9)
    Q = get_law("approach1").predict(APPROACH1, N[:, None], D[:, None], k[None, :])
    pd.DataFrame([dict(checkpoint=f"c{i}", N=N[i], D=D[i], k=k[j], pass_at_k=float(np.exp(-Q[i, j])))
                  for i in range(len(N)) for j in range(len(k))]).to_csv(work / "passk.csv", index=False)
    (work / "config.yaml").write_text(CONFIG)

    run_in(installed, "t2scaling", "fit", "chinchilla", "loss.csv", "--out", "chinchilla.json", "--task", "knowledge")
    run_in(installed, "t2scaling", "fit", "approach1", "passk.csv", "--out", "approach1.json", "--task", "knowledge",
           "--restarts", "20")
    for law, truth in (("chinchilla", CHIN), ("approach1", APPROACH1)):
        fitted = json.loads((work / f"{law}.json").read_text())
        assert fitted["law"] == law and fitted["task"] == "knowledge"
        for name, value in truth.items():
            assert fitted["params"][name] == pytest.approx(value, rel=1e-3), (law, name)

    run_in(installed, "t2scaling", "frontier", "approach1.json", "--c-train", "1e9:1e12:4", "--c-inf", "1e6",
           "--out", "frontier.csv")
    frontier = pd.read_csv(work / "frontier.csv")
    assert len(frontier) == 4 and frontier["feasible"].all()
    assert np.all(np.diff(frontier["N_star"]) > 0) and (frontier["k_star"] >= 1).all()

    printed = run_in(installed, "t2scaling", "plan", "approach1.json", "--c-train", "4e10", "--c-inf", "1e6").stdout
    assert "T² optimum" in printed and "Chinchilla (k = 1)" in printed

    run_in(installed, "t2scaling", "validate", "plan", "--fits", "approach1.json", "chinchilla.json", "--config",
           "config.yaml", "--c-train", "4e10", "--c-inf", "1e6", "--out", "plan.json")
    plan = json.loads((work / "plan.json").read_text())
    assert plan["c_train"] == 4e10 and plan["tasks"] == ["knowledge"]
    assert {r["role"] for r in plan["roles"]} == {"approach1", "chinchilla"}
    for role in plan["roles"]:
        assert re.fullmatch(r"w\d+-l\d+-d\d+", role["cell"]) and 1e3 < role["N"] < 1e6


def test_lawbench_runs_from_the_wheel_on_the_public_data_it_ships(installed):
    work = installed[3]
    out = run_in(installed, "t2scaling", "lawbench", "--data", "gadre_c4", "--split", "later", "--restarts", "2",
                 "--out", "bench").stdout
    assert "gadre_c4" in out and "chinchilla" in out
    table = pd.read_csv(work / "bench" / "lawbench.csv")
    assert set(table["dataset"]) == {"gadre_c4"} and set(table["law"]) == {"chinchilla", "nearest_checkpoint"}
    shipped = run_in(installed, "python", "-c", "import t2scaling.lawbench as l; print(l.shipped_dir())").stdout
    assert Path(shipped.strip()).name == "public_data" and REPO not in Path(shipped.strip()).resolve().parents
    assert (Path(shipped.strip()) / "gadre_overtraining" / "SOURCE.md").is_file()
