"""Modules from specs and names: :func:`build_network`, :func:`create_model`, and
:func:`load_checkpoint` for official (or our own) weights."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import peers
from .model import build_model
from .network import NetworkSpec, PeerSpec
from .registry import resolve_any
from .spec import SpecError

__all__ = ["build_network", "create_model", "load_checkpoint"]


def build_network(spec: NetworkSpec) -> nn.Module:
    """A freshly initialised module for ``spec`` (an ArchSpec or a PeerSpec), weights drawn
    from the global torch RNG."""
    if isinstance(spec, PeerSpec):
        return peers.build_peer(spec.name, spec.num_classes)
    return build_model(spec)


def create_model(
    name: str,
    dataset: str | None = None,
    weights: str | Path | None = None,
) -> nn.Module:
    """Build a registered network, e.g. ``create_model("efficientvit_seg_b1", dataset="ade20k")``.

    Args:
        name: a name from :func:`list_models` (EfficientViT B0-B3 and the peers
            ``segformer_b0``..``b3``, ``segnext_t``/``s``; a ``_cityscapes``/``_ade20k``
            suffix also works) or an ArchSpec JSON file.
        dataset: ``"cityscapes"`` (19 classes) or ``"ade20k"`` (150 classes); default: the
            name's suffix, else Cityscapes.
        weights: optional checkpoint file to load (see :func:`load_checkpoint`).

    Raises:
        SpecError: unknown name or dataset, a configuration that has no official
            version (B0 for ADE20K), or weights that do not fit.
    """
    model = build_network(resolve_any(name, dataset))
    if weights is not None:
        load_checkpoint(model, weights)
    return model


def load_checkpoint(model: nn.Module, path: str | Path) -> None:
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
