"""Real occluders: RGBA cut-outs from a folder, warped onto the aligned face (``real:<folder>``).

The folder holds PNG/WebP cut-outs with an alpha channel (e.g. the MaskTheFace masks).
Each face gets one cut-out, drawn from the seed among the usable ones (or pinned with
``file=``), placed in one of two ways:

* **anchors** — when the folder has a ``masks.cfg`` (MaskTheFace format: one INI
  section per template with ``template`` and ``mask_a`` … ``mask_f`` = ``x, y`` in the
  template's pixels: left-top, top-middle, right-top, left-bottom, bottom-middle,
  right-bottom of the mask outline) with a section for the file, the six anchors are
  mapped by a least-squares affine transform onto six points derived from the five
  landmarks of the aligned face (see :func:`mask_targets`): top edge on the nose bridge,
  top corners at the cheek contour, bottom corners on the jaw, bottom middle on the chin;
* **region** — otherwise the cut-out's alpha bounding box is fitted, aspect preserved
  and centred, into a named region box (``region=down_face`` by default; any name of
  :data:`recogbench.occlusion.REGIONS`).

Either way a seeded jitter of ±5 % scale and ±3 px shift (on the 112 face) is applied.
The cut-out is warped in premultiplied alpha (pre-shrunk with area averaging when it is
much larger than its place on the face, so it does not alias) and alpha-blended; the
mask is exactly the changed pixels.

Cut-outs are read and checked when the occluder is built, so a bad folder fails before a
run starts: an image without alpha (a JPEG, an RGB PNG, or an alpha channel that is
opaque everywhere) is a :class:`~recogbench.data.DataError` naming the file, unless
``matting=white`` or ``matting=black`` explicitly asks to derive the alpha: pixels
within a small tolerance of that colour *and connected to the image border* become
transparent (so a white mask on a white background keeps its white inside). Files that
are not images (by extension) are skipped and logged at INFO; if no usable image is
left the DataError lists them.

Pose: MaskTheFace names side views ``<name>_left`` / ``<name>_right``. Every face in
the pipeline is aligned frontal, so ``pose=frontal`` (the default) uses only the names
without those suffixes; ``pose=left``, ``pose=right`` or ``pose=any`` select the others.
"""

from __future__ import annotations

import configparser
import hashlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from recogbench.data import DataError
from recogbench.imageio import decode_image
from recogbench.occlusion import REGIONS, Occluder, Occlusion, face_landmarks, finish

log = logging.getLogger(__name__)

#: File endings read as images; anything else in the folder is skipped.
IMAGE_SUFFIXES = (".png", ".webp", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
POSES = ("frontal", "left", "right", "any")
MATTINGS = ("white", "black")
CONFIG_NAME = "masks.cfg"
ANCHOR_KEYS = ("mask_a", "mask_b", "mask_c", "mask_d", "mask_e", "mask_f")

#: Matting: a pixel within this many levels (every channel) of the background colour
#: and connected to the border is background.
MATTING_TOLERANCE = 24
_MARGIN = 2  # px of transparent border kept around a cropped cut-out, for interpolation


def pose_of(name: str) -> str:
    """``left``/``right`` for MaskTheFace side views (``surgical_left.png``), else ``frontal``."""
    stem = Path(name).stem.lower()
    for side in ("left", "right"):
        if stem.endswith("_" + side):
            return side
    return "frontal"


def mask_targets(landmarks: np.ndarray) -> np.ndarray:
    """The six face points (6, 2) that a mask's anchors ``mask_a`` … ``mask_f`` go to.

    From the five landmarks (eyes, nose tip, mouth corners), in the face's own frame
    (x along the eye line, y towards the mouth), with ``d`` the eye-to-mouth distance
    and ``e`` the distance between the eyes:

    * top middle (b): on the nose bridge, 0.35·d below the eye line (above the nose tip);
    * top corners (a, c): level with b, 1.0·e either side — the cheek contour;
    * bottom middle (e): the chin, 0.45·d below the mouth;
    * bottom corners (d, f): halfway between b and the chin, 0.85·e either side — the jaw.

    On the 112 face: b ≈ (56, 66), a/c ≈ (21, 66)/(91, 66), chin ≈ (56, 111),
    d/f ≈ (26, 88)/(86, 88). A least-squares affine cannot follow a template whose top
    edge is curved (a, c lower than b), so the top middle of such a mask lands a few pixels
    above b; hence b sits a little low.
    """
    lm = np.asarray(landmarks, np.float64)
    eye_l, eye_r, mouth = lm[0], lm[1], (lm[3] + lm[4]) / 2
    eyes = (eye_l + eye_r) / 2
    e = float(np.linalg.norm(eye_r - eye_l))
    ux = (eye_r - eye_l) / e                 # along the eye line
    uy = np.array([-ux[1], ux[0]])           # perpendicular, pointing down the face
    d = float(np.dot(mouth - eyes, uy))
    top = eyes + 0.35 * d * uy
    chin = mouth + 0.45 * d * uy
    mid = (top + chin) / 2
    return np.array([
        top - 1.0 * e * ux, top, top + 1.0 * e * ux,
        mid - 0.85 * e * ux, chin, mid + 0.85 * e * ux,
    ])


@dataclass
class Cutout:
    """One loaded cut-out: RGBA uint8 cropped to its alpha (plus a margin), its anchors
    (6, 2) in the cropped image's pixels or None, and its alpha bounding box there."""

    file: str
    rgba: np.ndarray
    anchors: np.ndarray | None
    box: tuple[int, int, int, int]
    _levels: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def premultiplied(self, level: int) -> np.ndarray:
        """(h, w, 4) float32 premultiplied RGBA in [0, 1], shrunk by 2**(level/2)."""
        got = self._levels.get(level)
        if got is None:
            alpha = self.rgba[..., 3:].astype(np.float32) / 255.0
            got = np.concatenate([self.rgba[..., :3].astype(np.float32) / 255.0 * alpha, alpha], axis=2)
            if level:
                f = 2.0 ** (-level / 2)
                h, w = got.shape[:2]
                size = (max(1, round(w * f)), max(1, round(h * f)))
                got = cv2.resize(got, size, interpolation=cv2.INTER_AREA)
            self._levels[level] = got
        return got


class RealOccluder(Occluder):
    """Real RGBA cut-outs from a folder, placed by landmarks (``real:/path/to/masks``).

    ``variant``: the folder. Options: ``file`` pins one cut-out (name or stem);
    ``pose`` frontal (default), left, right or any; ``region``: the box used for
    cut-outs without ``masks.cfg`` anchors (default down_face); ``matting`` white or
    black derives alpha for images without one; ``scale_jitter`` (0.05) and
    ``shift_jitter`` (3 px on the 112 face).
    """

    def __init__(
        self,
        variant: str,
        file: str | None = None,
        pose: str = "frontal",
        region: str = "down_face",
        matting: str | None = None,
        scale_jitter: float = 0.05,
        shift_jitter: float = 3.0,
    ) -> None:
        if pose not in POSES:
            raise ValueError(f"pose must be one of {POSES}, got {pose!r}")
        if region not in REGIONS:
            raise ValueError(f"region must be one of {', '.join(REGIONS)}, got {region!r}")
        if matting in ("", "none"):
            matting = None
        if matting is not None and matting not in MATTINGS:
            raise ValueError(f"matting must be one of {MATTINGS} (or unset), got {matting!r}")
        if not 0 <= scale_jitter < 1 or shift_jitter < 0:
            raise ValueError("scale_jitter must be in [0, 1) and shift_jitter >= 0")
        self.folder = Path(variant).expanduser()
        self.name = f"real:{variant}"
        self.file, self.pose, self.region, self.matting = file, pose, region, matting
        self.scale_jitter, self.shift_jitter = float(scale_jitter), float(shift_jitter)
        self.cutouts, self.digest = self._load()

    # -- loading -------------------------------------------------------------------

    def _load(self) -> tuple[list[Cutout], str]:
        folder = self.folder
        if not folder.is_dir():
            raise DataError(f"occluder folder {folder} does not exist or is not a folder")
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        config = folder / CONFIG_NAME
        images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        skipped = [p.name for p in entries if p not in images and p != config]
        if not images:
            listed = ", ".join(skipped) if skipped else "nothing"
            raise DataError(
                f"occluder folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); found {listed}"
            )
        if skipped:
            log.info(
                "real occluder %s: skipped %d non-image file(s): %s", folder, len(skipped), ", ".join(skipped)
            )

        if self.file is not None:
            chosen = [p for p in images if p.name == self.file] or [p for p in images if p.stem == self.file]
            if not chosen:
                names = ", ".join(p.name for p in images)
                raise DataError(f"occluder folder {folder} has no image {self.file!r} (images: {names})")
            chosen = chosen[:1]
        else:
            chosen = [p for p in images if self.pose == "any" or pose_of(p.name) == self.pose]
            if not chosen:
                raise DataError(
                    f"occluder folder {folder} has no {self.pose} cut-outs (images: "
                    f"{', '.join(p.name for p in images)}); use pose=any, left or right"
                )

        anchors = _read_config(config) if config.is_file() else {}
        digest = hashlib.sha256()
        if config.is_file():
            digest.update(config.read_bytes())
        cutouts = []
        for path in chosen:
            data = path.read_bytes()
            digest.update(path.name.encode() + b"\0" + data)
            rgba = self._decode(path, data)
            points = anchors.get(path.name, anchors.get(path.stem))
            cutouts.append(_crop(path.name, rgba, points))
        return cutouts, digest.hexdigest()[:16]

    def _decode(self, path: Path, data: bytes) -> np.ndarray:
        """The image as RGBA uint8, alpha checked (or derived with ``matting``)."""
        rgba = decode_image(data, str(path), mode="rgba")
        alpha = rgba[..., 3]
        if alpha.min() == 255:  # no alpha, or an alpha channel that hides nothing
            if self.matting is None:
                raise DataError(
                    f"occluder image {path} has no transparency (no alpha channel, or one opaque "
                    "everywhere): real occluders need RGBA cut-outs "
                    "(PNG/WebP with transparency), or matting=white|black to cut it from a uniform background"
                )
            rgba[..., 3] = _matte(rgba[..., :3], self.matting, path)
        if not rgba[..., 3].any():
            raise DataError(f"occluder image {path} is fully transparent")
        return rgba

    # -- placing -------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        return {
            "occluder": self.name,
            "file": self.file,
            "pose": self.pose,
            "region": self.region,
            "matting": self.matting,
            "scale_jitter": self.scale_jitter,
            "shift_jitter": self.shift_jitter,
            "files": [c.file for c in self.cutouts],
            "digest": self.digest,
        }

    def occlude(self, face: np.ndarray, rng: np.random.Generator) -> Occlusion:
        if face.ndim != 3 or face.shape[2] != 3 or face.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 face, got {face.shape} {face.dtype}")
        h, w = face.shape[:2]
        cut = self.cutouts[int(rng.integers(len(self.cutouts)))] if len(self.cutouts) > 1 else self.cutouts[0]
        # Draw the jitter whatever the placement, so the stream's use is fixed.
        jscale = 1.0 + rng.uniform(-self.scale_jitter, self.scale_jitter)
        jshift = rng.uniform(-self.shift_jitter, self.shift_jitter, 2) * (w / 112.0, h / 112.0)

        if cut.anchors is not None:
            target = mask_targets(_landmarks(h, w))
            centre = target.mean(axis=0)
            target = centre + (target - centre) * jscale + jshift
            matrix = _fit_affine(cut.anchors, target)
        else:
            x1, y1, x2, y2 = REGIONS[self.region]
            sx, sy = w / 112.0, h / 112.0
            bx1, by1, bx2, by2 = cut.box
            bw, bh = bx2 - bx1, by2 - by1
            s = min((x2 - x1) * sx / bw, (y2 - y1) * sy / bh) * jscale
            cx, cy = (x1 + x2) / 2 * sx + jshift[0], (y1 + y2) / 2 * sy + jshift[1]
            matrix = np.array([[s, 0.0, cx - s * (bx1 + bx2) / 2], [0.0, s, cy - s * (by1 + by2) / 2]])

        # Shrink the source first when the warp shrinks a lot: INTER_LINEAR would alias.
        linear = math.sqrt(abs(float(np.linalg.det(matrix[:, :2]))))
        level = max(0, math.floor(-2.0 * math.log2(linear))) if linear > 0 else 0
        src = cut.premultiplied(level)  # cached; two threads may build one level twice, harmlessly
        if level:  # map the shrunk source's pixels (cv2.resize's centre convention) back
            fx, fy = src.shape[1] / cut.rgba.shape[1], src.shape[0] / cut.rgba.shape[0]
            linear_part = matrix[:, :2]
            offset = linear_part @ np.array([0.5 / fx - 0.5, 0.5 / fy - 0.5])
            matrix = np.hstack([linear_part / (fx, fy), matrix[:, 2:] + offset[:, None]])
        layer = cv2.warpAffine(
            src, matrix.astype(np.float64), (w, h), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=(0.0, 0.0, 0.0, 0.0),
        )
        alpha = np.clip(layer[..., 3:], 0.0, 1.0)
        blended = face.astype(np.float32) * (1.0 - alpha) + layer[..., :3] * 255.0
        out = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        record = {"occluder": self.name, "file": cut.file, "anchors_used": cut.anchors is not None}
        return finish(face, out, record)


# -- helpers ---------------------------------------------------------------------------


def _landmarks(h: int, w: int) -> np.ndarray:
    if h == w:
        return np.asarray(face_landmarks(h), np.float64)
    # The 112 face stretched to w×h, in face_landmarks' convention (scaled with the image).
    return (np.asarray(face_landmarks(112), np.float64) + 0.5) * (w / 112.0, h / 112.0) - 0.5


def _fit_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares (2, 3) affine mapping ``src`` (N, 2) onto ``dst`` (N, 2)."""
    design = np.hstack([src, np.ones((len(src), 1))])
    solution, *_ = np.linalg.lstsq(design, dst, rcond=None)
    return solution.T


def _read_config(path: Path) -> dict[str, np.ndarray]:
    """``masks.cfg``: template file name (and its stem) -> (6, 2) anchors. Sections
    without a template or without any anchor (MaskTheFace's ``empty``, ``inpaint``)
    are ignored; a section with some anchors but not all six is an error."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse {path}: {exc}") from exc
    found: dict[str, np.ndarray] = {}
    for section in parser.sections():
        keys = parser[section]
        present = [k for k in ANCHOR_KEYS if k in keys]
        if not present:
            continue
        if len(present) < len(ANCHOR_KEYS):
            missing = ", ".join(k for k in ANCHOR_KEYS if k not in keys)
            raise DataError(f"{path} [{section}]: anchors {missing} missing (need mask_a … mask_f)")
        points = []
        for key in ANCHOR_KEYS:
            try:
                x, y = (float(v) for v in keys[key].split(","))
            except ValueError:
                raise DataError(f"{path} [{section}] {key} = {keys[key]!r}: expected 'x, y'") from None
            points.append((x, y))
        template = Path(keys.get("template", section).strip()).name or section
        arr = np.array(points, np.float64)
        found[template] = arr
        found.setdefault(Path(template).stem, arr)
    return found


def _matte(rgb: np.ndarray, background: str, path: Path) -> np.ndarray:
    """Alpha for a cut-out on a uniform ``background``: 0 where the pixel is that colour
    (within :data:`MATTING_TOLERANCE`) and connected to the border, 255 elsewhere."""
    level = 255 if background == "white" else 0
    near = (np.abs(rgb.astype(np.int16) - level).max(axis=2) <= MATTING_TOLERANCE).astype(np.uint8)
    _, labels = cv2.connectedComponents(near, connectivity=8)  # label 0: not background-coloured
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background_px = np.isin(labels, edge[edge != 0])
    if not background_px.any():
        raise DataError(f"matting={background}: {path} has no {background} background touching its border")
    alpha = np.where(background_px, 0, 255).astype(np.uint8)
    if not alpha.any():
        raise DataError(f"matting={background}: {path} is all {background} background")
    return alpha


def _crop(name: str, rgba: np.ndarray, anchors: np.ndarray | None) -> Cutout:
    """Crop to the alpha's bounding box plus a margin; shift the anchors to match."""
    ys, xs = np.nonzero(rgba[..., 3])
    h, w = rgba.shape[:2]
    x1, y1 = max(0, int(xs.min()) - _MARGIN), max(0, int(ys.min()) - _MARGIN)
    x2, y2 = min(w, int(xs.max()) + 1 + _MARGIN), min(h, int(ys.max()) + 1 + _MARGIN)
    crop = np.ascontiguousarray(rgba[y1:y2, x1:x2])
    shifted = None if anchors is None else anchors - (x1, y1)
    box = (int(xs.min()) - x1, int(ys.min()) - y1, int(xs.max()) + 1 - x1, int(ys.max()) + 1 - y1)
    return Cutout(name, crop, shifted, box)
