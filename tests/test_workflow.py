"""The Snakemake workflow: a smoke run end to end, then exact job counts of dry runs for each kind of change
(DESIGN.md §4.2's incremental contract), the paper-scale DAG, the SLURM profile, lint and formatting."""

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

pytestmark = pytest.mark.slow


def snakemake(root, *args, check=True):
    run = subprocess.run([*SNAKEMAKE, *args], cwd=root, capture_output=True, text=True)
    if check and run.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{run.stdout[-4000:]}\n{run.stderr[-6000:]}")
    return run


def job_counts(root, config_path, *targets):
    """Jobs per rule that a dry run would execute ({} when nothing is to be done)."""
    run = snakemake(root, *targets, "-n", "--configfile", str(config_path))
    text = run.stdout + run.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M))
    counts.pop("total", None)
    counts.pop("job", None)
    return {rule: int(n) for rule, n in counts.items()}


def write_config(root, name, mutate):
    config = yaml.safe_load((root / "configs" / "smoke.yaml").read_text())
    mutate(config)
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))  # sorts keys: params must not depend on key order
    return path


SMOKE_TASKS, SMOKE_LAWS, SMOKE_CELLS = 2, 3, 9
SMOKE_MODES, SMOKE_POSTTRAINED = 2, 1  # FT and SFT, on the knowledge task only
LAWS = ("chinchilla", "approach1", "approach2")
# Macro outputs: every task feeds them, so any change to one task re-runs them all.
MACRO = {"macro_frontier": 3, "plot_macro_frontier": 1, "plot_macro_isoflops": 1, "table1": 1,
         "parameter_table": 1, "extrapolation_summary": 1, "posttrain_compare": 1, "all": 1}
# Read straight from every task's observations (not from the fits): any change to one task's data re-runs it.
GRADES = {"task_grades": 1}


@contextlib.contextmanager
def edited(root, edits):
    """Files of the copy edited ({path under t2scaling/, or under the root if it has a '/': text -> text}), then
    restored with their mtimes."""
    saved = {}
    try:
        for name, edit in edits.items():
            path = root / (name if "/" in name else f"t2scaling/{name}")
            saved[path] = path.read_text(), path.stat()
            path.write_text(edit(saved[path][0]))
        yield
    finally:
        for path, (text, stat) in saved.items():
            path.write_text(text)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def per_task(tasks, posttrained=0, new_posttrainings=0, laws=SMOKE_LAWS):
    """The jobs downstream of `tasks` tasks' observations: refits, frontiers, plots and extrapolation; for the
    `posttrained` of them that are post-trained, the FT/SFT refits, plus `new_posttrainings` new
    checkpoint x task post-trainings and their evaluations (per mode)."""
    counts = {"collect": tasks, "fit": tasks * laws, "frontier": tasks * laws, "plot_fit": tasks * laws,
              "plot_frontier": tasks, "plot_isoflops": tasks, "extrapolate": tasks}
    if posttrained:
        counts.update(posttrain_collect=posttrained * SMOKE_MODES, posttrain_fit=posttrained * laws * SMOKE_MODES,
                      posttrain_frontier=posttrained * laws * SMOKE_MODES)
    if new_posttrainings:
        counts.update(posttrain=new_posttrainings * SMOKE_MODES, posttrain_evaluate=new_posttrainings * SMOKE_MODES)
    return counts


# Every checkpoint re-evaluated on every task (base and post-trained), and all that is downstream.
EVALUATIONS = {"evaluate": SMOKE_TASKS * SMOKE_CELLS,
               "posttrain_evaluate": SMOKE_MODES * SMOKE_POSTTRAINED * SMOKE_CELLS,
               **per_task(SMOKE_TASKS, SMOKE_POSTTRAINED), **MACRO, **GRADES}
# Every trained cell's validation loss re-measured, and the pretraining-loss fit.
VAL_LOSSES = {"val_loss": SMOKE_CELLS, "pretrain_losses": 1, "pretrain_fit": 1, "task_grades": 1, "all": 1}
# Every checkpoint post-trained again, and its evaluations, refits and the comparison.
POSTTRAININGS = {"posttrain": SMOKE_MODES * SMOKE_POSTTRAINED * SMOKE_CELLS,
                 "posttrain_evaluate": SMOKE_MODES * SMOKE_POSTTRAINED * SMOKE_CELLS,
                 "posttrain_collect": SMOKE_MODES * SMOKE_POSTTRAINED,
                 "posttrain_fit": SMOKE_MODES * SMOKE_POSTTRAINED * SMOKE_LAWS,
                 "posttrain_frontier": SMOKE_MODES * SMOKE_POSTTRAINED * SMOKE_LAWS, "posttrain_compare": 1, "all": 1}


def test_smoke_run_produces_every_output(smoke):
    for task in ("knowledge", "arithmetic"):
        obs = pd.read_parquet(smoke / f"results/tasks/{task}/observations.parquet")
        assert obs["checkpoint"].nunique() == SMOKE_CELLS
        for law in LAWS:
            assert (smoke / f"results/tasks/{task}/fits/{law}.json").stat().st_size > 0
            frontier = pd.read_csv(smoke / f"results/tasks/{task}/frontier/{law}.csv")
            assert len(frontier) > 0
            for mode in ("ft", "sft") if task == "knowledge" else ():
                assert len(pd.read_csv(smoke / f"results/posttrain/{mode}/tasks/{task}/frontier/{law}.csv")) > 0
        for figure in [f"fit_{law}" for law in LAWS] + ["frontier", "isoflops"]:
            assert_figure(smoke / f"results/tasks/{task}/plots/{figure}.png")
    for figure in ("macro/plots/frontier", "macro/plots/isoflops", "plots/checkpoint_grid",
                   "extrapolation/predicted_vs_measured", "posttrain/plots/frontiers"):
        assert_figure(smoke / f"results/{figure}.png")
    for table in ("tables/table1", "tables/task_grades", "tables/parameters", "extrapolation/summary",
                  "posttrain/comparison"):
        assert len(pd.read_csv(smoke / f"results/{table}.csv")) > 0
        assert (smoke / f"results/{table}.md").read_text().count("|") > 10
    assert (smoke / "results/pretrain/chinchilla.json").exists()
    table1 = pd.read_csv(smoke / "results/tables/table1.csv")  # intervals on the measured comparison
    assert {"ci_low", "ci_high", "gain_ci_low", "gain_ci_high"} <= set(table1.columns)
    frontier = pd.read_csv(smoke / "results/macro/frontier/approach2.csv")  # every forecast says if it extrapolates
    assert frontier.loc[frontier["c_train"] >= 1e19, "extrapolated"].all()
    # The smoke grid is too thin to identify the laws, and its log says so.
    assert "3 distinct model sizes; give at least 5" in (smoke / "logs/tables/task_grades.log").read_text()
    for log in (smoke / "logs").rglob("*.log"):
        assert log.stat().st_size > 0, f"empty log {log}"


def assert_figure(path):
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 200, path
    assert path.with_suffix(".pdf").read_bytes().startswith(b"%PDF"), path


def test_tables_copy_the_frontier_csvs_exactly(smoke):
    table = pd.read_csv(smoke / "results/tables/table1.csv")
    config = yaml.safe_load((smoke / "configs/smoke.yaml").read_text())
    c_train = max(config["grid"]["isoflops"])
    assert set(table["task"]) == {"knowledge", "arithmetic"}
    for task, rows in table.groupby("task"):
        for law in ("approach1", "approach2"):
            frontier = pd.read_csv(smoke / f"results/tasks/{task}/frontier/{law}.csv")
            row = frontier[(frontier["problem"] == "P1") & (frontier["c_inf"] == 2e9)
                           & (abs(frontier["c_train"] / c_train - 1) < 1e-9)]
            assert len(row) == 1, f"{task} {law}: the frontier lacks the grid budget {c_train:g}"
            for column in ("N_star", "tokens_per_param", "k_star", "predicted_metric"):
                assert (rows[f"{law}_{column}"] == row[column].iloc[0]).all(), (task, law, column)
        chinchilla = pd.read_csv(smoke / f"results/tasks/{task}/frontier/chinchilla.csv")
        row = chinchilla[(chinchilla["problem"] == "P1") & (chinchilla["c_inf"] == 2e9)
                         & (abs(chinchilla["c_train"] / c_train - 1) < 1e-9)]
        assert (rows["chinchilla_N"] == row["chinchilla_N"].iloc[0]).all(), task  # Chinchilla's own fit
    compare = pd.read_csv(smoke / "results/posttrain/comparison.csv")
    for _, row in compare.iterrows():
        path = (f"results/tasks/{row['task']}/frontier/{row['approach']}.csv" if row["variant"] == "base" else
                f"results/posttrain/{row['variant']}/tasks/{row['task']}/frontier/{row['approach']}.csv")
        frontier = pd.read_csv(smoke / path)
        match = frontier[(frontier["problem"] == "P1") & (frontier["c_inf"] == row["c_inf"])
                         & (frontier["c_train"] == row["c_train"])]
        assert len(match) == 1 and match["tokens_per_param"].iloc[0] == row["tokens_per_param"], path
    params = pd.read_csv(smoke / "results/tables/parameters.csv")
    fit = json.loads((smoke / "results/tasks/knowledge/fits/approach1.json").read_text())
    for name, value in fit["params"].items():
        got = params[(params["task"] == "knowledge") & (params["law"] == "approach1")
                     & (params["parameter"] == name)]["value"]
        assert got.iloc[0] == value, name


def test_nothing_changed_schedules_nothing(smoke):
    assert job_counts(smoke, "configs/smoke.yaml") == {}


def test_adding_a_cell_schedules_its_training_evaluations_and_downstream(smoke):
    # w32-l1 has cells already: their WSD branch hint changes, but hints are not compared params
    config = write_config(smoke, "cell", lambda c: c["grid"].setdefault("extra_cells", []).append(
        {"width": 32, "depth": 1, "tokens": 20000}))
    assert job_counts(smoke, config) == {
        "train": 1, "evaluate": SMOKE_TASKS, **per_task(SMOKE_TASKS, SMOKE_POSTTRAINED, SMOKE_POSTTRAINED),
        "val_loss": 1, "pretrain_losses": 1, "pretrain_fit": 1, "plot_grid": 1, **MACRO, **GRADES,
    }


def test_adding_a_task_schedules_only_that_task(smoke):
    config = write_config(smoke, "task", lambda c: c["tasks"].update(spatial={"kind": "spatial"}))
    assert job_counts(smoke, config) == {
        "task_table": 1, "evaluate": SMOKE_CELLS,
        **per_task(1), **{rule: n for rule, n in MACRO.items() if rule != "posttrain_compare"}, **GRADES,
        # the new task is not among posttrain.tasks: nothing of post-training re-runs
    }


def test_changing_a_fit_option_refits_only_the_laws_that_read_it(smoke):
    config = write_config(smoke, "restarts", lambda c: c["fits"].update(restarts=11))
    refit = SMOKE_TASKS * 2  # approach1 and approach2 read `restarts`; chinchilla does not
    assert job_counts(smoke, config) == {
        "fit": refit, "frontier": refit, "plot_fit": refit, "plot_frontier": SMOKE_TASKS,
        "plot_isoflops": SMOKE_TASKS, "extrapolate": SMOKE_TASKS, "posttrain_fit": 2 * SMOKE_POSTTRAINED * SMOKE_MODES,
        "posttrain_frontier": 2 * SMOKE_POSTTRAINED * SMOKE_MODES, **MACRO, "macro_frontier": 2,
    }


def test_editing_fit_code_refits_without_training_or_evaluating(smoke):
    # the rules that import fit.py (their wrappers' imports, derived): fits, pretraining fit, extrapolation
    with edited(smoke, {"t2scaling/fit/optimize.py": lambda text: text + "\n# an edit\n"}):
        counts = per_task(SMOKE_TASKS, SMOKE_POSTTRAINED)
        del counts["collect"], counts["posttrain_collect"]
        assert job_counts(smoke, "configs/smoke.yaml") == {**counts, "pretrain_fit": 1, **MACRO}


def test_resources_rerun_nothing(smoke):
    config = write_config(smoke, "resources", lambda c: c["training"].update(
        runtime_min=90, threads=2, mem_mb=9000, gpus=1))
    assert job_counts(smoke, config) == {}


def test_val_tokens_re_measure_only_the_validation_loss(smoke):
    config = write_config(smoke, "val_tokens", lambda c: c["evaluation"].update(val_tokens=4000))
    assert job_counts(smoke, config) == VAL_LOSSES  # no training, no evaluation


def test_each_evaluation_key_re_evaluates_and_what_is_downstream(smoke):
    for key, value in (("mode", "sampling"), ("n_samples", 8), ("temperature", 0.5), ("batch_size", 16)):
        config = write_config(smoke, f"evaluation_{key}", lambda c: c["evaluation"].update({key: value}))
        expected = {**EVALUATIONS, **(VAL_LOSSES if key == "batch_size" else {})}  # val_loss batches too
        assert job_counts(smoke, config) == expected, key


def test_each_posttrain_key_re_runs_only_post_training(smoke):
    for key, value in (("epochs", 2), ("batch_size", 4), ("lr", 1e-4), ("max_steps", 2),
                       ("compare_c_train", [1e12, 1e16])):
        config = write_config(smoke, f"posttrain_{key}", lambda c: c["posttrain"].update({key: value}))
        expected = {"posttrain_compare": 1, "all": 1} if key == "compare_c_train" else POSTTRAININGS
        assert job_counts(smoke, config) == expected, key


def test_comments_in_versioned_stages_re_run_nothing(smoke):
    # training, evaluation, post-training and their data are keyed to versions (t2scaling/versions.py), not code
    comment = lambda text: text + "\n# a comment, a refactor, a speed-up\n"  # noqa: E731
    modules = ("train/loop.py", "train/session.py", "runtime.py", "evaluate.py", "posttrain.py", "model.py", "data.py",
               "tasks.py", "world.py")
    with edited(smoke, {f"t2scaling/{m}": comment for m in modules}):
        assert job_counts(smoke, "configs/smoke.yaml") == {}


def test_wrapper_edits_re_run_only_the_cheap_stages_that_run_them(smoke):
    # Snakemake's `code` trigger would retrain on a newer wrapper file (a git pull); profiles/default drops it
    comment = lambda text: text + "\n# a comment\n"  # noqa: E731
    versioned = ("train", "val_loss", "evaluate", "posttrain", "world", "corpus", "task_table")
    with edited(smoke, {f"workflow_scripts/{name}.py": comment for name in versioned}):
        assert job_counts(smoke, "configs/smoke.yaml") == {}
    with edited(smoke, {"workflow_scripts/fit.py": comment}):
        counts = job_counts(smoke, "configs/smoke.yaml")
    assert counts["fit"] == SMOKE_TASKS * SMOKE_LAWS and "frontier" in counts
    assert counts["posttrain_fit"] == SMOKE_MODES * SMOKE_POSTTRAINED * SMOKE_LAWS  # `use rule fit` runs it too
    assert not {"train", "val_loss", "evaluate", "posttrain", "posttrain_evaluate", "collect"} & set(counts)


def test_a_version_bump_re_runs_its_stage_and_what_is_downstream(smoke):
    retrain = {"train": SMOKE_CELLS, **VAL_LOSSES, **EVALUATIONS, **POSTTRAININGS}
    for name, expected in (("TRAIN_RECIPE_VERSION", retrain), ("EVAL_VERSION", {**EVALUATIONS, **VAL_LOSSES}),
                           ("POSTTRAIN_VERSION", POSTTRAININGS)):
        bump = lambda text: re.sub(rf"^{name} = (\d+)", lambda m: f"{name} = {int(m[1]) + 1}", text,  # noqa: E731
                                   count=1, flags=re.M)
        with edited(smoke, {"versions.py": bump}):
            assert job_counts(smoke, "configs/smoke.yaml") == expected, name


def test_adding_an_imported_checkpoint_enters_at_evaluation(smoke):
    imported = smoke / "imported" / "tiny"
    if not imported.exists():
        shutil.copytree(next((smoke / "results" / "checkpoints").iterdir()), imported)
    config = write_config(smoke, "imported", lambda c: c.update(
        imported_checkpoints=[{"name": "tiny-import", "path": str(imported), "N": 30000, "D": 50000}]))
    assert job_counts(smoke, config) == {
        "evaluate": SMOKE_TASKS, **per_task(SMOKE_TASKS, SMOKE_POSTTRAINED, SMOKE_POSTTRAINED), "plot_grid": 1,
        **MACRO, **GRADES,
    }


def test_validate_stage_trains_and_measures_the_predicted_optimal_cells(smoke):
    dry = snakemake(smoke, "validate", "-n", "--configfile", "configs/smoke.yaml")
    assert "validation_plan" in dry.stdout + dry.stderr
    snakemake(smoke, "validate", "--cores", "2", "--configfile", "configs/smoke.yaml")
    plan = json.loads((smoke / "results/validate/plan.json").read_text())
    assert {role["role"] for role in plan["roles"]} == {"approach1", "approach2", "chinchilla"}
    table = pd.read_csv(smoke / "results/validate/table.csv")
    for role in plan["roles"]:
        assert (smoke / "results/checkpoints" / role["cell"] / "t2_meta.json").exists()
        for task in ("knowledge", "arithmetic"):
            assert (smoke / f"results/eval/{task}/{role['cell']}.parquet").exists()
    assert table["measured_pass_at_k"].between(0, 1).all() and table["measured_pass_at_k"].notna().all()
    assert (smoke / "results/validate/table.md").exists()
    assert_figure(smoke / "results/validate/checkpoint_grid.png")
    # The stage leaves the base DAG untouched: the default target still has nothing to do.
    assert job_counts(smoke, "configs/smoke.yaml") == {}


def test_validation_shapes_re_plan_the_validate_stage(smoke):
    # after test_validate_stage_...: the plan re-runs and its table (the new plan's cells are known only once it
    # has run, so a dry run shows the cells trained before)
    config = write_config(smoke, "validation_shapes", lambda c: c.setdefault("validation", {}).update(
        shapes=[{"width": 32, "depth": 1}, {"width": 32, "depth": 2}]))
    assert job_counts(smoke, config, "validate") == {"validation_plan": 1, "validation_table": 1, "validate": 1}
    assert job_counts(smoke, config) == {}  # the default target does not include the validate stage


def test_paper_scale_dry_run_is_fast_and_complete(tmp_path):
    start = time.time()
    run = subprocess.run([*SNAKEMAKE, "-n", "--configfile", str(REPO / "configs/paper.yaml"), "-s",
                          str(REPO / "Snakefile"), "--directory", str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO)
    seconds = time.time() - start
    assert run.returncode == 0, run.stderr[-3000:]
    table = (run.stdout + run.stderr).split("Job stats:", 1)[1]
    counts = {r: int(n) for r, n in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)}
    assert counts["train"] == 109
    assert counts["evaluate"] == 109 * 8
    assert counts["posttrain"] == counts["posttrain_evaluate"] == 109 * 7 * 2  # FT and SFT, 7 tasks with a train split
    # ~4,300 jobs; about 8 s on an idle 2-core machine (19 s while a workflow ran beside it), nearly all of it
    # Snakemake's own DAG construction
    assert seconds <= 30, f"paper-scale dry run took {seconds:.1f} s"


def test_the_workflow_profile_never_overrides_the_cluster_profile():
    """Snakemake applies profiles/default beside `--profile profiles/slurm`, and its keys win: it may only hold
    keys the cluster profile lacks or sets alike."""
    workflow = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    cluster = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert workflow["rerun-triggers"] == ["mtime", "params", "input", "software-env"]
    assert {key: value for key, value in workflow.items() if key in cluster and cluster[key] != value} == {}
    assert not {"cores", "jobs", "latency-wait", "keep-going", "default-resources", "set-resources"} & set(workflow)


def test_lawbench_target_runs_and_re_runs_only_on_its_own_settings_or_data(tmp_path):
    from conftest import copy_workflow

    root = copy_workflow(tmp_path)
    bench = {"datasets": ["gadre_c4", "porian_rw"], "splits": ["later"], "restarts": 2}
    config = write_config(root, "bench", lambda c: c.update(lawbench=bench))
    assert job_counts(root, config, "lawbench") == {"lawbench": 1}
    snakemake(root, "lawbench", "--cores", "1", "--configfile", str(config))
    table = pd.read_csv(root / "results/lawbench/lawbench.csv")
    assert set(table["dataset"]) == {"gadre_c4", "porian_rw"} and set(table["split"]) == {"later"}
    assert {p.name for p in (root / "results/lawbench/figures").glob("*.png")} == {"lawbench_gadre_c4.png",
                                                                                  "lawbench_porian_rw.png"}
    assert "porian_rw" in (root / "results/lawbench/lawbench.html").read_text()
    assert (root / "logs/lawbench/lawbench.log").is_file() and (root / "benchmarks_out/lawbench/lawbench.tsv").is_file()
    assert job_counts(root, config, "lawbench") == {}
    unrelated = write_config(root, "bench_fits", lambda c: c.update(lawbench=bench) or c["fits"].update(restarts=11))
    assert job_counts(root, unrelated, "lawbench") == {}
    more = write_config(root, "bench_both", lambda c: c.update(lawbench={**bench, "splits": ["later", "both"]}))
    assert job_counts(root, more, "lawbench") == {"lawbench": 1}
    with edited(root, {"data/public/porian_isoflop/points.csv": lambda text: text + "\n"}):
        assert job_counts(root, config, "lawbench") == {"lawbench": 1}  # its data are inputs


def test_lint_is_clean():
    run = snakemake(REPO, "--lint", check=False)
    assert "Congratulations" in run.stdout + run.stderr, run.stdout[-3000:] + run.stderr[-3000:]


def test_snakefmt_is_clean():
    files = ["Snakefile", *map(str, sorted((REPO / "rules").glob("*.smk")))]
    run = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *files], cwd=REPO,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_smoke_figures_have_no_overlapping_text(smoke):
    """plots.save checks every figure it writes with plots.text_overlaps (text boxes from the Agg renderer) and
    logs a warning naming the texts that collide; no job of the smoke run logged one."""
    logs = sorted((smoke / "logs").rglob("*.log"))
    assert any("plots" in log.relative_to(smoke).parts for log in logs), "no plot job logs"
    flagged = {str(log.relative_to(smoke)): line for log in logs
               for line in log.read_text(errors="replace").splitlines() if "overlapping text" in line}
    assert flagged == {}, flagged


# The tables the report shows inline (an HTML view beside each CSV) and the significant digits of their cells.
REPORT_TABLES = {"results/tables/table1": 3, "results/tables/parameters": 4, "results/tables/task_grades": 3,
                 "results/extrapolation/summary": 3, "results/posttrain/comparison": 3, "results/validate/table": 3}
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
# Injected into a copy of the report: once the report's own app has loaded, every result's caption (the HTML
# Docutils made of report/*.rst) and, for an HTML result, its embedded page (the data URI the report's viewer
# shows in an iframe, which --dump-dom would not descend into), parsed by the browser into the main document.
REPORT_PROBE = """<script>
window.addEventListener("load", () => {
  const out = document.createElement("div");
  out.id = "t2-probe";
  const entries = Object.entries(results);
  entries.push(["workflow description", {caption: workflow_desc, mime_type: "text/x-rst", data_uri: ""}]);
  for (const [path, r] of entries) {
    const section = document.createElement("section");
    section.dataset.path = path;
    section.dataset.mime = r.mime_type;
    const caption = document.createElement("div");
    caption.className = "t2-caption";
    caption.innerHTML = r.caption;
    section.appendChild(caption);
    if (r.mime_type === "text/html" && r.data_uri.startsWith("data:")) {
      const b64 = r.data_uri.slice(r.data_uri.indexOf(",") + 1);
      const text = new TextDecoder().decode(Uint8Array.from(atob(b64), c => c.charCodeAt(0)));
      const page = document.createElement("div");
      page.className = "t2-page";
      page.innerHTML = new DOMParser().parseFromString(text, "text/html").body.innerHTML;
      section.appendChild(page);
    }
    out.appendChild(section);
  }
  document.body.appendChild(out);
});
</script>"""


def chromium_dom(page, profile):
    """The DOM of `page` after its scripts ran, as headless Chromium serialises it."""
    run = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0 and "<body" in run.stdout, run.stderr[-3000:]
    return run.stdout


def text_of(fragment):
    """The text a reader sees in an HTML fragment (scripts and styles left out)."""
    import html

    fragment = re.sub(r"<(script|style)\b.*?</\1>", " ", fragment, flags=re.S | re.I)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def table_rows(fragment):
    """The rows of the first HTML table in `fragment`, each a list of its cells' text."""
    body = re.search(r"<tbody>(.*?)</tbody>", fragment, flags=re.S).group(1)
    return [[text_of(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)]


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("T2_REQUIRE_BROWSER"),
                    reason="needs Chromium (scripts/setup.sh installs it with apt-get)")
def test_report_shows_every_table_and_caption_in_a_browser(smoke, tmp_path):
    """The documented report command on the smoke run (validate stage included), opened in headless Chromium: no
    Docutils error in any caption, no mailto link made of pass@k, no raw config, and every table's values shown
    inline (its HTML view, registered beside the CSV)."""
    from t2scaling.tables import cell_text

    assert CHROMIUM, "no chromium on PATH (T2_REQUIRE_BROWSER is set): run scripts/setup.sh as root"
    snakemake(smoke, "validate", "--cores", "2", "--configfile", "configs/smoke.yaml")  # nothing, when it ran
    start = time.time()
    snakemake(smoke, "--report", "report.html", "all", "validate", "--configfile", "configs/smoke.yaml")
    report = (smoke / "report.html").read_text(encoding="utf-8")
    for name in ("isoflops.png", "checkpoint_grid.png", "fit_approach2.png", "predicted_vs_measured.png",
                 *(f"{Path(t).name}.csv" for t in REPORT_TABLES), *(f"{Path(t).name}.html" for t in REPORT_TABLES)):
        assert name in report, name

    # The report as a reader opens it loads in the browser.
    assert 'id="app"' in chromium_dom(smoke / "report.html", tmp_path / "profile")
    # Every caption and every embedded HTML page, as the browser parses them.
    probe = tmp_path / "report.html"
    probe.write_text(report.replace("</body>", REPORT_PROBE + "</body>"), encoding="utf-8")
    dom = chromium_dom(probe, tmp_path / "profile")
    print(f"report and two Chromium renderings: {time.time() - start:.0f} s")
    sections = dict(re.findall(r'<section data-path="([^"]+)"[^>]*>(.*?)</section>', dom, flags=re.S))
    assert len(sections) >= 20, sorted(sections)
    assert "Train-to-Test" in text_of(sections["workflow description"])
    for where, fragment in sections.items():
        text = text_of(fragment)
        for bad in ("System Message", "Docutils", "Undefined substitution", "mailto:", "e+", "000000000"):
            assert bad not in (fragment if bad == "mailto:" else text), (where, bad, text[:2000])
        assert not re.search(r"\{'|\[\d", text), (where, text[:2000])  # a printed dict or list of numbers
    for table, digits in REPORT_TABLES.items():
        path = f"{table}.html"
        assert path in sections, (path, sorted(sections))
        shown = table_rows(sections[path])
        frame = pd.read_csv(smoke / f"{table}.csv", keep_default_na=False, na_values=[""])
        expected = [[cell_text(column, value, digits) for column, value in zip(frame.columns, row)]
                    for row in frame.astype(object).where(frame.notna(), None).itertuples(index=False)]
        assert len(shown) == len(frame) > 0, (table, len(shown), len(frame))
        assert shown == expected, (table, shown[:3], expected[:3])
        assert text_of(sections[path].split('class="t2-page"')[0]), f"{path}: no caption"
