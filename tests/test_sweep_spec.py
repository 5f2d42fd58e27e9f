"""Sweep specs: grid expansion, stable cell keys, and clear errors before anything runs."""

import hashlib
import itertools
import json
import time
from pathlib import Path

import pytest

from gmmscape.experiments import registry
from gmmscape.sweep.spec import (
    MAX_CELLS,
    SpecError,
    cell_key,
    count_cells,
    load_spec,
    parse_spec,
)

BASE = """
[sweep]
name = "t"
experiment = "stream-error"
seeds = {seeds}

[grid]
{grid}

[fixed]
{fixed}
"""


def spec(grid="n = [100, 1000]", fixed="", seeds="2"):
    return BASE.format(grid=grid, fixed=fixed, seeds=seeds)


def test_grid_expands_to_the_cartesian_product_times_seeds():
    s = parse_spec(spec(grid="n = [100, 1000, 10000]\nd = [1, 2]", fixed="k = 3", seeds="[4, 9]"))
    assert len(s.cells) == 3 * 2 * 2
    got = {(c.params["n"], c.params["d"], c.params["seed"]) for c in s.cells}
    assert got == set(itertools.product([100, 1000, 10000], [1, 2], [4, 9]))
    assert all(c.params["k"] == 3 for c in s.cells)
    # defaults of the type are filled in, so the stored params are complete
    assert all(c.params["separation"] == 4.0 and c.params["sigma"] == 1.0 for c in s.cells)
    # seed by seed: every grid point of the first seed comes before the second seed
    assert [c.params["seed"] for c in s.cells] == [4] * 6 + [9] * 6
    assert s.seeds == (4, 9)
    assert s.hash == hashlib.sha256(s.text.encode()).hexdigest()


def test_seed_count_means_range():
    assert parse_spec(spec(seeds="3")).seeds == (0, 1, 2)


def test_cell_key_is_canonical_and_independent_of_how_the_spec_is_written():
    a = parse_spec(spec(grid="n = [100]\nd = [2]", fixed="separation = 3"))
    b = parse_spec(spec(grid="d = [2]\nn = [100]", fixed="separation = 3.0\nsigma = 1.0"))
    assert [c.key for c in a.cells] == [c.key for c in b.cells]
    # the key is the SHA-256 of the name and the sorted-key JSON of the full parameters
    p = a.cells[0].params
    text = "stream-error\n" + json.dumps(p, sort_keys=True, separators=(",", ":"))
    assert a.cells[0].key == hashlib.sha256(text.encode()).hexdigest()
    assert cell_key("stream-error", p) != cell_key("other", p)
    assert len({c.key for c in parse_spec(spec(seeds="5")).cells}) == 10


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (spec().replace('name = "t"', 'name = "t"\ncolour = 1'), "sweep.colour: unknown key"),
        (spec() + "\n[extra]\na = 1\n", "extra: unknown key"),
        (spec(grid="n = [100]\nbogus = [1, 2]"), "grid.bogus: unknown parameter"),
        (spec(fixed="bogus = 1"), "fixed.bogus: unknown parameter"),
        (spec(grid="n = []"), "grid.n is an empty list"),
        (spec(grid="n = 100"), "grid.n: Input should be a valid list"),
        (spec(grid='n = ["many"]'), "n: got the string 'many', expected int"),
        (spec(grid='n = ["100"]'), "n: got the string '100'"),
        (spec(grid="n = [true]"), "n: got the boolean true"),
        (spec(grid="n = [100.5]"), "n: Input should be a valid integer"),
        (spec(grid="n = [100]", fixed="separation = nan"), "fixed.separation is nan"),
        (spec(grid="n = [100]", fixed="separation = -1.0"), "separation: Input should be greater"),
        (spec(grid="n = [100, 100]"), "same cell"),
        (spec(grid="n = [100]", fixed="n = 5"), "n is in both [grid] and [fixed]"),
        (spec(grid="n = [100]\nseed = [1]"), "grid.seed: give seeds as sweep.seeds"),
        (spec(seeds="0"), "sweep.seeds must be >= 1"),
        (spec(seeds="[]"), "sweep.seeds is an empty list"),
        (spec(seeds="[1, 1]"), "sweep.seeds repeats"),
        (spec(seeds='"3"'), "sweep.seeds"),
        (spec().replace('experiment = "stream-error"', 'experiment = "nope"'), "unknown experi"),
        (spec().replace('name = "t"\n', ""), "sweep.name: required key is missing"),
        ("[sweep\nname=", "not valid TOML"),
    ],
)
def test_invalid_specs_are_clear_errors(text, fragment):
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="bad.toml")
    assert fragment in str(info.value)
    assert "bad.toml" in str(info.value)


def test_every_invalid_cell_is_reported_with_its_parameters():
    with pytest.raises(SpecError) as info:
        parse_spec(spec(grid="n = [1, 100, 1]\nd = [1]"))
    msg = str(info.value)
    assert "4 of 6 cells" in msg and '"n":1' in msg and "greater than or equal to 2" in msg


def test_load_spec_reads_a_file_and_reports_a_missing_one(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(spec())
    assert load_spec(p).source == str(p)
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "missing.toml")


def test_registry_lists_the_builtin_type():
    assert "stream-error" in registry.names()
    assert registry.get("stream-error").params.model_config["extra"] == "forbid"


EXAMPLES = sorted((Path(__file__).parents[1] / "examples" / "sweeps").rglob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_specs_are_valid(path):
    s = load_spec(path)
    assert s.cells and s.experiment in registry.names()


def test_there_is_a_small_example_for_every_registered_type():
    small = {load_spec(p).experiment for p in EXAMPLES if p.parent.name == "sweeps"}
    assert set(registry.names()) <= small


def test_a_type_whose_module_fails_to_import_is_a_spec_error(monkeypatch):
    monkeypatch.setitem(registry.MODULES, "broken-type", "gmmscape.no_such_module")
    text = spec().replace('experiment = "stream-error"', 'experiment = "broken-type"')
    with pytest.raises(SpecError, match=r"could not be loaded from gmmscape\.no_such_module"):
        parse_spec(text)


def big_spec(n_seeds=10, n_values=1000):
    return f"""
[sweep]
name = "big"
experiment = "stream-error"
seeds = {n_seeds}
[grid]
n = {list(range(1000, 1000 + n_values))}
d = {list(range(1, 1 + n_values))}
"""


def test_a_ten_million_cell_spec_is_refused_quickly_with_its_size():
    text = big_spec()  # 10 seeds x 1000 n x 1000 d = 1e7 cells
    t0 = time.perf_counter()
    with pytest.raises(SpecError) as err:
        parse_spec(text)
    assert time.perf_counter() - t0 < 1.0
    msg = str(err.value)
    assert "10,000,000 cells (10 seeds x 1,000 n x 1,000 d)" in msg
    assert f"limit of {MAX_CELLS:,} cells" in msg and "--max-cells" in msg


def test_a_huge_seed_count_is_a_spec_error_not_a_memory_error():
    text = big_spec(n_seeds=100_000_000_000, n_values=1)
    with pytest.raises(SpecError, match=r"100,000,000,000 cells \(100,000,000,000 seeds"):
        parse_spec(text)


def test_the_cell_limit_is_exact_and_can_be_raised():
    text = big_spec(n_seeds=3, n_values=2)  # 3 x 2 x 2 = 12 cells
    with pytest.raises(SpecError, match="12 cells"):
        parse_spec(text, max_cells=11)
    assert len(parse_spec(text, max_cells=12).cells) == 12
    assert count_cells(3, {"n": [1, 2], "d": [1, 2]}) == 12
    for bad in (0, -1, 2.5, True, "10"):
        with pytest.raises(ValueError, match="max_cells must be a positive integer"):
            parse_spec(text, max_cells=bad)
