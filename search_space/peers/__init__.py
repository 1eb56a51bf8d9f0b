"""Peer segmentation networks (SegFormer, SegNeXt) re-implemented for measurement beside
EfficientViT, and the published reference numbers of all three families.

``build_peer(name, num_classes)`` returns a randomly initialised ``nn.Module`` mapping a
(N, 3, H, W) image (H, W multiples of 32) to logits at ``output_stride(name)``: 4 for
SegFormer, 8 for SegNeXt (callers resize). ``published()`` reads ``published.csv``, the
papers' and official repositories' numbers, one row per model and dataset, with its source.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from importlib import resources

from torch import nn

from .segformer import SEGFORMER_CONFIGS, build_segformer
from .segnext import SEGNEXT_CONFIGS, build_segnext

__all__ = ["PEERS", "build_peer", "output_stride", "peer_family", "published"]

#: (family, output stride, builder) per peer name.
_REGISTRY: dict[str, tuple[str, int, Callable[[str, int], nn.Module]]] = {
    **{name: ("SegFormer", 4, build_segformer) for name in SEGFORMER_CONFIGS},
    **{name: ("SegNeXt", 8, build_segnext) for name in SEGNEXT_CONFIGS},
}

PEERS: tuple[str, ...] = tuple(_REGISTRY)

#: Columns of published.csv that hold text; every other column is a number or empty.
_TEXT_COLUMNS = frozenset({"family", "model", "dataset", "resolution_hw", "source"})


def _entry(name: str) -> tuple[str, int, Callable[[str, int], nn.Module]]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown peer network {name!r}; choose one of {', '.join(PEERS)}")
    return _REGISTRY[name]


def build_peer(name: str, num_classes: int) -> nn.Module:
    """Build peer network ``name`` (one of :data:`PEERS`) with ``num_classes`` outputs,
    randomly initialised from the global torch RNG (so a fixed seed gives a fixed network).

    Raises:
        ValueError: an unknown name (the message lists the valid ones) or num_classes < 1.
    """
    _family, _stride, builder = _entry(name)
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    return builder(name, num_classes)


def peer_family(name: str) -> str:
    """'SegFormer' or 'SegNeXt'."""
    return _entry(name)[0]


def output_stride(name: str) -> int:
    """Input size / logits size: 4 (SegFormer) or 8 (SegNeXt)."""
    return _entry(name)[1]


def _parse(row: dict[str, str]) -> dict[str, str | float | None]:
    return {
        key: value if key in _TEXT_COLUMNS else (float(value) if value.strip() else None)
        for key, value in row.items()
    }


def published(name: str | None = None) -> list[dict[str, str | float | None]]:
    """Rows of ``published.csv`` (any family, EfficientViT included) for model ``name``, or
    all rows when ``name`` is None; an empty list for a model with no published row.

    Text columns (family, model, dataset, resolution_hw, source) stay strings; the
    numbers (miou, params_m, macs_g, latency_orin_ms, latency_nano_ms, a100_img_s) are
    floats, or None where the source publishes none.
    """
    text = resources.files(__name__).joinpath("published.csv").read_text(encoding="utf-8")
    rows = [_parse(row) for row in csv.DictReader(io.StringIO(text))]
    return rows if name is None else [row for row in rows if row["model"] == name]
