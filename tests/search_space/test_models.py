"""Every registered network, generically (in the manner of timm's model tests): every name
of ``list_models()`` builds with ``create_model``, gives logits of the right shape at its
output stride, splits into ``forward_features`` + ``forward_head``, has the parameter
count its registry entry records, and exports to ONNX with onnxruntime parity."""

import pytest
import torch

from search_space import create_model, list_models, model_spec
from search_space.cost import export_onnx, onnx_parity
from search_space.registry import model_entry, split_dataset_suffix

SIZE = 64
NAMES = list_models()
#: exports of these take seconds each (about 40M weights written to the file); with their
#: ``_dataset`` variants
SLOW_EXPORTS = {"efficientvit_seg_b3", "segformer_b3", "efficientvit_cls_b3", "efficientnet_b6", "hrformer_b"}


def _dataset(name):
    return split_dataset_suffix(name)[1] or model_entry(name).datasets[0]


def test_every_family_and_dataset_variant_is_listed():
    names = set(NAMES)
    peers = {"segformer_b0", "segformer_b1", "segformer_b2", "segformer_b3", "segnext_t", "segnext_s"}
    efficientvit = {"efficientvit_seg_b0", "efficientvit_seg_b1", "efficientvit_seg_b2", "efficientvit_seg_b3"}
    assert peers | efficientvit <= names
    assert {f"{name}_ade20k" for name in peers} <= names and {f"{name}_cityscapes" for name in peers} <= names
    assert {f"{name}_ade20k" for name in efficientvit - {"efficientvit_seg_b0"}} <= names
    assert "efficientvit_seg_b0_ade20k" not in names  # no official ADE20K configuration
    assert NAMES == sorted(NAMES) and len(NAMES) == len(names)
    assert set(list_models(peers=True)) | set(list_models(peers=False)) == names
    assert set(list_models(peers=True)) == {n for n in names if model_entry(n).is_peer}


@pytest.mark.parametrize("name", NAMES)
def test_model_forward_features_head_and_parameter_count(name):
    torch.manual_seed(0)
    entry = model_entry(name)
    classes = model_spec(name).num_classes
    stride = entry.output_stride
    model = create_model(name).eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        out = model(x)
        split = model.forward_head(model.forward_features(x))
    if stride is None:  # a classifier: one logit vector per image
        assert out.shape == (1, classes)
    else:
        assert out.shape == (1, classes, SIZE // stride, SIZE // stride)
    assert torch.isfinite(out).all()
    assert torch.equal(split, out)
    assert sum(p.numel() for p in model.parameters()) == entry.params[_dataset(name)]
    assert _dataset(name) in entry.datasets


#: a ``_cityscapes`` (``_imagenet``) variant is the very network of its base name (its default dataset)
EXPORTED = [n for n in NAMES if not n.endswith(("_cityscapes", "_imagenet"))]


def test_a_cityscapes_variant_is_its_base_network():
    for name in set(NAMES) - set(EXPORTED):
        assert model_spec(name) == model_spec(split_dataset_suffix(name)[0])


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if split_dataset_suffix(n)[0] in SLOW_EXPORTS
                                  else n for n in EXPORTED])
def test_model_exports_to_onnx_with_parity(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name)
    shape = (1, 3, SIZE, SIZE)
    path = export_onnx(model, shape, tmp_path / f"{name}.onnx")
    with torch.no_grad():  # float32 rounding grows with the outputs' size: 1e-4 of the largest, at least 1e-4
        scale = float(model.eval()(torch.randn(*shape, generator=torch.Generator().manual_seed(0))).abs().max())
    assert onnx_parity(model, path, shape) < 1e-4 * max(1.0, scale)
