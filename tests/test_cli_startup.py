"""The command line starts fast: light commands load no JAX, matplotlib or scipy.stats.

Each check runs in a fresh interpreter (a subprocess), because this test process has
imported JAX already, and inspects that interpreter's ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

import gmmscape

ROOT = Path(__file__).resolve().parents[1]

#: Modules whose import costs seconds; none may load for --help and the light commands.
HEAVY = ("jax", "jaxlib", "matplotlib", "scipy.stats", "sklearn", "dask", "pyarrow")


def _run(code: str, *args: str, cwd: Path = ROOT) -> dict:
    """Run ``code`` in a fresh interpreter; return the JSON it prints on its last line."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


_LOADED = """
import json, sys
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def test_importing_the_cli_loads_no_heavy_module():
    loaded = _run("import gmmscape.cli" + _LOADED.format(heavy=HEAVY))
    assert loaded == []


def test_importing_gmmscape_loads_no_heavy_module():
    loaded = _run("import gmmscape, gmmscape.sweep" + _LOADED.format(heavy=HEAVY))
    assert loaded == []


def test_importing_the_estimator_loads_no_jax_until_the_first_fit():
    # the estimator needs scikit-learn (its base classes, KMeans); JAX waits for a fit
    code = "from gmmscape import GaussianMixture; from gmmscape.estimator import load_model"
    loaded = _run(code + _LOADED.format(heavy=HEAVY))
    assert "jax" not in loaded and "jaxlib" not in loaded and "matplotlib" not in loaded
    fitted = _run(
        "import numpy as np; from gmmscape import GaussianMixture;"
        "GaussianMixture(2, random_state=0).fit(np.arange(20.0).reshape(10, 2))"
        + _LOADED.format(heavy=HEAVY)
    )
    assert "jax" in fitted


_COMMAND = """
import io, json, sys
from contextlib import redirect_stdout
from gmmscape.cli import app
out = io.StringIO()
with redirect_stdout(out):
    try:
        app(sys.argv[1:], standalone_mode=False)
    except SystemExit:
        pass
print(json.dumps({{"output": out.getvalue(),
                  "loaded": sorted(m for m in {heavy!r} if m in sys.modules)}}))
"""


@pytest.fixture
def store_db(tmp_path):
    from gmmscape.sweep.store import ResultsStore

    db = tmp_path / "results.db"
    with ResultsStore(db):
        pass
    return db


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["sweep", "--help"],
        ["fit", "--help"],
        ["sweep", "status", "{db}"],
        ["sweep", "run", "examples/sweeps/stream-error.toml", "--dry-run", "--db", "{db}"],
    ],
    ids=lambda a: " ".join(a).replace("{db}", "DB"),
)
def test_light_commands_load_no_heavy_module(argv, store_db):
    args = [a.format(db=store_db) for a in argv]
    res = _run(_COMMAND.format(heavy=HEAVY), *args)
    assert res["loaded"] == [], f"gmmscape {' '.join(argv)} imported {res['loaded']}"
    assert res["output"].strip(), "the command printed nothing"


#: Example specs: every experiment type validates without its running module.
LIGHT_SPECS = sorted(
    p.relative_to(ROOT).as_posix() for p in (ROOT / "examples" / "sweeps").rglob("*.toml")
)


_COMMANDS = """
import io, json, sys
from contextlib import redirect_stdout
from gmmscape.cli import app
results = []
for argv in json.loads(sys.argv[1]):
    out = io.StringIO()
    with redirect_stdout(out):
        try:
            app(argv, standalone_mode=False)
        except SystemExit:
            pass
    results.append({{"argv": argv, "output": out.getvalue(),
                    "loaded": sorted(m for m in {heavy!r} if m in sys.modules)}})
print(json.dumps(results))
"""


def test_dry_run_of_every_light_spec_loads_no_heavy_module(store_db):
    """One interpreter runs the dry runs one after another; each is checked after it ran."""
    runs = [["sweep", "run", spec, "--dry-run", "--db", str(store_db)] for spec in LIGHT_SPECS]
    assert len(runs) >= 8
    for res in _run(_COMMANDS.format(heavy=HEAVY), json.dumps(runs)):
        assert res["loaded"] == [], f"{' '.join(res['argv'])} imported {res['loaded']}"
        assert "to run." in res["output"], res["argv"]


def test_light_parameter_models_are_the_types_own():
    from gmmscape.experiments import registry

    assert set(registry.PARAMS) <= set(registry.MODULES)
    for name in registry.PARAMS:
        assert registry.params(name) is registry.get(name).params, name
    assert registry.params("recovery") is registry.get("recovery").params
    with pytest.raises(ValueError, match="unknown experiment type"):
        registry.params("no-such-type")


def test_dry_run_counts_the_cells(store_db):
    res = _run(
        _COMMAND.format(heavy=HEAVY),
        "sweep",
        "run",
        "examples/sweeps/stream-error.toml",
        "--dry-run",
        "--db",
        str(store_db),
    )
    assert "24 cells: 0 done, 0 failed, 24 to run." in res["output"]


def test_version_matches_the_package_metadata_and_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    res = _run(_COMMAND.format(heavy=HEAVY), "--version")
    assert res["output"].strip() == f"gmmscape {gmmscape.__version__}"
    assert gmmscape.__version__ == pyproject["project"]["version"] == version("gmmscape")


@pytest.mark.parametrize(
    "code",
    [
        "import gmmscape; import jax.numpy as jnp",  # gmmscape first: JAX_ENABLE_X64
        "import jax.numpy as jnp; import gmmscape",  # JAX first: the config flag
        "from gmmscape.core.mixture import Mixture; import jax.numpy as jnp",
    ],
    ids=["gmmscape-then-jax", "jax-then-gmmscape", "submodule-only"],
)
def test_lazy_import_still_enables_float64(code):
    out = _run(code + "\nimport json; print(json.dumps(str(jnp.ones(2).dtype)))")
    assert out == "float64"


def test_public_names_resolve_lazily():
    import gmmscape.sweep

    for mod in (gmmscape, gmmscape.sweep):
        for name in mod.__all__:
            assert getattr(mod, name) is not None, name
        assert set(mod.__all__) <= set(dir(mod))
        with pytest.raises(AttributeError, match="no attribute"):
            _ = mod.not_a_name
    assert gmmscape.Mixture.__module__ == "gmmscape.core.mixture"
    assert gmmscape.landscape.explore.__name__ == "explore"  # subpackage as an attribute
