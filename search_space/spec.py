"""ArchSpec: one EfficientViT segmentation network, as plain data.

A network is five stages (the stem and stages 1-4, at strides 2, 4, 8, 16 and 32) and a
segmentation head at stride 8 that fuses stages 4, 3 and 2, as in the official B series:

- stem: a 3x3 stride-2 conv, then ``depths[0]`` residual DSConv blocks;
- stages 1-2: ``depths[i]`` MBConv blocks, the first with stride 2 (so ``depths[i] >= 1``);
- stages 3-4: a stride-2 MBConv, then ``depths[i]`` EfficientViT blocks; block ``j`` has a
  LiteMLA context module when ``attention[i - 3][j]`` is true, and is MBConv-only otherwise;
- head: per input stage a 1x1 conv to ``head_width`` (upsampled to stride 8), summed, then
  ``head_depth`` residual MBConvs, an optional 1x1 expansion to ``head_width *
  head_final_expand``, and a 1x1 classifier.

The JSON form holds exactly these fields; unknown or missing fields are errors, so a
misspelt field never passes silently.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import EvitNasError

__all__ = ["ArchSpec", "SpecError", "STAGE_NAMES", "ATTENTION_STAGES", "MAX_STRIDE", "DATASETS", "SEG_DATASETS", "DatasetInfo",
           "from_fields", "check_resolution"]

STAGE_NAMES = ("stem", "stage1", "stage2", "stage3", "stage4")
#: Indices (into ``widths``/``depths``) of the stages built from EfficientViT blocks.
ATTENTION_STAGES = (3, 4)
#: Total downsampling of the backbone; input sizes must be multiples of it.
MAX_STRIDE = 32


class SpecError(EvitNasError, ValueError):
    """An invalid ArchSpec, SearchSpace or network name; the message says what to fix."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset fixes in a network: classes, the head's final expansion, input size,
    and the task (``segmentation``: per-pixel logits; ``classification``: one logit vector)."""

    num_classes: int
    head_final_expand: int | None
    resolution: tuple[int, int]
    task: str = "segmentation"


#: The datasets with official configurations (the B series' heads differ between them);
#: ImageNet is there for the classification backbones (``efficientvit_cls_b0``..``b3``,
#: ``efficientnet_b6``), which are measured beside the segmentation networks but never searched.
DATASETS: dict[str, DatasetInfo] = {
    "cityscapes": DatasetInfo(19, 4, (1024, 2048)),
    "ade20k": DatasetInfo(150, None, (512, 512)),
    "imagenet": DatasetInfo(1000, None, (224, 224), "classification"),
}

#: The segmentation datasets: the ones a search space, a search, a report or a validation takes.
SEG_DATASETS: tuple[str, ...] = tuple(name for name, info in DATASETS.items() if info.task == "segmentation")


def check_resolution(resolution: Any) -> tuple[int, int]:
    """Validate an input size (H, W): positive multiples of 32. Returns it as a tuple.

    Raises:
        SpecError: not two integers, or not positive multiples of 32 (the message suggests one).
    """
    try:
        height, width = (int(v) for v in resolution)
    except (TypeError, ValueError):
        raise SpecError(f"resolution must be (H, W), e.g. (1024, 2048) or '1024x2048'; got {resolution!r}") from None
    if height <= 0 or width <= 0 or height % MAX_STRIDE or width % MAX_STRIDE:
        raise SpecError(
            f"resolution {height}x{width}: H and W must be positive multiples of {MAX_STRIDE} "
            f"(the backbone downsamples 32x and the head adds stages 2-4 together); "
            f"for example {max(MAX_STRIDE, round(height / MAX_STRIDE) * MAX_STRIDE)}x"
            f"{max(MAX_STRIDE, round(width / MAX_STRIDE) * MAX_STRIDE)}"
        )
    return height, width


def from_fields(cls: type, data: Any, all_required: bool = True) -> Any:
    """Build the dataclass ``cls`` from a plain mapping (parsed JSON or YAML).

    Raises:
        SpecError: for data that is not a mapping, unknown fields (a misspelt field never
            passes silently) and, with ``all_required``, missing fields; naming them all.
    """
    owner = cls.__name__
    if not isinstance(data, dict):
        raise SpecError(f"{owner}: expected a JSON object (a mapping), got {type(data).__name__}")
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(names))
    missing = [n for n in names if n not in data] if all_required else []
    if unknown or missing:
        problems = ", ".join(
            part for part in (unknown and f"unknown field(s) {unknown}", missing and f"missing field(s) {missing}") if part
        )
        raise SpecError(f"{owner}: {problems}; the fields are {names}")
    return cls(**data)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_tuple(name: str, value: Any, length: int, minimum: int, meaning: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != length or not all(_is_int(v) for v in value):
        raise SpecError(f"ArchSpec.{name}: expected {length} integers ({meaning}), got {value!r}")
    if any(v < minimum for v in value):
        raise SpecError(f"ArchSpec.{name}: every entry must be >= {minimum} ({meaning}), got {list(value)}")
    return tuple(value)


def _int_field(name: str, value: Any, minimum: int, meaning: str) -> int:
    if not _is_int(value) or value < minimum:
        raise SpecError(f"ArchSpec.{name}: expected an integer >= {minimum} ({meaning}), got {value!r}")
    return value


@dataclass(frozen=True)
class ArchSpec:
    """One network of the search space. Immutable and hashable; validated on creation.

    Attributes:
        widths: channels of (stem, stage1, stage2, stage3, stage4).
        depths: blocks per stage: stem DSConv blocks (>= 0); stage 1-2 MBConv blocks
            including the stride-2 one (>= 1); stage 3-4 EfficientViT blocks after the
            stride-2 MBConv (>= 0).
        expand_ratios: MBConv expand ratio of stages 1-4.
        head_dim: LiteMLA channels per head (heads = width // head_dim).
        scales: kernel sizes of the multi-scale token aggregation, strictly increasing odd
            numbers; ``()`` means single-scale attention.
        attention: for stage 3 and stage 4, one flag per EfficientViT block: does it have a
            LiteMLA context module.
        head_width: channels of the segmentation head.
        head_depth: residual MBConv blocks in the head (>= 0).
        head_expand_ratio: expand ratio of the head's MBConvs.
        head_final_expand: the 1x1 expansion before the classifier (``None``: none).
        num_classes: output classes.

    Raises:
        SpecError: on creation, naming the field and the allowed values.

    Example:
        >>> from search_space.registry import model_spec
        >>> spec = model_spec("efficientvit_seg_b0")
        >>> spec.summary()
        'w8-16-32-64-128 d1-2-2-2-2 e4-4-4-4 hd16 k5 att11/11 head32x1e4f4 c19'
        >>> ArchSpec.from_json(spec.to_json()) == spec
        True
        >>> spec.replace(head_dim=48)
        Traceback (most recent call last):
        ...
        search_space.spec.SpecError: ArchSpec.widths: stage3 has attention, so its width 64 must be a multiple of head_dim=48
    """

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    expand_ratios: tuple[int, ...]
    head_dim: int
    scales: tuple[int, ...]
    attention: tuple[tuple[bool, ...], ...]
    head_width: int
    head_depth: int
    head_expand_ratio: int
    head_final_expand: int | None
    num_classes: int

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("widths", _int_tuple("widths", self.widths, 5, 1, "channels of stem, stage1..stage4"))
        depths = _int_tuple("depths", self.depths, 5, 0, "blocks in stem, stage1..stage4")
        for i in (1, 2):
            if depths[i] < 1:
                raise SpecError(
                    f"ArchSpec.depths: {STAGE_NAMES[i]} needs at least 1 block (its first block "
                    f"downsamples), got {list(depths)}"
                )
        put("depths", depths)
        put("expand_ratios", _int_tuple("expand_ratios", self.expand_ratios, 4, 1, "MBConv expand ratio of stage1..stage4"))
        put("head_dim", _int_field("head_dim", self.head_dim, 1, "LiteMLA channels per head"))

        scales = self.scales
        if (
            not isinstance(scales, (list, tuple))
            or not all(_is_int(s) and s >= 3 and s % 2 == 1 for s in scales)
            or list(scales) != sorted(set(scales))
        ):
            raise SpecError(
                "ArchSpec.scales: expected strictly increasing odd kernel sizes >= 3, "
                f"for example [] or [5] or [3, 5, 7]; got {scales!r}"
            )
        put("scales", tuple(scales))

        attention = self.attention
        if not isinstance(attention, (list, tuple)) or len(attention) != len(ATTENTION_STAGES):
            raise SpecError(
                "ArchSpec.attention: expected two lists of true/false flags (stage3, stage4), "
                f"got {attention!r}"
            )
        checked = []
        for flags, i in zip(attention, ATTENTION_STAGES):
            if not isinstance(flags, (list, tuple)) or not all(isinstance(f, bool) for f in flags):
                raise SpecError(f"ArchSpec.attention: {STAGE_NAMES[i]} flags must be true/false values, got {flags!r}")
            if len(flags) != depths[i]:
                raise SpecError(
                    f"ArchSpec.attention: {STAGE_NAMES[i]} has depth {depths[i]} but {len(flags)} "
                    f"attention flags; give one flag per EfficientViT block"
                )
            if any(flags) and self.widths[i] % self.head_dim != 0:
                raise SpecError(
                    f"ArchSpec.widths: {STAGE_NAMES[i]} has attention, so its width {self.widths[i]} "
                    f"must be a multiple of head_dim={self.head_dim}"
                )
            checked.append(tuple(flags))
        put("attention", tuple(checked))

        put("head_width", _int_field("head_width", self.head_width, 1, "channels of the head"))
        put("head_depth", _int_field("head_depth", self.head_depth, 0, "MBConv blocks in the head"))
        put("head_expand_ratio", _int_field("head_expand_ratio", self.head_expand_ratio, 1, "head MBConv expand ratio"))
        if self.head_final_expand is not None:
            _int_field("head_final_expand", self.head_final_expand, 1, "expansion before the classifier, or null")
        put("num_classes", _int_field("num_classes", self.num_classes, 1, "output classes"))

    def replace(self, **changes: Any) -> "ArchSpec":
        """A copy with some fields changed (validated like any new spec)."""
        return dataclasses.replace(self, **changes)

    # ----------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (lists instead of tuples)."""
        return {name: _plain(getattr(self, name)) for name in _SPEC_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ArchSpec":
        """Build from plain data; unknown or missing fields raise :class:`SpecError`."""
        return from_fields(cls, data)

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text; ``ArchSpec.from_json(spec.to_json()) == spec``."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> "ArchSpec":
        """Parse JSON text, or read a JSON file when given a path.

        Raises:
            SpecError: for a missing file, invalid JSON or an invalid spec.
        """
        if isinstance(text_or_path, Path) or not str(text_or_path).lstrip().startswith("{"):
            path = Path(text_or_path)
            if not path.is_file():
                raise SpecError(f"ArchSpec file not found: {path}")
            text, origin = path.read_text(encoding="utf-8"), str(path)
        else:
            text, origin = str(text_or_path), "ArchSpec JSON"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{origin}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
        return cls.from_dict(data)

    # ------------------------------------------------------------ summaries
    def summary(self) -> str:
        """One line, e.g. ``w8-16-32-64-128 d1-2-2-2-2 e4-4-4-4 hd16 k5 att11/11 head32x1e4f4 c19``."""

        def dashed(values) -> str:
            return "-".join(str(v) for v in values)

        attn = "/".join("".join("1" if f else "0" for f in flags) or "-" for flags in self.attention)
        final = "" if self.head_final_expand is None else f"f{self.head_final_expand}"
        return (
            f"w{dashed(self.widths)} d{dashed(self.depths)} e{dashed(self.expand_ratios)} "
            f"hd{self.head_dim} k{dashed(self.scales) or '-'} att{attn} "
            f"head{self.head_width}x{self.head_depth}e{self.head_expand_ratio}{final} c{self.num_classes}"
        )


_SPEC_FIELDS = tuple(f.name for f in fields(ArchSpec))


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, tuple) else value
