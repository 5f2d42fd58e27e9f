"""Run a sweep's cells in worker processes or on a Dask cluster; one process writes rows.

Three back-ends run the same cells through the same function, :func:`execute_cell`, and
send each outcome back to the parent, which writes it to the :class:`ResultsStore` in its
own transaction as soon as it arrives:

``workers=1``
    In this process, one cell after another.
``workers=N``
    A ``concurrent.futures.ProcessPoolExecutor`` with the ``spawn`` start method (JAX does
    not survive ``fork``). At most ``2 N`` cells are in flight, so an interruption loses
    little. A worker that dies (killed, out of memory, a crash in native code) breaks the
    pool: a fresh pool takes over and the cells that were in flight run again one at a
    time, so the cell that kills its worker is found and stored as failed while the others
    are stored as usual.
``scheduler="tcp://HOST:PORT"`` or ``dask_local=N``
    A ``distributed.Client`` on an existing Dask cluster, or on a ``LocalCluster`` of N
    single-threaded worker processes started for the sweep. Cells are Dask tasks; their
    outcomes come back to the client through ``as_completed``. The workers need the same
    gmmscape (and the modules of the experiment types) installed.

Several runs may share one database (two terminals, two batch jobs): each registers
itself in the store, and claims every cell in a write transaction just before it hands
the cell to a worker (:meth:`ResultsStore.claim`), so no cell is computed by two runs. A
cell that another live run has claimed, or stored since this run planned, is skipped and
counted (``claimed_elsewhere``, ``stored_elsewhere``); the summary says what this run did
and what it left to others. A run killed with ``kill -9`` leaves claims that the next run
takes over (its process is gone, or its heartbeat stops).

A cell whose stored row is corrupt (see :mod:`~gmmscape.sweep.store`) is computed again
and its row replaced.

A cell that raises is an outcome like any other (``failed``, with its error and
traceback) and never stops the sweep. ``KeyboardInterrupt`` (Ctrl-C; the CLI turns SIGTERM
into one too) stops the sweep: queued cells are cancelled, running ones abandoned, nothing
partial is written, and :class:`SweepSummary` says what was done; rerunning resumes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gmmscape.sweep.spec import Cell, Spec
from gmmscape.sweep.store import Outcome, ResultsStore, encode_result, utc_now

#: Cells in flight per local worker process.
IN_FLIGHT_PER_WORKER = 2
#: Seconds between refreshes of a Dask cluster's thread count (it may scale).
DASK_REFRESH_S = 5.0


@dataclass
class SweepSummary:
    """What one call of :func:`run_sweep` did.

    Attributes
    ----------
    total : int
        Cells in the specs (counted once when specs share cells).
    skipped_done : int
        Cells that already had a ``done`` row.
    skipped_failed : int
        Cells that had a ``failed`` row and were not retried.
    corrupt : int
        Cells of ``to_run`` whose stored row was corrupt (they are recomputed).
    to_run : int
        Cells this call set out to run.
    done, failed : int
        Cells this call computed and stored as done or failed.
    claimed_elsewhere : int
        Cells of ``to_run`` left to another live run on the same database, which had
        claimed them first.
    stored_elsewhere : int
        Cells of ``to_run`` that another run stored after this one planned (this run did
        not compute them, or computed them and found the row already written).
    interrupted : bool
        True if the sweep was stopped (Ctrl-C) before every cell ran.
    seconds : float
    backend : str
        ``"in-process"``, ``"processes (N)"`` or ``"dask (ADDRESS)"``.
    failures : list of (dict, str)
        Params and error of the cells that failed in this call (at most 20).
    """

    total: int = 0
    skipped_done: int = 0
    skipped_failed: int = 0
    corrupt: int = 0
    to_run: int = 0
    done: int = 0
    failed: int = 0
    claimed_elsewhere: int = 0
    stored_elsewhere: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    backend: str = ""
    failures: list = field(default_factory=list)

    @property
    def remaining(self) -> int:
        """Cells of ``to_run`` that nobody stored: not run by this call, not left to others."""
        return (
            self.to_run - self.done - self.failed - self.claimed_elsewhere - self.stored_elsewhere
        )


def _json_default(obj: Any):
    import numpy as np  # only for results that hold arrays; keeps the runner's import light

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "__array__"):
        return np.asarray(obj).tolist()
    raise TypeError(f"result holds a {type(obj).__name__}, which is not JSON-serializable")


#: Distinct warnings stored per cell.
MAX_WARNINGS = 20


def _warning_list(caught) -> str | None:
    """Distinct ``"Category: message"`` texts of recorded warnings, as JSON, or None."""
    seen: dict[str, None] = {}
    for w in caught or ():
        seen.setdefault(f"{w.category.__name__}: {w.message}")
    return json.dumps(list(seen)[:MAX_WARNINGS]) if seen else None


def load_type(module: str, name: str):
    """The experiment type ``name`` from the ``SWEEP_EXPERIMENTS`` of ``module``.

    Workers resolve types this way, so a type works in any process that can import its
    module, also when it was registered at run time in the parent.

    Parameters
    ----------
    module : str
        Dotted module name.
    name : str

    Returns
    -------
    gmmscape.experiments.registry.ExperimentType
    """
    import importlib

    mod = importlib.import_module(module)
    for exp in getattr(mod, "SWEEP_EXPERIMENTS", ()):
        if exp.name == name:
            return exp
    raise ValueError(f"module {module} does not define experiment type {name!r}.")


def execute_cell(module: str, experiment: str, params: dict) -> Outcome:
    """Run one cell and capture its result or its error; never raises ``Exception``.

    Parameters
    ----------
    module : str
        The module defining the experiment type.
    experiment : str
        The type's name.
    params : dict
        The cell's validated parameters.

    Returns
    -------
    Outcome
        ``done`` with the result as JSON, or ``failed`` with the error and traceback
        (also when the result is not a JSON-serializable dict); either way with the
        distinct warnings the cell raised (they are recorded, not printed).
    """
    import gmmscape

    started = utc_now()
    t0 = time.perf_counter()
    result = error = tb = nonfinite = None
    caught: list = []
    try:
        exp = load_type(module, experiment)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = exp.run(exp.params.model_validate(params))
        if not isinstance(value, dict):
            raise TypeError(f"run() returned a {type(value).__name__}, expected a dict")
        plain = json.loads(json.dumps(value, default=_json_default))
        result, nonfinite = encode_result(plain)
        status = "done"
    except Exception as exc:
        status = "failed"
        error = f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exc()
    worker = f"pid {os.getpid()}"
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        pass
    return Outcome(
        status=status,
        result=result,
        error=error,
        traceback=tb,
        seconds=time.perf_counter() - t0,
        version=gmmscape.__version__,
        host=socket.gethostname(),
        worker=worker,
        started=started,
        finished=utc_now(),
        nonfinite=nonfinite,
        warnings=_warning_list(caught),
    )


def _crash_outcome(message: str) -> Outcome:
    import gmmscape

    now = utc_now()
    return Outcome(
        status="failed",
        result=None,
        error=message,
        traceback=None,
        seconds=float("nan"),
        version=gmmscape.__version__,
        host=socket.gethostname(),
        worker="",
        started=now,
        finished=now,
    )


#: Seconds between a local worker's checks that the sweep's process is still alive.
PARENT_CHECK_S = 1.0


def _init_worker(parent: int) -> None:
    """Worker initializer: ignore Ctrl-C and exit when the sweep's process is gone.

    Ctrl-C is for the parent, which stops the workers itself. If the parent is killed
    (``kill -9``, out of memory) the worker would otherwise live on as an orphan.
    """
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="gmmscape-parent-watch").start()


@dataclass(frozen=True)
class _Task:
    cell: Cell
    spec_hash: str
    module: str
    expected: tuple | None = None  # (status, attempts) of the row seen when planning
    replace: bool = False  # the row is corrupt: overwrite it


#: Cells claimed per transaction by local worker processes and Dask (one per cell in
#: process: a second run then takes every cell this one has not started).
CLAIM_CHUNK = 8


class _Claimer:
    """Hands out the planned tasks that this run could claim, in order."""

    def __init__(self, store: ResultsStore, tasks, summary: SweepSummary, chunk: int, on_skip):
        self.store, self.summary, self.chunk, self.on_skip = store, summary, chunk, on_skip
        self.queue: deque = deque(tasks)
        self.ready: deque = deque()

    def __bool__(self) -> bool:
        return bool(self.ready or self.queue)

    def pop(self) -> _Task | None:
        """The next claimed task, or None when none is left."""
        while not self.ready and self.queue:
            batch = [self.queue.popleft() for _ in range(min(self.chunk, len(self.queue)))]
            got = self.store.claim(
                [t.cell for t in batch],
                {(t.cell.experiment, t.cell.key): t.expected for t in batch},
            )
            for t in batch:
                what = got[(t.cell.experiment, t.cell.key)]
                if what == "claimed":
                    self.ready.append(t)
                    continue
                setattr(self.summary, what, getattr(self.summary, what) + 1)
                if self.on_skip is not None:
                    self.on_skip(t.cell, what)
        return self.ready.popleft() if self.ready else None


def plan(specs: Sequence[Spec], store: ResultsStore, retry_failed: bool = False):
    """The cells of ``specs`` that still have to run, and counts of those skipped.

    Parameters
    ----------
    specs : sequence of Spec
    store : ResultsStore
    retry_failed : bool, default False
        Include cells stored as failed.

    Returns
    -------
    tasks : list
        One entry per cell to run, in spec order; a cell shared by specs appears once.
        Cells with a corrupt row are run again.
    summary : SweepSummary
        With ``total``, ``skipped_done``, ``skipped_failed``, ``corrupt`` and ``to_run``
        filled in.
    """
    from gmmscape.experiments import registry

    summary = SweepSummary()
    tasks, seen = [], set()
    for spec in specs:
        module = registry.MODULES[spec.experiment]
        status = store.statuses(spec.experiment)
        versions = store.row_versions(spec.experiment)
        for cell in spec.cells:
            if (cell.experiment, cell.key) in seen:
                continue
            seen.add((cell.experiment, cell.key))
            summary.total += 1
            st = status.get(cell.key)
            if st == "done":
                summary.skipped_done += 1
            elif st == "failed" and not retry_failed:
                summary.skipped_failed += 1
            else:
                summary.corrupt += st == "corrupt"
                expected = versions.get(cell.key)
                tasks.append(_Task(cell, spec.hash, module, expected, st == "corrupt"))
    summary.to_run = len(tasks)
    return tasks, summary


def run_sweep(
    specs: Sequence[Spec],
    store: ResultsStore,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    dask_local: int | None = None,
    retry_failed: bool = False,
    on_plan: Callable[[SweepSummary], None] | None = None,
    on_result: Callable[[Cell, Outcome], None] | None = None,
    on_skip: Callable[[Cell, str], None] | None = None,
) -> SweepSummary:
    """Run every cell of ``specs`` that has no row yet and store each outcome as it comes.

    Parameters
    ----------
    specs : sequence of Spec
        Validated specs (see :func:`gmmscape.sweep.spec.load_spec`).
    store : ResultsStore
        The results database (writable). Other runs may write to it at the same time;
        this call registers as a run and claims each cell before computing it.
    workers : int, default 1
        Local worker processes (``spawn``); 1 runs the cells in this process.
    scheduler : str, optional
        Address of an existing Dask scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    dask_local : int, optional
        Start a Dask ``LocalCluster`` with this many single-threaded worker processes.
    retry_failed : bool, default False
        Run cells stored as failed again (their row is replaced by the new outcome).
    on_plan : callable, optional
        Called once with the summary's counts before any cell runs.
    on_result : callable, optional
        Called with each ``(cell, outcome)`` after its row is stored.
    on_skip : callable, optional
        Called with ``(cell, reason)`` for each planned cell this call leaves to another
        run; ``reason`` is ``"claimed_elsewhere"`` or ``"stored_elsewhere"``.

    Returns
    -------
    SweepSummary

    Raises
    ------
    ValueError
        If ``workers`` < 1 or ``dask_local`` < 1, or both ``scheduler`` and ``dask_local``
        are given.
    """
    from gmmscape._validation import check_positive_int

    workers = check_positive_int(workers, "workers")
    if dask_local is not None:
        dask_local = check_positive_int(dask_local, "dask_local")
    if scheduler is not None and dask_local is not None:
        raise ValueError("give either scheduler (an existing cluster) or dask_local, not both.")
    for spec in specs:
        store.add_spec(spec)
    tasks, summary = plan(specs, store, retry_failed)
    if on_plan is not None:
        on_plan(summary)
    t0 = time.perf_counter()

    def write(task: _Task, outcome: Outcome) -> None:
        if not store.record(task.cell, outcome, task.spec_hash, replace=task.replace):
            # another run stored a done row after all (its claim had gone stale)
            summary.stored_elsewhere += 1
            if on_skip is not None:
                on_skip(task.cell, "stored_elsewhere")
            return
        if outcome.status == "done":
            summary.done += 1
        else:
            summary.failed += 1
            if len(summary.failures) < 20:
                summary.failures.append((task.cell.params, outcome.error))
        if on_result is not None:
            on_result(task.cell, outcome)

    try:
        if not tasks:
            summary.backend = "nothing to run"
        else:
            store.begin_run()
            try:
                if scheduler is not None or dask_local is not None:
                    claimer = _Claimer(store, tasks, summary, CLAIM_CHUNK, on_skip)
                    _run_dask(claimer, write, summary, scheduler, dask_local)
                elif workers == 1:
                    summary.backend = "in-process"
                    claimer = _Claimer(store, tasks, summary, 1, on_skip)
                    while (task := claimer.pop()) is not None:
                        c = task.cell
                        write(task, execute_cell(task.module, c.experiment, c.params))
                else:
                    claimer = _Claimer(store, tasks, summary, CLAIM_CHUNK, on_skip)
                    _run_processes(claimer, write, summary, workers)
            finally:
                store.end_run()
    except KeyboardInterrupt:
        summary.interrupted = True
    summary.seconds = time.perf_counter() - t0
    return summary


def _terminate(pool) -> None:
    """Stop a process pool now: cancel queued cells and end running workers."""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    # before shutdown(), which forgets the processes; private, but stable since 3.2
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)


def _run_processes(claimer: _Claimer, write, summary: SweepSummary, workers: int) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    summary.backend = f"processes ({workers})"
    ctx = multiprocessing.get_context("spawn")
    # cells in flight when a worker died: each runs again alone, so the one that kills
    # its worker is found and stored as failed, and the others are not blamed
    suspects: deque = deque()
    window = IN_FLIGHT_PER_WORKER * workers

    def new_pool():
        return ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),)
        )

    pool = new_pool()
    running: dict = {}
    try:
        while claimer or suspects or running:
            limit = 1 if suspects else window
            while len(running) < limit:
                task = suspects.popleft() if suspects else claimer.pop()
                if task is None:
                    break
                c = task.cell
                fut = pool.submit(execute_cell, task.module, c.experiment, c.params)
                running[fut] = (task, limit == 1)
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            broken = False
            for fut in finished:
                task, alone = running.pop(fut)
                try:
                    outcome = fut.result()
                except BrokenProcessPool:
                    broken = True
                    if alone:
                        write(
                            task,
                            _crash_outcome(
                                "WorkerCrash: the worker process died while running this "
                                "cell alone (killed, out of memory, or a crash in native code)"
                            ),
                        )
                    else:
                        suspects.append(task)
                    continue
                write(task, outcome)
            if broken:
                suspects.extend(task for task, _ in running.values())
                running.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                pool = new_pool()
    except BaseException:
        _terminate(pool)
        raise
    pool.shutdown(wait=True)


def _run_dask(claimer: _Claimer, write, summary: SweepSummary, scheduler, dask_local) -> None:
    import logging

    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=dask_local,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
    else:
        client = Client(scheduler)
    summary.backend = f"dask ({client.scheduler.address})"
    running: dict = {}
    try:

        def window() -> int:
            return max(16, 2 * sum(client.nthreads().values()))

        limit, refreshed = window(), time.monotonic()

        def submit(ac=None):
            task = claimer.pop()
            if task is None:
                return None
            c = task.cell
            fut = client.submit(
                execute_cell,
                task.module,
                c.experiment,
                c.params,
                key=f"gmmscape-cell-{c.key[:16]}-{time.monotonic_ns()}",
                pure=False,
            )
            running[fut] = task
            if ac is not None:
                ac.add(fut)
            return fut

        initial = []
        while len(initial) < limit and (fut := submit()) is not None:
            initial.append(fut)
        ac = as_completed(initial)
        for fut in ac:
            task = running.pop(fut)
            try:
                outcome = fut.result()
            except Exception as exc:  # KilledWorker, lost connection, ...
                outcome = _crash_outcome(f"{type(exc).__name__} (Dask): {exc}")
            write(task, outcome)
            fut.release()
            if time.monotonic() - refreshed > DASK_REFRESH_S:
                limit, refreshed = window(), time.monotonic()
            while len(running) < limit and submit(ac) is not None:
                pass
    except BaseException:
        client.cancel(list(running))
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
