"""Hostile and broken input: fuzzed parsers and packs either load or raise DataError with a
message, and a disk that fills mid-write leaves the previous results intact."""

from __future__ import annotations

import errno
import pickle
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recogbench.data import DataError
from recogbench.imageio import decode_image
from recogbench.protocols import load_bin, parse_lfw_pairs, parse_pairs_csv

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

lines = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
        st.builds(lambda n, i, j: f"{n}\t{i}\t{j}", st.text(min_size=0, max_size=8), st.integers(-3, 9999), st.integers(-3, 9999)),
        st.builds(lambda a, i, b, j: f"{a}\t{i}\t{b}\t{j}", st.text(max_size=6), st.integers(0, 99), st.text(max_size=6), st.integers(0, 99)),
        st.sampled_from(["10\t300", "1\t1", "2\t1", "", "  ", "0\t0"]),
    ),
    max_size=12,
)


@FUZZ
@given(lines)
def test_lfw_pairs_parser_loads_or_raises_data_error(tmp_path: Path, text: list[str]) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text("\n".join(text), encoding="utf-8")
    try:
        entries = parse_lfw_pairs(path)
    except DataError as exc:
        assert str(path) in str(exc) or "pairs.txt" in str(exc)
    else:
        assert all(len(e) == 4 for e in entries)


@FUZZ
@given(st.lists(st.lists(st.text(max_size=10), max_size=5), max_size=8),
       st.sampled_from(["path_a,path_b,same", "file_x,file_y,Decision", "path_a,path_b,same,fold", "a,b"]))
def test_pairs_csv_parser_loads_or_raises_data_error(tmp_path: Path, rows: list[list[str]], header: str) -> None:
    import csv

    path = tmp_path / "pairs.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(header + "\n")
        csv.writer(f).writerows(rows)
    try:
        parse_pairs_csv(path)
    except DataError as exc:
        assert "pairs.csv" in str(exc)


def _seed_images() -> list[bytes]:
    import cv2
    import numpy as np

    from .conftest import smooth_faces

    face = cv2.cvtColor(smooth_faces(1, seed=4, size=24)[0], cv2.COLOR_RGB2BGR)
    return [cv2.imencode(ext, face)[1].tobytes() for ext in (".png", ".jpg", ".bmp", ".tiff", ".webp")]


SEED_IMAGES = _seed_images()


def _mutate(seed: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    out = bytearray(seed)
    for pos, value in edits:
        out[pos % len(out)] = value
    return bytes(out[: max(0, len(out) - cut)])


@FUZZ
@given(st.one_of(
    st.binary(max_size=300),
    st.builds(_mutate, st.sampled_from(SEED_IMAGES), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
              st.integers(0, 64)),
))
def test_image_decoder_decodes_or_raises_data_error(data: bytes) -> None:
    # Damaged PNG/JPEG/BMP/TIFF/WebP bytes: pixels or a DataError naming the item, nothing else.
    try:
        rgb = decode_image(data, "item#7")
    except DataError as exc:
        assert str(exc).startswith("item#7: ")
    else:
        assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype.name == "uint8"


@FUZZ
@given(st.one_of(
    st.binary(max_size=200),
    st.builds(lambda obj: pickle.dumps(obj, protocol=2), st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.binary(max_size=8), st.text(max_size=5)),
        lambda c: st.one_of(st.lists(c, max_size=4), st.tuples(c, c)), max_leaves=10)),
    st.builds(lambda n, m: pickle.dumps(([b"x"] * n, [True] * m), protocol=4), st.integers(0, 6), st.integers(0, 4)),
))
@example(b"\x8d\x00\x00\x00\x00\x00\x00\x00\x01")  # BINUNICODE8 claiming 2**56 bytes: MemoryError once
def test_bin_loader_loads_or_raises_data_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.bin"
    path.write_bytes(data)
    try:
        load_bin(path, n_folds=1)
    except DataError as exc:
        assert "fuzz.bin" in str(exc)


def test_disk_full_while_appending_keeps_the_previous_leaderboard(tmp_path: Path, monkeypatch) -> None:
    import os

    from recogbench import fileio
    from recogbench.results import append_row, read_leaderboard

    append_row(tmp_path, {"protocol": "lfw", "accuracy_mean": 0.99})
    before = (tmp_path / "leaderboard.csv").read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        append_row(tmp_path, {"protocol": "lfw", "accuracy_mean": 0.5})
    monkeypatch.undo()
    assert (tmp_path / "leaderboard.csv").read_bytes() == before
    assert len(read_leaderboard(tmp_path)) == 1
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # no debris
