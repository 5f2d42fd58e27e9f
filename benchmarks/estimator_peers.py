"""Time per EM iteration of gmmx and pomegranate next to scikit-learn and gmmscape.

The issue for the estimator asks for a speed benchmark against scikit-learn "and gmmx and
pomegranate where they install". This script measures all four on the headline cell of
``estimator_speed.py`` (N = 1e6, d = 16, k = 16), for covariance "full" and "diag", on the
same data and from the same start: ``make_data`` of ``estimator_speed.py`` gives the data,
the weights and the means; every covariance starts at the identity.

Each library is driven by a small adapter that runs exactly ``iters`` EM iterations (no
early stopping) and returns the wall time and the final mean log-likelihood per sample
(the E-step value of the last iteration, scikit-learn's ``lower_bound_`` convention):

* scikit-learn and gmmscape: ``GaussianMixture(max_iter=iters, tol=0.0,
  init_params="random_from_data", weights_init, means_init, precisions_init=I,
  random_state=0).fit(X)`` (the same keywords as ``run_cell`` in estimator_speed.py);
  ``lower_bound_``.
* gmmx: ``EMFitter(max_iter=iters, tol=-inf, reg_covar=1e-6).fit(x, gmm)`` with ``gmm =
  GaussianMixtureModelJax.from_squeezed(means, covariances=I, weights, covariance_type)``;
  ``result.log_likelihood``. gmmx accepts float32 only, so it runs at float32.
* pomegranate: ``GeneralMixtureModel([Normal(means=m_j, covs=I, covariance_type)...],
  priors=w, max_iter=iters, tol=-inf).fit(X)`` on a torch tensor; the log-likelihood is
  the value its ``summarize`` (the E-step) returns in the last iteration, divided by N.
  torch's OpenMP threads slow down by orders of magnitude when other jobs keep the cores
  busy, so pomegranate is measured both at torch's default thread count and at 1 thread.

The time per iteration is measured as in ``per_iteration`` of estimator_speed.py: (time of
a run with 1 + r iterations - time of a run with 1 iteration) / r, so setup, data
conversion and (after a warm-up run of both lengths) JIT compilation are not counted. The
pair of runs is repeated ``--reps`` times, interleaved, keeping the minimum of each. r is
chosen per library as about 4 s of its work (1 s with ``--quick``; 1 to 50 iterations)
from a warm 1-iteration run. gmmscape is also run at float32, so that gmmx (float32 only)
is compared at the same precision; the speed-up column is gmmscape's time at the same
covariance and dtype over the library's time. Each row also records its log-likelihood
after its own 1 + r iterations; the log-likelihood column is the relative difference from
scikit-learn's (float64, same covariance) after scikit-learn's 1 + r iterations (a library
timed with another r is run once more, untimed, for it): all start from the same
parameters, so equal EM agrees closely (pomegranate adds no ``reg_covar``).

The machine is shared: ``os.getloadavg()`` is recorded with every row.

Run: ``.venv/bin/python benchmarks/estimator_peers.py`` (headline cell, a few minutes) or
``--quick`` (N = 2e4, d = 8, k = 4, seconds); ``--reps R`` (default 3); ``--cell N,d,k``
for another cell of the grid. Results: ``benchmarks/results/estimator_peers.{json,md}``
(``estimator_peers_quick.*`` with ``--quick``, ``estimator_peers_N1e05_d64_k64.*`` with
``--cell 1e5,64,64``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from estimator_speed import HEADLINE, fit_time, make_data
from gmmscape._files import write_bytes, write_json

RESULTS = Path(__file__).resolve().parent / "results"
QUICK = (20_000, 8, 4)
COVARIANCES = ("full", "diag")
BUDGET_S = 4.0  # seconds of a library's work per timed difference (1 s with --quick)
MAX_R = 50


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def identity(d, k, ct):
    """Identity covariances (or precisions) in the library's shape for ``ct``."""
    return np.tile(np.eye(d), (k, 1, 1)) if ct == "full" else np.ones((k, d))


def sk_adapter(cls, X, start, ct):
    """scikit-learn or gmmscape: the keywords of ``run_cell`` in estimator_speed.py."""
    d = X.shape[1]
    k = len(start["weights_init"])
    kw = dict(
        n_components=k,
        covariance_type=ct,
        tol=0.0,
        init_params="random_from_data",
        precisions_init=identity(d, k, ct),
        random_state=0,
        **start,
    )

    def run(iters):
        t, gm = fit_time(cls, X, kw, iters)
        return t, float(gm.lower_bound_)

    return run


def gmmx_adapter(X, start, ct):
    """gmmx (float32 only): ``EMFitter.fit`` from a model built with ``from_squeezed``."""
    import jax
    import jax.numpy as jnp
    from gmmx import EMFitter, GaussianMixtureModelJax

    d = X.shape[1]
    k = len(start["weights_init"])
    # importing gmmscape turns on JAX's 64-bit mode, under which gmmx's own constants
    # (jnp.eye, jnp.inf) become float64 and fail its float32 checks: run it in 32-bit mode
    with jax.enable_x64(False):
        x = jnp.asarray(X, jnp.float32)
        gmm = GaussianMixtureModelJax.from_squeezed(
            means=jnp.asarray(start["means_init"], jnp.float32),
            covariances=jnp.asarray(identity(d, k, ct), jnp.float32),
            weights=jnp.asarray(start["weights_init"], jnp.float32),
            covariance_type=ct,
        )

    def run(iters):
        # tol = -inf: its while-loop condition |change| >= tol never stops early
        fitter = EMFitter(max_iter=iters, tol=-np.inf, reg_covar=1e-6)
        with jax.enable_x64(False):
            t0 = time.perf_counter()
            # its jitted fit calls block_until_ready while tracing, where it does nothing
            res = jax.block_until_ready(fitter.fit(x, gmm))
            t = time.perf_counter() - t0
        assert int(res.n_iter) == iters
        return t, float(res.log_likelihood)

    return run


def pomegranate_adapter(X, start, ct, threads=None):
    """pomegranate 1.x: ``GeneralMixtureModel`` of ``Normal`` components, in X's dtype.

    ``threads``: torch's intra-op thread count during the run (None: torch's default).
    """
    import torch
    from pomegranate.distributions import Normal
    from pomegranate.gmm import GeneralMixtureModel

    n, d = X.shape
    x = torch.from_numpy(np.ascontiguousarray(X))
    cov = np.eye(d) if ct == "full" else np.ones(d)

    def run(iters):
        comps = [
            Normal(
                means=torch.tensor(m, dtype=x.dtype),
                covs=torch.tensor(cov, dtype=x.dtype),
                covariance_type=ct,
            )
            for m in start["means_init"]
        ]
        model = GeneralMixtureModel(
            comps,
            priors=torch.tensor(start["weights_init"], dtype=x.dtype),
            max_iter=iters,
            tol=-np.inf,  # its fit stops when the improvement < tol: never
        )
        logps = []
        summarize = model.summarize

        def recording(*a, **kw):  # the E-step's log-likelihood, which fit() discards
            logps.append(summarize(*a, **kw))
            return logps[-1]

        model.summarize = recording
        default = torch.get_num_threads()
        torch.set_num_threads(threads or default)
        try:
            t0 = time.perf_counter()
            model.fit(x)
            t = time.perf_counter() - t0
        finally:
            torch.set_num_threads(default)
        assert len(logps) == iters
        assert model.distributions[0].means.dtype == x.dtype
        return t, float(logps[-1]) / n

    return run


def per_iter(run, reps, budget=BUDGET_S):
    """Seconds per iteration of ``run`` as in estimator_speed.per_iteration.

    Returns (s/iter, r, log-likelihood after 1 + r iterations).
    """
    run(1)  # warm-up (JIT compilation of the 1-iteration program)
    t_one = run(1)[0]
    r = int(np.clip(round(budget / max(t_one, 1e-3)), 1, MAX_R))
    run(1 + r)  # warm-up of the (1 + r)-iteration program
    t0s, t1s, ll = [], [], float("nan")
    for _ in range(reps):  # interleaved, so both see the same load; minimum of each
        t0s.append(run(1)[0])
        t1, ll = run(1 + r)
        t1s.append(t1)
    diff = min(t1s) - min(t0s)
    return (diff / r if diff > 0 else float("nan")), r, ll


def measure(X64, start, reps, budget=BUDGET_S, save=lambda rows: None):
    """All rows of one cell: (library, covariance, dtype) in a fixed order.

    ``save(rows)`` is called after every row with the rows so far.
    """
    import torch
    from sklearn.mixture import GaussianMixture as SkGM

    from gmmscape import GaussianMixture

    X32 = X64.astype(np.float32)
    nt = torch.get_num_threads()
    pom = "pomegranate"
    libs = [  # (distribution, label, dtype, adapter factory)
        ("scikit-learn", "scikit-learn", "float64", lambda ct: sk_adapter(SkGM, X64, start, ct)),
        ("gmmscape", "gmmscape", "float64", lambda ct: sk_adapter(GaussianMixture, X64, start, ct)),
        ("gmmscape", "gmmscape", "float32", lambda ct: sk_adapter(GaussianMixture, X32, start, ct)),
        ("gmmx", "gmmx", "float32", lambda ct: gmmx_adapter(X32, start, ct)),
        # torch's OpenMP threads degrade badly when the cores are busy with other jobs
        # (its spin-waiting), so pomegranate is run at torch's default and at 1 thread
        (
            pom,
            f"{pom} ({nt} torch threads)",
            "float64",
            lambda ct: pomegranate_adapter(X64, start, ct),
        ),
        (
            pom,
            f"{pom} (1 torch thread)",
            "float64",
            lambda ct: pomegranate_adapter(X64, start, ct, 1),
        ),
    ]
    notes = {
        "gmmx": "float32 only (it checks that every array is float32); run with JAX's "
        "64-bit mode switched off around it",
        "pomegranate": "float64 parameters and data, but it keeps the mixture weights' "
        "sufficient statistic in float32 and adds no reg_covar",
    }
    rows = []
    for ct in COVARIANCES:
        ref = None  # scikit-learn's row: its 1 + r is where all log-likelihoods are compared
        for lib, label, dt, make in libs:
            row = dict(library=lib, label=label, version=version(lib), covariance_type=ct, dtype=dt)
            if lib in notes:
                row["note"] = notes[lib]
            if row["version"] == "not installed":
                rows.append(dict(row, status="not installed"))
                continue
            load0 = os.getloadavg()
            t0 = time.perf_counter()
            try:
                run = make(ct)
                s, r, ll = per_iter(run, reps, budget)
                if ref is None:
                    ref = dict(iterations=r, loglik=ll)
                # the comparison needs scikit-learn's number of iterations (untimed run)
                ll_cmp = ll if r == ref["iterations"] else run(1 + ref["iterations"])[1]
            except Exception as e:  # report a library that fails instead of stopping
                rows.append(dict(row, status=f"failed: {type(e).__name__}: {e}"))
                print(f"{label} {ct} {dt}: {rows[-1]['status']}", flush=True)
                save(rows)
                continue
            row.update(
                status="measured",
                s_per_iter=s,
                iterations=r,
                repetitions=reps,
                loglik=ll,
                loglik_at_sklearn_iterations=ll_cmp,
                sklearn_iterations=1 + ref["iterations"],
                loglik_rel_diff=abs(ll_cmp - ref["loglik"]) / abs(ref["loglik"]),
                loadavg_before=list(load0),
                loadavg_after=list(os.getloadavg()),
                wall_s=time.perf_counter() - t0,
            )
            rows.append(row)
            print(
                f"{label} {ct} {dt}: {s:.4f} s/iter (r={r}), loglik after 1+r {ll:.8f}, "
                f"rel. diff vs scikit-learn {row['loglik_rel_diff']:.1e}",
                flush=True,
            )
            save(rows)
    return rows


def add_speedups(rows: list[dict]) -> list[dict]:
    """Set each measured peer row's ``speedup_of_gmmscape`` (its time over gmmscape's)."""
    for row in rows:  # gmmscape's time at the same covariance and dtype over the row's
        ours = [
            x
            for x in rows
            if x["library"] == "gmmscape"
            and x["status"] == "measured"
            and (x["covariance_type"], x["dtype"]) == (row["covariance_type"], row["dtype"])
        ]
        if row["status"] == "measured" and row["library"] != "gmmscape" and ours:
            row["speedup_of_gmmscape"] = row["s_per_iter"] / ours[0]["s_per_iter"]
    return rows


def to_markdown(res: dict) -> str:
    m = res["machine"]
    n, d, k = res["cell"]
    lines = [
        "# gmmscape.GaussianMixture vs scikit-learn, gmmx and pomegranate: time per EM iteration",
        "",
        f"N = {n:.0e}, d = {d}, k = {k}; same data and start (identity covariances) for all; "
        f"{res['reps']} interleaved repetitions, minimum of each. Machine: {m['cpus']} CPUs, "
        f"{m['platform']}, Python {m['python']}, numpy {m['numpy']}, jax {m['jax']}, "
        f"torch {m['torch']}.",
        "",
        "| library | version | covariance | dtype | s/iter | speed-up of gmmscape over it | "
        "loglik rel. diff vs scikit-learn | load (1 min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        head = f"| {r['label']} | {r['version']} | {r['covariance_type']} | {r['dtype']} |"
        if r["status"] != "measured":
            lines.append(f"{head} {r['status']} | | | |")
            continue
        sp = r.get("speedup_of_gmmscape")
        sp = "-" if sp is None else f"**{sp:.1f}x**"
        lines.append(
            f"{head} {r['s_per_iter']:.4f} | {sp} | {r['loglik_rel_diff']:.1e} | "
            f"{r['loadavg_before'][0]:.1f} |"
        )
    lines += [
        "",
        "s/iter: (time of 1 + r iterations - time of 1 iteration) / r. The speed-up is "
        "gmmscape's time at the same covariance and dtype over the library's. The "
        "log-likelihood (mean per sample, E-step of the last iteration) is compared with "
        "scikit-learn's at float64 after the same number of iterations (scikit-learn's 1 + r).",
        "",
    ]
    notes = {r["library"]: r["note"] for r in res["rows"] if r.get("note")}
    lines += [f"- {lib}: {note}." for lib, note in notes.items()]
    lines += ["", f"Total run time {res['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="N=2e4, d=8, k=4: seconds")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3)")
    ap.add_argument(
        "--cell",
        default=None,
        metavar="N,d,k",
        help="another cell of the estimator_speed grid, e.g. 1e5,64,64 (results get a suffix)",
    )
    args = ap.parse_args()
    import jax

    t_start = time.perf_counter()
    n, d, k = QUICK if args.quick else HEADLINE
    if args.cell is not None:
        try:
            n, d, k = (int(float(v)) for v in args.cell.split(","))
        except ValueError:
            ap.error(f"--cell must be N,d,k (three numbers), got {args.cell!r}")
    X, start = make_data(n, d, k, np.float64)
    res = {
        "cell": [n, d, k],
        "reps": args.reps,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "jax": jax.__version__,
            "torch": version("torch"),
            "scikit-learn": version("scikit-learn"),
            "gmmscape": version("gmmscape"),
            "gmmx": version("gmmx"),
            "pomegranate": version("pomegranate"),
        },
    }
    name = "estimator_peers_quick" if args.quick else "estimator_peers"
    name += "" if args.cell is None else f"_N{n:.0e}_d{d}_k{k}".replace("+", "")

    def save(rows):  # after every row, so a stopped run keeps what it measured
        res["rows"] = add_speedups(rows)
        res["seconds"] = time.perf_counter() - t_start
        write_json(res, RESULTS / f"{name}.json")
        write_bytes(RESULTS / f"{name}.md", to_markdown(res).encode())

    measure(X, start, args.reps, 1.0 if args.quick else BUDGET_S, save)
    print(to_markdown(res))


if __name__ == "__main__":
    main()
