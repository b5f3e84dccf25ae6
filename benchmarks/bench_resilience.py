"""What a killed run keeps, and how fast a corrupt cache shard is caught.

Builds a synthetic insightface-format pack (default 600 pairs = 1,200 JPEG 112×112 faces, built by bench_run.synthetic_pack),
then runs `python -m recogbench run bin ...` as a subprocess (the way a user does):
  1. a reference run (or `--reference-runs N`, median wall time), uninterrupted, into its own folder;
  2. for each kill point (`shard`: as soon as the first cache shard is on disk; a number:
     that many seconds after the process started, imports included) a run SIGKILLed there
     and the same command again: faces reused on resume, share reused, wall time against
     the reference, and the columns where the resumed row differs from the reference row
     (timestamp, seconds, embedded, reused, run_dir excepted; expected: none);
  3. for each kind of damage (a byte flipped mid-file, truncated to half, emptied to
     0 bytes) on one shard of a copy of the reference folder: the time to open the cache
     as a run does (`EmbeddingCache(...)`, where every shard's sha256 is checked against
     its name), the time of that check alone on the damaged shard, then a rerun: faces
     recomputed (expected: exactly the damaged shard's) and whether its row equals the
     reference row.
Prints plain-text tables; `--json PATH` also writes the numbers. No timing is asserted.

    python benchmarks/bench_resilience.py [--pairs 600] [--kill-points shard,5,10 | --kill-after 5]
                                          [--reference-runs 1] [--repeats 15] [--json resilience.json]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from bench_run import synthetic_pack  # benchmarks/ is on sys.path when a script here runs

# Columns that legitimately differ between two runs of the same condition.
VOLATILE = {"timestamp", "seconds", "embedded", "reused", "run_dir"}
CORRUPTIONS = ("flip", "truncate", "empty")


# --- runs as subprocesses ---

def run_command(pack: Path, out: Path, batch_size: int, bootstrap: int) -> list[str]:
    """The user's command line (as in tests/test_resilience.py), with this interpreter."""
    return [sys.executable, "-m", "recogbench", "run", "bin", "--data", str(pack), "--out", str(out),
            "--quiet", "--device", "cpu", "--batch-size", str(batch_size), "--bootstrap", str(bootstrap)]


def start(cmd: list[str]) -> subprocess.Popen:
    """Start a run; stdout and stderr together, so a failure shows its traceback."""
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> str:
    """Wait for a run; its combined output, or SystemExit with it if the run failed."""
    output, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"run failed (exit {proc.returncode}): {' '.join(proc.args)}\n{output}")
    return output


def timed_run(cmd: list[str]) -> tuple[float, str]:
    """Wall seconds of a whole run (interpreter start and imports included) and its output."""
    t0 = time.perf_counter()
    output = finish(start(cmd))
    return time.perf_counter() - t0, output


def shards(out: Path) -> list[Path]:
    """The cache shards under OUT/.cache, sorted by name."""
    # Only finished shards: atomic_write_bytes writes `.<name>.npz.<random>.tmp` and renames.
    return sorted((out / ".cache").rglob("*.npz"))


def shard_faces(path: Path) -> int:
    """Number of faces (entries) in one intact shard."""
    with np.load(path, allow_pickle=False) as z:
        return len(z["keys"])


def last_row(out: Path) -> pd.Series:
    """The newest leaderboard row in OUT."""
    # A rerun into the same folder appends; the newest row is the rerun's.
    return pd.read_csv(out / "leaderboard.csv").iloc[-1]


def differing_columns(a: pd.Series, b: pd.Series) -> list[str]:
    """Columns outside VOLATILE where the two rows differ (NaN equals NaN; missing differs)."""
    diffs = []
    for col in sorted((set(a.index) | set(b.index)) - VOLATILE):
        if col not in a.index or col not in b.index:
            diffs.append(col)
        elif not (a[col] == b[col] or (pd.isna(a[col]) and pd.isna(b[col]))):
            diffs.append(col)
    return diffs


# --- 1. kill and resume ---

def kill_and_resume(cmd: list[str], out: Path, point: str, reference: dict[str, Any]) -> dict[str, Any]:
    """SIGKILL a run at `point` ("shard" or seconds), rerun it, and compare with the reference."""
    proc = start(cmd)
    t0 = time.perf_counter()
    deadline = t0 + (600.0 if point == "shard" else float(point))
    while time.perf_counter() < deadline and proc.poll() is None:
        if point == "shard" and shards(out):
            break
        time.sleep(0.01)
    if proc.poll() is not None:  # finished (or failed) before the kill point: nothing to resume
        finish(proc)
        return {"kill_point": point, "finished_before_kill": True, "killed_at_s": None}
    if point == "shard" and not shards(out):
        proc.kill()
        proc.communicate()
        raise SystemExit("no cache shard appeared within 600 s")
    proc.send_signal(signal.SIGKILL)
    killed_at = time.perf_counter() - t0
    proc.communicate()
    on_disk = shards(out)
    partial_row = (out / "leaderboard.csv").exists()  # must be False: a killed run writes no row

    wall, _ = timed_run(cmd)
    row = last_row(out)
    embedded, reused = int(row["embedded"]), int(row["reused"])
    return {
        "kill_point": point,
        "finished_before_kill": False,
        "killed_at_s": round(killed_at, 2),
        "shards_on_disk": len(on_disk),
        "faces_on_disk": sum(shard_faces(p) for p in on_disk),
        "partial_row_after_kill": partial_row,
        "embedded": embedded,
        "reused": reused,
        "share_reused": round(reused / (embedded + reused), 4),
        "resumed_wall_s": round(wall, 2),
        "resumed_row_seconds": float(row["seconds"]),
        "killed_plus_resumed_wall_s": round(killed_at + wall, 2),
        "resumed_over_reference": round(wall / reference["wall_s"], 3),
        "differing_columns": differing_columns(row, reference["row"]),
    }


# --- 2. corrupt shards ---

def corrupt(path: Path, kind: str) -> None:
    """Damage a shard in place, the way a bad disk or an interrupted copy would."""
    data = bytearray(path.read_bytes())
    if kind == "flip":
        data[len(data) // 2] ^= 0xFF  # mid-file: inside the stored embeddings, the size is unchanged
        path.write_bytes(bytes(data))
    elif kind == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        raise ValueError(kind)


def time_open(embeddings: Path, fingerprint: str, repeats: int) -> tuple[float, int, int]:
    """Median ms to open the cache the way a run does; with the corrupt count and entries.

    Opening drops a corrupt shard, so each repeat opens a fresh copy (copied untimed).
    """
    from recogbench.cache import EmbeddingCache

    times, corrupt_count, entries = [], 0, 0
    with tempfile.TemporaryDirectory() as scratch:
        for i in range(repeats):
            root = Path(scratch) / str(i)
            shutil.copytree(embeddings, root)
            t0 = time.perf_counter()
            cache = EmbeddingCache(root, fingerprint)
            times.append(time.perf_counter() - t0)
            corrupt_count, entries = cache.corrupt_shards, len(cache)
            shutil.rmtree(root)
    return 1000 * statistics.median(times), corrupt_count, entries


def time_check(path: Path, repeats: int) -> float:
    """Median ms of the verification step alone on one shard: read it, sha256 it, compare."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _ = hashlib.sha256(path.read_bytes()).hexdigest() != path.stem
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def corruption_case(kind: str, index: int, cmd_for: Callable[[Path], list[str]], reference: dict[str, Any],
                    tmp: Path, fingerprint: str, repeats: int) -> dict[str, Any]:
    """Damage one shard of a copy of the reference folder; time detection; rerun and compare."""
    out = tmp / f"corrupt-{kind}"
    shutil.copytree(reference["out"], out)
    victims = shards(out)
    victim = victims[index % len(victims)]
    faces, size = shard_faces(victim), victim.stat().st_size
    embeddings = out / ".cache" / "embeddings"
    clean_ms, _, clean_entries = time_open(embeddings, fingerprint, repeats)
    corrupt(victim, kind)
    size_after = victim.stat().st_size
    detect_ms, detected, entries = time_open(embeddings, fingerprint, repeats)
    check_ms = time_check(victim, repeats)

    wall, output = timed_run(cmd_for(out))
    row = last_row(out)
    return {
        "kind": kind,
        "shard_faces": faces,
        "shard_bytes": size,
        "shard_bytes_after": size_after,
        "open_clean_ms": round(clean_ms, 3),
        "open_corrupt_ms": round(detect_ms, 3),
        "check_one_shard_ms": round(check_ms, 3),
        "corrupt_shards_found": detected,
        "entries_kept": entries,
        "entries_clean": clean_entries,
        "shard_removed_by_rerun": not victim.exists(),
        "run_warned": "corrupt" in " ".join(output.split()),
        "rerun_embedded": int(row["embedded"]),
        "rerun_reused": int(row["reused"]),
        "recomputed_exactly_shard": int(row["embedded"]) == faces,
        "rerun_wall_s": round(wall, 2),
        "differing_columns": differing_columns(row, reference["row"]),
    }


# --- machine ---

def machine() -> dict[str, Any]:
    """Date, cores available to this process, CPU model, and the versions that set the speed."""
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "absent"

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ort = version("onnxruntime")
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "torch": version("torch"),
        "onnxruntime": ort if ort != "absent" else version("onnxruntime-gpu"),
        "platform": platform.platform(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--kill-points", default=None,
                    help='comma-separated: "shard" (first cache shard on disk) or seconds after start; default "shard"')
    ap.add_argument("--kill-after", type=float, default=None, help="one kill point, SECONDS after start")
    ap.add_argument("--reference-runs", type=int, default=1,
                    help="uninterrupted runs; their median wall time is the reference (the machine may be busy)")
    ap.add_argument("--repeats", type=int, default=15, help="timed cache opens per case (median reported)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()
    if args.kill_points and args.kill_after is not None:
        ap.error("give --kill-points or --kill-after, not both")
    points = (args.kill_points.split(",") if args.kill_points
              else [str(args.kill_after)] if args.kill_after is not None else ["shard"])
    for p in points:
        if p != "shard":
            float(p)  # a bad number fails here, before minutes of runs
    # The cache warns once per corrupt shard per timed open; keep the timing but not the noise.
    cache_log = logging.getLogger("recogbench.cache")
    cache_log.addHandler(logging.NullHandler())
    cache_log.propagate = False

    info = machine()
    print(f"{info['date']}  {info['cores']} cores ({info['cpu']})  python {info['python']}  "
          f"torch {info['torch']}  onnxruntime {info['onnxruntime']}")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        n = 2 * args.pairs
        synthetic_pack(pack := tmp / "synthetic.bin", args.pairs, seed=11)

        def cmd_for(out: Path) -> list[str]:
            return run_command(pack, out, args.batch_size, args.bootstrap)

        print(f"pack: {args.pairs} pairs, {n} faces; command: "
              f"python -m recogbench run bin --data PACK --out OUT --quiet --device cpu "
              f"--batch-size {args.batch_size} --bootstrap {args.bootstrap}")

        # An untimed run on a small pack first: the timed runs then all start with the same warm
        # file cache (interpreter, torch, the model), so the first one is not charged for it.
        synthetic_pack(small := tmp / "warmup.bin", 20, seed=12)
        timed_run(run_command(small, tmp / "warmup", args.batch_size, args.bootstrap))

        ref_outs = [tmp / f"reference-{i}" for i in range(max(1, args.reference_runs))]
        walls = [timed_run(cmd_for(o))[0] for o in ref_outs]
        wall = statistics.median(walls)
        pipeline_s = statistics.median(float(last_row(o)["seconds"]) for o in ref_outs)
        ref_out, row = ref_outs[0], last_row(ref_outs[0])
        reference = {"out": ref_out, "row": row, "wall_s": wall}
        ref_shards = shards(ref_out)
        # Two clean runs must agree too; otherwise a difference after a kill would mean nothing.
        ref_diffs = sorted({c for o in ref_outs[1:] for c in differing_columns(last_row(o), row)})
        print(f"\nreference: {wall:.2f} s wall (median of {[round(w, 2) for w in walls]}; "
              f"{pipeline_s:.2f} s in the pipeline), embedded {int(row['embedded'])}, "
              f"reused {int(row['reused'])}, {len(ref_shards)} shards of {[shard_faces(p) for p in ref_shards]} faces"
              + (f"; reference runs differ in {ref_diffs}" if ref_diffs else ""))

        # 1. kill and resume
        kills = [kill_and_resume(cmd_for(tmp / f"killed-{i}"), tmp / f"killed-{i}", p, reference)
                 for i, p in enumerate(points)]
        print("\n1. SIGKILL, then the same command again")
        print("   wall times include interpreter start and imports; 'pipeline' is the row's `seconds`")
        print(f"{'kill point':>10} {'killed at':>9} {'on disk':>7} {'reused':>6} {'embedded':>8} {'share':>6} "
              f"{'resumed':>8} {'reference':>9} {'ratio':>5} {'kill+resume':>11} {'pipeline res/ref':>16}"
              f"  differing columns")
        for k in kills:
            if k["finished_before_kill"]:
                print(f"{k['kill_point']:>10}  run finished before the kill point")
                continue
            print(f"{k['kill_point']:>10} {k['killed_at_s']:8.2f}s {k['faces_on_disk']:7d} {k['reused']:6d} "
                  f"{k['embedded']:8d} {k['share_reused']:6.1%} {k['resumed_wall_s']:7.2f}s {wall:8.2f}s "
                  f"{k['resumed_over_reference']:5.2f} {k['killed_plus_resumed_wall_s']:10.2f}s "
                  f"{k['resumed_row_seconds']:7.2f}/{pipeline_s:.2f}s  "
                  f"{k['differing_columns'] or 'none'}"
                  + ("  (PARTIAL ROW LEFT BY THE KILLED RUN)" if k["partial_row_after_kill"] else ""))

        # 2. corrupt shards: the fingerprint the run used names the cache folder
        fingerprint = json.loads((Path(row["run_dir"]) / "config.json").read_text())["identity"]["verifier_fingerprint"]
        cases = [corruption_case(kind, i, cmd_for, reference, tmp, fingerprint, args.repeats)
                 for i, kind in enumerate(CORRUPTIONS)]
        print(f"\n2. one damaged shard, cache opened as a run does (median of {args.repeats}), then a rerun")
        print(f"{'damage':>8} {'shard':>11} {'open clean':>10} {'open+detect':>11} {'check':>8} {'found':>5} "
              f"{'recomputed':>10} {'=shard':>6} {'warned':>6} {'row identical':>13}  differing columns")
        for c in cases:
            print(f"{c['kind']:>8} {c['shard_faces']:5d} faces {c['open_clean_ms']:8.2f}ms {c['open_corrupt_ms']:9.2f}ms "
                  f"{c['check_one_shard_ms']:6.3f}ms {c['corrupt_shards_found']:5d} {c['rerun_embedded']:10d} "
                  f"{'yes' if c['recomputed_exactly_shard'] else 'NO':>6} {'yes' if c['run_warned'] else 'no':>6} "
                  f"{'yes' if not c['differing_columns'] else 'NO':>13}  {c['differing_columns'] or 'none'}")

    report = {
        "machine": info,
        "pairs": args.pairs, "faces": n, "batch_size": args.batch_size, "bootstrap": args.bootstrap,
        "reference": {"wall_s": round(wall, 2), "wall_s_each": [round(w, 2) for w in walls],
                      "differing_columns_between_runs": ref_diffs, "row_seconds": pipeline_s,
                      "embedded": int(row["embedded"]), "shards": len(ref_shards)},
        "kills": kills,
        "corruptions": cases,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
