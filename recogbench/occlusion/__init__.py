"""Occluders: reproducible masks painted onto aligned faces.

An occlusion is a pure function of (occluder spec, seed, pair index, side): each item
draws from its own ``numpy`` generator seeded by those values, so the result does not
depend on batch size, order, worker count or device. Occluders work on uint8 RGB
(H, W, 3) faces and return the occluded face, the mask (True = occluded, exactly the
changed pixels' support) and a record of the parameters for the manifest.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from recogbench.registry import OCCLUDERS

SIDES = ("second", "first", "both")
FILLS = ("black", "white", "gray", "noise")

# ID-Inpainter evaluation regions on the 112×112 aligned face: x1, y1, x2, y2 (exclusive).
REGIONS: dict[str, tuple[int, int, int, int]] = {
    "left_eye": (18, 30, 58, 70),
    "right_eye": (58, 30, 98, 70),
    "twoeyes": (18, 30, 98, 70),
    "nose": (42, 48, 70, 86),
    "mouth": (33, 82, 83, 107),
    "down_face": (16, 60, 100, 110),
    "up_face": (16, 8, 100, 72),
    "left_face": (16, 8, 58, 100),
    "right_face": (58, 8, 100, 100),
    "center_block": (32, 32, 80, 80),
}

_SIDE_CODE = {"first": 0, "second": 1}


@dataclass(frozen=True)
class Occlusion:
    """One occluded face: ``image`` (H, W, 3) uint8, ``mask`` (H, W) bool, ``record`` for the manifest."""

    image: np.ndarray
    mask: np.ndarray
    record: dict[str, Any]


def item_rng(seed: int, pair_index: int, side: str) -> np.random.Generator:
    """The generator for one (seed, pair, side): independent of batching and order."""
    return np.random.default_rng(np.random.SeedSequence([seed, pair_index, _SIDE_CODE[side]]))


def sides_for(side: str) -> tuple[str, ...]:
    """Which images of a pair an occlusion ``side`` setting covers."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    return ("first", "second") if side == "both" else (side,)


def face_landmarks(size: int) -> np.ndarray:
    """The five landmarks of an aligned ``size``×``size`` face, (5, 2) float32 x, y:
    left eye, right eye, nose tip, left and right mouth corner — the ArcFace template scaled
    with the face, as the pipeline aligns it at that size
    (:func:`recogbench.align.face_template`; at 112 exactly the ArcFace template). Every face
    in the pipeline is aligned, so occluders place objects by these points."""
    from recogbench.align import face_template

    return face_template(size)


def finish(face: np.ndarray, out: np.ndarray, record: dict[str, Any]) -> "Occlusion":
    """Build an :class:`Occlusion` whose mask is exactly the pixels that changed, with
    coverage and bounding box (x1, y1, x2, y2 exclusive, or None) added to ``record``."""
    mask = (out != face).any(axis=2)
    ys, xs = np.nonzero(mask)
    bbox = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if len(xs) else None
    return Occlusion(out, mask, {**record, "bbox": bbox, "coverage": float(mask.mean())})


def fill_pixels(fill: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray | int:
    """Pixel values for a hole of ``shape`` (…, 3): a constant or uniform uint8 noise."""
    if fill == "black":
        return 0
    if fill == "white":
        return 255
    if fill == "gray":
        return 128
    if fill == "noise":
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")


class Occluder(abc.ABC):
    """Paints an occlusion on one aligned face; subclasses implement :meth:`occlude`."""

    name: str = "occluder"
    #: Whether :meth:`occlude` takes the face's own ``landmarks`` ((5, 2) pixels) as a keyword.
    uses_landmarks: bool = False

    @abc.abstractmethod
    def occlude(self, face: np.ndarray, rng: np.random.Generator) -> Occlusion:
        """Occlude ``face`` ((H, W, 3) uint8 RGB) drawing randomness only from ``rng``."""

    def params(self) -> dict[str, Any]:
        """Parameters that define this occluder (for the manifest and the config hash)."""
        return {"occluder": self.name}

    def occlude_item(self, face: np.ndarray, rng: np.random.Generator, pair: int, side: str,
                     landmarks: np.ndarray | None = None) -> Occlusion:
        """Occlude the ``side`` image of ``pair``; occluders that replay stored occlusions
        override this, all others draw from ``rng`` alone. ``landmarks``: the face's own
        five landmarks (5, 2) in its pixels when the caller knows them, for occluders that
        place objects by them (:attr:`uses_landmarks`); others ignore them."""
        if landmarks is not None and self.uses_landmarks:
            return self.occlude(face, rng, landmarks=landmarks)  # type: ignore[call-arg]
        return self.occlude(face, rng)


class NoOcclusion(Occluder):
    """The clean condition: faces untouched."""

    name = "none"

    def occlude(self, face: np.ndarray, rng: np.random.Generator) -> Occlusion:
        return Occlusion(face, np.zeros(face.shape[:2], bool), {"occluder": "none", "coverage": 0.0})


class RegionOccluder(Occluder):
    """A named ID-Inpainter box on the aligned face (``region:twoeyes``), filled flat. The
    boxes are defined on the 112×112 face; on a larger face their edges scale with it
    (×size/112, rounded), covering the same part of the face."""

    def __init__(self, variant: str, fill: str = "black") -> None:
        if variant not in REGIONS:
            import difflib

            close = difflib.get_close_matches(variant, REGIONS, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown region {variant!r}{hint} (known: {', '.join(REGIONS)})")
        if fill not in FILLS:
            raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
        self.region, self.fill = variant, fill
        self.name = f"region:{variant}"

    def params(self) -> dict[str, Any]:
        return {"occluder": self.name, "fill": self.fill}

    def occlude(self, face: np.ndarray, rng: np.random.Generator) -> Occlusion:
        h, w = face.shape[:2]
        sx, sy = w / 112.0, h / 112.0
        x1, y1, x2, y2 = REGIONS[self.region]
        box = (round(x1 * sx), round(y1 * sy), round(x2 * sx), round(y2 * sy))
        out = face.copy()
        hole = out[box[1] : box[3], box[0] : box[2]]
        hole[...] = fill_pixels(self.fill, hole.shape, rng)
        # The mask is exactly the changed pixels: a fill equal to the face there changes nothing.
        mask = (out != face).any(axis=2)
        record = {
            "occluder": self.name,
            "fill": self.fill,
            "bbox": list(box),
            "coverage": float(mask.mean()),
        }
        return Occlusion(out, mask, record)


class RandomPart(Occluder):
    """One of the ten named regions, drawn per face from the seed (``random_part``)."""

    name = "random_part"

    def __init__(self, fill: str = "black") -> None:
        self.fill = fill
        self._regions = {r: RegionOccluder(r, fill) for r in REGIONS}

    def params(self) -> dict[str, Any]:
        return {"occluder": self.name, "fill": self.fill}

    def occlude(self, face: np.ndarray, rng: np.random.Generator) -> Occlusion:
        region = list(REGIONS)[int(rng.integers(len(REGIONS)))]
        occ = self._regions[region].occlude(face, rng)
        return Occlusion(occ.image, occ.mask, {**occ.record, "occluder": self.name, "region": region})


class RandomBlock(Occluder):
    """A ``size``×``size`` square (64 on the 112 face) at a uniformly random position.

    Square and position are drawn on the 112 face and scaled with the face, so one seed
    covers the same part of a 112 and of a 256 face (on 112 faces these are exactly the
    uniform positions drawn before sizes existed)."""

    name = "random_block"

    def __init__(self, size: int = 64, fill: str = "black") -> None:
        if fill not in FILLS:
            raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
        self.size, self.fill = int(size), fill

    def params(self) -> dict[str, Any]:
        return {"occluder": self.name, "size": self.size, "fill": self.fill}

    def occlude(self, face: np.ndarray, rng: np.random.Generator) -> Occlusion:
        h, w = face.shape[:2]
        side = min(round(self.size * w / 112.0), h, w)
        free = 112 - min(self.size, 112)  # positions on the 112 face: 0..free
        x = min(round(int(rng.integers(0, free + 1)) * w / 112.0), w - side)
        y = min(round(int(rng.integers(0, free + 1)) * h / 112.0), h - side)
        out = face.copy()
        hole = out[y : y + side, x : x + side]
        hole[...] = fill_pixels(self.fill, hole.shape, rng)
        occ = finish(face, out, {"occluder": self.name, "fill": self.fill})
        return Occlusion(occ.image, occ.mask, {**occ.record, "block": [x, y, x + side, y + side]})


# -- suites: named lists of occluder specs, as data files in protocols/suites/ ----------------


@dataclass(frozen=True)
class Suite:
    """A named, versioned list of occluder specs (``protocols/suites/<name>.toml``)."""

    name: str
    version: str
    description: str
    occluders: tuple[str, ...]


def suites() -> dict[str, Suite]:
    """Every suite shipped in ``protocols/suites``."""
    import tomllib
    from importlib import resources

    found: dict[str, Suite] = {}
    folder = resources.files("protocols") / "suites"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        data = tomllib.loads(entry.read_text())
        try:
            suite = Suite(str(data["name"]), str(data["version"]), str(data.get("description", "")),
                          tuple(str(o) for o in data["occluders"]))
        except KeyError as exc:
            raise ValueError(f"suite file {entry.name} lacks the field {exc}") from exc
        found[suite.name] = suite
    return found


def expand_occlusion(spec: str) -> list[str]:
    """The occluder specs an ``--occlusion`` value stands for: parts joined by ``+``, each
    a suite name (``everyday`` or ``suite:everyday``: its list) or one occluder spec."""
    known = suites()
    out: list[str] = []
    for part in (p for p in spec.split("+") if p):
        name = part[6:] if part.startswith("suite:") else part
        out += list(known[name].occluders) if name in known else [part]
    return out


def occlude_batch(
    occluder: Occluder,
    faces: np.ndarray,
    pair_indices: Sequence[int],
    side: str,
    seed: int,
    landmarks: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Occlude a batch of one side's faces.

    ``faces``: (n, H, W, 3) uint8; ``pair_indices``: (n,) the pair each face belongs to;
    ``side``: ``first`` or ``second``; ``landmarks``: optional (n, 5, 2) float, each face's
    own landmarks in its pixels (NaN rows: unknown), where the aligner knows them — object
    occluders then place by them instead of finding them on the face. Returns occluded
    faces, masks (n, H, W) bool and one manifest record per face (with pair, side and seed
    added).
    """
    out = np.empty_like(faces)
    masks = np.zeros(faces.shape[:3], bool)
    records = []
    if landmarks is not None:
        landmarks = np.asarray(landmarks, np.float64)
        if landmarks.shape != (len(faces), 5, 2):
            raise ValueError(f"landmarks must be ({len(faces)}, 5, 2), got {landmarks.shape}")
    for i, (face, pair) in enumerate(zip(faces, pair_indices)):
        known = None if landmarks is None or not np.isfinite(landmarks[i]).all() else landmarks[i]
        rng = item_rng(seed, int(pair), side)
        occ = (occluder.occlude_item(face, rng, int(pair), side) if known is None
               else occluder.occlude_item(face, rng, int(pair), side, landmarks=known))
        out[i], masks[i] = occ.image, occ.mask
        records.append({"pair": int(pair), "side": side, "seed": seed, **occ.record})
    return out, masks, records


OCCLUDERS.register("none", NoOcclusion)
OCCLUDERS.register("region:*", RegionOccluder)
OCCLUDERS.register("random_part", RandomPart)
OCCLUDERS.register("random_block", RandomBlock)
OCCLUDERS.register("baked:*", "recogbench.occlusion.bake:BakedOccluder")
OCCLUDERS.register("freeform", "recogbench.occlusion.freeform:FreeForm")
OCCLUDERS.register("real:*", "recogbench.occlusion.real:RealOccluder")

# Synthetic objects placed by the landmarks (recogbench/occlusion/objects.py).
OCCLUDERS.register("sunglasses", "recogbench.occlusion.objects:Sunglasses")
OCCLUDERS.register("medical_mask", "recogbench.occlusion.objects:MedicalMask")
OCCLUDERS.register("hand", "recogbench.occlusion.objects:Hand")
OCCLUDERS.register("scarf", "recogbench.occlusion.objects:Scarf")
OCCLUDERS.register("cap", "recogbench.occlusion.objects:Cap")
OCCLUDERS.register("microphone", "recogbench.occlusion.objects:Microphone")
OCCLUDERS.register("cup", "recogbench.occlusion.objects:Cup")

# The Helwan "Face Under-Mask Reconstruction" occluder categories beyond the ones above.
OCCLUDERS.register("book", "recogbench.occlusion.objects:Book")
OCCLUDERS.register("box", "recogbench.occlusion.objects:Box")
OCCLUDERS.register("candy", "recogbench.occlusion.objects:Candy")
OCCLUDERS.register("cigarette", "recogbench.occlusion.objects:Cigarette")
OCCLUDERS.register("envelope", "recogbench.occlusion.objects:Envelope")
OCCLUDERS.register("fast_food", "recogbench.occlusion.objects:FastFood")
OCCLUDERS.register("flower", "recogbench.occlusion.objects:Flower")
OCCLUDERS.register("fruit", "recogbench.occlusion.objects:Fruit")
OCCLUDERS.register("glove", "recogbench.occlusion.objects:Glove")
OCCLUDERS.register("keys", "recogbench.occlusion.objects:Keys")
OCCLUDERS.register("pen", "recogbench.occlusion.objects:Pen")
OCCLUDERS.register("phone", "recogbench.occlusion.objects:Phone")
