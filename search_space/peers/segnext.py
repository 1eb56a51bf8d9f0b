"""SegNeXt (Guo et al., NeurIPS 2022, arXiv 2209.08575): MSCAN encoder + LightHamHead.

Re-implemented from the paper and the official code (Visual-Attention-Network/SegNeXt
``mscan.py``, mmseg ``ham_head.py``, the ``segnext.tiny/small`` configs) so that it can be
timed and trained beside our EfficientViT networks; no pretrained weights are used.

Deliberate differences from the official code, all for deterministic, exportable graphs:

* NMF bases: the official head draws fresh ``torch.rand`` bases on every forward
  (``rand_init=True``). Here they are drawn once, at build time, from a private generator
  with a fixed seed, L2-normalised per basis, and kept as a non-persistent buffer: every
  build and every forward uses the same bases, ONNX export is traceable, and the global
  torch RNG is not consumed.
* Steps: the official head runs 6 multiplicative-update steps in training and 7 in
  evaluation; here 7 in both (one graph, the evaluation cost is what latency measures).
* Gradient: HamNet's one-step gradient (the original Hamburger code runs the iterations
  under ``torch.no_grad``; mmseg's port backpropagates through every step): the iterated
  bases and coefficients are ``detach``-ed, so only the final coefficient update and the
  reconstruction carry gradients. ``detach`` traces and exports as an identity.

As in the official configs: R = 16 bases (``ham_kwargs=dict(MD_R=16)`` for T and S; the
class default is 64), S = 1, softmax temperature inv_t = 1 (NMF2D overrides the 100 given
in the configs), GroupNorm(32) in the head, BatchNorm in the encoder, drop path left out
(0 at inference).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .common import ConvNormAct, EncoderDecoder, init_encoder_weights, resize_to

__all__ = ["NMF2D", "SEGNEXT_CONFIGS", "SegNeXt", "SegNeXtConfig", "build"]

_MLP_RATIOS = (8, 8, 4, 4)
_STRIP_KERNELS = (7, 11, 21)
_LAYER_SCALE_INIT = 1e-2
_EPS = 1e-6


@dataclass(frozen=True)
class SegNeXtConfig:
    """One SegNeXt variant: MSCAN widths and depths, and the head's widths."""

    embed_dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    ham_channels: int = 256
    channels: int = 256
    bases: int = 16


SEGNEXT_CONFIGS: dict[str, SegNeXtConfig] = {
    "segnext_t": SegNeXtConfig((32, 64, 160, 256), (3, 3, 5, 2)),
    "segnext_s": SegNeXtConfig((64, 128, 320, 512), (2, 2, 4, 2)),
}


def _depthwise(dim: int, kernel: tuple[int, int]) -> nn.Conv2d:
    return nn.Conv2d(dim, dim, kernel, padding=(kernel[0] // 2, kernel[1] // 2), groups=dim)


class MSCA(nn.Module):
    """Multi-scale convolutional attention: a 5x5 depthwise conv, three depthwise strip
    branches (1xk then kx1, k = 7, 11, 21) summed with it, a 1x1 conv, then gating of the
    input by the result."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv0 = _depthwise(dim, (5, 5))
        self.strips = nn.ModuleList(
            nn.Sequential(_depthwise(dim, (1, k)), _depthwise(dim, (k, 1))) for k in _STRIP_KERNELS
        )
        self.conv3 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = self.conv0(x)
        total = attn
        for strip in self.strips:
            total = total + strip(attn)
        return self.conv3(total) * x


class SpatialAttention(nn.Module):
    """1x1 conv, GELU, MSCA, 1x1 conv, plus the module's own shortcut."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = MSCA(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x)))) + x


class ConvMlp(nn.Module):
    """1x1 conv, 3x3 depthwise conv, GELU, 1x1 conv."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = _depthwise(hidden, (3, 3))
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class MSCABlock(nn.Module):
    """x + s1 * attention(BN(x)), then x + s2 * mlp(BN(x)); s1, s2 per-channel layer scales."""

    def __init__(self, dim: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = SpatialAttention(dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, dim * mlp_ratio)
        self.layer_scale_1 = nn.Parameter(torch.full((dim, 1, 1), _LAYER_SCALE_INIT))
        self.layer_scale_2 = nn.Parameter(torch.full((dim, 1, 1), _LAYER_SCALE_INIT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale_1 * self.attn(self.norm1(x))
        return x + self.layer_scale_2 * self.mlp(self.norm2(x))


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map (the official stage norm, applied
    there to (B, H*W, C) tokens)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _downsample(in_channels: int, out_channels: int, index: int) -> nn.Sequential:
    """Stage 1: the two-conv stem to stride 4; later stages: conv 3x3 s2 + BN."""
    if index == 0:
        mid = out_channels // 2
        return nn.Sequential(
            nn.Conv2d(in_channels, mid, 3, 2, 1), nn.BatchNorm2d(mid), nn.GELU(),
            nn.Conv2d(mid, out_channels, 3, 2, 1), nn.BatchNorm2d(out_channels),
        )
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 2, 1), nn.BatchNorm2d(out_channels))


class MSCAN(nn.Module):
    """MSCAN encoder: four stages at strides 4, 8, 16, 32; returns all four maps."""

    def __init__(self, embed_dims: tuple[int, ...], depths: tuple[int, ...]) -> None:
        super().__init__()
        ins = (3, *embed_dims[:-1])
        self.stages = nn.ModuleList(
            nn.Sequential(
                _downsample(i, d, k),
                *(MSCABlock(d, _MLP_RATIOS[k]) for _ in range(n)),
                ChannelLayerNorm(d),
            )
            for k, (i, d, n) in enumerate(zip(ins, embed_dims, depths))
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class NMF2D(nn.Module):
    """Non-negative matrix factorisation of a (B, C, H, W) map viewed as C x HW, by
    multiplicative updates from fixed bases; returns the rank-R reconstruction.

    Args:
        channels: C (= D, with one group S = 1).
        rank: R, the number of bases.
        steps: multiplicative-update steps (training and evaluation alike).
        seed: seed of the private generator that draws the bases.
    """

    def __init__(self, channels: int, rank: int = 16, steps: int = 7, seed: int = 0) -> None:
        super().__init__()
        self.steps = steps
        bases = torch.rand(1, channels, rank, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("bases", F.normalize(bases, dim=1), persistent=False)

    @staticmethod
    def _update_coef(x: torch.Tensor, bases: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        # coef (B, N, R) *= (x^T bases) / (coef bases^T bases)
        numerator = torch.bmm(x.transpose(1, 2), bases)
        denominator = torch.bmm(coef, torch.bmm(bases.transpose(1, 2), bases))
        return coef * numerator / (denominator + _EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        x = x.reshape(batch, channels, height * width)
        bases = self.bases.expand(batch, -1, -1)
        coef = torch.softmax(torch.bmm(x.transpose(1, 2), bases), dim=-1)  # inv_t = 1
        for _ in range(self.steps):
            coef = self._update_coef(x, bases, coef)
            # bases (B, D, R) *= (x coef) / (bases coef^T coef)
            numerator = torch.bmm(x, coef)
            denominator = torch.bmm(bases, torch.bmm(coef.transpose(1, 2), coef))
            bases = bases * numerator / (denominator + _EPS)
        bases, coef = bases.detach(), coef.detach()
        coef = self._update_coef(x, bases, coef)
        return torch.bmm(bases, coef.transpose(1, 2)).reshape(batch, channels, height, width)


class Hamburger(nn.Module):
    """1x1 conv (bias) + ReLU, NMF, 1x1 conv + GroupNorm, residual add, ReLU."""

    def __init__(self, channels: int, rank: int) -> None:
        super().__init__()
        self.ham_in = nn.Conv2d(channels, channels, 1)
        self.ham = NMF2D(channels, rank)
        self.ham_out = ConvNormAct(channels, channels, nn.GroupNorm(32, channels), relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enjoy = self.ham_out(self.ham(F.relu(self.ham_in(x))))
        return F.relu(x + enjoy)


class LightHamHead(nn.Module):
    """Stages 2-4 resized to stride 8 and concatenated, squeeze 1x1 (GN, ReLU), Hamburger,
    align 1x1 (GN, ReLU), dropout 0.1, 1x1 classifier; logits at stride 8."""

    def __init__(self, in_dims: tuple[int, ...], config: SegNeXtConfig, num_classes: int) -> None:
        super().__init__()
        ham, channels = config.ham_channels, config.channels
        self.squeeze = ConvNormAct(sum(in_dims), ham, nn.GroupNorm(32, ham))
        self.hamburger = Hamburger(ham, config.bases)
        self.align = ConvNormAct(ham, channels, nn.GroupNorm(32, channels))
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[2:]
        maps = [f if f.shape[2:] == size else resize_to(f, size) for f in features]
        x = self.align(self.hamburger(self.squeeze(torch.cat(maps, dim=1))))
        return self.classifier(self.dropout(x))


class SegNeXt(EncoderDecoder):
    """MSCAN encoder + LightHamHead on stages 2-4; logits at stride 8."""

    first_head_stage = 1

    def __init__(self, config: SegNeXtConfig, num_classes: int) -> None:
        super().__init__()
        self.backbone = MSCAN(config.embed_dims, config.depths)
        init_encoder_weights(self.backbone)
        self.head = LightHamHead(config.embed_dims[1:], config, num_classes)


def build(name: str, num_classes: int) -> SegNeXt:
    """SegNeXt variant ``name`` (a key of :data:`SEGNEXT_CONFIGS`)."""
    return SegNeXt(SEGNEXT_CONFIGS[name], num_classes)
