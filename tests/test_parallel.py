"""Parallel execution: CPU worker processes, the aligned-face cache, shards and the Ray executor.

Every path must write the rows a single in-process run writes."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from recogbench.config import RunConfig
from recogbench.pipeline import CpuStages, evaluate_shard, load_protocol, merge_shards, run_all
from recogbench.protocols import FileImageSource
from recogbench.registry import VERIFIERS
from tests.conftest import smooth_faces, write_pack

# Columns that say when and how fast, not what: everything else must match exactly.
_VOLATILE = {"timestamp", "seconds", "run_dir", "embedded", "reused"}


@pytest.fixture(scope="module")
def pack60(tmp_path_factory) -> Path:
    """60 pairs (30 genuine: a face and its noisy copy) in 10 folds."""
    faces = smooth_faces(120, seed=3)
    rng = np.random.default_rng(0)
    for k in range(0, 60, 2):
        faces[2 * k + 1] = np.clip(faces[2 * k].astype(int) + rng.integers(-5, 6, faces[0].shape), 0, 255)
    return write_pack(tmp_path_factory.mktemp("pack") / "p60.bin", faces, [k % 2 == 0 for k in range(60)])


def _base(pack: Path) -> dict:
    return dict(protocol="bin", data=str(pack), occlusion="region:twoeyes+random_block", inpainter="none+telea",
                side="both", progress=False, bootstrap=20)


def _assert_same_runs(a_results, b_results) -> None:
    assert len(a_results) == len(b_results)
    for a, b in zip(a_results, b_results):
        differs = {k: (a.row[k], b.row[k]) for k in a.row
                   if k not in _VOLATILE and a.row[k] != b.row[k] and a.row[k] == a.row[k]}  # NaN == NaN here
        assert not differs, (a.row["occlusion"], a.row["inpainter"], differs)
        for name in ("scores.csv", "manifest.jsonl"):
            assert (Path(a.run_dir) / name).read_bytes() == (Path(b.run_dir) / name).read_bytes(), name


def test_rows_do_not_depend_on_workers_or_batch_size(pack60: Path, tmp_path: Path) -> None:
    base = {**_base(pack60), "inpainter": "telea"}
    one = run_all(RunConfig(**base, out=str(tmp_path / "w1"), workers=1, batch_size=64))
    assert one[0].row["mean_coverage"] > 0.05 and one[1].row["psnr_hole"] > 0
    for workers, batch in ((2, 7), (3, 16)):
        _assert_same_runs(one, run_all(RunConfig(**base, out=str(tmp_path / f"w{workers}b{batch}"),
                                                 workers=workers, batch_size=batch)))


def test_classical_restoration_in_the_cpu_stages_writes_the_device_path_rows(pack60: Path, tmp_path: Path,
                                                                              monkeypatch) -> None:
    """fill/telea/navier_stokes restore beside occlusion in the workers; forcing them back onto
    the run's own device path must not change a byte of any row, score or manifest."""
    import recogbench.pipeline as pipeline

    base = {**_base(pack60), "inpainter": "none+fill+telea+navier_stokes", "batch_size": 16}
    routed: list[bool] = []
    real = pipeline.restores_on_cpu
    monkeypatch.setattr(pipeline, "restores_on_cpu", lambda *a: routed.append(real(*a)) or routed[-1])
    in_workers = run_all(RunConfig(**base, out=str(tmp_path / "cpu"), workers=2))
    assert routed and all(routed)
    monkeypatch.setattr(pipeline, "restores_on_cpu", lambda *a: False)
    on_device = run_all(RunConfig(**base, out=str(tmp_path / "device"), workers=1))
    _assert_same_runs(in_workers, on_device)
    assert {r.row["inpainter"] for r in in_workers} == {"none", "fill", "telea", "navier_stokes"}


def test_only_weight_free_restoration_on_its_own_masks_runs_in_the_cpu_stages() -> None:
    from recogbench.pipeline import MaskSource, restores_on_cpu
    from recogbench.registry import INPAINTERS

    oracle = MaskSource("oracle", "cpu", 8)
    assert restores_on_cpu(INPAINTERS.create("telea", device="cpu"), oracle)
    assert not restores_on_cpu(INPAINTERS.create("oracle", device="cpu"), oracle)  # reads the clean face
    for network in ("pconv-gan", "unet-gan", "ifacenet"):  # the class's contract; no checkpoint needed
        assert not restores_on_cpu(INPAINTERS.get(network), oracle), network
    predicted = SimpleNamespace(segmenter=object())  # masks predicted on the device
    assert not restores_on_cpu(INPAINTERS.create("telea", device="cpu"), predicted)


def test_workers_auto_uses_a_pool_only_when_it_pays(pack60: Path) -> None:
    protocol = load_protocol(RunConfig(protocol="bin", data=str(pack60)))
    with CpuStages.for_run(RunConfig(protocol="bin", data=str(pack60), batch_size=64), protocol) as small:
        assert small.workers == 1  # one batch: a pool would only add its start-up
    with CpuStages.for_run(RunConfig(protocol="bin", data=str(pack60), batch_size=8, workers=2), protocol) as two:
        assert two.workers == 2 and two._pool is not None


def test_shards_merge_into_the_whole(pack60: Path, tmp_path: Path) -> None:
    config = RunConfig(protocol="bin", data=str(pack60), occlusion="random_block", inpainter="telea", side="both",
                       progress=False, batch_size=8)
    protocol = load_protocol(config)
    verifier = VERIFIERS.create("sface", device="cpu")
    whole = merge_shards(config, protocol, [evaluate_shard(config, protocol, verifier)])
    parts = [evaluate_shard(config, protocol, verifier, a, min(a + 13, 60)) for a in range(0, 60, 13)]
    merged = merge_shards(config, protocol, parts[::-1])  # any order
    assert np.array_equal(whole.scores, merged.scores) and np.array_equal(whole.scores_clean, merged.scores_clean)
    assert whole.manifest == merged.manifest and whole.row == merged.row
    assert [int(p) for p in merged.samples["pairs"]] == list(range(8))
    with pytest.raises(ValueError, match="do not cover pairs"):
        merge_shards(config, protocol, parts[:2] + parts[3:])


class _CountingAligner:
    """Stands in for FaceAligner: a 112 crop of the photo's centre; counts its calls."""

    size, fingerprint = 112, "counting/112"

    def __init__(self) -> None:
        self.calls = 0

    def align(self, rgb: np.ndarray) -> SimpleNamespace:
        self.calls += 1
        if rgb.mean() < 5:
            return SimpleNamespace(face=None, error="no face detected")
        return SimpleNamespace(face=np.ascontiguousarray(rgb[:112, :112]), error=None)


def _photos(root: Path) -> list[str]:
    names = []
    for k, face in enumerate(smooth_faces(3, seed=7, size=128)):
        names.append(f"p{k}.png")
        cv2.imwrite(str(root / names[-1]), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    names.append("dark.png")
    cv2.imwrite(str(root / "dark.png"), np.zeros((128, 128, 3), np.uint8))
    return names


def test_face_cache_aligns_each_photo_once_across_sources(tmp_path: Path) -> None:
    names = _photos(tmp_path)
    first, second = _CountingAligner(), _CountingAligner()
    a = FileImageSource(tmp_path, names, first, "photos")
    a.use_face_cache(tmp_path / "cache")
    got_a = a.load([0, 1, 2, 3])
    assert first.calls == 4 and list(got_a.ok) == [True, True, True, False]
    b = FileImageSource(tmp_path, names, second, "photos")  # a later condition, another process
    b.use_face_cache(tmp_path / "cache")
    got_b = b.load([3, 2, 1, 0])
    assert second.calls == 0, "a cached photo (or its failure) was detected again"
    assert np.array_equal(got_b.images[::-1], got_a.images) and got_b.errors[0] == got_a.errors[3]

    # A changed photo is a new key; a corrupt cache file is dropped and recomputed.
    cv2.imwrite(str(tmp_path / "p0.png"), np.full((128, 128, 3), 90, np.uint8))
    os.utime(tmp_path / "p0.png", ns=(1, 1))
    for face_file in (tmp_path / "cache").rglob("*.face"):
        face_file.write_bytes(face_file.read_bytes()[:-1] + b"\0")
    c = FileImageSource(tmp_path, names, (third := _CountingAligner()), "photos")
    c.use_face_cache(tmp_path / "cache")
    got_c = c.load([0, 1])
    assert third.calls == 2 and c.face_cache.corrupt == 1
    assert (got_c.images[0] == 90).all() and np.array_equal(got_c.images[1], got_a.images[1])


def test_cli_run_with_workers(pack60: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from recogbench.cli import app

    result = CliRunner().invoke(app, ["run", "bin", "--data", str(pack60), "--occlusion", "random_block",
                                      "--workers", "2", "--batch-size", "16", "--bootstrap", "0", "-q",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    bad = CliRunner().invoke(app, ["run", "bin", "--data", str(pack60), "--workers", "-1", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "workers must be >= 0" in bad.output


def test_executor_ray_without_ray_says_how_to_install(pack60: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'recogbench\[ray\]'"):
        run_all(RunConfig(**_base(pack60), out=str(tmp_path), executor="ray"))


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray cluster of two worker CPUs, started inside the tests."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def _kill_first_shard_task(deadline: float, killed: list[int]) -> None:
    """SIGKILL the first Ray worker seen running a shard (Ray titles it ``ray::_shard_task``)."""
    while not killed and time.monotonic() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"ray::_shard_task"):
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return
        time.sleep(0.002)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's worker processes through /proc")
def test_ray_writes_the_local_rows_even_when_a_worker_is_killed(local_ray, pack60: Path, tmp_path: Path) -> None:
    local = run_all(RunConfig(**_base(pack60), out=str(tmp_path / "local"), workers=1))
    killed: list[int] = []
    killer = threading.Thread(target=_kill_first_shard_task, args=(time.monotonic() + 120, killed))
    killer.start()
    try:
        remote = run_all(RunConfig(**_base(pack60), out=str(tmp_path / "ray"), executor="ray", shard_size=7))
    finally:
        if not killed:
            killed.append(-1)  # the run ended first: stop the killer
        killer.join()
    assert killed[0] > 0, "no shard was caught running, so the retry was not exercised"
    _assert_same_runs(local, remote)
    board = (tmp_path / "ray" / "leaderboard.csv").read_text().splitlines()
    assert len(board) == 1 + 4  # one row per condition, none twice for the retried shard


@pytest.mark.slow
def test_a_killed_run_leaves_no_worker_behind(tmp_path: Path) -> None:
    # SIGKILL cannot run the pool's shutdown: the workers must notice and exit by themselves,
    # or they hold the run's stdout open and wait on their queue forever.
    import signal
    import subprocess
    import sys
    import time

    pack = write_pack(tmp_path / "big.bin", smooth_faces(1200, seed=1), [k % 2 == 0 for k in range(600)])
    proc = subprocess.Popen([sys.executable, "-m", "recogbench", "run", "bin", "--data", str(pack), "--out",
                             str(tmp_path / "out"), "--quiet", "--device", "cpu", "--batch-size", "32", "--workers",
                             "2", "--bootstrap", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    def tree(pid: int) -> set[int]:
        f = Path(f"/proc/{pid}/task/{pid}/children")
        kids = {int(p) for p in f.read_text().split()} if f.exists() else set()
        return kids.union(*(tree(k) for k in kids)) if kids else kids

    # Kill it while the forkserver and both workers are busy (after the first cached shard).
    deadline = time.monotonic() + 120
    descendants: set[int] = set()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        descendants |= tree(proc.pid)
        if len(tree(proc.pid)) >= 3 and list((tmp_path / "out").rglob("*.npz")):
            break
    assert len(descendants) >= 3, f"the run started no worker pool: {descendants}"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)  # stdout closes: nothing left holding it
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in descendants):
        time.sleep(0.2)
    alive = [p for p in descendants if Path(f"/proc/{p}").exists()
             and "Z" not in Path(f"/proc/{p}/stat").read_text().split(")")[-1].split()[:1]]
    assert not alive, f"workers still running after the run was killed: {alive}"
