"""The embedded synthetic world: determinism, answerable knowledge, held-out reasoning questions, splits."""

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest

from t2scaling import world as w

SMALL = dict(seed=0, n_questions=120, n_train_questions=80, n_entities=80, n_documents=400, val_fraction=0.1)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def corpus_text(out, split):
    return "\n".join(row["text"] for row in read_jsonl(os.path.join(out, "corpus", f"{split}.jsonl")))


def all_bytes(out):
    files = ["world.json", "corpus/train.jsonl", "corpus/val.jsonl"] + [f"tasks/{f}.jsonl" for f in w.FAMILIES]
    return {name: open(os.path.join(out, name), "rb").read() for name in files}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("world"))
    summary = w.write_world(out, **SMALL)
    return out, summary


def test_files_and_summary(small):
    out, summary = small
    counts = summary["counts"]
    # drawn documents + one gazetteer entry per country + one primer per role and per cause
    assert counts["train_documents"] == 360 + 80 + len(w.ROLES) + len(w.CAUSES)
    assert counts["val_documents"] == 40
    assert len(read_jsonl(os.path.join(out, "corpus", "train.jsonl"))) == counts["train_documents"]
    assert counts["train_characters"] == sum(len(r["text"]) for r in read_jsonl(f"{out}/corpus/train.jsonl"))
    on_disk = json.load(open(os.path.join(out, "world.json")))
    assert on_disk == summary
    for name, digest in summary["files"].items():
        assert hashlib.sha256(open(os.path.join(out, name), "rb").read()).hexdigest() == digest
    for family in w.FAMILIES:
        assert counts["questions"][family] == {"test": 120, "train": 80}


def test_same_seed_identical_bytes_across_processes(small, tmp_path):
    out, _ = small
    # A fresh interpreter with another hash seed: nothing may depend on set/dict hash order.
    code = f"from t2scaling.world import write_world; write_world({str(tmp_path)!r}, **{SMALL!r})"
    env = dict(os.environ, PYTHONHASHSEED="12345")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert all_bytes(str(tmp_path)) == all_bytes(out)


def test_different_seed_differs(small, tmp_path):
    out, _ = small
    w.write_world(str(tmp_path), **dict(SMALL, seed=1))
    mine, other = all_bytes(out), all_bytes(str(tmp_path))
    for name in mine:
        assert mine[name] != other[name], name


def test_rows_format_and_splits_disjoint(small):
    out, _ = small
    for family in w.FAMILIES:
        rows = read_jsonl(os.path.join(out, "tasks", f"{family}.jsonl"))
        assert len({r["id"] for r in rows}) == len(rows)
        test = {r["prompt"] for r in rows if r["split"] == "test"}
        train = {r["prompt"] for r in rows if r["split"] == "train"}
        assert len(test) == 120 and len(train) == 80  # distinct prompts within each split
        assert not test & train, family
        for r in rows:
            assert set(r) >= {"id", "prompt", "answer", "split", "kind"}
            assert r["answer"].startswith(" ") and not r["answer"].startswith("  "), r
            assert 1 <= len(r["answer"].split()) <= 3, r
            assert not r["prompt"].endswith(" "), r


def test_every_knowledge_fact_is_stated_with_its_mention_count(small):
    out, _ = small
    train = corpus_text(out, "train")
    world = w.SyntheticWorld(SMALL["seed"], SMALL["n_entities"])
    country_index = {name: i for i, name in enumerate(world.countries)}
    rows = read_jsonl(os.path.join(out, "tasks", "knowledge.jsonl"))
    for r in rows:
        assert r["prompt"] + r["answer"] + "." in train, r  # the canonical statement is in the train corpus
        # Count every phrasing of this fact: it must equal the recorded number of mentions.
        country = next(name for name in country_index if f" {name} " in r["prompt"] + " ")
        value = r["answer"][1:]
        assert world.facts[country_index[country], r["kind"]] == value
        phrasings = [w.KNOWLEDGE_PROMPTS[r["kind"]].format(e=country) + f" {value}."]
        phrasings += [p.format(e=country, v=value) for p in w.KNOWLEDGE_PARAPHRASES[r["kind"]]]
        assert sum(train.count(p) for p in phrasings) == r["mentions"] >= 1, r


def test_mentions_follow_zipf_rank(small):
    out, _ = small
    world = w.SyntheticWorld(SMALL["seed"], SMALL["n_entities"])
    rank = {name: i for i, name in enumerate(world.countries)}
    rows = read_jsonl(os.path.join(out, "tasks", "knowledge.jsonl"))
    by_rank = sorted((rank[r["prompt"].split(" of ")[1].split()[0]], r["mentions"]) for r in rows)
    head = [m for k, m in by_rank if k < 8]
    tail = [m for k, m in by_rank if k >= SMALL["n_entities"] // 2]
    assert sum(head) / len(head) > 4 * sum(tail) / len(tail)


def test_held_out_questions_never_in_corpus(small):
    out, _ = small
    corpus = corpus_text(out, "train") + "\n" + corpus_text(out, "val")
    for family in ("arithmetic", "spatial"):
        for r in read_jsonl(os.path.join(out, "tasks", f"{family}.jsonl")):
            if r["split"] == "test":
                assert r["prompt"] + r["answer"] not in corpus, r
    for r in read_jsonl(os.path.join(out, "tasks", "analogy.jsonl")):
        if r["split"] == "test":
            assert r["prompt"] + r["answer"] not in corpus, r


@pytest.mark.parametrize("family", ["arithmetic", "analogy"])
def test_held_out_exclusion_is_what_keeps_them_out(family):
    # Counting patterns and cause pairs have few distinct keys, so without the exclusion a corpus of this size
    # would contain test questions verbatim (e.g. two neighbouring cause statements): the check above can fail.
    def leaked(exclude):
        world = w.SyntheticWorld(0, 20)
        rows = world.questions(family, 300, 0)
        if not exclude:
            world.held_out[family].clear()
        rng = w._rng(0, "probe")
        corpus = "\n".join(world.document(rng) for _ in range(3000))
        return sum(r["prompt"] + r["answer"] in corpus for r in rows)

    assert leaked(exclude=False) > 0
    assert leaked(exclude=True) == 0


def test_reasoning_questions_are_answerable_in_principle(small):
    out, _ = small
    train = corpus_text(out, "train")
    for r in read_jsonl(os.path.join(out, "tasks", "arithmetic.jsonl")):
        if r["kind"] == "pattern":  # the next term continues the progression shown
            terms = [int(t) for t in r["prompt"].split(": ")[1].rstrip(",").split(", ")]
            assert int(r["answer"]) - terms[-1] == terms[1] - terms[0]
    for r in read_jsonl(os.path.join(out, "tasks", "spatial.jsonl")):
        # the answer is the outermost container: it holds something and is in nothing
        statements = [s for s in r["prompt"].split(". ") if " is in the " in s and not s.startswith("So")]
        inside = {s.split(" is in the ")[0].removeprefix("The ") for s in statements}
        assert f"is in the {r['answer'][1:]}" in r["prompt"] and r["answer"][1:] not in inside
    for r in read_jsonl(os.path.join(out, "tasks", "analogy.jsonl")):
        # the fact about the second role (or cause) is stated in the train corpus, in the question's words
        second = r["prompt"].split(". ")[1]
        assert f"{second}{r['answer']}{' ' if r['kind'] == 'thing' else '.'}" in train, r


SPATIAL_TEXT = re.compile(r"((?:The \w+ is in the \w+\. )+)So the (\w+) is in the")


def spatial_chain(statements, queried):
    """(chain from the item to the outermost container, hops from the queried object to the top)."""
    parent = dict(re.findall(r"The (\w+) is in the (\w+)\.", statements))
    for start in parent:
        chain = [start]
        while chain[-1] in parent:
            chain.append(parent[chain[-1]])
        if queried in chain and start not in parent.values():  # the distractor is a chain of its own
            return tuple(chain), len(chain) - 1 - chain.index(queried)
    raise AssertionError(f"no chain through {queried!r} in {statements!r}")


def spatial_rows(out, split="test"):
    return [r for r in read_jsonl(os.path.join(out, "tasks", "spatial.jsonl")) if r["split"] == split]


def test_spatial_questions_span_every_level(small):
    out, _ = small
    rows = spatial_rows(out)
    levels = {int(r["kind"].split("-hop")[0]) for r in rows}
    assert levels == set(w.SPATIAL_LEVELS) == {1, 2, 3, 4}
    for r in rows:
        match = SPATIAL_TEXT.fullmatch(r["prompt"])
        chain, hops = spatial_chain(match[1], match[2])
        assert r["kind"].startswith(f"{hops}-hop {len(chain) - 1}-link "), r  # the kind names the level
        assert r["answer"] == f" {chain[-1]}", r


def test_one_hop_answer_is_stated_in_the_prompt_and_deeper_ones_are_not(small):
    out, _ = small
    for r in spatial_rows(out) + spatial_rows(out, "train"):
        queried = SPATIAL_TEXT.fullmatch(r["prompt"])[2]
        stated = f"The {queried} is in the{r['answer']}." in r["prompt"]
        assert stated == r["kind"].startswith("1-hop "), r


def test_spatial_level_mix_is_as_documented():
    rows = w.SyntheticWorld(0, 20).questions("spatial", 600, 400)
    for level, weight in w.SPATIAL_LEVELS.items():
        kinds = [r["kind"] for r in rows if r["kind"].startswith(f"{level}-hop ")]
        assert abs(len(kinds) / len(rows) - weight) < 0.05, level  # 3 sd of a share of 1000 draws
        assert {int(k.split()[1].split("-")[0]) for k in kinds} <= {level, level + 1}


def test_held_out_spatial_chains_never_in_corpus_which_has_every_level(small):
    out, _ = small
    corpus = corpus_text(out, "train") + "\n" + corpus_text(out, "val")
    passages = [spatial_chain(m[1], m[2]) for m in SPATIAL_TEXT.finditer(corpus)]
    assert {hops for _, hops in passages} == set(w.SPATIAL_LEVELS)  # the model sees the questions' format
    test_chains = {spatial_chain(*SPATIAL_TEXT.fullmatch(r["prompt"]).groups())[0] for r in spatial_rows(out)}
    assert len(test_chains) == 120
    assert not test_chains & {chain for chain, _ in passages}


def test_too_many_questions_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="n_entities"):
        w.write_world(str(tmp_path), n_questions=50, n_train_questions=0, n_entities=5, n_documents=20)
    assert not os.path.exists(tmp_path / "world.json")


def test_cli(tmp_path):
    from t2scaling.cli import main

    out = tmp_path / "cli"
    assert main(["world", "--out", str(out), "--seed", "3", "--questions", "10", "--train-questions", "5",
                 "--entities", "20", "--documents", "50"]) == 0
    summary = json.load(open(out / "world.json"))
    assert summary["seed"] == 3 and summary["parameters"]["n_documents"] == 50
    assert len(read_jsonl(out / "tasks" / "spatial.jsonl")) == 15


def test_the_world_job_maps_the_config_section_onto_write_world(small, tmp_path):
    # rule world: {seed, questions, train_questions, options} -> write_world, beside world.json
    out, summary = small
    options = {k: v for k, v in SMALL.items() if k not in ("seed", "n_questions", "n_train_questions")}
    section = {"seed": SMALL["seed"], "questions": SMALL["n_questions"],
               "train_questions": SMALL["n_train_questions"], "options": options}
    again = w.write_configured_world(section, tmp_path / "world" / "world.json")
    assert again == summary and all_bytes(tmp_path / "world") == all_bytes(out)
