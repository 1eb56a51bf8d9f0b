"""Where a network's time goes: its latency split by operator type, by category (depthwise
conv, pointwise conv, matmul, resize, ...) and by block, measured with onnxruntime's own
profiler.

:func:`explain` exports the network whole (batch 1, fixed input size) to ONNX and loads it
in two onnxruntime sessions set up as the table protocol's (``records.session_options``: CPU
provider, ``threads`` intra-op threads, one inter-op thread, sequential execution, all
graph optimisations); the second has the profiler on. After the warm-up runs, the two are
run in turn (plain, profiled, plain, ...) so that the machine's changes of speed hit both
alike: the plain session's wall-clock median is ``measured_ms``; the profiler's trace gives
each node's kernel time in every run of the other. Per run, the node times are summed per
operator type, category and block, and each group's median over the timed runs is
reported, scaled by the few per cent that make the groups add up to ``profiled_total_ms``
(the median per run of the sum of all node times). ``coverage`` is ``profiled_total_ms /
measured_ms``: what the nodes account for of the wall clock; the rest is the time between
nodes (the session's run overhead, the executor's bookkeeping) and noise.

Operator types are as the profiler names them, after onnxruntime's fusions: a Conv followed
by its BatchNorm and activation runs as one ``Conv`` (or ``FusedConv``) node, and layout
changes of the NCHWc kernels show as ``ReorderInput``/``ReorderOutput``. A convolution's
category comes from its ``group`` attribute in the optimised graph (onnxruntime writes it
with the profiled session, node names matching the trace) and its input and weight shapes
in the trace. Blocks are the first ``block_depth`` components of a node's module path
(``/backbone/stages.2/op_list.1/...`` -> ``backbone/stages.2/op_list.1``); a node that
onnxruntime added, with no path of its own (``ReorderOutput_token_12``), counts with the
block of the node run before it.
"""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
import time
from bisect import bisect_right
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from search_space.cost import export_onnx
from search_space.create import build_network
from search_space.network import NetworkSpec, check_input_size
from search_space.records import cpu_model, session_options

from .bundle import ProfileError
from .quantize import quantize_int8, unit_normal_inputs
from .timing import Timing

__all__ = ["CATEGORIES", "DEFAULT_BLOCK_DEPTH", "OP_TYPE_COLUMNS", "block_of", "categorise", "explain",
           "explain_trace"]

#: the categories, in the order a table lists them when their times tie
CATEGORIES = ("depthwise conv", "pointwise conv", "other conv", "matmul", "resize", "normalisation", "activation",
              "elementwise", "data movement", "quantize", "other")
#: module path components that name a block (backbone/stages.2/op_list.1)
DEFAULT_BLOCK_DEPTH = 3
#: the columns of ``--csv`` (one row per operator type)
OP_TYPE_COLUMNS = ("op_type", "time_ms", "share", "nodes")

#: convolutions, plain and fused (the NCHWc kernels run as "Conv" in their own domain)
CONV_OPS = frozenset({"Conv", "FusedConv", "NhwcConv", "NhwcFusedConv", "QLinearConv", "ConvInteger"})
_OTHER_CONV = frozenset({"ConvTranspose", "DeformConv"})
_MATMUL = frozenset({"MatMul", "Gemm", "Einsum", "FusedMatMul", "FusedGemm", "MatMulInteger", "QLinearMatMul", "QGemm",
                     "MatMulNBits", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "Attention",
                     "MultiHeadAttention"})
_RESIZE = frozenset({"Resize", "Upsample"})
_NORMALISATION = frozenset({"BatchNormalization", "LayerNormalization", "InstanceNormalization",
                            "GroupNormalization", "SimplifiedLayerNormalization", "SkipLayerNormalization",
                            "SkipSimplifiedLayerNormalization", "LpNormalization", "MeanVarianceNormalization",
                            "GroupNorm", "EmbedLayerNormalization"})
_ACTIVATION = frozenset({"Relu", "HardSwish", "HardSigmoid", "Sigmoid", "Gelu", "FastGelu", "BiasGelu", "QuickGelu",
                         "Erf", "Softmax", "LogSoftmax", "Tanh", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Clip",
                         "Softplus", "Softsign", "Mish", "Swish", "ThresholdedRelu", "BiasSoftmax", "QLinearSigmoid",
                         "QLinearLeakyRelu", "QLinearSoftmax"})
_ELEMENTWISE = frozenset({"Add", "Mul", "Div", "Sub", "Pow", "Sqrt", "Reciprocal", "Neg", "Abs", "Exp", "Log",
                          "Max", "Min", "Sum", "Mean", "Where", "Equal", "Less", "Greater", "Not", "And", "Or",
                          "Floor", "Ceil", "Round", "Sign", "Mod", "BiasAdd", "BitShift", "QLinearAdd", "QLinearMul"})
#: int8 models: conversions between float and int8 (the int8 kernels themselves count with their kind)
_QUANTIZE = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})
_DATA_MOVEMENT = frozenset({"Reshape", "Transpose", "Concat", "Slice", "Pad", "Gather", "GatherElements", "GatherND",
                            "Split", "Flatten", "Squeeze", "Unsqueeze", "Expand", "Tile", "Identity", "Cast",
                            "Shape", "Size", "DepthToSpace", "SpaceToDepth", "ReorderInput", "ReorderOutput",
                            "ScatterND", "ScatterElements", "MemcpyFromHost", "MemcpyToHost", "ConstantOfShape",
                            "Range", "NonZero", "TopK", "QLinearConcat"})
_TABLE = {**{op: "matmul" for op in _MATMUL}, **{op: "resize" for op in _RESIZE},
          **{op: "normalisation" for op in _NORMALISATION}, **{op: "activation" for op in _ACTIVATION},
          **{op: "elementwise" for op in _ELEMENTWISE}, **{op: "data movement" for op in _DATA_MOVEMENT},
          **{op: "other conv" for op in _OTHER_CONV}, **{op: "quantize" for op in _QUANTIZE}}
#: what onnxruntime appends to a node's name in the trace
_KERNEL_SUFFIX = "_kernel_time"


def categorise(op_type: str, group: int | None = None, in_channels: int | None = None,
               kernel: Iterable[int] | None = None) -> str:
    """The category of a node of type ``op_type`` (as the profiler names it). A convolution
    (plain or fused) is "depthwise conv" when its ``group`` equals its ``in_channels`` (> 1),
    "pointwise conv" when its ``kernel`` is 1x1 and ``group`` 1, else "other conv" (also
    when what it needs is unknown).

    >>> categorise("FusedConv", group=32, in_channels=32, kernel=(3, 3)), categorise("Conv", 1, 64, (1, 1))
    ('depthwise conv', 'pointwise conv')
    >>> categorise("FusedMatMul"), categorise("ReorderOutput"), categorise("MaxPool")
    ('matmul', 'data movement', 'other')
    """
    if op_type in CONV_OPS:
        if group is not None and in_channels is not None and group > 1 and group == in_channels:
            return "depthwise conv"
        if group == 1 and kernel is not None and all(int(k) == 1 for k in kernel):
            return "pointwise conv"
        return "other conv"
    return _TABLE.get(op_type, "other")


def block_of(node_name: str, depth: int = DEFAULT_BLOCK_DEPTH) -> str | None:
    """The block of a node: the first ``depth`` components of its module path (the last
    component names the operation itself), or None for a name without a path.

    >>> block_of("/backbone/stages.2/op_list.1/context_module/main/qkv/conv/Conv_output_0_nchwc")
    'backbone/stages.2/op_list.1'
    >>> block_of("/head/Resize"), block_of("ReorderOutput_token_3")
    ('head', None)
    """
    if not node_name.startswith("/"):
        return None
    parts = [p for p in node_name.split("/") if p][:-1]
    return "/".join(parts[:depth]) if parts else None


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ProfileError("onnxruntime is not installed; install it with "
                           "`python3 -m pip install onnxruntime`") from None
    return onnxruntime


def _conv_attributes(path: Path) -> dict[str, dict[str, Any]]:
    """Node name -> {"group", "kernel_shape"} of the convolutions of an ONNX file (the
    optimised graph onnxruntime wrote), {} when it cannot be read."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - the shapes in the trace are the fallback
        return {}
    out = {}
    for node in model.graph.node:
        if node.op_type in CONV_OPS or node.op_type in _OTHER_CONV:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute
                     if a.name in ("group", "kernel_shape")}
            out[node.name] = attrs
    return out


def _shape(arg: Any) -> list[int] | None:
    """The dims of one entry of a trace's ``input_type_shape`` ({"float": [1, 16, 64, 128]})."""
    if isinstance(arg, dict) and arg:
        dims = next(iter(arg.values()))
        if isinstance(dims, list) and all(isinstance(d, int) for d in dims):
            return dims
    return None


def _node_category(op_type: str, name: str, args: dict, convs: dict[str, dict[str, Any]]) -> str:
    if op_type not in CONV_OPS:
        return categorise(op_type)
    shapes = [_shape(s) for s in args.get("input_type_shape") or []]
    x = shapes[0] if shapes else None
    attrs = convs.get(name, {})
    if op_type == "QLinearConv":
        # int8 kernels run channels-last (N, H, W, C) with packed weights: the graph's attributes decide
        group = attrs.get("group", 1 if name in convs else None)
        in_channels = x[-1] if x and group is not None and group > 1 and x[-1] == group else (x[1] if x else None)
        return categorise(op_type, group, in_channels, attrs.get("kernel_shape"))
    w = shapes[1] if len(shapes) > 1 else None
    in_channels = x[1] if x and len(x) > 1 else None
    group = attrs.get("group")
    if group is None and in_channels and w and len(w) > 1 and w[1]:
        group = in_channels // w[1]  # group = C_in / (C_in per group); 1 when absent from the graph
    elif group is None and name in convs:
        group = 1  # the attribute's default
    kernel = w[2:] if w and len(w) > 2 else attrs.get("kernel_shape")
    return categorise(op_type, group, in_channels, kernel)


def _median_groups(runs: list[dict[str, float]], total: float) -> dict[str, float]:
    """Each key's median over ``runs`` (0 in a run without it), scaled so that they add up
    to ``total``."""
    keys = {k for run in runs for k in run}
    medians = {k: statistics.median(run.get(k, 0.0) for run in runs) for k in keys}
    scale = total / sum(medians.values()) if sum(medians.values()) > 0 else 0.0
    return {k: v * scale for k, v in medians.items()}


def _rows(key: str, ms: dict[str, float], nodes: dict[str, int], total: float, order: Iterable[str] = ()) -> list[dict]:
    rank = {name: i for i, name in enumerate(order)}
    names = sorted(ms, key=lambda k: (-ms[k], rank.get(k, len(rank)), k))
    return [{key: k, "ms": ms[k], "share": ms[k] / total if total > 0 else 0.0, "nodes": nodes[k]} for k in names]


def explain_trace(events: list[dict], *, skip_runs: int = 0, convs: dict[str, dict[str, Any]] | None = None,
                  block_depth: int = DEFAULT_BLOCK_DEPTH) -> dict[str, Any]:
    """Aggregate an onnxruntime profiler trace (its JSON events) by operator type,
    category and block, leaving out the first ``skip_runs`` runs (the warm-up).

    Node events (``cat == "Node"``, kernel times in µs) belong to the run (``model_run``
    event) whose span holds their start. ``convs``: node name -> {"group", "kernel_shape"}
    of the optimised graph's convolutions.

    Returns:
        {"runs", "profiled_total_ms", "profiled_run_ms" (the runs' own median duration, as
        the profiler saw it), "by_op_type", "by_category", "by_block"}.

    Raises:
        ProfileError: a trace without runs or nodes after ``skip_runs``.
    """
    convs = convs or {}
    spans = sorted((float(e["ts"]), float(e["ts"]) + float(e["dur"])) for e in events
                   if e.get("cat") == "Session" and e.get("name") == "model_run")
    if len(spans) <= skip_runs:
        raise ProfileError(f"the profiler's trace holds {len(spans)} run(s), fewer than the {skip_runs + 1} expected; "
                           "the profile is incomplete (run again)")
    starts = [s for s, _ in spans]
    per_run: list[list[dict]] = [[] for _ in spans]
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith(_KERNEL_SUFFIX):
            continue
        index = bisect_right(starts, float(e["ts"])) - 1
        if index >= 0 and float(e["ts"]) <= spans[index][1]:
            per_run[index].append(e)
    timed = per_run[skip_runs:]
    if not all(timed):
        raise ProfileError("the profiler's trace has a run without node times; run again (a newer onnxruntime "
                           "may name its events differently)")
    runs_by: dict[str, list[dict[str, float]]] = {"op_type": [], "category": [], "block": []}
    nodes: dict[str, dict[str, int]] = {"op_type": {}, "category": {}, "block": {}}
    totals = []
    for number, run in enumerate(timed):
        sums: dict[str, dict[str, float]] = {k: {} for k in runs_by}
        counts: dict[str, dict[str, int]] = {k: {} for k in runs_by}
        block = "(unnamed)"
        for e in sorted(run, key=lambda e: float(e["ts"])):
            name = e["name"][:-len(_KERNEL_SUFFIX)]
            args = e.get("args") or {}
            op_type = str(args.get("op_name") or name)
            block = block_of(name, block_depth) or block  # an added node: the block of the one before
            keys = {"op_type": op_type, "category": _node_category(op_type, name, args, convs), "block": block}
            ms = float(e["dur"]) / 1e3
            for kind, key in keys.items():
                sums[kind][key] = sums[kind].get(key, 0.0) + ms
                counts[kind][key] = counts[kind].get(key, 0) + 1
        for kind, kind_runs in runs_by.items():
            kind_runs.append(sums[kind])
            if number == 0:
                nodes[kind] = counts[kind]
            else:  # a run may skip a node (an If branch): keep the most seen
                for key, n in counts[kind].items():
                    nodes[kind][key] = max(n, nodes[kind].get(key, 0))
        totals.append(sum(sums["op_type"].values()))
    total = statistics.median(totals)
    return {
        "runs": len(timed),
        "profiled_total_ms": total,
        "profiled_run_ms": statistics.median((end - start) / 1e3 for start, end in spans[skip_runs:]),
        "by_op_type": _rows("op_type", _median_groups(runs_by["op_type"], total), nodes["op_type"], total),
        "by_category": _rows("category", _median_groups(runs_by["category"], total), nodes["category"], total,
                             CATEGORIES),
        "by_block": _rows("block", _median_groups(runs_by["block"], total), nodes["block"], total),
    }


def explain(
    spec: NetworkSpec,
    resolution: tuple[int, int],
    timing: Timing = Timing(),
    work_dir: str | Path | None = None,
    *,
    name: str | None = None,
    block_depth: int = DEFAULT_BLOCK_DEPTH,
) -> dict[str, Any]:
    """Where ``spec``'s time goes at ``resolution`` (H, W), batch 1, on this machine, in
    ``timing.precision`` (int8: quantized as ``--precision int8`` does, :mod:`.quantize`,
    calibrated on unit-normal inputs, which change its scales but not its kernels).

    Args:
        timing: ``threads`` (onnxruntime intra-op threads), ``warmup`` (untimed runs of
            each session first), ``repeats`` (timed runs of each session, plain for the
            wall clock, profiled for the node times, taken in turn); on this machine only.
        work_dir: folder for the ONNX file, the optimised graph and the profiler's trace
            (kept); default: a temporary folder, removed afterwards.
        name: the network's label in the result (default: its summary).
        block_depth: module path components that name a block.

    Returns:
        {"network", "resolution", "threads", "warmup", "repeats", "measured_ms" (median
        wall clock of a plain run), "profiled_total_ms" (median per run of the node times'
        sum), "coverage" (their ratio), "profiled_run_ms" (median run as the profiler saw
        it), "block_depth", "by_op_type" / "by_category" / "by_block" (rows of the key,
        "ms", "share" of profiled_total_ms and "nodes" per run, by ms descending),
        "onnxruntime", "cpu", "arch"}.

    Raises:
        ProfileError: a bad block depth, a remote ``timing``, onnxruntime missing, or an
            unreadable profile.
        SpecError: a resolution the network cannot take.
    """
    if block_depth < 1:
        raise ProfileError(f"the block depth must be >= 1 (got {block_depth})")
    if timing.remote is not None:
        raise ProfileError("onnxruntime's profiler runs on this machine only; explain without --remote")
    height, width = check_input_size(spec, resolution)
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="evit-nas-explain-") as tmp:
            return explain(spec, (height, width), timing, tmp, name=name, block_depth=block_depth)
    threads, warmup, repeats, precision = timing.threads, timing.warmup, timing.repeats, timing.precision
    ort = _onnxruntime()
    import numpy as np

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    model = export_onnx(build_network(spec), (1, 3, height, width), work / "network.onnx")
    float_ops: dict[str, int] = {}
    if precision == "int8":
        float_ops = quantize_int8(model, work / "network.int8.onnx", unit_normal_inputs((1, 3, height, width)))
        model = work / "network.int8.onnx"
    plain = ort.InferenceSession(str(model), session_options(ort, threads), providers=["CPUExecutionProvider"])
    options = session_options(ort, threads)
    options.enable_profiling = True
    options.profile_file_prefix = str(work / "profile")
    options.optimized_model_filepath = str(work / "optimised.onnx")  # names as in the trace; groups of the convs
    profiled = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
             for i in plain.get_inputs()}
    for _ in range(warmup):
        plain.run(None, feeds)
        profiled.run(None, feeds)
    times = []
    for _ in range(repeats):  # in turn, so that a slow phase of the machine hits both alike
        start = time.perf_counter()
        plain.run(None, feeds)
        times.append(time.perf_counter() - start)
        profiled.run(None, feeds)
    trace = Path(profiled.end_profiling())
    try:
        events = json.loads(trace.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProfileError(f"onnxruntime's profile {trace} is unreadable ({exc}); run again") from None
    summary = explain_trace(events, skip_runs=warmup, convs=_conv_attributes(work / "optimised.onnx"),
                            block_depth=block_depth)
    measured_ms = statistics.median(times) * 1e3
    return {
        "network": name or spec.summary(),
        "resolution": [height, width],
        "threads": threads,
        "warmup": warmup,
        "repeats": repeats,
        "measured_ms": measured_ms,
        "profiled_total_ms": summary["profiled_total_ms"],
        "coverage": summary["profiled_total_ms"] / measured_ms,
        "profiled_run_ms": summary["profiled_run_ms"],
        "block_depth": block_depth,
        "precision": precision,
        "float_ops": float_ops,
        "by_op_type": summary["by_op_type"],
        "by_category": summary["by_category"],
        "by_block": summary["by_block"],
        "onnxruntime": ort.__version__,
        "cpu": cpu_model(),
        "arch": platform.machine(),
    }
