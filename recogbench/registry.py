"""One registry mechanism for every pluggable kind: protocols, occluders, inpainters, verifiers.

Built-ins are registered as ``"module:attr"`` strings and imported only when looked up, so
heavy optional dependencies load only for the backend actually chosen. Third-party backends
join through a Python entry-point group, read on the first lookup; a broken plugin is logged
and skipped rather than breaking every other backend.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import hashlib
import importlib
import inspect
import logging
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class RegistryError(KeyError):
    """An unknown name, a duplicate registration or an unparsable spec."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Spec:
    """A parsed backend spec ``NAME[:key=value,...]``, e.g. ``arcface:model=w600k.onnx``.

    Families registered as ``prefix:*`` take a variant: ``region:twoeyes``; see
    :meth:`Registry.parse`.
    """

    name: str
    options: tuple[tuple[str, str], ...] = ()

    @property
    def kwargs(self) -> dict[str, str]:
        return dict(self.options)

    def __str__(self) -> str:
        if not self.options:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.options)


def display_spec(text: str) -> str:
    """A spec as people read it in titles and legends: option values that are paths shortened to
    their file names (``id-inpainter:ca=/data/ckpt/gen.pt`` → ``id-inpainter:ca=gen.pt``)."""
    name, sep, rest = str(text).partition(":")
    if not sep:
        return name
    items = []
    for item in rest.split(","):
        key, eq, value = item.partition("=")
        if eq and ("/" in value or "\\" in value):
            value = value.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or value
        items.append(f"{key}{eq}{value}")
    return f"{name}{sep}{','.join(items)}"


@functools.lru_cache(maxsize=256)
def _content_digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, or of a folder's sorted (relative name, file sha256) list."""
    from recogbench.verifiers.base import file_digest

    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(f"{f.relative_to(p).as_posix()}\0{file_digest(f)}\n".encode())
    else:
        h.update(file_digest(p).encode())
    return h.hexdigest()


def _portable_value(value: str) -> str:
    """A path as ``name@sha8`` of its content (a folder: of its files); other text unchanged."""
    # Only text written as a path counts: a bare word (a region's name, ``white``) stays itself
    # whatever the current folder holds.
    if not ("/" in value or "\\" in value or value.startswith("~")):
        return value
    p = Path(value).expanduser()
    name = value.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or value
    try:
        st = p.resolve().stat()
        digest = _content_digest(str(p.resolve()), st.st_size, st.st_mtime_ns)
    except OSError:  # not there (yet): the name alone; loading it will say what is wrong
        return name
    return f"{name}@{digest[:8]}"


def portable_spec(text: str) -> str:
    """A spec as rows and config hashes record it: every value that names a file or folder
    becomes its name and content digest (``real:/data/cutouts`` → ``real:cutouts@1a2b3c4d``,
    ``pconv-gan:checkpoint=/ckpt/last.safetensors`` → ``…checkpoint=last.safetensors@9f8e7d6c``),
    so results never hold absolute paths, and moving a folder changes no hash while changing
    its content does. Specs joined by ``+`` are converted part by part."""
    if "+" in text:
        return "+".join(portable_spec(part) for part in text.split("+"))
    name, sep, rest = str(text).partition(":")
    if not sep:
        return name
    head = name
    colon, eq = rest.find(":"), rest.find("=")
    if eq == -1:  # ``real:FOLDER``: all of it is a family's variant
        return f"{name}:{_portable_value(rest)}"
    if colon != -1 and colon < eq:  # ``region:twoeyes:fill=white``, ``real:FOLDER:jitter=1``
        variant, _, rest = rest.partition(":")
        head = f"{name}:{_portable_value(variant)}"
    items = []
    for item in rest.split(","):
        key, eq_sign, value = item.partition("=")
        items.append(f"{key}{eq_sign}{_portable_value(value)}" if eq_sign else item)
    return f"{head}:{','.join(items)}"


class Registry(Generic[T]):
    """Maps names to factories (classes or functions) of one kind.

    >>> reg = Registry("verifier")
    >>> reg.register("sface", "recogbench.verifiers.onnx:SFaceVerifier")
    """

    def __init__(self, kind: str, entry_point_group: str | None = None, builtins: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.builtins = builtins
        self._targets: dict[str, str | Callable[..., T]] = {}
        self._plugins_loaded = False

    def register(
        self, name: str, target: str | Callable[..., T] | None = None, *, replace: bool = False
    ) -> Any:
        """Register ``target`` (a factory or a lazy ``"module:attr"`` string) under ``name``.

        Without ``target`` it works as a decorator. A duplicate name is an error unless
        ``replace=True``: two backends silently sharing a name make results ambiguous.
        """
        if target is None:

            def decorator(obj: Callable[..., T]) -> Callable[..., T]:
                self.register(name, obj, replace=replace)
                return obj

            return decorator
        if not name or any(c in name for c in ",= "):
            raise RegistryError(f"invalid {self.kind} name {name!r}")
        if name in self._targets and not replace:
            raise RegistryError(f"{self.kind} {name!r} is already registered")
        self._targets[name] = target
        return target

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        if self.builtins:
            importlib.import_module(self.builtins)  # registers the built-ins (lazy strings)
        if not self.entry_point_group:
            return
        for ep in metadata.entry_points(group=self.entry_point_group):
            if ep.name in self._targets:
                log.warning("%s plugin %r ignored: the name is taken by a built-in", self.kind, ep.name)
                continue
            self._targets[ep.name] = ep.value

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a glob ``pattern``, sorted."""
        self._load_plugins()
        return sorted(n for n in self._targets if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return name in self._targets

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name``, importing it on first use."""
        self._load_plugins()
        try:
            target = self._targets[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._targets, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise RegistryError(
                f"unknown {self.kind} {name!r}{hint} (known: {', '.join(self.names())})"
            ) from None
        if isinstance(target, str):
            module_name, _, attr = target.partition(":")
            try:
                obj = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError, RuntimeError) as exc:
                # RuntimeError: e.g. torchvision's CUDA build imported against a CPU torch.
                raise RegistryError(
                    f"{self.kind} {name!r} could not be loaded from {target}: {exc}"
                ) from exc
            self._targets[name] = obj
            target = obj
        return target

    def parse(self, text: str) -> Spec:
        """Parse ``NAME[:key=value,...]``.

        A family registered as ``prefix:*`` (e.g. ``region:*``) takes one more field as
        its variant: ``region:twoeyes:fill=white`` is name ``region:twoeyes`` with one option.
        """
        text = text.strip()
        if not text:
            raise RegistryError(f"empty {self.kind} spec")
        self._load_plugins()
        name, sep, rest = text.partition(":")
        if sep and f"{name}:*" in self._targets:
            variant, sep, rest = rest.partition(":")
            if not variant:
                raise RegistryError(f"{self.kind} spec {text!r} needs a variant after {name!r}:")
            name = f"{name}:{variant}"
        options: list[tuple[str, str]] = []
        if sep:
            for item in rest.split(","):
                key, eq, value = item.partition("=")
                if not eq or not key.strip():
                    raise RegistryError(
                        f"bad option {item!r} in {self.kind} spec {text!r}: expected key=value"
                    )
                options.append((key.strip(), value.strip()))
        return Spec(name, tuple(options))

    def _family(self, name: str) -> str | None:
        head, sep, _ = name.partition(":")
        return f"{head}:*" if sep and f"{head}:*" in self._targets else None

    def resolve(self, spec: str | Spec) -> Callable[..., T]:
        """The factory a spec would be built by (parsed and imported, nothing instantiated):
        checks a name and its option names before any work; :class:`RegistryError` with
        close names otherwise."""
        parsed = self.parse(spec) if isinstance(spec, str) else spec
        family = self._family(parsed.name)
        factory = self.get(family or parsed.name)
        _check_option_names(factory, parsed.kwargs, f"{self.kind} {parsed.name!r}",
                            exclude=("variant",) if family is not None else ())
        return factory

    def create(self, spec: str | Spec, **kwargs: Any) -> T:
        """Build an instance from a spec; spec options and ``kwargs`` are merged.

        A family member ``prefix:variant`` is built by the ``prefix:*`` factory with
        ``variant=...``.
        """
        parsed = self.parse(spec) if isinstance(spec, str) else spec
        options: dict[str, Any] = {**parsed.kwargs, **kwargs}
        family = self._family(parsed.name)
        if family is not None:
            factory = self.get(family)
            options["variant"] = parsed.name.partition(":")[2]
        else:
            factory = self.get(parsed.name)
        _check_option_names(factory, options, f"{self.kind} {parsed.name!r}",
                            exclude=("variant",) if family is not None else ())
        options = _coerce_options(factory, options, f"{self.kind} {parsed.name!r}")
        try:
            return factory(**options)
        except TypeError as exc:
            raise RegistryError(f"{self.kind} {parsed.name!r}: {exc}") from exc

    def summary(self, name: str) -> str:
        """First line of the factory's docstring, for ``recogbench ls``."""
        try:
            doc = (self.get(name).__doc__ or "").strip()
        except RegistryError as exc:
            return f"(unavailable: {exc})"
        return doc.splitlines()[0] if doc else ""


def accepted_options(factory: Callable[..., Any]) -> list[str] | None:
    """The keyword options a factory takes, or None when it takes any (``**options``)."""
    target = factory.__init__ if isinstance(factory, type) else factory
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: nothing to check against
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _check_option_names(factory: Callable[..., Any], options: Mapping[str, Any], what: str,
                        exclude: Sequence[str] = ()) -> None:
    """:class:`RegistryError` naming the backend's options when a spec names one it lacks
    (instead of Python's ``__init__() got an unexpected keyword argument``)."""
    known = accepted_options(factory)
    if known is None:
        return
    unknown = [k for k in options if k not in known]
    if not unknown:
        return
    shown = [k for k in known if k not in exclude]
    hints = [m for k in unknown for m in difflib.get_close_matches(k, shown, n=1, cutoff=0.5)]
    hint = f"; did you mean {', '.join(map(repr, hints))}?" if hints else ""
    raise RegistryError(
        f"{what} has no option {', '.join(map(repr, unknown))}{hint} "
        f"(its options: {', '.join(shown) if shown else 'none'})"
    )


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce_options(factory: Callable[..., Any], options: dict[str, Any], what: str) -> dict[str, Any]:
    """Convert string option values (from spec text) to the factory's annotated types.

    Only plain annotations are converted (bool, int, float, Path and their ``| None``);
    anything else is passed through as text for the backend to interpret.
    """
    target = factory.__init__ if isinstance(factory, type) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable annotations in a plugin: pass values through
        return options
    out = dict(options)
    for key, value in options.items():
        if not isinstance(value, str) or key not in hints:
            continue
        hint = hints[key]
        candidates = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        for typ in candidates:
            try:
                if typ is bool:
                    low = value.lower()
                    if low not in _TRUE | _FALSE:
                        raise ValueError(value)
                    out[key] = low in _TRUE
                elif typ in (int, float, Path):
                    out[key] = typ(value)
                else:
                    continue
                break
            except ValueError:
                continue
        else:
            if any(t in (bool, int, float) for t in candidates) and str not in candidates:
                raise RegistryError(f"{what}: option {key}={value!r} is not a valid {hint}")
    return out


PROTOCOLS: Registry[Any] = Registry("protocol", "recogbench.protocols", builtins="recogbench.protocols")
OCCLUDERS: Registry[Any] = Registry("occluder", "recogbench.occluders", builtins="recogbench.occlusion")
INPAINTERS: Registry[Any] = Registry("inpainter", "recogbench.inpainters", builtins="inpainters")
VERIFIERS: Registry[Any] = Registry("verifier", "recogbench.verifiers", builtins="recogbench.verifiers")
REGISTRIES = {"protocols": PROTOCOLS, "occluders": OCCLUDERS, "inpainters": INPAINTERS, "verifiers": VERIFIERS}
