"""Synthetic object occluders: sunglasses, medical mask, hand, scarf, cap, microphone, cup.

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
(scaled with the face). ``variant`` pins the style (an index into the class's ``styles``);
``None`` draws it per face. Records carry ``variant``, ``style``, ``look``, ``scale``,
``angle_deg`` (the sprite's total counter-clockwise rotation: pose plus jitter),
``dx``/``dy`` (the jitter shift in pixels of this face) and the pose fields.
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

__all__ = ["ObjectOccluder", "Sunglasses", "MedicalMask", "Hand", "Scarf", "Cap", "Microphone", "Cup"]

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
    and its anchor pixel."""

    rgba: np.ndarray
    ox: float
    oy: float


def _bake(sp: _Sprite) -> _Baked:
    rgba = np.dstack([sp.pm, sp.a])
    rgba.setflags(write=False)
    return _Baked(rgba, sp.ox, sp.oy)


def _composite(face: np.ndarray, sprite: _Baked, x: float, y: float, angle: float, scale: float) -> np.ndarray:
    """Scale ``sprite`` and rotate it ``angle`` degrees (counter-clockwise) about its anchor,
    put the anchor at image point (x, y) and alpha-blend it over a copy of ``face``:
    ``round(alpha * sprite + (1 - alpha) * face)`` (the sprite is premultiplied)."""
    h, w = face.shape[:2]
    sh, sw = sprite.rgba.shape[:2]
    m = cv2.getRotationMatrix2D((sprite.ox, sprite.oy), angle, scale)
    m[0, 2] += x - sprite.ox
    m[1, 2] += y - sprite.oy
    corners = np.array([[0, 0, 1], [sw - 1, 0, 1], [0, sh - 1, 1], [sw - 1, sh - 1, 1]], np.float64) @ m.T
    x0, y0 = (max(0, int(math.floor(c)) - 1) for c in corners.min(axis=0))
    x1, y1 = min(w, int(math.ceil(corners[:, 0].max())) + 2), min(h, int(math.ceil(corners[:, 1].max())) + 2)
    out = face.copy()
    if x0 >= x1 or y0 >= y1:
        return out
    m[0, 2] -= x0
    m[1, 2] -= y0
    dst = cv2.warpAffine(sprite.rgba, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    blended = face[y0:y1, x0:x1] * (1.0 - dst[..., 3:])
    blended += dst[..., :3]
    np.rint(blended, out=blended)
    out[y0:y1, x0:x1] = np.clip(blended, 0, 255).astype(np.uint8)
    return out


class ObjectOccluder(Occluder):
    """A procedurally drawn object placed by the five landmarks with seeded jitter.

    Subclasses set ``name`` and ``styles`` and implement :meth:`_layout` (where, in
    template units, and at what pose angle) and :meth:`_render` (the sprite).
    """

    name = "object"
    styles: tuple[str, ...] = ("default",)
    looks = 4  # seeded shape/texture variants of each style, drawn once and cached
    render_keys: tuple[str, ...] = ()  # pose fields the drawing depends on
    scale_jitter = 0.12
    angle_jitter = 10.0
    shift_jitter = 3.0
    cache_size = 64

    def __init__(self, jitter: float = 1.0, variant: int | None = None) -> None:
        jitter = float(jitter)
        if not (math.isfinite(jitter) and jitter >= 0):
            raise ValueError(f"{self.name}: jitter must be a finite number >= 0, got {jitter}")
        if variant is not None:
            variant = int(variant)
            if not 0 <= variant < len(self.styles):
                known = ", ".join(f"{i}={s}" for i, s in enumerate(self.styles))
                raise ValueError(f"{self.name}: variant must be one of {known}; got {variant}")
        self.jitter, self.variant = jitter, variant
        self._sprites: OrderedDict[tuple[Any, ...], _Baked] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # picklable for worker processes, cache left behind
        return {k: v for k, v in self.__dict__.items() if k not in ("_sprites", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._sprites, self._lock = OrderedDict(), threading.Lock()

    def params(self) -> dict[str, Any]:
        return {"occluder": self.name, "jitter": self.jitter, "variant": self.variant}

    def occlude(self, face: np.ndarray, rng: np.random.Generator) -> Occlusion:
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
        out = _composite(face, sprite, s * ax + tx + dx, s * ay + ty + dy, total, scale)
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
    styles = tuple(_MASKS)

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
    f = (q / period) % 1.0
    d = np.minimum(f, duty - f) * period  # distance inside the stripe, negative outside
    d = np.where(f > duty, -np.minimum(f - duty, 1.0 - f) * period, d)
    return np.clip(d * k + 0.5, 0, 1)


class Scarf(ObjectOccluder):
    """Scarf pulled over the chin up to the mouth or the nose; knit, stripes or tartan (landmark-placed)."""

    name = "scarf"
    styles = tuple(_SCARVES)
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


class Hand(ObjectOccluder):
    """A hand over the mouth or one eye, fingers, nails and skin tones drawn (landmark-placed)."""

    name = "hand"
    styles = tuple(_SKIN)
    render_keys = ("hand",)
    TARGETS = ("any", "mouth", "eye")

    def __init__(self, jitter: float = 1.0, variant: int | None = None, target: str = "any") -> None:
        super().__init__(jitter, variant)
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
        warm = np.array([1.0, 0.93, 0.88], np.float32)  # shadows on skin are warmer

        def skin_col(shade: np.ndarray) -> np.ndarray:
            s = shade[..., None]
            return skin * s * (warm + (1 - warm) * np.clip(s, 0, 1))

        # Forearm and palm (the back of the hand).
        arm = np.array([(-15.0, 26), (-17.5, 80), (17.5, 80), (16.0, 26)])
        palm = np.array([(-19.5, -12), (-9, -15), (4, -15.5), (16, -14), (20, -8), (21.5, 6), (21, 18), (16.5, 29),
                         (-15.5, 29), (-19.5, 16), (-20.5, 2)])
        m = sp.poly(arm * (flip, 1), palm * (flip, 1))
        shade = 0.74 + 0.3 * np.sqrt(np.clip(1 - (sp.u / 23.0) ** 2, 0, 1)) - 0.05 * _smooth(20, 60, sp.v)
        sp.paint(m, skin_col(shade))
        # Thumb (seen from the side), then the fingers from the little finger to the index.
        fingers = [((flip * 14.0, 19.0), (flip * 26.0, 7.0), (flip * 33.5, -3.0), 10.5)]
        for (x, wdt, length, fan), f in zip(_FINGERS, lengths):
            a = math.radians(fan * spread)
            tip = (x + length * f * math.sin(a), -11.0 - length * f * math.cos(a))
            fingers.append(((flip * x, -11.0), (flip * tip[0], tip[1]), None, wdt))
        for i, (p0, p1, p2, wdt) in enumerate(fingers):
            segs = [(p0, p1), (p1, p2)] if p2 is not None else [(p0, p1)]
            for j, (a0, a1) in enumerate(segs):
                last = j == len(segs) - 1
                self._finger(sp, np.asarray(a0), np.asarray(a1), wdt * (0.93 if j else 1.0), skin_col,
                             nail=last, fade_base=(i > 0 or j > 0), knuckles=(i > 0))
        sp.soften(0.3)
        sp.drop_shadow(1.5, 2.5, 2.0, 0.3)

    @staticmethod
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
