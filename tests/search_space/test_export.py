"""ONNX export runs in onnxruntime and matches torch."""

import onnx
import pytest

from search_space.cost import export_onnx, onnx_parity
from search_space import ArchSpec, build_model, create_model
from search_space.registry import model_spec


def test_b0_with_official_weights_matches_in_onnxruntime(tmp_path, golden_b0):
    model = create_model("efficientvit_seg_b0")
    model.load_state_dict(golden_b0["state_dict"])
    path = export_onnx(model, (1, 3, 128, 256), tmp_path / "b0.onnx")
    onnx.checker.check_model(str(path))
    assert onnx_parity(model, path, (1, 3, 128, 256)) < 1e-3


@pytest.mark.parametrize(
    "changes, resolution",
    [
        ({"scales": [], "attention": [[False, False], [False, False]]}, (64, 128)),  # no attention at all
        ({"scales": [3, 5, 7], "attention": [[True, False], [False, True]]}, (128, 128)),
        ({"head_final_expand": None, "head_depth": 0}, (32, 64)),  # stage4 is 1x2: quadratic attention
    ],
)
def test_variants_export_with_parity(tmp_path, changes, resolution):
    spec = ArchSpec.from_dict({**model_spec("efficientvit_seg_b0").to_dict(), **changes})
    model = build_model(spec)
    # non-trivial BatchNorm statistics, so that the check sees real signal
    for module in model.modules():
        if hasattr(module, "running_var"):
            module.running_var.uniform_(0.5, 1.5)
            module.running_mean.normal_(0, 0.1)
    path = export_onnx(model, (1, 3, *resolution), tmp_path / "net.onnx")
    assert onnx_parity(model, path, (1, 3, *resolution)) < 1e-3


def test_export_leaves_no_temporary_files(tmp_path):
    export_onnx(create_model("efficientvit_seg_b0"), (1, 3, 64, 64), tmp_path / "b0.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["b0.onnx"]
