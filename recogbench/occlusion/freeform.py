"""Free-form brush-stroke holes (``freeform``), as in the inpainting literature.

Irregular masks made of random thick polylines with round joints (DeepFill v2's
free-form masks; the hole-ratio bins 0-10 % … 50-60 % of the partial-convolution
paper). Strokes are added until the hole covers at least the bin's lower bound; if the
last stroke overshoots the upper bound the face is redrawn with thinner strokes, and on
the last attempt the overshooting stroke is cut short, so the coverage of the final mask
always lies in ``[lo, hi)`` (and is > 0 for ``0-10``).

Coverage is measured on the pixels that actually change: with ``fill=black`` a stroke
over already-black face pixels changes nothing there, and those pixels are neither in
the mask nor counted. Everything random comes from the ``rng`` argument.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from recogbench.occlusion import FILLS, Occluder, Occlusion, fill_pixels, finish

#: The hole-ratio bins (percent of the image), lower bound inclusive, upper exclusive.
COVERAGE_BINS: dict[str, tuple[int, int]] = {
    "0-10": (0, 10),
    "10-20": (10, 20),
    "20-30": (20, 30),
    "30-40": (30, 40),
    "40-50": (40, 50),
    "50-60": (50, 60),
}

# Stroke geometry on the 112×112 face (scaled by H/112 for other sizes).
_VERTICES = (3, 10)          # vertices per stroke, [low, high)
_SEGMENT = (8.0, 24.0)       # segment length, px
_WIDTH = (5.0, 13.0)         # brush width, px
_MAX_TURN = 0.6 * math.pi    # direction change at each vertex, ± rad
_WIDTH_DECAY = (1.0, 0.6, 0.35)  # width factor per attempt; the last attempt trims
_MAX_STROKES = 400           # per attempt; a guard, never reached on ordinary faces


class FreeForm(Occluder):
    """Irregular brush-stroke holes whose coverage falls in a bin (``freeform:coverage=20-30``).

    ``coverage``: one of ``0-10``, ``10-20``, ``20-30``, ``30-40``, ``40-50``, ``50-60``
    (percent of the image, lower bound inclusive) or ``any`` (a bin drawn per face);
    ``fill``: black, white, gray or noise.
    """

    name = "freeform"

    def __init__(self, coverage: str = "any", fill: str = "black") -> None:
        coverage = str(coverage).strip().rstrip("%")
        if coverage != "any" and coverage not in COVERAGE_BINS:
            raise ValueError(
                f"coverage must be 'any' or one of {', '.join(COVERAGE_BINS)}, got {coverage!r}"
            )
        if fill not in FILLS:
            raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
        self.coverage, self.fill = coverage, fill

    def params(self) -> dict[str, Any]:
        return {"occluder": self.name, "coverage": self.coverage, "fill": self.fill}

    def occlude(self, face: np.ndarray, rng: np.random.Generator) -> Occlusion:
        if face.ndim != 3 or face.shape[2] != 3 or face.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 face, got {face.shape} {face.dtype}")
        h, w = face.shape[:2]
        n = h * w
        bin_name = self.coverage
        if bin_name == "any":
            bin_name = list(COVERAGE_BINS)[int(rng.integers(len(COVERAGE_BINS)))]
        lo, hi = COVERAGE_BINS[bin_name]
        need = max((lo * n + 99) // 100, 1)   # smallest count with count/n >= lo %, and > 0
        most = (hi * n - 1) // 100            # largest count with count/n < hi %

        # What the hole is filled with, decided up front, so the pixels a stroke would not
        # change (fill equal to the face) are known and left out of the count.
        value = fill_pixels(self.fill, (h, w, 3), rng)
        ne = face != value
        changeable = ne[..., 0] | ne[..., 1] | ne[..., 2]  # (faster than .any(axis=2))
        if int(changeable.sum()) < need:
            raise ValueError(
                f"freeform coverage {bin_name}: only {changeable.mean():.1%} of this face differs "
                f"from the {self.fill} fill, so no hole can cover {lo}% of it; use fill=noise"
            )
        chg = changeable.view(np.uint8)
        scale = h / 112.0

        last = len(_WIDTH_DECAY) - 1
        for attempt, factor in enumerate(_WIDTH_DECAY):
            drawn = np.zeros((h, w), np.uint8)
            count = strokes = 0
            trimmed = False
            while count < need and strokes < _MAX_STROKES:
                pts, width = _stroke(rng, h, w, scale, factor)
                strokes += 1
                if attempt < last:
                    for p0, p1 in zip(pts[:-1], pts[1:]):
                        cv2.line(drawn, p0, p1, 1, width)
                    count = int(np.count_nonzero(drawn & chg))
                else:
                    count, trimmed = _draw_bounded(drawn, chg, pts, width, count, need, most)
            if count < need:  # only with a pathological face: close the gap pixel by pixel
                count = _top_up(drawn, chg, count, need, pts[-1])
            if count <= most:
                break

        mask = drawn.view(bool) & changeable
        out = face.copy()
        out[mask] = value if np.isscalar(value) else value[mask]
        record = {
            "occluder": self.name,
            "coverage_bin": bin_name,
            "n_strokes": strokes,
            "fill": self.fill,
            "attempt": attempt + 1,
            "trimmed": trimmed,
        }
        return finish(face, out, record)


def _stroke(
    rng: np.random.Generator, h: int, w: int, scale: float, factor: float
) -> tuple[list[tuple[int, int]], int]:
    """One random polyline: integer vertices (x, y) and a brush width in pixels.

    Every stroke consumes the same number of draws (one ``rng.random`` call), so the
    stream stays aligned whatever the stroke looks like."""
    u = rng.random(5 + 2 * (_VERTICES[1] - 2)).tolist()
    k = _VERTICES[0] + int(u[0] * (_VERTICES[1] - _VERTICES[0]))
    x, y, heading = u[1] * w, u[2] * h, u[3] * 2 * math.pi
    width = max(1, round((_WIDTH[0] + (_WIDTH[1] - _WIDTH[0]) * u[4]) * scale * factor))
    pts = [(round(x), round(y))]
    seg0, seg_span = _SEGMENT[0] * scale, (_SEGMENT[1] - _SEGMENT[0]) * scale
    for i in range(k - 1):
        heading += (2.0 * u[5 + 2 * i] - 1.0) * _MAX_TURN
        length = seg0 + seg_span * u[6 + 2 * i]
        x += length * math.cos(heading)
        y += length * math.sin(heading)
        pts.append((round(x), round(y)))
    return pts, width


def _draw_bounded(
    drawn: np.ndarray, chg: np.ndarray, pts: list[tuple[int, int]], width: int,
    count: int, need: int, most: int,
) -> tuple[int, bool]:
    """Draw a stroke segment by segment without letting the count pass ``most``: the
    segment that would overshoot is cut short (its pixels kept in drawing order, up to
    the number needed to reach ``need``) and the rest of the stroke is dropped."""
    for p0, p1 in zip(pts[:-1], pts[1:]):
        before = drawn.copy()
        cv2.line(drawn, p0, p1, 1, width)
        new = drawn & ~before & 1
        gained = int(np.count_nonzero(new & chg))
        if count + gained <= most:
            count += gained
            continue
        drawn[...] = before
        if count >= need:
            return count, True
        ys, xs = np.nonzero(new)
        d = np.array(p1, float) - np.array(p0, float)
        along = (xs - p0[0]) * d[0] + (ys - p0[1]) * d[1]
        order = np.argsort(along, kind="stable")
        ys, xs = ys[order], xs[order]
        cum = np.cumsum(chg[ys, xs])
        cut = int(np.searchsorted(cum, need - count)) + 1  # first index where cum reaches it
        drawn[ys[:cut], xs[:cut]] = 1
        return need, True
    return count, False


def _top_up(drawn: np.ndarray, chg: np.ndarray, count: int, need: int, near: tuple[int, int]) -> int:
    """Add the changeable pixels nearest ``near`` until the count reaches ``need``."""
    ys, xs = np.nonzero(chg & ~drawn & 1)
    order = np.argsort((xs - near[0]) ** 2 + (ys - near[1]) ** 2, kind="stable")[: need - count]
    drawn[ys[order], xs[order]] = 1
    return need
