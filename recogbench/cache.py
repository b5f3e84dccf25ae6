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
