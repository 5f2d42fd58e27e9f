"""Test configuration: precision is set once here (gmmscape also enables x64 on import).

``pytest --cpu-durations=N`` lists the N tests that cost the most CPU time (this process's
threads and the subprocesses it waited for, setup and teardown included), the figure that
decides which tests are marked ``slow`` (see the README's "Quickstart").
"""

import os
import resource
import time

import jax
import pytest

jax.config.update("jax_enable_x64", True)


def pytest_addoption(parser):
    """Add ``--cpu-durations=N``."""
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


# The fast suite's budget (issue 19, item 6): `make test` costs at most 6 CPU-minutes on
# the 2-core development machine, from a fresh clone with an empty compilation cache (the
# recipe is in the README's "Quickstart"; CI starts with an empty cache, so a test may
# never rely on the persistent one). Most of that is XLA compiling programs, once per
# process and shape, and a test pays for the programs it is the first to use. Hence:
# - a new fast test costs at most 3 CPU-seconds in `PYTEST_ARGS=--cpu-durations=0 make
#   test` (its own line, compilation included), and a new test file at most 20 (the
#   costliest files, test_estimator, test_estimator_realdata and test_core, cost 25-32);
# - it reuses shapes that other fast tests already compile where its check allows: the
#   standardized iris or wine data, the module fixtures, k of the same component bucket
#   (estimator/_kernels.py component_bucket), the same covariance type and dtype;
# - a check repeated over parameters keeps one or two representatives fast (each
#   feature keeps a fast test that can fail) and marks the others slow, with
#   ``pytest.param(..., marks=pytest.mark.slow)`` in its file or in SLOW_BY_COST below,
#   saying which test stays fast;
# - moving a test to slow saves only the programs nobody else compiles: the others' cost
#   moves to the next test that uses them, so measure the whole suite after a move.

#: Tests moved out of the fast suite (``make test``) into ``make test-slow`` for their cost,
#: with what each cost when it was moved: "wall" seconds from a fast-suite run of 315 tests
#: on the shared 2-core machine under load (``--durations``), "CPU" seconds from the next
#: run (``--cpu-durations``). Each module keeps fast tests of its own: this list only takes
#: the costliest of several checks of one thing (an end-to-end run whose parts are tested
#: one by one, a further parametrization of the same equality or covariance type).
#: Tests whose whole function is slow are marked with ``@pytest.mark.slow`` in their file.
SLOW_BY_COST: dict[str, str] = {
    # the whole demo tour; its parts: test_figures (page, command), each study's tests
    "tests/test_cli.py::test_demo_quick_writes_report_figures_and_results": "124.6 s wall",
    # guide pages whose code fits data or maps landscapes, tested again in their modules
    "tests/test_docs.py::test_code_blocks_run[estimator.md]": "67.8 s wall",
    "tests/test_docs.py::test_code_blocks_run[seed-b.md]": "23.8 s wall",
    "tests/test_docs.py::test_code_blocks_run[seed-a.md]": "15.4 s wall",
    # the stream runner's other tests (escape, unit step, global minimizer) stay fast
    "tests/test_dynamics_runner.py::test_stream_fixed_dataset_equals_stream_source_steps[False]": "21.5 s wall",  # noqa: E501
    # the 1-D case (truth0-model0) and the d = 5 span case stay fast
    "tests/test_core.py::test_population_hessian_matches_finite_differences_of_gradient[truth1-model1]": "18.9 s wall",  # noqa: E501
    # test_escape_grows_with_r_and_follows_the_heuristic stays fast
    "tests/test_trap.py::test_censoring_and_modes": "17.3 s wall",
    # test_vmap_over_starts_equals_a_loop stays fast
    "tests/test_fixed_population.py::test_fixed_matches_adaptive_for_a_separated_truth": "13.6 s wall",  # noqa: E501
    # the other example scripts stay fast; seed A's rates are tested in test_overparam
    "tests/test_examples.py::test_example_runs_small[seed_a_rates]": "12.8 s wall",
    # the other rotated-reference problems stay fast
    "tests/test_population_reference.py::test_high_dimension_matches_rotated_reference[k1-kstar2]": "10.35 s wall",  # noqa: E501
    # the finite-sample study (sample_study) is left to make test-slow: no fast test runs it
    "tests/test_overparam.py::test_sample_study_ends_at_each_datasets_predicted_optimum": "11.9 s wall",  # noqa: E501
    # every README block's function is tested in its module (core, overparam, landscape,
    # estimator, sweeps); the README's sweep alone runs 24 stream cells
    "tests/test_docs.py::test_code_blocks_run[README.md0]": "36.0 s CPU",
    # the problems 2d-3-vs-2, far-component and the 1-D random ones stay fast
    "tests/test_population_reference.py::test_matches_reference[2d-6-sigma-unequal]": "7.75 s CPU",
    "tests/test_population_reference.py::test_matches_reference[20-sigma-tiny-middle]": "5.85 s CPU",  # noqa: E501
    # threaded statistics: the full covariance case stays fast
    "tests/test_estimator.py::test_threaded_statistics_match_sklearn_and_one_loop[tied]": "6.72 s CPU",  # noqa: E501
    "tests/test_estimator.py::test_threaded_statistics_match_sklearn_and_one_loop[spherical]": "6.11 s CPU",  # noqa: E501
    "tests/test_estimator.py::test_threaded_statistics_match_sklearn_and_one_loop[diag]": "4.51 s CPU",  # noqa: E501
    # refine's escape: the diag case stays fast
    "tests/test_estimator.py::test_refine_escapes_the_seed_b_local_optimum[tied]": "6.25 s CPU",
    "tests/test_estimator.py::test_refine_escapes_the_seed_b_local_optimum[spherical]": "5.32 s CPU",  # noqa: E501
    # the recovery study runs fast in its own tests; this one fits it through the registry
    "tests/test_estimator_io.py::test_recovery_experiment_is_registered": "7.46 s CPU",
    # the CLI runs of overparam, trap and overparam-samples; their functions are tested fast
    "tests/test_overparam.py::test_cli_commands_write_results": "14.98 s CPU",
    # compilation moves to the next test of the same kind: these complete the list above
    # so that no fast test is left compiling the same problem (third run's CPU seconds)
    "tests/test_population_reference.py::test_error_estimates_are_honest[2d-6-sigma-unequal]": "7.55 s CPU",  # noqa: E501
    "tests/test_population_reference.py::test_error_estimates_are_honest[20-sigma-tiny-middle]": "6.10 s CPU",  # noqa: E501
    "tests/test_estimator.py::test_refine_escapes_the_seed_b_local_optimum[full]": "12.43 s CPU",
    # the Jin atlas of test_landscape.py (jin_atlas) stays fast
    "tests/test_examples.py::test_example_runs_small[seed_b_atlas]": "11.91 s CPU",
    # the sweep runs in test_sweep_*, fast
    "tests/test_docs.py::test_code_blocks_run[sweeps.md]": "10.34 s CPU",
    # the stream runner's other tests (escape, unit step, global minimizer) stay fast
    "tests/test_dynamics_runner.py::test_stream_fixed_dataset_equals_stream_source_steps[True]": "10.18 s CPU",  # noqa: E501
    # test_vmap_over_starts_equals_a_loop stays fast
    "tests/test_fixed_population.py::test_fixed_matches_adaptive_along_a_gradient_em_run": "7.53 s CPU",  # noqa: E501
    # the bifurcation search end to end; test_cli_bifurcation_prints_the_search_and_exits_1_
    # when_incomplete (the search, its table and exit status 1) stays fast
    "tests/test_landscape_studies.py::test_bifurcation_keeps_searching_until_each_delta_has_its_global_minimum": "14.14 s CPU",  # noqa: E501
    # the study-level failed-start warnings stay fast (test_landscape_studies.py)
    "tests/test_landscape_studies.py::test_a_landscape_sweep_cell_warns_when_many_starts_fail": "5.97 s CPU",  # noqa: E501
    # measured in a fast-suite run of 471 tests (--cpu-durations, load 4 to 6):
    # the 1-D random problems of spread 2 and 20 and the hand-made 2-D ones stay fast;
    # make test-slow checks 80 random 1-D and 15 random 2-D problems
    "tests/test_population_reference.py::test_matches_reference[random-1d-seed2-spread6]": "5.54 s CPU",  # noqa: E501
    "tests/test_population_reference.py::test_error_estimates_are_honest[random-1d-seed2-spread6]": "with the above",  # noqa: E501
    "tests/test_population_reference.py::test_matches_reference[random-1d-seed3-spread12]": "2.45 s CPU",  # noqa: E501
    "tests/test_population_reference.py::test_error_estimates_are_honest[random-1d-seed3-spread12]": "with the above",  # noqa: E501
    "tests/test_population_reference.py::test_matches_reference[random-2d-seed11-spread5]": "4.25 s CPU",  # noqa: E501
    "tests/test_population_reference.py::test_error_estimates_are_honest[random-2d-seed11-spread5]": "with the above",  # noqa: E501
    # a check of the test's own scipy reference (1-D against rotated 2-D); it runs no
    # gmmscape code, and every reference checks its own error estimate in each fast test
    "tests/test_population_reference.py::test_reference_is_rotation_invariant": "5.38 s CPU",
    # the 2-D stream (2d-k2-kstar3) and the 3-D sample stay fast
    "tests/test_sample_stream.py::test_stream_converges_to_population[1d-k3-kstar2]": "4.58 s CPU",
    # its parts stay fast: the sweep runner (test_sweep_runner), stream-error cells
    # (test_sweep_builtin), the report (test_sweep_report) and its figures (test_figures)
    "tests/test_examples.py::test_example_runs_small[sweep_small]": "9.75 s CPU",
    # far from zero: the float32 case of every covariance type and float64 full stay fast
    "tests/test_estimator_realdata.py::test_score_and_predict_do_not_cancel_far_from_zero[float64-1700000000.0-1e-06-tied]": "2.41 s CPU",  # noqa: E501
    "tests/test_estimator_realdata.py::test_score_and_predict_do_not_cancel_far_from_zero[float64-1700000000.0-1e-06-diag]": "2.02 s CPU",  # noqa: E501
    "tests/test_estimator_realdata.py::test_score_and_predict_do_not_cancel_far_from_zero[float64-1700000000.0-1e-06-spherical]": "2.00 s CPU",  # noqa: E501
    # the compiled and chunked fits far from zero stay fast, and threaded statistics
    # are checked against scikit-learn by test_threaded_statistics_match_sklearn_and_one_loop
    "tests/test_estimator_realdata.py::test_fit_far_from_zero_equals_fit_centred[full-threaded]": "1.68 s CPU",  # noqa: E501
    "tests/test_estimator_realdata.py::test_fit_far_from_zero_equals_fit_centred[diag-threaded]": "1.42 s CPU",  # noqa: E501
    # the 1-D case and the d = 5 span case stay fast (as for the Hessian above)
    "tests/test_core.py::test_population_gradient_matches_finite_differences[truth1-model1]": "2.26 s CPU",  # noqa: E501
    # measured in a fast-suite run of 524 tests from a fresh clone (--cpu-durations=0,
    # load 5 to 7): the 1-D case stays fast; both warn on 'grad' with kl's estimate 0,
    # and the 2-D one spends its time in quadrature levels, not in new programs
    "tests/test_quadrature_report.py::test_a_tiny_sigma_warning_and_the_report_give_the_same_figure[means1]": "7.39 s CPU",  # noqa: E501
    # padding k = 5 to 8 components: full (one matrix per component) and tied (the shared
    # matrix, which a padded component must not enter) stay fast
    "tests/test_estimator_compile.py::test_padded_fit_equals_exact_fit_and_sklearn[diag]": "2.3 s CPU",  # noqa: E501
    "tests/test_estimator_compile.py::test_padded_fit_equals_exact_fit_and_sklearn[spherical]": "2.2 s CPU",  # noqa: E501
}


def pytest_collection_modifyitems(config, items):
    """Mark the tests of :data:`SLOW_BY_COST` slow; a listed test that no longer exists in
    a collected file is an error, so that a rename cannot move a test back unnoticed."""
    found = set()
    files = set()
    for item in items:
        files.add(item.nodeid.split("::")[0])
        if item.nodeid in SLOW_BY_COST:
            item.add_marker(pytest.mark.slow)
            found.add(item.nodeid)
    if any("::" in str(a) for a in config.args):
        return  # single tests were asked for: their files are not collected whole
    stale = [n for n in SLOW_BY_COST if n.split("::")[0] in files and n not in found]
    if stale:
        raise pytest.UsageError(f"tests/conftest.py SLOW_BY_COST names missing tests: {stale}")


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
    """Print the CPU report of ``--cpu-durations``: the total, then the costliest tests."""
    n = config.getoption("--cpu-durations")
    if n is None or not _CPU:
        return
    rows = sorted(_CPU.items(), key=lambda kv: -kv[1])
    total = sum(_CPU.values())
    tr = terminalreporter
    tr.write_sep("=", f"CPU time per test: {total:.1f} s in {len(rows)} tests (pid {os.getpid()})")
    for nodeid, sec in rows if n == 0 else rows[:n]:
        tr.write_line(f"{sec:8.2f}s  {nodeid}")


def _memory_maps() -> tuple[int, int] | None:
    """This process's number of memory mappings and the kernel's limit (Linux only)."""
    try:
        with open("/proc/self/maps", "rb") as f:
            used = sum(1 for _ in f)
        with open("/proc/sys/vm/max_map_count") as f:
            return used, int(f.read())
    except (OSError, ValueError):
        return None


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Free the compiled programs of earlier test files when they hold half the mappings.

    XLA's CPU backend maps every compiled kernel's code and data separately (about 30
    mappings for a small program, 500 for an iris fit) and keeps them while JAX's caches
    hold the program. The fast suite compiles more programs in one process than Linux
    allows mappings by default (``vm.max_map_count``, 65530): past it, the next compile
    fails to map its code and the process dies with a segmentation fault. Past half the
    limit, :func:`gmmscape._program_store.release` frees them (JAX's caches and the
    program store's compiled copies); a later test that needs a program again reloads it
    from the store or the persistent cache, or compiles it.
    """
    maps = _memory_maps()
    if maps is not None and maps[0] > maps[1] // 2:
        from gmmscape import _program_store

        _program_store.release()
    yield
