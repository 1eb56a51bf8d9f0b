"""EfficientViT B0-B3 ImageNet classifiers (``efficientvit_cls_b0``..``b3``): the
segmentation networks' backbones with the official classification head.

The backbone is that of ``efficientvit_seg_bN`` (the same ArchSpec: widths, depths, head
dimension, multi-scale kernel 5), built without its segmentation head; the head is the
official ``ClsHead`` with the widths of the official ``efficientvit_cls_bN`` constructors.
Parameter names are the official ones (``backbone.*``, ``head.op_list.{0,2,3}.*``), so the
official ImageNet checkpoints load with ``strict=True``. Dropout before the last linear
layer is 0 here: it only acts in training, and the official constructors default to 0.
"""

from __future__ import annotations

from ..model import EfficientViTCls, build_classifier
from ..registry import model_spec

__all__ = ["HEAD_WIDTHS", "build"]

#: classifier -> (widths of the head's 1x1 conv and hidden linear layer), as officially released
HEAD_WIDTHS: dict[str, tuple[int, int]] = {
    "efficientvit_cls_b0": (1024, 1280),
    "efficientvit_cls_b1": (1536, 1600),
    "efficientvit_cls_b2": (2304, 2560),
    "efficientvit_cls_b3": (2304, 2560),
}


def build(name: str, num_classes: int) -> EfficientViTCls:
    """Classifier ``name`` (a key of :data:`HEAD_WIDTHS`) with ``num_classes`` outputs."""
    if name not in HEAD_WIDTHS:
        raise ValueError(f"unknown EfficientViT classifier {name!r}; choose one of {sorted(HEAD_WIDTHS)}")
    backbone = model_spec(name.replace("_cls_", "_seg_"), "cityscapes")  # the backbone part of the B-series spec
    return build_classifier(backbone, HEAD_WIDTHS[name], num_classes)
