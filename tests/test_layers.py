"""The package's layers, read from the import graph (DESIGN.md section 2).

The order is ``core <- dynamics <- estimator <- experiments <- cli``: a module may import
from its own layer and from lower ones, never from a higher one. The experiments layer is
the packages ``gmmscape.experiments``, ``gmmscape.landscape`` and ``gmmscape.sweep``. The
top-level private modules (and the package ``__init__``, which only re-exports lazily) are
utilities: any layer may use them, and they import no layered module.

The graph is built from the source with :mod:`ast` alone (nothing is imported, so this
test needs no JAX). Every ``import`` counts, at module level or inside a function (a lazy
import is still a dependency). Imports under ``if TYPE_CHECKING:`` never run: they count
for the layer order (a type from a higher layer is still a dependency on it) but not for
cycles (they cannot make an import circle). A string that names a module of the package
(``"gmmscape.landscape.studies"``, or ``"module:attr"``), as the lazy tables of the
package ``__init__`` and the experiment registry hold for :func:`importlib.import_module`,
counts for the layer order too, but not for cycles: a registry imports its plugins by name
when one is asked for, and they import the registry for its types. The package
``__init__`` may name any module (its lazy re-exports). A module's implicit import of its
parent packages is not an edge.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: The layers, lowest first.
LAYERS = ("core", "dynamics", "estimator", "experiments", "cli")

#: Subpackage of ``gmmscape`` -> its layer. A new subpackage must be placed here.
PACKAGE_LAYER = {
    "core": "core",
    "dynamics": "dynamics",
    "estimator": "estimator",
    "experiments": "experiments",
    "landscape": "experiments",
    "sweep": "experiments",
    "cli": "cli",
}

#: Top-level modules usable from every layer. A new top-level module must be listed.
UTILITIES = {
    "gmmscape",
    "gmmscape._compilation_cache",
    "gmmscape._files",
    "gmmscape._lazy",
    "gmmscape._program_store",
    "gmmscape._validation",
}


@dataclass(frozen=True)
class Edge:
    """One import statement's dependency of module ``src`` on module ``dst``."""

    src: str
    dst: str
    line: int
    lazy: bool  # inside a function
    type_only: bool  # under ``if TYPE_CHECKING:``
    named: bool = False  # a string naming the module, for importlib

    def __str__(self) -> str:
        kind = (
            " (by name)"
            if self.named
            else " (in a function)"
            if self.lazy
            else " (type only)"
            if self.type_only
            else ""
        )
        return f"{self.src} -> {self.dst} (line {self.line}){kind}"


def find_modules(src: Path = SRC, package: str = "gmmscape") -> dict[str, tuple[Path, bool]]:
    """Every module of ``package`` under ``src``.

    Parameters
    ----------
    src : Path
        The folder that holds the package folder.
    package : str

    Returns
    -------
    dict
        Dotted module name -> (its file, whether it is a package ``__init__``).
    """
    modules = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules[".".join(parts)] = (path, is_package)
    return modules


def _owner(name: str, modules) -> str | None:
    """The module that ``name`` (a module, or a name inside one) belongs to."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def module_imports(name: str, source: str, is_package: bool, modules) -> list[Edge]:
    """The edges from module ``name`` to the modules of ``modules`` that it imports.

    Parameters
    ----------
    name : str
        Dotted name of the importing module.
    source : str
        Its source text.
    is_package : bool
        Whether it is a package ``__init__`` (relative imports resolve from itself).
    modules : collection of str
        The dotted names of the modules that edges may point to.

    Returns
    -------
    list of Edge
    """
    root = name.split(".")[0]
    edges = []

    def targets(node) -> list[str]:
        if isinstance(node, ast.Import):
            return [_owner(a.name, modules) for a in node.names if a.name.split(".")[0] == root]
        if node.level:
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        if module.split(".")[0] != root:
            return []
        # ``from pkg import sub`` depends on pkg.sub; ``from pkg import func`` on pkg.
        return [_owner(f"{module}.{a.name}", modules) for a in node.names]

    def visit(node, lazy: bool, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            child_lazy = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            child_type_only = type_only or (
                isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            )
            if isinstance(child, ast.Import | ast.ImportFrom):
                for dst in dict.fromkeys(targets(child)):
                    if dst is not None and dst != name:
                        edges.append(Edge(name, dst, child.lineno, child_lazy, child_type_only))
            elif isinstance(child, ast.Constant) and isinstance(child.value, str):
                dst = child.value.split(":")[0]
                if dst.startswith(f"{root}.") and dst in modules and dst != name:
                    edges.append(Edge(name, dst, child.lineno, lazy, type_only, named=True))
            visit(child, child_lazy, child_type_only)

    visit(ast.parse(source), False, False)
    return edges


def import_graph(src: Path = SRC, package: str = "gmmscape") -> tuple[list[str], list[Edge]]:
    """The modules of ``package`` and every import edge between them.

    Parameters
    ----------
    src : Path
    package : str

    Returns
    -------
    modules : list of str
    edges : list of Edge
    """
    modules = find_modules(src, package)
    edges = []
    for name, (path, is_package) in modules.items():
        edges += module_imports(name, path.read_text(), is_package, modules)
    return list(modules), edges


def layer_of(module: str) -> str | None:
    """The layer of a module of gmmscape: a name of :data:`LAYERS`, ``"utility"`` or None.

    Parameters
    ----------
    module : str

    Returns
    -------
    str or None
        None if the module is not placed (a new subpackage or top-level module).
    """
    if module in UTILITIES:
        return "utility"
    parts = module.split(".")
    return PACKAGE_LAYER.get(parts[1]) if len(parts) > 1 else None


def upward_edges(edges, layer=layer_of, order=LAYERS) -> list[str]:
    """The imports that break the layer order, as readable lines.

    A module may import its own layer, lower layers and utilities; a utility may import
    only utilities, except that the package ``__init__`` (a name without dots) may name
    any module for its lazy re-exports.

    Parameters
    ----------
    edges : iterable of Edge
    layer : callable
        Module name -> a name of ``order``, ``"utility"`` or None.
    order : sequence of str
        The layers, lowest first.

    Returns
    -------
    list of str
    """
    rank = {name: i for i, name in enumerate(order)}
    bad = []
    for e in edges:
        src, dst = layer(e.src), layer(e.dst)
        if src is None or dst is None or dst == "utility":
            continue
        if src == "utility":
            if not (e.named and "." not in e.src):
                bad.append(f"utility {e} imports the {dst} layer")
        elif rank[dst] > rank[src]:
            bad.append(f"{src} {e} imports the higher {dst} layer")
    return bad


def cycles(edges) -> list[list[str]]:
    """The import circles: one cycle (a list of modules, first repeated last) per knot.

    Tarjan's strongly connected components over the import statements that run (type-only
    imports and references by name excluded); each component of two or more modules holds
    at least one cycle.

    Parameters
    ----------
    edges : iterable of Edge

    Returns
    -------
    list of list of str
    """
    graph: dict[str, list[str]] = {}
    for e in edges:
        if not (e.type_only or e.named):
            graph.setdefault(e.src, []).append(e.dst)
            graph.setdefault(e.dst, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(comp)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_one_cycle(graph, comp) for comp in components]


def _one_cycle(graph, comp: set[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component."""
    start = min(comp)
    paths = {start: [start]}
    frontier = [start]
    while frontier:  # breadth-first search back to start, inside the component
        nxt = []
        for v in frontier:
            for w in sorted(set(graph[v]) & comp):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError("not a strongly connected component")  # pragma: no cover


# --- the checks on gmmscape itself ------------------------------------------------------


def test_every_module_is_placed_in_a_layer():
    modules, _ = import_graph()
    assert len(modules) > 40  # the package was found
    unplaced = [m for m in modules if layer_of(m) is None]
    assert not unplaced, (
        f"modules in no layer: {unplaced}; place a new subpackage in PACKAGE_LAYER or a new "
        "top-level module in UTILITIES (tests/test_layers.py) and in DESIGN.md's layers"
    )


def test_no_import_from_a_higher_layer():
    _, edges = import_graph()
    assert len(edges) > 100  # the imports were found
    bad = upward_edges(edges)
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_import_cycle():
    _, edges = import_graph()
    found = cycles(edges)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_lazy_tables_are_read_as_references_by_name():
    _, edges = import_graph()
    named = {(e.src, e.dst) for e in edges if e.named}
    assert ("gmmscape", "gmmscape.estimator") in named  # gmmscape.GaussianMixture
    assert ("gmmscape.experiments.registry", "gmmscape.landscape.studies") in named


# --- the checker finds what it should ------------------------------------------------


def _fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_checker_reports_an_upward_edge_and_a_cycle(tmp_path):
    src = _fake_package(
        tmp_path,
        {
            "__init__.py": "",
            "low/__init__.py": "",
            # a cycle hidden by a lazy import: a -> b at module level, b -> a in a function
            "low/a.py": "from pkg.low.b import g\n",
            "low/b.py": "def g():\n    from pkg.low import a\n    return a\n",
            # an upward edge, relative and lazy: low.c -> high.d
            "low/c.py": "def f():\n    from ..high.d import h\n    return h\n",
            # an upward reference by name, and a registry that names its plugin
            "low/registry.py": 'PLUGINS = {"d": "pkg.high.d:h", "c": "pkg.low.c"}\n',
            "high/__init__.py": "",
            "high/d.py": "import pkg.low.a\n\ndef h():\n    pass\n",
        },
    )
    modules, edges = import_graph(src, "pkg")
    assert sorted(modules) == [
        "pkg",
        "pkg.high",
        "pkg.high.d",
        "pkg.low",
        "pkg.low.a",
        "pkg.low.b",
        "pkg.low.c",
        "pkg.low.registry",
    ]
    layer = dict.fromkeys(["pkg.low.a", "pkg.low.b", "pkg.low.c", "pkg.low.registry"], "low")
    layer["pkg.high.d"] = "high"
    bad = upward_edges(edges, layer=layer.get, order=("low", "high"))
    # pkg.high.d -> pkg.low.a points down: allowed
    assert bad == [
        "low pkg.low.c -> pkg.high.d (line 2) (in a function) imports the higher high layer",
        "low pkg.low.registry -> pkg.high.d (line 1) (by name) imports the higher high layer",
    ]
    assert cycles(edges) == [["pkg.low.a", "pkg.low.b", "pkg.low.a"]]


def test_checker_ignores_type_only_imports_for_cycles_not_for_layers(tmp_path):
    src = _fake_package(
        tmp_path,
        {
            "a.py": "import pkg.b\n",
            "b.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from pkg.a import A\n"
                "    from pkg.c import C\n"
            ),
            "c.py": "",
        },
    )
    _, edges = import_graph(src, "pkg")
    assert cycles(edges) == []
    layer = {"pkg.a": "one", "pkg.b": "one", "pkg.c": "two"}
    bad = upward_edges(edges, layer=layer.get, order=("one", "two"))
    assert bad == ["one pkg.b -> pkg.c (line 4) (type only) imports the higher two layer"]


def test_checker_reports_a_utility_that_imports_a_layer(tmp_path):
    src = _fake_package(
        tmp_path,
        {
            "__init__.py": '_LAZY = {"x": "pkg.core"}\n',  # a lazy re-export: allowed
            "_util.py": "from pkg.core import x\n",
            "core.py": "x = 1\n",
        },
    )
    _, edges = import_graph(src, "pkg")
    layer = {"pkg": "utility", "pkg._util": "utility", "pkg.core": "core"}.get
    assert upward_edges(edges, layer=layer, order=("core",)) == [
        "utility pkg._util -> pkg.core (line 1) imports the core layer"
    ]


def test_checker_finds_the_longer_cycle_and_names_every_module(tmp_path):
    src = _fake_package(
        tmp_path,
        {"a.py": "import pkg.b\n", "b.py": "import pkg.c\n", "c.py": "import pkg.a\n"},
    )
    _, edges = import_graph(src, "pkg")
    assert cycles(edges) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
