"""Synthetic object occluders: the nineteen categories of the Helwan "Face Under-Mask
Reconstruction" occluders — sunglasses, medical mask, hand, scarf, cap, microphone, cup
(the suite ``everyday``) and book, box, candy, cigarette, envelope, fast food, flower,
fruit, glove, keys, pen, phone (all nineteen: the suite ``helwan-19``).

Each occluder draws its object procedurally as an RGBA sprite (premultiplied float32,
anti-aliased edges, shading, palette and pattern) in a local frame measured in pixels of
the 112×112 ArcFace template, scales and rotates it into place by the five landmarks of
the face's size (:func:`~recogbench.occlusion.face_landmarks`: a 256 face gets the object
on the same part of the face as a 112 one) with one ``cv2.warpAffine`` and alpha-blends it::

    out = round(alpha * sprite + (1 - alpha) * face)

so the mask (exactly the changed pixels, built by :func:`~recogbench.occlusion.finish`)
has the object's soft edges and shadow. Per face, the ``rng`` passed to
:meth:`~ObjectOccluder.occlude` draws, in a fixed order: scale, rotation, shift, style
(``variant``), look (one of ``looks`` seeded shape/texture variants of the style) and the
pose (e.g. which eye a hand covers). A sprite depends only on (style, look, pose fields it
draws, face size) and its own randomness comes from a generator seeded by those, so each
instance caches a bounded number of sprites: a cached sprite is exactly what drawing it
again gives, and an occlusion stays a pure function of (spec, seed, pair, side).

Placement jitter at ``jitter=1``: scale ±12 %, rotation ±10°, shift ±3 template pixels
(scaled with the face; ±1.5 for the cigarette, which stays between the lips). ``variant`` pins the style (an index into the class's ``styles``);
``None`` draws it per face. Records carry ``variant``, ``style``, ``look``, ``scale``,
``angle_deg`` (the sprite's total counter-clockwise rotation: pose plus jitter),
``dx``/``dy`` (the jitter shift in pixels of this face) and the pose fields.

On a turned face the layout on the template is carried onto the face's own five landmarks
(:mod:`recogbench.occlusion.pose`: given by the caller, or found on the face): worn
objects (sunglasses, medical mask, scarf, cap) turn round the head, flat ones (hand,
glove, cigarette, pen, phone) are foreshortened, held ones (cup, microphone, book …) keep
their size and move with the face; records then add ``landmarks``, ``yaw_deg``,
``pose_weight``, ``clipped`` and ``clipped_fraction``. A frontal face (or one with no face
found) is occluded exactly as before, with the same record.
"""

from __future__ import annotations

import functools
import math
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from recogbench.align import ARCFACE_TEMPLATE
from recogbench.occlusion import Occluder, Occlusion, face_landmarks, finish
from recogbench.occlusion.pose import alpha_points, check_mode, face_pose, warp_affine_window

__all__ = ["ObjectOccluder", "Sunglasses", "MedicalMask", "Hand", "Scarf", "Cap", "Microphone", "Cup", "Book", "Box",
           "Candy", "Cigarette", "Envelope", "FastFood", "Flower", "Fruit", "Glove", "Keys", "Pen", "Phone"]

# Template landmarks (112 units): left eye, right eye, nose tip, left and right mouth corner.
_T = ARCFACE_TEMPLATE.astype(np.float64)
_EYES = (_T[0] + _T[1]) / 2
_HALF_IOD = float(_T[1, 0] - _T[0, 0]) / 2
_NOSE = _T[2]
_MOUTH = (_T[3] + _T[4]) / 2

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT
_LIGHT = np.array([-0.45, -0.55, 0.70]) / np.linalg.norm([-0.45, -0.55, 0.70])  # from the upper left
_HALF = np.array([_LIGHT[0], _LIGHT[1], _LIGHT[2] + 1.0]) / np.linalg.norm([_LIGHT[0], _LIGHT[1], _LIGHT[2] + 1.0])
_WHITE = np.array([255.0, 255.0, 255.0], np.float32)
_BLACK = np.zeros(3, np.float32)


def _rgb(c: Any) -> np.ndarray:
    return np.asarray(c, np.float32)


def _smooth(edge0: float, edge1: float, x: Any) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _bezier(p0: Any, p1: Any, p2: Any, n: int = 16) -> np.ndarray:
    """Points of a quadratic Bézier curve, (n, 2)."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    p0, p1, p2 = (np.asarray(p, np.float64) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


@functools.lru_cache(maxsize=64)
def _frame(size: int) -> tuple[float, float, float]:
    """(s, tx, ty): image point = s * template-112 point + (tx, ty) for a ``size`` face."""
    lm = np.asarray(face_landmarks(size), np.float64)
    s = float((lm[1, 0] - lm[0, 0]) / (_T[1, 0] - _T[0, 0]))
    t = lm[0] - s * _T[0]
    return s, float(t[0]), float(t[1])


class _Sprite:
    """An RGBA sprite being drawn: premultiplied colour ``pm`` (0..255) and alpha ``a``.

    Coordinates are template units around the anchor (0, 0); ``k`` pixels per unit.
    ``u`` (1, w) and ``v`` (h, 1) are each pixel centre's unit coordinates.
    """

    def __init__(self, k: float, x0: float, x1: float, y0: float, y1: float) -> None:
        self.k = float(k)
        self.w = int(math.ceil((x1 - x0) * k)) + 3
        self.h = int(math.ceil((y1 - y0) * k)) + 3
        self.ox, self.oy = 1.0 - x0 * k, 1.0 - y0 * k
        self.pm = np.zeros((self.h, self.w, 3), np.float32)
        self.a = np.zeros((self.h, self.w), np.float32)
        self.u = ((np.arange(self.w, dtype=np.float32) - np.float32(self.ox)) / np.float32(k))[None, :]
        self.v = ((np.arange(self.h, dtype=np.float32) - np.float32(self.oy)) / np.float32(k))[:, None]

    # -- geometry -> coverage masks (float32 in [0, 1]) -------------------------------

    def _fixed(self, pts: Any) -> np.ndarray:
        p = np.asarray(pts, np.float64) * self.k + (self.ox, self.oy)
        return np.round(p * _ONE).astype(np.int32)

    def poly(self, *polys: Any) -> np.ndarray:
        """Union of filled polygons (unit coordinates), anti-aliased."""
        m = np.zeros((self.h, self.w), np.uint8)
        for p in polys:
            cv2.fillPoly(m, [self._fixed(p)], 255, cv2.LINE_AA, _SHIFT)
        return m.astype(np.float32) * np.float32(1 / 255)

    def lines(self, *paths: Any, width: float, closed: bool = False) -> np.ndarray:
        """Polylines ``width`` units thick (thinner than a pixel: drawn fainter)."""
        m = np.zeros((self.h, self.w), np.uint8)
        px = width * self.k
        thick, value = (max(1, int(round(px))), 255) if px >= 1.0 else (1, int(round(255 * max(px, 0.15))))
        for p in paths:
            cv2.polylines(m, [self._fixed(p)], closed, value, thick, cv2.LINE_AA, _SHIFT)
        return m.astype(np.float32) * np.float32(1 / 255)

    def ellipse(self, c: Any, axes: Any, angle: float = 0.0, width: float | None = None,
                start: float = 0.0, end: float = 360.0) -> np.ndarray:
        """A filled ellipse (or its outline ``width`` units thick)."""
        m = np.zeros((self.h, self.w), np.uint8)
        cx, cy = self._fixed(c)
        ax = tuple(int(round(float(a) * self.k * _ONE)) for a in axes)
        thick = -1 if width is None else max(1, int(round(width * self.k)))
        cv2.ellipse(m, (int(cx), int(cy)), ax, float(angle), float(start), float(end), 255, thick, cv2.LINE_AA, _SHIFT)
        return m.astype(np.float32) * np.float32(1 / 255)

    def blur(self, m: np.ndarray, sigma: float) -> np.ndarray:
        """Gaussian blur, ``sigma`` in units (no-op when under a third of a pixel)."""
        sig = sigma * self.k
        return m if sig < 0.33 else cv2.GaussianBlur(m, (0, 0), sig)

    def noise(self, rng: np.random.Generator, cell: float) -> np.ndarray:
        """Smooth noise (h, w), roughly N(0, 1) at ``cell`` units per sample, from ``rng``."""
        cells = max(1e-3, cell * self.k)
        gh, gw = max(2, int(self.h / cells) + 2), max(2, int(self.w / cells) + 2)
        g = rng.standard_normal((gh, gw)).astype(np.float32)
        return cv2.resize(g, (self.w, self.h), interpolation=cv2.INTER_CUBIC)

    # -- painting (premultiplied "over") -------------------------------------------------

    def paint(self, mask: np.ndarray, color: Any) -> None:
        """Paint ``color`` ((3,) or (h, w, 3), 0..255) over the sprite with coverage ``mask``."""
        d = np.asarray(color, np.float32) - self.pm
        d *= mask[..., None]
        self.pm += d
        da = 1.0 - self.a
        da *= mask
        self.a += da

    def window(self, x0: float, x1: float, y0: float, y1: float) -> "_Sprite":
        """A view of the part within unit bounds, sharing this sprite's pixels: small parts
        are drawn and painted there at a fraction of the cost (at least one pixel)."""
        c0 = min(max(0, int(math.floor(x0 * self.k + self.ox))), self.w - 1)
        r0 = min(max(0, int(math.floor(y0 * self.k + self.oy))), self.h - 1)
        c1 = max(min(self.w, int(math.ceil(x1 * self.k + self.ox)) + 1), c0 + 1)
        r1 = max(min(self.h, int(math.ceil(y1 * self.k + self.oy)) + 1), r0 + 1)
        win = object.__new__(_Sprite)
        win.k, win.w, win.h, win.ox, win.oy = self.k, c1 - c0, r1 - r0, self.ox - c0, self.oy - r0
        win.pm, win.a = self.pm[r0:r1, c0:c1], self.a[r0:r1, c0:c1]
        win.u, win.v = self.u[:, c0:c1], self.v[r0:r1]
        return win

    def shade(self, factor: np.ndarray) -> None:
        """Multiply the painted colour by ``factor`` (h, w) (darken < 1 < lighten)."""
        self.pm *= factor[..., None]

    def soften(self, sigma: float) -> None:
        """Blur colour and alpha together: soft (fabric, skin) edges."""
        sig = sigma * self.k
        if sig >= 0.33:
            cv2.GaussianBlur(self.pm, (0, 0), sig, dst=self.pm)
            cv2.GaussianBlur(self.a, (0, 0), sig, dst=self.a)

    def drop_shadow(self, dx: float, dy: float, sigma: float, strength: float) -> None:
        """A soft black shadow of the whole sprite, offset (dx, dy) units, underneath it."""
        m = np.float32([[1, 0, dx * self.k], [0, 1, dy * self.k]])
        sh = cv2.warpAffine(self.a, m, (self.w, self.h), flags=cv2.INTER_LINEAR)
        sh = self.blur(sh, sigma) * np.float32(strength)
        self.a += sh * (1.0 - self.a)


@dataclass(frozen=True)
class _Baked:
    """A finished sprite: premultiplied RGB and alpha stacked (h, w, 4) float32, read-only,
    its anchor pixel, and its alpha as weighted points (for the border-clipping share)."""

    rgba: np.ndarray
    ox: float
    oy: float
    points: np.ndarray
    weights: np.ndarray


def _bake(sp: _Sprite) -> _Baked:
    rgba = np.dstack([sp.pm, sp.a])
    rgba.setflags(write=False)
    points, weights = alpha_points(sp.a)
    return _Baked(rgba, sp.ox, sp.oy, points, weights)


def _placement(sprite: _Baked, x: float, y: float, angle: float, scale: float) -> np.ndarray:
    """The (2, 3) matrix that scales ``sprite`` and rotates it ``angle`` degrees
    (counter-clockwise) about its anchor and puts the anchor at image point (x, y)."""
    m = cv2.getRotationMatrix2D((sprite.ox, sprite.oy), angle, scale)
    m[0, 2] += x - sprite.ox
    m[1, 2] += y - sprite.oy
    return m


def _blend(face: np.ndarray, warped: tuple[np.ndarray, int, int] | None) -> np.ndarray:
    """A copy of ``face`` with a warped premultiplied sprite window ``(rgba, x0, y0)``
    (0..255 colour) alpha-blended over it: ``round(alpha * sprite + (1 - alpha) * face)``."""
    out = face.copy()
    if warped is None:
        return out
    dst, x0, y0 = warped
    y1, x1 = y0 + dst.shape[0], x0 + dst.shape[1]
    blended = face[y0:y1, x0:x1] * (1.0 - dst[..., 3:])
    blended += dst[..., :3]
    np.rint(blended, out=blended)
    out[y0:y1, x0:x1] = np.clip(blended, 0, 255).astype(np.uint8)
    return out


class ObjectOccluder(Occluder):
    """A procedurally drawn object placed by the five landmarks with seeded jitter.

    Subclasses set ``name`` and ``styles`` and implement :meth:`_layout` (where, in
    template units, and at what pose angle) and :meth:`_render` (the sprite). The layout is
    on the frontal template face and is carried onto the face's own landmarks
    (:mod:`recogbench.occlusion.pose`): ``depth`` says how far in front of the eye–mouth
    plane the object sits, in units of the nose tip's protrusion (0: worn on the face,
    1: held at the nose tip's depth), i.e. how far it moves sideways with the nose on a
    turned face. ``landmarks``: ``auto`` (given landmarks, else detected on a turned face)
    or ``template``.
    """

    name = "object"
    styles: tuple[str, ...] = ("default",)
    looks = 4  # seeded shape/texture variants of each style, drawn once and cached
    render_keys: tuple[str, ...] = ()  # pose fields the drawing depends on
    scale_jitter = 0.12
    angle_jitter = 10.0
    shift_jitter = 3.0
    cache_size = 64
    depth = 0.0
    mount = "plane"  # how it turns with the head: wrap (worn), plane (flat on the face) or held
    uses_landmarks = True

    def __init__(self, jitter: float = 1.0, variant: int | None = None, landmarks: str = "auto") -> None:
        jitter = float(jitter)
        if not (math.isfinite(jitter) and jitter >= 0):
            raise ValueError(f"{self.name}: jitter must be a finite number >= 0, got {jitter}")
        if variant is not None:
            variant = int(variant)
            if not 0 <= variant < len(self.styles):
                known = ", ".join(f"{i}={s}" for i, s in enumerate(self.styles))
                raise ValueError(f"{self.name}: variant must be one of {known}; got {variant}")
        self.jitter, self.variant = jitter, variant
        self.landmarks = check_mode(landmarks)
        self._sprites: OrderedDict[tuple[Any, ...], _Baked] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # picklable for worker processes, cache left behind
        return {k: v for k, v in self.__dict__.items() if k not in ("_sprites", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._sprites, self._lock = OrderedDict(), threading.Lock()

    def params(self) -> dict[str, Any]:
        return {"occluder": self.name, "jitter": self.jitter, "variant": self.variant, "landmarks": self.landmarks}

    def occlude(self, face: np.ndarray, rng: np.random.Generator, landmarks: np.ndarray | None = None) -> Occlusion:
        """Occlude ``face`` ((H, H, 3) uint8, aligned) drawing randomness only from ``rng``;
        ``landmarks`` (5, 2): the face's own landmarks in its pixels, when known."""
        if face.ndim != 3 or face.shape[2] != 3 or face.dtype != np.uint8 or face.shape[0] != face.shape[1]:
            raise ValueError(f"{self.name}: expected a square aligned (H, H, 3) uint8 face, got "
                             f"{face.shape} {face.dtype}")
        s, tx, ty = _frame(face.shape[0])
        j = self.jitter
        scale = 1.0 + j * float(rng.uniform(-self.scale_jitter, self.scale_jitter))
        angle = j * float(rng.uniform(-self.angle_jitter, self.angle_jitter))
        dx = j * float(rng.uniform(-self.shift_jitter, self.shift_jitter)) * s
        dy = j * float(rng.uniform(-self.shift_jitter, self.shift_jitter)) * s
        drawn = int(rng.integers(len(self.styles)))  # always drawn: pinning keeps the stream
        variant = drawn if self.variant is None else self.variant
        look = int(rng.integers(self.looks))
        (ax, ay), pose_angle, extra = self._layout(rng)
        total = pose_angle + angle
        sprite = self._sprite(s, variant, look, extra)
        layout = _placement(sprite, s * ax + tx + dx, s * ay + ty + dy, total, scale)
        h, w = face.shape[:2]
        pose = face_pose(face, landmarks, self.landmarks)
        placed = pose.place(layout, sprite.points, depth=self.depth, mount=self.mount)
        if pose.moved:
            out = _blend(face, placed.warp(sprite.rgba, sprite.points, h, w))
        else:  # exactly the template placement of before
            out = _blend(face, warp_affine_window(sprite.rgba, layout, h, w, preshrink=False))
        record = {
            "occluder": self.name,
            "variant": variant,
            "style": self.styles[variant],
            "look": look,
            "scale": round(scale, 4),
            "angle_deg": round(total, 3),
            "dx": round(dx, 3),
            "dy": round(dy, 3),
            **extra,
            **pose.record(placed, sprite.points, sprite.weights, h, w),
        }
        return finish(face, out, record)

    def _sprite(self, k: float, variant: int, look: int, extra: dict[str, Any]) -> _Baked:
        """The sprite of (style, look, pose fields) at ``k`` pixels per unit, drawn once: its
        randomness comes from a generator seeded by those values, so a cached sprite is
        exactly what drawing it again would give."""
        key = (k, variant, look, *(extra[name] for name in self.render_keys))
        with self._lock:
            hit = self._sprites.get(key)
            if hit is not None:
                self._sprites.move_to_end(key)
                return hit
        sp = _Sprite(k, *self._extent(extra))
        self._render(np.random.default_rng([zlib.crc32(self.name.encode()), variant, look]), sp, variant, extra)
        baked = _bake(sp)
        with self._lock:
            self._sprites[key] = baked
            while len(self._sprites) > self.cache_size:
                self._sprites.popitem(last=False)
        return baked

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        """Anchor point (template units), pose angle (degrees, counter-clockwise) and
        pose fields for the record (plain JSON types)."""
        raise NotImplementedError

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        """The drawing's bounds (x0, x1, y0, y1) in template units around the anchor."""
        raise NotImplementedError

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        """Draw the object into ``sp`` (anchor at unit (0, 0)), taking any randomness of its
        shape or texture from ``rng`` (seeded by style and look, not by the face)."""
        raise NotImplementedError


# ---------------------------------------------------------------------------- sunglasses


@functools.lru_cache(maxsize=None)
def _lens_outline(shape: str) -> np.ndarray:
    """The left lens outline (72, 2) around its centre; +x points to the nose."""
    t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    c, s = np.cos(t), np.sin(t)

    def superellipse(n: float, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
        return a * np.sign(c) * np.abs(c) ** (2 / n), b * np.sign(s) * np.abs(s) ** (2 / n)

    if shape == "wayfarer":
        x, y = superellipse(3.2, 14.0, 10.0)
        x = x * (1 - 0.10 * y / 10.0)
        y = y - 2.5 * np.clip(-x / 14.0, 0, None) ** 2 * (y < 0)
    elif shape == "soft":
        x, y = superellipse(2.6, 14.0, 10.5)
        x = x * (1 - 0.06 * y / 10.5)
    elif shape == "aviator":
        x, y = superellipse(2.2, 14.5, 12.5)
        y = np.where(y < 0, y * 0.72, y * (1 + 0.32 * x / 14.5))
    elif shape == "round":
        x, y = superellipse(2.0, 12.5, 12.0)
    else:  # cateye
        x, y = superellipse(2.5, 14.5, 10.0)
        y = y - 5.0 * np.clip(-x / 14.5, 0, None) ** 3 * (y < 0)
        x = x * (1 - 0.08 * y / 10.0)
    pts = np.stack([x, y], 1)
    pts -= (pts.max(0) + pts.min(0)) / 2
    pts.setflags(write=False)
    return pts


_SUNGLASSES = {
    # shape, frame colour, rim width, metal, lens colour top/bottom, lens alpha top/bottom
    "wayfarer": ("wayfarer", (24, 24, 26), 2.6, False, ((26, 28, 30), (62, 64, 66)), (0.94, 0.88)),
    "aviator": ("aviator", (206, 170, 88), 1.0, True, ((36, 54, 34), (82, 100, 66)), (0.92, 0.85)),
    "round": ("round", (74, 76, 82), 1.1, True, ((62, 38, 22), (126, 84, 48)), (0.93, 0.83)),
    "tortoise": ("soft", (112, 64, 28), 2.4, False, ((44, 30, 20), (165, 122, 86)), (0.95, 0.5)),
    "mirror": ("aviator", (196, 196, 202), 1.0, True, None, (0.97, 0.97)),
    "cateye": ("cateye", (122, 22, 36), 2.5, False, ((22, 22, 26), (108, 108, 114)), (0.95, 0.55)),
}
_MIRROR_STOPS = (np.array([0.0, 0.42, 0.52, 0.62, 1.0]),
                 np.array([[50, 96, 180], [150, 196, 236], [236, 226, 214], [176, 120, 96], [44, 36, 70]], np.float32))


def _gradient(t: np.ndarray, stops: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    pos, cols = stops
    return np.stack([np.interp(t, pos, cols[:, i]).astype(np.float32) for i in range(3)], -1)


class Sunglasses(ObjectOccluder):
    """Sunglasses over both eyes, tinted lenses with highlights (landmark-placed)."""

    name = "sunglasses"
    styles = tuple(_SUNGLASSES)
    mount = "wrap"

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        return (float(_EYES[0]), float(_EYES[1]) + 0.5), 0.0, {}

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-46.0, 46.0, -17.0, 17.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        shape, frame_rgb, rim, metal, lens_rgb, lens_alpha = _SUNGLASSES[self.styles[variant]]
        tint = (1 + rng.uniform(-0.1, 0.1, 3)).astype(np.float32)  # per look: lens tint, glare
        glare_at = float(rng.uniform(-0.12, 0.12))
        lens = _lens_outline(shape)
        ax, ay = float(np.abs(lens[:, 0]).max()), float(np.abs(lens[:, 1]).max())
        flip = np.array([-1.0, 1.0])
        left, right = lens + (-_HALF_IOD, 0.0), lens * flip + (_HALF_IOD, 0.0)
        outer = lens * ((ax + rim) / ax, (ay + rim) / ay)
        inner = sp.poly(left, right)
        ring = np.clip(sp.poly(outer + (-_HALF_IOD, 0.0), outer * flip + (_HALF_IOD, 0.0)) - inner, 0, 1)
        xi = _HALF_IOD - ax * 0.9  # inner lens edge
        bridge = sp.lines(_bezier((-xi - 1, -ay * 0.45), (0, -ay * 0.95), (xi + 1, -ay * 0.45)), width=max(rim, 1.2))
        if metal:
            top_bar = sp.lines(np.array([(-_HALF_IOD + ax * 0.2, -ay - rim * 0.6), (_HALF_IOD - ax * 0.2, -ay - rim * 0.6)]),
                               width=rim * 0.9)
            bridge = np.maximum(bridge, top_bar)
        xo = _HALF_IOD + ax + rim * 0.2
        temples = sp.lines(np.array([(-xo, -ay * 0.5), (-xo - 10, -ay * 0.35)]),
                           np.array([(xo, -ay * 0.5), (xo + 10, -ay * 0.35)]), width=max(rim * 0.9, 1.2))
        frame = np.maximum(np.maximum(ring, bridge), temples)

        # Lenses: vertical tint gradient, partial transparency, reflections.
        t = np.clip((sp.v + ay) / (2 * ay), 0, 1)
        if lens_rgb is None:
            col = _gradient(np.broadcast_to(t + 0.04 * sp.u / ax, inner.shape), _MIRROR_STOPS)
        else:
            top, bottom = _rgb(lens_rgb[0]), _rgb(lens_rgb[1])
            col = (top + (t[..., None] * (bottom - top))) * tint
        alpha = lens_alpha[0] + (lens_alpha[1] - lens_alpha[0]) * t
        sp.paint(inner * alpha, col)
        lu = np.where(sp.u < 0, sp.u + _HALF_IOD, sp.u - _HALF_IOD)
        d = lu + 0.7 * sp.v + glare_at * ax
        glare = 0.22 * np.exp(-(((d + 0.3 * ax) / (0.13 * ax)) ** 2)) + 0.16 * np.exp(-(((d - 0.12 * ax) / (0.045 * ax)) ** 2))
        spot = np.clip(1 - ((lu + 0.45 * ax) / (0.17 * ax)) ** 2 - ((sp.v + 0.5 * ay) / (0.1 * ay)) ** 2, 0, 1)
        strength = 1.6 if lens_rgb is None else 1.0
        sp.paint(inner * np.clip(strength * glare + 0.7 * np.sqrt(spot), 0, 0.9), _WHITE)

        # Frame: acetate shading lighter at the top, polished metal banded, tortoise mottled.
        if metal:
            fshade = 0.78 + 0.42 * (0.5 + 0.5 * np.cos(2 * np.pi * (sp.v + 0.3 * sp.u) / 6.0))
            fcol = _rgb(frame_rgb) * fshade[..., None]
        else:
            fshade = 1.12 - 0.4 * np.clip((sp.v + ay + rim) / (2 * (ay + rim)), 0, 1)
            base = np.broadcast_to(_rgb(frame_rgb), (sp.h, sp.w, 3))
            if self.styles[variant] == "tortoise":
                n = sp.noise(rng, 2.2)
                light, dark = _rgb((196, 132, 58)), _rgb((42, 22, 10))
                base = base + _smooth(0.4, 1.3, n)[..., None] * (light - base) + _smooth(-0.3, -1.2, n)[..., None] * (dark - base)
            fcol = base * fshade[..., None] + 30.0 * np.exp(-(((sp.v + ay + rim * 0.5) / 0.9) ** 2))[..., None]
        sp.paint(frame, fcol)
        sp.drop_shadow(0.6, 2.0, 1.4, 0.35)


# -------------------------------------------------------------------------- medical mask

_MASKS = {
    # colour, cut, loop colour
    "surgical_blue": ((132, 182, 222), "surgical", (238, 240, 242)),
    "surgical_white": ((238, 240, 242), "surgical", (238, 240, 242)),
    "cloth_black": ((40, 40, 44), "cloth", (36, 36, 40)),
    "surgical_pink": ((238, 176, 196), "surgical", (238, 240, 242)),
    "surgical_teal": ((118, 196, 186), "surgical", (238, 240, 242)),
    "kn95": ((242, 242, 236), "kn95", (236, 236, 232)),
}
_MASK_W = 31.0  # half width at the top, template units
_MASK_WB = 29.5  # half width of the chin curve


def _mask_top(u: Any, cut: str) -> Any:
    x = np.clip(np.abs(u) / _MASK_W, 0, 1)
    return -12.0 + 8.5 * x**2 if cut == "surgical" else -14.5 + 11.0 * x**1.3


def _mask_bottom(u: Any, cut: str) -> Any:
    x = np.clip(np.abs(u) / _MASK_WB, 0, 1)
    arc = np.sqrt(1 - x**2)
    return 30.0 + 13.0 * arc if cut == "surgical" else 27.0 + 17.0 * arc**1.4


@functools.lru_cache(maxsize=None)
def _mask_outline(cut: str) -> np.ndarray:
    xs = np.linspace(-_MASK_W, _MASK_W, 33)
    top = np.stack([xs, _mask_top(xs, cut)], 1)
    t = np.linspace(0, np.pi, 33)
    bx = _MASK_WB * np.cos(t)
    bottom = np.stack([bx, _mask_bottom(bx, cut)], 1)
    pts = np.concatenate([top, bottom])
    pts.setflags(write=False)
    return pts


class MedicalMask(ObjectOccluder):
    """Medical face mask from the nose bridge to the chin, pleated, with ear loops (landmark-placed)."""

    name = "medical_mask"
    depth = 0.5  # over the nose
    styles = tuple(_MASKS)
    mount = "wrap"

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        return (float(_NOSE[0]), float(_NOSE[1])), 0.0, {}

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-44.0, 44.0, -18.0, 46.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        rgb, cut, loop_rgb = _MASKS[self.styles[variant]]
        W, Wb = _MASK_W, _MASK_WB
        loops = sp.lines(*[np.array(p) * (sgn, 1.0) for sgn in (-1.0, 1.0) for p in (
            _bezier((W - 0.5, -3.0), (W + 5, -4.5), (W + 10, -8)),
            _bezier((Wb - 0.5, 30.0), (W + 7, 20), (W + 10.5, -2)))], width=0.9)
        sp.paint(loops, _rgb(loop_rgb) * 0.92)
        body = sp.poly(_mask_outline(cut))

        top, bottom = _mask_top(sp.u, cut), _mask_bottom(sp.u, cut)
        span = bottom - top
        p = np.clip((sp.v - top) / span, 0, 1)  # 0 at the top edge, 1 at the chin
        shade = 0.8 + 0.22 * np.sqrt(np.clip(1 - (sp.u / 37.0) ** 2, 0, 1)) - 0.06 * p
        if cut == "surgical":
            f = (p - 0.2) / 0.19  # three pleats between 20 % and 77 % of the height
            g = f - np.floor(f)
            inside = (f > 0) & (f < 3) & (np.abs(sp.u) < W - 3.5)
            shade = shade * np.where(inside, 0.86 + 0.2 * g, 0.97)
            hem = np.clip(1 - np.abs(np.abs(sp.u) - (W - 3.5)) * sp.k, 0, 1) * (p > 0.04) * (p < 0.96)
            stitch = np.clip(1 - np.abs(p - 0.1) * span * sp.k, 0, 1) + np.clip(1 - np.abs(p - 0.88) * span * sp.k, 0, 1)
            shade = shade * (1 - 0.16 * np.clip(hem + stitch * (np.abs(sp.u) < W - 3.5), 0, 1))
            shade = shade + 0.07 * np.exp(-((sp.u / 9.0) ** 2)) * (p < 0.1)  # the nose wire
        else:  # a centre seam and a welded/stitched rim
            seam = np.clip(1 - np.abs(sp.u) * sp.k, 0, 1)
            lit = np.clip(1 - np.abs(sp.u + 0.9) * sp.k, 0, 1)
            shade = shade * (1 - 0.25 * seam) + 0.06 * lit
            rim = sp.lines(_mask_outline(cut) * 0.92 + (0.0, 1.2), width=0.5, closed=True)
            shade = shade * (1 - 0.18 * rim)
        shade = shade + 0.025 * sp.noise(rng, 0.8)
        col = _rgb(rgb) * shade[..., None]
        if cut == "cloth":  # a broad sheen shows the shape of a dark fabric
            col = col + 26.0 * np.exp(-(((sp.u + 9) / 13.0) ** 2) - (((sp.v - 12) / 20.0) ** 2))[..., None]
        sp.paint(body, col)
        sp.soften(0.25)


# --------------------------------------------------------------------------------- scarf

_SCARVES = {
    # pattern, primary, secondary, accent
    "knit_red": ("knit", (176, 36, 42), (236, 222, 200), None),
    "knit_gray": ("knit", (132, 132, 138), (70, 70, 76), None),
    "stripes_navy": ("stripes", (32, 46, 92), (226, 216, 190), None),
    "tartan_red": ("tartan", (162, 32, 36), (28, 72, 46), (222, 192, 64)),
    "knit_mustard": ("knit", (206, 152, 46), (110, 70, 30), None),
    "stripes_burgundy": ("stripes", (112, 26, 42), (152, 152, 158), None),
    "fleece_green": ("fleece", (62, 104, 72), (40, 70, 48), None),
    "tartan_gray": ("tartan", (120, 120, 126), (30, 30, 34), (236, 236, 236)),
}


def _aa_stripe(q: np.ndarray, period: float, duty: float, k: float) -> np.ndarray:
    """1 inside the first ``duty`` of each ``period`` (units) along ``q``, AA at 1 px."""
    f = np.mod(q, period)
    # Signed distance to the nearest stripe edge: positive inside the stripe, negative outside.
    d = np.where(f < duty, np.minimum(f, duty - f), -np.minimum(f - duty, period - f))
    return np.clip(d * k + 0.5, 0, 1)


class Scarf(ObjectOccluder):
    """Scarf pulled over the chin up to the mouth or the nose; knit, stripes or tartan (landmark-placed)."""

    name = "scarf"
    depth = 0.5  # pulled over the nose or mouth
    styles = tuple(_SCARVES)
    mount = "wrap"
    render_keys = ("level",)

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        level = ("mouth", "nose")[int(rng.integers(2))]
        return (float(_MOUTH[0]), float(_MOUTH[1])), 0.0, {"level": level}

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-76.0, 76.0, (-6.0 if extra["level"] == "mouth" else -20.0) - 6.0, 46.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        pattern, c1, c2, c3 = _SCARVES[self.styles[variant]]
        top0 = -6.0 if extra["level"] == "mouth" else -20.0
        phase = float(rng.uniform(0, 2 * np.pi))
        wave_p = float(rng.uniform(16, 26))
        slant = float(rng.uniform(-0.08, 0.08))

        def top_edge(x: Any) -> Any:
            x = np.asarray(x)
            return top0 - 4.0 * (x / 55.0) ** 2 + 0.8 * np.sin(2 * np.pi * x / wave_p + phase)

        xs = np.linspace(-74, 74, 49)
        body = sp.poly(np.concatenate([np.stack([xs, top_edge(xs)], 1), [(74.0, 46.0), (-74.0, 46.0)]]))
        q = sp.v - top_edge(sp.u)  # depth below the top edge, units (fabric "rows")
        # Texture in fabric coordinates (following the top edge).
        if pattern == "knit":
            rib = 0.5 + 0.5 * np.cos(2 * np.pi * sp.u / 4.4)
            chevron = 0.5 + 0.5 * np.cos(2 * np.pi * (q / 3.6 + 0.7 * np.abs(((sp.u / 4.4) % 1.0) - 0.5)))
            tex = 0.76 + 0.16 * rib + 0.12 * chevron
            band = _aa_stripe(q - 15.0, 60.0, 4.0, sp.k)  # one contrasting band
            col = (_rgb(c1) + band[..., None] * (_rgb(c2) - _rgb(c1))) * tex[..., None]
        elif pattern == "stripes":
            st = _aa_stripe(q - 3.0, 10.0, 4.5, sp.k)
            col = _rgb(c1) + st[..., None] * (_rgb(c2) - _rgb(c1))
            col = col * (0.93 + 0.07 * np.cos(2 * np.pi * sp.u / 3.4))[..., None]
        elif pattern == "tartan":
            h_band = _aa_stripe(q + 2.0, 14.0, 5.0, sp.k)
            v_band = _aa_stripe(sp.u + 30.0 + 0.3 * q, 14.0, 5.0, sp.k)
            cross = 0.5 * (h_band + v_band)
            col = _rgb(c1) + cross[..., None] * (_rgb(c2) - _rgb(c1))
            thin = np.maximum(_aa_stripe(q + 9.5, 14.0, 0.8, sp.k), _aa_stripe(sp.u + 23.0 + 0.3 * q, 14.0, 0.8, sp.k))
            col = col + (0.75 * thin)[..., None] * (_rgb(c3) - col)
        else:  # fleece
            col = _rgb(c1) * (1.0 + 0.05 * sp.noise(rng, 1.2))[..., None]
        # Wraps: tube-like layers, bright in the middle, dark in the folds between them.
        w = q + slant * sp.u
        edges = np.array([0.0, 6.5, 17.0, 28.5, 41.0, 80.0], np.float32)
        i = np.clip(np.searchsorted(edges, w, side="right") - 1, 0, len(edges) - 2)
        f = np.clip((w - edges[i]) / (edges[i + 1] - edges[i]), 0, 1)
        wraps = 0.7 + 0.36 * np.abs(np.sin(np.pi * f)) ** 0.6
        wraps = np.where(w < 0.5, 1.0, wraps)  # keep the top edge itself lit
        side = 0.7 + 0.3 * np.sqrt(np.clip(1 - (sp.u / 80.0) ** 2, 0, 1))
        shade = wraps * side * (1.0 - 0.1 * _smooth(12, 45, q)) + 0.03 * sp.noise(rng, 0.7)
        sp.paint(body, col * shade[..., None])
        sp.soften(0.4)
        sp.drop_shadow(0.0, -1.2, 1.3, 0.3)


# ------------------------------------------------------------------------------------ cap

_CAPS = {
    # crown, brim, logo colour (None: plain), pattern
    "navy": ((30, 42, 82), (30, 42, 82), (236, 236, 236), "solid"),
    "red": ((182, 30, 36), (182, 30, 36), (245, 245, 245), "solid"),
    "black": ((30, 30, 32), (30, 30, 32), None, "solid"),
    "white": ((228, 226, 218), (228, 226, 218), (30, 42, 90), "solid"),
    "khaki": ((186, 164, 122), (170, 148, 108), None, "solid"),
    "trucker": ((236, 236, 230), (34, 52, 96), (196, 34, 40), "trucker"),
    "camo": ((92, 102, 64), (92, 102, 64), None, "camo"),
    "heather": ((124, 124, 130), (28, 28, 30), (28, 28, 30), "heather"),
}
_LETTERS = "ABCDGKMNPRSTW"


class Cap(ObjectOccluder):
    """Baseball cap on the forehead above the eyebrows, brim shading the eyes (landmark-placed)."""

    name = "cap"
    styles = tuple(_CAPS)
    mount = "wrap"

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        return (float(_EYES[0]), float(_EYES[1])), 0.0, {}

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-50.0, 50.0, -96.0, 0.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        crown_rgb, brim_rgb, logo_rgb, pattern = _CAPS[self.styles[variant]]
        low = float(rng.uniform(-13.5, -11.5))  # the brim's lowest point, above the eyes
        wb, wc = 46.0, 47.0  # brim and crown half widths

        def brim_low(x: Any) -> Any:
            return low - 11.0 * (np.asarray(x) / wb) ** 2

        def brim_up(x: Any) -> Any:
            return low - 10.0 - 3.0 * (np.asarray(x) / wb) ** 2

        xs = np.linspace(-wb, wb, 33)
        brim_poly = np.concatenate([np.stack([xs, brim_up(xs)], 1), np.stack([xs[::-1], brim_low(xs[::-1])], 1)])
        base_y = low - 9.0  # the crown reaches down the temples behind the brim's ends
        yy = np.linspace(-90, base_y, 24)
        half = wc * np.sqrt(np.clip(1 - ((yy - base_y) / -70.0) ** 2, 0, 1))
        crown_poly = np.concatenate([np.stack([-half, yy], 1), np.stack([half[::-1], yy[::-1]], 1)])
        crown = sp.poly(crown_poly)
        brim = sp.poly(brim_poly)

        # Shadow of the brim on the face, ending above the eyes' centres.
        d = sp.v - brim_low(np.clip(sp.u, -wb, wb))
        shadow = 0.42 * np.clip(1 - d / 8.5, 0, 1) ** 2 * (d > -1) * _smooth(wb + 2, wb - 8, np.abs(sp.u))
        sp.paint(shadow.astype(np.float32), _BLACK)

        # Crown: dome shading, panels, seams, eyelets, optional logo.
        nx = np.clip(sp.u / (wc + 2), -1, 1)
        dome = 0.7 + 0.34 * np.sqrt(1 - nx**2) - 0.12 * nx - 0.1 * _smooth(low - 60, low - 85, sp.v)
        base = np.broadcast_to(_rgb(crown_rgb), (sp.h, sp.w, 3))
        if pattern == "camo":
            n1, n2 = sp.noise(rng, 4.0), sp.noise(rng, 3.0)
            base = base + _smooth(0.2, 0.5, n1)[..., None] * (_rgb((52, 62, 38)) - base)
            base = base + _smooth(0.5, 0.8, n2)[..., None] * (_rgb((150, 132, 92)) - base)
            base = base + _smooth(-0.6, -0.9, n1)[..., None] * (_rgb((38, 32, 24)) - base)
        elif pattern == "heather":
            base = base * (1 + 0.07 * sp.noise(rng, 0.6))[..., None]
        elif pattern == "trucker":  # mesh side panels behind white foam front panels
            holes = (0.5 + 0.5 * np.cos(2 * np.pi * sp.u / 2.6)) * (0.5 + 0.5 * np.cos(2 * np.pi * sp.v / 2.6))
            mesh = _rgb(brim_rgb) * (0.8 + 0.35 * holes)[..., None]
            side = _smooth(27.0, 29.0, np.abs(sp.u))[..., None] * np.ones_like(base[..., :1])
            base = base + side * (mesh - base)
        col = base * dome[..., None]
        sp.paint(crown, col)
        seams = [np.array([(0.0, float(brim_up(0.0)) + 1), (0.0, -92.0)])]
        for sgn in (-1.0, 1.0):
            seams.append(_bezier((sgn * 30.0, float(brim_up(30.0)) + 1), (sgn * 27.0, low - 52), (sgn * 4.0, -94.0)))
        seam = sp.lines(*seams, width=0.9) * crown
        stitch = sp.lines(*[s + (0.9, 0.0) for s in seams], width=0.45) * crown
        sp.shade(1 - 0.4 * seam + 0.2 * stitch)
        for sgn in (-1.0, 1.0):
            sp.paint(sp.ellipse((sgn * 20.0, low - 58.0), (1.4, 1.7)) * crown, _rgb(crown_rgb) * 0.35)
        if logo_rgb is not None:
            letter = _LETTERS[int(rng.integers(len(_LETTERS)))]
            fs = 0.34 * sp.k
            th = max(1, int(round(1.3 * sp.k)))
            (tw, tht), _ = cv2.getTextSize(letter, cv2.FONT_HERSHEY_DUPLEX, fs, th)
            m = np.zeros((sp.h, sp.w), np.uint8)
            cx, cy = sp.ox, sp.oy + (low - 30.0) * sp.k
            cv2.putText(m, letter, (int(round(cx - tw / 2)), int(round(cy + tht / 2))), cv2.FONT_HERSHEY_DUPLEX,
                        fs, 255, th, cv2.LINE_AA)
            sp.paint(m.astype(np.float32) * np.float32(1 / 255) * 0.95, _rgb(logo_rgb) * 0.95)

        # Brim: the underside, darker towards the crown, stitched rows, a lit lip.
        bd = np.clip((sp.v - brim_up(sp.u)) / (brim_low(sp.u) - brim_up(sp.u)), 0, 1)
        bshade = 0.5 + 0.22 * bd**2 - 0.1 * np.abs(nx)
        rows = sp.lines(*[np.stack([xs * (1 - 0.02 * i), brim_low(xs) - 1.5 * i], 1) for i in (1, 2, 3)], width=0.45)
        bcol = _rgb(brim_rgb) * (bshade * (1 - 0.2 * rows))[..., None]
        lip = np.exp(-(((sp.v - brim_low(sp.u) + 0.7) / 0.8) ** 2)) + 0.6 * np.exp(-(((sp.v - brim_up(sp.u) - 0.6) / 0.6) ** 2))
        bcol = bcol + lip[..., None] * (40.0 + 0.35 * _rgb(brim_rgb))
        sp.paint(brim, bcol)


# ----------------------------------------------------------------------------------- hand

_SKIN = {
    "porcelain": (246, 214, 190),
    "light": (236, 188, 158),
    "beige": (222, 170, 132),
    "tan": (196, 138, 100),
    "olive": (172, 120, 82),
    "brown": (132, 86, 58),
    "dark": (88, 58, 42),
}
# Fingers on the back of a right hand, fingers up, thumb on the image right:
# base x, width, length, fan angle (degrees, + leans right).
_FINGERS = ((-14.5, 8.6, 27.0, -7.0), (-5.0, 9.6, 35.0, -2.5), (4.6, 10.0, 38.0, 1.5), (14.0, 9.6, 34.0, 6.0))


def _skin_colour(skin: np.ndarray) -> Any:
    """Colour of skin ``skin`` (RGB) under a shade factor: shadows on skin are warmer."""
    warm = np.array([1.0, 0.93, 0.88], np.float32)

    def skin_col(shade: np.ndarray) -> np.ndarray:
        s = shade[..., None]
        return skin * s * (warm + (1 - warm) * np.clip(s, 0, 1))

    return skin_col


def _draw_hand(sp: _Sprite, colour: Any, flip: float, spread: float, lengths: np.ndarray, *,
               nails: bool = True, thick: float = 1.0) -> None:
    """The back of an open hand, fingers up, forearm down, wrist at unit y 29 (mirrored with
    ``flip`` = -1): palm, thumb and four fingers as shaded capsules; ``colour(shade)`` gives
    the colour of the surface (skin or a glove's material) under a shade factor."""
    # Forearm and palm (the back of the hand).
    arm = np.array([(-15.0, 26), (-17.5, 80), (17.5, 80), (16.0, 26)])
    palm = np.array([(-19.5, -12), (-9, -15), (4, -15.5), (16, -14), (20, -8), (21.5, 6), (21, 18), (16.5, 29),
                     (-15.5, 29), (-19.5, 16), (-20.5, 2)])
    m = sp.poly(arm * (flip, 1), palm * (flip, 1))
    shade = 0.74 + 0.3 * np.sqrt(np.clip(1 - (sp.u / 23.0) ** 2, 0, 1)) - 0.05 * _smooth(20, 60, sp.v)
    sp.paint(m, colour(shade))
    # Thumb (seen from the side), then the fingers from the little finger to the index.
    fingers = [((flip * 14.0, 19.0), (flip * 26.0, 7.0), (flip * 33.5, -3.0), 10.5 * thick)]
    for (x, wdt, length, fan), f in zip(_FINGERS, lengths):
        a = math.radians(fan * spread)
        tip = (x + length * f * math.sin(a), -11.0 - length * f * math.cos(a))
        fingers.append(((flip * x, -11.0), (flip * tip[0], tip[1]), None, wdt * thick))
    for i, (p0, p1, p2, wdt) in enumerate(fingers):
        segs = [(p0, p1), (p1, p2)] if p2 is not None else [(p0, p1)]
        for j, (a0, a1) in enumerate(segs):
            last = j == len(segs) - 1
            _finger(sp, np.asarray(a0), np.asarray(a1), wdt * (0.93 if j else 1.0), colour,
                    nail=nails and last, fade_base=(i > 0 or j > 0), knuckles=(i > 0))


def _finger(sp: _Sprite, p0: np.ndarray, p1: np.ndarray, width: float, skin_col: Any, *, nail: bool,
            fade_base: bool, knuckles: bool) -> None:
    """One shaded capsule (a finger segment) with creases and a nail, drawn in its bounding box."""
    r = width / 2
    lo, hi = np.minimum(p0, p1) - r - 1, np.maximum(p0, p1) + r + 1
    win = sp.window(lo[0], hi[0], lo[1], hi[1])
    d = p1 - p0
    length = float(np.hypot(*d))
    d = d / length
    du, dv = win.u - np.float32(p0[0]), win.v - np.float32(p0[1])
    t = du * np.float32(d[0]) + dv * np.float32(d[1])
    s = du * np.float32(-d[1]) + dv * np.float32(d[0])
    dist = np.sqrt((t - np.clip(t, 0, length)) ** 2 + s**2)
    mask = np.clip((r - dist) * win.k + 0.5, 0, 1)
    if fade_base:
        mask = mask * _smooth(-r * 0.6, r * 0.5, t)
    sn = np.clip(s / r, -1, 1)
    shade = 0.7 + 0.36 * np.sqrt(1 - sn**2) - 0.06 * sn
    if knuckles:
        for tc, amount in ((0.45, 0.22), (0.74, 0.16)):
            shade = shade - amount * np.exp(-(((t - tc * length) / 0.55) ** 2)) * (np.abs(sn) < 0.7)
        shade = shade + 0.1 * np.exp(-((t / 2.2) ** 2) - (sn / 0.6) ** 2)  # knuckle bump
    col = skin_col(shade)
    if nail:
        tn, hl, hw = length + r * 0.05 - 0.17 * length * 0.5, 0.15 * length + r * 0.3, 0.62 * r
        q = ((np.abs(t - tn) / hl) ** 4 + (np.abs(s) / hw) ** 4) ** 0.25
        nail_m = np.clip((1 - q) * min(hl, hw) * win.k + 0.5, 0, 1)
        rim_m = np.clip((1.18 - q) * min(hl, hw) * win.k + 0.5, 0, 1)
        col = col * (1 - 0.12 * rim_m)[..., None]
        nail_col = np.clip(col * np.float32(1.08) + np.float32(24), 0, 255) * (1 + 0.1 * (0.5 - np.abs(sn)))[..., None]
        col = col + nail_m[..., None] * (nail_col - col)
    win.paint(mask, col)


class Hand(ObjectOccluder):
    """A hand over the mouth or one eye, fingers, nails and skin tones drawn (landmark-placed)."""

    name = "hand"
    depth = 0.5  # pressed on the face, fingers round the nose
    styles = tuple(_SKIN)
    render_keys = ("hand",)
    TARGETS = ("any", "mouth", "eye")

    def __init__(self, jitter: float = 1.0, variant: int | None = None, target: str = "any",
                 landmarks: str = "auto") -> None:
        super().__init__(jitter, variant, landmarks)
        if target not in self.TARGETS:
            raise ValueError(f"hand: target must be one of {self.TARGETS}, got {target!r}")
        self.target = target

    def params(self) -> dict[str, Any]:
        return {**super().params(), "target": self.target}

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        poses = {"any": ("mouth", "left_eye", "right_eye"), "mouth": ("mouth",), "eye": ("left_eye", "right_eye")}
        choices = poses[self.target]
        pose = choices[int(rng.integers(len(choices)))]
        side = (-1, 1)[int(rng.integers(2))]  # the side the arm comes from (mouth pose)
        tilt = float(rng.uniform(-12, 12))
        mirrored = bool(rng.integers(2))
        if pose == "mouth":
            anchor = (float(_MOUTH[0]) + 5.0 * side, float(_MOUTH[1]) + 1.0)
            angle = side * 90.0 + tilt
        else:
            eye = _T[0] if pose == "left_eye" else _T[1]
            side = -1 if pose == "left_eye" else 1  # the arm leaves the face outwards
            anchor = (float(eye[0]) + 3.0 * side, float(eye[1]) + 12.0)
            angle = side * 28.0 + tilt
        return anchor, angle, {"pose": pose, "arm_side": "left" if side < 0 else "right",
                               "hand": "left" if mirrored else "right"}

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-40.0, 40.0, -54.0, 80.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        skin = _rgb(_SKIN[self.styles[variant]]) * (1 + rng.uniform(-0.04, 0.04, 3)).astype(np.float32)
        spread = float(rng.uniform(0.5, 1.6))
        lengths = 1 + rng.uniform(-0.05, 0.05, 4)
        flip = -1.0 if extra["hand"] == "left" else 1.0
        _draw_hand(sp, _skin_colour(skin), flip, spread, lengths)
        sp.soften(0.3)
        sp.drop_shadow(1.5, 2.5, 2.0, 0.3)


# ----------------------------------------------------------------------------- microphone

_MICS = {
    # grille, collar, handle, band colour (None: none), equator band on the ball
    "classic": ((186, 186, 192), (40, 40, 44), (36, 36, 40), None, False),
    "black": ((52, 52, 56), (30, 30, 32), (30, 30, 32), None, False),
    "silver": ((196, 196, 202), (170, 170, 176), (168, 168, 174), (40, 40, 44), True),
    "gold": ((206, 172, 96), (190, 156, 80), (34, 34, 38), None, True),
    "wireless": ((90, 92, 98), (210, 210, 214), (226, 226, 230), (40, 110, 200), False),
    "studio_red": ((180, 180, 186), (150, 24, 30), (50, 50, 56), (150, 24, 30), False),
}


class Microphone(ObjectOccluder):
    """Handheld microphone in front of the mouth and chin, mesh grille and handle (landmark-placed)."""

    name = "microphone"
    depth = 1.0  # held before the mouth
    mount = "held"
    styles = tuple(_MICS)

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        side = (-1, 1)[int(rng.integers(2))]
        tilt = side * float(rng.uniform(10, 35))
        return (float(_MOUTH[0]) + 3.0 * side, float(_MOUTH[1]) + 1.5), tilt, {"handle_side": "left" if side < 0 else "right"}

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-15.0, 15.0, -15.0, 80.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        grille, collar, handle, band, equator = _MICS[self.styles[variant]]
        grille = _rgb(grille) * np.float32(1 + rng.uniform(-0.1, 0.1))  # per look: brightness, mesh
        mesh_p = float(rng.uniform(3.0, 3.6))
        R, Ry = 13.0, 13.7
        # Handle: a tapered cylinder.
        top_y = Ry * 0.85
        hw = np.clip(7.2 - 2.2 * (sp.v - top_y) / 66.0, 4.8, 7.2)
        sx = np.clip(sp.u / hw, -1, 1)
        nz = np.sqrt(1 - sx**2)
        lam = np.clip(sx * _LIGHT[0] + nz * _LIGHT[2], 0, 1)
        spec = np.clip(sx * _HALF[0] + nz * _HALF[2], 0, 1) ** 24
        body = np.clip((hw - np.abs(sp.u)) * sp.k + 0.5, 0, 1) * np.clip((sp.v - top_y) * sp.k + 0.5, 0, 1)
        hcol = _rgb(handle) * (0.3 + 0.75 * lam)[..., None] + (150 * spec)[..., None]
        if band is not None:
            bm = _aa_stripe(sp.v - (top_y + 16.0), 200.0, 3.0, sp.k)
            hcol = hcol + bm[..., None] * (_rgb(band) * (0.35 + 0.75 * lam)[..., None] + (120 * spec)[..., None] - hcol)
        sp.paint(body, hcol)
        # Collar ring between the ball and the handle.
        cw = 8.8
        csx = np.clip(sp.u / cw, -1, 1)
        cnz = np.sqrt(1 - csx**2)
        clam = np.clip(csx * _LIGHT[0] + cnz * _LIGHT[2], 0, 1)
        cspec = np.clip(csx * _HALF[0] + cnz * _HALF[2], 0, 1) ** 30
        collar_m = (np.clip((cw - np.abs(sp.u)) * sp.k + 0.5, 0, 1)
                    * np.clip((sp.v - Ry * 0.55) * sp.k + 0.5, 0, 1) * np.clip((top_y + 4.5 - sp.v) * sp.k + 0.5, 0, 1))
        ccol = _rgb(collar) * (0.3 + 0.8 * clam)[..., None] + (170 * cspec)[..., None]
        sp.paint(collar_m, ccol)
        # The ball grille: a sphere with a cross-hatched mesh in longitude/latitude.
        nx, ny = sp.u / R, sp.v / Ry
        rr = np.sqrt(nx**2 + ny**2)
        ball = np.clip((1 - rr) * R * sp.k + 0.5, 0, 1)
        nz = np.sqrt(np.clip(1 - rr**2, 0, 1))
        lon, lat = np.arctan2(nx, np.maximum(nz, 1e-3)), np.arcsin(np.clip(ny, -1, 1))
        period = mesh_p / R
        c1 = 0.5 + 0.5 * np.cos(2 * np.pi * (lon + lat) / period)
        c2 = 0.5 + 0.5 * np.cos(2 * np.pi * (lon - lat) / period)
        mesh = 1 - (1 - np.maximum(c1, c2) ** 2) * 0.55 * np.clip(nz * 1.6, 0, 1)
        if equator:
            mesh = np.where(np.abs(lat - 0.15) < 0.07, 1.05, mesh)
        lam = np.clip(nx * _LIGHT[0] + ny * _LIGHT[1] + nz * _LIGHT[2], 0, 1)
        spec = np.clip(nx * _HALF[0] + ny * _HALF[1] + nz * _HALF[2], 0, 1) ** 18
        gcol = _rgb(grille) * (mesh * (0.22 + 0.85 * lam))[..., None] + (130 * spec * mesh)[..., None]
        sp.paint(ball, gcol)
        sp.drop_shadow(1.2, 2.0, 1.6, 0.3)


# ------------------------------------------------------------------------------------ cup

_CUPS = {
    # body colour, inside colour, decoration, decoration colour, drink, taper
    "white_mug": ((238, 236, 232), (236, 234, 228), "plain", None, (72, 42, 24), 0.96),
    "red_mug": ((186, 34, 38), (240, 238, 232), "plain", None, (74, 44, 26), 0.96),
    "polka_mug": ((38, 82, 160), (240, 238, 232), "dots", (244, 244, 240), (150, 94, 36), 0.96),
    "band_mug": ((244, 204, 52), (244, 204, 52), "band", (60, 60, 64), (176, 128, 88), 0.96),
    "paper_cup": ((244, 242, 236), (236, 230, 218), "sleeve", (160, 114, 70), (68, 40, 22), 0.8),
    "black_mug": ((34, 34, 38), (34, 34, 38), "plain", None, (176, 128, 88), 0.96),
    "striped_mug": ((240, 240, 236), (240, 240, 236), "stripes", (44, 72, 150), (72, 42, 24), 0.94),
    "green_tea": ((104, 150, 96), (230, 232, 220), "plain", None, (178, 150, 60), 0.88),
}


class Cup(ObjectOccluder):
    """Cup or mug raised in front of the lower face (drinking pose), rim, drink and handle (landmark-placed)."""

    name = "cup"
    depth = 1.0  # held to the lips
    mount = "held"
    styles = tuple(_CUPS)
    render_keys = ("handle",)

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        side = (-1, 1)[int(rng.integers(2))]
        tilt = side * float(rng.uniform(4, 18))
        handle = ("left", "right")[int(rng.integers(2))]
        return ((float(_MOUTH[0]) + 5.0 * side, float(_MOUTH[1]) + 1.0), tilt,
                {"cup_side": "left" if side < 0 else "right", "handle": handle})

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-36.0, 36.0, -7.0, 52.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        body_rgb, inside_rgb, deco, deco_rgb, drink, taper = _CUPS[self.styles[variant]]
        Rw, Rh, H = 20.0, 5.6, 44.0
        Rb, Rhb = Rw * taper, Rh * taper
        hs = 1.0 if extra["handle"] == "right" else -1.0
        # Handle behind the body.
        if deco != "sleeve":
            hx = hs * (Rw + 3.5)
            handle = sp.ellipse((hx, 17.0), (8.5, 12.0), width=4.2) * _smooth(hs * Rw * 0.6, hs * (Rw + 1), sp.u)
            pillow = np.minimum(sp.blur(handle, 1.1) * np.float32(1 / 0.94), 1)  # 0.94: the blurred stroke's peak
            sp.paint(handle, _rgb(body_rgb) * (0.45 + 0.6 * pillow)[..., None] + (40 * pillow**6)[..., None])
        # Body: a tapered cylinder.
        t = np.linspace(0, np.pi, 24)
        back = t[::-1]  # pi .. 0: the bottom arc from left to right
        outline = np.concatenate([np.stack([Rw * np.cos(t), -Rh * np.sin(t)], 1),
                                  np.stack([Rb * np.cos(back), H + Rhb * np.sin(back)], 1)])
        body = sp.poly(outline)
        half = Rw + (Rb - Rw) * np.clip(sp.v / H, 0, 1)
        sx = np.clip(sp.u / half, -1, 1)
        nz = np.sqrt(1 - sx**2)
        lam = np.clip(sx * _LIGHT[0] + nz * _LIGHT[2], 0, 1)
        spec = np.clip(sx * _HALF[0] + nz * _HALF[2], 0, 1) ** 28
        base = np.broadcast_to(_rgb(body_rgb), (sp.h, sp.w, 3))
        arc = np.arcsin(sx) * half  # arc length around the cup, units
        if deco == "dots":
            fu, fv = (arc / 8.0) % 1.0 - 0.5, ((sp.v - 4.0) / 8.0) % 1.0 - 0.5
            shift = ((np.floor((sp.v - 4.0) / 8.0) % 2) * 0.5)
            fu = ((arc / 8.0 + shift) % 1.0) - 0.5
            dots = np.clip((2.0 - np.sqrt((fu * 8.0) ** 2 + (fv * 8.0) ** 2)) * sp.k * nz + 0.5, 0, 1)
            base = base + dots[..., None] * (_rgb(deco_rgb) - base)
        elif deco == "band":
            b = _aa_stripe(sp.v - 16.0, 200.0, 9.0, sp.k)
            base = base + b[..., None] * (_rgb(deco_rgb) - base)
        elif deco == "stripes":
            b = _aa_stripe(sp.v - 5.0, 7.0, 3.2, sp.k) * (sp.v < H - 2)
            base = base + b[..., None] * (_rgb(deco_rgb) - base)
        elif deco == "sleeve":
            b = _aa_stripe(sp.v - 12.0, 200.0, 19.0, sp.k)
            rib = 0.9 + 0.1 * np.cos(2 * np.pi * arc / 2.6)
            base = base + b[..., None] * (_rgb(deco_rgb) * rib[..., None] - base)
        bottom_dark = 1 - 0.2 * _smooth(H - 10, H + Rhb, sp.v)
        col = base * ((0.4 + 0.68 * lam) * bottom_dark)[..., None] + (110 * spec)[..., None]
        sp.paint(body, col)
        # Rim: the lip, the inside and the drink.
        lip = 1.5
        inner = sp.ellipse((0.0, 0.0), (Rw - lip, Rh - lip * 0.35))
        sp.paint(sp.ellipse((0.0, 0.0), (Rw, Rh)), _rgb(body_rgb) * 0.95 + 12)
        depth = np.clip((sp.v + Rh) / (2 * Rh), 0, 1)
        sp.paint(inner, _rgb(inside_rgb) * (0.45 + 0.35 * depth)[..., None])
        level = float(rng.uniform(0.8, 2.2))
        liquid = inner * sp.ellipse((0.0, level), (Rw - lip - 1.2, Rh - 1.4))
        glint = np.exp(-(((sp.u + 7) / 4.0) ** 2) - (((sp.v - level + 1.2) / 0.9) ** 2))
        sp.paint(liquid, _rgb(drink) * (0.85 + 0.15 * depth)[..., None] + (70 * glint)[..., None])
        rim_hl = sp.ellipse((0.0, 0.0), (Rw - lip * 0.5, Rh - lip * 0.17), width=0.5, start=180, end=360)
        sp.paint(rim_hl * 0.55, _WHITE)
        sp.drop_shadow(1.0, 2.0, 1.8, 0.3)


# ==================================================================== the Helwan categories
# The twelve further object kinds of the Helwan "Face Under-Mask Reconstruction" occluders
# (books, boxes, candies, cigarettes, envelopes, flowers, fast food, fruits, gloves, keys,
# pens, phones); caps, cups, hands, masks, microphones, scarves and sunglasses are above.
# Small things are held in a fist near the mouth, flat things are held up before the lower
# face with fingers curled round their edges, a phone rests against the cheek at the ear.


def _bands(q: np.ndarray, period: float, width: float, k: float) -> np.ndarray:
    """1 on bands ``width`` units wide, one every ``period`` units along ``q``, anti-aliased
    at one pixel (``k`` pixels per unit)."""
    f = np.mod(q, period)
    d = np.where(f < width, np.minimum(f, width - f), -np.minimum(f - width, period - f))
    return np.clip(d * k + 0.5, 0, 1).astype(np.float32)


def _settle(sp: _Sprite) -> None:
    """Keep the premultiplied colour within [0, 255·alpha] (highlights saturate, no
    negative light), once a drawing is finished."""
    np.clip(sp.pm, 0, None, out=sp.pm)
    np.minimum(sp.pm, (255.0 * sp.a)[..., None], out=sp.pm)


def _side_sign(extra: dict[str, Any]) -> float:
    return -1.0 if extra["side"] == "left" else 1.0


def _pick_side(rng: np.random.Generator) -> tuple[float, str]:
    side = (-1.0, 1.0)[int(rng.integers(2))]
    return side, "left" if side < 0 else "right"


def _rrect_sdf(sp: _Sprite, cx: float, cy: float, hw: float, hh: float, r: float) -> np.ndarray:
    """Signed distance (units, negative inside) to a rounded rectangle centred at (cx, cy)."""
    qx = np.abs(sp.u - np.float32(cx)) - np.float32(hw - r)
    qy = np.abs(sp.v - np.float32(cy)) - np.float32(hh - r)
    return np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2) + np.minimum(np.maximum(qx, qy), 0) - np.float32(r)


def _inside(sp: _Sprite, sdf: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of the region where ``sdf`` (units) is negative."""
    return np.clip(0.5 - sdf * np.float32(sp.k), 0, 1).astype(np.float32)


def _tube(sx: np.ndarray, power: float = 24.0) -> tuple[np.ndarray, np.ndarray]:
    """Lambert and specular terms across a vertical cylinder (``sx`` -1 left edge .. 1 right)."""
    sx = np.clip(sx, -1, 1)
    nz = np.sqrt(1 - sx**2)
    lam = np.clip(sx * _LIGHT[0] + nz * _LIGHT[2], 0, 1)
    spec = np.clip(sx * _HALF[0] + nz * _HALF[2], 0, 1) ** power
    return lam, spec


def _along(sp: _Sprite, p0: Any, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """(t, s): each pixel's coordinates along the direction ``angle_deg`` (0 = +x, 90 = +y,
    image axes) from ``p0`` and across it."""
    a = math.radians(angle_deg)
    c, n = np.float32(math.cos(a)), np.float32(math.sin(a))
    du, dv = sp.u - np.float32(p0[0]), sp.v - np.float32(p0[1])
    return du * c + dv * n, dv * c - du * n


def _skin_from(rng: np.random.Generator) -> Any:
    """The colour function of a skin tone drawn from ``rng`` (one of the hand's tones)."""
    tones = list(_SKIN.values())
    skin = _rgb(tones[int(rng.integers(len(tones)))]) * (1 + rng.uniform(-0.04, 0.04, 3)).astype(np.float32)
    return _skin_colour(skin)


_ROLLS = (9.8, 9.6, 9.0, 8.0)  # heights of the curled index, middle, ring and little finger
_FIST_W = 29.0  # width of a fist, units


def _fist_back(sp: _Sprite, colour: Any, x: float, y: float, thumb: float, arm: float = 40.0) -> None:
    """The part of a fist behind what it holds: the heel of the hand under the curled fingers
    whose top is at unit (x, y), and the forearm going down ``arm`` units."""
    hw = _FIST_W / 2
    heel = np.array([(-hw - 0.5, 2.0), (hw + 1.5, 1.0), (hw + 3.5, 19.0), (hw + 0.5, 35.0), (-hw + 2.0, 37.0),
                     (-hw - 2.0, 19.0)]) * (thumb, 1.0) + (x, y)
    fore = np.array([(-hw + 2.5, 27.0), (hw - 1.5, 27.0), (hw + 0.5, 35.0 + arm), (-hw + 3.5, 35.0 + arm)]) * (thumb, 1.0) + (x, y)
    win = sp.window(x - hw - 5, x + hw + 5, y, y + 36 + arm)
    m = win.poly(heel, fore)
    shade = 0.72 + 0.3 * np.sqrt(np.clip(1 - ((win.u - x) / (hw + 5)) ** 2, 0, 1)) - 0.1 * _smooth(y + 24, y + 60, win.v)
    win.paint(m, colour(shade))


def _fist_front(sp: _Sprite, colour: Any, x: float, y: float, thumb: float) -> None:
    """The curled fingers of a fist (index on top at unit y) and the thumb over the index,
    its tip towards ``thumb`` (-1 image left, 1 right) — in front of what the fist holds."""
    hw = _FIST_W / 2
    cy = y
    for i, h in enumerate(_ROLLS):
        cy += h / 2
        a = np.array((x - thumb * (hw - h / 2), cy))
        b = np.array((x + thumb * (hw - h / 2 - 1.2 * i), cy + 0.4 * i))
        _finger(sp, a, b, h, colour, nail=False, fade_base=False, knuckles=True)
        cy += h / 2 - 1.0
    _finger(sp, np.array((x + thumb * (hw + 2.0), y + 17.0)), np.array((x + thumb * 1.5, y + 1.5)), 11.0, colour,
            nail=True, fade_base=True, knuckles=False)


def _grip_fingers(sp: _Sprite, colour: Any, x: float, y0: float, side: float, n: int = 3, length: float = 9.0,
                  gap: float = 7.6) -> None:
    """``n`` fingers curled round a vertical edge at unit x from behind, lying on the front
    and pointing inwards (``side``: -1 the left edge, 1 the right), the top one at y0."""
    for i in range(n):
        yy = y0 + i * gap + 0.6 * i * i
        w = 7.6 - 0.5 * i
        base = np.array((x + side * 3.0, yy + 1.5))
        tip = np.array((x - side * (length - 0.8 * i), yy))
        _finger(sp, base, tip, w, colour, nail=True, fade_base=False, knuckles=False)


def _text_lines(sp: _Sprite, rng: np.random.Generator, x0: float, x1: float, y0: float, rows: int, gap: float,
                height: float) -> np.ndarray:
    """Coverage of rows of 'words' (short rounded bars) from x0 to about x1: printed text
    too small to read."""
    m = np.zeros((sp.h, sp.w), np.float32)
    for r in range(rows):
        x, y = x0, y0 + r * gap
        end = x1 - (float(rng.uniform(0, 0.4)) * (x1 - x0) if r == rows - 1 and rows > 1 else 0.0)
        while x < end - 1.0:
            w = min(float(rng.uniform(2.5, 8.0)) * height / 1.2, end - x)
            m = np.maximum(m, sp.lines(np.array([(x + height / 2, y), (x + w - height / 2, y)]), width=height))
            x += w + 0.9 * height
    return m


# ---------------------------------------------------------------------------------- glove

_GLOVES = {
    # colour, material (knit, leather, cotton, rubber), cuff colour (None: the glove's)
    "black_leather": ((34, 32, 32), "leather", None),
    "brown_leather": ((112, 66, 36), "leather", None),
    "red_knit": ((168, 32, 40), "knit", (236, 228, 214)),
    "gray_knit": ((120, 122, 128), "knit", None),
    "white_cotton": ((236, 236, 232), "cotton", None),
    "blue_nitrile": ((70, 126, 206), "rubber", None),
    "yellow_rubber": ((238, 200, 40), "rubber", None),
    "navy_knit": ((36, 48, 92), "knit", (200, 40, 48)),
}


class Glove(Hand):
    """A gloved hand over the mouth or one eye, leather, knit, cotton or rubber (landmark-placed).

    Posed as ``hand`` (option ``target``); cuff, stitching and the material's texture drawn."""

    name = "glove"
    styles = tuple(_GLOVES)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        rgb, material, cuff_rgb = _GLOVES[self.styles[variant]]
        base = _rgb(rgb) * (1 + rng.uniform(-0.06, 0.06, 3)).astype(np.float32)
        spread = float(rng.uniform(0.4, 1.3))
        lengths = 1 + rng.uniform(-0.05, 0.05, 4)
        flip = -1.0 if extra["hand"] == "left" else 1.0
        sheen = {"leather": (70.0, 10.0), "rubber": (110.0, 14.0), "knit": (0.0, 1.0), "cotton": (10.0, 3.0)}[material]

        def colour(shade: np.ndarray) -> np.ndarray:
            s = shade[..., None]
            hl = sheen[0] * np.clip(shade - 0.8, 0, None)[..., None] ** 1.5 * np.float32(sheen[1] / 10.0)
            return base * s * (0.92 if material == "knit" else 1.0) + hl

        _draw_hand(sp, colour, flip, spread, lengths, nails=False, thick=1.1)
        glove = sp.a.copy()
        # Texture of the material on the whole glove.
        if material == "knit":
            rib = 0.5 + 0.5 * np.cos(2 * np.pi * (sp.u + 0.6 * sp.v) / 1.9)
            row = 0.5 + 0.5 * np.cos(2 * np.pi * (sp.v - 0.6 * np.abs(((sp.u / 1.9) % 1.0) - 0.5)) / 1.7)
            tex = 0.84 + 0.1 * rib + 0.08 * row + 0.04 * sp.noise(rng, 0.9)
        elif material == "leather":
            tex = 1.0 + 0.05 * sp.noise(rng, 0.5) + 0.03 * sp.noise(rng, 2.5)
        elif material == "cotton":
            tex = 1.0 + 0.03 * sp.noise(rng, 0.6)
        else:
            tex = 1.0 + 0.015 * sp.noise(rng, 3.0)
        sp.shade(tex.astype(np.float32))
        # Stitching on the back of the hand (leather and cotton): three rows of points.
        if material in ("leather", "cotton"):
            rows = [np.array([(flip * x, -6.0), (flip * x * 1.1, 12.0)]) for x in (-8.0, 0.0, 8.0)]
            ridge = sp.lines(*rows, width=0.8) * glove
            stitch = sp.lines(*[r + (0.7, 0.0) for r in rows], width=0.35) * glove
            sp.shade((1 - 0.3 * ridge + 0.25 * stitch).astype(np.float32))
        # Cuff round the wrist: ribbed knit band, a rolled rubber rim or a seam and a snap.
        cuff_col = _rgb(cuff_rgb) if cuff_rgb is not None else base
        lam, spec = _tube(sp.u / 19.0)
        if material == "knit":
            cuff = sp.poly(np.array([(-18.5, 29.0), (18.5, 29.0), (19.5, 48.0), (-19.5, 48.0)]) * (flip, 1))
            ribs = 0.78 + 0.22 * (0.5 + 0.5 * np.cos(2 * np.pi * sp.u / 2.2))
            sp.paint(cuff, cuff_col * ((0.55 + 0.55 * lam) * ribs)[..., None])
        elif material == "rubber":
            rim = sp.poly(np.array([(-18.0, 50.0), (18.5, 50.0), (19.0, 54.5), (-18.5, 54.5)]) * (flip, 1))
            sp.paint(rim, cuff_col * (0.55 + 0.6 * lam)[..., None] + (sheen[0] * spec)[..., None])
        else:
            seam = sp.lines(np.array([(-17.0, 33.0), (17.0, 33.0)]), width=0.8) * glove
            sp.shade((1 - 0.35 * seam).astype(np.float32))
            snap = sp.ellipse((flip * -9.0, 37.0), (2.0, 2.0))
            sp.paint(snap * glove, _rgb((176, 168, 150)) * (0.6 + 0.5 * lam)[..., None] + 60 * spec[..., None])
        sp.soften(0.3)
        _settle(sp)
        sp.drop_shadow(1.5, 2.5, 2.0, 0.3)


# ------------------------------------------------------------------------------ cigarette

_CIGARETTES = {
    # paper, filter (None: none), filter length, radius, band colour (None: none)
    "classic": ((244, 242, 236), (208, 146, 80), 12.0, 2.2, None),
    "white_filter": ((246, 246, 242), (234, 232, 224), 11.0, 2.2, None),
    "slim": ((248, 248, 244), (240, 238, 232), 12.0, 1.5, (196, 164, 84)),
    "menthol": ((246, 246, 242), (230, 232, 222), 11.0, 2.2, (52, 146, 88)),
    "cigarillo": ((116, 74, 44), (44, 34, 28), 5.0, 2.5, None),
    "hand_rolled": ((236, 228, 210), None, 0.0, 1.9, None),
}


class Cigarette(ObjectOccluder):
    """A lit cigarette in one corner of the mouth, drooping outwards (landmark-placed).

    Filter, paper, ash, ember and a wisp of smoke drawn; record field ``side``: which corner."""

    name = "cigarette"
    styles = tuple(_CIGARETTES)
    render_keys = ("side",)
    shift_jitter = 1.5  # the filter stays between the lips

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        side, name = _pick_side(rng)
        droop = float(rng.uniform(4, 26))
        corner = _T[3] if side < 0 else _T[4]
        return (float(corner[0]) - side * 2.0, float(corner[1]) + 0.5), -side * droop, {"side": name}

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-46.0, 46.0, -34.0, 5.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        paper, filt, flen, r, band = _CIGARETTES[self.styles[variant]]
        d = _side_sign(extra)
        length = float(rng.uniform(26, 40)) * (1.1 if self.styles[variant] == "slim" else 1.0)
        ash = float(rng.uniform(1.0, 4.0))
        x = sp.u * np.float32(d)  # distance along the cigarette from the lips, either side
        body = np.clip((r - np.abs(sp.v)) * sp.k + 0.5, 0, 1) * _smooth(-2.5, 0.0, x) * np.clip((length - x) * sp.k + 0.5, 0, 1)
        sy = np.clip(sp.v / r, -1, 1)
        nz = np.sqrt(1 - sy**2)
        lam = np.clip(sy * _LIGHT[1] + nz * _LIGHT[2], 0, 1)
        spec = np.clip(sy * _HALF[1] + nz * _HALF[2], 0, 1) ** 20
        col = np.broadcast_to(_rgb(paper), (sp.h, sp.w, 3)).copy()
        if filt is not None:
            fm = _smooth(flen + 0.15, flen - 0.15, x)[..., None]
            fcol = _rgb(filt)
            if self.styles[variant] == "classic":  # cork-printed tipping paper
                n = sp.noise(rng, 0.55)
                fcol = fcol * (1 + 0.12 * np.clip(n, -1.5, 1.5))[..., None] * (1 - 0.18 * (n > 1.0))[..., None]
            col = col + fm * (fcol - col)
            gold = np.exp(-(((x - flen) / 0.35) ** 2))[..., None] * (self.styles[variant] == "classic")
            col = col + gold * (_rgb((214, 180, 90)) - col)
        if band is not None:
            b = np.exp(-(((x - flen - 2.0) / 0.45) ** 2))[..., None]
            col = col + b * (_rgb(band) - col)
        if self.styles[variant] == "hand_rolled":  # uneven paper, a glued seam
            col = col * (1 + 0.04 * sp.noise(rng, 1.2))[..., None]
            col = col * (1 - 0.12 * np.exp(-(((sp.v - 0.35 * r) / 0.25) ** 2)))[..., None]
        # The burning end: charred paper, grey ash, a glowing rim.
        burn = length - ash
        char = _smooth(burn - 1.6, burn - 0.2, x)[..., None]
        col = col + char * (_rgb((70, 56, 46)) - col)
        ash_m = _smooth(burn - 0.1, burn + 0.3, x)[..., None]
        ash_col = _rgb((150, 146, 140)) * (1 + 0.18 * sp.noise(rng, 0.35))[..., None]
        col = col + ash_m * (ash_col - col)
        glow = np.exp(-(((x - burn) / 0.55) ** 2))
        col = col * (0.35 + 0.75 * lam)[..., None] + (90 * spec * (1 - ash_m[..., 0]))[..., None]
        col = col + (glow * (0.6 + 0.4 * nz))[..., None] * (_rgb((255, 120, 30)) - col) * 0.9
        sp.paint(body, col)
        # The lips close on the filter: a soft shadow at the mouth.
        sp.paint((body * np.exp(-((x / 0.9) ** 2)) * 0.45).astype(np.float32), _rgb((60, 30, 30)))
        # Smoke rising from the tip (drawn upright: the sprite is drooped, the smoke curls).
        tip = d * length
        t = np.linspace(0.0, 1.0, 40)
        phase = float(rng.uniform(0, 2 * np.pi))
        sway = float(rng.uniform(2.0, 4.5))
        for k, (width, alpha, off) in enumerate(((2.6, 0.16, 0.0), (1.0, 0.26, 1.2))):
            xs = tip + d * 3.0 * t + sway * np.sin(2 * np.pi * 1.3 * t + phase + k) * t
            ys = -r - 28.0 * t
            wisp = sp.window(min(xs.min(), tip) - 4, max(xs.max(), tip) + 4, -r - 30.0, 0.0)
            m = wisp.blur(wisp.lines(np.stack([xs + off, ys], 1), width=width), 0.8)
            fade = np.clip(1 - (wisp.v + r) / -28.0, 0, 1) * _smooth(-r + 0.5, -r - 3.0, wisp.v)
            wisp.paint((m * fade * alpha).astype(np.float32), _rgb((226, 228, 232)))
        _settle(sp)
        sp.drop_shadow(0.4, 1.6, 0.9, 0.3)


# ------------------------------------------------------------------------------------ pen

_PENS = {
    # kind, barrel colour, trim colour, ink colour
    "click_black": ("click", (30, 30, 34), (198, 198, 204), (20, 20, 60)),
    "click_blue": ("click", (30, 70, 170), (210, 210, 214), (30, 50, 170)),
    "stick_clear": ("stick", (214, 222, 228), (30, 60, 170), (30, 50, 170)),
    "stick_red": ("stick", (226, 228, 230), (190, 30, 36), (190, 30, 36)),
    "metal": ("click", (176, 178, 184), (228, 228, 232), (20, 20, 60)),
    "pencil": ("pencil", (242, 190, 30), (232, 140, 150), (60, 60, 64)),
}


class Pen(ObjectOccluder):
    """A pen or pencil held in a fist at the lips, or bitten across the mouth (landmark-placed).

    Clip, grip and tip, chrome trim or eraser and ferrule drawn; record fields ``pose``
    (``hand``, ``bite``) and ``side``."""

    name = "pen"
    depth = 0.5  # at the lips
    mount = "held"  # in a fist before the mouth
    styles = tuple(_PENS)
    render_keys = ("side", "pose")
    cache_size = 96  # every (style, look, side, pose) sprite
    FIST = 19.0  # distance of the fist's top from the pen's end
    BITE = -31.0  # where the pen starts when bitten (its middle at the mouth)

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        side, name = _pick_side(rng)
        pose = ("hand", "bite")[int(rng.integers(2))]
        if pose == "bite":  # across the mouth, held in the teeth
            return (float(_MOUTH[0]), float(_MOUTH[1]) + 0.5), 90.0 + side * float(rng.uniform(0, 12)), \
                {"side": name, "pose": pose}
        lean = float(rng.uniform(48, 72))
        return (float(_MOUTH[0]) + side * 4.0, float(_MOUTH[1]) + 1.0), side * lean, {"side": name, "pose": pose}

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-20.0, 20.0, -3.0, 80.0) if extra["pose"] == "hand" else (-5.0, 5.0, self.BITE - 3.0, 40.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        kind, barrel, trim, ink = _PENS[self.styles[variant]]
        skin = _skin_from(rng)
        thumb = -_side_sign(extra)
        length = float(rng.uniform(58, 66))
        r = 2.6 if kind != "pencil" else 2.9
        held = extra["pose"] == "hand"
        y0 = 0.0 if held else self.BITE
        if held:
            _fist_back(sp, skin, 0.0, self.FIST, thumb)
        lam, spec = _tube(sp.u / r)
        v = sp.v - np.float32(y0)
        body = np.clip((r - np.abs(sp.u)) * sp.k + 0.5, 0, 1) * np.clip(v * sp.k + 0.5, 0, 1)
        taper = length - 9.0  # where the cone to the tip starts
        body = body * np.clip((taper - v) * sp.k + 0.5, 0, 1)
        col = np.broadcast_to(_rgb(barrel), (sp.h, sp.w, 3)).copy()
        shine, power = 120.0, 1.0
        if kind == "pencil":  # six facets, eraser and ferrule
            facet = np.floor((np.clip(sp.u / r, -1, 0.999) + 1) * 1.5)
            col = col * (0.82 + 0.12 * facet)[..., None]
            ferrule = (v > 5.0) & (v < 10.5)
            ridges = 0.8 + 0.2 * np.cos(2 * np.pi * v / 1.1)
            col = np.where(ferrule[..., None], _rgb((196, 196, 190)) * ridges[..., None], col)
            col = np.where((v <= 5.0)[..., None], _rgb(trim) * np.ones_like(col), col)
            shine = 60.0
        elif kind == "stick":  # translucent hexagonal barrel, ink tube inside, coloured end plug
            tube = np.exp(-((sp.u / 0.7) ** 2))[..., None]
            col = col + tube * (_rgb(ink) * 0.9 - col) * 0.8
            edge = np.abs(np.abs(sp.u) - 0.55 * r) < 0.3
            col = col * np.where(edge, 0.85, 1.0)[..., None]
            col = np.where((v <= 4.0)[..., None], _rgb(trim) * np.ones_like(col), col)
        else:  # click pen: chrome button, trim ring, rubber grip
            col = np.where((v <= 3.5)[..., None], _rgb(trim) * np.ones_like(col), col)
            ring = np.exp(-(((v - 4.0) / 0.5) ** 2))[..., None]
            col = col + ring * (_rgb(trim) - col)
            grip = (v > taper - 14.0)[..., None]
            dots = (0.85 + 0.15 * np.cos(2 * np.pi * v / 1.2))[..., None]
            col = np.where(grip, _rgb((40, 40, 44)) * dots, col)
            power = 1.4
        col = col * (0.32 + 0.8 * lam)[..., None] + (shine * spec ** power)[..., None]
        sp.paint(body, col)
        # The cone and the tip (sharpened wood and lead for the pencil).
        half = r * np.clip((length - v) / 9.0, 0, 1)
        cone = np.clip((half - np.abs(sp.u)) * sp.k + 0.5, 0, 1) * (v >= taper - 0.5) * (v < length)
        cone_rgb = (226, 190, 144) if kind == "pencil" else ((196, 198, 204) if kind == "click" else barrel)
        ccol = _rgb(cone_rgb) * (0.35 + 0.8 * lam)[..., None] + (90 * spec)[..., None]
        tip_m = (v > length - 2.5)[..., None]
        ccol = np.where(tip_m, _rgb((70, 70, 74) if kind == "pencil" else (150, 150, 156)) * (0.5 + 0.6 * lam)[..., None], ccol)
        sp.paint(cone.astype(np.float32), ccol)
        # The pocket clip on the front, near the end.
        if kind != "pencil":
            clip = sp.poly(np.array([(-0.9, 4.5), (0.9, 4.5), (0.8, 21.0), (0.0, 22.5), (-0.8, 21.0)]) + (0.6, y0))
            cl = np.clip(1 - ((sp.u - 0.6) / 1.0) ** 2, 0, 1)
            sp.paint(clip, _rgb(trim) * (0.55 + 0.5 * cl)[..., None] + (70 * cl**8)[..., None])
        if held:
            _fist_front(sp, skin, 0.0, self.FIST, thumb)
        _settle(sp)
        sp.drop_shadow(1.0, 2.0, 1.5, 0.3)


# ----------------------------------------------------------------------------------- keys

_KEYS = {
    # metals of the keys (one per key, cycled), head cap colours (None: bare metal), fob
    "brass": (((200, 164, 84),), (None,), None),
    "nickel": (((192, 194, 198),), (None,), None),
    "mixed": (((200, 164, 84), (192, 194, 198)), (None, (196, 40, 40), None, (40, 90, 190)), None),
    "coloured_caps": (((192, 194, 198),), ((40, 90, 190), (60, 160, 80), (196, 40, 40), (236, 190, 40)), None),
    "car_key": (((192, 194, 198),), (None,), "remote"),
    "tag": (((200, 164, 84), (192, 194, 198)), (None,), "tag"),
}


class Keys(ObjectOccluder):
    """A bunch of keys on a ring held up in a fist in front of the mouth (landmark-placed).

    Bows, blades with cut teeth and grooves, coloured heads, a car remote or a tag drawn."""

    name = "keys"
    depth = 1.0  # held up
    mount = "held"
    styles = tuple(_KEYS)
    render_keys = ("side",)
    FIST = 12.0  # the fist's top below the mouth

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        side, name = _pick_side(rng)
        tilt = side * float(rng.uniform(0, 18))
        return (float(_MOUTH[0]) + side * 4.0, float(_MOUTH[1]) + 1.0), tilt, {"side": name}

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-38.0, 38.0, -36.0, 64.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        metals, caps, fob = _KEYS[self.styles[variant]]
        skin = _skin_from(rng)
        thumb = -_side_sign(extra)
        fy = self.FIST
        ring_c, ring_r = np.array((-thumb * 3.0, fy - 1.0)), 6.0
        _fist_back(sp, skin, 0.0, fy, thumb)
        if fob == "tag":  # a leather tag hanging off the ring, out past the fist's side
            tag = sp.poly(np.array([(-3.5, 0.0), (3.5, 0.0), (5.5, 16.0), (0.0, 19.0), (-5.5, 16.0)]) @
                          np.array([[0.6, 0.8], [-0.8, 0.6]]).T * (thumb, 1.0) + ring_c + (-thumb * 4.0, 2.0))
            sp.paint(tag, _rgb((120, 64, 34)) * (1 + 0.08 * sp.noise(rng, 0.6))[..., None])
        n = int(rng.integers(3, 5))
        angles = np.sort(rng.uniform(-48, 48, n))
        angles = angles + np.arange(n) * 4.0 - (n - 1) * 2.0  # keep them apart
        if fob == "remote":  # a car remote standing up on the ring
            self._remote(sp, ring_c, float(rng.uniform(-40, -20)) * thumb)
            angles = angles[angles * thumb > -5][:2]
        for i, ang in enumerate(angles):
            metal = _rgb(metals[i % len(metals)])
            cap = caps[i % len(caps)]
            self._key(sp, rng, ring_c, ring_r, float(ang), metal, cap, ("round", "square", "house")[i % 3])
        ring = sp.ellipse(tuple(ring_c), (ring_r, ring_r), width=1.2)
        t, _ = _along(sp, ring_c, -135.0)
        sp.paint(ring, _rgb((196, 198, 204)) * (0.6 + 0.45 * _smooth(-ring_r, ring_r, t))[..., None])
        _fist_front(sp, skin, 0.0, fy, thumb)
        _settle(sp)
        sp.drop_shadow(0.8, 1.8, 1.2, 0.3)

    @staticmethod
    def _remote(sp: _Sprite, ring_c: np.ndarray, angle: float) -> None:
        """A car remote on the ring: black plastic, two rubber buttons with symbols."""
        a = math.radians(angle)
        up = np.array((math.sin(a), -math.cos(a)))
        c = ring_c + up * 16.0
        t, s = _along(sp, c, angle - 90.0)
        qx, qy = np.abs(s) - 4.5, np.abs(t) - 7.5
        sdf = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2) + np.minimum(np.maximum(qx, qy), 0) - 3.5
        lam, spec = _tube(s / 8.0, 16.0)
        sp.paint(_inside(sp, sdf), _rgb((30, 30, 32)) * (0.55 + 0.6 * lam)[..., None] + (80 * spec)[..., None])
        for j, off in enumerate((4.0, -3.0)):
            bc = c + up * off
            btn = _inside(sp, np.sqrt((sp.u - np.float32(bc[0])) ** 2 + (sp.v - np.float32(bc[1])) ** 2) - 2.8)
            sp.paint(btn, _rgb((70, 70, 76)) * (0.7 + 0.4 * lam)[..., None])
            bt, bs = _along(sp, bc, angle - 90.0)
            glyph = np.exp(-((bs / 0.35) ** 2)) * (np.abs(bt) < 1.3) if j else \
                np.clip(1 - np.abs(np.abs(bs) + bt * 0.8 - 0.6) / 0.35, 0, 1) * (np.abs(bt) < 1.1)
            sp.paint((glyph * btn * 0.9).astype(np.float32), _rgb((214, 214, 218)))
        sp.paint(_inside(sp, np.sqrt((sp.u - np.float32(c[0] + up[0] * -9.0)) ** 2
                                     + (sp.v - np.float32(c[1] + up[1] * -9.0)) ** 2) - 1.6), _rgb((200, 200, 206)))

    @staticmethod
    def _key(sp: _Sprite, rng: np.random.Generator, ring_c: np.ndarray, ring_r: float, angle: float,
             metal: np.ndarray, cap: Any, bow: str) -> None:
        """One key hung on the ring by its bow, pointing away from the ring's centre at
        ``angle``° from straight up: bow with a hole, shoulder, toothed and grooved blade."""
        length = float(rng.uniform(17, 22))
        half = 2.2
        cuts = rng.uniform(0.3, 1.2, 6)
        br = 4.6 if cap is None else 5.4  # bow radius
        # Key-local points: x across (teeth on the -x edge), y up from the hole.
        y0 = 2 * br - 1.0  # the shoulder
        tooth_y = np.linspace(y0 + 2.5, y0 + length - 4.0, 11)
        teeth = [(-half + (cuts[j // 2] if j % 2 == 0 else 0.0), y) for j, y in enumerate(tooth_y)]
        blade = [(-half - 1.2, y0 - 0.5), (half + 1.2, y0 - 0.5), (half + 1.2, y0 + 1.2), (half, y0 + 1.8),
                 (half, y0 + length - 2.5), (0.0, y0 + length), *reversed(teeth), (-half, y0 + 1.8), (-half - 1.2, y0 + 1.2)]
        a = math.radians(angle)
        rot = np.array([[math.cos(a), math.sin(a)], [math.sin(a), -math.cos(a)]])  # local y → away from the ring
        hole = ring_c + rot @ np.array((0.0, ring_r - 0.6))

        def place(pts: Any) -> np.ndarray:
            return np.asarray(pts, np.float64) @ rot.T + hole

        t, s = _along(sp, hole, angle - 90.0)  # t: along the key, outwards; s: across it
        edge_lit = _smooth(-half, half, s)
        shade = 0.6 + 0.32 * edge_lit + 0.1 * np.cos(2 * np.pi * t / 11.0)
        groove = np.exp(-(((s + 0.3) / 0.35) ** 2)) * (t > y0 + 2.0) * (t < y0 + length - 4.0)
        col = metal * (shade * (1 - 0.35 * groove))[..., None] + (45 * np.exp(-(((s - half + 0.4) / 0.4) ** 2)))[..., None]
        sp.paint(sp.poly(place(blade)), col)
        cb = place([(0.0, br - 0.6)])[0]
        if bow == "round":
            head = _inside(sp, np.sqrt((sp.u - np.float32(cb[0])) ** 2 + (sp.v - np.float32(cb[1])) ** 2) - br)
        else:
            pts = [(-br, -br + 0.6), (br, -br + 0.6), (br, br * 0.9), (0.0, br + 1.6), (-br, br * 0.9)] if bow == "house" else \
                [(-br, -br + 0.6), (br, -br + 0.6), (br, br), (-br, br)]
            head = sp.poly(place(np.asarray(pts) + (0.0, br - 0.6)))
        hole_m = sp.ellipse(tuple(hole), (1.3, 1.3))
        head = np.clip(head - hole_m, 0, 1)
        hcol = (_rgb(cap) if cap is not None else metal) * (0.62 + 0.4 * _smooth(-br, br, s))[..., None]
        if cap is None:  # stamped rim
            rim = np.exp(-(((np.sqrt((sp.u - np.float32(cb[0])) ** 2 + (sp.v - np.float32(cb[1])) ** 2) - br + 1.0) / 0.4) ** 2))
            hcol = hcol * (1 - 0.2 * rim)[..., None]
        sp.paint(head.astype(np.float32), hcol)


# ---------------------------------------------------------------------------------- phone

_PHONES = {
    # back colour, frame colour, gloss (0 matte case .. 1 glass), camera layout
    "black_glass": ((28, 28, 32), (60, 60, 66), 1.0, "square"),
    "white_glass": ((232, 232, 228), (200, 200, 204), 1.0, "square"),
    "silver": ((206, 206, 210), (176, 176, 182), 0.7, "column"),
    "blue_case": ((44, 88, 170), (40, 80, 156), 0.2, "square"),
    "pink_case": ((232, 150, 170), (222, 140, 160), 0.2, "column"),
    "green_glass": ((70, 110, 92), (120, 140, 128), 1.0, "column"),
}


class Phone(ObjectOccluder):
    """A smartphone held to one ear, its back to the camera beside the cheek (landmark-placed).

    Camera bump, lenses, flash and the fingers round it drawn; record field ``side``."""

    name = "phone"
    mount = "wrap"  # against the ear: round the side of the head
    styles = tuple(_PHONES)
    render_keys = ("side",)
    HW, HH = 13.0, 38.0  # half width (foreshortened) and half height, units

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        side, name = _pick_side(rng)
        lean = float(rng.uniform(12, 32))
        eye = _T[0] if side < 0 else _T[1]
        return (float(eye[0]) + side * 21.0, float(eye[1]) + 24.0), -side * lean, {"side": name}

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-26.0, 26.0, -41.0, 70.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        back, frame, gloss, camera = _PHONES[self.styles[variant]]
        d = _side_sign(extra)  # the face lies towards -d
        skin = _skin_from(rng)
        hw, hh = self.HW, self.HH
        # The palm behind the phone and the wrist going down and out.
        palm = sp.poly(np.array([(-hw - 2.0, 6.0), (hw + 3.0, 4.0), (hw + 6.0, 30.0), (hw + 8.0, 68.0), (-hw + 4.0, 68.0),
                                 (-hw - 1.0, 28.0)]) * (d, 1.0))
        pshade = 0.7 + 0.3 * np.sqrt(np.clip(1 - (sp.u / (hw + 8)) ** 2, 0, 1)) - 0.12 * _smooth(30, 60, sp.v)
        sp.paint(palm, skin(pshade))
        # The frame seen on the side towards the face, then the back.
        edge = _inside(sp, _rrect_sdf(sp, -d * 1.6, 0.0, hw + 0.2, hh, 5.0))
        lam, spec = _tube(sp.u / (hw + 2.0), 30.0)
        sp.paint(edge, _rgb(frame) * (0.5 + 0.6 * lam)[..., None] + (120 * spec)[..., None])
        sdf = _rrect_sdf(sp, 0.0, 0.0, hw, hh, 5.0)
        m = _inside(sp, sdf)
        base = _rgb(back) * (1 + 0.06 * rng.uniform(-1, 1))
        shade = 0.78 + 0.25 * lam + 0.1 * _smooth(hh, -hh, sp.v) * 0.5
        col = base * shade[..., None]
        if gloss > 0.5:  # glass: a broad diagonal reflection
            refl = np.exp(-(((sp.u + 0.45 * sp.v + float(rng.uniform(-6, 6))) / 5.0) ** 2))
            col = col + (gloss * 55 * refl)[..., None]
        else:  # a matte case with a raised lip
            col = col * (1 + 0.03 * sp.noise(rng, 0.5))[..., None]
            lip = _inside(sp, -(sdf + 1.2)) * _inside(sp, sdf)
            col = col * (1 + 0.12 * lip)[..., None]
        col = col + (40 * np.exp(-((sdf + 0.4) / 0.35) ** 2) * (sp.u * d > 0))[..., None]  # lit rim
        sp.paint(m, col)
        # Camera: a raised module at the top, on the side away from the face.
        cx, cy = d * (hw - 6.5), -hh + 7.0
        mod = _rrect_sdf(sp, cx, cy + (3.0 if camera == "column" else 2.0), 5.0, 6.5 if camera == "square" else 9.0, 2.8)
        mm = _inside(sp, mod)
        sp.paint(mm, _rgb(back) * 0.85 + 14 + (30 * np.exp(-((mod + 0.3) / 0.3) ** 2))[..., None])
        lenses = ((cx - 2.2, cy - 1.5), (cx + 2.2, cy - 1.5), (cx - 2.2, cy + 3.4)) if camera == "square" else \
            ((cx, cy - 3.0), (cx, cy + 2.5), (cx, cy + 8.0))
        for lx, ly in lenses:
            ring = sp.ellipse((lx, ly), (2.0, 2.0))
            sp.paint(ring, _rgb((70, 70, 76)))
            glass = sp.ellipse((lx, ly), (1.4, 1.4))
            g = np.exp(-(((sp.u - lx + 0.5) ** 2 + (sp.v - ly + 0.5) ** 2) / 0.3))
            sp.paint(glass, _rgb((14, 16, 26)) + (150 * g)[..., None] * np.array([0.7, 0.8, 1.0], np.float32))
        flash = (cx + 2.2, cy + 3.4) if camera == "square" else (cx - d * 3.5, cy - 3.0)
        sp.paint(sp.ellipse(flash, (0.9, 0.9)), _rgb((250, 236, 190)))
        # A small round emblem in the middle of the back.
        emb = sp.ellipse((0.0, -4.0), (3.0, 3.0), width=0.6)
        sp.paint(emb * 0.5, _rgb(back) * (0.7 if back[0] > 128 else 1.6) + (0 if back[0] > 128 else 20))
        # Fingers across the back from the outer edge, the thumb hidden in front.
        for i in range(4):
            y = 8.0 + i * 7.2
            w = 7.4 - 0.4 * i
            base_p = np.array((d * (hw + 4.0), y + 2.5))
            tip = np.array((-d * (hw - 3.0 - 1.5 * i - float(rng.uniform(0, 3))), y))
            _finger(sp, base_p, tip, w, skin, nail=True, fade_base=False, knuckles=True)
        _settle(sp)
        sp.drop_shadow(-d * 1.5, 2.0, 1.8, 0.35)


def _noise2(sp: _Sprite, rng: np.random.Generator, cell_x: float, cell_y: float) -> np.ndarray:
    """Smooth noise (h, w), roughly N(0, 1), stretched: ``cell_x`` by ``cell_y`` units per sample."""
    gw = max(2, int(sp.w / max(1e-3, cell_x * sp.k)) + 2)
    gh = max(2, int(sp.h / max(1e-3, cell_y * sp.k)) + 2)
    g = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(g, (sp.w, sp.h), interpolation=cv2.INTER_CUBIC)


def _sphere(sp: _Sprite, cx: float, cy: float, rx: float, ry: float, power: float = 30.0
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lambert, specular and view-facing (nz) terms of an ellipsoid seen from the front."""
    nx, ny = (sp.u - np.float32(cx)) / np.float32(rx), (sp.v - np.float32(cy)) / np.float32(ry)
    nz = np.sqrt(np.clip(1 - nx**2 - ny**2, 0, 1))
    lam = np.clip(nx * _LIGHT[0] + ny * _LIGHT[1] + nz * _LIGHT[2], 0, 1)
    spec = np.clip(nx * _HALF[0] + ny * _HALF[1] + nz * _HALF[2], 0, 1) ** power
    return lam, spec, nz


def _disc(sp: _Sprite, cx: float, cy: float, r: float) -> np.ndarray:
    return _inside(sp, np.sqrt((sp.u - np.float32(cx)) ** 2 + (sp.v - np.float32(cy)) ** 2) - np.float32(r))


# ---------------------------------------------------------------------------------- candy

_CANDIES = {
    # kind, colours
    "swirl_rainbow": ("swirl", ((226, 38, 56), (250, 196, 40), (60, 168, 80), (40, 110, 210), (156, 60, 178))),
    "swirl_red": ("swirl", ((216, 28, 40), (250, 244, 238))),
    "round_red": ("round", ((196, 18, 40),)),
    "round_green": ("round", ((96, 186, 56),)),
    "candy_cane": ("cane", ((208, 24, 36), (250, 248, 244))),
    "wrapped_gold": ("wrapped", ((212, 168, 58), (150, 104, 24))),
    "wrapped_striped": ("wrapped", ((228, 56, 120), (250, 240, 246))),
}


class Candy(ObjectOccluder):
    """A sweet held in a fist at the mouth: lollipop, candy cane or wrapped sweet (landmark-placed).

    Swirl or glossy round lollipops on a paper stick, a striped cane, a foil or cellophane
    sweet with twisted ends."""

    name = "candy"
    depth = 1.0  # held at the mouth
    mount = "held"
    styles = tuple(_CANDIES)
    render_keys = ("side",)

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        side, name = _pick_side(rng)
        tilt = side * float(rng.uniform(0, 20))
        return (float(_MOUTH[0]) + side * 3.0, float(_MOUTH[1]) + 1.0), tilt, {"side": name}

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-26.0, 26.0, -22.0, 62.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        kind, colours = _CANDIES[self.styles[variant]]
        skin = _skin_from(rng)
        thumb = -_side_sign(extra)
        pal = [_rgb(c) for c in colours]
        fy = 9.0 if kind == "wrapped" else 16.0
        _fist_back(sp, skin, 0.0, fy, thumb)
        if kind in ("swirl", "round"):  # the paper stick into the fist
            lam, spec = _tube(sp.u / 1.3)
            stick = np.clip((1.3 - np.abs(sp.u)) * sp.k + 0.5, 0, 1) * (sp.v > 0) * (sp.v < fy + 14)
            sp.paint(stick.astype(np.float32), _rgb((244, 242, 234)) * (0.5 + 0.55 * lam)[..., None])
        if kind == "swirl":
            R = float(rng.uniform(10.0, 13.0))
            cy = -1.0
            dx, dy = sp.u, sp.v - np.float32(cy)
            rr = np.sqrt(dx**2 + dy**2)
            turns = float(rng.uniform(1.5, 2.5))
            f = len(pal) * (np.arctan2(dy, dx) / (2 * np.pi) + turns * rr / R) + 1000.0
            frac = f % 1.0
            idx = np.floor(f).astype(np.int64)
            width_px = max(1.0, R * sp.k / (turns * len(pal)))
            wgt = _smooth(0.0, min(0.5, 1.5 / width_px), frac)[..., None]
            table = np.stack(pal)
            col = table[(idx - 1) % len(pal)] + wgt * (table[idx % len(pal)] - table[(idx - 1) % len(pal)])
            lam, spec, nz = _sphere(sp, 0.0, cy, R, R, 40.0)
            flat = 0.82 + 0.2 * lam  # a flat disc: mild shading, a gloss spot and a darker rim
            rim = _smooth(R - 1.6, R, rr)
            col = col * (flat * (1 - 0.25 * rim))[..., None] + (150 * spec)[..., None]
            sp.paint(_disc(sp, 0.0, cy, R), col)
        elif kind == "round":
            R = float(rng.uniform(7.5, 9.5))
            lam, spec, nz = _sphere(sp, 0.0, -1.0, R, R, 40.0)
            inner = 0.25 * (1 - nz)  # a hard candy glows at its edge
            col = pal[0] * (0.35 + 0.6 * lam + inner)[..., None] + (200 * spec)[..., None]
            sp.paint(_disc(sp, 0.0, -1.0, R), col)
        elif kind == "cane":
            hs = thumb
            r, hook = 2.5, 5.5
            top = -8.0
            cx = hs * hook
            straight = np.array([(0.0, fy + 12.0), (0.0, top)])
            t = np.linspace(0.0, np.pi, 20)
            arc = np.stack([cx - hs * hook * np.cos(t), top - hook * np.sin(t)], 1)
            arc = np.concatenate([arc, [(2 * cx, top + 3.0)]])
            m = np.maximum(sp.lines(straight, width=2 * r), sp.lines(arc, width=2 * r))
            in_arc = sp.v < top
            tail = (~in_arc) & (np.abs(sp.u - np.float32(2 * cx)) < np.abs(sp.u))
            du, dv = sp.u - np.float32(cx), sp.v - np.float32(top)
            phi = np.arctan2(-dv, -du * np.float32(hs))
            across = np.where(in_arc, (np.sqrt(du**2 + dv**2) - hook) * hs, np.where(tail, sp.u - np.float32(2 * cx), sp.u))
            along = np.where(in_arc, -phi * hook, np.where(tail, -np.pi * hook - dv, dv))
            stripe = _bands(along + 0.9 * across, 5.0, 2.0, sp.k)
            col = pal[1] + stripe[..., None] * (pal[0] - pal[1])
            lam, spec = _tube(across / r, 30.0)
            col = col * (0.45 + 0.6 * lam)[..., None] + (120 * spec)[..., None]
            sp.paint(m, col)
        else:  # wrapped: a shiny sweet with twisted ends
            cy = 0.0
            body_m = sp.ellipse((0.0, cy), (8.0, 5.6))
            lam, spec, nz = _sphere(sp, 0.0, cy, 8.0, 5.6, 18.0)
            crinkle = sp.noise(rng, 0.45)
            for sgn in (-1.0, 1.0):
                fan = sp.poly(np.array([(sgn * 6.5, cy - 1.8), (sgn * 15.5, cy - 6.0), (sgn * 16.5, cy - 1.0), (sgn * 15.5, cy + 4.5),
                                        (sgn * 16.0, cy + 6.5), (sgn * 6.5, cy + 1.8)]))
                pleat = 0.7 + 0.3 * np.abs(np.sin((sp.v - np.float32(cy)) / (np.abs(sp.u) + 1.0) * 9.0))
                fcol = pal[0] * (pleat * (0.85 + 0.1 * crinkle))[..., None]
                sp.paint(fan, fcol)
                knot = sp.ellipse((sgn * 7.5, cy), (1.6, 2.2))
                sp.paint(knot, pal[0] * 0.6)
            if len(pal) > 1 and self.styles[variant] == "wrapped_striped":
                st = _aa_stripe(sp.u + 0.8 * sp.v, 4.0, 1.8, sp.k)
                base = pal[1] + st[..., None] * (pal[0] - pal[1])
            else:
                base = np.broadcast_to(pal[0], (sp.h, sp.w, 3))
            foil = 1.0 + 0.25 * crinkle * nz
            col = base * ((0.35 + 0.7 * lam) * foil)[..., None] + (170 * spec)[..., None]
            sp.paint(body_m, col)
        _fist_front(sp, skin, 0.0, fy, thumb)
        _settle(sp)
        sp.drop_shadow(0.8, 1.8, 1.3, 0.3)


# ---------------------------------------------------------------------------------- fruit

_FRUITS = {
    # kind, skin colour, second colour (streaks, blush, tips)
    "red_apple": ("apple", (178, 26, 34), (226, 176, 70)),
    "green_apple": ("apple", (146, 196, 64), (214, 214, 90)),
    "orange": ("orange", (240, 136, 26), (250, 170, 60)),
    "pear": ("pear", (204, 200, 84), (186, 120, 54)),
    "peach": ("peach", (244, 170, 104), (210, 64, 60)),
    "banana": ("banana", (240, 206, 64), (96, 70, 34)),
    "strawberry": ("strawberry", (206, 24, 36), (250, 220, 120)),
}


class Fruit(ObjectOccluder):
    """A fruit held in a fist at the mouth, about to be bitten (landmark-placed).

    Apple, orange, pear, peach, banana or strawberry, shaded, with stem, leaf or texture."""

    name = "fruit"
    depth = 1.0  # held at the mouth
    mount = "held"
    styles = tuple(_FRUITS)
    render_keys = ("side",)

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        side, name = _pick_side(rng)
        tilt = side * float(rng.uniform(0, 15))
        return (float(_MOUTH[0]) + side * 3.0, float(_MOUTH[1]) + 3.0), tilt, {"side": name}

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-34.0, 34.0, -32.0, 70.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        kind, c1, c2 = _FRUITS[self.styles[variant]]
        skin = _skin_from(rng)
        thumb = -_side_sign(extra)
        base, second = _rgb(c1) * np.float32(1 + rng.uniform(-0.06, 0.06)), _rgb(c2)
        if kind == "banana":
            fy = 14.0
            _fist_back(sp, skin, 0.0, fy, thumb)
            self._banana(sp, rng, base, second, fy, thumb)
            _fist_front(sp, skin, 0.0, fy, thumb)
            _settle(sp)
            sp.drop_shadow(1.0, 2.0, 1.6, 0.3)
            return
        R = {"apple": 16.0, "orange": 16.5, "pear": 14.0, "peach": 15.0, "strawberry": 9.0}[kind]
        R *= float(rng.uniform(0.92, 1.08))
        cy = -2.0
        fy = cy + R * 0.5 if kind != "strawberry" else cy + R * 0.75
        _fist_back(sp, skin, 0.0, fy, thumb)
        dx, dy = sp.u, sp.v - np.float32(cy)
        th = np.arctan2(dx, -dy)  # 0 at the top
        rr = np.sqrt(dx**2 + dy**2)
        if kind == "pear":
            yy = np.linspace(-R * 1.55, R, 48)
            half = np.where(yy > -R * 0.2, R * np.sqrt(np.clip(1 - ((yy + R * 0.2) / (R * 1.2)) ** 2, 0, 1)) ** 0.9,
                            R * (0.62 + 0.38 * np.cos(np.clip((yy + R * 0.2) / (R * 1.35), -1.2, 0) * 2.2)))
            half = np.minimum(half, R * 0.7 * np.sqrt(np.clip((yy + R * 1.55) / (R * 0.35), 0, 1)) + (yy > -R * 0.9) * R)
            outline = np.concatenate([np.stack([half, yy + cy], 1), np.stack([-half[::-1], yy[::-1] + cy], 1)])
            m = sp.poly(outline)
            wv = np.interp(sp.v - np.float32(cy), yy, half).astype(np.float32)
            nx = np.clip(sp.u / np.maximum(wv, 1.0), -1, 1)
            ny = np.clip((sp.v - np.float32(cy)) / (R * 1.3), -1, 1) * 0.6
            nz = np.sqrt(np.clip(1 - nx**2 - ny**2, 0, 1))
            lam = np.clip(nx * _LIGHT[0] + ny * _LIGHT[1] + nz * _LIGHT[2], 0, 1)
            spec = np.clip(nx * _HALF[0] + ny * _HALF[1] + nz * _HALF[2], 0, 1) ** 14
            top_y = cy - R * 1.55
        elif kind == "strawberry":
            yy = np.linspace(-R, R * 1.25, 40)
            half = R * np.sqrt(np.clip((yy + R) / (R * 0.5), 0, 1)) * np.clip(1 - (yy + R * 0.2) / (R * 1.6), 0.05, 1) ** 0.7
            half = half * 1.05
            outline = np.concatenate([np.stack([half, yy + cy], 1), np.stack([-half[::-1], yy[::-1] + cy], 1)])
            m = sp.poly(outline)
            lam, spec, nz = _sphere(sp, 0.0, cy + 1.0, R, R * 1.2, 20.0)
            top_y = cy - R
        else:
            dimple = 0.1 * np.exp(-((th / 0.32) ** 2)) if kind == "apple" else 0.0
            shape = R * (1 + (0.045 * np.cos(2 * th) if kind == "apple" else 0.0) - dimple)
            m = _inside(sp, rr - shape)
            lam, spec, nz = _sphere(sp, 0.0, cy, R, R * (0.95 if kind == "apple" else 1.0), 24.0 if kind != "peach" else 6.0)
            top_y = cy - R * 0.9
        col = np.broadcast_to(base, (sp.h, sp.w, 3)).copy()
        if kind == "apple":
            streak = _noise2(sp, rng, 1.0, 5.0)
            mix = np.clip(0.35 + 0.3 * streak, 0, 1) * (0.4 + 0.6 * _smooth(0.0, R * 1.1, sp.v - np.float32(cy)))
            col = col + mix[..., None] * (second - col)
            dots = _noise2(sp, rng, 0.35, 0.35)
            col = col * (1 + 0.12 * (dots > 1.8))[..., None]
            col = col * (0.3 + 0.8 * lam)[..., None] + (170 * spec)[..., None]
        elif kind == "orange":
            pits = sp.noise(rng, 0.32)
            col = col * ((0.35 + 0.72 * lam) * (1 + 0.07 * pits))[..., None] + (90 * spec * (1 + 0.5 * pits))[..., None]
        elif kind == "pear":
            russet = np.clip(_noise2(sp, rng, 1.5, 1.5) - 0.6, 0, 1) * 0.6
            col = col + russet[..., None] * (second - col)
            col = col * (0.35 + 0.75 * lam)[..., None] + (70 * spec)[..., None]
        elif kind == "peach":
            blush = _smooth(-R * 0.6, R * 0.8, -sp.u * thumb + 0.3 * sp.v)
            col = col + (0.7 * blush)[..., None] * (second - col)
            crease = np.exp(-(((sp.u + thumb * 3.0 - thumb * 0.1 * (sp.v - np.float32(cy)) ** 2 / R) / 0.7) ** 2)) * (sp.v < cy + R * 0.3)
            col = col * ((0.4 + 0.65 * lam) * (1 - 0.22 * crease))[..., None] + (45 * spec)[..., None]
        else:  # strawberry: seeds in a diagonal grid, sunk in little pits
            g1 = np.cos(2 * np.pi * (sp.u + sp.v) / 2.6)
            g2 = np.cos(2 * np.pi * (sp.u - sp.v) / 2.6)
            seed = np.clip((g1 * g2 - 0.82) * 8, 0, 1) * (sp.v > top_y + 2.5)
            col = col * (0.3 + 0.8 * lam)[..., None] + (150 * spec)[..., None]
            col = col + seed[..., None] * (second * (0.5 + 0.5 * lam)[..., None] - col)
        sp.paint(m, col)
        # Stem and leaf (apple, pear, peach), calyx (strawberry), navel (orange).
        if kind in ("apple", "pear", "peach"):
            tip_x = float(rng.uniform(-1.5, 1.5))
            stem = sp.lines(_bezier((0.0, top_y + 2.0), (0.5, top_y - 3.0), (tip_x + 1.5, top_y - 5.5), 10), width=1.3)
            sp.paint(stem, _rgb((92, 62, 34)))
            if kind != "peach" or rng.integers(2):
                lx = -thumb * float(rng.uniform(6.0, 9.0))
                leaf = _bezier((0.6, top_y - 2.5), (lx * 0.5, top_y - 8.5), (lx, top_y - 5.0), 12)
                leaf2 = _bezier((0.6, top_y - 2.5), (lx * 0.6, top_y - 1.0), (lx, top_y - 5.0), 12)
                lm = sp.poly(np.concatenate([leaf, leaf2[::-1]]))
                vein = sp.lines(_bezier((0.6, top_y - 2.5), (lx * 0.55, top_y - 4.6), (lx, top_y - 5.0), 10), width=0.35)
                sp.paint(lm, _rgb((66, 128, 44)) * (1 - 0.3 * vein)[..., None] + 14)
        elif kind == "strawberry":
            for j in range(6):
                a = math.radians(-150 + j * 24 + float(rng.uniform(-6, 6)))
                tipp = (5.5 * math.cos(a), top_y + 1.0 + 4.5 * math.sin(a) + 3.0)
                lf = sp.lines(np.array([(0.0, top_y + 1.0), tipp]), width=1.8)
                sp.paint(lf, _rgb((60, 140, 50)) * (0.75 + 0.25 * (j % 2)))
        else:
            sp.paint(sp.ellipse((thumb * 2.0, top_y + 3.0), (1.0, 0.7)) * 0.7, base * 0.6)
        _fist_front(sp, skin, 0.0, fy, thumb)
        _settle(sp)
        sp.drop_shadow(1.0, 2.0, 1.6, 0.3)

    @staticmethod
    def _banana(sp: _Sprite, rng: np.random.Generator, base: np.ndarray, tips: np.ndarray, fy: float,
                thumb: float) -> None:
        """A banana standing up out of the fist, curving towards the mouth, ridges and tips."""
        bend = -thumb * float(rng.uniform(10.0, 14.0))
        path = _bezier((0.0, fy + 14.0), (0.0, -10.0), (bend, -22.0), 24)
        seg = np.diff(path, axis=0)
        acc = np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])
        total = float(acc[-1])
        m = np.zeros((sp.h, sp.w), np.float32)
        # Distance to the curve, position along it (nearest sample), on a coarse set of points.
        pts = path.astype(np.float32)
        d2 = (sp.u[..., None] - pts[:, 0]) ** 2 + (sp.v[..., None] - pts[:, 1]) ** 2
        near = np.argmin(d2, axis=-1)
        dist = np.sqrt(np.take_along_axis(d2, near[..., None], -1)[..., 0])
        along = acc[near].astype(np.float32)
        tang = seg[np.clip(near, 0, len(seg) - 1)]
        tang = tang / np.hypot(tang[..., 0], tang[..., 1])[..., None]
        cross = ((sp.u - pts[near, 0]) * -tang[..., 1] + (sp.v - pts[near, 1]) * tang[..., 0])
        half = 7.0 * np.clip(np.minimum(along / 6.0, (total - along) / 8.0), 0.2, 1.0) ** 0.6
        m = np.clip((half - dist) * sp.k + 0.5, 0, 1).astype(np.float32)
        sx = np.clip(cross / half, -1, 1)
        lam, spec = _tube(sx, 16.0)
        ridge = 1 - 0.12 * np.exp(-(((np.abs(sx) - 0.45) / 0.08) ** 2))
        col = base * ((0.42 + 0.7 * lam) * ridge)[..., None] + (60 * spec)[..., None]
        tip_m = _smooth(total - 4.0, total - 2.0, along)[..., None]
        col = col + tip_m * (tips * (0.6 + 0.4 * lam)[..., None] - col)
        spots = np.clip(_noise2(sp, rng, 0.6, 0.6) - 1.6, 0, 1)[..., None] * 0.7
        col = col + spots * (tips - col)
        sp.paint(m, col)


# ------------------------------------------------------------------------------ fast food

_FOODS = ("burger", "cheeseburger", "hot_dog", "fries", "pizza", "sandwich")


class FastFood(ObjectOccluder):
    """Fast food raised to the mouth in the hands: burger, hot dog, fries, pizza, sandwich (landmark-placed).

    A sesame bun with its layers, a hot dog with mustard, fries in a carton, a pizza slice,
    a sandwich cut to show its filling."""

    name = "fast_food"
    depth = 1.0  # held at the mouth
    mount = "held"
    styles = _FOODS
    render_keys = ("side",)

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        side, name = _pick_side(rng)
        tilt = side * float(rng.uniform(0, 12))
        return (float(_MOUTH[0]) + side * 2.0, float(_MOUTH[1]) + 4.0), tilt, {"side": name}

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-40.0, 40.0, -36.0, 64.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        food = self.styles[variant]
        skin = _skin_from(rng)
        thumb = -_side_sign(extra)
        getattr(self, f"_{'burger' if food == 'cheeseburger' else food}")(sp, rng, skin, thumb, food)
        _settle(sp)
        sp.drop_shadow(1.0, 2.0, 1.8, 0.32)

    @staticmethod
    def _burger(sp: _Sprite, rng: np.random.Generator, skin: Any, thumb: float, food: str) -> None:
        hw = float(rng.uniform(21.0, 25.0))
        bun = _rgb((206, 140, 62))
        # Bottom bun, patty, cheese, tomato, lettuce, top bun: from the back to the front.
        bot = _inside(sp, _rrect_sdf(sp, 0.0, 12.5, hw - 1.0, 4.5, 3.5))
        lam, _, _ = _sphere(sp, 0.0, 6.0, hw + 4, 16.0, 10.0)
        sp.paint(bot, bun * (0.5 + 0.55 * lam)[..., None] + 6)
        patty = _inside(sp, _rrect_sdf(sp, 0.0, 5.0, hw + 0.5, 4.0, 3.0))
        crust = 1 + 0.22 * sp.noise(rng, 0.5)
        sp.paint(patty, _rgb((86, 50, 30)) * ((0.5 + 0.5 * lam) * crust)[..., None])
        if food == "cheeseburger":
            xs = np.linspace(-hw - 1, hw + 1, 9)
            drip = [(x, 1.5 + (4.5 if i % 2 else 0.5)) for i, x in enumerate(xs)]
            cheese = sp.poly(np.array([(-hw - 1, -0.5), (hw + 1, -0.5), *reversed(drip)]))
            sp.paint(cheese, _rgb((250, 184, 36)) * (0.7 + 0.35 * lam)[..., None])
        tomato = _inside(sp, _rrect_sdf(sp, 0.0, -0.5, hw - 1.0, 1.6, 1.5))
        sp.paint(tomato, _rgb((206, 40, 36)) * (0.7 + 0.3 * lam)[..., None])
        xs = np.linspace(-hw - 2.5, hw + 2.5, 31)
        wave = 1.4 * np.sin(xs * 1.3 + float(rng.uniform(0, 6.28)))
        lettuce = sp.poly(np.concatenate([np.stack([xs, -3.5 + 0.3 * wave], 1), np.stack([xs[::-1], 0.6 + wave[::-1]], 1)]))
        sp.paint(lettuce, _rgb((96, 172, 52)) * (0.75 + 0.35 * lam)[..., None])
        top = sp.poly(np.concatenate([np.stack([hw * np.cos(t), -2.5 - 15.0 * np.sin(t)], 1) for t in [np.linspace(0, np.pi, 40)]]
                                     + [np.array([(-hw, -1.5), (hw, -1.5)])]))
        tlam, tspec, _ = _sphere(sp, 0.0, -2.5, hw, 15.0, 12.0)
        tcol = bun * (0.42 + 0.7 * tlam)[..., None] + (70 * tspec)[..., None]
        tcol = tcol * (1 - 0.25 * _smooth(-6.0, -1.5, sp.v))[..., None]
        sp.paint(top, tcol)
        for _ in range(16):  # sesame seeds
            a = float(rng.uniform(0.25, np.pi - 0.25))
            rad = float(rng.uniform(0.15, 0.85))
            x, y = hw * rad * math.cos(a), -2.5 - 15.0 * rad * math.sin(a) * 0.9 - 1.0
            seed = sp.ellipse((x, y), (1.1, 0.6), angle=float(rng.uniform(-40, 40)))
            sp.paint(seed * top, _rgb((250, 236, 200)))
        for side in (-1.0, 1.0):  # both hands: fingers round the sides
            _grip_fingers(sp, skin, side * (hw + 1.0), 4.0, side, n=3, length=8.0, gap=6.8)

    @staticmethod
    def _hot_dog(sp: _Sprite, rng: np.random.Generator, skin: Any, thumb: float, food: str) -> None:
        L = float(rng.uniform(26.0, 30.0))
        bun = _rgb((214, 150, 72))
        back = _inside(sp, _rrect_sdf(sp, 0.0, -2.5, L - 3.0, 5.0, 5.0))
        lam, _, _ = _sphere(sp, 0.0, 0.0, L + 4, 10.0, 10.0)
        sp.paint(back, bun * (0.45 + 0.5 * lam)[..., None])
        sausage = _inside(sp, _rrect_sdf(sp, 0.0, 0.0, L + 3.0, 4.3, 4.3))
        slam, sspec = _tube(-sp.v / 4.3, 20.0)
        sp.paint(sausage, _rgb((170, 74, 44)) * (0.45 + 0.6 * slam)[..., None] + (110 * sspec)[..., None])
        xs = np.linspace(-L + 1.0, L - 1.0, 15)
        zig = np.stack([xs, -0.8 + 1.6 * (np.arange(len(xs)) % 2)], 1)
        sp.paint(sp.lines(zig, width=1.5), _rgb((244, 196, 30)))
        if rng.integers(2):
            sp.paint(sp.lines(zig + (1.5, 0.4), width=1.2), _rgb((196, 30, 26)))
        front = _inside(sp, _rrect_sdf(sp, 0.0, 5.5, L - 1.0, 5.2, 5.0))
        flam, fspec, _ = _sphere(sp, 0.0, 4.0, L + 4, 7.0, 12.0)
        sp.paint(front, bun * (0.45 + 0.65 * flam)[..., None] + (50 * fspec)[..., None])
        for side in (-1.0, 1.0):
            _grip_fingers(sp, skin, side * (L - 1.0), 3.5, side, n=2, length=7.0, gap=6.5)

    @staticmethod
    def _fries(sp: _Sprite, rng: np.random.Generator, skin: Any, thumb: float, food: str) -> None:
        fy = 18.0
        _fist_back(sp, skin, 0.0, fy, thumb)
        for _ in range(17):  # the fries behind the carton's front
            x = float(rng.uniform(-12.0, 12.0))
            top = float(rng.uniform(-20.0, -7.0))
            ang = float(rng.uniform(-14, 14))
            t, s = _along(sp, (x, top), 90.0 + ang)
            w = float(rng.uniform(1.3, 1.7))
            m = np.clip((w - np.abs(s)) * sp.k + 0.5, 0, 1) * np.clip(t * sp.k + 0.5, 0, 1) * (t < 40)
            tone = _rgb((236, 188, 74)) * np.float32(rng.uniform(0.85, 1.05))
            shade = 0.7 + 0.35 * _smooth(-w, w, -s) - 0.25 * np.exp(-((t / 1.2) ** 2))
            sp.paint(m.astype(np.float32), tone * shade[..., None])
        xs = np.linspace(-15.0, 15.0, 21)
        top_edge = np.stack([xs, -3.0 + 3.5 * (xs / 15.0) ** 2], 1)
        carton = sp.poly(np.concatenate([top_edge, [(11.0, fy + 20.0), (-11.0, fy + 20.0)]]))
        lam, spec = _tube(sp.u / 16.0, 12.0)
        ccol = _rgb((206, 30, 34)) * (0.55 + 0.55 * lam)[..., None] + (40 * spec)[..., None]
        emblem = np.maximum(_bands(sp.v - 14.0, 200.0, 2.2, sp.k),
                            sp.ellipse((0.0, 7.0), (4.0, 4.0), width=1.2))  # a band and a ring printed on it
        ccol = ccol + emblem[..., None] * (_rgb((250, 200, 40)) - ccol)
        sp.paint(carton, ccol)
        _fist_front(sp, skin, 0.0, fy, thumb)

    @staticmethod
    def _pizza(sp: _Sprite, rng: np.random.Generator, skin: Any, thumb: float, food: str) -> None:
        tip, base_y, hw = (0.0, -16.0), 27.0, float(rng.uniform(22.0, 26.0))
        slice_m = sp.poly(np.array([tip, (hw, base_y), (-hw, base_y)]))
        cheese = _rgb((246, 196, 84))
        brown = np.clip(sp.noise(rng, 1.1) - 0.9, 0, 1)
        col = cheese * (1 - 0.25 * brown)[..., None] + brown[..., None] * np.array([-10, -30, -30], np.float32)
        sauce = np.clip(sp.noise(rng, 0.8) - 1.3, 0, 1)
        col = col + (0.8 * sauce)[..., None] * (_rgb((190, 50, 30)) - col)
        col = col * (0.85 + 0.15 * _smooth(base_y, tip[1], sp.v))[..., None]
        sp.paint(slice_m, col)
        for _ in range(int(rng.integers(3, 6))):
            py = float(rng.uniform(-2.0, base_y - 6.0))
            span = hw * (py - tip[1]) / (base_y - tip[1]) - 3.5
            px = float(rng.uniform(-max(span, 0.1), max(span, 0.1)))
            pr = 3.2
            pep = _disc(sp, px, py, pr) * slice_m
            lam, spec, _ = _sphere(sp, px, py, pr * 2, pr * 2, 20.0)
            dots = 1 - 0.25 * (sp.noise(rng, 0.5) > 1.0)
            sp.paint(pep, _rgb((170, 36, 30)) * ((0.6 + 0.5 * lam) * dots)[..., None] + (60 * spec)[..., None])
        crust = sp.poly(np.concatenate([np.stack([np.linspace(-hw - 1.5, hw + 1.5, 21),
                                                  base_y - 1.5 + 1.0 * np.cos(np.linspace(-1.5, 1.5, 21))], 1),
                                        [(hw + 1.0, base_y + 4.5), (-hw - 1.0, base_y + 4.5)]]))
        clam, _ = _tube(-(sp.v - np.float32(base_y + 1.5)) / 3.5, 10.0)
        sp.paint(crust, _rgb((200, 130, 60)) * (0.5 + 0.6 * clam)[..., None])
        for side in (-1.0, 1.0):
            _grip_fingers(sp, skin, side * (hw - 1.0), base_y - 2.0, side, n=2, length=7.0, gap=6.5)

    @staticmethod
    def _sandwich(sp: _Sprite, rng: np.random.Generator, skin: Any, thumb: float, food: str) -> None:
        hw = float(rng.uniform(20.0, 24.0))
        # The cut face, from the top slice to the bottom one.
        layers = [("bread", -14.0, -7.0), ("lettuce", -7.5, -4.5), ("tomato", -5.0, -2.0), ("ham", -2.5, 1.0),
                  ("cheese", 0.5, 2.5), ("lettuce", 2.0, 4.5), ("bread", 4.0, 11.0)]
        colours = {"bread": (244, 232, 206), "lettuce": (104, 176, 56), "tomato": (212, 46, 40), "ham": (236, 150, 150),
                   "cheese": (250, 204, 70)}
        for k, (kind, y0, y1) in enumerate(layers):
            xs = np.linspace(-hw - 1.0, hw + 1.0, 25)
            if kind == "lettuce":
                wob = 1.0 * np.sin(xs * 1.1 + k)
                m = sp.poly(np.concatenate([np.stack([xs * 1.04, y0 + 0.5 * wob], 1), np.stack([xs[::-1] * 1.04, y1 + wob[::-1]], 1)]))
            else:
                m = _inside(sp, _rrect_sdf(sp, 0.0, (y0 + y1) / 2, hw + (0.0 if kind == "bread" else -0.5), (y1 - y0) / 2,
                                           2.5 if kind == "bread" else 0.8))
            col = _rgb(colours[kind]) * (0.8 + 0.12 * _smooth(y1, y0, sp.v))[..., None]
            if kind == "bread":
                pores = 1 - 0.08 * np.clip(sp.noise(rng, 0.4), 0, None)
                crust_m = _smooth(1.8, 0.6, np.minimum(sp.v - np.float32(y0), np.float32(y1) - sp.v))
                col = col * pores[..., None]
                col = col + crust_m[..., None] * (_rgb((186, 120, 56)) - col)
            sp.paint(m, col)
        for side in (-1.0, 1.0):
            _grip_fingers(sp, skin, side * (hw + 0.5), -4.0, side, n=3, length=8.0, gap=6.8)


# --------------------------------------------------------------------------------- flower

_FLOWERS = {
    # kind, petal colour, centre colour
    "red_rose": ("rose", (176, 16, 34), None),
    "pink_rose": ("rose", (236, 120, 150), None),
    "sunflower": ("sunflower", (250, 190, 20), (96, 56, 24)),
    "daisy": ("daisy", (250, 250, 246), (246, 196, 30)),
    "tulip": ("tulip", (226, 40, 52), None),
    "yellow_tulip": ("tulip", (250, 210, 40), None),
    "gerbera": ("daisy", (246, 110, 40), (80, 50, 26)),
}


class Flower(ObjectOccluder):
    """One to three flowers held before the lower face on leafy stems (landmark-placed).

    Roses, sunflowers, daisies, tulips or gerberas, the stems gathered in a fist."""

    name = "flower"
    depth = 1.0  # held before the face
    mount = "held"
    styles = tuple(_FLOWERS)
    render_keys = ("side",)

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        side, name = _pick_side(rng)
        tilt = side * float(rng.uniform(0, 15))
        return (float(_MOUTH[0]) + side * 4.0, float(_MOUTH[1]) - 2.0), tilt, {"side": name}

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-36.0, 36.0, -34.0, 74.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        kind, petal, centre = _FLOWERS[self.styles[variant]]
        skin = _skin_from(rng)
        thumb = -_side_sign(extra)
        fy = 26.0
        n = int(rng.integers(1, 4))
        size = {"rose": 11.0, "sunflower": 16.0, "daisy": 14.0, "tulip": 9.5}[kind] * (0.88 if n > 1 else 1.1)
        spots = [(0.0, 0.0)]
        if n > 1:
            spots = [(-size * 0.95, 2.0), (size * 0.95, -1.0)] + ([(0.0, -size * 1.1)] if n == 3 else [])
        spots = [(x + float(rng.uniform(-1.5, 1.5)), y + float(rng.uniform(-1.5, 1.5))) for x, y in spots]
        _fist_back(sp, skin, 0.0, fy, thumb)
        green = _rgb((58, 122, 46))
        for x, y in spots:  # stems and leaves
            stem = _bezier((x, y), (x * 0.6, (y + fy) / 2), (0.0, fy + 12.0), 14)
            sm = sp.lines(stem, width=1.8 if kind != "tulip" else 2.4)
            sp.paint(sm, green * (0.85 + 0.2 * _smooth(-1, 1, sp.u - np.float32(x * 0.6)))[..., None])
            if rng.integers(3):
                ly = (y + fy) * 0.5 + float(rng.uniform(-3, 3))
                lx = x * 0.75 + (-1.0 if x < 0 or (x == 0 and rng.integers(2)) else 1.0) * float(rng.uniform(5, 9))
                base_p = (x * 0.7, ly + 4.0)
                a = _bezier(base_p, ((base_p[0] + lx) / 2, ly - 3.0), (lx, ly - 1.0), 10)
                b = _bezier(base_p, ((base_p[0] + lx) / 2, ly + 2.5), (lx, ly - 1.0), 10)
                leaf = sp.poly(np.concatenate([a, b[::-1]]))
                vein = sp.lines(_bezier(base_p, ((base_p[0] + lx) / 2, ly - 0.3), (lx, ly - 1.0), 8), width=0.3)
                sp.paint(leaf, green * (1.1 - 0.3 * vein)[..., None])
        order = sorted(range(len(spots)), key=lambda i: spots[i][1])  # the lower blooms in front
        for i in order:
            x, y = spots[i]
            s = size * float(rng.uniform(0.9, 1.1))
            getattr(self, f"_{kind}")(sp, rng, x, y, s, _rgb(petal) * np.float32(rng.uniform(0.92, 1.06)),
                                       None if centre is None else _rgb(centre))
        _fist_front(sp, skin, 0.0, fy, thumb)
        _settle(sp)
        sp.drop_shadow(1.0, 2.0, 1.6, 0.3)

    @staticmethod
    def _rose(sp: _Sprite, rng: np.random.Generator, x: float, y: float, s: float, petal: np.ndarray, centre: Any) -> None:
        win = sp.window(x - s - 3, x + s + 3, y - s - 3, y + s + 5)
        for j in range(5):  # green sepals under the head
            a = math.radians(200 + j * 35)
            tip = (x + (s + 2.5) * math.cos(a) * 0.9, y + s * 0.55 + 3.0 * abs(math.sin(a)))
            win.paint(win.lines(np.array([(x, y + s * 0.4), tip]), width=1.5), _rgb((52, 112, 42)))
        # Outer petals: a cup of overlapping lobes, then tighter rings spiralling inwards.
        rings = ((1.0, 0.0, 5), (0.78, -0.12, 4), (0.56, -0.22, 3), (0.36, -0.3, 3))
        lam, _, _ = _sphere(win, x, y, s, s, 8.0)
        for r_f, y_f, count in rings:
            rr = s * r_f
            rot = float(rng.uniform(0, 2 * np.pi))
            for j in range(count):
                a = rot + 2 * np.pi * j / count
                px, py = x + rr * 0.45 * math.cos(a), y + s * y_f + rr * 0.35 * math.sin(a)
                m = win.ellipse((px, py), (rr * 0.72, rr * 0.62), angle=math.degrees(a))
                edge = win.ellipse((px, py), (rr * 0.72, rr * 0.62), angle=math.degrees(a), width=0.35)
                depth = 0.55 + 0.45 * r_f
                col = petal * ((0.55 + 0.5 * lam) * depth)[..., None]
                col = col + (edge * 0.5)[..., None] * (petal * 1.25 + 20 - col)
                win.paint(m, col)
        core = win.ellipse((x, y - s * 0.32), (s * 0.18, s * 0.12))
        win.paint(core, petal * 0.35)
        spiral_t = np.linspace(0, 3.5 * np.pi, 40)
        sr = s * 0.05 * spiral_t
        spiral = np.stack([x + sr * np.cos(spiral_t), y - s * 0.3 + 0.7 * sr * np.sin(spiral_t)], 1)
        win.paint(win.lines(spiral, width=0.3) * 0.6, petal * 0.4)

    @staticmethod
    def _sunflower(sp: _Sprite, rng: np.random.Generator, x: float, y: float, s: float, petal: np.ndarray,
                   centre: np.ndarray) -> None:
        win = sp.window(x - s - 2, x + s + 2, y - s - 2, y + s + 2)
        for ring, (count, length, dark) in enumerate(((18, s, 0.8), (18, s * 0.92, 1.0))):
            rot = float(rng.uniform(0, 2 * np.pi)) + ring * np.pi / 18
            for j in range(count):
                a = rot + 2 * np.pi * j / count
                l = length * float(rng.uniform(0.88, 1.0))
                c = (x + 0.62 * l * math.cos(a), y + 0.62 * l * math.sin(a))
                m = win.ellipse(c, (l * 0.4, l * 0.12), angle=math.degrees(a))
                t, _ = _along(win, (x, y), math.degrees(a))
                col = petal * (dark * (0.75 + 0.3 * _smooth(l * 0.3, l, t)))[..., None]
                win.paint(m, col)
        rc = s * 0.45
        lam, _, _ = _sphere(win, x, y, rc, rc, 6.0)
        rr = np.sqrt((win.u - np.float32(x)) ** 2 + (win.v - np.float32(y)) ** 2)
        th = np.arctan2(win.v - np.float32(y), win.u - np.float32(x))
        seeds = 0.5 + 0.5 * np.cos(2 * np.pi * (rr / 0.9) + 13 * th) * np.cos(2 * np.pi * (rr / 0.9) - 21 * th)
        col = centre * ((0.55 + 0.5 * lam) * (0.75 + 0.35 * seeds))[..., None]
        col = col + (_smooth(rc * 0.7, rc, rr) * 0.4)[..., None] * (_rgb((150, 110, 30)) - col)
        win.paint(_disc(win, x, y, rc), col)

    @staticmethod
    def _daisy(sp: _Sprite, rng: np.random.Generator, x: float, y: float, s: float, petal: np.ndarray,
               centre: np.ndarray) -> None:
        win = sp.window(x - s - 2, x + s + 2, y - s - 2, y + s + 2)
        count = 20
        rot = float(rng.uniform(0, 2 * np.pi))
        for j in range(count):
            a = rot + 2 * np.pi * j / count + float(rng.uniform(-0.05, 0.05))
            l = s * float(rng.uniform(0.85, 1.0))
            c = (x + 0.55 * l * math.cos(a), y + 0.55 * l * math.sin(a))
            m = win.ellipse(c, (l * 0.45, l * 0.1), angle=math.degrees(a))
            t, _ = _along(win, (x, y), math.degrees(a))
            col = petal * (0.72 + 0.3 * _smooth(l * 0.15, l * 0.7, t))[..., None]
            win.paint(m, col)
        rc = s * 0.26
        lam, spec, _ = _sphere(win, x, y, rc, rc, 10.0)
        dots = 0.8 + 0.2 * np.cos(2 * np.pi * (win.u - np.float32(x)) / 0.8) * np.cos(2 * np.pi * (win.v - np.float32(y)) / 0.8)
        win.paint(_disc(win, x, y, rc), centre * ((0.5 + 0.6 * lam) * dots)[..., None] + (50 * spec)[..., None])

    @staticmethod
    def _tulip(sp: _Sprite, rng: np.random.Generator, x: float, y: float, s: float, petal: np.ndarray, centre: Any) -> None:
        """A closed tulip from the side: a cup of three petals with pointed tips."""
        w, h = s * 0.62, s * 1.35
        top, base = y - h * 0.55, y + h * 0.45
        win = sp.window(x - w - 2, x + w + 2, top - 2, base + 2)
        # Outline: a rounded base, straight-ish sides, three pointed tips with notches between.
        t = np.linspace(0, np.pi, 20)
        bottom = np.stack([x + w * np.cos(t), base - h * 0.45 + h * 0.45 * np.sin(t)], 1)  # right to left
        rim = [(x - w * 1.02, top + h * 0.18), (x - w * 0.72, top - 0.4), (x - w * 0.38, top + h * 0.16), (x, top - 1.2),
               (x + w * 0.38, top + h * 0.16), (x + w * 0.72, top - 0.4), (x + w * 1.02, top + h * 0.18)]
        m = win.poly(np.concatenate([bottom, np.array(rim)]))
        lam, spec, _ = _sphere(win, x, y, w * 1.1, h * 0.75, 14.0)
        grad = 0.8 + 0.3 * _smooth(base, top, win.v)
        seams = sum(np.exp(-(((win.u - np.float32(x + sx * w * 0.36)) / 0.35) ** 2)) * (win.v > top + h * 0.16)
                    for sx in (-1.0, 1.0))
        col = petal * ((0.45 + 0.65 * lam) * grad * (1 - 0.25 * seams))[..., None] + (70 * spec)[..., None]
        win.paint(m, col)


# ------------------------------------------------------------------------------ flat things


def _page_edges(sp: _Sprite, x0: float, x1: float, y: float, depth: float) -> None:
    """The block of pages seen edge-on above a book's cover: cream with fine lines."""
    win = sp.window(x0, x1, y - depth, y + 0.5)
    m = win.poly(np.array([(x0, y), (x0 + 1.0, y - depth), (x1 - 1.0, y - depth), (x1, y)]))
    lines = 0.9 + 0.1 * np.cos(2 * np.pi * win.v / 0.45)
    win.paint(m, _rgb((236, 228, 206)) * lines[..., None])


_BOOKS = {
    # kind, cover colour, accent colour
    "red_hardcover": ("hardcover", (150, 28, 34), (214, 178, 90)),
    "navy_hardcover": ("hardcover", (30, 44, 90), (214, 178, 90)),
    "green_cloth": ("cloth", (46, 92, 62), (236, 226, 200)),
    "paperback": ("paperback", (236, 120, 40), (30, 40, 70)),
    "open_back": ("open", (120, 60, 110), (240, 236, 226)),
    "notebook": ("notebook", (30, 30, 32), (40, 40, 44)),
}


class Book(ObjectOccluder):
    """A book held up in both hands before the lower face, up to the nose or the mouth (landmark-placed).

    Hardcover, cloth, paperback, notebook or an open book's back; title, spine, page edges
    and the fingers round its sides drawn; record field ``level``."""

    name = "book"
    depth = 1.0  # held before the face
    mount = "held"
    styles = tuple(_BOOKS)
    HH = 36.0  # the cover's half height, units

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        level = ("nose", "mouth")[int(rng.integers(2))]
        top = float(_NOSE[1]) - 7.0 if level == "nose" else float(_MOUTH[1]) - 12.0
        tilt = float(rng.uniform(-7, 7))
        return (float(_NOSE[0]), top), tilt, {"level": level}

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-62.0, 62.0, -5.0, 2 * self.HH + 2.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        kind, cover, accent = _BOOKS[self.styles[variant]]
        skin = _skin_from(rng)
        hw, hh = float(rng.uniform(42.0, 50.0)), self.HH
        cy = hh
        spine_side = (-1.0, 1.0)[int(rng.integers(2))]
        base = _rgb(cover) * np.float32(rng.uniform(0.9, 1.1))
        acc = _rgb(accent)
        if kind == "open":  # the two halves of the cover and the spine, pages fanning above
            _page_edges(sp, -hw + 2.0, -1.0, 0.0, 2.2)
            _page_edges(sp, 1.0, hw - 2.0, 0.0, 2.2)
        else:
            _page_edges(sp, -hw + 1.5, hw - 1.5, 0.0, 1.4)
        sdf = _rrect_sdf(sp, 0.0, cy, hw, hh, 1.2 if kind != "notebook" else 3.5)
        m = _inside(sp, sdf)
        light = 0.92 + 0.1 * _smooth(hw, -hw, sp.u + 0.5 * (sp.v - np.float32(cy)))
        col = np.broadcast_to(base, (sp.h, sp.w, 3)).copy()
        if kind == "cloth":
            weave = (0.5 + 0.5 * np.cos(2 * np.pi * sp.u / 0.7)) * (0.5 + 0.5 * np.cos(2 * np.pi * sp.v / 0.7))
            col = col * (0.93 + 0.1 * weave + 0.03 * sp.noise(rng, 0.4))[..., None]
        elif kind == "hardcover":
            col = col * (1 + 0.035 * sp.noise(rng, 0.3))[..., None]
        elif kind == "paperback":  # an illustrated cover: a sky gradient, a sun, hills
            sky = _smooth(cy - hh, cy + hh * 0.3, sp.v)[..., None]
            col = base + sky * (_rgb((250, 214, 120)) - base)
            sun = _disc(sp, spine_side * -hw * 0.3, cy + 2.0, hh * 0.32)
            col = col + sun[..., None] * (_rgb((250, 246, 220)) - col)
            hills = _inside(sp, np.float32(cy + hh * 0.35) + 4.0 * np.sin(sp.u / 9.0) - sp.v)
            col = col + (1 - hills)[..., None] * (_rgb((60, 90, 70)) - col)
        elif kind == "open":
            fold = np.abs(sp.u)
            col = col * (0.75 + 0.3 * _smooth(hw, 4.0, fold))[..., None]
        col = col * light[..., None]
        bevel = np.exp(-(((sdf + 0.5) / 0.5) ** 2))
        col = col + (bevel * 30 * (sp.v < cy))[..., None] - (bevel * 25 * (sp.v > cy))[..., None]
        # Spine: a rounded band with bands of foil (a hinge groove beside it).
        if kind in ("hardcover", "cloth", "notebook"):
            sx = spine_side * (hw - 4.0)
            groove = np.exp(-(((sp.u - np.float32(sx - spine_side * 3.5)) / 0.45) ** 2))
            sl, ss = _tube((sp.u - np.float32(sx)) / 4.5, 16.0)
            on_spine = _smooth(4.5, 3.5, np.abs(sp.u - np.float32(sx)))[..., None]
            col = col * (1 - 0.35 * groove)[..., None]
            col = col + on_spine * (base * (0.55 + 0.55 * sl)[..., None] + (40 * ss)[..., None] - col)
            if kind == "hardcover":
                for by in (cy - hh + 6.0, cy + hh - 6.0):
                    band = _bands(sp.v - np.float32(by), 200.0, 1.2, sp.k) * on_spine[..., 0]
                    col = col + band[..., None] * (acc - col)
        if kind == "open":
            spine = _smooth(4.5, 3.5, np.abs(sp.u))[..., None]
            sl, ss = _tube(sp.u / 4.5, 16.0)
            col = col + spine * (base * 0.8 * (0.6 + 0.5 * sl)[..., None] + (30 * ss)[..., None] - col)
            letters = sp.lines(*[np.array([(0.0, cy - hh * 0.6 + 4.0 * i), (0.0, cy - hh * 0.6 + 4.0 * i + 2.4)])
                                 for i in range(6)], width=1.4)
            col = col + letters[..., None] * (acc - col)
        # Title: a panel with lines of "text" (cloth: a label; notebook: an elastic band).
        cx = -spine_side * 3.0
        if kind in ("hardcover", "cloth", "paperback"):
            if kind == "cloth":
                label = _inside(sp, _rrect_sdf(sp, cx, cy - hh * 0.45, hw * 0.45, hh * 0.2, 1.0))
                col = col + label[..., None] * (acc - col)
                txt_col = base * 0.7
            else:
                txt_col = acc
                frame = sp.lines(np.array([(cx - hw * 0.6, cy - hh * 0.75), (cx + hw * 0.6, cy - hh * 0.75)]),
                                 np.array([(cx - hw * 0.6, cy - hh * 0.15), (cx + hw * 0.6, cy - hh * 0.15)]), width=0.6)
                col = col + (frame * (kind == "hardcover"))[..., None] * (acc - col)
            title = _text_lines(sp, rng, cx - hw * 0.38, cx + hw * 0.38, cy - hh * 0.55, 2, 4.6, 2.6)
            author = _text_lines(sp, rng, cx - hw * 0.25, cx + hw * 0.25, cy - hh * 0.3, 1, 2.0, 1.2)
            col = col + np.maximum(title, author)[..., None] * (txt_col - col)
        elif kind == "notebook":
            band = _smooth(1.3, 0.9, np.abs(sp.u - np.float32(-spine_side * (hw - 7.0))))
            col = col * (1 - 0.5 * band)[..., None] + band[..., None] * 10
        sp.paint(m, col)
        # Both hands: fingers round the two side edges, in the lower half.
        y0 = cy + float(rng.uniform(-4.0, 8.0))
        for side in (-1.0, 1.0):
            _grip_fingers(sp, skin, side * hw, y0, side, n=4, length=9.0, gap=7.2)
        _settle(sp)
        sp.drop_shadow(0.0, 2.5, 2.0, 0.3)


_BOXES = {
    # kind, front colour, top colour, accent
    "cardboard": ("cardboard", (190, 146, 96), (206, 164, 112), (60, 50, 40)),
    "taped": ("taped", (186, 140, 90), (204, 160, 108), (214, 180, 130)),
    "gift_red": ("gift", (190, 30, 40), (206, 40, 50), (240, 200, 60)),
    "gift_blue": ("gift", (40, 90, 180), (52, 104, 196), (240, 240, 244)),
    "shoebox": ("shoebox", (236, 236, 232), (214, 74, 40), (30, 30, 34)),
    "white": ("plain", (240, 240, 236), (250, 250, 248), (150, 150, 150)),
}


class Box(ObjectOccluder):
    """A box held up in both hands before the lower face, up to the nose or the mouth (landmark-placed).

    Cardboard with tape, printed marks and a label, a gift box with ribbon and bow, a
    shoebox; record field ``level``."""

    name = "box"
    depth = 1.0  # held before the face
    mount = "held"
    styles = tuple(_BOXES)

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        level = ("nose", "mouth")[int(rng.integers(2))]
        top = float(_NOSE[1]) - 2.0 if level == "nose" else float(_MOUTH[1]) - 8.0
        tilt = float(rng.uniform(-6, 6))
        return (float(_NOSE[0]), top), tilt, {"level": level}

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-52.0, 52.0, -22.0, 58.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        kind, front_rgb, top_rgb, accent = _BOXES[self.styles[variant]]
        skin = _skin_from(rng)
        hw = float(rng.uniform(30.0, 40.0))
        hgt = 54.0
        depth, skew = float(rng.uniform(5.0, 8.0)), (-1.0, 1.0)[int(rng.integers(2))] * float(rng.uniform(3.0, 6.0))
        front = sp.poly(np.array([(-hw, 0.0), (hw, 0.0), (hw, hgt), (-hw, hgt)]))
        top = sp.poly(np.array([(-hw, 0.0), (hw, 0.0), (hw + skew, -depth), (-hw + skew, -depth)]))
        side_face = sp.poly(np.array([(np.sign(skew) * hw, 0.0), (np.sign(skew) * hw + skew, -depth),
                                      (np.sign(skew) * hw + skew, hgt - depth), (np.sign(skew) * hw, hgt)]))
        fr, tp, acc = _rgb(front_rgb), _rgb(top_rgb), _rgb(accent)
        grain = 1 + 0.03 * sp.noise(rng, 0.5)
        if kind in ("cardboard", "taped"):
            grain = grain * (0.97 + 0.03 * np.cos(2 * np.pi * sp.v / 1.4))  # corrugation showing through
        sp.paint(side_face, fr * (0.62 * grain)[..., None])
        tcol = tp * grain[..., None]
        fcol = fr * (grain * (0.9 + 0.08 * _smooth(hgt, 0.0, sp.v)))[..., None]
        if kind == "shoebox":  # a lid overlapping the top of the front
            lid = (sp.v < 9.0)[..., None]
            fcol = np.where(lid, tp * (0.92 * grain)[..., None], fcol)
            fcol = fcol * (1 - 0.35 * np.exp(-(((sp.v - 9.0) / 0.5) ** 2)))[..., None]
            stripe = _bands(sp.v - 14.0, 200.0, 2.0, sp.k) * (sp.u < hw - 12.0)
            fcol = fcol + stripe[..., None] * (tp * 0.9 - fcol)
            label = _inside(sp, _rrect_sdf(sp, hw - 8.0, 30.0, 5.5, 8.0, 0.5))
            text = _text_lines(sp, rng, hw - 12.0, hw - 4.5, 25.0, 4, 3.0, 1.0)
            fcol = fcol + label[..., None] * (_rgb((250, 250, 246)) * (1 - 0.75 * text)[..., None] - fcol)
        if kind in ("cardboard", "taped"):  # the flaps' seam on the top, tape, printed marks, a label
            seam = np.exp(-(((sp.u - np.float32(skew) * (-sp.v / depth) * 0.5 - 0.0) / 0.3) ** 2))
            tcol = tcol * (1 - 0.45 * seam)[..., None]
            if kind == "taped":
                tape_t = _smooth(4.5, 3.5, np.abs(sp.u - np.float32(skew * 0.5) * (-sp.v / depth)))
                tape_f = _smooth(4.5, 3.5, np.abs(sp.u)) * (sp.v < 14.0)
                tcol = tcol + (0.55 * tape_t)[..., None] * (acc * 1.1 - tcol)
                fcol = fcol + (0.55 * tape_f)[..., None] * (acc * 1.1 - fcol)
            for k in range(2):  # "this way up" arrows
                ax = -hw + 7.0 + k * 5.0
                arrow = sp.lines(np.array([(ax, 22.0), (ax, 13.0)]), np.array([(ax - 2.0, 15.5), (ax, 13.0), (ax + 2.0, 15.5)]),
                                 width=0.9)
                fcol = fcol + (0.85 * arrow)[..., None] * (_rgb((40, 36, 32)) - fcol)
            label = _inside(sp, _rrect_sdf(sp, hw * 0.45, 30.0, hw * 0.3, 7.0, 0.6))
            bars = _aa_stripe(sp.u * 3.1 + np.floor(sp.u * 0.9) * 1.7, 2.0, 0.9, sp.k * 0.5) * (np.abs(sp.v - 33.5) < 2.0)
            lines = _text_lines(sp, rng, hw * 0.2, hw * 0.7, 25.5, 2, 2.2, 0.9)
            lcol = _rgb((246, 246, 242)) * (1 - 0.8 * np.maximum(bars * (np.abs(sp.u - hw * 0.45) < hw * 0.25), lines))[..., None]
            fcol = fcol + label[..., None] * (lcol - fcol)
        elif kind == "gift":  # wrapping paper with dots, a ribbon cross and a bow
            fu, fv = (sp.u / 6.0) % 1.0 - 0.5, (sp.v / 6.0) % 1.0 - 0.5
            dots = np.clip((1.1 - np.sqrt(fu**2 + fv**2) * 6.0) * sp.k + 0.5, 0, 1)
            fcol = fcol + (0.8 * dots)[..., None] * (acc * 0.95 - fcol)
            rib_f = _smooth(3.2, 2.6, np.abs(sp.u))
            rib_t = _smooth(3.2, 2.6, np.abs(sp.u - np.float32(skew * 0.5) * (-sp.v / depth)))
            rib_col = acc * (0.85 + 0.2 * np.cos(2 * np.pi * sp.u / 1.2))[..., None]
            fcol = fcol + rib_f[..., None] * (rib_col - fcol)
            tcol = tcol + rib_t[..., None] * (rib_col * 1.05 - tcol)
        elif kind == "plain":
            emboss = sp.lines(np.array([(-hw * 0.3, 20.0), (hw * 0.3, 20.0)]), width=0.5)
            fcol = fcol * (1 - 0.12 * emboss)[..., None]
        sp.paint(top, tcol * 1.05)
        edge = sp.lines(np.array([(-hw, 0.0), (hw, 0.0)]), width=0.5)
        sp.paint(front, fcol)
        sp.paint(edge * 0.5, _WHITE)
        if kind == "gift":  # the bow on top
            bx, by = skew * 0.5, -depth * 0.5
            for sgn in (-1.0, 1.0):
                loop = sp.ellipse((bx + sgn * 5.0, by - 2.5), (5.5, 3.4), angle=sgn * -25.0)
                hole = sp.ellipse((bx + sgn * 5.0, by - 2.5), (3.0, 1.4), angle=sgn * -25.0)
                lam, spec, _ = _sphere(sp, bx + sgn * 5.0, by - 2.5, 5.5, 3.4, 12.0)
                sp.paint(np.clip(loop - 0.8 * hole, 0, 1), acc * (0.55 + 0.5 * lam)[..., None] + (60 * spec)[..., None])
            sp.paint(sp.ellipse((bx, by - 1.5), (2.0, 2.0)), acc * 0.8)
        for side in (-1.0, 1.0):
            _grip_fingers(sp, skin, side * hw, 24.0 + float(rng.uniform(-4.0, 4.0)), side, n=4, length=8.0, gap=7.2)
        _settle(sp)
        sp.drop_shadow(0.0, 2.5, 2.0, 0.3)


_ENVELOPES = {
    # side shown, paper colour, accent colour
    "white_front": ("front", (246, 246, 242), (40, 60, 120)),
    "white_back": ("back", (244, 244, 240), (160, 30, 40)),
    "airmail": ("airmail", (246, 246, 242), (200, 30, 40)),
    "kraft": ("back", (196, 158, 108), (120, 80, 40)),
    "pink_card": ("seal", (246, 196, 206), (196, 30, 60)),
    "blue": ("front", (190, 212, 236), (30, 40, 80)),
}


class Envelope(ObjectOccluder):
    """An envelope held up before the mouth and chin by a thumb on a corner (landmark-placed).

    Address, stamp and postmark, or the flaps and a seal; airmail stripes or kraft paper."""

    name = "envelope"
    depth = 1.0  # held before the face
    mount = "held"
    styles = tuple(_ENVELOPES)
    render_keys = ("side",)

    def _layout(self, rng: np.random.Generator) -> tuple[tuple[float, float], float, dict[str, Any]]:
        side, name = _pick_side(rng)
        tilt = side * float(rng.uniform(3, 20))
        return (float(_MOUTH[0]) + side * 6.0, float(_MOUTH[1]) + 6.0), tilt, {"side": name}

    def _extent(self, extra: dict[str, Any]) -> tuple[float, float, float, float]:
        return (-50.0, 50.0, -30.0, 44.0)

    def _render(self, rng: np.random.Generator, sp: _Sprite, variant: int, extra: dict[str, Any]) -> None:
        shown, paper, accent = _ENVELOPES[self.styles[variant]]
        skin = _skin_from(rng)
        d = _side_sign(extra)
        hw = float(rng.uniform(30.0, 38.0))
        hh = hw * float(rng.uniform(0.58, 0.66))
        sdf = _rrect_sdf(sp, 0.0, 0.0, hw, hh, 0.6)
        m = _inside(sp, sdf)
        pap, acc = _rgb(paper), _rgb(accent)
        bend = 0.94 + 0.08 * _smooth(hw, -hw, sp.u * 0.8 + sp.v)  # the paper bows a little
        col = pap * (bend * (1 + 0.015 * sp.noise(rng, 0.4)))[..., None]
        if shown in ("back", "seal"):  # the flaps' folds: two side triangles, bottom and top flap
            flap_y = hh * float(rng.uniform(0.05, 0.25))
            fold = sp.lines(np.array([(-hw, -hh), (0.0, flap_y), (hw, -hh)]), width=0.45)
            side_folds = sp.lines(np.array([(-hw, hh), (-hw * 0.42, flap_y * 0.3 + hh * 0.15)]),
                                  np.array([(hw, hh), (hw * 0.42, flap_y * 0.3 + hh * 0.15)]), width=0.35)
            under = sp.poly(np.array([(-hw, -hh), (0.0, flap_y), (hw, -hh)]))
            col = col * (1 - 0.06 * under - 0.3 * fold - 0.18 * side_folds)[..., None]
            col = col + (0.25 * sp.lines(np.array([(-hw, -hh + 0.6), (0.0, flap_y + 0.6), (hw, -hh + 0.6)]), width=0.3))[..., None] * 60
            if shown == "seal":
                seal = _disc(sp, 0.0, flap_y - 1.0, 4.2)
                lam, spec, _ = _sphere(sp, 0.0, flap_y - 1.0, 4.2, 4.2, 16.0)
                heart = sp.poly(np.array([(0.0, flap_y + 1.2), (-2.4, flap_y - 1.2), (-1.4, flap_y - 2.8), (0.0, flap_y - 1.8),
                                          (1.4, flap_y - 2.8), (2.4, flap_y - 1.2)]))
                scol = acc * (0.5 + 0.6 * lam - 0.25 * heart)[..., None] + (90 * spec)[..., None]
                col = col + seal[..., None] * (scol - col)
        else:
            if shown == "airmail":  # the red and blue border
                border = _smooth(-3.2, -2.6, sdf)
                stripes = _bands(sp.u + sp.v, 6.0, 3.0, sp.k)
                band = acc + (1 - stripes)[..., None] * (_rgb((30, 60, 150)) - acc)
                col = col + border[..., None] * (band - col)
            # Address lines, a stamp (perforated edge) and a postmark.
            addr = _text_lines(sp, rng, -hw * 0.15, hw * 0.55, hh * 0.05, 3, 3.6, 1.1)
            col = col + (0.85 * addr)[..., None] * (acc - col)
            sx, sy = hw - 9.0, -hh + 9.5
            perf = _rrect_sdf(sp, sx, sy, 5.2, 6.2, 0.2) + 0.35 * np.maximum(np.cos(2 * np.pi * (sp.u - np.float32(sx)) / 1.3),
                                                                              np.cos(2 * np.pi * (sp.v - np.float32(sy)) / 1.3))
            stamp = _inside(sp, perf)
            pic = _rgb([(40, 110, 170), (190, 60, 50), (60, 130, 70)][int(rng.integers(3))])
            inner = _inside(sp, _rrect_sdf(sp, sx, sy, 4.0, 5.0, 0.2))
            scene = pic * (0.8 + 0.3 * _smooth(sy + 5, sy - 5, sp.v))[..., None]
            hill = _inside(sp, np.float32(sy + 1.5) + 1.5 * np.sin((sp.u - np.float32(sx)) * 0.8) - sp.v)
            scene = scene + (1 - hill)[..., None] * (pic * 0.55 - scene)
            scol = _rgb((250, 250, 246)) + inner[..., None] * (scene - _rgb((250, 250, 246)))
            col = col + stamp[..., None] * (scol - col)
            pm = sp.ellipse((sx - 8.0, sy + 2.0), (5.0, 5.0), width=0.4)
            waves = sp.lines(*[np.stack([np.linspace(sx - 6.0, sx + 6.0, 16), sy + 2.0 + k * 1.6
                                         + 0.6 * np.sin(np.linspace(0, 4 * np.pi, 16))], 1) for k in (-1, 0, 1)], width=0.35)
            col = col + (0.6 * np.maximum(pm, waves))[..., None] * (_rgb((40, 40, 50)) - col)
        edge = np.exp(-(((sdf + 0.3) / 0.35) ** 2))
        col = col * (1 - 0.12 * edge)[..., None]
        sp.paint(m, col)
        # The thumb on the front at the lower outer corner.
        base_p = np.array((d * (hw + 6.0), hh + 4.0))
        tip = np.array((d * (hw - 6.5), hh - 8.0))
        palm = sp.poly(np.array([(hw - 1.0, hh + 2.0), (hw + 10.0, hh - 6.0), (hw + 16.0, hh + 20.0), (hw + 2.0, hh + 22.0)]) * (d, 1))
        sp.paint(palm, skin(0.78 + 0.2 * _smooth(hw + 16, hw, sp.u * d)))
        _finger(sp, base_p, tip, 10.0, skin, nail=True, fade_base=False, knuckles=False)
        _settle(sp)
        sp.drop_shadow(d * -0.5, 2.0, 1.8, 0.3)
