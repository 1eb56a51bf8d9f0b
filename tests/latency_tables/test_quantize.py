"""int8 as a deployment precision: onnxruntime static quantization of exported models,
int8 bundles and tables (never mixed with fp32), and the CLI's --precision, run for real."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from evit_nas.main import main
from latency_tables.build import import_results, plan_profile, profile_table
from latency_tables.bundle import export_bundle, load_bundle
from latency_tables.quantize import (
    QuantCalibration,
    argmax_agreement,
    float_operators,
    network_edges,
    quantize_int8,
    unit_normal_inputs,
)
from latency_tables.table import LatencyTable, TableError
from search_space.blocks import network_blocks
from search_space.cost import export_onnx
from search_space.registry import model_spec

RES = (64, 128)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


class ConvThenDiv(torch.nn.Module):
    """A convolution (int8 kernel in onnxruntime) followed by x / (|x| + 1) (Div and Abs: none)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.out = torch.nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        return self.out(y / (y.abs() + 1.0))


@pytest.fixture(scope="module")
def conv_div(tmp_path_factory):
    root = tmp_path_factory.mktemp("quant")
    torch.manual_seed(0)
    fp32, int8 = root / "m.onnx", root / "m.int8.onnx"
    export_onnx(ConvThenDiv().eval(), (1, 3, 16, 16), fp32)
    floating = quantize_int8(fp32, int8, unit_normal_inputs((1, 3, 16, 16), 4))
    return fp32, int8, floating


def test_quantized_model_is_qdq_with_per_channel_weights(conv_div):
    _, int8, _ = conv_div
    graph = onnx.load(str(int8)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") >= 2 and ops.count("DequantizeLinear") >= 4
    scales = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    # the first convolution's weight: one scale per output channel (8), uint8 activations
    weight_dq = [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0].startswith("conv.weight")]
    assert weight_dq and scales[weight_dq[0].input[1]].shape == (8,)
    activation_q = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    assert any(scales[n.input[2]].dtype == np.uint8 for n in activation_q if len(n.input) > 2 and n.input[2] in scales)


def test_operators_without_an_int8_kernel_are_named(conv_div):
    fp32, int8, floating = conv_div
    assert floating == float_operators(int8)
    assert "Div" in floating and "Conv" not in floating and "FusedConv" not in floating  # convs became QLinearConv
    # the fp32 model, for contrast: its convolutions are float
    assert {"Conv", "FusedConv"} & set(float_operators(fp32))


def test_int8_outputs_track_fp32(conv_div):
    fp32, int8, _ = conv_div
    agreement = argmax_agreement(fp32, int8, unit_normal_inputs((1, 3, 16, 16), 3, seed=5))
    assert 0.8 <= agreement <= 1.0


def _session(path, optimised=None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if optimised:
        options.optimized_model_filepath = str(optimised)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _qparams(graph, node):
    values = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    return float(values[node.input[1]]), int(values[node.input[2]])


def test_network_edges_compute_what_the_float_edges_do(conv_div, tmp_path):
    """The rewritten model on a uint8 NHWC input gives exactly the quantized output, NHWC, of
    the original on that input dequantized."""
    _, int8, _ = conv_div
    graph = onnx.load(str(int8)).graph
    first = next(n for n in graph.node if n.input[0] == graph.input[0].name)
    last = next(n for n in graph.node if n.output[0] == graph.output[0].name)
    (in_scale, in_zero), (out_scale, out_zero) = _qparams(graph, first), _qparams(graph, last)
    edged = tmp_path / "edged.onnx"
    edged.write_bytes(int8.read_bytes())
    assert network_edges(edged) == ["input", "output"] and network_edges(edged) == []  # a no-op once done
    session = _session(edged)
    [inp], [out] = session.get_inputs(), session.get_outputs()
    assert (inp.type, inp.shape, out.type, out.shape) == ("tensor(uint8)", [1, 16, 16, 3], "tensor(uint8)", [1, 16, 16, 4])
    x = np.random.default_rng(0).integers(0, 256, (1, 16, 16, 3), dtype=np.uint8)
    y = session.run(None, {inp.name: x})[0]
    as_float = ((x.astype(np.float32) - in_zero) * in_scale).transpose(0, 3, 1, 2)
    reference = _session(int8).run(None, {graph.input[0].name: as_float})[0]
    np.testing.assert_allclose((y.astype(np.float32) - out_zero) * out_scale, reference.transpose(0, 2, 3, 1), atol=1e-6)
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(int8.read_bytes())
    assert network_edges(plain, input=False, output=False) == [] and plain.read_bytes() == int8.read_bytes()


def test_int8_blocks_have_the_edges_they_have_inside_a_network(tmp_path):
    """In an int8 network the tensors between blocks are uint8 NHWC; a block of an int8 bundle
    is exported with those edges, except the stem's image input and the classifier's output.
    onnxruntime then cancels them against its NHWC kernels: a head input branch keeps no
    Transpose, so its bicubic upsampling runs channels-last, as in the network (alone with
    float NCHW edges it ran NCHW, 30x slower)."""
    blocks = [key for _, key in network_blocks(model_spec("efficientvit_seg_b0"), RES)]
    manifest = export_bundle(tmp_path, RES, blocks=blocks, precision="int8")
    upsampling = 0
    for entry in manifest["entries"]:
        kind = entry["key"]["kind"]
        session = _session(tmp_path / entry["file"], tmp_path / "optimised.onnx")
        [inp], [out] = session.get_inputs(), session.get_outputs()
        n, c, h, w = entry["input_shape"]
        expected_in = ("tensor(float)", [n, c, h, w]) if kind == "stem_conv" else ("tensor(uint8)", [n, h, w, c])
        assert (inp.type, inp.shape) == expected_in, kind
        assert out.type == ("tensor(float)" if kind == "seg_output" else "tensor(uint8)"), kind
        assert out.shape[-1 if kind != "seg_output" else 1] == entry["key"]["out_channels"], kind
        if kind == "seg_input" and entry["key"]["upsample"] > 1:
            ops = [node.op_type for node in onnx.load(str(tmp_path / "optimised.onnx")).graph.node]
            assert "Resize" in ops and "Transpose" not in ops, ops
            upsampling += 1
    assert upsampling == 2  # B0's head: stage 4 (x4) and stage 3 (x2)


def test_calibration_images_are_resized_to_each_input():
    images = (np.ones((1, 3, 32, 64), np.float32), np.zeros((1, 3, 32, 64), np.float32))
    inputs = QuantCalibration("two images", images).inputs((1, 3, 64, 128))
    assert [x.shape for x in inputs] == [(1, 3, 64, 128)] * 2 and float(inputs[0].mean()) == pytest.approx(1.0)
    assert [x.shape for x in QuantCalibration.unit_normal().inputs((1, 8, 4, 4))] == [(1, 8, 4, 4)] * 4


def test_int8_bundle_records_its_precision_and_float_operators(tmp_path):
    b0 = model_spec("efficientvit_seg_b0")
    fp32 = export_bundle(tmp_path / "fp32", RES, networks=[b0])
    int8 = export_bundle(tmp_path / "int8", RES, networks=[b0], precision="int8")
    assert fp32["precision"] == "fp32" and int8["precision"] == "int8" and int8["calibration"] == "unit-normal tensors"
    assert fp32["bundle_id"] != int8["bundle_id"]  # results of one are never imported into the other
    [entry] = int8["entries"]
    assert entry["file"].endswith(".int8.onnx") and (tmp_path / "int8" / entry["file"]).is_file()
    assert not list((tmp_path / "int8" / "onnx").glob("*.fp32.onnx"))
    assert "Resize" in entry["float_ops"]  # B0's head upsamples in float: named, not silent
    assert load_bundle(tmp_path / "int8")["entries"][0]["float_ops"] == entry["float_ops"]
    # an interrupted export resumes: the int8 file is kept, its float operators read again
    again = export_bundle(tmp_path / "int8", RES, networks=[b0], precision="int8")
    assert again["entries"][0]["float_ops"] == entry["float_ops"]
    with pytest.raises(Exception, match="unknown precision 'int4'"):
        export_bundle(tmp_path / "x", RES, networks=[b0], precision="int4")


@pytest.fixture(scope="module")
def int8_table(tmp_path_factory, space):
    path = tmp_path_factory.mktemp("int8") / "tiny_64x128_t1_int8.csv"
    plan = plan_profile(RES, space, calibration_networks=4, seed=0, precision="int8")
    profile_table(path, plan, device="test-machine", threads=1, warmup=1, repeats=3)
    return path


def test_an_int8_table_is_int8_and_refuses_fp32_use(int8_table, tiny_table, space):
    table = LatencyTable.load(int8_table)
    assert table.precision == "int8" and LatencyTable.load(tiny_table).precision == "fp32"
    assert table.meta["int8_float_ops"]["of"] >= len(table.rows) and table.calibration.networks == 4
    assert table.predict_ms(space.sample(3)) > 0  # searched as an fp32 table is
    with pytest.raises(TableError, match=r"measured in int8, not fp32; a table of one precision is never used"):
        table.check(precision="fp32")
    with pytest.raises(TableError, match="measured in fp32, not int8"):
        plan_profile(RES, space, existing=LatencyTable.load(tiny_table), precision="int8")


def test_an_int8_table_covers_the_same_blocks_as_fp32(int8_table, tiny_table):
    """The same plan in the other precision: the same blocks, each with a positive latency
    (how fast int8 is, is a benchmark's business: benchmarks/speed_claims.py)."""
    int8, fp32 = LatencyTable.load(int8_table), LatencyTable.load(tiny_table)
    assert set(int8.rows) == set(fp32.rows)
    assert all(row["median_ms"] > 0 and row["p10_ms"] <= row["p90_ms"] for row in int8.rows.values())


def test_cli_profile_measure_and_export_in_int8(int8_table, tiny_table, space_file, tmp_path, capsys):
    # latency measure on the int8 table: int8 by default, fp32 refused
    code, out, err = run(capsys, "latency", "measure", "--table", int8_table, "efficientvit_seg_b0", "--repeats", "2",
                         "--warmup", "1", "--json")
    data = json.loads(out)
    assert code == 0 and data["precision"] == "int8" and data["quant_calibration"] == "synthetic: 8 images"
    assert "WARNING: int8: 1 model(s) keep operators in fp32" in err and "Resize" in err
    code, _, err = run(capsys, "latency", "measure", "--table", int8_table, "efficientvit_seg_b0", "--precision", "fp32")
    assert code == 2 and "measured in int8, not fp32" in err and err.count("\n") == 1
    # profiling int8 into an fp32 table is refused, and the table is left as it was
    before = tiny_table.read_bytes()
    code, _, err = run(capsys, "profile", "--resolution", "64x128", "--space", space_file, "--precision", "int8",
                       "-o", tiny_table, "--calibration", "1")
    assert code == 2 and "measured in fp32, not int8" in err and tiny_table.read_bytes() == before
    # export: an int8 ONNX file, its agreement with fp32 on validation images, its float operators
    out_file = tmp_path / "b0_int8.onnx"
    code, out, err = run(capsys, "export", "efficientvit_seg_b0", "--resolution", "64x128", "--precision", "int8",
                         "-o", out_file, "--quant-images", "2", "--json")
    data = json.loads(out)
    assert code == 0 and out_file.is_file() and data["precision"] == "int8" and "Resize" in data["float_ops"]
    assert 0 <= data["argmax_agreement_pct"] <= 100 and data["quant_calibration"] == "synthetic: 2 images"
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.slow
def test_the_device_agent_times_an_int8_bundle_unchanged(space_file, tmp_path, capsys):
    """Export on the workstation, time with the bundle's own agent (numpy + onnxruntime), import."""
    bundle, table = tmp_path / "bundle", tmp_path / "dev_int8.csv"
    code, out, err = run(capsys, "profile", "--device", "dev", "--resolution", "64x128", "--space", space_file,
                         "--calibration", "3", "--precision", "int8", "--export-only", bundle, "-o", table)
    assert code == 0 and "WARNING: int8:" in err
    done = subprocess.run([sys.executable, str(bundle / "profile.py"), "run", str(bundle), "-o",
                           str(tmp_path / "results.csv"), "--repeats", "2", "--warmup", "1"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    code, out, err = run(capsys, "profile", "--import", tmp_path / "results.csv", "--bundle", bundle, "-o", table)
    assert code == 0 and LatencyTable.load(table).precision == "int8"
    manifest = load_bundle(bundle)
    assert import_results(manifest, tmp_path / "results.csv").precision == "int8"
