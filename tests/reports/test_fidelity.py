"""int8 fidelity of a network: argmax agreement with fp32 and the mIoU change, for real."""

import pytest
import torch

from latency_tables.quantize import QuantCalibration
from nas.data import SYNTHETIC_CLASSES, open_dataset
from nas.train import evaluate
from reports.fidelity import argmax_fidelity, miou_change
from search_space.create import build_network
from search_space.registry import model_spec

RES = (64, 128)


@pytest.fixture(scope="module")
def b0():
    torch.manual_seed(0)
    return build_network(model_spec("efficientvit_seg_b0").replace(num_classes=len(SYNTHETIC_CLASSES))).eval()


def _images(split, count):
    data = open_dataset("synthetic", split, RES, seed=0, length=count)
    return QuantCalibration(f"synthetic {split}", tuple(data[i][0][None].numpy() for i in range(count)))


def test_argmax_fidelity_names_float_operators(b0):
    result = argmax_fidelity(b0, RES, _images("train", 2), _images("val", 2))
    assert 0 <= result["argmax_agreement_pct"] <= 100
    assert "Resize" in result["float_ops"] and "Conv" not in result["float_ops"]


def test_miou_change_compares_onnx_fp32_with_torch_and_int8(b0):
    train_set = open_dataset("synthetic", "train", RES, seed=0, length=8)
    val_set = open_dataset("synthetic", "val", RES, seed=0, length=3)
    result = miou_change(b0, train_set, val_set, RES, images=3)
    # the fp32 ONNX model scores what the torch model scores on the same images
    assert result["fp32_miou"] == pytest.approx(evaluate(b0, val_set, len(SYNTHETIC_CLASSES))["miou"], abs=0.01)
    assert result["miou_change"] == pytest.approx(result["int8_miou"] - result["fp32_miou"], abs=0.011)
    assert result["images"] == 3 and "Resize" in result["float_ops"]
