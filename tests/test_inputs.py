"""Broken and unusual input, case by case: damaged image files, odd pixel formats, images of
the wrong size or absurd size, and fold layouts that cannot be scored — through the
decoder, both image sources and a whole run."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import cv2
import numpy as np
import pytest
from PIL import Image

from recogbench import imageio
from recogbench.config import RunConfig
from recogbench.data import FACE_SIZE, DataError, PairProtocol
from recogbench.imageio import decode_image, read_header, read_image
from recogbench.pipeline import run
from recogbench.protocols import (
    EncodedImageSource,
    FileImageSource,
    load_cfp,
    load_pairs_csv,
    load_protocol,
    parse_cfp_pairs,
)

from .conftest import smooth_faces

FACE = smooth_faces(1, seed=3)[0]  # (112, 112, 3) RGB


def encode(img: np.ndarray, ext: str = ".png", *params: int) -> bytes:
    """cv2.imencode of an RGB (or grey, or RGBA) uint8/uint16 image."""
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok
    return buf.tobytes()


def pil_encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid greyscale PNG of zeros: a few hundred KB that decode to width×height bytes."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    data = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def _flip_middle(data: bytes) -> bytes:
    out = bytearray(data)
    out[len(out) // 2] ^= 0xFF
    return bytes(out)


_PNG = encode(FACE)
_JPG = encode(FACE, ".jpg", cv2.IMWRITE_JPEG_QUALITY, 95)

BROKEN: dict[str, tuple[Callable[[], bytes], str]] = {
    # case: (bytes, what the error must say after "<item>: ")
    "zero_bytes": (lambda: b"", r"empty file \(0 bytes\)"),
    "text_file": (lambda: b"name,path\nalice,a.jpg\n", r"not an image \(no known image format\)"),
    "html_error_page": (lambda: b"<!DOCTYPE html><html><body>404 Not Found</body></html>", r"not an image"),
    "png_header_only": (lambda: _PNG[:12], r"corrupt or truncated PNG header"),
    "jpeg_header_only": (lambda: _JPG[:3], r"corrupt or truncated JPEG header"),
    "png_truncated_half": (lambda: _PNG[: len(_PNG) // 2], r"cannot decode image \(corrupt or truncated PNG data\)"),
    "png_truncated_tail": (lambda: _PNG[:-20], r"cannot decode image \(corrupt or truncated PNG data\)"),
    "png_bit_flip": (lambda: _flip_middle(_PNG), r"cannot decode image \(corrupt or truncated PNG data\)"),
    "jpeg_truncated_half": (lambda: _JPG[: len(_JPG) // 2], r"cannot decode image \(corrupt or truncated JPEG data\)"),
    "jpeg_missing_end_marker": (lambda: _JPG[:-2], r"cannot decode image \(corrupt or truncated JPEG data\)"),
    "wrong_size_100": (lambda: encode(cv2.resize(FACE, (100, 100))), r"image is 100x100 pixels, expected 112x112"),
    "wrong_size_250x112": (lambda: encode(np.zeros((112, 250, 3), np.uint8)), r"image is 250x112 pixels, expected 112x112"),
    "one_pixel": (lambda: encode(np.zeros((1, 1, 3), np.uint8)), r"image is 1x1 pixels, expected 112x112"),
    # Pillow warns about this one before our limit refuses it; with warnings as errors
    # (as under pytest) its warning is the refusal.
    "bomb_12000x12000": (
        lambda: png_bomb(12000, 12000),
        r"(PNG image of 12000x12000 pixels is over the 80-megapixel limit|refused as a possible decompression bomb)",
    ),
}
"""Every damaged item a downloaded pack or photo folder has been seen to contain, and a hostile one."""


GREY = cv2.cvtColor(FACE, cv2.COLOR_RGB2GRAY)
RGBA = np.dstack([FACE, np.tile(np.arange(112, dtype=np.uint8) * 2, (112, 1))])  # alpha 0..222
WIDE = FACE.astype(np.uint16) * 256 + np.uint16(128)  # 16-bit; the high byte is FACE

ODD_FORMATS: dict[str, tuple[Callable[[], bytes], Callable[[], np.ndarray]]] = {
    # case: (bytes, the RGB pixels expected: cv2.imread's conventions)
    "grey_png": (lambda: encode(GREY), lambda: np.repeat(GREY[..., None], 3, axis=2)),
    "grey_alpha_png": (
        lambda: pil_encode(Image.fromarray(np.dstack([GREY, GREY // 2]), "LA"), "PNG"),
        lambda: np.repeat(GREY[..., None], 3, axis=2),
    ),
    "rgba_png_alpha_dropped": (lambda: encode(RGBA), lambda: FACE),
    "rgb_16bit_png": (lambda: encode(WIDE), lambda: FACE),
    "grey_16bit_png": (lambda: encode(GREY.astype(np.uint16) * 257), lambda: np.repeat(GREY[..., None], 3, axis=2)),
    "palette_png": (
        lambda: pil_encode(Image.fromarray(FACE).quantize(64, dither=Image.Dither.NONE), "PNG"),
        lambda: np.asarray(Image.fromarray(FACE).quantize(64, dither=Image.Dither.NONE).convert("RGB")),
    ),
    "bmp": (lambda: encode(FACE, ".bmp"), lambda: FACE),
    "tiff": (lambda: encode(FACE, ".tiff"), lambda: FACE),
    "webp_lossless": (lambda: encode(FACE, ".webp", cv2.IMWRITE_WEBP_QUALITY, 101), lambda: FACE),
    "grey_jpeg": (lambda: encode(GREY, ".jpg", cv2.IMWRITE_JPEG_QUALITY, 100), None),
}


# --------------------------------------------------------------------------------------
# the decoder
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_pack_items_are_named_and_explained(case: str) -> None:
    data, message = BROKEN[case]
    out = EncodedImageSource([_PNG, data(), _PNG], "pack.bin").load([0, 1, 2])
    assert out.ok.tolist() == [True, False, True]
    assert out.errors[0] is None and out.errors[2] is None
    assert re.fullmatch(rf"pack\.bin#1: {message}.*", out.errors[1]), out.errors[1]
    assert not out.images[1].any()  # failed items are zeros, never stale pixels
    np.testing.assert_array_equal(out.images[0], FACE)


@pytest.mark.parametrize("case", sorted(ODD_FORMATS))
def test_odd_pixel_formats_decode_like_cv2_imread(case: str) -> None:
    data, expected = ODD_FORMATS[case]
    blob = data()
    rgb = decode_image(blob, case, size=(FACE_SIZE, FACE_SIZE))
    assert rgb.shape == (FACE_SIZE, FACE_SIZE, 3) and rgb.dtype == np.uint8
    if expected is None:  # lossy: the three channels are equal and near the source
        assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
        assert np.abs(rgb[..., 0].astype(int) - GREY).mean() < 2
    else:
        np.testing.assert_array_equal(rgb, expected())
    # The reference pipelines read with cv2.imread: the decoder must give their pixels.
    reference = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(rgb, cv2.cvtColor(reference, cv2.COLOR_BGR2RGB))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bomb_is_refused_from_its_header_without_decoding(monkeypatch, tmp_path: Path) -> None:
    blob = png_bomb(12000, 12000)
    assert len(blob) < 1_000_000  # < 1 MB on disk, 144 MB once decoded
    assert read_header(blob, "bomb.png") == (12000, 12000, "PNG")

    def no_decoding(*args, **kwargs):
        raise AssertionError("cv2.imdecode was called on a refused image")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    with pytest.raises(DataError, match=r"bomb\.png: PNG image of 12000x12000 pixels is over the 80-megapixel"):
        decode_image(blob, "bomb.png")
    (tmp_path / "bomb.png").write_bytes(blob)
    source = FileImageSource(tmp_path, ["bomb.png"], _CentreAligner(), "photos")
    assert source.load([0]).errors == [
        f"{tmp_path / 'bomb.png'}: PNG image of 12000x12000 pixels is over the 80-megapixel limit for one "
        "image (a possible decompression bomb); downscale it"
    ]
    # Under a raised limit the same photo decodes (the limit is the only reason it was refused).
    monkeypatch.undo()
    assert read_image(tmp_path / "bomb.png", mode="gray", max_pixels=200_000_000).shape == (12000, 12000)


def test_pillow_bomb_guard_is_reported_too() -> None:
    # Past Pillow's own hard limit the header read itself refuses; it must still be a DataError.
    huge = png_bomb(1, 1)
    huge = huge[:16] + struct.pack(">II", 20000, 20000) + huge[24:]  # IHDR claims 400 MP (CRC now wrong)
    with pytest.raises(DataError, match=r"huge\.png: "):
        decode_image(huge, "huge.png")


def test_exif_orientation_is_applied_as_cv2_imread_does() -> None:
    photo = np.zeros((80, 120, 3), np.uint8)
    photo[:, :60] = (255, 0, 0)  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    blob = pil_encode(Image.fromarray(photo), "JPEG", quality=95, exif=exif.tobytes())
    rgb = decode_image(blob, "phone.jpg")
    assert rgb.shape == (120, 80, 3)  # displayed upright: portrait
    assert rgb[5, 40, 0] > 200 and rgb[-5, 40, 0] < 50  # the red half is now on top


def test_read_image_names_missing_and_folder_paths(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.jpg: file not found"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(DataError, match=r"is a folder, expected an image file"):
        read_image(tmp_path)


def test_rgba_mode_keeps_alpha_and_scales_16_bit() -> None:
    rgba = decode_image(encode(RGBA), "cutout.png", mode="rgba")
    np.testing.assert_array_equal(rgba, RGBA)
    wide = np.dstack([WIDE, np.full((112, 112, 1), 65535, np.uint16)])
    out = decode_image(encode(wide), "wide.png", mode="rgba")
    np.testing.assert_array_equal(out[..., :3], np.round(WIDE / 257).astype(np.uint8))
    assert (decode_image(encode(FACE), "opaque.png", mode="rgba")[..., 3] == 255).all()


def test_imageio_limit_is_below_pillows_warning() -> None:
    # Pillow warns (DecompressionBombWarning) past its MAX_IMAGE_PIXELS; ours refuses first.
    assert imageio.MAX_PIXELS <= Image.MAX_IMAGE_PIXELS


# --------------------------------------------------------------------------------------
# raw photo folders and whole runs
# --------------------------------------------------------------------------------------


class _CentreAligner:
    """Stands in for FaceAligner: the centre square of the photo, resized to 112×112."""

    fingerprint = "centre-aligner-1"

    def align(self, rgb: np.ndarray) -> SimpleNamespace:
        h, w = rgb.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        crop = rgb[top : top + side, left : left + side]
        return SimpleNamespace(face=cv2.resize(crop, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA), error=None)


def test_photo_folder_reports_every_broken_file(tmp_path: Path) -> None:
    names = []
    for case, (data, _) in sorted(BROKEN.items()):
        if case.startswith(("wrong_size", "one_pixel")):
            continue  # any size is fine for a photo that will be detected and aligned
        (tmp_path / f"{case}.img").write_bytes(data())
        names.append(f"{case}.img")
    for case, (data, _) in sorted(ODD_FORMATS.items()):
        (tmp_path / f"{case}.img").write_bytes(data())
        names.append(f"{case}.img")
    source = FileImageSource(tmp_path, names, _CentreAligner(), "photos")
    out = source.load(range(len(names)))
    for name, ok, err in zip(names, out.ok, out.errors):
        case = name[:-4]
        if case in ODD_FORMATS:
            assert ok and err is None, (name, err)
        else:
            assert not ok and err.startswith(f"{tmp_path / name}: "), (name, err)
            assert re.search(BROKEN[case][1], err), (name, err)


def _pack_with(tmp_path: Path, bad: dict[int, bytes]) -> Path:
    """The tiny-pack layout (20 pairs, 10 folds) with items replaced by ``bad``."""
    import pickle

    from .conftest import make_tiny_pack

    good = make_tiny_pack(tmp_path / "good.bin")
    blobs, issame = pickle.loads(good.read_bytes())
    for index, data in bad.items():
        blobs[index] = data
    path = tmp_path / "damaged.bin"
    path.write_bytes(pickle.dumps((blobs, issame), protocol=4))
    return path


def test_run_records_broken_items_as_failed_pairs_and_fail_policy_stops(tmp_path: Path) -> None:
    cases = sorted(BROKEN)
    # Pairs 0-9: one broken item each, alternating sides; pairs 10-13: odd but valid formats.
    bad = {2 * k + (k % 2): BROKEN[case][0]() for k, case in enumerate(cases[:10])}
    bad.update({2 * (10 + k): ODD_FORMATS[case][0]() for k, case in enumerate(["grey_png", "rgba_png_alpha_dropped", "rgb_16bit_png", "palette_png"])})
    pack = _pack_with(tmp_path, bad)
    cfg = RunConfig(protocol="bin", data=str(pack), out=str(tmp_path / "out"), progress=False, device="cpu", bootstrap=0,
                    max_failures=0.5)
    result = run(cfg)
    assert result.row["failures"] == 10 and result.row["n_pairs"] == 20
    assert np.flatnonzero(result.failed).tolist() == list(range(10))  # odd formats are fine
    assert (result.scores[:10] == -2).all()
    with pytest.raises(DataError, match=rf"damaged\.bin#0: {BROKEN[cases[0]][1]}.*--on-error record"):
        run(RunConfig(protocol="bin", data=str(pack), out=str(tmp_path / "f"), progress=False, device="cpu",
                      on_error="fail", cache=False, bootstrap=0))


# --------------------------------------------------------------------------------------
# folds
# --------------------------------------------------------------------------------------


def _protocol(folds: list[int], issame: list[bool]) -> PairProtocol:
    n = len(folds)
    blobs = [_PNG] * (2 * n)
    return PairProtocol(
        name="p", version="1", source=EncodedImageSource(blobs, "p.bin"),
        pairs=np.arange(2 * n, dtype=np.int64).reshape(n, 2), issame=np.array(issame),
        folds=np.array(folds, np.int64), origin="p.bin",
    )


def test_empty_fold_ids_are_refused_when_the_protocol_is_built() -> None:
    with pytest.raises(DataError, match=r"p\.bin: fold\(s\) 2, 4 of 5 hold no pairs"):
        _protocol([0, 0, 2, 2, 4, 4], [True, False] * 3)
    with pytest.raises(DataError, match="fold ids must be integers >= 0"):
        _protocol([-1, 0], [True, False])


@pytest.mark.parametrize(
    ("folds", "issame", "problem"),
    [
        ([0, 0, 0, 0], [True, False, True, False], r"1 fold\(s\); k-fold accuracy needs at least 2"),
        ([0, 1, 0, 1], [True] * 4, r"4 genuine and 0 impostor pairs; verification needs both"),
        ([0, 1, 0, 1], [False] * 4, r"0 genuine and 4 impostor pairs"),
    ],
)
def test_unscorable_fold_layouts_fail_before_any_work(folds, issame, problem, tmp_path: Path, monkeypatch) -> None:
    import recogbench.pipeline as pipeline

    monkeypatch.setattr(pipeline, "evaluate", lambda *a, **k: pytest.fail("evaluated an unscorable protocol"))
    protocol = _protocol(folds, issame)
    with pytest.raises(DataError, match=problem):
        protocol.check_evaluable()
    cfg = RunConfig(protocol="bin", data="p.bin", out=str(tmp_path / "out"), progress=False, device="cpu", bootstrap=0)
    with pytest.raises(DataError, match=problem):
        run(cfg, protocol=protocol)
    assert not (tmp_path / "out" / "leaderboard.csv").exists()


def test_unequal_and_one_class_folds_are_scored_with_warnings(tmp_path: Path, caplog) -> None:
    protocol = _protocol([0, 0, 0, 0, 1, 1, 2], [True, False, True, False, True, False, True])
    warnings = protocol.check_evaluable()
    assert warnings == [
        "p.bin: unequal folds (1 to 4 pairs); accuracy is the unweighted mean over folds, so a small fold "
        "counts as much as a large one",
        "p.bin: fold(s) 3 hold only one class of pair",
    ]
    assert protocol.fold_sizes().tolist() == [[2, 2], [1, 1], [1, 0]]
    cfg = RunConfig(protocol="bin", data="p.bin", out=str(tmp_path / "out"), progress=False, device="cpu", bootstrap=0)
    with caplog.at_level("WARNING"):
        result = run(cfg, protocol=protocol)
    assert result.row["n_pairs"] == 7
    assert "unequal folds" in caplog.text and "only one class" in caplog.text


def test_csv_fold_column_layouts(tmp_path: Path) -> None:
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(tmp_path / name), FACE)

    def csv_protocol(rows: list[str]) -> PairProtocol:
        path = tmp_path / "pairs.csv"
        path.write_text("path_a,path_b,same,fold\n" + "\n".join(rows) + "\n")
        return load_pairs_csv(path, aligner=_CentreAligner())

    # Fold values are labels: 3 and 7 become folds 1 and 2, none is empty.
    p = csv_protocol(["a.jpg,b.jpg,1,3", "a.jpg,b.jpg,0,3", "a.jpg,b.jpg,1,7", "a.jpg,b.jpg,0,7"])
    assert p.folds.tolist() == [0, 0, 1, 1] and p.check_evaluable() == []
    single = csv_protocol(["a.jpg,b.jpg,1,1", "a.jpg,b.jpg,0,1"])
    with pytest.raises(DataError, match=r"pairs\.csv: 1 fold\(s\)"):
        single.check_evaluable()
    unequal = csv_protocol(["a.jpg,b.jpg,1,1", "a.jpg,b.jpg,0,1", "a.jpg,b.jpg,1,1", "a.jpg,b.jpg,0,2"])
    assert [w.split(";")[0] for w in unequal.check_evaluable()] == [
        f"{tmp_path / 'pairs.csv'}: unequal folds (1 to 3 pairs)", f"{tmp_path / 'pairs.csv'}: fold(s) 2 hold only one class of pair",
    ]


def _write_cfp(root: Path, fold_sizes: list[tuple[int, int]]) -> None:
    """A CFP tree whose folds hold the given (same, diff) line counts over 4 frontal and
    4 profile images (that exist, so no file check fails)."""
    prot = root / "Protocol"
    images = root / "Data" / "Images"
    images.mkdir(parents=True)
    prot.mkdir()
    for kind in ("F", "P"):
        lines = []
        for i in range(1, 5):
            cv2.imwrite(str(images / f"{kind}{i}.jpg"), FACE)
            lines.append(f"{i} ../Data/Images/{kind}{i}.jpg")
        (prot / f"Pair_list_{kind}.txt").write_text("\n".join(lines) + "\n")
    for variant in ("FF", "FP"):
        for k, (n_same, n_diff) in enumerate(fold_sizes, 1):
            d = prot / "Split" / variant / f"{k:02d}"
            d.mkdir(parents=True)
            (d / "same.txt").write_text("".join(f"{1 + j % 4},{1 + (j + 1) % 4}\n" for j in range(n_same)))
            (d / "diff.txt").write_text("".join(f"{1 + j % 4},{1 + (j + 2) % 4}\n" for j in range(n_diff)))


def test_cfp_empty_fold_folder_is_named(tmp_path: Path) -> None:
    _write_cfp(tmp_path, [(2, 2), (0, 0), (2, 2)])
    with pytest.raises(DataError, match=r"Split/FP/02: fold 02 holds no pairs \(same\.txt and diff\.txt are empty\)"):
        parse_cfp_pairs(tmp_path, "FP")


def test_cfp_unequal_folds_are_refused_for_the_official_protocol(tmp_path: Path) -> None:
    # 7,000 pairs like the real CFP-FP, but fold 1 took a pair from fold 2.
    sizes = [(350, 350)] * 10
    sizes[0], sizes[1] = (351, 350), (349, 350)
    _write_cfp(tmp_path, sizes)
    with pytest.raises(DataError, match=r"folds of 701, 699, 700.* but protocol 'cfp_fp' has 10 equal folds"):
        load_protocol("cfp_fp", tmp_path, aligner=_CentreAligner())
    loose = load_protocol("cfp_fp", tmp_path, aligner=_CentreAligner(), check_expected=False)
    assert loose.fold_sizes().sum(axis=1).tolist()[:3] == [701, 699, 700]
    assert "unequal folds" in loose.check_evaluable()[0]
    assert load_cfp(tmp_path, "FP", _CentreAligner()).n_pairs == 7000


# --------------------------------------------------------------------------------------
# occluder and mask folders
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["zero_bytes", "png_truncated_half", "html_error_page", "bomb_12000x12000"])
def test_broken_occluder_cutout_is_named(case: str, tmp_path: Path) -> None:
    from recogbench.occlusion.real import RealOccluder

    (tmp_path / "mask.png").write_bytes(BROKEN[case][0]())
    with pytest.raises(DataError) as info:
        RealOccluder(str(tmp_path))
    assert re.fullmatch(rf"{re.escape(str(tmp_path / 'mask.png'))}: {BROKEN[case][1]}.*", str(info.value))


def test_inpaint_folder_lists_every_broken_image_and_mask_before_writing(tmp_path: Path) -> None:
    from recogbench.inpaint import inpaint_folder
    from recogbench.registry import INPAINTERS

    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir(), masks.mkdir()
    mask = np.zeros((112, 112), np.uint8)
    mask[40:70, 30:80] = 255
    for stem in ("good", "grey", "empty", "cut", "badmask"):
        (images / f"{stem}.png").write_bytes(_PNG)
        (masks / f"{stem}.png").write_bytes(encode(mask))
    (images / "grey.png").write_bytes(encode(GREY))  # fine: read as RGB
    (images / "empty.png").write_bytes(b"")
    (images / "cut.png").write_bytes(_PNG[:-20])
    (masks / "badmask.png").write_bytes(b"<html>")
    with pytest.raises(DataError) as info:
        inpaint_folder(INPAINTERS.create("telea"), images, masks, out)
    message = str(info.value)
    assert message.startswith("3 problem(s): ")
    for expected in (f"{images / 'empty.png'}: empty file (0 bytes)",
                     f"{images / 'cut.png'}: cannot decode image (corrupt or truncated PNG data)",
                     f"{masks / 'badmask.png'}: not an image (no known image format)"):
        assert expected in message
    assert not out.exists()
