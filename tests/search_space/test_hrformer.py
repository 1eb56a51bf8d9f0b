"""HRFormer-S / -B + OCR: sizes against the published numbers, shapes, the features/head
split, determinism, window attention locality, ONNX parity, fvcore MACs and gradients."""

import pytest
import torch

from search_space.cost import count_macs, export_onnx, onnx_parity
from search_space.peers.hrformer import HRFORMER_CONFIGS, WindowAttention, build

torch.set_num_threads(1)

CLASSES = {"cityscapes": 19, "ade20k": 150}
SMALL = (64, 128)

#: Published parameter counts (millions) of HRFormer + OCR, one figure per model for every
#: dataset: the HRFormer paper's semantic segmentation comparison (arXiv 2110.09408,
#: "#param." of HRFormer-S + OCR 13.5M and HRFormer-B + OCR 56.2M), repeated for ADE20K
#: (512x512: 109.5 / 280.0 GFLOPs) and Cityscapes (1024x2048: 835.7 / 2223.8 GFLOPs) in the
#: SegNeXt paper's comparison table (arXiv 2209.08575). Not the ImageNet classifiers'
#: 13.5M / 50.3M (HRNet/HRFormer README, classification table).
PUBLISHED_PARAMS_M = {
    ("hrformer_s", "cityscapes"): 13.5,
    ("hrformer_s", "ade20k"): 13.5,
    ("hrformer_b", "cityscapes"): 56.2,
    ("hrformer_b", "ade20k"): 56.2,
}


def _calibrated(name: str, num_classes: int, resolution: tuple[int, int]) -> torch.nn.Module:
    """A seeded model whose BatchNorm statistics come from two training-mode passes, so
    that eval-mode activations have trained-like magnitudes (fresh statistics leave the
    residual streams at ~1e3, where float32 noise alone exceeds the parity bound)."""
    torch.manual_seed(0)
    model = build(name, num_classes)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(2, 3, *resolution))
    return model.eval()


@pytest.mark.parametrize(("name", "dataset"), sorted(PUBLISHED_PARAMS_M))
def test_parameter_counts_match_published(name, dataset):
    params_m = sum(p.numel() for p in build(name, CLASSES[dataset]).parameters()) / 1e6
    published = PUBLISHED_PARAMS_M[(name, dataset)]
    assert abs(params_m / published - 1) < 0.02, (params_m, published)


def test_backbone_widths_and_head_input():
    assert HRFORMER_CONFIGS["hrformer_s"].widths == (32, 64, 128, 256)
    assert HRFORMER_CONFIGS["hrformer_b"].widths == (78, 156, 312, 624)
    model = build("hrformer_s", 19)
    assert model.head.pixel[0].in_channels == 480  # 32 + 64 + 128 + 256, as the official head
    assert model.head.pixel[0].kernel_size == (3, 3)


@pytest.mark.parametrize("name", sorted(HRFORMER_CONFIGS))
def test_output_shape_at_stride_4(name):
    model = build(name, 19).eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(2, 3, *SMALL))
        out = model.forward_head(features)
    widths = HRFORMER_CONFIGS[name].widths
    assert [tuple(f.shape) for f in features] == [
        (2, c, SMALL[0] // s, SMALL[1] // s) for c, s in zip(widths, (4, 8, 16, 32))
    ]
    assert out.shape == (2, 19, SMALL[0] // 4, SMALL[1] // 4)
    assert torch.isfinite(out).all()


def test_other_multiples_of_32_need_no_special_sizes():
    model = build("hrformer_s", 7).eval()
    with torch.no_grad():
        for size in ((32, 32), (96, 160), (224, 224)):  # 224: every branch a multiple of 7, no padding
            assert model(torch.randn(1, 3, *size)).shape == (1, 7, size[0] // 4, size[1] // 4)


def test_features_and_head_split_equals_forward():
    torch.manual_seed(0)
    model = build("hrformer_s", 19).eval()
    x = torch.randn(1, 3, *SMALL)
    with torch.no_grad():
        assert torch.equal(model(x), model.forward_head(model.forward_features(x)))


def test_build_is_deterministic_for_a_seed():
    torch.manual_seed(0)
    first = build("hrformer_s", 19).state_dict()
    torch.manual_seed(0)
    second = build("hrformer_s", 19).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_window_attention_stays_inside_its_window():
    torch.manual_seed(0)
    attn = WindowAttention(16, 2, 7).eval()
    x = torch.randn(1, 10, 12, 16)  # padded to 14 x 14: pad rows 2 / 2, columns 1 / 1
    y = attn(x)
    assert y.shape == x.shape
    x2 = x.clone()
    x2[0, 0, 0] += 1.0  # the first window holds rows 0-4 and columns 0-5 (the rest is padding)
    changed = (attn(x2) - y).abs().amax(dim=-1)[0] > 0
    assert changed[:5, :6].all()
    assert not changed[5:].any() and not changed[:, 6:].any()


def test_relative_position_bias_depends_on_offset_only():
    attn = WindowAttention(8, 2, 3)
    torch.nn.init.normal_(attn.relative_position_bias)
    bias = attn._bias()  # heads, 9, 9 over positions (row * 3 + col)
    assert bias.shape == (2, 9, 9)
    assert torch.equal(bias[:, 0, 4], bias[:, 4, 8])  # both an offset of (-1, -1)
    assert not torch.equal(bias[:, 0, 4], bias[:, 4, 0])


@pytest.mark.slow
def test_onnx_export_matches_torch(tmp_path):
    model = _calibrated("hrformer_s", 19, SMALL)
    shape = (1, 3, *SMALL)
    path = export_onnx(model, shape, tmp_path / "hrformer_s.onnx")
    assert onnx_parity(model, path, shape) < 1e-4


@pytest.mark.slow
def test_fvcore_counts_every_op():
    model = build("hrformer_s", 19).train()
    macs = count_macs(model, SMALL)  # raises UncountedOpError on an op with no counter
    assert model.training
    assert 3.0e9 < macs < 4.0e9


def test_a_training_step_gives_finite_gradients_everywhere():
    torch.manual_seed(0)
    model = build("hrformer_s", 5).train()
    model(torch.randn(2, 3, *SMALL)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []
