"""build_block and build_model: BlockKey -> module, ArchSpec -> EfficientViT segmentation
network (backbone + head), the one constructor of blocks serving both; and the
classification network on the same backbone (:class:`EfficientViTCls`, the official ImageNet
head).

The module tree and parameter names are those of the official implementation
(``backbone.input_stem``, ``backbone.stages``, ``head.input_ops``, ``head.middle``,
``head.output_ops``; ``head.op_list`` for the classifier), so official checkpoints load with
``strict=True``.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from .blocks import ACT, HEAD_INPUTS, BlockKey, Slot, layout
from .ops import (ConvLayer, DSConv, EfficientViTBlock, IdentityLayer, LinearLayer, LiteMLA, MBConv, OpSequential,
                  ResidualBlock, UpSampleLayer)
from .spec import ATTENTION_STAGES, STAGE_NAMES, ArchSpec

__all__ = ["EfficientViTBackbone", "SegHead", "EfficientViTSeg", "ClsHead", "EfficientViTCls", "build_block", "build_model",
           "build_backbone", "build_classifier"]


def build_block(key: BlockKey) -> nn.Module:
    """Build the module of one block (fresh weights). Its input is (N, in_channels, H, W)."""
    c_in, c_out = key.in_channels, key.out_channels
    if key.kind == "stem_conv":
        return ConvLayer(c_in, c_out, key.kernel_size, key.stride, norm="bn2d", act_func=ACT)
    if key.kind == "dsconv":
        block = DSConv(c_in, c_out, key.kernel_size, key.stride, norm="bn2d", act_func=(ACT, None))
        return ResidualBlock(block, IdentityLayer() if key.residual else None)
    if key.kind == "mbconv":
        block = MBConv(
            c_in,
            c_out,
            key.kernel_size,
            key.stride,
            expand_ratio=key.expand_ratio,
            use_bias=(True, True, False) if key.fewer_norm else False,
            norm=(None, None, "bn2d") if key.fewer_norm else "bn2d",
            act_func=(ACT, ACT, None),
        )
        return ResidualBlock(block, IdentityLayer() if key.residual else None)
    if key.kind == "litemla":
        return ResidualBlock(LiteMLA(c_in, c_out, dim=key.head_dim, scales=key.scales, norm="bn2d"), IdentityLayer())
    if key.kind == "seg_input":
        conv = ConvLayer(c_in, c_out, 1, norm="bn2d", act_func=None)
        return conv if key.upsample == 1 else OpSequential([conv, UpSampleLayer(factor=key.upsample)])
    # seg_output
    ops: list[nn.Module] = []
    width = c_in
    if key.mid_channels:
        ops.append(ConvLayer(c_in, key.mid_channels, 1, norm="bn2d", act_func=ACT))
        width = key.mid_channels
    ops.append(ConvLayer(width, c_out, 1, use_bias=True, norm=None, act_func=None))
    return OpSequential(ops)


class EfficientViTBackbone(nn.Module):
    """Stem and four stages; ``forward`` returns the named stage outputs."""

    def __init__(self, input_stem: OpSequential, stages: list[OpSequential]) -> None:
        super().__init__()
        self.input_stem = input_stem
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = {"input": x}
        features["stage0"] = x = self.input_stem(x)
        for i, stage in enumerate(self.stages, 1):
            features[f"stage{i}"] = x = stage(x)
        features["stage_final"] = x
        return features


class SegHead(nn.Module):
    """Fuse stages 4, 3, 2 at stride 8 (sum), refine with MBConvs, classify."""

    def __init__(self, input_ops: list[nn.Module], middle: OpSequential, output_op: nn.Module) -> None:
        super().__init__()
        self.input_keys = [f"stage{i}" for i in HEAD_INPUTS]
        self.input_ops = nn.ModuleList(input_ops)
        self.middle = middle
        self.output_ops = nn.ModuleList([output_op])

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        fused = None
        for key, op in zip(self.input_keys, self.input_ops):
            fused = op(features[key]) if fused is None else fused + op(features[key])
        return self.output_ops[0](self.middle(fused))


class _BackboneHead(nn.Module):
    """A backbone (returns the named stage outputs) and a head reading them."""

    def __init__(self, backbone: EfficientViTBackbone, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.backbone(x)

    def forward_head(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class EfficientViTSeg(_BackboneHead):
    """An EfficientViT segmentation network: logits at 1/8 of the input size.

    Attributes:
        spec: the ArchSpec it was built from.
    """

    def __init__(self, backbone: EfficientViTBackbone, head: SegHead, spec: ArchSpec) -> None:
        super().__init__(backbone, head)
        self.spec = spec


def _stage_modules(spec: ArchSpec, head: bool = True) -> dict[str, list[tuple[Slot, nn.Module]]]:
    by_stage: dict[str, list[tuple[Slot, nn.Module]]] = defaultdict(list)
    for slot in layout(spec):
        if head or slot.stage != "head":
            by_stage[slot.stage].append((slot, build_block(slot.key)))
    return by_stage


def _backbone(by_stage: dict[str, list[tuple[Slot, nn.Module]]]) -> EfficientViTBackbone:
    stem = OpSequential([m for _, m in by_stage["stem"]])
    stages = []
    for i in range(1, 5):
        entries = by_stage[STAGE_NAMES[i]]
        if i not in ATTENTION_STAGES:
            stages.append(OpSequential([m for _, m in entries]))
            continue
        ops: list[nn.Module] = [entries[0][1]]  # the stride-2 MBConv
        context = None
        for slot, module in entries[1:]:
            if slot.role == "context":
                context = module
            else:
                ops.append(EfficientViTBlock(context, module))
                context = None
        stages.append(OpSequential(ops))
    return EfficientViTBackbone(stem, stages)


def build_backbone(spec: ArchSpec) -> EfficientViTBackbone:
    """The backbone (stem and stages 1-4) of ``spec``, without its segmentation head."""
    return _backbone(_stage_modules(spec, head=False))


def build_model(spec: ArchSpec) -> EfficientViTSeg:
    """Build the network described by ``spec`` (freshly initialised weights).

    Every leaf block comes from :func:`build_block`, so the network is
    exactly the blocks that ``SearchSpace.blocks(spec, resolution)`` lists.
    """
    by_stage = _stage_modules(spec)
    head_parts: dict[str, list[nn.Module]] = defaultdict(list)
    for slot, module in by_stage["head"]:
        head_parts[slot.role].append(module)
    head = SegHead(head_parts["input"], OpSequential(head_parts["middle"]), head_parts["output"][0])
    return EfficientViTSeg(_backbone(by_stage), head, spec)


class ClsHead(OpSequential):
    """The official ImageNet head: 1x1 conv to ``widths[0]`` (BN, Hardswish), global average
    pool, linear to ``widths[1]`` (LayerNorm, Hardswish), linear to the classes (with bias,
    after optional dropout). Reads the backbone's last stage."""

    def __init__(self, in_channels: int, widths: tuple[int, int], num_classes: int, dropout: float = 0.0) -> None:
        super().__init__([
            ConvLayer(in_channels, widths[0], 1, norm="bn2d", act_func=ACT),
            nn.AdaptiveAvgPool2d(1),
            LinearLayer(widths[0], widths[1], use_bias=False, norm="ln", act_func=ACT),
            LinearLayer(widths[1], num_classes, use_bias=True, dropout=dropout),
        ])

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        return super().forward(features["stage_final"])


class EfficientViTCls(_BackboneHead):
    """An EfficientViT classification network: (N, 3, H, W) -> (N, classes) logits."""


def build_classifier(spec: ArchSpec, head_widths: tuple[int, int], num_classes: int = 1000,
                     dropout: float = 0.0) -> EfficientViTCls:
    """The classification network on ``spec``'s backbone (its segmentation head is not built)."""
    return EfficientViTCls(build_backbone(spec), ClsHead(spec.widths[-1], head_widths, num_classes, dropout))
