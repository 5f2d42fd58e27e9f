"""Where a fresh process spends the time of gmmscape.select on faithful (14 x 9), by JAX's
monitoring events: tracing, lowering to StableHLO, the persistent-cache key and read.

Run it twice with the same ``GMMSCAPE_CACHE_DIR`` (the first fills the cache, the second
is the warm figure); ``GMMSCAPE_PROGRAM_STORE=0`` switches the store of exported programs
off; ``cprofile`` as the first argument prints a cProfile of the select call. Prints JSON:
JAX's import, the select wall and CPU seconds (JAX already imported), the same select a
second time in the process, and the summed durations and counts of the events.

Run: ``GMMSCAPE_CACHE_DIR=/tmp/c .venv/bin/python benchmarks/load_profile.py [cprofile]``
(from the repository root).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

FAITHFUL = Path(__file__).resolve().parents[1] / "tests/fixtures/mclust/faithful_select.json"


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    import numpy as np

    X = np.asarray(json.loads(FAITHFUL.read_text())["X"], float)
    t0 = time.perf_counter()
    import jax
    import jax.monitoring as mon

    t_jax = time.perf_counter() - t0
    dur, cnt = defaultdict(float), defaultdict(int)

    def on_duration(name, secs, **kw):
        dur[name] += secs
        cnt[name] += 1

    def on_event(name, **kw):
        cnt[name] += 1

    mon.register_event_duration_secs_listener(on_duration)
    mon.register_event_listener(on_event)
    import gmmscape

    jax.devices()
    profile = len(sys.argv) > 1 and sys.argv[1] == "cprofile"
    if profile:
        import cProfile

        pr = cProfile.Profile()
        pr.enable()
    ts, c0 = time.perf_counter(), cpu()
    res = gmmscape.select(X, range(1, 10))
    t1, c1 = time.perf_counter(), cpu()
    if profile:
        import pstats

        pr.disable()
        pstats.Stats(pr).sort_stats("cumulative").print_stats(45)
    gmmscape.select(X, range(1, 10))
    out = {
        "import_jax_s": t_jax,
        "select_wall_s": t1 - ts,
        "select_cpu_s": c1 - c0,
        "select_again_s": time.perf_counter() - t1,
        "best": [res.best_model, res.best_k],
        "durations_s": {k: round(v, 3) for k, v in dur.items()},
        "counts": dict(cnt),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
