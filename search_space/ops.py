"""EfficientViT layers, with the paper's names and the official parameter names.

The module and attribute names (``conv``, ``norm``, ``depth_conv``, ``point_conv``,
``inverted_conv``, ``qkv``, ``aggreg``, ``proj``, ``main``, ``op_list``, ...) are those of
the official MIT implementation, so that official checkpoints load into networks built
from these layers unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ConvLayer",
    "LinearLayer",
    "UpSampleLayer",
    "IdentityLayer",
    "DSConv",
    "MBConv",
    "LiteMLA",
    "EfficientViTBlock",
    "ResidualBlock",
    "OpSequential",
    "build_act",
    "build_norm",
]

_ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish, "silu": nn.SiLU}


def build_act(name: str | None) -> nn.Module | None:
    """Return the activation called ``name`` (``None`` means no activation).

    Raises:
        ValueError: for an unknown name (the official code silently returned ``None``).
    """
    if name is None:
        return None
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)} or None")
    return _ACTIVATIONS[name]()


def build_norm(name: str | None, num_features: int) -> nn.Module | None:
    """Return the normalisation layer called ``name``: ``"bn2d"`` (BatchNorm2d), ``"ln"``
    (LayerNorm over the last dimension, for the classifier head) or ``None``."""
    if name is None:
        return None
    if name == "ln":
        return nn.LayerNorm(num_features)
    if name != "bn2d":
        raise ValueError(f"unknown normalisation {name!r}; choose 'bn2d', 'ln' or None")
    return nn.BatchNorm2d(num_features)


def _triple(value, n: int) -> tuple:
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(f"expected {n} values, got {len(value)}: {value!r}")
        return tuple(value)
    return (value,) * n


class ConvLayer(nn.Module):
    """Convolution + optional BatchNorm + optional activation, 'same' padding."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        use_bias: bool = False,
        norm: str | None = "bn2d",
        act_func: str | None = "relu",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=use_bias,
        )
        self.norm = build_norm(norm, out_channels)
        self.act = build_act(act_func)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = self.act(x)
        return x


class LinearLayer(nn.Module):
    """Flatten (when given a map), optional dropout, linear, optional norm and activation:
    the layers of the classification head."""

    def __init__(self, in_features: int, out_features: int, use_bias: bool = True, dropout: float = 0.0,
                 norm: str | None = None, act_func: str | None = None) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.linear = nn.Linear(in_features, out_features, bias=use_bias)
        self.norm = build_norm(norm, out_features)
        self.act = build_act(act_func)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() > 2:
            x = torch.flatten(x, start_dim=1)
        if self.dropout is not None:
            x = self.dropout(x)
        x = self.linear(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = self.act(x)
        return x


class UpSampleLayer(nn.Module):
    """Upsampling by an integer factor (bicubic, align_corners=False, as in the official head)."""

    def __init__(self, factor: int = 2, mode: str = "bicubic") -> None:
        super().__init__()
        self.factor = factor
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor == 1:
            return x
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        return F.interpolate(x, scale_factor=self.factor, mode=self.mode, align_corners=False)


class IdentityLayer(nn.Module):
    """The identity, as a module (the residual shortcut)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class DSConv(nn.Module):
    """Depthwise-separable convolution: depthwise kxk, then pointwise 1x1."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        use_bias: bool | Sequence[bool] = False,
        norm: str | None | Sequence[str | None] = "bn2d",
        act_func: Sequence[str | None] = ("hswish", None),
    ) -> None:
        super().__init__()
        use_bias, norm, act_func = _triple(use_bias, 2), _triple(norm, 2), _triple(act_func, 2)
        self.depth_conv = ConvLayer(
            in_channels, in_channels, kernel_size, stride, groups=in_channels,
            use_bias=use_bias[0], norm=norm[0], act_func=act_func[0],
        )
        self.point_conv = ConvLayer(
            in_channels, out_channels, 1, use_bias=use_bias[1], norm=norm[1], act_func=act_func[1]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1x1 expand, depthwise kxk, 1x1 project."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        expand_ratio: float = 4,
        use_bias: bool | Sequence[bool] = False,
        norm: str | None | Sequence[str | None] = "bn2d",
        act_func: Sequence[str | None] = ("hswish", "hswish", None),
    ) -> None:
        super().__init__()
        use_bias, norm, act_func = _triple(use_bias, 3), _triple(norm, 3), _triple(act_func, 3)
        mid_channels = round(in_channels * expand_ratio)
        self.inverted_conv = ConvLayer(
            in_channels, mid_channels, 1, use_bias=use_bias[0], norm=norm[0], act_func=act_func[0]
        )
        self.depth_conv = ConvLayer(
            mid_channels, mid_channels, kernel_size, stride, groups=mid_channels,
            use_bias=use_bias[1], norm=norm[1], act_func=act_func[1],
        )
        self.point_conv = ConvLayer(
            mid_channels, out_channels, 1, use_bias=use_bias[2], norm=norm[2], act_func=act_func[2]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(self.inverted_conv(x)))


class LiteMLA(nn.Module):
    """Lightweight multi-scale linear attention (ReLU linear attention + multi-scale tokens).

    ``heads = in_channels // dim``. For each kernel size ``s`` in ``scales``, the q/k/v
    tokens are aggregated by a depthwise ``s x s`` convolution followed by a grouped
    pointwise convolution (one group per head and per q/k/v); each scale adds
    ``heads`` more attention heads. ``scales=()`` is single-scale attention.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dim: int = 8,
        scales: Sequence[int] = (5,),
        norm: str | None = "bn2d",
        eps: float = 1.0e-15,
    ) -> None:
        super().__init__()
        heads = in_channels // dim
        if heads < 1:
            raise ValueError(f"LiteMLA needs in_channels >= dim, got {in_channels} < {dim}")
        total_dim = heads * dim
        self.dim = dim
        self.eps = eps
        self.qkv = ConvLayer(in_channels, 3 * total_dim, 1, norm=None, act_func=None)
        self.aggreg = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(3 * total_dim, 3 * total_dim, s, padding=s // 2, groups=3 * total_dim, bias=False),
                nn.Conv2d(3 * total_dim, 3 * total_dim, 1, groups=3 * heads, bias=False),
            )
            for s in scales
        )
        self.kernel_func = nn.ReLU()
        self.proj = ConvLayer(total_dim * (1 + len(scales)), out_channels, 1, norm=norm, act_func=None)

    def _split(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, _, h, w = qkv.shape
        qkv = torch.reshape(qkv, (b, -1, 3 * self.dim, h * w))
        q = self.kernel_func(qkv[:, :, 0 : self.dim])
        k = self.kernel_func(qkv[:, :, self.dim : 2 * self.dim])
        return q, k, qkv[:, :, 2 * self.dim :]

    def relu_linear_att(self, qkv: torch.Tensor) -> torch.Tensor:
        """Linear attention, O(tokens): (v k^T) q, normalised by the ones row padded onto v."""
        b, _, h, w = qkv.shape
        q, k, v = self._split(qkv)
        v = F.pad(v, (0, 0, 0, 1), mode="constant", value=1.0)
        out = torch.matmul(torch.matmul(v, k.transpose(-1, -2)), q)
        out = out[:, :, :-1] / (out[:, :, -1:] + self.eps)
        return torch.reshape(out, (b, -1, h, w))

    def relu_quadratic_att(self, qkv: torch.Tensor) -> torch.Tensor:
        """The same attention computed as an explicit map (cheaper when tokens <= dim)."""
        b, _, h, w = qkv.shape
        q, k, v = self._split(qkv)
        att = torch.matmul(k.transpose(-1, -2), q)
        att = att / (torch.sum(att, dim=2, keepdim=True) + self.eps)
        return torch.reshape(torch.matmul(v, att), (b, -1, h, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x)
        qkv = torch.cat([qkv, *(op(qkv) for op in self.aggreg)], dim=1)
        # The attention is computed in float32 even under mixed precision (as officially).
        if qkv.dtype in (torch.float16, torch.bfloat16):
            qkv = qkv.float()
        h, w = qkv.shape[-2:]
        if h * w > self.dim:
            out = self.relu_linear_att(qkv)
        else:
            out = self.relu_quadratic_att(qkv)
        return self.proj(out)


class ResidualBlock(nn.Module):
    """``main(x) + shortcut(x)``; ``main(x)`` alone when there is no shortcut."""

    def __init__(self, main: nn.Module, shortcut: nn.Module | None) -> None:
        super().__init__()
        self.main = main
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut is None:
            return self.main(x)
        return self.main(x) + self.shortcut(x)


class EfficientViTBlock(nn.Module):
    """A context module (residual LiteMLA) followed by a local module (residual MBConv).

    ``context_module`` may be ``None``: the block is then MBConv-only (attention placement
    is a search dimension). Both parts are built by :func:`search_space.blocks.build_block`.
    """

    def __init__(self, context_module: nn.Module | None, local_module: nn.Module) -> None:
        super().__init__()
        self.context_module = context_module
        self.local_module = local_module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.context_module is not None:
            x = self.context_module(x)
        return self.local_module(x)


class OpSequential(nn.Module):
    """Run modules in order (``op_list``: the official container name)."""

    def __init__(self, op_list: Sequence[nn.Module]) -> None:
        super().__init__()
        self.op_list = nn.ModuleList(op_list)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.op_list:
            x = op(x)
        return x
