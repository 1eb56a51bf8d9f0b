"""The training queue: networks to train, held in the study's own storage.

Brief training scales out through the engine the search already uses, not through a
scheduler of our own. The queue of study ``NAME`` is a second Optuna study,
``NAME.train-queue``, in the same storage (a journal file, or a PostgreSQL database shared
by several machines):

- **Queueing** (``evit-nas validate --queue``, the accuracy-aware loop): one WAITING trial
  per network (``Study.enqueue_trial``), whose user attribute ``job`` is a :class:`Job`:
  the ArchSpec, the recipe, the dataset, the checkpoint file and the study to record in.
  A network already waiting, training or trained is not queued twice.
- **Claiming** (``evit-nas worker``): a worker moves a WAITING trial to RUNNING with
  ``storage.set_trial_state_values``, the storage-level state change Optuna's own
  ``Study._pop_waiting_trial_id`` uses (``Study.ask`` would create a new trial when the
  queue is empty). The change is refused to all but one worker: PostgreSQL locks the row
  (``SELECT ... FOR UPDATE``) and refuses a trial that is no longer WAITING; the journal
  applies the first RUNNING record of the log and rejects later ones. Exactly one worker
  claims a network.
- **Heartbeats and re-queueing** (:mod:`nas.heartbeat`): the claiming worker records a
  heartbeat every ``heartbeat_s`` seconds while it trains. Before each claim a worker calls
  ``optuna.storages.fail_stale_trials``: a trial whose heartbeat is older than ``grace_s``
  (its worker was killed, its machine lost) is failed, once, and Optuna's
  ``RetryHeartbeatStaleTrialCallback`` queues a copy of it (same ``job``; the attribute
  ``retry_history`` lists the failed trials), at most :data:`MAX_RETRY` times. The new
  worker resumes from the last checkpoint when the checkpoint folder is shared, otherwise
  starts over: training is deterministic for its seed either way.
- **Results**: the worker records the results row in the queue trial (user attribute
  ``row``), the ``validation:*`` attribute in the study like ``validate`` does
  (``nas.validate.record_validation``), and then completes the queue trial with the mIoU as
  its value. ``validate --queue`` run again (or the loop) gathers the rows into
  ``results.csv``.

Every network therefore ends as exactly one COMPLETE queue trial; a killed worker leaves
one FAIL trial behind with its place taken by the retry.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search_space.errors import EvitNasError
from search_space.network import network_from_dict
from search_space.records import package_version

from .heartbeat import Beat, configure, fail_stale
from .search import _optuna_quiet, open_storage
from .train import Recipe
from .validate import Entry, checkpoint_path, entry_key, plan_entries, write_row

__all__ = ["QUEUE_SUFFIX", "HEARTBEAT_S", "MAX_RETRY", "QueueError", "Job", "Claim", "queue_name", "open_queue",
           "make_jobs", "enqueue", "claim", "release", "finish", "queue_status", "collect", "wait_for",
           "submit", "validate_queued", "worker_id"]

QUEUE_SUFFIX = ".train-queue"
#: default heartbeat interval of a new queue (s); stale after GRACE_FACTOR times as long
HEARTBEAT_S = 60
GRACE_FACTOR = 3
#: how many times a network whose worker died is queued again
MAX_RETRY = 3


class QueueError(EvitNasError, ValueError):
    """A queue request that cannot run; the message says what to change."""


def worker_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Job:
    """One network to train, as plain data (the queue trial's ``job`` attribute).

    Attributes:
        name: the network's name in results (``trial00012``, ``efficientvit_seg_b0``, ...).
        spec: its ArchSpec (or peer spec) as a dict, for the dataset's classes.
        trial: the study trial it came from (None for a named network).
        latency_ms: the study's predicted latency (ms), if any.
        dataset: ``synthetic``, ``camvid:PATH``, ... (the path as the queuing machine sees it).
        recipe: the :class:`~nas.train.Recipe` as a dict.
        checkpoint: the checkpoint file (absolute path; a worker may put it elsewhere).
        study: the study that receives the result.
        amp: mixed precision (a worker without CUDA refuses it).
    """

    name: str
    spec: dict[str, Any]
    trial: int | None
    latency_ms: float | None
    dataset: str
    recipe: dict[str, Any]
    checkpoint: str
    study: str
    amp: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(**data)

    def entry(self) -> Entry:
        return Entry(self.name, network_from_dict(self.spec), self.trial, self.latency_ms)

    def make_recipe(self) -> Recipe:
        return Recipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.recipe.items()})

    def key(self) -> str:
        """What identifies the training: the results key (name, spec, recipe, dataset) and the study."""
        return hashlib.sha1(json.dumps([*entry_key(self.entry(), self.make_recipe(), self.dataset),
                                        self.study]).encode()).hexdigest()


def queue_name(study_name: str) -> str:
    """The queue study of ``study_name``."""
    return study_name + QUEUE_SUFFIX


def open_queue(storage: str | None, study_name: str, *, create: bool = False, heartbeat_s: int = HEARTBEAT_S,
               grace_s: int | None = None) -> optuna.Study:
    """The queue of ``study_name`` in ``storage``, with heartbeats on (its own settings).

    Args:
        create: create the queue if missing, with ``heartbeat_s`` and ``grace_s`` (default
            :data:`GRACE_FACTOR` x ``heartbeat_s``); an existing queue keeps its settings.

    Raises:
        QueueError: no such queue (and not ``create``), or bad heartbeat settings.
    """
    store = open_storage(storage, heartbeat=True)
    name = queue_name(study_name)
    with _optuna_quiet():
        if create:
            grace_s = GRACE_FACTOR * heartbeat_s if grace_s is None else grace_s
            if heartbeat_s < 1 or grace_s <= heartbeat_s:
                raise QueueError(f"heartbeat every {heartbeat_s} s with a grace period of {grace_s} s: the interval must "
                                 "be at least 1 s and the grace period longer than it")
            queue = optuna.create_study(study_name=name, storage=store, direction="maximize", load_if_exists=True)
            if "heartbeat_s" not in queue.user_attrs:
                for key, value in (("heartbeat_s", heartbeat_s), ("grace_s", grace_s), ("study", study_name),
                                   ("package_version", package_version())):
                    queue.set_user_attr(key, value)
        else:
            try:
                queue = optuna.load_study(study_name=name, storage=store)
            except KeyError:
                raise QueueError(f"no training queue for study {study_name!r} in {storage or 'evit-nas.journal'}; "
                                 f"queue networks with `evit-nas validate --study {study_name} ... --queue` "
                                 "(or give the --storage and --study the queue was made with)") from None
    deadline = time.monotonic() + 10.0
    while "grace_s" not in (attrs := queue.user_attrs) and time.monotonic() < deadline:
        time.sleep(0.05)  # another process created the queue a moment ago and is writing its settings
    if "grace_s" not in attrs:
        raise QueueError(f"study {name!r} is not a training queue of evit-nas (no heartbeat settings)")
    with warnings.catch_warnings():  # the callback is experimental in Optuna 5.1
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
    configure(store, attrs["heartbeat_s"], attrs["grace_s"], retry)
    return queue


def make_jobs(entries: Sequence[Entry], *, num_classes: int, dataset: str, recipe: Recipe, work_dir: str | Path,
              study_name: str, reference: bool = True, amp: bool = False) -> list[Job]:
    """The jobs of ``validate`` for ``entries`` (B0 too unless ``reference=False``):
    checkpoints in ``work_dir/checkpoints`` as ``validate`` names them."""
    work_dir = Path(work_dir).resolve()
    jobs = []
    for entry in plan_entries(entries, num_classes, reference):
        key = entry_key(entry, recipe, dataset)
        jobs.append(Job(entry.name, entry.spec.to_dict(), entry.trial, entry.latency_ms, dataset, recipe.to_dict(),
                        str(checkpoint_path(work_dir, key)), study_name, amp))
    return jobs


def _job(trial: FrozenTrial) -> Job:
    return Job.from_dict(trial.user_attrs["job"])


def enqueue(queue: optuna.Study, jobs: Sequence[Job]) -> dict[str, int]:
    """Queue the ``jobs`` not already waiting, training or trained in ``queue``.

    Returns:
        ``{"queued": n, "already": m}``.
    """
    present = {t.user_attrs.get("job_key") for t in queue.get_trials(
        deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE))}
    queued = 0
    with _optuna_quiet():
        for job in jobs:
            key = job.key()
            if key not in present:
                queue.enqueue_trial({}, user_attrs={"job": job.to_dict(), "job_key": key})
                present.add(key)
                queued += 1
    return {"queued": queued, "already": len(jobs) - queued}


@dataclass
class Claim:
    """A network this worker holds: its queue trial and its job."""

    queue: optuna.Study
    storage: optuna.storages.BaseStorage
    trial_id: int
    number: int
    job: Job
    retries: int

    def beat(self) -> Beat:
        """The heartbeat thread of the claim (a context manager)."""
        return Beat(self.storage, self.trial_id, self.queue.user_attrs["heartbeat_s"])


def _raw_storage(queue: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage under Optuna's cache (``optuna.load_study`` wraps an RDB storage in one)."""
    store = queue._storage
    return store._backend if isinstance(store, optuna.storages._CachedStorage) else store


def claim(queue: optuna.Study, worker: str | None = None) -> Claim | None:
    """Fail the queue's stale claims (re-queueing their networks), then claim the oldest
    waiting network (a network queued again keeps its first place): None when nothing waits.

    The claim is the WAITING -> RUNNING change of ``storage.set_trial_state_values``, which
    succeeds for one worker only (this is ``optuna.Study._pop_waiting_trial_id``, kept here
    because that method is private); the first heartbeat and the worker's name follow.
    """
    fail_stale(queue)
    store = _raw_storage(queue)
    waiting = queue.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    # a network queued again keeps its place (the number of its first trial): it may have a checkpoint
    for trial in sorted(waiting, key=lambda t: (t.system_attrs.get("retry_history") or [t.number])[0]):
        try:
            if not store.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        store.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
        store.set_trial_system_attr(trial._trial_id, "worker", worker or worker_id())
        return Claim(queue, store, trial._trial_id, trial.number, _job(trial),
                     len(trial.system_attrs.get("retry_history", [])))
    return None


def release(held: Claim, error: str | None = None) -> None:
    """Give a claim up: with ``error`` (the training failed) the network is left failed with
    that message; without (the worker was interrupted) it is queued again at once, as a
    stale claim would be after the grace period."""
    try:
        if error is not None:
            held.storage.set_trial_user_attr(held.trial_id, "error", error[:2000])
        if held.storage.set_trial_state_values(held.trial_id, state=TrialState.FAIL) and error is None:
            callback = held.storage.get_heartbeat_stale_trial_callback()  # type: ignore[attr-defined]
            if callback is not None:
                callback(held.queue, held.storage.get_trial(held.trial_id))
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # another worker failed it as stale already (and queued it again)


def finish(held: Claim, row: dict[str, Any], record: Callable[[], None]) -> bool:
    """Store ``row`` in the claim's trial, call ``record`` (which writes the study's
    attribute) and complete the trial with the mIoU. False, with nothing recorded, when the
    claim was lost meanwhile (another worker failed it as stale: the retry will record)."""
    try:
        if held.storage.get_trial(held.trial_id).state != TrialState.RUNNING:
            return False
        held.storage.set_trial_user_attr(held.trial_id, "row", row)
        record()
        miou = row["miou"]
        if miou is None or not math.isfinite(miou):
            held.storage.set_trial_user_attr(held.trial_id, "error", "the mIoU is not a number (empty validation split?)")
            held.storage.set_trial_state_values(held.trial_id, state=TrialState.FAIL)
        else:
            held.storage.set_trial_state_values(held.trial_id, state=TrialState.COMPLETE, values=[float(miou)])
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return True


def queue_status(queue: optuna.Study, jobs: Sequence[Job] | None = None) -> dict[str, Any]:
    """Counts of the queue (of ``jobs`` only, if given): ``waiting``, ``training`` (with the
    workers), ``done``, ``failed`` (training errors; a killed worker's trial counts as
    ``retried``), and ``rows``: the results rows of the done networks."""
    keys = None if jobs is None else {j.key() for j in jobs}
    out: dict[str, Any] = {"waiting": 0, "training": 0, "done": 0, "failed": 0, "retried": 0, "workers": [],
                           "rows": [], "errors": []}
    latest: dict[str, FrozenTrial] = {}
    for trial in queue.get_trials(deepcopy=False):
        key = trial.user_attrs.get("job_key")
        if keys is not None and key not in keys:
            continue
        if trial.state == TrialState.FAIL and "error" not in trial.user_attrs:
            out["retried"] += 1  # a stale or interrupted claim, queued again
            continue
        latest[key] = trial  # a retry comes after the trial it retries
    for trial in latest.values():
        if trial.state == TrialState.WAITING:
            out["waiting"] += 1
        elif trial.state == TrialState.RUNNING:
            out["training"] += 1
            out["workers"].append(trial.system_attrs.get("worker"))
        elif trial.state == TrialState.COMPLETE:
            out["done"] += 1
            out["rows"].append(trial.user_attrs["row"])
        else:
            out["failed"] += 1
            out["errors"].append(f"{_job(trial).name}: {trial.user_attrs.get('error', trial.state.name)}")
    return out


def collect(queue: optuna.Study, jobs: Sequence[Job], results: str | Path) -> list[dict[str, Any]]:
    """Write the rows of the finished ``jobs`` into the results CSV ``results`` (validate's
    file; rows of other networks stay); returns them in the order of ``jobs``."""
    by_key = {}
    for trial in queue.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        by_key[trial.user_attrs.get("job_key")] = trial.user_attrs["row"]
    rows = [by_key[j.key()] for j in jobs if j.key() in by_key]
    current = None
    for row in rows:
        current = write_row(Path(results), row, current)
    return rows


def wait_for(queue: optuna.Study, jobs: Sequence[Job], *, poll_s: float = 5.0,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Wait until every job is done or failed; a line to ``log`` whenever the counts move.

    Raises:
        QueueError: a job failed (its error named).
    """
    last = None
    while True:
        status = queue_status(queue, jobs)
        counts = (status["done"], status["training"], status["waiting"], status["failed"])
        if counts != last:
            log(f"queue {queue.study_name}: {status['done']}/{len(jobs)} trained, {status['training']} training, "
                f"{status['waiting']} waiting" + (f", {status['failed']} failed" if status["failed"] else ""))
            last = counts
        if status["failed"]:
            raise QueueError("training failed in a worker: " + "; ".join(status["errors"]))
        if status["done"] >= len(jobs):
            return status
        time.sleep(poll_s)


def submit(entries: Sequence[Entry], *, num_classes: int, dataset: str, recipe: Recipe, work_dir: str | Path,
           storage: str | None, study_name: str, queue_study: str | None = None, reference: bool = True,
           amp: bool = False, heartbeat_s: int = HEARTBEAT_S, wait: bool = False, poll_s: float = 5.0,
           log: Callable[[str], None] = print) -> dict[str, Any]:
    """Queue ``entries`` (B0 too unless ``reference=False``) for workers, in the queue of
    ``queue_study`` (default ``study_name``; results are recorded in ``study_name``); wait
    for them (``wait``); gather the finished rows into ``work_dir/results.csv``.

    Returns:
        ``{"queue", "networks", "queued", "already", "status"`` (:func:`queue_status`)
        ``, "rows"}``: the finished rows, in the order of the networks.

    Raises:
        QueueError: bad heartbeat settings; with ``wait``, a network failed in a worker.
    """
    jobs = make_jobs(entries, num_classes=num_classes, dataset=dataset, recipe=recipe, work_dir=work_dir,
                     study_name=study_name, reference=reference, amp=amp)
    queue = open_queue(storage, queue_study or study_name, create=True, heartbeat_s=heartbeat_s)
    counts = enqueue(queue, jobs)
    log(f"queued {counts['queued']} network(s) in {queue.study_name}"
        + (f" ({counts['already']} queued before)" if counts["already"] else "")
        + f": {recipe.steps} steps of batch {recipe.batch_size} on {dataset}; checkpoints in "
        f"{Path(work_dir) / 'checkpoints'}")
    log(f"train them with: evit-nas worker --storage {storage or 'evit-nas.journal'} --study "
        f"{queue_study or study_name}   (on each machine or GPU)")
    status = wait_for(queue, jobs, poll_s=poll_s, log=log) if wait else queue_status(queue, jobs)
    rows = collect(queue, jobs, Path(work_dir) / "results.csv")
    return {"queue": queue.study_name, "networks": len(jobs), **counts, "status": status, "rows": rows}


def validate_queued(entries: Sequence[Entry], train_set: Any, val_set: Any = None, *, dataset: str, recipe: Recipe,
                    work_dir: str | Path, storage: str | None, study: optuna.Study, queue_study: str | None = None,
                    reference: bool = True, amp: bool = False, log: Callable[[str], None] = print,
                    poll_s: float = 5.0, **_: Any) -> list[dict[str, Any]]:
    """``nas.validate.validate`` through the queue, for the accuracy-aware loop: the same
    arguments (``device`` and ``progress`` are the workers' business and ignored), queue the
    networks, wait until workers have trained them all, and return their rows. The study's
    ``validation:*`` attributes are written by the workers.

    Raises:
        QueueError: a network failed in a worker.
    """
    return submit(entries, num_classes=train_set.num_classes, dataset=dataset, recipe=recipe, work_dir=work_dir,
                  storage=storage, study_name=study.study_name, queue_study=queue_study, reference=reference, amp=amp,
                  wait=True, poll_s=poll_s, log=log)["rows"]
