"""Protocol loaders: insightface ``.bin`` packs, raw LFW / CFP folders, generic pair CSVs.

Every loader returns a :class:`~recogbench.data.PairProtocol`. Protocol *definitions*
(name, version, expected size, pack file name, raw loader) are data: one TOML file each in
the top-level ``protocols`` package. :func:`load_protocol` picks the loader for a definition
and a user's data path; :func:`register_builtin_protocols` (run at import) makes every
definition available through :data:`recogbench.registry.PROTOCOLS`.

Decisions worth knowing:

* ``.bin`` packs carry no folds: they are 10 contiguous equal folds in file order.
  :func:`write_bin` therefore writes pairs **grouped by fold** (stable within a fold) when
  the folds are equal-sized but not contiguous, and refuses unequal folds.
* A pair CSV without a ``fold`` column gets ``K = min(10, n_genuine, n_impostor)`` folds:
  the i-th genuine pair (in file order) goes to fold ``i % K``, likewise the i-th impostor
  pair, so every fold holds both classes.
* CFP list paths are resolved relative to the ``Protocol/`` folder (the official files use
  ``../Data/Images/...``); only when that file is missing and the path exists relative to
  the CFP root instead is the root-relative reading used.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import logging
import os
import pickle
import posixpath
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from recogbench.cache import FaceCache
from recogbench.fileio import atomic_write_bytes
from recogbench.imageio import MAX_PIXELS, decode_image, read_image
from recogbench.data import FACE_SIZE, DataError, ImageSource, LoadedImages, PairProtocol, contiguous_folds
from recogbench.registry import PROTOCOLS, RegistryError
from recogbench.safe_pickle import UnsafePickleError, safe_load

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

if TYPE_CHECKING:
    from recogbench.align import FaceAligner

log = logging.getLogger(__name__)

__all__ = [
    "EncodedImageSource",
    "FileImageSource",
    "PairEntry",
    "ProtocolDef",
    "UnsafePickleError",
    "load_bin",
    "load_cfp",
    "load_lfw",
    "load_pairs_csv",
    "load_protocol",
    "parse_cfp_pairs",
    "parse_lfw_pairs",
    "parse_pairs_csv",
    "protocol_definitions",
    "register_builtin_protocols",
    "write_bin",
]

PairEntry = tuple[str, str, bool, int]
"""One parsed pair: (relative path a, relative path b, same identity, fold id 0-based)."""

_MAX_LISTED = 5


def _empty_batch(n: int, size: int = FACE_SIZE) -> LoadedImages:
    return LoadedImages(
        images=np.zeros((n, size, size, 3), np.uint8),
        ok=np.zeros(n, np.bool_),
        errors=[None] * n,
    )


def _check_indices(indices: Sequence[int], n: int, origin: str) -> list[int]:
    out = [int(i) for i in indices]
    bad = [i for i in out if not 0 <= i < n]
    if bad:
        raise DataError(f"{origin}: image index {bad[0]} outside 0..{n - 1}")
    return out


# --------------------------------------------------------------------------------------
# Image sources
# --------------------------------------------------------------------------------------


class EncodedImageSource(ImageSource):
    """Already-aligned 112×112 faces stored as encoded blobs (JPEG/PNG bytes), e.g. a ``.bin``.

    ``origin`` (the pack's path) prefixes item names: ``lfw.bin#17``.
    """

    def __init__(self, blobs: Sequence[bytes], origin: str) -> None:
        self._blobs = list(blobs)
        self.origin = origin
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self._blobs)

    def name_of(self, index: int) -> str:
        return f"{self.origin}#{index}"

    def blob(self, index: int) -> bytes:
        """The encoded bytes of one image."""
        return self._blobs[index]

    def load(self, indices: Sequence[int]) -> LoadedImages:
        """Decode the given images (:func:`recogbench.imageio.decode_image`). Undecodable or
        non-112×112 items get ok=False, and the header is checked before decoding."""
        idx = _check_indices(indices, len(self._blobs), self.origin)
        out = _empty_batch(len(idx))
        for k, i in enumerate(idx):
            try:
                out.images[k] = decode_image(self._blobs[i], self.name_of(i), size=(FACE_SIZE, FACE_SIZE))
            except DataError as exc:
                out.errors[k] = str(exc)
            else:
                out.ok[k] = True
        return out

    @property
    def fingerprint(self) -> str:
        """sha256 over the blob lengths and bytes (the encoded content, not decoded pixels)."""
        if self._fingerprint is None:
            h = hashlib.sha256(b"encoded-images\0")
            h.update(np.fromiter((len(b) for b in self._blobs), np.int64, len(self._blobs)).tobytes())
            for b in self._blobs:
                h.update(b)
            self._fingerprint = h.hexdigest()
        return self._fingerprint


class FileImageSource(ImageSource):
    """Unaligned photos on disk, detected and aligned on load by a ``FaceAligner``.

    ``relpaths`` are relative to ``root`` (absolute paths are kept as they are). Faces come
    out at the aligner's ``size`` (``face_size``; 112 for an aligner without one). Aligned
    faces — and failures — are cached per index, so an image shared by several pairs is
    aligned once. Missing files raise :class:`DataError` at construction unless
    ``check_files=False``. Photos over ``max_pixels`` (width × height) are refused from
    their header, before decoding.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        relpaths: Sequence[str],
        aligner: Any,
        origin: str,
        *,
        check_files: bool = True,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.root = Path(root)
        self.max_pixels = max_pixels
        self.relpaths = [str(p) for p in relpaths]
        self.paths = [self.root / p for p in self.relpaths]
        self.aligner = aligner
        self._face_size = int(getattr(aligner, "size", FACE_SIZE))
        self.origin = origin
        self._cache: dict[int, tuple[np.ndarray | None, str | None]] = {}
        self.face_cache: FaceCache | None = None
        self._fingerprint: str | None = None
        if check_files:
            missing = [p for p in self.paths if not p.is_file()]
            if missing:
                listed = ", ".join(str(p) for p in missing[:_MAX_LISTED])
                more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
                raise DataError(
                    f"{origin}: {len(missing)} of {len(self.paths)} image files not found under "
                    f"{self.root}: {listed}{more}"
                )

    def __len__(self) -> int:
        return len(self.paths)

    def name_of(self, index: int) -> str:
        return str(self.paths[index])

    @property
    def face_size(self) -> int:
        return self._face_size

    def _align_one(self, index: int) -> tuple[np.ndarray | None, str | None]:
        path = self.paths[index]
        try:
            rgb = read_image(path, max_pixels=self.max_pixels)
        except DataError as exc:
            return None, str(exc)
        result = self.aligner.align(rgb)
        face = getattr(result, "face", None)
        if face is None:
            return None, f"{path}: {getattr(result, 'error', None) or 'no face found'}"
        face = np.asarray(face)
        want = (self._face_size, self._face_size, 3)
        if face.shape != want or face.dtype != np.uint8:
            return None, f"{path}: aligner returned {face.dtype} {face.shape}, expected uint8 {want}"
        return face, None

    def __getstate__(self) -> dict[str, Any]:
        # A copy for a worker process: the aligned faces travel through the face cache instead.
        return {**self.__dict__, "_cache": {}}

    def use_face_cache(self, root: str | os.PathLike[str]) -> None:
        """Keep aligned faces (and no-face results) on disk under ``root``
        (:class:`~recogbench.cache.FaceCache`), shared by later runs and worker processes."""
        self.face_cache = FaceCache(root, str(self.aligner.fingerprint), self._face_size)

    def _aligned(self, index: int) -> tuple[np.ndarray | None, str | None]:
        if self.face_cache is None:
            return self._align_one(index)
        try:
            key = self.face_cache.key(self.paths[index])
        except OSError:  # missing or unreadable: let _align_one name the problem
            return self._align_one(index)
        hit = self.face_cache.get(key)
        if hit is None:
            hit = self._align_one(index)
            self.face_cache.put(key, *hit)
        return hit

    def load(self, indices: Sequence[int]) -> LoadedImages:
        """Read, detect and align the given images; per-item failures in ``ok``/``errors``."""
        idx = _check_indices(indices, len(self.paths), self.origin)
        out = _empty_batch(len(idx), self._face_size)
        for k, i in enumerate(idx):
            if i not in self._cache:
                self._cache[i] = self._aligned(i)
            face, err = self._cache[i]
            if face is None:
                out.errors[k] = err
            else:
                out.images[k] = face
                out.ok[k] = True
        return out

    def clear_cache(self) -> None:
        """Forget aligned faces (frees memory: face_size² × 3 bytes per image, 37 KB at 112,
        192 KB at 256)."""
        self._cache.clear()

    @property
    def fingerprint(self) -> str:
        """sha256 of the aligner's fingerprint and every relpath with its size and mtime_ns."""
        if self._fingerprint is None:
            h = hashlib.sha256(str(self.aligner.fingerprint).encode())
            for rel, path in zip(self.relpaths, self.paths):
                try:
                    st = path.stat()
                    stamp = f"{st.st_size}:{st.st_mtime_ns}"
                except OSError:
                    stamp = "missing"
                h.update(f"\0{rel}\0{stamp}".encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


# --------------------------------------------------------------------------------------
# insightface .bin packs
# --------------------------------------------------------------------------------------


def _as_blob(item: Any, index: int, origin: str) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, bytearray):
        return bytes(item)
    if isinstance(item, np.ndarray) and item.dtype == np.uint8 and item.ndim == 1:
        return item.tobytes()
    what = f"{type(item).__name__}" + (f" {item.dtype} {item.shape}" if isinstance(item, np.ndarray) else "")
    raise DataError(f"{origin}: image {index} is a {what}, expected encoded image bytes")


def _as_label(item: Any, index: int, origin: str) -> bool:
    if isinstance(item, (bool, np.bool_)):
        return bool(item)
    if isinstance(item, (int, np.integer)) and int(item) in (0, 1):
        return bool(item)
    raise DataError(f"{origin}: label {index} is {item!r}, expected a bool (or 0/1)")


def load_bin(
    path: str | os.PathLike[str], name: str | None = None, n_folds: int = 10, *, version: str = "1"
) -> PairProtocol:
    """Load an insightface ``.bin`` pack: a pickle of ``(bins, issame_list)``.

    ``bins``: 2N encoded aligned 112×112 images, pair k = images (2k, 2k+1); ``issame``: N
    bools. Folds: ``n_folds`` contiguous equal folds in file order. Loaded with
    :func:`recogbench.safe_pickle.safe_load`. The name defaults to the file stem.
    """
    path = Path(path)
    origin = str(path)
    try:
        with open(path, "rb") as f:
            obj = safe_load(f, origin)
    except FileNotFoundError:
        raise DataError(f"{origin}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{origin}: is a directory, expected a .bin file") from None
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise DataError(f"{origin}: expected a pickled (bins, issame_list) pair, got {type(obj).__name__}")
    raw_bins, raw_same = obj
    if not isinstance(raw_bins, (list, tuple)):
        raise DataError(f"{origin}: bins is a {type(raw_bins).__name__}, expected a list of encoded images")
    if not isinstance(raw_same, (list, tuple, np.ndarray)) or (isinstance(raw_same, np.ndarray) and raw_same.ndim != 1):
        raise DataError(f"{origin}: issame_list is a {type(raw_same).__name__}, expected a list of bools")
    n_img, n_lab = len(raw_bins), len(raw_same)
    if n_img % 2:
        raise DataError(f"{origin}: {n_img} images is an odd count; a pack holds 2 images per pair")
    if n_img != 2 * n_lab:
        raise DataError(
            f"{origin}: {n_img} images for {n_lab} labels; expected {2 * n_lab} images (2 per pair)"
        )
    if n_lab == 0:
        raise DataError(f"{origin}: the pack holds no pairs")
    try:
        folds = contiguous_folds(n_lab, n_folds)
    except DataError as exc:
        raise DataError(f"{origin}: {exc}") from None
    blobs = [_as_blob(b, i, origin) for i, b in enumerate(raw_bins)]
    issame = np.array([_as_label(s, i, origin) for i, s in enumerate(raw_same)], np.bool_)
    pairs = np.arange(n_img, dtype=np.int64).reshape(n_lab, 2)
    log.info("loaded %s: %d pairs (%d genuine), %d folds", origin, n_lab, int(issame.sum()), n_folds)
    return PairProtocol(
        name=name or path.stem,
        version=version,
        source=EncodedImageSource(blobs, origin),
        pairs=pairs,
        issame=issame,
        folds=folds,
        origin=origin,
        meta={"format": "insightface-bin", "file": origin},
    )


def _bin_order(protocol: PairProtocol) -> np.ndarray:
    """Pair order for a pack: file order if folds are already contiguous and equal, else
    grouped by fold (stable) if folds are equal-sized; DataError otherwise."""
    folds = np.asarray(protocol.folds, np.int64)
    n = len(folds)
    if n == 0:
        raise DataError(f"{protocol.name}: no pairs to write")
    k = int(folds.max()) + 1
    counts = np.bincount(folds, minlength=k)
    if folds.min() < 0 or (counts == 0).any() or len(set(counts.tolist())) != 1:
        raise DataError(
            f"{protocol.name}: a .bin pack stores folds only as equal contiguous blocks; "
            f"fold sizes {counts.tolist()} are not equal, so the pack could not reproduce them "
            "(evaluate the protocol directly instead)"
        )
    order = np.argsort(folds, kind="stable")
    if not np.array_equal(order, np.arange(n)):
        log.info("%s: writing pairs grouped by fold (folds were not contiguous)", protocol.name)
    return order


def write_bin(
    protocol: PairProtocol,
    path: str | os.PathLike[str],
    *,
    encoding: str = "png",
    jpeg_quality: int = 95,
    batch_size: int = 256,
) -> Path:
    """Write ``protocol`` as an insightface ``.bin`` pack, atomically.

    ``encoding``: ``"png"`` (default, lossless round trip) or ``"jpg"`` (quality
    ``jpeg_quality``, what insightface packs use). Pairs are written grouped by fold (see
    module doc); a reader needs ``n_folds`` = the protocol's fold count. Pairs whose images
    fail to load raise :class:`DataError` (a pack cannot have holes). Pickle protocol 4.
    """
    import cv2

    if encoding not in ("png", "jpg"):
        raise ValueError(f"encoding must be 'png' or 'jpg', got {encoding!r}")
    path = Path(path)
    order = _bin_order(protocol)
    pairs = np.asarray(protocol.pairs, np.int64)[order]
    issame = np.asarray(protocol.issame, np.bool_)[order]
    src = protocol.source
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if encoding == "jpg" else []

    needed = np.unique(pairs)
    encoded: dict[int, bytes] = {}
    errors: dict[int, str] = {}
    for start in range(0, len(needed), batch_size):
        chunk = [int(i) for i in needed[start : start + batch_size]]
        batch = src.load(chunk)
        for k, i in enumerate(chunk):
            if not batch.ok[k]:
                errors[i] = batch.errors[k] or f"{src.name_of(i)}: failed to load"
                continue
            ok, buf = cv2.imencode("." + encoding, cv2.cvtColor(batch.images[k], cv2.COLOR_RGB2BGR), params)
            if not ok:
                errors[i] = f"{src.name_of(i)}: cannot encode as {encoding}"
                continue
            encoded[i] = buf.tobytes()
    if errors:
        bad = [p for p, (a, b) in enumerate(pairs) if int(a) in errors or int(b) in errors]
        listed = "; ".join(
            f"pair {int(order[p])}: {errors.get(int(pairs[p][0])) or errors.get(int(pairs[p][1]))}"
            for p in bad[:_MAX_LISTED]
        )
        raise DataError(
            f"cannot write {path}: {len(bad)} of {len(pairs)} pairs have images that failed to load "
            f"({listed}{' …' if len(bad) > _MAX_LISTED else ''})"
        )
    bins = [encoded[int(i)] for pair in pairs for i in pair]
    labels = [bool(s) for s in issame]

    atomic_write_bytes(path, pickle.dumps((bins, labels), protocol=4))
    log.info("wrote %s: %d pairs, %s", path, len(labels), encoding)
    return path


# --------------------------------------------------------------------------------------
# Raw protocols: parsers (pure) and loaders
# --------------------------------------------------------------------------------------


def _protocol_from_entries(
    entries: Sequence[PairEntry],
    root: Path,
    aligner: Any,
    *,
    name: str,
    version: str,
    origin: str,
    fmt: str,
    check_files: bool,
) -> PairProtocol:
    """Deduplicate the paths of parsed pairs (same path → same index) and build a protocol."""
    index: dict[str, int] = {}
    pairs = np.empty((len(entries), 2), np.int64)
    for p, (a, b, _, _) in enumerate(entries):
        pairs[p, 0] = index.setdefault(a, len(index))
        pairs[p, 1] = index.setdefault(b, len(index))
    issame = np.array([e[2] for e in entries], np.bool_)
    folds = np.array([e[3] for e in entries], np.int64)
    source = FileImageSource(root, list(index), aligner, origin, check_files=check_files)
    log.info("loaded %s: %d pairs over %d images, %d folds", origin, len(entries), len(index), len(set(folds.tolist())))
    return PairProtocol(
        name=name, version=version, source=source, pairs=pairs, issame=issame, folds=folds,
        origin=origin, meta={"format": fmt, "file": origin, "image_root": str(root)},
    )


def _default_aligner(aligner: Any, detector: str = "yunet", face_size: int = FACE_SIZE) -> Any:
    """``aligner``, or the harness's: ``detector`` aligning to the scaled ArcFace template at
    ``face_size`` (:func:`recogbench.align.face_template`; at 112 the ArcFace template)."""
    if aligner is not None:
        size = getattr(aligner, "size", FACE_SIZE)
        if size != face_size:
            raise ValueError(f"the aligner makes {size}×{size} faces but face_size is {face_size}")
        return aligner
    from recogbench.align import FaceAligner

    return FaceAligner(detector=detector, size=face_size, template="scaled")


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from None


def _positive_int(text: str, path: Path, lineno: int, what: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise DataError(f"{path}:{lineno}: {what} {text!r} is not a positive integer")
    return int(text)


def _lfw_image(name: str, number: int) -> str:
    return f"{name}/{name}_{number:04d}.jpg"


def parse_lfw_pairs(path: str | os.PathLike[str]) -> list[PairEntry]:
    """Parse the official LFW View 2 ``pairs.txt`` (pure: no image access).

    Header ``n_folds n_per_class`` (e.g. ``10 300``), then per fold ``n`` genuine lines
    ``name i j`` and ``n`` impostor lines ``name1 i name2 j`` (tabs or spaces). Returns
    ``(name/name_000i.jpg, ..., same, fold)`` per pair in file order. Raises DataError with
    file and line number for malformed lines and for counts that disagree with the header.
    """
    path = Path(path)
    lines = [(n, line.split()) for n, line in enumerate(_read_lines(path), 1) if line.strip()]
    if not lines:
        raise DataError(f"{path}: empty file, expected an LFW pairs.txt header such as '10\\t300'")
    head_no, head = lines[0]
    if len(head) != 2:
        raise DataError(
            f"{path}:{head_no}: header {' '.join(head)!r} should be 'n_folds n_per_class' (View 2, e.g. '10 300')"
        )
    n_folds = _positive_int(head[0], path, head_no, "fold count")
    per_class = _positive_int(head[1], path, head_no, "pairs per class")
    body = lines[1:]
    expected = n_folds * 2 * per_class
    if len(body) != expected:
        raise DataError(
            f"{path}: header says {n_folds} folds x 2 x {per_class} = {expected} pairs, "
            f"but the file has {len(body)} pair lines"
        )
    entries: list[PairEntry] = []
    for k, (lineno, f) in enumerate(body):
        fold, pos = divmod(k, 2 * per_class)
        genuine = pos < per_class
        if genuine:
            if len(f) != 3:
                raise DataError(
                    f"{path}:{lineno}: expected a genuine pair 'name i j' (fold {fold + 1}, pair {pos + 1}), "
                    f"got {len(f)} fields"
                )
            name, i, j = f
            a = _lfw_image(name, _positive_int(i, path, lineno, "image number"))
            b = _lfw_image(name, _positive_int(j, path, lineno, "image number"))
        else:
            if len(f) != 4:
                raise DataError(
                    f"{path}:{lineno}: expected an impostor pair 'name1 i name2 j' (fold {fold + 1}, "
                    f"pair {pos + 1}), got {len(f)} fields"
                )
            n1, i, n2, j = f
            a = _lfw_image(n1, _positive_int(i, path, lineno, "image number"))
            b = _lfw_image(n2, _positive_int(j, path, lineno, "image number"))
        entries.append((a, b, genuine, fold))
    return entries


def load_lfw(
    root: str | os.PathLike[str],
    pairs_file: str | os.PathLike[str],
    aligner: Any,
    *,
    check_files: bool = True,
    name: str = "lfw",
    version: str = "1",
) -> PairProtocol:
    """LFW View 2 from raw images: ``root/name/name_%04d.jpg`` and the official pairs.txt.

    Folds come from the header (10); images are deduplicated and aligned on load by
    ``aligner`` (a ``recogbench.align.FaceAligner``).
    """
    entries = parse_lfw_pairs(pairs_file)
    return _protocol_from_entries(
        entries, Path(root), aligner, name=name, version=version, origin=str(pairs_file),
        fmt="lfw-pairs", check_files=check_files,
    )


_CFP_VARIANTS = ("FF", "FP")


def _cfp_list(path: Path, protocol_dir: Path, root: Path) -> dict[int, str]:
    """Read ``Pair_list_{F,P}.txt``: 1-based index → path relative to ``root`` (posix)."""
    out: dict[int, str] = {}
    for lineno, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        fields = line.split(None, 1)
        if len(fields) != 2:
            raise DataError(f"{path}:{lineno}: expected 'index relative/path', got {line.strip()!r}")
        idx = _positive_int(fields[0], path, lineno, "index")
        if idx in out:
            raise DataError(f"{path}:{lineno}: index {idx} appears twice")
        rel = fields[1].strip().replace("\\", "/")
        out[idx] = _cfp_resolve(rel, protocol_dir, root)
    return out


def _cfp_resolve(rel: str, protocol_dir: Path, root: Path) -> str:
    """Resolve a CFP list path: relative to ``Protocol/`` (official), falling back to the
    CFP root when only that exists. Returns a normalised posix path relative to ``root``
    (or absolute when it lies outside ``root``)."""
    if posixpath.isabs(rel):
        return posixpath.normpath(rel)
    via_protocol = posixpath.normpath(posixpath.join(protocol_dir.name, rel))
    via_root = posixpath.normpath(rel)
    if not (root / via_protocol).exists() and (root / via_root).exists():
        chosen = via_root
    else:
        chosen = via_protocol
    if chosen == ".." or chosen.startswith("../"):
        return posixpath.normpath(os.path.abspath(root / chosen).replace(os.sep, "/"))
    return chosen


def parse_cfp_pairs(root: str | os.PathLike[str], variant: str) -> list[PairEntry]:
    """Parse the CFP protocol under ``root/Protocol`` for ``variant`` ``"FF"`` or ``"FP"``.

    Folds are the numbered folders ``Protocol/Split/<variant>/01..NN`` in numeric order;
    per fold ``same.txt`` pairs then ``diff.txt`` pairs, lines ``a,b`` (1-based). FF: both
    indices into ``Pair_list_F.txt``; FP: ``a`` into F, ``b`` into ``Pair_list_P.txt``.
    Returns ``(path_a, path_b, same, fold)`` with paths relative to ``root``.
    """
    variant = variant.upper()
    if variant not in _CFP_VARIANTS:
        raise ValueError(f"CFP variant must be one of {_CFP_VARIANTS}, got {variant!r}")
    root = Path(root)
    protocol_dir = root / "Protocol"
    if not protocol_dir.is_dir():
        raise DataError(f"{root}: no Protocol/ folder (expected the CFP layout Protocol/Pair_list_F.txt, ...)")
    list_f = _cfp_list(protocol_dir / "Pair_list_F.txt", protocol_dir, root)
    list_b = list_f if variant == "FF" else _cfp_list(protocol_dir / "Pair_list_P.txt", protocol_dir, root)
    split_dir = protocol_dir / "Split" / variant
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: folder not found")
    fold_dirs = sorted((d for d in split_dir.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name))
    if not fold_dirs:
        raise DataError(f"{split_dir}: no numbered fold folders (01, 02, ...)")
    entries: list[PairEntry] = []
    for fold, fold_dir in enumerate(fold_dirs):
        for fname, same in (("same.txt", True), ("diff.txt", False)):
            fpath = fold_dir / fname
            for lineno, line in enumerate(_read_lines(fpath), 1):
                if not line.strip():
                    continue
                fields = [x.strip() for x in line.split(",")]
                if len(fields) != 2:
                    raise DataError(f"{fpath}:{lineno}: expected 'a,b', got {line.strip()!r}")
                a = _positive_int(fields[0], fpath, lineno, "index")
                b = _positive_int(fields[1], fpath, lineno, "index")
                if a not in list_f:
                    raise DataError(f"{fpath}:{lineno}: index {a} is not in Pair_list_F.txt")
                if b not in list_b:
                    lst = "Pair_list_F.txt" if variant == "FF" else "Pair_list_P.txt"
                    raise DataError(f"{fpath}:{lineno}: index {b} is not in {lst}")
                entries.append((list_f[a], list_b[b], same, fold))
        if not entries or entries[-1][3] != fold:
            raise DataError(f"{fold_dir}: fold {fold_dir.name} holds no pairs (same.txt and diff.txt are empty)")
    return entries


def load_cfp(
    root: str | os.PathLike[str],
    variant: str,
    aligner: Any,
    *,
    check_files: bool = True,
    name: str | None = None,
    version: str = "1",
) -> PairProtocol:
    """CFP-FF or CFP-FP from the raw release (``root`` holds ``Protocol/`` and ``Data/``)."""
    entries = parse_cfp_pairs(root, variant)
    root = Path(root)
    return _protocol_from_entries(
        entries, root, aligner, name=name or f"cfp_{variant.lower()}", version=version,
        origin=str(root / "Protocol" / "Split" / variant.upper()), fmt="cfp", check_files=check_files,
    )


_TRUE = {"1", "true", "yes", "y", "same"}
_FALSE = {"0", "false", "no", "n", "different"}
_CSV_FORMS = (("path_a", "path_b", "same"), ("file_x", "file_y", "decision"))


def parse_pairs_csv(path: str | os.PathLike[str]) -> list[PairEntry]:
    """Parse a pair CSV (header required): ``path_a,path_b,same[,fold]`` or deepface's
    ``file_x,file_y,Decision``. Labels: 1/0, true/false, yes/no (any case). Other columns
    are ignored. Without a fold column, folds are assigned as described in the module doc;
    given fold values are renumbered densely 0..K-1 in sorted order (so 1..10 works).
    Paths are returned as written.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from None
    reader = csv.reader(text.splitlines())
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: empty file, expected a header row") from None
    cols = [c.strip().lower() for c in header]
    for form in _CSV_FORMS:
        if all(c in cols for c in form):
            ia, ib, il = (cols.index(c) for c in form)
            break
    else:
        raise DataError(
            f"{path}:1: header {header!r} needs columns path_a,path_b,same[,fold] or file_x,file_y,Decision"
        )
    ifold = cols.index("fold") if "fold" in cols else None
    rows: list[tuple[str, str, bool, str | None]] = []
    fold_lines: list[int] = []
    try:
        for fields in reader:
            lineno = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(cols):
                raise DataError(f"{path}:{lineno}: {len(fields)} fields, the header has {len(cols)}")
            a, b, label = fields[ia].strip(), fields[ib].strip(), fields[il].strip().lower()
            if not a or not b:
                raise DataError(f"{path}:{lineno}: empty image path")
            if label in _TRUE:
                same = True
            elif label in _FALSE:
                same = False
            else:
                raise DataError(f"{path}:{lineno}: label {fields[il]!r} is not 1/0, true/false or yes/no")
            rows.append((a, b, same, fields[ifold].strip() if ifold is not None else None))
            fold_lines.append(lineno)
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: {exc}") from None
    if not rows:
        raise DataError(f"{path}: no pairs after the header")
    if ifold is not None:
        values: list[int] = []
        for (_, _, _, fv), lineno in zip(rows, fold_lines):
            if fv is None or not re.fullmatch(r"\d+", fv):
                raise DataError(f"{path}:{lineno}: fold {fv!r} is not a non-negative integer")
            values.append(int(fv))
        dense = {v: k for k, v in enumerate(sorted(set(values)))}
        return [(a, b, s, dense[v]) for (a, b, s, _), v in zip(rows, values)]
    n_gen = sum(r[2] for r in rows)
    n_imp = len(rows) - n_gen
    k = min(10, n_gen, n_imp)
    if k == 0:
        raise DataError(
            f"{path}: {n_gen} genuine and {n_imp} impostor pairs; folds need both classes "
            "(add a fold column to override)"
        )
    seen = {True: 0, False: 0}
    entries: list[PairEntry] = []
    for a, b, s, _ in rows:
        entries.append((a, b, s, seen[s] % k))
        seen[s] += 1
    return entries


def load_pairs_csv(
    path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    aligner: Any = None,
    *,
    check_files: bool = True,
    name: str | None = None,
    version: str = "1",
    detector: str = "yunet",
    face_size: int = FACE_SIZE,
) -> PairProtocol:
    """A generic pair CSV (see :func:`parse_pairs_csv`); images relative to ``root``
    (default: the CSV's folder), detected and aligned on load by ``aligner`` (default
    ``FaceAligner(detector, face_size, template="scaled")``)."""
    path = Path(path)
    entries = parse_pairs_csv(path)
    base = Path(root) if root is not None else path.parent
    return _protocol_from_entries(
        [(posixpath.normpath(a.replace("\\", "/")), posixpath.normpath(b.replace("\\", "/")), s, f)
         for a, b, s, f in entries],
        base, _default_aligner(aligner, detector, face_size), name=name or path.stem, version=version,
        origin=str(path), fmt="pairs-csv", check_files=check_files,
    )


# --------------------------------------------------------------------------------------
# Definitions (TOML data in the `protocols` package) and dispatch
# --------------------------------------------------------------------------------------

_RAW_KINDS = ("lfw", "cfp_ff", "cfp_fp", "csv")
_DEF_FIELDS = {"name", "version", "description", "expected_pairs", "folds", "bin", "raw", "raw_pairs_file"}


@dataclass(frozen=True)
class ProtocolDef:
    """One protocol definition, read from ``protocols/<name>.toml``.

    ``bin``: the pack's file name (``None``: any pack, named after its stem);
    ``raw``: the raw loader (``lfw``, ``cfp_ff``, ``cfp_fp``, ``csv``) or ``None``;
    ``expected_pairs``: checked on load when set.
    """

    name: str
    version: str
    description: str
    folds: int = 10
    expected_pairs: int | None = None
    bin: str | None = None
    raw: str | None = None
    raw_pairs_file: str | None = None
    source: str = ""

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str) -> ProtocolDef:
        """Validate a parsed TOML table; ValueError naming ``source`` on bad fields."""
        unknown = set(data) - _DEF_FIELDS
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {sorted(unknown)}")

        def get(key: str, typ: type, required: bool = False) -> Any:
            if key not in data:
                if required:
                    raise ValueError(f"{source}: missing field {key!r}")
                return None
            value = data[key]
            if not isinstance(value, typ) or isinstance(value, bool) and typ is int:
                raise ValueError(f"{source}: field {key!r} must be {typ.__name__}, got {value!r}")
            return value

        raw = get("raw", str)
        if raw is not None and raw not in _RAW_KINDS:
            raise ValueError(f"{source}: raw must be one of {_RAW_KINDS}, got {raw!r}")
        folds = get("folds", int)
        expected = get("expected_pairs", int)
        if folds is not None and folds <= 0 or expected is not None and expected <= 0:
            raise ValueError(f"{source}: folds and expected_pairs must be positive")
        return cls(
            name=get("name", str, True),
            version=get("version", str, True),
            description=get("description", str) or "",
            folds=10 if folds is None else folds,
            expected_pairs=expected,
            bin=get("bin", str),
            raw=raw,
            raw_pairs_file=get("raw_pairs_file", str),
            source=source,
        )


@functools.lru_cache(maxsize=1)
def _load_definitions() -> tuple[ProtocolDef, ...]:
    defs: dict[str, ProtocolDef] = {}
    for entry in sorted(resources.files("protocols").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml") or not entry.is_file():
            continue
        source = f"protocols/{entry.name}"
        try:
            table = tomllib.loads(entry.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{source}: invalid TOML ({exc})") from exc
        d = ProtocolDef.from_mapping(table, source)
        if d.name in defs:
            raise ValueError(f"{source}: protocol {d.name!r} is also defined in {defs[d.name].source}")
        defs[d.name] = d
    return tuple(defs.values())


def protocol_definitions() -> dict[str, ProtocolDef]:
    """All built-in protocol definitions by name."""
    return {d.name: d for d in _load_definitions()}


def _definition(name: str) -> ProtocolDef:
    defs = protocol_definitions()
    if name not in defs:
        raise RegistryError(f"unknown protocol {name!r} (defined: {', '.join(sorted(defs))})")
    return defs[name]


def _as_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | {"on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in _FALSE | {"off"}:
        return False
    raise ValueError(f"{what} must be true or false, got {value!r}")


def load_protocol(
    name: str,
    data: str | os.PathLike[str],
    *,
    aligner: Any = None,
    detector: str = "yunet",
    pairs_file: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    folds: int | str | None = None,
    check_expected: bool | str = True,
    face_size: int = FACE_SIZE,
) -> PairProtocol:
    """Load the protocol defined as ``name`` from the user's ``data`` path.

    Rules, in order:

    1. ``data`` is a ``.bin`` file → :func:`load_bin` (named after the definition, or after
       the file stem for the generic ``bin`` definition).
    2. ``data`` is a folder containing the definition's pack (e.g. ``lfw.bin``) → that pack.
    3. Otherwise the definition's raw loader, with ``aligner`` (default
       ``FaceAligner(detector, face_size, template="scaled")``):

       * ``lfw``: ``data`` is the image root (``name/name_0001.jpg``) and the pairs file is
         ``data/pairs.txt`` — or ``pairs_file`` (relative to ``data``) when given; if
         ``data`` is itself a pairs file, images are under its folder.
       * ``cfp_ff`` / ``cfp_fp``: ``data`` is the CFP root holding ``Protocol/`` (or the
         ``Protocol`` folder itself).
       * ``csv``: ``data`` is the CSV file, or a folder holding ``pairs.csv`` (or
         ``pairs_file``); images relative to ``root`` (default: the CSV's folder). The
         generic ``pairs_csv`` definition names the protocol after the CSV's stem.

    ``expected_pairs`` is checked (DataError on mismatch) unless ``check_expected=False``;
    it is never checked for raw CSVs. ``folds`` overrides the definition's fold count.
    ``face_size``: side of the aligned faces the source yields (raw images only: a pack holds
    112×112 crops, so any other size raises DataError).
    """
    d = _definition(name)
    path = Path(data)
    if isinstance(face_size, (bool, np.bool_)) or not isinstance(face_size, (int, np.integer)) or face_size < FACE_SIZE:
        raise ValueError(f"face_size must be an int >= {FACE_SIZE}, got {face_size!r}")
    face_size = int(face_size)
    n_folds = d.folds if folds is None else int(folds)
    check = _as_bool(check_expected, "check_expected")
    if not path.exists():
        raise DataError(f"{path}: not found (data for protocol {d.name!r})")

    protocol: PairProtocol | None = None
    pack = path if path.is_file() and path.suffix.lower() == ".bin" else None
    if pack is None and path.is_dir() and d.bin and (path / d.bin).is_file():
        pack = path / d.bin
    if pack is not None and face_size != FACE_SIZE:
        raise DataError(
            f"{pack}: a .bin pack holds only aligned {FACE_SIZE}×{FACE_SIZE} crops, so it cannot be "
            f"evaluated at face size {face_size} (upsampling would add no detail); use face size "
            f"{FACE_SIZE}, or the raw images (an LFW folder with pairs.txt, the CFP folder or a pairs CSV "
            "of photos), which are aligned at the face size"
        )
    if pack is not None:
        protocol = load_bin(pack, name=d.name if d.bin else pack.stem, n_folds=n_folds, version=d.version)
    elif d.raw == "lfw":
        if path.is_file():
            pf, image_root = path, path.parent
        else:
            pf = path / (pairs_file or d.raw_pairs_file or "pairs.txt")
            image_root = path
            if not pf.is_file():
                have = f"{d.bin} or " if d.bin else ""
                raise DataError(f"{path}: holds neither {have}{pf.name} (data for protocol {d.name!r})")
        protocol = load_lfw(image_root, pf, _default_aligner(aligner, detector, face_size), name=d.name,
                            version=d.version)
    elif d.raw in ("cfp_ff", "cfp_fp"):
        if not path.is_dir():
            raise DataError(f"{path}: expected the CFP folder holding Protocol/")
        cfp_root = path.parent if path.name == "Protocol" and (path / "Split").is_dir() else path
        protocol = load_cfp(
            cfp_root, d.raw[-2:].upper(), _default_aligner(aligner, detector, face_size), name=d.name,
            version=d.version,
        )
    elif d.raw == "csv":
        csv_path = path if path.is_file() else path / (pairs_file or d.raw_pairs_file or "pairs.csv")
        return load_pairs_csv(
            csv_path, root, aligner, name=csv_path.stem if d.name == "pairs_csv" else d.name,
            version=d.version, detector=detector, face_size=face_size,
        )
    else:
        want = f"a .bin pack or a folder holding {d.bin}" if d.bin else "a .bin pack file"
        raise DataError(f"{path}: protocol {d.name!r} needs {want}")

    if check and d.expected_pairs is not None:  # an official protocol: its size and equal folds are known
        if protocol.n_pairs != d.expected_pairs:
            raise DataError(
                f"{protocol.origin}: {protocol.n_pairs:,} pairs, but protocol {d.name!r} has "
                f"{d.expected_pairs:,}; {_load_anyway(d.name)}"
            )
        totals = protocol.fold_sizes().sum(axis=1)
        if protocol.n_folds != n_folds or totals.min() != totals.max():
            raise DataError(
                f"{protocol.origin}: folds of {', '.join(map(str, totals))} pairs, but protocol {d.name!r} "
                f"has {n_folds} equal folds; {_load_anyway(d.name)}"
            )
    return protocol


def _load_anyway(name: str) -> str:
    """How to load a pack or folder that is not the official protocol it is named after."""
    return (f"to load it anyway, name the protocol {name}:check_expected=false "
            f"(recogbench run {name}:check_expected=false --data ...; Python: check_expected=False), "
            f"or use the generic protocol bin for a .bin pack")


def _factory(d: ProtocolDef) -> Any:
    def factory(data: str | os.PathLike[str], **options: Any) -> PairProtocol:
        return load_protocol(d.name, data, **options)

    factory.__name__ = factory.__qualname__ = f"load_{d.name}"
    factory.__doc__ = (d.description or f"Protocol {d.name}.") + (
        f"\n\nCall with the data path: a .bin pack, a folder holding it, or raw data "
        f"(see recogbench.protocols.load_protocol). Version {d.version}."
    )
    factory._recogbench_protocol = d.name  # type: ignore[attr-defined]
    return factory


def register_builtin_protocols() -> list[str]:
    """Register every definition in :data:`~recogbench.registry.PROTOCOLS` (idempotent).

    A name already registered (by an earlier call, or by someone else) is left as it is.
    Returns the names newly registered.
    """
    added = []
    for d in _load_definitions():
        try:
            PROTOCOLS.register(d.name, _factory(d))
        except RegistryError:
            log.debug("protocol %r already registered; keeping it", d.name)
            continue
        added.append(d.name)
    return added


register_builtin_protocols()
