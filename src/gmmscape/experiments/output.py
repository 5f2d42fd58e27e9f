"""Writing results: figures (PNG + SVG) and self-contained HTML pages.

Every experiment, the demo and the sweep reports write through these few functions and
the atomic writers of :mod:`gmmscape._files` (bytes, JSON), so that no file is ever left
half-written (each is written to a temporary name and renamed into place) and every page
embeds its figures.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path

from gmmscape._files import write_bytes

#: Resolution of saved PNG figures.
FIGURE_DPI = 120

PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
    "color:#222}table{border-collapse:collapse;margin:.6em 0;font-size:13px;"
    # a table wider than the page scrolls inside it instead of widening the page
    "display:block;max-width:100%;overflow-x:auto}"
    "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f2f2f2}"
    "caption{text-align:left;font-weight:bold;padding:4px 0}img{max-width:100%}"
    "pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:12px}"
    ".small{color:#666;font-size:12px}.note{border-left:3px solid #e0a000}"
)


def finite_json(obj):
    """A result's fields as JSON-ready values, with every non-finite float as ``None``.

    Unlike :func:`gmmscape._files.write_json`, which writes ``NaN`` and ``Infinity``, this
    gives strict JSON (``inf`` and ``nan`` become ``null``).

    Parameters
    ----------
    obj : dict, list, tuple, numpy array or scalar
        Nested containers of numbers (an array of any shape becomes nested lists).

    Returns
    -------
    dict, list, bool, int, float, None or the object itself
        Dict keys become strings, tuples lists; numpy booleans, integers and floats become
        Python ones.
    """
    if isinstance(obj, dict):
        return {str(k): finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy arrays and scalars: nested lists of Python numbers
        return finite_json(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def integer_ticks(axis) -> None:
    """Put the ticks of ``axis`` on integers only (for counts, numbers of components, k).

    An axis whose values are all one integer (a count that is 0 everywhere) gets that one
    tick, where matplotlib would otherwise fall back to ticks at fractions.

    Parameters
    ----------
    axis : matplotlib.axis.Axis
        ``ax.xaxis`` or ``ax.yaxis``.
    """
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def count_log_ticks(axis) -> None:
    """Label a logarithmic axis of counts (steps) as plain numbers: 6 and 10, not 6x10^0.

    Parameters
    ----------
    axis : matplotlib.axis.Axis
        An axis on a log scale.
    """
    from matplotlib.ticker import LogFormatter

    axis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


#: Gap between the x label of an axes and a legend placed below it, in inches.
LEGEND_GAP_IN = 0.06


def legend_below(ax, ncol: int = 2, fontsize: float = 8, **kwargs):
    """A legend under ``ax``, below its tick labels and x label, so it covers no data.

    The offset is measured in inches from the axes' bottom edge (the height of its tick
    labels and x label), so it stays right when ``tight_layout`` resizes the axes; the
    legend takes part in the layout, which makes room for it. Call it after the x label
    and the tick locators are set.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    ncol : int, default 2
        Columns of legend entries.
    fontsize : float, default 8
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.legend`.

    Returns
    -------
    matplotlib.legend.Legend or None
        None when ``ax`` has no labelled artist.
    """
    from matplotlib.transforms import ScaledTranslation

    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    ax.apply_aspect()  # the box of an equal-aspect axes, as the tight box below measures it
    below = ax.bbox.y0 - ax.get_tightbbox(renderer).y0  # pixels of ticks and label
    shift = ScaledTranslation(0, -(below / fig.dpi + LEGEND_GAP_IN), fig.dpi_scale_trans)
    return ax.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        bbox_transform=ax.transAxes + shift,
        ncol=ncol,
        fontsize=fontsize,
        **kwargs,
    )


def save_figure(fig, stem: str | Path) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.svg`` (atomically) and close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    stem : str or Path
        Path without suffix; its folder is created.

    Returns
    -------
    list of Path
        The PNG and the SVG.
    """
    stem = Path(stem)
    paths = []
    for fmt in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=FIGURE_DPI)
        paths.append(write_bytes(stem.with_suffix(f".{fmt}"), buf.getvalue()))
    pyplot().close(fig)
    return paths


def html_figure(png: bytes | Path, caption: str = "") -> str:
    """An HTML ``<figure>`` with the PNG embedded (base64).

    Parameters
    ----------
    png : bytes or Path
        PNG bytes, or the path of a PNG file.
    caption : str, optional

    Returns
    -------
    str
    """
    data = png.read_bytes() if isinstance(png, Path) else png
    b64 = base64.b64encode(data).decode()
    cap = f"<figcaption class='small'>{html.escape(caption)}</figcaption>" if caption else ""
    img = f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{b64}'>"
    return f"<figure>{img}{cap}</figure>"


def format_number(v: float, spec: str = ".6g") -> str:
    """``format(v, spec)``, without the sign of a value that rounds to zero ("-0.000").

    Parameters
    ----------
    v : float
    spec : str, default ".6g"
        A format specification, e.g. ``".3f"``.

    Returns
    -------
    str
    """
    text = format(v, spec)
    if text.startswith("-") and not any(c in "123456789" for c in text.split("e")[0]):
        return text[1:]
    return text


def format_error(v: float, spec: str = ".1e") -> str:
    """An error estimate for a sentence: ``"below 1e-16"`` when it is exactly 0.

    Parameters
    ----------
    v : float
        A non-negative error estimate.
    spec : str, default ".1e"

    Returns
    -------
    str
    """
    return "below 1e-16 (exact to rounding)" if v == 0 else format(v, spec)


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and math.isfinite(v):
        return format_number(v)
    return str(v)


def html_table(header: Sequence[str], body: Sequence[Sequence], caption: str = "") -> str:
    """An HTML table; floats are shown with 6 significant digits.

    Parameters
    ----------
    header : sequence of str
    body : sequence of rows
    caption : str, optional

    Returns
    -------
    str
    """
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    out.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
    for row in body:
        out.append("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def write_html(path: str | Path, title: str, parts: Sequence[str]) -> Path:
    """Write one self-contained HTML page (inline style, figures embedded), atomically.

    Parameters
    ----------
    path : str or Path
    title : str
    parts : sequence of str
        HTML fragments of the body, in order (already escaped where needed).

    Returns
    -------
    Path
    """
    page = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{PAGE_STYLE}</style></head><body>",
        *parts,
        "</body></html>",
    ]
    return write_bytes(path, "\n".join(page).encode())
