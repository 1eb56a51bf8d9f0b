"""The EfficientViT segmentation networks and the space of networks around them (layer 0),
with their static cost in ``search_space.cost`` (layer 1).

Importing the package is cheap (no torch): specs, the registry, the search space and the
block records are plain data. The names that build modules (``build_model``,
``create_model``, ...) are imported on first use.
"""

from importlib import import_module
from typing import Any

from . import peers, zoo  # noqa: F401  (register the named networks)
from .blocks import BlockKey
from .errors import EvitNasError
from .registry import list_models, model_spec
from .space import SearchSpace
from .spec import ArchSpec, SpecError

#: names that need torch, and the module that has them
_LAZY = {"build_block": "model", "build_model": "model", "build_network": "create", "create_model": "create",
         "load_checkpoint": "create"}

__all__ = [
    "ArchSpec",
    "BlockKey",
    "EvitNasError",
    "SearchSpace",
    "SpecError",
    "build_block",
    "build_model",
    "build_network",
    "create_model",
    "list_models",
    "load_checkpoint",
    "model_spec",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
