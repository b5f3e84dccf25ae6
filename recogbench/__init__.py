"""recogbench: face-verification evaluation under occlusion and inpainting."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("recogbench")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"
