"""Task adapters: every task becomes one table of (id, prompt, answer[, choices], split) (DESIGN.md §3.1).

Convention: `prompt + answer` is the full text the model sees; the answer carries its leading space where
there is one (" Paris"), so the tokenisation boundary is the tokenizer's business, not the adapter's.

- Synthetic families written by the world generator (`t2scaling.world`):
  `{world_dir}/tasks/{family}.jsonl`, rows {"id", "prompt", "answer", "split"}.
- Real tasks through `datasets` (hub name when cached) or local files in the hub's schema (`path=`, a
  .jsonl/.json/.parquet file or a directory of them, split named in the file name):
  LAMBADA (OpenAI variant), ARC-Easy, SciQ, OpenBookQA, with the paper's prompt formats.

Adding a task kind = one adapter function + one `TASKS` entry. Each task has a verifier for sampling:
`verifier(prediction, answer) -> bool`.
"""

import dataclasses
import logging
import math
import re
from pathlib import Path

import pandas as pd

from t2scaling.atomic import atomic_file

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("id", "prompt", "answer")
SPLITS = ("test", "train")  # evaluation split, fine-tuning split


# --------------------------------------------------------------------------------------------- verifiers

def normalize_answer(text):
    """strip, collapse whitespace, lowercase, drop trailing punctuation: ' The  Cat.' -> 'the cat'."""
    text = " ".join(str(text).split()).lower()
    return re.sub(r"[\s.,;:!?'\"]+$", "", text)


class ExactMatch:
    """Default verifier: equal after `normalize_answer`.

    `could_match(prefix, answer)` tells a sampler whether a partial sample can still verify, so it can stop
    a sample early without changing any result: normalising a prefix of a text gives a prefix of the text's
    normalisation, so once that fails to prefix the normalised answer, no continuation can match.
    """

    def __call__(self, prediction, answer):
        return normalize_answer(prediction) == normalize_answer(answer)

    def could_match(self, prefix, answer):
        if prefix.endswith("\ufffd"):  # a multi-byte character cut in half: undecided
            return True
        return normalize_answer(answer).startswith(normalize_answer(prefix))


exact_match = ExactMatch()


def _as_number(text):
    try:
        value = float(normalize_answer(text).replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def numeric_match(prediction, answer):
    """Arithmetic verifier: equal as numbers ('3', '3.0', '3.' all match 3); exact match if the gold is not a number."""
    gold = _as_number(answer)
    if gold is None:
        return exact_match(prediction, answer)
    return _as_number(prediction) == gold


# --------------------------------------------------------------------------------------------- adapters

def load_synthetic(family, path=None, world_dir=None):
    """A family file written by the world generator: `path`, or `{world_dir}/tasks/{family}.jsonl`."""
    if path is None and world_dir is None:
        raise ValueError(f"task {family!r}: pass path= (the {family}.jsonl file) or world_dir= (the world directory)")
    path = Path(path) if path is not None else Path(world_dir) / "tasks" / f"{family}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"task {family!r}: {path} not found; generate it with `t2scaling world`")
    df = pd.read_json(path, lines=True, dtype={"id": str, "prompt": str, "answer": str, "split": str})
    missing = [c for c in (*REQUIRED_COLUMNS, "split") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing field(s) {missing}; each line needs id, prompt, answer, split")
    return df[["id", "prompt", "answer", "split"]]


def _local_split_files(task, path, config=None):
    """{split: [files]} from a file or a directory in the hub's layout; the split is named in each file name."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"task {task!r}: local path {path} not found")
    if path.is_file():
        files = [path]
    else:
        root = path / config if config and (path / config).is_dir() else path
        files = sorted(p for p in root.rglob("*") if p.suffix in (".jsonl", ".json", ".parquet"))
    by_split = {}
    for f in files:
        split = next((s for s in SPLITS if s in f.name.lower()), None)
        if split is None and path.is_file():
            split = "test"  # a single file is the evaluation set
        if split is not None:
            by_split.setdefault(split, []).append(f)
    if "test" not in by_split:
        raise ValueError(f"task {task!r}: no test split in {path}; name the file(s) e.g. test.jsonl or "
                         "test-00000-of-00001.parquet, or pass the test file itself")
    return by_split


def _read_local(f):
    if f.suffix == ".parquet":
        return pd.read_parquet(f).to_dict("records")
    return pd.read_json(f, lines=f.suffix == ".jsonl").to_dict("records")


def load_hub_records(task, hub, config=None, path=None):
    """{split: [record dicts]} for the test and train splits: local files at `path`, else the (cached) hub dataset."""
    if path is not None:
        files = _local_split_files(task, path, config)
        return {split: [r for f in split_files for r in _read_local(f)] for split, split_files in files.items()}
    import datasets

    try:
        ds = datasets.load_dataset(hub, config) if config else datasets.load_dataset(hub)
    except Exception as err:  # offline, not cached, or no such dataset: say how to proceed
        raise ValueError(
            f"task {task!r}: cannot load hub dataset {hub!r}" + (f" (config {config!r})" if config else "")
            + f" ({type(err).__name__}: {err}). Cache it once with datasets.load_dataset({hub!r}"
            + (f", {config!r}" if config else "") + ") on a machine with network access, or pass local files in "
            "the hub's schema: path=FILE.jsonl|FILE.parquet|DIR (config: tasks.<name>.path)"
        ) from err
    return {s: ds[s].to_list() for s in SPLITS if s in ds}


def _get(record, name):
    """record[name], or None when absent or a missing value (NaN where pandas read a ragged file)."""
    value = record.get(name)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _field(task, split, i, record, name):
    if _get(record, name) is None:
        raise ValueError(f"task {task!r}: {split} record {i} lacks field {name!r}; is the file in the hub's schema?")
    return record[name]


def _choice_answer(task, split, i, record):
    """(answer text, list of choice texts) from {choices: {text, label}, answerKey}."""
    choices = _field(task, split, i, record, "choices")
    texts, labels = list(choices["text"]), [str(x) for x in choices["label"]]
    key = str(_field(task, split, i, record, "answerKey"))
    if key not in labels:
        raise ValueError(f"task {task!r}: {split} record {i}: answerKey {key!r} not among labels {labels}")
    return texts[labels.index(key)], texts


def _table(task, rows):
    df = pd.DataFrame(rows)
    logger.info("task %s: %s", task, df["split"].value_counts().to_dict())
    return df


def load_lambada(path=None):
    """LAMBADA (OpenAI variant): the passage without its last word -> ' ' + last word."""
    rows = []
    for split, records in load_hub_records("lambada", "EleutherAI/lambada_openai", path=path).items():
        for i, r in enumerate(records):
            text = str(_field("lambada", split, i, r, "text")).rstrip()
            prompt, _, word = text.rpartition(" ")
            rows.append({"id": f"{split}-{i}", "prompt": prompt, "answer": " " + word, "split": split})
    return _table("lambada", rows)


def load_arc_easy(path=None):
    """ARC-Easy: `Question: {question}\\nAnswer:` -> ' {answer text}'."""
    rows = []
    for split, records in load_hub_records("arc_easy", "allenai/ai2_arc", "ARC-Easy", path=path).items():
        for i, r in enumerate(records):
            answer, texts = _choice_answer("arc_easy", split, i, r)
            question = _field("arc_easy", split, i, r, "question")
            rows.append({"id": str(_get(r, "id") or f"{split}-{i}"), "prompt": f"Question: {question}\nAnswer:",
                         "answer": f" {answer}", "choices": texts, "split": split})
    return _table("arc_easy", rows)


def load_sciq(path=None):
    """SciQ: `{support}\\nQuestion: {question}\\nAnswer:` -> ' {correct_answer}'."""
    rows = []
    for split, records in load_hub_records("sciq", "allenai/sciq", path=path).items():
        for i, r in enumerate(records):
            support = str(_get(r, "support") or "").strip()
            question = _field("sciq", split, i, r, "question")
            answer = _field("sciq", split, i, r, "correct_answer")
            distractors = [r[k] for k in ("distractor1", "distractor2", "distractor3") if _get(r, k) is not None]
            rows.append({"id": f"{split}-{i}", "prompt": f"{support}\nQuestion: {question}\nAnswer:".lstrip(),
                         "answer": f" {answer}", "choices": [answer, *distractors], "split": split})
    return _table("sciq", rows)


def load_openbookqa(path=None):
    """OpenBookQA (main): `{question_stem}` -> ' {answer text}'."""
    rows = []
    for split, records in load_hub_records("openbookqa", "allenai/openbookqa", "main", path=path).items():
        for i, r in enumerate(records):
            answer, texts = _choice_answer("openbookqa", split, i, r)
            question = _field("openbookqa", split, i, r, "question_stem")
            rows.append({"id": str(_get(r, "id") or f"{split}-{i}"), "prompt": question, "answer": f" {answer}",
                         "choices": texts, "split": split})
    return _table("openbookqa", rows)


@dataclasses.dataclass(frozen=True)
class Task:
    adapter: object  # (**options) -> DataFrame
    verifier: object = exact_match  # (prediction, answer) -> bool
    hub: str = ""  # the hub dataset, for messages


def _synthetic(family):
    return lambda path=None, world_dir=None: load_synthetic(family, path=path, world_dir=world_dir)


TASKS = {
    "knowledge": Task(_synthetic("knowledge")),
    "arithmetic": Task(_synthetic("arithmetic"), verifier=numeric_match),
    "analogy": Task(_synthetic("analogy")),
    "spatial": Task(_synthetic("spatial")),
    "lambada": Task(load_lambada, hub="EleutherAI/lambada_openai"),
    "arc_easy": Task(load_arc_easy, hub="allenai/ai2_arc (ARC-Easy)"),
    "sciq": Task(load_sciq, hub="allenai/sciq"),
    "openbookqa": Task(load_openbookqa, hub="allenai/openbookqa (main)"),
}


def _task(name):
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)} (or pass a task table file)")
    return TASKS[name]


def load_task(name, **options):
    """The validated task table of task `name` (a `TASKS` key); options go to its adapter (path=, world_dir=)."""
    df = _task(name).adapter(**options)
    return validate_task_table(df, source=f"task {name!r}")


def get_verifier(name):
    """The sampling verifier of task `name`: (prediction, answer) -> bool."""
    return _task(name).verifier


# --------------------------------------------------------------------------------------------- table I/O

def validate_task_table(df, source="task table"):
    """Check required columns, non-missing prompt/answer, non-empty answers, unique ids; ids become str."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; a task table needs columns id, prompt, answer "
                         "[, choices, split]")
    df = df.reset_index(drop=True)
    for column in REQUIRED_COLUMNS:
        bad = df.index[df[column].isna()]
        if len(bad):
            raise ValueError(f"{source}: column {column!r} is missing at row {bad[0]} "
                             f"({len(bad)} row(s) in all); fill it or drop the row")
    df["id"] = df["id"].astype(str)
    empty = df.index[df["answer"].astype(str).str.strip() == ""]
    if len(empty):
        raise ValueError(f"{source}: empty answer at row {empty[0]} (id {df['id'][empty[0]]!r}; {len(empty)} "
                         "row(s) in all); every question needs a gold answer")
    dup = df["id"].duplicated(keep=False)
    if dup.any():
        rows = list(df.index[dup][:4])
        raise ValueError(f"{source}: duplicate id {df['id'][rows[0]]!r} at rows {rows}; ids must be unique")
    if "split" in df.columns and df["split"].isna().any():
        raise ValueError(f"{source}: column 'split' is missing at row {df.index[df['split'].isna()][0]}; "
                         "use 'test' or 'train'")
    return df


def write_task_table(df, path):
    """Validate and write a task table as Parquet, atomically (temp file in the same dir, then rename)."""
    path = Path(path)
    df = validate_task_table(df, source=str(path))
    with atomic_file(path) as tmp:
        df.to_parquet(tmp, index=False)
    return path


def write_task_split(name, options, split, out_path, world_files=()):
    """Rules task_table (split "test": the evaluation questions) and task_train_table (split "train": the
    post-training examples): the `split` rows of task `name` written to out_path (`write_task_table`); returns them.

    options: the task's config entry (kind, and path or limit); world_files: the embedded world's JSONL of the
    task's synthetic family (none for a real task), which then replaces any path. limit keeps the first questions
    of the test split only."""
    options = dict(options)
    kind = options.pop("kind")
    limit = options.pop("limit", None)
    world = [str(path) for path in world_files if str(path).endswith(".jsonl")]
    if world:
        options["path"] = world[0]  # a synthetic family from the embedded world
    table = load_task(kind, **options)
    table = table[table["split"] == split]
    if table.empty:
        raise ValueError(f"task {name!r} ({kind}): no {split} split; "
                         + ("post-train only tasks with a train split (config posttrain.tasks)" if split == "train"
                            else "give a task source with a test split"))
    if limit and split == "test":
        table = table.head(limit)
    write_task_table(table, out_path)
    logger.info("task %s (%s): %d %s questions", name, kind, len(table), split)
    return table


def read_task_table(path):
    """Read and validate a task table (Parquet, or CSV/JSONL with the same columns)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"task table {path} not found")
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
    elif path.suffix == ".csv":
        df = pd.read_csv(path, dtype={"id": str}, keep_default_na=False, na_values=[""])
    elif path.suffix in (".jsonl", ".json"):
        df = pd.read_json(path, lines=path.suffix == ".jsonl", dtype={"id": str})
    else:
        raise ValueError(f"task table {path}: unknown format {path.suffix!r}; use .parquet, .csv or .jsonl")
    return validate_task_table(df, source=str(path))
