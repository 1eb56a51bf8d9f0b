"""The report on an int8 table: networks measured in int8, the int8-against-fp32 section, and
caches of one precision never reused for another. Real table, search, training and timing."""

import json

import pytest
import torch

from evit_nas.main import main
from latency_tables.build import plan_profile, profile_table
from latency_tables.table import LatencyTable
from nas.data import SYNTHETIC_CLASSES
from nas.search import run_search
from latency_tables.timing import Timing
from reports.fidelity import int8_fidelity_rows
from reports.measured import ReportError, read_measured
from search_space.create import build_network
from search_space.records import read_csv, write_csv
from search_space.registry import model_spec

RES = (64, 128)


def test_fidelity_rows_for_random_and_trained_networks(tmp_path):
    spec = model_spec("efficientvit_seg_b0").replace(num_classes=len(SYNTHETIC_CLASSES))
    torch.manual_seed(1)
    trained = build_network(spec)
    checkpoint = tmp_path / "b0.pt"
    torch.save({"model": trained.state_dict(), "step": 1}, checkpoint)
    attrs = {"validation:reference": {"network": "efficientvit_seg_b0", "steps": 1, "dataset": "synthetic",
                                      "resolution": list(RES), "spec": spec.to_dict(), "checkpoint": str(checkpoint)}}
    rows = int8_fidelity_rows([("efficientvit_seg_b0@cityscapes", model_spec("efficientvit_seg_b0"))], RES, attrs,
                              log=lambda line: None)
    random_row, trained_row = rows
    assert random_row["weights"] == "random (seed 0)" and 0 <= random_row["argmax_agreement_pct"] <= 100
    assert "Resize" in random_row["float_ops"]
    assert trained_row["weights"] == "trained 1 steps on synthetic" and trained_row["resolution"] == "64x128"
    assert trained_row["miou_change"] == pytest.approx(trained_row["int8_miou"] - trained_row["fp32_miou"], abs=0.011)


def test_a_cache_of_another_precision_is_refused(tmp_path):
    path = tmp_path / "measured.csv"
    write_csv(path, ("name",), [{"name": "x"}], {"device": "d", "threads": 1, "resolution": "64x128", "precision": "fp32"})
    assert read_measured(path, "d", Timing(threads=1))[1][0]["name"] == "x"
    with pytest.raises(ReportError, match="holds fp32 measurements on d with 1 thread"):
        read_measured(path, "d", Timing(threads=1, precision="int8"))


@pytest.mark.slow
def test_report_on_an_int8_table(space, tmp_path, capsys):
    table_path = tmp_path / "tiny_int8.csv"
    profile_table(table_path, plan_profile(RES, space, calibration_networks=4, precision="int8"), device="test-machine",
                  threads=1, warmup=1, repeats=3)
    table = LatencyTable.load(table_path)
    lat = sorted(table.predict_ms(space.sample(i)) for i in range(20))
    journal = tmp_path / "r.journal"
    run_search(table, space, budget_ms=lat[10], trials=12, storage=str(journal), study_name="q", seed=0,
               table_path=str(table_path))
    out = tmp_path / "report"
    argv = ["report", "--storage", journal, "--study", "q", "-o", out, "--compare", "efficientvit_seg_b0", "segformer_b0",
            "--warmup", "1", "--repeats", "2", "--no-backbones", "--no-features", "--no-breakdown",
            "--speed-claims", _claims(tmp_path), "--json"]
    assert main([str(a) for a in argv]) == 0
    summary = json.loads(capsys.readouterr().out)
    meta, _ = read_csv(out / "measured.csv")
    assert meta["precision"] == "int8"
    fidelity = [r["network"] for r in summary["int8_fidelity"]]
    assert fidelity[:3] == ["efficientvit_seg_b0@cityscapes", "segformer_b0@cityscapes", "segformer_b0@ade20k"]
    page = (out / "index.html").read_text()
    assert "int8 against fp32" in page and (out / "int8_fidelity.csv").is_file()
    assert "speed claims at the published resolutions" in page and (out / "speed_claims.png").is_file()
    # an fp32 report is refused for this table
    assert main([str(a) for a in argv[:-1] + ["--precision", "fp32"]]) == 2
    assert "measured in int8, not fp32" in capsys.readouterr().err


def _claims(tmp_path):
    from reports.speed_claims import SPEED_CLAIM_COLUMNS

    rows = []
    for precision in ("fp32", "int8"):
        row = dict.fromkeys(SPEED_CLAIM_COLUMNS, None)
        row.update(dataset="ade20k", resolution="512x512", precision=precision, efficientvit="efficientvit_seg_b1",
                   peer="segformer_b1", rounds=20, efficientvit_ms=60.0, peer_ms=270.0, measured_speedup=4.5,
                   ci95_low=4.4, ci95_high=4.7, published_orin_speedup=3.08)
        rows.append(row)
    path = tmp_path / "speed_claims.json"
    path.write_text(json.dumps({"cpu": "Test CPU", "machine": "m", "onnxruntime": "1.0", "threads": 1, "rounds": 20,
                                "date": "2026-12-03", "speedups": rows}))
    return path


def test_speed_claims_are_drawn_and_bad_files_refused(tmp_path):
    from reports.speed_claims import figure_speed_claims, read_speed_claims

    data = read_speed_claims(_claims(tmp_path))
    figure_speed_claims(tmp_path, data)
    assert (tmp_path / "speed_claims.png").is_file() and (tmp_path / "speed_claims.svg").is_file()
    meta, rows = read_csv(tmp_path / "speed_claims.csv")
    assert meta["cpu"] == "Test CPU" and [r["precision"] for r in rows] == ["fp32", "int8"]
    (tmp_path / "bad.json").write_text('{"speedups": [{"dataset": "ade20k"}]}')
    with pytest.raises(ReportError, match="is not a results file of benchmarks/speed_claims.py"):
        read_speed_claims(tmp_path / "bad.json")
    with pytest.raises(ReportError, match="cannot read the speed claims"):
        read_speed_claims(tmp_path / "missing.json")
