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
from .spec import ArchSpec, SpecError

__all__ = ["NetworkSpec", "PeerSpec", "network_from_dict"]


@dataclass(frozen=True)
class PeerSpec:
    """A peer network (SegFormer / SegNeXt) with ``num_classes`` outputs."""

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
    def output_stride(self) -> int:
        return model_entry(self.name).output_stride

    def replace(self, **changes: Any) -> PeerSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"peer": self.name, "num_classes": self.num_classes}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self) -> str:
        return f"{self.name} ({self.family} peer, {self.num_classes} classes, logits at stride {self.output_stride})"


NetworkSpec = ArchSpec | PeerSpec


def network_from_dict(data: dict[str, Any]) -> NetworkSpec:
    """The inverse of ``to_dict`` for either kind."""
    if "peer" in data:
        return PeerSpec(str(data["peer"]), int(data["num_classes"]))
    return ArchSpec.from_dict(data)
