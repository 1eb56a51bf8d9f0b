"""Static cost of a network (layer 1): fvcore MACs and parameters, per network and per
block (``macs``), and ONNX export with the onnxruntime parity check (``export``).

Imports only the networks below it (``search_space``); the latency tables, the search and
everything above use it.
"""

from .export import DEFAULT_OPSET, export_onnx, onnx_parity
from .macs import (IGNORED_OPS, MacCache, UncountedOpError, block_macs, block_params, count_macs, count_params,
                   mac_cache, stage_costs, use_mac_cache)

__all__ = ["DEFAULT_OPSET", "IGNORED_OPS", "MacCache", "UncountedOpError", "block_macs", "block_params", "count_macs",
           "count_params", "export_onnx", "mac_cache", "onnx_parity", "stage_costs", "use_mac_cache"]
