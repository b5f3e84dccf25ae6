"""``recogbench demo``: the whole pipeline offline on faces shipped inside installed packages.

This demonstrates the pipeline; it is NOT a benchmark. The faces are few (one photo per
person: insightface's sample images and scikit-image's astronaut), and the genuine pairs
are synthetic views of the same photo (re-cropped, rotated, re-lit, blurred, recompressed),
so the numbers say only that every stage runs and moves in the expected direction.
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
import logging
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from recogbench.config import RunConfig
from recogbench.data import DataError

log = logging.getLogger(__name__)

DISCLAIMER = (
    "recogbench demo: this demonstrates the pipeline on a handful of sample faces shipped "
    "inside installed packages. It is not a benchmark; its numbers mean nothing about any model."
)

CONDITIONS: tuple[tuple[str, str], ...] = (
    ("none", "none"),
    ("region:twoeyes", "none"),
    ("region:up_face", "none"),
    ("region:up_face", "oracle"),
    ("region:mouth", "none"),
    ("sunglasses", "none"),
    ("sunglasses", "telea"),
    ("medical_mask", "none"),
)

VIEWS_PER_PERSON = 5


def _sample_photos() -> list[tuple[str, np.ndarray]]:
    """(name, RGB photo) of real faces shipped by installed packages."""
    photos: list[tuple[str, np.ndarray]] = []
    # Only insightface's data files are read: locate the package without importing it.
    spec = importlib.util.find_spec("insightface")
    group = hanks = None
    if spec is not None and spec.origin:
        images = Path(spec.origin).parent / "data" / "images"
        group = cv2.imread(str(images / "t1.jpg"), cv2.IMREAD_COLOR)
        hanks = cv2.imread(str(images / "Tom_Hanks_54745.png"), cv2.IMREAD_COLOR)
    if group is not None:
        photos.append(("t1", cv2.cvtColor(group, cv2.COLOR_BGR2RGB)))
    if hanks is not None:
        # Already a tight 112×112 crop: give the detector some context around it.
        padded = cv2.copyMakeBorder(hanks, 56, 56, 56, 56, cv2.BORDER_REPLICATE)
        photos.append(("tom_hanks", cv2.cvtColor(padded, cv2.COLOR_BGR2RGB)))
    try:
        from skimage import data as skdata

        photos.append(("astronaut", np.ascontiguousarray(skdata.astronaut())))
    except ImportError:
        pass
    return photos


def _face_crops(photos: list[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray]]:
    """One loose crop (2.4× the detected box) per detected face: each is one person."""
    from recogbench.align import YuNetDetector

    detector = YuNetDetector()
    crops = []
    for name, photo in photos:
        faces = sorted(detector.detect(photo), key=lambda d: float(d.box[0]))
        for k, det in enumerate(f for f in faces if f.score >= 0.8):
            x1, y1, x2, y2 = det.box
            cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, 1.2 * max(x2 - x1, y2 - y1)
            h, w = photo.shape[:2]
            box = [int(max(0, cx - half)), int(max(0, cy - half)), int(min(w, cx + half)), int(min(h, cy + half))]
            crop = photo[box[1] : box[3], box[0] : box[2]]
            crops.append((f"{name}_{k}" if len(faces) > 1 else name, cv2.resize(crop, (200, 200), interpolation=cv2.INTER_CUBIC)))
    return crops


def _views(crop: np.ndarray, rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """``n`` photometric/geometric variations of one face crop (200×200 RGB)."""
    out = [crop]
    for _ in range(n - 1):
        angle, scale = rng.uniform(-12, 12), rng.uniform(0.85, 1.1)
        tx, ty = rng.uniform(-8, 8, size=2)
        m = cv2.getRotationMatrix2D((100, 100), angle, scale)
        m[:, 2] += (tx, ty)
        v = cv2.warpAffine(crop, m, (200, 200), borderMode=cv2.BORDER_REFLECT)
        gain, gamma = rng.uniform(0.7, 1.3), rng.uniform(0.7, 1.4)
        v = np.clip(255.0 * (v / 255.0) ** gamma * gain, 0, 255).astype(np.uint8)
        if rng.random() < 0.5:
            v = cv2.GaussianBlur(v, (0, 0), rng.uniform(0.6, 1.6))
        if rng.random() < 0.5:
            v = v[:, ::-1]
        quality = int(rng.integers(35, 90))
        ok, enc = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(v), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        out.append(cv2.cvtColor(cv2.imdecode(enc, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    return out


def build_demo_protocol(folder: str | Path, *, seed: int = 0, n_folds: int = 10) -> Path:
    """Write the demo images and ``demo.csv`` (path_a,path_b,same,fold) under ``folder``.

    Genuine pairs: every pair of views of one person. Impostor pairs: as many, drawn with
    ``seed`` across people. Returns the CSV path.
    """
    folder = Path(folder)
    crops = _face_crops(_sample_photos())
    if len(crops) < 3:
        raise DataError(
            "the demo needs the sample faces shipped by insightface "
            "(pip install --no-deps 'insightface>=0.7'); found only %d faces" % len(crops)
        )
    rng = np.random.default_rng(seed)
    paths: dict[str, list[str]] = {}
    for name, crop in crops:
        (folder / name).mkdir(parents=True, exist_ok=True)
        paths[name] = []
        for k, view in enumerate(_views(crop, rng, VIEWS_PER_PERSON)):
            rel = f"{name}/{name}_{k:04d}.jpg"
            cv2.imwrite(str(folder / rel), cv2.cvtColor(view, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            paths[name].append(rel)
    genuine = [pair for views in paths.values() for pair in itertools.combinations(views, 2)]
    names = list(paths)
    impostor: set[tuple[str, str]] = set()
    while len(impostor) < len(genuine):
        a, b = rng.choice(len(names), size=2, replace=False)
        impostor.add((paths[names[a]][rng.integers(VIEWS_PER_PERSON)], paths[names[b]][rng.integers(VIEWS_PER_PERSON)]))
    genuine_order = [genuine[i] for i in rng.permutation(len(genuine))]
    impostor_order = sorted(impostor)
    rows = [(a, b, 1, i % n_folds) for i, (a, b) in enumerate(genuine_order)]
    rows += [(a, b, 0, i % n_folds) for i, (a, b) in enumerate(impostor_order)]
    rows.sort(key=lambda r: (r[3], -r[2]))
    csv_path = folder / "demo.csv"  # the protocol takes its name from the file stem
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path_a", "path_b", "same", "fold"])
        writer.writerows(rows)
    log.info("demo protocol: %d people, %d images, %d pairs -> %s", len(paths), sum(map(len, paths.values())), len(rows), csv_path)
    return csv_path


def run_demo(out: str | Path = "results/demo", *, device: str = "auto", progress: bool = True):
    """Build the demo protocol, run every demo condition and write ``report.html``;
    returns the list of RunResults."""
    from recogbench.pipeline import load_protocol, run
    from recogbench.registry import VERIFIERS

    out = Path(out)
    csv_path = build_demo_protocol(out / "data")
    base = RunConfig(protocol="pairs_csv", data=str(csv_path), verifier="sface", out=str(out), device=device, progress=progress)
    protocol = load_protocol(base)
    verifier = VERIFIERS.create(base.verifier, device=device, flip=base.flip)
    results = [
        run(replace(base, occlusion=occ, inpainter=inp), protocol=protocol, verifier=verifier)
        for occ, inp in CONDITIONS
    ]
    from recogbench.report import write_report

    write_report(out, out / "report.html", title="recogbench demo (a demonstration, not a benchmark)")
    return results
