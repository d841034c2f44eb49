"""What a workflow job depends on besides its input files (DESIGN.md §4.2, README "Incremental re-runs").

- `library_files`: the library files a `script:` wrapper runs, from its imports and theirs (by `ast`, imports
  inside functions included, since the library imports lazily; a `call(snakemake, "t2scaling.x:f", ...)` counts
  as an import of t2scaling.x); `script_files`: the wrapper and the helpers next to it. The cheap stages
  declare both as inputs, so editing a module or a wrapper re-runs exactly the rules that run it
  (profiles/default drops Snakemake's own script-mtime trigger, which would also retrain).
- `constant`: a module-level literal read without importing its module, e.g. the stage versions of
  `t2scaling.versions`, which key the expensive stages instead of their source.
- `project` and `undeclared`: a config narrowed to the keys a rule declares, and the config keys nobody
  declared.

Standard library only (no torch, numpy or pandas): rules/common.smk builds the DAG with it.
"""

import ast
import functools
import os
from pathlib import Path

PACKAGE = "t2scaling"
PACKAGE_DIR = Path(__file__).resolve().parent


def _parse(path):
    path = Path(path)
    return ast.parse(path.read_text(), filename=str(path))


def _module_file(name, package_dir):
    """The file of module `name` (t2scaling or t2scaling.x; for t2scaling.x.attr the file of t2scaling.x)."""
    parts = name.split(".")[1:]
    while parts:
        path = package_dir.joinpath(*parts)
        if path.with_suffix(".py").is_file():
            return path.with_suffix(".py")
        if (path / "__init__.py").is_file():
            return path / "__init__.py"
        parts.pop()  # an attribute (`from t2scaling.fit import fit_table`), not a module
    return package_dir / "__init__.py"


def imported_modules(path, package=PACKAGE):
    """Names of the `package` modules a Python file imports anywhere in it (module level, functions, branches):
    `import t2scaling.x`, `from t2scaling.x import y`, `from t2scaling import x` (as t2scaling.x) and relative
    imports inside the package, and the module of a job-server call's target (`call(snakemake, "t2scaling.x:f",
    ...)` as t2scaling.x). Other dynamic imports (importlib) are not seen."""
    stat = os.stat(path)
    return set(_imported_modules(os.fspath(path), package, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=None)
def _imported_modules(path, package, mtime_ns, size):
    """imported_modules of one version of a file: every rule's library inputs walk the same modules, and parsing
    each once instead of once per rule takes seconds off every Snakemake start (each cluster job step is one)."""
    out = set()
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: the package is flat, so `.` is the package itself
                base = f"{package}.{base}" if base else package
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif target := _call_target(node):
            names = [target]
        else:
            continue
        out.update(name for name in names if name == package or name.startswith(package + "."))
    return frozenset(out)


def _call_target(node):
    """"x.y" of `call(snakemake, "x.y:function", ...)` (a wrapper's job-server call, workflow_scripts/_setup.py),
    else None: the call imports module x.y as surely as `from x.y import function` would."""
    if not isinstance(node, ast.Call) or len(node.args) < 2:
        return None
    func, target = node.func, node.args[1]
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if name == "call" and isinstance(target, ast.Constant) and isinstance(target.value, str) and ":" in target.value:
        return target.value.partition(":")[0]
    return None


def script_files(script):
    """`script` and the modules next to it that it imports, directly or not (a wrapper's shared `_setup.py`).
    Sorted paths."""
    todo, seen = [Path(script)], {Path(script)}
    while todo:
        path = todo.pop()
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                sibling = path.parent / f"{name.split('.')[0]}.py"
                if sibling.is_file() and sibling not in seen:
                    seen.add(sibling)
                    todo.append(sibling)
    return sorted(seen)


def library_files(script, package_dir=PACKAGE_DIR):
    """The package files that running `script` can execute: the modules it (or a module next to it, see
    `script_files`) imports, those they import, and so on, plus the package's __init__.py. Sorted paths."""
    package_dir = Path(package_dir)
    package = package_dir.name
    todo, seen = script_files(script), set()
    while todo:
        for name in imported_modules(todo.pop(), package):
            for path in (package_dir / "__init__.py", _module_file(name, package_dir)):  # a submodule runs both
                if path not in seen:
                    seen.add(path)
                    todo.append(path)
    return sorted(seen)


def constant(path, name):
    """The value of a module-level `NAME = <literal>` in a Python file, read without importing the file."""
    for node in _parse(path).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            continue
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                raise ValueError(f"{path}: {name} must be a literal (a number or string), not an expression") from None
    raise LookupError(f"{path}: no module-level `{name} = ...`; declare it there")


def keyword_defaults(path, function):
    """{name: default} of the literal keyword defaults of a module-level `def function(...)` in a Python file,
    read without importing the file (so a caller does not depend on the module's code)."""
    for node in _parse(path).body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
            return {arg.arg: ast.literal_eval(default) for arg, default in pairs}
    raise LookupError(f"{path}: no module-level `def {function}(...)`")


def _get(config, key):
    value = config
    for part in key.split("."):
        value = value[part]
    return value


def project(config, keys):
    """`config` narrowed to dotted `keys` (a section or a leaf: "world", "training.lr"), nested like the config,
    every dict's keys sorted so that reordering a YAML file changes nothing."""
    out = {}
    for key in keys:
        *parents, last = key.split(".")
        target = out
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = _get(config, key)
    return sort_keys(out)


def sort_keys(value):
    """`value` with every dict's keys in sorted order (through lists too): params independent of YAML order."""
    if isinstance(value, dict):
        return {key: sort_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [sort_keys(item) for item in value]
    return value


def leaf_keys(config, prefix=""):
    """Dotted paths of the config's non-dict values (lists count as values)."""
    out = []
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += leaf_keys(value, path + ".")
        else:
            out.append(path)
    return out


def undeclared(config, declared):
    """(config keys that no declared key covers, declared keys that are not in the config)."""
    covered = lambda leaf: any(leaf == key or leaf.startswith(key + ".") for key in declared)  # noqa: E731
    missing = [leaf for leaf in leaf_keys(config) if not covered(leaf)]
    unknown = []
    for key in declared:
        try:
            _get(config, key)
        except (KeyError, TypeError):
            unknown.append(key)
    return missing, unknown
