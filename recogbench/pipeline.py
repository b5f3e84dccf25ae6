"""The one evaluation pipeline: load → (occlude → inpaint) → embed → score → report.

:func:`run` takes a :class:`~recogbench.config.RunConfig`, streams batches through the
stages with the next batch loading in a background thread, and writes a leaderboard row,
per-pair scores, the occlusion manifest and plots.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import difflib
import hashlib
import io
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch

from recogbench import __version__
from recogbench.cache import EmbeddingCache, face_key
from recogbench.config import RunConfig, config_hash
from recogbench.align import resize_faces
from recogbench.data import FACE_SIZE, DataError, LoadedImages, PairProtocol
from recogbench.device import resolve_device
from recogbench.inpaint import Inpainter
from recogbench.metrics import FAILED_SCORE, summarize
from recogbench.occlusion import NoOcclusion, Occluder, expand_occlusion, occlude_batch, sides_for, suites
from recogbench.registry import (
    INPAINTERS, OCCLUDERS, PROTOCOLS, VERIFIERS, RegistryError, display_spec, portable_spec,
)
from recogbench.tensors import to_tensor, to_uint8
from recogbench import plots, results
from recogbench.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

_COLUMN = {"first": 0, "second": 1}


@dataclass
class RunResult:
    """What one condition produced. ``scores``/``issame``/``folds``/``failed``: (P,) arrays;
    ``scores_clean``/``scores_occluded``: the same pairs clean, and occluded but not restored.
    ``runtime``: the verifier fingerprint, provider and device that ran; ``errors``: why
    images were unusable (one line each); ``embeddings``: ``{view}_{side}`` → (P, D) float32
    (NaN rows where missing), kept only with ``config.save_embeddings``."""

    config: RunConfig
    row: dict[str, Any]
    scores: np.ndarray
    issame: np.ndarray
    folds: np.ndarray
    failed: np.ndarray
    run_dir: Path
    manifest: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    scores_clean: np.ndarray | None = None
    scores_occluded: np.ndarray | None = None
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    runtime: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)


def _batches(n: int, size: int) -> list[np.ndarray]:
    return [np.arange(i, min(i + size, n)) for i in range(0, n, size)]


def _prefetched(items: Sequence[Any], load: Callable[[Any], Any]) -> Iterator[tuple[Any, Any]]:
    """Yield (item, load(item)) with the next item loading while the caller works."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="recogbench-load") as pool:
        future = pool.submit(load, items[0])
        for i, item in enumerate(items):
            loaded = future.result()
            if i + 1 < len(items):
                future = pool.submit(load, items[i + 1])
            yield item, loaded


class Embedder:
    """Embeds uint8 faces through the content-addressed cache; counts hits and misses.

    A verifier that returns non-finite embeddings raises under ``on_error="fail"``; under
    ``"record"`` the offending faces are found one by one and returned as ``None`` (their
    pairs then count as failures), never silently dropped.
    """

    def __init__(self, verifier, cache: EmbeddingCache | None, device: torch.device, on_error: str = "record") -> None:
        self.verifier, self.cache, self.device, self.on_error = verifier, cache, device, on_error
        self.computed = 0
        self.reused = 0
        self.bad_embeddings = 0

    def _forward(self, faces: np.ndarray) -> list[np.ndarray | None]:
        try:
            return list(self.verifier.embed(to_tensor(faces, self.device)))
        except FloatingPointError as exc:
            if self.on_error == "fail":
                raise DataError(f"{exc} (use --on-error record to score such pairs as non-matches)") from exc
        out: list[np.ndarray | None] = []
        for face in faces:
            try:
                out.append(self.verifier.embed(to_tensor(face[None], self.device))[0])
            except FloatingPointError:
                out.append(None)
                self.bad_embeddings += 1
        return out

    def __call__(self, faces: np.ndarray) -> list[np.ndarray | None]:
        """(n, S, S, 3) uint8 faces of any face size → n embeddings, (D,) float32
        L2-normalised, or None (unusable). The verifier sees each face resized to 112×112
        (:func:`~recogbench.align.resize_faces`; unchanged at 112), and the cache keys on
        exactly those pixels."""
        faces = resize_faces(faces, FACE_SIZE)
        keys = [face_key(f) for f in faces]
        found = [self.cache.get(k) if self.cache is not None else None for k in keys]
        miss = [i for i, e in enumerate(found) if e is None]
        if miss:
            for i, e in zip(miss, self._forward(faces[miss])):
                found[i] = e
                if self.cache is not None and e is not None:
                    self.cache.put(keys[i], e)
        self.computed += len(miss)
        self.reused += len(faces) - len(miss)
        return found


class RestorationQuality:
    """Accumulates how close restored faces are to the clean ones, per occluded image.

    ``*_face``: over the whole aligned face; ``*_hole``: over the occluded pixels only
    (SSIM: window centres in the hole; L1 and MSE on the [0, 1] scale, summed exactly over the
    8-bit levels by :func:`quality.level_errors`, so identical on any device and batch size).
    Computed on the composited, 8-bit output in [0, 1],
    at the run's face size — the size the inpainter worked at (256 with ``face_size=256``,
    where the 11×11 SSIM window spans a smaller part of the face than at 112), not on the
    112 crop the verifier sees.
    ``identity_cosine``: cosine between the verifier's embeddings of the clean and the
    restored face — how much of the person the restoration keeps. ``hole_equal_clean``: the
    share of hole pixels whose three 8-bit values are within one level of the clean face's —
    near 0 for an honest restoration of a textured face, 1 for ``oracle``; the leak detector
    for pipelines that paste original pixels back.
    """

    KEYS = ("psnr_face", "ssim_face", "l1_face", "mse_face", "psnr_hole", "ssim_hole", "l1_hole", "mse_hole",
            "identity_cosine", "hole_equal_clean")

    def __init__(self) -> None:
        self.values: dict[str, list[np.ndarray]] = {k: [] for k in self.KEYS}

    def add(self, restored: torch.Tensor, clean: torch.Tensor, masks: torch.Tensor,
            restored_emb: np.ndarray, clean_emb: np.ndarray) -> None:
        from recogbench import quality

        s_map = quality.ssim_map(restored, clean)
        errors = quality.level_errors(restored, clean, (None, masks))
        for where, mask, (l1, mse, _) in zip(("face", "hole"), (None, masks), errors):
            self.values[f"psnr_{where}"].append((10.0 * torch.log10(1.0 / mse)).cpu().numpy())
            self.values[f"ssim_{where}"].append(quality.ssim_from_map(s_map, mask).cpu().numpy())
            self.values[f"l1_{where}"].append(l1.cpu().numpy())
            self.values[f"mse_{where}"].append(mse.cpu().numpy())
        self.values["identity_cosine"].append(np.einsum("ij,ij->i", restored_emb, clean_emb).astype(np.float64))
        # Within one 8-bit level: a pipeline that re-quantises the pasted original (e.g. torchvision's
        # truncating ToPILImage) shifts many pixels by one level, and a leak is still a leak.
        self.values["hole_equal_clean"].append(errors[1][2].cpu().numpy())

    def summary(self) -> dict[str, float]:
        """Means over images (images with an empty hole are left out of the hole metrics;
        PSNR is +inf when a restoration is exact)."""
        out: dict[str, float] = {}
        for key, chunks in self.values.items():
            if not chunks:
                continue
            v = np.concatenate(chunks)
            v = v[~np.isnan(v)]
            out[key] = float(v.mean()) if len(v) else float("nan")
        return out


@contextlib.contextmanager
def _flushed_on_exit(cache: EmbeddingCache | None) -> Iterator[None]:
    """Persist computed embeddings however the block ends (done, error, Ctrl-C), so the
    next run of the same condition reuses them."""
    try:
        yield
    finally:
        if cache is not None:
            cache.flush()


def progress_bar(enabled: bool):
    """A rich progress display (count, elapsed, remaining) that shows nothing when disabled."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled, transient=False,
    )


def _check_failures(loaded: LoadedImages, indices: np.ndarray, protocol: PairProtocol, on_error: str) -> None:
    if on_error == "fail" and not loaded.ok.all():
        bad = int(np.flatnonzero(~loaded.ok)[0])
        raise DataError(f"{loaded.errors[bad]} (use --on-error record to score such pairs as non-matches)")


def load_protocol(config: RunConfig) -> PairProtocol:
    """The protocol named by ``config`` (a registered name and its data path), its faces
    aligned at ``config.face_size`` (a ``.bin`` pack at any size but 112 is refused)."""
    # Passed only when not the default, so protocols registered by plugins need not know it.
    sized = {"face_size": config.face_size} if config.face_size != FACE_SIZE else {}
    protocol = PROTOCOLS.create(config.protocol, data=config.data, detector=config.detector, **sized)
    got = getattr(protocol.source, "face_size", FACE_SIZE)
    if got != config.face_size:
        raise DataError(f"{protocol.origin or protocol.name}: its faces are {got}×{got}, "
                        f"but the run asks for face size {config.face_size}")
    return first_pairs_of_folds(protocol, config.limit) if config.limit else protocol


def first_pairs_of_folds(protocol: PairProtocol, n: int) -> PairProtocol:
    """The first ``n`` genuine and first ``n`` impostor pairs of each fold of ``protocol`` (in
    file order), renumbered from 0: a quick look that keeps every fold and both classes (an
    LFW fold lists its 300 genuine pairs first, so "the first pairs" alone would be one class)."""
    keep = np.sort(np.concatenate([np.flatnonzero((protocol.folds == k) & (protocol.issame == same))[:n]
                                   for k in range(protocol.n_folds) for same in (True, False)]))
    return dataclasses.replace(protocol, pairs=protocol.pairs[keep], issame=protocol.issame[keep],
                               folds=protocol.folds[keep], meta={**protocol.meta, "limit": str(n)})


VIEWS = ("restored", "occluded", "clean")
"""Each pair is scored three ways: as evaluated (occluded then restored), occluded but not
restored, and clean. The last two give every row its own recovery ratio and the clean
operating points its frozen thresholds come from, without looking up other runs."""

SAMPLES = 8
"""Occluded pairs kept as images in ``samples.npz`` for the report's sample grids."""


class MaskSource:
    """The hole masks inpainters receive: the occluder's exact mask (``oracle``, ``segmenter``
    None) or the masks an occluder segmenter predicts from the occluded face alone.

    Accumulates how well the predicted masks match the true ones (pooled over all pixels of
    the faces that have a true mask): ``mask_iou`` (binary occluder IoU) and
    ``mask_pixel_accuracy``. Faces without a true mask (real occluded photos) are left out,
    so those columns are empty, not zero, for them.
    """

    def __init__(self, spec: str, device: str, batch_size: int) -> None:
        self.spec, self.batch_size = spec, batch_size
        self.segmenter = None
        self.params: dict[str, str] = {"mask_source": "oracle"}
        if spec != "oracle":
            from recogbench.segmentation import SEGMENTERS

            parsed = SEGMENTERS.parse(spec)
            factory = SEGMENTERS.get(parsed.name)
            try:
                self.segmenter = factory.from_checkpoint(**parsed.kwargs, device=device)
            except TypeError as exc:
                raise ValueError(f"mask source {spec!r}: {exc}") from exc
            self.params = {"mask_source": parsed.name,
                           "checkpoint_sha256": str(getattr(self.segmenter, "checkpoint_sha256", ""))[:16]}
        self.counts = np.zeros(4, np.int64)  # intersection, union, equal pixels, scored pixels

    def __call__(self, occluded: torch.Tensor, true: torch.Tensor, has_truth: bool) -> torch.Tensor:
        """N×1×H×W masks for ``occluded`` N×3×H×W in [0, 1]; ``true``: the occluder's masks."""
        if self.segmenter is None:
            return true
        from recogbench.segmentation import predict_masks

        pred = predict_masks(self.segmenter, occluded, batch_size=self.batch_size)[1].to(true.device)
        if has_truth:
            p, t = pred.bool(), true.bool()
            self.counts += np.array([(p & t).sum().item(), (p | t).sum().item(), (p == t).sum().item(), t.numel()],
                                    np.int64)
        return pred

    def summary(self) -> dict[str, Any]:
        """Row columns: the source, and the predicted masks' agreement with the true ones."""
        return mask_summary(self.spec, self.params, self.counts)


def mask_summary(spec: str, params: dict[str, str], counts: np.ndarray) -> dict[str, Any]:
    """:meth:`MaskSource.summary` from its pooled ``counts`` (summed over shards of pairs)."""
    if params["mask_source"] == "oracle":
        return {"mask_source": "oracle"}
    inter, union, equal, pixels = (int(v) for v in counts)
    return {
        "mask_source": display_spec(spec),
        "mask_source_sha256": params["checkpoint_sha256"],
        "mask_iou": (inter / union if union else 1.0) if pixels else None,
        "mask_pixel_accuracy": equal / pixels if pixels else None,
    }


def _guard_self_grading(inpainter, verifier, allow: bool) -> None:
    """Refuse an identity-guided inpainter whose identity model has the verifier's own weights,
    whether it embeds a reference face or the occluded probe itself: the restoration would be
    steered by the model that grades it. Identity is judged by the weights' sha256, not the path."""
    digest = getattr(inpainter, "identity_model_digest", None)
    if digest and digest == verifier.model_digest and not allow:
        raise ValueError(
            f"inpainter {inpainter.name} is guided by the same identity model as verifier {verifier.name} "
            f"(weights sha256 {digest[:16]}…): the restoration would be graded by the model that steered it. "
            "Use another verifier, or pass --allow-self-grading to run it anyway (the row records both models)."
        )


class _OccludedBatch(NamedTuple):
    """The CPU stages' output for one batch of pairs on one side: the side's faces as loaded,
    the reference faces (identity-guided inpainters), which of them are usable, and those
    occluded with their masks (n, S, S) bool and manifest records; ``restored``: the occluded
    faces restored (n, S, S, 3) uint8 when the inpainter is a CPU stage, else None."""

    loaded: LoadedImages
    refs: LoadedImages | None
    ok: np.ndarray
    occluded: np.ndarray
    masks: np.ndarray
    records: list[dict[str, Any]]
    restored: np.ndarray | None = None


def _occlude_pairs(source, occluder: Occluder, seed: int, side: str, cols: np.ndarray, ref_cols: np.ndarray | None,
                   pairs_idx: np.ndarray, inpainter: Inpainter | None = None) -> _OccludedBatch:
    """Decode/align one side's faces (and references), occlude the usable ones and, given a
    CPU-stage ``inpainter``, restore them; a pure function of its arguments, so it gives the
    same batch in any process."""
    loaded = source.load(cols)
    refs = source.load(ref_cols) if ref_cols is not None else None
    ok = np.flatnonzero(loaded.ok if refs is None else loaded.ok & refs.ok)
    occluded, masks, records = occlude_batch(occluder, loaded.images[ok], pairs_idx[ok], side, seed)
    restored = None
    if inpainter is not None and len(ok):
        restored = to_uint8(inpainter.inpaint(to_tensor(occluded), torch.from_numpy(masks[:, None]).float()))
    return _OccludedBatch(loaded, refs, ok, occluded, masks, records, restored)


def restores_on_cpu(inpainter: Inpainter, masker: MaskSource) -> bool:
    """Whether ``inpainter`` runs in the CPU stages (beside occlusion, in the worker pool)
    rather than on the device: a backend that declares ``cpu_stage``, fed the occluder's own
    masks (a segmenter's masks come from the device) and nothing but the occluded face."""
    return (inpainter.cpu_stage and masker.segmenter is None
            and not inpainter.needs_identity and not inpainter.needs_clean)


_WORKER: dict[str, Any] = {}
"""A CPU worker process's state: the protocol's image source and the occluders and
inpainters it built."""


def _init_worker(source, run_pid: int) -> None:
    import cv2

    # Parallelism comes from the processes; nested thread pools would only fight over cores.
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    _WORKER.clear()
    _WORKER.update(source=source, occluders={}, inpainters={})
    _exit_with(run_pid)


def _exit_with(run_pid: int, poll_s: float = 0.5) -> None:
    """End this worker when the run that started the pool is gone. A run killed with SIGKILL
    cannot shut its pool down, and its forkserver lives as long as any worker does (each
    holds the forkserver's keep-alive pipe), so the orphaned workers would wait on their task
    queue forever, holding the run's stdout open."""
    import threading

    stat = Path(f"/proc/{run_pid}/stat")

    def gone() -> bool:
        if stat.parent.parent.is_dir():  # Linux: a killed run stays a zombie until its parent
            try:                          # reaps it, which may wait for the stdout we hold
                return stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
            except (OSError, IndexError):
                return True
        try:
            os.kill(run_pid, 0)
        except (ProcessLookupError, PermissionError):  # PermissionError: the pid was reused
            return True
        return False

    def watch() -> None:
        while not gone():
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-run", daemon=True).start()


def _occluder(memo: dict[str, Occluder], spec: str) -> Occluder:
    if spec not in memo:
        memo[spec] = OCCLUDERS.create(spec)
    return memo[spec]


def _cpu_inpainter(memo: dict[str, Inpainter], spec: str | None) -> Inpainter | None:
    if spec is None:
        return None
    if spec not in memo:
        memo[spec] = INPAINTERS.create(spec, device="cpu")
    return memo[spec]


def _run_task(state: dict[str, Any], kind: str, args: tuple) -> Any:
    """One CPU-stage task against ``state`` (source, occluder and inpainter memos): in a
    worker process or in the run's own process, the same function of its arguments."""
    if kind == "clean":
        return state["source"].load(*args)
    spec, inpainter, *rest = args
    return _occlude_pairs(state["source"], _occluder(state["occluders"], spec), *rest,
                          inpainter=_cpu_inpainter(state["inpainters"], inpainter))


def _worker_task(kind: str, args: tuple) -> Any:
    return _run_task(_WORKER, kind, args)


class CpuStages:
    """Decoding, detection/alignment and occlusion of upcoming batches, run ahead of the
    device: in a pool of ``workers`` processes (forkserver; each holds a copy of the image
    source), or with ``workers`` 1 in one background thread. Results come back in
    submission order, and each is a pure function of its task, so the rows do not depend on
    the number of workers. Use as a context manager (the pool lives across conditions)."""

    def __init__(self, source, workers: int = 1) -> None:
        self.source, self.workers = source, max(1, int(workers))
        self._state: dict[str, Any] = {"source": source, "occluders": {}, "inpainters": {}}
        self._pool = None
        if self.workers > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["recogbench.pipeline"])  # torch etc. imported once, then forked
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                             initargs=(source, os.getpid()))

    @classmethod
    def for_run(cls, config: RunConfig, protocol: PairProtocol) -> "CpuStages":
        """``config.workers`` processes (0: one per core, but in-process when the protocol is
        too small for a pool to pay for its start-up: fewer than four batches)."""
        workers = config.workers
        if workers == 0:
            workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            if protocol.n_pairs < 4 * config.batch_size:
                workers = 1
        return cls(protocol.source, workers)

    def occluder(self, spec: str) -> Occluder:
        """The occluder ``spec`` builds (one object per spec, as in the workers)."""
        return _occluder(self._state["occluders"], spec)

    def clean(self, chunks: Sequence[np.ndarray]) -> Iterator[tuple[np.ndarray, LoadedImages]]:
        """(image indices, loaded faces) for each chunk, in order."""
        return self._ordered(chunks, [("clean", (c,)) for c in chunks])

    def occluded(self, spec: str, seed: int, side: str, pairs: np.ndarray, batches: Sequence[np.ndarray],
                 with_refs: bool, inpainter: str | None = None) -> Iterator[tuple[np.ndarray, _OccludedBatch]]:
        """(pair indices, :class:`_OccludedBatch`) for each batch of pairs, in order;
        ``inpainter``: the spec of a CPU-stage inpainter to restore them with here."""
        col, other = pairs[:, _COLUMN[side]], pairs[:, 1 - _COLUMN[side]]
        tasks = [("occlude", (spec, inpainter, seed, side, col[b], other[b] if with_refs else None, b))
                 for b in batches]
        return self._ordered(batches, tasks)

    def _run_here(self, task: tuple[str, tuple]) -> Any:
        return _run_task(self._state, *task)

    def _ordered(self, items: Sequence[Any], tasks: list[tuple[str, tuple]]) -> Iterator[tuple[Any, Any]]:
        if self._pool is None:
            for item, (_, result) in zip(items, _prefetched(tasks, self._run_here)):
                yield item, result
            return
        window = 2 * self.workers  # enough queued that no worker idles while the device works
        futures: list[Any] = []
        try:
            for k, item in enumerate(items):
                while len(futures) < min(len(tasks), k + window):
                    futures.append(self._pool.submit(_worker_task, *tasks[len(futures)]))
                yield item, futures[k].result()
        finally:
            for f in futures:
                f.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "CpuStages":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Shard:
    """What evaluating the pairs ``start..stop-1`` of one condition produced, before scoring.

    Shards of one condition merge (:func:`merge_shards`) into exactly the result of
    evaluating all pairs at once, whatever process or machine computed each. ``emb``: per
    view and side, one embedding or None per pair; ``manifest``/``quality``: per occluded
    side; ``mask_counts``: the mask source's pooled counts; ``info``: the backends'
    parameters and what ran (the same in every shard).
    """

    start: int
    stop: int
    emb: dict[str, dict[str, list[np.ndarray | None]]]
    failures: list[str]
    manifest: dict[str, list[dict[str, Any]]]
    quality: dict[str, RestorationQuality]
    mask_counts: np.ndarray
    samples: dict[str, list[Any]]
    embedded: int
    reused: int
    info: dict[str, Any]


def evaluate_shard(
    config: RunConfig,
    protocol: PairProtocol,
    verifier,
    start: int = 0,
    stop: int | None = None,
    *,
    cache: EmbeddingCache | None = None,
    stages: CpuStages | None = None,
) -> Shard:
    """Embed the pairs ``start..stop-1`` of ``protocol`` under the condition in ``config``
    (see :func:`evaluate`). ``stages``: where decoding and occlusion run (default: in this
    process, one batch ahead)."""
    stop = protocol.n_pairs if stop is None else stop
    own_stages = stages is None
    stages = stages if stages is not None else CpuStages(protocol.source)
    try:
        return _evaluate_shard(config, protocol, verifier, start, stop, cache, stages)
    finally:
        if own_stages:
            stages.close()


def _evaluate_shard(config: RunConfig, protocol: PairProtocol, verifier, start: int, stop: int,
                    cache: EmbeddingCache | None, stages: CpuStages) -> Shard:
    device = resolve_device(config.device)
    occluder = stages.occluder(config.occlusion)
    inpainter = INPAINTERS.create(config.inpainter, device=config.device)
    _guard_self_grading(inpainter, verifier, config.allow_self_grading)
    masker = MaskSource(config.mask_source, config.device, config.batch_size)
    embed = Embedder(verifier, cache, device, config.on_error)
    photos = isinstance(occluder, NoOcclusion)  # no synthetic occluder: no true mask either
    # Classical restoration runs beside occlusion in the CPU stages, so the device never waits
    # on it; always there (whatever --workers), so the rows cannot depend on where it ran.
    cpu_inpainter = config.inpainter if restores_on_cpu(inpainter, masker) else None
    occluded_sides = () if photos and masker.segmenter is None else sides_for(config.side)
    clean_sides = [s for s in ("first", "second") if s not in occluded_sides]
    P = stop - start
    pairs = protocol.pairs[start:stop]
    emb: dict[str, dict[str, list[np.ndarray | None]]] = {v: {s: [None] * P for s in _COLUMN} for v in VIEWS}
    failures: list[str] = []
    manifest: dict[str, list[dict[str, Any]]] = {s: [] for s in occluded_sides}
    quality = {s: RestorationQuality() for s in occluded_sides}
    samples: dict[str, list[Any]] = {"pairs": [], "clean": [], "occluded": [], "restored": []}

    with progress_bar(config.progress) as progress, _flushed_on_exit(cache):
        # Clean sides: each distinct image once.
        if clean_sides:
            needed = np.unique(np.concatenate([pairs[:, _COLUMN[s]] for s in clean_sides]))
            image_emb: dict[int, np.ndarray] = {}
            image_err: dict[int, str] = {}
            task = progress.add_task(f"embed clean faces ({verifier.name})", total=len(needed))
            chunks = [needed[b] for b in _batches(len(needed), config.batch_size)]
            for idx, loaded in stages.clean(chunks):
                _check_failures(loaded, idx, protocol, config.on_error)
                ok = np.flatnonzero(loaded.ok)
                if len(ok):
                    for i, e in zip(idx[ok], embed(loaded.images[ok])):
                        if e is None:
                            image_err[int(i)] = f"{protocol.source.name_of(int(i))}: verifier returned a non-finite embedding"
                        else:
                            image_emb[int(i)] = e
                for j in np.flatnonzero(~loaded.ok):
                    image_err[int(idx[j])] = loaded.errors[j] or f"{protocol.source.name_of(int(idx[j]))}: unusable image"
                progress.advance(task, len(idx))
            for s in clean_sides:
                for p, i in enumerate(pairs[:, _COLUMN[s]]):
                    e = image_emb.get(int(i))
                    for view in VIEWS:
                        emb[view][s][p] = e
            failures += [e for _, e in sorted(image_err.items())]

        # Occluded sides: per (pair, side), reproducible by (seed, pair, side).
        for side in occluded_sides:
            col = pairs[:, _COLUMN[side]]
            task = progress.add_task(f"occlude+restore+embed {side} faces", total=P)
            batches = [start + b for b in _batches(P, config.batch_size)]
            for pairs_idx, batch in stages.occluded(config.occlusion, config.seed, side, protocol.pairs, batches,
                                                     inpainter.needs_identity, cpu_inpainter):
                loaded, refs, ok = batch.loaded, batch.refs, batch.ok
                local = pairs_idx - start
                _check_failures(loaded, col[local], protocol, config.on_error)
                for j in np.flatnonzero(~loaded.ok):
                    failures.append(loaded.errors[j] or f"{protocol.source.name_of(int(col[local[j]]))}: unusable image")
                if len(ok):
                    clean = loaded.images[ok]
                    occluded, masks, records = batch.occluded, batch.masks, batch.records
                    if clean.shape[1] != FACE_SIZE:  # at 112 the records stay as they always were
                        records = [{**r, "face_size": int(clean.shape[1])} for r in records]
                    manifest[side] += records
                    clean_t = to_tensor(clean, device)
                    mask_t = torch.from_numpy(masks[:, None]).to(device, torch.float32)
                    restored = batch.restored
                    if restored is None:
                        occluded_t = to_tensor(occluded, device)
                        restored = to_uint8(inpainter.inpaint(
                            occluded_t, masker(occluded_t, mask_t, has_truth=not photos),
                            identity=to_tensor(refs.images[ok], device) if refs is not None else None,
                            clean=clean_t if inpainter.needs_clean else None,
                        ))
                    # Identical pixels share one cache entry, so `none` embeds each face once.
                    views = {"restored": embed(restored), "occluded": embed(occluded), "clean": embed(clean)}
                    for view, vectors in views.items():
                        for p, e in zip(local[ok], vectors):
                            emb[view][side][p] = e
                    usable = [k for k in range(len(clean)) if all(views[v][k] is not None for v in VIEWS)]
                    if len(usable) < len(clean):
                        failures += [f"{protocol.source.name_of(int(col[local[ok][k]]))}: verifier returned a "
                                     "non-finite embedding" for k in range(len(clean)) if k not in usable]
                    if usable:
                        quality[side].add(to_tensor(restored[usable], device), clean_t[usable], mask_t[usable],
                                          np.stack([views["restored"][k] for k in usable]),
                                          np.stack([views["clean"][k] for k in usable]))
                    if len(samples["pairs"]) < SAMPLES and side == occluded_sides[0]:
                        take = slice(0, SAMPLES - len(samples["pairs"]))
                        samples["pairs"] += pairs_idx[ok][take].tolist()
                        for key, arr in (("clean", clean), ("occluded", occluded), ("restored", restored)):
                            samples[key] += list(arr[take])
                progress.advance(task, len(pairs_idx))

    digest = getattr(inpainter, "identity_model_digest", None)
    info = {
        "occluder_params": occluder.params(),
        "inpainter_params": inpainter.params(),
        "reads_clean": bool(inpainter.needs_clean),
        "mask_source_params": masker.params,
        "inpainter_identity_model": digest[:16] if digest else "",
        "verifier_model": verifier.model_digest[:16],
        "verifier_fingerprint": verifier.fingerprint,
        "provider": verifier.runtime,
        "device": str(device),
        "occluded_sides": list(occluded_sides),
    }
    return Shard(start, stop, emb, failures, manifest, quality, masker.counts, samples, embed.computed,
                 embed.reused, info)


def merge_shards(config: RunConfig, protocol: PairProtocol, shards: Sequence[Shard], seconds: float = 0.0) -> RunResult:
    """Score a condition from the shards that cover its pairs (any order; each pair once).

    Embeddings, manifest records and per-image quality values are concatenated in pair
    order (side by side, as one process would produce them), so the result is identical to
    evaluating all pairs at once."""
    shards = sorted(shards, key=lambda sh: sh.start)
    P = protocol.n_pairs
    if [(sh.start, sh.stop) for sh in shards] != list(zip([0] + [sh.stop for sh in shards[:-1]], [sh.stop for sh in shards])) \
            or not shards or shards[-1].stop != P:
        raise ValueError(f"shards {[(sh.start, sh.stop) for sh in shards]} do not cover pairs 0..{P - 1} once")
    info = shards[0].info
    sides = info["occluded_sides"]
    emb = {v: {s: [e for sh in shards for e in sh.emb[v][s]] for s in _COLUMN} for v in VIEWS}
    failures = [f for sh in shards for f in sh.failures]
    manifest = [r for side in sides for sh in shards for r in sh.manifest[side]]
    quality = RestorationQuality()
    for side in sides:
        for sh in shards:
            for key, chunks in sh.quality[side].values.items():
                quality.values[key] += chunks
    samples: dict[str, list[Any]] = {k: [] for k in shards[0].samples}
    for sh in shards:
        take = SAMPLES - len(samples["pairs"])
        for key, values in sh.samples.items():
            samples[key] += values[:take]

    ok_pairs = np.array([all(emb[v][s][p] is not None for v in VIEWS for s in _COLUMN) for p in range(P)], bool)
    failed = ~ok_pairs
    dim = next((e.shape[0] for s in _COLUMN for e in emb["restored"][s] if e is not None), 1)

    def cosines(view: str) -> np.ndarray:
        a, b = (np.stack([e if e is not None else np.zeros(dim, np.float32) for e in emb[view][s]]) for s in _COLUMN)
        out = np.clip(np.einsum("ij,ij->i", a, b).astype(np.float64), -1, 1)
        out[failed] = FAILED_SCORE
        return out

    scores = {view: cosines(view) for view in VIEWS}
    if failures:
        log.warning("%d image(s) could not be used; their %d pair(s) count as non-matches. First: %s",
                    len(set(failures)), int(failed.sum()), "; ".join(sorted(set(failures))[:3]))
    stats = {
        "seconds": seconds,
        "embedded": sum(sh.embedded for sh in shards),
        "reused": sum(sh.reused for sh in shards),
        "failed_images": len(set(failures)),
    }
    cover = [r["coverage"] for r in manifest if "coverage" in r]
    inpainter_params = info["inpainter_params"]
    row = {
        "occluder_params": info["occluder_params"],
        "inpainter_params": inpainter_params,
        # Shown in the leaderboard: what a reader needs to tell two rows of one backend apart.
        "inpainter_settings": ";".join(f"{k}={v}" for k, v in sorted(inpainter_params.items()) if k != "inpainter"),
        "reads_clean": info["reads_clean"],
        "mask_source_params": info["mask_source_params"],
        **mask_summary(config.mask_source, info["mask_source_params"], sum(sh.mask_counts for sh in shards)),
        "mean_coverage": float(np.mean(cover)) if cover else 0.0,
        # Objects placed by the face's pose whose image border cut off noticeably more than at
        # the frontal template place (see recogbench.occlusion.pose).
        "n_clipped": sum(1 for r in manifest if r.get("clipped")),
        "failures": int(failed.sum()),
        "verifier_model": info["verifier_model"],
        "inpainter_identity_model": info["inpainter_identity_model"],
        **quality.summary(),
    }
    result = RunResult(config, row, scores["restored"], protocol.issame.astype(bool), protocol.folds, failed,
                       Path(config.out), manifest, stats)
    result.scores_clean, result.scores_occluded = scores["clean"], scores["occluded"]
    result.samples = {k: np.asarray(v) for k, v in samples.items()} if samples["pairs"] else {}
    result.runtime = {k: info[k] for k in ("verifier_fingerprint", "provider", "device")}
    result.errors = sorted(set(failures))
    if config.save_embeddings:
        result.embeddings = {f"{view}_{side}": np.stack([e if e is not None else np.full(dim, np.nan, np.float32)
                                                         for e in emb[view][side]]).astype(np.float32)
                             for view in VIEWS for side in _COLUMN}
    return result


def evaluate(
    config: RunConfig,
    protocol: PairProtocol,
    verifier,
    *,
    cache: EmbeddingCache | None = None,
    stages: CpuStages | None = None,
) -> RunResult:
    """Score every pair of ``protocol`` under the condition in ``config`` (no files written).

    Clean images are embedded once each (shared images across pairs are loaded once);
    occluded sides are occluded per (pair, side), restored, quantised to 8 bits as a saved
    image would be, and embedded. An identity-guided inpainter gets the clean image of the
    pair's other side as its reference (the enrolled face the probe is compared with). Pairs
    with an unusable face score FAILED_SCORE. Faces are occluded, inpainted and scored for
    quality at the protocol's face size (``config.face_size``); the verifier gets each one
    resized to 112 (:class:`Embedder`). Manifest records at a size other than 112 carry
    ``face_size`` (a record without it is 112).

    With a segmenter as ``config.mask_source`` every inpainter gets the predicted mask of
    the occluded face instead of the occluder's exact one (quality is still measured on the
    true hole); with occlusion ``none`` the chosen sides are taken as they are — real
    occluded photos — and restored through the predicted mask.

    ``stages``: where decoding, alignment and occlusion run (:class:`CpuStages`; default: in
    this process, one batch ahead). The result does not depend on it.
    """
    t_start = time.perf_counter()
    shard = evaluate_shard(config, protocol, verifier, cache=cache, stages=stages)
    return merge_shards(config, protocol, [shard], time.perf_counter() - t_start)


def security_metrics(result: RunResult, config: RunConfig, summary: dict[str, Any]) -> dict[str, Any]:
    """What a security team needs beyond the summary: the same pairs clean and occluded
    (unrestored), recovery ratios, errors at operating points frozen on the clean scores,
    and seeded bootstrap 95 % intervals (pairs resampled within folds). ``summary``: the
    condition's own :func:`recogbench.metrics.summarize` row."""
    from recogbench import metrics as m

    y, f = result.issame, result.folds
    acc, gap = summary["accuracy_mean"], summary["similarity_gap"]
    acc_clean = m.kfold_accuracy(result.scores_clean, y, f).mean
    acc_occ = m.kfold_accuracy(result.scores_occluded, y, f).mean
    gap_clean = m.similarity_stats(result.scores_clean, y)["gap"]
    gap_occ = m.similarity_stats(result.scores_occluded, y)["gap"]
    # A ratio over a damage smaller than one pair's worth of accuracy (or 0.001 of cosine
    # gap) is noise divided by noise: report it as undefined rather than as 187×.
    min_acc, min_gap = 1.0 / len(y), 1e-3
    out: dict[str, Any] = {
        "accuracy_clean": acc_clean,
        "accuracy_occluded": acc_occ,
        "similarity_gap_clean": gap_clean,
        "similarity_gap_occluded": gap_occ,
        "recovery_accuracy": m.recovery_ratio(acc, acc_occ, acc_clean) if abs(acc_clean - acc_occ) >= min_acc else None,
        "recovery_gap": m.recovery_ratio(gap, gap_occ, gap_clean) if abs(gap_clean - gap_occ) >= min_gap else None,
        **m.frozen_operating_points(result.scores_clean, y, result.scores),
    }
    if config.bootstrap:
        for key, interval in m.bootstrap_ci(result.scores, y, f, n_boot=config.bootstrap, seed=config.seed).items():
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = interval if interval is not None else (None, None)
    return out


def conditions(config: RunConfig) -> list[tuple[RunConfig, str]]:
    """The single conditions ``config`` stands for, each with its suite name (or "").

    ``config.occlusion`` may name a suite (``protocols/suites``) or join specs with ``+``;
    ``config.inpainter`` and ``config.verifier`` may join specs with ``+``. Every verifier ×
    occluder × inpainter is a condition (verifier outermost); the clean condition needs no inpainter and is evaluated once — unless the
    masks come from a segmenter, where ``none`` means real occluded photos to restore.
    """
    inpainters = [s for s in config.inpainter.split("+") if s] or ["none"]
    out: list[tuple[RunConfig, str]] = []
    for ver in verifier_specs(config):
        for occ, suite in _occluders_with_suites(config.occlusion):
            for inp in (["none"] if occ == "none" and config.mask_source == "oracle" else inpainters):
                out.append((dataclasses.replace(config, verifier=ver, occlusion=occ, inpainter=inp), suite))
    return out


def _occluders_with_suites(occlusion: str) -> list[tuple[str, str]]:
    """``(occluder spec, suite it came from or "")`` for each part of ``--occlusion``:
    ``none+helwan-19`` gives ``none`` with no suite, then the nineteen with ``helwan-19``."""
    known = suites()
    out: list[tuple[str, str]] = []
    for part in (p for p in occlusion.split("+") if p):
        name = part.removeprefix("suite:")
        out += [(occ, name) for occ in known[name].occluders] if name in known else [(part, "")]
    return out


def verifier_specs(config: RunConfig) -> list[str]:
    """The verifier specs of ``config.verifier`` (``a+b``: several recognisers, one command)."""
    return [s for s in config.verifier.split("+") if s] or ["sface"]


def check_names(config: RunConfig) -> None:
    """Resolve every backend name the command holds (each inpainter of a ``+`` list, even one
    the clean condition never builds; the verifier) before any work: a typo such as ``tela``
    is a :class:`~recogbench.registry.RegistryError` with close names, not a silent success."""
    for text in expand_occlusion(config.occlusion) or ["none"]:
        try:
            OCCLUDERS.resolve(text)
        except RegistryError as exc:
            # Not an occluder: perhaps a suite's name with a typo.
            close = difflib.get_close_matches(text.removeprefix("suite:"), suites(), n=2, cutoff=0.6)
            if not close:
                raise
            raise RegistryError(f"{exc}; or the suite {' or '.join(map(repr, close))}?") from None
    for text in [s for s in config.inpainter.split("+") if s] or ["none"]:
        INPAINTERS.resolve(text)
    for text in verifier_specs(config):
        VERIFIERS.resolve(text)


def use_face_cache(config: RunConfig, protocol: PairProtocol) -> None:
    """Align ``protocol``'s photos (if it has any) through ``config.out``'s face cache."""
    if config.cache and hasattr(protocol.source, "use_face_cache"):
        protocol.source.use_face_cache(Path(config.out).expanduser() / ".cache" / "faces")


def prepare(config: RunConfig, protocol: PairProtocol | None = None) -> PairProtocol:
    """Pre-flight, before any compute: every backend name resolves, the results folder takes
    new files and its leaderboard parses, and the protocol loads and can be scored (warnings
    logged once). Photos are aligned through the results folder's face cache."""
    check_names(config)
    results.prepare_results_dir(config.out)
    protocol = protocol if protocol is not None else load_protocol(config)
    use_face_cache(config, protocol)
    for warning in protocol.check_evaluable():
        log.warning(warning)
    return protocol


def run_all(config: RunConfig) -> list[RunResult]:
    """Evaluate every condition of ``config`` (see :func:`conditions`), loading the protocol
    and the verifier once; one leaderboard row per condition. ``config.executor`` ``ray``
    spreads conditions × shards of pairs over a Ray cluster (:mod:`recogbench.distributed`)
    and writes the same rows."""
    if config.executor == "ray":
        from recogbench.distributed import run_ray

        return run_ray(config)
    protocol = prepare(config)
    verifiers: dict[str, Any] = {}
    todo = conditions(config)
    done: list[RunResult] = []
    t0 = time.perf_counter()
    with CpuStages.for_run(config, protocol) as stages:
        for k, (cond, suite) in enumerate(todo):
            log_condition(k, len(todo), cond, time.perf_counter() - t0)
            if cond.verifier not in verifiers:
                verifiers[cond.verifier] = VERIFIERS.create(cond.verifier, device=config.device, flip=config.flip)
            done.append(_run(cond, protocol, verifiers[cond.verifier], suite, stages))
    return done


def log_condition(k: int, n: int, config: RunConfig, elapsed: float) -> None:
    """Log "condition k+1/n: … (ETA …)" for a command of ``n`` conditions, the ETA from the
    mean time of the ``k`` finished so far."""
    if n < 2:
        return
    eta = f", about {format_duration(elapsed / k * (n - k))} left" if k else ""
    log.info("condition %d/%d: %s · %s · %s (%s elapsed%s)", k + 1, n, display_spec(config.occlusion),
             display_spec(config.inpainter), display_spec(config.verifier), format_duration(elapsed), eta)


def format_duration(seconds: float) -> str:
    """Seconds as ``M:SS`` or ``H:MM:SS``, for progress lines."""
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def run(config: RunConfig, *, protocol: PairProtocol | None = None, verifier=None, suite: str = "") -> RunResult:
    """Evaluate one condition and write its results under ``config.out``.

    Writes ``runs/<protocol>/<config_hash>/`` (config.json, row.json, scores.csv,
    manifest.jsonl, roc.png, hist.png) and appends the row to ``leaderboard.csv``.
    ``protocol``/``verifier`` may be passed in to reuse loaded objects across conditions.
    """
    protocol = prepare(config, protocol)
    if verifier is None:
        verifier = VERIFIERS.create(config.verifier, device=config.device, flip=config.flip)
    with CpuStages.for_run(config, protocol) as stages:
        return _run(config, protocol, verifier, suite, stages)


def _run(config: RunConfig, protocol: PairProtocol, verifier, suite: str, stages: CpuStages | None = None) -> RunResult:
    out = Path(config.out).expanduser()
    cache = EmbeddingCache(out / ".cache" / "embeddings", verifier.fingerprint) if config.cache else None
    return record(config, protocol, evaluate(config, protocol, verifier, cache=cache, stages=stages), suite)


def _check_failure_budget(config: RunConfig, protocol: PairProtocol, result: RunResult) -> None:
    """Refuse to write a row for a condition with no usable pair, or with more unusable pairs
    than ``config.max_failures`` allows: its accuracy would measure the data's damage."""
    n_failed, n = int(result.failed.sum()), len(result.failed)
    if n_failed and (n_failed == n or n_failed > config.max_failures * n):
        first = "; ".join(result.errors[:3]) or "see the log"
        what = "no pair has two usable faces" if n_failed == n else \
            f"{n_failed} of {n} pairs ({n_failed / n:.1%}) have an unusable face, more than --max-failures {config.max_failures:g}"
        hint = "" if n_failed == n else " Raise --max-failures to score them as non-matches."
        raise DataError(f"{protocol.origin or protocol.name} · {display_spec(config.occlusion)} · "
                        f"{display_spec(config.inpainter)}: {what} ({len(result.errors)} unusable image(s); "
                        f"first: {first}); no row written.{hint}")


def record(config: RunConfig, protocol: PairProtocol, result: RunResult, suite: str = "") -> RunResult:
    """Write one evaluated condition under ``config.out``: its run folder, then its
    leaderboard row (see :func:`run`). ``result``: from :func:`evaluate` or
    :func:`merge_shards`; it is completed in place with the row and run folder."""
    out = Path(config.out).expanduser()
    _check_failure_budget(config, protocol, result)
    identity = {
        **config.identity(),
        "data": protocol.fingerprint,
        "verifier_fingerprint": result.runtime["verifier_fingerprint"],
        "occluder_params": result.row.pop("occluder_params"),
        "inpainter_params": result.row.pop("inpainter_params"),
        **({"mask_source_params": params} if (params := result.row.pop("mask_source_params"))["mask_source"] != "oracle"
           else {}),
    }
    # Paths in specs become name@content-digest: no row or hash holds where files happen to be.
    for key in ("occlusion", "inpainter", "verifier", "mask_source"):
        if key in identity:
            identity[key] = portable_spec(identity[key])
    chash = config_hash(identity)
    manifest_bytes = "".join(json.dumps(r, sort_keys=True) + "\n" for r in result.manifest).encode()
    run_dir = out / "runs" / protocol.name / chash
    metrics = summarize(result.scores, result.issame, result.folds)
    security = security_metrics(result, config, metrics)
    row: dict[str, Any] = {
        "protocol": protocol.name,
        "protocol_version": protocol.version,
        "suite": suite,
        "occlusion": identity["occlusion"],
        "side": config.side if config.occlusion != "none" else "",
        "inpainter": identity["inpainter"],
        "verifier": identity["verifier"],
        "flip": config.flip,
        "face_size": config.face_size,
        "limit": config.limit,
        **result.row,
        **metrics,
        **security,
        "device": result.runtime["device"],
        "provider": result.runtime["provider"],
        "seed": config.seed,
        "manifest_hash": hashlib.sha256(manifest_bytes).hexdigest()[:16] if result.manifest else "",
        "config_hash": chash,
        "recogbench_version": __version__,
        "code_revision": results.code_revision(),
        "versions": ";".join(f"{k}={v}" for k, v in results.library_versions().items()),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(run_dir),
        "seconds": round(result.stats["seconds"], 3),
        "embedded": result.stats["embedded"],
        "reused": result.stats["reused"],
    }
    names = protocol.source.name_of
    table = pd.DataFrame({
        "pair": np.arange(protocol.n_pairs),
        "fold": protocol.folds,
        "issame": result.issame.astype(int),
        "score": result.scores,
        "score_clean": result.scores_clean,
        "score_occluded": result.scores_occluded,
        "failed": result.failed.astype(int),
        "image_a": [names(int(i)) for i in protocol.pairs[:, 0]],
        "image_b": [names(int(i)) for i in protocol.pairs[:, 1]],
    })
    # Per-run files first, the shared leaderboard last: a crash never leaves a row without its files.
    run_dir.mkdir(parents=True, exist_ok=True)
    results.write_json(run_dir / "config.json", {"config": dataclasses.asdict(config), "identity": identity})
    results.write_scores(run_dir / "scores.csv", table)
    atomic_write_bytes(run_dir / "manifest.jsonl", manifest_bytes)
    title = " · ".join([protocol.name, *map(display_spec, (config.occlusion, config.inpainter, config.verifier))])
    if result.samples:
        buf = io.BytesIO()
        np.savez_compressed(buf, **result.samples)
        atomic_write_bytes(run_dir / "samples.npz", buf.getvalue())
    if result.embeddings:
        buf = io.BytesIO()
        np.savez_compressed(buf, pair=np.arange(protocol.n_pairs), fold=protocol.folds, issame=result.issame,
                            failed=result.failed, image_a=protocol.pairs[:, 0], image_b=protocol.pairs[:, 1],
                            **result.embeddings)
        atomic_write_bytes(run_dir / "embeddings.npz", buf.getvalue())
    atomic_write_bytes(run_dir / "roc.png", plots.run_roc(result.scores, result.issame, title))
    atomic_write_bytes(run_dir / "hist.png", plots.run_histogram(result.scores, result.issame, title))
    results.write_json(run_dir / "row.json", row)
    results.append_row(out, row)
    result.row, result.run_dir = row, run_dir
    log.info("%s: accuracy %.4f ± %.4f, AUC %.4f (%d embedded, %d reused) -> %s", title,
             row["accuracy_mean"], row["accuracy_std"], row["auc"], row["embedded"], row["reused"], run_dir)
    return result
