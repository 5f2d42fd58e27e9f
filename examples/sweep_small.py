"""Sweeps: run a small spec into a results database, resume it, and write the report.

Runs examples/sweeps/stream-error.toml (a finite-sample study, under a minute) into
DB, runs it again (every cell is skipped: nothing is lost or repeated), and writes the
HTML report (docs/sweeps.md).

    python examples/sweep_small.py [--db results.db] [--out DIR]
"""

import argparse
from pathlib import Path

from gmmscape.sweep import ResultsStore, load_spec, run_sweep
from gmmscape.sweep.report import write_report

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--db", type=Path, default=Path("example-output/results.db"))
parser.add_argument("--out", type=Path, default=Path("example-output/report"))
parser.add_argument("--small", action="store_true", help="(the spec is small already)")
args = parser.parse_args()

spec = load_spec(Path(__file__).parent / "sweeps" / "stream-error.toml")
args.db.parent.mkdir(parents=True, exist_ok=True)
with ResultsStore(args.db) as store:
    first = run_sweep([spec], store, workers=1)
    again = run_sweep([spec], store, workers=1)
print(f"first run: {first.done} done, {first.failed} failed; rerun skipped {again.skipped_done}")
manifest = write_report(args.db, args.out)
print("report:", args.out / "report.html", "figures:", manifest.experiments)
