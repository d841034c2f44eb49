"""What the workflow derives from the grid, computed once in t2scaling.grid (issue 12 §3): the isoFLOP levels,
the WSD siblings (cells sharing one trunk) and the extrapolation's held-out rule, for a small config whose cells
are known by name."""

import pandas as pd
import pytest

from t2scaling import extrapolate
from t2scaling.config import with_defaults
from t2scaling.grid import (checkpoint_origins, grid_cells, held_out, holds_out, is_held_out, isoflop_levels,
                            trunk_name, wsd_siblings)


@pytest.fixture(scope="module")
def cells():
    """Three levels x three shapes (batch 8 x seq 64 = 512 tokens per step); w32-l2 at 1e10 FLOPs has 1.1
    tokens/param and falls outside the window; one extra cell of 1e6 tokens (999,936 in whole steps)."""
    config = with_defaults({
        "corpus": {"vocab_size": 384},
        "model": {"seq_len": 64, "head_dim": 16, "ffn_multiple": 16},
        "training": {"batch_size": 8},
        "grid": {"isoflops": [1e10, 2e10, 4e10],
                 "shapes": [{"width": 16, "depth": 1}, {"width": 32, "depth": 1}, {"width": 32, "depth": 2}],
                 "tokens_per_param": [2, 1000],
                 "extra_cells": [{"width": 16, "depth": 1, "tokens": 1e6}]},
        "tasks": {"knowledge": {"kind": "knowledge"}},
    })
    return grid_cells(config)


def sizes(cells):
    return {c.name: {"N": c.N, "D": c.tokens} for c in cells}


def test_the_small_grid_has_the_cells_named_here(cells):
    assert [c.name for c in cells] == [
        "w16-l1-d176128", "w16-l1-d351744", "w16-l1-d704000", "w16-l1-d999936",
        "w32-l1-d65024", "w32-l1-d130048", "w32-l1-d260608",
        "w32-l2-d85504", "w32-l2-d171520"]
    assert {c.shape: c.N for c in cells} == {"w16-l1": 9472, "w32-l1": 25600, "w32-l2": 38912}


def test_isoflop_levels_list_each_levels_cells_and_leave_out_extra_cells(cells):
    levels = isoflop_levels(cells)
    assert levels == {1e10: ["w16-l1-d176128", "w32-l1-d65024"],
                      2e10: ["w16-l1-d351744", "w32-l1-d130048", "w32-l2-d85504"],
                      4e10: ["w16-l1-d704000", "w32-l1-d260608", "w32-l2-d171520"]}
    assert list(levels) == [1e10, 2e10, 4e10]  # ascending, whatever order the cells come in
    assert isoflop_levels(list(reversed(cells))) == {c: list(reversed(n)) for c, n in levels.items()}
    assert isoflop_levels([c for c in cells if c.isoflop == 0]) == {}


def test_wsd_siblings_are_the_other_cells_of_the_same_size(cells):
    assert wsd_siblings(cells, "w16-l1-d351744") == [176128, 704000, 999936]
    assert wsd_siblings(cells, "w32-l2-d85504") == [171520]
    # a cell the validate stage adds shares its size's trunk with every grid cell of that size
    assert wsd_siblings(cells, "w32-l1-d5120") == [65024, 130048, 260608]
    assert wsd_siblings(cells, "w64-l4-d5120") == []
    assert trunk_name(32, 2) == "trunk-w32-l2"
    with pytest.raises(ValueError, match="not of the form"):
        wsd_siblings(cells, "w32-l2")


def test_held_out_rule_by_tokens_per_param_and_by_name(cells):
    # D/N: w16-l1-d704000 74.3, w16-l1-d999936 105.6; every other cell below 40
    assert held_out(sizes(cells), min_tokens_per_param=50) == ["w16-l1-d704000", "w16-l1-d999936"]
    assert held_out(sizes(cells), checkpoints=["w32-l2-d85504"], min_tokens_per_param=100) == [
        "w16-l1-d999936", "w32-l2-d85504"]
    assert held_out(sizes(cells), checkpoints="w32-l1-d65024") == ["w32-l1-d65024"]
    assert held_out(sizes(cells)) == [] and not holds_out()  # no rule set: no extrapolation stage
    assert holds_out(min_tokens_per_param=50) and holds_out(["w32-l1-d65024"]) and not holds_out([], None)
    assert is_held_out("x", N=10, D=500, min_tokens_per_param=50)  # at the threshold: held out
    assert not is_held_out("x", N=10, D=499, min_tokens_per_param=50)


def test_checkpoint_origins_mark_trained_imported_and_held_out(cells):
    checkpoints = {**sizes(cells), "pythia-70m": {"N": 7e7, "D": 3e11}, "tiny": {"N": 1e6, "D": 1e6}}
    rows = checkpoint_origins(checkpoints, {c.name for c in cells}, ["w32-l2-d85504"], 50)
    origins = {row["name"]: row["origin"] for row in rows}
    assert [row["name"] for row in rows] == list(checkpoints)
    assert {name for name, origin in origins.items() if origin == "held_out"} == {
        "w16-l1-d704000", "w16-l1-d999936", "w32-l2-d85504", "pythia-70m"}  # pythia: 4286 tokens/param
    assert origins["tiny"] == "imported" and origins["w32-l1-d65024"] == "trained"
    assert rows[0] == {"name": "w16-l1-d176128", "N": 9472, "D": 176128, "origin": "trained"}
    no_extrapolation = checkpoint_origins(checkpoints, {c.name for c in cells})
    assert {row["origin"] for row in no_extrapolation} == {"trained", "imported"}


def test_the_extrapolation_holds_out_what_the_grid_figure_marks(cells):
    frame = pd.DataFrame.from_dict(sizes(cells), orient="index")
    for named, threshold in (([], 50), (["w32-l2-d85504"], 100), (["w32-l1-d65024"], None)):
        assert extrapolate.held_out(frame, threshold, named) == held_out(sizes(cells), named, threshold)
