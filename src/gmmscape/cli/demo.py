"""``gmmscape demo``: the newcomer's tour."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gmmscape.cli._app import app, console


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for figures and JSON.")] = Path("demo-output"),
    quick: Annotated[bool, typer.Option(help="Smaller samples and fewer EM steps.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of every sample and stream.")] = 0,
) -> None:
    """Compare exact population EM with sample EM on a small 2-D problem."""
    from gmmscape.experiments.demo import plot_demo, run_demo, write_json

    with console.status("starting") as status:
        result = run_demo(quick=quick, seed=seed, progress=lambda m: status.update(m))
    q = result.quadrature
    console.print(
        f"[bold]Truth[/] 3 centers in 2-D, sigma = 1; [bold]start[/] two estimates on one "
        f"center. Exact population KL at the start: {result.population_kl:.10f} "
        f"({q['rule']} rule, r = {q['r']}, {q['nodes']:,} nodes per center, "
        f"error estimate {q['errors']['kl']:.1e})."
    )
    table = Table(title="Sample estimates against the exact population value")
    for col in ("n", "sample KL", "|error|", "std. error", "max |grad error|", "std. error"):
        table.add_column(col, justify="right")
    for n, kl, se, ge, gse in zip(
        result.sizes,
        result.sample_kl,
        result.sample_kl_se,
        result.grad_error,
        result.grad_se,
        strict=True,
    ):
        table.add_row(
            f"{n:,}",
            f"{kl:.6f}",
            f"{abs(kl - result.population_kl):.2e}",
            f"{se:.2e}",
            f"{ge:.2e}",
            f"{gse:.2e}",
        )
    console.print(table)
    em = Table(title=f"KL after {result.em_steps} EM steps from the same start")
    em.add_column("measure")
    em.add_column("final KL", justify="right")
    em.add_column("final means", justify="left")
    for name, trace in result.em_kl.items():
        means = "; ".join(f"({a:.2f}, {b:.2f})" for a, b in result.final_means[name])
        em.add_row(name, f"{trace[-1]:.3e}", means)
    console.print(em)
    paths = plot_demo(result, out)
    json_path = write_json(result, out / "demo.json")
    console.print(
        f"Wrote {', '.join(str(p) for p in [*paths, json_path])} in {result.seconds:.1f} s."
    )
