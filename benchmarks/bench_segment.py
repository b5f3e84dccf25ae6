"""Occluder-segmenter throughput: SOCLNet ``predict_masks`` per batch size at its native size.

    python benchmarks/bench_segment.py [--device auto] [--batch-sizes 1,16,64] [--images 64] [--size 112]

Times a freshly initialised full-size SOCLNet (ResNet-50, output stride 8): the same
computation as a trained checkpoint. Faces are 112×112; the segmenter resizes to ``--size``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    from recogbench.device import resolve_device
    from recogbench.segmentation import SOCLNet, predict_masks

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-sizes", default="1,16,64")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--size", type=int, default=112)
    args = ap.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = SOCLNet(size=args.size).to(device).eval()
    faces = torch.rand(args.images, 3, 112, 112, generator=torch.Generator().manual_seed(0)).to(device)
    report = {}
    for b in (int(s) for s in args.batch_sizes.split(",")):
        predict_masks(model, faces[:b], batch_size=b)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(0, args.images, b):
            predict_masks(model, faces[i:i + b], batch_size=b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        report[str(b)] = round(args.images / (time.perf_counter() - t0), 2)
        print(f"soclnet@{args.size} batch {b:>3d}: {report[str(b)]:8.2f} images/s on {device}", flush=True)
    print(json.dumps({"device": str(device), "size": args.size, "images": args.images, "images_per_s": report}))


if __name__ == "__main__":
    main()
