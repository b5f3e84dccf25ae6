"""pconv-gan: parameter counts per configuration, and hole quality before/after a training run.

    python benchmarks/bench_pconv_gan.py                       # parameters: default and under-mask preset
    python benchmarks/bench_pconv_gan.py --spec "pconv-gan:d_dense=256" --preset under-mask --base-channels 8
    python benchmarks/bench_pconv_gan.py --evaluate runs/um    # a run of recogbench train pconv-gan

Parameter counts are taken on the meta device (nothing is allocated), for the generator and
each discriminator at the configuration's training size. ``--evaluate`` rebuilds the run's
held-out faces and fixed holes exactly as its validation did, and scores the untrained
generator (the run's seed gives the same initial weights) and the run's ``last.safetensors``
on the hole: L1, MSE, PSNR and SSIM (window centres in the hole), on the hole-composited
output as ``log.csv``'s validation does, plus whole-face PSNR/SSIM.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameters(spec: str, preset: str | None, base_channels: int | None, size: int | None, branch: str | None) -> dict:
    from inpainters.pconv_gan import PConvGANTrainer
    from recogbench.train import TrainConfig

    config = TrainConfig(spec, data="unused", out="unused", preset=preset, base_channels=base_channels, size=size,
                         branch=branch)
    with torch.device("meta"):
        trainer = PConvGANTrainer(config, torch.device("meta"))
    return {"spec": spec, "preset": preset, "branch": branch, "size": config.size, "base_channels": config.base_channels,
            "generator": count(trainer.generator), "d_global": count(trainer.d_global),
            "d_local": count(trainer.d_local) if trainer.d_local is not None else 0}


@torch.no_grad()
def evaluate(run: Path) -> dict:
    import dataclasses

    import numpy as np

    from inpainters.pconv_gan import PConvGAN, PConvGANTrainer
    from recogbench.checkpoint import load_state
    from recogbench.occlusion import OCCLUDERS, expand_occlusion
    from recogbench.quality import psnr, ssim
    from recogbench.train import VAL_MAX, TrainConfig, _Fixed, _split, _to_tensors, load_faces

    _, meta = load_state(run / "last.safetensors")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in meta["config"].items() if k in fields})
    faces, _ = load_faces(config)
    _, val_idx = _split(len(faces), config.val_fraction, config.seed)
    occluders = [OCCLUDERS.create(s) for s in expand_occlusion(config.occlusion)]
    fixed = _Fixed.build(faces[val_idx[:VAL_MAX]], occluders, config.seed)
    cpu = torch.device("cpu")
    clean, hole = _to_tensors(fixed.clean, fixed.holes, cpu)
    occluded, _ = _to_tensors(fixed.occluded, fixed.holes, cpu)
    untrained = PConvGANTrainer(dataclasses.replace(config, init_from=()), cpu).generator.eval()
    trained = PConvGAN(str(run / "last.safetensors"), device="cpu").generator
    out = {"run": str(run), "step": meta["step"], "n_faces": len(clean), "mean_hole_fraction": float(hole.mean())}
    for name, gen in (("before", untrained), ("after", trained)):
        restored = torch.where(hole.bool(), gen(occluded, hole).float().clamp(0, 1), occluded)
        h = hole.expand_as(clean).bool()
        diff = (restored - clean)[h]
        per_face = [(restored[i] - clean[i])[h[i]] for i in range(len(clean))]
        out[name] = {
            "hole_l1": float(np.mean([d.abs().mean().item() for d in per_face])),
            "hole_mse": float(np.mean([(d * d).mean().item() for d in per_face])),
            "hole_psnr": float(psnr(restored, clean, hole).mean()),
            "hole_ssim": float(ssim(restored, clean, hole).nanmean()),
            "face_psnr": float(psnr(restored, clean).mean()),
            "face_ssim": float(ssim(restored, clean).mean()),
            "pooled_hole_mse": float((diff * diff).mean()),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default=None,
                    help="training spec, e.g. pconv-gan:d_dense=256 (default: the default and the under-mask preset)")
    ap.add_argument("--preset", default=None)
    ap.add_argument("--base-channels", type=int, default=None)
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--branch", default=None)
    ap.add_argument("--evaluate", type=Path, default=None, help="a training run's folder")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    if args.evaluate:
        print(json.dumps(evaluate(args.evaluate), indent=2))
        return
    rows = ([parameters(args.spec, args.preset, args.base_channels, args.size, args.branch)] if args.spec or args.preset
            else [parameters("pconv-gan", None, None, None, None), parameters("pconv-gan", "under-mask", None, None, None)]
            + [parameters("pconv-gan", "under-mask", None, None, b) for b in ("partial", "vanilla")])
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
