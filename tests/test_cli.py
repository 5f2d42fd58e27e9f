"""The command line: `gmmscape demo --quick` runs end to end and writes its outputs."""

import json

from typer.testing import CliRunner

from gmmscape.cli import app


def test_demo_quick_writes_figure_and_results(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in ("demo.png", "demo.svg", "demo.json"):
        assert (tmp_path / name).stat().st_size > 0
    data = json.loads((tmp_path / "demo.json").read_text())
    n = len(data["sizes"])
    assert len(data["sample_kl"]) == n and len(data["sample_kl_se"]) == n
    # each sample estimate is within 4 standard errors of the exact population KL
    for kl, se in zip(data["sample_kl"], data["sample_kl_se"], strict=True):
        assert abs(kl - data["population_kl"]) < 4 * se
    # population EM from the demo's start reaches the truth (KL ~ 0)
    assert data["em_kl"]["population"][-1] < 1e-10
    assert "Sample estimates against the exact population value" in result.output


def test_no_arguments_prints_help():
    result = CliRunner().invoke(app, [])
    assert "demo" in result.output
