"""The command line speaks one dialect: list options, help texts, tables, messages."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from gmmscape.cli import app
from gmmscape.cli._app import split_list

COMMAND = typer.main.get_command(app)


def _commands(group, prefix: str = ""):
    """(name, command) of every command under ``group`` (typer ships its own click)."""
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


def _help(command: str) -> str:
    """``gmmscape COMMAND --help`` as one line of words (rich wraps it in a box)."""
    out = CliRunner().invoke(app, [command, "--help"]).output
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", out).split())


def test_split_list_takes_commas_and_repeats():
    assert split_list("2,3,4", int, "--ks") == [2, 3, 4]
    assert split_list(["2", "3,4"], int, "--ks") == [2, 3, 4]
    assert split_list([" 1.5 , 2", ""], float, "--deltas") == [1.5, 2.0]
    assert split_list(None, int, "--ks") == []
    with pytest.raises(typer.Exit) as info:
        split_list("2,x", int, "--ks")
    assert info.value.exit_code == 2


def test_every_list_option_is_comma_separated_and_shows_its_default():
    seen = []
    for name, cmd in _commands(COMMAND):
        for p in cmd.params:
            if getattr(p, "multiple", False) and p.param_type_name == "option":
                seen.append(f"{name} {p.opts[0]}")
                assert "comma-separated" in (p.help or ""), f"{name} {p.opts[0]}"
                assert p.default or "(default:" in (p.help or ""), f"{name} {p.opts[0]}"
    assert {"overparam --n", "overparam --weights", "trap --dims", "landscape --schemes"} <= set(
        seen
    )


def test_help_states_defaults_and_valid_values():
    from gmmscape.cli.landscape import SCHEMES_HELP
    from gmmscape.cli.overparam import WEIGHT_SETS_HELP
    from gmmscape.experiments.overparam import DEFAULT_WEIGHT_SETS
    from gmmscape.landscape.starts import SCHEMES

    assert WEIGHT_SETS_HELP == " and ".join(
        ",".join(f"{w:g}" for w in s) for s in DEFAULT_WEIGHT_SETS
    )
    assert SCHEMES_HELP == ", ".join(SCHEMES)
    over = _help("overparam")
    assert "[default: 2,5,10]" in over and f"(default: {WEIGHT_SETS_HELP})" in over
    trap = _help("trap")
    assert "[default: 4,16,36,64,100]" in trap and "[default: 3,4,5,6,7,8,9,10]" in trap
    land = _help("landscape")
    assert "any of gaussian, uniform, data, kmeans++" in land


def test_k_is_spelled_the_same_in_fit_and_landscape():
    for name in ("fit", "landscape"):
        opts = {o for p in COMMAND.commands[name].params for o in getattr(p, "opts", [])}
        assert "-k" in opts, name


def test_separation_prints_its_thresholds_as_a_table(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from gmmscape import _files
    from gmmscape.landscape import plots, studies

    row = {"k": 2, "delta": 1.0, "n_points": 3, "n_minima": 1, "n_spurious": 0,
           "all_minima_non_overlapping": True, "max_error_minima": 0.1, "n_failed": 0}  # fmt: skip
    fake = SimpleNamespace(rows=[row], threshold={"2": 1.0, "3": None})

    monkeypatch.setattr(studies, "separation_study", lambda *a, **k: fake)
    monkeypatch.setattr(plots, "plot_separation", lambda res: None)
    monkeypatch.setattr(plots, "save", lambda fig, path: [path])
    monkeypatch.setattr(_files, "write_json", lambda res, path: path)
    res = CliRunner().invoke(app, ["separation", "--out", str(tmp_path)], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "threshold delta" in res.output and "none (not reached)" in res.output
    assert "{" not in res.output  # no raw dict


def test_sweep_with_nothing_to_run_says_so(tmp_path, monkeypatch):
    from gmmscape.experiments import registry
    from gmmscape.sweep.store import ResultsStore

    # a test-only type (tests/test_sweep_types.py): the message, not JAX, is under test
    monkeypatch.setitem(registry.MODULES, "sweep-test-square", "test_sweep_types")
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "one.toml"
    spec.write_text(
        '[sweep]\nname = "one"\nexperiment = "sweep-test-square"\nseeds = 1\n'
        "[grid]\nx = [1.0, 2.0]\n"
    )
    db = tmp_path / "r.db"
    runner = CliRunner()
    first = runner.invoke(app, ["sweep", "run", str(spec), "--db", str(db)])
    assert first.exit_code == 0, first.output
    with ResultsStore(db, readonly=True) as store:
        assert store.count() == 2
    again = runner.invoke(app, ["sweep", "run", str(spec), "--db", str(db)])
    assert again.exit_code == 0, again.output
    flat = " ".join(again.output.split())
    assert "Nothing to run: every cell is already in" in flat
    assert "Finished in" not in flat


def test_k_is_spelled_alike_in_fit_and_landscape():
    for name in ("fit", "landscape"):
        (cmd,) = [c for n, c in _commands(COMMAND) if n == name]
        (opt,) = [p for p in cmd.params if p.name == "k"]
        assert {"-k", "--k", "--components"} <= set(opt.opts), name


def test_fit_offers_every_covariance_type_of_the_estimator():
    from gmmscape.cli.fit import _COV
    from gmmscape.estimator._gaussian_mixture import COVARIANCE_TYPES

    assert _COV == COVARIANCE_TYPES
