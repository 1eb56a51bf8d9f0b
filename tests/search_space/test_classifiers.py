"""The ImageNet classifiers of the backbone comparison: EfficientViT B0-B3 with the official
classification head (parameter counts, the official key layout shared with the segmentation
networks' backbones, any input size), their published rows, and the commands that take them."""

import json

import pytest
import torch

from evit_nas.main import main
from search_space import SpecError, create_model, model_spec
from search_space.cost import count_macs
from search_space.network import check_input_size
from search_space.peers import CLASSIFIERS, PEERS, published
from search_space.registry import default_resolution, model_entry

EFFICIENTVIT_CLS = [n for n in CLASSIFIERS if n.startswith("efficientvit_cls_")]


def test_the_classifiers_are_registered_apart_from_the_segmentation_peers():
    assert EFFICIENTVIT_CLS == ["efficientvit_cls_b0", "efficientvit_cls_b1", "efficientvit_cls_b2",
                                "efficientvit_cls_b3"]
    assert "efficientnet_b6" in CLASSIFIERS and not set(CLASSIFIERS) & set(PEERS)
    for name in CLASSIFIERS:
        entry = model_entry(name)
        assert entry.datasets == ("imagenet",) and entry.output_stride is None and entry.is_peer
        assert model_spec(name).num_classes == 1000
    assert [default_resolution(n) for n in EFFICIENTVIT_CLS] == [(224, 224)] + [(288, 288)] * 3
    assert default_resolution("efficientnet_b6") == (528, 528)


@pytest.mark.parametrize("name", EFFICIENTVIT_CLS)
def test_parameter_counts_match_the_official_release(name):
    # the official table gives 9.1M, 24M and 49M for B1-B3 (B0: 3.4M in the paper)
    rows = published(name)
    params_m = sum(p.numel() for p in create_model(name).parameters()) / 1e6
    expected = rows[0]["params_m"] if rows else 3.4
    assert abs(params_m / expected - 1) < 0.02, (params_m, expected)


@pytest.mark.parametrize("size", [1, 3])
def test_backbone_keys_are_the_segmentation_networks_and_the_head_is_the_official_one(size):
    name = f"efficientvit_cls_b{size}"
    cls_keys = create_model(name).state_dict()
    seg_keys = create_model(f"efficientvit_seg_b{size}").state_dict()
    backbone = {k: v.shape for k, v in seg_keys.items() if k.startswith("backbone.")}
    assert {k: v.shape for k, v in cls_keys.items() if k.startswith("backbone.")} == backbone
    head = sorted(k for k in cls_keys if k.startswith("head."))
    assert head == sorted(
        ["head.op_list.0.conv.weight"] + [f"head.op_list.0.norm.{s}" for s in
                                           ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
        + ["head.op_list.2.linear.weight", "head.op_list.2.norm.weight", "head.op_list.2.norm.bias",
           "head.op_list.3.linear.weight", "head.op_list.3.linear.bias"])
    assert cls_keys["head.op_list.3.linear.weight"].shape == (1000, 1600 if size == 1 else 2560)


def test_a_segmentation_checkpoint_backbone_loads_into_the_classifier(tmp_path):
    seg = create_model("efficientvit_seg_b1").eval()
    cls = create_model("efficientvit_cls_b1").eval()
    state = {k: v for k, v in seg.state_dict().items() if k.startswith("backbone.")}
    state.update({k: v for k, v in cls.state_dict().items() if k.startswith("head.")})
    path = tmp_path / "b1.pt"
    torch.save({"state_dict": state}, path)
    loaded = create_model("efficientvit_cls_b1", weights=path).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(loaded.forward_features(x)["stage_final"], seg.forward_features(x)["stage_final"])


def test_a_classifier_takes_sizes_that_are_not_multiples_of_32():
    model = create_model("efficientvit_cls_b0").eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 100, 75)).shape == (2, 1000)
    assert check_input_size(model_spec("efficientvit_cls_b0"), (100, 75)) == (100, 75)
    with pytest.raises(SpecError, match="multiples of 32"):
        check_input_size(model_spec("efficientvit_seg_b0"), (100, 75))


def test_macs_at_the_official_sizes_are_near_the_published_ones():
    for row in published():
        if row["model"] in EFFICIENTVIT_CLS:
            h, w = (int(v) for v in row["resolution_hw"].split("x"))
            macs_g = count_macs(model_spec(row["model"]), (h, w)) / 1e9
            assert abs(macs_g / row["macs_g"] - 1) < 0.05, (row["model"], row["resolution_hw"], macs_g)


def test_published_rows_give_top1_for_the_backbone_claim():
    b3 = {r["resolution_hw"]: r for r in published("efficientvit_cls_b3")}
    (b6,) = published("efficientnet_b6")
    assert b3["288x288"]["top1"] >= b6["top1"]  # "without performance loss"
    assert round(b6["macs_g"] / b3["288x288"]["macs_g"], 1) == 2.9  # the published 2.9x


def test_describe_a_classifier_at_an_official_size(capsys):
    assert main(["describe", "efficientvit_cls_b3", "--resolution", "288x288", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["resolution"] == [288, 288] and out["total"]["params"] == model_entry("efficientvit_cls_b3").params["imagenet"]
    assert 6.4e9 < out["total"]["macs"] < 6.7e9


def test_describe_refuses_a_dataset_the_classifier_has_no_configuration_for(capsys):
    assert main(["describe", "efficientvit_cls_b0", "--dataset", "cityscapes"]) != 0
    assert "no official cityscapes configuration" in capsys.readouterr().err


def test_commands_that_search_refuse_imagenet(capsys):
    with pytest.raises(SystemExit):
        main(["space", "--dataset", "imagenet"])
    assert "invalid choice: 'imagenet'" in capsys.readouterr().err
