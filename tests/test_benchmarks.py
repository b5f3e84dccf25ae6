"""The benchmark scripts run end to end on a tiny synthetic pack (speed is reported, never asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
STAGES = ("decode", "occlude", "inpaint", "embed", "metrics")


def _run(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # No bytecode: a test writes nothing into the repository (benchmarks/__pycache__ included).
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_bench_gpu_on_cpu_reports_every_stage(tmp_path: Path) -> None:
    out = tmp_path / "bench_gpu.json"
    proc = _run("bench_gpu.py", ["--device", "cpu", "--pairs", "40", "--batch-size", "16", "--workers", "1",
                                 "--bootstrap", "50", "--json", str(out)], tmp_path)
    report = json.loads(out.read_text())
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == report  # the same object on stdout
    assert report["device"] == "cpu" and report["device_name"]
    assert report["pairs"] == 40 and report["images"] == 80
    assert report["batch_size"] == 16 and report["workers"] == 1
    assert report["torch"] and report["provider"]
    for stage in STAGES:
        assert report["stages"][stage]["images"] == 80
        assert report["stages"][stage]["images_per_s"] > 0, stage
    assert report["bare_forward_images_per_s"] > 0
    embed = report["stages"]["embed"]  # timed before and after the run; the stage is their mean time
    before, after = embed["before_run_images_per_s"], embed["after_run_images_per_s"]
    assert min(before, after) * 0.99 <= embed["images_per_s"] <= max(before, after) * 1.01
    cpu = report["cpu"]  # --workers 1: the run's CPU work is all in the measuring process
    assert cpu["includes_workers"] and cpu["bare_forward_ms_per_image"] > 0 and cpu["run_ms_per_face_embedded"] > 0
    assert 0 < cpu["ratio_bound"] < 10
    run = report["run"]
    # region:twoeyes on the second side: first side clean (40) + restored, occluded, clean (3 × 40)
    assert run["faces_embedded"] == 160 and run["images_per_s"] > 0 and run["cache"] == "cold"
    targets = report["targets"]
    assert isinstance(targets["run_vs_bare_forward"]["pass"], bool)
    e2e = targets["arcface_r50_end_to_end_images_per_s"]
    assert e2e["applies"] is False and e2e["pass"] is None and e2e["why"]  # sface, on a CPU
    assert list(tmp_path.iterdir()) == [out]  # temporary pack and results are cleaned up


@pytest.mark.slow
def test_bench_run_with_one_worker(tmp_path: Path) -> None:
    proc = _run("bench_run.py", ["--device", "cpu", "--pairs", "40", "--batch-size", "16", "--workers", "1"], tmp_path)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["workers"] == 1 and report["pairs"] == 40 and report["images"] == 80
    assert report["run_images_per_s"] > 0 and report["bare_forward_images_per_s"] > 0
