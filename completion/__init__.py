"""dcgan-completion: semantic face inpainting with a DCGAN (Yeh et al. 2017)."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# The public names load on first use: importing torch takes seconds, and the command-line launcher
# must be able to catch Ctrl-C while it happens.
_EXPORTS = {
    "CompletionError": "errors",
    "ImageError": "errors",
    "MaskError": "errors",
    "ModelFileError": "errors",
    "Model": "bundle",
    "default_model_path": "bundle",
    "load_model": "bundle",
    "ModelConfig": "config",
    "Completer": "complete",
    "CompletionOptions": "complete",
    "detect_faces": "faces",
    "load_pair": "inputs",
    "MaskType": "masks",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # noqa: ANN401 - PEP 562 module attribute
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
