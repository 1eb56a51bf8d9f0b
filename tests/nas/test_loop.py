"""The accuracy-aware loop: what it picks, that it learns from its rounds, and that it resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from evit_nas.main import main
from nas.loop import pick_to_train
from nas.search import load_study
from nas.validate import read_results
from reports.loop import loop_section
from search_space.records import read_csv

FAST = ["--train-steps", "2", "--train-batch-size", "2", "--trials", "24"]


def test_pick_to_train_exploits_then_explores():
    mean = [50.0, 49.0, 48.0, 30.0, 20.0]
    std = [0.1, 0.1, 0.1, 0.2, 20.0]  # the last one: poor mean, huge doubt
    assert pick_to_train(mean, std, k=3) == [0, 1, 4]
    assert pick_to_train(mean, std, k=1) == [0]  # one pick: the best predicted
    assert sorted(pick_to_train(mean, std, k=9)) == [0, 1, 2, 3, 4]  # fewer candidates than k: all of them
    assert pick_to_train(mean, [0.0] * 5, k=3, explore_share=0) == [0, 1, 2]
    with pytest.raises(ValueError, match="5 means but 2 spreads"):
        pick_to_train(mean, [1.0, 2.0], k=2)


def _loop_args(tiny_table, space_file, tmp_path, journal, rounds=2):
    return ["search", "--table", str(tiny_table), "--space", str(space_file), "--budget-ms", "1000",
            "--storage", str(journal), "--study", "loop", "--rounds", str(rounds), "--train-per-round", "4",
            "--loop-out", str(tmp_path / "loop"), *FAST]


@pytest.mark.slow
def test_loop_trains_refits_and_resumes_without_retraining(tiny_table, space_file, tmp_path, capsys):
    journal = tmp_path / "s.journal"
    assert main([*_loop_args(tiny_table, space_file, tmp_path, journal), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    out = tmp_path / "loop"
    rows = read_results(out / "results.csv")
    names = [r["network"] for r in rows]
    assert len(names) == len(set(names)) == 4 + 1 + 4  # round 0: 4 + B0, round 1: 4 new ones
    assert len({r["spec"] for r in rows}) == len(rows)  # no network trained twice under two names
    assert [r["round"] for r in record["round"]] == [0, 1]
    assert all(len(r["trained"]) == 4 and all(t["measured_miou"] is not None for t in r["trained"])
               for r in record["round"])
    # round 1 searched with a predictor fitted on round 0's five networks, not the shipped one
    predictor = json.loads((out / "round1" / "predictor.json").read_text())
    assert predictor["networks"] == 5 and str(out / "results.csv") in predictor["source"]
    assert record["round"][1]["predictor_networks"] == 5
    assert {t["picked_by"] for t in record["round"][0]["trained"]} == {"mean", "upper confidence bound"}
    best = record["round"][1]["best"]
    assert best["miou"] == max(r["miou"] for r in rows if r["network"] != "efficientvit_seg_b0")
    # the last round's study carries the record, and the report draws it
    assert load_study(str(journal), "loop-round1").user_attrs["loop"]["round"] == record["round"]
    report = tmp_path / "report"
    report.mkdir()
    page = loop_section(report, record)
    assert "The accuracy-aware loop" in page and (report / "loop.png").stat().st_size > 0
    assert len(read_csv(report / "loop.csv")[1]) == 8
    # the same command again: everything is found done, nothing is trained again
    before = (out / "results.csv").read_text()
    assert main(_loop_args(tiny_table, space_file, tmp_path, journal)) == 0
    assert "already done" in capsys.readouterr().out
    assert (out / "results.csv").read_text() == before
    # one more round continues from there: 4 more networks, a predictor fitted on 9
    assert main([*_loop_args(tiny_table, space_file, tmp_path, journal, rounds=3), "--json"]) == 0
    capsys.readouterr()
    assert len(read_results(out / "results.csv")) == 13
    assert json.loads((out / "round2" / "predictor.json").read_text())["networks"] == 9


@pytest.mark.slow
def test_loop_killed_while_training_resumes_and_trains_each_network_once(tiny_table, space_file, tmp_path):
    journal = tmp_path / "s.journal"
    args = _loop_args(tiny_table, space_file, tmp_path, journal)
    args[args.index("--train-steps") + 1] = "12"  # long enough to be killed inside a training
    command = [sys.executable, "-m", "evit_nas", *args]
    results = tmp_path / "loop" / "results.csv"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while len(read_results(results)) < 2 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert process.poll() is None, "the loop finished before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    done_before = {r["network"] for r in read_results(results)}
    assert 2 <= len(done_before) < 9
    finished = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr[-2000:]
    rows = read_results(results)
    assert len(rows) == len({r["network"] for r in rows}) == 9  # each network once, none lost
    for name in done_before:
        assert f"{name}: already done" in finished.stdout


@pytest.mark.slow
def test_refits_reuse_the_start_predictors_networks_when_trained_the_same_way(tiny_table, space_file, space, tmp_path,
                                                                             capsys):
    from nas.predictor import fit_predictor, load_predictor, training_conditions
    from nas.validate import default_recipe, training_resolution

    # a start predictor fitted on 6 networks "trained" with the loop's own dataset and recipe
    recipe = default_recipe("synthetic", training_resolution("synthetic"), steps=2, batch_size=2)
    prior = [space.sample(1000 + i) for i in range(6)]
    start = tmp_path / "start.json"
    fit_predictor(prior, [30.0 + i for i in range(6)], source="prior",
                  trained_with=training_conditions("synthetic", recipe.to_dict())).save(start)
    journal = tmp_path / "s.journal"
    assert main([*_loop_args(tiny_table, space_file, tmp_path, journal), "--start-predictor", str(start), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["prior_networks"] == 6
    refit = load_predictor(tmp_path / "loop" / "round1" / "predictor.json")
    assert refit.networks == 5 + 6  # round 0's 4 networks and B0, and the 6 prior networks
    assert "6 networks of the start predictor" in refit.source
    assert refit.trained_with == training_conditions("synthetic", recipe.to_dict())
    # trained another way (another step count): the prior networks are left out
    other = tmp_path / "other"
    other.mkdir()
    args = _loop_args(tiny_table, space_file, other, other / "s.journal", rounds=1)
    args[args.index("--train-steps") + 1] = "3"
    assert main([*args, "--start-predictor", str(start), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["prior_networks"] == 0
