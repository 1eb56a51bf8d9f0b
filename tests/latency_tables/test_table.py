"""LatencyTable: file format, checks, prediction, calibration."""

import math

import numpy as np
import pytest

from latency_tables.table import (
    FEATURES, IDENTITY, Calibration, LatencyTable, MissingBlocksError, TableError, fit_calibration, input_mb,
)
from search_space.blocks import BLOCK_KINDS

from .conftest import RES


def synthetic_table(space, coefficients=None) -> LatencyTable:
    """A table whose block latency is a simple function of the key (no timing needed)."""
    rows = {}
    for key in space.unique_blocks(RES):
        ms = 0.01 + key.in_channels * key.out_channels * key.height * key.width * 1e-9 + 0.05 * len(key.scales)
        rows[key] = {"median_ms": ms, "p10_ms": ms * 0.9, "p90_ms": ms * 1.2, "runs": 20.0, "raw_median_ms": ms, "ref_ms": 1.0}
    meta = {"format": "evit-nas-latency-table", "version": 1, "device": "synthetic", "cpu": "none", "arch": "x86_64",
            "os": "Linux", "onnxruntime": "1.32.0", "threads": 1, "resolution": list(RES), "date": "2026-11-26",
            "space_fingerprint": space.fingerprint(), "coverage": "space", "reference": {"network": "b0", "median_ms": 1.0}}
    return LatencyTable(meta, rows, Calibration({**IDENTITY, **(coefficients or {})}))


def test_save_load_round_trip(tmp_path, space):
    table = synthetic_table(space, {"scale_litemla": 1.1, "constant_ms": 0.25, "per_input_mb_ms": -0.5})
    path = tmp_path / "t.csv"
    table.save(path)
    again = LatencyTable.load(path)
    assert again.rows.keys() == table.rows.keys()
    assert all(math.isclose(again.rows[k]["median_ms"], v["median_ms"], rel_tol=1e-5) for k, v in table.rows.items())
    assert again.calibration == table.calibration
    spec = space.sample(3)
    assert again.predict_ms(spec) == pytest.approx(table.predict_ms(spec), rel=1e-5)


def test_prediction_is_the_calibrated_sum(space):
    scale = {k: 1.0 + 0.1 * i for i, k in enumerate(BLOCK_KINDS)}
    coefficients = {**{f"scale_{k}": v for k, v in scale.items()}, "per_block_ms": 0.02, "per_input_mb_ms": -0.3,
                    "constant_ms": 0.5}
    table = synthetic_table(space, coefficients)
    spec = space.sample(1)
    keys = space.blocks(spec, RES)
    want = 0.5 + sum(scale[k.kind] * table.rows[k]["median_ms"] + 0.02 - 0.3 * input_mb(k) for k in keys)
    assert table.predict_ms(spec, RES) == pytest.approx(want)
    stages = table.breakdown_ms(spec)
    assert sum(stages.values()) == pytest.approx(want)


def test_fit_calibration_recovers_known_corrections():
    rng = np.random.default_rng(0)
    x = np.c_[rng.uniform(0.1, 5.0, size=(60, len(BLOCK_KINDS))), rng.integers(10, 40, 60), rng.uniform(1, 20, 60), np.ones(60)]
    true = np.array([0.8, 1.0, 0.9, 1.2, 1.1, 1.0, 0.01, -0.05, 0.3])
    cal = fit_calibration(x, x @ true, prior_weight=1e-9)
    assert cal.vector() == pytest.approx(true, abs=1e-4)
    assert cal.fit_mape < 0.01 and cal.networks == 60
    assert list(cal.coefficients) == list(FEATURES)


def test_calibration_keeps_the_rescaled_prior_for_kinds_never_seen():
    rng = np.random.default_rng(1)
    x = np.c_[rng.uniform(0.1, 5.0, size=(20, len(BLOCK_KINDS))), rng.integers(10, 40, 20), rng.uniform(1, 20, 20), np.ones(20)]
    x[:, BLOCK_KINDS.index("dsconv")] = 0.0
    cal = fit_calibration(x, x[:, :6].sum(1) * 1.3)
    assert cal.coefficients["scale_dsconv"] == pytest.approx(1.3)  # the typical measured / plain-sum ratio
    assert 1.1 < cal.coefficients["scale_mbconv"] < 1.5
    assert cal.cv_mape is not None and cal.prior_weight is not None


def test_refuses_other_resolutions_threads_spaces_and_architectures(space):
    table = synthetic_table(space)
    with pytest.raises(TableError, match=r"was measured at 64x128, not 128x256; use a table for 128x256"):
        table.predict_ms(space.sample(0), (128, 256))
    with pytest.raises(TableError, match=r"threads=1, not 4; build a matching table, or pass --force"):
        table.check(threads=4)
    assert table.check(threads=4, force=True) == [
        "WARNING: the table was measured with threads=1, not 4; its latencies may not hold here"]
    with pytest.raises(TableError, match="built for another search space"):
        table.check(space_fingerprint="0123456789abcdef")
    with pytest.raises(TableError, match=r"measured on x86_64, and this machine is aarch64; run the measurement on the table's device"):
        table.check(arch="aarch64")


def test_missing_blocks_are_listed_with_the_fix(space):
    table = synthetic_table(space)
    spec = space.sample(2)
    dropped = space.blocks(spec, RES)[1]
    del table.rows[dropped]
    with pytest.raises(MissingBlocksError, match=r"no entry for 1 block\(s\) this network needs \(.*\)\. Measure them with `evit-nas profile \.\.\. --blocks-from SPEC.json") as exc:
        table.predict_ms(spec)
    assert exc.value.missing == [dropped]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda t: t.replace("evit-nas-latency-table", "something-else"), "not an evit-nas latency table"),
        (lambda t: t[: len(t) // 2], "truncated|wrong number of fields|is not a number|bad "),
        (lambda t: t.replace(",median_ms,", ",median,"), r"column\(s\) \['median_ms'\] missing"),
        (lambda t: "\n".join(l for l in t.splitlines() if not l.startswith("# threads")) + "\n", r"metadata \['threads'\] missing"),
        (lambda t: _set_first_median(t, "-1"), "not a latency"),
        (lambda t: _set_first_median(t, "nan"), "not a latency"),
        (lambda t: _set_first_median(t, "fast"), "is not a number"),
        (lambda t: t + t.splitlines()[-1] + "\n", "appears twice"),
        (lambda t: t.replace("\"coefficients\"", "\"coeffs\""), "unreadable calibration"),
    ],
)
def test_damaged_tables_give_one_clear_error(tmp_path, space, damage, message):
    path = tmp_path / "t.csv"
    synthetic_table(space).save(path)
    path.write_text(damage(path.read_text()))
    with pytest.raises(TableError, match=message):
        LatencyTable.load(path)


def _set_first_median(text: str, value: str) -> str:
    lines = text.splitlines()
    header = next(i for i, l in enumerate(lines) if not l.startswith("#"))
    columns = lines[header].split(",")
    cells = lines[header + 1].split(",")
    cells[columns.index("median_ms")] = value
    lines[header + 1] = ",".join(cells)
    return "\n".join(lines) + "\n"


def test_missing_file(tmp_path):
    with pytest.raises(TableError, match="latency table not found: .*build one with `evit-nas profile`"):
        LatencyTable.load(tmp_path / "none.csv")


def test_calibration_networks_are_b0_to_b3_then_random_networks():
    """A table of the default space is calibrated on B0-B3 (B0: the space's smallest corner,
    far from random draws) and then on random networks; validation holds out random ones."""
    from latency_tables.build import calibration_sample, official_networks
    from latency_tables.validate import held_out_networks
    from search_space import SearchSpace
    from search_space.cost import count_macs

    space = SearchSpace.default()
    picked = calibration_sample(space, 12, seed=0)
    official = [spec for _, spec in official_networks(space)]
    assert len(official) == 4 and picked[:4] == official and len(set(picked)) == 12
    assert picked[4:] == [space.sample(10_000 + i) for i in range(8)]
    draws = [count_macs(space.sample(10_000 + i), RES) for i in range(100)]
    assert count_macs(official[0], RES) < min(draws)  # B0 lies outside what random draws reach
    assert calibration_sample(space, 12, seed=1) != picked and calibration_sample(space, 3) == official[:3]
    table = LatencyTable({"calibration_networks": [{"spec": spec.to_dict()} for spec in picked]}, {}, Calibration())
    held_out = held_out_networks(space, table, 5, seed=1)
    assert [name for name, _ in held_out] == [f"sample{i:03d}" for i in range(5)]
    assert not {spec for _, spec in held_out} & set(picked)
