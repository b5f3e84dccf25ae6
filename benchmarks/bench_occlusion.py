"""Occlusion throughput on 112×112 aligned faces, one core (occlusion must never bottleneck a run).

    python benchmarks/bench_occlusion.py [--n 2000] [--real ../shared/data/occluders/masktheface]

Targets: ≥ 2,000 images/s per core for boxes, ≥ 500 images/s for object occluders.
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np


def main() -> None:
    import torch

    from recogbench.occlusion import REGIONS, expand_occlusion, occlude_batch
    from recogbench.registry import OCCLUDERS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--real", default=None, help="a folder of RGBA cut-outs to include as real:<folder>")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(args.n, 8, 8, 3), dtype=np.uint8)
    faces = np.stack([cv2.resize(s, (112, 112), interpolation=cv2.INTER_CUBIC) for s in small])
    specs = ["random_block", "random_part", *(f"region:{r}" for r in ("twoeyes", "up_face")),
             *expand_occlusion("everyday"), *expand_occlusion("freeform-coverage")]
    if args.real:
        specs.append(f"real:{args.real}")
    report = {}
    print(f"{'occluder':32s} images/s (one core, {args.n} faces)")
    for spec in specs:
        occ = OCCLUDERS.create(spec)
        occlude_batch(occ, faces[:20], np.arange(20), "second", 0)  # warm-up
        t0 = time.perf_counter()
        occlude_batch(occ, faces, np.arange(args.n), "second", 0)
        rate = args.n / (time.perf_counter() - t0)
        report[spec] = round(rate)
        print(f"{spec:32s} {rate:9.0f}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
