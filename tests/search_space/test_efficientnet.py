"""EfficientNet-B6 against an independent implementation, lukemelas' ``efficientnet_pytorch``
(0.7.1): the same parameter count, and the same logits once its weights are copied in."""

import re

import pytest
import torch

from search_space.peers.efficientnet import DepthwiseSeparable, InvertedResidual, SameConv2d, build

import efficientnet_pytorch  # noqa: E402  (a dev dependency: CI installs it)
from efficientnet_pytorch.utils import Conv2dDynamicSamePadding  # noqa: E402

_TF_PAD = SameConv2d._same_pad

#: Published (and timm's) parameter count of EfficientNet-B6 with the 1000-class head.
B6_PARAMS = 43_040_704

#: efficientnet_pytorch's names inside one block -> ours (timm's), by block kind.
_DS_NAMES = {
    "_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pw", "_bn2": "bn2",
}
_IR_NAMES = {
    "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
    "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pwl", "_bn2": "bn3",
}
_TOP_NAMES = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def _theirs(image_size=None):
    """lukemelas' B6; ``image_size=None`` overrides the 528 that ``from_name`` would set and
    gives TF "SAME" padding computed from each input (Conv2dDynamicSamePadding)."""
    model = efficientnet_pytorch.EfficientNet.from_name("efficientnet-b6", image_size=image_size)
    model.set_swish(memory_efficient=False)  # plain x * sigmoid(x), no custom autograd function
    return model


def _key_map(ours, theirs) -> dict[str, str]:
    """Their state_dict key -> ours."""
    positions = [(s, i) for s, stage in enumerate(ours.blocks) for i in range(len(stage))]
    assert len(positions) == len(theirs._blocks) == 45
    mapping = {}
    for key in theirs.state_dict():
        module, rest = key.split(".", 1)
        if module != "_blocks":
            mapping[key] = f"{_TOP_NAMES[module]}.{rest}"
            continue
        index, module, rest = rest.split(".", 2)
        block = theirs._blocks[int(index)]
        stage, position = positions[int(index)]
        expected = InvertedResidual if hasattr(block, "_expand_conv") else DepthwiseSeparable
        assert isinstance(ours.blocks[stage][position], expected)
        names = _IR_NAMES if expected is InvertedResidual else _DS_NAMES
        mapping[key] = f"blocks.{stage}.{position}.{names[module]}.{rest}"
    return mapping


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a busy two-core machine two threads wait on each other at
    each of the ~220 small convolutions (seconds per forward instead of ~0.2 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pair():
    """Ours and theirs, in eval mode, with the same weights: theirs drawn at random, then
    copied into ours. Convolutions are redrawn at variance-preserving scale, normal(0,
    sqrt(1 / fan_in)) (with PyTorch's default init the output hardly depends on the input),
    and BatchNorm statistics and affines are random, so that every tensor carries signal."""
    torch.manual_seed(0)
    theirs = _theirs().eval()
    with torch.no_grad():
        for module in theirs.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.normal_(0.0, module.weight[0].numel() ** -0.5)
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
    ours = build("efficientnet_b6", 1000).eval()
    mapping = _key_map(ours, theirs)
    mine = ours.state_dict()
    assert sorted(mapping.values()) == sorted(mine)  # every key of ours used, exactly once
    for their_key, tensor in theirs.state_dict().items():
        assert mine[mapping[their_key]].shape == tensor.shape, their_key
    ours.load_state_dict({mapping[k]: v for k, v in theirs.state_dict().items()}, strict=True)
    return ours, theirs


def test_parameter_count_matches_efficientnet_pytorch_and_the_paper(pair):
    ours, theirs = pair
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters()) == B6_PARAMS


def test_reference_uses_dynamic_same_padding(pair):
    _, theirs = pair
    assert theirs._global_params.image_size is None
    assert isinstance(theirs._conv_stem, Conv2dDynamicSamePadding)
    assert all(isinstance(b._depthwise_conv, Conv2dDynamicSamePadding) for b in theirs._blocks)


ODD, EVEN = (1, 3, 67, 93), (2, 3, 64, 64)


def _logits(model, shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("shape", [ODD, EVEN])
def test_logits_match_efficientnet_pytorch(pair, shape):
    ours, theirs = pair
    want, got = _logits(theirs, shape), _logits(ours, shape)
    assert got.shape == (shape[0], 1000)
    assert want.std() > 0.05  # not two near-constant outputs
    assert (got - want).abs().max() < 1e-4


def test_comparison_sees_the_padding_side(pair, monkeypatch):
    """Control: padding the stride-2 convolutions the other way round (the odd extra row and
    column at the top and left instead of the bottom and right) moves the logits well past
    the tolerance."""
    ours, theirs = pair
    want = _logits(theirs, ODD)
    monkeypatch.setattr(SameConv2d, "_same_pad", staticmethod(lambda *a: _TF_PAD(*a)[::-1]))
    assert (_logits(ours, ODD) - want).abs().max() > 1e-3  # 10x the tolerance


def test_state_dict_uses_timm_names():
    model = build("efficientnet_b6", 10)
    assert [len(stage) for stage in model.blocks] == [3, 6, 6, 8, 8, 11, 3]
    top = r"(conv_stem|bn1|conv_head|bn2|classifier)"
    se = r"se\.conv_(reduce|expand)"
    ds = rf"blocks\.0\.\d+\.(conv_dw|bn1|{se}|conv_pw|bn2)"
    ir = rf"blocks\.[1-6]\.\d+\.(conv_pw|bn1|conv_dw|bn2|{se}|conv_pwl|bn3)"
    pattern = re.compile(rf"({top}|{ds}|{ir})\.(weight|bias|running_mean|running_var|num_batches_tracked)")
    assert [k for k in model.state_dict() if not pattern.fullmatch(k)] == []
    assert model.classifier.weight.shape == (10, 2304)
    assert model.blocks[0][0].se.conv_reduce.weight.shape == (14, 56, 1, 1)  # int(56 * 0.25)
    assert model.blocks[6][2].conv_pwl.weight.shape == (576, 3456, 1, 1)


def test_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"unknown EfficientNet 'efficientnet_b9'; known: efficientnet_b6"):
        build("efficientnet_b9", 10)
