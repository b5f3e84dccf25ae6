"""Crash safety: a killed run resumes with the same numbers, Ctrl-C stops cleanly, and a
verifier's non-finite embeddings follow the --on-error policy."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recogbench.config import RunConfig
from recogbench.data import DataError
from recogbench.pipeline import run
from recogbench.registry import VERIFIERS

from .conftest import smooth_faces, write_pack

VOLATILE = {"timestamp", "seconds", "embedded", "reused", "run_dir"}


@pytest.fixture
def big_pack(tmp_path: Path) -> Path:
    """600 pairs (1,200 faces): long enough (~12 s) to be interrupted part-way."""
    faces = smooth_faces(1200, seed=11)
    return write_pack(tmp_path / "big.bin", faces, [bool(k % 2) for k in range(600)])


def _start(pack: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "recogbench", "run", "bin", "--data", str(pack), "--out", str(out),
           "--quiet", "--device", "cpu", "--batch-size", "64", "--bootstrap", "100"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_shard(out: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list((out / ".cache").rglob("*.npz")):
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before any cache shard was written:\n{proc.communicate()[0]}")
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    pytest.fail("no cache shard appeared")


def _interrupt_after_first_shard(pack: Path, out: Path, sig: int) -> tuple[subprocess.Popen, str]:
    """Start a run, send ``sig`` once its first cache shard is on disk; (process, output)."""
    proc = _start(pack, out)
    _wait_for_shard(out, proc)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=60)
    return proc, output


@pytest.mark.slow
def test_killed_run_resumes_with_identical_row(big_pack: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    _interrupt_after_first_shard(big_pack, out, signal.SIGKILL)
    assert not (out / "leaderboard.csv").exists()  # no partial row
    resumed = _start(big_pack, out)
    output, _ = resumed.communicate()
    assert resumed.returncode == 0, output
    reference = _start(big_pack, tmp_path / "reference")
    output, _ = reference.communicate()
    assert reference.returncode == 0, output
    a = pd.read_csv(out / "leaderboard.csv").iloc[0]
    b = pd.read_csv(tmp_path / "reference" / "leaderboard.csv").iloc[0]
    assert a["reused"] >= 512 and a["embedded"] + a["reused"] == b["embedded"] + b["reused"]
    for column in set(a.index) - VOLATILE:
        assert (a[column] == b[column]) or (pd.isna(a[column]) and pd.isna(b[column])), column


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(big_pack: Path, tmp_path: Path) -> None:
    out = tmp_path / "interrupted"
    proc, output = _interrupt_after_first_shard(big_pack, out, signal.SIGINT)
    assert proc.returncode == 130, output
    text = " ".join(output.split())  # rich wraps long lines
    assert "interrupted" in text and "Run the same command again to resume" in text
    assert "Traceback" not in output
    assert not (out / "leaderboard.csv").exists()
    assert list((out / ".cache").rglob("*.npz"))


class _NaNForDarkFaces:
    """Wraps SFace; returns NaN embeddings for faces darker than ``threshold`` (mean in [0, 1])."""

    def __init__(self, threshold: float, **kwargs) -> None:
        self.threshold = threshold
        self.inner = VERIFIERS.create("sface", **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed(self, images):
        out = self.inner.embed(images)
        dark = images.mean(dim=(1, 2, 3)).numpy() < self.threshold
        if dark.any():
            raise FloatingPointError(f"verifier nanface produced non-finite or zero embeddings for batch items "
                                     f"{np.flatnonzero(dark).tolist()}")
        return out


def test_non_finite_embeddings_follow_the_policy(tiny_pack: Path, tmp_path: Path) -> None:
    from recogbench.protocols import load_bin

    pack = load_bin(tiny_pack)
    faces = pack.source.load(list(range(40))).images
    brightness = faces.astype(np.float64).mean(axis=(1, 2, 3)) / 255
    threshold = float(np.quantile(brightness, 0.2))  # about a fifth of the faces are "dark"
    assert 0 < int((brightness < threshold).sum()) < 40
    verifier = _NaNForDarkFaces(threshold, device="cpu")
    cfg = RunConfig(protocol="bin", data=str(tiny_pack), out=str(tmp_path), progress=False, device="cpu", bootstrap=0,
                    max_failures=1.0)
    result = run(cfg, verifier=verifier)
    dark_pairs = {k for k in range(20) if any(brightness[2 * k + j] < threshold for j in (0, 1))}
    assert set(np.flatnonzero(result.failed)) == dark_pairs
    assert result.row["failures"] == len(dark_pairs) and result.row["n_pairs"] == 20
    with pytest.raises(DataError, match="non-finite"):
        run(RunConfig(protocol="bin", data=str(tiny_pack), out=str(tmp_path / "f"), progress=False, device="cpu",
                      on_error="fail", cache=False), verifier=verifier)
