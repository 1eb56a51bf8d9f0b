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

This module computes the cells and writes the report's section (opt-in: ``--features`` or
``--full``); the latencies come from the report's shared measurement (``measured.py``): the
table's own input size, when it is one of the sizes, is not timed twice.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from search_space.registry import model_spec

from .page import section_html, table_html

__all__ = ["ERF_THRESHOLDS", "FEATURE_NETWORKS", "FEATURE_RESOLUTIONS", "FEATURE_TIMING", "MULTI_SCALE", "erf_shares",
           "feature_label", "feature_networks", "feature_rows", "features_section", "fit_exponent"]

#: input sizes of the feature table's complexity exponents (the report's default)
FEATURE_RESOLUTIONS = ((256, 512), (512, 1024), (1024, 2048))
#: (warm-up, timed) visits per network and size for the feature table: its exponents need rough latencies only,
#: and HRFormer-S takes seconds per visit at 1024x2048 on one core (rows timed with more visits are reused)
FEATURE_TIMING = (1, 5)

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


def feature_label(name: str) -> str:
    """The label of a feature network's measurement: its Cityscapes configuration, as the
    comparison labels it, so that the two share a measurement at the same size."""
    return f"{name}@cityscapes"


def feature_networks(resolutions: Sequence[tuple[int, int]], known: Sequence[str]
                     ) -> tuple[list[tuple[str, str]], list[tuple[str, Any, tuple[int, int]]]]:
    """((family, network) pairs of :data:`FEATURE_NETWORKS` among ``known``; the (label, spec,
    size) triples to measure)."""
    pairs = [(family, name) for family, name in FEATURE_NETWORKS.items() if name in known]
    return pairs, [(feature_label(name), model_spec(name, "cityscapes"), tuple(size)) for _, name in pairs
                   for size in resolutions]


def feature_rows(measured: dict[tuple[str, str], dict[str, Any]], networks: Sequence[tuple[str, str]],
                 resolutions: Sequence[tuple[int, int]],
                 trained: dict[str, tuple[Any, dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """The feature table: one row per family (``networks``: (family, network) pairs;
    ``measured``: rows by (:func:`feature_label`, "HxW")); the effective receptive field also
    of the briefly trained network where ``trained`` has one (name -> (model, validation
    record)), empty cells otherwise."""
    from search_space.create import create_model

    rows = []
    pixels = [h * w for h, w in resolutions]
    largest = "x".join(map(str, max(resolutions, key=lambda r: r[0] * r[1])))
    smallest = min(resolutions, key=lambda r: r[0] * r[1])
    trained = trained or {}
    for family, name in networks:
        timed = [measured[(feature_label(name), f"{h}x{w}")] for h, w in resolutions]
        torch.manual_seed(0)
        shares = erf_shares(create_model(name), smallest)
        if name in trained:
            model, record = trained[name]
            trained_shares: list[Any] = [round(v, 4) for v in erf_shares(model, smallest)]
            trained_by = f"{record['steps']} steps on {record['dataset']}"
        else:
            trained_shares, trained_by = [""] * len(ERF_THRESHOLDS), ""
        at_largest = measured[(feature_label(name), largest)]
        rows.append({
            "family": family, "network": name,
            "resolutions": " ".join(f"{h}x{w}" for h, w in resolutions),
            "macs_exponent": round(fit_exponent(pixels, [r["macs"] for r in timed]), 3),
            "latency_exponent": round(fit_exponent(pixels, [r["raw_measured_ms"] for r in timed]), 3),
            **{f"erf_share_above_{t:g}": round(v, 4) for t, v in zip(ERF_THRESHOLDS, shares)},
            **{f"trained_erf_share_above_{t:g}": v for t, v in zip(ERF_THRESHOLDS, trained_shares)},
            "trained_by": trained_by,
            "ms_per_gmac": round(at_largest["raw_measured_ms"] / (at_largest["macs"] / 1e9), 3),
            "ms_per_gmac_at": largest,
            "multi_scale": MULTI_SCALE[family],
        })
    return rows


def features_section(rows: list[dict[str, Any]], device: str, threads: int) -> str:
    """The feature table's section: the numbers, then each family's multi-scale design (two
    tables, so that each fits the page)."""
    numbers = tuple(c for c in rows[0] if c not in ("multi_scale", "resolutions"))
    return section_html(
        "features", "The poster's feature table, measured",
        table_html(rows, numbers) + table_html(rows, ("family", "multi_scale"))
        + f"<p class='note'>One network per family (Cityscapes configuration). <b>Exponents</b>: slope of log(cost) on "
        f"log(pixels) over {html.escape(rows[0]['resolutions'])} (1 = linear in pixels); MACs by fvcore, "
        f"latency measured on {html.escape(device)}, {threads} thread(s) (median of at least {FEATURE_TIMING[1]} "
        f"visits after {FEATURE_TIMING[0]} warm-up). <b>ERF</b>: share of input "
        "pixels whose gradient on the central output pixel exceeds 1% (0.01) or 0.01% (0.0001) of the largest, "
        "at the smallest size, for the randomly initialised network and, where <code>evit-nas validate</code> "
        "trained it for this study, the briefly trained one (<i>trained_by</i>: steps and data set; empty: not "
        "trained). <b>ms per G MACs</b>: measured latency over fvcore MACs at the largest size (lower: the device "
        "runs its MACs faster). <b>Multi-scale</b>: the architecture, stated. "
        '<a href="features.csv">features.csv</a></p>')
