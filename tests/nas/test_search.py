"""The latency-budget search: constraint, storage, resume after kill -9, errors, pareto."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from latency_tables import LatencyTable
from evit_nas.main import main
from nas.search import SearchError, TrialResult, fastest_network, front, load_study, run_search, trial_result
from search_space import ArchSpec, SearchSpace

EVIT_NAS = Path(sys.executable).parent / "evit-nas"


def budget_for(table, space, share=0.5):
    """A budget between the fastest and the slowest sampled network."""
    lat = sorted(table.predict_ms(space.sample(i)) for i in range(40))
    return lat[int(share * (len(lat) - 1))]


def test_search_records_everything_and_keeps_a_feasible_front(tiny_table, space, tmp_path):
    table = LatencyTable.load(tiny_table)
    budget = budget_for(table, space)
    journal = tmp_path / "s.journal"
    study = run_search(table, space, budget_ms=budget, trials=40, storage=str(journal), study_name="t", seed=1,
                       proxy="params")
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 40
    for t in done:
        r = trial_result(t)
        assert isinstance(r, TrialResult) and r.proxy_name == "params"
        spec = ArchSpec.from_dict(r.spec)
        assert r.arch == spec and r.to_dict()["spec"] == r.spec and TrialResult.from_dict(r.to_dict()) == r
        assert space.contains(spec)
        assert r.latency_ms == pytest.approx(table.predict_ms(spec))
        assert r.params > 0 and r.macs > 0 and r.proxy == r.params
        assert t.constraints == {"latency_budget_ms": pytest.approx(r.latency_ms - budget)}
    members = front(study)
    assert members and all(trial_result(t).latency_ms <= budget for t in members)
    feasible = [t for t in done if trial_result(t).latency_ms <= budget]
    for t in members:  # nothing feasible dominates a front member
        r = trial_result(t)
        assert not any(trial_result(o).proxy >= r.proxy and trial_result(o).latency_ms <= r.latency_ms
                       and (trial_result(o).proxy, trial_result(o).latency_ms) != (r.proxy, r.latency_ms)
                       for o in feasible)
    assert study.user_attrs["budget_ms"] == budget and study.user_attrs["table_meta"]["device"] == "test-machine"


def test_same_command_resumes_to_the_total(tiny_table, space, tmp_path):
    table = LatencyTable.load(tiny_table)
    budget = budget_for(table, space)
    journal = str(tmp_path / "s.journal")
    first = run_search(table, space, budget_ms=budget, trials=10, storage=journal, study_name="r")
    before = [(t.number, t.params) for t in first.get_trials(states=(TrialState.COMPLETE,))]
    again = run_search(table, space, budget_ms=budget, trials=25, storage=journal, study_name="r")
    after = again.get_trials(states=(TrialState.COMPLETE,))
    assert len(after) == 25 and [(t.number, t.params) for t in after[:10]] == before


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"objectives": "proxy,speed"}, r"objectives \['proxy', 'speed'\]: choose distinct names among"),
        ({"sampler": "cmaes"}, "unknown sampler 'cmaes'; choose one of"),
        ({"budget_ms": -3.0}, "--budget-ms must be a positive number"),
        ({"budget_ms": 0.0001}, r"budget 0.0001 ms is below the fastest network of the space on this table \(.* ms predicted"),
        ({"proxy": "oracle"}, "unknown proxy 'oracle'"),
        ({"storage": "postgresql://nobody@127.0.0.1:1/none"}, "cannot open storage postgresql://"),
    ],
)
def test_bad_requests_are_refused(tiny_table, space, tmp_path, kwargs, message):
    table = LatencyTable.load(tiny_table)
    args = {"budget_ms": budget_for(table, space), "storage": str(tmp_path / "s.journal"), **kwargs}
    budget = args.pop("budget_ms")
    started = time.monotonic()
    with pytest.raises(SearchError, match=message):
        run_search(table, space, budget_ms=budget, trials=5, **args)
    assert time.monotonic() - started < 30


def test_a_study_made_for_other_objectives_is_not_reused(tiny_table, space, tmp_path):
    table = LatencyTable.load(tiny_table)
    budget = budget_for(table, space)
    journal = str(tmp_path / "s.journal")
    run_search(table, space, budget_ms=budget, trials=3, storage=journal, study_name="o")
    with pytest.raises(SearchError, match=r"study 'o' exists with objectives \['proxy', 'latency'\], not \['proxy', 'macs'\]"):
        run_search(table, space, budget_ms=budget, trials=3, objectives="proxy,macs", storage=journal, study_name="o")
    assert len(load_study(journal, "o").trials) == 3


def test_fastest_network_is_no_slower_than_any_sample(tiny_table, space):
    table = LatencyTable.load(tiny_table)
    _, fastest = fastest_network(space, table)
    assert fastest <= min(table.predict_ms(space.sample(i)) for i in range(200)) + 1e-9


def test_kill_9_then_resume(tiny_table, space_file, tmp_path):
    table = LatencyTable.load(tiny_table)
    budget = budget_for(table, SearchSpace.from_file(space_file))
    journal = tmp_path / "k.journal"
    cmd = [str(EVIT_NAS), "search", "--table", str(tiny_table), "--space", str(space_file), "--budget-ms", f"{budget}",
           "--trials", "60", "--proxy", "naswot", "--storage", str(journal), "--study", "k", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if journal.exists():
            try:
                done = len(load_study(str(journal), "k").get_trials(states=(TrialState.COMPLETE,)))
            except SearchError:
                continue
            if done >= 10:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 10 <= done < 60, "the search finished before it could be killed"
    killed = load_study(str(journal), "k")
    finished = {t.number: t.params for t in killed.get_trials(states=(TrialState.COMPLETE,))}
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    study = load_study(str(journal), "k")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 60
    assert all(study.trials[n].params == p and study.trials[n].state == TrialState.COMPLETE for n, p in finished.items())
    assert not study.get_trials(states=(TrialState.RUNNING,))  # the killed trial was marked failed
    numbers = [t.number for t in study.trials]
    assert numbers == sorted(set(numbers))


def test_pareto_cli_prints_and_exports(tiny_table, space, space_file, tmp_path, capsys):
    table = LatencyTable.load(tiny_table)
    budget = budget_for(table, space)
    journal = tmp_path / "p.journal"
    code = main(["search", "--table", str(tiny_table), "--space", str(space_file), "--budget-ms", str(budget),
                 "--trials", "20", "--storage", str(journal), "--study", "p", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["front"]
    code = main(["pareto", "--storage", str(journal), "--study", "p", "--export", str(tmp_path / "front")])
    text = capsys.readouterr().out
    assert code == 0 and "networks on the feasible front" in text
    lines = (tmp_path / "front" / "front.csv").read_text().splitlines()
    assert len(lines) == len(out["front"]) + 1
    first = lines[1].split(",")
    spec = ArchSpec.from_json(tmp_path / "front" / first[6])
    assert table.predict_ms(spec) == pytest.approx(float(first[1]), rel=1e-4)
    assert (tmp_path / "front" / first[7]).stat().st_size > 1000
    code = main(["pareto", "--storage", str(journal), "--study", "nope"])
    assert code == 2 and "no study 'nope'" in capsys.readouterr().err


def test_cli_errors_are_one_line(tiny_table, space_file, tmp_path, capsys):
    base = ["search", "--table", str(tiny_table), "--space", str(space_file), "--storage", str(tmp_path / "e.journal"),
            "--trials", "3"]
    assert main(base + ["--budget-ms", "-5"]) == 2
    assert "--budget-ms must be a positive number of milliseconds, got -5.0" in capsys.readouterr().err
    assert main(base + ["--budget-ms", "0.001"]) == 2
    err = capsys.readouterr().err
    assert "is below the fastest network of the space" in err and len(err.strip().splitlines()) == 1
    assert main(["search", "--table", str(tiny_table), "--budget-ms", "5", "--trials", "3",
                 "--storage", str(tmp_path / "f.journal")]) == 2
    assert "built for another search space" in capsys.readouterr().err
    assert not (tmp_path / "f.journal").exists()


def test_the_sampler_sees_each_trial_once(tiny_table, space, tmp_path, monkeypatch):
    import nas.search as search

    mirrors = []
    real = optuna.create_study

    def spy(*args, **kwargs):
        study = real(*args, **kwargs)
        if kwargs.get("storage") is None:
            mirrors.append(study)
        return study

    monkeypatch.setattr(search.optuna, "create_study", spy)
    table = LatencyTable.load(tiny_table)
    journal = str(tmp_path / "m.journal")
    run_search(table, space, budget_ms=budget_for(table, space), trials=12, storage=journal, study_name="m")
    run_search(table, space, budget_ms=budget_for(table, space), trials=20, storage=journal, study_name="m")
    persisted = load_study(journal, "m").get_trials(states=(TrialState.COMPLETE,))
    assert len(persisted) == 20
    # the resumed run's sampler saw the 12 earlier trials once each, plus its own 8
    assert len(mirrors[-1].get_trials(states=(TrialState.COMPLETE,))) == 20
