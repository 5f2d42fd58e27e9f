"""``gmmscape select``: the table, the files it writes and its error lines."""

import csv
import json

import numpy as np
from typer.testing import CliRunner

from gmmscape.cli import app


def _params() -> dict:
    import typer

    cmd = typer.main.get_command(app).commands["select"]
    return {p.name: p for p in cmd.params}


def test_models_listed_are_the_estimators():
    from gmmscape.cli.select import MODELS_HELP
    from gmmscape.estimator.select import MODELS

    assert tuple(MODELS_HELP.split(",")) == MODELS
    params = _params()
    assert MODELS_HELP in params["models"].help
    assert list(params["ks"].default) == ["1,2,3,4,5,6,7,8,9"]


def test_select_writes_json_csv_and_the_figure(tmp_path):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (60, 2)), rng.normal(6, 1, (60, 2))])
    data = tmp_path / "x.csv"
    np.savetxt(data, X, delimiter=",", header="a,b", comments="")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["select", str(data), "--ks", "1,2", "--ks", "3", "--models", "VVV,EII",
              "--out", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Best BIC values:" in res.output
    payload = json.loads((out / "select.json").read_text())
    assert payload["models"] == ["VVV", "EII"] and payload["n_components"] == [1, 2, 3]
    assert payload["best"][1] == 2
    rows = list(csv.DictReader((out / "select.csv").open()))
    assert len(rows) == 6
    r = rows[0]
    assert float(r["bic"]) == -float(r["bic_sklearn"])
    assert float(r["bic"]) == np.float64(
        2 * float(r["loglik"]) - int(r["n_parameters"]) * np.log(120)
    )
    assert (out / "select_bic.png").stat().st_size > 0 and (out / "select_bic.svg").exists()
    # one thread: the same table
    one = CliRunner().invoke(
        app, ["select", str(data), "--ks", "1,2,3", "--models", "VVV,EII", "--jobs", "1",
              "--out", str(tmp_path / "one")],
    )  # fmt: skip
    assert one.exit_code == 0, one.output
    again = list(csv.DictReader((tmp_path / "one" / "select.csv").open()))
    for a, b in zip(again, rows, strict=True):
        assert {**a, "seconds": 0} == {**b, "seconds": 0}


def test_bad_input_gives_one_error_line(tmp_path):
    data = tmp_path / "x.csv"
    np.savetxt(data, np.zeros((5, 2)), delimiter=",")
    for args, msg in [
        (["--models", "VVV,XYZ"], "--models: XYZ not among"),
        (["--criterion", "aic"], "--criterion must be bic or icl"),
        (["--convention", "R"], "--convention must be mclust or sklearn"),
        (["--ks", "1,x"], "--ks takes comma-separated values"),
        (["--ks", "9"], "fewer than the smallest k"),
        (["--jobs", "0"], "--jobs must be a positive integer"),
    ]:
        res = CliRunner().invoke(app, ["select", str(data), "--out", str(tmp_path / "o"), *args])
        assert res.exit_code == 2, args
        assert res.output.startswith("error:") and msg in " ".join(res.output.split()), res.output
