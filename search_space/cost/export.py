"""ONNX export of networks and blocks, and the onnxruntime parity check."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..records import atomic_path

__all__ = ["DEFAULT_OPSET", "export_onnx", "onnx_parity"]

DEFAULT_OPSET = 17


def export_onnx(module: nn.Module, input_shape: tuple[int, ...], path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Export ``module`` (in eval mode, batch and size fixed by ``input_shape``) to ONNX.

    The file is written atomically: an interrupted export leaves no partial file.

    Returns:
        The path written.
    """
    path = Path(path)
    was_training = module.training
    module.eval()
    try:
        with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is fast and needs no extra packages; its notes about
            # constant folding of slices are harmless.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (torch.zeros(*input_shape),),
                tmp,
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["output"],
                do_constant_folding=True,
            )
    finally:
        module.train(was_training)
    return path


def onnx_parity(module: nn.Module, path: str | Path, input_shape: tuple[int, ...], seed: int = 0, threads: int = 1) -> float:
    """Max abs difference between ``module`` (torch, eval) and the ONNX file in onnxruntime,
    on one random normal input drawn with ``seed``."""
    import onnxruntime as ort

    x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(seed))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            want = module(x).numpy()
    finally:
        module.train(was_training)
    return float(np.abs(got - want).max())
