"""The EfficientViT poster's feature table (global receptive field, multi-scale learning,
linear computational complexity, hardware efficiency), with a number from this project in
every cell instead of a tick.

- **Complexity exponent**: ``k`` in cost ~ (pixels)^k, the least-squares slope of
  log(cost) on log(pixels) over several input sizes, for fvcore MACs and for measured latency.
  1 is linear in the number of pixels; softmax attention over all tokens tends to 2.
- **Effective receptive field** (:func:`erf_shares`): the share of input pixels whose
  gradient on the central output pixel's logits is non-negligible, above 1% and above
  0.01% of the largest (``ERF_THRESHOLDS``), for a randomly initialised network in
  evaluation mode. A global path (attention, matrix decomposition) reaches every pixel, but
  how much weight far pixels get differs: the two thresholds show where the gradient
  concentrates. The report adds the same shares for a briefly trained network where
  ``evit-nas validate`` trained one for the study (``report.trained_networks``).
- **Hardware efficiency**: measured milliseconds per G MACs on the device (lower is better).
- **Multi-scale learning**: an architectural fact (:data:`MULTI_SCALE`), stated, not measured.

This module computes; ``report.py`` measures the latencies and writes the table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["ERF_THRESHOLDS", "FEATURE_NETWORKS", "MULTI_SCALE", "erf_shares", "fit_exponent"]

#: a gradient counts as non-negligible above these shares of the largest one
ERF_THRESHOLDS = (1e-2, 1e-4)

#: one network per family of the poster's table (the smallest of each)
FEATURE_NETWORKS = {
    "SegFormer": "segformer_b0",
    "HRFormer": "hrformer_s",
    "SegNeXt": "segnext_t",
    "EfficientViT": "efficientvit_seg_b0",
}

#: how each family learns at several scales (the architecture, from the papers)
MULTI_SCALE = {
    "SegFormer": "hierarchical encoder (strides 4-32); the MLP decoder fuses all four stages",
    "HRFormer": "parallel streams at strides 4, 8, 16, 32 with repeated fusion between them",
    "SegNeXt": "multi-scale strip convolutions (7, 11, 21) in every attention block; head fuses stages 2-4",
    "EfficientViT": "multi-scale aggregation (5x5 depthwise on q, k, v) inside every attention block; head fuses stages 2-4",
}


def fit_exponent(pixels: Sequence[float], costs: Sequence[float]) -> float:
    """The least-squares slope of log(cost) on log(pixels).

    >>> round(fit_exponent([1, 4, 16], [3, 12, 48]), 6)
    1.0
    >>> round(fit_exponent([1, 4, 16], [1, 16, 256]), 6)
    2.0
    """
    if len(pixels) != len(costs) or len(pixels) < 2:
        raise ValueError(f"need at least 2 (pixels, cost) pairs, got {len(pixels)} and {len(costs)}")
    xs, ys = [math.log(p) for p in pixels], [math.log(c) for c in costs]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("the pixel counts must differ")
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def erf_shares(model: torch.nn.Module, resolution: tuple[int, int], seed: int = 0,
               thresholds: Sequence[float] = ERF_THRESHOLDS) -> list[float]:
    """Shares of input pixels (0-1) with a gradient above each of ``thresholds`` x the
    largest one, for the sum of the logits at the central output pixel, on a random image.

    The network is put in evaluation mode (BatchNorm uses its running statistics). Logits
    at any output stride are upsampled (bilinear) to the input size first, so the central
    pixel is the same point of the image for every network.
    """
    generator = torch.Generator().manual_seed(seed)
    height, width = resolution
    x = torch.randn(1, 3, height, width, generator=generator, requires_grad=True)
    model.eval()
    logits = model(x)
    if logits.dim() != 4:
        raise ValueError(f"expected a segmentation network (N, C, H, W logits), got shape {tuple(logits.shape)}")
    if logits.shape[-2:] != (height, width):
        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
    logits[0, :, height // 2, width // 2].sum().backward()
    grad = x.grad.abs().sum(dim=1)[0]  # per pixel, over RGB
    peak = float(grad.max())
    return [float((grad > t * peak).float().mean()) if peak > 0 else 0.0 for t in thresholds]
