"""MACs (fvcore's definition) and parameter counts, per network and per block.

A network's MACs at a resolution equal the sum of its blocks' MACs, each counted once per
BlockKey by fvcore and cached, so scoring a candidate is a sum of cached numbers. Counting
a built ``nn.Module`` traces the whole network with fvcore instead; the two agree exactly
(a test checks it).

fvcore counts one multiply-accumulate per fused multiply-add (it says "flop" but counts
MACs): convolutions, matmuls (the linear attention's included), linear layers, BatchNorm
(eval mode: 1 MAC per element, 2 with affine) and bilinear/nearest upsampling. The ops it
reports as unsupported are listed in :data:`IGNORED_OPS` with the reason they are left
out; any other unsupported op is an error, so nothing with real MACs is dropped silently.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from ..blocks import BlockKey, layout, network_blocks
from ..create import build_network
from ..errors import EvitNasError
from ..model import build_block
from ..network import NetworkSpec, PeerSpec
from ..records import write_atomic
from ..spec import ArchSpec, check_resolution

__all__ = ["IGNORED_OPS", "UncountedOpError", "MacCache", "mac_cache", "use_mac_cache", "count_macs", "count_params",
           "block_macs", "block_params", "stage_costs"]

#: Ops that fvcore has no counter for and that we leave out on purpose, with the reason.
IGNORED_OPS: dict[str, str] = {
    "aten::add": "elementwise sums (residual shortcuts, the head's fusion, the attention's eps): no multiply",
    "aten::mul": ("scalar shape arithmetic in the traced graph (tokens = H * W); in the peers also elementwise "
                  "products (layer scale, SegNeXt's attention gating, NMF updates): one multiply, no accumulate"),
    "aten::div": "the linear attention's normalisation: one division per output element",
    "aten::pad": "padding v with a row of ones in the linear attention: a copy",
    "aten::hardswish": "activation: elementwise, no multiply-accumulate",
    "aten::relu": "activation (the attention's ReLU kernel): elementwise",
    "aten::sum": "the quadratic attention's normaliser (tiny inputs only): additions only",
    "aten::gelu": "activation (SegFormer / SegNeXt peers): elementwise, no multiply-accumulate",
    "aten::softmax": "attention and NMF normalisation (peers): exponentials and divisions, no multiply-accumulate",
    "aten::feature_dropout": "Dropout2d before the peers' classifiers: identity at inference",
    "aten::silu": "activation (EfficientNet's swish): elementwise, no multiply-accumulate",
    "aten::sigmoid": "EfficientNet's squeeze-excitation gate: elementwise, no multiply-accumulate",
    "aten::mean": ("EfficientNet's squeeze-excitation pooling: additions only (global pooling is not counted "
                   "elsewhere either)"),
    "aten::upsample_bicubic2d": (
        "fvcore 0.1.5 has no bicubic counter and the official EfficientViT counts (the "
        "golden figures) leave it out; kept out so totals stay comparable with published "
        "numbers. At 16 taps per output it would add 16 x (output elements) MACs"
    ),
}


class UncountedOpError(EvitNasError, RuntimeError):
    """fvcore met an op that has real MACs and no counter."""


def _fvcore_macs(module: nn.Module, example: torch.Tensor, what: str) -> int:
    was_training = module.training
    module.eval()
    try:
        analysis = FlopCountAnalysis(module, example)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # jit tracer warnings about data-dependent branches
            total = int(analysis.total())
        unknown = sorted(set(analysis.unsupported_ops()) - set(IGNORED_OPS))
    finally:
        module.train(was_training)
    if unknown:
        raise UncountedOpError(
            f"fvcore has no MAC counter for {unknown} in {what}; add a handle for it in "
            "search_space/cost/macs.py or list it in IGNORED_OPS with the reason it has no MACs"
        )
    return total


class MacCache:
    """MAC counts by key (a BlockKey, or a peer network at a resolution), kept in memory and
    in one JSON file per fvcore and torch version, so that fvcore traces each block once
    per machine (tens of ms per block, seconds per peer; a search meets hundreds of blocks).

    The file is ``DIR/block_macs-fvcore<v>-torch<v>.json``; a new count is written through
    to it at once (atomically), so the cache needs no shutdown step. A damaged file is
    ignored and rebuilt, never trusted; a file that cannot be written only costs time.

    Args:
        directory: where the file lives; None keeps counts in memory only.
    """

    def __init__(self, directory: str | Path | None) -> None:
        import fvcore

        self.path = None if directory is None else (
            Path(directory) / f"block_macs-fvcore{getattr(fvcore, '__version__', 'x')}-torch{torch.__version__}.json")
        self.entries: dict[str, int] = {}
        self.blocks: dict[BlockKey, int] = {}  # the same counts by BlockKey (no JSON key to build)
        if self.path is not None and self.path.is_file():
            try:
                self.entries = {k: int(v) for k, v in json.loads(self.path.read_text()).items()}
            except (ValueError, AttributeError, OSError):
                self.entries = {}

    @classmethod
    def from_environment(cls) -> MacCache:
        """The cache in ``$EVIT_NAS_CACHE_DIR`` (default ``~/.cache/evit-nas``; ``off``: memory only)."""
        root = os.environ.get("EVIT_NAS_CACHE_DIR", "")
        if root.lower() == "off":
            return cls(None)
        return cls(Path(root) if root else Path.home() / ".cache" / "evit-nas")

    def get(self, key: dict[str, Any]) -> int | None:
        return self.entries.get(json.dumps(key, sort_keys=True))

    def put(self, key: dict[str, Any], macs: int) -> None:
        self.entries[json.dumps(key, sort_keys=True)] = macs
        if self.path is not None:
            try:
                write_atomic(self.path, json.dumps(self.entries))
            except OSError:
                pass


_cache: MacCache | None = None


def mac_cache() -> MacCache:
    """The process's MAC cache, opened from the environment on first use (see :class:`MacCache`)."""
    global _cache
    if _cache is None:
        _cache = MacCache.from_environment()
    return _cache


def use_mac_cache(cache: MacCache | None) -> MacCache | None:
    """Make ``cache`` the process's MAC cache (None: open it from the environment on next
    use); returns the one it replaces."""
    global _cache
    previous, _cache = _cache, cache
    return previous


def block_macs(key: BlockKey) -> int:
    """fvcore MACs of one block at its input size (cached by BlockKey, in memory and on disk)."""
    if key.height <= 0 or key.width <= 0:
        raise ValueError(f"block_macs needs a BlockKey with an input size, got {key.describe()}")
    cache = mac_cache()
    cached = cache.blocks.get(key)
    if cached is None:
        cached = cache.get(key.to_dict())
        if cached is None:
            example = torch.zeros(1, key.in_channels, key.height, key.width)
            cached = _fvcore_macs(build_block(key), example, key.describe())
            cache.put(key.to_dict(), cached)
        cache.blocks[key] = cached
    return cached


def _peer_macs(spec: PeerSpec, resolution: tuple[int, int]) -> int:
    """A peer's fvcore MACs (traced whole, seconds for the large ones; cached on disk)."""
    key = {**spec.to_dict(), "resolution": list(resolution)}
    cache = mac_cache()
    cached = cache.get(key)
    if cached is None:
        cached = _fvcore_macs(build_network(spec), torch.zeros(1, 3, *resolution), spec.name)
        cache.put(key, cached)
    return cached


@functools.lru_cache(maxsize=None)
def block_params(key: BlockKey) -> int:
    """Parameters of one block (independent of the input size; cached)."""
    return sum(p.numel() for p in build_block(key.at(0, 0)).parameters())


def count_macs(model_or_spec: nn.Module | NetworkSpec, resolution: Any) -> int:
    """Multiply-accumulates of one forward pass at batch 1 and input size (H, W).

    Args:
        model_or_spec: an ArchSpec (summed from cached per-block counts: fast), a peer's
            PeerSpec, or any ``nn.Module`` taking (1, 3, H, W) (traced whole by fvcore, in
            eval mode).
        resolution: (H, W) in pixels.

    Returns:
        MACs as an integer.

    Raises:
        SpecError: a resolution that is not (H, W) multiples of 32 (ArchSpec path).
        UncountedOpError: fvcore met an op with no counter that is not in IGNORED_OPS.
    """
    if isinstance(model_or_spec, ArchSpec):
        return sum(block_macs(key) for _, key in network_blocks(model_or_spec, resolution))
    height, width = (int(v) for v in resolution)
    if isinstance(model_or_spec, PeerSpec):
        return _peer_macs(model_or_spec, (height, width))
    if isinstance(getattr(model_or_spec, "spec", None), ArchSpec):
        check_resolution((height, width))
    example = torch.zeros(1, 3, height, width)
    return _fvcore_macs(model_or_spec, example, type(model_or_spec).__name__)


def count_params(model_or_spec: nn.Module | NetworkSpec) -> int:
    """Number of parameters (BatchNorm running statistics are buffers, not counted)."""
    if isinstance(model_or_spec, ArchSpec):
        return sum(block_params(slot.key) for slot in layout(model_or_spec))
    if isinstance(model_or_spec, PeerSpec):
        model_or_spec = build_network(model_or_spec)
    return sum(p.numel() for p in model_or_spec.parameters())


def stage_costs(spec: ArchSpec, resolution: Any) -> dict[str, dict[str, int]]:
    """Parameters, MACs and block count per stage (stem, stage1..stage4, head), in order."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"params": 0, "macs": 0, "blocks": 0})
    for slot, key in network_blocks(spec, resolution):
        entry = out[slot.stage]
        entry["params"] += block_params(slot.key)
        entry["macs"] += block_macs(key)
        entry["blocks"] += 1
    return dict(out)
