"""The `script:` wrappers are thin (issue 12 §3): params and named inputs in, one library call out. Whatever a
job computes lives in the library, where it is tested; a wrapper pairs no files by their position in an
`expand()` list. Also the named-input seam (t2scaling.inputs) those wrappers read their file groups through."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from t2scaling.inputs import grouped, named

REPO = Path(__file__).resolve().parents[1]
WRAPPERS = sorted(p for p in (REPO / "workflow_scripts").glob("*.py") if p.name != "_setup.py")
MAX_LINES = 15
LOGIC = (ast.For, ast.AsyncFor, ast.While, ast.If, ast.IfExp, ast.Try, ast.With, ast.FunctionDef, ast.Lambda,
         ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
SINGLE_FILE = {"input", "output", "log"}  # snakemake.<these>[0]: a rule's one file


def _dotted(node):
    """'a.b.c' of a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _library_names(tree):
    """Names a wrapper imports from the library, and `call` (the job-server entry of _setup)."""
    names = {"call"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("t2scaling"):
            names |= {alias.asname or alias.name for alias in node.names}
    return names


@pytest.mark.parametrize("script", WRAPPERS, ids=lambda p: p.stem)
def test_wrappers_are_at_most_15_lines(script):
    lines = script.read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"{script.name}: {len(lines)} lines; move the logic into a library function"


@pytest.mark.parametrize("script", WRAPPERS, ids=lambda p: p.stem)
def test_wrappers_hold_no_logic(script):
    tree = ast.parse(script.read_text())
    for node in ast.walk(tree):
        assert not isinstance(node, LOGIC), (f"{script.name}:{node.lineno}: {type(node).__name__} in a wrapper; "
                                             "move it into the library")
        if isinstance(node, ast.Call):
            assert _dotted(node.func) not in ("zip", "enumerate", "range", "sorted", "dict"), \
                f"{script.name}:{node.lineno}: pairs or reorders inputs; pass named inputs (t2scaling.inputs)"


@pytest.mark.parametrize("script", WRAPPERS, ids=lambda p: p.stem)
def test_wrappers_index_nothing_by_position(script):
    # Allowed: a string key (params["training"], snakemake.input["eval/x"]) and the one file of a rule
    # (snakemake.output[0]); refused: any other position, slice or computed index.
    for node in ast.walk(ast.parse(script.read_text())):
        if not isinstance(node, ast.Subscript):
            continue
        key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            continue
        target = _dotted(node.value) or ""
        single = target.startswith("snakemake.") and target.split(".")[1] in SINGLE_FILE and target.count(".") == 1
        assert single and isinstance(key, ast.Constant) and key.value == 0, \
            f"{script.name}:{node.lineno}: {ast.unparse(node)} indexes by position; pass named inputs"


@pytest.mark.parametrize("script", WRAPPERS, ids=lambda p: p.stem)
def test_wrappers_make_one_library_call(script):
    tree = ast.parse(script.read_text())
    library = _library_names(tree)
    calls = []
    for statement in tree.body:
        value = statement.value if isinstance(statement, (ast.Expr, ast.Assign)) else None
        if isinstance(value, ast.Call) and _dotted(value.func) in library:
            calls.append(_dotted(value.func))
    assert len(calls) == 1, f"{script.name}: library calls {calls}; a wrapper makes exactly one"


def test_the_named_input_seam_round_trips():
    files = named("eval", {"w16-l1-d64": "a.parquet", ("knowledge", "w32-l2-d8"): "b.parquet"})
    assert files == {"eval/w16-l1-d64": "a.parquet", "eval/knowledge/w32-l2-d8": "b.parquet"}
    inputs = {**files, **named("frontiers", {"knowledge": ["x.csv", "y.csv"]}), "library": ["t2scaling/fit.py"]}
    assert grouped(inputs, "eval") == {"w16-l1-d64": "a.parquet", ("knowledge", "w32-l2-d8"): "b.parquet"}
    assert grouped(inputs, "frontiers") == {"knowledge": ["x.csv", "y.csv"]}
    assert grouped(inputs, "observations") == {}
    assert list(grouped({"g/b": "1", "g/a": "2"}, "g")) == ["b", "a"]  # the rule's order, not sorted
    with pytest.raises(ValueError, match="without '/'"):
        named("eval", {"a/b": "x"})
    with pytest.raises(ValueError, match="non-empty"):
        named("eval", {("knowledge", ""): "x"})


def test_named_inputs_reach_a_script_through_snakemake(tmp_path):
    # The real seam: a rule's unpack()ed named inputs (a file, and a list of files) as its script sees them.
    (tmp_path / "Snakefile").write_text(f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from t2scaling.inputs import named

def files(wildcards):
    return {{**named("observations", {{"knowledge": "k.txt", "arithmetic": "a.txt"}}),
            **named("frontiers", {{"knowledge": ["k1.txt", "k2.txt"]}})}}

rule job:
    input: unpack(files), library=["k.txt"]
    output: "out.json"
    script: "job.py"

rule make:
    output: "{{name}}.txt"
    shell: "touch {{output}}"
""")
    (tmp_path / "job.py").write_text(
        "import json, sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from t2scaling.inputs import grouped\n"
        "groups = {g: grouped(snakemake.input, g) for g in ('observations', 'frontiers')}\n"
        "open(snakemake.output[0], 'w').write(json.dumps(groups))\n")
    run = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "out.json"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads((tmp_path / "out.json").read_text()) == {
        "observations": {"knowledge": "k.txt", "arithmetic": "a.txt"},
        "frontiers": {"knowledge": ["k1.txt", "k2.txt"]}}


def test_rules_derive_levels_siblings_and_held_out_cells_from_the_grid_module():
    common = (REPO / "rules" / "common.smk").read_text()
    for function in ("isoflop_levels(", "wsd_siblings(", "checkpoint_origins(", "holds_out("):
        assert function in common, f"rules/common.smk does not call t2scaling.grid.{function[:-1]}"
    rules = "".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))
    scripts = "".join(p.read_text() for p in WRAPPERS)
    for text, where in ((rules, "rules"), (scripts, "workflow_scripts")):
        assert ".isoflop " not in text and ".isoflop>" not in text, f"{where} re-derive the isoFLOP levels"
        assert "min_tokens_per_param\"] is not None and" not in text, f"{where} re-state the held-out rule"
        assert "trunk-w" not in text, f"{where} re-derive the WSD trunk name"
