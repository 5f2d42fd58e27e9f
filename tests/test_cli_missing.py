"""`gmmscape fit --missing em` and `gmmscape impute`: tables with holes, in every format."""

from __future__ import annotations

import re

import numpy as np
import pytest
from typer.testing import CliRunner

from gmmscape.cli import app
from gmmscape.estimator._io import load_model, read_table

RNG = np.random.default_rng(0)
X = np.concatenate([RNG.normal(size=(150, 2)) + c for c in ([0, 0], [6, 0], [0, 6])])
HOLES = RNG.uniform(size=X.shape) < 0.15
HOLES[HOLES.all(axis=1), 0] = False
XM = np.where(HOLES, np.nan, X)


def _csv(path, cells=("", "NA", "?", "nan")):
    lines = ["x,y"]
    for i, row in enumerate(XM):
        lines.append(
            ",".join(cells[i % len(cells)] if np.isnan(v) else repr(float(v)) for v in row)
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    return res, " ".join(res.output.split())


def test_missing_cells_read_as_nan(tmp_path):
    got, names = read_table(_csv(tmp_path / "d.csv"))
    assert names == ["x", "y"]
    np.testing.assert_array_equal(np.isnan(got), HOLES)
    np.testing.assert_array_equal(got[~HOLES], X[~HOLES])


def test_fit_refuses_holes_unless_missing_em_and_impute_fills_them(tmp_path):
    data = _csv(tmp_path / "d.csv")
    res, out = _run("fit", data, "-k", 3, "--out", tmp_path / "m.json")
    assert res.exit_code == 2 and "error:" in out and "--missing em" in out
    res, out = _run("fit", data, "-k", 3, "--missing", "em", "--out", tmp_path / "m.json")
    assert res.exit_code == 0, out
    gm = load_model(tmp_path / "m.json")
    assert gm.missing == "em"
    res, out = _run("impute", tmp_path / "m.json", data)
    assert res.exit_code == 0, out
    assert f"Filled {int(HOLES.sum())} missing entries" in out
    filled, names = read_table(tmp_path / "d_imputed.csv")
    assert names == ["x", "y"]
    np.testing.assert_array_equal(filled[~HOLES], X[~HOLES])
    np.testing.assert_allclose(filled, gm.impute(XM), rtol=1e-15)


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_impute_writes_the_input_format(tmp_path, suffix):
    from gmmscape import GaussianMixture
    from gmmscape.estimator._io import save_model, write_table

    gm = GaussianMixture(3, random_state=0, missing="em").fit(XM)
    save_model(gm, tmp_path / "m.json")
    data = write_table(XM, ["a", "b"], tmp_path / f"d{suffix}")
    res, out = _run("impute", tmp_path / "m.json", data, "--out", tmp_path / f"o{suffix}")
    assert res.exit_code == 0, out
    filled, names = read_table(tmp_path / f"o{suffix}")
    np.testing.assert_array_equal(filled, gm.impute(XM))
    if suffix == ".parquet":
        assert names == ["a", "b"]


def test_missing_option_errors_name_the_option(tmp_path):
    data = _csv(tmp_path / "d.csv")
    res, out = _run("fit", data, "-k", 2, "--missing", "drop")
    assert res.exit_code == 2 and "error: --missing must be one of error, em; got 'drop'" in out
    res, out = _run("impute", tmp_path / "m.json", data, "--out", tmp_path / "o.npy")
    assert res.exit_code == 2 and "error: --out" in out and "DATA's format" in out
    helptext = re.sub(r"[│╭╮╰╯─]", " ", CliRunner().invoke(app, ["fit", "--help"]).output)
    assert "[default: error]" in " ".join(helptext.split())
