"""The end-of-run summary (t2scaling.summary, the Snakefile's onsuccess): on small files this test writes."""

import json

import pandas as pd

from t2scaling.summary import MAX_LISTED, REPORT_COMMAND, run_summary


def write_fit(path, law, converged, task="knowledge"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"law": law, "params": {}, "task": task, "converged": converged}))


def write_frontier(path, extrapolated, extrapolated_in):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"c_train": [1e15, 1e16, 1e17][:len(extrapolated)], "extrapolated": extrapolated,
                  "extrapolated_in": extrapolated_in}).to_csv(path, index=False)


def test_unconverged_fits_extrapolated_forecasts_places_and_the_report_command(tmp_path):
    root = tmp_path / "results"
    write_fit(root / "tasks/knowledge/fits/chinchilla.json", "chinchilla", True)
    write_fit(root / "tasks/knowledge/fits/approach1.json", "approach1", False)
    write_fit(root / "pretrain/chinchilla.json", "chinchilla", False, task="")
    write_frontier(root / "tasks/knowledge/frontier/approach1.csv", [False, True, True], ["", "N", "N,k"])
    write_frontier(root / "macro/frontier/approach2.csv", [False, False], ["", ""])
    (root / "tables").mkdir()
    (root / "tables/table1.csv").write_text("a\n1\n")
    (root / "macro/plots").mkdir(parents=True)
    (root / "macro/plots/frontier.png").write_bytes(b"")

    text = run_summary(root)
    lines = text.splitlines()
    assert lines[0] == f"Run summary ({root}/):"
    assert "3 fit JSONs, 2 not converged" in text
    assert f"{root}/tasks/knowledge/fits/approach1.json (approach1, task knowledge)" in text
    assert f"{root}/pretrain/chinchilla.json (chinchilla)" in text
    assert f"{root}/tasks/knowledge/fits/chinchilla.json" not in text  # converged: not listed
    assert "2 of 5 frontier rows in 2 tables are extrapolated" in text
    assert f"{root}/tasks/knowledge/frontier/approach1.csv: 2 of 3 rows (outside the data in N, k)" in text
    assert "macro/frontier/approach2.csv" not in text
    assert f"tables: {root}/tables/" in text and f"figures: {root}/macro/plots/" in text
    assert lines[-1].endswith(REPORT_COMMAND) and REPORT_COMMAND == "snakemake --report report.html all validate"


def test_a_clean_run_says_so(tmp_path):
    write_fit(tmp_path / "tasks/a/fits/approach2.json", "approach2", True)
    write_frontier(tmp_path / "tasks/a/frontier/approach2.csv", [False], [""])
    text = run_summary(tmp_path)
    assert "fits: 1 fit JSON, all converged" in text
    assert "forecasts: 1 frontier row in 1 table, none extrapolated" in text
    assert "tables: none yet" in text and "figures: none yet" in text


def test_missing_empty_and_malformed_results_never_raise(tmp_path):
    missing = tmp_path / "nowhere"
    assert run_summary(missing) == f"Run summary: no {missing}/ directory here, nothing to summarise."
    assert "fits: none yet" in run_summary(tmp_path) and "no frontier tables yet" in run_summary(tmp_path)

    (tmp_path / "tasks/a/fits").mkdir(parents=True)
    (tmp_path / "tasks/a/fits/broken.json").write_text("{not json")
    (tmp_path / "tasks/a/fits/list.json").write_text("[1, 2]")
    (tmp_path / "tasks/a/frontier").mkdir(parents=True)
    (tmp_path / "tasks/a/frontier/old.csv").write_text("c_train,N_star\n1,2\n")
    (tmp_path / "tasks/a/frontier/binary.csv").write_bytes(b"\xff\xfe\x00")
    text = run_summary(tmp_path)
    assert "fits: 2 unreadable" in text and "broken.json (JSONDecodeError" in text and "list.json (TypeError" in text
    assert "forecasts: 2 frontier tables unreadable" in text
    assert "old.csv (no `extrapolated` column" in text and "binary.csv (UnicodeDecodeError" in text


def test_long_lists_are_cut(tmp_path):
    for i in range(MAX_LISTED + 3):
        write_fit(tmp_path / f"tasks/t{i:02d}/fits/approach1.json", "approach1", False, task=f"t{i:02d}")
    text = run_summary(tmp_path)
    assert f"{MAX_LISTED + 3} fit JSONs, {MAX_LISTED + 3} not converged" in text
    assert "… and 3 more" in text and "t12/fits" not in text
