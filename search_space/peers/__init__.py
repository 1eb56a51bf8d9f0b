"""Peer segmentation networks (SegFormer, SegNeXt) re-implemented for measurement beside
EfficientViT, and the published reference numbers of all three families.

Each peer is registered in the model registry here, as plain data (no torch: listing
names stays instant); ``build_peer(name, num_classes)`` imports the family's module
(``segformer.py``, ``segnext.py``) and returns a randomly initialised ``nn.Module`` mapping
a (N, 3, H, W) image (H, W multiples of 32) to logits at the entry's output stride: 4 for
SegFormer, 8 for SegNeXt (callers resize). ``published()`` reads ``published.csv``, the
papers' and official repositories' numbers, one row per model and dataset, with its source.
"""

from __future__ import annotations

import importlib
from importlib import resources
from typing import Any

from ..network import PeerSpec
from ..records import parse_csv
from ..registry import model_entry, register_model
from ..spec import DATASETS

__all__ = ["PEERS", "build_peer", "published"]

#: family -> (module building it, output stride, {name: {dataset: parameters}})
_FAMILIES: dict[str, tuple[str, int, dict[str, dict[str, int]]]] = {
    "SegFormer": ("segformer", 4, {
        "segformer_b0": {"cityscapes": 3_719_027, "ade20k": 3_752_694},
        "segformer_b1": {"cityscapes": 13_682_131, "ade20k": 13_715_798},
        "segformer_b2": {"cityscapes": 27_361_235, "ade20k": 27_461_974},
        "segformer_b3": {"cityscapes": 47_237_075, "ade20k": 47_337_814},
    }),
    "SegNeXt": ("segnext", 8, {
        "segnext_t": {"cityscapes": 4_229_747, "ade20k": 4_263_414},
        "segnext_s": {"cityscapes": 13_899_219, "ade20k": 13_932_886},
    }),
}


def _peer_spec(name: str):
    return lambda dataset: PeerSpec(name, DATASETS[dataset].num_classes)


for _family, (_module, _stride, _members) in _FAMILIES.items():
    for _name, _params in _members.items():
        register_model(family=_family, datasets=tuple(_params), params=_params, output_stride=_stride,
                       name=_name)(_peer_spec(_name))

PEERS: tuple[str, ...] = tuple(name for _, _, members in _FAMILIES.values() for name in members)

#: Columns of published.csv that hold text; every other column is a number or empty.
_TEXT_COLUMNS = frozenset({"family", "model", "dataset", "resolution_hw", "source"})


def build_peer(name: str, num_classes: int) -> Any:
    """Build peer network ``name`` (one of :data:`PEERS`) with ``num_classes`` outputs,
    randomly initialised from the global torch RNG (so a fixed seed gives a fixed network).

    Raises:
        SpecError: an unknown name (the message lists the valid ones) or num_classes < 1.
    """
    spec = PeerSpec(name, num_classes)
    # the family's module needs torch: imported when a peer is built, not when listed
    module = importlib.import_module(f".{_FAMILIES[model_entry(name).family][0]}", __name__)
    return module.build(spec.name, spec.num_classes)


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
    rows = [_parse(row) for row in parse_csv(text, "published.csv")[1]]
    return rows if name is None else [row for row in rows if row["model"] == name]
