"""Where an object goes on *this* face: its five landmarks, its yaw, and the map from the
frontal template face onto it.

Object occluders (procedural sprites and ``real:`` cut-outs) are laid out on the aligned
template face (:func:`~recogbench.occlusion.face_landmarks`). A turned face is aligned by
a least-squares similarity, so its landmarks do not land on the template: on a profile
(the second image of every CFP-FP pair) the eyes end up close together on one side and the
nose tip far out on the other, and a sprite laid out on the template hangs in the air
beside the face. :func:`face_pose` finds the face's own landmarks and :class:`FacePose`
maps a template layout onto them:

* **the frame** — the face's horizontal axis (its eye line averaged with the line across
  its eye→mouth axis: on a profile the eyes come too close to tell the roll), its scale
  (the eye–mouth distance, which yaw leaves alone) and the turn θ: how much the eyes came
  together at that scale, ``cos θ = eye distance / (frontal eye distance × scale)``, on the
  side the nose points to. The visible eye (the one away from the nose) is the anchor:
  it lands exactly on its landmark, the other within the roll the averaged axis leaves.
* **how an object turns** (``mount`` of :meth:`FacePose.place`) — ``wrap``: worn on the
  head (glasses, masks, caps, scarves), the template drawing is taken as the frontal view
  of a vertical cylinder (the head, :data:`HEAD_RADIUS`, or wider for a wider object)
  and turned by θ: the far side goes out of sight behind the head, the near side comes
  round towards the ear, and the eyes land where the turned eyes are; ``plane``: flat on
  the face (a hand over the mouth, a phone at the ear), foreshortened by ``cos θ``;
  ``held``: held up before the face (a cup, a microphone, a book), put where the face
  plane takes its centre, at the face's scale and roll but not foreshortened — the hand
  holding it does not turn with the head.
* **depth** — the nose tip stands in front of the eyes; its offset from where the frame
  puts the template's nose says how far points in front of the face move sideways. An
  occluder moves its object by ``depth`` times that offset: 0 for things on the face
  (glasses, a cap), 1 for things held at the nose tip's depth, between for a mask.
* **yaw** — the nose tip's offset from the eye midpoint along the eye line, ``r`` in
  inter-ocular distances, with the nose tip :data:`NOSE_DEPTH` inter-ocular distances in
  front of the eyes: ``yaw = atan2(r, NOSE_DEPTH)`` (degrees, positive when the nose
  points to the image's right). Recorded, it gives θ its sign and says how far
  re-detected landmarks are trusted (below).
* **profiles** — near 90° the eyes project onto one point; θ stops at
  ``acos(MIN_FORESHORTENING)`` (75.5°) with the visible eye kept in place, so sunglasses
  still cover the eye one sees.

An object lost past the image border: each record of a face with known landmarks says
``clipped`` when the border cuts off more than :data:`CLIP_TOLERANCE` more of the object's
alpha than at the same placement on the template (a cap's crown above a tight crop is its
normal place, not clipping), and ``clipped_fraction``, that extra share.

Where the landmarks come from (``landmarks=`` option of the occluders):

* ``given`` — passed in by the caller (``occlude_batch(..., landmarks=)``): the aligner
  knows where the detected landmarks went, and they are used as they are.
* ``auto`` (default) — otherwise they are detected on the aligned face itself with the
  project's YuNet detector (at 112 px, so a 256 face gets the same points scaled). A
  re-detection on an aligned face scatters by 2–3 px even on frontal faces (measured on
  the 25 deepface photos: re-detected yaw within ±14°), which is noise, not pose. So the
  re-detected points are blended in by the yaw: template below :data:`TRUST_YAW`\\[0],
  fully detected above :data:`TRUST_YAW`\\[1], smoothly between. A frontal face is
  therefore placed exactly as on the template, and a face with no detection (a flat test
  image, a face the detector misses) falls back to the template.
* ``template`` — always the template (the placement before poses existed).

Every step is a function of the face's pixels (and given landmarks), so an occlusion stays
a pure function of (spec, seed, pair, side, face).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from recogbench.occlusion import face_landmarks

__all__ = ["CLIP_TOLERANCE", "FacePose", "HEAD_RADIUS", "LANDMARK_MODES", "MIN_FORESHORTENING", "NOSE_DEPTH",
           "MOUNTS", "Placement", "TRUST_YAW", "alpha_points", "border_loss", "check_mode", "estimate_yaw", "face_pose",
           "pose_from_landmarks", "template_landmarks", "warp_affine_window"]

LANDMARK_MODES = ("auto", "template")

#: Nose tip in front of the eyes, in inter-ocular distances (≈ 30 mm for 63 mm between the
#: pupils): converts the nose's sideways offset into yaw.
NOSE_DEPTH = 0.5
#: Yaw (degrees) below which re-detected landmarks are ignored and above which they are
#: used in full: re-detection on frontal aligned faces scatters up to ±14°.
TRUST_YAW = (20.0, 35.0)
#: The least eye distance kept, as a fraction of the frontal one (cos 75.5°).
MIN_FORESHORTENING = 0.25
#: Extra share of an object's alpha lost past the image border, beyond what the same
#: placement on the frontal template loses, above which a placement counts as clipped.
CLIP_TOLERANCE = 0.05
_DETECT_SIZE = 112  # faces are searched at the 112 alignment whatever their size
_MEMO_SIZE = 1 << 16  # landmarks of 65,536 faces (~20 MB): a suite pays detection once per face per process


def template_landmarks(h: int, w: int) -> np.ndarray:
    """The template's five landmarks on an ``h``×``w`` face, (5, 2) float64 pixels: the 112
    template scaled with the image (stretched when the face is not square), as
    :func:`~recogbench.occlusion.face_landmarks` places them."""
    if h == w:
        return np.asarray(face_landmarks(h), np.float64)
    return (np.asarray(face_landmarks(112), np.float64) + 0.5) * (w / 112.0, h / 112.0) - 0.5


def estimate_yaw(landmarks: np.ndarray) -> float:
    """Yaw in degrees (−90..90, positive: nose towards the image's right) from five
    landmarks (5, 2): ``atan2(r, NOSE_DEPTH)`` with ``r`` the nose tip's offset from the
    eye midpoint along the eye line, in inter-ocular distances."""
    lm = np.asarray(landmarks, np.float64)
    eyes = lm[1] - lm[0]
    iod = float(np.hypot(*eyes))
    if iod < 1e-6:  # both eyes on one point: a full profile, turned towards the nose
        ux = _across(lm)
        offset = float(np.dot(lm[2] - lm[0], ux))
        return 90.0 if offset >= 0 else -90.0
    r = float(np.dot(lm[2] - (lm[0] + lm[1]) / 2, eyes / iod)) / iod
    return math.degrees(math.atan2(r, NOSE_DEPTH))


def _across(lm: np.ndarray) -> np.ndarray:
    """Unit vector along the eye line as the eye→mouth axis implies it (perpendicular to it)."""
    down = (lm[3] + lm[4]) / 2 - (lm[0] + lm[1]) / 2
    n = float(np.hypot(*down)) or 1.0
    return np.array([down[1], -down[0]]) / n


@dataclass(frozen=True)
class _Frame:
    """How the template face maps onto a turned one (all pixels). Template frame: origin
    ``et`` (eye midpoint), unit axes ``uxt`` across (:func:`_axis`) and ``uyt`` down, eyes
    at ``u ≈ ∓h``. A template point (u, v) goes to
    ``anchor + sx·(X(u) − X(u_vis))·ex + (v − v_vis)·ey``, where ``X`` is the horizontal position
    of a point turned by θ (on the face plane: ``u·cos θ``; on a cylinder of radius R:
    ``R·sin(asin(u/R) + θ)``), ``anchor`` is the visible eye (at ``u_vis``, ``v_vis``),
    ``ex`` the face's horizontal axis and ``ey`` the one across it. ``sy``: the face's scale (the
    eye–mouth distance over the template's); ``sx``: its horizontal scale before
    foreshortening (``sy`` unless the eyes are further apart than frontal)."""

    et: np.ndarray
    uxt: np.ndarray
    uyt: np.ndarray
    h: float
    anchor: np.ndarray
    u_vis: float
    v_vis: float
    ex: np.ndarray
    sx: float
    sy: float
    theta: float
    nose: np.ndarray
    template_nose: np.ndarray

    def uv(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Template points (N, 2) → their (u, v) in the template frame, each (N,)."""
        d = np.asarray(q, np.float64) - self.et
        return d @ self.uxt, d @ self.uyt

    def turned(self, u: Any, radius: float | None) -> Any:
        """``X(u)``: horizontal position after the turn (plane or cylinder)."""
        if radius is None:
            return np.asarray(u) * math.cos(self.theta)
        return radius * np.sin(np.arcsin(np.clip(np.asarray(u) / radius, -1.0, 1.0)) + self.theta)

    @property
    def ey(self) -> np.ndarray:
        """The face's vertical axis per unit of template v, at the face's scale. (Not
        sheared to put the mouth exactly on its landmark: the mouth stands in front of the
        eyes, and a shear would tilt everything below them.)"""
        return self.sy * np.array([-self.ex[1], self.ex[0]])

    def forward(self, q: np.ndarray, radius: float | None, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Template points (N, 2) → face points (N, 2), and whether each is on the side of
        the cylinder facing the camera (always, on the plane)."""
        u, v = self.uv(q)
        x = self.turned(u, radius) - self.turned(self.u_vis, radius)
        pts = self.anchor + self.sx * x[:, None] * self.ex + (v - self.v_vis)[:, None] * self.ey + shift
        if radius is None:
            return pts, np.ones(len(pts), bool)
        return pts, np.cos(np.arcsin(np.clip(u / radius, -1.0, 1.0)) + self.theta) >= 0.0

    def inverse(self, p: np.ndarray, radius: float, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Face points (N, 2) → the template points (N, 2) seen there on the cylinder, and
        whether there is one (not past the cylinder's outline, nor behind the template's)."""
        basis = np.stack([self.ex, self.ey], axis=1)
        a, b = np.linalg.solve(basis, (np.asarray(p, np.float64) - shift - self.anchor).T)
        x = a / self.sx + float(self.turned(self.u_vis, radius))
        ratio = x / radius
        on = np.abs(ratio) <= 1.0
        phi = np.arcsin(np.clip(ratio, -1.0, 1.0)) - self.theta  # the front of the cylinder
        on &= np.abs(phi) <= math.pi / 2
        u = radius * np.sin(phi)
        return self.et + u[:, None] * self.uxt + (b + self.v_vis)[:, None] * self.uyt, on


@dataclass(frozen=True)
class FacePose:
    """The face an object is placed on.

    ``landmarks``: (5, 2) float64 pixels used for the placement; ``yaw_deg`` from them
    (:func:`estimate_yaw`); ``source``: ``template``, ``detected`` or ``given``; ``weight``:
    how much of the detected pose was used (0: template, 1: all; 1 for given landmarks).
    ``moved``: whether placements differ from the template's at all.
    """

    landmarks: np.ndarray
    yaw_deg: float
    source: str
    weight: float
    frame: _Frame | None = None

    @property
    def moved(self) -> bool:
        return self.frame is not None

    def place(self, layout: np.ndarray, points: np.ndarray, *, depth: float = 0.0,
              mount: str = "plane") -> "Placement":
        """Put an object laid out on the template face by ``layout`` (2, 3: object pixels →
        template-face pixels; ``points`` (N, 2): its alpha's points, :func:`alpha_points`)
        onto this face, moved sideways by ``depth`` (see the module). ``mount``:

        * ``wrap`` — worn round the head (glasses, masks, caps, scarves): it turns on a
          vertical cylinder of the head's radius (or the object's half-width, if wider);
          the far side goes out of sight, the near side comes round towards the ear;
        * ``plane`` — flat on the face (a hand, a phone at the ear): foreshortened with it;
        * ``held`` — held up before the face (a cup, a microphone, a book): it goes where
          the face plane puts its centre, at the face's size and roll, not foreshortened
          (the hand holding it does not turn with the head).
        """
        if mount not in MOUNTS:
            raise ValueError(f"mount must be one of {MOUNTS}, got {mount!r}")
        layout = np.asarray(layout, np.float64)
        if self.frame is None:
            return Placement(None, layout, None, np.zeros(2), layout)
        f = self.frame
        on_face = points @ layout[:, :2].T + layout[:, 2] if len(points) else layout[:, 2][None]
        radius = None
        if mount == "wrap":
            # An object wider than the head gets a wider cylinder, with its edges no further
            # round than asin(1/1.25) ≈ 53°: the frontal drawing holds little of what lies
            # beyond, and turning it to the camera would smear it.
            radius = max(HEAD_RADIUS * 2.0 * f.h, 1.25 * float(np.abs(f.uv(on_face)[0]).max()))
        nose, _ = f.forward(f.template_nose[None], radius, np.zeros(2))
        shift = depth * (f.nose - nose[0])
        matrix = None
        if mount == "plane":
            tri = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
            dst, _ = f.forward(tri @ layout[:, :2].T + layout[:, 2], None, shift)
            matrix = cv2.getAffineTransform(tri.astype(np.float32), dst.astype(np.float32)).astype(np.float64)
        elif mount == "held":
            centre = on_face.mean(axis=0)
            to, _ = f.forward(centre[None], None, shift)
            # the roll from the template's horizontal axis to the face's
            c, s_ = float(f.ex @ f.uxt), float(f.uxt[0] * f.ex[1] - f.uxt[1] * f.ex[0])
            rot = f.sy * np.array([[c, -s_], [s_, c]])
            linear = rot @ layout[:, :2]
            matrix = np.hstack([linear, (to[0] + rot @ (layout[:, 2] - centre))[:, None]])
        return Placement(f, layout, radius, shift, matrix)

    def record(self, placement: "Placement", points: np.ndarray, weights: np.ndarray, h: int, w: int) -> dict[str, Any]:
        """Manifest fields for an object (alpha as :func:`alpha_points`) placed on an
        ``h``×``w`` face: the landmark source, yaw, weight, and ``clipped`` — whether the
        border cuts more than :data:`CLIP_TOLERANCE` more of its alpha than it does on the
        template (``clipped_fraction``: that extra share). Empty for template landmarks:
        such records stay as they were before poses existed."""
        if self.source == "template":
            return {}
        extra = max(0.0, placement.border_loss(points, weights, h, w)
                    - border_loss(points, weights, placement.layout, h, w))
        return {"landmarks": self.source, "yaw_deg": round(self.yaw_deg, 2), "pose_weight": round(self.weight, 3),
                "clipped": bool(extra > CLIP_TOLERANCE), "clipped_fraction": round(extra, 4)}


MOUNTS = ("wrap", "plane", "held")

#: The head's radius (a cylinder about its vertical axis) in inter-ocular distances:
#: ≈ 75 mm half-width for 63 mm between the pupils.
HEAD_RADIUS = 1.2

#: A placement that shrinks the object below this (a foreshortened profile) samples a copy
#: shrunk with area averaging instead: bilinear sampling would skip source pixels.
_PRESHRINK_BELOW = 0.6


@dataclass(frozen=True)
class Placement:
    """One object on one face: ``layout`` (object pixels → template-face pixels) followed
    by the face's frame (``frame`` None: the template itself). ``matrix`` (2, 3, object →
    face pixels) when the placement is affine; otherwise it is wrapped on a cylinder of
    ``radius`` pixels and moved by ``shift`` pixels."""

    frame: _Frame | None
    layout: np.ndarray
    radius: float | None
    shift: np.ndarray
    matrix: np.ndarray | None

    def forward(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Object points (N, 2) → face points (N, 2) and whether each faces the camera."""
        if self.matrix is not None:
            return points @ self.matrix[:, :2].T + self.matrix[:, 2], np.ones(len(points), bool)
        q = points @ self.layout[:, :2].T + self.layout[:, 2]
        return self.frame.forward(q, self.radius, self.shift)

    def border_loss(self, points: np.ndarray, weights: np.ndarray, h: int, w: int) -> float:
        """Share in [0, 1] of the object's alpha put on the camera's side of the head but
        outside the ``h``×``w`` image (what the head hides is not lost to the border)."""
        total = float(weights.sum())
        if total <= 0:
            return 0.0
        p, seen = self.forward(points)
        outside = (p[:, 0] < -0.5) | (p[:, 0] >= w - 0.5) | (p[:, 1] < -0.5) | (p[:, 1] >= h - 0.5)
        return float(weights[seen & outside].sum()) / total

    def warp(self, src: np.ndarray, points: np.ndarray, h: int, w: int) -> tuple[np.ndarray, int, int] | None:
        """``src`` ((sh, sw, C) float32, premultiplied) warped onto an ``h``×``w`` face:
        the window that it touches, (wh, ww, C), and the window's top-left (x0, y0); None
        when nothing lands in the image. ``points``: the object's alpha points (they bound
        the window of a wrapped placement)."""
        if self.matrix is not None:
            return warp_affine_window(src, self.matrix, h, w)
        p, seen = self.forward(points)
        p = p[seen]
        if not len(p):
            return None
        x0, y0 = (max(0, int(math.floor(c)) - 2) for c in p.min(axis=0))
        x1, y1 = min(w, int(math.ceil(p[:, 0].max())) + 3), min(h, int(math.ceil(p[:, 1].max())) + 3)
        if x0 >= x1 or y0 >= y1:
            return None
        gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
        q, on = self.frame.inverse(np.stack([gx.ravel(), gy.ravel()], axis=1), self.radius, self.shift)
        back = np.linalg.inv(np.vstack([self.layout, [0.0, 0.0, 1.0]]))[:2]
        sxy = q @ back[:, :2].T + back[:, 2]
        # No pre-shrinking here: the cylinder shrinks the far side and not the near one, and
        # an area-averaged copy would blur the near side (the far side is mostly hidden).
        sxy[~on] = -10.0  # not on the camera's side of the head: transparent
        shape = gy.shape
        out = cv2.remap(src, sxy[:, 0].reshape(shape).astype(np.float32), sxy[:, 1].reshape(shape).astype(np.float32),
                        cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        return (out if out.ndim == 3 else out[..., None]), x0, y0


def warp_affine_window(src: np.ndarray, m: np.ndarray, h: int, w: int,
                       preshrink: bool = True) -> tuple[np.ndarray, int, int] | None:
    """``src`` ((sh, sw, C) float32) warped by the (2, 3) affine ``m`` onto an ``h``×``w``
    image, computed only in the window it touches: (window, x0, y0), or None when it misses
    the image. With ``preshrink``, a matrix that shrinks a source axis below 0.6 samples a
    copy area-averaged down first (bilinear sampling would skip source pixels)."""
    sh, sw = src.shape[:2]
    m = np.array(m, np.float64)
    fx, fy = (min(1.0, float(np.hypot(*m[:, j]))) for j in (0, 1))
    if preshrink and min(fx, fy) < _PRESHRINK_BELOW:
        size = (max(1, round(sw * fx)), max(1, round(sh * fy)))
        src = cv2.resize(src, size, interpolation=cv2.INTER_AREA)
        fx, fy = size[0] / sw, size[1] / sh
        linear = m[:, :2]  # the shrunk copy's pixel centres, in cv2.resize's convention
        m = np.hstack([linear / (fx, fy), m[:, 2:] + (linear @ np.array([0.5 / fx - 0.5, 0.5 / fy - 0.5]))[:, None]])
        sh, sw = src.shape[:2]
    corners = np.array([[0, 0, 1], [sw - 1, 0, 1], [0, sh - 1, 1], [sw - 1, sh - 1, 1]], np.float64) @ m.T
    x0, y0 = (max(0, int(math.floor(c)) - 1) for c in corners.min(axis=0))
    x1, y1 = min(w, int(math.ceil(corners[:, 0].max())) + 2), min(h, int(math.ceil(corners[:, 1].max())) + 2)
    if x0 >= x1 or y0 >= y1:
        return None
    m[0, 2] -= x0
    m[1, 2] -= y0
    out = cv2.warpAffine(src, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    return (out if out.ndim == 3 else out[..., None]), x0, y0


def pose_from_landmarks(landmarks: np.ndarray, h: int, w: int, source: str = "given",
                        weight: float = 1.0) -> FacePose:
    """The pose of an ``h``×``w`` face with these (5, 2) landmarks (pixels), its template
    placement blended towards them by ``weight`` in [0, 1]."""
    template = template_landmarks(h, w)
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (5, 2) or not np.isfinite(lm).all():
        raise ValueError(f"landmarks must be a finite (5, 2) array of pixels, got shape {lm.shape}")
    yaw = estimate_yaw(lm)
    used = template + weight * (lm - template)
    if weight <= 0.0 or np.allclose(used, template, rtol=0.0, atol=1e-6):
        return FacePose(template, yaw, source, float(weight))
    return FacePose(used, yaw, source, float(weight), _frame(used, template, estimate_yaw(used)))


def _axis(lm: np.ndarray) -> np.ndarray:
    """A face's horizontal unit axis: the eye line averaged with the line across the
    eye→mouth axis. On a profile the eyes come so close that their line says little about
    the roll, while the eye→mouth axis keeps its length; on a frontal face both agree."""
    down = (lm[3] + lm[4]) / 2 - (lm[0] + lm[1]) / 2
    v = (lm[1] - lm[0]) + np.array([down[1], -down[0]])
    return v / np.hypot(*v)


def _frame(lm: np.ndarray, template: np.ndarray, yaw: float) -> _Frame:
    """The map of the template face onto landmarks ``lm`` (see :class:`_Frame`): θ from how
    much the eyes came together relative to the eye–mouth distance (which yaw leaves
    alone), its sign from the nose (``yaw``)."""
    uxt = _axis(template)
    uyt = np.array([-uxt[1], uxt[0]])
    et = (template[0] + template[1]) / 2
    span_t = float((template[1] - template[0]) @ uxt)  # eye distance along the axis
    vm = float(((template[3] + template[4]) / 2 - et) @ uyt)

    ex = _axis(lm)
    ey = np.array([-ex[1], ex[0]])
    span = float((lm[1] - lm[0]) @ ex)
    sy = float(((lm[3] + lm[4]) / 2 - (lm[0] + lm[1]) / 2) @ ey) / vm
    cos = span / (span_t * sy)
    if cos >= 1.0:  # wider than frontal (a tilted head, a wide face): stretch, both eyes kept
        cos, sx = 1.0, span / span_t
    elif cos < MIN_FORESHORTENING:  # near 90°: keep the visible eye and at least this eye distance
        cos, sx = MIN_FORESHORTENING, sy
    else:
        sx = sy
    theta = math.copysign(math.acos(cos), yaw)
    visible = 0 if yaw >= 0 else 1  # the nose points away from the visible eye
    u_vis, v_vis = (float(c) for c in ((template[visible] - et) @ np.stack([uxt, uyt], axis=1)))
    return _Frame(et, uxt, uyt, span_t / 2, lm[visible].copy(), u_vis, v_vis, ex, sx, sy, theta, lm[2].copy(),
                  template[2].copy())


# -- landmarks found on the aligned face ---------------------------------------------------


class _Finder:
    """YuNet on aligned faces, one detector per thread (OpenCV's is not thread-safe), with
    a bounded memo keyed by the face's bytes (an occluder sees the same face many times
    in a gallery or a test; a run sees each once)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._memo: OrderedDict[tuple[Any, ...], np.ndarray | None] = OrderedDict()
        self._lock = threading.Lock()

    def _detector(self) -> Any:
        det = getattr(self._local, "detector", None)
        if det is None:
            from recogbench.align import YuNetDetector

            det = self._local.detector = YuNetDetector()
        return det

    def find(self, face: np.ndarray) -> np.ndarray | None:
        """(5, 2) float64 landmarks of the aligned face in its pixels, or None."""
        key = (face.shape, hashlib.sha1(np.ascontiguousarray(face).tobytes()).digest())
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        found = self._detect(face)
        with self._lock:
            self._memo[key] = found
            while len(self._memo) > _MEMO_SIZE:
                self._memo.popitem(last=False)
        return found

    def _detect(self, face: np.ndarray) -> np.ndarray | None:
        h, w = face.shape[:2]
        small = face if (h, w) == (_DETECT_SIZE, _DETECT_SIZE) else cv2.resize(
            face, (_DETECT_SIZE, _DETECT_SIZE), interpolation=cv2.INTER_AREA)
        template = template_landmarks(_DETECT_SIZE, _DETECT_SIZE)
        for det in self._detector().detect(small):
            lm = np.asarray(det.landmarks, np.float64)
            if _plausible(lm, template):
                # back to this face's pixels, in face_template's pixel-centre convention
                return (lm + 0.5) * (w / _DETECT_SIZE, h / _DETECT_SIZE) - 0.5
        return None


def _plausible(lm: np.ndarray, template: np.ndarray) -> bool:
    """Whether a detection is the aligned face itself: its eyes near the template's, the
    mouth below them (a stray small face in a corner, or a pattern, is not)."""
    eyes, eyes_t = (lm[0] + lm[1]) / 2, (template[0] + template[1]) / 2
    mouth, mouth_t = (lm[3] + lm[4]) / 2, (template[3] + template[4]) / 2
    span = float(np.hypot(*(mouth_t - eyes_t)))
    return bool(np.hypot(*(eyes - eyes_t)) < 0.6 * span and np.hypot(*(mouth - mouth_t)) < 0.6 * span
                and (mouth - eyes)[1] > 0.5 * span)


_FINDER = _Finder()


def check_mode(mode: str) -> str:
    """``mode`` if it is a known landmark source (for occluder options), else ValueError;
    ``auto`` also needs the detector's model file, checked here so a run fails early."""
    if mode not in LANDMARK_MODES:
        raise ValueError(f"landmarks must be one of {LANDMARK_MODES}, got {mode!r}")
    if mode == "auto":
        from recogbench.align import _yunet_model_path

        _yunet_model_path()  # raises DetectorUnavailableError with the install hint
    return mode


def face_pose(face: np.ndarray, landmarks: np.ndarray | None = None, mode: str = "auto") -> FacePose:
    """The pose to place an object on ``face`` ((H, W, 3) uint8, aligned) by ``mode`` (see
    the module): ``template``, or ``auto``: ``landmarks`` ((5, 2) pixels) when given, else
    detected on the face."""
    h, w = face.shape[:2]
    template = template_landmarks(h, w)
    if mode == "template":
        return FacePose(template, 0.0, "template", 0.0)
    if landmarks is not None:
        return pose_from_landmarks(landmarks, h, w, "given", 1.0)
    found = _FINDER.find(face)
    if found is None:
        return FacePose(template, 0.0, "template", 0.0)
    yaw = estimate_yaw(found)
    lo, hi = TRUST_YAW
    t = min(max((abs(yaw) - lo) / (hi - lo), 0.0), 1.0)
    return pose_from_landmarks(found, h, w, "detected", t * t * (3.0 - 2.0 * t))


def alpha_points(alpha: np.ndarray, max_side: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """An object's alpha as weighted points for :func:`border_loss`: pixel centres (N, 2)
    float64 in ``alpha``'s pixels and weights (N,) — from a copy shrunk (area average) to
    at most ``max_side`` pixels when larger, so large cut-outs stay cheap."""
    a = np.asarray(alpha, np.float32)
    h, w = a.shape
    f = min(1.0, max_side / max(h, w))
    if f < 1.0:
        small = cv2.resize(a, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    else:
        small = a
    ys, xs = np.nonzero(small > 1e-3)
    sx, sy = w / small.shape[1], h / small.shape[0]
    points = np.stack([(xs + 0.5) * sx - 0.5, (ys + 0.5) * sy - 0.5], axis=1).astype(np.float64)
    return points, small[ys, xs].astype(np.float64)


def border_loss(points: np.ndarray, weights: np.ndarray, matrix: np.ndarray, h: int, w: int) -> float:
    """Share in [0, 1] of an object's alpha that ``matrix`` (2, 3, object pixels → image
    pixels) puts outside an ``h``×``w`` image (pixel centres at integers)."""
    total = float(weights.sum())
    if total <= 0:
        return 0.0
    p = points @ np.asarray(matrix, np.float64)[:, :2].T + np.asarray(matrix, np.float64)[:, 2]
    inside = (p[:, 0] >= -0.5) & (p[:, 0] < w - 0.5) & (p[:, 1] >= -0.5) & (p[:, 1] < h - 0.5)
    return 1.0 - float(weights[inside].sum()) / total
