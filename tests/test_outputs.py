"""Outputs that cannot be written fail early and clearly: every long job checks its output
location before computing, the CLI shows an OS error as one line naming the file, and a
leaderboard already written is never lost or changed by a failed run."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from recogbench.cli import app, user_errors
from recogbench.config import RunConfig
from recogbench.data import DataError
from recogbench.fileio import OutputError, ensure_writable_dir, ensure_writable_file
from recogbench.results import prepare_results_dir, read_leaderboard

from .conftest import make_tiny_pack

runner = CliRunner()
GARBAGE = b"\x00\xff\xfe garbage\n\"unterminated"


def _config(pack: Path, out: Path, **kw: Any) -> RunConfig:
    return RunConfig(protocol="bin", data=str(pack), out=str(out), progress=False, device="cpu", bootstrap=0, **kw)


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for folders): a snapshot to compare."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def _fail(*args: Any, **kwargs: Any) -> None:
    pytest.fail("the heavy work started before the output location was checked")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """(pack, results folder) of one successful run on the tiny pack; copy it before changing it."""
    from recogbench.pipeline import run

    root = tmp_path_factory.mktemp("finished")
    pack = make_tiny_pack(root / "tiny.bin")
    run(_config(pack, root / "results"))
    return pack, root / "results"


# ------------------------------------------------------------------------------ ensure_writable


def test_ensure_writable_dir_creates_a_fresh_nested_folder_and_leaves_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b" / "c"
    assert ensure_writable_dir(folder) == folder
    assert folder.is_dir() and list(folder.iterdir()) == []  # the probe file is gone


def test_ensure_writable_dir_expands_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ensure_writable_dir("~/results") == tmp_path / "results"
    assert (tmp_path / "results").is_dir()


def test_ensure_writable_dir_refuses_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "results"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputError) as info:
        ensure_writable_dir(path, "results folder")
    assert str(info.value) == f"results folder {path} is a file, not a folder"
    assert isinstance(info.value, OSError) and info.value.filename == str(path)
    assert path.read_bytes() == b"keep me"


def test_ensure_writable_dir_under_a_regular_file_names_both(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"")
    folder = blocker / "sub" / "results"
    with pytest.raises(OutputError) as info:
        ensure_writable_dir(folder, "results folder")
    message = str(info.value)
    assert message == f"results folder {folder} cannot be created ({blocker} is a file, not a folder)"
    assert info.value.errno == errno.ENOTDIR and "\n" not in message


def test_ensure_writable_file_refuses_a_folder_and_accepts_an_existing_file(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="is a folder, not a file"):
        ensure_writable_file(tmp_path, "report")
    existing = tmp_path / "new" / "report.html"
    assert ensure_writable_file(existing) == existing and existing.parent.is_dir()
    existing.write_text("old")
    assert ensure_writable_file(existing) == existing  # replaced later, atomically
    assert existing.read_text() == "old"


# ------------------------------------------------------------------------------ the leaderboard


@pytest.mark.parametrize("content, reason", [
    (GARBAGE, "EOF inside string"),
    (b"\n\n\n", "it is empty"),
    (b"protocol,accuracy\n\xff\xfe,1\n", "not UTF-8 text"),
])
def test_unreadable_leaderboard_is_a_data_error_naming_the_file(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "leaderboard.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_leaderboard(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a readable leaderboard (") and reason in message
    assert "move it aside" in message and "\n" not in message


def test_preflight_accepts_an_empty_leaderboard_and_refuses_a_foreign_csv(tmp_path: Path) -> None:
    (tmp_path / "leaderboard.csv").write_bytes(b"")
    assert prepare_results_dir(tmp_path) == tmp_path  # append_row starts a new one, as before
    (tmp_path / "leaderboard.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="leaderboard.csv: not a recogbench leaderboard"):
        prepare_results_dir(tmp_path)


def test_corrupt_leaderboard_stops_a_run_before_any_compute(tmp_path: Path, monkeypatch) -> None:
    from recogbench import pipeline

    pack = make_tiny_pack(tmp_path / "tiny.bin")
    out = tmp_path / "results"
    out.mkdir()
    (out / "leaderboard.csv").write_bytes(GARBAGE)
    monkeypatch.setattr(pipeline, "evaluate", _fail)
    monkeypatch.setattr(pipeline, "load_protocol", _fail)
    with pytest.raises(DataError, match=r"leaderboard\.csv: not a readable leaderboard"):
        pipeline.run(_config(pack, out))
    assert _tree(out) == {"leaderboard.csv": GARBAGE}  # no runs/, no .cache, garbage untouched


def test_corrupt_leaderboard_is_one_cli_line(tmp_path: Path, monkeypatch) -> None:
    from recogbench import pipeline

    pack = make_tiny_pack(tmp_path / "tiny.bin")
    out = tmp_path / "results"
    out.mkdir()
    (out / "leaderboard.csv").write_bytes(GARBAGE)
    monkeypatch.setattr(pipeline, "load_protocol", _fail)  # run_all checks before loading the protocol
    r = runner.invoke(app, ["run", "bin", "--data", str(pack), "--out", str(out), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 2, r.output
    errors = [line for line in r.output.splitlines() if "error:" in line]
    assert len(errors) == 1 and str(out / "leaderboard.csv") in errors[0] and "move it aside" in errors[0]
    assert "Traceback" not in r.output
    assert _tree(out) == {"leaderboard.csv": GARBAGE}


# ------------------------------------------------------------------------------ the CLI's OSError line


def test_disk_full_mid_run_is_one_line_and_keeps_the_leaderboard(finished, tmp_path: Path, monkeypatch) -> None:
    from recogbench import fileio

    pack, done = finished
    out = tmp_path / "results"
    shutil.copytree(done, out)
    before = (out / "leaderboard.csv").read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", full)
    r = runner.invoke(app, ["run", "bin", "--data", str(pack), "--out", str(out), "--occlusion", "region:mouth",
                            "--quiet", "--device", "cpu", "--no-cache", "--bootstrap", "0"], catch_exceptions=False)
    monkeypatch.undo()
    assert r.exit_code == 2, r.output
    errors = [line for line in r.output.splitlines() if "error:" in line]
    assert len(errors) == 1 and "config.json: No space left on device" in errors[0]  # the file it was writing
    assert "[Errno" not in r.output and "Traceback" not in r.output
    assert (out / "leaderboard.csv").read_bytes() == before
    assert len(read_leaderboard(out)) == 1


def test_user_errors_lets_ctrl_c_and_deliberate_exits_through() -> None:
    with pytest.raises(KeyboardInterrupt):
        with user_errors():
            raise KeyboardInterrupt
    with pytest.raises(typer.Exit) as info:
        with user_errors():
            raise typer.Exit(3)
    assert info.value.exit_code == 3


def test_user_errors_names_both_files_of_a_failed_rename(capsys) -> None:
    with pytest.raises(typer.Exit) as info:
        with user_errors():
            raise OSError(errno.EXDEV, "Invalid cross-device link", "/a/[tmp].csv", None, "/b/leaderboard.csv")
    assert info.value.exit_code == 2
    assert capsys.readouterr().out.strip() == "error: /a/[tmp].csv -> /b/leaderboard.csv: Invalid cross-device link"


# ------------------------------------------------------------------------------ every long job checks first


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    """A regular file where an output folder would have to be."""
    path = tmp_path / "blocker"
    path.write_bytes(b"not a folder")
    return path


def test_train_checks_its_folder_before_loading_faces(tiny_pack: Path, blocker: Path, monkeypatch) -> None:
    pytest.importorskip("inpainters.pconv_gan")
    from recogbench import train as training

    monkeypatch.setattr(training, "load_faces", _fail)
    config = training.TrainConfig(inpainter="pconv-gan", data=str(tiny_pack), out=str(blocker), device="cpu")
    with pytest.raises(OutputError, match=f"training folder {blocker} is a file"):
        training.train(config, progress=False)


def test_bake_checks_its_folder_before_loading_the_protocol(tiny_pack: Path, blocker: Path, monkeypatch) -> None:
    from recogbench import pipeline
    from recogbench.occlusion.bake import bake

    monkeypatch.setattr(pipeline, "load_protocol", _fail)
    with pytest.raises(OutputError, match=f"bake folder {blocker} is a file"):
        bake(RunConfig(protocol="bin", data=str(tiny_pack), occlusion="region:mouth"), blocker)


def test_occlude_cli_says_so_in_one_line(tiny_pack: Path, blocker: Path, monkeypatch) -> None:
    from recogbench import pipeline

    monkeypatch.setattr(pipeline, "load_protocol", _fail)
    r = runner.invoke(app, ["occlude", "bin", "--data", str(tiny_pack), "--occlusion", "region:mouth",
                            "--out", str(blocker / "baked")], catch_exceptions=False)
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"error: bake folder {blocker / 'baked'} cannot be created ({blocker} is a file, not a folder)" in r.output


def test_report_checks_its_file_before_rendering(finished, blocker: Path, monkeypatch) -> None:
    from recogbench import report

    monkeypatch.setattr(report, "render_html", _fail)
    with pytest.raises(OutputError, match=f"folder of the report {blocker} is a file"):
        report.write_report(finished[1], blocker / "report.html")


def test_gallery_checks_its_file_before_finding_faces(blocker: Path, monkeypatch) -> None:
    from recogbench import gallery

    monkeypatch.setattr(gallery, "sample_faces", _fail)
    monkeypatch.setattr(gallery, "protocol_faces", _fail)
    with pytest.raises(OutputError, match=f"folder of the gallery image {blocker} is a file"):
        gallery.gallery("region:mouth", blocker / "gallery.png")


def test_plot_all_checks_its_folder_before_plotting(finished, blocker: Path, monkeypatch) -> None:
    from recogbench import plots

    for name in ("roc_det", "histograms", "recovery_bars", "sample_grid"):
        monkeypatch.setattr(plots, name, _fail)
    with pytest.raises(OutputError, match=f"plots folder {blocker} is a file"):
        plots.plot_all(finished[1], blocker)


def test_convert_checks_its_file_before_loading_the_protocol(tiny_pack: Path, blocker: Path, monkeypatch) -> None:
    from recogbench import pipeline

    monkeypatch.setattr(pipeline, "load_protocol", _fail)
    r = runner.invoke(app, ["convert", "bin", "--data", str(tiny_pack), "--out", str(blocker / "copy.bin")],
                      catch_exceptions=False)
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"error: folder of the pack {blocker} is a file, not a folder" in r.output


# ------------------------------------------------------------------------------ real permissions


def _drop_dac_capabilities() -> None:
    """preexec_fn: take CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH out of the bounding set, so
    the exec'd root process has to obey file permissions like anyone else."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))


def _unprivileged(area: Path, env: dict[str, str]) -> dict[str, Any]:
    """subprocess.run keyword arguments under which file permissions apply.

    Root ignores them, and the tests run as root here. First choice: user ``nobody``. That
    fails where the interpreter lives in a folder nobody may enter (a pyenv under /root);
    then root without the two capabilities that let it bypass permissions. Each candidate
    is proven on a locked folder first (the interpreter starts, imports recogbench, and is
    refused a write); skips with the reasons when none works.
    """
    if os.geteuid() != 0:
        return {}
    locked = area / "probe"
    locked.mkdir()
    locked.chmod(0o555)
    probe = [sys.executable, "-c", "import sys, recogbench\ntry:\n open(sys.argv[1] + '/x', 'w')\n"
             "except PermissionError:\n print('refused')\nelse:\n print('written')", str(locked)]
    candidates: list[tuple[str, dict[str, Any]]] = [
        ("user nobody", {"user": 65534, "group": 65534, "extra_groups": []}),
    ]
    if sys.platform.startswith("linux"):
        candidates.append(("root without CAP_DAC_OVERRIDE", {"preexec_fn": _drop_dac_capabilities}))
    reasons = []
    for name, kwargs in candidates:
        try:
            r = subprocess.run(probe, capture_output=True, text=True, env=env, cwd=area, timeout=120, **kwargs)
        except (OSError, subprocess.SubprocessError) as exc:
            reasons.append(f"{name}: {exc}")
            continue
        if r.stdout.strip() == "refused":
            return kwargs
        reasons.append(f"{name}: {r.stdout.strip() or (r.stderr.strip().splitlines() or ['exit ' + str(r.returncode)])[-1]}")
    pytest.skip("cannot run a process that obeys file permissions: " + "; ".join(reasons))


@pytest.fixture
def shared_area() -> Iterator[Path]:
    """A folder under /tmp everyone can enter (pytest's tmp_path is private to root), with a
    tiny pack and a HOME anyone can write; restored and removed afterwards."""
    area = Path(tempfile.mkdtemp(prefix="recogbench-outputs-", dir="/tmp"))
    try:
        area.chmod(0o755)
        make_tiny_pack(area / "tiny.bin").chmod(0o644)
        (area / "home").mkdir()
        (area / "home").chmod(0o777)
        yield area
    finally:
        for path in [area, *area.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IRWXU)
        shutil.rmtree(area)


def _run_locked_out(area: Path, out: Path) -> subprocess.CompletedProcess:
    """``recogbench run`` into ``out`` (already chmod 0o555) as an unprivileged process."""
    env = {**os.environ, "HOME": str(area / "home"), "MPLCONFIGDIR": str(area / "home" / "mpl"), "NO_COLOR": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("FORCE_COLOR", None)
    kwargs = _unprivileged(area, env)
    cmd = [sys.executable, "-m", "recogbench", "run", "bin", "--data", str(area / "tiny.bin"), "--out", str(out),
           "--device", "cpu", "--quiet", "--bootstrap", "0"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=area, timeout=300, **kwargs)


def _assert_one_line_refusal(r: subprocess.CompletedProcess, out: Path) -> None:
    output = r.stdout + r.stderr
    assert r.returncode == 2, output
    errors = [line for line in output.splitlines() if line.strip()]
    assert errors == [f"error: results folder {out} is not writable (Permission denied)"], output
    assert "Traceback" not in output


def test_run_into_a_read_only_folder_fails_at_once_and_creates_nothing(shared_area: Path) -> None:
    out = shared_area / "out"
    out.mkdir()
    out.chmod(0o555)
    r = _run_locked_out(shared_area, out)
    _assert_one_line_refusal(r, out)
    assert list(out.iterdir()) == []


def test_failed_run_leaves_an_earlier_leaderboard_byte_identical(finished, shared_area: Path) -> None:
    out = shared_area / "out"
    shutil.copytree(finished[1], out)
    before = _tree(out)
    assert pd.read_csv(out / "leaderboard.csv")["protocol"].tolist() == ["tiny"]
    out.chmod(0o555)
    r = _run_locked_out(shared_area, out)
    _assert_one_line_refusal(r, out)
    assert _tree(out) == before  # the leaderboard and the earlier run's files, byte for byte

