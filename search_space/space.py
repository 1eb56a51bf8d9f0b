"""SearchSpace: the choices that define a space of EfficientViT segmentation networks.

Every network is fixed by a flat list of categorical decisions (``width_stage3``,
``attn_stage4_2``, ``scale_5``, ...). The same decisions drive random sampling, Optuna's
``suggest_categorical`` and the enumeration of every block the space can produce, so the
three can never disagree. Attention flags are decided for the deepest possible stage and
the first ``depth`` of them are used, which keeps Optuna's search space static.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .blocks import BlockKey, check_resolution, network_blocks
from .spec import ATTENTION_STAGES, STAGE_NAMES, ArchSpec, SpecError, from_fields
from .spec import DATASETS, SEG_DATASETS

__all__ = ["SearchSpace"]

Choice = tuple[str, tuple[Any, ...]]


def _choices(name: str, value: Any, allow_none: bool = False) -> tuple:
    if not isinstance(value, (list, tuple)) or not value:
        raise SpecError(f"SearchSpace.{name}: expected a non-empty list of choices, got {value!r}")
    for v in value:
        ok = (v is None and allow_none) or (isinstance(v, int) and not isinstance(v, bool))
        if not ok:
            kind = "integers or null" if allow_none else "integers"
            raise SpecError(f"SearchSpace.{name}: choices must be {kind}, got {v!r}")
    if len(set(value)) != len(value):
        raise SpecError(f"SearchSpace.{name}: repeated choices in {list(value)}")
    return tuple(value)


@dataclass(frozen=True)
class SearchSpace:
    """The allowed values of every ArchSpec field.

    Attributes:
        widths: for each of (stem, stage1..stage4), the allowed channel counts.
        depths: for each of (stem, stage1..stage4), the allowed depths (see ArchSpec).
        expand_ratios: for each of stage1..stage4, the allowed MBConv expand ratios.
        head_dims: allowed LiteMLA channels per head.
        scales: the aggregation kernel sizes; a network may use any subset, none included.
        attention: the values an attention flag may take: ``(False, True)`` lets every
            EfficientViT block choose, ``(True,)`` keeps attention everywhere.
        head_widths, head_depths, head_expand_ratios, head_final_expands: head choices
            (``None`` in head_final_expands: no expansion before the classifier).
        num_classes: classes of every network in the space.

    Raises:
        SpecError: on creation, if a choice list is malformed or some combination of
            choices gives an invalid network (say, a width not divisible by a head dim).
    """

    widths: tuple[tuple[int, ...], ...]
    depths: tuple[tuple[int, ...], ...]
    expand_ratios: tuple[tuple[int, ...], ...]
    head_dims: tuple[int, ...]
    scales: tuple[int, ...]
    attention: tuple[bool, ...]
    head_widths: tuple[int, ...]
    head_depths: tuple[int, ...]
    head_expand_ratios: tuple[int, ...]
    head_final_expands: tuple[int | None, ...]
    num_classes: int

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name, count, labels in (
            ("widths", 5, STAGE_NAMES),
            ("depths", 5, STAGE_NAMES),
            ("expand_ratios", 4, STAGE_NAMES[1:]),
        ):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or len(value) != count:
                raise SpecError(f"SearchSpace.{name}: expected {count} lists of choices ({', '.join(labels)}), got {value!r}")
            put(name, tuple(_choices(f"{name}[{label}]", v) for v, label in zip(value, labels)))
        for name in ("head_dims", "scales", "head_widths", "head_depths", "head_expand_ratios"):
            put(name, _choices(name, getattr(self, name)))
        put("head_final_expands", _choices("head_final_expands", self.head_final_expands, allow_none=True))
        attention = self.attention
        if (
            not isinstance(attention, (list, tuple))
            or not attention
            or not all(isinstance(a, bool) for a in attention)
            or len(set(attention)) != len(attention)
        ):
            raise SpecError(f"SearchSpace.attention: expected [false, true], [true] or [false], got {attention!r}")
        put("attention", tuple(attention))
        if not isinstance(self.num_classes, int) or isinstance(self.num_classes, bool) or self.num_classes < 1:
            raise SpecError(f"SearchSpace.num_classes: expected a positive integer, got {self.num_classes!r}")
        # Every network the space can produce must be valid: the probes cover every
        # combination of choices that a single block depends on.
        for values in self._probes():
            try:
                self._to_spec(values)
            except SpecError as exc:
                raise SpecError(f"SearchSpace allows an invalid network: {exc}") from None

    # ------------------------------------------------------------ presets / IO
    @classmethod
    def default(cls, dataset: str = "cityscapes") -> "SearchSpace":
        """EfficientViT B0-B3 and the networks between and around them.

        Args:
            dataset: ``"cityscapes"`` (19 classes) or ``"ade20k"`` (150 classes).
        """
        if dataset not in SEG_DATASETS:
            raise SpecError(f"unknown dataset {dataset!r} for a search space; choose a segmentation dataset: "
                            f"{', '.join(sorted(SEG_DATASETS))}")
        return cls(
            widths=((8, 16, 24, 32), (16, 24, 32, 48, 64), (24, 32, 48, 64, 96, 128),
                    (64, 96, 128, 192, 256), (128, 192, 256, 384, 512)),
            depths=((0, 1, 2), (1, 2, 3, 4, 5), (1, 2, 3, 4, 5, 6, 7), (1, 2, 3, 4, 5, 6, 7),
                    tuple(range(1, 11))),
            expand_ratios=((3, 4, 6),) * 4,
            head_dims=(16, 32),
            scales=(3, 5, 7),
            attention=(False, True),
            head_widths=(32, 48, 64, 96, 128),
            head_depths=(1, 2, 3, 4),
            head_expand_ratios=(4,),
            head_final_expands=(None, 4),
            num_classes=DATASETS[dataset].num_classes,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-ready data."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchSpace":
        """Build from plain data; unknown or missing fields raise :class:`SpecError`."""
        return from_fields(cls, data)

    @classmethod
    def from_file(cls, path: str | Path) -> "SearchSpace":
        """Load a space from a JSON or YAML file (``.yaml``/``.yml``)."""
        path = Path(path)
        if not path.is_file():
            raise SpecError(f"search space file not found: {path}")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as exc:  # json and yaml raise different types
            raise SpecError(f"{path}: cannot parse ({exc})") from None
        return cls.from_dict(data)

    def fingerprint(self) -> str:
        """A short hash of the choices (recorded in latency tables and studies)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    # ------------------------------------------------------------ decisions
    def decisions(self) -> list[Choice]:
        """The flat list of (parameter name, choices) that fixes one network."""
        out: list[Choice] = []
        for i, name in enumerate(STAGE_NAMES):
            out.append((f"width_{name}", self.widths[i]))
            out.append((f"depth_{name}", self.depths[i]))
            if i > 0:
                out.append((f"expand_{name}", self.expand_ratios[i - 1]))
        out.append(("head_dim", self.head_dims))
        out.extend((f"scale_{k}", (False, True)) for k in self.scales)
        for i in ATTENTION_STAGES:
            out.extend((f"attn_{STAGE_NAMES[i]}_{j}", self.attention) for j in range(max(self.depths[i])))
        out += [
            ("head_width", self.head_widths),
            ("head_depth", self.head_depths),
            ("head_expand", self.head_expand_ratios),
            ("head_final_expand", self.head_final_expands),
        ]
        return out

    def _to_spec(self, values: dict[str, Any]) -> ArchSpec:
        depths = [values[f"depth_{n}"] for n in STAGE_NAMES]
        return ArchSpec(
            widths=tuple(values[f"width_{n}"] for n in STAGE_NAMES),
            depths=tuple(depths),
            expand_ratios=tuple(values[f"expand_{n}"] for n in STAGE_NAMES[1:]),
            head_dim=values["head_dim"],
            scales=tuple(k for k in self.scales if values[f"scale_{k}"]),
            attention=tuple(
                tuple(values[f"attn_{STAGE_NAMES[i]}_{j}"] for j in range(depths[i])) for i in ATTENTION_STAGES
            ),
            head_width=values["head_width"],
            head_depth=values["head_depth"],
            head_expand_ratio=values["head_expand"],
            head_final_expand=values["head_final_expand"],
            num_classes=self.num_classes,
        )

    def decide(self, choose: Callable[[str, tuple[Any, ...]], Any]) -> ArchSpec:
        """Build a network by asking ``choose(name, choices)`` for every decision."""
        return self._to_spec({name: choose(name, choices) for name, choices in self.decisions()})

    def sample(self, seed_or_rng: int | random.Random | None = None) -> ArchSpec:
        """A network drawn uniformly at random decision by decision.

        Args:
            seed_or_rng: an int seed, a ``random.Random`` (advanced in place) or None.
        """
        rng = seed_or_rng if isinstance(seed_or_rng, random.Random) else random.Random(seed_or_rng)
        return self.decide(lambda _name, choices: rng.choice(choices))

    def suggest(self, trial: Any) -> ArchSpec:
        """A network chosen by an Optuna trial (one categorical parameter per decision)."""
        return self.decide(lambda name, choices: trial.suggest_categorical(name, list(choices)))

    # ------------------------------------------------------------ membership
    def why_not(self, spec: ArchSpec) -> str | None:
        """The first reason ``spec`` is outside the space, or None when it is inside."""
        checks: list[tuple[str, Any, Sequence[Any]]] = []
        for i, name in enumerate(STAGE_NAMES):
            checks.append((f"widths[{name}]", spec.widths[i], self.widths[i]))
            checks.append((f"depths[{name}]", spec.depths[i], self.depths[i]))
            if i > 0:
                checks.append((f"expand_ratios[{name}]", spec.expand_ratios[i - 1], self.expand_ratios[i - 1]))
        checks += [
            ("head_dim", spec.head_dim, self.head_dims),
            ("head_width", spec.head_width, self.head_widths),
            ("head_depth", spec.head_depth, self.head_depths),
            ("head_expand_ratio", spec.head_expand_ratio, self.head_expand_ratios),
            ("head_final_expand", spec.head_final_expand, self.head_final_expands),
            ("num_classes", spec.num_classes, (self.num_classes,)),
        ]
        for field, value, allowed in checks:
            if value not in allowed:
                return f"{field}={value!r} is not among {list(allowed)}"
        if not set(spec.scales) <= set(self.scales):
            return f"scales={list(spec.scales)} is not a subset of {list(self.scales)}"
        for flags, i in zip(spec.attention, ATTENTION_STAGES):
            if any(f not in self.attention for f in flags):
                return f"attention[{STAGE_NAMES[i]}]={list(flags)} uses a value outside {list(self.attention)}"
        return None

    def contains(self, spec: ArchSpec) -> bool:
        """Whether ``spec`` is one of the space's networks."""
        return self.why_not(spec) is None

    def size(self) -> int:
        """Number of distinct ArchSpecs in the space (as data; a network without attention
        counts once per head_dim and scales value it records)."""
        count = math.prod(len(c) for c in (*self.widths, *self.expand_ratios, self.head_dims))
        count *= 2 ** len(self.scales)
        count *= math.prod(len(c) for c in (self.head_widths, self.head_depths, self.head_expand_ratios, self.head_final_expands))
        for i in range(5):
            if i in ATTENTION_STAGES:
                count *= sum(len(self.attention) ** d for d in self.depths[i])
            else:
                count *= len(self.depths[i])
        return count

    # ------------------------------------------------------------ blocks
    def blocks(self, spec: ArchSpec, resolution: Any) -> list[BlockKey]:
        """The BlockKeys ``spec`` is made of, in execution order, at input size (H, W)."""
        return [key for _, key in network_blocks(spec, resolution)]

    def _probes(self) -> Iterable[dict[str, Any]]:
        """Decision sets that, together, produce every block the space can produce.

        A block depends only on a few decisions (an MBConv on two adjacent widths and an
        expand ratio, a LiteMLA on a width, the head dim and the scales, ...). Each probe
        varies one such group over all its combinations, with every other decision at its
        block-richest value (deepest stages, attention on where allowed).
        """
        decisions = dict(self.decisions())
        base = {name: choices[0] for name, choices in decisions.items()}
        for name, choices in decisions.items():
            if name.startswith(("depth_", "head_depth")):
                base[name] = max(choices)
            elif name.startswith("attn_"):
                base[name] = True in choices
        groups: list[list[str]] = [["width_stem"]]
        for i in range(1, 5):
            groups.append([f"width_{STAGE_NAMES[i - 1]}", f"width_{STAGE_NAMES[i]}", f"expand_{STAGE_NAMES[i]}"])
        for i in ATTENTION_STAGES:
            groups.append([f"width_{STAGE_NAMES[i]}", "head_dim", *(f"scale_{k}" for k in self.scales)])
        for i in (2, 3, 4):
            groups.append([f"width_{STAGE_NAMES[i]}", "head_width"])
        groups.append(["head_width", "head_expand", "head_final_expand"])
        for group in groups:
            for combo in itertools.product(*(decisions[name] for name in group)):
                yield {**base, **dict(zip(group, combo))}

    def unique_blocks(self, resolution: Any) -> list[BlockKey]:
        """Every distinct BlockKey that some network of the space has at input size (H, W),
        sorted: the profiler's work list."""
        resolution = check_resolution(resolution)
        keys = {key for values in self._probes() for key in self.blocks(self._to_spec(values), resolution)}
        return sorted(keys)
