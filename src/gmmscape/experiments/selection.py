"""The figure of a model selection (:func:`gmmscape.select`): the criterion against k.

One line per covariance model, as mclust's ``plot(mclustBIC(...))``; failed fits (NaN)
leave gaps. The function takes plain arrays, so it draws any table of that shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gmmscape.experiments.output import integer_ticks, legend_below, pyplot, save_figure

#: What the y axis says for each criterion and sign convention.
_YLABEL = {
    ("bic", "mclust"): "BIC = 2 log L - p log n (nats; higher is better)",
    ("bic", "sklearn"): "BIC = -2 log L + p log n (nats; lower is better)",
    ("icl", "mclust"): "ICL = BIC + 2 sum log max z (nats; higher is better)",
    ("icl", "sklearn"): "ICL = -BIC - 2 sum log max z (nats; lower is better)",
}


def plot_selection(
    models: Sequence[str],
    n_components: Sequence[int],
    values: np.ndarray,
    stem: str | Path | None = None,
    criterion: str = "bic",
    convention: str = "mclust",
    best: tuple[str, int] | None = None,
    title: str = "",
):
    """Draw the criterion of every (model, k) against k, one line per model.

    Parameters
    ----------
    models : sequence of str
        Model names, length ``n_models``.
    n_components : sequence of int
        The numbers of components, length ``n_ks``.
    values : ndarray of shape (n_models, n_ks)
        The criterion (NaN where a fit failed).
    stem : str or Path, optional
        Save as ``stem.png`` and ``stem.svg`` (and close the figure); None returns it.
    criterion : {"bic", "icl"}, default "bic"
    convention : {"mclust", "sklearn"}, default "mclust"
        The sign of ``values`` (for the axis label).
    best : (model, k), optional
        Marked with a ring.
    title : str, optional

    Returns
    -------
    list of Path or matplotlib.figure.Figure
        The saved files, or the figure when ``stem`` is None.
    """
    values = np.asarray(values, np.float64)
    ks = np.asarray(n_components)
    if values.shape != (len(models), len(ks)):
        raise ValueError(
            f"values must have shape (n_models, n_ks) = ({len(models)}, {len(ks)}); "
            f"got {values.shape}."
        )
    if (criterion, convention) not in _YLABEL:
        raise ValueError(f"criterion/convention must be among {sorted(_YLABEL)}; got "
                         f"{(criterion, convention)!r}.")  # fmt: skip
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 5.0))
    cmap = plt.get_cmap("tab20")
    markers = "osD^v<>pP*XhH8"
    order = np.argsort(ks)
    for i, model in enumerate(models):
        ax.plot(ks[order], values[i, order], marker=markers[i % len(markers)], ms=4, lw=1.2,
                color=cmap(i % 20), label=model)  # fmt: skip
    if best is not None and best[0] in models and best[1] in ks.tolist():
        i, j = list(models).index(best[0]), ks.tolist().index(best[1])
        ax.plot(ks[j], values[i, j], "o", ms=13, mfc="none", mec="k", mew=1.5,
                label=f"best: {best[0]}, k = {best[1]}")  # fmt: skip
    ax.set_xlabel("number of components k (count)")
    ax.set_ylabel(_YLABEL[(criterion, convention)])
    integer_ticks(ax.xaxis)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    legend_below(ax, ncol=5)
    fig.tight_layout()
    if stem is None:
        return fig
    return save_figure(fig, stem)
