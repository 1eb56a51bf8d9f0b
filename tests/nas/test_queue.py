"""The training queue on a journal file: claims, stale claims, releases, status (no training)."""

import time

import optuna
import pytest
from optuna.trial import TrialState

from evit_nas.main import main
from nas.heartbeat import HEARTBEAT_ATTR, HeartbeatJournalStorage
from nas.queue import (
    QueueError,
    claim,
    collect,
    enqueue,
    finish,
    make_jobs,
    open_queue,
    queue_status,
    release,
)
from nas.search import open_storage
from nas.validate import Entry, default_recipe, read_results

from .test_validate import TINY

RECIPE = default_recipe("synthetic", (64, 128), steps=2, batch_size=2)


@pytest.fixture
def journal(tmp_path):
    path = tmp_path / "q.journal"
    optuna.create_study(study_name="s", storage=open_storage(str(path)))
    return str(path)


def _jobs(tmp_path, n=3):
    entries = [Entry(f"net{i}", TINY.replace(head_depth=i % 2, widths=(8, 8, 16, 16, 32 + 8 * i))) for i in range(n)]
    return make_jobs(entries, num_classes=3, dataset="synthetic", recipe=RECIPE, work_dir=tmp_path / "out",
                     study_name="s", reference=False)


def _row(job, miou=50.0):
    return {"network": job.name, "miou": miou, "spec": "{}", "recipe": "{}", "dataset": job.dataset}


def test_a_network_is_queued_once_and_claimed_once(journal, tmp_path):
    jobs = _jobs(tmp_path)
    queue = open_queue(journal, "s", create=True, heartbeat_s=30)
    assert enqueue(queue, jobs) == {"queued": 3, "already": 0}
    assert enqueue(queue, jobs + _jobs(tmp_path, 4)[3:]) == {"queued": 1, "already": 3}
    # two workers: each its own storage on the same file, claiming in turn
    a, b = open_queue(journal, "s"), open_queue(journal, "s")
    claims = [claim(a, "a"), claim(b, "b"), claim(a, "a"), claim(b, "b"), claim(a, "a")]
    assert claims[-1] is None
    numbers = [c.number for c in claims[:-1]]
    assert sorted(numbers) == [0, 1, 2, 3]  # oldest first, none twice
    # the claim is the storage-level state change: a second try on a claimed trial is refused
    store = claims[0].storage
    assert store.set_trial_state_values(claims[0].trial_id, state=TrialState.RUNNING) is False
    assert [t.system_attrs["worker"] for t in a.get_trials(states=(TrialState.RUNNING,))] == ["a", "b", "a", "b"]
    assert isinstance(store, HeartbeatJournalStorage)
    assert all(HEARTBEAT_ATTR in t.system_attrs for t in a.get_trials(states=(TrialState.RUNNING,)))


def test_a_stale_claim_is_queued_again_once_and_its_worker_records_nothing(journal, tmp_path):
    (job,) = _jobs(tmp_path, 1)
    enqueue(open_queue(journal, "s", create=True, heartbeat_s=1, grace_s=2), [job])
    dead = claim(open_queue(journal, "s"), "dead")
    assert claim(open_queue(journal, "s"), "early") is None  # within the grace period the claim holds
    time.sleep(2.5)  # no heartbeat: the claim expires
    taker, other = open_queue(journal, "s"), open_queue(journal, "s")
    retry = claim(taker, "taker")
    assert claim(other, "other") is None  # failed once, queued again once
    assert retry.job == job and retry.retries == 1
    trials = taker.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING]
    assert trials[1].system_attrs["retry_history"] == [trials[0].number]
    recorded = []
    assert finish(dead, _row(job), lambda: recorded.append("dead")) is False  # its claim is gone
    assert finish(retry, _row(job), lambda: recorded.append("taker")) is True
    assert recorded == ["taker"]
    status = queue_status(taker, [job])
    assert (status["done"], status["retried"], status["failed"], status["waiting"]) == (1, 1, 0, 0)


def test_a_beating_claim_does_not_expire(journal, tmp_path):
    (job,) = _jobs(tmp_path, 1)
    enqueue(open_queue(journal, "s", create=True, heartbeat_s=1, grace_s=2), [job])
    held = claim(open_queue(journal, "s"), "alive")
    with held.beat() as beat:
        time.sleep(3.5)
        assert claim(open_queue(journal, "s"), "other") is None
    assert not beat.lost


def test_release_requeues_an_interrupted_network_and_keeps_an_error(journal, tmp_path):
    first, second = _jobs(tmp_path, 2)
    queue = open_queue(journal, "s", create=True, heartbeat_s=30)
    enqueue(queue, [first, second])
    release(claim(queue, "w"))  # interrupted: back in the queue at once
    again = claim(queue, "w")
    assert again.job == first and again.retries == 1
    release(again, error="TrainError: boom")
    release(claim(queue, "w"), error=None)
    status = queue_status(queue, [first, second])
    assert (status["failed"], status["waiting"], status["retried"]) == (1, 1, 2)
    assert status["errors"] == ["net0: TrainError: boom"]
    assert enqueue(queue, [first, second]) == {"queued": 1, "already": 1}  # a failed network can be queued again


def test_collect_writes_the_finished_rows(journal, tmp_path):
    jobs = _jobs(tmp_path, 2)
    queue = open_queue(journal, "s", create=True)
    enqueue(queue, jobs)
    held = claim(queue, "w")
    row = {k: None for k in read_results.__globals__["COLUMNS"]} | {"network": "net0", "spec": "x", "recipe": "r",
                                                                    "dataset": "synthetic", "miou": 12.5}
    assert finish(held, row, lambda: None)
    assert [r["miou"] for r in collect(queue, jobs, tmp_path / "results.csv")] == [12.5]
    assert [r["network"] for r in read_results(tmp_path / "results.csv")] == ["net0"]


def test_open_queue_refuses_a_missing_queue_and_bad_settings(journal):
    with pytest.raises(QueueError, match=r"no training queue for study 's' in .*evit-nas validate --study s"):
        open_queue(journal, "s")
    with pytest.raises(QueueError, match="the grace period longer than it"):
        open_queue(journal, "s", create=True, heartbeat_s=5, grace_s=5)


def test_worker_cli_errors_are_one_line(journal, capsys):
    assert main(["worker", "--storage", journal, "--study", "s"]) == 2
    assert "no training queue for study 's'" in capsys.readouterr().err
    assert main(["worker", "--storage", journal, "--study", "s", "--device", "gpu"]) == 2
    assert "device 'gpu': choose auto, cpu, cuda or cuda:N" in capsys.readouterr().err
    if not __import__("torch").cuda.is_available():
        assert main(["worker", "--storage", journal, "--study", "s", "--device", "cuda:1"]) == 2
        assert "--device cuda:1: no CUDA device is available here" in capsys.readouterr().err


def test_validate_queue_needs_a_study(tmp_path, capsys):
    spec = tmp_path / "tiny.json"
    spec.write_text(TINY.to_json())
    assert main(["validate", str(spec), "--queue", "--no-reference", "--steps", "1", "--resolution", "64x128",
                 "--out", str(tmp_path / "v")]) == 2
    assert "--queue puts the networks in the queue of a study" in capsys.readouterr().err


def test_a_cpu_worker_refuses_a_mixed_precision_network(journal, tmp_path, capsys):
    if __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA")
    jobs = make_jobs([Entry("amp", TINY)], num_classes=3, dataset="synthetic", recipe=RECIPE, work_dir=tmp_path,
                     study_name="s", reference=False, amp=True)
    enqueue(open_queue(journal, "s", create=True), jobs)
    assert main(["worker", "--storage", journal, "--study", "s", "--device", "cpu", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "amp (queue trial 0) failed: TrainError: mixed precision (--amp) needs a CUDA device, not cpu" in out
    assert queue_status(open_queue(journal, "s"), jobs)["failed"] == 1
