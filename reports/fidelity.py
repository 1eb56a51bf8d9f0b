"""int8 fidelity: how far a network's int8 version strays from its fp32 one.

- :func:`argmax_fidelity`: the share of output pixels whose class (argmax) is the same for
  the int8 ONNX model as for the fp32 one, on held-out images (not the calibration ones);
  works for any network, trained or not.
- :func:`miou_change`: for a network that ``evit-nas validate`` trained briefly, its mIoU
  on the validation split in fp32 and in int8 (both as ONNX models at the training input
  size), and the change.

Both quantize exactly as ``--precision int8`` does (:func:`latency_tables.quantize.quantize_int8`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from latency_tables.quantize import QuantCalibration, argmax_agreement, quantize_int8
from search_space.cost import export_onnx
from search_space.network import NetworkSpec

from .page import section_html, table_html

__all__ = ["FIDELITY_COLUMNS", "FIDELITY_IMAGES", "argmax_fidelity", "fidelity_section", "int8_fidelity_rows",
           "miou_change"]

#: calibration images, and held-out images compared
FIDELITY_IMAGES = 8


def _int8_pair(model: torch.nn.Module, shape: tuple[int, ...], calibration: QuantCalibration, folder: Path):
    fp32, int8 = folder / "fp32.onnx", folder / "int8.onnx"
    export_onnx(model.eval(), shape, fp32)
    float_ops = quantize_int8(fp32, int8, calibration.inputs(shape))
    return fp32, int8, float_ops


def argmax_fidelity(model: torch.nn.Module, resolution: tuple[int, int], calibration: QuantCalibration,
                    held_out: QuantCalibration) -> dict[str, Any]:
    """``{"argmax_agreement_pct", "float_ops"}`` of ``model`` at ``resolution`` (H, W),
    calibrated on ``calibration``'s images and compared on ``held_out``'s."""
    shape = (1, 3, *resolution)
    with tempfile.TemporaryDirectory(prefix="evit-nas-fidelity-") as tmp:
        fp32, int8, float_ops = _int8_pair(model, shape, calibration, Path(tmp))
        agreement = argmax_agreement(fp32, int8, held_out.inputs(shape))
    return {"argmax_agreement_pct": round(100 * agreement, 2), "float_ops": float_ops}


def miou_change(model: torch.nn.Module, train_set: Any, val_set: Any, resolution: tuple[int, int],
                images: int = 16) -> dict[str, Any]:
    """mIoU (%) of ``model`` in fp32 and int8 ONNX at ``resolution`` over the first ``images``
    of ``val_set`` (each resized to ``resolution``: bilinear image, nearest label), int8
    calibrated on :data:`FIDELITY_IMAGES` images spread over ``train_set``."""
    import onnxruntime as ort

    from nas.train import confusion_matrix, miou

    def resized(dataset, index):
        image, label = dataset[index]
        if tuple(image.shape[-2:]) != tuple(resolution):
            image = F.interpolate(image[None], size=resolution, mode="bilinear", align_corners=False)[0]
            label = F.interpolate(label[None, None].float(), size=resolution, mode="nearest")[0, 0].long()
        return image[None].numpy().astype(np.float32), label

    step = max(1, len(train_set) // FIDELITY_IMAGES)
    calibration = QuantCalibration("train split", tuple(resized(train_set, i * step)[0]
                                                        for i in range(min(FIDELITY_IMAGES, len(train_set)))))
    classes = train_set.num_classes
    shape = (1, 3, *resolution)
    result: dict[str, Any] = {"images": min(images, len(val_set))}
    with tempfile.TemporaryDirectory(prefix="evit-nas-fidelity-") as tmp:
        fp32, int8, result["float_ops"] = _int8_pair(model, shape, calibration, Path(tmp))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        for tag, path in (("fp32", fp32), ("int8", int8)):
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            matrix = torch.zeros(classes, classes, dtype=torch.long)
            for index in range(result["images"]):
                image, label = resized(val_set, index)
                logits = torch.from_numpy(session.run(None, {name: image})[0])
                if tuple(logits.shape[-2:]) != tuple(resolution):
                    logits = F.interpolate(logits, size=resolution, mode="bilinear", align_corners=False)
                matrix += confusion_matrix(logits[0].argmax(0), label, classes)
            result[f"{tag}_miou"] = round(miou(matrix)[0], 2)
    result["miou_change"] = round(result["int8_miou"] - result["fp32_miou"], 2)
    return result


#: the columns of int8_fidelity.csv
FIDELITY_COLUMNS = ("network", "weights", "resolution", "argmax_agreement_pct", "fp32_miou", "int8_miou", "miou_change",
                    "images", "float_ops")


def int8_fidelity_rows(networks: Sequence[tuple[str, NetworkSpec]], resolution: tuple[int, int],
                       attrs: dict[str, Any], log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """How far int8 strays from fp32 for the report of an int8 table: for each compared
    network at ``resolution`` (random weights, seed 0), the share of pixels of
    :data:`FIDELITY_IMAGES` synthetic validation images that keep their fp32 class (int8
    calibrated on as many synthetic training images); and for each network ``evit-nas
    validate`` trained for the study (its checkpoint), the mIoU on its validation data in
    fp32 and in int8."""
    from nas.data import image_arrays, open_dataset
    from nas.validate import open_datasets
    from search_space.create import build_network

    from .validation import trained_networks

    def images(split):
        data = open_dataset("synthetic", split, tuple(resolution), seed=0, length=FIDELITY_IMAGES)
        return QuantCalibration(f"synthetic {split}", image_arrays(data, FIDELITY_IMAGES))

    calibration, held_out = images("train"), images("val")
    size = "x".join(map(str, resolution))
    rows = []
    log(f"int8 fidelity of {len(networks)} network(s) at {size}")
    for label, spec in networks:
        torch.manual_seed(0)
        result = argmax_fidelity(build_network(spec), tuple(resolution), calibration, held_out)
        rows.append({"network": label, "weights": "random (seed 0)", "resolution": size,
                     "argmax_agreement_pct": result["argmax_agreement_pct"], "images": FIDELITY_IMAGES,
                     "float_ops": " ".join(f"{op}x{n}" for op, n in result["float_ops"].items())})
    names = sorted({v["network"] for k, v in attrs.items() if k.startswith("validation:") and isinstance(v, dict)})
    for name, (model, record) in trained_networks(attrs, names).items():
        train_set, val_set = open_datasets(record["dataset"], record["resolution"])
        result = miou_change(model, train_set, val_set, tuple(record["resolution"]))
        rows.append({"network": name, "weights": f"trained {record['steps']} steps on {record['dataset']}",
                     "resolution": "x".join(map(str, record["resolution"])), "fp32_miou": result["fp32_miou"],
                     "int8_miou": result["int8_miou"], "miou_change": result["miou_change"], "images": result["images"],
                     "float_ops": " ".join(f"{op}x{n}" for op, n in result["float_ops"].items())})
    return rows


def fidelity_section(rows: list[dict[str, Any]], resolution: str) -> str:
    """The "int8 against fp32" section of the report of an int8 table."""
    return section_html(
        "int8-fidelity", "int8 against fp32", table_html(rows, FIDELITY_COLUMNS)
        + f"<p class='note'>The table is int8 (onnxruntime static quantization, QDQ, per-channel int8 weights, uint8 "
        f"activations). <b>argmax_agreement_pct</b>: share of output pixels whose class is the same in int8 as in "
        f"fp32 at {resolution}, on synthetic validation images, int8 calibrated on synthetic training images "
        "(random weights: no trained weights can be downloaded here). <b>fp32_miou, int8_miou</b>: networks "
        "trained by <code>evit-nas validate</code> for this study, evaluated as ONNX models on their validation data "
        "at the training size. <b>float_ops</b>: operators onnxruntime runs in fp32 (no int8 kernel). "
        '<a href="int8_fidelity.csv">int8_fidelity.csv</a></p>')
