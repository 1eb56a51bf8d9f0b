"""Device profiling and latency prediction (latency lookup tables).

``profile.py`` is the part that runs on the device (numpy + onnxruntime only); the rest
runs on a workstation: ``bundle`` exports the ONNX work, ``remote`` drives a device over
SSH, ``build`` turns timings into a table, ``table`` loads tables and predicts, and
``validate`` checks predictions against end-to-end timings.
"""

from .table import LatencyTable, MissingBlocksError, TableError

__all__ = ["LatencyTable", "MissingBlocksError", "TableError"]
