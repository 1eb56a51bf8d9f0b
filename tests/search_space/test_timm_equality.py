"""The ImageNet classifiers against timm (1.0.31), the field's standard model library:
``efficientvit_cls_b0``..``b3`` against timm's ``efficientvit_b0``..``b3`` and
``efficientnet_b6`` against timm's ``tf_efficientnet_b6`` (TF "SAME" padding, as ours).
Equal parameter counts, and equal logits once our weights are loaded into timm's model.

timm is installed without its dependencies (``pip install --no-deps timm``): it declares
torchvision, and the only torchvision wheels for torch 2.13 here are CUDA builds that cannot
load against the CPU torch ("operator torchvision::nms does not exist"). timm imports
torchvision at import time, for its data transforms, datasets and ``FrozenBatchNorm2d``; none
of it is used by the two model families compared here. So timm is imported with an empty
placeholder package standing in for torchvision, removed again right after the import. The
model code that is compared, timm's ``efficientvit_mit.py`` and ``efficientnet.py``, runs
unchanged; a placeholder object reaching a forward pass would fail loudly, not silently.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import re
import sys
import types

import pytest
import torch

from search_space.ops import LiteMLA
from search_space.peers.efficientnet import build as build_efficientnet
from search_space.peers.efficientvit_cls import build as build_efficientvit


class _Placeholder(type):
    """A class whose every attribute is another placeholder class (enough for module-level
    ``class X(transforms.Y)`` and ``InterpolationMode.BILINEAR`` in timm's data code)."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(name, (object,), {})

    def __call__(cls, *args, **kwargs):
        return _Placeholder("instance", (object,), {})

    def __or__(cls, other):
        return cls


class _TorchvisionPlaceholder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []

        def attribute(name):
            if name.startswith("__"):
                raise AttributeError(name)
            return _Placeholder(name, (object,), {})

        module.__getattr__ = attribute
        return module

    def exec_module(self, module):
        pass


@pytest.fixture(scope="module")
def timm():
    if "torchvision" in sys.modules:
        pytest.fail("torchvision is already imported: this test needs it absent (see the module docstring)")
    finder = _TorchvisionPlaceholder()
    sys.meta_path.insert(0, finder)
    try:
        import timm as module
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
    assert module.__version__ == "1.0.31"
    return module


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: Our (official) EfficientViT classifier names -> timm's, as regular-expression rewrites.
_EFFICIENTVIT_RULES = (
    (r"backbone\.input_stem\.op_list\.0\.", lambda m: "stem.in_conv."),
    (r"backbone\.input_stem\.op_list\.(\d+)\.", lambda m: f"stem.res{int(m[1]) - 1}."),
    (r"backbone\.stages\.(\d+)\.op_list\.(\d+)\.", lambda m: f"stages.{m[1]}.blocks.{m[2]}."),
    (r"head\.op_list\.0\.", lambda m: "head.in_conv."),
    (r"head\.op_list\.2\.linear\.", lambda m: "head.classifier.0."),
    (r"head\.op_list\.2\.norm\.", lambda m: "head.classifier.1."),
    (r"head\.op_list\.3\.linear\.", lambda m: "head.classifier.4."),
)


def _timm_key(key: str) -> str:
    for pattern, rewrite in _EFFICIENTVIT_RULES:
        match = re.match(pattern, key)
        if match:
            return rewrite(match) + key[match.end():]
    raise KeyError(f"no timm name for {key!r}")


def _randomise(model: torch.nn.Module) -> None:
    """Every float tensor redrawn (BatchNorm variances positive), so that each carries signal
    and a tensor loaded into the wrong place changes the logits."""
    torch.manual_seed(0)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if key.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif tensor.dim() == 4:  # convolutions at variance-preserving scale
                tensor.normal_(0.0, tensor[0].numel() ** -0.5)
            elif tensor.dim() == 2:
                tensor.normal_(0.0, tensor.shape[1] ** -0.5)
            else:
                tensor.normal_(0.0, 0.1).add_(1.0 if key.endswith(".weight") else 0.0)


def _logits(model, size, seed=1):
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(x)


def _timm_efficientvit(timm, variant, ours):
    """timm's ``efficientvit_{variant}`` with the official attention epsilon. timm's port adds
    1e-5 to the linear attention's normaliser where the official code (and ours) adds 1e-15;
    that constant is the one difference, and it is set here to ours, on every attention module."""
    (eps,) = {m.eps for m in ours.modules() if isinstance(m, LiteMLA)}
    model = timm.create_model(f"efficientvit_{variant}", pretrained=False).eval()
    attention = [m for m in model.modules() if type(m).__name__ == "LiteMLA"]
    assert attention and all(m.eps == 1e-5 for m in attention)
    for module in attention:
        module.eps = eps
    return model


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("variant, size", [("b0", (224, 224)), ("b1", (256, 256)), ("b2", (288, 288)), ("b3", (224, 224))])
def test_efficientvit_classifier_equals_timm(timm, variant, size):
    ours = build_efficientvit(f"efficientvit_cls_{variant}", 1000).eval()
    theirs = _timm_efficientvit(timm, variant, ours)
    assert _params(ours) == _params(theirs)
    _randomise(ours)
    mapped = {_timm_key(k): v for k, v in ours.state_dict().items()}
    assert sorted(mapped) == sorted(theirs.state_dict())  # a one-to-one mapping of every tensor
    theirs.load_state_dict(mapped, strict=True)
    want, got = _logits(theirs, size), _logits(ours, size)
    assert got.shape == want.shape == (2, 1000)
    assert want.std() > 0.05  # not two near-constant outputs
    assert (got - want).abs().max() < 1e-6


def test_efficientvit_comparison_sees_a_swapped_tensor(timm):
    """Control: the two depthwise kernels of one multi-scale aggregation swapped with another
    block's moves timm's logits well past the tolerance."""
    ours = build_efficientvit("efficientvit_cls_b0", 1000).eval()
    theirs = _timm_efficientvit(timm, "b0", ours)
    _randomise(ours)
    mapped = {_timm_key(k): v for k, v in ours.state_dict().items()}
    a, b = "stages.2.blocks.1.context_module.main.aggreg.0.0.weight", "stages.2.blocks.2.context_module.main.aggreg.0.0.weight"
    mapped[a], mapped[b] = mapped[b], mapped[a]
    theirs.load_state_dict(mapped, strict=True)
    assert (_logits(theirs, (224, 224)) - _logits(ours, (224, 224))).abs().max() > 1e-3


def test_efficientnet_b6_equals_timm(timm):
    """Ours uses timm's ``tf_efficientnet_b6`` names, so the state_dict loads as it is. The input
    is small and odd-sized, so that "SAME" padding is asymmetric at every stride-2 layer."""
    ours = build_efficientnet("efficientnet_b6", 1000).eval()
    theirs = timm.create_model("tf_efficientnet_b6", pretrained=False).eval()
    assert _params(ours) == _params(theirs)
    _randomise(ours)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    want, got = _logits(theirs, (67, 93)), _logits(ours, (67, 93))
    assert want.std() > 0.05
    assert (got - want).abs().max() < 1e-6
