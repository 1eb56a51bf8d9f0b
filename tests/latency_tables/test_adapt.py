"""Adapting a table to a device from a few whole networks timed there."""

import json

import pytest

from evit_nas.main import main
from latency_tables.adapt import BLOCKS_PRIOR_WEIGHT, adapt_table, adaptation_networks, at_resolution, block_ratio_rows
from latency_tables.build import plan_profile, profile_table
from latency_tables.table import LatencyTable, TableError
from search_space import ArchSpec

from .conftest import RES


@pytest.fixture(scope="module")
def adapted(tiny_table, space, tmp_path_factory):
    source = LatencyTable.load(tiny_table)
    path = tmp_path_factory.mktemp("adapt") / "adapted.csv"
    table = adapt_table(source, path, space=space, networks=6, seed=3, device="other", threads=1, warmup=1, repeats=3,
                        window_s=0)
    return source, table, path


def test_the_networks_span_the_source_latency_range(tiny_table, space):
    source = LatencyTable.load(tiny_table)
    picks = adaptation_networks(source, space, 5, seed=0)
    latencies = [source.predict_ms(s) for s in picks]
    assert len(picks) == 5 and latencies == sorted(latencies) and latencies[0] < latencies[-1]


def test_an_adapted_table_is_the_new_devices_with_the_source_rows(adapted):
    source, table, _ = adapted
    assert table.rows == source.rows
    assert table.meta["device"] == "other" and table.meta["adapted_from"]["device"] == source.meta["device"]
    assert table.meta["adapted_from"]["networks_timed"] == 6 == table.calibration.networks
    assert table.calibration.cv_mape is not None  # cross-validated with 6 networks
    # the fit reproduces the networks it was timed on (this machine both times: close to the source's predictions)
    for net in table.meta["calibration_networks"]:
        assert table.predict_ms(ArchSpec.from_dict(net["spec"])) == pytest.approx(net["median_ms"], rel=0.35)


def test_an_adapted_table_cannot_be_extended_with_blocks(adapted, space):
    _, table, path = adapted
    plan = plan_profile(RES, space, blocks_from=[space.sample(123)], existing=table)
    before = path.read_text()
    if plan.blocks or plan.networks:
        with pytest.raises(TableError, match="adapted from another device's table"):
            profile_table(path, plan, device="other", threads=1, warmup=1, repeats=2)
    assert path.read_text() == before


def test_profile_adapt_from_on_the_command_line(tiny_table, space_file, tmp_path, capsys):
    out = tmp_path / "t.csv"
    argv = ["profile", "--adapt-from", str(tiny_table), "--space", str(space_file), "--networks", "4",
            "--warmup", "1", "--repeats", "2", "--adapt-window", "0", "--front-networks", "0", "-o", str(out), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["networks_timed"] == 4 and LatencyTable.load(out).meta["adapted_from"]["table"] == str(tiny_table)
    assert LatencyTable.load(out).meta["adapted_from"]["blocks_timed"] > 0  # --adapt-blocks is the default for fp32
    before = out.read_text()
    assert main(argv) == 2 and "exists; choose another -o path or pass --force" in capsys.readouterr().err
    assert out.read_text() == before


def test_a_table_carried_to_another_resolution_predicts_what_the_source_did(tiny_table, space):
    source = LatencyTable.load(tiny_table)
    carried = at_resolution(source, (128, 256), space)
    assert carried.resolution == (128, 256) and len(carried.rows) == len(source.rows)
    for seed in range(5):
        spec = space.sample(seed)
        assert carried.predict_ms(spec) == pytest.approx(source.predict_ms(spec), rel=1e-9)
    assert at_resolution(source, source.resolution, space) is source
    assert at_resolution(source, (96, 128), space).resolution == (96, 128)  # any multiple of 32 carries over
    damaged = LatencyTable(source.meta, dict(list(source.rows.items())[1:]), source.calibration, source.path)
    with pytest.raises(TableError, match="does not carry over to 128x256: 1 block"):
        at_resolution(damaged, (128, 256), space)


def test_a_table_is_adapted_to_another_resolution_from_networks_timed_there(tiny_table, space_file, tmp_path, capsys):
    out = tmp_path / "r.csv"
    # 10 networks: below that the source's calibration keeps its shape (transfer.TRUSTED_MIN_FOR_CV), and that
    # shape does not carry over to another size (the timed networks were then fitted only to 25-29%)
    assert main(["profile", "--adapt-from", str(tiny_table), "--space", str(space_file), "--networks", "10",
                 "--resolution", "128x256", "--warmup", "1", "--repeats", "2", "--adapt-window", "0",
                 "--front-networks", "0", "-o", str(out), "--json"]) == 0
    table = LatencyTable.load(out)
    assert table.resolution == (128, 256) and table.meta["adapted_from"]["resolution"] == [64, 128]
    timed = table.meta["calibration_networks"]
    assert len(timed) == 10
    # the fit is on networks timed at the new size: its predictions of them are near what was timed
    errors = [abs(table.predict_ms(ArchSpec.from_dict(n["spec"])) / n["median_ms"] - 1) for n in timed]
    assert sorted(errors)[len(errors) // 2] < 0.25
    with pytest.raises(TableError, match="not 64x128"):
        table.predict_ms(ArchSpec.from_dict(timed[0]["spec"]), resolution=(64, 128))


def test_an_uncalibrated_or_foreign_table_is_announced(adapted):
    source, table, _ = adapted
    notes = table.notices(cpu="Some Other CPU", arch=table.meta["arch"])
    assert len(notes) == 1 and "not on this machine's Some Other CPU" in notes[0] and "--adapt-from" in notes[0]
    assert table.notices(cpu=table.meta["cpu"], arch=table.meta["arch"]) == []
    bare = LatencyTable(dict(source.meta), dict(source.rows))
    assert "is not calibrated" in bare.notices()[0]


def test_the_command_line_default_is_the_librarys():
    from evit_nas.latency import DEFAULT_ADAPT_NETWORKS, DEFAULT_ADAPT_REPEATS
    from latency_tables.adapt import DEFAULT_NETWORKS, DEFAULT_REPEATS

    assert (DEFAULT_ADAPT_NETWORKS, DEFAULT_ADAPT_REPEATS) == (DEFAULT_NETWORKS, DEFAULT_REPEATS)


def test_another_thread_count_needs_the_blocks_timed_at_it(tiny_table, space, space_file, tmp_path, capsys):
    from latency_tables.bundle import ProfileError

    with pytest.raises(ProfileError, match="measured with 1 thread.*not 2; a table adapts to another thread count "
                                           "only with its blocks timed at 2"):
        adapt_table(LatencyTable.load(tiny_table), tmp_path / "t.csv", space=space, device="d", threads=2)
    assert not (tmp_path / "t.csv").exists()
    base = ["profile", "--adapt-from", str(tiny_table), "--space", str(space_file), "--networks", "3", "--warmup", "1",
            "--repeats", "2", "--adapt-window", "0", "--front-networks", "0", "--threads", "2"]
    assert main([*base, "--no-adapt-blocks", "-o", str(tmp_path / "t.csv")]) == 2
    assert "only with its blocks timed at 2 (--adapt-blocks" in capsys.readouterr().err
    assert not (tmp_path / "t.csv").exists()
    assert main([*base, "-o", str(tmp_path / "t.csv")]) == 0  # blocks timed by default: at 2 threads
    table = LatencyTable.load(tmp_path / "t.csv")
    assert table.meta["threads"] == 2 and table.meta["adapted_from"]["threads"] == 1
    assert table.meta["adapted_from"]["blocks_timed"] > 0


def test_a_budget_times_more_networks_in_rounds_that_fill_the_gaps(tiny_table, space, tmp_path):
    source = LatencyTable.load(tiny_table)
    lines: list[str] = []
    table = adapt_table(source, tmp_path / "t.csv", space=space, networks=3, budget_s=120, seed=3, device="other",
                        threads=1, warmup=1, repeats=2, log=lines.append, window_s=0)
    rounds = table.meta["adapted_from"]["rounds"]
    assert rounds[0]["networks"] == 3 and len(rounds) >= 2 and lines
    assert table.calibration.networks == sum(r["networks"] for r in rounds) > 3
    assert table.meta["build_seconds"] <= 120
    # the first round is the plain spread of 3, and every later network lies between them
    first = adaptation_networks(source, space, 3, seed=3)
    timed = [ArchSpec.from_dict(n["spec"]) for n in table.meta["calibration_networks"]]
    assert timed[:3] == first and len(set(timed)) == len(timed)


def test_a_budget_counts_the_blocks_each_round_adds(tiny_table, space, tmp_path):
    """With --adapt-blocks each round's new blocks are timed after it, within the budget."""
    source = LatencyTable.load(tiny_table)
    lines: list[str] = []
    table = adapt_table(source, tmp_path / "t.csv", space=space, networks=3, budget_s=60, seed=3, device="other",
                        threads=1, warmup=1, repeats=2, log=lines.append, window_s=0, time_blocks=True)
    rounds = table.meta["adapted_from"]["rounds"]
    assert len(rounds) >= 2 and all(r["block_seconds"] >= 0 for r in rounds)
    assert table.meta["build_seconds"] <= 60
    timed = [ArchSpec.from_dict(n["spec"]) for n in table.meta["calibration_networks"]]
    every = {k for spec in timed for k in space.blocks(spec, source.resolution)}
    assert table.meta["adapted_from"]["blocks_timed"] == len(every)  # the blocks of every round's networks
    assert any("new blocks of the" in line and "of this round" in line for line in lines)


def test_a_budget_smaller_than_a_round_times_only_the_first(tiny_table, space, tmp_path):
    source = LatencyTable.load(tiny_table)
    table = adapt_table(source, tmp_path / "t.csv", space=space, networks=3, budget_s=0.01, seed=3, device="other",
                        threads=1, warmup=1, repeats=2, window_s=0)
    assert [r["networks"] for r in table.meta["adapted_from"]["rounds"]] == [3]


def test_budget_minutes_on_the_command_line(tiny_table, space_file, tmp_path, capsys):
    base = ["profile", "--adapt-from", str(tiny_table), "--space", str(space_file), "--warmup", "1", "--repeats", "2",
            "--adapt-window", "0"]
    assert main([*base, "--budget-minutes", "0", "-o", str(tmp_path / "a.csv")]) == 2
    assert "--budget-minutes 0: give a positive number of minutes" in capsys.readouterr().err
    assert main(["profile", "--resolution", "64x128", "--budget-minutes", "1", "-o", str(tmp_path / "b.csv")]) == 2
    assert "--budget-minutes goes with --adapt-from" in capsys.readouterr().err
    assert not (tmp_path / "a.csv").exists() and not (tmp_path / "b.csv").exists()


def test_passes_are_combined_by_their_median_and_rescaled_by_the_reference_beside_them():
    from latency_tables.adapt import combine_passes

    steady = {"a": {"median_ms": 10.0, "ref_ms": 5.0}, "b": {"median_ms": 20.0, "ref_ms": 5.0}}
    slow = {"a": {"median_ms": 13.0, "ref_ms": 6.5}, "b": {"median_ms": 26.0, "ref_ms": 6.5}}  # a 30% slow burst
    reference_ms, combined, scale = combine_passes([steady, slow, steady])
    assert reference_ms == 5.0  # the median of the chunks' references: the burst does not move it
    assert combined["a"] == (10.0, 10.0) and combined["b"] == (20.0, 20.0)
    assert scale["reference_ms_by_pass"] == [5.0, 6.5, 5.0] and scale["scale_uncertainty_pct"] == 0.0
    _, _, drifting = combine_passes([steady, {k: {**v, "ref_ms": 5.5} for k, v in steady.items()},
                                     {k: {**v, "ref_ms": 4.5} for k, v in steady.items()}])
    assert drifting["scale_uncertainty_pct"] > 0
    assert combine_passes([steady])[2]["scale_uncertainty_pct"] is None  # one pass: unknown


def test_the_first_networks_are_timed_in_passes_for_the_window(tiny_table, space, tmp_path):
    source = LatencyTable.load(tiny_table)
    lines: list[str] = []
    table = adapt_table(source, tmp_path / "t.csv", space=space, networks=3, seed=3, device="other", threads=1,
                        warmup=1, repeats=2, log=lines.append, window_s=1.0, max_window_s=30.0)
    adapted = table.meta["adapted_from"]
    passes = adapted["rounds"][0]["passes"]
    assert passes >= 2 and len(adapted["reference_ms_by_pass"]) == passes
    assert adapted["timing_seconds"] >= 1.0 and adapted["scale_uncertainty_pct"] is not None
    assert len(lines) == passes and "scale ±" in lines[-1]
    assert table.calibration.networks == 3  # the same networks, timed again, not more of them


def test_adapt_window_on_the_command_line(tiny_table, space_file, tmp_path, capsys):
    base = ["profile", "--adapt-from", str(tiny_table), "--space", str(space_file), "--warmup", "1", "--repeats", "2",
            "--networks", "3"]
    assert main([*base, "--adapt-window", "-1", "-o", str(tmp_path / "a.csv")]) == 2
    assert "--adapt-window -1: give 0 (one pass) or a positive number of seconds" in capsys.readouterr().err
    assert main(["profile", "--resolution", "64x128", "--adapt-window", "5", "-o", str(tmp_path / "b.csv")]) == 2
    assert "--adapt-window goes with --adapt-from" in capsys.readouterr().err
    assert not (tmp_path / "a.csv").exists() and not (tmp_path / "b.csv").exists()
    assert main([*base, "--adapt-window", "1", "-o", str(tmp_path / "c.csv"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passes"] >= 2 and result["scale_uncertainty_pct"] is not None


def test_front_like_networks_are_timed_beside_the_spread(tiny_table, space, tmp_path):
    from latency_tables.adapt import _ranked_candidates, front_like
    from search_space.cost import count_macs

    source = LatencyTable.load(tiny_table)
    ranked = _ranked_candidates(source, space, 3)
    picks = front_like(ranked, source, 3)
    assert len(picks) == 3
    # each is the most MACs per predicted ms of its third of the candidates
    third = ranked[: round(len(ranked) / 3)]
    efficiency = {id(s): count_macs(s, source.resolution) / source.predict_ms(s) for s in third}
    assert efficiency[id(picks[0])] == max(efficiency.values())
    table = adapt_table(source, tmp_path / "t.csv", space=space, networks=3, seed=3, device="other", threads=1,
                        warmup=1, repeats=2, window_s=0, front_networks=3)
    timed = [ArchSpec.from_dict(n["spec"]) for n in table.meta["calibration_networks"]]
    assert timed[:3] == adaptation_networks(source, space, 3, seed=3)
    assert all(p in timed for p in picks) and len(set(timed)) == len(timed) <= 6


def test_the_blocks_of_the_timed_networks_correct_every_row(tiny_table, space_file, tmp_path, capsys):
    source = LatencyTable.load(tiny_table)
    out = tmp_path / "blocks.csv"
    assert main(["profile", "--adapt-from", str(tiny_table), "--space", str(space_file), "--networks", "4",
                 "--warmup", "1", "--repeats", "2", "--adapt-window", "0", "--front-networks", "0",
                 "-o", str(out), "--json"]) == 0  # --adapt-blocks: the default for an fp32 table
    table = LatencyTable.load(out)
    timed = table.meta["adapted_from"]["blocks_timed"]
    assert 0 < timed < len(source.rows) and set(table.rows) == set(source.rows)
    changed = [key for key in source.rows if table.rows[key]["median_ms"] != source.rows[key]["median_ms"]]
    assert len(changed) > timed  # the timed blocks take their own latency, every other row its predicted ratio
    assert "corrected block by block" in table.meta["adapted_from"]["rows"]
    # the rows are this device's own: the source's calibration is kept in shape, with its leave-one-out error
    assert table.calibration.prior_weight == BLOCKS_PRIOR_WEIGHT and table.calibration.cv_mape is not None
    # without it (--no-adapt-blocks), the rows are the source's
    plain = tmp_path / "plain.csv"
    assert main(["profile", "--adapt-from", str(tiny_table), "--space", str(space_file), "--networks", "4",
                 "--warmup", "1", "--repeats", "2", "--adapt-window", "0", "--front-networks", "0",
                 "--no-adapt-blocks", "-o", str(plain), "--json"]) == 0
    kept = LatencyTable.load(plain)
    assert kept.meta["adapted_from"]["blocks_timed"] == 0
    assert all(kept.rows[key]["median_ms"] == source.rows[key]["median_ms"] for key in source.rows)
    assert main(["profile", "--resolution", "64x128", "--adapt-blocks", "-o", str(tmp_path / "x.csv")]) == 2
    assert "--adapt-blocks goes with --adapt-from" in capsys.readouterr().err


def test_block_ratios_are_learnt_from_the_timed_blocks(tiny_table):
    source = LatencyTable.load(tiny_table)
    keys = sorted(source.rows)[:12]
    here = {key: {**source.rows[key], "median_ms": 2 * source.rows[key]["median_ms"]} for key in keys}
    rows = block_ratio_rows(source, here)
    assert all(rows[key]["median_ms"] == here[key]["median_ms"] for key in keys)
    others = [key for key in source.rows if key not in here]
    ratios = [rows[key]["median_ms"] / source.rows[key]["median_ms"] for key in others]
    assert all(abs(r - 2) < 0.05 for r in ratios)  # every timed block twice as slow: so is every other
