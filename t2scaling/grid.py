"""The checkpoint grid: which (width, depth, D) cells an experiment trains (DESIGN.md §4.2).

Cells come statically from config — isoFLOP levels x model shapes inside a tokens-per-parameter window, plus
explicit extra cells — so Snakemake's dry runs are exact. Torch-free: the DAG is built from this module.
"""

import dataclasses
import math
import re

from t2scaling import flops
from t2scaling.flops import model_counts, whole_steps

CELL_PATTERN = re.compile(r"^w(\d+)-l(\d+)-d(\d+)$")


@dataclasses.dataclass(frozen=True)
class Cell:
    width: int
    depth: int
    tokens: int  # D, a whole number of optimizer steps
    N: int  # total params (Porian convention)
    isoflop: float = 0.0  # the grid level this cell came from; 0 for extra cells

    @property
    def name(self):
        return f"w{self.width}-l{self.depth}-d{self.tokens}"

    @property
    def shape(self):
        return f"w{self.width}-l{self.depth}"

    @property
    def tokens_per_param(self):
        return self.tokens / self.N

    @property
    def c_train(self):
        return flops.c_train(self.N, self.tokens)


def tokens_per_step(config):
    return config["training"]["batch_size"] * config["model"]["seq_len"]


def counts_for(config, width, depth):
    m = config["model"]
    return model_counts(width, depth, config["corpus"]["vocab_size"], m["seq_len"],
                        head_dim=m["head_dim"], ffn_multiple=m["ffn_multiple"])


def grid_cells(config):
    """All trained cells, sorted by (width, depth, tokens); duplicates (same name) appear once."""
    g = config["grid"]
    step = tokens_per_step(config)
    lo, hi = g["tokens_per_param"]
    cells = {}
    for shape in g["shapes"]:
        n = counts_for(config, shape["width"], shape["depth"])["N"]
        for c in g["isoflops"]:
            tokens = whole_steps(flops.tokens_at(c, n), step)
            if lo <= tokens / n <= hi:
                cell = Cell(shape["width"], shape["depth"], tokens, n, float(c))
                cells.setdefault(cell.name, cell)
    for extra in g["extra_cells"]:
        n = counts_for(config, extra["width"], extra["depth"])["N"]
        cell = Cell(extra["width"], extra["depth"], whole_steps(extra["tokens"], step), n)
        cells.setdefault(cell.name, cell)
    return sorted(cells.values(), key=lambda c: (c.width, c.depth, c.tokens))


def parse_cell(name):
    match = CELL_PATTERN.match(name)
    if not match:
        raise ValueError(f"cell name {name!r} is not of the form w<width>-l<depth>-d<tokens>")
    return tuple(int(x) for x in match.groups())


# ------------------------------------------------------------------- what the rules derive from the grid, once

def isoflop_levels(cells):
    """The grid's isoFLOP levels: {C_train level (FLOPs): [names of the cells trained at it]}, levels ascending,
    each level's cells in the order given (grid_cells: by width, depth, tokens). Extra cells belong to no level.

    The isoFLOP profiles and task grades plot and tabulate these levels, Table 1 compares the cells of the
    largest, the frontiers add them to their budgets, and the validate stage's default C_train is the largest.
    """
    levels = {}
    for cell in cells:
        if cell.isoflop > 0:
            levels.setdefault(cell.isoflop, []).append(cell.name)
    return dict(sorted(levels.items()))


def trunk_name(width, depth):
    """The directory name of the WSD trunk that every D of the model size (width, depth) branches off."""
    return f"trunk-w{width}-l{depth}"


def wsd_siblings(cells, name):
    """D (tokens) of the cells that share cell `name`'s WSD trunk: the other cells of its model size (same width
    and depth), in the order given. Training any one of them saves the branch points of all of them in one pass
    of the trunk. `name` need not be among `cells` (a cell the validate stage adds has the grid's cells of its
    size as siblings)."""
    width, depth, tokens = parse_cell(name)
    return [c.tokens for c in cells if (c.width, c.depth) == (width, depth) and c.tokens != tokens]


def holds_out(checkpoints=(), min_tokens_per_param=None):
    """Whether the extrapolation experiment's held-out rule is set at all (names, a D/N threshold or both): the
    workflow then runs the extrapolation stage."""
    return min_tokens_per_param is not None or bool(checkpoints)


def is_held_out(name, N, D, checkpoints=(), min_tokens_per_param=None):
    """The extrapolation experiment's held-out rule (config `extrapolation`): a checkpoint is held out of the fits
    (and predicted) when it is named in `checkpoints` or, with min_tokens_per_param set, when D/N reaches it."""
    return name in checkpoints or (min_tokens_per_param is not None and D / N >= min_tokens_per_param)


def held_out(sizes, checkpoints=(), min_tokens_per_param=None):
    """Names of the held-out checkpoints of `sizes` ({name: {"N": params, "D": tokens}}), in its order
    (`is_held_out`). Empty when neither rule is set."""
    named = {str(c) for c in ([checkpoints] if isinstance(checkpoints, str) else checkpoints)}
    return [name for name, size in sizes.items()
            if is_held_out(str(name), size["N"], size["D"], named, min_tokens_per_param)]


def checkpoint_origins(sizes, trained, checkpoints=(), min_tokens_per_param=None):
    """Every checkpoint with its origin, for the checkpoint-grid figure: rows {name, N, D, origin}, in the order of
    `sizes` ({name: {"N", "D"}}); origin is held_out (`held_out`), else trained (a name in `trained`, the grid's
    cells), else imported."""
    held = set(held_out(sizes, checkpoints, min_tokens_per_param))
    return [{"name": name, "N": size["N"], "D": size["D"],
             "origin": "held_out" if name in held else "trained" if name in trained else "imported"}
            for name, size in sizes.items()]


def log_spaced(lo, hi, steps):
    """`steps` log-spaced values from lo to hi inclusive (budgets in FLOPs)."""
    a, b = math.log10(lo), math.log10(hi)
    return [10 ** (a + (b - a) * i / (steps - 1)) for i in range(steps)]


def design_problems(sizes, levels, min_sizes=5, min_span=10.0, min_levels=4):
    """Why a grid cannot identify the laws' N and D terms (empty list = it can): sizes, the N (params) of its
    checkpoints; levels, its isoFLOP levels (FLOPs).

    The paper's grid has 16 sizes over 170x in N at 12 isoFLOP levels; a grid of a few sizes over a small span
    makes the N term a step and leaves its exponent at a bound.
    """
    sizes, levels = sorted(set(sizes)), sorted(set(levels))
    out = []
    if len(sizes) < min_sizes:
        out.append(f"{len(sizes)} distinct model sizes; give at least {min_sizes} (grid.shapes)")
    if sizes and sizes[-1] / sizes[0] < min_span:
        out.append(f"model sizes span {sizes[-1] / sizes[0]:.3g}x in N ({sizes[0]}-{sizes[-1]} params); span at "
                   f"least {min_span:g}x (grid.shapes)")
    if len(levels) < min_levels:
        out.append(f"{len(levels)} isoFLOP levels; give at least {min_levels} (grid.isoflops)")
    return out


def bracketing_problems(levels, top=2):
    """Whether the measured k = 1 optimum of each of the `top` largest isoFLOP levels has cells on both sides.

    levels: {C_train level: [(N params, loss), ...]} (loss: validation loss or mean task NLL, nats). A level
    whose lowest loss sits on its smallest or largest model only bounds the optimum: a fit there extrapolates.
    """
    out = []
    for level in sorted(levels)[-top:]:
        points = sorted(levels[level])
        best = min(range(len(points)), key=lambda i: points[i][1])
        if len(points) < 3 or best in (0, len(points) - 1):
            side = "smallest" if best == 0 else "largest"
            out.append(f"isoFLOP level {level:.3g} FLOPs: the lowest loss is at its {side} model "
                       f"(N = {points[best][0]:.4g}, {len(points)} cells), so the k = 1 optimum is not bracketed; "
                       f"add shapes {'below' if best == 0 else 'above'} it (grid.shapes) or widen "
                       "grid.tokens_per_param")
    return out
