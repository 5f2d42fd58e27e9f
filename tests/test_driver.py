"""The one driver (gmmscape.dynamics.driver) against closed forms: the halving map
``x -> (x + 2) / 2`` has ``|x_t - x_{t-1}| = |x_0 - 2| / 2^t``, so the step at which each
stopping rule stops is known exactly."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gmmscape.dynamics import driver


def halve(x):
    new = (x + 2.0) / 2.0
    return new, jnp.abs(new - x), False


def first_step_below(x0, tol):
    # smallest t >= 1 with |x0 - 2| / 2^t <= tol
    return max(1, math.ceil(math.log2(abs(x0 - 2.0) / tol)))


@jax.jit
def run_below(x0, tol, max_steps):
    rule = driver.Rule(tol, max_steps)
    return jax.vmap(
        lambda x, t: driver.run(halve, driver.start(x), rule._replace(tol=t), criterion="below")
    )(x0, tol)


def test_below_stops_at_the_closed_form_step_for_each_start():
    x0 = jnp.asarray([10.0, -6.0, 2.5, 1000.0])
    tol = jnp.asarray([1e-3, 1e-6, 1e-2, 1e-9])
    out = run_below(x0, tol, 10_000)
    want = [first_step_below(float(a), float(t)) for a, t in zip(x0, tol, strict=True)]
    np.testing.assert_array_equal(np.asarray(out.it), want)
    assert bool(jnp.all(out.done)) and not bool(jnp.any(out.bad))
    np.testing.assert_allclose(out.state, 2.0 + (x0 - 2.0) / 2.0 ** np.asarray(want), rtol=1e-15)


def test_max_steps_caps_and_a_loop_resumes_where_it_stopped():
    x0 = jnp.asarray([10.0])
    part = run_below(x0, jnp.asarray([1e-9]), 5)
    assert int(part.it[0]) == 5 and not bool(part.done[0])
    rule = driver.Rule(1e-9, 10_000)
    loop = jax.tree_util.tree_map(lambda a: a[0], part)
    resumed = driver.run(halve, loop, rule, criterion="below")
    assert int(resumed.it) == first_step_below(10.0, 1e-9)


def test_change_and_steps_criteria_and_the_trace():
    # "change" on the value x itself stops once |x_t - x_{t-1}| < tol: the same step as
    # "below" on the change, except that "<" is strict
    def value_is_x(x):
        new = (x + 2.0) / 2.0
        return new, new, False

    loop = driver.start(jnp.asarray(10.0), jnp.asarray(10.0), trace_len=64)
    out = driver.run(value_is_x, loop, driver.Rule(1e-3, 64), criterion="change")
    t = first_step_below(10.0, 1e-3)  # 8 / 2^t < 1e-3 at t = 14 (never equal)
    assert int(out.it) == t and bool(out.done)
    np.testing.assert_allclose(out.trace[:t], 2.0 + 8.0 / 2.0 ** np.arange(1, t + 1))
    assert np.isnan(np.asarray(out.trace[t:])).all()
    fixed = driver.run(value_is_x, driver.start(jnp.asarray(10.0)), driver.Rule(0.0, 7),
                       criterion="steps")  # fmt: skip
    assert int(fixed.it) == 7 and not bool(fixed.done)


def test_relative_change_stops_at_the_closed_form_step_compiled_and_on_the_host():
    # x_t = 2 + 8 / 2^t: "change" with tol = a, rtol = r stops at the first t with
    # 8 / 2^t < a + r (2 + 8 / 2^t), found here by counting
    def value_is_x(x):
        new = (x + 2.0) / 2.0
        return new, new, False

    def host_step(x, active):
        new = np.where(active, (x + 2.0) / 2.0, x)
        return new, new, np.zeros(len(x), bool)

    for a, r in ((0.0, 1e-5), (1e-4, 1e-5), (1e-7, 0.0), (0.0, 0.3)):
        t = 1
        while not 8.0 / 2.0**t < a + r * (2.0 + 8.0 / 2.0**t):
            t += 1
        rule = driver.Rule(a, 1000, r)
        out = driver.run(value_is_x, driver.start(jnp.asarray(10.0), jnp.asarray(10.0)), rule,
                         criterion="change")  # fmt: skip
        assert int(out.it) == t and bool(out.done), (a, r)
        _, host = driver.run_host(host_step, np.array([10.0]), np.array([10.0]), a, 1000,
                                  criterion="change", rtol=r)  # fmt: skip
        assert int(host["it"][0]) == t, (a, r)


def test_bad_stops_a_start_and_a_bad_start_takes_no_step():
    def explode(x):
        new = 3.0 * x
        return new, jnp.abs(new), jnp.abs(new) > 100.0

    out = driver.run(explode, driver.start(jnp.asarray(1.0)), driver.Rule(0.0, 50),
                     criterion="below")  # fmt: skip
    assert bool(out.bad) and int(out.it) == 5  # 3^5 = 243 > 100
    again = driver.run(explode, out, driver.Rule(0.0, 50), criterion="below")
    assert int(again.it) == 5 and float(again.state) == float(out.state)


def test_host_loop_equals_the_compiled_loop_and_reports_running_starts_only():
    x0 = np.array([10.0, -6.0, 2.5])
    tol = 1e-6
    seen = []

    def step(x, active):
        new = np.where(active, (x + 2.0) / 2.0, x)
        return new, np.abs(new - x), np.zeros(len(x), bool)

    def report(i, it, value, change):
        seen.append((int(i), int(it)))

    state, out = driver.run_host(step, x0, np.full(3, np.inf), tol, 10_000, criterion="below",
                                 report=report)  # fmt: skip
    compiled = run_below(jnp.asarray(x0), jnp.full(3, tol), 10_000)
    np.testing.assert_array_equal(out["it"], np.asarray(compiled.it))
    np.testing.assert_allclose(state, np.asarray(compiled.state), rtol=1e-15)
    for i in range(3):  # each start reported once per step it took, and never after
        assert [it for j, it in seen if j == i] == list(range(1, out["it"][i] + 1))


def test_unknown_criterion_is_refused():
    with pytest.raises(ValueError, match="criterion must be one of"):
        driver.run(halve, driver.start(jnp.asarray(1.0)), driver.Rule(0.0, 1), criterion="x")
