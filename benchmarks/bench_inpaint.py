"""Inpainting throughput per backend and batch size on 112×112 faces with region:twoeyes holes.

    python benchmarks/bench_inpaint.py [--device auto] [--batch-sizes 1,16,64] [--images 256]
                                       [--only id-inpainter,telea]

pconv-gan is timed with a freshly initialised generator of the default width (base 32), and
id-inpainter with freshly initialised full-size CA, fusor and sampler networks (their shapes
are fixed by the released checkpoints) in each blend mode, and ifacenet with a freshly
initialised full-size network (256 px inside): the same computation as trained checkpoints.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    from inpainters.pconv_gan import Generator, GeneratorConfig, write_checkpoint
    from recogbench.device import resolve_device
    from recogbench.occlusion import REGIONS
    from recogbench.registry import INPAINTERS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-sizes", default="1,16,64")
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--only", default="", help="comma-separated backends to time (default: all)")
    ap.add_argument("--blends", default="composite,poisson,published", help="id-inpainter blend modes to time")
    args = ap.parse_args()
    device = resolve_device(args.device)
    sizes = [int(s) for s in args.batch_sizes.split(",")]

    rng = np.random.default_rng(0)
    import cv2

    small = rng.integers(0, 256, size=(args.images, 8, 8, 3), dtype=np.uint8)
    faces = np.stack([cv2.resize(s, (112, 112), interpolation=cv2.INTER_CUBIC) for s in small])
    clean = torch.from_numpy(faces).permute(0, 3, 1, 2).float().div(255).to(device)
    masks = torch.zeros(args.images, 1, 112, 112, device=device)
    x1, y1, x2, y2 = REGIONS["twoeyes"]
    masks[:, :, y1:y2, x1:x2] = 1
    occluded = clean * (1 - masks)

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        ckpt = write_checkpoint(Path(tmp) / "pconv.safetensors", Generator(GeneratorConfig(base_channels=32)))
        backends = {name: INPAINTERS.create(name, device=str(device)) for name in ("fill", "telea", "navier_stokes")}
        backends["pconv-gan"] = INPAINTERS.create("pconv-gan", checkpoint=str(ckpt), device=str(device))
        if not args.only or "id-inpainter" in args.only:
            paths = _id_inpainter_checkpoints(Path(tmp))
            for blend in args.blends.split(","):
                backends[f"id-inpainter:{blend}"] = INPAINTERS.create(
                    "id-inpainter", ca=str(paths["ca"]), fusor=str(paths["fusor"]), blend=blend, device=str(device))
        if not args.only or "ifacenet" in args.only:
            from inpainters.ifacenet import IFACENet

            torch.manual_seed(0)
            torch.save({"model_state_dict": IFACENet().state_dict()}, Path(tmp) / "ifacenet.pth")
            backends["ifacenet"] = INPAINTERS.create("ifacenet", checkpoint=str(Path(tmp) / "ifacenet.pth"),
                                                     device=str(device))
        if args.only:
            wanted = args.only.split(",")
            backends = {k: v for k, v in backends.items() if k.split(":")[0] in wanted or k in wanted}
        report: dict[str, dict[str, float]] = {}
        print(f"{'inpainter':16s} " + " ".join(f"batch {b:>4d}" for b in sizes) + f"   images/s on {device}")
        for name, inp in backends.items():
            report[name] = {}
            for b in sizes:
                inp.inpaint(occluded[:b], masks[:b], clean=clean[:b])  # warm-up
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                for i in range(0, args.images, b):
                    inp.inpaint(occluded[i : i + b], masks[i : i + b], clean=clean[i : i + b])
                if device.type == "cuda":
                    torch.cuda.synchronize()
                report[name][str(b)] = round(args.images / (time.perf_counter() - t0), 1)
            print(f"{name:16s} " + " ".join(f"{report[name][str(b)]:10.1f}" for b in sizes))
    print(json.dumps({"device": str(device), "images": args.images, "images_per_s": report}))


def _id_inpainter_checkpoints(folder: Path) -> dict[str, Path]:
    from safetensors.torch import save_file

    from inpainters.id_inpainter.ca import CAGenerator
    from inpainters.id_inpainter.fusor import AttributesEncoder, Generator
    from inpainters.id_inpainter.sampler import Sampler

    torch.manual_seed(0)
    fusor = {f"{p}{k}": v for p, m in (("G.", Generator()), ("E.", AttributesEncoder()), ("Z.", Sampler()))
             for k, v in m.state_dict().items()}
    save_file(CAGenerator().state_dict(), str(folder / "ca.safetensors"))
    save_file({k: v.contiguous() for k, v in fusor.items()}, str(folder / "fusor.safetensors"))
    return {"ca": folder / "ca.safetensors", "fusor": folder / "fusor.safetensors"}


if __name__ == "__main__":
    main()
