"""``--executor ray``: a run's conditions × shards of pairs as Ray tasks.

Each task evaluates one shard of one condition (:func:`recogbench.pipeline.evaluate_shard`)
in a Ray worker that keeps the protocol and verifier loaded between tasks (on one GPU
when the cluster has GPUs, else on CPU), with the embedding and face caches in the results
folder, which every worker must see (a shared filesystem on a multi-machine cluster). The
driver merges each condition's shards (:func:`~recogbench.pipeline.merge_shards`) and
writes exactly the row and files a local run writes, in the same order. A worker that dies
loses only its task, which Ray runs again (``max_retries``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from recogbench.config import RunConfig

log = logging.getLogger(__name__)

MAX_RETRIES = 3
"""Times Ray re-runs a shard whose worker died (system failures; errors in our code are not retried)."""

_LOADED: dict[str, Any] = {}
"""Per Ray worker process: the protocol and verifier of the last task, reused by the next."""


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ImportError("--executor ray needs Ray: pip install 'recogbench[ray]' (or pip install 'ray>=2.9') "
                          "on the driver and on every worker machine") from exc
    return ray


def _loaded(config: RunConfig, fingerprint: str) -> tuple[Any, Any]:
    from recogbench.data import DataError
    from recogbench.pipeline import load_protocol, use_face_cache
    from recogbench.registry import VERIFIERS

    key = repr((config.protocol, config.data, config.detector, config.face_size, config.verifier, config.device,
                config.flip, config.cache, config.out))
    if _LOADED.get("key") != key:
        _LOADED.clear()
        protocol = load_protocol(config)
        use_face_cache(config, protocol)
        verifier = VERIFIERS.create(config.verifier, device=config.device, flip=config.flip)
        _LOADED.update(key=key, protocol=protocol, verifier=verifier)
    protocol = _LOADED["protocol"]
    if protocol.fingerprint != fingerprint:
        raise DataError(f"{config.data}: this worker sees other data than the driver (protocol fingerprint "
                        f"{protocol.fingerprint[:16]} vs {fingerprint[:16]}); the data must be the same on every node")
    return protocol, _LOADED["verifier"]


def _shard_task(config: RunConfig, fingerprint: str, start: int, stop: int):
    """One Ray task: evaluate pairs ``start..stop-1`` of the condition ``config``."""
    from recogbench.cache import EmbeddingCache
    from recogbench.pipeline import evaluate_shard

    protocol, verifier = _loaded(config, fingerprint)
    cache = EmbeddingCache(Path(config.out) / ".cache" / "embeddings", verifier.fingerprint) if config.cache else None
    return evaluate_shard(config, protocol, verifier, start, stop, cache=cache)


def run_ray(config: RunConfig) -> list:
    """:func:`recogbench.pipeline.run_all` on Ray: joins ``config.address`` (empty: the
    cluster this process already joined with ``ray.init``, else a new local one, shut
    down at the end) and returns the same results a local run returns."""
    from recogbench.pipeline import prepare, progress_bar, conditions, merge_shards, record

    ray = _import_ray()
    protocol = prepare(config)
    # Workers may run elsewhere, in another folder: hand them absolute paths.
    remote_config = dataclasses.replace(
        config, data=str(Path(config.data).expanduser().resolve()), out=str(Path(config.out).expanduser().resolve()),
        progress=False, executor="local", workers=1,
    )
    started = not ray.is_initialized()
    if started:
        # A local cluster gets --workers CPUs (0: all); a joined cluster has its own size.
        local_cpus = config.workers if config.workers > 0 and not config.address else None
        ray.init(address=config.address or None, num_cpus=local_cpus, include_dashboard=False,
                 logging_level=logging.WARNING)
    try:
        gpus = config.device != "cpu" and ray.cluster_resources().get("GPU", 0) > 0
        task = ray.remote(num_cpus=1, num_gpus=1 if gpus else 0, max_retries=MAX_RETRIES)(_shard_task)
        P = protocol.n_pairs
        spans = [(a, min(a + config.shard_size, P)) for a in range(0, P, config.shard_size)]
        conds = conditions(config)
        fingerprint = protocol.fingerprint
        t0 = time.perf_counter()
        pending = [[task.remote(dataclasses.replace(remote_config, occlusion=c.occlusion, inpainter=c.inpainter,
                                                    verifier=c.verifier), fingerprint, a, b) for a, b in spans]
                   for c, _ in conds]
        log.info("ray: %d condition(s) × %d shard(s) of ≤ %d pairs on %s", len(conds), len(spans), config.shard_size,
                 ", ".join(f"{k}={v:g}" for k, v in sorted(ray.cluster_resources().items()) if k in ("CPU", "GPU")))
        results = []
        with progress_bar(config.progress) as progress:
            bar = progress.add_task("ray shards", total=len(conds) * len(spans))
            for (cond, suite), refs in zip(conds, pending):
                shards = []
                for ref in refs:
                    shards.append(ray.get(ref))
                    progress.advance(bar)
                merged = merge_shards(cond, protocol, shards, time.perf_counter() - t0)
                results.append(record(cond, protocol, merged, suite))
        return results
    finally:
        if started:
            ray.shutdown()
