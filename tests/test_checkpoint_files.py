"""Checkpoint files from the wild: Lightning ``.ckpt``, training dicts with pickled modules, any
dtype and view layout, prefixes, broken and hostile files. Tensors come out; pickled code never
runs (the restricted reader turns every unknown global into an inert placeholder)."""

from __future__ import annotations

import argparse
import builtins
import collections
import importlib
import io
import logging
import os
import pickle
import random
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recogbench.checkpoint import CheckpointError, Placeholder, load_into, load_state, read_checkpoint
from recogbench.checkpoint import _read_torch_zip  # the restricted reader on its own

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ----------------------------------------------------------------------------- payloads


class RunsShell:
    """Pickles as ``os.system("touch <marker>")`` (``posix.system`` on Linux)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class RunsEval:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.eval, (f"open({str(self.marker)!r}, 'w').close()",))


class RunsExec:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


class RunsPopen:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


class RunsBoundMethod:
    """``Path(marker).touch`` pickles as ``getattr(PosixPath(marker), "touch")``, then a call."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).touch, ())


class Imports:
    def __reduce__(self):
        return (importlib.import_module, ("recogbench_no_such_module_xyz",))


class Custom:
    """A plain class defined here: a placeholder that records its ``__dict__``."""

    def __init__(self) -> None:
        self.depth = 18
        self.widths = [64, 128]


class AttributeDict(dict):
    """Like Lightning's AttributeDict: a dict subclass (pickled with SETITEMS on the instance)."""


def payloads(marker: Path) -> dict[str, object]:
    return {"shell": RunsShell(marker), "eval": RunsEval(marker), "exec": RunsExec(marker),
            "popen": RunsPopen(marker), "method": RunsBoundMethod(marker), "imports": Imports()}


def lightning_ckpt(marker: Path, state: dict[str, torch.Tensor]) -> dict[str, object]:
    hp = AttributeDict(lr=3e-4, backbone="iresnet50", custom=Custom(), args=argparse.Namespace(seed=7, name="run"),
                       **payloads(marker))
    return {
        "epoch": 12, "global_step": 3400, "pytorch-lightning_version": "2.2.1",
        "state_dict": collections.OrderedDict(state),
        "hyper_parameters": hp,
        "callbacks": {"ModelCheckpoint{'monitor': 'val_loss'}": {"best_model_score": torch.tensor(0.25),
                                                                 "best_model_path": "/ckpts/e12.ckpt"}},
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 13}}}},
        "optimizer_states": [{"state": {0: {"step": torch.tensor(3400.0), "exp_avg": torch.zeros(4, 3)}},
                              "param_groups": [{"lr": 3e-4, "betas": (0.9, 0.999), "params": [0]}]}],
        "lr_schedulers": [{"last_epoch": 12, "_last_lr": [3e-4]}],
    }


def small_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"encoder.weight": torch.randn(4, 3, generator=g), "encoder.bias": torch.randn(4, generator=g),
            "head.weight": torch.randn(2, 4, generator=g).half(), "head.steps": torch.tensor([1, 2, 3])}


def assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    """Bit-exact: dtype, shape, strides, storage offset and every byte."""
    assert a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride()
    assert a.storage_offset() == b.storage_offset()
    assert torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8))


def weights_only_refuses(path: Path) -> bool:
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001
        return True
    return False


# ----------------------------------------------------------------------------- (a) Lightning


def test_lightning_checkpoint_gives_exact_tensors_and_runs_nothing(tmp_path: Path, caplog) -> None:
    marker = tmp_path / "pwned"
    state = small_state()
    path = tmp_path / "model.ckpt"
    torch.save(lightning_ckpt(marker, state), path)
    assert weights_only_refuses(path)  # so the restricted reader is what read it

    with caplog.at_level(logging.INFO, logger="recogbench.checkpoint"):
        got, meta = load_state(path)
    assert list(got) == list(state) and meta == {}
    for k in state:
        assert_same(got[k], state[k])
    assert "posix.system" in caplog.text or "os.system" in caplog.text  # warned that it tries to run code
    assert "builtins.eval" in caplog.text

    ckpt = read_checkpoint(path)
    assert not marker.exists()
    assert "recogbench_no_such_module_xyz" not in sys.modules
    assert (ckpt["epoch"], ckpt["global_step"], ckpt["pytorch-lightning_version"]) == (12, 3400, "2.2.1")
    assert ckpt["callbacks"]["ModelCheckpoint{'monitor': 'val_loss'}"]["best_model_score"].item() == 0.25
    assert torch.equal(ckpt["optimizer_states"][0]["state"][0]["exp_avg"], torch.zeros(4, 3))
    assert ckpt["optimizer_states"][0]["param_groups"][0]["betas"] == (0.9, 0.999)

    hp = ckpt["hyper_parameters"]
    assert isinstance(hp, Placeholder) and hp.name == "AttributeDict" and hp.module == __name__
    fields = hp.fields()
    assert fields["lr"] == 3e-4 and fields["backbone"] == "iresnet50"
    shell = fields["shell"]
    assert isinstance(shell, Placeholder) and shell.qualname in ("posix.system", "nt.system", "os.system")
    assert shell.args == (f"touch {marker}",)
    assert fields["eval"].qualname == "builtins.eval" and str(marker) in fields["eval"].args[0]
    assert fields["exec"].qualname == "builtins.exec"
    assert fields["popen"].qualname == "subprocess.Popen" and fields["popen"].args == (["touch", str(marker)],)
    assert fields["imports"].qualname == "importlib.import_module"
    method = fields["method"]  # getattr(PosixPath(marker), "touch")() : a call of a placeholder
    assert isinstance(method, Placeholder) and method.module == "builtins" and method.name.startswith("getattr")
    assert fields["custom"].qualname == f"{__name__}.Custom"
    assert fields["custom"].state == {"depth": 18, "widths": [64, 128]}
    assert fields["args"].qualname == "argparse.Namespace" and fields["args"].fields() == {"seed": 7, "name": "run"}
    assert "posix.system" in repr(shell) or "os.system" in repr(shell)
    assert not marker.exists()


def test_a_module_the_pickle_names_is_never_imported(tmp_path: Path, monkeypatch) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "rb_armed_module.py").write_text(
        "import os\n"
        f"if os.environ.get('RB_ARMED'):\n    open({str(marker)!r}, 'w').close()\n"
        "class Config:\n    def __init__(self):\n        self.width = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import rb_armed_module

    path = tmp_path / "cfg.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "config": rb_armed_module.Config()}, path)
    del sys.modules["rb_armed_module"]
    monkeypatch.setenv("RB_ARMED", "1")  # importing it now would create the marker
    state, _ = load_state(path)
    assert torch.equal(state["w"], torch.ones(2))
    assert read_checkpoint(path)["config"].state == {"width": 3}
    assert "rb_armed_module" not in sys.modules and not marker.exists()


def test_pickled_code_beside_a_fitting_state_dict_loads_into_the_model(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": model.state_dict(), "payload": RunsShell(marker)}, path)
    fresh = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    load_into(fresh, load_state(path)[0], path)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    with pytest.raises(CheckpointError, match=r"evil\.pt: checkpoint does not fit Linear \(.*unexpected keys: 0\.bias"):
        load_into(torch.nn.Linear(3, 4), load_state(path)[0], path)
    assert not marker.exists()


# ----------------------------------------------------------------------------- (b) training dicts


def test_model_state_dict_with_a_pickled_criterion(tmp_path: Path) -> None:
    model = torch.nn.Linear(5, 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 5)).sum().backward()
    opt.step()
    path = tmp_path / "train.pth"
    torch.save({"epoch": 9, "model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
                "loss": torch.nn.MSELoss()}, path)
    assert weights_only_refuses(path)  # names torch.nn.modules.loss.MSELoss
    state, _ = load_state(path)
    assert set(state) == {"weight", "bias"}
    for k, v in model.state_dict().items():
        assert_same(state[k], v)
    ckpt = read_checkpoint(path)
    assert ckpt["epoch"] == 9
    loss = ckpt["loss"]
    assert loss.qualname == "torch.nn.modules.loss.MSELoss" and loss.state["reduction"] == "mean"
    exp_avg = ckpt["optimizer_state_dict"]["state"][0]["exp_avg"]
    assert_same(exp_avg, opt.state_dict()["state"][0]["exp_avg"])
    # the criterion is a module too, and can be picked by name (it has no tensors)
    with pytest.raises(CheckpointError, match=r"train\.pth: no tensors found"):
        load_state(path, key="loss")


def test_a_whole_pickled_model_gives_its_state_dict(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    model[1].register_buffer("scratch", torch.ones(1), persistent=False)
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    state, _ = load_state(path)
    assert list(state) == list(model.state_dict())
    for k, v in model.state_dict().items():
        assert_same(state[k], v.detach())
    torch.save({"model": model, "epoch": 1}, tmp_path / "wrapped.pt")
    assert set(load_state(tmp_path / "wrapped.pt")[0]) == set(model.state_dict())


# ----------------------------------------------------------------------------- (c) dtypes and views


def tensors_for_roundtrip() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    base = torch.randn(6, 8, generator=g)
    out = {
        "bf16": torch.randn(3, 5, generator=g).bfloat16(),
        "half_specials": torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 65504.0, 6e-8]).half(),
        "int64": torch.tensor([-(2**63), 2**63 - 1, 0, 12345678901234]),
        "float64": torch.randn(4, generator=g).double(),
        "int8": torch.tensor([-128, 127, 0], dtype=torch.int8),
        "uint8": torch.tensor([0, 255, 7], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "complex64": torch.randn(3, dtype=torch.complex64, generator=g),
        "uint16": torch.tensor([0, 65535, 300], dtype=torch.uint16),  # torch >= 2.3: _rebuild_tensor_v3
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
        "base": base,
        "row_view": base[2],
        "tail_view": base[3:],
        "transposed": base.t(),
        "strided": base[:, ::3],
        "expanded": torch.arange(4.0).expand(3, 4),
        "channels_last": torch.randn(2, 3, 4, 5, generator=g).contiguous(memory_format=torch.channels_last),
    }
    if hasattr(torch, "float8_e4m3fn"):
        out["float8"] = torch.tensor([0.5, -2.0, 448.0]).to(torch.float8_e4m3fn)
    return out


@pytest.mark.parametrize("route", ["restricted reader", "load_state fallback"])
def test_dtypes_views_and_strides_round_trip_bit_exactly(tmp_path: Path, route: str) -> None:
    tensors = tensors_for_roundtrip()
    path = tmp_path / "t.pt"
    if route == "restricted reader":
        torch.save(tensors, path)
        got = _read_torch_zip(path)
        reference = torch.load(path, map_location="cpu", weights_only=True)
        for k in tensors:
            assert_same(got[k], reference[k])
    else:
        torch.save({"state_dict": tensors, "payload": RunsShell(tmp_path / "pwned")}, path)
        got, _ = load_state(path)
        assert not (tmp_path / "pwned").exists()
    assert list(got) == list(tensors)
    for k, v in tensors.items():
        assert_same(got[k], v)
    # views of one tensor share one storage, as they did when saved
    ptr = got["base"].untyped_storage().data_ptr()
    for k in ("row_view", "tail_view", "transposed", "strided"):
        assert got[k].untyped_storage().data_ptr() == ptr
    got["base"][3, 0] = 1234.0
    assert got["tail_view"][0, 0] == 1234.0 and got["transposed"][0, 3] == 1234.0


def test_big_endian_archive_is_byteswapped(tmp_path: Path) -> None:
    """A file written on a big-endian machine (``byteorder`` record "big", storages swapped)."""
    tensors = {"f32": torch.randn(5), "bf16": torch.randn(3).bfloat16(), "i64": torch.tensor([1, -2, 2**40]),
               "u8": torch.tensor([1, 2], dtype=torch.uint8), "c64": torch.randn(2, dtype=torch.complex64)}
    little = tmp_path / "little.pt"
    torch.save(tensors, little)
    with zipfile.ZipFile(little) as z:
        records = {n: z.read(n) for n in z.namelist() if "/data/" in n}
    swapped: dict[str, bytes] = {"/byteorder": b"big"}
    for v in tensors.values():  # find each tensor's record by its bytes, store them swapped
        raw = v.contiguous().view(torch.uint8).numpy().tobytes()
        item = v.element_size() // (2 if v.is_complex() else 1)
        name = next(n for n, data in records.items() if data == raw)
        swapped["/" + name.split("/", 1)[1]] = np.frombuffer(raw, dtype=f"u{item}").byteswap().tobytes()
    big = tmp_path / "big.pt"
    rezip(little, big, replace=swapped)
    got = _read_torch_zip(big)
    reference = torch.load(big, map_location="cpu", weights_only=True)
    for k, v in tensors.items():
        assert_same(got[k], v)
        assert_same(reference[k], v)


def test_parameters_numpy_and_plain_values(tmp_path: Path) -> None:
    p = torch.nn.Parameter(torch.randn(3))
    frozen = torch.nn.Parameter(torch.randn(2), requires_grad=False)
    values = {"p": p, "frozen": frozen, "np_scalar": np.float64(0.125), "np_int": np.int32(-7),
              "np_array": np.arange(6, dtype=np.float32).reshape(2, 3), "np_fortran": np.asfortranarray(np.eye(2)),
              "np_big_endian": np.array([1.5, -2.0], dtype=">f8"), "np_str": np.array(["ab", "c"]),
              "bytes": b"\x00\xff", "bytearray": bytearray(b"ab"), "set": {1, 2}, "frozenset": frozenset({"a"}),
              "complex": 1 - 2j, "slice": slice(1, 5, 2), "dtype": torch.bfloat16, "device": torch.device("cpu"),
              "size": torch.Size([2, 3]), "od": collections.OrderedDict(b=1, a=2),
              "dd": collections.defaultdict(list, {"k": [1]}), "payload": RunsShell(tmp_path / "pwned")}
    path = tmp_path / "mixed.pt"
    torch.save(values, path)
    got = read_checkpoint(path)
    assert isinstance(got["p"], torch.nn.Parameter) and got["p"].requires_grad and torch.equal(got["p"], p)
    assert isinstance(got["frozen"], torch.nn.Parameter) and not got["frozen"].requires_grad
    for k in ("np_scalar", "np_int"):
        assert got[k] == values[k] and got[k].dtype == values[k].dtype
    for k in ("np_array", "np_fortran", "np_big_endian", "np_str"):
        # numpy's own unpickling (e.g. it turns '>f8' native): the restricted reader matches it
        reference = pickle.loads(pickle.dumps(values[k], protocol=2))
        assert isinstance(got[k], np.ndarray) and got[k].dtype == reference.dtype
        np.testing.assert_array_equal(got[k], values[k])
    assert got["np_fortran"].flags.f_contiguous
    for k in ("bytes", "bytearray", "set", "frozenset", "complex", "slice", "dtype", "device", "size", "od"):
        assert got[k] == values[k] and type(got[k]) is type(values[k]), k
    assert list(got["od"]) == ["b", "a"]
    assert isinstance(got["dd"], collections.defaultdict) and got["dd"]["k"] == [1]
    assert not (tmp_path / "pwned").exists()


# ----------------------------------------------------------------------------- (d) key / prefix / module.


def test_prefix_key_and_dataparallel_module_stripping(tmp_path: Path, caplog) -> None:
    g, d = torch.randn(2, 2), torch.randn(3)
    path = tmp_path / "gan.ckpt"
    torch.save({"state_dict": {"module.G.conv.weight": g, "module.D.fc.bias": d},
                "ema": {"G.conv.weight": g * 2}, "hyper_parameters": argparse.Namespace(lr=1)}, path)
    with caplog.at_level(logging.INFO, logger="recogbench.checkpoint"):
        state, _ = load_state(path)
    assert set(state) == {"G.conv.weight", "D.fc.bias"}
    assert "stripped the 'module.' prefix" in caplog.text and "gan.ckpt" in caplog.text
    only_g, _ = load_state(path, prefix="G.")
    assert list(only_g) == ["conv.weight"] and torch.equal(only_g["conv.weight"], g)
    assert list(load_state(path, prefix="module.D.")[0]) == ["fc.bias"]
    ema, _ = load_state(path, key="ema", prefix="G.")
    assert torch.equal(ema["conv.weight"], g * 2)
    with pytest.raises(CheckpointError, match=r"gan\.ckpt: no keys under prefix 'X\.'; its keys start with: D\., G\."):
        load_state(path, prefix="X.")
    with pytest.raises(CheckpointError, match=r"gan\.ckpt: no key 'generator'; its top-level keys: "
                                              r"'state_dict', 'ema', 'hyper_parameters'"):
        load_state(path, key="generator")
    with pytest.raises(CheckpointError, match=r"gan\.ckpt: \['hyper_parameters'\] is a placeholder for argparse\.Namespace"):
        load_state(path, key="hyper_parameters")


def test_dataparallel_prefix_on_a_weights_only_file(tmp_path: Path, caplog) -> None:
    path = tmp_path / "dp.pth"
    torch.save({"module.weight": torch.ones(2, 2), "module.bias": torch.zeros(2)}, path)
    with caplog.at_level(logging.INFO, logger="recogbench.checkpoint"):
        state, _ = load_state(path)
    assert set(state) == {"weight", "bias"} and "module." in caplog.text
    # not every key has it: left alone
    torch.save({"module.weight": torch.ones(2, 2), "bias": torch.zeros(2)}, path)
    assert set(load_state(path)[0]) == {"module.weight", "bias"}


@pytest.mark.parametrize("payload", [False, True], ids=["weights-only", "restricted"])
def test_dataparallel_state_dict_keeps_torch_metadata(tmp_path: Path, payload: bool) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    wrapped = torch.nn.DataParallel(model).state_dict()
    assert all(k.startswith("module.") for k in wrapped)
    path = tmp_path / "dp.pt"
    torch.save({"state_dict": wrapped, **({"cfg": argparse.Namespace(a=1)} if payload else {})}, path)
    state, _ = load_state(path)
    assert list(state) == list(model.state_dict())
    assert state._metadata == model.state_dict()._metadata  # versions load_state_dict relies on
    fresh = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    load_into(fresh, state, path)
    assert torch.equal(fresh[0].weight, model[0].weight)
    assert list(load_state(path, prefix="1.")[0]) == ["weight", "bias", "running_mean", "running_var",
                                                      "num_batches_tracked"]
    assert load_state(path, prefix="module.1.")[0]._metadata == {"": model.state_dict()._metadata["1"]}


def test_safetensors_still_load_with_metadata_and_prefix(tmp_path: Path) -> None:
    from recogbench.checkpoint import save_state

    path = tmp_path / "w.safetensors"
    save_state(path, {"G.w": torch.ones(2), "D.w": torch.zeros(1)}, meta={"step": 5})
    state, meta = load_state(path)
    assert set(state) == {"G.w", "D.w"} and meta == {"step": 5}
    assert list(load_state(path, prefix="G.")[0]) == ["w"]
    assert read_checkpoint(path)["meta"] == {"step": 5}
    with pytest.raises(CheckpointError, match=r"w\.safetensors: key='x' applies to torch files"):
        load_state(path, key="x")


# ----------------------------------------------------------------------------- (e) broken files


def rezip(src: Path, dst: Path, *, replace: dict[str, bytes] | None = None, drop: tuple[str, ...] = ()) -> None:
    """Copy a torch zip record by record (valid CRCs), replacing or dropping records by suffix."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            if any(info.filename.endswith(s) for s in drop):
                continue
            data = next((v for s, v in replace.items() if info.filename.endswith(s)), None)
            zout.writestr(info.filename, zin.read(info) if data is None else data)


@pytest.fixture
def evil_ckpt(tmp_path: Path) -> Path:
    path = tmp_path / "good.ckpt"
    torch.save(lightning_ckpt(tmp_path / "pwned", small_state()), path)
    return path


def test_broken_files_raise_checkpoint_error_naming_the_file(tmp_path: Path, evil_ckpt: Path) -> None:
    data = evil_ckpt.read_bytes()
    cases: dict[str, tuple[bytes | None, str]] = {
        "truncated.ckpt": (data[: len(data) // 2], "truncated or damaged zip archive"),
        "tail_cut.ckpt": (data[:-30], "truncated or damaged zip archive"),
        "random.ckpt": (random.Random(0).randbytes(4096), "not a torch file"),
        "zero.ckpt": (b"", "empty file"),
        "text.pt": (b"hello, not a checkpoint\n" * 10, "refused: not a weights-only checkpoint"),
    }
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as z:
        z.writestr("archive/readme.txt", "hi")
    cases["no_pickle.ckpt"] = (plain_zip.getvalue(), "zip archive without a data.pkl record")
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match=message) as info:
            load_state(path)
        assert str(path) in str(info.value), name
        with pytest.raises(CheckpointError):
            read_checkpoint(path)

    prefix = zipfile.ZipFile(evil_ckpt).namelist()[0].split("/")[0]
    rezip(evil_ckpt, tmp_path / "missing.ckpt", drop=(f"{prefix}/data/0",))
    with pytest.raises(CheckpointError, match=rf"missing\.ckpt: missing storage record '{prefix}/data/0'"):
        load_state(tmp_path / "missing.ckpt")
    rezip(evil_ckpt, tmp_path / "junk.ckpt", replace={"/data.pkl": b"\x80\x02}q\x00(X\x01\x00\x00\x00a\xff\xff"})
    with pytest.raises(CheckpointError, match=r"junk\.ckpt: corrupt checkpoint pickle"):
        load_state(tmp_path / "junk.ckpt")
    rezip(evil_ckpt, tmp_path / "empty_pickle.ckpt", replace={"/data.pkl": b""})
    with pytest.raises(CheckpointError, match=r"empty_pickle\.ckpt: corrupt checkpoint pickle"):
        load_state(tmp_path / "empty_pickle.ckpt")

    # one flipped byte in a tensor's data: the zip CRC catches it
    with zipfile.ZipFile(evil_ckpt) as z:
        offset = z.getinfo(f"{prefix}/data/0").header_offset
    name_len, extra_len = struct.unpack("<2H", data[offset + 26: offset + 30])
    start = offset + 30 + name_len + extra_len
    flipped = bytearray(data)
    flipped[start + 1] ^= 0x40
    (tmp_path / "flipped.ckpt").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match=r"flipped\.ckpt: storage record .*data/0' is damaged \(CRC mismatch\)"):
        load_state(tmp_path / "flipped.ckpt")

    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_state(tmp_path / "absent.ckpt")
    assert not (tmp_path / "pwned").exists()


def test_no_tensors_and_non_tensor_state(tmp_path: Path) -> None:
    torch.save({"epoch": 3, "hyper_parameters": argparse.Namespace(a=1)}, tmp_path / "meta.ckpt")
    with pytest.raises(CheckpointError, match=r"meta\.ckpt: expected a state dict of tensors.*top-level keys: "
                                              r"'epoch', 'hyper_parameters' \(pass key="):
        load_state(tmp_path / "meta.ckpt")
    torch.save({"state_dict": {}, "x": argparse.Namespace()}, tmp_path / "empty.ckpt")
    with pytest.raises(CheckpointError, match=r"empty\.ckpt: no tensors found"):
        load_state(tmp_path / "empty.ckpt")
    torch.save({"state_dict": {"w": torch.ones(1), "cfg": argparse.Namespace()}}, tmp_path / "mixed.ckpt")
    with pytest.raises(CheckpointError, match=r"mixed\.ckpt: \['state_dict'\] is not a state dict of tensors "
                                              r"\('cfg' is a placeholder for argparse\.Namespace\)"):
        load_state(tmp_path / "mixed.ckpt")


def test_legacy_format(tmp_path: Path) -> None:
    clean = tmp_path / "legacy.pt"
    torch.save({"state_dict": {"w": torch.arange(3.0)}}, clean, _use_new_zipfile_serialization=False)
    assert torch.equal(load_state(clean)[0]["w"], torch.arange(3.0))  # weights_only reads it
    evil = tmp_path / "legacy_evil.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "hp": RunsShell(tmp_path / "pwned")}, evil,
               _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match=r"legacy_evil\.pt: refused: .*legacy \(pre-1\.6, non-zip\) torch file.*"
                                              r"save its state dict as \.safetensors"):
        load_state(evil)
    assert not (tmp_path / "pwned").exists()


def test_torchscript_archive_is_refused(tmp_path: Path, evil_ckpt: Path) -> None:
    # what torch.jit.save writes beside data.pkl; its code would have to run to rebuild the module
    prefix = zipfile.ZipFile(evil_ckpt).namelist()[0].split("/")[0]
    rezip(evil_ckpt, tmp_path / "scripted.pt")
    with zipfile.ZipFile(tmp_path / "scripted.pt", "a") as z:
        z.writestr(f"{prefix}/constants.pkl", b"\x80\x02).")
    with pytest.raises(CheckpointError, match=r"scripted\.pt: a TorchScript archive"):
        load_state(tmp_path / "scripted.pt")


# ----------------------------------------------------------------------------- hostile pickles


class HugeBytes:
    def __reduce__(self):
        return (bytes, (1 << 40,))  # 1 TiB if called


class IterateExpanded:
    """``OrderedDict(<a stride-0 view of 10**10 elements>)``: an iteration bomb if called."""

    def __reduce__(self):
        return (collections.OrderedDict, (torch.zeros(1, 1).expand(10**10, 2),))


class StateOnTensor:
    """A tensor followed by BUILD with a state (would call Tensor.__setstate__ -> set_)."""

    def __reduce__(self):
        t = torch.zeros(2)
        storage = torch.storage.TypedStorage(wrap_storage=t.untyped_storage(), dtype=t.dtype, _internal=True)
        return (torch._utils._rebuild_tensor_v2, (storage, 0, (2,), (1,), False, collections.OrderedDict()),
                (None, 0, (10**9,), (1,)))


def test_hostile_constructs_stay_inert(tmp_path: Path) -> None:
    path = tmp_path / "bombs.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "bytes": HugeBytes(), "iter": IterateExpanded()}, path)
    got = read_checkpoint(path)
    assert got["bytes"].qualname == "builtins.bytes" and got["bytes"].args == (1 << 40,)
    assert got["iter"].qualname == "collections.OrderedDict"
    torch.save({"state_dict": {"w": torch.ones(1)}, "t": StateOnTensor(), "x": argparse.Namespace()}, path)
    with pytest.raises(CheckpointError, match=r"bombs\.pt: corrupt checkpoint pickle \(object state given to a Tensor\)"):
        read_checkpoint(path)


# ----------------------------------------------------------------------------- (f) fuzz


def fuzz_seed(tmp: Path) -> tuple[bytes, Path]:
    marker = tmp / "pwned"
    path = tmp / "seed.ckpt"
    torch.save({"state_dict": {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int16)},
                "hyper_parameters": AttributeDict(lr=0.5, cmd=RunsShell(marker), ev=RunsEval(marker)), "epoch": 1},
               path)
    return path.read_bytes(), marker


SEED, MARKER = fuzz_seed(Path(tempfile.mkdtemp(prefix="rb-ckpt-fuzz-")))


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for pos, value in edits:
        out[pos % len(out)] = value
    return bytes(out[:cut] if cut is not None else out)


def loads_or_raises(path: Path) -> None:
    try:
        state, _ = load_state(path)
        assert all(isinstance(v, torch.Tensor) for v in state.values())
    except CheckpointError as exc:
        assert path.name in str(exc)
    try:
        read_checkpoint(path)
    except CheckpointError as exc:
        assert path.name in str(exc)
    assert not MARKER.exists()


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=6),
       st.one_of(st.none(), st.integers(0, len(SEED))))
@example([], None)
def test_fuzz_byte_mutations_load_or_raise(tmp_path: Path, edits: list[tuple[int, int]], cut: int | None) -> None:
    path = tmp_path / "fuzz.ckpt"
    path.write_bytes(mutate(SEED, edits, cut))
    loads_or_raises(path)


def _seed_pickle() -> tuple[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(SEED)) as z:
        name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        return name, z.read(name)


PICKLE_NAME, PICKLE = _seed_pickle()


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=4),
       st.one_of(st.none(), st.integers(0, len(PICKLE))))
def test_fuzz_pickle_mutations_with_valid_crcs_load_or_raise(tmp_path: Path, edits: list[tuple[int, int]],
                                                             cut: int | None) -> None:
    """Mutations inside data.pkl, re-zipped with valid CRCs so that the unpickler itself is fuzzed."""
    src = tmp_path / "src.ckpt"
    src.write_bytes(SEED)
    path = tmp_path / "fuzz.ckpt"
    rezip(src, path, replace={"/data.pkl": mutate(PICKLE, edits, cut)})
    loads_or_raises(path)
