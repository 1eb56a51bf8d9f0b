"""SegFormer (Xie et al., NeurIPS 2021, arXiv 2105.15203): MiT encoder + all-MLP decoder.

Re-implemented from the paper and the official NVlabs/SegFormer code (``mix_transformer.py``,
``segformer_head.py``) so that it can be timed and trained beside our EfficientViT
networks; no pretrained weights are used. Shapes follow the official code: tokens are
(B, N, C), linear layers act on tokens, LayerNorm eps is 1e-6 in the blocks and the stage
norms (1e-5 in the patch embeddings and the spatial reduction), MLP ratio 4 in every stage
(the official code; the paper's appendix lists 8, 8, 4, 4).

Left out: drop path and attention/projection dropout (all 0 at inference), and the
decode head's unused ``conv_seg`` layer of mmseg's BaseDecodeHead (the official head
predicts with ``linear_pred``; ``conv_seg`` never runs but holds 128 x classes weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .common import ConvNormAct, EncoderDecoder, init_encoder_weights, resize_to

__all__ = ["SEGFORMER_CONFIGS", "SegFormer", "SegFormerConfig", "build"]

_HEADS = (1, 2, 5, 8)
_SR_RATIOS = (8, 4, 2, 1)
_MLP_RATIO = 4
_LN_EPS = 1e-6


@dataclass(frozen=True)
class SegFormerConfig:
    """One SegFormer variant: MiT widths and depths, and the decoder's embedding width."""

    embed_dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    decoder_dim: int


SEGFORMER_CONFIGS: dict[str, SegFormerConfig] = {
    "segformer_b0": SegFormerConfig((32, 64, 160, 256), (2, 2, 2, 2), 256),
    "segformer_b1": SegFormerConfig((64, 128, 320, 512), (2, 2, 2, 2), 256),
    "segformer_b2": SegFormerConfig((64, 128, 320, 512), (3, 4, 6, 3), 768),
    "segformer_b3": SegFormerConfig((64, 128, 320, 512), (3, 4, 18, 3), 768),
}


def _to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    return x.flatten(2).transpose(1, 2)


def _to_map(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W)."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], height, width)


class OverlapPatchEmbed(nn.Module):
    """Strided convolution with overlapping windows (k 7 s 4 or k 3 s 2), then LayerNorm."""

    def __init__(self, in_channels: int, dim: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel, stride, kernel // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        height, width = x.shape[2], x.shape[3]
        return self.norm(_to_tokens(x)), height, width


class EfficientSelfAttention(nn.Module):
    """Multi-head self-attention whose keys and values come from a map shrunk ``sr`` times
    per side by a strided convolution (kernel = stride = sr) and LayerNorm."""

    def __init__(self, dim: int, heads: int, sr: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.sr: nn.Module | None = nn.Conv2d(dim, dim, sr, sr) if sr > 1 else None
        self.norm: nn.Module | None = nn.LayerNorm(dim) if sr > 1 else None

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        batch, tokens, dim = x.shape
        head_dim = dim // self.heads
        q = self.q(x).reshape(batch, tokens, self.heads, head_dim).transpose(1, 2)
        context = x
        if self.sr is not None and self.norm is not None:
            context = self.norm(_to_tokens(self.sr(_to_map(x, height, width))))
        kv = self.kv(context).reshape(batch, -1, 2, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class MixFFN(nn.Module):
    """Linear, 3x3 depthwise convolution (the positional cue), GELU, linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = _to_tokens(self.dwconv(_to_map(self.fc1(x), height, width)))
        return self.fc2(self.act(x))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attention(LN(x)), then x + Mix-FFN(LN(x))."""

    def __init__(self, dim: int, heads: int, sr: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.attn = EfficientSelfAttention(dim, heads, sr)
        self.norm2 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.mlp = MixFFN(dim, dim * _MLP_RATIO)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), height, width)
        return x + self.mlp(self.norm2(x), height, width)


class MiTStage(nn.Module):
    """Patch embedding, ``depth`` transformer blocks and a closing LayerNorm."""

    def __init__(self, in_channels: int, dim: int, depth: int, index: int) -> None:
        super().__init__()
        kernel, stride = (7, 4) if index == 0 else (3, 2)
        self.patch_embed = OverlapPatchEmbed(in_channels, dim, kernel, stride)
        self.blocks = nn.ModuleList(TransformerBlock(dim, _HEADS[index], _SR_RATIOS[index]) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=_LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, height, width = self.patch_embed(x)
        for block in self.blocks:
            x = block(x, height, width)
        return _to_map(self.norm(x), height, width)


class MixVisionTransformer(nn.Module):
    """MiT encoder: four stages at strides 4, 8, 16, 32; returns all four maps."""

    def __init__(self, embed_dims: tuple[int, ...], depths: tuple[int, ...]) -> None:
        super().__init__()
        ins = (3, *embed_dims[:-1])
        self.stages = nn.ModuleList(MiTStage(i, d, n, k) for k, (i, d, n) in enumerate(zip(ins, embed_dims, depths)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class AllMLPHead(nn.Module):
    """Per-stage linear to ``dim``, bilinear upsampling to stride 4, concatenation (deepest
    first, as the official head), 1x1 fuse conv + BN + ReLU, dropout 0.1, 1x1 classifier."""

    def __init__(self, in_dims: tuple[int, ...], dim: int, num_classes: int) -> None:
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(c, dim) for c in in_dims)
        self.fuse = ConvNormAct(len(in_dims) * dim, dim, nn.BatchNorm2d(dim))
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(dim, num_classes, 1)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[2:]
        maps = []
        for feature, linear in zip(features, self.linears):
            height, width = feature.shape[2], feature.shape[3]
            mapped = _to_map(linear(_to_tokens(feature)), height, width)
            maps.append(mapped if mapped.shape[2:] == size else resize_to(mapped, size))
        x = self.fuse(torch.cat(maps[::-1], dim=1))
        return self.classifier(self.dropout(x))


class SegFormer(EncoderDecoder):
    """MiT encoder + all-MLP decoder; logits at stride 4."""

    def __init__(self, config: SegFormerConfig, num_classes: int) -> None:
        super().__init__()
        self.backbone = MixVisionTransformer(config.embed_dims, config.depths)
        init_encoder_weights(self.backbone)
        self.head = AllMLPHead(config.embed_dims, config.decoder_dim, num_classes)


def build(name: str, num_classes: int) -> SegFormer:
    """SegFormer variant ``name`` (a key of :data:`SEGFORMER_CONFIGS`)."""
    return SegFormer(SEGFORMER_CONFIGS[name], num_classes)
