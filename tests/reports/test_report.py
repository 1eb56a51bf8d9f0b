"""evit-nas report: figures, CSVs and the HTML page from a real study, real brief training
and real end-to-end measurements (at the tiny table's 64x128), checked in a headless browser."""

import csv
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from latency_tables import LatencyTable
from evit_nas.main import main
from nas.search import load_study, run_search, trial_result
from evit_nas.report import BREAKDOWN as CLI_BREAKDOWN
from evit_nas.report import FEATURE_SIZES as CLI_FEATURE_SIZES
from latency_tables.explain import CATEGORIES
from reports.features import FEATURE_NETWORKS, MULTI_SCALE
from reports.backbones import BACKBONES
from reports.breakdown import BREAKDOWN_COLUMNS, BREAKDOWN_NETWORKS
from reports.comparison import SPEEDUP_PAIRS
from reports.features import FEATURE_RESOLUTIONS
from reports.measured import comparison_networks
from reports.search import study_trials
from search_space.cost import count_macs
from search_space.registry import list_models, model_spec
from search_space.peers import published

#: the figures in the page's order: the user's search first, the paper's reproduction last
FIGURES = ("search", "validation", "latency_predictor", "published_latency", "published_macs", "time_breakdown",
           "backbones")
#: the sections in the page's order
SECTIONS = ("search", "validation", "latency_predictor", "published_latency", "published_macs", "mobile_points",
            "time_breakdown", "backbones", "features")
#: tables without a figure, linked from the page
TABLES = ("speedups.csv", "mobile_points.csv", "backbone_claim.csv", "features.csv")
#: small sizes keep the test quick; the report's default is 256x512 512x1024 1024x2048
FEATURE_SIZES = ["--feature-resolutions", "64x128", "128x256", "256x512"]
COMPARE = ["efficientvit_seg_b0", "efficientvit_seg_b1", "segformer_b0", "segnext_t"]
TIMING = ["--warmup", "1", "--repeats", "2"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def validated(tiny_table, space, tmp_path_factory):
    """A tiny search, one front network + B0 + the segnext_t peer trained 2 steps into it."""
    table = LatencyTable.load(tiny_table)
    lat = sorted(table.predict_ms(space.sample(i)) for i in range(40))
    root = tmp_path_factory.mktemp("report")
    journal = root / "r.journal"
    run_search(table, space, budget_ms=lat[len(lat) // 2], trials=30, storage=str(journal), study_name="r", seed=0,
               table_path=str(tiny_table))
    fast = ["--steps", "2", "--batch-size", "2", "--no-progress", "--resolution", "64x128"]
    assert main(["validate", "--storage", str(journal), "--study", "r", "--top-k", "1", *fast,
                 "--out", str(root / "val")]) == 0
    assert main(["validate", "segnext_t", "--storage", str(journal), "--study", "r", "--no-reference", *fast,
                 "--out", str(root / "val")]) == 0
    return journal


@pytest.fixture(scope="module")
def report(validated, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "report"
    assert main(["report", "--storage", str(validated), "--study", "r", "-o", str(out), "--compare", *COMPARE,
                 *TIMING, *FEATURE_SIZES, "--full"]) == 0
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("# ")))


def _measured(report: Path, size: str = "64x128") -> dict[str, dict[str, str]]:
    """The shared measurement's rows at ``size`` (the table's), by label."""
    return {r["name"]: r for r in _rows(report / "measured.csv") if r["resolution"] == size}


@pytest.mark.slow
def test_every_figure_has_png_svg_and_csv(report):
    for name in FIGURES:
        for suffix in ("png", "svg", "csv"):
            assert (report / f"{name}.{suffix}").stat().st_size > 0, f"{name}.{suffix}"
    assert (report / "index.html").is_file() and (report / "speedups.csv").is_file()
    assert not list(report.glob(".*tmp*")) and not (report / "measure.work").exists()


@pytest.mark.slow
def test_published_rows_are_the_papers_numbers(report):
    rows = _rows(report / "published_macs.csv")
    wanted = [r for r in published() if r["dataset"] != "imagenet"]  # the classifiers have their own figure
    assert len(rows) == len(wanted) and {"segformer_b5", "segnext_l", "efficientvit_seg_b3"} <= {r["model"] for r in rows}
    for row, ref in zip(rows, wanted, strict=True):
        assert (row["model"], row["dataset"]) == (ref["model"], ref["dataset"])
        assert float(row["miou"]) == ref["miou"] and (float(row["macs_g"]) if row["macs_g"] else None) == ref["macs_g"]


@pytest.mark.slow
def test_latencies_are_measured_here_for_the_compared_networks_only(report):
    measured = _measured(report)
    expected = {n for n, _ in comparison_networks(COMPARE)}
    assert expected <= set(measured) and not any(n.startswith("segformer_b3") for n in measured)
    for name in expected:
        row = measured[name]
        assert row["resolution"] == "64x128" and float(row["measured_ms"]) > 0
        assert float(row["p10_ms"]) <= float(row["raw_measured_ms"]) * 10
        assert row["kind"] == ("peer" if name.startswith("seg") else "efficientvit")
        if row["kind"] == "peer":
            assert row["predicted_ms"] == ""  # peers are never predicted
    latency = {(r["model"], r["dataset"]): float(r["measured_ms"]) for r in _rows(report / "published_latency.csv")}
    assert latency[("segnext_t", "cityscapes")] == pytest.approx(float(measured["segnext_t@cityscapes"]["measured_ms"]))
    speedups = {(r["efficientvit"], r["peer"], r["dataset"]): r for r in _rows(report / "speedups.csv")}
    assert len(speedups) == len(SPEEDUP_PAIRS)
    b1 = speedups[("efficientvit_seg_b1", "segnext_t", "cityscapes")]
    pub = {r["model"]: r["latency_orin_ms"] for r in published() if r["dataset"] == "cityscapes"}
    assert float(b1["published_orin_speedup"]) == pytest.approx(pub["segnext_t"] / pub["efficientvit_seg_b1"], abs=0.01)
    here = float(measured["segnext_t@cityscapes"]["measured_ms"]) / float(measured["efficientvit_seg_b1@cityscapes"]["measured_ms"])
    assert float(b1["measured_speedup_here"]) == pytest.approx(here, abs=0.01)
    assert speedups[("efficientvit_seg_b2", "segformer_b3", "cityscapes")]["measured_speedup_here"] == ""  # not measured
    # the mobile column: the published ratio where both networks have a mobile point (no peer has one yet)
    points = {(r["model"], r["dataset"]): r["latency_mobile_ms"] for r in published()}
    for (ours, peer, dataset), row in speedups.items():
        a, b = points.get((ours, dataset)), points.get((peer, dataset))
        assert (float(row["published_mobile_speedup"]) if row["published_mobile_speedup"] else None) == (
            round(b / a, 2) if a and b else None)


@pytest.mark.slow
def test_the_published_mobile_points_sit_beside_the_b_series_measured_here(report):
    rows = {(r["network"], r["dataset"]): r for r in _rows(report / "mobile_points.csv")}
    pub = {(r["model"], r["dataset"]): r for r in published() if r["latency_mobile_ms"] and r["dataset"] != "imagenet"}
    assert set(rows) == set(pub) and len(rows) == 7
    for key, row in rows.items():
        assert float(row["published_mobile_ms"]) == pub[key]["latency_mobile_ms"]
        assert row["mobile_resolution"] == pub[key]["mobile_resolution_hw"] and row["mobile_source"]
    b0, b1 = rows[("efficientvit_seg_b0", "cityscapes")], rows[("efficientvit_seg_b1", "cityscapes")]
    assert b1["reference"] == "efficientvit_seg_b0" and float(b1["published_ratio"]) == 4.1  # 0.82 s / 0.20 s
    # per pixel: B1 ran at 896x1792, B0 at 960x1920
    assert float(b1["published_ratio_per_pixel"]) == pytest.approx(4.1 * (960 * 1920) / (896 * 1792), abs=0.01)
    measured = {name: float(r["measured_ms"]) for name, r in _measured(report).items()}
    here = measured["efficientvit_seg_b1@cityscapes"] / measured["efficientvit_seg_b0@cityscapes"]
    assert float(b1["measured_ratio_here"]) == pytest.approx(here, abs=0.01) and float(b0["measured_ratio_here"]) == 1
    assert rows[("efficientvit_seg_b3", "cityscapes")]["measured_ratio_here"] == ""  # B3 not in --compare
    assert rows[("efficientvit_seg_b2", "ade20k")]["reference"] == "efficientvit_seg_b1"


@pytest.mark.slow
def test_where_the_time_goes_has_one_row_per_network_adding_up_to_the_profiled_total(report):
    with open(report / "time_breakdown.csv") as handle:
        meta = dict(line[2:].split(": ", 1) for line in handle.read().splitlines() if line.startswith("# "))
    assert json.loads(meta["resolution"]) == "64x128" and json.loads(meta["threads"]) == 1
    assert json.loads(meta["repeats"]) == 2 and json.loads(meta["onnxruntime"])
    rows = _rows(report / "time_breakdown.csv")
    assert tuple(rows[0]) == BREAKDOWN_COLUMNS
    assert [r["network"] for r in rows] == list(BREAKDOWN_NETWORKS)
    for row in rows:
        parts = [float(row[c.replace(" ", "_") + "_ms"]) for c in CATEGORIES]
        total = float(row["profiled_total_ms"])
        assert min(parts) >= 0 and sum(parts) == pytest.approx(total, rel=1e-6)
        assert total > 0 and float(row["measured_ms"]) > 0  # how close the two are is explain's benchmark, not a test
        assert row["resolution"] == "64x128"
    by_name = {r["network"]: r for r in rows}
    assert float(by_name["efficientvit_seg_b1"]["resize_ms"]) > 0  # the head's upsampling
    assert float(by_name["segformer_b0"]["normalisation_ms"]) > 0  # LayerNorm is not fused away
    html = (report / "index.html").read_text()
    assert '<section id="time_breakdown"><h2>Where the time goes</h2>' in html
    order = [html.index(f'<section id="{name}">') for name in SECTIONS]
    assert order == sorted(order)  # the user's search first, the paper's reproduction last


@pytest.mark.slow
def test_search_and_validation_tables_follow_the_study(report, validated):
    study = load_study(str(validated), "r")
    trials = study_trials(study)
    rows = _rows(report / "search.csv")
    by_trial = {r["trial"]: r for r in rows}
    budget = study.user_attrs["budget_ms"]
    assert len(trials) == 30 and all(str(t["trial"]) in by_trial for t in trials)
    for t in trials:
        row = by_trial[str(t["trial"])]
        assert (row["feasible"] == "True") == (t["latency_ms"] <= budget)
    assert sum(r["on_front"] == "True" for r in rows) == len(study.best_trials)
    validation = {r["network"]: r for r in _rows(report / "validation.csv")}
    front_names = [k for k in study.user_attrs if k.startswith("validation:") and k.split(":")[1].isdigit()]
    assert len(front_names) == 1
    number = int(front_names[0].split(":")[1])
    trial = next(t for t in study.trials if t.number == number)
    front_row = validation[f"trial{number:05d}"]
    assert front_row["kind"] == "front" and front_row["latency_source"] == "predicted"
    assert float(front_row["latency_ms"]) == pytest.approx(trial_result(trial).latency_ms)
    assert float(front_row["miou"]) == pytest.approx(study.user_attrs[front_names[0]]["miou"])
    peer = validation["segnext_t"]
    measured = _measured(report)
    assert peer["kind"] == "peer" and peer["latency_source"] == "measured"
    assert float(peer["latency_ms"]) == pytest.approx(float(measured["segnext_t@cityscapes"]["measured_ms"]))
    assert validation["efficientvit_seg_b0"]["kind"] == "reference"
    # the validated front network is measured too, and compared with its prediction
    predictor = {r["name"]: r for r in _rows(report / "latency_predictor.csv")}
    assert f"trial{number:05d}" in predictor


@pytest.mark.slow
def test_a_second_report_reuses_the_measurements(report, validated, capsys):
    before = (report / "measured.csv").read_bytes()
    breakdown = (report / "time_breakdown.csv").read_bytes()
    assert main(["report", "--storage", str(validated), "--study", "r", "-o", str(report), "--compare", *COMPARE,
                 *TIMING, *FEATURE_SIZES, "--full", "--json"]) == 0
    captured = capsys.readouterr()
    assert "measuring" not in captured.err and "profiling" not in captured.err
    summary = json.loads(captured.out)
    assert summary["index"] == str(report / "index.html") and summary["validated"] == 3
    assert (report / "measured.csv").read_bytes() == before
    assert (report / "time_breakdown.csv").read_bytes() == breakdown
    assert [r["network"] for r in summary["time_breakdown"]] == list(BREAKDOWN_NETWORKS)


#: for every table of the page: the section it is in, whether it sits in a scrolling box, and
#: whether it fits: a table fits its container, or else its scrolling box fits the page
TABLE_FIT_JS = """() => {
  const page = document.documentElement.clientWidth;
  return Array.from(document.querySelectorAll('table')).map(table => {
    let box = table.parentElement;
    while (box !== document.body && !['auto', 'scroll'].includes(getComputedStyle(box).overflowX)) {
      box = box.parentElement;
    }
    const scrolls = box !== document.body;
    const outer = (scrolls ? box : table).getBoundingClientRect();
    return {section: table.closest('section') ? table.closest('section').id : 'metadata', scrolls: scrolls,
            fits_container: table.getBoundingClientRect().width <= table.parentElement.clientWidth + 0.5,
            box_fits_page: outer.left >= 0 && outer.right <= page + 0.5};
  });
}"""


def chromium_page(report: Path, width: int = 1400, height: int = 900):
    """(playwright, browser, page) with ``report``'s index.html loaded at ``width`` x ``height``."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    p = sync_playwright().start()
    browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": width, "height": height})
    return p, browser, page


@pytest.mark.slow
def test_the_page_loads_every_figure_without_console_errors_in_chromium(report):
    html = (report / "index.html").read_text()
    links = [link for link in re.findall(r'href="([^"]+)"', html) if not link.startswith("#")]
    assert sorted(links) == sorted([f"{n}.{s}" for n in FIGURES for s in ("svg", "csv")] + list(TABLES))
    assert all((report / link).is_file() for link in links)
    p, browser, page = chromium_page(report)
    try:
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((report / "index.html").as_uri(), wait_until="load")
        images = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
        captions = page.evaluate("Array.from(document.querySelectorAll('figcaption')).map(c => c.innerText)")
        contents = page.evaluate("Array.from(document.querySelectorAll('nav a')).map(a => a.getAttribute('href'))")
        svg = page.goto((report / "search.svg").as_uri())
        assert svg is not None and svg.ok
    finally:
        browser.close()
        p.stop()
    assert errors == []
    assert [src for src, _, _ in images] == [f"{n}.png" for n in FIGURES]
    assert all(complete and width > 100 for _, complete, width in images)
    assert len(captions) == len(FIGURES) and all(len(c) > 40 for c in captions)
    assert contents == [f"#{name}" for name in SECTIONS]
    assert "The backbone claim: published and measured here" in html and "7.9x" in html
    assert "feature table, measured" in html and all(f"<td>{family}</td>" in html for family in features_of(report))


@pytest.mark.slow
def test_every_table_fits_the_page_at_1400_pixels(report):
    p, browser, page = chromium_page(report, 1400, 900)
    try:
        page.goto((report / "index.html").as_uri(), wait_until="load")
        tables = page.evaluate(TABLE_FIT_JS)
        page_width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        page.screenshot(path=str(report / "screenshot_1400.png"), full_page=True)
    finally:
        browser.close()
        p.stop()
    # the speedups, mobile points, time breakdown, backbone claim and feature tables, and the page's own
    assert {"metadata", "search", "published_latency", "mobile_points", "time_breakdown", "backbones",
            "features"} <= {t["section"] for t in tables}
    misfits = [t for t in tables if not (t["fits_container"] or (t["scrolls"] and t["box_fits_page"]))]
    assert misfits == []
    assert all(t["box_fits_page"] for t in tables)
    assert page_width[0] <= page_width[1]  # nothing makes the page itself scroll sideways


def features_of(report):
    return [r["family"] for r in _rows(report / "features.csv")]


def test_the_cli_feature_sizes_are_the_reports():
    assert CLI_FEATURE_SIZES == FEATURE_RESOLUTIONS
    assert CLI_BREAKDOWN == BREAKDOWN_NETWORKS


@pytest.mark.slow
def test_the_backbone_claim_is_measured_at_the_official_sizes(report):
    rows = {r["model"]: r for r in _rows(report / "backbones.csv")}
    assert list(rows) == list(BACKBONES)
    assert rows["efficientvit_cls_b3"]["resolution"] == "288x288" and rows["efficientnet_b6"]["resolution"] == "528x528"
    assert float(rows["efficientvit_cls_b3"]["published_top1"]) == 84.15
    measured = {(r["name"], r["resolution"]): r for r in _rows(report / "measured.csv")}
    claim = _rows(report / "backbone_claim.csv")
    b3, b6 = rows["efficientvit_cls_b3"], rows["efficientnet_b6"]
    assert claim[0]["published"] == "2.9x"
    assert float(claim[0]["measured_here"].rstrip("x")) == pytest.approx(float(b6["macs_g"]) / float(b3["macs_g"]), abs=0.01)
    assert 2.8 < float(claim[0]["measured_here"].rstrip("x")) < 3.1
    ratio = float(measured[("efficientnet_b6", "528x528")]["raw_measured_ms"]) / float(
        measured[("efficientvit_cls_b3", "288x288")]["raw_measured_ms"])
    assert float(claim[1]["measured_here"].rstrip("x")) == pytest.approx(ratio, abs=0.02)


@pytest.mark.slow
def test_the_feature_table_has_a_measured_number_in_every_cell(report, validated):
    rows = _rows(report / "features.csv")
    registered = set(list_models())
    assert [r["network"] for r in rows] == [n for n in FEATURE_NETWORKS.values() if n in registered]
    for row in rows:
        assert row["resolutions"] == "64x128 128x256 256x512" and row["multi_scale"] == MULTI_SCALE[row["family"]]
        assert 0.5 < float(row["macs_exponent"]) < 2.5 and float(row["latency_exponent"]) > 0
        assert 0 < float(row["erf_share_above_0.01"]) <= float(row["erf_share_above_0.0001"]) <= 1
        assert float(row["ms_per_gmac"]) > 0
    # the briefly trained networks of the study (B0 as the reference, segnext_t named): their
    # ERF from the checkpoints validate left; none for the networks validate did not train
    trained = {r["network"]: r for r in rows if r["trained_by"]}
    assert sorted(trained) == ["efficientvit_seg_b0", "segnext_t"]
    from reports.features import erf_shares
    from reports.validation import trained_networks
    study = load_study(str(validated), "r")
    for name, (model, record) in trained_networks(study.user_attrs, list(trained)).items():
        assert trained[name]["trained_by"] == "2 steps on synthetic" and Path(record["checkpoint"]).is_file()
        want = [round(v, 4) for v in erf_shares(model, (64, 128))]
        assert [float(trained[name][f"trained_erf_share_above_{t}"]) for t in ("0.01", "0.0001")] == want
    assert all(r["trained_erf_share_above_0.01"] == "" for r in rows if r["network"] not in trained)
    # the MACs exponent is the fitted slope of fvcore's counts
    b0 = next(r for r in rows if r["network"] == "efficientvit_seg_b0")
    macs = [count_macs(model_spec("efficientvit_seg_b0"), size) for size in ((64, 128), (128, 256), (256, 512))]
    from reports.features import fit_exponent
    assert float(b0["macs_exponent"]) == pytest.approx(fit_exponent([64 * 128, 128 * 256, 256 * 512], macs), abs=1e-3)


def test_report_errors_are_one_line(validated, tmp_path, capsys):
    out = tmp_path / "rep"
    cases = [
        (["--study", "nope"], "no study 'nope'"),
        (["--study", "r", "--compare", "segformer_b9"], "cannot compare with segformer_b9"),
        (["--study", "r", "--table", str(tmp_path / "missing.csv")], "is not here; give it with --table"),
        (["--study", "r", "--breakdown", "segformer_b9"], "cannot break down the time of segformer_b9"),
        (["--study", "r", "--breakdown", "segnext_t", "--no-breakdown"], "contradict each other"),
        (["--study", "r", "--backbones", "--no-backbones"], "--backbones and --no-backbones contradict each other"),
        (["--study", "r", "--datasets", "cityscapes", "--compare", "hrformer_x"], "cannot compare with hrformer_x"),
    ]
    for extra, message in cases:
        assert main(["report", "--storage", str(validated), "-o", str(out), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_a_report_folder_of_another_device_is_refused_and_kept(validated, tmp_path, capsys):
    out = tmp_path / "rep"
    out.mkdir()
    other = '# device: "pi5"\n# resolution: "256x512"\n# threads: 4\nname,kind\n'
    (out / "measured.csv").write_text(other)
    assert main(["report", "--storage", str(validated), "--study", "r", "-o", str(out), "--compare", "segnext_t"]) == 2
    err = capsys.readouterr().err
    assert "holds fp32 measurements on pi5 with 4 thread(s)" in err and len(err.strip().splitlines()) == 1
    assert (out / "measured.csv").read_text() == other and sorted(p.name for p in out.iterdir()) == ["measured.csv"]
