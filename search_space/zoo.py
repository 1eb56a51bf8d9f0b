"""The official EfficientViT B0-B3 segmentation networks, registered by name.

Each entry is a tiny function ``(dataset) -> ArchSpec`` (plain data, no torch);
``create_model`` builds it, and official checkpoints load into it with ``strict=True``.
"""

from __future__ import annotations

from .registry import EFFICIENTVIT, register_model
from .spec import DATASETS, ArchSpec

__all__ = ["efficientvit_seg_b0", "efficientvit_seg_b1", "efficientvit_seg_b2", "efficientvit_seg_b3"]


def _b_series(widths, depths, head_dim: int, head_depth: int, dataset: str) -> ArchSpec:
    info = DATASETS[dataset]
    return ArchSpec(
        widths=tuple(widths),
        depths=tuple(depths),
        expand_ratios=(4, 4, 4, 4),
        head_dim=head_dim,
        scales=(5,),
        attention=((True,) * depths[3], (True,) * depths[4]),
        head_width=widths[2],
        head_depth=head_depth,
        head_expand_ratio=4,
        head_final_expand=info.head_final_expand,
        num_classes=info.num_classes,
    )


# The official release defines B0 for Cityscapes only.
@register_model(family=EFFICIENTVIT, datasets=("cityscapes",), params={"cityscapes": 706_691})
def efficientvit_seg_b0(dataset: str) -> ArchSpec:
    return _b_series([8, 16, 32, 64, 128], [1, 2, 2, 2, 2], 16, 1, dataset)


@register_model(family=EFFICIENTVIT, datasets=("cityscapes", "ade20k"),
                params={"cityscapes": 4_803_443, "ade20k": 4_791_414})
def efficientvit_seg_b1(dataset: str) -> ArchSpec:
    return _b_series([16, 32, 64, 128, 256], [1, 2, 3, 3, 4], 16, 3, dataset)


@register_model(family=EFFICIENTVIT, datasets=("cityscapes", "ade20k"),
                params={"cityscapes": 15_323_779, "ade20k": 15_293_382})
def efficientvit_seg_b2(dataset: str) -> ArchSpec:
    return _b_series([24, 48, 96, 192, 384], [1, 3, 4, 4, 6], 32, 3, dataset)


@register_model(family=EFFICIENTVIT, datasets=("cityscapes", "ade20k"),
                params={"cityscapes": 39_603_155, "ade20k": 39_546_198})
def efficientvit_seg_b3(dataset: str) -> ArchSpec:
    return _b_series([32, 64, 128, 256, 512], [1, 4, 6, 6, 9], 32, 3, dataset)
