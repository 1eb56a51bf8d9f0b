"""The table shipped with the project fits the built-in space."""

from pathlib import Path

from latency_tables import LatencyTable
from search_space import SearchSpace
from search_space.registry import model_spec

SHIPPED = Path(__file__).parents[2] / "latency_tables" / "x86_64_xeon_2core_256x512_t1.csv"


def test_shipped_table_covers_the_default_space():
    table = LatencyTable.load(SHIPPED)
    space = SearchSpace.default()
    assert table.meta["arch"] == "x86_64" and table.meta["threads"] == 1 and table.resolution == (256, 512)
    # if this fails, the default space changed: rebuild the table (benchmarks/latency_accuracy.py --rebuild)
    assert table.meta["space_fingerprint"] == space.fingerprint()
    assert table.missing(space.unique_blocks((256, 512))) == []
    assert table.calibration.networks == 40
    predicted = [table.predict_ms(model_spec(f"efficientvit_seg_b{b}")) for b in range(4)]
    assert predicted == sorted(predicted) and predicted[0] > 0
