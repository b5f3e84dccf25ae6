"""The run configuration: one frozen object built by the CLI (or a script) and passed to
:func:`recogbench.pipeline.run`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ON_ERROR = ("record", "fail")
EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one evaluated condition.

    ``protocol``: a registered protocol name (``recogbench ls``); ``data``: its file or folder.
    ``verifier``/``occlusion``/``inpainter``: registry specs ``NAME[:key=value,...]``.
    ``side``: which image of each pair is occluded (``second``, ``first``, ``both``).
    ``on_error``: ``record`` scores a pair with an unusable face as a non-match and counts
    it; ``fail`` stops at the first such face. ``bootstrap``: replicates for the 95 %
    intervals (0 = none). ``allow_self_grading``: run an identity-guided inpainter even when
    it uses the verifier's own weights. ``face_size``: side of the aligned face that is
    occluded, inpainted and scored for restoration quality (raw-image protocols only; a
    ``.bin`` pack holds 112-px crops): 256 aligns to the ArcFace template scaled by 256/112,
    and the verifier gets that alignment resized to 112×112. ``mask_source``: where the
    inpainter's hole mask comes from: ``oracle`` (the occluder's exact mask) or an occluder
    segmenter spec (``soclnet:checkpoint=PATH``), whose predicted mask every inpainter then
    receives — also for real occluded photos (occlusion ``none``), which have no true mask.
    ``workers``: processes that decode, align and occlude faces ahead of the device (0 = one
    per CPU core, 1 = in the main process); ``executor``: ``local`` or ``ray`` (conditions ×
    shards of ``shard_size`` pairs as Ray tasks; ``address``: the cluster, empty = start a local one).
    ``limit``: evaluate only the first ``limit`` genuine and impostor pairs of each fold (0 =
    all), a quick look
    whose rows are marked and never ranked with full runs. ``max_failures``: the largest
    share of pairs with an unusable face a condition may have and still write its row (a
    condition with no usable pair never does). ``save_embeddings``: also write every pair's
    embeddings (``embeddings.npz``) to the run folder.
    Fields after ``bootstrap`` change how, not what, is computed, and stay out of the hash.
    """

    protocol: str
    data: str
    verifier: str = "sface"
    occlusion: str = "none"
    inpainter: str = "none"
    side: str = "second"
    seed: int = 0
    flip: bool = False
    detector: str = "yunet"
    face_size: int = 112
    mask_source: str = "oracle"
    limit: int = 0
    bootstrap: int = 1000
    # -- execution settings (not part of the condition's identity) --
    device: str = "auto"
    batch_size: int = 128
    out: str = "results"
    cache: bool = True
    on_error: str = "record"
    progress: bool = True
    allow_self_grading: bool = False
    workers: int = 0
    executor: str = "local"
    address: str = ""
    shard_size: int = 1000
    max_failures: float = 0.05
    save_embeddings: bool = False

    _EXECUTION = ("device", "batch_size", "out", "cache", "on_error", "progress", "allow_self_grading",
                  "workers", "executor", "address", "shard_size", "max_failures", "save_embeddings")

    def __post_init__(self) -> None:
        if self.bootstrap < 0:
            raise ValueError(f"bootstrap must be >= 0, got {self.bootstrap}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if isinstance(self.face_size, bool) or not isinstance(self.face_size, int) or self.face_size < 112:
            raise ValueError(f"face_size must be an int >= 112 (the verifiers' input), got {self.face_size!r}")
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0 (0 = every pair), got {self.limit}")
        if not 0 <= self.max_failures <= 1:
            raise ValueError(f"max_failures is a share of the pairs, in [0, 1]; got {self.max_failures}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = one per CPU core), got {self.workers}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, got {self.executor!r}")
        if self.on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {self.on_error!r}")
        from recogbench.occlusion import SIDES

        if self.side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {self.side!r}")

    def identity(self) -> dict[str, Any]:
        """The fields that determine the numbers (not where or how fast they are computed)."""
        d = dataclasses.asdict(self)
        for key in self._EXECUTION:
            d.pop(key, None)
        if self.face_size == 112:  # absent = 112: rows from before the field keep their hashes
            d.pop("face_size")
        if self.mask_source == "oracle":  # likewise
            d.pop("mask_source")
        if not self.limit:  # likewise
            d.pop("limit")
        d["data"] = str(Path(self.data).expanduser().resolve())
        return d


def config_hash(identity: dict[str, Any]) -> str:
    """Short stable digest of a condition's identity (the config plus content fingerprints)."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
