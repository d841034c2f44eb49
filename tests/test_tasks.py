"""Task adapters (documented prompt formats from tiny fixture files in the hubs' schemas), verifiers, and the
task table's I/O and validation errors. Fixtures are written by the tests; nothing is downloaded."""

import json

import pandas as pd
import pytest

from t2scaling.tasks import (TASKS, exact_match, get_verifier, load_task, normalize_answer, numeric_match,
                             read_task_table, write_task_split, write_task_table)


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_parquet(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path)
    return path


def arc_record(i, question, texts, key):
    return {"id": f"arc-{i}", "question": question, "choices": {"text": texts, "label": list("ABCD")[: len(texts)]},
            "answerKey": key}


# ------------------------------------------------------------------------------------------- synthetic families

@pytest.mark.parametrize("family", ["knowledge", "arithmetic", "analogy", "spatial"])
def test_synthetic_family_from_world_dir_and_path(tmp_path, family):
    rows = [{"id": f"{family}-0", "prompt": "The capital of Zorb is", "answer": " Quell", "split": "test"},
            {"id": f"{family}-1", "prompt": "5 minus 2 equals", "answer": " 3", "split": "train"}]
    path = write_jsonl(tmp_path / "world" / "tasks" / f"{family}.jsonl", rows)
    df = load_task(family, world_dir=tmp_path / "world")
    assert df[["id", "prompt", "answer", "split"]].to_dict("records") == rows  # " 3" stays a string
    pd.testing.assert_frame_equal(load_task(family, path=path), df)


def test_synthetic_family_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"task 'spatial'.*spatial.jsonl not found.*t2scaling world"):
        load_task("spatial", world_dir=tmp_path)
    with pytest.raises(ValueError, match="pass path="):
        load_task("spatial")
    path = write_jsonl(tmp_path / "k.jsonl", [{"id": "a", "prompt": "p", "answer": " x"}])
    with pytest.raises(ValueError, match=r"k.jsonl: missing field\(s\) \['split'\]"):
        load_task("knowledge", path=path)



def test_the_task_table_job_writes_one_split_of_the_world_family(tmp_path):
    # rules task_table / task_train_table: the config entry, the world's family file, a split
    rows = [{"id": f"k-{i}", "prompt": f"Fact {i} is", "answer": f" v{i}", "split": split}
            for i, split in enumerate(["test", "test", "train", "test"])]
    path = write_jsonl(tmp_path / "tasks" / "knowledge.jsonl", rows)
    options = {"kind": "knowledge", "limit": 2}
    test = write_task_split("facts", options, "test", tmp_path / "q.parquet", world_files=[path])
    assert list(test["id"]) == ["k-0", "k-1"] and list(read_task_table(tmp_path / "q.parquet")["id"]) == ["k-0", "k-1"]
    train = write_task_split("facts", options, "train", tmp_path / "t.parquet", world_files=[path])
    assert list(train["id"]) == ["k-2"]  # the limit applies to the test questions only
    assert options == {"kind": "knowledge", "limit": 2}  # the rule's params are left alone
    only_test = write_jsonl(tmp_path / "only" / "knowledge.jsonl", [r for r in rows if r["split"] == "test"])
    with pytest.raises(ValueError, match=r"task 'facts' \(knowledge\): no train split; post-train only tasks"):
        write_task_split("facts", {"kind": "knowledge"}, "train", tmp_path / "x.parquet", world_files=[only_test])
    with pytest.raises(ValueError, match="pass path="):  # a synthetic family needs its world file
        write_task_split("facts", {"kind": "knowledge"}, "test", tmp_path / "x.parquet")


# ------------------------------------------------------------------------------------------- real tasks

def test_lambada_last_word(tmp_path):
    path = write_jsonl(tmp_path / "lambada_test.jsonl", [{"text": "he opened the door and saw his old friend Tom"},
                                                          {"text": "she said it was a rainy day\n"}])
    df = load_task("lambada", path=path)
    assert df["prompt"].tolist() == ["he opened the door and saw his old friend", "she said it was a rainy"]
    assert df["answer"].tolist() == [" Tom", " day"]
    assert (df["split"] == "test").all() and df["id"].is_unique


def test_arc_easy_from_hub_layout_dir(tmp_path):
    root = tmp_path / "ai2_arc"
    write_parquet(root / "ARC-Easy" / "test-00000-of-00001.parquet",
                  [arc_record(0, "Which is a liquid?", ["rock", "water", "wood", "iron"], "B")])
    write_parquet(root / "ARC-Easy" / "train-00000-of-00001.parquet",
                  [arc_record(1, "What gives light?", ["the Sun", "a stone"], "A")])
    write_parquet(root / "ARC-Easy" / "validation-00000-of-00001.parquet",
                  [arc_record(2, "Unused?", ["a", "b"], "A")])
    write_parquet(root / "ARC-Challenge" / "test-00000-of-00001.parquet",  # another config: ignored
                  [arc_record(3, "Hard?", ["a", "b"], "A")])
    df = load_task("arc_easy", path=root).set_index("id")
    assert sorted(df.index) == ["arc-0", "arc-1"]
    assert df.loc["arc-0", "prompt"] == "Question: Which is a liquid?\nAnswer:"
    assert df.loc["arc-0", "answer"] == " water"
    assert list(df.loc["arc-0", "choices"]) == ["rock", "water", "wood", "iron"]
    assert df.loc["arc-1", "split"] == "train" and df.loc["arc-1", "answer"] == " the Sun"


def test_arc_numeric_answer_keys(tmp_path):
    record = {"id": "x", "question": "Pick two.", "choices": {"text": ["one", "two"], "label": ["1", "2"]},
              "answerKey": "2"}
    df = load_task("arc_easy", path=write_jsonl(tmp_path / "test.jsonl", [record]))
    assert df["answer"].tolist() == [" two"]
    record["answerKey"] = "E"
    with pytest.raises(ValueError, match=r"task 'arc_easy': test record 0: answerKey 'E' not among labels"):
        load_task("arc_easy", path=write_jsonl(tmp_path / "test.jsonl", [record]))


def test_sciq_format(tmp_path):
    record = {"question": "What do plants absorb?", "distractor1": "salt", "distractor2": "sand",
              "distractor3": "oil", "correct_answer": "carbon dioxide", "support": "Plants take in gases."}
    write_jsonl(tmp_path / "sciq" / "test.jsonl", [record])
    write_jsonl(tmp_path / "sciq" / "train.jsonl", [dict(record, support="")])
    df = load_task("sciq", path=tmp_path / "sciq").set_index("split")
    assert df.loc["test", "prompt"] == "Plants take in gases.\nQuestion: What do plants absorb?\nAnswer:"
    assert df.loc["test", "answer"] == " carbon dioxide"
    assert df.loc["train", "prompt"] == "Question: What do plants absorb?\nAnswer:"  # no support: no blank line
    assert list(df.loc["test", "choices"]) == ["carbon dioxide", "salt", "sand", "oil"]


def test_openbookqa_format(tmp_path):
    record = {"id": "7-980", "question_stem": "The sun is responsible for",
              "choices": {"text": ["puppies learning", "plants sprouting"], "label": ["A", "B"]}, "answerKey": "B"}
    write_parquet(tmp_path / "openbookqa" / "main" / "test-00000-of-00001.parquet", [record])
    write_parquet(tmp_path / "openbookqa" / "additional" / "test-00000-of-00001.parquet", [dict(record, id="no")])
    df = load_task("openbookqa", path=tmp_path / "openbookqa")
    assert df[["id", "prompt", "answer", "split"]].to_dict("records") == [
        {"id": "7-980", "prompt": "The sun is responsible for", "answer": " plants sprouting", "split": "test"}]


def test_hub_record_missing_field(tmp_path):
    path = write_jsonl(tmp_path / "test.jsonl", [{"question": "q?", "correct_answer": "a"}, {"question": "q?"}])
    with pytest.raises(ValueError, match=r"task 'sciq': test record 1 lacks field 'correct_answer'"):
        load_task("sciq", path=path)


def test_no_test_split_in_dir(tmp_path):
    write_jsonl(tmp_path / "d" / "train.jsonl", [{"text": "a b"}])
    with pytest.raises(ValueError, match=r"task 'lambada': no test split in .*name the file"):
        load_task("lambada", path=tmp_path / "d")


def test_uncached_hub_dataset_says_how_to_pass_local_files(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ValueError, match=r"task 'sciq': cannot load hub dataset 'allenai/sciq'.*path=FILE.jsonl"):
        load_task("sciq")


# ------------------------------------------------------------------------------------------- registry, verifiers

def test_registry_and_unknown_task():
    assert set(TASKS) == {"knowledge", "arithmetic", "analogy", "spatial", "lambada", "arc_easy", "sciq", "openbookqa"}
    with pytest.raises(ValueError, match=r"unknown task 'mmlu'; known tasks: knowledge"):
        load_task("mmlu")
    with pytest.raises(ValueError, match="unknown task"):
        get_verifier("mmlu")


def test_verifiers():
    assert normalize_answer("  The   Cat.\n") == "the cat"
    assert exact_match(" Paris.", " paris") and exact_match("PARIS!", "Paris")
    assert not exact_match(" Paris is", " Paris") and not exact_match(" Pari", " Paris")
    assert numeric_match(" 3", " 3") and numeric_match("3.0", " 3") and numeric_match(" 3.", "3")
    assert numeric_match(" 1,000", "1000") and not numeric_match(" 4", " 3") and not numeric_match(" three", " 3")
    assert numeric_match(" blue", " Blue")  # non-numeric gold: exact match
    assert get_verifier("arithmetic") is numeric_match and get_verifier("sciq") is exact_match


# ------------------------------------------------------------------------------------------- task tables

def good_table():
    return pd.DataFrame({"id": ["a", "b"], "prompt": ["Question: x?\nAnswer:", "y is"], "answer": [" 1", " z"],
                         "choices": [["1", "2"], ["z", "w"]], "split": ["test", "train"]})


def test_task_table_round_trip(tmp_path):
    path = write_task_table(good_table(), tmp_path / "t" / "task.parquet")
    df = read_task_table(path)
    assert df.drop(columns="choices").equals(good_table().drop(columns="choices"))
    assert [list(c) for c in df["choices"]] == [["1", "2"], ["z", "w"]]
    assert [p.name for p in path.parent.iterdir()] == ["task.parquet"]  # no temp file left


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.drop(columns="answer"), r"missing column\(s\) \['answer'\]"),
    (lambda d: d.assign(prompt=[None, "y"]), r"column 'prompt' is missing at row 0"),
    (lambda d: d.assign(answer=[" 1", "  "]), r"empty answer at row 1 \(id 'b'"),
    (lambda d: d.assign(id=["a", "a"]), r"duplicate id 'a' at rows \[0, 1\]"),
])
def test_bad_task_tables_name_file_column_and_row(tmp_path, mutate, message):
    path = tmp_path / "bad.parquet"
    mutate(good_table()).to_parquet(path)
    with pytest.raises(ValueError, match=r"bad.parquet: " + message):
        read_task_table(path)
    with pytest.raises(ValueError, match=message):
        write_task_table(mutate(good_table()), tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_read_task_table_other_formats(tmp_path):
    good_table().drop(columns="choices").to_csv(tmp_path / "t.csv", index=False)
    assert read_task_table(tmp_path / "t.csv")["answer"].tolist() == [" 1", " z"]
    with pytest.raises(FileNotFoundError, match="task table .*nope.parquet not found"):
        read_task_table(tmp_path / "nope.parquet")
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(ValueError, match=r"unknown format '.txt'"):
        read_task_table(tmp_path / "t.txt")
