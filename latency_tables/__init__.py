"""Device profiling and latency prediction (layer 2): latency lookup tables.

``bundle`` exports the ONNX work for a device, ``profile.py`` is the device agent that
times it there (a stand-alone script: numpy + onnxruntime, imported by no module),
``remote`` drives a device over SSH, ``build`` turns timings into a table, ``table`` loads
tables and predicts, ``measure`` times whole networks end to end, and ``validate`` checks
predictions against those timings.
"""

from .table import LatencyTable, MissingBlocksError, TableError

__all__ = ["LatencyTable", "MissingBlocksError", "TableError"]
