"""Content-addressed embedding cache.

Embeddings are keyed by the sha1 of the exact uint8 face pixels given to the verifier,
under a folder per verifier fingerprint. Any condition that feeds the same pixels (the
clean side of an occluded condition, a re-run) reuses them. Entries are stored in shard
files named by the sha256 of their bytes; a shard whose bytes no longer match its name
is reported, removed and recomputed.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from pathlib import Path

import numpy as np

from recogbench.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

_SHARD = re.compile(r"^[0-9a-f]{64}\.npz$")


def face_key(face: np.ndarray) -> bytes:
    """20-byte content key of one face (H, W, 3) uint8 (shape included)."""
    h = hashlib.sha1(np.asarray(face.shape, np.int64).tobytes())
    h.update(np.ascontiguousarray(face).data)
    return h.digest()


class EmbeddingCache:
    """Maps face content keys to embeddings for one verifier fingerprint."""

    def __init__(self, root: str | Path, verifier_fingerprint: str, *, autoflush: int = 512) -> None:
        safe = hashlib.sha256(verifier_fingerprint.encode()).hexdigest()[:24]
        self.dir = Path(root) / safe
        # New entries are persisted every `autoflush` of them, so a killed run keeps its work.
        self.autoflush = autoflush
        self._table: dict[bytes, np.ndarray] = {}
        self._pending: dict[bytes, np.ndarray] = {}
        self.corrupt_shards = 0
        self._load()

    def _load(self) -> None:
        if not self.dir.is_dir():
            return
        for path in sorted(self.dir.iterdir()):
            if not _SHARD.match(path.name):
                continue
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != path.stem:
                log.warning("embedding cache shard %s is corrupt (checksum mismatch); removing it", path)
                self.corrupt_shards += 1
                path.unlink(missing_ok=True)
                continue
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                keys, embs = z["keys"], z["emb"]
            for k, e in zip(keys, embs):
                self._table[k.tobytes()] = e

    def __len__(self) -> int:
        return len(self._table) + len(self._pending)

    def get(self, key: bytes) -> np.ndarray | None:
        hit = self._table.get(key)
        return hit if hit is not None else self._pending.get(key)

    def put(self, key: bytes, embedding: np.ndarray) -> None:
        if key not in self._table:
            self._pending[key] = np.asarray(embedding, np.float32)
            if self.autoflush and len(self._pending) >= self.autoflush:
                self.flush()

    def flush(self) -> None:
        """Persist new entries as one shard (atomic, content-named)."""
        if not self._pending:
            return
        keys = np.frombuffer(b"".join(self._pending), np.uint8).reshape(len(self._pending), 20)
        embs = np.stack(list(self._pending.values()))
        buf = io.BytesIO()
        np.savez(buf, keys=keys, emb=embs)
        data = buf.getvalue()
        atomic_write_bytes(self.dir / f"{hashlib.sha256(data).hexdigest()}.npz", data)
        self._table.update(self._pending)
        self._pending.clear()


class FaceCache:
    """Aligned faces of one aligner, on disk: a second condition (or worker process) reuses
    the detection and alignment of every photo instead of redoing it.

    One file per photo, named by the sha1 of its path, size and mtime (a changed photo is a
    new key) under a folder per aligner fingerprint: ``<key>.face`` holds the S×S×3 uint8
    pixels followed by their sha256 (checked on read; a bad file is removed and the face
    recomputed), ``<key>.err`` the reason the photo gave no face. Files are written
    atomically, so any number of processes may share the folder.
    """

    def __init__(self, root: str | Path, aligner_fingerprint: str, face_size: int) -> None:
        safe = hashlib.sha256(aligner_fingerprint.encode()).hexdigest()[:24]
        self.dir = Path(root) / safe
        self.face_size = int(face_size)
        self.corrupt = 0

    @staticmethod
    def key(path: Path) -> str:
        """Key of one photo: its resolved path, byte size and mtime (ns)."""
        st = path.stat()
        return hashlib.sha1(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()

    def get(self, key: str) -> tuple[np.ndarray | None, str | None] | None:
        """(face, None), (None, reason) or None when the photo has not been aligned yet."""
        face_file = self.dir / key[:2] / f"{key}.face"
        try:
            data = face_file.read_bytes()
        except FileNotFoundError:
            err_file = face_file.with_suffix(".err")
            try:
                return None, err_file.read_text(encoding="utf-8")
            except FileNotFoundError:
                return None
        n = self.face_size * self.face_size * 3
        if len(data) != n + 32 or hashlib.sha256(data[:n]).digest() != data[n:]:
            log.warning("aligned-face cache file %s is corrupt; removing it", face_file)
            self.corrupt += 1
            face_file.unlink(missing_ok=True)
            return None
        return np.frombuffer(data[:n], np.uint8).reshape(self.face_size, self.face_size, 3).copy(), None

    def put(self, key: str, face: np.ndarray | None, error: str | None) -> None:
        """Store one photo's aligned face (S×S×3 uint8) or the reason it has none."""
        base = self.dir / key[:2] / key
        if face is None:
            atomic_write_bytes(base.with_suffix(".err"), str(error or "no face found").encode("utf-8"), durable=False)
            return
        pixels = np.ascontiguousarray(face, np.uint8).tobytes()
        atomic_write_bytes(base.with_suffix(".face"), pixels + hashlib.sha256(pixels).digest(), durable=False)
