"""Loading model weights safely: safetensors, or torch files read with ``weights_only=True``.

A pickled checkpoint that would run code is refused; a checkpoint of another architecture
gets an error naming the missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file."""


def load_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, metadata) from a ``.safetensors`` file or a weights-only torch file.

    Torch files may hold a bare state dict or ``{"state_dict"|"model": ..., "meta": {...}}``;
    safetensors metadata values that are JSON are decoded.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
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
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch's own message suggests retrying with weights_only=False: never do that with
        # downloaded files, so say what is wrong and what to do instead.
        raise CheckpointError(
            f"{path}: refused: not a weights-only checkpoint (it is not a torch file, or it holds "
            f"pickled objects other than tensors, which could run code; {type(exc).__name__}). "
            "Load it once in a trusted environment and save its state dict as .safetensors."
        ) from exc
    meta = {}
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "generator"):
            if isinstance(obj.get(key), dict):
                meta = obj.get("meta", {}) if isinstance(obj.get("meta"), dict) else {}
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors, got {type(obj).__name__}")
    return obj, meta


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


def save_state(path: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> None:
    """Write a safetensors checkpoint atomically; ``meta`` values are stored as JSON."""
    from safetensors.torch import save

    from recogbench.fileio import atomic_write_bytes

    data = save({k: v.detach().contiguous().cpu() for k, v in state.items()},
                metadata={k: json.dumps(v) for k, v in (meta or {}).items()})
    atomic_write_bytes(Path(path), data)
