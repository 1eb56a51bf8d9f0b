"""evit-nas validate: front picking, brief training end to end, resume, study attributes, errors."""

import csv
import json
import re
import shutil
from pathlib import Path

import optuna
import pytest
import torch

from latency_tables import LatencyTable
from evit_nas.main import main
from search_space.cost import count_macs
from nas.data import SYNTHETIC_CLASSES, open_dataset
from nas.search import TrialResult, front, load_study, run_search, trial_result
from nas.validate import (
    COLUMNS,
    Entry,
    ValidateError,
    default_recipe,
    open_datasets,
    pick_front,
    read_results,
    validate,
)
from search_space import ArchSpec
from search_space.registry import model_spec

TINY = ArchSpec(widths=(8, 8, 16, 16, 32), depths=(0, 1, 1, 1, 1), expand_ratios=(2, 2, 2, 2), head_dim=8,
                scales=(3,), attention=((True,), (True,)), head_width=8, head_depth=1, head_expand_ratio=2,
                head_final_expand=None, num_classes=3)
FAST = ["--steps", "2", "--batch-size", "2", "--no-progress"]


@pytest.fixture(scope="module")
def study_journal(tiny_table, space, tmp_path_factory):
    """A finished search of the tiny space (copy it before writing to it). The budget takes in
    nearly every network: the table is timed on a machine that may be busy, and a tight budget
    can leave a one-network front (the biggest network happening to be timed fastest)."""
    table = LatencyTable.load(tiny_table)
    lat = sorted(table.predict_ms(space.sample(i)) for i in range(40))
    journal = tmp_path_factory.mktemp("study") / "v.journal"
    run_search(table, space, budget_ms=lat[-2], trials=30, storage=str(journal), study_name="v", seed=0,
               proxy="params")  # a front of several networks on the tiny space
    front_size = len(front(load_study(str(journal), "v")))
    assert front_size >= 3, f"the tiny study's front has {front_size} network(s); the tests below need 3"
    return journal


@pytest.fixture
def journal(study_journal, tmp_path):
    path = tmp_path / "v.journal"
    shutil.copy(study_journal, path)
    return path


def _result(spec, latency_ms):
    """A trial's stored ``result`` attribute (a TrialResult as a plain dict)."""
    return TrialResult(spec=spec, latency_ms=latency_ms, macs=1, params=1, proxy=latency_ms,
                       proxy_name="params").to_dict()


def _line_study(latencies, feasible=True):
    """An in-memory study whose front is one trial per latency (proxy rises with latency)."""
    study = optuna.create_study(study_name="line", directions=["maximize", "minimize"])
    study.set_user_attr("budget_ms", 10.0)
    for i, ms in enumerate(latencies):
        study.add_trial(optuna.trial.create_trial(
            values=[ms, ms], user_attrs={"result": _result({"id": i if ms != 3 else "same"}, ms)},
            system_attrs={"constraints:latency_budget_ms": ms - 10.0 if feasible else 1.0}))
    return study


def test_pick_front_spreads_along_the_latency_axis():
    study = _line_study([5, 1, 7, 3, 3, 2, 6, 4])  # 3 twice, with one spec: counted once
    picked = {k: [trial_result(t).latency_ms for t in pick_front(study, k)] for k in range(1, 8)}
    assert picked == {1: [7], 2: [1, 7], 3: [1, 4, 7], 4: [1, 3, 5, 7], 5: [1, 3, 4, 5, 7],
                      6: [1, 2, 3, 5, 6, 7], 7: [1, 2, 3, 4, 5, 6, 7]}


def test_pick_front_on_a_real_study_keeps_fastest_and_slowest(journal):
    study = load_study(str(journal), "v")
    members = front(study)
    picked = pick_front(study, 2)
    # the fastest and the slowest network (a spec sampled twice is one network: compare specs, not trial numbers)
    assert [trial_result(t).spec for t in picked] == [trial_result(members[0]).spec, trial_result(members[-1]).spec]
    assert all(trial_result(t).latency_ms <= study.user_attrs["budget_ms"] for t in picked)


@pytest.mark.parametrize("k, message", [
    (0, "--top-k must be at least 1, got 0"),
    (8, r"K=8 but the front of study 'line' has 7 networks; use --top-k 7 or less"),
])
def test_pick_front_refuses_bad_k(k, message):
    with pytest.raises(ValidateError, match=message):
        pick_front(_line_study([5, 1, 7, 3, 3, 2, 6, 4]), k)


def test_pick_front_refuses_a_study_with_no_feasible_trials():
    with pytest.raises(ValidateError, match=r"study 'line' has no feasible trials \(none of its 3 completed trials is "
                                            r"within the 10 ms budget\); .*larger --budget-ms"):
        pick_front(_line_study([11, 12, 13], feasible=False), 1)


def test_default_recipe_never_rescales_synthetic_data():
    recipe = default_recipe("synthetic", (64, 128), steps=300, batch_size=8, seed=3)
    assert (recipe.crop, recipe.scale_range, recipe.seed, recipe.checkpoint_every) == ((64, 128), (1.0, 1.0), 3, 30)
    assert default_recipe("cityscapes", (512, 1024)).scale_range == (0.75, 1.5)
    with pytest.raises(ValidateError, match="--steps and --batch-size must be at least 1"):
        default_recipe("synthetic", (64, 128), steps=0)


def test_cli_validates_a_front_records_it_and_does_not_retrain(journal, tmp_path, capsys):
    out = tmp_path / "val"
    argv = ["validate", "--storage", str(journal), "--study", "v", "--top-k", "2", *FAST, "--resolution", "64x128",
            "--out", str(out), "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert "[1/3] trial" in captured.err and "[3/3] efficientvit_seg_b0: mIoU" in captured.err
    study = load_study(str(journal), "v")
    picked = pick_front(study, 2)
    rows = read_results(out / "results.csv")
    assert [r["network"] for r in rows] == [f"trial{t.number:05d}" for t in picked] + ["efficientvit_seg_b0"]
    assert [r["trial"] for r in rows] == [t.number for t in picked] + [None]
    for row, trial in zip(rows, picked + [None], strict=True):
        spec = ArchSpec.from_json(row["spec"])
        assert spec.num_classes == len(SYNTHETIC_CLASSES)
        assert row["latency_ms"] == (None if trial is None else pytest.approx(trial_result(trial).latency_ms))
        assert row["macs"] == count_macs(spec, (64, 128))  # at the training resolution
        assert (row["resolution"], row["steps"], row["batch_size"], row["seed"], row["dataset"]) == \
            ("64x128", 2, 2, 0, "synthetic")
        assert 0 <= row["miou"] <= 100 and 0 <= row["pixel_accuracy"] <= 100 and row["train_images_per_s"] > 0
        assert row["device"].startswith("cpu: ") and row["resumed_at_step"] == 0
        key = "validation:reference" if trial is None else f"validation:{trial.number}"
        attr = study.user_attrs[key]
        assert attr["miou"] == pytest.approx(row["miou"]) and attr["resolution"] == [64, 128]
        assert attr["steps"] == 2 and attr["dataset"] == "synthetic" and len(attr["per_class_iou"]) == len(SYNTHETIC_CLASSES)
        assert ArchSpec.from_dict(attr["spec"]) == spec and Path(attr["checkpoint"]).parent == (out / "checkpoints").resolve()
        assert torch.load(attr["checkpoint"], weights_only=True)["step"] == 2
    assert model_spec("efficientvit_seg_b0").replace(num_classes=len(SYNTHETIC_CLASSES)) == ArchSpec.from_json(rows[-1]["spec"])
    assert [r["network"] for r in data["rows"]] == [r["network"] for r in rows] and data["rows"][0]["spec"]["widths"]
    with open(out / "results.csv", newline="") as handle:
        assert tuple(next(csv.reader(handle))) == COLUMNS

    before = (out / "results.csv").read_bytes()
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "checkpoints").iterdir()}
    assert len(stamps) == 3
    assert main(argv[:-1]) == 0
    text = capsys.readouterr().out
    assert text.count("already done") == 3 and "efficientvit_seg_b0" in text and "wrote" in text
    assert (out / "results.csv").read_bytes() == before
    assert {p.name: p.stat().st_mtime_ns for p in (out / "checkpoints").iterdir()} == stamps


class Interrupted(torch.utils.data.Dataset):
    """The training split, with the process 'killed' at the ``after``-th image read."""

    def __init__(self, dataset, after):
        self.dataset, self.after, self.reads = dataset, after, 0
        self.num_classes = dataset.num_classes

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        self.reads += 1
        if self.reads > self.after:
            raise KeyboardInterrupt
        return self.dataset[index]


def test_an_interrupted_network_resumes_from_its_checkpoint(tmp_path):
    train_set, val_set = open_datasets("synthetic", (32, 64))
    val_set = open_dataset("synthetic", "val", (32, 64), length=8)
    recipe = default_recipe("synthetic", (32, 64), steps=4, batch_size=2)  # a checkpoint every step
    entries = [Entry("tiny", TINY)]
    run = dict(dataset="synthetic", recipe=recipe, reference=False, progress=False, log=lambda _line: None)
    whole = validate(entries, train_set, val_set, work_dir=tmp_path / "whole", **run)
    with pytest.raises(KeyboardInterrupt):
        validate(entries, Interrupted(train_set, after=2 * 2 + 1), val_set, work_dir=tmp_path / "cut", **run)
    assert not (tmp_path / "cut" / "results.csv").exists()
    [checkpoint] = (tmp_path / "cut" / "checkpoints").iterdir()
    assert torch.load(checkpoint, weights_only=True)["step"] == 2
    [resumed] = validate(entries, train_set, val_set, work_dir=tmp_path / "cut", **run)
    assert resumed["resumed_at_step"] == 2 and whole[0]["resumed_at_step"] == 0
    assert resumed["miou"] == pytest.approx(whole[0]["miou"], rel=1e-4)
    assert resumed["pixel_accuracy"] == pytest.approx(whole[0]["pixel_accuracy"], rel=1e-4)


def test_cli_validates_named_networks_with_the_reference_once(tmp_path, capsys):
    spec_file = tmp_path / "tiny.json"
    spec_file.write_text(TINY.to_json())
    out = tmp_path / "named"
    code = main(["validate", str(spec_file), "efficientvit_seg_b0", "--resolution", "32x64", *FAST, "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "[2/2] efficientvit_seg_b0: mIoU" in text and "mIoU (%)" in text
    rows = read_results(out / "results.csv")
    assert [(r["network"], r["trial"], r["latency_ms"], r["resolution"]) for r in rows] == \
        [("tiny.json", None, None, "32x64"), ("efficientvit_seg_b0", None, None, "32x64")]


@pytest.fixture
def infeasible_journal(tmp_path):
    from nas.search import open_storage

    path = tmp_path / "none.journal"
    study = optuna.create_study(study_name="none", storage=open_storage(str(path)), directions=["maximize", "minimize"])
    study.set_user_attr("budget_ms", 1.0)
    study.add_trial(optuna.trial.create_trial(values=[1.0, 2.0], user_attrs={"result": _result(TINY.to_dict(), 2.0)},
                                              system_attrs={"constraints:latency_budget_ms": 1.0}))
    return path


@pytest.mark.parametrize("argv, message", [
    (["--study", "v", "--top-k", "99"], r"K=99 but the front of study 'v' has \d+ networks; use --top-k \d+ or less"),
    (["--study", "v", "--top-k", "0"], "--top-k must be at least 1, got 0"),
    (["--study", "v"], "--study needs --top-k K"),
    (["--study", "nope", "--top-k", "1"], "no study 'nope' in"),
    ([], r"give --study NAME --top-k K \(networks of a search's front\), or NETWORK arguments"),
    (["efficientvit_seg_b0", "--top-k", "1"], "--top-k picks networks of a study's front: give --study NAME too"),
    (["efficientvit_seg_b9"], "unknown network 'efficientvit_seg_b9'"),
    (["efficientvit_seg_b0", "--dataset", "cityscapes:{tmp}/missing"], r"Cityscapes: no folder .*missing\. Expected layout"),
    (["efficientvit_seg_b0", "--dataset", "kitti"], "unknown dataset 'kitti'"),
    (["efficientvit_seg_b0", "--steps", "0"], "--steps and --batch-size must be at least 1"),
])
def test_cli_errors_are_one_line_and_write_nothing(journal, tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = main(["validate", "--storage", str(journal), "--out", str(out), *FAST, *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("evit-nas: error: ")
    assert re.search(message, err), err
    assert not out.exists()


def test_cli_refuses_a_study_with_no_feasible_trials(infeasible_journal, tmp_path, capsys):
    code = main(["validate", "--storage", str(infeasible_journal), "--study", "none", "--top-k", "1",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == (
        "evit-nas: error: study 'none' has no feasible trials (none of its 1 completed trials is within the 1 ms "
        "budget); run more trials, or rerun evit-nas search with a larger --budget-ms")


def test_validate_on_a_camvid_folder(tmp_path, capsys):
    """The CamVid layout end to end through the command line (a tiny fixture: 2 train, 2 val images)."""
    from ..nas.test_data import camvid

    root = tmp_path / "camvid"
    for split in ("train", "val"):
        camvid(root, split, size=(96, 128))
    out = tmp_path / "out"
    code = main(["validate", "efficientvit_seg_b0", "--dataset", f"camvid:{root}", "--steps", "2", "--no-reference",
                 "--no-progress", "--out", str(out), "--json"])
    assert code == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["dataset"] == f"camvid:{root}" and row["resolution"] == "192x256" and row["spec"]["num_classes"] == 11
    assert row["recipe"]["scale_range"] == [0.5, 2.0] and 0 <= row["miou"] <= 100
    assert len(row["per_class_iou"]) == 11
