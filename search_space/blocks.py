"""BlockKey: a network's building block as plain data, and where each block sits.

A block's MACs, parameters and latency depend only on its BlockKey, so they are measured
once per key and a network's cost is a sum over its keys. Every leaf block of a network is
built from its key by ``model.build_block`` (``build_model`` assembles those same
modules), so a block measured alone is exactly the module that runs inside the network.
This module is plain data (no torch): the search, the latency tables and the command line
use it without building anything.

Kinds of block (``BlockKey.kind``):

- ``stem_conv``: 3x3 stride-2 conv + BN + Hardswish (the first layer);
- ``dsconv``: residual DSConv (stem blocks);
- ``mbconv``: MBConv, with or without the residual shortcut; ``fewer_norm`` is the layout of
  stages 3-4 (biases on the first two convs, BN only after the last);
- ``litemla``: residual LiteMLA (the context module of an EfficientViT block);
- ``seg_input``: the head's 1x1 conv + BN of one backbone stage, upsampled by ``upsample``;
- ``seg_output``: the head's optional 1x1 expansion (``mid_channels``; 0 = none) and classifier.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

from .spec import ATTENTION_STAGES, STAGE_NAMES, ArchSpec, SpecError, check_resolution, from_fields

__all__ = ["BlockKey", "Slot", "BLOCK_KINDS", "layout", "network_blocks"]

BLOCK_KINDS = ("stem_conv", "dsconv", "mbconv", "litemla", "seg_input", "seg_output")
#: The head works at stride 8 and fuses stages 4, 3, 2 (in this order, as officially).
HEAD_STRIDE = 8
HEAD_INPUTS = (4, 3, 2)
ACT = "hswish"


@dataclass(frozen=True, eq=False)
class BlockKey:
    """The identity of one block: everything that determines its cost. Hashable, JSON-ready.

    ``height`` and ``width`` are the block's input size in pixels (0 in a template that
    has no resolution yet).
    """

    kind: str
    in_channels: int
    out_channels: int
    height: int = 0
    width: int = 0
    stride: int = 1
    kernel_size: int = 3
    expand_ratio: int = 1
    fewer_norm: bool = False
    residual: bool = False
    head_dim: int = 0
    scales: tuple[int, ...] = ()
    upsample: int = 1
    mid_channels: int = 0

    def __post_init__(self) -> None:
        if self.kind not in BLOCK_KINDS:
            raise SpecError(f"BlockKey.kind: unknown kind {self.kind!r}; the kinds are {BLOCK_KINDS}")
        object.__setattr__(self, "scales", tuple(self.scales))

    # Equality, hashing and order go through one cached tuple of the fields: keys are looked
    # up millions of times in a search (tables, MAC caches), and the generated dataclass
    # methods rebuild that tuple on every call.
    def _ident(self) -> tuple:
        ident = self.__dict__.get("_ident_cache")
        if ident is None:
            ident = tuple(self.__dict__[name] for name in _KEY_FIELDS)
            self.__dict__["_ident_cache"] = (ident, hash(ident))
            return ident
        return ident[0]

    def __hash__(self) -> int:
        cached = self.__dict__.get("_ident_cache")
        if cached is None:
            self._ident()
            cached = self.__dict__["_ident_cache"]
        return cached[1]

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(other) is not BlockKey:
            return NotImplemented
        return self._ident() == other._ident()

    def __lt__(self, other: "BlockKey") -> bool:
        return self._ident() < other._ident()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["scales"] = list(self.scales)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BlockKey":
        """Build from plain data (fields left out take their defaults)."""
        return from_fields(cls, data, all_required=False)

    def at(self, height: int, width: int) -> "BlockKey":
        """The same block with input size ``height`` x ``width`` (the canonical object)."""
        # Hot in the search loop: no re-validation, and keys come back as one shared object
        # per identity, so that dictionary look-ups succeed on identity alone.
        ident = self._ident()
        ident = ident[:3] + (height, width) + ident[5:]
        key = _CANONICAL.get(ident)
        if key is None:
            key = object.__new__(BlockKey)
            key.__dict__.update(zip(_KEY_FIELDS, ident))
            key = _CANONICAL.setdefault(ident, key)
        return key

    def canonical(self) -> "BlockKey":
        """The one shared object equal to this key (cheap look-ups; see :meth:`at`)."""
        return _CANONICAL.setdefault(self._ident(), self)

    def describe(self) -> str:
        """Short human-readable form, e.g. ``mbconv 32->64 s2 e4 64x128``."""
        parts = [self.kind, f"{self.in_channels}->{self.out_channels}"]
        if self.stride != 1:
            parts.append(f"s{self.stride}")
        if self.kind == "mbconv":
            parts.append(f"e{self.expand_ratio}" + (" fewer-norm" if self.fewer_norm else "") + (" res" if self.residual else ""))
        if self.kind == "litemla":
            parts.append(f"dim{self.head_dim} k{'-'.join(map(str, self.scales)) or '-'}")
        if self.upsample != 1:
            parts.append(f"up{self.upsample}")
        if self.mid_channels:
            parts.append(f"mid{self.mid_channels}")
        parts.append(f"{self.height}x{self.width}")
        return " ".join(parts)


_KEY_FIELDS = tuple(f.name for f in fields(BlockKey))
assert _KEY_FIELDS[3:5] == ("height", "width")
_CANONICAL: dict[tuple, BlockKey] = {}


class Slot(NamedTuple):
    """Where a block sits in a network: its stage, its index there, its role, its key
    (with no resolution yet), and the downsampling factor of its input."""

    stage: str
    index: int
    role: str  # "main", "context" or "local"
    key: BlockKey
    input_stride: int


@functools.lru_cache(maxsize=4096)
def layout(spec: ArchSpec) -> tuple[Slot, ...]:
    """Every block of ``spec`` in execution order, as resolution-free slots (cached)."""
    w, d, e = spec.widths, spec.depths, spec.expand_ratios
    slots = [Slot("stem", 0, "main", BlockKey("stem_conv", 3, w[0], stride=2), 1)]
    for j in range(d[0]):
        slots.append(Slot("stem", j + 1, "main", BlockKey("dsconv", w[0], w[0], residual=True), 2))
    for i in range(1, 5):
        name, c_in, stride_in = STAGE_NAMES[i], w[i - 1], 2**i
        fewer = i in ATTENTION_STAGES
        first = BlockKey("mbconv", c_in, w[i], stride=2, expand_ratio=e[i - 1], fewer_norm=fewer)
        slots.append(Slot(name, 0, "main", first, stride_in))
        local = BlockKey("mbconv", w[i], w[i], expand_ratio=e[i - 1], fewer_norm=fewer, residual=True)
        if not fewer:
            slots.extend(Slot(name, j, "main", local, 2 * stride_in) for j in range(1, d[i]))
            continue
        for j, has_attention in enumerate(spec.attention[ATTENTION_STAGES.index(i)]):
            if has_attention:
                context = BlockKey("litemla", w[i], w[i], head_dim=spec.head_dim, scales=spec.scales, residual=True)
                slots.append(Slot(name, j + 1, "context", context, 2 * stride_in))
            slots.append(Slot(name, j + 1, "local", local, 2 * stride_in))
    hw = spec.head_width
    for j, i in enumerate(HEAD_INPUTS):
        stride = 2 ** (i + 1)
        slots.append(Slot("head", j, "input", BlockKey("seg_input", w[i], hw, upsample=stride // HEAD_STRIDE), stride))
    middle = BlockKey("mbconv", hw, hw, expand_ratio=spec.head_expand_ratio, residual=True)
    slots.extend(Slot("head", j, "middle", middle, HEAD_STRIDE) for j in range(spec.head_depth))
    mid = 0 if spec.head_final_expand is None else hw * spec.head_final_expand
    slots.append(Slot("head", 0, "output", BlockKey("seg_output", hw, spec.num_classes, mid_channels=mid), HEAD_STRIDE))
    return tuple(slots)


def network_blocks(spec: ArchSpec, resolution: Any) -> list[tuple[Slot, BlockKey]]:
    """Each slot of ``spec`` with its BlockKey at the input size ``resolution`` = (H, W)."""
    height, width = check_resolution(resolution)
    return [(s, s.key.at(height // s.input_stride, width // s.input_stride)) for s in layout(spec)]
