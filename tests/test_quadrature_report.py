"""A quadrature report's figures agree with each other and with its warning."""

import re
import warnings

import numpy as np
import pytest

import gmmscape as gs
from gmmscape.core.sources import POPULATION_ATOL, POPULATION_RTOL, QuadratureWarning


def test_the_warning_names_the_quantity_its_figure_belongs_to():
    truth = gs.Mixture([[-1.0], [1.5]], sigma=1.0)
    model = gs.Mixture([[-0.5], [1.0]], sigma=1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        e = gs.population(truth, max_nodes=80).expect(model)  # too few nodes for 1e-10
    (w,) = [c for c in caught if issubclass(c.category, QuadratureWarning)]
    q = e.quadrature
    assert not q.converged and set(q.relative_errors) == set(q.errors)
    assert q.relative_errors[q.worst] == q.max_relative_error == max(q.relative_errors.values())
    msg = str(w.message)
    figure = float(re.search(r"relative error estimate ([0-9.e+-]+), on", msg).group(1))
    assert figure == pytest.approx(q.max_relative_error, rel=1e-2)
    assert f"on {q.worst!r}" in msg
    for key in q.errors:  # and every quantity's own figure is listed beside it
        assert re.search(rf"\b{key} [0-9.e+-]+", msg), key


def test_relative_errors_are_absolute_errors_over_the_floored_scale():
    truth = gs.Mixture([[-1.0], [2.0]], sigma=1.0)
    model = gs.Mixture([[-0.7], [1.4]], sigma=1.0)
    src = gs.population(truth)
    e = src.expect(model)
    q = e.quadrature
    assert q.converged and q.worst in q.errors
    model_r, truth_r, frame, hessian = _frame_args(src, model)
    radius = q.tried[-1]["radius"]
    nodes = src._level_nodes(q.rule, q.r, q.level, radius, src._bases(model_r, truth_r))
    values = src._evaluate(nodes, model_r, truth_r, frame, hessian)[0]
    for key, err in q.errors.items():
        scale = max(float(np.max(np.abs(values[key]))), POPULATION_ATOL / POPULATION_RTOL)
        assert q.relative_errors[key] == pytest.approx(err / scale, rel=1e-12, abs=0)


def _frame_args(src, model):
    from gmmscape.core.frame import to_frame

    frame = src.frame(model)
    return to_frame(frame, model), to_frame(frame, src.truth), frame, False


@pytest.mark.parametrize("means", [[[-1.0], [1.0]], [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
def test_a_tiny_sigma_warning_and_the_report_give_the_same_figure(means):
    """sigma = 1e-8, model = truth: the gradient is rounding noise divided by sigma^2. The
    warning's figure is the report's worst relative error, on the quantity it names; a
    quantity whose estimate is 0 is never the one the figure is given for."""
    truth = gs.Mixture(means, sigma=1e-8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        e = gs.population(truth).expect(truth)
    q = e.quadrature
    warned = [c for c in caught if issubclass(c.category, QuadratureWarning)]
    assert bool(warned) == (not q.converged)
    for w in warned:
        msg = str(w.message)
        figure = float(re.search(r"relative error estimate ([0-9.e+-]+), on", msg).group(1))
        assert figure == pytest.approx(q.relative_errors[q.worst], rel=1e-2)
        assert f"on {q.worst!r}" in msg and q.errors[q.worst] > 0
