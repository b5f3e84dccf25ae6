"""Crash-safe file writes, and pre-flight checks that an output location can be written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class OutputError(OSError):
    """An output folder or file that cannot be written. The message is one line naming the
    path and the reason; ``filename`` is the path and ``errno`` the OS error, when known."""

    def __init__(self, message: str, path: str | Path, errno: int | None = None) -> None:
        super().__init__(message)  # one argument: str() is the message, no "[Errno N]" prefix
        self.filename = str(path)
        self.errno = errno

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self):  # keeps path and errno when raised in a worker process
        return type(self), (self.args[0], self.filename, self.errno)


def ensure_writable_dir(folder: str | Path, what: str = "output folder") -> Path:
    """Create ``folder`` (and its parents) and prove a file can be created in it; returns it
    with ``~`` expanded.

    Called before a long job starts, so a folder that cannot take the results fails in a
    second with :class:`OutputError` ("results folder /x is not writable (Permission
    denied)") instead of after hours of compute. ``what`` names the folder in the message.
    """
    folder = Path(folder).expanduser()
    try:
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"{what} {folder} is a file, not a folder", folder)
        folder.mkdir(parents=True, exist_ok=True)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"{what} {folder} cannot be created ({_blocker(folder) or _reason(exc)})", folder, exc.errno) from exc
    try:
        # Create a real file rather than ask os.access(): only an actual create meets ACLs,
        # root-squashed network shares and a full inode table the way the later writes will.
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".recogbench-write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{what} {folder} is not writable ({_reason(exc)})", folder, exc.errno) from exc
    return folder


def ensure_writable_file(path: str | Path, what: str = "output file") -> Path:
    """Check before a long job that ``path`` can be written (its folder is created and
    writable, and ``path`` is not a folder); returns it with ``~`` expanded. Raises
    :class:`OutputError`. An existing file is fine: writes replace it atomically."""
    path = Path(path).expanduser()
    ensure_writable_dir(path.parent, f"folder of the {what}")
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder, not a file", path)
    return path


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _blocker(folder: Path) -> str | None:
    """Why ``folder`` cannot exist when an ancestor is a regular file (the OS just says
    "Not a directory", naming neither)."""
    for parent in folder.parents:
        try:
            if parent.exists():
                return None if parent.is_dir() else f"{parent} is a file, not a folder"
        except OSError:
            return None
    return None


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename, so a
    crash leaves either the old file or the new one, never a torn one. ``durable=False``
    skips the fsync (for caches, whose entries are checksummed and recomputable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); results are shared, so honour the umask instead.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            # write()/fsync() errors (a full disk) name no file: name the one being written.
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
