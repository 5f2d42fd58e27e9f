"""Sweep specs: a TOML file naming an experiment type and a grid of its parameters.

A spec looks like this::

    [sweep]
    name = "stream-error-small"
    experiment = "stream-error"     # a name from gmmscape.experiments.registry
    seeds = 3                       # seeds 0, 1, 2; or a list: seeds = [0, 7, 11]
    description = "optional text"

    [grid]                          # every list expands: the Cartesian product
    n = [1000, 10000]
    d = [1, 2]

    [fixed]                         # optional: one value for every cell
    separation = 4.0

Every cell is one dict of parameters (the grid's product, the fixed values and one seed);
the whole spec is validated before anything runs: unknown keys in the file, parameters the
experiment type does not know, wrong types, non-finite numbers, empty or repeated grid
values are a :class:`SpecError` that names the key. The cells are counted (seeds times the
product of the grid's lengths) before any is built: a spec of more than :data:`MAX_CELLS`
cells is a :class:`SpecError` naming its size, unless the caller raises the limit
(``max_cells``; ``gmmscape sweep run --max-cells``). Cells are ordered seed by seed (all
grid points for the first seed, then for the next), so a sweep stopped early already covers
the whole grid with fewer seeds.

A cell's identity is its key: a hash of the experiment name and the canonical JSON of its
validated parameters (defaults filled in, keys sorted), so the same cell reached from two
specs, or from an edited spec, is run and stored once.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from gmmscape.experiments import registry

#: How many invalid cells a SpecError lists before it summarizes the rest.
MAX_LISTED_ERRORS = 5
#: Cells a spec may expand to unless the caller raises the limit (``max_cells``). Every
#: cell is validated, hashed and recorded in the database before the sweep starts: 1e5
#: cells of ``stream-error`` take 5.9 s to parse on the project's shared 2-core machine,
#: so 1e7 would take about ten minutes and gigabytes of memory.
MAX_CELLS = 100_000


class SpecError(ValueError):
    """A sweep spec that cannot run: bad TOML, unknown keys, wrong types, empty grids."""


class _SweepTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(min_length=1)
    experiment: StrictStr = Field(min_length=1)
    seeds: StrictInt | list[StrictInt]
    description: StrictStr = ""


class _SpecFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sweep: _SweepTable
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    """One cell of a sweep: an experiment type and one validated set of its parameters.

    Attributes
    ----------
    experiment : str
        The experiment type's name.
    params : dict
        The validated parameters with defaults filled in, as plain JSON values.
    key : str
        :func:`cell_key` of ``experiment`` and ``params`` (64 hex digits).
    """

    experiment: str
    params: dict
    key: str


@dataclass(frozen=True)
class Spec:
    """A parsed, validated sweep spec.

    Attributes
    ----------
    name : str
    experiment : str
    description : str
    seeds : tuple of int
    grid : dict of str to list
        The grid as written, in file order.
    fixed : dict
    text : str
        The spec file's text, stored with the results.
    hash : str
        SHA-256 of ``text`` (64 hex digits).
    source : str
        Where the text came from (a path, or ``"<string>"``).
    cells : tuple of Cell
        Every cell, seed by seed, grid in file order (the last grid key varies fastest).
    """

    name: str
    experiment: str
    description: str
    seeds: tuple
    grid: dict
    fixed: dict
    text: str
    hash: str
    source: str
    cells: tuple


def canonical_json(params: dict) -> str:
    """The canonical JSON text of a parameter dict: sorted keys, no spaces, no NaN.

    Parameters
    ----------
    params : dict

    Returns
    -------
    str
    """
    return json.dumps(params, sort_keys=True, separators=(",", ":"), allow_nan=False)


def cell_key(experiment: str, params: dict) -> str:
    """The stable key of a cell: SHA-256 of the experiment name and canonical parameters.

    Parameters
    ----------
    experiment : str
    params : dict
        Validated parameters (JSON values).

    Returns
    -------
    str
        64 hex digits.
    """
    text = experiment + "\n" + canonical_json(params)
    return hashlib.sha256(text.encode()).hexdigest()


def _loc(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _format_errors(err: ValidationError, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        where = _loc(tuple(e["loc"]))
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"{prefix}{where}: {msg}")
    return "; ".join(lines)


def _check_finite(value, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(f"{where} is {value!r}; parameters must be finite numbers.")
    if isinstance(value, list):
        for v in value:
            _check_finite(v, where)
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{where}.{k}")


def _coercion_problem(raw, validated) -> str | None:
    """A type the TOML value had but pydantic's lax mode silently converted, or None."""
    if isinstance(raw, bool) and not isinstance(validated, bool):
        return f"got the boolean {str(raw).lower()}, expected {type(validated).__name__}"
    if (
        isinstance(raw, str)
        and isinstance(validated, int | float)
        and not isinstance(validated, bool)
    ):
        kind = type(validated).__name__
        return f"got the string {raw!r}, expected {kind} (write numbers without quotes)"
    return None


def _validate_cell(model_cls: type[BaseModel], params: dict) -> dict:
    """Validate one cell's parameters; raise ValueError with a per-key message."""
    for name, raw in params.items():
        field = model_cls.model_fields.get(name)
        if field is not None and field.annotation in (int, float):
            problem = _coercion_problem(raw, field.annotation(0))
            if problem:
                raise ValueError(f"{name}: {problem}")
    try:
        model = model_cls.model_validate(params)
    except ValidationError as err:
        raise ValueError(_format_errors(err)) from None
    for name, raw in params.items():
        problem = _coercion_problem(raw, getattr(model, name, raw))
        if problem:
            raise ValueError(f"{name}: {problem}")
    out = model.model_dump(mode="json")
    try:
        canonical_json(out)
    except ValueError:
        raise ValueError("the validated parameters hold NaN or inf") from None
    return out


def _check_max_cells(max_cells) -> int:
    if isinstance(max_cells, bool) or not isinstance(max_cells, int) or max_cells < 1:
        raise ValueError(f"max_cells must be a positive integer; got {max_cells!r}.")
    return max_cells


def count_cells(n_seeds: int, grid: dict) -> int:
    """The number of cells of a spec, counted without building them.

    Parameters
    ----------
    n_seeds : int
        How many seeds.
    grid : dict of str to list
        The grid's values per parameter.

    Returns
    -------
    int
        ``n_seeds`` times the product of the grid's lengths (exact, any size).
    """
    return n_seeds * math.prod(len(v) for v in grid.values())


def parse_spec(text: str, source: str = "<string>", *, max_cells: int = MAX_CELLS) -> Spec:
    """Parse and validate a spec's TOML text and expand its grid into cells.

    Parameters
    ----------
    text : str
        The TOML text.
    source : str, default "<string>"
        Where the text came from, for messages.
    max_cells : int, default MAX_CELLS
        The most cells the spec may expand to; the count is checked before any cell is
        built or validated.

    Returns
    -------
    Spec

    Raises
    ------
    SpecError
        If the TOML is malformed, a key is unknown or missing, a value has the wrong type
        or is not finite, a grid list is empty or repeats a value, a parameter is both in
        ``[grid]`` and ``[fixed]``, the experiment type is not registered, or the spec
        has more than ``max_cells`` cells. The message names the file and the key (or
        the size).
    ValueError
        If ``max_cells`` is not a positive integer.
    """
    max_cells = _check_max_cells(max_cells)
    where = f"spec {source}"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{where} is not valid TOML: {exc}") from None
    try:
        spec = _SpecFile.model_validate(raw)
    except ValidationError as err:
        raise SpecError(f"{where}: {_format_errors(err)}") from None
    sw = spec.sweep
    if isinstance(sw.seeds, int):
        if sw.seeds < 1:
            raise SpecError(f"{where}: sweep.seeds must be >= 1 (a count) or a list of seeds.")
        seeds = range(sw.seeds)  # a count: never materialized before the size check
    else:
        if not sw.seeds:
            raise SpecError(f"{where}: sweep.seeds is an empty list; give at least one seed.")
        if len(set(sw.seeds)) != len(sw.seeds):
            raise SpecError(f"{where}: sweep.seeds repeats a seed: {sw.seeds}.")
        seeds = tuple(sw.seeds)
    for name, values in spec.grid.items():
        if not values:
            raise SpecError(f"{where}: grid.{name} is an empty list; give at least one value.")
    n_cells = count_cells(len(seeds), spec.grid)
    if n_cells > max_cells:
        factors = " x ".join(
            [f"{len(seeds):,} seeds", *(f"{len(v):,} {n}" for n, v in spec.grid.items())]
        )
        raise SpecError(
            f"{where}: the spec expands to {n_cells:,} cells ({factors}), more than the "
            f"limit of {max_cells:,} cells. Split it into smaller specs (fewer seeds or grid "
            "values per spec; cells shared between specs are run once), or raise the limit "
            "with --max-cells (max_cells=) if this machine and the database can hold them."
        )
    seeds = tuple(seeds)
    try:
        model_cls = registry.params(sw.experiment)
    except ValueError as exc:
        raise SpecError(f"{where}: sweep.experiment: {exc}") from None
    except Exception as exc:  # the type's module fails to import
        raise SpecError(
            f"{where}: sweep.experiment: experiment type {sw.experiment!r} could not be "
            f"loaded from {registry.PARAMS.get(sw.experiment, registry.MODULES[sw.experiment])}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    known = set(model_cls.model_fields)
    for table in ("grid", "fixed"):
        for name, value in getattr(spec, table).items():
            if name == "seed":
                raise SpecError(f"{where}: {table}.seed: give seeds as sweep.seeds, not here.")
            if name not in known:
                raise SpecError(
                    f"{where}: {table}.{name}: unknown parameter of experiment "
                    f"{sw.experiment!r}; its parameters are {', '.join(sorted(known))}."
                )
            _check_finite(value, f"{where}: {table}.{name}")
    for name in spec.grid:
        if name in spec.fixed:
            raise SpecError(f"{where}: {name} is in both [grid] and [fixed]; keep one.")
    names = list(spec.grid)
    cells, seen, errors = [], {}, []
    for seed in seeds:
        for values in itertools.product(*(spec.grid[n] for n in names)):
            params = {**spec.fixed, **dict(zip(names, values, strict=True)), "seed": seed}
            try:
                valid = _validate_cell(model_cls, params)
            except ValueError as exc:
                shown = {n: params[n] for n in names} | {"seed": seed}
                errors.append(f"cell {canonical_json(shown)}: {exc}")
                continue
            key = cell_key(sw.experiment, valid)
            if key in seen:
                raise SpecError(
                    f"{where}: two grid points give the same cell {canonical_json(valid)} "
                    f"(first from {seen[key]}); remove the repeated value from [grid]."
                )
            seen[key] = canonical_json({n: params[n] for n in names})
            cells.append(Cell(sw.experiment, valid, key))
    if errors:
        more = len(errors) - MAX_LISTED_ERRORS
        listed = "\n  ".join(errors[:MAX_LISTED_ERRORS])
        tail = f"\n  ... and {more} more invalid cells" if more > 0 else ""
        raise SpecError(
            f"{where}: {len(errors)} of {len(errors) + len(cells)} cells have invalid "
            f"parameters for experiment {sw.experiment!r}:\n  {listed}{tail}"
        )
    return Spec(
        name=sw.name,
        experiment=sw.experiment,
        description=sw.description,
        seeds=seeds,
        grid={n: list(v) for n, v in spec.grid.items()},
        fixed=dict(spec.fixed),
        text=text,
        hash=hashlib.sha256(text.encode()).hexdigest(),
        source=source,
        cells=tuple(cells),
    )


def load_spec(path: str | Path, *, max_cells: int = MAX_CELLS) -> Spec:
    """Read, validate and expand a spec file.

    Parameters
    ----------
    path : str or Path
        A TOML file.
    max_cells : int, default MAX_CELLS
        The most cells the spec may expand to (see :func:`parse_spec`).

    Returns
    -------
    Spec

    Raises
    ------
    SpecError
        If the file cannot be read or the spec is invalid (see :func:`parse_spec`).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec {path}: {exc}") from None
    return parse_spec(text, source=str(path), max_cells=max_cells)
