"""The evit-nas command line: outputs, JSON, exit codes and error messages."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evit_nas.main import main
from search_space.cost import count_macs
from search_space import ArchSpec
from search_space.space import SearchSpace
from search_space.registry import model_spec

EVIT_NAS = Path(sys.executable).parent / "evit-nas"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_console_script_runs_and_fails_cleanly():
    ok = subprocess.run([EVIT_NAS, "models"], capture_output=True, text=True)
    assert ok.returncode == 0 and "efficientvit_seg_b3" in ok.stdout
    bad = subprocess.run([EVIT_NAS, "describe", "efficientvit_seg_b0", "--dataset", "ade20k"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "evit-nas: error: efficientvit_seg_b0 has no official ade20k configuration (official: cityscapes); "
        "choose another dataset, another network, or write your own ArchSpec JSON"
    ]
    assert "Traceback" not in bad.stderr


def test_models_json(capsys):
    code, out, _ = run(capsys, "models", "--json")
    rows = json.loads(out)
    assert code == 0
    assert {(r["name"], r["dataset"]) for r in rows} >= {("efficientvit_seg_b0", "cityscapes"), ("efficientvit_seg_b3", "ade20k")}
    assert next(r for r in rows if r["name"] == "efficientvit_seg_b2" and r["dataset"] == "cityscapes")["params"] == 15323779


def test_describe_json_totals_are_the_fvcore_counts(capsys):
    code, out, _ = run(capsys, "describe", "efficientvit_seg_b1", "--resolution", "512x1024", "--json", "--blocks")
    data = json.loads(out)
    assert code == 0
    assert data["resolution"] == [512, 1024]
    assert data["total"]["macs"] == count_macs(model_spec("efficientvit_seg_b1"), (512, 1024))
    assert data["total"]["params"] == 4803443
    assert sum(b["macs"] for b in data["blocks"]) == data["total"]["macs"]
    assert ArchSpec.from_dict(data["spec"]) == model_spec("efficientvit_seg_b1")


def test_describe_text_has_units_and_never_says_flops(capsys):
    code, out, _ = run(capsys, "describe", "efficientvit_seg_b0")
    assert code == 0
    assert "0.707 M params, 4.580 G MACs" in out
    assert "FLOP" not in out.upper()


def test_spec_file_round_trip_through_the_cli(tmp_path, capsys):
    path = tmp_path / "net.json"
    assert run(capsys, "spec", "--sample", "5", "-o", str(path))[0] == 0
    assert ArchSpec.from_json(path) == SearchSpace.default().sample(5)
    code, out, _ = run(capsys, "describe", str(path), "--resolution", "128x256", "--json")
    assert code == 0 and json.loads(out)["total"]["macs"] == count_macs(SearchSpace.default().sample(5), (128, 256))
    # an existing file is not overwritten without --force
    before = path.read_text()
    code, _, err = run(capsys, "spec", "efficientvit_seg_b0", "-o", str(path))
    assert code == 2 and "exists; choose another output path or pass --force" in err
    assert path.read_text() == before


def test_export_checks_parity_and_keeps_existing_files(tmp_path, capsys):
    out_path = tmp_path / "b0.onnx"
    code, out, _ = run(capsys, "export", "efficientvit_seg_b0", "--resolution", "64x128", "-o", str(out_path), "--json")
    result = json.loads(out)
    assert code == 0 and out_path.is_file()
    assert result["max_abs_diff"] < 1e-3
    size = out_path.stat().st_size
    code, _, err = run(capsys, "export", "efficientvit_seg_b1", "--resolution", "64x128", "-o", str(out_path))
    assert code == 2 and "exists" in err
    assert out_path.stat().st_size == size


def test_export_with_bad_quant_data_fails_before_any_work_and_leaves_nothing(tmp_path, capsys):
    # it used to export the fp32 model first and leave x.onnx.fp32.partial (2.9 MB) behind
    code, _, err = run(capsys, "export", "efficientvit_seg_b0", "--precision", "int8", "--resolution", "128x256",
                       "-o", str(tmp_path / "x.onnx"), "--quant-data", "/nonexistent")
    assert code == 2 and "unknown dataset '/nonexistent'" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("module, step, precision", [
    ("search_space.cost", "onnx_parity", "fp32"),
    ("latency_tables.quantize", "quantize_int8", "int8"),
    ("latency_tables.quantize", "argmax_agreement", "int8"),  # after the int8 model was written
])
def test_a_failed_export_leaves_no_file(module, step, precision, tmp_path, capsys, monkeypatch):
    import importlib

    def fail(*args, **kwargs):
        raise RuntimeError(f"{step} failed")

    monkeypatch.setattr(importlib.import_module(module), step, fail)
    with pytest.raises(RuntimeError, match=f"{step} failed"):
        main(["export", "efficientvit_seg_b0", "--resolution", "64x128", "--precision", precision,
              "--quant-images", "1", "-o", str(tmp_path / "x.onnx")])
    assert list(tmp_path.iterdir()) == []


def test_export_with_an_official_checkpoint(tmp_path, capsys, golden_b0):
    import onnxruntime as ort
    import torch

    ckpt = tmp_path / "b0.pt"
    torch.save({"state_dict": golden_b0["state_dict"]}, ckpt)
    out_path = tmp_path / "b0.onnx"
    code, out, _ = run(capsys, "export", "efficientvit_seg_b0", "--resolution", "128x256", "--weights", str(ckpt),
                       "-o", str(out_path), "--json")
    assert code == 0 and json.loads(out)["max_abs_diff"] < 1e-3
    session = ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": golden_b0["input"].numpy()})[0]
    assert abs(got - golden_b0["output"].numpy()).max() < 1e-3


@pytest.mark.parametrize(
    "argv, message",
    [
        (["describe", "efficientvit_seg_b7"], "unknown network 'efficientvit_seg_b7'; registered networks: efficientvit_seg_b0"),
        (["describe", "missing.json"], "ArchSpec file not found: missing.json"),
        (["spec"], "give a NETWORK"),
    ],
)
def test_user_errors_are_one_clear_line(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_bad_resolution_is_rejected_in_one_line(capsys):
    # a segmentation network needs multiples of 32 (a classifier takes any size: test_classifiers.py)
    code, _, err = run(capsys, "describe", "efficientvit_seg_b0", "--resolution", "1000x2000")
    assert code == 2 and "H and W must be positive multiples of 32" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exc:
        main(["describe", "efficientvit_seg_b0", "--resolution", "0x2000"])
    assert exc.value.code == 2


def test_bad_spec_file_names_the_field(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**model_spec("efficientvit_seg_b0").to_dict(), "depths": [1, 2, 2, 2]}))
    code, _, err = run(capsys, "describe", str(path))
    assert code == 2 and "ArchSpec.depths: expected 5 integers" in err


def test_space_summary_json(capsys):
    code, out, _ = run(capsys, "space", "--resolution", "512x1024", "--resolution", "1024x2048", "--json")
    data = json.loads(out)
    space = SearchSpace.default()
    assert code == 0
    assert data["size"] == space.size()
    assert data["unique_blocks"]["512x1024"]["total"] == len(space.unique_blocks((512, 1024)))
    assert set(data["official_networks"].values()) == {"in the space"}


def test_space_writes_the_unique_blocks_as_csv(tmp_path, capsys):
    path = tmp_path / "blocks.csv"
    assert run(capsys, "space", "--resolution", "256x512", "--blocks-csv", str(path))[0] == 0
    lines = path.read_text().splitlines()
    assert lines[0].startswith("resolution,kind,in_channels,out_channels,height,width")
    assert len(lines) - 1 == len(SearchSpace.default().unique_blocks((256, 512)))
    assert run(capsys, "space", "--resolution", "256x512", "--blocks-csv", str(path))[0] == 2  # no overwrite


def test_public_names_import_from_the_package():
    import search_space

    for name in ("ArchSpec", "SearchSpace", "build_model", "create_model", "list_models"):
        assert hasattr(search_space, name)
