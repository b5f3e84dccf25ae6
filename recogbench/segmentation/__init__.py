"""Occluder segmentation for blind de-occlusion: find the hole (and which object made it)
so an inpainter can restore a face without being told where the occluder is.

* :class:`SOCLNet` — DeepLabv3 (ResNet-50, output stride 8, ASPP 12/24/36) with a
  position-attention block, after "De-Occlusion Face Model based on Deep Occlusor
  Segmentation and Deep Inpainting Models" (IEEE LATAM 2025); :mod:`.soclnet` says which
  parts are the paper's and which are ours.
* :data:`OCCLUDER_CLASSES` — the stable class ids (background + one per object occluder).
* :func:`predict_masks` — images N×3×H×W in [0, 1] → (class map N×H×W int64, hole mask
  N×1×H×W float {0, 1}).
* :func:`load_segmenter` / :func:`save_segmenter` — safetensors with architecture, classes
  and native size in the metadata.
* :func:`segmentation_metrics` — pixel accuracy, binary occluder IoU, per-class and mean IoU
  (pure functions; :class:`SegmentationScores` accumulates batches).
* :class:`SOCLNetTrainer` — plugs into :func:`recogbench.train.train`
  (``needs_occluder_kinds = True``).
* :func:`evaluate_segmenter` — per-occluder scores on a protocol occluded as a run occludes it.

Segmenters are looked up by name in :data:`SEGMENTERS` (lazy ``"module:Class"`` targets;
third parties join through the ``recogbench.segmenters`` entry-point group).
"""

from __future__ import annotations

from typing import Any

from recogbench.registry import Registry
from recogbench.segmentation.classes import BACKGROUND, OCCLUDER_CLASSES, class_ids, label_maps, occluder_class
from recogbench.segmentation.metrics import (
    SegmentationMetrics,
    SegmentationScores,
    confusion_matrix,
    dominant_class,
    metrics_from_confusion,
    segmentation_metrics,
)

SEGMENTERS: Registry[Any] = Registry("segmenter", "recogbench.segmenters")
SEGMENTERS.register("soclnet", "recogbench.segmentation.soclnet:SOCLNet")

__all__ = [
    "BACKGROUND", "OCCLUDER_CLASSES", "SEGMENTERS", "SOCLNet", "SOCLNetTrainer", "SegmentationMetrics",
    "SegmentationScores", "class_ids", "confusion_matrix", "dominant_class", "evaluate_segmenter", "label_maps",
    "load_segmenter", "metrics_from_confusion", "occluder_class", "predict_masks", "save_segmenter",
    "segmentation_metrics",
]

_LAZY = {
    "SOCLNet": "recogbench.segmentation.soclnet",
    "load_segmenter": "recogbench.segmentation.soclnet",
    "save_segmenter": "recogbench.segmentation.soclnet",
    "predict_masks": "recogbench.segmentation.predict",
    "SOCLNetTrainer": "recogbench.segmentation.trainer",
    "evaluate_segmenter": "recogbench.segmentation.evaluate",
}


def __getattr__(name: str) -> Any:
    """The network, trainer and evaluation import torch, the trunk and pandas on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
