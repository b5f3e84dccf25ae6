"""A picture of what each occluder does: a grid of examples on real aligned faces."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from recogbench.data import DataError
from recogbench.fileio import atomic_write_bytes, ensure_writable_file

log = logging.getLogger(__name__)

LABEL_WIDTH = 190


def sample_faces(n: int) -> np.ndarray:
    """Up to ``n`` aligned 112×112 faces from the sample photos shipped in installed packages."""
    from recogbench.align import FaceAligner
    from recogbench.demo import _face_crops, _sample_photos

    aligner = FaceAligner()
    faces = [r.face for r in (aligner.align(crop) for _, crop in _face_crops(_sample_photos())) if r.face is not None]
    if not faces:
        raise DataError("no sample faces found: install insightface (pip install --no-deps insightface) or pass --data")
    return np.stack([faces[i % len(faces)] for i in range(n)])


def protocol_faces(protocol: str, data: str, n: int) -> np.ndarray:
    """The first ``n`` usable faces of a protocol."""
    from recogbench.config import RunConfig
    from recogbench.pipeline import load_protocol

    proto = load_protocol(RunConfig(protocol=protocol, data=data))
    loaded = proto.source.load(list(range(min(len(proto.source), 4 * n))))
    faces = loaded.images[loaded.ok][:n]
    if len(faces) == 0:
        raise DataError(f"{data}: no usable faces for the gallery")
    return faces


def gallery(occlusion: str, out: str | Path, *, protocol: str | None = None, data: str | None = None,
            n: int = 6, seed: int = 0) -> Path:
    """Write a PNG grid: one row per occluder of ``occlusion`` (spec, suite or '+' list), ``n``
    faces per row, each occluded with its own seed as in a run (pair = column, side = second)."""
    from recogbench.occlusion import expand_occlusion, occlude_batch
    from recogbench.registry import OCCLUDERS

    out = ensure_writable_file(out, "gallery image")  # before finding and occluding faces
    faces = protocol_faces(protocol, data, n) if protocol and data else sample_faces(n)
    rows = []
    size = faces.shape[1]
    for spec in ["none", *expand_occlusion(occlusion)]:
        occluded, _, records = occlude_batch(OCCLUDERS.create(spec), faces, np.arange(len(faces)), "second", seed)
        label = np.full((size, LABEL_WIDTH, 3), 255, np.uint8)
        words = spec if spec != "none" else "clean"
        for k, line in enumerate([words[i : i + 20] for i in range(0, len(words), 20)][:3]):
            cv2.putText(label, line, (6, 24 + 20 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        if spec != "none":
            cover = np.mean([r.get("coverage", 0.0) for r in records])
            cv2.putText(label, f"cover {100 * cover:.0f}%", (6, size - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (90, 90, 90), 1, cv2.LINE_AA)
        rows.append(np.hstack([label, *occluded]))
    grid = np.vstack(rows)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    if not ok:
        raise DataError("cannot encode the gallery image")
    atomic_write_bytes(out, buf.tobytes())
    log.info("gallery of %d occluders -> %s", len(rows) - 1, out)
    return out
