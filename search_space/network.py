"""What a command can be given as a network: a searched EfficientViT (an :class:`ArchSpec`)
or a peer (a :class:`PeerSpec`: SegFormer or SegNeXt, outside the search space).

Both are plain records with ``to_dict``/``to_json``/``replace``/``summary``, so bundles,
validation results and reports store either the same way; ``create.build_network`` turns
either into a module. Peers are measured and trained like any network but never predicted
from a latency table (their blocks are not in it).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from .registry import entries, is_peer, model_entry
from .spec import ArchSpec, SpecError, check_resolution

__all__ = ["NetworkSpec", "PeerSpec", "network_from_dict", "check_input_size"]


@dataclass(frozen=True)
class PeerSpec:
    """A network outside the search space (a SegFormer / SegNeXt peer, or an ImageNet
    classifier) with ``num_classes`` outputs."""

    name: str
    num_classes: int

    def __post_init__(self) -> None:
        if not is_peer(self.name) or model_entry(self.name).name != self.name:
            peers = ", ".join(e.name for e in entries() if e.is_peer)
            raise SpecError(f"unknown peer network {self.name!r}; peers: {peers}")
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise SpecError(f"PeerSpec.num_classes must be a positive integer, got {self.num_classes!r}")

    @property
    def family(self) -> str:
        return model_entry(self.name).family

    @property
    def output_stride(self) -> int | None:
        """Input size over logits size; None for a classifier."""
        return model_entry(self.name).output_stride

    def replace(self, **changes: Any) -> PeerSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"peer": self.name, "num_classes": self.num_classes}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self) -> str:
        if self.output_stride is None:
            return f"{self.name} ({self.family} classifier, {self.num_classes} classes, one logit vector per image)"
        return f"{self.name} ({self.family} peer, {self.num_classes} classes, logits at stride {self.output_stride})"


NetworkSpec = ArchSpec | PeerSpec


def network_from_dict(data: dict[str, Any]) -> NetworkSpec:
    """The inverse of ``to_dict`` for either kind."""
    if "peer" in data:
        return PeerSpec(str(data["peer"]), int(data["num_classes"]))
    return ArchSpec.from_dict(data)


def check_input_size(spec: NetworkSpec, resolution: Any) -> tuple[int, int]:
    """``resolution`` as (H, W) if ``spec`` takes it: any positive size for a classifier,
    positive multiples of 32 for a segmentation network.

    Raises:
        SpecError: a size the network cannot take (the message suggests one).
    """
    if isinstance(spec, PeerSpec) and spec.output_stride is None:
        try:
            height, width = (int(v) for v in resolution)
        except (TypeError, ValueError):
            raise SpecError(f"resolution must be (H, W), e.g. (224, 224) or '224x224'; got {resolution!r}") from None
        if height < 32 or width < 32:
            raise SpecError(f"resolution {height}x{width}: a classifier needs at least 32x32")
        return height, width
    return check_resolution(resolution)
