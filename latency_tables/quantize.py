"""int8 deployment precision: onnxruntime static quantization of an exported fp32 ONNX model.

The int8 model is QDQ (QuantizeLinear/DequantizeLinear pairs around each quantized
operator; onnxruntime fuses them into integer kernels when it loads the model), with
per-channel int8 weights and uint8 activations (U8S8, onnxruntime's recommended format for
x86-64 CPUs, which ARM CPUs also run), activation ranges calibrated by min-max on a few
inputs. Quantization happens where the models are exported; the device agent times the int8
file like any other ONNX model, so a device needs nothing new.

A block of an int8 table is timed as it runs inside an int8 network. There, the tensors
between blocks are uint8 and channels-last (NHWC): onnxruntime's layout transformer runs
the integer kernels in NHWC and cancels the transposes between them. A block exported
alone would start with a QuantizeLinear of a float NCHW input and end with a
DequantizeLinear to float NCHW, and its layout could not be chosen freely: a bicubic
``Resize`` of the head, NHWC inside a network (0.05 ms at 128x256 on a 2-core AMD EPYC),
ran NCHW alone (1.5 ms), and the plain sum of block latencies was 1.3-1.6x the network's.
:func:`network_edges` therefore gives a block's model uint8 NHWC edges (except the image
input of the stem and the network's output): the sum is then 0.83-0.90x the network's
(4 random networks), and an int8 table predicts as well as an fp32 one (README).

Calibration inputs: for a whole network, images of the dataset in use (the caller passes
them); for a block of a latency table, whose input is an inner activation, unit-normal
tensors (what a BatchNorm-ed activation looks like). The calibration ranges change the
scales stored in the model, not the integer kernels that run, so they do not change its
latency; they do change its accuracy (see ``reports`` for the fp32 agreement).

Operators that onnxruntime's quantizer leaves in float (no int8 kernel for them, e.g.
``Resize`` in bicubic mode, ``Div`` and ``ReduceSum`` of the linear attention) run in fp32
between a DequantizeLinear and a QuantizeLinear: :func:`float_operators` names them, and the
export records and reports them; nothing falls back silently.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from dataclasses import dataclass
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from search_space.records import atomic_path

__all__ = ["PRECISIONS", "FLOAT_COMPUTE_OPS", "QuantCalibration", "argmax_agreement", "float_ops_line", "float_operators",
           "network_edges", "quantize_int8", "summarise_float_ops", "table_float_ops_line", "unit_normal_inputs"]

#: the deployment precisions a table, a bundle or a measurement can have
PRECISIONS = ("fp32", "int8")

#: float operators that do arithmetic worth naming (not reshapes, casts, Q/DQ), with
#: onnxruntime's fused float versions
FLOAT_COMPUTE_OPS = frozenset({
    "FusedConv", "FusedMatMul", "FusedGemm", "BiasGelu", "QuickGelu",
    "Conv", "ConvTranspose", "MatMul", "Gemm", "Resize", "Add", "Mul", "Div", "Sub", "Pow", "Sqrt", "ReduceSum",
    "ReduceMean", "Softmax", "Relu", "HardSwish", "HardSigmoid", "Sigmoid", "Gelu", "Erf", "Tanh", "Clip",
    "AveragePool", "GlobalAveragePool", "MaxPool", "LayerNormalization", "BatchNormalization", "InstanceNormalization",
    "Einsum",
})


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of input arrays."""

    def __init__(self, name: str, inputs: Sequence[np.ndarray]) -> None:
        self._items = iter([{name: np.ascontiguousarray(x, dtype=np.float32)} for x in inputs])

    def get_next(self):
        return next(self._items, None)


@dataclass(frozen=True)
class QuantCalibration:
    """What int8 networks are calibrated on: ``name`` (recorded in manifests and tables, e.g.
    "synthetic: 8 images") and ``images``, (1, 3, H, W) float32 arrays normalised as for
    training, resized to each network's input size; no images: unit-normal tensors."""

    name: str
    images: tuple[np.ndarray, ...] = ()

    @classmethod
    def unit_normal(cls) -> QuantCalibration:
        return cls("unit-normal tensors")

    def inputs(self, shape: Sequence[int]) -> list[np.ndarray]:
        if not self.images:
            return unit_normal_inputs(shape)
        import torch
        import torch.nn.functional as F

        size = tuple(int(v) for v in shape[2:])
        out = []
        for image in self.images:
            tensor = torch.from_numpy(np.asarray(image, dtype=np.float32))
            if tuple(tensor.shape[2:]) != size:
                tensor = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)
            out.append(tensor.numpy())
        return out


def unit_normal_inputs(shape: Sequence[int], count: int = 4, seed: int = 0) -> list[np.ndarray]:
    """``count`` standard-normal float32 tensors of ``shape`` (a block's calibration inputs)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(shape)).astype(np.float32) for _ in range(count)]


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, inputs: Sequence[np.ndarray]) -> dict[str, int]:
    """Write the int8 (QDQ) version of the ONNX model at ``fp32_path`` to ``int8_path``,
    calibrated on ``inputs`` (arrays of the model's one input shape).

    Returns:
        The operators left in float, by type (:func:`float_operators`); empty when every
        compute operator is quantized.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not inputs:
        raise ValueError("int8 quantization needs at least one calibration input")
    model = onnx.load(str(fp32_path))
    name = model.graph.input[0].name
    int8_path = Path(int8_path)
    with tempfile.TemporaryDirectory(prefix="evit-nas-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # shape inference and graph clean-up (folds BatchNorm into Conv) before quantizing
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantizer logs notes (e.g. per-channel axes of LayerNorm) on the root logger
        try:
            with atomic_path(int8_path) as partial:
                quantize_static(str(prepared), str(partial), _Reader(name, inputs), quant_format=QuantFormat.QDQ,
                                per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax,
                                extra_options={"CalibTensorRangeSymmetric": False})
        finally:
            root.setLevel(level)
    return float_operators(int8_path)


def network_edges(path: str | Path, *, input: bool = True, output: bool = True) -> list[str]:
    """Rewrite the int8 (QDQ) model at ``path`` in place so that its ``input`` and/or
    ``output`` is a quantized channels-last tensor, as a block's edges are inside an int8
    network (see the module notes): the input's QuantizeLinear becomes a Transpose from a
    uint8 NHWC input, the output's DequantizeLinear a Transpose to a uint8 NHWC output.

    An edge that is not a lone QuantizeLinear / DequantizeLinear is left as it is.

    Returns:
        The edges rewritten ("input", "output").
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    graph = model.graph
    consumers: dict[str, list] = {}
    producers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
        for name in node.output:
            producers[name] = node
    zero_points = {init.name: init.data_type for init in graph.initializer}

    def nhwc(value, quantizer, name):
        n, c, h, w = (d.dim_value for d in value.type.tensor_type.shape.dim)
        elem = zero_points.get(quantizer.input[2], onnx.TensorProto.UINT8) if len(quantizer.input) > 2 else onnx.TensorProto.UINT8
        return helper.make_tensor_value_info(name, elem, [n, h, w, c])

    def replace(old, new):
        position = list(graph.node).index(old)
        graph.node.remove(old)
        graph.node.insert(position, new)

    done = []
    first = graph.input[0]
    users = consumers.get(first.name, [])
    if input and len(users) == 1 and users[0].op_type == "QuantizeLinear":
        quantize = users[0]
        value = nhwc(first, quantize, first.name + "_nhwc")
        replace(quantize, helper.make_node("Transpose", [value.name], [quantize.output[0]], perm=[0, 3, 1, 2],
                                           name="edge_in"))
        graph.input.remove(first)
        graph.input.insert(0, value)
        done.append("input")
    last = graph.output[0]
    dequantize = producers.get(last.name)
    if output and dequantize is not None and dequantize.op_type == "DequantizeLinear" and not consumers.get(last.name):
        value = nhwc(last, dequantize, last.name + "_nhwc")
        replace(dequantize, helper.make_node("Transpose", [dequantize.input[0]], [value.name], perm=[0, 2, 3, 1],
                                             name="edge_out"))
        graph.output.remove(last)
        graph.output.insert(0, value)
        done.append("output")
    if done:
        onnx.checker.check_model(model)
        with atomic_path(path) as tmp:
            onnx.save(model, str(tmp))
    return done


def float_operators(path: str | Path) -> dict[str, int]:
    """The compute operators of an int8 model that run in float on this onnxruntime, counted
    by type: the model is loaded with its graph optimisations (which fuse each
    DequantizeLinear -> op -> QuantizeLinear with an int8 kernel into one ``QLinear*``
    operator) and the float compute operators left in the optimised graph are counted."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="evit-nas-quant-") as tmp:
        optimised = Path(tmp) / "optimised.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(optimised)
        options.log_severity_level = 3
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(str(optimised)).graph
    floating = Counter(node.op_type for node in graph.node if node.op_type in FLOAT_COMPUTE_OPS)
    return dict(sorted(floating.items()))


def _ops_text(ops: dict[str, int]) -> str:
    return ", ".join(f"{op} x{n}" for op, n in ops.items())


def _float_ops_warning(models: str, listed: str) -> str:
    return (f"WARNING: int8: {models} keep operators in fp32 (onnxruntime has no int8 kernel for them; they run in "
            f"float between dequantize and quantize): {listed}")


def float_ops_line(entries: Sequence[dict], label: Callable[[dict], str]) -> str | None:
    """One warning line naming the operators an int8 export left in fp32, per entry
    (``label`` names an entry), or None when there are none (or nothing is int8)."""
    parts = [f"{label(entry)}: {_ops_text(entry['float_ops'])}" for entry in entries if entry.get("float_ops")]
    if not parts:
        return None
    shown = "; ".join(parts[:6]) + (f"; and {len(parts) - 6} more models" if len(parts) > 6 else "")
    return _float_ops_warning(f"{len(parts)} model(s)", shown)


def summarise_float_ops(entries: Sequence[dict]) -> dict:
    """The operators left in fp32 over a bundle's ``entries``, for a table's metadata:
    ``{"models": how many keep some, "of": how many in all, "ops": {op type: count}}``."""
    floating = [e["float_ops"] for e in entries if e.get("float_ops")]
    totals: Counter[str] = Counter()
    for ops in floating:
        totals.update(ops)
    return {"models": len(floating), "of": len(entries), "ops": dict(sorted(totals.items()))}


def table_float_ops_line(summary: dict | None) -> str | None:
    """The warning line of a table's :func:`summarise_float_ops` record, None when there is none."""
    if not summary or not summary.get("ops"):
        return None
    return _float_ops_warning(f"{summary['models']} of the table's models", _ops_text(summary["ops"]))


def argmax_agreement(fp32_path: str | Path, int8_path: str | Path, inputs: Sequence[np.ndarray]) -> float:
    """Share (0-1) of output positions whose class (argmax over channels) is the same for
    the int8 model as for the fp32 one, over ``inputs`` (best on images not used to
    calibrate). For a classifier, the share of inputs with the same top-1 class."""
    import onnxruntime as ort

    sessions = []
    for path in (fp32_path, int8_path):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        sessions.append(ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]))
    same = total = 0
    for x in inputs:
        outputs = [s.run(None, {s.get_inputs()[0].name: np.asarray(x, dtype=np.float32)})[0] for s in sessions]
        classes = [o.argmax(axis=1) for o in outputs]
        same += int((classes[0] == classes[1]).sum())
        total += classes[0].size
    return same / total
