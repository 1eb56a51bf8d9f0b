"""The training worker: claim a queued network, train it, record it, repeat.

``evit-nas worker`` runs :func:`run_worker` against the queue of a study
(:mod:`nas.queue`); any number of workers on any number of machines can share one queue.
A worker stops when nothing is waiting and no other worker is training a network (a
network whose worker dies comes back to the queue after the grace period, so a worker
waits for those); with ``wait=True`` it keeps polling for new networks until interrupted.

Under ``torchrun --nproc-per-node N`` the N processes train each network together
(DistributedDataParallel, see :mod:`nas.train`): the first process claims, sends the job to
the others, beats the heartbeat, evaluates and records.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from .queue import Claim, Job, QueueError, claim, finish, open_queue, release, worker_id
from .search import load_study
from .train import amp_dtype, resolve_device
from .validate import open_datasets, record_validation, trained_line, train_entry

__all__ = ["run_worker", "init_distributed"]

_log = logging.getLogger(__name__)


def init_distributed(device: str) -> tuple[int, int, str]:
    """Join the process group torchrun set up (``WORLD_SIZE`` > 1): gloo on CPU, NCCL on
    CUDA, each process on GPU ``LOCAL_RANK``. Returns (rank, world size, device); (0, 1,
    device) outside torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        # workers may wait long for a queued network: no collective times out meanwhile
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo",
                                             timeout=datetime.timedelta(days=7))
    return torch.distributed.get_rank(), world, device


def _share(job: dict[str, Any] | None, rank: int, world: int) -> dict[str, Any] | None:
    """The first process's job (or None: stop) in every process."""
    if world == 1:
        return job
    box = [job if rank == 0 else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _others_training(queue: optuna.Study) -> bool:
    return bool(queue.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def _open_queue(storage: str | None, study_name: str, wait: bool, poll_s: float,
                log: Callable[[str], None]) -> optuna.Study:
    """The queue; with ``wait``, wait for it to be created (workers started before the search)."""
    announced = False
    while True:
        try:
            return open_queue(storage, study_name)
        except QueueError:
            if not wait:
                raise
            if not announced:
                log(f"no queue for study {study_name!r} yet; waiting for one")
                announced = True
            time.sleep(poll_s)


def run_worker(storage: str | None, study_name: str, *, device: str = "auto", wait: bool = False,
               max_networks: int | None = None, checkpoint_dir: str | Path | None = None, poll_s: float = 5.0,
               progress: Callable[..., None] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Claim, train and record networks of the queue of ``study_name`` until it is empty
    (or ``max_networks`` are done; with ``wait``, until interrupted).

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (under torchrun: each process's GPU).
        checkpoint_dir: keep checkpoints here (same file names) instead of the queued paths
            (for a machine that cannot reach the queuing machine's folder).
        poll_s: seconds between looks at an empty queue.

    Returns:
        ``{"worker", "device", "trained": [{"network", "trial", "miou", "train_s", ...}],
        "failed": [...], "lost": [...], "claim_ms": [...]}`` (the first process's; the
        others return theirs with only ``worker`` and ``device``).

    Raises:
        QueueError: no queue for the study. TrainError: a bad device.
    """
    device = resolve_device(device)
    rank, world, device = init_distributed(device)
    queue = _open_queue(storage, study_name, wait, poll_s, log) if rank == 0 else None
    me = worker_id() + (f" ({world} processes)" if world > 1 else "")
    summary: dict[str, Any] = {"worker": me, "device": device, "processes": world, "trained": [], "failed": [],
                               "lost": [], "claim_ms": []}
    datasets: dict[tuple[str, tuple[int, int]], Any] = {}
    studies: dict[str, optuna.Study] = {}
    if rank == 0:
        log(f"worker {me} on {device}: queue {queue.study_name} in {storage or 'evit-nas.journal'} "
            f"(heartbeat every {queue.user_attrs['heartbeat_s']} s, claims expire after {queue.user_attrs['grace_s']} s)")
    announced, handled = False, 0
    while max_networks is None or handled < max_networks:  # the same count in every process of a group
        held = None
        if rank == 0:
            began = time.perf_counter()
            held = claim(queue, me)
            summary["claim_ms"].append(round((time.perf_counter() - began) * 1000, 3))
            while held is None and (wait or _others_training(queue)):
                if not announced:
                    log("queue empty; waiting for networks" if wait else
                        "nothing waiting; other workers are training (their networks come back if they die)")
                    announced = True
                time.sleep(poll_s)
                held = claim(queue, me)
            announced = False
        job = _share(held.job.to_dict() if held is not None else None, rank, world)
        if job is None:
            break
        result = _train_claimed(held, Job.from_dict(job), rank, device, checkpoint_dir, datasets, studies, storage,
                                progress, log)
        handled += 1
        if rank == 0:
            summary[result.pop("outcome")].append(result)
    if world > 1:
        torch.distributed.destroy_process_group()
    if rank == 0:
        failed = f", {len(summary['failed'])} failed" if summary["failed"] else ""
        log(f"worker {me}: {len(summary['trained'])} network(s) trained{failed}; stopping")
    return summary


def _train_claimed(held: Claim | None, job: Job, rank: int, device: str, checkpoint_dir: str | Path | None,
                   datasets: dict[tuple[str, tuple[int, int]], Any], studies: dict[str, optuna.Study],
                   storage: str | None, progress: Callable[..., None] | None,
                   log: Callable[[str], None]) -> dict[str, Any]:
    """Train one claimed job (every process) and, in the first process, record it or give
    the claim up. Returns ``{"outcome": "trained" | "failed" | "lost", ...}``."""
    recipe = job.make_recipe()
    checkpoint = Path(job.checkpoint) if checkpoint_dir is None else Path(checkpoint_dir) / Path(job.checkpoint).name
    label = f"{job.name} (queue trial {held.number})" if held is not None else job.name
    if rank == 0:
        retry = f", retry {held.retries} of a network whose worker stopped" if held.retries else ""
        log(f"training {label}: {recipe.steps} steps of batch {recipe.batch_size} on {job.dataset}{retry}")
    try:
        if job.amp:
            amp_dtype(device)  # a CPU worker refuses a mixed-precision job (clear error, not fp32 quietly)
        key = (job.dataset, tuple(recipe.crop))
        if key not in datasets:
            datasets[key] = open_datasets(job.dataset, recipe.crop)
        train_set, val_set = datasets[key]
        if held is not None:
            with held.beat() as beat:
                row = train_entry(job.entry(), train_set, val_set, dataset=job.dataset, recipe=recipe,
                                  checkpoint=checkpoint, device=device, amp=job.amp, progress=progress)
        else:  # another process of the group: the first one beats and records
            train_entry(job.entry(), train_set, val_set, dataset=job.dataset, recipe=recipe, checkpoint=checkpoint,
                        device=device, amp=job.amp, progress=None)
            return {"outcome": "trained", "network": job.name}
    except (KeyboardInterrupt, SystemExit):
        if held is not None:
            release(held)
            log(f"interrupted: {job.name} is back in the queue (it resumes from {checkpoint} if that folder is shared)")
        raise
    except Exception as exc:
        if held is None:
            raise
        message = f"{type(exc).__name__}: {exc}"
        _log.debug("training %s failed:\n%s", job.name, traceback.format_exc())
        release(held, error=message)
        log(f"{label} failed: {message}")
        return {"outcome": "failed", "network": job.name, "error": message}
    if beat.lost:
        log(f"{label}: this worker's claim expired meanwhile (no heartbeat for the grace period); another worker "
            "has taken the network: not recording")
        return {"outcome": "lost", "network": job.name}

    def record() -> None:
        if job.study not in studies:
            studies[job.study] = load_study(storage, job.study)
        record_validation(studies[job.study], job.entry(), row, checkpoint)

    if not finish(held, row, record):
        log(f"{label}: the claim was lost before recording; another worker records it")
        return {"outcome": "lost", "network": job.name}
    log(f"{label}: {trained_line(row)}; recorded in study {job.study!r}")
    return {"outcome": "trained", "network": job.name, "trial": job.trial, "queue_trial": held.number,
            "miou": row["miou"], "train_s": row["train_s"], "resumed_at_step": row["resumed_at_step"],
            "device": row["device"]}

