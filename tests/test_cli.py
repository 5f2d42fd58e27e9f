"""The command line: `gmmscape demo --quick` runs end to end and writes its outputs."""

import json

from typer.testing import CliRunner

from gmmscape.cli import app


def test_demo_quick_writes_report_figures_and_results(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 5  # figures embedded, self-contained
    for name in ("demo", "seedA_rates", "seedA_trap", "landscape_atlas", "estimator_recovery"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0
        assert (tmp_path / f"{name}.svg").stat().st_size > 0
    data = json.loads((tmp_path / "foundation.json").read_text())
    # each sample estimate is within 4 standard errors of the exact population KL
    for kl, se in zip(data["sample_kl"], data["sample_kl_se"], strict=True):
        assert abs(kl - data["population_kl"]) < 4 * se
    # population EM from the demo's start reaches the truth (KL ~ 0)
    assert data["em_kl"]["population"][-1] < 1e-10
    # seed A: the loss decays at least as fast as the proven O(1/sqrt(t)) bound
    seed_a = json.loads((tmp_path / "seed_a.json").read_text())
    assert all(row["alpha_loss"] > 0.5 for row in seed_a["study"]["table"])
    # seed B: Jin et al.'s problem has a spurious minimum, and every minimum is
    # non-overlapping (one-fits-many and many-fit-one groups only)
    atlas = json.loads((tmp_path / "landscape_atlas.json").read_text())
    minima = [p for p in atlas["points"] if "minimum" in p["kind"]]
    assert any(p["gap"] > 1e-6 for p in minima)
    assert all(p["non_overlapping"] for p in minima)
    assert "Seed A" in result.output and "Seed B" in result.output
    # the quick run keeps a case where refine matters: plain EM misses, refine recovers
    fits = json.loads((tmp_path / "estimator.json").read_text())
    recovered = {}
    for f in fits:
        recovered.setdefault(f["fit"], []).append(f["result"]["recovered"])
    assert not all(recovered["gmmscape"]) and all(recovered["gmmscape, refine=True"])
    # every figure has a caption that says what it shows, not its file name
    assert "<figcaption class='small'>demo</figcaption>" not in page
    assert "95% Wilson intervals" in page


def test_no_arguments_prints_help():
    result = CliRunner().invoke(app, [])
    assert "demo" in result.output
