"""Heartbeats of claimed trials, on the database and on the journal file alike.

A worker that trains a queued network (:mod:`nas.queue`) holds the network's trial in the
RUNNING state and proves it is alive by a heartbeat every ``interval`` seconds; a trial
whose last heartbeat is older than the grace period is stale, and
``optuna.storages.fail_stale_trials`` fails it and hands it to the storage's
stale-trial callback (the queue's puts it back in the queue).

Optuna 5.1 has this machinery for ``RDBStorage`` only (``heartbeat_interval``,
``grace_period``, ``heartbeat_stale_trial_callback``; heartbeats in their own table,
stamped with the database server's clock). ``JournalStorage`` has none, so
:class:`HeartbeatJournalStorage` adds the same interface to it: a heartbeat is a trial
system attribute holding the writer's wall-clock time (one small journal record per beat),
and a RUNNING trial is stale when both its last heartbeat and its start are older than the
grace period (the start counts, so a worker that dies between its claim and its first beat
still loses the claim). Machines sharing one journal file must keep their clocks in sync.

The settings belong to the queue, not to each worker (a worker with a shorter grace period
would take networks from live workers): the queue study stores them and every worker
applies them with :func:`configure`.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

__all__ = ["HEARTBEAT_ATTR", "HeartbeatJournalStorage", "configure", "fail_stale", "Beat"]

#: trial system attribute of a journal heartbeat (Unix time, s)
HEARTBEAT_ATTR = "heartbeat_unix_s"

_log = logging.getLogger(__name__)


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """A journal storage with Optuna's heartbeat interface (see the module docstring).
    Heartbeats are off until :func:`configure` sets them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heartbeat_interval: int | None = None
        self.grace_period: int | None = None
        self.heartbeat_stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        assert self.heartbeat_interval is not None
        grace_s = self.grace_period or 2 * self.heartbeat_interval
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
            if now - max(float(trial.system_attrs.get(HEARTBEAT_ATTR, 0.0)), started) > grace_s:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.heartbeat_stale_trial_callback


def configure(storage: BaseStorage, interval_s: int, grace_s: int,
              callback: Callable[[optuna.Study, FrozenTrial], None] | None) -> None:
    """Turn heartbeats on for ``storage`` (an ``RDBStorage`` or a
    :class:`HeartbeatJournalStorage`, as ``nas.search.open_storage(url, heartbeat=True)``
    gives): beat every ``interval_s`` seconds, stale after ``grace_s``, ``callback`` for each
    trial failed as stale. These are the attributes ``RDBStorage.__init__`` sets from its
    ``heartbeat_interval``, ``grace_period`` and ``heartbeat_stale_trial_callback``."""
    if not isinstance(storage, (RDBStorage, HeartbeatJournalStorage)):
        raise TypeError(f"{type(storage).__name__} records no heartbeats; open the storage with heartbeat=True")
    storage.heartbeat_interval = int(interval_s)
    storage.grace_period = int(grace_s)
    storage.heartbeat_stale_trial_callback = callback


def fail_stale(study: optuna.Study) -> None:
    """``optuna.storages.fail_stale_trials`` (experimental in Optuna 5.1: its warning is
    silenced): fail ``study``'s stale trials, exactly once each across workers (the state
    change is refused to all but one), and run the stale-trial callback on them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


class Beat:
    """A background thread that records the heartbeat of one trial every ``interval_s``
    seconds while its ``with`` block runs, and notices when the trial is no longer RUNNING
    (another worker failed it as stale): ``lost`` is then True. Storage errors are logged,
    not raised: a missed beat costs nothing until the grace period."""

    def __init__(self, storage: BaseStorage, trial_id: int, interval_s: float) -> None:
        self.storage, self.trial_id, self.interval_s = storage, trial_id, interval_s
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{trial_id}", daemon=True)

    def __enter__(self) -> Beat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if self.storage.get_trial(self.trial_id).state != TrialState.RUNNING:
                    self.lost = True
                    return
                assert isinstance(self.storage, BaseHeartbeat)
                self.storage.record_heartbeat(self.trial_id)
            except optuna.exceptions.UpdateFinishedTrialError:
                self.lost = True
                return
            except Exception as exc:  # a database hiccup: the next beat may get through
                _log.warning("heartbeat of trial %d not recorded: %s", self.trial_id, exc)
