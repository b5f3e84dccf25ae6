"""Decoding image files that come from outside: packs, photo folders, occluders, masks.

One place that (1) reads the header before decoding, so a small file that claims a
gigapixel image — a decompression bomb — is refused without allocating it, and a ``.bin``
item of the wrong size is refused without decoding it; (2) decodes with OpenCV using
``cv2.imread``'s conventions, the ones the reference evaluation code uses, so pixels match
theirs; (3) names the file or pack item in every error.

Conventions for ``mode="rgb"`` (and ``"gray"``), as ``cv2.imread``: EXIF orientation is
applied, an alpha channel is dropped (not composited), grey is replicated to three
channels, 16-bit samples keep their high byte. ``mode="rgba"`` keeps alpha (opaque when the
file has none) and scales 16-bit samples by 1/257; it ignores EXIF orientation.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from recogbench.data import DataError

__all__ = ["MAX_PIXELS", "ImageHeader", "decode_image", "read_file", "read_header", "read_image"]

MAX_PIXELS = 80_000_000
"""Largest image accepted (width × height). 80 MP is far above any face photo, below the
point where Pillow warns of a decompression bomb, and costs at most ~240 MB decoded."""

Mode = Literal["rgb", "rgba", "gray"]


_SIGNATURES = {b"\x89PNG": "PNG", b"\xff\xd8": "JPEG", b"GIF8": "GIF", b"BM": "BMP", b"II*\x00": "TIFF",
               b"MM\x00*": "TIFF", b"RIFF": "WebP"}
"""Magic prefixes, only to say "a corrupt PNG" rather than "not an image" in messages."""


class ImageHeader(NamedTuple):
    """What an image file's header says, before any pixel is decoded."""

    width: int
    height: int
    format: str


def read_header(data: bytes, name: str) -> ImageHeader:
    """Width, height (pixels) and format of encoded image bytes, from the header only
    (Pillow's lazy open). Raises DataError naming ``name`` for anything unreadable."""
    if not data:
        raise DataError(f"{name}: empty file (0 bytes)")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            fmt = im.format or "image"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning arrives here only where warnings are errors (-W error, pytest).
        raise DataError(f"{name}: refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        claimed = next((fmt for magic, fmt in _SIGNATURES.items() if data.startswith(magic)), None)
        what = f"corrupt or truncated {claimed} header" if claimed else "not an image (no known image format)"
        raise DataError(f"{name}: {what}") from None
    except Exception as exc:  # a hostile header can raise anything from struct.error to SyntaxError
        raise DataError(f"{name}: unreadable image header ({type(exc).__name__}: {exc})") from None
    return ImageHeader(int(width), int(height), fmt)


def decode_image(
    data: bytes,
    name: str,
    *,
    mode: Mode = "rgb",
    size: tuple[int, int] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, WebP, BMP, TIFF, ...) to uint8.

    Returns (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) grey for ``mode`` rgb, rgba, gray.
    ``size``: the only (width, height) accepted, checked on the header before decoding.
    Raises DataError naming ``name``: empty, not an image, too large, wrong size, corrupt or
    truncated data, unsupported sample type.
    """
    import cv2

    header = read_header(data, name)
    w, h = header.width, header.height
    if w * h > max_pixels:
        raise DataError(
            f"{name}: {header.format} image of {w}x{h} pixels is over the {max_pixels / 1e6:g}-megapixel "
            "limit for one image (a possible decompression bomb); downscale it"
        )
    # EXIF orientation may swap width and height when decoding, so compare unordered here
    # and exactly after decoding.
    if size is not None and sorted((w, h)) != sorted(size):
        raise DataError(f"{name}: image is {w}x{h} pixels, expected {size[0]}x{size[1]}")
    flag = {"rgb": cv2.IMREAD_COLOR, "gray": cv2.IMREAD_GRAYSCALE, "rgba": cv2.IMREAD_UNCHANGED}[mode]
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error:
        img = None
    if img is None:
        raise DataError(f"{name}: cannot decode image (corrupt or truncated {header.format} data)")
    if mode == "rgb":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif mode == "rgba":
        img = _to_rgba(img, name)
    if size is not None and (img.shape[1], img.shape[0]) != tuple(size):
        raise DataError(f"{name}: image decodes to {img.shape[1]}x{img.shape[0]} pixels, expected {size[0]}x{size[1]}")
    if img.dtype != np.uint8:  # IMREAD_COLOR/GRAYSCALE always give 8 bits; guard the contract
        raise DataError(f"{name}: unsupported sample type {img.dtype}")
    return img


def _to_rgba(img: np.ndarray, name: str) -> np.ndarray:
    import cv2

    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DataError(f"{name}: unsupported sample type {img.dtype} (expected 8 or 16 bit)")
    if img.ndim == 2:
        img = img[:, :, None]
    channels = img.shape[2]
    if channels == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    if channels == 2:  # grey + alpha
        return np.concatenate([np.repeat(img[:, :, :1], 3, axis=2), img[:, :, 1:]], axis=2)
    if channels in (1, 3):
        rgb = np.repeat(img, 3, axis=2) if channels == 1 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    raise DataError(f"{name}: unsupported image with {channels} channels")


def read_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of ``path``; DataError naming it when missing, a folder or unreadable."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected an image file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_image(
    path: str | os.PathLike[str],
    *,
    mode: Mode = "rgb",
    size: tuple[int, int] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """:func:`decode_image` of a file (any path, non-ASCII included); errors name the path."""
    return decode_image(read_file(path), str(path), mode=mode, size=size, max_pixels=max_pixels)
