"""The occluder classes a segmenter predicts, as data: stable ids keyed by occluder name.

Class ``k`` is ``OCCLUDER_CLASSES[k]``; 0 is the background (the visible face and
everything that is not an occluder). The ids are part of every checkpoint's meaning, so the
table is **append-only**: a new occluder kind gets the next id, and no entry is ever
reordered or removed. Each checkpoint also records its own class list (``classes`` in its
metadata), which is what inference and evaluation read, so an older checkpoint keeps its
meaning after the table grows.

Labels for one occluded face: the occlusion suite's exact mask (the changed pixels) times the
class id of the occluder that drew it (one occluder per face) — :func:`label_maps`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["BACKGROUND", "OCCLUDER_CLASSES", "class_ids", "kind_table", "label_maps", "occluder_class"]

OCCLUDER_CLASSES: tuple[str, ...] = (
    "background",    # 0
    "sunglasses",    # 1
    "medical_mask",  # 2
    "hand",          # 3
    "scarf",         # 4
    "cap",           # 5
    "microphone",    # 6
    "cup",           # 7
    # The further Helwan occluder categories (suite ``helwan-19``), appended.
    "book",          # 8
    "box",           # 9
    "candy",         # 10
    "cigarette",     # 11
    "envelope",      # 12
    "fast_food",     # 13
    "flower",        # 14
    "fruit",         # 15
    "glove",         # 16
    "keys",          # 17
    "pen",           # 18
    "phone",         # 19
)
"""Background plus one class per object occluder: the seven of the suite ``everyday`` (ids
1-7), then the twelve further kinds of ``helwan-19`` (ids 8-19), in the order they are
registered in :mod:`recogbench.occlusion`. Append only; never reorder."""

BACKGROUND = 0
"""The background class id: the visible face (and a clean face, occluder ``none``)."""


def class_ids(classes: Sequence[str] = OCCLUDER_CLASSES) -> dict[str, int]:
    """``{name: id}`` for a class list (a checkpoint's, or :data:`OCCLUDER_CLASSES`)."""
    if not classes or classes[0] != "background":
        raise ValueError(f"a class list starts with 'background' (id 0), got {list(classes)[:3]}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"duplicate class names in {list(classes)}")
    return {name: k for k, name in enumerate(classes)}


def _occluder_name(occluder: Any) -> str:
    """The registered name of an occluder instance or spec (``hand:target=left_eye`` → ``hand``)."""
    if isinstance(occluder, str):
        from recogbench.registry import OCCLUDERS

        return OCCLUDERS.parse(occluder).name
    return str(getattr(occluder, "name", occluder))


def occluder_class(occluder: Any, classes: Sequence[str] = OCCLUDER_CLASSES, *, strict: bool = True) -> int:
    """The class id of the occluder that drew a face: an :class:`~recogbench.occlusion.Occluder`
    or a spec string. ``none`` (the clean condition) is the background, 0.

    An occluder that is not one of ``classes`` (``freeform``, ``region:*``, ``real:*`` …)
    raises ValueError, or gives -1 with ``strict=False`` (evaluation then scores it as a
    binary hole only)."""
    name = _occluder_name(occluder)
    if name == "none":
        return BACKGROUND
    ids = class_ids(classes)
    if name in ids and name != "background":
        return ids[name]
    if strict:
        raise ValueError(f"occluder {name!r} has no segmentation class (classes: {', '.join(classes[1:])}); "
                         "train and score segmenters on the object occluders, e.g. --occlusion everyday")
    return -1


def kind_table(occluders: Iterable[Any], classes: Sequence[str] = OCCLUDER_CLASSES) -> np.ndarray:
    """(len(occluders),) int64: the class id of each occluder of a list (strict)."""
    return np.array([occluder_class(o, classes) for o in occluders], dtype=np.int64)


def label_maps(hole: torch.Tensor, kinds: torch.Tensor) -> torch.Tensor:
    """Per-pixel class labels N×H×W int64: ``hole`` (N×1×H×W, 1 = occluded) times each face's
    occluder class ``kinds`` (N int64)."""
    if hole.ndim != 4 or hole.shape[1] != 1:
        raise ValueError(f"holes must be N×1×H×W, got {tuple(hole.shape)}")
    kinds = torch.as_tensor(kinds, device=hole.device).long().reshape(-1)
    if kinds.shape[0] != hole.shape[0]:
        raise ValueError(f"{hole.shape[0]} holes but {kinds.shape[0]} occluder kinds")
    return (hole[:, 0] > 0.5).long() * kinds[:, None, None]
