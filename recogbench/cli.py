"""The ``recogbench`` command line: parses options, builds a RunConfig, calls the library."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Face-verification evaluation under occlusion and inpainting.")
# Tables are wide; when output is not a terminal (CI logs, pipes) do not squeeze them to 80 columns.
console = Console(width=None if Console().is_terminal else 200)

SUMMARY_COLUMNS = [
    ("protocol", "protocol"), ("occlusion", "occlusion"), ("inpainter", "inpainter"), ("verifier", "verifier"),
    ("n_pairs", "pairs"), ("failures", "fail"), ("accuracy_mean", "acc"), ("accuracy_std", "±"),
    ("auc", "AUC"), ("eer", "EER"), ("tar@far=1e-02", "TAR@1e-2"), ("tar@far=1e-03", "TAR@1e-3"),
    ("mean_genuine", "μ gen"), ("similarity_gap", "gap"), ("mean_coverage", "cover"),
]


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False, show_time=False)],
    )


@contextlib.contextmanager
def user_errors():
    """Show bad input as one clear line (the message names the file or item) and exit 2."""
    from recogbench.data import DataError
    from recogbench.registry import RegistryError

    try:
        yield
    except (DataError, RegistryError, FileNotFoundError, ValueError, ImportError, RuntimeError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def print_rows(rows, title: str = "leaderboard") -> None:
    """Print result rows (dicts) as a table."""
    table = Table(title=title)
    for _, header in SUMMARY_COLUMNS:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(_fmt(row.get(key)) for key, _ in SUMMARY_COLUMNS))
    console.print(table)


@app.command("ls")
def ls(kind: Optional[str] = typer.Argument(None, help="protocols, occluders, inpainters or verifiers")) -> None:
    """List everything registered (built-ins and installed plugins)."""
    from recogbench.occlusion import REGIONS
    from recogbench.registry import REGISTRIES

    kinds = [kind] if kind else list(REGISTRIES)
    for name in kinds:
        if name not in REGISTRIES:
            raise typer.BadParameter(f"unknown kind {name!r}; choose from {', '.join(REGISTRIES)}")
        reg = REGISTRIES[name]
        table = Table(title=name, show_header=False)
        for entry in reg.names():
            shown = entry.replace(":*", ":<name>")
            summary = reg.summary(entry)
            if entry == "region:*":
                summary += f" ({', '.join(REGIONS)})"
            table.add_row(shown, summary)
        console.print(table)


@app.command()
def run(
    protocol: str = typer.Argument(..., help="Protocol name (see `recogbench ls protocols`)."),
    data: Path = typer.Option(..., "--data", help="The protocol's .bin pack, folder or pair file."),
    verifier: str = typer.Option("sface", help="Verifier spec NAME[:key=value,...], e.g. arcface:model=w600k_r50.onnx."),
    occlusion: str = typer.Option("none", help="Occluder spec, e.g. region:twoeyes."),
    inpainter: str = typer.Option("none", help="Inpainter spec, e.g. oracle."),
    side: str = typer.Option("second", help="Which image of each pair is occluded: second, first or both."),
    seed: int = typer.Option(0, help="Seed of every random occlusion."),
    flip: bool = typer.Option(False, "--flip/--no-flip", help="Flip test: embed image + mirror."),
    detector: str = typer.Option("yunet", help="Face detector for raw images: yunet or mtcnn."),
    device: str = typer.Option("auto", help="auto, cpu or cuda[:N]."),
    batch_size: int = typer.Option(128, help="Images per batch."),
    out: Path = typer.Option(Path("results"), help="Results folder."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse cached embeddings."),
    on_error: str = typer.Option("record", help="record: score unusable faces as non-matches and count them; fail: stop."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Evaluate one condition and append its row to OUT/leaderboard.csv."""
    from recogbench.config import RunConfig
    from recogbench.pipeline import run as run_condition

    with user_errors():
        config = RunConfig(
            protocol=protocol, data=str(data), verifier=verifier, occlusion=occlusion, inpainter=inpainter,
            side=side, seed=seed, flip=flip, detector=detector, device=device, batch_size=batch_size,
            out=str(out), cache=cache, on_error=on_error, progress=not quiet,
        )
    with user_errors():
        result = run_condition(config)
    print_rows([result.row], title=f"{result.row['protocol']} ({result.row['config_hash']})")
    console.print(f"results: {result.run_dir}  leaderboard: {Path(out) / 'leaderboard.csv'}")


@app.command()
def demo(
    out: Path = typer.Option(Path("results/demo"), help="Where the demo writes its data and results."),
    device: str = typer.Option("auto", help="auto, cpu or cuda[:N]."),
) -> None:
    """Run the whole pipeline offline on sample faces shipped with installed packages."""
    from recogbench.demo import DISCLAIMER, run_demo

    console.print(f"[bold yellow]{DISCLAIMER}[/]")
    with user_errors():
        results = run_demo(out, device=device)
    print_rows([r.row for r in results], title="demo leaderboard (not a benchmark)")
    console.print(f"leaderboard: {out / 'leaderboard.csv'}; plots and per-pair scores under {out / 'runs'}")
    console.print(f"[bold yellow]{DISCLAIMER}[/]")


@app.command()
def convert(
    protocol: str = typer.Argument(..., help="Protocol name (see `recogbench ls protocols`)."),
    data: Path = typer.Option(..., "--data", help="The protocol's data."),
    out: Path = typer.Option(..., "--out", help="The .bin pack to write."),
    detector: str = typer.Option("yunet", help="Face detector for raw images."),
    encoding: str = typer.Option("png", help="Image encoding inside the pack: png (lossless) or jpg."),
) -> None:
    """Write any loadable protocol as an insightface .bin pack (aligned 112×112)."""
    from recogbench.config import RunConfig
    from recogbench.pipeline import load_protocol
    from recogbench.protocols import write_bin

    with user_errors():
        loaded = load_protocol(RunConfig(protocol=protocol, data=str(data), detector=detector))
        write_bin(loaded, out, encoding=encoding)
    console.print(f"wrote {loaded.n_pairs} pairs ({loaded.n_folds} folds) to {out}")


def main() -> None:  # pragma: no cover
    app()
