"""EfficientNet-B6 (Tan & Le, ICML 2019, arXiv 1905.11946): the ImageNet classifier trained
in TensorFlow (published top-1 84.0% at 528 x 528, 43.0M parameters, 19G MACs).

Re-implemented from the paper and the official TensorFlow code (tensorflow/tpu
``models/official/efficientnet``: ``efficientnet_model.py``, ``efficientnet_builder.py``)
so that it can be timed and counted beside our networks. As in the TensorFlow original:

* "SAME" convolution padding. For stride 1 (odd kernels) it is symmetric, ``k // 2``, and
  set on the convolution; for stride 2 it is computed from the input's H and W in
  ``forward`` and may be asymmetric (the extra row / column goes to the bottom / right),
  so any input size works and a trace at a fixed size exports to ONNX with constant pads.
* BatchNorm with eps 1e-3 (momentum 0.01 in PyTorch's convention, TF's 0.99), swish
  (SiLU) activations, squeeze-excitation on every block with
  ``max(1, int(block_input_channels * 0.25))`` reduced channels and a sigmoid gate.
* Widths rounded by :func:`round_filters` (multiples of 8, never more than 10% below the
  scaled width), repeats by :func:`round_repeats` (ceil), a 1 x 1 head convolution to
  ``round_filters(1280)`` channels, global average pooling, dropout (0.5 for B6) and a
  linear classifier.
* From-scratch initialisation as in the original: convolutions normal(0, sqrt(2 / fan_out))
  with fan_out = k * k * out_channels / groups, the classifier uniform(+-1 / sqrt(classes)),
  biases zero, BatchNorm weight 1 and bias 0; drawn from the global torch RNG.

Deliberate difference: drop-connect (stochastic depth on the residual branches, a
training-only regulariser, rate 0.2) is left out; at inference it is the identity, so
evaluation outputs are unchanged.

Parameter names are those of timm's ``tf_efficientnet_b6`` (``conv_stem``, ``bn1``,
``blocks.S.I.*``, ``conv_head``, ``bn2``, ``classifier``), so its checkpoints load with
``strict=True``. No pretrained weights are used here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EFFICIENTNET_CONFIGS", "EfficientNet", "EfficientNetConfig", "StageArgs", "build", "round_filters",
           "round_repeats"]

_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99
_SE_RATIO = 0.25
_DIVISOR = 8
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class StageArgs:
    """One stage of the B0 baseline (the paper's Table 1): MBConv expansion, kernel, stride of
    the first block, input and output channels, and number of blocks, all before scaling."""

    expand: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    repeats: int


#: The B0 baseline, stages 2-8 of Table 1 (stage 1 is the stem, stage 9 the head).
BASELINE_STAGES: tuple[StageArgs, ...] = (
    StageArgs(1, 3, 1, 32, 16, 1),
    StageArgs(6, 3, 2, 16, 24, 2),
    StageArgs(6, 5, 2, 24, 40, 2),
    StageArgs(6, 3, 2, 40, 80, 3),
    StageArgs(6, 5, 1, 80, 112, 3),
    StageArgs(6, 5, 2, 112, 192, 4),
    StageArgs(6, 3, 1, 192, 320, 1),
)


@dataclass(frozen=True)
class EfficientNetConfig:
    """One compound-scaled variant: width and depth multipliers, the training / evaluation
    resolution, and the dropout before the classifier."""

    width: float
    depth: float
    resolution: int
    dropout: float


#: The official coefficients of B0-B7; only the names in ``_BUILDABLE`` are built.
EFFICIENTNET_CONFIGS: dict[str, EfficientNetConfig] = {
    "efficientnet_b0": EfficientNetConfig(1.0, 1.0, 224, 0.2),
    "efficientnet_b1": EfficientNetConfig(1.0, 1.1, 240, 0.2),
    "efficientnet_b2": EfficientNetConfig(1.1, 1.2, 260, 0.3),
    "efficientnet_b3": EfficientNetConfig(1.2, 1.4, 300, 0.3),
    "efficientnet_b4": EfficientNetConfig(1.4, 1.8, 380, 0.4),
    "efficientnet_b5": EfficientNetConfig(1.6, 2.2, 456, 0.4),
    "efficientnet_b6": EfficientNetConfig(1.8, 2.6, 528, 0.5),
    "efficientnet_b7": EfficientNetConfig(2.0, 3.1, 600, 0.5),
}

_BUILDABLE = ("efficientnet_b6",)


def round_filters(channels: int, width: float, divisor: int = _DIVISOR) -> int:
    """``channels * width`` rounded to the nearest multiple of ``divisor`` (at least
    ``divisor``), one ``divisor`` more if rounding lost over 10%.

    >>> round_filters(32, 1.8), round_filters(16, 1.8), round_filters(1280, 1.8)
    (56, 32, 2304)
    """
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """``ceil(repeats * depth)``.

    >>> [round_repeats(s.repeats, 2.6) for s in BASELINE_STAGES]
    [3, 6, 6, 8, 8, 11, 3]
    """
    return int(math.ceil(depth * repeats))


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class SameConv2d(nn.Conv2d):
    """A bias-free (by default) convolution with TensorFlow "SAME" padding: output size
    ``ceil(input / stride)``. Stride 1 pads ``k // 2`` on every side (the same as "SAME" for
    odd k); stride 2 pads ``max((ceil(i / s) - 1) * s + k - i, 0)`` per axis, the smaller
    half first, computed from the input in ``forward``."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1,
                 bias: bool = False) -> None:
        if kernel % 2 != 1:
            raise ValueError(f"SameConv2d supports odd kernels only, got {kernel}")
        padding = kernel // 2 if stride == 1 else 0
        super().__init__(in_channels, out_channels, kernel, stride, padding, groups=groups, bias=bias)

    @staticmethod
    def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != (1, 1):
            height, width = int(x.shape[-2]), int(x.shape[-1])
            top, bottom = self._same_pad(height, self.kernel_size[0], self.stride[0])
            left, right = self._same_pad(width, self.kernel_size[1], self.stride[1])
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class SqueezeExcite(nn.Module):
    """Global average pool, 1x1 conv (bias) to ``reduced`` channels, swish, 1x1 conv (bias)
    back, sigmoid gate on the input."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, reduced, 1)
        self.act = nn.SiLU()
        self.conv_expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.conv_expand(self.act(self.conv_reduce(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(scale)


class DepthwiseSeparable(nn.Module):
    """The expansion-1 MBConv of the first stage: depthwise conv, BN, swish, SE, 1x1
    projection, BN (no activation), and the identity shortcut when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_dw = SameConv2d(in_channels, in_channels, kernel, stride, groups=in_channels)
        self.bn1 = _batch_norm(in_channels)
        self.act = nn.SiLU()
        self.se = SqueezeExcite(in_channels, max(1, int(in_channels * _SE_RATIO)))
        self.conv_pw = SameConv2d(in_channels, out_channels, 1)
        self.bn2 = _batch_norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv_pw(self.se(self.act(self.bn1(self.conv_dw(x))))))
        return out + x if self.has_skip else out


class InvertedResidual(nn.Module):
    """MBConv: 1x1 expansion, BN, swish, depthwise conv, BN, swish, SE (reduced from the
    block's input width), 1x1 projection, BN (no activation), identity shortcut when shapes
    allow."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_channels * expand
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_pw = SameConv2d(in_channels, mid, 1)
        self.bn1 = _batch_norm(mid)
        self.act1 = nn.SiLU()
        self.conv_dw = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self.bn2 = _batch_norm(mid)
        self.act2 = nn.SiLU()
        self.se = SqueezeExcite(mid, max(1, int(in_channels * _SE_RATIO)))
        self.conv_pwl = SameConv2d(mid, out_channels, 1)
        self.bn3 = _batch_norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv_pw(x)))
        out = self.se(self.act2(self.bn2(self.conv_dw(out))))
        out = self.bn3(self.conv_pwl(out))
        return out + x if self.has_skip else out


class EfficientNet(nn.Module):
    """Stem (3x3 stride-2 conv, BN, swish), seven stages of MBConv blocks, 1x1 head conv,
    BN, swish, global average pool, dropout, linear classifier: (N, 3, H, W) -> (N, classes)."""

    def __init__(self, config: EfficientNetConfig, num_classes: int) -> None:
        super().__init__()
        stem = round_filters(_STEM_CHANNELS, config.width)
        self.conv_stem = SameConv2d(3, stem, 3, stride=2)
        self.bn1 = _batch_norm(stem)
        self.act1 = nn.SiLU()
        stages = []
        channels = stem
        for args in BASELINE_STAGES:
            out = round_filters(args.out_channels, config.width)
            blocks = []
            for index in range(round_repeats(args.repeats, config.depth)):
                stride = args.stride if index == 0 else 1
                if args.expand == 1:
                    blocks.append(DepthwiseSeparable(channels, out, args.kernel, stride))
                else:
                    blocks.append(InvertedResidual(channels, out, args.kernel, stride, args.expand))
                channels = out
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.num_features = round_filters(_HEAD_CHANNELS, config.width)
        self.conv_head = SameConv2d(channels, self.num_features, 1)
        self.bn2 = _batch_norm(self.num_features)
        self.act2 = nn.SiLU()
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(self.num_features, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        return self.act2(self.bn2(self.conv_head(x)))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(x.mean((2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def build(name: str, num_classes: int) -> EfficientNet:
    """EfficientNet variant ``name`` (only ``efficientnet_b6`` for now), randomly initialised.

    >>> model = build("efficientnet_b6", 10).eval()
    >>> model(torch.zeros(1, 3, 33, 47)).shape
    torch.Size([1, 10])
    """
    if name not in _BUILDABLE:
        raise ValueError(f"unknown EfficientNet {name!r}; known: {', '.join(_BUILDABLE)}")
    return EfficientNet(EFFICIENTNET_CONFIGS[name], num_classes)
