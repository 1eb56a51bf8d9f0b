"""Peers (SegFormer, SegNeXt) on the command line: described, exported, measured end to end,
refused where a table prediction would be needed."""

import json

import numpy as np
import onnxruntime as ort
import pytest

from evit_nas.main import main
from search_space.cost import count_macs, count_params
from search_space.create import build_network, create_model
from search_space.network import PeerSpec

TABLE = "latency_tables/x86_64_xeon_2core_256x512_t1.csv"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_lists_the_peers_for_both_datasets(capsys):
    code, out, _ = run(capsys, "models", "--json")
    rows = {(r["name"], r["dataset"]): r for r in json.loads(out)}
    assert code == 0
    assert rows[("segformer_b3", "cityscapes")]["family"] == "SegFormer"
    assert rows[("segnext_s", "ade20k")]["params"] == count_params(PeerSpec("segnext_s", 150))
    assert rows[("efficientvit_seg_b0", "cityscapes")]["family"] == "EfficientViT"


def test_describe_a_peer(capsys):
    code, out, _ = run(capsys, "describe", "segnext_t_ade20k", "--resolution", "64x128", "--json")
    data = json.loads(out)
    assert code == 0 and data["spec"] == {"peer": "segnext_t", "num_classes": 150} and data["family"] == "SegNeXt"
    assert data["total"]["macs"] == count_macs(PeerSpec("segnext_t", 150), (64, 128)) > 0
    assert data["total"]["params"] == count_params(build_network(PeerSpec("segnext_t", 150)))


def test_export_a_peer_matches_torch_in_onnxruntime(capsys, tmp_path):
    path = tmp_path / "sf.onnx"
    code, out, _ = run(capsys, "export", "segformer_b0", "--resolution", "64x128", "-o", str(path), "--json")
    data = json.loads(out)
    assert code == 0 and data["max_abs_diff"] < 1e-3
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 64, 128), np.float32)})
    assert output.shape == (1, 19, 16, 32)  # SegFormer logits at stride 4


def test_create_model_builds_peers_by_name():
    model = create_model("segnext_s", dataset="ade20k")
    assert count_params(model) == count_params(PeerSpec("segnext_s", 150))


@pytest.mark.slow
def test_latency_measure_times_peers_and_efficientvit_alike(capsys, tmp_path):
    out = tmp_path / "m.csv"
    code, stdout, err = run(capsys, "latency", "measure", "efficientvit_seg_b0", "segnext_t", "--resolution", "64x128",
                            "--warmup", "1", "--repeats", "3", "-o", str(out), "--json")
    data = json.loads(stdout)
    assert code == 0 and "measuring 2 network(s)" in err
    rows = {r["name"]: r for r in data["rows"]}
    assert rows["segnext_t"]["kind"] == "peer" and rows["segnext_t"]["predicted_ms"] is None
    assert rows["efficientvit_seg_b0"]["kind"] == "efficientvit"
    assert all(r["measured_ms"] > 0 and r["p10_ms"] <= r["p90_ms"] for r in rows.values())
    assert rows["segnext_t"]["macs"] == count_macs(PeerSpec("segnext_t", 19), (64, 128))
    text = out.read_text()
    assert text.startswith("# device: ") and "segnext_t,peer," in text and not (tmp_path / "m.csv.work").exists()
    # an existing output is never replaced without --force
    code, _, err = run(capsys, "latency", "measure", "segnext_t", "--resolution", "64x128", "-o", str(out))
    assert code == 2 and "exists" in err and out.read_text() == text


@pytest.mark.slow
def test_latency_measure_with_the_table_pairs_efficientvit_with_its_prediction(capsys):
    code, stdout, _ = run(capsys, "latency", "measure", "efficientvit_seg_b0", "segformer_b0", "--table", TABLE,
                          "--warmup", "1", "--repeats", "2", "--json")
    rows = {r["name"]: r for r in json.loads(stdout)["rows"]}
    assert code == 0 and json.loads(stdout)["threads"] == 1
    assert rows["efficientvit_seg_b0"]["resolution"] == "256x512" and rows["efficientvit_seg_b0"]["predicted_ms"] > 0
    assert rows["segformer_b0"]["predicted_ms"] is None


@pytest.mark.parametrize("argv", [
    ["latency", "predict", "segformer_b0", "--table", TABLE],
    ["spec", "segnext_t"],
])
def test_commands_that_need_an_archspec_refuse_peers_in_one_line(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert "is a peer network" in err and len(err.strip().splitlines()) == 1
