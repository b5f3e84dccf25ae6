"""Baked occlusions: an occluded copy of a protocol written to disk, and its replay.

``bake`` writes into its output folder
  * ``<protocol>.bin`` — the pairs unoccluded, once for all occluders (grouped by fold),
  * per occluder a folder ``<spec>/`` holding
      ``pack.bin``   — the occluded protocol as an insightface pack (any tool can read it;
                       ``recogbench run bin --data pack.bin`` scores it as is),
      ``masks.npz``  — ``masks`` (2P, H, W) bit-packed, 1 = occluded, in pack image order,
      ``manifest.jsonl`` and ``occlusion.json`` (spec, side, seed, source protocol, and the
      clean pack's file name and sha256).
``BakedOccluder`` (``--occlusion baked:OUT/<spec>`` on ``OUT/<protocol>.bin``, a protocol
named as the source was) replays exactly those occlusions, so every inpainter is compared on
the same stored masks. Folders baked before the clean pack was shared hold their own
``clean.bin``, which is still read.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from recogbench.data import DataError, PairProtocol
from recogbench.fileio import atomic_write_bytes, ensure_writable_dir
from recogbench.occlusion import Occluder, Occlusion, expand_occlusion, occlude_batch, sides_for
from recogbench.registry import portable_spec

log = logging.getLogger(__name__)

_COLUMN = {"first": 0, "second": 1}


def _png(face: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    if not ok:
        raise DataError("cannot encode a face as PNG")
    return buf.tobytes()


def _slug(spec: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in spec).strip("_") or "occlusion"


def bake(config, out: str | Path, *, batch_size: int = 256) -> list[Path]:
    """Bake every occluder of ``config.occlusion`` on ``config``'s protocol into ``out/<spec>/``.

    Pairs are stored grouped by fold (the `.bin` convention); a pair with an unusable face
    stops the bake with a DataError naming it (a pack cannot have holes).
    """
    from recogbench.pipeline import load_protocol
    from recogbench.protocols import EncodedImageSource, write_bin
    from recogbench.registry import OCCLUDERS

    out = ensure_writable_dir(out, "bake folder")  # before loading and occluding every face
    protocol = load_protocol(config)
    order = np.argsort(protocol.folds, kind="stable")
    pairs = protocol.pairs[order]
    written = []
    clean_path = Path(out) / f"{_slug(protocol.name)}.bin"
    clean_sha: str | None = None  # the shared clean pack, written with the first occluder
    packed_pairs = np.arange(2 * len(pairs), dtype=np.int64).reshape(-1, 2)
    issame, folds = protocol.issame[order], protocol.folds[order]
    for spec in expand_occlusion(config.occlusion):
        occluder = OCCLUDERS.create(spec)
        sides = sides_for(config.side)
        clean_blobs: list[bytes] = [b""] * (2 * len(pairs))
        occ_blobs: list[bytes] = [b""] * (2 * len(pairs))
        masks = None
        manifest: list[dict[str, Any]] = []
        for start in range(0, len(pairs), batch_size):
            pos = np.arange(start, min(start + batch_size, len(pairs)))
            for side, col in _COLUMN.items():
                loaded = protocol.source.load(pairs[pos, col])
                if not loaded.ok.all():
                    j = int(np.flatnonzero(~loaded.ok)[0])
                    raise DataError(f"cannot bake {protocol.name}: pair {int(order[pos[j]])}: {loaded.errors[j]}")
                faces = loaded.images
                if masks is None:
                    masks = np.zeros((2 * len(pairs), *faces.shape[1:3]), bool)
                if side in sides:
                    occluded, m, records = occlude_batch(occluder, faces, pos, side, config.seed)
                    masks[2 * pos + col] = m
                    for r, p in zip(records, pos):
                        r["source_pair"] = int(order[p])
                    manifest += records
                else:
                    occluded = faces
                for k, p in enumerate(pos):
                    if clean_sha is None:
                        clean_blobs[2 * p + col] = _png(faces[k])
                    occ_blobs[2 * p + col] = _png(occluded[k])
        folder = Path(out) / _slug(spec)
        targets = [(folder / "pack.bin", occ_blobs)] + ([(clean_path, clean_blobs)] if clean_sha is None else [])
        for path, blobs in targets:
            source = EncodedImageSource(blobs, str(path))
            write_bin(PairProtocol(protocol.name, protocol.version, source, packed_pairs, issame, folds), path)
        if clean_sha is None:
            clean_sha = hashlib.sha256(clean_path.read_bytes()).hexdigest()
        buf = io.BytesIO()
        np.savez_compressed(buf, masks=np.packbits(masks, axis=-1), shape=np.asarray(masks.shape))
        atomic_write_bytes(folder / "masks.npz", buf.getvalue())
        atomic_write_bytes(folder / "manifest.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in manifest).encode())
        meta = {"occlusion": spec, "occluder_params": occluder.params(), "side": config.side, "seed": config.seed,
                "protocol": protocol.name, "protocol_version": protocol.version, "source_fingerprint": protocol.fingerprint,
                "n_pairs": int(len(pairs)), "n_folds": protocol.n_folds,
                "clean": clean_path.name, "clean_sha256": clean_sha}
        atomic_write_bytes(folder / "occlusion.json", json.dumps(meta, indent=2, sort_keys=True).encode())
        log.info("baked %s on %s: %d pairs -> %s", spec, protocol.name, len(pairs), folder)
        written.append(folder)
    return written


class BakedOccluder(Occluder):
    """Replays an occlusion baked by ``recogbench occlude`` (``baked:OUT/<spec>``, run on ``OUT/<protocol>.bin``)."""

    def __init__(self, variant: str) -> None:
        from recogbench.protocols import load_bin

        self.folder = Path(variant).expanduser()
        meta_path = self.folder / "occlusion.json"
        if not meta_path.is_file():
            raise DataError(f"{self.folder}: not a baked occlusion (no occlusion.json); make one with `recogbench occlude`")
        self.meta = json.loads(meta_path.read_text())
        self.name = portable_spec(f"baked:{self.folder}")
        # The shared clean pack beside the occluder folders, or an older bake's own clean.bin.
        self.clean_path = self.folder.parent / str(self.meta.get("clean", "")) if self.meta.get("clean") \
            else self.folder / "clean.bin"
        if not self.clean_path.is_file():
            raise DataError(f"{self.folder}: its clean pack {self.clean_path} is missing (bake it again)")
        with np.load(self.folder / "masks.npz", allow_pickle=False) as z:
            shape = tuple(int(v) for v in z["shape"])
            self._masks = np.unpackbits(z["masks"], axis=-1, count=shape[-1]).astype(bool).reshape(shape)
        self._pack = load_bin(self.folder / "pack.bin", n_folds=int(self.meta["n_folds"]))
        self._clean = load_bin(self.clean_path, n_folds=int(self.meta["n_folds"]))
        if len(self._masks) != 2 * self._pack.n_pairs:
            raise DataError(f"{self.folder}: masks.npz holds {len(self._masks)} masks for {self._pack.n_pairs} pairs")

    def params(self) -> dict[str, Any]:
        return {"occluder": "baked", "baked": self.meta}

    def occlude(self, face: np.ndarray, rng: np.random.Generator) -> Occlusion:
        raise DataError(f"{self.name} replays stored occlusions by pair; it cannot occlude an arbitrary face")

    def occlude_item(self, face: np.ndarray, rng: np.random.Generator, pair: int, side: str,
                     landmarks: np.ndarray | None = None) -> Occlusion:
        """The stored occlusion of this item (``landmarks`` play no part: it is replayed)."""
        index = 2 * pair + _COLUMN[side]
        if pair >= self._pack.n_pairs:
            raise DataError(f"{self.name}: pair {pair} is outside the baked protocol ({self._pack.n_pairs} pairs)")
        clean = self._clean.source.load([index]).images[0]
        if not np.array_equal(clean, face):
            raise DataError(f"{self.name}: pair {pair} ({side}) differs from the baked clean image; "
                            f"run the baked occlusion on {self.clean_path}")
        image = self._pack.source.load([index]).images[0]
        mask = self._masks[index]
        return Occlusion(image, mask, {"occluder": self.meta["occlusion"], "baked": self.folder.name,
                                       "coverage": float(mask.mean())})
