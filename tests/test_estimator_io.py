"""Model files, data files and the `gmmscape fit` / `gmmscape predict` commands."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from gmmscape import GaussianMixture
from gmmscape.cli import app
from gmmscape.estimator._io import load_model, read_data, save_model

RNG = np.random.default_rng(0)
X = np.concatenate([RNG.normal(size=(150, 2)) + c for c in ([0, 0], [6, 0], [0, 6])])


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_saved_model_predicts_identically(tmp_path, ct):
    gm = GaussianMixture(3, covariance_type=ct, random_state=0).fit(X)
    gm2 = load_model(save_model(gm, tmp_path / "m.json"))
    np.testing.assert_array_equal(gm2.predict(X), gm.predict(X))
    np.testing.assert_array_equal(gm2.predict_proba(X), gm.predict_proba(X))
    np.testing.assert_array_equal(gm2.score_samples(X), gm.score_samples(X))
    assert gm2.get_params() == {**gm.get_params(), "freeze": ()}
    assert not list(tmp_path.glob("*.tmp"))


def test_read_csv_npy_parquet_agree(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.csv").write_text("x,y\n" + "\n".join(f"{float(a)!r},{float(b)!r}" for a, b in X))
    np.save(tmp_path / "a.npy", X)
    pq.write_table(pa.table({"x": X[:, 0], "y": X[:, 1]}), tmp_path / "a.parquet")
    for name in ("a.csv", "a.npy", "a.parquet"):
        np.testing.assert_array_equal(read_data(tmp_path / name), X)


def test_read_data_names_bad_cells(tmp_path):
    (tmp_path / "b.csv").write_text("x,y\n1.0,2.0\n3.0,abc\n")
    with pytest.raises(ValueError, match=r"non-numeric cell 'abc' at line 3, column 2 \('y'\)"):
        read_data(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("1,2\n3\n")
    with pytest.raises(ValueError, match="row 2 has 1 cells"):
        read_data(tmp_path / "c.csv")
    (tmp_path / "d.xlsx").write_text("")
    with pytest.raises(ValueError, match="unknown data format"):
        read_data(tmp_path / "d.xlsx")
    with pytest.raises(ValueError, match="no such file"):
        read_data(tmp_path / "missing.csv")


def test_cli_fit_then_predict(tmp_path):
    data = tmp_path / "d.npy"
    np.save(data, X)
    model = tmp_path / "model.json"
    runner = CliRunner()
    res = runner.invoke(
        app, ["fit", str(data), "-k", "3", "--covariance", "diag", "--out", str(model)]
    )
    assert res.exit_code == 0, res.output
    assert "Convergence trace" in res.output and "converged" in res.output
    saved = json.loads(model.read_text())
    gm = load_model(model)
    assert len(saved["fitted"]["lower_bounds_"]) == gm.n_iter_
    ref = GaussianMixture(3, covariance_type="diag", random_state=0).fit(X)
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=0, atol=0)
    out = tmp_path / "labels.csv"
    res = runner.invoke(app, ["predict", str(model), str(data), "--out", str(out)])
    assert res.exit_code == 0, res.output
    labels = np.loadtxt(out, delimiter=",", skiprows=1).astype(int)
    np.testing.assert_array_equal(labels, ref.predict(X))


def test_cli_reports_bad_input(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,x\n")
    res = CliRunner().invoke(app, ["fit", str(bad), "-k", "2", "--out", str(tmp_path / "m.json")])
    assert res.exit_code == 2
    assert "non-numeric cell" in res.output
    good = tmp_path / "good.npy"
    np.save(good, X)
    model = tmp_path / "m.json"
    save_model(GaussianMixture(2, random_state=0).fit(X), model)
    np.save(tmp_path / "three.npy", np.ones((5, 3)))
    res = CliRunner().invoke(app, ["predict", str(model), str(tmp_path / "three.npy")])
    assert res.exit_code == 2 and "features" in res.output


def test_recovery_experiment_is_registered():
    from gmmscape.experiments import registry

    exp = registry.get("recovery")
    p = exp.params(k=3, d=2, n_samples=600, seed=0, refine=True)
    out = exp.run(p)
    json.dumps(out)
    assert out["recovered"] and out["n_found"] == 3 and out["max_distance"] < 0.5
    figs = exp.plot([(p.model_dump(), out)])
    line, low_cap, high_cap = figs["recovery"].axes[0].get_lines()  # data, error-bar caps
    assert list(line.get_ydata()) == [1.0]
    z = 1.959963984540054  # the 95% Wilson interval of 1 success in 1 run: [1/(1+z^2), 1]
    assert low_cap.get_ydata()[0] == pytest.approx(1.0 / (1.0 + z * z))
    assert high_cap.get_ydata()[0] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        exp.params(k=3, bogus=1)


@pytest.mark.slow
def test_user_guide_code_blocks_run():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "estimator.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 8
    ns: dict = {}
    for block in blocks:
        exec(compile(block, "docs/estimator.md", "exec"), ns)
    assert ns["fixed"].score(ns["Xb"]) > ns["plain"].score(ns["Xb"])
    assert ns["fixed"].refine_moves_
    np.testing.assert_array_equal(ns["labels"], ns["gm"].predict(ns["X"]))


def _del(key):
    return lambda m: m["fitted"].pop(key)


def _set(part, key, value):
    return lambda m: m[part].__setitem__(key, value)


def _scale_weights(m):
    m["fitted"]["weights_"] = [2 * w for w in m["fitted"]["weights_"]]


def _negative_weight(m):
    w = m["fitted"]["weights_"]
    w[0], w[1] = -0.1, w[1] + w[0] + 0.1


def _zero_factor(m):
    m["fitted"]["precisions_cholesky_"][0] = [[0.0, 0.0], [0.0, 0.0]]


BAD_MODELS = [
    (_del("means_"), r"'fitted' lacks \['means_'\]"),
    (_del("n_iter_"), r"lacks \['n_iter_'\]"),
    (lambda m: m.pop("fitted"), "'fitted' must be a JSON object"),
    (_set("params", "colour", "red"), r"unknown parameter\(s\) \['colour'\]"),
    (_set("fitted", "dtype", "float16"), "fitted.dtype must be"),
    (lambda m: m.__setitem__("params", "n_components=3"), "'params' must be a JSON object"),
    (_set("fitted", "means_", [[0.0, 0.0]]), r"fitted.means_ must have shape \(3, 2\)"),
    (_set("params", "n_components", 2), r"fitted.weights_ must have shape \(2,\)"),
    (_set("params", "covariance_type", "round"), "invalid 'params'"),
    (_set("fitted", "n_iter_", "ten"), "fitted.n_iter_ has the wrong type"),
    (_set("fitted", "means_", "abc"), "fitted.means_ is not an array"),
    (_scale_weights, "sum to 1"),
    (_negative_weight, r"lie in \[0, 1\]"),
    (_zero_factor, r"precisions_cholesky_\[0\] is singular"),
    (lambda m: m.__setitem__("version", 99), "format version 99"),
    (lambda m: m.__setitem__("format", "other"), "not a saved"),
]


@pytest.mark.parametrize(("mutate", "match"), BAD_MODELS)
def test_bad_model_file_is_an_error_naming_the_field(tmp_path, mutate, match):
    model = tmp_path / "m.json"
    save_model(GaussianMixture(3, random_state=0).fit(X), model)
    data = json.loads(model.read_text())
    mutate(data)
    model.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=match):
        load_model(model)
    np.save(tmp_path / "x.npy", X)
    res = CliRunner().invoke(app, ["predict", str(model), str(tmp_path / "x.npy")])
    assert res.exit_code == 2 and "error:" in res.output and "Traceback" not in res.output


def test_cli_paths_that_are_directories_or_missing(tmp_path):
    np.save(tmp_path / "x.npy", X)
    adir = tmp_path / "adir.csv"
    adir.mkdir()
    run = CliRunner().invoke
    res = run(app, ["fit", str(adir), "-k", "2", "--out", str(tmp_path / "m.json")])
    assert res.exit_code == 2 and "is a directory" in " ".join(res.output.split())
    res = run(app, ["fit", str(tmp_path / "x.npy"), "-k", "2", "--out", str(adir)])
    assert res.exit_code == 2 and "is a directory" in " ".join(res.output.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.csv", "x.npy"]
    model = tmp_path / "m.json"
    assert run(app, ["fit", str(tmp_path / "x.npy"), "-k", "2", "--out", str(model)]).exit_code == 0
    out = tmp_path / "new" / "dir" / "labels.csv"
    res = run(app, ["predict", str(model), str(tmp_path / "x.npy"), "--out", str(out)])
    assert res.exit_code == 0 and out.exists()
    res = run(app, ["predict", str(adir), str(tmp_path / "x.npy")])
    assert res.exit_code == 2 and "is a directory" in " ".join(res.output.split())


def test_complex_data_is_refused(tmp_path):
    np.save(tmp_path / "c.npy", X.astype(complex))
    with pytest.raises(ValueError, match=r"dtype complex128.*real"):
        read_data(tmp_path / "c.npy")


def test_model_file_records_version_feature_names_and_source(tmp_path):
    from gmmscape import __version__

    data = tmp_path / "pts.csv"
    rows = "\n".join(f"{a:.6f},{b:.6f}" for a, b in X)
    data.write_text("width,height\n" + rows + "\n")
    model = tmp_path / "m.json"
    res = CliRunner().invoke(app, ["fit", str(data), "-k", "3", "--out", str(model)])
    assert res.exit_code == 0, res.output
    prov = json.loads(model.read_text())["provenance"]
    assert prov == {
        "gmmscape_version": __version__,
        "feature_names": ["width", "height"],
        "source": str(data),
    }
    assert load_model(model).provenance_ == prov


def test_predict_to_stdout_is_the_same_csv_as_the_file(tmp_path):
    np.save(tmp_path / "x.npy", X)
    model = tmp_path / "m.json"
    save_model(GaussianMixture(3, random_state=0).fit(X), model)
    run = CliRunner().invoke
    res = run(app, ["predict", str(model), str(tmp_path / "x.npy"), "--proba"])
    assert res.exit_code == 0
    out = tmp_path / "labels.csv"
    run(app, ["predict", str(model), str(tmp_path / "x.npy"), "--proba", "--out", str(out)])
    assert res.output == out.read_text()
    assert res.output.splitlines()[0] == "label,p0,p1,p2"
    assert len(res.output.splitlines()) == len(X) + 1


def test_fit_columns_drop_and_standardize(tmp_path):
    from sklearn.datasets import load_wine
    from sklearn.metrics import adjusted_rand_score

    from gmmscape.estimator._standardize import fit_standardized

    wine = load_wine()
    Xw = wine.data
    data = tmp_path / "wine.npy"
    np.save(data, np.column_stack([Xw, np.arange(len(Xw))]))  # plus an id column to drop
    run = CliRunner().invoke
    out = tmp_path / "m.json"
    args = ["fit", str(data), "-k", "3", "--covariance", "diag", "--drop", "13"]
    res = run(app, [*args, "--standardize", "--out", str(out)])
    assert res.exit_code == 0, res.output
    gm = load_model(out)
    assert gm.provenance_["selection"] == {"index": list(range(13)), "n_source_features": 14}
    # the written model is the standardized fit, expressed in the data's units
    z = (Xw - Xw.mean(0)) / Xw.std(0)
    gz = GaussianMixture(3, covariance_type="diag", random_state=0).fit(z)
    np.testing.assert_array_equal(gm.predict(Xw), gz.predict(z))
    jac = np.sum(np.log(Xw.std(0)))
    np.testing.assert_allclose(gm.score_samples(Xw), gz.score_samples(z) - jac, rtol=1e-10)
    # predict on a file of the source's width selects the same columns
    res = run(app, ["predict", str(out), str(data)])
    labels = np.array([int(r) for r in res.output.splitlines()[1:]])
    np.testing.assert_array_equal(labels, gm.predict(Xw))
    # standardizing is what lets k-means start full covariances well on raw wine
    # (ARI 0.61 raw, 0.90 standardized for seed 0)
    raw = GaussianMixture(3, random_state=0).fit(Xw)
    std = fit_standardized(GaussianMixture(3, random_state=0), Xw)
    ari_raw = adjusted_rand_score(wine.target, raw.predict(Xw))
    ari_std = adjusted_rand_score(wine.target, std.predict(Xw))
    assert ari_std > ari_raw + 0.1
    res = run(app, ["fit", str(data), "-k", "3", "--columns", "alcohol", "--out", str(out)])
    assert res.exit_code == 2 and "unknown column 'alcohol'" in " ".join(res.output.split())
    res = run(app, [*args, "--covariance", "spherical", "--standardize", "--out", str(out)])
    assert res.exit_code == 2 and "spherical" in res.output
