"""Throughput of a whole `recogbench run` against the verifier's bare batched forward.

Builds a synthetic insightface-format pack (default 7,000 pairs = 14,000 JPEG 112×112
faces, like cfp_fp.bin), then measures on the same pack:
  1. the verifier's bare batched forward over every image, pre-decoded in memory;
  2. the whole `run` (unpickle, decode, hash, cache lookups, embed, metrics, plots, files), cold cache;
  3. `metrics.summarize` for all pairs, and the 1,000-replicate bootstrap intervals.
Prints the numbers and one JSON line. Target: run ≥ 0.9× bare forward; metrics < 50 ms.

    python benchmarks/bench_run.py [--pairs 7000] [--batch-size 128] [--device auto] [--verifier sface] [--workers 0]

``--workers`` is passed to RunConfig (0 = one process per CPU core, 1 = in-process) and recorded in the JSON.
"""

from __future__ import annotations

import argparse
import json
import pickle
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch


def synthetic_pack(path: Path, n_pairs: int, seed: int = 0) -> np.ndarray:
    """Write a .bin of 2·n_pairs smooth random faces (JPEG q95); returns the decoded faces."""
    rng = np.random.default_rng(seed)
    blobs, faces = [], []
    for _ in range(2 * n_pairs):
        small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        face = cv2.resize(small, (112, 112), interpolation=cv2.INTER_CUBIC)
        blob = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
        blobs.append(blob)
        faces.append(cv2.cvtColor(cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    issame = [bool(i % 2) for i in range(n_pairs)]
    path.write_bytes(pickle.dumps((blobs, issame), protocol=4))
    return np.stack(faces)


def main() -> None:
    from recogbench.config import RunConfig
    from recogbench.metrics import summarize
    from recogbench.pipeline import run
    from recogbench.tensors import to_tensor
    from recogbench.registry import VERIFIERS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=7000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--verifier", default="sface")
    ap.add_argument("--workers", type=int, default=0,
                    help="RunConfig.workers: processes that load faces ahead of the device (0 = one per core, 1 = in-process)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        pack = Path(tmp) / "synthetic.bin"
        t0 = time.perf_counter()
        faces = synthetic_pack(pack, args.pairs)
        n_images = len(faces)
        print(f"built {pack.name}: {args.pairs} pairs, {n_images} images in {time.perf_counter() - t0:.1f} s")

        config = RunConfig(protocol="bin", data=str(pack), verifier=args.verifier, device=args.device,
                           batch_size=args.batch_size, out=str(Path(tmp) / "results"), cache=False, progress=False,
                           workers=args.workers)
        verifier = VERIFIERS.create(config.verifier, device=config.device, flip=config.flip)
        device = torch.device(str(getattr(verifier, "device", "cpu")))
        verifier.embed(to_tensor(faces[: args.batch_size], device))  # warm-up (CUDA context, kernels)

        t0 = time.perf_counter()
        for i in range(0, n_images, args.batch_size):
            verifier.embed(to_tensor(faces[i : i + args.batch_size], device))
        bare = n_images / (time.perf_counter() - t0)

        t0 = time.perf_counter()
        result = run(config, verifier=verifier)
        whole = n_images / (time.perf_counter() - t0)

        scores, issame, folds = result.scores, result.issame, result.folds
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            summarize(scores, issame, folds)
            times.append(time.perf_counter() - t0)
        metrics_ms = 1000 * float(np.median(times))
        from recogbench.metrics import bootstrap_ci

        t0 = time.perf_counter()
        bootstrap_ci(scores, issame, folds, n_boot=1000, seed=0)
        bootstrap_s = time.perf_counter() - t0

    report = {
        "verifier": args.verifier, "runtime": verifier.runtime, "device": str(device), "pairs": args.pairs,
        "images": n_images, "batch_size": args.batch_size, "workers": args.workers, "bare_forward_images_per_s": round(bare, 1),
        "run_images_per_s": round(whole, 1), "ratio": round(whole / bare, 3), "metrics_ms": round(metrics_ms, 2),
        "bootstrap_1000_s": round(bootstrap_s, 2),
    }
    print(f"verifier {args.verifier} on {verifier.runtime}, batch {args.batch_size}, workers {args.workers}")
    print(f"  bare batched forward : {bare:8.1f} images/s")
    print(f"  whole run            : {whole:8.1f} images/s   ratio {whole / bare:.3f} (target ≥ 0.9)")
    print(f"  metrics, {args.pairs} pairs : {metrics_ms:8.2f} ms (median of 30; target < 50 ms)")
    print(f"  bootstrap intervals, 1000 replicates: {bootstrap_s:6.2f} s")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
