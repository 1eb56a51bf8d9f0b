"""Small pieces shared by the SegFormer and SegNeXt re-implementations."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvNormAct", "EncoderDecoder", "init_encoder_weights", "resize_to"]


class ConvNormAct(nn.Sequential):
    """mmcv's ``ConvModule`` as the peers' heads use it: a bias-free convolution (the norm
    carries the bias), a normalisation layer and an optional ReLU."""

    def __init__(self, in_channels: int, out_channels: int, norm: nn.Module, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.norm = norm
        self.act = nn.ReLU() if relu else nn.Identity()


class EncoderDecoder(nn.Module):
    """A peer network: ``backbone`` returns its four stage outputs (strides 4, 8, 16, 32),
    ``head`` reads the stages from ``first_head_stage`` on; the same ``forward_features`` /
    ``forward_head`` split as EfficientViT's."""

    first_head_stage = 0

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.backbone(x)

    def forward_head(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.head(features[self.first_head_stage:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def resize_to(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize to ``size`` (H, W), align_corners=False, as both decoders do."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def init_encoder_weights(module: nn.Module) -> None:
    """The MiT / MSCAN training-from-scratch initialisation: truncated normal (std 0.02)
    for linear layers, unit LayerNorm, and normal(0, sqrt(2 / fan_out)) for convolutions,
    all biases zero."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
