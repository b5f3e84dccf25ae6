"""A restricted unpickler for downloaded data packs (insightface ``.bin`` files).

A pickle can run arbitrary code while it loads: every global it names is imported and may be
called. :func:`safe_load` admits only the handful of globals the ``.bin`` format needs — the
builtin containers and scalars, ``_codecs.encode`` (how protocol-2 pickles spell ``bytes``)
and numpy's array/scalar reconstruction — and refuses anything else *before* it is called.
Arrays or scalars of object dtype are refused too, since they can smuggle arbitrary objects.
"""

from __future__ import annotations

import builtins
import logging
import pickle
from typing import IO, Any, Callable

import numpy as np

from recogbench.data import DataError

log = logging.getLogger(__name__)

__all__ = ["UnsafePickleError", "safe_load", "safe_loads"]


class UnsafePickleError(DataError):
    """A pickle named a global outside the allow-list, or held object-dtype numpy data."""


_BUILTIN_NAMES = frozenset({"bytes", "bytearray", "list", "tuple", "bool", "int", "set", "frozenset"})
_BUILTIN_MODULES = frozenset({"builtins", "__builtin__"})
_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMPY_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")


def _known_codec(encoding: str) -> bool:
    """Whether ``encoding`` is a plain text codec. Python 3 writes ``bytes`` in protocol-2
    pickles as ``_codecs.encode(str, "latin1")``; other codec names could trigger imports."""
    return encoding.lower().replace("-", "_") in {"latin1", "latin_1", "iso_8859_1", "utf_8", "utf8", "ascii"}


def _numpy_reconstructors() -> dict[str, Callable[..., Any]]:
    """numpy's pickling helpers, found through numpy's own ``__reduce__`` so that neither the
    deprecated ``numpy.core`` nor the private ``numpy._core`` module is imported by name."""
    reconstruct = np.empty(0, np.uint8).__reduce__()[0]
    scalar = np.uint8(0).__reduce__()[0]
    frombuffer = np.empty(4, np.uint8).__reduce_ex__(5)[0]
    return {"_reconstruct": reconstruct, "scalar": scalar, "_frombuffer": frombuffer}


class _RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose :meth:`find_class` consults an allow-list."""

    def __init__(self, file: IO[bytes], origin: str) -> None:
        super().__init__(file, encoding="bytes")
        self._origin = origin
        self._numpy = _numpy_reconstructors()

    def _refuse(self, what: str) -> UnsafePickleError:
        return UnsafePickleError(
            f"{self._origin}: refused to load {what}; this file may be malicious or is not an "
            "insightface-style data pack (only bytes, lists, tuples, bools, ints and numpy "
            "arrays are allowed)"
        )

    def _check_dtype(self, dtype: np.dtype) -> np.dtype:
        if dtype.hasobject:
            raise self._refuse(f"numpy data of object dtype {dtype}")
        return dtype

    def find_class(self, module: str, name: str) -> Any:
        if module in _BUILTIN_MODULES and name in _BUILTIN_NAMES:
            return getattr(builtins, name)
        if module == "_codecs" and name == "encode":
            return self._encode
        if module in ("numpy", *_NUMPY_MODULES) and name == "ndarray":
            return np.ndarray
        if module in ("numpy", *_NUMPY_MODULES) and name == "dtype":
            return self._dtype
        if module in _NUMPY_MODULES and name == "_reconstruct":
            return self._numpy["_reconstruct"]
        if module in _NUMPY_MODULES and name == "scalar":
            return self._scalar
        if module in _NUMPY_NUMERIC and name == "_frombuffer":  # protocol-5 array pickles
            return self._frombuffer
        raise self._refuse(f"global {module}.{name}")

    # -- guarded callables handed to the pickle machine -------------------------------------
    def _encode(self, obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        if not isinstance(obj, str) or not isinstance(encoding, str) or not _known_codec(encoding):
            raise self._refuse(f"_codecs.encode({type(obj).__name__}, {encoding!r})")
        return obj.encode(encoding, "strict")

    def _dtype(self, *args: Any, **kwargs: Any) -> np.dtype:
        args = tuple(a.decode("latin-1") if isinstance(a, bytes) else a for a in args)
        return self._check_dtype(np.dtype(*args, **kwargs))

    def _scalar(self, dtype: Any, *args: Any) -> Any:
        if not isinstance(dtype, np.dtype):
            raise self._refuse(f"numpy scalar of {type(dtype).__name__}")
        self._check_dtype(dtype)
        return self._numpy["scalar"](dtype, *args)

    def _frombuffer(self, buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        if not isinstance(dtype, np.dtype):
            raise self._refuse(f"numpy buffer of {type(dtype).__name__}")
        self._check_dtype(dtype)
        return self._numpy["_frombuffer"](buf, dtype, shape, order)


def _reject_object_arrays(obj: Any, origin: str) -> None:
    """Walk the loaded containers; raise if any numpy array or scalar has an object dtype
    (structured dtypes get their fields only after construction, so check the result too)."""
    stack = [obj]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (np.ndarray, np.generic)):
            if item.dtype.hasobject:
                raise UnsafePickleError(f"{origin}: refused numpy data of object dtype {item.dtype}")
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())


def safe_load(fileobj: IO[bytes], origin: str) -> Any:
    """Unpickle ``fileobj`` admitting only the globals a ``.bin`` pack needs.

    ``origin`` (usually the file path) names the file in error messages. Python 2 strings
    load as ``bytes`` (``encoding='bytes'``). Raises :class:`UnsafePickleError` for a
    refused global or object dtype, :class:`DataError` for a truncated or corrupt pickle.
    """
    try:
        result = _RestrictedUnpickler(fileobj, origin).load()
    except DataError:
        raise
    # MemoryError: a length field claiming an absurd size (e.g. 2**56 bytes) makes the
    # unpickler's up-front allocation fail; nothing was allocated, the file is just corrupt.
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeError, OverflowError, MemoryError) as exc:
        raise DataError(f"{origin}: not a readable pickle ({type(exc).__name__}: {exc})") from exc
    _reject_object_arrays(result, origin)
    return result


def safe_loads(data: bytes, origin: str = "<bytes>") -> Any:
    """:func:`safe_load` for an in-memory pickle."""
    import io

    return safe_load(io.BytesIO(data), origin)
