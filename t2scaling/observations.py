"""Observation tables (DESIGN.md §5): read CSV or Parquet, validate, and shape them for the fitters.

A table has one of three forms, told apart by its columns:
- `per_question`: checkpoint, N, D, question, and nll (summed nats) or p = exp(-nll); optional
  n_answer_tokens; optional sample counts n_samples, n_correct (also accepted as n, c), alone or beside nll/p.
- `pass_at_k`: checkpoint, N, D, k, pass_at_k (aggregated results, e.g. imported); optional n_samples.
- `loss`: N, D, loss, optional checkpoint (pretraining loss, or any per-checkpoint loss in nats).
A `columns` mapping {standard name: your name} renames your columns. Every problem is reported with the file,
the column or row (1-based data row; CSV also gives the file line) and the fix. What a table measures (pass@k,
task loss, NLL) is `t2scaling.measure`'s.
"""

import dataclasses
import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from t2scaling.atomic import atomic_file

logger = logging.getLogger(__name__)

COLUMNS = {
    "checkpoint": "checkpoint id",
    "N": "parameter count",
    "D": "training tokens",
    "question": "question id",
    "nll": "summed NLL of the gold answer (nats)",
    "p": "single-sample success probability exp(-nll)",
    "n_answer_tokens": "answer length in tokens",
    "n_samples": "samples drawn per question",
    "n_correct": "correct samples per question",
    "k": "samples per question of an aggregated pass@k",
    "pass_at_k": "aggregated pass@k in [0, 1]",
    "loss": "loss (nats)",
}
ALIASES = {"n": "n_samples", "c": "n_correct"}


@dataclasses.dataclass
class Observations:
    path: str
    form: str  # "per_question" | "pass_at_k" | "loss"
    frame: pd.DataFrame  # standard columns; index = 0-based data row of the file
    sha256: str  # "sha256:<hex>" of the file bytes
    given_columns: list = dataclasses.field(default_factory=list)  # as in the file (after renaming)

    @property
    def has_p(self):
        return "p" in self.frame

    @property
    def has_samples(self):
        return "n_samples" in self.frame and "n_correct" in self.frame

    def row(self, index):
        """Where data row `index` (0-based) is, as a person finds it in the file."""
        line = f" (line {index + 2})" if self.path.lower().endswith((".csv", ".tsv")) else ""
        return f"row {index + 1}{line}"


def file_hash(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def read_table(path, columns=None):
    """Read and validate an observation table; returns `Observations` with standard column names."""
    path = str(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: observation table not found; check the path")
    obs = _validated(_read_frame(path), path, file_hash(path), columns)
    frame = obs.frame
    logger.info("%s: %d rows, %s form, columns %s", path, len(frame), obs.form, list(frame.columns))
    return obs


def from_frame(frame, label, columns=None):
    """Validate an in-memory table (e.g. a public dataset's loader output) as `read_table` does a file; `label`
    names it in every message, and its sha256 is that of the frame's contents."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()
    return _validated(frame, label, "sha256:" + digest, columns)


def _validated(frame, label, sha256, columns):
    """A table's frame (columns renamed to the standard names) as validated `Observations` named `label`."""
    frame = _rename(frame.reset_index(drop=True), columns, label)
    obs = Observations(label, _form(frame, label), frame, sha256, list(frame.columns))
    validate(obs)
    return obs


def _read_frame(path):
    """The raw frame of a CSV/TSV or Parquet file; a file that cannot be read is a ValueError naming it."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv", ".tsv"):
        raise ValueError(f"{path}: unknown table format {suffix!r}; save it as .csv or .parquet")
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: cannot read the table: not UTF-8 text (found byte "
                         f"0x{err.object[err.start]:02x}); save the CSV as UTF-8, or as Parquet") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as err:
        kind = "Parquet" if suffix in (".parquet", ".pq") else "CSV"
        raise ValueError(f"{path}: cannot read the table ({type(err).__name__}: {err}); check it is valid "
                         f"{kind}") from None


def _rename(frame, columns, path):
    mapping = {}
    for std, user in (columns or {}).items():
        if std not in COLUMNS:
            raise ValueError(f"{path}: column mapping names unknown standard column {std!r}; "
                             f"standard columns are {', '.join(COLUMNS)}")
        if user not in frame:
            raise ValueError(f"{path}: column mapping {std}={user} names a column {user!r} the file lacks; "
                             f"its columns are {list(frame.columns)}")
        if std in frame and std != user:
            raise ValueError(f"{path}: column mapping {std}={user}, but the file already has a column {std!r}; "
                             "rename one of them")
        mapping[user] = std
    frame = frame.rename(columns=mapping)
    for alias, std in ALIASES.items():
        if alias in frame and std not in frame:
            frame = frame.rename(columns={alias: std})
    return frame


def _form(frame, path):
    if "loss" in frame:
        return "loss"
    if "pass_at_k" in frame or "k" in frame:
        return "pass_at_k"
    if {"question", "nll", "p", "n_samples", "n_correct"} & set(frame.columns):
        return "per_question"
    raise ValueError(
        f"{path}: cannot tell what the table holds (columns {list(frame.columns)}); it needs N, D and either "
        "'loss', or 'k' and 'pass_at_k', or 'question' with 'nll'/'p' and/or 'n_samples'/'n_correct'. "
        "Map your column names with columns={'standard': 'yours'} (CLI: --column standard=yours)"
    )


def _require(obs, names):
    for name in names:
        if name not in obs.frame:
            raise ValueError(
                f"{obs.path}: missing column {name!r} ({COLUMNS[name]}) needed by a {obs.form} table; add it, or "
                f"map your column with columns={{'{name}': 'yours'}} (CLI: --column {name}=yours). "
                f"Columns found: {list(obs.frame.columns)}"
            )


def reject_rows(obs, column, bad, problem, fix):
    """Raise naming the first bad row of `column` (bad: boolean mask over rows), its value, the problem and the
    fix; also for checks outside this module (`measure.k_grid_for`)."""
    bad = np.asarray(bad, dtype=bool)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        value = obs.frame[column].iloc[first] if column in obs.frame else None
        value = value.item() if isinstance(value, np.generic) else value
        more = f" ({int(bad.sum()) - 1} more rows alike)" if bad.sum() > 1 else ""
        raise ValueError(f"{obs.path}: column {column!r}, {obs.row(first)}: {column} = {value!r} {problem}{more}; "
                         f"{fix}")


def _numeric(obs, column, integer=False):
    values = pd.to_numeric(obs.frame[column], errors="coerce").to_numpy(dtype=float)
    reject_rows(obs, column, ~np.isfinite(values), "is not a finite number", "fix or drop the row")
    if integer:
        reject_rows(obs, column, values != np.round(values), "is not a whole number", "counts must be integers")
        values = values.astype(np.int64)
    obs.frame[column] = values
    return values


def validate(obs):
    frame = obs.frame
    if len(frame) == 0:
        raise ValueError(f"{obs.path}: the table has no rows; add observations")
    needed = {"per_question": ["checkpoint", "N", "D", "question"], "pass_at_k": ["checkpoint", "N", "D", "k",
              "pass_at_k"], "loss": ["N", "D", "loss"]}[obs.form]
    _require(obs, needed)
    for name in ("N", "D"):
        reject_rows(obs, name, ~(_numeric(obs, name) > 0), "must be > 0",
              f"give the {COLUMNS[name]} as a positive number (not log10, not 0)")
    for name in ("checkpoint", "question"):
        if name in frame:
            reject_rows(obs, name, frame[name].isna(), "is empty", f"give every row a {COLUMNS[name]}")
            frame[name] = frame[name].astype(str)
    if obs.form == "per_question":
        _validate_per_question(obs)
    elif obs.form == "pass_at_k":
        k = _numeric(obs, "k")
        reject_rows(obs, "k", k < 1, "must be >= 1", "k counts samples per question")
        acc = _numeric(obs, "pass_at_k")
        reject_rows(obs, "pass_at_k", (acc < 0) | (acc > 1), "lies outside [0, 1]", "give pass@k as a fraction, not %")
        if "n_samples" in frame:
            n = _numeric(obs, "n_samples", integer=True)
            reject_rows(obs, "k", k > n, "exceeds n_samples of the same row",
                  "pass@k cannot be estimated from fewer than k samples; drop the row or draw more samples")
        _unique(obs, ["checkpoint", "k"])
    else:
        reject_rows(obs, "loss", ~(_numeric(obs, "loss") > 0), "must be > 0", "give the loss in nats")
    if "checkpoint" in frame:
        for name in ("N", "D"):
            differs = frame[name].to_numpy() != frame.groupby("checkpoint")[name].transform("first").to_numpy()
            reject_rows(obs, name, differs, "differs from an earlier row of the same checkpoint",
                  f"each checkpoint has one {name}; fix the value or the checkpoint id")


def _validate_per_question(obs):
    frame = obs.frame
    if not ({"nll", "p"} & set(frame.columns)) and "n_samples" not in frame and "n_correct" not in frame:
        _require(obs, ["nll"])
    if "nll" in frame:
        nll = _numeric(obs, "nll")
        reject_rows(obs, "nll", nll < 0, "is negative", "nll is the summed -log p of the gold answer (nats, >= 0)")
        p = np.exp(-nll)
        reject_rows(obs, "nll", p <= 0, "makes p = exp(-nll) underflow to 0",
              "exact pass@k needs p > 0; drop the question or shorten its answer")
        if "p" in frame:
            given = _numeric(obs, "p")
            reject_rows(obs, "p", ~np.isclose(given, p, rtol=1e-6, atol=0), "disagrees with exp(-nll) of the same row",
                  "give one of nll and p, or make them consistent")
        frame["p"] = p
    elif "p" in frame:
        p = _numeric(obs, "p")
        reject_rows(obs, "p", ~((p > 0) & (p <= 1)), "lies outside (0, 1]",
              "p is a probability exp(-nll); a question with p = 0 has infinite NLL and must be dropped")
        frame["nll"] = -np.log(p)
    if "n_samples" in frame or "n_correct" in frame:
        _require(obs, ["n_samples", "n_correct"])
        n = _numeric(obs, "n_samples", integer=True)
        c = _numeric(obs, "n_correct", integer=True)
        reject_rows(obs, "n_samples", n < 1, "must be >= 1", "record at least one sample per question")
        reject_rows(obs, "n_correct", c < 0, "is negative", "count correct samples (>= 0)")
        reject_rows(obs, "n_correct", c > n, "exceeds n_samples of the same row",
                    "n_correct counts a subset of samples")
    if "n_answer_tokens" in frame:
        reject_rows(obs, "n_answer_tokens", _numeric(obs, "n_answer_tokens", integer=True) < 1, "must be >= 1",
              "count the gold answer's tokens")
    _unique(obs, ["checkpoint", "question"])
    questions = frame.groupby("checkpoint")["question"].agg(frozenset)
    if questions.nunique() > 1:
        common = frozenset.intersection(*questions)
        odd = next(c for c, q in questions.items() if q != questions.iloc[0])
        extra = sorted((questions[odd] ^ questions.iloc[0]))[:3]
        raise ValueError(f"{obs.path}: checkpoints do not share one question set (checkpoint {odd!r} differs on "
                         f"{extra}; {len(common)} questions are common); means over questions are only comparable "
                         "on the same questions: evaluate the missing ones or drop the extra rows")


def _unique(obs, keys):
    dup = obs.frame.duplicated(keys).to_numpy()
    reject_rows(obs, keys[-1], dup, f"repeats an earlier row's {' and '.join(keys)}", "drop the duplicate row")


def require_points(n_points, law, label, what="points"):
    """A law with P parameters needs at least P observations (and the caller names them)."""
    from t2scaling.laws import get_law

    n_params = len(get_law(law).param_names)
    if n_points < n_params:
        raise ValueError(f"{label}: {n_points} {what} for the {law} law, which has {n_params} parameters; "
                         f"add observations (at least {n_params}, ideally several times more)")


# ---- shaping validated tables for the fitters ----

def checkpoints(obs):
    """One row per checkpoint (sorted by N, D): N, D, and for per-question tables n_questions."""
    if "checkpoint" not in obs.frame:
        raise ValueError(f"{obs.path}: needs a 'checkpoint' column here; add one (or map yours)")
    out = obs.frame.groupby("checkpoint", sort=False).agg(N=("N", "first"), D=("D", "first"))
    if obs.form == "per_question":
        out["n_questions"] = obs.frame.groupby("checkpoint", sort=False).size()
    return out.sort_values(["N", "D"], kind="stable")


def row_names(obs):
    """Each row's checkpoint, or where a loss table has no checkpoint column 'row i' (1-based data row, as errors
    name it)."""
    if "checkpoint" in obs.frame:
        return list(obs.frame["checkpoint"])
    return [f"row {i + 1}" for i in range(len(obs.frame))]


def question_matrix(obs, column):
    """(checkpoints, array [checkpoint, question]) of a per-question column, questions in one fixed order."""
    if obs.form != "per_question":
        raise ValueError(f"{obs.path}: per-question data needed, but this is a {obs.form} table")
    ckpts = checkpoints(obs)
    wide = obs.frame.pivot(index="checkpoint", columns="question", values=column)
    return ckpts, wide.loc[ckpts.index].to_numpy(dtype=float)


def choose_source(obs, source="auto"):
    """Which per-question data a fit uses: 'p' (likelihoods), 'samples' (n, c) or 'aggregated' pass@k."""
    if obs.form == "pass_at_k":
        available = ["aggregated"]
    else:
        available = [s for s, ok in (("p", obs.has_p), ("samples", obs.has_samples)) if ok]
    if source == "auto" and available:
        return available[0]
    if source not in available:
        raise ValueError(f"{obs.path}: source {source!r} not available in this {obs.form} table (available: "
                         f"{available or 'none'}); add the columns it needs or choose another source")
    return source


def likelihood_data(obs, source="auto"):
    """Sufficient statistics per checkpoint for the Approach 2 likelihood fit.

    'p': dict(kind='beta', m, sum_log_p, sum_log_1mp) per checkpoint (C,); p = 1 (nll = 0) is clipped to
    nll = 1e-12 nats so log(1 - p) stays finite. 'samples': dict(kind='betabinom', ckpt, n, c, count) over the
    distinct (checkpoint, n, c) rows.
    """
    source = choose_source(obs, source)
    ckpts = checkpoints(obs)
    if source == "p":
        _, nll = question_matrix(obs, "nll")
        nll = np.maximum(nll, 1e-12)
        return ckpts, dict(kind="beta", m=np.full(len(ckpts), nll.shape[1], dtype=float),
                           sum_log_p=-nll.sum(axis=1), sum_log_1mp=np.log(-np.expm1(-nll)).sum(axis=1))
    if source != "samples":
        raise ValueError(f"{obs.path}: the likelihood fit needs per-question p/nll or n_samples/n_correct")
    index = pd.Series(np.arange(len(ckpts)), index=ckpts.index)
    rows = pd.DataFrame({"ckpt": index.loc[obs.frame["checkpoint"]].to_numpy(),
                         "n": obs.frame["n_samples"].to_numpy(), "c": obs.frame["n_correct"].to_numpy()})
    counts = rows.value_counts().reset_index()
    return ckpts, dict(kind="betabinom", ckpt=counts["ckpt"].to_numpy(), n=counts["n"].to_numpy(float),
                       c=counts["c"].to_numpy(float), count=counts["count"].to_numpy(float))


def from_eval(path, checkpoint, size):
    """The per-question Observations of one evaluation file (question, nll, ... columns) of `checkpoint`, whose
    size is {"N": .., "D": ..}: the one place an evaluation becomes observations (the collect rule and the
    validation table use it). Validated (errors name the file, the row and the fix), which adds p = exp(-nll);
    `given_columns` are the file's columns with checkpoint, N and D first."""
    frame = pd.read_parquet(path) if str(path).endswith((".parquet", ".pq")) else pd.read_csv(path)
    if "question" not in frame and "id" in frame:  # a task table's id column, as some older evaluations named it
        frame = frame.rename(columns={"id": "question"})
    frame = frame.drop(columns=[c for c in ("checkpoint", "N", "D") if c in frame])
    frame.insert(0, "checkpoint", str(checkpoint))
    frame.insert(1, "N", float(size["N"]))
    frame.insert(2, "D", float(size["D"]))
    obs = Observations(str(path), "per_question", frame, "", list(frame.columns))
    validate(obs)
    return obs


def collect_observations(evals, sizes, out_path, imported=()):
    """Join per-checkpoint evaluation tables into one per-question observation table (Parquet, atomic).

    evals: {checkpoint: eval table path (question, nll, ... columns)}; sizes: {checkpoint: {"N": .., "D": ..}};
    imported: further per-question observation tables (with checkpoint, N, D) appended as they are.
    """
    parts = []
    for name, path in evals.items():
        if name not in sizes:
            raise ValueError(f"{path}: checkpoint {name!r} has no N, D in the sizes given; declare it in the config")
        obs = from_eval(path, name, sizes[name])
        parts.append(obs.frame[obs.given_columns])  # as evaluated: the derived p is not stored
    for path in imported:
        obs = read_table(path)
        if obs.form != "per_question":
            raise ValueError(f"{path}: imported observations must be per-question (checkpoint, N, D, question, "
                             f"nll/p or n_samples/n_correct) to join a task's table; this is a {obs.form} table. "
                             "Fit it on its own with `t2scaling fit`")
        # nll is the canonical column (derived from p when only p is given); p is re-derived from it
        columns = [c for c in obs.given_columns if c != "p"] + (["nll"] if "nll" not in obs.given_columns else [])
        parts.append(obs.frame[columns])
    _check_joinable(parts, list(evals.values()) + list(imported))
    if not parts:
        raise ValueError(f"{out_path}: no evaluation tables to collect; evaluate at least one checkpoint")
    table = pd.concat(parts, ignore_index=True)
    validate(Observations(str(out_path), "per_question", table.copy(), ""))  # across files: ids, question sets
    with atomic_file(out_path) as tmp, open(tmp, "wb") as fh:
        table.to_parquet(fh, index=False)
    logger.info("%s: %d observation rows from %d checkpoints", out_path, len(table), table["checkpoint"].nunique())
    return table


def _check_joinable(parts, paths):
    """Every table of one task carries the same per-question measurements: a column that some tables have and
    others lack would leave NaNs in the joint table."""
    for column, meaning in (("n_answer_tokens", "the gold answer's length in tokens"),
                            ("n_samples", "sample counts (n_samples, n_correct)")):
        having = [path for path, part in zip(paths, parts) if column in part]
        lacking = [path for path, part in zip(paths, parts) if column not in part]
        if having and lacking:
            raise ValueError(f"{lacking[0]}: no {column!r} column, but {having[0]} of the same task has one; every "
                             f"table of a task needs {meaning} (add the column, or import this table on its own "
                             "with `t2scaling fit`)")


LOSS_COLUMNS = ("checkpoint", "N", "D", "loss", "N_non_embedding", "C_train")


def write_loss_table(val_loss_paths, out_path):
    """Rule pretrain_losses: the validation losses of the trained checkpoints (the JSON files of
    `evaluate.write_val_loss`) as one loss table (CSV, columns LOSS_COLUMNS; loss in nats/token), the
    pretraining loss law's data; returns it."""
    import json

    rows = []
    for path in val_loss_paths:
        row = json.loads(Path(path).read_text())
        rows.append({"checkpoint": row["cell"], "N": row["N"], "D": row["D"], "loss": row["val_loss"],
                     "N_non_embedding": row["N_non_embedding"], "C_train": row["C_train"]})
    table = pd.DataFrame(rows, columns=list(LOSS_COLUMNS))
    table.to_csv(out_path, index=False)
    logger.info("validation losses of %d trained checkpoints", len(table))
    return table
