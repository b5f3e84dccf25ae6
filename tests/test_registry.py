"""The one registry mechanism: lazy built-ins, entry-point plugins, specs, helpful misses."""

from __future__ import annotations

import sys
import types
from importlib import metadata

import pytest

from recogbench import registry as reg_module
from recogbench.registry import INPAINTERS, OCCLUDERS, PROTOCOLS, VERIFIERS, Registry, RegistryError


def test_builtins_are_registered_lazily() -> None:
    assert {"sface", "arcface", "facenet", "dlib"} <= set(VERIFIERS.names())
    assert {"none", "oracle"} <= set(INPAINTERS.names())
    assert {"none", "region:*"} <= set(OCCLUDERS.names())
    assert {"lfw", "cfp_fp", "cfp_ff", "agedb_30", "calfw", "cplfw", "bin", "pairs_csv"} <= set(PROTOCOLS.names())
    # optional backends are registered by name without importing their heavy packages
    assert isinstance(VERIFIERS._targets["dlib"], (str, type))


def test_miss_suggests_close_names() -> None:
    with pytest.raises(RegistryError, match=r"unknown verifier 'sfase'; did you mean 'sface'"):
        VERIFIERS.get("sfase")
    with pytest.raises(ValueError, match="did you mean twoeyes"):
        OCCLUDERS.create("region:twoeye")


def test_duplicate_name_is_an_error() -> None:
    r: Registry = Registry("thing")
    r.register("a", dict)
    with pytest.raises(RegistryError, match="already registered"):
        r.register("a", list)
    r.register("a", list, replace=True)
    assert r.get("a") is list


def test_spec_parsing_and_typed_options() -> None:
    r: Registry = Registry("thing")

    def make(variant: str = "", size: int = 1, scale: float = 1.0, on: bool = False, label: str = "") -> dict:
        return dict(variant=variant, size=size, scale=scale, on=on, label=label)

    r.register("plain", make)
    r.register("fam:*", make)
    assert str(r.parse("plain:size=3,on=true")) == "plain:size=3,on=true"
    assert r.create("plain:size=3,scale=0.5,on=yes,label=x") == dict(variant="", size=3, scale=0.5, on=True, label="x")
    assert r.create("fam:abc:size=2")["variant"] == "abc" and r.create("fam:abc")["size"] == 1
    with pytest.raises(RegistryError, match="expected key=value"):
        r.parse("plain:size")
    with pytest.raises(RegistryError, match="not a valid"):
        r.create("plain:size=big")
    with pytest.raises(RegistryError, match=r"no option 'colour' \(its options: variant, size, scale, on, label\)"):
        r.create("plain:colour=red")
    with pytest.raises(RegistryError, match="needs a variant"):
        r.parse("fam:")


def test_lazy_string_target_and_broken_target() -> None:
    r: Registry = Registry("thing")
    r.register("od", "collections:OrderedDict")
    r.register("broken", "no_such_module_xyz:Thing")
    from collections import OrderedDict

    assert r.get("od") is OrderedDict
    with pytest.raises(RegistryError, match="could not be loaded"):
        r.get("broken")
    assert "unavailable" in r.summary("broken")


def test_entry_point_plugins(monkeypatch) -> None:
    plugin = types.ModuleType("fake_recogbench_plugin")

    class MyVerifier:
        """A third-party verifier."""

    plugin.MyVerifier = MyVerifier
    monkeypatch.setitem(sys.modules, "fake_recogbench_plugin", plugin)
    eps = [
        metadata.EntryPoint("mine", "fake_recogbench_plugin:MyVerifier", "recogbench.test"),
        metadata.EntryPoint("builtin", "fake_recogbench_plugin:MyVerifier", "recogbench.test"),
    ]
    monkeypatch.setattr(reg_module.metadata, "entry_points", lambda group: eps if group == "recogbench.test" else [])
    r: Registry = Registry("verifier", "recogbench.test")
    r.register("builtin", dict)
    assert r.names() == ["builtin", "mine"]
    assert r.get("mine") is MyVerifier
    assert r.get("builtin") is dict  # a plugin cannot shadow a built-in
    assert r.summary("mine") == "A third-party verifier."
