"""Every ``python`` code block in README.md and docs/*.md runs, so the docs cannot rot.

The blocks of one file run in order in one namespace (a later block may use names an
earlier one defined), in a temporary working directory that links ``examples/``. A block
whose fence is ```` ```python no-run ```` is shown but not run (for commands that need a
cluster).
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks(page: Path) -> list[str]:
    return [body for info, body in FENCE.findall(page.read_text()) if "no-run" not in info.split()]


def test_pages_have_code():
    """The README and the guide carry runnable examples at all."""
    assert _blocks(ROOT / "README.md"), "README.md has no python block"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_code_blocks_run(page, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # pages refer to example files
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for i, code in enumerate(_blocks(page)):
        try:
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{page.name}, python block {i} failed: {exc!r}") from exc
