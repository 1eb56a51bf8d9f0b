"""HRFormer (Yuan et al., NeurIPS 2021, arXiv 2110.09408) with the OCR head: HRFormer-S / -B + OCR.

Re-implemented from the paper and the official HRNet/HRFormer code so that it can be timed
and trained beside our EfficientViT networks; no pretrained weights are used. Followed:

* backbone: ``seg/lib/models/backbones/hrt/hrt_backbone.py`` (stem, stage 1, transitions,
  modules and fuse layers), ``hrt_config.py`` (``HRT_SMALL`` / ``HRT_BASE``: widths
  32/64/128/256 and 78/156/312/624, heads 1/2/4/8 and 2/4/8/16, modules 1/4/2 in stages
  2-4, 2 blocks per branch, window 7, MLP ratio 4), ``modules/transformer_block.py``,
  ``modules/multihead_isa_pool_attention.py`` + ``multihead_isa_attention.py`` (local
  window attention with relative position bias), ``modules/ffn_block.py`` (``MlpDWBN``),
  ``modules/bottleneck_block.py`` (stage 1);
* head: ``seg/lib/models/nets/hrt.py`` (``HRT_SMALL_OCR_V2`` / ``HRT_BASE_OCR_V2``, the
  models of the published ``run_hrt_{small,base}_ocr_v2_ohem.sh`` Cityscapes and ADE20K
  scripts) and ``seg/lib/models/modules/spatial_ocr_block.py`` (``SpatialGather_Module``,
  ``SpatialOCR_Module``).

Architecture, as in the official code:

* stem: two 3x3 stride-2 convs (3->64->64) with BN + ReLU; stage 1: two ResNet bottlenecks
  (64 -> 256 channels, the first with a 1x1 projection shortcut);
* stages 2-4 add one branch each (strides 8, 16, 32; transitions are 3x3 convs + BN + ReLU,
  stride 2 from the lowest-resolution branch for a new one), and repeat modules of two
  HRFormer blocks per branch followed by HRNet fusion: 1x1 conv + BN + nearest upsampling
  from lower resolutions; (depthwise 3x3 stride-2 conv + BN + 1x1 conv + BN), ReLU between
  repeats, from higher resolutions; a ReLU after each sum;
* HRFormer block: x + attention(LN(x)), then x + FFN(LN(x)), LayerNorm eps 1e-6.
  Attention is multi-head self-attention inside non-overlapping 7x7 windows (separate q,
  k, v and output projections with biases, head_dim ** -0.5 scaling, a learned relative
  position bias of (2*7-1)^2 entries per head). The map is zero-padded to multiples of 7
  (split evenly around the map, the extra row/column at the end) with the padding
  computed from the input shape in ``forward``; padded tokens take part in the attention
  unmasked and are cropped away afterwards, as in the official code. The FFN is 1x1 conv
  (x4) + BN + GELU, 3x3 depthwise conv + BN + GELU, 1x1 conv + BN + GELU (``MlpDWBN``);
* OCR head: the four branches resized (bilinear, align_corners=True) to stride 4 and
  concatenated (480 channels for S, 1170 for B); the soft object regions come from a
  3x3 conv (->512) + BN + ReLU + 1x1 classifier on the concatenation; the pixel features
  from another 3x3 conv (->512) + BN + ReLU; the object region representations are the
  spatial-softmax-weighted sums of the pixel features; the object attention block
  (key/query 256 channels, two 1x1 conv + BN + ReLU for the query and key transforms, one
  for the value and one back up to 512, scaled dot-product softmax over the regions); the
  context and the pixel features concatenated (1024) -> 1x1 conv (512) + BN + ReLU +
  Dropout2d(0.05) -> 1x1 classifier. All head convolutions have biases (openseg's
  default ``nn.Conv2d``), followed by BN where the official code has one.

Deliberate differences from the official code:

* Output: the logits at stride 4 (H/4, W/4); the official model upsamples them (and the
  soft-region logits) to the input size, which is left to the caller as for our other
  networks.
* The soft object region branch (``aux_head`` in ``hrt.py``) is kept: it is not a
  training-only auxiliary head here, OCR reads its predictions at inference. Only its
  separately supervised output (the auxiliary loss and its upsampling) is dropped; the
  model returns the final logits alone.
* Fusion upsampling: nearest resize straight to the target branch's size. The official
  code upsamples by 2^(j-i) (nearest) and then bilinearly resizes to the target size,
  which is the identity for inputs whose sides are multiples of 32 (the only ones
  supported here).
* Left out: drop path (rate 0.2 in training, identity at inference) and the official
  ``keep_imagenet_head`` classification layers (not built for segmentation).
* Initialisation (training from scratch; the official segmentation runs start from
  ImageNet weights): backbone convolutions normal(0, sqrt(2 / fan_out)) (= HRNet's
  kaiming_normal fan_out), linear layers truncated normal std 0.02, LayerNorm and
  BatchNorm unit weight and zero bias, relative position tables truncated normal std 0.02
  (as the official code); in the head PyTorch's default initialisation (as openseg) except
  the two classifiers, normal std 0.01 as our other peers' heads.

Sizes: 13.52M / 13.66M parameters for HRFormer-S + OCR and 56.03M / 56.17M for HRFormer-B
+ OCR with 19 / 150 classes (published: 13.5M and 56.2M). fvcore MACs: S 831.4G at
1024x2048 (19 classes) and 108.9G at 512x512 (150 classes); B 2091.4G and 268.4G. The
published HRFormer-B segmentation rows use larger windows (15 on Cityscapes, 13 on
ADE20K; ``HRT_BASE_WIN_15`` / ``_WIN_13``): with ``window=15`` / ``13`` this module counts
2206.8G and 278.4G (published 2223.8G and 280.0G); both variants keep window 7, the
configuration of ``hrt_config.py``'s ``HRT_SMALL`` / ``HRT_BASE``. Sizes are only
supported as multiples of 32, as for our other networks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .common import EncoderDecoder, init_encoder_weights

__all__ = ["HRFORMER_CONFIGS", "HRFormer", "HRFormerBackbone", "HRFormerConfig", "OCRHead", "WindowAttention", "build"]

_STEM_CHANNELS = 64
_BOTTLENECK_EXPANSION = 4
_LN_EPS = 1e-6


@dataclass(frozen=True)
class HRFormerConfig:
    """One HRFormer variant: branch widths and heads (strides 4, 8, 16, 32), modules per
    stage 2-4, blocks per branch, window size, MLP ratio, and the OCR head's widths."""

    widths: tuple[int, int, int, int]
    heads: tuple[int, int, int, int]
    modules: tuple[int, int, int] = (1, 4, 2)
    blocks: int = 2
    window: int = 7
    mlp_ratio: int = 4
    ocr_channels: int = 512
    ocr_key_channels: int = 256
    ocr_dropout: float = 0.05


HRFORMER_CONFIGS: dict[str, HRFormerConfig] = {
    "hrformer_s": HRFormerConfig((32, 64, 128, 256), (1, 2, 4, 8)),
    "hrformer_b": HRFormerConfig((78, 156, 312, 624), (2, 4, 8, 16)),
}


def _conv_bn(in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1, groups: int = 1,
             relu: bool = False) -> nn.Sequential:
    """Bias-free conv + BN (+ ReLU), the backbone's building brick."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1, 3x3, 1x1 (x4 channels) convs with BN, ReLU after the sum."""

    def __init__(self, in_channels: int, planes: int) -> None:
        super().__init__()
        out_channels = planes * _BOTTLENECK_EXPANSION
        self.conv1 = _conv_bn(in_channels, planes, 1, relu=True)
        self.conv2 = _conv_bn(planes, planes, 3, relu=True)
        self.conv3 = _conv_bn(planes, out_channels, 1)
        self.shortcut = _conv_bn(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


def _relative_position_index(window: int) -> torch.Tensor:
    """(K*K, K*K) index into a ((2K-1)^2)-entry table: (dy + K-1) * (2K-1) + (dx + K-1)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = coords[:, :, None] - coords[:, None, :] + (window - 1)  # 2, K*K, K*K
    return relative[0] * (2 * window - 1) + relative[1]


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping ``window`` x ``window`` windows of a
    channels-last (B, H, W, C) map, with a learned relative position bias per head; the map
    is zero-padded to window multiples (split around it) and cropped back."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.scale = (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", _relative_position_index(window), persistent=False)

    def _bias(self) -> torch.Tensor:
        tokens = self.window * self.window
        bias = self.relative_position_bias[self.relative_position_index.reshape(-1)]
        return bias.reshape(tokens, tokens, self.heads).permute(2, 0, 1)  # heads, K*K, K*K

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, dim = x.shape
        k = self.window
        # padding to window multiples, from the input shape: (k - 1) * n % k == -n % k, written
        # with products, remainders and floor divisions only, which the tracer records and
        # fvcore ignores (no negations or subtractions to count)
        pad_h, pad_w = height * (k - 1) % k, width * (k - 1) % k
        top, left = pad_h // 2, pad_w // 2
        if pad_h or pad_w:
            x = F.pad(x, (0, 0, left, (pad_w + 1) // 2, top, (pad_h + 1) // 2))
        rows, cols = (height + pad_h) // k, (width + pad_w) // k
        windows = x.reshape(batch, rows, k, cols, k, dim).permute(0, 1, 3, 2, 4, 5).reshape(-1, k * k, dim)

        head_dim = dim // self.heads
        q = (self.q(windows) * self.scale).reshape(-1, k * k, self.heads, head_dim).transpose(1, 2)
        key = self.k(windows).reshape(-1, k * k, self.heads, head_dim).transpose(1, 2)
        v = self.v(windows).reshape(-1, k * k, self.heads, head_dim).transpose(1, 2)
        attn = torch.matmul(q, key.transpose(-2, -1)) + self._bias().unsqueeze(0)
        out = torch.matmul(attn.softmax(dim=-1), v).transpose(1, 2).reshape(-1, k * k, dim)
        out = self.proj(out)

        out = out.reshape(batch, rows, cols, k, k, dim).permute(0, 1, 3, 2, 4, 5)
        out = out.reshape(batch, rows * k, cols * k, dim)
        if pad_h or pad_w:
            out = out[:, top:top + height, left:left + width, :]
        return out


class ConvFFN(nn.Module):
    """1x1 conv + BN + GELU, 3x3 depthwise conv + BN + GELU, 1x1 conv + BN + GELU (all convs
    with bias), on a (B, C, H, W) map."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.norm1 = nn.BatchNorm2d(hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.norm2 = nn.BatchNorm2d(hidden)
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.norm3 = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(self.fc1(x)))
        x = F.gelu(self.norm2(self.dwconv(x)))
        return F.gelu(self.norm3(self.fc2(x)))


class HRFormerBlock(nn.Module):
    """x + window attention(LN(x)), then x + conv FFN(LN(x)), on a (B, C, H, W) map."""

    def __init__(self, dim: int, heads: int, window: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.mlp = ConvFFN(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # channels last
        x = x + self.attn(self.norm1(x))
        return x.permute(0, 3, 1, 2) + self.mlp(self.norm2(x).permute(0, 3, 1, 2))


def _fuse_layer(widths: tuple[int, ...], src: int, dst: int) -> nn.Module:
    """The path from branch ``src`` to branch ``dst`` in HRNet's fusion."""
    if src == dst:
        return nn.Identity()
    if src > dst:  # lower resolution: 1x1 conv + BN, upsampled in forward
        return _conv_bn(widths[src], widths[dst], 1)
    steps = []
    for step in range(dst - src):  # higher resolution: (dw 3x3 s2 + BN + 1x1 + BN) per halving
        last = step == dst - src - 1
        out = widths[dst] if last else widths[src]
        steps.append(nn.Sequential(
            _conv_bn(widths[src], widths[src], 3, 2, groups=widths[src]),
            _conv_bn(widths[src], out, 1, relu=not last),
        ))
    return nn.Sequential(*steps)


class HRFormerModule(nn.Module):
    """``blocks`` HRFormer blocks on each branch, then multi-resolution fusion."""

    def __init__(self, config: HRFormerConfig, branches: int) -> None:
        super().__init__()
        widths = config.widths[:branches]
        self.branches = nn.ModuleList(
            nn.Sequential(*(HRFormerBlock(widths[b], config.heads[b], config.window, config.mlp_ratio)
                            for _ in range(config.blocks)))
            for b in range(branches)
        )
        self.fuse = nn.ModuleList(
            nn.ModuleList(_fuse_layer(widths, src, dst) for src in range(branches)) for dst in range(branches)
        ) if branches > 1 else None

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse is None:
            return xs
        out = []
        for dst, paths in enumerate(self.fuse):
            size = xs[dst].shape[2:]
            total = xs[dst]
            for src, path in enumerate(paths):
                if src == dst:
                    continue
                y = path(xs[src])
                if src > dst:
                    y = F.interpolate(y, size=size, mode="nearest")
                total = total + y
            out.append(F.relu(total))
        return out


class HRFormerBackbone(nn.Module):
    """Stem and bottleneck stage 1 at stride 4, then stages 2-4 of HRFormer modules on 2, 3
    and 4 parallel branches; returns the four branches (strides 4, 8, 16, 32)."""

    def __init__(self, config: HRFormerConfig) -> None:
        super().__init__()
        widths = config.widths
        stem = _STEM_CHANNELS
        stage1_out = stem * _BOTTLENECK_EXPANSION
        self.stem = nn.Sequential(_conv_bn(3, stem, 3, 2, relu=True), _conv_bn(stem, stem, 3, 2, relu=True))
        self.layer1 = nn.Sequential(Bottleneck(stem, stem), Bottleneck(stage1_out, stem))
        # transition into stage 2: both branches from the stage-1 map
        self.transition1 = nn.ModuleList([
            _conv_bn(stage1_out, widths[0], 3, relu=True),
            _conv_bn(stage1_out, widths[1], 3, 2, relu=True),
        ])
        # transitions into stages 3 and 4: the new branch from the lowest-resolution one
        self.transitions = nn.ModuleList(
            _conv_bn(widths[b - 1], widths[b], 3, 2, relu=True) for b in (2, 3)
        )
        self.stages = nn.ModuleList(
            nn.Sequential(*(HRFormerModule(config, branches) for _ in range(count)))
            for branches, count in zip((2, 3, 4), config.modules)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.layer1(self.stem(x))
        xs = [t(x) for t in self.transition1]
        xs = self.stages[0](xs)
        for transition, stage in zip(self.transitions, self.stages[1:]):
            xs = stage([*xs, transition(xs[-1])])
        return xs


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int = 1) -> nn.Sequential:
    """openseg's conv (with bias) + BNReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, 1, kernel // 2),
                         nn.BatchNorm2d(out_channels), nn.ReLU())


class ObjectAttention(nn.Module):
    """Pixels (query) attend to the object region representations (keys and values)."""

    def __init__(self, channels: int, key_channels: int) -> None:
        super().__init__()
        self.key_channels = key_channels
        self.f_pixel = nn.Sequential(_conv_bn_relu(channels, key_channels), _conv_bn_relu(key_channels, key_channels))
        self.f_object = nn.Sequential(_conv_bn_relu(channels, key_channels), _conv_bn_relu(key_channels, key_channels))
        self.f_down = _conv_bn_relu(channels, key_channels)
        self.f_up = _conv_bn_relu(key_channels, channels)

    def forward(self, feats: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = feats.shape
        query = self.f_pixel(feats).flatten(2).transpose(1, 2)  # B, HW, key
        key = self.f_object(regions).flatten(2)  # B, key, K
        value = self.f_down(regions).flatten(2).transpose(1, 2)  # B, K, key
        sim = torch.softmax(torch.matmul(query, key) * self.key_channels ** -0.5, dim=-1)
        context = torch.matmul(sim, value).transpose(1, 2).reshape(batch, self.key_channels, height, width)
        return self.f_up(context)


class OCRHead(nn.Module):
    """Concatenate the four branches at stride 4; soft object regions from a 3x3 conv +
    classifier; region representations gathered from the 3x3-conv pixel features; object
    contextual representations fused with the pixel features; 1x1 classifier at stride 4."""

    def __init__(self, in_channels: int, config: HRFormerConfig, num_classes: int) -> None:
        super().__init__()
        channels = config.ocr_channels
        self.soft_regions = nn.Sequential(_conv_bn_relu(in_channels, channels, 3), nn.Conv2d(channels, num_classes, 1))
        self.pixel = _conv_bn_relu(in_channels, channels, 3)
        self.object_attention = ObjectAttention(channels, config.ocr_key_channels)
        self.fuse = _conv_bn_relu(2 * channels, channels)
        self.dropout = nn.Dropout2d(config.ocr_dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        for classifier in (self.soft_regions[1], self.classifier):
            nn.init.normal_(classifier.weight, 0.0, 0.01)
            nn.init.zeros_(classifier.bias)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[2:]
        maps = [f if f.shape[2:] == size else F.interpolate(f, size=size, mode="bilinear", align_corners=True)
                for f in features]
        x = torch.cat(maps, dim=1)
        regions_logits = self.soft_regions(x)
        feats = self.pixel(x)
        # object region representations: softmax over positions, weighted sums of pixel features
        weights = torch.softmax(regions_logits.flatten(2), dim=2)  # B, K, HW
        regions = torch.matmul(weights, feats.flatten(2).transpose(1, 2))  # B, K, C
        regions = regions.transpose(1, 2).unsqueeze(3)  # B, C, K, 1
        context = self.object_attention(feats, regions)
        return self.classifier(self.dropout(self.fuse(torch.cat([context, feats], dim=1))))


class HRFormer(EncoderDecoder):
    """HRFormer backbone + OCR head; logits at stride 4."""

    def __init__(self, config: HRFormerConfig, num_classes: int) -> None:
        super().__init__()
        self.backbone = HRFormerBackbone(config)
        init_encoder_weights(self.backbone)
        for m in self.backbone.modules():
            if isinstance(m, WindowAttention):
                nn.init.trunc_normal_(m.relative_position_bias, std=0.02)
        self.head = OCRHead(sum(config.widths), config, num_classes)


def build(name: str, num_classes: int) -> HRFormer:
    """HRFormer + OCR variant ``name`` (a key of :data:`HRFORMER_CONFIGS`)."""
    return HRFormer(HRFORMER_CONFIGS[name], num_classes)
