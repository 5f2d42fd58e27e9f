"""Reports from a results database: figures, tables, CSV and the specs, in one HTML page.

:func:`write_report` reads the stored rows (never reruns anything) and writes into a folder

- ``report.html``: one self-contained page (figures embedded as PNG), a section per
  experiment type with its figures, a table of its rows (parameters and the result's
  scalar values), its failed cells with their errors, and the text of every spec;
- ``<experiment>.csv``: every row of that type (done and failed), one column per
  parameter and per scalar result value, the full result as JSON, timing and provenance;
- ``<experiment>/<figure>.png`` and ``.svg``: each figure;
- ``manifest.json``: for each figure, the database, the query and the keys of the cells
  it was drawn from, so every figure can be traced to its rows.

Rows whose payload cannot be decoded (see :mod:`~gmmscape.sweep.store`) are listed in
a table of corrupt rows with their cell keys and the problem, counted in the manifest
(``rows_corrupt``, ``corrupt``), and left out of the figures, tables and CSV, which are
written from the other rows.

Figures come from each type's ``plot(rows)`` in the registry; a type that is not
registered in this installation, or whose plot raises, still gets its tables and CSV, and
the page says why its figures are missing.
"""

from __future__ import annotations

import csv
import html
import io
import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from gmmscape._files import write_bytes, write_json
from gmmscape.experiments.output import html_figure, html_table, save_figure, write_html
from gmmscape.sweep.store import ResultsStore, utc_now

#: Rows shown per table in the HTML page (the CSV files hold all of them).
MAX_HTML_ROWS = 500
#: Scalar result columns shown per table in the HTML page.
MAX_RESULT_COLUMNS = 12


@dataclass
class ReportManifest:
    """What a report was made from (written as ``manifest.json``).

    Attributes
    ----------
    database : str
    generated : str
        UTC time.
    experiments : dict
        Per experiment type: ``rows_done``, ``rows_failed``, ``rows_corrupt``, ``corrupt``
        (cell key, status and problem of each corrupt row), ``csv``, ``figures`` (file
        stem -> list of PNG/SVG paths), ``cell_keys`` (the done cells every figure was
        drawn from, in the order they were passed to ``plot``), ``notes``.
    specs : list of dict
        Name, hash, experiment and cell counts of every spec in the database.
    """

    database: str
    generated: str
    experiments: dict = field(default_factory=dict)
    specs: list = field(default_factory=list)


def _scalar(v) -> bool:
    return v is None or isinstance(v, bool | int | float | str)


def _csv_value(v):
    """A parameter as a CSV cell: scalars as they are, lists and dicts as JSON."""
    return v if _scalar(v) else json.dumps(v)


def _result_columns(rows: list[dict]) -> list[str]:
    cols: dict[str, None] = {}
    for r in rows:
        for k, v in (r["result"] or {}).items():
            if _scalar(v):
                cols.setdefault(k)
    return list(cols)


def _param_columns(rows: list[dict]) -> list[str]:
    cols: dict[str, None] = {}
    for r in rows:
        for k in r["params"]:
            cols.setdefault(k)
    return list(cols)


def _csv_text(rows: list[dict]) -> str:
    pcols, rcols = _param_columns(rows), _result_columns(rows)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "cell_key",
            "status",
            *pcols,
            *(f"result.{c}" for c in rcols),
            "result_json",
            "seconds",
            "version",
            "host",
            "worker",
            "started",
            "finished",
            "attempts",
            "spec_hash",
            "error",
            "warnings",
        ]
    )
    for r in rows:
        res = r["result"] or {}
        w.writerow(
            [
                r["cell_key"],
                r["status"],
                *(_csv_value(r["params"].get(c)) for c in pcols),
                *(res.get(c) for c in rcols),
                "" if r["result"] is None else json.dumps(r["result"]),
                r["seconds"],
                r["version"],
                r["host"],
                r["worker"],
                r["started"],
                r["finished"],
                r["attempts"],
                r["spec_hash"],
                r["error"] or "",
                json.dumps(r["warnings"]) if r["warnings"] else "",
            ]
        )
    return buf.getvalue()


def _caption(experiment: str, stem: str) -> str:
    """The caption the experiment type gives the figure ``stem``, or ``""``."""
    from gmmscape.experiments import registry

    try:
        return registry.get(experiment).captions.get(stem, "")
    except Exception:  # unregistered or broken types draw no figures anyway
        return ""


def _figures(experiment: str, done: list[dict], folder: Path, notes: list[str]) -> dict:
    """Draw the type's figures; returns stem -> [png path, svg path]."""
    from gmmscape.experiments import registry

    if not done:
        notes.append("no done rows, so no figures.")
        return {}
    if experiment not in registry.MODULES:
        notes.append(
            f"experiment type {experiment!r} is not registered in this installation; "
            "tables and CSV only."
        )
        return {}
    try:
        exp = registry.get(experiment)
    except Exception as exc:
        notes.append(f"could not load experiment type {experiment!r}: {exc}")
        return {}
    if exp.plot is None:
        notes.append("this experiment type draws no figures.")
        return {}
    try:
        figs = exp.plot([(r["params"], r["result"]) for r in done])
    except Exception as exc:
        notes.append(f"plot() raised {type(exc).__name__}: {exc}")
        notes.append(traceback.format_exc())
        return {}
    return {stem: save_figure(fig, folder / stem) for stem, fig in figs.items()}


def write_report(db: str | Path, out: str | Path) -> ReportManifest:
    """Write the HTML page, CSV files, figures and manifest of a results database.

    Parameters
    ----------
    db : str or Path
        The results database (opened read-only).
    out : str or Path
        Folder for the report (created if missing).

    Returns
    -------
    ReportManifest
        Also written to ``out/manifest.json``.

    Raises
    ------
    StoreError
        If ``db`` is missing or is not a gmmscape results database.
    """
    out = Path(out)
    db = Path(db)
    with ResultsStore(db, readonly=True) as store:
        experiments = store.experiments()
        all_rows = {e: store.rows(e) for e in experiments}
        corrupt_rows = store.corrupt_rows()
        statuses = store.spec_status()
        specs = store.specs()
    out.mkdir(parents=True, exist_ok=True)
    manifest = ReportManifest(database=str(db.resolve()), generated=utc_now())
    manifest.specs = [
        {
            "name": s.name,
            "spec_hash": s.spec_hash,
            "experiment": s.experiment,
            "cells": s.cells,
            "done": s.done,
            "failed": s.failed,
            "corrupt": s.corrupt,
            "remaining": s.remaining,
        }
        for s in statuses
    ]
    corrupt_by_exp: dict[str, list] = {}
    for r in corrupt_rows:
        corrupt_by_exp.setdefault(r["experiment"], []).append(r)
    for exp in corrupt_by_exp:
        if exp not in all_rows:  # the experiment name itself is damaged
            experiments.append(exp)
            all_rows[exp] = []
    parts = [
        f"<h1>Sweep report: {html.escape(db.name)}</h1>",
        f"<p class='small'>Database {html.escape(str(db.resolve()))}; generated "
        f"{manifest.generated}. Figures are drawn from the rows with status done; "
        "manifest.json lists the cell keys behind each figure.</p>",
        "<h2>Specs</h2>",
        html_table(
            ["spec", "hash", "experiment", "cells", "done", "failed", "corrupt", "remaining"],
            [
                [
                    s.name,
                    s.spec_hash[:12],
                    s.experiment,
                    s.cells,
                    s.done,
                    s.failed,
                    s.corrupt,
                    s.remaining,
                ]
                for s in statuses
            ],
        ),
    ]
    if corrupt_rows:
        parts.append(
            f"<p class='note'>{len(corrupt_rows)} stored rows cannot be decoded (damaged "
            "payloads) and are left out of every figure, table and CSV below; each is listed "
            "under its experiment. Rerunning the spec recomputes and replaces them.</p>"
        )
    for exp in experiments:
        rows = all_rows[exp]
        done = [r for r in rows if r["status"] == "done"]
        failed = [r for r in rows if r["status"] == "failed"]
        corrupt = corrupt_by_exp.get(exp, [])
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in exp)
        notes: list[str] = []
        figs = _figures(exp, done, out / safe, notes)
        csv_path = out / f"{safe}.csv"
        write_bytes(csv_path, _csv_text(rows).encode())
        manifest.experiments[exp] = {
            "rows_done": len(done),
            "rows_failed": len(failed),
            "rows_corrupt": len(corrupt),
            "corrupt": [
                {"cell_key": r["cell_key"], "status": r["status"], "problem": r["problem"]}
                for r in corrupt
            ],
            "csv": str(csv_path),
            "figures": {stem: [str(p) for p in paths] for stem, paths in figs.items()},
            "cell_keys": [r["cell_key"] for r in done],
            "query": f"SELECT * FROM cells WHERE experiment = '{exp}' AND status = 'done' "
            "ORDER BY id",
            "notes": notes,
        }
        parts.append(f"<h2>{html.escape(exp)}</h2>")
        bad = f", {len(corrupt)} corrupt" if corrupt else ""
        parts.append(
            f"<p>{len(done)} done, {len(failed)} failed{bad} rows. All readable rows: "
            f"<a href='{html.escape(csv_path.name)}'>{html.escape(csv_path.name)}</a>.</p>"
        )
        for note in notes:
            parts.append(f"<pre class='note'>{html.escape(note)}</pre>")
        warned = [r for r in rows if r["warnings"]]
        if warned:
            distinct = sorted({w for r in warned for w in r["warnings"]})
            listed = "".join(f"<li>{html.escape(w)}</li>" for w in distinct[:10])
            more = f"<li>... {len(distinct) - 10} more</li>" if len(distinct) > 10 else ""
            parts.append(
                f"<p>{len(warned)} rows raised warnings (column warnings of the CSV):</p>"
                f"<ul class='small'>{listed}{more}</ul>"
            )
        for stem, paths in figs.items():
            what = _caption(exp, stem) or f"Figure {stem}."
            caption = f"{what} Drawn from the {len(done)} done rows ({safe}/{stem}.svg)."
            parts.append(html_figure(paths[0], caption))
        if done:
            pcols = _param_columns(done)
            rcols = _result_columns(done)[:MAX_RESULT_COLUMNS]
            body = [
                [
                    r["cell_key"][:10],
                    *(r["params"].get(c) for c in pcols),
                    *(r["result"].get(c) for c in rcols),
                    r["seconds"],
                ]
                for r in done[:MAX_HTML_ROWS]
            ]
            shown = "" if len(done) <= MAX_HTML_ROWS else f" (first {MAX_HTML_ROWS})"
            parts.append(
                html_table(["cell", *pcols, *rcols, "cell seconds"], body, f"Done rows{shown}")
            )
        if failed:
            pcols = _param_columns(failed)
            body = [
                [
                    r["cell_key"][:10],
                    *(r["params"].get(c) for c in pcols),
                    r["attempts"],
                    r["error"],
                ]
                for r in failed[:MAX_HTML_ROWS]
            ]
            parts.append(html_table(["cell", *pcols, "attempts", "error"], body, "Failed rows"))
        if corrupt:
            body = [[r["cell_key"], r["status"], r["problem"]] for r in corrupt[:MAX_HTML_ROWS]]
            parts.append(
                html_table(
                    ["cell key", "status", "problem"],
                    body,
                    "Corrupt rows (left out of the figures, tables and CSV)",
                )
            )
    parts.append("<h2>Spec files</h2>")
    for s in specs:
        parts.append(
            f"<h3>{html.escape(s['name'])} <span class='small'>({html.escape(s['source'])}, "
            f"sha256 {s['spec_hash'][:12]}, first run {s['created']})</span></h3>"
        )
        parts.append(f"<pre>{html.escape(s['text'])}</pre>")
    write_html(out / "report.html", f"gmmscape sweep report: {db.name}", parts)
    write_json(manifest, out / "manifest.json")
    return manifest
