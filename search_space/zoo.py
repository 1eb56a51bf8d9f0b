"""Named networks: the official EfficientViT B0-B3 segmentation models, and a registry.

A registered entry is a tiny function ``(dataset) -> ArchSpec``; :func:`create_model`
builds it with :func:`build_model` and optionally loads checkpoint weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .spec import ArchSpec, SpecError

if TYPE_CHECKING:
    from .network import NetworkSpec

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "register_model",
    "list_models",
    "model_spec",
    "model_datasets",
    "create_model",
    "load_checkpoint",
    "resolve_network",
    "resolve_any",
    "split_dataset_suffix",
]


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset fixes in a network: classes, the head's final expansion, input size."""

    num_classes: int
    head_final_expand: int | None
    resolution: tuple[int, int]


DATASETS: dict[str, DatasetInfo] = {
    "cityscapes": DatasetInfo(19, 4, (1024, 2048)),
    "ade20k": DatasetInfo(150, None, (512, 512)),
}

_REGISTRY: dict[str, Callable[[str], ArchSpec]] = {}
_DATASETS_OF: dict[str, tuple[str, ...]] = {}


def register_model(*datasets: str) -> Callable[[Callable[[str], ArchSpec]], Callable[[str], ArchSpec]]:
    """Decorator: register ``fn(dataset) -> ArchSpec`` under its function name."""

    def wrap(fn: Callable[[str], ArchSpec]) -> Callable[[str], ArchSpec]:
        _REGISTRY[fn.__name__] = fn
        _DATASETS_OF[fn.__name__] = datasets
        return fn

    return wrap


def list_models() -> list[str]:
    """Registered network names, sorted."""
    return sorted(_REGISTRY)


def model_datasets(name: str) -> tuple[str, ...]:
    """The datasets a registered network has an official configuration for."""
    return _DATASETS_OF[_check_name(name)]


def _check_name(name: str) -> str:
    if name not in _REGISTRY:
        raise SpecError(f"unknown network {name!r}; registered networks: {', '.join(list_models())} (or give an ArchSpec JSON file)")
    return name


def _check_dataset(dataset: str) -> DatasetInfo:
    if dataset not in DATASETS:
        raise SpecError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[dataset]


def model_spec(name: str, dataset: str = "cityscapes") -> ArchSpec:
    """The ArchSpec of a registered network for ``dataset``.

    ``name`` may carry the dataset as a suffix (``efficientvit_seg_b1_ade20k``).

    Raises:
        SpecError: unknown name or dataset, or a combination with no official configuration.
    """
    for candidate in DATASETS:
        suffix = f"_{candidate}"
        if name.endswith(suffix) and name[: -len(suffix)] in _REGISTRY:
            name, dataset = name[: -len(suffix)], candidate
    _check_name(name)
    _check_dataset(dataset)
    if dataset not in _DATASETS_OF[name]:
        raise SpecError(
            f"{name} has no official {dataset} configuration (official: {', '.join(_DATASETS_OF[name])}); "
            f"choose another dataset, another network, or write your own ArchSpec JSON"
        )
    return _REGISTRY[name](dataset)


def _b_series(widths, depths, head_dim: int, head_depth: int, dataset: str) -> ArchSpec:
    info = DATASETS[dataset]
    return ArchSpec(
        widths=tuple(widths),
        depths=tuple(depths),
        expand_ratios=(4, 4, 4, 4),
        head_dim=head_dim,
        scales=(5,),
        attention=((True,) * depths[3], (True,) * depths[4]),
        head_width=widths[2],
        head_depth=head_depth,
        head_expand_ratio=4,
        head_final_expand=info.head_final_expand,
        num_classes=info.num_classes,
    )


@register_model("cityscapes")
def efficientvit_seg_b0(dataset: str) -> ArchSpec:
    # The official release defines B0 for Cityscapes only.
    return _b_series([8, 16, 32, 64, 128], [1, 2, 2, 2, 2], 16, 1, dataset)


@register_model("cityscapes", "ade20k")
def efficientvit_seg_b1(dataset: str) -> ArchSpec:
    return _b_series([16, 32, 64, 128, 256], [1, 2, 3, 3, 4], 16, 3, dataset)


@register_model("cityscapes", "ade20k")
def efficientvit_seg_b2(dataset: str) -> ArchSpec:
    return _b_series([24, 48, 96, 192, 384], [1, 3, 4, 4, 6], 32, 3, dataset)


@register_model("cityscapes", "ade20k")
def efficientvit_seg_b3(dataset: str) -> ArchSpec:
    return _b_series([32, 64, 128, 256, 512], [1, 4, 6, 6, 9], 32, 3, dataset)


def split_dataset_suffix(name: str, dataset: str) -> tuple[str, str]:
    """``"segformer_b0_ade20k"`` -> ("segformer_b0", "ade20k"); names without a suffix keep ``dataset``."""
    for candidate in DATASETS:
        if name.endswith(f"_{candidate}"):
            return name[: -len(candidate) - 1], candidate
    return name, dataset


def resolve_network(network: str | Path, dataset: str = "cityscapes") -> ArchSpec:
    """A registered name (optionally with a dataset suffix) or an ArchSpec JSON file.

    Raises:
        SpecError: also for a peer network (SegFormer / SegNeXt): it has no ArchSpec.
    """
    from .network import is_peer

    text = str(network)
    if text.endswith(".json") or Path(text).is_file():
        return ArchSpec.from_json(Path(text))
    if is_peer(split_dataset_suffix(text, dataset)[0]):
        raise SpecError(f"{text} is a peer network (outside the search space, not made of its blocks): this command "
                        "takes EfficientViT networks only; peers work with describe, export, latency measure and "
                        "validate")
    return model_spec(text, dataset)


def resolve_any(network: str | Path, dataset: str = "cityscapes") -> NetworkSpec:
    """Like :func:`resolve_network`, and peer names (``segformer_b0``, ``segnext_t_ade20k``, ...) too."""
    from .network import PeerSpec, is_peer

    name, dataset = split_dataset_suffix(str(network), dataset)
    if is_peer(name):
        return PeerSpec(name, _check_dataset(dataset).num_classes)
    return resolve_network(network, dataset)


def load_checkpoint(model: torch.nn.Module, path: str | Path) -> None:
    """Load an official (or our own) checkpoint into ``model``, strictly.

    Accepts a raw state_dict or a dict wrapping it under ``"state_dict"`` or ``"model"``
    (the checkpoints of ``evit-nas validate``) (an optional
    ``module.`` prefix from DataParallel training is removed). Loaded with
    ``weights_only=True``: no pickled code runs.

    Raises:
        SpecError: missing file, unreadable file, or keys/shapes that do not match.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise SpecError(f"{path}: not a loadable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    for wrapper in ("state_dict", "model"):  # official checkpoints; ours (evit-nas validate)
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
            break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise SpecError(f"{path}: expected a state_dict (or a dict with 'state_dict'), got {type(data).__name__}")
    if data and all(k.startswith("module.") for k in data):
        data = {k[len("module."):]: v for k, v in data.items()}
    expected = model.state_dict()
    missing = [k for k in expected if k not in data]
    unexpected = [k for k in data if k not in expected]
    wrong = [k for k in expected if k in data and tuple(data[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"{len(missing)} missing (first: {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (first: {unexpected[0]})")
        if wrong:
            k = wrong[0]
            details.append(f"{len(wrong)} with other shapes (first: {k} {list(data[k].shape)} vs {list(expected[k].shape)})")
        raise SpecError(
            f"{path} does not fit this network: {'; '.join(details)}. "
            "Check the network name and the dataset (Cityscapes and ADE20K heads differ)."
        )
    model.load_state_dict(data, strict=True)


def create_model(
    name: str,
    dataset: str = "cityscapes",
    weights: str | Path | None = None,
) -> torch.nn.Module:
    """Build a registered network, e.g. ``create_model("efficientvit_seg_b1", dataset="ade20k")``.

    Args:
        name: a name from :func:`list_models`, or a peer (``segformer_b0``..``b3``,
            ``segnext_t``/``s``); a ``_cityscapes``/``_ade20k`` suffix also works.
        dataset: ``"cityscapes"`` (19 classes) or ``"ade20k"`` (150 classes).
        weights: optional checkpoint file to load (see :func:`load_checkpoint`).

    Raises:
        SpecError: unknown name or dataset, a configuration that has no official
            version (B0 for ADE20K), or weights that do not fit.
    """
    from .network import build_network

    model = build_network(resolve_any(name, dataset))
    if weights is not None:
        load_checkpoint(model, weights)
    return model
