"""What a command can be given as a network: a searched EfficientViT (an :class:`ArchSpec`)
or a peer (a :class:`PeerSpec`: SegFormer or SegNeXt, outside the search space).

Both are plain records with ``to_dict``/``to_json``/``replace``/``summary``, so bundles,
validation results and reports store either the same way; :func:`build_network` turns
either into a module. Peers are measured and trained like any network but never predicted
from a latency table (their blocks are not in it).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from torch import nn

from .model import build_model
from .spec import ArchSpec, SpecError

__all__ = ["NetworkSpec", "PeerSpec", "build_network", "is_peer", "network_from_dict"]


def _peers():
    from . import peers

    return peers


def is_peer(name: str) -> bool:
    """Whether ``name`` is a registered peer network (``segformer_b0``, ``segnext_t``, ...)."""
    return name in _peers().PEERS


@dataclass(frozen=True)
class PeerSpec:
    """A peer network (SegFormer / SegNeXt) with ``num_classes`` outputs."""

    name: str
    num_classes: int

    def __post_init__(self) -> None:
        if not is_peer(self.name):
            raise SpecError(f"unknown peer network {self.name!r}; peers: {', '.join(_peers().PEERS)}")
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise SpecError(f"PeerSpec.num_classes must be a positive integer, got {self.num_classes!r}")

    @property
    def family(self) -> str:
        return _peers().peer_family(self.name)

    @property
    def output_stride(self) -> int:
        return _peers().output_stride(self.name)

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


def build_network(spec: NetworkSpec) -> nn.Module:
    """A freshly initialised module for ``spec``."""
    if isinstance(spec, PeerSpec):
        return _peers().build_peer(spec.name, spec.num_classes)
    return build_model(spec)
