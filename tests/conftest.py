"""Test configuration: precision is set once here (gmmscape also enables x64 on import).

``pytest --cpu-durations=N`` lists the N tests that cost the most CPU time (this process's
threads and the subprocesses it waited for, setup and teardown included), the figure that
decides which tests are marked ``slow`` (see the README's "Tests" section).
"""

import os
import resource
import time

import jax
import pytest

jax.config.update("jax_enable_x64", True)


def pytest_addoption(parser):
    parser.addoption(
        "--cpu-durations",
        type=int,
        default=None,
        metavar="N",
        help="list the N tests with the largest CPU time (0: all)",
    )


def _cpu_seconds() -> float:
    """CPU time of this process and of its waited-for children, user + system."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


_CPU: dict[str, float] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Record each test's CPU time when ``--cpu-durations`` is given."""
    if item.config.getoption("--cpu-durations") is None:
        return (yield)
    t0 = _cpu_seconds()
    try:
        return (yield)
    finally:
        _CPU[item.nodeid] = _cpu_seconds() - t0


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    n = config.getoption("--cpu-durations")
    if n is None or not _CPU:
        return
    rows = sorted(_CPU.items(), key=lambda kv: -kv[1])
    total = sum(_CPU.values())
    tr = terminalreporter
    tr.write_sep("=", f"CPU time per test: {total:.1f} s in {len(rows)} tests (pid {os.getpid()})")
    for nodeid, sec in rows if n == 0 else rows[:n]:
        tr.write_line(f"{sec:8.2f}s  {nodeid}")
