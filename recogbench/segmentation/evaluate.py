"""Scoring a segmenter on a protocol's faces, occluded exactly as an evaluation run occludes them.

:func:`evaluate_segmenter` takes the same frozen :class:`~recogbench.config.RunConfig` a
``recogbench run`` takes (protocol, data, occlusion, side, seed, detector; device and batch
size as execution settings) and, per occluder of ``config.occlusion``, occludes the faces of
the occluded side(s) with :func:`~recogbench.occlusion.occlude_batch` — item ``pair``, side
``side``, seed ``config.seed``, as :func:`recogbench.pipeline.evaluate` does — so the
segmenter is scored on the very pixels whose restorations the leaderboard rows score, and
each row's ``manifest_hash`` equals theirs (same manifest records, same hashing).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recogbench.config import RunConfig
from recogbench.device import resolve_device
from recogbench.occlusion import NoOcclusion, expand_occlusion, occlude_batch, sides_for
from recogbench.registry import OCCLUDERS
from recogbench.segmentation.classes import occluder_class
from recogbench.segmentation.metrics import confusion_matrix, dominant_class, metrics_from_confusion
from recogbench.segmentation.predict import predict_masks
from recogbench.segmentation.soclnet import SOCLNet, load_segmenter
from recogbench.tensors import to_tensor

log = logging.getLogger(__name__)

__all__ = ["evaluate_segmenter", "manifest_hash"]

_COLUMN = {"first": 0, "second": 1}


def manifest_hash(records: list[dict[str, Any]]) -> str:
    """The digest :mod:`recogbench.pipeline` gives a condition's manifest (``manifest_hash``)."""
    blob = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
    return hashlib.sha256(blob).hexdigest()[:16] if records else ""


def evaluate_segmenter(checkpoint: str | Path | SOCLNet, config: RunConfig, *, protocol: Any = None,
                       limit: int | None = None) -> pd.DataFrame:
    """Per-occluder segmentation scores of a segmenter on ``config``'s protocol.

    ``checkpoint``: a file :func:`~recogbench.segmentation.load_segmenter` reads, or a
    loaded :class:`SOCLNet`. ``config``: protocol/data/detector, ``occlusion`` (one spec, a
    suite or specs joined by ``+``), ``side``, ``seed``; ``device``, ``batch_size``.
    ``protocol``: an already loaded :class:`~recogbench.data.PairProtocol` (else loaded from
    ``config``). ``limit``: only the first ``limit`` pairs (a quick look; the manifest hash
    then differs from the run's).

    One row per occluder spec, then a pooled ``all`` row over the object occluders (those
    with a class other than the background; ``none`` is left out of it): ``occlusion``,
    ``kind`` (its class name, "" when the segmenter has no class for it), ``class_id`` (-1
    then), ``side``, ``seed``, ``n_faces``, ``failures`` (faces that did not load),
    ``pixel_accuracy``, ``binary_accuracy``, ``occluder_iou``, ``mean_iou``,
    ``iou_<class>`` for each of the segmenter's classes, ``kind_accuracy`` (share of faces
    whose dominant predicted class is their occluder; for ``none``: no occluder predicted),
    ``mean_coverage`` (true hole share) and ``pred_coverage`` (predicted), then ``protocol``,
    ``protocol_version``, ``manifest_hash``, ``checkpoint``, ``checkpoint_sha256``, ``size``.
    For an occluder outside the segmenter's classes (``freeform``, ``region:*``, ``real:*``)
    only the binary columns are defined (the others NaN).
    """
    from recogbench.pipeline import load_protocol

    device = resolve_device(config.device)
    model = checkpoint if isinstance(checkpoint, SOCLNet) else load_segmenter(checkpoint, device=device)
    model = model.to(device).eval()
    if protocol is None:
        protocol = load_protocol(config)
    n_classes = model.num_classes
    pairs = np.arange(protocol.n_pairs if limit is None else min(int(limit), protocol.n_pairs))
    rows: list[dict[str, Any]] = []
    pooled = np.zeros((n_classes, n_classes), np.int64)
    pooled_faces = pooled_kind_hits = 0
    for spec in expand_occlusion(config.occlusion):
        occluder = OCCLUDERS.create(spec)
        kind = occluder_class(occluder, model.classes, strict=False)
        size = n_classes if kind >= 0 else 2
        cm = np.zeros((size, size), np.int64)
        manifest: list[dict[str, Any]] = []
        n_faces = failures = kind_hits = 0
        cover: list[float] = []
        pred_cover: list[float] = []
        sides = () if isinstance(occluder, NoOcclusion) else sides_for(config.side)
        for side in sides or ("second",):
            col = protocol.pairs[:, _COLUMN[side]]
            for start in range(0, len(pairs), config.batch_size):
                idx = pairs[start:start + config.batch_size]
                loaded = protocol.source.load(col[idx])
                ok = np.flatnonzero(loaded.ok)
                failures += len(idx) - len(ok)
                if not len(ok):
                    continue
                occluded, masks, records = occlude_batch(occluder, loaded.images[ok], idx[ok], side, config.seed)
                if sides:
                    manifest += records
                pred, _ = predict_masks(model, to_tensor(occluded, device), batch_size=config.batch_size)
                pred = pred.cpu().numpy()
                hole = masks.astype(np.int64)
                if kind >= 0:
                    cm += confusion_matrix(pred, hole * kind, n_classes)
                    kind_hits += int((dominant_class(pred, n_classes) == kind).sum())
                else:
                    cm += confusion_matrix((pred != 0).astype(np.int64), hole, 2)
                n_faces += len(ok)
                cover += masks.reshape(len(ok), -1).mean(1).tolist()
                pred_cover += (pred != 0).reshape(len(ok), -1).mean(1).tolist()
        m = metrics_from_confusion(cm)
        row: dict[str, Any] = {"occlusion": spec, "kind": model.classes[kind] if kind >= 0 else "", "class_id": kind,
                               "side": config.side, "seed": config.seed, "n_faces": n_faces, "failures": failures}
        if kind >= 0:
            row.update(m.to_dict(model.classes))
            row["kind_accuracy"] = kind_hits / n_faces if n_faces else float("nan")
        if kind > 0:
            pooled += cm
            pooled_faces += n_faces
            pooled_kind_hits += kind_hits
        if kind < 0:
            nan = float("nan")
            row.update({"pixel_accuracy": nan, "binary_accuracy": m.binary_accuracy, "occluder_iou": m.occluder_iou,
                        "mean_iou": nan, "n_pixels": float(m.n_pixels), **{f"iou_{c}": nan for c in model.classes},
                        "kind_accuracy": nan})
        row.update({"mean_coverage": float(np.mean(cover)) if cover else float("nan"),
                    "pred_coverage": float(np.mean(pred_cover)) if pred_cover else float("nan"),
                    "manifest_hash": manifest_hash(manifest)})
        rows.append(row)
        log.info("%s: %d faces, pixel accuracy %.4f, occluder IoU %.4f", spec, n_faces, row["pixel_accuracy"],
                 row["occluder_iou"])
    if pooled_faces:
        m = metrics_from_confusion(pooled)
        rows.append({"occlusion": "all", "kind": "", "class_id": -1, "side": config.side, "seed": config.seed,
                     "n_faces": pooled_faces, "failures": sum(r["failures"] for r in rows if r["class_id"] > 0),
                     **m.to_dict(model.classes), "kind_accuracy": pooled_kind_hits / pooled_faces,
                     "mean_coverage": float("nan"), "pred_coverage": float("nan"), "manifest_hash": ""})
    table = pd.DataFrame(rows)
    table["protocol"] = protocol.name
    table["protocol_version"] = getattr(protocol, "version", "")
    table["checkpoint"] = getattr(model, "checkpoint", "")
    table["checkpoint_sha256"] = getattr(model, "checkpoint_sha256", "")
    table["size"] = model.size
    return table
