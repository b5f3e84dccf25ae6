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
* **region** — otherwise the cut-out's alpha bounding box is fitted, aspect preserved,
  into the box of a named region of the template face (:data:`PLACES`: ``eyes``,
  ``forehead``, ``lower_face``, ``before_mouth``, ``hand``, or any ID-Inpainter box of
  :data:`recogbench.occlusion.REGIONS`), aligned to the box's top, centre or bottom as
  that kind of object sits. Which region, per file, first of:

  1. a **sidecar** ``<image stem>.json`` next to the image:
     ``{"region": "eyes", "scale": 1.0, "offset": [0, 0]}`` (``scale`` multiplies the
     fitted size, ``offset`` moves it, in pixels of the 112 face; both optional);
  2. the occluder's ``region=`` option, for every file of the folder;
  3. the **kind in the file name**: a word of the stem (split at ``_ - . space``, digits
     and camelCase) naming a known kind (:data:`KINDS`: ``cap_red.png`` → forehead,
     ``sunglasses1.png`` → eyes, ``KN95.png`` → lower_face, ``mug-2.png`` → before_mouth …).

  A folder where a cut-out has no anchors and none of these is refused
  (:class:`~recogbench.data.DataError`), naming the files: an object is never put
  somewhere it does not belong (before, every such cut-out went to the lower face).

Either way a seeded jitter of ±5 % scale and ±3 px shift (on the 112 face) is applied,
and the placement on the template face is carried onto the face's own landmarks (found on
it when not given; :mod:`recogbench.occlusion.pose`). The cut-out is warped in
premultiplied alpha (pre-shrunk with area averaging when it is much larger than its place
on the face, so it does not alias) and alpha-blended; the mask is exactly the changed
pixels. Records carry ``file``, ``anchors_used``, ``placement`` (``cfg``, ``sidecar``,
``option`` or ``name``), ``region`` and, on a face whose landmarks are known, the pose
fields (``yaw_deg``, ``clipped`` …).

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
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from recogbench.data import DataError
from recogbench.imageio import decode_image
from recogbench.align import ARCFACE_TEMPLATE
from recogbench.occlusion import REGIONS, Occluder, Occlusion, finish
from recogbench.occlusion.pose import alpha_points, check_mode, face_pose, template_landmarks
from recogbench.registry import portable_spec

log = logging.getLogger(__name__)

#: File endings read as images; anything else in the folder is skipped.
IMAGE_SUFFIXES = (".png", ".webp", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
POSES = ("frontal", "left", "right", "any")
MATTINGS = ("white", "black")
CONFIG_NAME = "masks.cfg"
ANCHOR_KEYS = ("mask_a", "mask_b", "mask_c", "mask_d", "mask_e", "mask_f")

SIDECAR_SUFFIX = ".json"
SIDECAR_KEYS = ("region", "scale", "offset")


@dataclass(frozen=True)
class Place:
    """Where a kind of cut-out goes on the 112 template face: its alpha box is fitted,
    aspect kept, into ``box`` (x1, y1, x2, y2, template pixels; it may reach past the
    image) and put at the box's ``valign`` (top, centre or bottom) and horizontal centre.
    ``mount`` and ``depth``: how it turns with the head
    (:meth:`~recogbench.occlusion.pose.FacePose.place`)."""

    box: tuple[float, float, float, float]
    valign: str = "centre"
    mount: str = "wrap"
    depth: float = 0.0


def _places() -> dict[str, Place]:
    """The regions, from the template's landmarks (so they sit where the procedural
    objects of the same kinds do, :mod:`recogbench.occlusion.objects`)."""
    t = ARCFACE_TEMPLATE.astype(np.float64)
    eyes, nose, mouth = (t[0] + t[1]) / 2, t[2], (t[3] + t[4]) / 2
    iod = float(t[1, 0] - t[0, 0])
    d = float(mouth[1] - eyes[1])

    def box(cx: float, half_w: float, y1: float, y2: float) -> tuple[float, float, float, float]:
        return (round(cx - half_w, 2), round(y1, 2), round(cx + half_w, 2), round(y2, 2))

    places = {
        # glasses: temple to temple 2.2 inter-ocular distances, centred on the eyes
        "eyes": Place(box(eyes[0], 1.1 * iod, eyes[1] - 0.45 * iod, eyes[1] + 0.45 * iod), "centre"),
        # caps and hats: head-wide, the brim's lower edge a third of an eye distance above
        # the eyes (the procedural cap's brim), the crown up past the top of the image
        "forehead": Place(box(eyes[0], 1.35 * iod, eyes[1] - 2.7 * iod, eyes[1] - 0.33 * iod), "bottom"),
        # masks and scarves: from the nose bridge (as mask_targets) down to the chin
        "lower_face": Place(box(nose[0], 1.1 * iod, eyes[1] + 0.35 * d, mouth[1] + 0.45 * d), "top", depth=0.5),
        # a cup, a microphone: held up before the mouth, top just under the nose
        "before_mouth": Place(box(mouth[0], 0.65 * iod, nose[1] + 0.2 * (mouth[1] - nose[1]), mouth[1] + 1.6 * iod),
                              "top", "held", 1.0),
    }
    # a hand over the mouth or one eye (drawn per face, as the procedural hand does)
    for name, (x, y) in (("hand:mouth", mouth), ("hand:left_eye", t[0]), ("hand:right_eye", t[1])):
        places[name] = Place(box(x, 0.85 * iod, y - 0.85 * iod, y + 0.85 * iod), "centre", "plane", 0.5)
    for name, b in REGIONS.items():  # the ID-Inpainter boxes, filled centred as before
        places[name] = Place(tuple(float(v) for v in b), "centre")
    return places


#: Named regions for cut-outs without anchors (``hand`` draws one of ``hand:*`` per face).
PLACES: dict[str, Place] = _places()
HAND_TARGETS = ("hand:mouth", "hand:left_eye", "hand:right_eye")
REGION_NAMES = ("eyes", "forehead", "lower_face", "before_mouth", "hand", *REGIONS)

#: Words of a file name that say what kind of object it is, and so where it goes.
KINDS: dict[str, tuple[str, ...]] = {
    "eyes": ("sunglass", "sunglasses", "glass", "glasses", "eyeglass", "eyeglasses", "spectacle", "spectacles",
             "goggle", "goggles", "shades", "eyewear"),
    "forehead": ("cap", "caps", "hat", "hats", "beanie", "beanies", "helmet", "helmets", "visor", "visors", "beret",
                 "berets", "headband", "headbands"),
    "lower_face": ("mask", "masks", "facemask", "facemasks", "scarf", "scarfs", "scarves", "respirator",
                   "respirators", "n95", "kn95", "ffp2", "ffp3", "surgical", "bandana", "bandanas"),
    "before_mouth": ("mic", "mics", "microphone", "microphones", "cup", "cups", "mug", "mugs", "bottle", "bottles",
              "lollipop", "lollipops", "candy", "cigarette", "cigarettes", "cigar", "cigars", "pen", "pens",
              "pencil", "pencils", "apple", "apples", "banana", "bananas", "burger", "burgers", "sandwich",
              "icecream"),
    "hand": ("hand", "hands", "glove", "gloves", "palm", "palms", "fist", "fists"),
}
_KIND_OF = {word: region for region, words in KINDS.items() for word in words}

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


def kind_of(name: str) -> str | None:
    """The region a file name's kind puts it in (:data:`KINDS`), or None when no word of
    its stem names a known kind or words name different regions (``mask_and_cap``)."""
    stem = re.sub(r"([a-z])([A-Z])", r"\1 \2", Path(name).stem)  # camelCase: a word each
    words = [w for w in re.split(r"[^a-z0-9]+", stem.lower()) if w]
    found = set()
    for word in words:
        for candidate in (word, word.rstrip("0123456789")):  # sunglasses1, cap2
            if candidate in _KIND_OF:
                found.add(_KIND_OF[candidate])
    return found.pop() if len(found) == 1 else None


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
    placement: str = "cfg"  # where its place comes from: cfg, sidecar, option or name
    region: str | None = None  # a REGION_NAMES entry, for cut-outs without anchors
    scale: float = 1.0  # sidecar: times the fitted size
    offset: tuple[float, float] = (0.0, 0.0)  # sidecar: shift, pixels of the 112 face
    _levels: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _points: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """The alpha as weighted points in this cut-out's pixels (:func:`alpha_points`)."""
        if self._points is None:
            self._points = alpha_points(self.rgba[..., 3].astype(np.float32) / 255.0)
        return self._points

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
    ``pose`` frontal (default), left, right or any; ``region``: the region for every
    cut-out without ``masks.cfg`` anchors or a sidecar (default: none; then each file's
    name must say its kind); ``matting`` white or black derives alpha for images without
    one; ``scale_jitter`` (0.05) and ``shift_jitter`` (3 px on the 112 face);
    ``landmarks``: ``auto`` (the face's own, given or found on a turned face) or
    ``template``.
    """

    uses_landmarks = True

    def __init__(
        self,
        variant: str,
        file: str | None = None,
        pose: str = "frontal",
        region: str | None = None,
        matting: str | None = None,
        scale_jitter: float = 0.05,
        shift_jitter: float = 3.0,
        landmarks: str = "auto",
    ) -> None:
        if pose not in POSES:
            raise ValueError(f"pose must be one of {POSES}, got {pose!r}")
        if region in ("", "none"):
            region = None
        if region is not None and region not in REGION_NAMES:
            raise ValueError(f"region must be one of {', '.join(REGION_NAMES)}, got {region!r}")
        if matting in ("", "none"):
            matting = None
        if matting is not None and matting not in MATTINGS:
            raise ValueError(f"matting must be one of {MATTINGS} (or unset), got {matting!r}")
        if not 0 <= scale_jitter < 1 or shift_jitter < 0:
            raise ValueError("scale_jitter must be in [0, 1) and shift_jitter >= 0")
        self.folder = Path(variant).expanduser()
        # The folder's name and content digest, never where it happens to be (rows, manifests, hashes).
        self.name = portable_spec(f"real:{variant}")
        self.file, self.pose, self.region, self.matting = file, pose, region, matting
        self.scale_jitter, self.shift_jitter = float(scale_jitter), float(shift_jitter)
        self.landmarks = check_mode(landmarks)
        self.cutouts, self.digest = self._load()

    # -- loading -------------------------------------------------------------------

    def _load(self) -> tuple[list[Cutout], str]:
        folder = self.folder
        if not folder.is_dir():
            raise DataError(f"occluder folder {folder} does not exist or is not a folder")
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        config = folder / CONFIG_NAME
        images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        stems = {p.stem for p in images}
        sidecars = {p.stem: p for p in entries
                    if p.is_file() and p.suffix.lower() == SIDECAR_SUFFIX and p.stem in stems}
        skipped = [p.name for p in entries if p not in images and p != config and p not in sidecars.values()]
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
        cutouts, unplaced = [], []
        for path in chosen:
            data = path.read_bytes()
            digest.update(path.name.encode() + b"\0" + data)
            rgba = self._decode(path, data)
            points = anchors.get(path.name, anchors.get(path.stem))
            cut = _crop(path.name, rgba, points)
            if points is None:
                sidecar = sidecars.get(path.stem)
                if sidecar is not None:
                    digest.update(sidecar.name.encode() + b"\0" + sidecar.read_bytes())
                    cut.region, cut.scale, cut.offset = _read_sidecar(sidecar)
                    cut.placement = "sidecar"
                elif self.region is not None:
                    cut.region, cut.placement = self.region, "option"
                elif (kind := kind_of(path.name)) is not None:
                    cut.region, cut.placement = kind, "name"
                else:
                    unplaced.append(path.name)
            cutouts.append(cut)
        if unplaced:
            raise DataError(
                f"occluder folder {folder}: no placement for {', '.join(unplaced)} — no masks.cfg anchors, no "
                f"sidecar and no known kind in the name, so where the object goes is unknown. Add a sidecar "
                f'<image stem>.json such as {{"region": "eyes"}} (regions: {", ".join(REGION_NAMES)}; optional '
                f'"scale": 1.0 and "offset": [dx, dy] in pixels of the 112 face), name the file after its kind '
                f"({_kind_examples()}), or pass region=NAME for the whole folder"
            )
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
            "landmarks": self.landmarks,
            "files": [c.file for c in self.cutouts],
            "placements": {c.file: c.region or "anchors" for c in self.cutouts},
            "digest": self.digest,
        }

    def occlude(self, face: np.ndarray, rng: np.random.Generator, landmarks: np.ndarray | None = None) -> Occlusion:
        """Occlude ``face`` ((H, W, 3) uint8, aligned) drawing randomness only from ``rng``;
        ``landmarks`` (5, 2): the face's own landmarks in its pixels, when known."""
        if face.ndim != 3 or face.shape[2] != 3 or face.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 face, got {face.shape} {face.dtype}")
        h, w = face.shape[:2]
        cut = self.cutouts[int(rng.integers(len(self.cutouts)))] if len(self.cutouts) > 1 else self.cutouts[0]
        # Draw the jitter whatever the placement, so the stream's use is fixed.
        jscale = 1.0 + rng.uniform(-self.scale_jitter, self.scale_jitter)
        jshift = rng.uniform(-self.shift_jitter, self.shift_jitter, 2) * (w / 112.0, h / 112.0)

        region = cut.region
        if cut.anchors is not None:
            target = mask_targets(template_landmarks(h, w))
            centre = target.mean(axis=0)
            target = centre + (target - centre) * jscale + jshift
            matrix = _fit_affine(cut.anchors, target)
            mount, depth = "wrap", 0.5  # a mask, worn over the nose
        else:
            if region == "hand":  # drawn after the jitter: the other kinds' streams stay as they were
                region = HAND_TARGETS[int(rng.integers(len(HAND_TARGETS)))]
            place = PLACES[region]
            matrix = _fit_box(cut, place, h, w, jscale, jshift)
            mount, depth = place.mount, place.depth

        src, matrix = _shrunk(cut, matrix)
        points, weights = cut.points()
        f = src.shape[1] / cut.rgba.shape[1], src.shape[0] / cut.rgba.shape[0]
        points = (points + 0.5) * f - 0.5  # in the shrunk source's pixels
        pose = face_pose(face, landmarks, self.landmarks)
        placed = pose.place(matrix, points, depth=depth, mount=mount)
        if pose.moved:
            layer = _layer(placed.warp(src, points, h, w), h, w)
        else:  # exactly the template placement of before
            layer = cv2.warpAffine(src, matrix, (w, h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=(0.0, 0.0, 0.0, 0.0))
        alpha = np.clip(layer[..., 3:], 0.0, 1.0)
        blended = face.astype(np.float32) * (1.0 - alpha) + layer[..., :3] * 255.0
        out = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        record = {"occluder": self.name, "file": cut.file, "anchors_used": cut.anchors is not None,
                  "placement": cut.placement, "region": region,
                  **pose.record(placed, points, weights, h, w)}
        return finish(face, out, record)


# -- helpers ---------------------------------------------------------------------------


def _shrunk(cut: Cutout, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cut-out's premultiplied RGBA at the pyramid level that ``matrix`` (2, 3, cut-out
    pixels → face pixels) needs, and the matrix from that level's pixels: a warp that
    shrinks a lot samples a copy shrunk with area averaging, as INTER_LINEAR would alias."""
    linear = math.sqrt(abs(float(np.linalg.det(matrix[:, :2]))))
    level = max(0, math.floor(-2.0 * math.log2(linear))) if linear > 0 else 0
    src = cut.premultiplied(level)  # cached; two threads may build one level twice, harmlessly
    if level:  # map the shrunk source's pixels (cv2.resize's centre convention) back
        fx, fy = src.shape[1] / cut.rgba.shape[1], src.shape[0] / cut.rgba.shape[0]
        linear_part = matrix[:, :2]
        offset = linear_part @ np.array([0.5 / fx - 0.5, 0.5 / fy - 0.5])
        matrix = np.hstack([linear_part / (fx, fy), matrix[:, 2:] + offset[:, None]])
    return src, matrix.astype(np.float64)


def _fit_box(cut: Cutout, place: Place, h: int, w: int, jscale: float, jshift: np.ndarray) -> np.ndarray:
    """The (2, 3) matrix fitting ``cut``'s alpha box into ``place`` on an ``h``×``w`` face
    (aspect kept, at the box's vertical alignment and horizontal centre), times the
    sidecar's scale and offset and the jitter."""
    x1, y1, x2, y2 = place.box
    sx, sy = w / 112.0, h / 112.0
    bx1, by1, bx2, by2 = cut.box
    bw, bh = bx2 - bx1, by2 - by1
    s = min((x2 - x1) * sx / bw, (y2 - y1) * sy / bh) * cut.scale * jscale
    cx = (x1 + x2) / 2 * sx
    if place.valign == "top":
        cy = y1 * sy + s * bh / 2
    elif place.valign == "bottom":
        cy = y2 * sy - s * bh / 2
    else:
        cy = (y1 + y2) / 2 * sy
    cx, cy = cx + cut.offset[0] * sx + jshift[0], cy + cut.offset[1] * sy + jshift[1]
    return np.array([[s, 0.0, cx - s * (bx1 + bx2) / 2], [0.0, s, cy - s * (by1 + by2) / 2]])


def _layer(warped: tuple[np.ndarray, int, int] | None, h: int, w: int) -> np.ndarray:
    """A warped window ``(rgba, x0, y0)`` on a transparent (h, w, 4) float32 layer."""
    layer = np.zeros((h, w, 4), np.float32)
    if warped is not None:
        win, x0, y0 = warped
        layer[y0 : y0 + win.shape[0], x0 : x0 + win.shape[1]] = win
    return layer


def _kind_examples() -> str:
    return ", ".join(f"{words[0]} → {region}" for region, words in KINDS.items())


def _read_sidecar(path: Path) -> tuple[str, float, tuple[float, float]]:
    """A sidecar ``<stem>.json``: (region, scale, offset). Anything else is a DataError
    naming the file and the fault."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a JSON placement ({exc}); expected e.g. {{\"region\": \"eyes\"}}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object such as {{\"region\": \"eyes\"}}, got {type(data).__name__}")
    extra = sorted(set(data) - set(SIDECAR_KEYS))
    if extra:
        raise DataError(f"{path}: unknown key(s) {', '.join(extra)} (known: {', '.join(SIDECAR_KEYS)})")
    region = data.get("region")
    if region not in REGION_NAMES:
        raise DataError(f"{path}: region must be one of {', '.join(REGION_NAMES)}, got {region!r}")
    scale = data.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < 10:
        raise DataError(f"{path}: scale must be a number in (0, 10), got {scale!r}")
    offset = data.get("offset", [0, 0])
    if (not isinstance(offset, list) or len(offset) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in offset)):
        raise DataError(f"{path}: offset must be [dx, dy] in pixels of the 112 face, got {offset!r}")
    return str(region), float(scale), (float(offset[0]), float(offset[1]))


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
