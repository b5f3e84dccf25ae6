"""The run pipeline end to end on tiny protocols: rows, files, caching, failures, reproducibility."""

from __future__ import annotations

import csv
import json
import threading
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from recogbench.cache import EmbeddingCache
from recogbench.config import RunConfig
from recogbench.data import DataError
from recogbench.metrics import FAILED_SCORE
from recogbench.pipeline import run
from recogbench.results import COLUMNS, append_row, read_leaderboard

from .conftest import shared_path

REQUIRED = [
    "protocol", "protocol_version", "occlusion", "inpainter", "verifier", "n_pairs", "failures",
    "accuracy_mean", "accuracy_std", "auc", "eer", "tar@far=1e-01", "tar@far=1e-02", "tar@far=1e-03",
    "tar@far=1e-04", "similarity_gap", "device", "provider", "config_hash", "recogbench_version",
    "code_revision", "timestamp",
]


def config(pack: Path, out: Path, **kw) -> RunConfig:
    return RunConfig(protocol="bin", data=str(pack), out=str(out), device="cpu", batch_size=7, progress=False, **kw)


def test_run_writes_row_scores_and_plots(tiny_pack: Path, tmp_path: Path) -> None:
    result = run(config(tiny_pack, tmp_path))
    board = read_leaderboard(tmp_path)
    assert len(board) == 1 and set(REQUIRED) <= set(board.columns)
    row = board.iloc[0]
    assert row["protocol"] == "tiny" and row["n_pairs"] == 20 and row["failures"] == 0
    assert row["provider"] == "opencv-dnn:CPU" and row["device"] == "cpu"
    assert pd.isna(row["tar@far=1e-02"])  # 10 impostors cannot measure FAR 1e-2
    files = {p.name for p in result.run_dir.iterdir()}
    assert {"config.json", "row.json", "scores.csv", "manifest.jsonl", "roc.png", "hist.png"} <= files
    scores = pd.read_csv(result.run_dir / "scores.csv")
    assert len(scores) == 20 and list(scores["fold"].unique()) == list(range(10))
    np.testing.assert_allclose(scores["score"].to_numpy(), result.scores, atol=1e-6)
    assert cv2.imread(str(result.run_dir / "roc.png")) is not None
    assert json.loads((result.run_dir / "row.json").read_text())["config_hash"] == row["config_hash"]


def test_same_config_same_numbers_and_cache_reuse(tiny_pack: Path, tmp_path: Path) -> None:
    cold = run(config(tiny_pack, tmp_path / "a", cache=False))
    first = run(config(tiny_pack, tmp_path / "b"))
    again = run(replace(config(tiny_pack, tmp_path / "b"), batch_size=3))
    np.testing.assert_array_equal(cold.scores, first.scores)
    np.testing.assert_array_equal(first.scores, again.scores)
    assert cold.row["config_hash"] == first.row["config_hash"] == again.row["config_hash"]
    assert (first.row["embedded"], first.row["reused"]) == (40, 0)
    assert (again.row["embedded"], again.row["reused"]) == (0, 40)
    numbers = [k for k in REQUIRED if k.startswith(("acc", "auc", "eer", "similarity"))]
    assert all(cold.row[k] == again.row[k] for k in numbers)


def test_occluded_condition_embeds_only_what_changed(tiny_pack: Path, tmp_path: Path) -> None:
    clean = run(config(tiny_pack, tmp_path))
    occluded = run(config(tiny_pack, tmp_path, occlusion="region:twoeyes"))
    oracle = run(config(tiny_pack, tmp_path, occlusion="region:twoeyes", inpainter="oracle"))
    # only the 20 occluded faces are new: the unrestored view is the same pixels (one cache
    # entry), and both clean sides come from the clean run's cache
    assert (occluded.row["embedded"], occluded.row["reused"]) == (20, 60)
    # the 80×40 box on 112×112 (no pixel of these faces is already black)
    assert occluded.row["mean_coverage"] == pytest.approx(80 * 40 / 112**2)
    assert not np.allclose(occluded.scores, clean.scores)
    # the oracle restores the exact clean pixels: the clean numbers, all from the cache
    np.testing.assert_array_equal(oracle.scores, clean.scores)
    assert oracle.row["embedded"] == 0
    assert len({clean.row["config_hash"], occluded.row["config_hash"], oracle.row["config_hash"]}) == 3
    manifest = [json.loads(line) for line in (occluded.run_dir / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 20 and {m["side"] for m in manifest} == {"second"}
    assert manifest[0]["bbox"] == [18, 30, 98, 70] and occluded.row["manifest_hash"]
    assert len(read_leaderboard(tmp_path)) == 3


def _csv_protocol(tmp_path: Path, photos: list[np.ndarray]) -> Path:
    """A pairs CSV over the given photos: pair k is (photo 2k, photo 2k+1), alternating labels."""
    rows = []
    for i, photo in enumerate(photos):
        cv2.imwrite(str(tmp_path / f"p{i}.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    for k in range(len(photos) // 2):
        rows.append((f"p{2 * k}.png", f"p{2 * k + 1}.png", int(k % 2 == 0)))
    path = tmp_path / "pairs.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("path_a", "path_b", "same"), *rows])
    return path


def test_undetectable_face_is_counted_not_dropped(tmp_path: Path) -> None:
    from recogbench.demo import _face_crops, _sample_photos

    crops = [c for _, c in _face_crops(_sample_photos())][:5]
    if len(crops) < 5:
        pytest.skip("needs insightface's sample faces")
    gray = np.full((200, 200, 3), 128, np.uint8)
    photos = [crops[0], crops[0][:, ::-1].copy(), crops[1], crops[2], crops[3], crops[3].copy(), gray, crops[4]]
    csv_path = _csv_protocol(tmp_path, photos)
    result = run(RunConfig(protocol="pairs_csv", data=str(csv_path), out=str(tmp_path / "out"), device="cpu", progress=False,
                           max_failures=0.25))
    assert result.row["n_pairs"] == 4 and result.row["failures"] == 1
    assert result.failed.tolist() == [False, False, False, True]
    assert result.scores[3] == FAILED_SCORE
    scores = pd.read_csv(result.run_dir / "scores.csv")
    assert scores["failed"].tolist() == [0, 0, 0, 1] and "p6.png" in scores["image_a"].iloc[3]
    with pytest.raises(DataError, match="p6.png.*no face"):
        run(RunConfig(protocol="pairs_csv", data=str(csv_path), out=str(tmp_path / "out2"), device="cpu",
                      progress=False, on_error="fail"))


@pytest.mark.shared
def test_sface_separates_deepface_pairs(tmp_path: Path) -> None:
    """Real photos, real detector, real recogniser: genuine and impostor pairs separate."""
    csv_path = shared_path("deepface-pairs", "pairs.csv")
    result = run(RunConfig(protocol="pairs_csv", data=str(csv_path), out=str(tmp_path), progress=False))
    row = result.row
    assert (row["n_pairs"], row["n_genuine"], row["n_impostor"], row["failures"]) == (300, 38, 262, 0)
    assert row["auc"] > 0.99
    assert row["accuracy_mean"] > 0.97
    assert row["mean_genuine"] - row["mean_impostor"] > 0.3


def test_concurrent_appends_all_land(tmp_path: Path) -> None:
    def worker(k: int) -> None:
        for i in range(5):
            append_row(tmp_path, {"protocol": f"p{k}", "accuracy_mean": i / 10})

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    board = read_leaderboard(tmp_path)
    assert len(board) == 15 and sorted(board["protocol"].unique()) == ["p0", "p1", "p2"]
    assert list(board.columns[:2]) == [c for c in COLUMNS if c in board.columns][:2]


def test_corrupt_cache_shard_is_detected_and_recomputed(tiny_pack: Path, tmp_path: Path) -> None:
    first = run(config(tiny_pack, tmp_path))
    shards = list((tmp_path / ".cache" / "embeddings").rglob("*.npz"))
    assert len(shards) == 1
    data = bytearray(shards[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    shards[0].write_bytes(bytes(data))
    again = run(config(tiny_pack, tmp_path))
    assert again.row["embedded"] == 40  # nothing trusted from the corrupt shard
    np.testing.assert_array_equal(first.scores, again.scores)


def test_cache_is_per_verifier(tmp_path: Path) -> None:
    a = EmbeddingCache(tmp_path, "sface:abc")
    a.put(b"k" * 20, np.ones(4, np.float32))
    a.flush()
    assert EmbeddingCache(tmp_path, "sface:abc").get(b"k" * 20) is not None
    assert EmbeddingCache(tmp_path, "other:def").get(b"k" * 20) is None


def test_result_files_follow_the_umask(tmp_path: Path) -> None:
    import os

    from recogbench.fileio import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "x.csv", b"a")
    finally:
        os.umask(old)
    assert (tmp_path / "x.csv").stat().st_mode & 0o777 == 0o644


def test_quality_and_identity_columns(tiny_pack: Path, tmp_path: Path) -> None:
    from recogbench.pipeline import run_all
    from recogbench.protocols import load_bin

    rows = {r.row["inpainter"]: r.row for r in run_all(config(tiny_pack, tmp_path, occlusion="region:nose",
                                                             inpainter="none+oracle+telea"))}
    oracle, none, telea = rows["oracle"], rows["none"], rows["telea"]
    assert oracle["psnr_face"] == float("inf") and oracle["ssim_face"] == 1.0 and oracle["l1_hole"] == 0.0
    assert oracle["identity_cosine"] == pytest.approx(1.0, abs=1e-6)
    # `none` leaves a black box: its hole L1 is the mean clean intensity inside the box
    pack = load_bin(tiny_pack)
    second = pack.source.load(list(range(1, 40, 2))).images.astype(np.float64) / 255
    x1, y1, x2, y2 = 42, 48, 70, 86
    assert none["l1_hole"] == pytest.approx(second[:, y1:y2, x1:x2].mean(), rel=1e-6)
    assert telea["l1_hole"] < none["l1_hole"] and telea["psnr_hole"] > none["psnr_hole"]
    assert none["l1_face"] == pytest.approx(none["l1_hole"] * (x2 - x1) * (y2 - y1) / 112**2, rel=1e-6)
    board = read_leaderboard(tmp_path)
    assert {"psnr_face", "ssim_hole", "identity_cosine"} <= set(board.columns)
