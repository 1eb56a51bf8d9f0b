"""The official B0-B3 networks: checkpoint compatibility, parameter counts, golden output."""

import pytest
import torch

from search_space import SpecError, create_model, list_models, load_checkpoint
from search_space.registry import model_spec

from ..conftest import OFFICIAL, official_name


def test_manifest_lists_the_seven_official_models(manifest):
    assert sorted(manifest) == sorted(OFFICIAL)


@pytest.mark.parametrize("full", OFFICIAL)
def test_state_dict_keys_and_shapes_match_official(full, manifest):
    model = create_model(*official_name(full))
    ours = [[key, list(value.shape)] for key, value in model.state_dict().items()]
    assert ours == manifest[full]


@pytest.mark.parametrize("full", OFFICIAL)
def test_parameter_counts_are_exact(full, golden_counts):
    model = create_model(*official_name(full))
    assert sum(p.numel() for p in model.parameters()) == golden_counts[full]["params"]


def test_b0_reproduces_the_official_output(golden_b0):
    model = create_model("efficientvit_seg_b0", dataset="cityscapes").eval()
    model.load_state_dict(golden_b0["state_dict"], strict=True)
    with torch.no_grad():
        out = model(golden_b0["input"])
    assert out.shape == golden_b0["output"].shape == (1, 19, 16, 32)
    assert (out - golden_b0["output"]).abs().max().item() < 1e-4


@pytest.mark.parametrize("wrap", ["raw", "state_dict", "module_prefix"])
def test_checkpoint_files_load(tmp_path, golden_b0, wrap):
    state = golden_b0["state_dict"]
    if wrap == "state_dict":
        payload = {"state_dict": state, "epoch": 3}
    elif wrap == "module_prefix":
        payload = {f"module.{k}": v for k, v in state.items()}
    else:
        payload = state
    path = tmp_path / "ckpt.pt"
    torch.save(payload, path)
    model = create_model("efficientvit_seg_b0", weights=path).eval()
    with torch.no_grad():
        out = model(golden_b0["input"])
    assert (out - golden_b0["output"]).abs().max().item() < 1e-4


def test_checkpoint_for_another_network_is_refused(tmp_path, golden_b0):
    path = tmp_path / "b0.pt"
    torch.save(golden_b0["state_dict"], path)
    model = create_model("efficientvit_seg_b1")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(SpecError, match="does not fit this network.*other shapes"):
        load_checkpoint(model, path)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_checkpoint_errors_name_the_problem(tmp_path):
    with pytest.raises(SpecError, match="checkpoint not found"):
        create_model("efficientvit_seg_b0", weights=tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SpecError, match="not a loadable PyTorch checkpoint"):
        create_model("efficientvit_seg_b0", weights=bad)


def test_b0_ade20k_does_not_exist_officially():
    with pytest.raises(SpecError, match="efficientvit_seg_b0 has no official ade20k configuration"):
        create_model("efficientvit_seg_b0", dataset="ade20k")


def test_unknown_names_list_the_registered_ones():
    with pytest.raises(SpecError, match="unknown network 'efficientvit_seg_b9'.*efficientvit_seg_b0"):
        create_model("efficientvit_seg_b9")
    with pytest.raises(SpecError, match="unknown dataset 'coco'"):
        create_model("efficientvit_seg_b1", dataset="coco")


def test_registry_and_dataset_suffix():
    assert {"efficientvit_seg_b0", "efficientvit_seg_b1", "efficientvit_seg_b2", "efficientvit_seg_b3"} <= set(list_models())
    assert model_spec("efficientvit_seg_b2_ade20k") == model_spec("efficientvit_seg_b2", "ade20k")
    assert model_spec("efficientvit_seg_b2_ade20k").num_classes == 150
    assert model_spec("efficientvit_seg_b2").head_final_expand == 4


def test_uniform_interface_on_every_efficientvit_network():
    # every name, peers included, is checked generically in test_models.py; the
    # EfficientViT networks also give their features by stage name
    x = torch.randn(1, 3, 64, 64)
    for name in list_models(peers=False):
        model = create_model(name).eval()
        with torch.no_grad():
            features = model.forward_features(x)
            out = model.forward_head(features)
        assert [features[f"stage{i}"].shape[-1] for i in range(5)] == [32, 16, 8, 4, 2]
        assert out.shape == (1, model.spec.num_classes, 8, 8)
