"""The installed environment is the lean one the README describes, and the CLI says what it is."""

from __future__ import annotations

import importlib.util
import re
from importlib import metadata
from pathlib import Path

import pytest
from typer.testing import CliRunner

import recogbench
from recogbench.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _extension_files(package: str) -> list[Path]:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin, f"{package} is not installed"
    return sorted(Path(spec.origin).parent.glob("*.so")) + sorted(Path(spec.origin).parent.glob("*.pyd"))


def test_opencv_is_the_headless_build() -> None:
    # The GUI build (opencv-python) needs libGL, absent on servers and slim containers, and
    # shares the cv2/ folder with the headless one, so whichever installs last wins.
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.distribution("opencv-python")
    metadata.distribution("opencv-python-headless")
    binaries = _extension_files("cv2")
    assert binaries, "no compiled cv2 module found"
    for path in binaries:
        assert b"libGL.so" not in path.read_bytes(), f"{path} links libGL: the GUI build of OpenCV is installed"


def test_insightface_is_only_a_data_dependency() -> None:
    # The cpu extra must not pull insightface's declared dependencies (GUI OpenCV, CUDA-less
    # onnxruntime beside onnxruntime-gpu); the README installs it with --no-deps.
    requires = metadata.requires("recogbench") or []
    assert not any(re.match(r"insightface\b", r) for r in requires), requires
    assert not any(re.match(r"opencv-python\b(?!-headless)", r) for r in requires), requires
    readme = (ROOT / "README.md").read_text()
    assert 'pip install --no-deps "insightface>=0.7"' in readme.split("\n## ")[0]


def test_version_and_completion() -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.startswith(f"recogbench {recogbench.__version__} (code ")
    r = runner.invoke(app, ["--show-completion", "bash"], prog_name="recogbench")
    assert r.exit_code == 0 and "_recogbench_completion" in r.output, r.output


def test_insightface_imports_as_the_tests_use_it() -> None:
    # Installed with --no-deps, insightface still imports (its alignment and model-zoo code is
    # what tests compare against): the cpu extra carries what its import needs.
    pytest.importorskip("onnxruntime")
    if importlib.util.find_spec("insightface") is None:
        pytest.skip("insightface is not installed")
    import insightface.model_zoo  # noqa: F401
    import insightface.utils.face_align  # noqa: F401
