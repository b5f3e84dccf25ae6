"""Stored training pairs: occluded faces with their clean originals (and optional masks) on disk.

``recogbench train INPAINTER --pairs DIR`` trains on these instead of synthetic occlusion.
Two layouts are recognised (:func:`find_pairs`):

* ``occ-orig`` — ``DIR/Occ_imgs/`` (occluded), ``DIR/Orig_imgs/`` (clean) and optionally
  ``DIR/Segmentations/`` (occluder masks, white = occluder: a grey value above 127). Partners
  share their path relative to their folder without the suffix (``Occ_imgs/a/001.jpg`` ↔
  ``Orig_imgs/a/001.png``). Every occluded image needs its clean partner and every clean
  image its occluded one; with a ``Segmentations/`` folder every occluded image needs its mask.
* ``maskedface-net`` — MaskedFace-Net (Cabani et al. 2020) beside its FFHQ originals,
  anywhere under ``DIR``: an occluded image is named ``<id>_Mask.jpg`` (CMFD, correctly worn)
  or ``<id>_Mask_<Parts>.jpg`` (IMFD: ``_Mask_Mouth_Chin``, ``_Mask_Nose_Mouth``,
  ``_Mask_Chin``), its clean partner is the FFHQ image whose stem is ``<id>`` (``00000.png``),
  in any subfolder. One FFHQ face may have several masked versions; FFHQ faces without one are
  ignored. There are no masks.

Without stored masks the hole is derived from the pair, at the training size after both
images are resized: a pixel is a hole where any channel differs by more than
:data:`DIFF_THRESHOLD` (0.1 of the range, 25.5 levels in 8 bits), then cleaned by a 3×3
morphological opening (drops isolated pixels of compression noise) and closing (fills pinholes
where the occluder's colour is close to the face's). A blind trainer does not read the hole;
it still gives the validation's hole metrics.

Images are taken as aligned face crops: partners must have equal sizes (an error names both
files otherwise), must be square, and are resized to the training size (area interpolation
down, cubic up; masks by area then > 0.5). Every problem found — a missing partner, an image
that does not decode, a size mismatch — is reported together in one DataError naming the files.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recogbench.data import DataError
from recogbench.imageio import decode_image, read_file, read_header

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
OCC_DIR, ORIG_DIR, SEG_DIR = "Occ_imgs", "Orig_imgs", "Segmentations"
LAYOUTS = ("occ-orig", "maskedface-net")
MASKED_STEM = re.compile(r"^(?P<id>.+?)_Mask(?:_[A-Za-z]+)*$")
"""A MaskedFace-Net file stem: ``00000_Mask`` (CMFD) or ``00000_Mask_Mouth_Chin`` (IMFD) → id ``00000``."""
DIFF_THRESHOLD = 0.1
"""A derived hole pixel differs from the clean face by more than this (any channel, [0, 1] scale)."""
MAX_REPORTED = 8


@dataclass(frozen=True)
class PairFiles:
    """One stored pair: the occluded image, its clean partner and, when stored, its mask."""

    key: str
    occluded: Path
    clean: Path
    mask: Path | None = None


@dataclass
class StoredPairs:
    """Loaded pairs at one size: ``clean`` and ``occluded`` (n, S, S, 3) uint8 RGB, ``holes``
    (n, S, S) bool (1 = hole), and ``info`` (source, layout, fingerprint, counts)."""

    clean: np.ndarray
    occluded: np.ndarray
    holes: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.clean)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _keyed(folder: Path, problems: list[str]) -> dict[str, Path]:
    """Images under ``folder`` by relative path without suffix; two files sharing one key are a problem."""
    out: dict[str, Path] = {}
    for p in _images(folder):
        key = p.relative_to(folder).with_suffix("").as_posix()
        if key in out:
            problems.append(f"{p}: same name as {out[key]} (partners are matched by name without suffix)")
            continue
        out[key] = p
    return out


def _raise(folder: Path, problems: list[str]) -> None:
    if problems:
        more = f" … (+{len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise DataError(f"{folder}: {len(problems)} problem(s) with the stored pairs: "
                        + "; ".join(problems[:MAX_REPORTED]) + more)


def detect_layout(folder: str | Path) -> str:
    """``occ-orig`` when ``folder`` holds ``Occ_imgs/`` and ``Orig_imgs/``, ``maskedface-net`` when
    some image under it is named ``*_Mask*``; DataError describing both layouts otherwise."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: stored pairs not found (expected a folder)")
    if (folder / OCC_DIR).is_dir() or (folder / ORIG_DIR).is_dir():
        missing = [d for d in (OCC_DIR, ORIG_DIR) if not (folder / d).is_dir()]
        if missing:
            raise DataError(f"{folder}: has {OCC_DIR}/ or {ORIG_DIR}/ but not {', '.join(m + '/' for m in missing)}")
        return "occ-orig"
    if any(MASKED_STEM.match(p.stem) for p in _images(folder)):
        return "maskedface-net"
    raise DataError(f"{folder}: no stored pairs found: expected {OCC_DIR}/ + {ORIG_DIR}/ (+ {SEG_DIR}/), or "
                    "MaskedFace-Net images <id>_Mask*.jpg beside the clean <id>.png")


def find_pairs(folder: str | Path) -> tuple[str, list[PairFiles]]:
    """(layout, pairs sorted by key) of a stored-pairs folder (see the module docstring);
    DataError naming every file without its partner."""
    folder = Path(folder).expanduser()
    layout = detect_layout(folder)
    problems: list[str] = []
    pairs: list[PairFiles] = []
    if layout == "occ-orig":
        occ = _keyed(folder / OCC_DIR, problems)
        orig = _keyed(folder / ORIG_DIR, problems)
        seg_dir = folder / SEG_DIR
        seg = _keyed(seg_dir, problems) if seg_dir.is_dir() else None
        for key, path in occ.items():
            if key not in orig:
                problems.append(f"{path}: no clean partner {ORIG_DIR}/{key}.*")
            if seg is not None and key not in seg:
                problems.append(f"{path}: no mask {SEG_DIR}/{key}.*")
        for key, path in orig.items():
            if key not in occ:
                problems.append(f"{path}: no occluded partner {OCC_DIR}/{key}.*")
        for key, path in (seg or {}).items():
            if key not in occ:
                problems.append(f"{path}: mask without an occluded image {OCC_DIR}/{key}.*")
        pairs = [PairFiles(k, occ[k], orig[k], seg[k] if seg is not None else None)
                 for k in sorted(occ) if k in orig and (seg is None or k in seg)]
    else:
        masked: list[tuple[str, Path]] = []
        clean: dict[str, list[Path]] = {}
        for p in _images(folder):
            m = MASKED_STEM.match(p.stem)
            if m:
                masked.append((m.group("id"), p))
            else:
                clean.setdefault(p.stem, []).append(p)
        for ident, path in masked:
            found = clean.get(ident, [])
            if not found:
                problems.append(f"{path}: no clean partner {ident}.* under {folder}")
            elif len(found) > 1:
                problems.append(f"{path}: several clean partners named {ident}: {', '.join(map(str, found[:3]))}")
            else:
                pairs.append(PairFiles(path.relative_to(folder).with_suffix("").as_posix(), path, found[0]))
        pairs.sort(key=lambda p: p.key)
    _raise(folder, problems)
    if not pairs:
        raise DataError(f"{folder}: no stored pairs found ({layout} layout)")
    return layout, pairs


def fingerprint(layout: str, pairs: list[PairFiles], root: Path) -> str:
    """sha256 of the layout, the derivation threshold and every file's relative path, size and mtime."""
    h = hashlib.sha256(f"{layout}\0{DIFF_THRESHOLD}".encode())
    for pair in pairs:
        for p in (pair.occluded, pair.clean, pair.mask):
            if p is None:
                h.update(b"\0-")
                continue
            st = p.stat()
            h.update(f"\0{p.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()


def derive_hole(occluded: np.ndarray, clean: np.ndarray, threshold: float = DIFF_THRESHOLD) -> np.ndarray:
    """(H, W) bool hole of one pair of (H, W, 3) uint8 images: any channel differs by more than
    ``threshold`` (of the [0, 1] range), then a 3×3 opening and closing."""
    import cv2

    diff = np.abs(occluded.astype(np.int16) - clean.astype(np.int16)).max(axis=2)
    hole = (diff > threshold * 255).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    hole = cv2.morphologyEx(hole, cv2.MORPH_OPEN, kernel)
    hole = cv2.morphologyEx(hole, cv2.MORPH_CLOSE, kernel)
    return hole.astype(bool)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if img.shape[0] == size:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


def _mask(img: np.ndarray, path: Path, size: int) -> np.ndarray:
    hole = img > 127
    if not hole.any() and img.max() > 0:
        raise DataError(f"{path}: mask has values up to {int(img.max())} but none above 127 (white = occluder); "
                        "a label map with small values? save it with the occluder at 255")
    return _resize(hole.astype(np.float32), size) > 0.5


def load_pairs(folder: str | Path, size: int, progress: Any = None) -> StoredPairs:
    """Every pair of ``folder`` at ``size``×``size``; DataError listing every file that is missing a
    partner, does not decode, differs in size from its partner or is not square."""
    folder = Path(folder).expanduser()
    layout, pairs = find_pairs(folder)
    n = len(pairs)
    clean = np.empty((n, size, size, 3), np.uint8)
    occluded = np.empty((n, size, size, 3), np.uint8)
    holes = np.zeros((n, size, size), bool)
    problems: list[str] = []
    derived = 0
    task = progress.add_task("loading stored pairs", total=n) if progress is not None else None
    for i, pair in enumerate(pairs):
        try:
            blobs = {k: read_file(p) for k, p in (("occluded", pair.occluded), ("clean", pair.clean), ("mask", pair.mask))
                     if p is not None}
            paths = {"occluded": pair.occluded, "clean": pair.clean, "mask": pair.mask}
            dims = {k: (h.width, h.height) for k, h in ((k, read_header(b, str(paths[k]))) for k, b in blobs.items())}
            w, h = dims["occluded"]
            for k, d in dims.items():
                if d != (w, h):
                    raise DataError(f"{paths[k]} is {d[0]}x{d[1]} but its partner {pair.occluded} is {w}x{h}")
            if w != h:
                raise DataError(f"{pair.occluded}: {w}x{h} is not square (stored pairs must be aligned square face crops)")
            occ = decode_image(blobs["occluded"], str(pair.occluded))
            cln = decode_image(blobs["clean"], str(pair.clean))
            for img, p in ((occ, pair.occluded), (cln, pair.clean)):
                if img.shape[:2] != (h, w):  # EXIF orientation can turn an image after its header was read
                    raise DataError(f"{p}: decodes to {img.shape[1]}x{img.shape[0]}, its partner's header says {w}x{h}")
            occluded[i], clean[i] = _resize(occ, size), _resize(cln, size)
            if pair.mask is not None:
                m = decode_image(blobs["mask"], str(pair.mask), mode="gray")
                if m.shape != (h, w):
                    raise DataError(f"{pair.mask}: decodes to {m.shape[1]}x{m.shape[0]}, its partner is {w}x{h}")
                holes[i] = _mask(m, pair.mask, size)
            else:
                holes[i] = derive_hole(occluded[i], clean[i])
                derived += 1
        except DataError as exc:
            problems.append(str(exc))
        if task is not None:
            progress.advance(task, 1)
    _raise(folder, problems)
    empty = int((~holes.any(axis=(1, 2))).sum())
    if empty:
        log.warning("%d of %d stored pairs have an empty hole (occluded equals clean%s)", empty, n,
                    f" within {DIFF_THRESHOLD}" if derived else "")
    info = {
        "source": str(folder), "layout": layout, "fingerprint": fingerprint(layout, pairs, folder),
        "n_images": n, "n_dropped": 0, "dropped_examples": [], "n_pairs": n,
        "n_masks_stored": n - derived, "n_masks_derived": derived, "n_empty_holes": empty,
        "mean_hole_coverage": float(holes.mean()) if n else 0.0,
    }
    if derived:
        info["mask_threshold"] = DIFF_THRESHOLD
    return StoredPairs(clean, occluded, holes, info)
