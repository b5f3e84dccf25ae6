"""The data contract every protocol loader produces and the pipeline consumes.

A :class:`PairProtocol` is a list of image pairs with labels and folds over an
:class:`ImageSource` that yields aligned RGB faces by index, ``face_size×face_size``
(112 unless a raw-image protocol was loaded at a larger size). Loaders live in
:mod:`recogbench.protocols`; this module holds only the types.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

FACE_SIZE = 112
"""Side of the ArcFace-aligned face crop, in pixels: the verifiers' input, the size every
``.bin`` pack holds, and the default face size of a run."""


class DataError(ValueError):
    """Bad input data. The message names the file (and line or item) at fault."""


@dataclass
class LoadedImages:
    """A batch read from an :class:`ImageSource`.

    ``images``: (n, S, S, 3) uint8 RGB with S the source's ``face_size`` (112 unless a
    raw-image protocol was loaded larger), all zeros where loading failed.
    ``ok``: (n,) bool. ``errors``: per item ``None`` or why it failed, naming the item
    (``lfw.bin#17: corrupt or truncated JPEG header``, ``a/b.jpg: no face detected``).
    """

    images: np.ndarray
    ok: np.ndarray
    errors: list[str | None]


class ImageSource(abc.ABC):
    """Aligned faces addressed by a dense index ``0..len-1``."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def name_of(self, index: int) -> str:
        """Human-readable origin of one image (file path, ``pack.bin#17``) for messages."""

    @abc.abstractmethod
    def load(self, indices: Sequence[int]) -> LoadedImages:
        """Load the given images. Per-item failures are reported in ``ok``/``errors``,
        never raised, so that a run can count them; structural problems raise DataError."""

    @property
    @abc.abstractmethod
    def fingerprint(self) -> str:
        """Hex digest identifying the content (files and alignment settings)."""

    @property
    def face_size(self) -> int:
        """Side of the faces :meth:`load` returns (112 unless a source says otherwise)."""
        return FACE_SIZE


@dataclass(frozen=True, eq=False)
class PairProtocol:
    """A verification protocol: pairs of images, same/different labels, folds.

    ``pairs``: (P, 2) int64 indices into ``source``; ``issame``: (P,) bool;
    ``folds``: (P,) int64 in ``0..n_folds-1``.
    """

    name: str
    version: str
    source: ImageSource
    pairs: np.ndarray
    issame: np.ndarray
    folds: np.ndarray
    origin: str = ""
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = np.asarray(self.pairs)
        if p.ndim != 2 or p.shape[1] != 2:
            raise DataError(f"{self.origin or self.name}: pairs must be (P, 2), got {p.shape}")
        if len(self.issame) != len(p) or len(self.folds) != len(p):
            raise DataError(
                f"{self.origin or self.name}: {len(p)} pairs but {len(self.issame)} labels "
                f"and {len(self.folds)} fold ids"
            )
        if len(p) and (p.min() < 0 or p.max() >= len(self.source)):
            raise DataError(f"{self.origin or self.name}: pair index outside 0..{len(self.source) - 1}")
        folds = np.asarray(self.folds)
        if len(folds):
            if not np.issubdtype(folds.dtype, np.integer) or folds.min() < 0:
                raise DataError(f"{self.origin or self.name}: fold ids must be integers >= 0")
            empty = np.flatnonzero(np.bincount(folds) == 0)
            if len(empty):
                raise DataError(
                    f"{self.origin or self.name}: fold(s) {', '.join(str(k + 1) for k in empty)} of "
                    f"{int(folds.max()) + 1} hold no pairs"
                )

    def fold_sizes(self) -> np.ndarray:
        """(K, 2) int: per fold, the number of genuine and of impostor pairs."""
        k = self.n_folds
        genuine = np.bincount(self.folds[self.issame], minlength=k)
        return np.stack([genuine, np.bincount(self.folds, minlength=k) - genuine], axis=1)

    def check_evaluable(self) -> list[str]:
        """Raise DataError if k-fold verification cannot be scored on these pairs (fewer
        than 2 folds, or no genuine or no impostor pairs at all); return warnings for what
        can be scored but deserves a look (unequal folds, folds missing a class)."""
        where = self.origin or self.name
        sizes = self.fold_sizes()
        if self.n_folds < 2:
            raise DataError(f"{where}: {self.n_folds} fold(s); k-fold accuracy needs at least 2")
        n_gen, n_imp = (int(x) for x in sizes.sum(axis=0))
        if not n_gen or not n_imp:
            raise DataError(f"{where}: {n_gen} genuine and {n_imp} impostor pairs; verification needs both")
        warnings = []
        totals = sizes.sum(axis=1)
        if totals.min() != totals.max():
            warnings.append(
                f"{where}: unequal folds ({totals.min()} to {totals.max()} pairs); accuracy is the "
                "unweighted mean over folds, so a small fold counts as much as a large one"
            )
        one_class = [str(k + 1) for k in np.flatnonzero(sizes.min(axis=1) == 0)]
        if one_class:
            warnings.append(f"{where}: fold(s) {', '.join(one_class)} hold only one class of pair")
        return warnings

    @property
    def n_pairs(self) -> int:
        return len(self.pairs)

    @property
    def n_folds(self) -> int:
        return int(self.folds.max()) + 1 if len(self.folds) else 0

    @property
    def fingerprint(self) -> str:
        """Digest of the images and of the pair list, labels and folds."""
        import hashlib

        h = hashlib.sha256(self.source.fingerprint.encode())
        for arr in (self.pairs.astype(np.int64), self.issame.astype(np.bool_), self.folds.astype(np.int64)):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()


def contiguous_folds(n_pairs: int, n_folds: int = 10) -> np.ndarray:
    """Fold ids for ``n_pairs`` split into ``n_folds`` contiguous, equal parts in file order
    (the insightface `.bin` convention). Raises DataError if they cannot be equal."""
    if n_folds <= 0 or n_pairs % n_folds:
        raise DataError(f"{n_pairs} pairs cannot be split into {n_folds} equal folds")
    return np.repeat(np.arange(n_folds, dtype=np.int64), n_pairs // n_folds)
