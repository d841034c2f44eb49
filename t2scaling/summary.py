"""The end-of-run summary the workflow prints (`onsuccess:` in the Snakefile): what needs a reader's attention.

    >>> print(run_summary("results"))  # doctest: +SKIP
    Run summary (results/):
      fits: 14 fit JSONs, 1 not converged (kept with converged=false: its forecasts are not trustworthy):
        results/tasks/knowledge/fits/approach1.json (approach1, task knowledge)
      ...

Reads only the files (fit JSONs: `converged`, `law`, `task`; frontier CSVs: `extrapolated`, `extrapolated_in`)
with the standard library, so the Snakefile can call it after any run; a file it cannot read is listed as such,
never raised.
"""

import csv
import json
from pathlib import Path

REPORT_COMMAND = "snakemake --report report.html all validate"
MAX_LISTED = 10  # files listed per section; the rest are counted
# Where a reader looks first, if the run made them (README "Where results land" has every path).
TABLES = ("tables", "posttrain/comparison.csv", "extrapolation", "validate")
FIGURES = ("tasks/*/plots", "macro/plots", "plots", "extrapolation", "validate")



def _count(n, noun):
    """'1 table', '2 tables'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"

def _fit_files(root):
    """Every fit JSON: results/**/fits/*.json and the pretraining-loss fit."""
    return sorted({*root.glob("**/fits/*.json"), *root.glob("pretrain/chinchilla.json")})


def _is_true(value):
    return str(value).strip().lower() in ("true", "1", "yes")


def _listed(lines, indent="    "):
    shown = [indent + line for line in lines[:MAX_LISTED]]
    if len(lines) > MAX_LISTED:
        shown.append(f"{indent}… and {len(lines) - MAX_LISTED} more")
    return shown


def _fits_section(root):
    files = _fit_files(root)
    if not files:
        return ["  fits: none yet"]
    unconverged, unreadable = [], []
    for path in files:
        try:
            fit = json.loads(path.read_text(encoding="utf-8"))
            converged = fit["converged"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            unreadable.append(f"{path} ({type(err).__name__}: {err})")
            continue
        if converged is not True:
            what = ", ".join(filter(None, [str(fit.get("law", "")), f"task {fit['task']}" if fit.get("task") else ""]))
            unconverged.append(f"{path} ({what})" if what else str(path))
    if not unconverged and not unreadable:
        return [f"  fits: {_count(len(files), 'fit JSON')}, all converged"]
    out = [f"  fits: {_count(len(files), 'fit JSON')}, {len(unconverged)} not converged (kept with converged=false: their "
           "forecasts are not trustworthy; each file's problems are in its job's log)" if unconverged else
           f"  fits: {_count(len(files), 'fit JSON')}"]
    out += _listed(unconverged)
    if unreadable:
        out.append(f"  fits: {len(unreadable)} unreadable:")
        out += _listed(unreadable)
    return out


def _frontiers_section(root):
    files = sorted(root.glob("**/frontier/*.csv"))
    if not files:
        return ["  forecasts: no frontier tables yet"]
    flagged, unreadable, rows, total_flagged = [], [], 0, 0
    for path in files:
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                table = list(csv.DictReader(fh))
        except (OSError, ValueError, csv.Error) as err:
            unreadable.append(f"{path} ({type(err).__name__}: {err})")
            continue
        if table and "extrapolated" not in table[0]:
            unreadable.append(f"{path} (no `extrapolated` column: written by an older version; rerun its frontier)")
            continue
        hits = [row for row in table if _is_true(row["extrapolated"])]
        rows += len(table)
        total_flagged += len(hits)
        if hits:
            dims = sorted({d for row in hits for d in str(row.get("extrapolated_in") or "").split(",") if d})
            where = f" (outside the data in {', '.join(dims)})" if dims else ""
            flagged.append(f"{path}: {len(hits)} of {len(table)} rows{where}")
    if total_flagged:
        out = [f"  forecasts: {total_flagged} of {_count(rows, 'frontier row')} in {_count(len(files), 'table')} "
               "are extrapolated beyond "
               "the fitted data (columns extrapolated, extrapolated_in; dashed in the frontier figures):"]
        out += _listed(flagged)
    else:
        out = [f"  forecasts: {_count(rows, 'frontier row')} in {_count(len(files), 'table')}, none extrapolated "
               "beyond the fitted data"]
    if unreadable:
        out.append(f"  forecasts: {len(unreadable)} frontier tables unreadable:")
        out += _listed(unreadable)
    return out


def _where(root, patterns):
    found = []
    for pattern in patterns:
        if any(root.glob(pattern)):
            found.append(f"{root / pattern}" + ("/" if "." not in Path(pattern).name else ""))
    return ", ".join(found) if found else "none yet"


def run_summary(results_dir="results"):
    """A short multi-line summary of a run's results: unconverged fits, forecasts flagged as extrapolated, where
    the tables and figures are, and the report command. Never raises on a missing or malformed file."""
    root = Path(results_dir)
    if not root.is_dir():
        return f"Run summary: no {root}/ directory here, nothing to summarise."
    lines = [f"Run summary ({root}/):"]
    lines += _fits_section(root)
    lines += _frontiers_section(root)
    lines.append(f"  tables: {_where(root, TABLES)}")
    lines.append(f"  figures: {_where(root, FIGURES)}")
    lines.append("  every output path: README, \"Where results land\"")
    lines.append(f"  report (every figure and table with captions): {REPORT_COMMAND}")
    return "\n".join(lines)
