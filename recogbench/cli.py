"""The ``recogbench`` command line: parses options, builds a RunConfig, calls the library."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

app = typer.Typer(no_args_is_help=True, help="Face-verification evaluation under occlusion and inpainting.")
# Tables are wide; when output is not a terminal (CI logs, pipes) do not squeeze them to 80 columns.
console = Console(width=None if Console().is_terminal else 200)

SUMMARY_COLUMNS = [
    ("protocol", "protocol"), ("occlusion", "occlusion"), ("side", "side"), ("inpainter", "inpainter"), ("verifier", "verifier"),
    ("n_pairs", "pairs"), ("failures", "fail"), ("accuracy_mean", "acc"), ("accuracy_std", "±"),
    ("auc", "AUC"), ("eer", "EER"), ("tar@far=1e-02", "TAR@1e-2"), ("tar@far=1e-03", "TAR@1e-3"),
    ("mean_genuine", "μ gen"), ("similarity_gap", "gap"), ("mean_coverage", "cover"),
]


def _print_version(value: bool) -> None:
    if value:
        from recogbench import __version__
        from recogbench.results import code_revision

        console.print(f"recogbench {__version__} (code {code_revision()})")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False, show_time=False)],
    )


@contextlib.contextmanager
def user_errors():
    """Show bad input, and a file that cannot be read or written (no permission, a full
    disk), as one clear line naming the file, and exit 2. Ctrl-C is not an Exception and
    passes through untouched."""
    from recogbench.data import DataError
    from recogbench.registry import RegistryError

    try:
        yield
    except typer.Exit:  # click's Exit is a RuntimeError: let deliberate exits through
        raise
    except (DataError, RegistryError, FileNotFoundError, ValueError, ImportError, RuntimeError) as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from exc
    except OSError as exc:
        console.print(f"[bold red]error:[/] {escape(_os_error_line(exc))}", soft_wrap=True)
        raise typer.Exit(2) from exc


def _os_error_line(exc: OSError) -> str:
    """One line for an OSError: the file(s) it names, then the reason, without Python's
    ``[Errno N]`` prefix ("/x/leaderboard.csv: No space left on device")."""
    reason = exc.strerror or str(exc)
    names = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
    if not names or any(name in reason for name in names):  # e.g. OutputError's message names its path
        return reason
    return f"{' -> '.join(names)}: {reason}"


@contextlib.contextmanager
def interrupted_cleanly(out: Path):
    """Ctrl-C: finished conditions are in the leaderboard, the interrupted one left no row,
    and its embeddings so far are cached; say so and how to resume."""
    try:
        yield
    except KeyboardInterrupt:
        console.print(
            f"[bold yellow]interrupted.[/] Conditions that finished are in {Path(out) / 'leaderboard.csv'}; "
            "the interrupted one wrote no row. Run the same command again to resume: "
            "embeddings computed so far are cached and will be reused."
        )
        raise typer.Exit(130) from None


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


def print_study(rows, title: str) -> None:
    """The closing table of a run: per condition accuracy, FNMR and FMR at the threshold frozen
    on the clean faces, FMR inflation and recovery, with 95 % intervals; then which
    restoration recovers most for each occluder."""
    from recogbench.summary import best_restorations, condition_lines

    lines = condition_lines(rows)
    several = len({ln.verifier for ln in lines}) > 1
    table = Table(title=title)
    for header in ("condition", "pairs", "accuracy [95 % CI]", "FNMR [95 % CI]", "FMR [95 % CI]", "FMR infl.",
                   "recovered"):
        table.add_column(header, overflow="fold", justify="left" if header == "condition" else "right")

    def rate(value, ci, digits=3):
        if value is None:
            return "n/a"
        return f"{value:.{digits}f}" + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")

    for ln in lines:
        name = f"{ln.occlusion} · {ln.inpainter}" + (f" · {ln.verifier}" if several else "")
        if ln.quick_look:
            name += " (quick look)"
        infl = "n/a" if ln.fmr_inflation is None else f"{ln.fmr_inflation:+.3f}"
        rec = "n/a" if ln.recovery is None else f"{ln.recovery:.0%}"
        table.add_row(name, str(ln.n_pairs), rate(ln.accuracy, ln.accuracy_ci, 4), rate(ln.fnmr, ln.fnmr_ci),
                      rate(ln.fmr, ln.fmr_ci), infl, rec)
    console.print(table)
    console.print("FNMR and FMR at the threshold frozen on the clean faces of the same pairs (best accuracy); "
                  "FMR infl. = FMR minus the clean faces' FMR there; recovered = share of the accuracy lost to "
                  "the occlusion that the restoration won back. Intervals: accuracy bootstrap, rates Wilson. "
                  "`recogbench leaderboard --explain` defines every column.", style="dim")
    for sentence in best_restorations(lines):
        console.print(sentence)


@app.command("ls")
def ls(kind: Optional[str] = typer.Argument(None, help="protocols, occluders, inpainters, verifiers or suites")) -> None:
    """List everything registered (built-ins and installed plugins)."""
    from recogbench.occlusion import REGIONS
    from recogbench.registry import REGISTRIES

    from recogbench.occlusion import suites

    kinds = [kind] if kind else [*REGISTRIES, "suites"]
    for name in kinds:
        if name == "suites":
            table = Table(title="suites", show_header=False)
            for suite in suites().values():
                table.add_row(suite.name, f"{suite.description} ({', '.join(suite.occluders)})")
            console.print(table)
            continue
        if name not in REGISTRIES:
            raise typer.BadParameter(f"unknown kind {name!r}; choose from {', '.join([*REGISTRIES, 'suites'])}")
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
    verifier: str = typer.Option("sface", help="Verifier spec NAME[:key=value,...], e.g. arcface:model=w600k_r50.onnx; "
                                 "several joined by '+' (every condition with each)."),
    occlusion: str = typer.Option("none", help="Occluder spec, e.g. region:twoeyes."),
    inpainter: str = typer.Option("none", help="Inpainter spec, e.g. oracle."),
    side: str = typer.Option("second", help="Which image of each pair is occluded: second, first or both."),
    seed: int = typer.Option(0, help="Seed of every random occlusion."),
    flip: bool = typer.Option(False, "--flip/--no-flip", help="Flip test: embed image + mirror."),
    detector: str = typer.Option("yunet", help="Face detector for raw images: yunet or mtcnn."),
    face_size: int = typer.Option(112, "--face-size", help="Side of the aligned face that is occluded and inpainted, "
                                  "e.g. 256 for a 256-px inpainter (raw images only; a .bin pack is 112). The "
                                  "verifier gets the same alignment resized to 112."),
    mask_source: str = typer.Option("oracle", "--mask-source", help="Holes the inpainter gets: oracle (the "
                                    "occluder's exact mask) or a segmenter, soclnet:checkpoint=PATH (predicted from "
                                    "the occluded face; with --occlusion none: restore real occluded photos)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda[:N]."),
    batch_size: int = typer.Option(128, help="Images per batch."),
    out: Path = typer.Option(Path("results"), help="Results folder."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse cached embeddings."),
    on_error: str = typer.Option("record", help="record: score unusable faces as non-matches and count them; fail: stop."),
    bootstrap: int = typer.Option(1000, help="Bootstrap replicates for the 95 % intervals (0: none)."),
    allow_self_grading: bool = typer.Option(False, "--allow-self-grading", help="Run an identity-guided inpainter even if it uses the verifier's own model."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    workers: int = typer.Option(0, help="Processes that decode, align and occlude ahead of the device "
                                "(0: one per CPU core; 1: in this process); with --executor ray and no --address, the "
                                "local cluster's CPUs. Rows do not depend on it."),
    executor: str = typer.Option("local", help="local, or ray: conditions × shards of pairs as Ray tasks "
                                 "(pip install 'recogbench[ray]'); rows are those a local run writes."),
    address: str = typer.Option("", help="--executor ray: the cluster to join (ray://HOST:10001, auto); "
                                "empty: start a local one."),
    shard_size: int = typer.Option(1000, "--shard-size", help="--executor ray: pairs per task."),
    limit: int = typer.Option(0, help="Evaluate only the first N genuine and N impostor pairs of each fold: a quick look, marked in the row "
                              "(column limit) and never ranked with full runs. 0: every pair."),
    max_failures: float = typer.Option(0.05, "--max-failures", help="Largest share of pairs with an unusable face "
                                       "a condition may have and still write its row (exit 2 beyond it)."),
    save_embeddings: bool = typer.Option(False, "--save-embeddings", help="Also write every pair's embeddings "
                                         "(clean, occluded, restored; both sides) to the run folder as embeddings.npz."),
) -> None:
    """Evaluate the condition(s) and append one row each to OUT/leaderboard.csv.

    --occlusion takes one occluder, a suite (see `recogbench ls suites`) or specs joined by
    '+'; --inpainter takes one inpainter or several joined by '+'.
    """
    from recogbench.config import RunConfig
    from recogbench.pipeline import run_all

    with user_errors():
        config = RunConfig(
            protocol=protocol, data=str(data), verifier=verifier, occlusion=occlusion, inpainter=inpainter,
            side=side, seed=seed, flip=flip, detector=detector, face_size=face_size, mask_source=mask_source,
            device=device, batch_size=batch_size,
            out=str(out), cache=cache, on_error=on_error, progress=not quiet, bootstrap=bootstrap,
            allow_self_grading=allow_self_grading, workers=workers, executor=executor, address=address,
            shard_size=shard_size, limit=limit, max_failures=max_failures, save_embeddings=save_embeddings,
        )
    with interrupted_cleanly(out), user_errors():
        results = run_all(config)
    print_study([r.row for r in results], title=results[0].row["protocol"])
    for r in results:
        console.print(f"{r.row['occlusion']} · {r.row['inpainter']}: {r.run_dir}")
    console.print(f"leaderboard: {Path(out) / 'leaderboard.csv'}")


@app.command()
def occlude(
    protocol: str = typer.Argument(..., help="Protocol name (see `recogbench ls protocols`)."),
    data: Path = typer.Option(..., "--data", help="The protocol's data."),
    occlusion: str = typer.Option(..., help="Occluder spec, suite, or specs joined by '+'."),
    out: Path = typer.Option(..., "--out", help="Folder to write; one subfolder per occluder."),
    side: str = typer.Option("second", help="second, first or both."),
    seed: int = typer.Option(0, help="Seed of every random occlusion."),
    detector: str = typer.Option("yunet", help="Face detector for raw images."),
) -> None:
    """Bake an occluded copy of a protocol: OUT/<protocol>.bin (clean, once), and per occluder
    pack.bin, masks and manifest."""
    from recogbench.config import RunConfig
    from recogbench.occlusion.bake import bake

    with user_errors():
        folders = bake(RunConfig(protocol=protocol, data=str(data), occlusion=occlusion, side=side, seed=seed,
                                 detector=detector), out)
    for folder in folders:
        clean = folder.parent / json.loads((folder / "occlusion.json").read_text())["clean"]
        console.print(f"{folder}: run it with `recogbench run bin --data {clean} --occlusion baked:{folder}`"
                      f" (or score {folder / 'pack.bin'} as is)")


@app.command()
def gallery(
    occlusion: str = typer.Option(..., help="Occluder spec, suite, or specs joined by '+'."),
    out: Path = typer.Option(Path("results/gallery.png"), "--out", help="PNG to write."),
    protocol: Optional[str] = typer.Option(None, help="Take faces from this protocol (default: sample faces shipped with installed packages)."),
    data: Optional[Path] = typer.Option(None, "--data", help="The protocol's data."),
    n: int = typer.Option(6, help="Faces per occluder."),
    seed: int = typer.Option(0, help="Seed."),
) -> None:
    """Draw a grid of examples of each occluder on real faces."""
    from recogbench.gallery import gallery as draw

    with user_errors():
        path = draw(occlusion, out, protocol=protocol, data=str(data) if data else None, n=n, seed=seed)
    console.print(f"wrote {path}")


@app.command()
def train(
    inpainter: str = typer.Argument(..., help="A trainable inpainter: pconv-gan, unet-gan, ifacenet, or id-inpainter (with "
                                    "--stage); options as a spec: unet-gan:mode=blind,attention=1."),
    data: Optional[Path] = typer.Option(None, "--data", help="Faces: a .bin pack, a protocol's data (with --protocol) or a "
                                        "folder of images (holes drawn from --occlusion)."),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Instead of --data: a folder of stored pairs, Occ_imgs/ + "
                                         "Orig_imgs/ (+ Segmentations/) or MaskedFace-Net <id>_Mask*.jpg beside the "
                                         "FFHQ <id>.png (see the README)."),
    out: Path = typer.Option(..., "--out", help="Folder for checkpoints, log.csv and sample grids."),
    protocol: Optional[str] = typer.Option(None, help="Protocol name when --data is a protocol's data."),
    occlusion: Optional[str] = typer.Option(None, help="Holes: occluder spec, suite, or specs joined by '+' (default: "
                                            "train-default; ifacenet freeform-coverage, everyday with --self-supervised)."),
    steps: int = typer.Option(2000, help="Training steps."),
    batch_size: Optional[int] = typer.Option(None, help="Faces per step (default 16; ifacenet 8)."),
    lr: Optional[float] = typer.Option(None, help="Learning rate (default: 2e-4 pconv-gan; 1e-3 ifacenet; id-inpainter "
                                       "stage ca 1e-4, fusor 4e-4, sampler 0.1 per 512 faces of batch)."),
    size: Optional[int] = typer.Option(None, help="Training resolution (default: the inpainter's native size: 112; "
                                       "ifacenet 256, a multiple of 32; pconv-gan also 256 as in its design)."),
    base_channels: Optional[int] = typer.Option(None, help="Generator width (default 32; pconv-gan --preset under-mask: "
                                                         "64, the design's; id-inpainter: 32 is the official width, the "
                                                         "sampler's is twice it)."),
    stage: Optional[str] = typer.Option(None, help="id-inpainter: the stage to train: ca, fusor or sampler "
                                                   "(the sampler needs a folder DATA/<person>/<image>)."),
    id_weight: float = typer.Option(5.0, help="id-inpainter fusor: identity-loss weight (official schedule 5, then 7, then 9)."),
    identity_model: Optional[Path] = typer.Option(None, help="id-inpainter: sampler weights (Resnet50_70000_net.pth or a "
                                                            "sampler stage's last.safetensors): the fusor's frozen identity "
                                                            "encoder, the sampler stage's starting point; or a fusor "
                                                            "checkpoint to continue from with the next --id-weight)."),
    perceptual_weights: Optional[Path] = typer.Option(None, help="torchvision-format weights for the perceptual and style "
                                                      "losses: VGG16 (pconv-gan), VGG19 (ifacenet: vgg19-dcbb9e9d.pth)."),
    backbone_weights: Optional[Path] = typer.Option(None, help="ifacenet: torchvision ImageNet ResNet-50 weights for the "
                                                    "trunk (resnet50-0676ba61.pth); without them it starts random."),
    self_supervised: bool = typer.Option(False, "--self-supervised", help="ifacenet: the self-supervised mode: occluded "
                                         "faces in, no mask, L1 over the whole image (holes default to everyday)."),
    preset: Optional[str] = typer.Option(None, help="pconv-gan: a named configuration: under-mask (\"Face Under-Mask "
                                         "Reconstruction\", 2023; see the README). Model options go in the spec and "
                                         "override it: pconv-gan:depth=8,dilations=1-2-4."),
    branch: Optional[str] = typer.Option(None, help="pconv-gan: train one branch alone, partial or vanilla, or the "
                                         "fused model (default)."),
    init_from: Optional[str] = typer.Option(None, "--init-from", help="pconv-gan: checkpoints (comma-separated) to start "
                                            "the generator from, e.g. the partial and vanilla branches' "
                                            "last.safetensors for the fused fine-tune."),
    aligned: bool = typer.Option(False, "--aligned", help="The folder's images are already aligned 112×112 faces."),
    checkpoint_every: int = typer.Option(500, help="Steps between checkpoints."),
    sample_every: int = typer.Option(200, help="Steps between sample grids and validations."),
    log_every: int = typer.Option(50, help="Steps between progress lines (mean losses, s/step, time left)."),
    seed: int = typer.Option(0, help="Seed."),
    device: str = typer.Option("auto", help="auto, cpu or cuda[:N] (mixed precision on CUDA)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from OUT/last.safetensors if present."),
) -> None:
    """Train a learned inpainter; resumes after an interruption."""
    from recogbench.train import TrainConfig
    from recogbench.train import train as run_training

    with user_errors():
        config = TrainConfig(
            inpainter=inpainter, data=str(data) if data else "", out=str(out), protocol=protocol, occlusion=occlusion,
            steps=steps, pairs=str(pairs) if pairs else None,
            batch_size=batch_size, lr=lr, size=size, seed=seed, device=device, checkpoint_every=checkpoint_every,
            sample_every=sample_every, log_every=log_every, perceptual_weights=str(perceptual_weights) if perceptual_weights else None,
            aligned=aligned, resume=resume, base_channels=base_channels, stage=stage, id_weight=id_weight,
            identity_model=str(identity_model) if identity_model else None,
            backbone_weights=str(backbone_weights) if backbone_weights else None, self_supervised=self_supervised,
            preset=preset, branch=branch, init_from=init_from or (),
        )
        result = run_training(config)
    if result.rank == 0:  # under torchrun: once, from the process that wrote the files
        console.print(f"trained {inpainter} to step {result.step}: checkpoint {result.checkpoint}, log {Path(out) / 'log.csv'}")


@app.command()
def inpaint(
    inpainter: str = typer.Option(..., help="Inpainter spec, e.g. telea or pconv-gan."),
    images: Path = typer.Option(..., help="Folder of images (aligned faces)."),
    masks: Path = typer.Option(..., help="Folder of masks with the same file stems (white = hole)."),
    out: Path = typer.Option(..., help="Folder for the restored PNGs."),
    checkpoint: Optional[Path] = typer.Option(None, help="Weights of a learned inpainter."),
    device: str = typer.Option("auto", help="auto, cpu or cuda[:N]."),
    batch_size: int = typer.Option(32, help="Images per batch."),
) -> None:
    """Restore a folder of images with their masks (to look at what an inpainter does)."""
    from recogbench.inpaint import inpaint_folder
    from recogbench.registry import INPAINTERS

    with user_errors():
        options = {"checkpoint": str(checkpoint)} if checkpoint else {}
        model = INPAINTERS.create(inpainter, device=device, **options)
        written = inpaint_folder(model, images, masks, out, batch_size=batch_size)
    console.print(f"wrote {len(written)} restored images to {out}")


@app.command("leaderboard")
def leaderboard_cmd(
    results: Path = typer.Option(Path("results"), "--results", help="Results folder."),
    protocol: Optional[str] = typer.Option(None, help="Only this protocol."),
    sort: Optional[str] = typer.Option(None, help="Column to sort by (descending; add --ascending)."),
    ascending: bool = typer.Option(False, "--ascending", help="Sort ascending."),
    compare: Optional[tuple[str, str]] = typer.Option(None, help="Two conditions (config-hash prefix or OCCLUSION/INPAINTER): paired McNemar test at the clean-calibrated threshold."),
    fmt: str = typer.Option("md", "--format", help="md or csv."),
    all_columns: bool = typer.Option(False, "--all-columns", help="Every column, not the summary."),
    explain: bool = typer.Option(False, "--explain", help="Define every column shown (with --all-columns: every "
                                 "column) in words, instead of the table."),
) -> None:
    """Aggregate result rows (latest per config hash), filter, sort, or compare two conditions."""
    from recogbench import report
    from recogbench.results import explain_column

    with user_errors():
        if compare:
            res = report.compare(results, compare[0], compare[1])
            m = res["mcnemar"]
            console.print(f"A = {res['a']} ({res['a_config_hash']}): accuracy {res['accuracy_a']:.4f}")
            console.print(f"B = {res['b']} ({res['b_config_hash']}): accuracy {res['accuracy_b']:.4f}")
            console.print(f"threshold {res['threshold']:.4f} ({res['threshold_source']}); {res['n_pairs']} pairs; "
                          f"A right only {m['a_only']}, B right only {m['b_only']}; McNemar {m['method']} "
                          f"statistic {m['statistic']:.3f}, p = {m['p_value']:.4g}")
            console.print(f"[bold]{res['verdict']}[/]")
            return
        if fmt not in ("md", "csv"):
            raise ValueError(f"--format must be md or csv, got {fmt!r}")
        df = report.leaderboard(results, protocol=protocol, sort=sort, ascending=ascending)
        columns = None if all_columns else report.summary_columns(df)
        if explain:
            for name in columns or list(df.columns):
                console.print(f"[bold]{name}[/]: {explain_column(name) or '(not documented)'}")
            return
        text = report.to_markdown(df, columns) if fmt == "md" else report.to_csv(df, columns)
    typer.echo(text)


@app.command()
def plot(
    results: Path = typer.Option(Path("results"), "--results", help="Results folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the PNGs (default RESULTS/plots)."),
) -> None:
    """ROC/DET overlays, score histograms, recovery bars and sample grids for every protocol."""
    from recogbench.plots import plot_all

    with user_errors():
        written = plot_all(results, out or results / "plots")
    for path in written:
        console.print(str(path))


@app.command()
def segment(
    protocol: str = typer.Argument(..., help="Protocol name (see `recogbench ls protocols`)."),
    data: Path = typer.Option(..., "--data", help="The protocol's data."),
    checkpoint: Path = typer.Option(..., help="Segmenter checkpoint (recogbench train soclnet's last.safetensors)."),
    occlusion: str = typer.Option("everyday", help="Occluder spec, suite, or specs joined by '+'."),
    side: str = typer.Option("second", help="Which image of each pair is occluded: second, first or both."),
    seed: int = typer.Option(0, help="Seed of every occlusion (the same faces as `run` with this seed)."),
    detector: str = typer.Option("yunet", help="Face detector for raw images: yunet or mtcnn."),
    device: str = typer.Option("auto", help="auto, cpu or cuda[:N]."),
    batch_size: int = typer.Option(32, help="Faces per batch."),
    limit: Optional[int] = typer.Option(None, help="Only the first N pairs (a quick look)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the table as CSV."),
) -> None:
    """Score an occluder segmenter per occluder kind on a protocol's faces, occluded as `run` occludes them:
    pixel accuracy, occluder IoU, mean IoU over classes, kind accuracy."""
    from recogbench.config import RunConfig
    from recogbench.fileio import atomic_write_bytes, ensure_writable_file
    from recogbench.segmentation import evaluate_segmenter

    with user_errors():
        if out is not None:
            out = ensure_writable_file(out, "segmentation table")
        config = RunConfig(protocol=protocol, data=str(data), occlusion=occlusion, side=side, seed=seed,
                           detector=detector, device=device, batch_size=batch_size, progress=False)
        table = evaluate_segmenter(checkpoint, config, limit=limit)
        if out is not None:
            atomic_write_bytes(out, table.to_csv(index=False).encode())
    shown = [c for c in ("occlusion", "kind", "n_faces", "pixel_accuracy", "occluder_iou", "mean_iou", "kind_accuracy",
                         "mean_coverage", "pred_coverage") if c in table.columns]
    out_table = Table(title=f"segmentation · {protocol}")
    for column in shown:
        out_table.add_column(column, overflow="fold")
    for record in table[shown].to_dict("records"):
        out_table.add_row(*(_fmt(record[c]) for c in shown))
    console.print(out_table)


@app.command("report")
def report_cmd(
    results: Path = typer.Option(Path("results"), "--results", help="Results folder."),
    out: Path = typer.Option(Path("results/report.html"), "--out", help="The HTML file to write."),
    title: str = typer.Option("recogbench report", help="Title of the page."),
) -> None:
    """One self-contained HTML report (images embedded): leaderboard, plots, samples, configurations."""
    from recogbench.report import write_report

    with user_errors():
        path = write_report(results, out, title=title)
    console.print(f"wrote {path}")


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
    console.print(f"leaderboard: {out / 'leaderboard.csv'}; report: {out / 'report.html'}; "
                  f"plots and per-pair scores under {out / 'runs'}")
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
    from recogbench.fileio import ensure_writable_file
    from recogbench.pipeline import load_protocol
    from recogbench.protocols import write_bin

    with user_errors():
        # Here, not in write_bin: a raw protocol's faces are detected and aligned by load_protocol (slow).
        out = ensure_writable_file(out, "pack")
        loaded = load_protocol(RunConfig(protocol=protocol, data=str(data), detector=detector))
        write_bin(loaded, out, encoding=encoding)
    console.print(f"wrote {loaded.n_pairs} pairs ({loaded.n_folds} folds) to {out}")


def main() -> None:  # pragma: no cover
    app()
