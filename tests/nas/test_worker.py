"""`evit-nas worker` processes against one queue: a journal file on one machine, a real
PostgreSQL server with a worker killed by SIGKILL while it trains, and torchrun (DDP)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from evit_nas.main import main
from nas.queue import Job
from nas.search import load_study, open_storage
from nas.validate import read_results

from .test_validate import TINY

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _queue_four(storage, study, tmp_path, steps, heartbeat_s=60):
    """A study and four tiny networks queued for it (validate --queue, no B0)."""
    optuna.create_study(study_name=study, storage=open_storage(storage))
    specs = []
    for i in range(4):
        path = tmp_path / f"net{i}.json"
        path.write_text(TINY.replace(head_depth=i % 2, widths=(8, 8, 16, 16, 32 + 8 * (i // 2))).to_json())
        specs.append(str(path))
    argv = ["validate", *specs, "--storage", storage, "--study", study, "--queue", "--heartbeat-s", str(heartbeat_s),
            "--no-reference", "--steps", str(steps), "--batch-size", "2", "--resolution", "64x128",
            "--out", str(tmp_path / "out"), "--json"]
    assert main(argv) == 0
    return argv


def _worker(storage, study, *extra):
    return subprocess.Popen([str(BIN / "evit-nas"), "worker", "--storage", storage, "--study", study, "--device", "cpu",
                             "--no-progress", "--poll-s", "0.5", "--json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def _queue(storage, study):
    return optuna.load_study(study_name=f"{study}.train-queue", storage=open_storage(storage))


def _check_every_network_once(storage, study, argv, capsys):
    """Four COMPLETE queue trials, one per network; the study's attributes; validate gathers the rows."""
    trials = _queue(storage, study).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.user_attrs["row"]["network"] for t in complete) == [f"net{i}.json" for i in range(4)]
    assert len({t.user_attrs["job_key"] for t in complete}) == 4
    attrs = load_study(storage, study).user_attrs
    assert sorted(k for k in attrs if k.startswith("validation:")) == [f"validation:network:net{i}.json" for i in range(4)]
    for t in complete:
        assert attrs[f"validation:network:{t.user_attrs['row']['network']}"]["miou"] == pytest.approx(t.values[0])
    capsys.readouterr()
    assert main(argv) == 0  # run again: nothing queued, the rows gathered
    summary = json.loads(capsys.readouterr().out)
    assert (summary["queued"], summary["done"], summary["waiting"], summary["training"]) == (0, 4, 0, 0)
    assert len(read_results(Path(summary["results"]))) == 4
    return complete


def test_two_workers_on_a_journal_file_train_each_network_once(tmp_path, capsys):
    storage = str(tmp_path / "w.journal")
    argv = _queue_four(storage, "j", tmp_path, steps=10)
    workers = [_worker(storage, "j") for _ in range(2)]
    summaries = []
    for w in workers:
        out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err
        summaries.append(json.loads(out))
    trained = [t["network"] for s in summaries for t in s["trained"]]
    assert sorted(trained) == [f"net{i}.json" for i in range(4)]  # each once, none lost
    assert all(s["trained"] for s in summaries)  # both workers took networks
    complete = _check_every_network_once(storage, "j", argv, capsys)
    assert len(_queue(storage, "j").get_trials()) == 4  # no retries, no failures
    assert {t.system_attrs["worker"] for t in complete} == {s["worker"] for s in summaries}


def _wait_for_checkpointed_claim(storage, study, pid, timeout_s=300):
    """The queue trial the worker ``pid`` trains, once its first checkpoint is written."""
    host = socket.gethostname()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for t in _queue(storage, study).get_trials(states=(TrialState.RUNNING,)):
            if t.system_attrs.get("worker") == f"{host}:{pid}" and Path(Job.from_dict(t.user_attrs["job"]).checkpoint).is_file():
                return t
        time.sleep(0.2)
    raise AssertionError(f"worker {pid} never held a checkpointed network")


def test_a_killed_worker_loses_its_claim_and_the_other_finishes_all(postgres_url, tmp_path, capsys):
    argv = _queue_four(postgres_url, "kill", tmp_path, steps=30, heartbeat_s=1)  # claims expire after 3 s
    victim, survivor = _worker(postgres_url, "kill"), _worker(postgres_url, "kill")
    try:
        held = _wait_for_checkpointed_claim(postgres_url, "kill", victim.pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        out, err = survivor.communicate(timeout=600)
    finally:
        for w in (victim, survivor):
            if w.poll() is None:
                w.kill()
    assert survivor.returncode == 0, err
    summary = json.loads(out)
    complete = _check_every_network_once(postgres_url, "kill", argv, capsys)
    trials = _queue(postgres_url, "kill").get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.number for t in failed] == [held.number]  # the killed claim, failed once ...
    assert "error" not in failed[0].user_attrs
    retry = next(t for t in complete if t.system_attrs.get("retry_history"))
    assert retry.system_attrs["retry_history"] == [held.number]  # ... and queued again once
    assert retry.user_attrs["job_key"] == held.user_attrs["job_key"]
    assert retry.system_attrs["worker"] == summary["worker"]  # the survivor took it over
    assert retry.user_attrs["row"]["resumed_at_step"] > 0  # from the shared checkpoint, not from the start
    assert len(trials) == 5 and not [t for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]


def test_torchrun_trains_one_network_with_two_processes(tmp_path):
    storage = str(tmp_path / "ddp.journal")
    optuna.create_study(study_name="d", storage=open_storage(storage))
    specs = []
    for name, spec in (("tiny.json", TINY), ("other.json", TINY.replace(head_depth=0))):
        (tmp_path / name).write_text(spec.to_json())
        specs.append(str(tmp_path / name))
    assert main(["validate", *specs, "--storage", storage, "--study", "d", "--queue", "--no-reference", "--steps",
                 "3", "--batch-size", "2", "--resolution", "64x128", "--out", str(tmp_path / "out")]) == 0
    # --max-networks 1: every process stops after one network (none is left waiting for the others)
    done = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", "-m", "evit_nas", "worker",
                           "--storage", storage, "--study", "d", "--device", "cpu", "--no-progress", "--json",
                           "--max-networks", "1"], capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)  # printed once, by the first process
    assert summary["processes"] == 2 and [t["network"] for t in summary["trained"]] == ["tiny.json"]
    assert summary["trained"][0]["device"].endswith(", 2 processes (DDP)")
    assert [t.state for t in _queue(storage, "d").get_trials()] == [TrialState.COMPLETE, TrialState.WAITING]
    assert load_study(storage, "d").user_attrs["validation:network:tiny.json"]["device"].endswith("2 processes (DDP)")


def test_the_loop_hands_its_rounds_to_workers(tiny_table, space_file, tmp_path):
    journal = str(tmp_path / "loop.journal")
    worker = _worker(journal, "wl", "--wait")  # started first: it waits for the queue
    try:
        done = subprocess.run([str(BIN / "evit-nas"), "search", "--table", str(tiny_table), "--space", str(space_file),
                               "--budget-ms", "1000", "--storage", journal, "--study", "wl", "--rounds", "1",
                               "--train-per-round", "2", "--train-steps", "2", "--train-batch-size", "2", "--trials",
                               "12", "--train-workers", "--loop-out", str(tmp_path / "loop"), "--json"],
                              capture_output=True, text=True, env=ENV, timeout=600)
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout)
    assert len(record["round"][0]["trained"]) == 2
    assert all(t["measured_miou"] is not None for t in record["round"][0]["trained"])
    queue = _queue(journal, "wl").get_trials()
    assert len(queue) == 3 and all(t.state == TrialState.COMPLETE for t in queue)  # 2 picks + B0, by the worker
    assert {t.system_attrs["worker"].split(":")[1] for t in queue} == {str(worker.pid)}
    assert len(read_results(tmp_path / "loop" / "results.csv")) == 3
    attrs = load_study(journal, "wl-round0").user_attrs
    assert "validation:reference" in attrs and len([k for k in attrs if k.startswith("validation:")]) == 3
    assert "queue wl.train-queue: 3/3 trained" in done.stderr
