"""The EfficientViT segmentation networks and the space of networks around them."""

from .blocks import BlockKey, build_block
from .model import build_model
from .space import SearchSpace
from .spec import ArchSpec, SpecError
from .zoo import create_model, list_models, load_checkpoint

__all__ = [
    "ArchSpec",
    "BlockKey",
    "SearchSpace",
    "SpecError",
    "build_block",
    "build_model",
    "create_model",
    "list_models",
    "load_checkpoint",
]
