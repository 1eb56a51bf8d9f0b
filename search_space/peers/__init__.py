"""Peer segmentation networks (SegFormer, SegNeXt, HRFormer with its OCR head) re-implemented for measurement beside
EfficientViT, the ImageNet classifiers the paper's backbone claims compare (EfficientViT
B0-B3 with the official classification head, EfficientNet-B6), and the published reference
numbers of all of them.

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

__all__ = ["PEERS", "CLASSIFIERS", "build_peer", "published"]

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
    "HRFormer": ("hrformer", 4, {
        "hrformer_s": {"cityscapes": 13_523_856, "ade20k": 13_658_262},
        "hrformer_b": {"cityscapes": 56_032_512, "ade20k": 56_166_918},
    }),
}


#: family -> (module building it, {name: (ImageNet parameters, official input sizes, default first)})
_CLASSIFIER_FAMILIES: dict[str, tuple[str, dict[str, tuple[int, tuple[tuple[int, int], ...]]]]] = {
    "EfficientViT-cls": ("efficientvit_cls", {
        "efficientvit_cls_b0": (3_410_008, ((224, 224),)),
        "efficientvit_cls_b1": (9_102_024, ((288, 288), (256, 256), (224, 224))),
        "efficientvit_cls_b2": (24_330_712, ((288, 288), (256, 256), (224, 224))),
        "efficientvit_cls_b3": (48_646_056, ((288, 288), (256, 256), (224, 224))),
    }),
    "EfficientNet": ("efficientnet", {
        "efficientnet_b6": (43_040_704, ((528, 528),)),
    }),
}

#: family -> the module that builds its members
_MODULES: dict[str, str] = {family: module for family, (module, _, _) in _FAMILIES.items()}
_MODULES.update({family: module for family, (module, _) in _CLASSIFIER_FAMILIES.items()})


def _peer_spec(name: str):
    return lambda dataset: PeerSpec(name, DATASETS[dataset].num_classes)


for _family, (_module, _stride, _members) in _FAMILIES.items():
    for _name, _params in _members.items():
        register_model(family=_family, datasets=tuple(_params), params=_params, output_stride=_stride,
                       name=_name)(_peer_spec(_name))

for _family, (_module, _classifiers) in _CLASSIFIER_FAMILIES.items():
    for _name, (_params, _resolutions) in _classifiers.items():
        register_model(family=_family, datasets=("imagenet",), params={"imagenet": _params}, output_stride=None,
                       name=_name, resolutions=_resolutions)(_peer_spec(_name))

#: The segmentation peers (compared with EfficientViT's segmentation networks).
PEERS: tuple[str, ...] = tuple(name for _, _, members in _FAMILIES.values() for name in members)
#: The ImageNet classifiers (the backbone comparison); outside the search space like the peers.
CLASSIFIERS: tuple[str, ...] = tuple(name for _, members in _CLASSIFIER_FAMILIES.values() for name in members)

#: Columns of published.csv that hold text; every other column is a number or empty.
_TEXT_COLUMNS = frozenset({"family", "model", "dataset", "resolution_hw", "source", "mobile_resolution_hw",
                           "mobile_device", "mobile_source"})


def build_peer(name: str, num_classes: int) -> Any:
    """Build peer network ``name`` (one of :data:`PEERS` or :data:`CLASSIFIERS`) with ``num_classes`` outputs,
    randomly initialised from the global torch RNG (so a fixed seed gives a fixed network).

    Raises:
        SpecError: an unknown name (the message lists the valid ones) or num_classes < 1.
    """
    spec = PeerSpec(name, num_classes)
    # the family's module needs torch: imported when a peer is built, not when listed
    module = importlib.import_module(f".{_MODULES[model_entry(name).family]}", __name__)
    return module.build(spec.name, spec.num_classes)


def _parse(row: dict[str, str]) -> dict[str, str | float | None]:
    return {
        key: value if key in _TEXT_COLUMNS else (float(value) if value.strip() else None)
        for key, value in row.items()
    }


def published(name: str | None = None) -> list[dict[str, str | float | None]]:
    """Rows of ``published.csv`` (any family, EfficientViT included) for model ``name``, or
    all rows when ``name`` is None; an empty list for a model with no published row.

    Text columns (family, model, dataset, resolution_hw, source, and the mobile point's
    mobile_resolution_hw, mobile_device, mobile_source) stay strings, empty where there is no
    mobile point; the numbers (miou, params_m, macs_g, latency_orin_ms, latency_nano_ms,
    a100_img_s, top1: ImageNet top-1 %, latency_mobile_ms) are floats, or None where the
    source publishes none.

    ``latency_mobile_ms`` is a published on-device point of its own: batch 1 on
    ``mobile_device`` at ``mobile_resolution_hw`` (for EfficientViT B0-B3 the first
    README's sizes, not always ``resolution_hw``), cited by ``mobile_source``; the row's
    other numbers are at ``resolution_hw`` and cited by ``source``.
    """
    text = resources.files(__name__).joinpath("published.csv").read_text(encoding="utf-8")
    rows = [_parse(row) for row in parse_csv(text, "published.csv")[1]]
    return rows if name is None else [row for row in rows if row["model"] == name]
