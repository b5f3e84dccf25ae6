"""Loading model weights safely, from any checkpoint file, without running pickled code.

Readers, in the order :func:`load_state` tries them:

* ``.safetensors`` files: tensors and JSON metadata; no code possible.
* torch's zip format (``torch.save`` since torch 1.6) through a restricted reader — for every
  such file, not only those ``torch.load(weights_only=True)`` refuses: besides reading what
  weights-only refuses, it bounds every allocation, where weights-only happily builds e.g. an
  ``OrderedDict`` over a stride-0 tensor of 10^10 elements (it measured as fast as
  ``torch.load``). It reads PyTorch-Lightning ``.ckpt`` files (``hyper_parameters`` as an
  OmegaConf ``DictConfig``, ``AttributeDict`` or ``argparse.Namespace``, callbacks, loops,
  optimiser states), training dicts holding a pickled loss module, a whole pickled model …
  Tensors, parameters, containers and scalars are rebuilt; **every other global** the pickle
  names — a class, or a function the pickle would call (``os.system``, ``builtins.eval``,
  ``subprocess.Popen`` …) — becomes an inert :class:`Placeholder` recording what it stood for and
  the arguments/state it was given. No module the pickle names is imported, nothing it names is
  called, and every record and size is checked against the archive before memory is allocated.

Legacy (pre-1.6, non-zip) torch files load through ``torch.load(weights_only=True)``; one
that holds other objects is refused with a :class:`CheckpointError` saying what to do. A
checkpoint of another architecture gets an error naming the missing, unexpected and mis-shaped
keys (:func:`load_into`).
"""

from __future__ import annotations

import _compat_pickle
import io
import json
import logging
import os
import pickle
import re
import reprlib
import struct
import sys
import zipfile
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

log = logging.getLogger(__name__)

__all__ = ["CheckpointError", "Placeholder", "read_checkpoint", "load_state", "load_into", "save_state"]

#: The keys :func:`load_state` looks under, in order, when no ``key`` is given.
STATE_KEYS = ("state_dict", "model_state_dict", "model", "generator")

_MAX_PICKLE_BYTES = 1 << 30  # data.pkl of a real checkpoint is KBs to a few MBs
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
# torch's legacy format starts with the pickled magic number 0x1950a86a20f9469cfc6c (LONG1, 10 bytes)
_LEGACY_MAGIC = b"\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zip local file header, 30 bytes


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file."""


class _Corrupt(Exception):
    """Raised inside the restricted reader; becomes a CheckpointError naming the file."""


# ------------------------------------------------------------------------------ placeholders


class _PlaceholderMeta(type):
    def __repr__(cls) -> str:
        return f"<Placeholder class {cls.module}.{cls.name}>"

    def __reduce__(cls):  # pragma: no cover - only reached by users re-pickling a result
        raise TypeError(f"a placeholder for {cls.module}.{cls.name} cannot be pickled")


class Placeholder(metaclass=_PlaceholderMeta):
    """Stands for a global a checkpoint's pickle named but the restricted reader would not load.

    The class attributes ``module`` and ``name`` say which global (``posix``/``system``,
    ``omegaconf.dictconfig``/``DictConfig`` …); the class itself stands for the global, and an
    instance for what calling it (or ``__new__``) would have returned. An instance records what
    the pickle gave it: ``args``/``kwargs`` (the call), ``state`` (``__setstate__``; for plain
    Python objects their ``__dict__``), ``dictitems`` (dict-subclass items) and ``listitems``
    (list/set-subclass items). Nothing real is ever imported or called; calling a placeholder
    returns another placeholder.
    """

    module = "?"
    name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Placeholder:
        self = object.__new__(cls)
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None
        self.dictitems: dict[Any, Any] = {}
        self.listitems: list[Any] = []
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # everything was recorded by __new__

    @property
    def qualname(self) -> str:
        """``module.name`` of the global this stands for."""
        return f"{self.module}.{self.name}"

    def fields(self) -> dict[Any, Any]:
        """Best-effort plain view: keyword arguments, ``__dict__``-style state and dict items merged
        (e.g. the hyper-parameters of an ``argparse.Namespace`` or Lightning ``AttributeDict``)."""
        out: dict[Any, Any] = dict(self.kwargs)
        state = self.state
        if isinstance(state, tuple) and len(state) == 2 and all(s is None or isinstance(s, dict) for s in state):
            for part in state:
                out.update(part or {})
        elif isinstance(state, dict):
            out.update(state)
        out.update(self.dictitems)
        return out

    # -- what the pickle machine may do with an object ------------------------------------
    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.dictitems[key] = value

    def append(self, item: Any) -> None:
        self.listitems.append(item)

    def extend(self, items: Any) -> None:
        self.listitems.extend(items)

    def add(self, item: Any) -> None:
        self.listitems.append(item)

    def __call__(self, *args: Any, **kwargs: Any) -> Placeholder:
        return _placeholder_type(self.module, f"{self.name}(...)")(*args, **kwargs)

    def __reduce_ex__(self, protocol: Any):
        raise TypeError(f"a placeholder for {self.qualname} cannot be pickled")

    @reprlib.recursive_repr("<Placeholder ...>")
    def __repr__(self) -> str:
        parts = [self.qualname]
        for label, value in (("args", self.args), ("kwargs", self.kwargs), ("state", self.state),
                             ("dictitems", self.dictitems), ("listitems", self.listitems)):
            if value or (label == "state" and value is not None):
                parts.append(f"{label}={_SHORT.repr(value)}")
        return f"<Placeholder {' '.join(parts)}>"


class _ShortRepr(reprlib.Repr):
    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother = 3, 80, 80
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = 6

    def repr_Placeholder(self, obj: Any, level: int) -> str:  # noqa: N802 - reprlib's naming
        return f"<Placeholder {obj.qualname}>" if isinstance(obj, Placeholder) else repr(obj)

    def repr_Tensor(self, obj: Any, level: int) -> str:  # noqa: N802
        return f"tensor(shape={tuple(obj.shape)}, dtype={obj.dtype})"

    repr_Parameter = repr_Tensor


_SHORT = _ShortRepr()


def _placeholder_type(module: str, name: str) -> type[Placeholder]:
    return _PlaceholderMeta("Placeholder", (Placeholder,),
                            {"module": module, "name": name, "__module__": __name__, "__qualname__": "Placeholder"})


# Globals whose presence means the pickle tries to run code (reported with a warning).
_SUSPICIOUS_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "sys", "shutil", "importlib", "runpy", "socket", "pty", "ctypes",
    "code", "codeop", "webbrowser", "pickle", "_pickle", "marshal", "commands", "popen2", "platform",
    "multiprocessing", "asyncio", "signal", "operator", "timeit", "pdb", "bdb", "cProfile", "profile",
})
_SUSPICIOUS_NAMES = frozenset({
    ("builtins", n) for n in ("eval", "exec", "compile", "getattr", "setattr", "delattr", "__import__", "open",
                              "input", "breakpoint", "globals", "locals", "vars", "execfile", "apply", "type")
} | {("types", "FunctionType"), ("types", "CodeType"), ("types", "MethodType"), ("io", "open"), ("_io", "open")})


def _suspicious(module: str, name: str) -> bool:
    return module.split(".", 1)[0] in _SUSPICIOUS_MODULES or (module, name) in _SUSPICIOUS_NAMES


# ------------------------------------------------------------------------------ numpy support


_NDARRAY = object()  # stands for numpy.ndarray where a pickle names it (never called)
_NP_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")
_NP_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")
_NP_SPEC = re.compile(r"^(?:[biufc?]\d*|[SUV]\d*|O\d*|[Mm]8)$")
_NP_UNIT = re.compile(r"^(?:Y|M|W|D|h|m|s|ms|us|ns|ps|fs|as|generic)$")


class _DtypeStub:
    """What ``numpy.dtype(...)`` plus its pickled state describe; :meth:`resolve` makes the
    numpy dtype from a checked spec (numpy's own ``dtype.__setstate__`` is never run)."""

    def __init__(self, spec: Any, *_: Any) -> None:
        self.spec = spec
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def resolve(self) -> np.dtype:
        spec = self.spec.decode("latin-1") if isinstance(self.spec, bytes) else self.spec
        if not isinstance(spec, str) or not _NP_SPEC.match(spec):
            raise _Corrupt(f"numpy dtype {spec!r} is not supported")
        state = self.state if isinstance(self.state, tuple) else ()
        if len(state) >= 8 and any(part is not None for part in state[2:5]):
            raise _Corrupt("structured or sub-array numpy dtypes are not supported")
        endian = state[1] if len(state) >= 2 else "|"
        elsize = state[5] if len(state) >= 6 and type(state[5]) is int else -1
        if spec[0] in "Mm":
            unit = "generic"
            meta = state[8] if len(state) >= 9 else None
            if isinstance(meta, tuple) and len(meta) == 2 and isinstance(meta[1], tuple) and len(meta[1]) == 4:
                raw_unit, count = meta[1][0], meta[1][1]
                raw_unit = raw_unit.decode("ascii", "replace") if isinstance(raw_unit, bytes) else raw_unit
                if not (isinstance(raw_unit, str) and _NP_UNIT.match(raw_unit) and type(count) is int and 0 < count < 2**31):
                    raise _Corrupt(f"numpy datetime unit {raw_unit!r} is not supported")
                unit = raw_unit if count == 1 else f"{count}{raw_unit}"
            dtype = np.dtype(f"{spec}[{unit}]")
        elif spec[0] in "SUV" and spec[1:] in ("", "0") and elsize > 0:
            dtype = np.dtype(f"{spec[0]}{elsize // 4 if spec[0] == 'U' else elsize}")
        else:
            dtype = np.dtype(spec)
        if endian in ("<", ">") and dtype.itemsize > 1 and dtype.kind not in "SVO":
            dtype = dtype.newbyteorder(endian)
        return dtype

    def __repr__(self) -> str:
        return f"<numpy dtype {self.spec!r} (state {self.state!r})>"


def _to_dtype(dtype: Any) -> np.dtype:
    if isinstance(dtype, _DtypeStub):
        return dtype.resolve()
    raise _Corrupt(f"expected a numpy dtype, got {type(dtype).__name__}")


class _NumpyArray(np.ndarray):
    """A numpy array rebuilt by the restricted reader (an ``ndarray`` subclass so that the pickle's
    BUILD step lands in the checked :meth:`__setstate__`). An array whose dtype is not supported
    (structured dtypes) stays empty, with the reason in ``unsupported``."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 4:
            state = (1, *state)
        if not (isinstance(state, tuple) and len(state) == 5):
            raise _Corrupt("numpy array state is not a 5-tuple")
        _, shape, dtype, fortran, raw = state
        if not (isinstance(shape, tuple) and all(type(s) is int and s >= 0 for s in shape)):
            raise _Corrupt(f"numpy array shape {shape!r}")
        try:
            clean = _to_dtype(dtype)
        except _Corrupt as exc:
            self.unsupported = str(exc)
            log.warning("numpy array left empty: %s", exc)
            return
        count = 1
        for s in shape:
            count *= s
        if clean.hasobject:
            if type(raw) is not list or len(raw) != count:
                raise _Corrupt("numpy object array without a matching item list")
        elif not isinstance(raw, (bytes, bytearray)) or len(raw) != count * clean.itemsize:
            raise _Corrupt(f"numpy array data of {len(raw) if isinstance(raw, (bytes, bytearray)) else type(raw).__name__} "
                           f"bytes for shape {shape} {clean}")
        np.ndarray.__setstate__(self, (1, shape, clean, bool(fortran), raw))


# ------------------------------------------------------------------------------ the reader


class _Storage:
    """A storage record loaded from ``data/<key>``: an untyped CPU storage and the dtype it was saved as."""

    __slots__ = ("untyped", "dtype", "key")

    def __init__(self, untyped: torch.UntypedStorage, dtype: torch.dtype, key: str) -> None:
        self.untyped, self.dtype, self.key = untyped, dtype, key

    def __repr__(self) -> str:
        return f"<storage {self.key!r} {self.dtype} {self.untyped.nbytes()} bytes>"


class _StorageType:
    __slots__ = ("dtype", "name")

    def __init__(self, name: str, dtype: torch.dtype) -> None:
        self.name, self.dtype = name, dtype

    def __repr__(self) -> str:
        return f"<storage type {self.name}>"


_TORCH_DTYPES: dict[str, torch.dtype] = {k: v for k, v in vars(torch).items() if isinstance(v, torch.dtype)}
_SAFE_BUILTINS: dict[str, Callable[..., Any]] = {
    "dict": dict, "list": list, "tuple": tuple, "set": set, "frozenset": frozenset, "int": int,
    "float": float, "bool": bool, "complex": complex, "str": str, "bytes": bytes, "bytearray": bytearray,
    "slice": slice,
}
_PLAIN_SCALARS = (type(None), bool, int, float, complex, str, bytes, bytearray)
_PLAIN_CONTAINERS = (list, tuple, dict, set, frozenset, OrderedDict)
_CODECS = frozenset({"latin1", "latin_1", "iso_8859_1", "iso8859_1", "l1", "utf_8", "utf8", "ascii", "us_ascii"})
_CODEC_ERRORS = frozenset({"strict", "ignore", "replace", "surrogateescape", "surrogatepass", "backslashreplace"})


def _plain(obj: Any, budget: list[int], depth: int = 0) -> bool:
    """Whether ``obj`` is built only of builtin scalars and containers (so that a constructor
    iterating or converting it runs no code and allocates no more than the file holds)."""
    budget[0] -= 1
    if budget[0] < 0 or depth > 16:
        return False
    kind = type(obj)
    if kind in _PLAIN_SCALARS:
        return True
    if kind in _PLAIN_CONTAINERS:
        items = list(obj.items()) if isinstance(obj, dict) else obj
        return all(_plain(item, budget, depth + 1) for item in items)
    return False


def _codec_ok(value: Any, allowed: frozenset[str]) -> bool:
    return isinstance(value, str) and value.lower().replace("-", "_") in allowed


class _Unpickler(pickle._Unpickler):  # type: ignore[name-defined]  # the pure-Python one: every opcode is ours to police
    """Rebuilds tensors and plain data; everything else becomes a :class:`Placeholder`.

    Besides :meth:`find_class`, the opcodes that call or mutate objects are overridden so that
    only the reader's own callables and placeholders are ever called, and only containers and
    placeholders are ever filled in.
    """

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, data: bytes, archive: _ZipArchive) -> None:
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self._archive = archive
        self._types: dict[tuple[str, str], type[Placeholder]] = {}
        self.placeholders: dict[str, int] = {}
        self.suspicious: set[str] = set()
        self._storages: dict[tuple[str, torch.dtype], _Storage] = {}
        self._untyped: dict[str, torch.UntypedStorage] = {}
        self._guard_ids: set[int] = set()
        rebuild = {
            "_rebuild_tensor": self._rebuild_tensor, "_rebuild_tensor_v2": self._rebuild_tensor_v2,
            "_rebuild_tensor_v3": self._rebuild_tensor_v3, "_rebuild_parameter": self._rebuild_parameter,
            "_rebuild_parameter_with_state": self._rebuild_parameter_with_state,
        }
        self._rebuild_ids = {id(f) for f in rebuild.values()}
        self._allowed: dict[tuple[str, str], Any] = {("torch._utils", k): f for k, f in rebuild.items()}
        self._allowed[("torch._tensor", "_rebuild_from_type_v2")] = self._rebuild_from_type_v2
        self._allowed[("copyreg", "_reconstructor")] = self._reconstructor
        self._allowed[("_codecs", "encode")] = self._encode
        self._allowed[("torch", "Size")] = self._guard("torch", "Size", self._size)
        self._allowed[("torch", "device")] = self._guard("torch", "device", self._device)
        self._allowed[("collections", "OrderedDict")] = self._guard("collections", "OrderedDict", OrderedDict)
        self._allowed[("collections", "defaultdict")] = self._defaultdict
        for name, fn in _SAFE_BUILTINS.items():
            self._allowed[("builtins", name)] = self._guard("builtins", name, fn)
        for module in _NP_MULTIARRAY:
            self._allowed[(module, "_reconstruct")] = self._np_reconstruct
            self._allowed[(module, "scalar")] = self._np_scalar
        for module in ("numpy", *_NP_MULTIARRAY):
            self._allowed[(module, "dtype")] = _DtypeStub
            self._allowed[(module, "ndarray")] = _NDARRAY
        for module in _NP_NUMERIC:
            self._allowed[(module, "_frombuffer")] = self._np_frombuffer
        self._callable_ids = {id(v) for v in self._allowed.values() if callable(v)}

    # -- globals ----------------------------------------------------------------------------
    def find_class(self, module: str, name: str) -> Any:
        # protocol-2 pickles (torch.save's default) spell Python 3 names the Python 2 way
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        found = self._allowed.get((module, name))
        if found is not None:
            return found
        if module in ("torch", "torch.storage", "torch.cuda") and name.endswith("Storage"):
            if name == "UntypedStorage":
                return _StorageType(name, torch.uint8)
            try:
                return _StorageType(name, torch.storage._get_dtype_from_pickle_storage_type(name))
            except (KeyError, AttributeError):
                pass
        if module == "torch" and name in _TORCH_DTYPES:
            return _TORCH_DTYPES[name]
        return self._placeholder(module, name)

    def _placeholder(self, module: str, name: str) -> type[Placeholder]:
        key = (module, name)
        cls = self._types.get(key)
        if cls is None:
            cls = self._types[key] = _placeholder_type(module, name)
            if _suspicious(module, name):
                self.suspicious.add(f"{module}.{name}")
        qual = f"{module}.{name}"
        self.placeholders[qual] = self.placeholders.get(qual, 0) + 1
        return cls

    def persistent_load(self, pid: Any) -> _Storage:
        if type(pid) is not tuple or len(pid) != 5:
            raise _Corrupt(f"persistent id {_SHORT.repr(pid)} is not a storage record")
        typename, stype, key, _location, numel = pid
        if isinstance(typename, bytes):
            typename = typename.decode("ascii", "replace")
        if isinstance(key, bytes):
            key = key.decode("ascii", "replace")
        if typename != "storage" or not isinstance(stype, _StorageType) or type(key) is not str \
                or type(numel) is not int or numel < 0 or not 0 < len(key) < 256:
            raise _Corrupt(f"persistent id {_SHORT.repr(pid)} is not a storage record")
        cached = self._storages.get((key, stype.dtype))
        if cached is None:  # one record read once, however many dtypes view it (as torch.load does)
            untyped = self._untyped.get(key)
            if untyped is None:
                untyped = self._untyped[key] = self._archive.storage(key, numel * stype.dtype.itemsize, stype.dtype)
            cached = self._storages[(key, stype.dtype)] = _Storage(untyped, stype.dtype, key)
        if cached.untyped.nbytes() != numel * stype.dtype.itemsize:
            raise _Corrupt(f"storage {key!r} is referenced with {numel} elements of {stype.dtype} "
                           f"but holds {cached.untyped.nbytes()} bytes")
        return cached

    # -- the opcodes that call or mutate objects ------------------------------------------------
    def _callable(self, func: Any) -> bool:
        return id(func) in self._callable_ids or isinstance(func, (Placeholder, _PlaceholderMeta)) \
            or func is _DtypeStub

    def _load_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        func = stack[-1]
        if type(args) is not tuple:
            raise _Corrupt(f"call arguments are a {type(args).__name__}, not a tuple")
        if not self._callable(func):
            raise _Corrupt(f"the pickle calls a {type(func).__name__}")
        stack[-1] = func(*args)

    def _load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        if type(args) is not tuple or not isinstance(cls, _PlaceholderMeta):
            raise _Corrupt(f"object creation of a {type(cls).__name__}")
        self.append(cls.__new__(cls, *args))

    def _load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        if type(args) is not tuple or type(kwargs) is not dict or not isinstance(cls, _PlaceholderMeta):
            raise _Corrupt(f"object creation of a {type(cls).__name__}")
        self.append(cls.__new__(cls, *args, **kwargs))

    def _instantiate(self, klass: Any, args: list[Any]) -> None:  # INST / OBJ (protocols 0-1)
        if not self._callable(klass):
            raise _Corrupt(f"the pickle instantiates a {type(klass).__name__}")
        self.append(klass(*args))

    def _load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, (Placeholder, _NumpyArray, _DtypeStub)):
            inst.__setstate__(state)
        elif type(inst) is OrderedDict and type(state) is dict and all(type(k) is str for k in state):
            inst.__dict__.update(state)  # e.g. a state dict's _metadata (module versions)
        elif state is not None:
            raise _Corrupt(f"object state given to a {type(inst).__name__}")

    def _filled(self, obj: Any, kinds: tuple[type, ...]) -> Any:
        if isinstance(obj, Placeholder) or type(obj) in kinds:
            return obj
        raise _Corrupt(f"items added to a {type(obj).__name__}")

    def _load_append(self) -> None:
        value = self.stack.pop()
        self._filled(self.stack[-1], (list,)).append(value)

    def _load_appends(self) -> None:
        items = self.pop_mark()
        self._filled(self.stack[-1], (list,)).extend(items)

    def _load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        self._filled(self.stack[-1], (dict, OrderedDict, defaultdict))[key] = value

    def _load_setitems(self) -> None:
        items = self.pop_mark()
        target = self._filled(self.stack[-1], (dict, OrderedDict, defaultdict))
        if len(items) % 2:
            raise _Corrupt("an odd number of dict items")
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def _load_additems(self) -> None:
        items = self.pop_mark()
        target = self._filled(self.stack[-1], (set,))
        for item in items:
            target.add(item)

    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.APPEND[0]] = _load_append
    dispatch[pickle.APPENDS[0]] = _load_appends
    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems
    dispatch[pickle.ADDITEMS[0]] = _load_additems

    # -- guarded callables ------------------------------------------------------------------
    def _guard(self, module: str, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` called only with plain builtin data (and known codecs); otherwise, or if it
        fails, a placeholder for ``module.name`` recording the arguments."""
        def call(*args: Any, **kwargs: Any) -> Any:
            ok = _plain((args, kwargs), [100_000])
            if ok and name in ("str", "bytes", "bytearray"):
                ok = not any(type(a) is int for a in args)  # bytes(2**40): an allocation bomb
                if len(args) >= 2:
                    ok = ok and _codec_ok(args[1], _CODECS) and (len(args) < 3 or _codec_ok(args[2], _CODEC_ERRORS))
                ok = ok and not kwargs
            if ok:
                try:
                    return fn(*args, **kwargs)
                except Exception:  # noqa: BLE001 - e.g. int("x"): keep the record, inertly
                    pass
            return self._placeholder(module, name)(*args, **kwargs)

        self._guard_ids.add(id(call))
        return call

    def _defaultdict(self, factory: Any = None, *rest: Any) -> Any:
        # the factory runs when a missing key is read: only a guarded builtin or a placeholder
        if rest or not (factory is None or id(factory) in self._guard_ids
                        or isinstance(factory, (Placeholder, _PlaceholderMeta))):
            return self._placeholder("collections", "defaultdict")(factory, *rest)
        return defaultdict(factory)

    @staticmethod
    def _size(dims: Any = ()) -> torch.Size:
        if not (isinstance(dims, (tuple, list)) and len(dims) <= 64 and all(type(d) is int and d >= 0 for d in dims)):
            raise ValueError("not a size")
        return torch.Size(dims)

    @staticmethod
    def _device(kind: Any, index: Any = None) -> torch.device:
        if not isinstance(kind, str) or len(kind) > 64 or not (index is None or type(index) is int):
            raise ValueError("not a device")
        return torch.device(kind) if index is None else torch.device(kind, index)

    def _encode(self, obj: Any, encoding: Any = "utf-8", errors: Any = "strict") -> Any:
        if isinstance(obj, str) and _codec_ok(encoding, _CODECS) and _codec_ok(errors, _CODEC_ERRORS):
            try:
                return obj.encode(encoding, errors)
            except UnicodeError:
                pass
        return self._placeholder("_codecs", "encode")(obj, encoding, errors)

    def _reconstructor(self, cls: Any, base: Any = None, state: Any = None) -> Any:
        """``copyreg._reconstructor`` (protocol 0/1 objects): an instance of a placeholder class."""
        if isinstance(cls, _PlaceholderMeta):
            return cls.__new__(cls) if state is None else cls.__new__(cls, state)
        return self._placeholder("copyreg", "_reconstructor")(cls, base, state)

    # -- tensors ----------------------------------------------------------------------------
    def _tensor(self, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any,
                metadata: Any, dtype: torch.dtype | None) -> torch.Tensor:
        if not isinstance(storage, _Storage):
            raise _Corrupt(f"tensor data is a {type(storage).__name__}, not a storage record")
        dtype = storage.dtype if dtype is None else dtype
        if not isinstance(dtype, torch.dtype):
            raise _Corrupt(f"tensor dtype {_SHORT.repr(dtype)}")
        if isinstance(size, torch.Size):
            size = tuple(size)
        if not (type(offset) is int and offset >= 0 and isinstance(size, tuple) and isinstance(stride, tuple)
                and len(size) == len(stride) <= 64
                and all(type(n) is int and 0 <= n < 2**62 for n in (*size, *stride))):
            raise _Corrupt(f"tensor geometry offset={_SHORT.repr(offset)} size={_SHORT.repr(size)} "
                           f"stride={_SHORT.repr(stride)}")
        numel = 1
        for n in size:
            numel *= n
        if numel >= 2**63:
            raise _Corrupt(f"tensor of size {_SHORT.repr(size)} has more than 2**63 elements")
        itemsize = dtype.itemsize
        nbytes = storage.untyped.nbytes()
        if all(n > 0 for n in size):
            last = offset + sum((n - 1) * s for n, s in zip(size, stride))
            if (last + 1) * itemsize > nbytes:
                raise _Corrupt(f"tensor of size {list(size)} stride {list(stride)} offset {offset} reaches past "
                               f"the {nbytes} bytes of storage {storage.key!r}")
        elif offset * itemsize > nbytes:
            raise _Corrupt(f"tensor offset {offset} is past the end of storage {storage.key!r}")
        tensor = torch.empty((0,), dtype=dtype)
        tensor.set_(storage.untyped, offset, size, stride)
        if type(requires_grad) is not bool:
            raise _Corrupt(f"requires_grad={_SHORT.repr(requires_grad)}")
        if requires_grad:
            tensor.requires_grad_(True)
        if metadata:
            if not (isinstance(metadata, dict) and all(type(k) is str and type(v) is bool for k, v in metadata.items())):
                raise _Corrupt(f"tensor metadata {_SHORT.repr(metadata)}")
            torch._utils.set_tensor_metadata(tensor, metadata)
        return tensor

    def _rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any) -> torch.Tensor:
        return self._tensor(storage, offset, size, stride, False, None, None)

    def _rebuild_tensor_v2(self, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                           backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
        return self._tensor(storage, offset, size, stride, requires_grad, metadata, None)

    def _rebuild_tensor_v3(self, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any,
                           backward_hooks: Any, dtype: Any, metadata: Any = None) -> torch.Tensor:
        if not isinstance(dtype, torch.dtype):
            raise _Corrupt(f"tensor dtype {_SHORT.repr(dtype)}")
        return self._tensor(storage, offset, size, stride, requires_grad, metadata, dtype)

    def _rebuild_parameter(self, data: Any, requires_grad: Any, backward_hooks: Any = None) -> torch.nn.Parameter:
        if not isinstance(data, torch.Tensor) or type(requires_grad) is not bool:
            raise _Corrupt(f"parameter of a {type(data).__name__}")
        return torch.nn.Parameter(data, requires_grad)

    def _rebuild_parameter_with_state(self, data: Any, requires_grad: Any, backward_hooks: Any,
                                      state: Any) -> torch.nn.Parameter:
        return self._rebuild_parameter(data, requires_grad)  # Python attributes on it are dropped

    def _rebuild_from_type_v2(self, func: Any, new_type: Any, args: Any, state: Any) -> Any:
        """A tensor subclass or a tensor with Python attributes: the plain tensor (the subclass,
        a placeholder here, and the attributes are dropped)."""
        if id(func) not in self._rebuild_ids or type(args) is not tuple:
            return self._placeholder("torch._tensor", "_rebuild_from_type_v2")(func, new_type, args, state)
        return func(*args)

    # -- numpy ------------------------------------------------------------------------------
    def _np_reconstruct(self, subtype: Any, shape: Any = (0,), typecode: Any = b"b") -> Any:
        if subtype is not _NDARRAY:  # an ndarray subclass (np.matrix, masked arrays …)
            return self._placeholder("numpy.core.multiarray", "_reconstruct")(subtype, shape, typecode)
        return _NumpyArray((0,), np.uint8)

    def _np_scalar(self, dtype: Any, data: Any = None) -> Any:
        clean = _to_dtype(dtype)
        if clean.hasobject:
            return data  # what numpy itself returns for an object scalar
        if not isinstance(data, (bytes, bytearray)) or len(data) != clean.itemsize:
            raise _Corrupt(f"numpy scalar of {clean} with {_SHORT.repr(data)}")
        return np.frombuffer(bytes(data), dtype=clean)[0]

    def _np_frombuffer(self, buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        clean = _to_dtype(dtype)
        if not isinstance(buf, (bytes, bytearray)) or clean.hasobject or order not in ("C", "F") \
                or not (isinstance(shape, tuple) and all(type(s) is int and s >= 0 for s in shape)):
            raise _Corrupt("numpy buffer record")
        count = 1
        for s in shape:
            count *= s
        if len(buf) != count * clean.itemsize:
            raise _Corrupt(f"numpy buffer of {len(buf)} bytes for shape {shape} {clean}")
        return np.frombuffer(bytearray(buf), dtype=clean).reshape(shape, order=order)


class _ZipArchive:
    """One open torch zip archive: its records, checked against the file before anything is read."""

    def __init__(self, path: Path, fh: Any, zf: zipfile.ZipFile, prefix: str, file_size: int) -> None:
        self.path, self.fh, self.zf, self.prefix, self.file_size = path, fh, zf, prefix, file_size
        self.swap = False
        self.loaded = 0  # bytes of storage read so far: never more than the file holds

    def record(self, name: str, limit: int) -> bytes:
        """A small record (``data.pkl``, ``byteorder``) through zipfile (CRC-checked)."""
        info = self.zf.getinfo(self.prefix + name)
        if info.flag_bits & 1:
            raise CheckpointError(f"{self.path}: record {info.filename!r} is encrypted")
        with self.zf.open(info) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise CheckpointError(f"{self.path}: record {info.filename!r} is over {limit} bytes")
        return data

    def storage(self, key: str, nbytes: int, dtype: torch.dtype) -> torch.UntypedStorage:
        """``data/<key>``, read straight into a new storage; sizes are checked before allocating."""
        name = f"{self.prefix}data/{key}"
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            raise CheckpointError(f"{self.path}: missing storage record {name!r} (the archive is "
                                  "incomplete or damaged)") from None
        if info.flag_bits & 1 or info.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(f"{self.path}: storage record {name!r} is compressed or encrypted; "
                                  "torch.save writes them stored (was the archive re-zipped?)")
        if info.file_size != nbytes or info.compress_size != nbytes:
            raise CheckpointError(f"{self.path}: storage record {name!r} holds {info.file_size} bytes, "
                                  f"the pickle expects {nbytes}")
        self.fh.seek(info.header_offset)
        header = self.fh.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _ZIP_MAGIC:
            raise CheckpointError(f"{self.path}: truncated or damaged zip archive (no local header for {name!r})")
        fields = _LOCAL_HEADER.unpack(header)
        start = info.header_offset + _LOCAL_HEADER.size + fields[10] + fields[11]
        local_name = self.fh.read(fields[10]).decode("utf-8" if fields[3] & 0x800 else "cp437", "replace")
        if local_name != info.orig_filename:
            raise CheckpointError(f"{self.path}: damaged zip archive (local header of {name!r} names another file)")
        if start + nbytes > self.file_size:
            raise CheckpointError(f"{self.path}: truncated: storage record {name!r} runs past the end of the file")
        self.loaded += nbytes
        if self.loaded > self.file_size:  # records that overlap: a zip bomb, not torch.save's work
            raise CheckpointError(f"{self.path}: damaged zip archive (its storage records overlap)")
        buffer = torch.empty(nbytes, dtype=torch.uint8)
        view = memoryview(buffer.numpy()) if nbytes else memoryview(b"")
        self.fh.seek(start)
        got = self.fh.readinto(view) if nbytes else 0
        if got != nbytes:
            raise CheckpointError(f"{self.path}: truncated: storage record {name!r} is short")
        if zlib.crc32(view) != info.CRC:
            raise CheckpointError(f"{self.path}: storage record {name!r} is damaged (CRC mismatch)")
        untyped = buffer.untyped_storage()
        if self.swap and dtype.itemsize > 1:
            untyped.byteswap(dtype)
        return untyped


def _read_torch_zip(path: Path) -> Any:
    """The object in a torch zip archive, read by the restricted unpickler (see module doc)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc})") from exc
    with fh:
        file_size = os.fstat(fh.fileno()).st_size
        try:
            zf = zipfile.ZipFile(fh)
            names = zf.namelist()
        except Exception as exc:  # noqa: BLE001 - BadZipFile, struct.error, ValueError …: all mean damaged
            raise CheckpointError(f"{path}: truncated or damaged zip archive (no readable central directory: "
                                  f"{type(exc).__name__}: {exc})") from exc
        pickles = [n for n in names if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)]
        if not pickles:
            shown = ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
            raise CheckpointError(f"{path}: a zip archive without a data.pkl record: not a torch.save checkpoint "
                                  f"(records: {shown or 'none'})")
        prefix = pickles[0][: -len("data.pkl")]
        if prefix + "constants.pkl" in names:
            raise CheckpointError(f"{path}: a TorchScript archive (torch.jit.save), not a torch.save checkpoint; "
                                  "it cannot be read without running its code. Export a state dict instead")
        archive = _ZipArchive(path, fh, zf, prefix, file_size)
        try:
            if prefix + "byteorder" in names:
                order = archive.record("byteorder", 16)
                if order not in (b"little", b"big"):
                    raise CheckpointError(f"{path}: unknown byte order {order[:16]!r}")
                archive.swap = order.decode() != sys.byteorder
            data = archive.record("data.pkl", _MAX_PICKLE_BYTES)
        except CheckpointError:
            raise
        except Exception as exc:  # noqa: BLE001 - BadZipFile (bad CRC, bad header), EOFError …
            raise CheckpointError(f"{path}: truncated or damaged zip archive ({type(exc).__name__}: {exc})") from exc
        unpickler = _Unpickler(data, archive)
        try:
            obj = unpickler.load()
        except CheckpointError:
            raise
        except _Corrupt as exc:
            raise CheckpointError(f"{path}: corrupt checkpoint pickle ({exc})") from exc
        except RecursionError as exc:
            raise CheckpointError(f"{path}: corrupt checkpoint pickle (nested too deeply)") from exc
        except Exception as exc:  # noqa: BLE001 - UnpicklingError, EOFError, KeyError (bad opcode) …
            raise CheckpointError(f"{path}: corrupt checkpoint pickle ({type(exc).__name__}: {exc})") from exc
    if unpickler.suspicious:
        log.warning("%s: its pickle names %s: loading it with torch.load(weights_only=False) would run code. "
                    "Nothing was run: they are inert placeholders", path, ", ".join(sorted(unpickler.suspicious)))
    if unpickler.placeholders:
        shown = sorted(unpickler.placeholders)
        log.info("%s: not a weights-only checkpoint; read with the restricted reader, %d global(s) kept as "
                 "placeholders: %s", path, len(shown), ", ".join(shown[:12]) + (" …" if len(shown) > 12 else ""))
    return obj


def _load_torch(path: Path) -> Any:
    """The restricted zip reader for torch's zip format, else ``torch.load(weights_only=True)``."""
    try:
        with open(path, "rb") as f:
            is_zip = f.read(4) == _ZIP_MAGIC
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc})") from exc
    if is_zip:
        return _read_torch_zip(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - anything torch refuses goes to the checks below
        refusal = exc
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc})") from exc
    if head.startswith(_ZIP_MAGIC) or head.startswith(_EMPTY_ZIP_MAGIC):
        return _read_torch_zip(path)
    if not head:
        raise CheckpointError(f"{path}: empty file (0 bytes): not a checkpoint")
    if (len(head) >= 14 and head[0] == 0x80 and head[2:14] == _LEGACY_MAGIC) or head[257:262] == b"ustar":
        # torch's own message suggests weights_only=False: never do that with downloaded files
        raise CheckpointError(
            f"{path}: refused: not a weights-only checkpoint: a legacy (pre-1.6, non-zip) torch file holding "
            f"pickled objects other than tensors ({type(refusal).__name__}); the restricted reader supports only "
            "torch's zip format. Load it once in a trusted environment and save its state dict as .safetensors "
            "(or re-save it with torch>=1.6)."
        ) from refusal
    raise CheckpointError(
        f"{path}: refused: not a weights-only checkpoint (it is not a torch file: neither a torch.save zip "
        f"archive nor a legacy torch pickle; {type(refusal).__name__}). Convert it in a trusted environment "
        "and save its state dict as .safetensors."
    ) from refusal


# ------------------------------------------------------------------------------ public API


def _existing(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
            raw_meta = f.metadata() or {}
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    meta: dict[str, Any] = {}
    for k, v in raw_meta.items():
        try:
            meta[k] = json.loads(v)
        except (TypeError, ValueError):
            meta[k] = v
    return state, meta


def read_checkpoint(path: str | Path) -> Any:
    """The whole object a checkpoint file holds, read without running any pickled code.

    Torch zip files (every ``torch.save`` since torch 1.6): the restricted reader, in which every
    global outside tensors, containers and scalars is a
    :class:`Placeholder` (so Lightning's ``epoch``, ``global_step`` … are plain values and its
    ``hyper_parameters`` a placeholder whose :meth:`Placeholder.fields` gives them). Usually a
    dict. A ``.safetensors`` file gives ``{"state_dict": tensors, "meta": metadata}``.
    Raises :class:`CheckpointError` naming the file for anything unreadable.
    """
    path = _existing(path)
    if path.suffix == ".safetensors":
        state, meta = _read_safetensors(path)
        return {"state_dict": state, "meta": meta}
    return _load_torch(path)


def _module_state(module: Placeholder, prefix: str = "", seen: set[int] | None = None) -> dict[str, Any]:
    """The state dict of a pickled ``nn.Module`` (a placeholder): parameters and persistent buffers."""
    seen = set() if seen is None else seen
    if id(module) in seen:
        return {}
    seen.add(id(module))
    state = module.state if isinstance(module.state, dict) else {}
    out: dict[str, Any] = {}
    skip = state.get("_non_persistent_buffers_set") or ()
    for group in ("_parameters", "_buffers"):
        entries = state.get(group)
        if isinstance(entries, dict):
            for name, value in entries.items():
                if value is not None and not (group == "_buffers" and isinstance(skip, (set, frozenset)) and name in skip):
                    out[f"{prefix}{name}"] = value.detach() if isinstance(value, torch.Tensor) else value
    children = state.get("_modules")
    if isinstance(children, dict):
        for name, child in children.items():
            if _is_module(child):
                out.update(_module_state(child, f"{prefix}{name}.", seen))
    return out


def _is_module(obj: Any) -> bool:
    return isinstance(obj, Placeholder) and isinstance(obj.state, dict) and "_parameters" in obj.state \
        and "_modules" in obj.state


def _describe(value: Any) -> str:
    if isinstance(value, Placeholder):
        return f"a placeholder for {value.qualname}"
    if isinstance(value, _PlaceholderMeta):
        return f"the class {value.module}.{value.name}"
    return f"a {type(value).__name__}"


def _keys_text(obj: Mapping[Any, Any]) -> str:
    keys = [repr(k) for k in list(obj)[:12]]
    return ", ".join(keys) + (f" … (+{len(obj) - 12})" if len(obj) > 12 else "") if keys else "none"


def _select(path: Path, obj: Any, key: str | None) -> tuple[Any, str]:
    """The part of ``obj`` that holds the state dict, and where it was found (for messages)."""
    if key is not None:
        if not isinstance(obj, Mapping):
            raise CheckpointError(f"{path}: key={key!r} given, but the file holds {_describe(obj)}, not a dict")
        if key not in obj:
            raise CheckpointError(f"{path}: no key {key!r}; its top-level keys: {_keys_text(obj)}")
        return obj[key], f"[{key!r}]"
    if isinstance(obj, Mapping):
        for name in STATE_KEYS:
            value = obj.get(name)
            if isinstance(value, Mapping) or _is_module(value):
                return value, f"[{name!r}]"
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj, "state dict"
        if not obj:
            raise CheckpointError(f"{path}: no tensors found (the file holds an empty dict)")
        raise CheckpointError(
            f"{path}: expected a state dict of tensors, or one under {', '.join(map(repr, STATE_KEYS))}; "
            f"its top-level keys: {_keys_text(obj)} (pass key= to pick one)"
        )
    if _is_module(obj):
        return obj, "pickled module"
    raise CheckpointError(f"{path}: expected a state dict of tensors, got {_describe(obj)}")


def _under(state: dict[str, Any], prefix: str) -> OrderedDict[str, Any]:
    """The entries under ``prefix``, stripped of it; torch's per-module ``_metadata`` (which
    ``load_state_dict`` uses for versioned modules) follows, as in
    ``torch.nn.modules.utils.consume_prefix_in_state_dict_if_present``."""
    out: OrderedDict[str, Any] = OrderedDict((k[len(prefix):], v) for k, v in state.items() if k.startswith(prefix))
    meta = getattr(state, "_metadata", None)
    if isinstance(meta, dict):
        root = prefix[:-1] if prefix.endswith(".") else prefix
        out._metadata = OrderedDict(  # type: ignore[attr-defined]
            ("" if k == root else k[len(prefix):], v) for k, v in meta.items() if k == root or k.startswith(prefix))
    return out


def _strip_module(path: Path, state: dict[str, Any]) -> dict[str, Any]:
    if state and all(k.startswith("module.") for k in state):
        log.info("%s: stripped the 'module.' prefix (DataParallel/DistributedDataParallel) from all %d keys",
                 path, len(state))
        return _under(state, "module.")
    return state


def load_state(path: str | Path, *, key: str | None = None,
               prefix: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, metadata) from a checkpoint file, without running any pickled code.

    ``.safetensors``: its tensors, and its metadata with JSON values decoded. Torch files
    (the restricted reader of :func:`read_checkpoint`; legacy files ``torch.load(weights_only=True)``):
    the dict under ``key`` if given, else under the first of ``state_dict`` (PyTorch-Lightning
    ``.ckpt``), ``model_state_dict``, ``model``, ``generator`` that holds one, else the file's
    own dict of tensors; a pickled whole ``nn.Module`` gives its parameters and persistent
    buffers. Metadata is the file's ``meta`` dict if it has one (:func:`read_checkpoint` gives
    the rest, e.g. ``epoch``). A ``module.`` prefix on every key (DataParallel) is stripped,
    with an INFO log; ``prefix`` keeps only the keys under it, stripped (``prefix="G."``; a
    ``module.`` before it may be given or left out).
    """
    path = _existing(path)
    state: dict[str, Any]
    if path.suffix == ".safetensors":
        if key is not None:
            raise CheckpointError(f"{path}: key={key!r} applies to torch files; a safetensors file is one flat "
                                  "state dict (use prefix= to pick part of it)")
        state, meta = _read_safetensors(path)
        where = "safetensors"
    else:
        obj = _load_torch(path)
        chosen, where = _select(path, obj, key)
        if _is_module(chosen):
            log.info("%s: %s is a pickled nn.Module; using its parameters and persistent buffers", path, where)
            chosen = _module_state(chosen)
        if not isinstance(chosen, dict):
            raise CheckpointError(f"{path}: {where} is {_describe(chosen)}, not a state dict of tensors")
        state = chosen
        meta = obj.get("meta") if isinstance(obj, Mapping) and isinstance(obj.get("meta"), dict) else {}
        bad = [k for k, v in state.items() if not (type(k) is str and isinstance(v, torch.Tensor))]
        if bad:
            shown = "; ".join(f"{k!r} is {_describe(state[k])}" for k in bad[:3])
            raise CheckpointError(f"{path}: {where} is not a state dict of tensors ({shown}"
                                  f"{f' … (+{len(bad) - 3})' if len(bad) > 3 else ''})")
    if not state:
        raise CheckpointError(f"{path}: no tensors found in {where}")
    if prefix:
        # the prefix may or may not include a DataParallel "module.": try the keys as saved, then stripped
        sub = _under(state, prefix)
        if not sub:
            state = _strip_module(path, state)
            sub = _under(state, prefix)
        if not sub:
            heads = sorted({k.split(".", 1)[0] + ("." if "." in k else "") for k in state})
            raise CheckpointError(f"{path}: no keys under prefix {prefix!r}; its keys start with: "
                                  f"{', '.join(heads[:12])}{' …' if len(heads) > 12 else ''}")
        state = sub
    return _strip_module(path, state), meta


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], origin: str | Path) -> None:
    """Load ``state`` into ``model`` strictly; on mismatch raise naming the keys at fault."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shaped = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shaped:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" … (+{len(keys) - 5})" if len(keys) > 5 else "")

        parts = []
        if missing:
            parts.append(f"missing keys: {show(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {show(unexpected)}")
        if shaped:
            parts.append("shape mismatch: " + show([f"{k} {tuple(state[k].shape)}≠{tuple(own[k].shape)}" for k in shaped]))
        raise CheckpointError(f"{origin}: checkpoint does not fit {type(model).__name__} ({'; '.join(parts)})")
    model.load_state_dict(state, strict=True)


def load_states(objects: dict[str, Any], states: dict[str, Any], origin: str | Path) -> None:
    """``objects[name].load_state_dict(states[name])`` for each name (optimisers, gradient
    scalers of a resumed training run); CheckpointError naming ``origin`` when one does not fit."""
    try:
        for name, obj in objects.items():
            obj.load_state_dict(states[name])
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{origin}: optimizer state does not fit ({type(exc).__name__}: {exc})") from exc


class GanTrainerState:
    """The state methods the training loop calls, for a trainer with one ``generator``, one
    ``discriminator`` module, optimisers ``opt_g``/``opt_d`` and gradient scalers
    ``scaler_g``/``scaler_d``."""

    generator: torch.nn.Module
    discriminator: torch.nn.Module
    opt_g: Any
    opt_d: Any
    scaler_g: Any
    scaler_d: Any

    def generator_state(self) -> dict[str, torch.Tensor]:
        return self.generator.state_dict()

    def discriminator_state(self) -> dict[str, torch.Tensor]:
        return self.discriminator.state_dict()

    def _optimizers(self) -> dict[str, Any]:
        return {"G": self.opt_g, "D": self.opt_d, "scaler_G": self.scaler_g, "scaler_D": self.scaler_d}

    def optimizer_state(self) -> dict[str, Any]:
        return {name: obj.state_dict() for name, obj in self._optimizers().items()}

    def load_state(self, generator: dict[str, torch.Tensor], discriminators: dict[str, torch.Tensor],
                   optimizers: dict[str, Any], origin: str) -> None:
        """Restore what the three state methods returned; CheckpointError naming mismatched keys."""
        load_into(self.generator, generator, origin)
        load_into(self.discriminator, discriminators, origin)
        load_states(self._optimizers(), optimizers, origin)


def save_state(path: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> None:
    """Write a safetensors checkpoint atomically; ``meta`` values are stored as JSON."""
    from safetensors.torch import save

    from recogbench.fileio import atomic_write_bytes

    data = save({k: v.detach().contiguous().cpu() for k, v in state.items()},
                metadata={k: json.dumps(v) for k, v in (meta or {}).items()})
    atomic_write_bytes(Path(path), data)
