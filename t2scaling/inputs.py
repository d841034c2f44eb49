"""Named inputs of the workflow's jobs: a group of files keyed by task, cell or variant travels by name, never
by its position in an `expand()` list.

A rule's input function returns `named(group, {key: path or [paths]})` through `unpack()`, which names each
input "group/key" (a tuple key (task, cell) becomes "group/task/cell"); the job's wrapper hands
`grouped(snakemake.input, group)` to the library, which gets the same {key: path or [paths]} back. Task names,
cell names and variants never contain "/", so the names cannot collide with each other or with a rule's other
inputs. Torch-free and dependency-free: rules/common.smk imports it.
"""

SEP = "/"


def _parts(key):
    parts = key if isinstance(key, tuple) else (key,)
    for part in parts:
        if not str(part) or SEP in str(part):
            raise ValueError(f"input key {key!r}: every part must be a non-empty name without {SEP!r}")
    return [str(part) for part in parts]


def named(group, files):
    """{"group/key": path or [paths]} of `files` ({key: path or [paths]}; a key may be a tuple of names), for a
    rule's `unpack()`ed input function."""
    return {SEP.join([group, *_parts(key)]): value for key, value in files.items()}


def grouped(inputs, group):
    """The files a rule named with `named(group, ...)`, as {key: path or [paths]} (paths as plain strings, in the
    rule's order): keys are names, or tuples of names where the rule keyed by tuples. inputs: the job's named
    inputs (`snakemake.input`, or any mapping with items())."""
    prefix = group + SEP
    out = {}
    for name, value in inputs.items():
        if not name.startswith(prefix):
            continue
        parts = tuple(name[len(prefix):].split(SEP))
        value = str(value) if isinstance(value, str) else [str(path) for path in value]
        out[parts[0] if len(parts) == 1 else parts] = value
    return out
