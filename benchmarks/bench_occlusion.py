"""Occlusion throughput on 112×112 aligned faces, one core (occlusion must never bottleneck a run).

    python benchmarks/bench_occlusion.py [--n 2000] [--real ../shared/data/occluders/masktheface]
    python benchmarks/bench_occlusion.py --occlusion helwan-19 [--size 256]   # only these occluders

Targets: ≥ 2,000 images/s per core for boxes, ≥ 500 images/s for object occluders (all
nineteen Helwan kinds of the suite ``helwan-19`` are measured by default).
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
    ap.add_argument("--occlusion", default=None, help="measure only these (spec, suite or '+' list)")
    ap.add_argument("--size", type=int, default=112, help="face size (112, or e.g. 256)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="time with the wall clock, or with this process's CPU time (steadier on a busy machine; "
                         "the work is single-threaded)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(args.n, 8, 8, 3), dtype=np.uint8)
    faces = np.stack([cv2.resize(s, (args.size, args.size), interpolation=cv2.INTER_CUBIC) for s in small])
    if args.occlusion:
        specs = expand_occlusion(args.occlusion)
    else:
        objects = list(dict.fromkeys([*expand_occlusion("everyday"), *expand_occlusion("helwan-19")]))
        specs = ["random_block", "random_part", *(f"region:{r}" for r in ("twoeyes", "up_face")),
                 *objects, *expand_occlusion("freeform-coverage")]
    if args.real:
        specs.append(f"real:{args.real}")
    report = {}
    print(f"{'occluder':32s} images/s (one core, {args.n} faces of {args.size}×{args.size}, {args.clock} clock)")
    for spec in specs:
        occ = OCCLUDERS.create(spec)
        occlude_batch(occ, faces[:20], np.arange(20), "second", 0)  # warm-up
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        t0 = clock()
        occlude_batch(occ, faces, np.arange(args.n), "second", 0)
        rate = args.n / (clock() - t0)
        report[spec] = round(rate)
        print(f"{spec:32s} {rate:9.0f}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
