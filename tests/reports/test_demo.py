"""evit-nas demo: search, brief validation and report on the built-in defaults (scaled down
here: fewer trials and steps, two comparison networks; SegFormer-B0 trained as by default),
and its resume."""

import pytest

from evit_nas.main import main
from latency_tables.table import LatencyTable
from nas.search import load_study

SMALL = ["--trials", "40", "--top-k", "1", "--steps", "2", "--warmup", "1", "--repeats", "1",
         "--compare", "efficientvit_seg_b0", "segnext_t", "--adapt-networks", "3"]


@pytest.mark.slow
def test_demo_runs_every_step_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *SMALL]) == 0
    text = capsys.readouterr().out
    for step in ("step 1/4, adapt: timing 3 networks here", "step 2/4, search", "step 3/4, validate", "step 4/4, report"):
        assert step in text
    (adapted,) = out.glob("adapted_*_256x512_t1.csv")
    assert LatencyTable.load(adapted).meta["adapted_from"]["networks_timed"] == 3
    assert f"report: {out / 'report' / 'index.html'}" in text and "demo finished in" in text
    study = load_study(str(out / "demo.journal"), "demo-budget50ms")
    assert len(study.trials) == 40
    assert "validation:reference" in study.user_attrs and "validation:network:segformer_b0" in study.user_attrs
    assert sum(k.split(":")[1].isdigit() for k in study.user_attrs if k.startswith("validation:")) == 1
    for name in ("published_macs", "published_latency", "search", "validation", "latency_predictor"):
        assert (out / "report" / f"{name}.png").is_file()
    measured = (out / "report" / "measured.csv").read_bytes()

    assert main(["demo", "--out", str(out), *SMALL]) == 0
    again = capsys.readouterr().out
    assert again.count("already done") == 4 and "measuring" not in again
    assert (out / "report" / "measured.csv").read_bytes() == measured
    assert len(load_study(str(out / "demo.journal"), "demo-budget50ms").trials) == 40
