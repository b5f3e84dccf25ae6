"""Protocol loaders: .bin packs and the safe unpickler, LFW / CFP / CSV parsers, dispatch."""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from recogbench.data import FACE_SIZE, DataError, PairProtocol, contiguous_folds
from recogbench.protocols import (
    EncodedImageSource,
    FileImageSource,
    ProtocolDef,
    load_bin,
    load_cfp,
    load_lfw,
    load_pairs_csv,
    load_protocol,
    parse_cfp_pairs,
    parse_lfw_pairs,
    parse_pairs_csv,
    protocol_definitions,
    register_builtin_protocols,
    write_bin,
)
from recogbench.registry import PROTOCOLS
from recogbench.safe_pickle import UnsafePickleError, safe_load, safe_loads

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LFW_PAIRS = SHARED / "lfw" / "pairs.txt"
DEEPFACE = SHARED / "deepface-pairs"
needs_lfw = pytest.mark.skipif(not LFW_PAIRS.is_file(), reason=f"{LFW_PAIRS} absent (shared test data)")
needs_deepface = pytest.mark.skipif(
    not (DEEPFACE / "pairs.csv").is_file(), reason=f"{DEEPFACE} absent (shared test data)"
)


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


class FakeAligner:
    """Same contract as recogbench.align.FaceAligner: align(rgb) -> .face/.error."""

    fingerprint = "fake-aligner-1"

    def __init__(self, fail_on_shape: tuple[int, ...] | None = None) -> None:
        self.calls = 0
        self.fail_on_shape = fail_on_shape

    def align(self, image_rgb: np.ndarray) -> SimpleNamespace:
        assert image_rgb.dtype == np.uint8 and image_rgb.ndim == 3 and image_rgb.shape[2] == 3
        self.calls += 1
        if self.fail_on_shape is not None and image_rgb.shape == self.fail_on_shape:
            return SimpleNamespace(face=None, error="no face detected")
        face = np.full((FACE_SIZE, FACE_SIZE, 3), 7, np.uint8)
        face[0, 0] = image_rgb[0, 0]
        return SimpleNamespace(face=face, error=None)


def random_faces(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, FACE_SIZE, FACE_SIZE, 3), dtype=np.uint8)


def png(img_rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def make_pack(path: Path, n_pairs: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write a pack by hand (not with write_bin); returns (images (2N,112,112,3), issame)."""
    faces = random_faces(2 * n_pairs, seed)
    issame = np.arange(n_pairs) % 2 == 0
    with open(path, "wb") as f:
        pickle.dump(([png(x) for x in faces], [bool(s) for s in issame]), f, protocol=4)
    return faces, issame


def py2_pickle(bins: list[bytes], issame: list[bool]) -> bytes:
    """What Python 2's ``pickle.dump((bins, issame), f, protocol=2)`` writes: byte strings
    as BINSTRING/SHORT_BINSTRING (Python 3 cannot emit these for bytes)."""
    out = io.BytesIO()
    out.write(b"\x80\x02")  # PROTO 2
    out.write(b"]q\x00(")  # EMPTY_LIST, BINPUT 0, MARK
    for b in bins:
        if len(b) < 256:
            out.write(b"U" + bytes([len(b)]) + b)  # SHORT_BINSTRING
        else:
            out.write(b"T" + struct.pack("<i", len(b)) + b)  # BINSTRING
    out.write(b"e")  # APPENDS
    out.write(b"]q\x01(")
    for s in issame:
        out.write(b"\x88" if s else b"\x89")  # NEWTRUE / NEWFALSE
    out.write(b"e\x86q\x02.")  # APPENDS, TUPLE2, BINPUT 2, STOP
    return out.getvalue()


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


# ---------------------------------------------------------------------------------------
# .bin packs
# ---------------------------------------------------------------------------------------


def test_bin_round_trip_is_lossless(tmp_path: Path) -> None:
    faces, issame = make_pack(tmp_path / "tiny.bin", n_pairs=20)
    proto = load_bin(tmp_path / "tiny.bin", n_folds=10)
    assert proto.name == "tiny" and proto.n_pairs == 20 and proto.n_folds == 10
    assert proto.pairs.dtype == np.int64 and proto.issame.dtype == np.bool_ and proto.folds.dtype == np.int64
    np.testing.assert_array_equal(proto.pairs, np.arange(40).reshape(20, 2))
    np.testing.assert_array_equal(proto.issame, issame)
    np.testing.assert_array_equal(proto.folds, contiguous_folds(20, 10))
    loaded = proto.source.load(range(40))
    assert loaded.ok.all()
    np.testing.assert_array_equal(loaded.images, faces)

    out = write_bin(proto, tmp_path / "out" / "copy.bin")
    back = load_bin(out, n_folds=10)
    np.testing.assert_array_equal(back.source.load(range(40)).images, faces)
    np.testing.assert_array_equal(back.issame, proto.issame)
    np.testing.assert_array_equal(back.folds, proto.folds)
    np.testing.assert_array_equal(back.pairs, proto.pairs)
    assert back.source.fingerprint == proto.source.fingerprint  # same PNG encoder, same bytes
    assert back.fingerprint == proto.fingerprint
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["copy.bin"]  # no temp file left


def test_write_bin_jpg_and_fold_grouping(tmp_path: Path) -> None:
    colours = np.random.default_rng(3).integers(0, 256, (8, 1, 1, 3), dtype=np.uint8)
    faces = np.broadcast_to(colours, (8, FACE_SIZE, FACE_SIZE, 3)).copy()  # flat: JPEG keeps them
    src = EncodedImageSource([png(x) for x in faces], "mem")
    # Folds interleaved (0,1,0,1): equal-sized, so write_bin groups the pairs by fold.
    proto = PairProtocol(
        name="t", version="1", source=src, pairs=np.arange(8, dtype=np.int64).reshape(4, 2),
        issame=np.array([True, False, False, True]), folds=np.array([0, 1, 0, 1], np.int64),
    )
    back = load_bin(write_bin(proto, tmp_path / "t.bin", encoding="jpg"), n_folds=2)
    np.testing.assert_array_equal(back.folds, [0, 0, 1, 1])
    np.testing.assert_array_equal(back.issame, [True, False, False, True])
    imgs = back.source.load(range(8)).images.astype(int)
    expected = faces[[0, 1, 4, 5, 2, 3, 6, 7]].astype(int)
    assert np.abs(imgs - expected).max() <= 8

    unequal = PairProtocol(
        name="u", version="1", source=src, pairs=proto.pairs, issame=proto.issame,
        folds=np.array([0, 0, 0, 1], np.int64),
    )
    with pytest.raises(DataError, match=r"fold sizes \[3, 1\]"):
        write_bin(unequal, tmp_path / "u.bin")
    with pytest.raises(ValueError):
        write_bin(proto, tmp_path / "x.bin", encoding="webp")


def test_write_bin_refuses_pairs_with_failed_images(tmp_path: Path) -> None:
    blobs = [png(x) for x in random_faces(4)]
    blobs[3] = b"not an image"
    proto = PairProtocol(
        name="h", version="1", source=EncodedImageSource(blobs, "holes.bin"),
        pairs=np.arange(4, dtype=np.int64).reshape(2, 2), issame=np.array([True, False]),
        folds=np.array([0, 1], np.int64),
    )
    with pytest.raises(DataError, match=r"1 of 2 pairs.*holes\.bin#3: not an image"):
        write_bin(proto, tmp_path / "h.bin")
    assert not list(tmp_path.iterdir())


def test_encoded_source_per_item_errors(tmp_path: Path) -> None:
    small = np.zeros((50, 60, 3), np.uint8)
    src = EncodedImageSource([png(random_faces(1)[0]), b"\xff\xd8garbage", b"", png(small)], "pack.bin")
    out = src.load([0, 1, 2, 3])
    assert out.ok.tolist() == [True, False, False, False]
    assert out.errors[1] == "pack.bin#1: corrupt or truncated JPEG header"
    assert out.errors[2] == "pack.bin#2: empty file (0 bytes)"
    assert out.errors[3] == "pack.bin#3: image is 60x50 pixels, expected 112x112"
    assert out.images.shape == (4, 112, 112, 3) and not out.images[1:].any()
    assert src.name_of(17) == "pack.bin#17"
    with pytest.raises(DataError):
        src.load([4])


def test_bin_accepts_numpy_blobs_and_labels(tmp_path: Path) -> None:
    faces = random_faces(4, seed=1)
    bins = [np.frombuffer(png(x), np.uint8) for x in faces]
    labels = [np.bool_(True), np.bool_(False)]
    for proto_no in (2, 4, 5):
        path = tmp_path / f"np{proto_no}.bin"
        path.write_bytes(pickle.dumps((bins, labels), protocol=proto_no))
        p = load_bin(path, n_folds=2)
        assert p.issame.tolist() == [True, False]
        np.testing.assert_array_equal(p.source.load(range(4)).images, faces)
    path = tmp_path / "ints.bin"
    path.write_bytes(pickle.dumps(([png(x) for x in faces], [1, 0]), protocol=2))
    assert load_bin(path, n_folds=1).issame.tolist() == [True, False]


@pytest.mark.parametrize(
    ("bins", "labels", "n_folds", "match"),
    [
        (3, 1, 1, r"odd\.bin: 3 images is an odd count"),
        (6, 2, 1, r"odd\.bin: 6 images for 2 labels; expected 4 images"),
        (20, 10, 3, r"odd\.bin: 10 pairs cannot be split into 3 equal folds"),
        (0, 0, 1, r"no pairs"),
    ],
)
def test_bin_structure_errors(tmp_path: Path, bins: int, labels: int, n_folds: int, match: str) -> None:
    path = tmp_path / "odd.bin"
    path.write_bytes(pickle.dumps(([b"x"] * bins, [True] * labels), protocol=4))
    with pytest.raises(DataError, match=match):
        load_bin(path, n_folds=n_folds)


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ([b"x"], "expected a pickled"),
        (([b"x", 5], [True]), r"image 1 is a int"),
        (([b"x", b"y"], [2]), r"label 0 is 2"),
        (({b"x", b"y"}, [True]), "bins is a set"),
    ],
)
def test_bin_content_errors(tmp_path: Path, obj: object, match: str) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(DataError, match=match):
        load_bin(path, n_folds=1)


def test_bin_truncated_or_missing(tmp_path: Path) -> None:
    path = tmp_path / "trunc.bin"
    path.write_bytes(pickle.dumps(([b"x"] * 4, [True] * 2), protocol=4)[:-5])
    with pytest.raises(DataError, match="trunc.bin: not a readable pickle"):
        load_bin(path, n_folds=1)
    with pytest.raises(DataError, match="file not found"):
        load_bin(tmp_path / "nope.bin")


# ---------------------------------------------------------------------------------------
# safe unpickling
# ---------------------------------------------------------------------------------------


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_safe_load_refuses_code_execution(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(([_Exploit(marker)], [True]), protocol=2)
    pack = tmp_path / "evil.bin"
    pack.write_bytes(payload)
    with pytest.raises(UnsafePickleError, match=r"evil\.bin.*(posix|os|nt)\.system"):
        with open(pack, "rb") as f:
            safe_load(f, str(pack))
    with pytest.raises(UnsafePickleError):
        load_bin(pack)
    assert not marker.exists()


@pytest.mark.parametrize(
    "global_name", [b"builtins\neval", b"subprocess\nPopen", b"os\nsystem", b"posix\nsystem", b"builtins\ngetattr"]
)
def test_safe_load_refuses_globals(global_name: bytes) -> None:
    # protocol 0/1 GLOBAL opcode: c<module>\n<name>\n, then call it with ("1",)
    payload = b"c" + global_name + b"\n(S'1'\ntR."
    with pytest.raises(UnsafePickleError, match=global_name.decode().replace("\n", r"\.")):
        safe_loads(payload, "x.bin")


def test_safe_load_refuses_object_arrays() -> None:
    for obj in (np.array([1, "a"], dtype=object), np.zeros(2, dtype=[("a", "O")]), np.zeros(2, dtype=[("a", "O")])[0]):
        for proto in (2, 4, 5):
            with pytest.raises(UnsafePickleError, match="object"):
                safe_loads(pickle.dumps(obj, protocol=proto), "o.bin")


def test_safe_load_protocol2_and_python2_packs(tmp_path: Path) -> None:
    blobs = [png(x) for x in random_faces(4, seed=2)]
    # Python 3, protocol 2: bytes are spelled _codecs.encode(str, 'latin1').
    data = pickle.dumps((blobs, [True, False]), protocol=2)
    assert b"_codecs" in data
    bins, labels = safe_loads(data)
    assert bins == blobs and labels == [True, False]
    # Python 2, protocol 2: BINSTRING / SHORT_BINSTRING, loaded as bytes.
    data2 = py2_pickle([b"ab"] + blobs[1:], [True, False])
    bins2, labels2 = safe_loads(data2)
    assert bins2 == [b"ab"] + blobs[1:] and labels2 == [True, False]
    pack = tmp_path / "py2.bin"
    pack.write_bytes(py2_pickle(blobs, [True, False]))
    p = load_bin(pack, n_folds=2)
    assert p.source.load(range(4)).ok.all() and p.issame.tolist() == [True, False]
    # Arrays pickled by numpy 1.x name numpy.core (numpy 2 renamed it numpy._core).
    old = pickle.dumps(np.arange(3, dtype=np.uint8), protocol=2).replace(b"numpy._core", b"numpy.core")
    np.testing.assert_array_equal(safe_loads(old), [0, 1, 2])


def test_safe_load_codecs_restricted() -> None:
    payload = b"c_codecs\nencode\n(Vabc\nVrot13\ntR."
    with pytest.raises(UnsafePickleError, match="rot13"):
        safe_loads(payload)


# ---------------------------------------------------------------------------------------
# LFW
# ---------------------------------------------------------------------------------------


@needs_lfw
def test_official_lfw_pairs() -> None:
    entries = parse_lfw_pairs(LFW_PAIRS)
    assert len(entries) == 6000
    assert entries[0] == ("Abel_Pacheco/Abel_Pacheco_0001.jpg", "Abel_Pacheco/Abel_Pacheco_0004.jpg", True, 0)
    folds = np.array([e[3] for e in entries])
    same = np.array([e[2] for e in entries])
    assert folds.tolist() == np.repeat(np.arange(10), 600).tolist()
    for k in range(10):
        assert same[folds == k].tolist() == [True] * 300 + [False] * 300
    # Through the loader, without needing the images.
    proto = load_lfw(LFW_PAIRS.parent, LFW_PAIRS, FakeAligner(), check_files=False)
    assert proto.n_pairs == 6000 and proto.n_folds == 10 and int(proto.issame.sum()) == 3000
    assert len(proto.source) == len({p for e in entries for p in e[:2]}) < 12000
    with pytest.raises(DataError, match="image files not found"):
        load_lfw(LFW_PAIRS.parent, LFW_PAIRS, FakeAligner())


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (["2\t1", "A\t1\t2", "B\t1\tC\t2", "D\t1\tx", "E\t1\tF\t2"], r"pairs\.txt:4: image number 'x'"),
        (["2\t1", "A\t1\t2", "B\t1\tC\t2", "D\t1\tE\t2", "F\t1\tG\t2"], r"pairs\.txt:4: expected a genuine pair"),
        (["2\t1", "A\t1\t2", "B\t1\t2", "D\t1\t3", "E\t1\tF\t2"], r"pairs\.txt:3: expected an impostor pair"),
        (["2\t1", "A\t1\t2", "B\t1\tC\t2"], r"2 folds x 2 x 1 = 4 pairs, but the file has 2"),
        (["10"], r"pairs\.txt:1: header"),
        ([], "empty file"),
    ],
)
def test_malformed_lfw_pairs(tmp_path: Path, lines: list[str], match: str) -> None:
    with pytest.raises(DataError, match=match):
        parse_lfw_pairs(write_lines(tmp_path / "pairs.txt", lines))


def test_lfw_from_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    for rel in ("A/A_0001.jpg", "A/A_0002.jpg", "B/B_0001.jpg", "C/C_0001.jpg"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / rel), rng.integers(0, 256, (250, 250, 3), dtype=np.uint8))
    (tmp_path / "C" / "C_0001.jpg").write_bytes(b"corrupt")
    write_lines(tmp_path / "pairs.txt", ["2 1", "A 1 2", "A 1 B 1", "A 2 1", "B 1 C 1"])
    aligner = FakeAligner()
    proto = load_lfw(tmp_path, tmp_path / "pairs.txt", aligner)
    assert proto.pairs.tolist() == [[0, 1], [0, 2], [1, 0], [2, 3]]  # deduplicated paths
    assert proto.folds.tolist() == [0, 0, 1, 1] and proto.issame.tolist() == [True, False, True, False]
    out = proto.source.load(proto.pairs.ravel())
    assert out.ok.tolist() == [True] * 7 + [False]
    assert out.errors[7].endswith("C_0001.jpg: not an image (no known image format)")
    assert (out.images[0] == 7).sum() > 0
    assert aligner.calls == 3  # each readable image aligned once despite sharing
    fp = proto.source.fingerprint
    assert len(fp) == 64 and fp == proto.source.fingerprint
    # data dispatch: the folder, or the pairs file itself
    assert load_protocol("lfw", tmp_path, aligner=aligner, check_expected=False).n_pairs == 4
    assert load_protocol("lfw", tmp_path / "pairs.txt", aligner=aligner, check_expected=False).n_pairs == 4
    with pytest.raises(DataError, match="4 pairs, but protocol 'lfw' has 6,000"):
        load_protocol("lfw", tmp_path, aligner=aligner)


def test_file_source_errors(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((40, 30, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((50, 50, 3), np.uint8))
    src = FileImageSource(tmp_path, ["a.png", "b.png"], FakeAligner(fail_on_shape=(40, 30, 3)), "t")
    out = src.load([0, 1])
    assert out.ok.tolist() == [False, True] and out.errors[0].endswith("a.png: no face detected")
    missing = [f"m{i}.jpg" for i in range(7)]
    with pytest.raises(DataError, match=r"7 of 8 image files not found.*m4\.jpg and 2 more"):
        FileImageSource(tmp_path, ["a.png", *missing], FakeAligner(), "t")
    lazy = FileImageSource(tmp_path, ["gone.jpg"], FakeAligner(), "t", check_files=False)
    assert lazy.load([0]).errors == [f"{tmp_path / 'gone.jpg'}: file not found"]


# ---------------------------------------------------------------------------------------
# CFP
# ---------------------------------------------------------------------------------------


def make_cfp(root: Path, n_folds: int = 2) -> None:
    prot = root / "Protocol"
    write_lines(prot / "Pair_list_F.txt", [f"{i} ../Data/Images/{(i + 1) // 2:03d}/frontal/{i:02d}.jpg" for i in range(1, 9)])
    write_lines(prot / "Pair_list_P.txt", [f"{i} ../Data/Images/{(i + 1) // 2:03d}/profile/{i:02d}.jpg" for i in range(1, 5)])
    for variant in ("FF", "FP"):
        for k in range(1, n_folds + 1):
            d = prot / "Split" / variant / f"{k:02d}"
            write_lines(d / "same.txt", [f"{2 * k - 1},{2 * k}"])
            write_lines(d / "diff.txt", [f"{k},{9 - k if variant == 'FF' else 5 - k}"])


def test_cfp_parser(tmp_path: Path) -> None:
    make_cfp(tmp_path)
    ff = parse_cfp_pairs(tmp_path, "FF")
    assert ff == [
        ("Data/Images/001/frontal/01.jpg", "Data/Images/001/frontal/02.jpg", True, 0),
        ("Data/Images/001/frontal/01.jpg", "Data/Images/004/frontal/08.jpg", False, 0),
        ("Data/Images/002/frontal/03.jpg", "Data/Images/002/frontal/04.jpg", True, 1),
        ("Data/Images/001/frontal/02.jpg", "Data/Images/004/frontal/07.jpg", False, 1),
    ]
    fp = parse_cfp_pairs(tmp_path, "fp")
    assert fp[0] == ("Data/Images/001/frontal/01.jpg", "Data/Images/001/profile/02.jpg", True, 0)
    assert fp[3] == ("Data/Images/001/frontal/02.jpg", "Data/Images/002/profile/03.jpg", False, 1)

    proto = load_cfp(tmp_path, "FP", FakeAligner(), check_files=False)
    assert proto.name == "cfp_fp" and proto.n_pairs == 4 and proto.folds.tolist() == [0, 0, 1, 1]
    assert proto.issame.tolist() == [True, False, True, False]
    names = [proto.source.name_of(int(i)) for i in proto.pairs[0]]
    assert names == [str(tmp_path / "Data/Images/001/frontal/01.jpg"), str(tmp_path / "Data/Images/001/profile/02.jpg")]
    # FF and FP share the F-list paths but index into different lists.
    assert len(load_cfp(tmp_path, "FF", FakeAligner(), check_files=False).source) == 6


def test_cfp_root_relative_paths_and_errors(tmp_path: Path) -> None:
    make_cfp(tmp_path, n_folds=1)
    # A list written relative to the CFP root (not ../): used when that file exists.
    (tmp_path / "Data" / "x.jpg").parent.mkdir(parents=True)
    (tmp_path / "Data" / "x.jpg").write_bytes(b"")
    write_lines(tmp_path / "Protocol" / "Pair_list_F.txt", ["1 Data/x.jpg", "2 Data/x.jpg", "8 Data/y.jpg"])
    ff = parse_cfp_pairs(tmp_path, "FF")
    assert ff[0][:2] == ("Data/x.jpg", "Data/x.jpg") and ff[1][1] == "Protocol/Data/y.jpg"
    write_lines(tmp_path / "Protocol" / "Split" / "FF" / "01" / "diff.txt", ["1,99"])
    with pytest.raises(DataError, match=r"diff\.txt:1: index 99 is not in Pair_list_F\.txt"):
        parse_cfp_pairs(tmp_path, "FF")
    write_lines(tmp_path / "Protocol" / "Split" / "FF" / "01" / "diff.txt", ["1;2"])
    with pytest.raises(DataError, match=r"diff\.txt:1: expected 'a,b'"):
        parse_cfp_pairs(tmp_path, "FF")
    with pytest.raises(DataError, match="no Protocol/ folder"):
        parse_cfp_pairs(tmp_path / "Data", "FF")


# ---------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------


@needs_deepface
def test_deepface_pairs_csv() -> None:
    aligner = FakeAligner()
    proto = load_pairs_csv(DEEPFACE / "pairs.csv", aligner=aligner)
    assert proto.n_pairs == 300 and int(proto.issame.sum()) == 38 and proto.n_folds == 10
    assert len(proto.source) == 25
    for k in range(10):
        labels = proto.issame[proto.folds == k]
        assert labels.any() and not labels.all()
    counts = np.bincount(proto.folds)
    assert counts.max() - counts.min() <= 2
    out = proto.source.load(proto.pairs[:3].ravel())
    assert out.ok.all() and out.images.shape == (6, 112, 112, 3)
    proto.source.load(proto.pairs[:3].ravel())
    assert aligner.calls == len(set(proto.pairs[:3].ravel().tolist()))
    # Through the definition: a folder holding pairs.csv, or the file.
    via = load_protocol("pairs_csv", DEEPFACE, aligner=aligner)
    assert via.n_pairs == 300 and via.name == "pairs"
    assert PROTOCOLS.create("pairs_csv", data=DEEPFACE / "pairs.csv", aligner=aligner).n_pairs == 300


def test_csv_forms_and_errors(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "p.csv",
        ["path_a,path_b,same,fold", "a.jpg,b.jpg,1,1", "a.jpg,c.jpg,false,1", "c.jpg,d.jpg,YES,2", "b.jpg,d.jpg,no,2"],
    )
    assert parse_pairs_csv(path) == [
        ("a.jpg", "b.jpg", True, 0), ("a.jpg", "c.jpg", False, 0),
        ("c.jpg", "d.jpg", True, 1), ("b.jpg", "d.jpg", False, 1),
    ]
    path = write_lines(tmp_path / "q.csv", ["file_x,file_y,Decision,distance", "a,b,Yes,0.1", "", "c,d,No,0.9", "e,f,No,1"])
    assert parse_pairs_csv(path) == [("a", "b", True, 0), ("c", "d", False, 0), ("e", "f", False, 0)]
    for lines, match in [
        (["x,y,z", "a,b,1"], r"r\.csv:1: header"),
        (["path_a,path_b,same", "a,b,maybe"], r"r\.csv:2: label 'maybe'"),
        (["path_a,path_b,same", "a,b,1", "a,b"], r"r\.csv:3: 2 fields"),
        (["path_a,path_b,same,fold", "a,b,1,x"], r"r\.csv:2: fold 'x'"),
        (["path_a,path_b,same", "a,b,1", "c,d,1"], "2 genuine and 0 impostor"),
        (["path_a,path_b,same"], "no pairs"),
    ]:
        with pytest.raises(DataError, match=match):
            parse_pairs_csv(write_lines(tmp_path / "r.csv", lines))


def test_csv_images_relative_to_root(tmp_path: Path) -> None:
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for n in "abcd":
        cv2.imwrite(str(imgs / f"{n}.png"), np.full((60, 60, 3), 100, np.uint8))
    lines = ["path_a,path_b,same", "a.png,b.png,1", "c.png,d.png,0"]
    path = write_lines(tmp_path / "list" / "p.csv", lines)
    with pytest.raises(DataError, match="4 of 4 image files not found"):
        load_pairs_csv(path, aligner=FakeAligner())
    proto = load_pairs_csv(path, root=imgs, aligner=FakeAligner())
    assert proto.source.load(range(4)).ok.all() and proto.folds.tolist() == [0, 0]


# ---------------------------------------------------------------------------------------
# definitions, dispatch, registry
# ---------------------------------------------------------------------------------------


def test_definitions() -> None:
    defs = protocol_definitions()
    assert set(defs) >= {"lfw", "cfp_fp", "cfp_ff", "agedb_30", "calfw", "cplfw", "bin", "pairs_csv"}
    assert defs["lfw"].expected_pairs == 6000 and defs["lfw"].bin == "lfw.bin" and defs["lfw"].raw == "lfw"
    assert defs["cfp_fp"].expected_pairs == 7000 and defs["cfp_fp"].raw == "cfp_fp"
    assert defs["agedb_30"].raw is None and defs["bin"].bin is None
    assert all(d.folds == 10 and isinstance(d.version, str) for d in defs.values())
    with pytest.raises(ValueError, match="unknown field"):
        ProtocolDef.from_mapping({"name": "x", "version": "1", "colour": 1}, "x.toml")
    with pytest.raises(ValueError, match="'expected_pairs' must be int"):
        ProtocolDef.from_mapping({"name": "x", "version": "1", "expected_pairs": "6000"}, "x.toml")


def test_registry_registration_is_idempotent() -> None:
    assert register_builtin_protocols() == []
    assert register_builtin_protocols() == []
    for name in protocol_definitions():
        assert name in PROTOCOLS
    assert "6,000" in PROTOCOLS.summary("lfw")


def test_load_protocol_dispatch(tmp_path: Path) -> None:
    faces, issame = make_pack(tmp_path / "mypack.bin", n_pairs=20)
    p = load_protocol("bin", tmp_path / "mypack.bin")
    assert p.name == "mypack" and p.n_pairs == 20 and p.version == "1"
    assert PROTOCOLS.create("bin", data=tmp_path / "mypack.bin").n_pairs == 20
    # A pack of the wrong size under a named protocol.
    with pytest.raises(DataError, match="20 pairs, but protocol 'agedb_30' has 6,000"):
        load_protocol("agedb_30", tmp_path / "mypack.bin")
    assert load_protocol("agedb_30", tmp_path / "mypack.bin", check_expected="false").name == "agedb_30"
    # A folder holding lfw.bin with the right size (blobs are only decoded on load).
    lfw_dir = tmp_path / "lfwdir"
    lfw_dir.mkdir()
    (lfw_dir / "lfw.bin").write_bytes(pickle.dumps(([b"\x00"] * 12000, [True, False] * 3000), protocol=4))
    p = load_protocol("lfw", lfw_dir)
    assert p.name == "lfw" and p.n_pairs == 6000 and np.bincount(p.folds).tolist() == [600] * 10
    assert p.source.load([5]).errors == [f"{lfw_dir / 'lfw.bin'}#5: not an image (no known image format)"]
    assert PROTOCOLS.create("lfw", data=str(lfw_dir)).n_pairs == 6000
    # A folder without the pack and no raw loader.
    with pytest.raises(DataError, match="needs a .bin pack or a folder holding calfw.bin"):
        load_protocol("calfw", lfw_dir)
    with pytest.raises(DataError, match="not found"):
        load_protocol("lfw", tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds neither lfw.bin or pairs.txt"):
        load_protocol("lfw", empty, aligner=FakeAligner())
    with pytest.raises(KeyError, match="unknown protocol"):
        load_protocol("nope", lfw_dir)


def test_a_mis_sized_pack_says_how_to_load_it_from_the_command_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from recogbench.cli import app

    make_pack(tmp_path / "mypack.bin", n_pairs=20)
    base = ["--data", str(tmp_path / "mypack.bin"), "--out", str(tmp_path / "res"), "--verifier", "sface", "-q",
            "--bootstrap", "0"]
    r = CliRunner().invoke(app, ["run", "agedb_30", *base])
    assert r.exit_code == 2 and "agedb_30:check_expected=false" in r.output and "generic protocol bin" in r.output
    assert "pass check_expected=False" not in r.output
    # What the message says works.
    r = CliRunner().invoke(app, ["run", "agedb_30:check_expected=false", *base])
    assert r.exit_code == 0, r.output
