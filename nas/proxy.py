"""Accuracy proxies: a number per network that should rank networks like trained accuracy.

Higher is better for every proxy. Proxies are pluggable: :data:`PROXIES` maps a name to a
factory ``(resolution) -> Proxy``; ``--proxy NAME`` picks one. Which proxy predicts
trained accuracy best is measured against brief training on CamVid
(``benchmarks/camvid_proxies.py``); the best measured is :data:`DEFAULT_PROXY`.

- ``params``: trainable parameters (capacity).
- ``macs``: fvcore MACs at the search resolution (compute).
- ``naswot``: "Neural Architecture Search Without Training" (Mellor et al., ICML 2021):
  the log-determinant of the Hamming kernel of the binary activation patterns of a batch
  at initialisation; networks whose units separate the inputs better score higher. Here the
  patterns are the signs of the inputs of every Hardswish/ReLU (:func:`nas.zero_cost.naswot`).
- ``synflow``: "Pruning neural networks without any data by iteratively conserving
  synaptic flow" (Tanaka et al., NeurIPS 2020), as a NAS proxy (Abdelfattah et al., ICLR
  2021): with every weight replaced by its absolute value and an all-ones input, the sum
  over parameters of |weight x d(sum of outputs)/d(weight)|; reported as its log10
  (:func:`nas.zero_cost.synflow`).
- ``learned``: the accuracy predictor of :mod:`nas.predictor`, fitted on networks that were
  brief-trained (the shipped one: the CamVid study); ``learned:FILE`` reads another fit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn

from search_space import ArchSpec, build_model

from search_space.cost import count_macs, count_params

from . import zero_cost

__all__ = ["DEFAULT_PROXY", "PROXIES", "CapacityProxy", "NaswotProxy", "Proxy", "SynflowProxy", "make_proxy"]


class Proxy(Protocol):
    """Scores a network; higher should mean more accurate after training."""

    name: str

    def __call__(self, spec: ArchSpec) -> float: ...


class CapacityProxy:
    """``params`` or ``macs`` as a proxy (both cached per block, so microseconds)."""

    def __init__(self, name: str, resolution: tuple[int, int]) -> None:
        self.name = name
        self.resolution = resolution

    def __call__(self, spec: ArchSpec) -> float:
        return float(count_params(spec) if self.name == "params" else count_macs(spec, self.resolution))


class _InitialisedProxy:
    """A proxy scoring a freshly initialised network (weights seeded), cached per spec."""

    name: str

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._cache: dict[ArchSpec, float] = {}

    def __call__(self, spec: ArchSpec) -> float:
        if spec not in self._cache:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                model = build_model(spec)
            self._cache[spec] = self._score(model)
        return self._cache[spec]

    def _score(self, model: nn.Module) -> float:
        raise NotImplementedError


class NaswotProxy(_InitialisedProxy):
    """NASWOT score of a freshly initialised network on a fixed random batch (cached per spec).

    Args:
        batch: images in the batch (the kernel is batch x batch).
        resolution: size of the scoring batch (small: the score is about the pattern of
            activations, not the deployment size).
        seed: seed of the weights and of the batch, so a spec always gets the same score.
    """

    name = "naswot"

    def __init__(self, batch: int = 16, resolution: tuple[int, int] = (64, 128), seed: int = 0) -> None:
        super().__init__(seed)
        self.batch, self.resolution = batch, resolution
        generator = torch.Generator().manual_seed(seed)
        self._inputs = torch.randn(batch, 3, *resolution, generator=generator)

    def _score(self, model: nn.Module) -> float:
        return zero_cost.naswot(model, self._inputs, activations=(nn.Hardswish, nn.ReLU))


class SynflowProxy(_InitialisedProxy):
    """log10 SynFlow score of a freshly initialised network (cached per spec). Batch norms
    run in inference mode with their initial statistics, in float64 to avoid overflow."""

    name = "synflow"

    def __init__(self, resolution: tuple[int, int] = (64, 128), seed: int = 0) -> None:
        super().__init__(seed)
        self.resolution = resolution

    def _score(self, model: nn.Module) -> float:
        return zero_cost.synflow(model, torch.empty(1, 3, *self.resolution))  # only the shape is used


#: the search's accuracy objective by default: the best measured against brief training on CamVid
#: at 1,000 steps, the step count where brief training ranks networks (test-retest Spearman 0.84
#: on 10 networks; benchmarks/results/camvid_proxies_1000steps.json): Kendall tau 0.556 for MACs,
#: 0.511 naswot, 0.378 params, 0.244 synflow, and 0.378 for the learned predictor fitted on the 8
#: other networks (it needs more trained networks than there are; at 500 steps on 18 networks its
#: nested leave-one-out tau was 0.49 against 0.24 for MACs, but there the ground truth itself
#: ranked with Spearman 0.53 only)
DEFAULT_PROXY = "macs"

PROXIES: dict[str, Callable[[tuple[int, int]], Any]] = {
    "params": lambda resolution: CapacityProxy("params", resolution),
    "macs": lambda resolution: CapacityProxy("macs", resolution),
    "naswot": lambda resolution: NaswotProxy(),
    "synflow": lambda resolution: SynflowProxy(),
    "learned": lambda resolution: _learned(None),
}


def _learned(path: str | None) -> Any:
    from .predictor import DEFAULT_PREDICTOR, load_predictor

    predictor = load_predictor(path or DEFAULT_PREDICTOR)
    predictor_name = "learned" if path is None else f"learned:{path}"
    return _Named(predictor_name, predictor)


class _Named:
    """A callable scorer with the proxy's name."""

    def __init__(self, name: str, score: Callable[[ArchSpec], float]) -> None:
        self.name, self._score = name, score

    def __call__(self, spec: ArchSpec) -> float:
        return float(self._score(spec))


def make_proxy(name: str, resolution: tuple[int, int]) -> Proxy:
    """The proxy called ``name`` for networks searched at ``resolution``.

    ``learned:FILE`` is the accuracy predictor saved in FILE (``evit-nas predictor fit``).

    Raises:
        ValueError: unknown name (the message lists the known ones).
        PredictorError: ``learned`` with a missing or damaged predictor file.
    """
    if name.startswith("learned:"):
        return _learned(name.split(":", 1)[1])
    if name not in PROXIES:
        raise ValueError(f"unknown proxy {name!r}; choose one of {sorted(PROXIES)}")
    return PROXIES[name](resolution)
