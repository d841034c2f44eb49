"""The re-run contract's static half (README "Incremental re-runs"): the library files each wrapper depends on are
its real imports, jobs read no config, resources are never params, and the versioned stages are keyed to
versions, not to source. The dry-run job counts that prove the contract live in tests/test_workflow.py."""

import modulefinder
import re
from pathlib import Path

import pytest

from t2scaling import deps

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "workflow_scripts").glob("*.py"))
VERSIONED = {"world", "corpus", "task_table", "train", "val_loss", "evaluate", "posttrain"}


def rule_blocks():
    """{rule name: its text} of every rule, checkpoint and `use rule` in rules/*.smk."""
    out = {}
    for path in sorted((REPO / "rules").glob("*.smk")):
        text = path.read_text()
        starts = list(re.finditer(r"^(?:rule (\w+)|checkpoint (\w+)|use rule \w+ as (\w+) with):", text, re.M))
        for i, match in enumerate(starts):
            end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
            out[next(g for g in match.groups() if g)] = text[match.start():end]
    return out


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_library_files_are_the_imports_python_finds(script):
    # modulefinder follows the bytecode (imports inside functions included) by another route than deps' ast walk
    finder = modulefinder.ModuleFinder(path=[str(REPO / "workflow_scripts"), str(REPO)])
    finder.run_script(str(script))
    for target in re.findall(r'call\(snakemake, "(t2scaling[\w.]*):\w+"', script.read_text()):
        finder.import_hook(target)  # a job-server call imports its target's module (in the server's child)
    found = sorted(Path(module.__file__).resolve() for name, module in finder.modules.items()
                   if name == "t2scaling" or name.startswith("t2scaling."))
    assert deps.library_files(script) == found


def test_library_files_include_what_the_hand_list_had_missed():
    names = {script.stem: {path.name for path in deps.library_files(script)} for script in SCRIPTS}
    assert {"laws.py", "passk.py", "observations.py"} <= names["collect"]
    assert {"tables.py", "validate.py"} <= names["validation_plan"]
    assert "config.py" not in names["validation_plan"]  # only the CLI reads a config file, and no job runs the CLI
    assert not [path for script in SCRIPTS for path in deps.library_files(script) if "cli" in path.parts]
    assert {"chinchilla.py", "optimize.py", "extrapolate.py", "plots.py", "tables.py"} <= names["extrapolation_summary"]
    assert "observations.py" in names["pretrain_losses"]  # the loss table is read by the library now
    assert not {"evaluate.py", "train.py", "model.py"} & names["pretrain_losses"]  # torch-free


def test_every_cheap_rule_declares_its_wrappers_imports_and_versioned_rules_none():
    for name, block in rule_blocks().items():
        script = re.search(r'script:\s*"\.\./workflow_scripts/(\w+)\.py"', block)
        library = re.findall(r'library\("(\w+)"\)', block)
        if name in VERSIONED:
            assert not library, f"rule {name} is versioned: its library code must not be an input"
            assert re.search(r"version=version\(\"\w+\"\)", block), f"rule {name} lacks its version param"
        elif script:
            assert library == [script[1]], f"rule {name} runs {script[1]}.py but declares library({library})"
        elif "use rule" in block:
            assert library in ([], [re.search(r"use rule (\w+)", block)[1]]), name


def test_jobs_read_no_config_and_resources_are_never_params():
    for script in SCRIPTS:
        assert "snakemake.config" not in script.read_text(), f"{script.name} reads the config; pass params"
    for name, block in rule_blocks().items():
        params = re.search(r"\n    params:\n((?:        .*\n|\n)*)", block)
        if params:
            assert "config[" not in params[1], f"rule {name}: params read the config directly; use settings_for"
            assert not re.search(r"threads|runtime|mem_mb|gpus", params[1]), f"rule {name}: a resource in params"


def test_versions_are_int_literals_read_without_imports():
    for name in ("DATA_VERSION", "TASKS_VERSION", "TRAIN_RECIPE_VERSION", "EVAL_VERSION", "POSTTRAIN_VERSION"):
        assert isinstance(deps.constant(REPO / "t2scaling" / "versions.py", name), int), name
    assert isinstance(deps.constant(REPO / "t2scaling" / "world.py", "VERSION"), int)
    with pytest.raises(LookupError, match="NO_SUCH"):
        deps.constant(REPO / "t2scaling" / "versions.py", "NO_SUCH")


def test_imports_of_every_form_are_found(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("__version__ = '1'\n")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def f():\n    from .c import thing  # lazy, relative\n")
    (package / "c.py").write_text("import os\nthing = 1\n")
    (package / "d.py").write_text("import pkg.a\n")
    (package / "unused.py").write_text("")
    script = tmp_path / "wrapper.py"
    script.write_text("import sys\nfrom pkg import __version__\nif sys:\n    import pkg.d as d\n")
    assert [p.name for p in deps.library_files(script, package)] == ["__init__.py", "a.py", "b.py", "c.py", "d.py"]
    (tmp_path / "plain.py").write_text("import os\n")
    assert deps.library_files(tmp_path / "plain.py", package) == []


def test_a_job_server_call_target_counts_as_an_import(tmp_path):
    # A wrapper that runs its library call through _setup.call imports the target's module only in the job
    # server's child, so the string target is what makes it (and what it imports) the wrapper's library files.
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\ndef f(x):\n    pass\n")
    (package / "b.py").write_text("")
    (package / "sub" / "__init__.py").write_text("def g():\n    pass\n")
    (package / "unused.py").write_text("")
    script = tmp_path / "wrapper.py"
    script.write_text('from _setup import call\ncall(snakemake, "pkg.a:f", 1, x=2)\n'
                      'helpers.call(snakemake, "pkg.sub:g")\ncall(snakemake, target="pkg.unused:h")\n'
                      'other(snakemake, "pkg.unused:h")\ncall(snakemake, "os.path:join")\n')
    assert deps.imported_modules(script, "pkg") == {"pkg.a", "pkg.sub"}
    assert [p.relative_to(package).as_posix() for p in deps.library_files(script, package)] == [
        "__init__.py", "a.py", "b.py", "sub/__init__.py"]
    converted = tmp_path / "converted.py"  # the same call made directly: the same files
    converted.write_text("from pkg.a import f\nfrom pkg.sub import g\nf(1, x=2)\ng()\n")
    assert deps.library_files(converted, package) == deps.library_files(script, package)


def test_projection_is_nested_sorted_and_checked():
    config = {"b": {"y": 2, "x": [{"q": 1, "p": 0}]}, "a": 1, "c": {"z": {}}}
    projected = deps.project(config, ["b.x", "a"])
    assert projected == {"a": 1, "b": {"x": [{"p": 0, "q": 1}]}}
    assert list(projected) == ["a", "b"] and list(projected["b"]["x"][0]) == ["p", "q"]
    assert deps.undeclared(config, ["a", "b.y"]) == (["b.x", "c.z"], [])
    assert deps.undeclared(config, ["a", "b", "c", "d.e"]) == ([], ["d.e"])


def test_no_cheap_stage_depends_on_a_versioned_module():
    """A comment in train.py, evaluate.py, … must re-run nothing: no cheap stage may import them, even through
    config.py's checks (which read world.py's defaults without importing it)."""
    versioned = {"train.py", "evaluate.py", "posttrain.py", "model.py", "data.py", "tasks.py", "world.py"}
    own = {"corpus": {"data.py"}, "task_table": {"tasks.py"}, "world": {"world.py"}}  # versioned stages
    for script in SCRIPTS:
        if script.stem in VERSIONED - set(own):  # the torch stages run versioned code, keyed to versions
            continue
        names = {path.name for path in deps.library_files(script)}
        assert names & versioned <= own.get(script.stem, set()), script.stem


def test_keyword_defaults_are_the_signatures_defaults():
    import inspect

    from t2scaling.world import write_world

    expected = {k: p.default for k, p in inspect.signature(write_world).parameters.items()
                if p.default is not inspect.Parameter.empty}
    assert deps.keyword_defaults(REPO / "t2scaling" / "world.py", "write_world") == expected
    with pytest.raises(LookupError, match="no module-level `def nowhere"):
        deps.keyword_defaults(REPO / "t2scaling" / "world.py", "nowhere")
