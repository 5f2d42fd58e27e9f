"""Strings from users and files are printed as written, never read as rich markup."""

import json

import pytest
from rich.errors import MarkupError
from typer.testing import CliRunner

from gmmscape.cli import app
from test_sweep_runner import test_types as _register_test_types  # noqa: F401  (autouse)

NASTY = ("bad[/b] markup", "[link=http://evil.example]click[/link]", "[bold red]x[/]", "a\\[b]")


def invoke(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert not isinstance(res.exception, MarkupError), res.exception
    return res


def flat(text):
    return " ".join(text.split())


def write_spec(tmp_path, name):
    path = tmp_path / "s.toml"
    path.write_text(
        "[sweep]\n"
        f"name = {json.dumps(name)}\n"
        'experiment = "sweep-test-square"\n'
        "seeds = 1\n"
        "[grid]\n"
        "x = [1.0, 2.0]\n"
    )
    return path


@pytest.mark.parametrize("name", NASTY)
def test_spec_names_are_printed_literally_by_run_status_and_report(tmp_path, name):
    db = tmp_path / "r.db"
    res = invoke("sweep", "run", write_spec(tmp_path, name), "--db", db)
    assert res.exit_code == 0, res.output
    assert name in res.output
    res = invoke("sweep", "status", db)
    assert res.exit_code == 0, res.output
    assert name in res.output
    assert "\x1b]8;" not in res.output  # no terminal hyperlink
    res = invoke("report", db, "--out", tmp_path / "rep")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    "args",
    [
        ("sweep", "status", "{d}/a[/x]b.db"),
        ("report", "{d}/a[/x]b.db", "--out", "{d}/rep"),
        ("sweep", "run", "{d}/spec[/x].toml", "--db", "{d}/r.db"),
        ("fit", "{d}/data[/x].csv", "-k", "2"),
        ("predict", "{d}/model[/x].json", "{d}/data[/x].csv"),
    ],
    ids=["status", "report", "run", "fit", "predict"],
)
def test_paths_with_markup_are_named_literally_in_errors(tmp_path, args):
    args = [a.format(d=tmp_path) for a in args]
    res = invoke(*args)
    assert res.exit_code == 2, res.output
    assert "[/x]" in flat(res.output).replace(" ", "")
    assert "Traceback" not in res.output
