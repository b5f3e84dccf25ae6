"""Segmentation metrics as pure functions over a confusion matrix (no I/O, no model).

For class maps ``pred`` and ``true`` of equal shape with ids in ``0 … n_classes-1`` (0 =
background), the confusion matrix ``C`` counts pixels with ``C[t, p]`` = true class ``t``
predicted as ``p`` (scikit-learn's ``confusion_matrix`` convention). From it:

* ``pixel_accuracy`` = trace(C) / ΣC — the share of pixels given their exact class;
* ``occluder_iou`` — binary IoU of "any occluder" (class ≠ 0) vs background:
  TP = Σ C[1:, 1:], FP = Σ C[0, 1:], FN = Σ C[1:, 0], IoU = TP / (TP + FP + FN) (a pixel of
  one occluder class predicted as another still counts as found: this is the hole mask an
  inpainter receives);
* ``binary_accuracy`` — pixel accuracy of that binary hole mask;
* ``per_class_iou[c]`` = C[c, c] / (Σ_p C[c, p] + Σ_t C[t, c] − C[c, c]), NaN for a class
  absent from both maps;
* ``mean_iou`` — the mean of ``per_class_iou`` over the classes present in either map
  (scikit-learn's ``jaccard_score(average="macro")``).

Undefined values are NaN (an empty map; ``occluder_iou`` when neither map has an occluder
pixel), never a silent 0. :class:`SegmentationScores` accumulates batches and gives exactly
what the one-shot :func:`segmentation_metrics` gives on all pixels at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["SegmentationMetrics", "SegmentationScores", "confusion_matrix", "dominant_class", "metrics_from_confusion",
           "segmentation_metrics"]


def _as_int_array(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, on any device
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{what} must hold integer class ids, got dtype {arr.dtype}")
    return arr


def confusion_matrix(pred_classes: Any, true_classes: Any, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 pixel counts, rows = true class, columns = predicted.

    ``pred_classes``/``true_classes``: integer arrays or tensors of one shape (e.g. N×H×W)."""
    pred = _as_int_array(pred_classes, "pred_classes")
    true = _as_int_array(true_classes, "true_classes")
    if pred.shape != true.shape:
        raise ValueError(f"pred_classes {pred.shape} and true_classes {true.shape} differ in shape")
    n = int(n_classes)
    if n < 2:
        raise ValueError(f"n_classes must be >= 2 (background and one occluder), got {n}")
    for arr, what in ((pred, "pred_classes"), (true, "true_classes")):
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            raise ValueError(f"{what} has ids outside 0..{n - 1}: [{arr.min()}, {arr.max()}]")
    flat = true.astype(np.int64).ravel() * n + pred.astype(np.int64).ravel()
    return np.bincount(flat, minlength=n * n).reshape(n, n).astype(np.int64)


@dataclass(frozen=True)
class SegmentationMetrics:
    """Scores of one or many class maps (see the module docstring for the formulas)."""

    pixel_accuracy: float
    binary_accuracy: float
    occluder_iou: float
    mean_iou: float
    per_class_iou: tuple[float, ...]
    n_pixels: int

    def to_dict(self, classes: Sequence[str] | None = None) -> dict[str, float]:
        """Flat columns: the four scalars, ``n_pixels`` and ``iou_<class name or id>`` per class."""
        names = list(classes) if classes is not None else [str(k) for k in range(len(self.per_class_iou))]
        if len(names) != len(self.per_class_iou):
            raise ValueError(f"{len(names)} class names for {len(self.per_class_iou)} classes")
        out: dict[str, float] = {"pixel_accuracy": self.pixel_accuracy, "binary_accuracy": self.binary_accuracy,
                                 "occluder_iou": self.occluder_iou, "mean_iou": self.mean_iou,
                                 "n_pixels": float(self.n_pixels)}
        out.update({f"iou_{name}": v for name, v in zip(names, self.per_class_iou)})
        return out


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else math.nan


def metrics_from_confusion(cm: np.ndarray) -> SegmentationMetrics:
    """:class:`SegmentationMetrics` from a confusion matrix (rows true, columns predicted)."""
    cm = np.asarray(cm, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] < 2:
        raise ValueError(f"a confusion matrix is square with >= 2 classes, got {cm.shape}")
    total = int(cm.sum())
    diag = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_class = np.where(union > 0, diag / np.maximum(union, 1), np.nan)
    present = union > 0
    tp, fp, fn = int(cm[1:, 1:].sum()), int(cm[0, 1:].sum()), int(cm[1:, 0].sum())
    return SegmentationMetrics(
        pixel_accuracy=_ratio(diag.sum(), total),
        binary_accuracy=_ratio(total - fp - fn, total),
        occluder_iou=_ratio(tp, tp + fp + fn),
        mean_iou=float(per_class[present].mean()) if present.any() else math.nan,
        per_class_iou=tuple(float(v) for v in per_class),
        n_pixels=total,
    )


def segmentation_metrics(pred_classes: Any, true_classes: Any, n_classes: int) -> SegmentationMetrics:
    """Pixel accuracy, binary occluder IoU, per-class IoU and mean IoU over the classes present.

    >>> import numpy as np
    >>> m = segmentation_metrics(np.array([[0, 1], [1, 2]]), np.array([[0, 1], [2, 2]]), 3)
    >>> m.pixel_accuracy, m.occluder_iou, m.per_class_iou
    (0.75, 1.0, (1.0, 0.5, 0.5))
    """
    return metrics_from_confusion(confusion_matrix(pred_classes, true_classes, n_classes))


class SegmentationScores:
    """Accumulates batches; :meth:`compute` equals :func:`segmentation_metrics` on all of them."""

    def __init__(self, n_classes: int) -> None:
        self.n_classes = int(n_classes)
        self.confusion = np.zeros((self.n_classes, self.n_classes), np.int64)

    def update(self, pred_classes: Any, true_classes: Any) -> None:
        self.confusion += confusion_matrix(pred_classes, true_classes, self.n_classes)

    def compute(self) -> SegmentationMetrics:
        return metrics_from_confusion(self.confusion)


def dominant_class(pred_classes: Any, n_classes: int) -> np.ndarray:
    """Per map (first axis), the most frequent non-background class, 0 when no pixel is an
    occluder (ties: the lower id). ``pred_classes`` N×…; returns (N,) int64 — which occluder
    a face is judged to wear."""
    pred = _as_int_array(pred_classes, "pred_classes")
    n = int(n_classes)
    flat = pred.reshape(len(pred), -1)
    out = np.zeros(len(pred), np.int64)
    for i, row in enumerate(flat):
        counts = np.bincount(row, minlength=n)[1:]
        if counts.sum():
            out[i] = int(np.argmax(counts)) + 1
    return out
