"""The one registry of named networks: EfficientViT B0-B3 and the peers, by name.

An entry is a tiny function ``(dataset) -> spec`` registered with :func:`register_model`
(in the manner of timm): ``zoo.py`` registers the EfficientViT networks (ArchSpecs),
``peers/`` the SegFormer and SegNeXt peers (PeerSpecs). ``create_model`` (in
``create.py``) builds any of them. The registry itself is plain data (no torch), so listing
and resolving names is instant; each entry also records its parameter count per dataset
for the same reason, and the generic model test checks every count against the built
network.

Names: ``list_models()`` gives every name ``create_model`` accepts: the base name (for
the entry's first dataset, Cityscapes where it exists) and ``NAME_DATASET`` for each
dataset the entry has (``efficientvit_seg_b1_ade20k``, ``segformer_b0_cityscapes``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .spec import DATASETS, ArchSpec, SpecError

if TYPE_CHECKING:
    from .network import NetworkSpec

__all__ = ["ModelEntry", "register_model", "list_models", "model_entry", "model_datasets", "model_spec", "is_peer", "default_resolution",
           "split_dataset_suffix", "resolve_network", "resolve_any"]

#: The family of the searched networks; every other family is a peer.
EFFICIENTVIT = "EfficientViT"


@dataclass(frozen=True)
class ModelEntry:
    """A registered network.

    Attributes:
        name: the base name (``efficientvit_seg_b1``, ``segformer_b0``).
        family: ``EfficientViT`` (in the search space) or a peer family.
        datasets: the datasets it has a configuration for; the first is the default.
        params: trainable parameters per dataset (checked against the built network by the tests).
        output_stride: input size over logits size; None for a classifier (one logit vector
            per image).
        make_spec: ``dataset -> ArchSpec`` (EfficientViT) or ``PeerSpec``.
        resolutions: the official input sizes (H, W), the default first; empty where the
            dataset's size is the default (the segmentation networks).
    """

    name: str
    family: str
    datasets: tuple[str, ...]
    params: dict[str, int]
    output_stride: int | None
    make_spec: Callable[[str], Any]
    resolutions: tuple[tuple[int, int], ...] = ()

    @property
    def is_peer(self) -> bool:
        return self.family != EFFICIENTVIT


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(*, family: str, datasets: tuple[str, ...], params: dict[str, int], output_stride: int | None = 8,
                   name: str | None = None, resolutions: tuple[tuple[int, int], ...] = ()
                   ) -> Callable[[Callable[[str], Any]], Callable[[str], Any]]:
    """Decorator: register ``fn(dataset) -> spec`` under ``name`` (default: its function name)."""

    def wrap(fn: Callable[[str], Any]) -> Callable[[str], Any]:
        unknown = [d for d in datasets if d not in DATASETS]
        if unknown or set(params) != set(datasets):
            raise ValueError(f"register_model({name or fn.__name__}): datasets {datasets} must be among "
                             f"{sorted(DATASETS)} and have a parameter count each")
        key = name or fn.__name__
        _REGISTRY[key] = ModelEntry(key, family, tuple(datasets), dict(params), output_stride, fn,
                                    tuple(tuple(r) for r in resolutions))
        return fn

    return wrap


def list_models(family: str | None = None, peers: bool | None = None) -> list[str]:
    """Every name :func:`create_model` builds, sorted: base names and ``NAME_DATASET`` variants.

    Args:
        family: only this family (``EfficientViT``, ``SegFormer``, ``SegNeXt``).
        peers: True for the peers only, False for EfficientViT only, None for all.
    """
    names = []
    for entry in _REGISTRY.values():
        if (family is None or entry.family == family) and (peers is None or entry.is_peer == peers):
            names.append(entry.name)
            names.extend(f"{entry.name}_{dataset}" for dataset in entry.datasets)
    return sorted(names)


def entries() -> list[ModelEntry]:
    """The registered entries (one per base name), EfficientViT first, then by name."""
    return sorted(_REGISTRY.values(), key=lambda e: (e.is_peer, e.family, e.name))


def split_dataset_suffix(name: str, dataset: str | None = None) -> tuple[str, str | None]:
    """``"segformer_b0_ade20k"`` -> ("segformer_b0", "ade20k"); a name without a dataset
    suffix keeps ``dataset``."""
    for candidate in DATASETS:
        if name.endswith(f"_{candidate}") and name[: -len(candidate) - 1] in _REGISTRY:
            return name[: -len(candidate) - 1], candidate
    return name, dataset


def model_entry(name: str) -> ModelEntry:
    """The entry of a base name or a ``NAME_DATASET`` variant.

    Raises:
        SpecError: an unknown name (the message lists the registered ones).
    """
    base, _ = split_dataset_suffix(name)
    if base not in _REGISTRY:
        shown = ", ".join(e.name for e in entries())
        raise SpecError(f"unknown network {name!r}; registered networks: {shown} (see `evit-nas models`; "
                        "an ArchSpec JSON file works too)")
    return _REGISTRY[base]


def default_resolution(network: str | Path, dataset: str | None = None) -> tuple[int, int]:
    """The input size a command uses when none is given: a registered network's first
    official resolution, else its dataset's (``dataset``, the name's suffix, or the entry's
    first); Cityscapes' for an ArchSpec file or anything unregistered."""
    base, suffix = split_dataset_suffix(str(network), dataset)
    entry = _REGISTRY.get(base)
    if entry is None:
        return DATASETS[dataset or "cityscapes"].resolution
    if entry.resolutions:
        return entry.resolutions[0]
    return DATASETS[suffix if suffix in entry.datasets else entry.datasets[0]].resolution


def is_peer(name: str) -> bool:
    """Whether ``name`` is a registered peer (a network outside the search space)."""
    base, _ = split_dataset_suffix(name)
    return base in _REGISTRY and _REGISTRY[base].is_peer


def model_datasets(name: str) -> tuple[str, ...]:
    """The datasets a registered network has a configuration for."""
    return model_entry(name).datasets


def model_spec(name: str, dataset: str | None = None) -> NetworkSpec:
    """The spec of a registered network for ``dataset`` (default: the name's suffix, else
    the entry's first dataset): an ArchSpec for EfficientViT, a PeerSpec for a peer.

    Raises:
        SpecError: unknown name or dataset, or a combination with no configuration.
    """
    entry = model_entry(name)
    base, suffix = split_dataset_suffix(name, dataset)
    dataset = suffix or entry.datasets[0]
    if dataset not in DATASETS:
        raise SpecError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}")
    if dataset not in entry.datasets:
        raise SpecError(
            f"{base} has no official {dataset} configuration (official: {', '.join(entry.datasets)}); "
            f"choose another dataset, another network, or write your own ArchSpec JSON"
        )
    return entry.make_spec(dataset)


def resolve_network(network: str | Path, dataset: str | None = None) -> ArchSpec:
    """A registered EfficientViT name (optionally with a dataset suffix) or an ArchSpec JSON file.

    Raises:
        SpecError: an unknown name, a bad file, or a peer (it has no ArchSpec).
    """
    text = str(network)
    if text.endswith(".json") or Path(text).is_file():
        return ArchSpec.from_json(Path(text))
    if is_peer(text):
        raise SpecError(f"{text} is a peer network (outside the search space, not made of its blocks): this command "
                        "takes EfficientViT networks only; peers work with describe, export, latency measure and "
                        "validate")
    return model_spec(text, dataset)


def resolve_any(network: str | Path, dataset: str | None = None) -> NetworkSpec:
    """Like :func:`resolve_network`, and peer names (``segformer_b0``, ``segnext_t_ade20k``, ...) too."""
    text = str(network)
    if is_peer(text):
        return model_spec(text, dataset)
    return resolve_network(network, dataset)
