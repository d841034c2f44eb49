"""The warm job server (t2scaling.jobs): a light job's call runs in a forked child exactly as it would in the job."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from t2scaling import jobs

TARGETS = Path(__file__).parent / "jobtargets"


@pytest.fixture
def server_env(tmp_path, monkeypatch):
    """A private server directory, the test targets importable, and a short idle time."""
    monkeypatch.setenv("T2SCALING_JOB_SERVER_DIR", str(tmp_path / "srv"))
    monkeypatch.setenv("PYTHONPATH", str(TARGETS))
    monkeypatch.setenv("T2SCALING_JOB_SERVER_IDLE_S", "3")
    monkeypatch.setenv("T2SCALING_JOB_SERVER", "on")
    monkeypatch.chdir(tmp_path)
    yield tmp_path / "srv"


def wait_until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie awaiting its parent's wait counts as gone
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z" if Path(f"/proc/{pid}").exists() else False


def test_enabled_switch(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("T2SCALING_JOB_SERVER", "off")
    assert not jobs.enabled()
    monkeypatch.setenv("T2SCALING_JOB_SERVER", "auto")
    assert jobs.enabled() == sys.platform.startswith("linux")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert not jobs.enabled()  # each SLURM job has its own allocation: nothing to share


def test_key_follows_library_source(tmp_path, monkeypatch):
    library = tmp_path / "lib"
    library.mkdir()
    (library / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(jobs, "LIBRARY", library)
    before = jobs.server_key()
    assert jobs.server_key() == before
    (library / "a.py").write_text("x = 1  # a comment is an edit too\n")
    assert jobs.server_key() != before


@pytest.mark.slow
def test_call_runs_in_a_warm_child_with_the_jobs_settings(server_env, tmp_path, monkeypatch):
    monkeypatch.setenv("JOB_MARKER", "first")
    log = tmp_path / "logs" / "a.log"
    status = jobs.submit("job_targets:report", (str(tmp_path / "a.json"), "JOB_MARKER"), log_path=log,
                         name="evaluate", wildcards={"cell": "w32-l2"}, threads=2)
    assert status == 0
    first = json.loads((tmp_path / "a.json").read_text())
    assert first["pid"] != os.getpid() and first["cwd"] == str(tmp_path)
    assert first["marker"] == "first" and first["threads"] == 2
    text = log.read_text()
    assert "rule evaluate: wildcards {'cell': 'w32-l2'}" in text and "reporting to" in text

    # the second job reuses the server (same parent), sees its own environment, and pays no import
    monkeypatch.setenv("JOB_MARKER", "second")
    t0 = time.perf_counter()
    assert jobs.submit("job_targets:report", (str(tmp_path / "b.json"), "JOB_MARKER"), log_path=log,
                       name="evaluate", threads=1) == 0
    warm_s = time.perf_counter() - t0
    second = json.loads((tmp_path / "b.json").read_text())
    assert second["ppid"] == first["ppid"] and second["pid"] != first["pid"]
    assert second["marker"] == "second" and second["threads"] == 1
    assert warm_s < 1.0, f"a warm call took {warm_s:.2f} s"

    # idle: the server exits and removes its socket
    assert wait_until(lambda: not list(server_env.glob("*.sock")), timeout=15)


@pytest.mark.slow
def test_a_child_computes_what_a_fresh_job_process_computes(server_env, tmp_path, monkeypatch):
    # Snakemake starts a job with OMP/OPENBLAS_NUM_THREADS = its threads; the server imports numpy and scipy with
    # 1 (no thread pool before a fork) and each child sets its job's count, so a fit comes out bit for bit the same.
    for threads in (1, 2):
        for name in jobs.THREAD_VARIABLES:
            monkeypatch.setenv(name, str(threads))
        status = jobs.submit("job_targets:numerics", (str(tmp_path / f"child{threads}.json"),),
                             log_path=tmp_path / "numerics.log", name="fit", threads=threads)
        assert status == 0
        subprocess.run([sys.executable, "-c", "import sys, job_targets; job_targets.numerics(sys.argv[1])",
                       str(tmp_path / f"fresh{threads}.json")], check=True)
        child = json.loads((tmp_path / f"child{threads}.json").read_text())
        assert child == json.loads((tmp_path / f"fresh{threads}.json").read_text())
        assert child["blas_threads"] and set(child["blas_threads"].values()) == {threads}


@pytest.mark.slow
def test_failure_is_a_nonzero_status_with_the_traceback_in_the_log(server_env, tmp_path):
    log = tmp_path / "fail.log"
    assert jobs.submit("job_targets:fail", ("grid row 3 is bad",), log_path=log, name="evaluate") == 1
    text = log.read_text()
    assert "ValueError: grid row 3 is bad" in text and "job_targets:fail failed" in text


@pytest.mark.slow
def test_a_cancelled_job_stops_its_child(server_env, tmp_path):
    """Snakemake cancels a job by killing its process; the server must then stop the child it forked."""
    pid_file = tmp_path / "pid"
    client = subprocess.Popen([sys.executable, "-c", (
        "from t2scaling import jobs; "
        f"jobs.submit('job_targets:sleep', ({str(pid_file)!r}, 600), log_path={str(tmp_path / 's.log')!r}, "
        "name='evaluate')")], env=os.environ.copy())
    try:
        assert wait_until(lambda: pid_file.exists() and pid_file.read_text()), "the child never started"
        child = int(pid_file.read_text())
        assert pid_alive(child)
        client.send_signal(signal.SIGTERM)
        client.wait(timeout=10)
        assert wait_until(lambda: not pid_alive(child), timeout=10), "the child outlived its cancelled job"
    finally:
        client.kill()


@pytest.mark.slow
def test_workflow_wrapper_fails_the_job_when_the_call_fails(server_env, tmp_path):
    """workflow_scripts/_setup.call exits non-zero with a message naming the log."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow_scripts"))
    try:
        from _setup import call
    finally:
        sys.path.pop(0)

    class Job:  # the attributes of Snakemake's `snakemake` object that call() reads
        scriptdir = str(Path(__file__).resolve().parents[1] / "workflow_scripts")
        log = [str(tmp_path / "w.log")]
        rule = "evaluate"
        wildcards = {"task": "knowledge"}
        threads = 1

    with pytest.raises(SystemExit, match=r"rule evaluate: job_targets:fail failed with status 1; see .*w\.log"):
        call(Job, "job_targets:fail", "no such checkpoint")
    assert "no such checkpoint" in (tmp_path / "w.log").read_text()


@pytest.mark.slow
def test_a_dying_server_takes_its_children_and_fails_their_jobs(server_env, tmp_path):
    pid_file = tmp_path / "pid"
    client = subprocess.Popen([sys.executable, "-c", (
        "from t2scaling import jobs\n"
        "try:\n"
        f"    jobs.submit('job_targets:sleep', ({str(pid_file)!r}, 600), log_path={str(tmp_path / 's.log')!r}, "
        "name='evaluate')\n"
        "except RuntimeError as err:\n    print(err)\n")], env=os.environ.copy(), stdout=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: pid_file.exists() and pid_file.read_text()), "the child never started"
        child = int(pid_file.read_text())
        server = int(Path(f"/proc/{child}/stat").read_text().split(")")[1].split()[1])  # the child's parent
        os.kill(server, signal.SIGKILL)
        out, _ = client.communicate(timeout=20)
        assert "died while running job_targets:sleep" in out
        assert wait_until(lambda: not pid_alive(child), timeout=10), "the child outlived its server"
    finally:
        client.kill()


OPEN_JOB_LOG = """
import json, os, sys
if sys.argv[2] == "preloaded":
    import datasets, transformers
from t2scaling.jobs import open_job_log
open_job_log(sys.argv[1], "probe")
state = dict(imported=sorted(m for m in ("transformers", "datasets", "huggingface_hub") if m in sys.modules),
             hub=os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS"), ds=os.environ.get("HF_DATASETS_DISABLE_PROGRESS_BARS"))
if "transformers" in sys.modules:
    import datasets.utils, huggingface_hub.utils, transformers.utils.logging
    state["bars"] = [transformers.utils.logging.is_progress_bar_enabled(), datasets.utils.are_progress_bars_disabled(),
                     huggingface_hub.utils.are_progress_bars_disabled()]
print(json.dumps(state))
"""


@pytest.mark.parametrize("case", ["light", "preloaded"])
def test_job_log_turns_hugging_face_progress_bars_off_without_importing_them(tmp_path, case):
    """A light job imports no Hugging Face library for it, but its children (and later imports) read the switches
    from the environment; in a job-server child, which inherits them imported, they are switched off in place."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DISABLE_PROGRESS_BARS")}
    done = subprocess.run([sys.executable, "-c", OPEN_JOB_LOG, str(tmp_path / "job.log"), case], env=env,
                          capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
    state = json.loads(done.stdout)
    assert (state["hub"], state["ds"]) == ("1", "1")
    if case == "light":
        assert state["imported"] == [] and "bars" not in state
    else:
        assert state["bars"] == [False, True, True]
    assert "rule probe" in (tmp_path / "job.log").read_text()
