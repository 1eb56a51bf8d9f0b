"""The ``worker`` command: train the networks queued in a study's storage."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from .args import add_json, print_json
from .progress import Progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="train networks queued in a study's storage (several machines, GPUs)",
                       description="Claim a network queued by `evit-nas validate --queue` (or by the accuracy-aware "
                       "loop of `evit-nas search --rounds R --train-workers`), train it with its queued recipe, record "
                       "its mIoU in the study like validate does, and take the next; stop when nothing is waiting and "
                       "no other worker is training (with --wait: keep waiting for new networks). Start any number of "
                       "workers on any number of machines against one --storage: each network is claimed by exactly "
                       "one worker, which beats a heartbeat while it trains; if it dies, its claim expires after the "
                       "queue's grace period and another worker takes the network over, from its last checkpoint "
                       "when the checkpoint folder is shared. One network on several GPUs or processes: "
                       "`torchrun --nproc-per-node N -m evit_nas worker ...` (DistributedDataParallel).")
    p.add_argument("--storage", help="Optuna storage holding the study and its queue: a journal file (several workers "
                   "on one machine) or a database URL such as postgresql://user:pw@host/db (several machines) "
                   "(default: evit-nas.journal)")
    p.add_argument("--study", required=True, help="the study whose queue to work on (the queue is STUDY.train-queue)")
    p.add_argument("--device", default="auto", metavar="DEVICE",
                   help="auto (CUDA when available), cpu, cuda or cuda:N; under torchrun each process takes GPU "
                   "LOCAL_RANK (default: auto)")
    p.add_argument("--wait", action="store_true", help="when the queue is empty, wait for new networks (until Ctrl-C)")
    p.add_argument("--max-networks", type=int, metavar="N", help="stop after N networks")
    p.add_argument("--checkpoint-dir", metavar="DIR", help="write checkpoints here instead of the queued folder (a "
                   "machine that does not share it; a network taken over from a dead worker then starts over)")
    p.add_argument("--poll-s", type=float, default=5.0, help="seconds between looks at an empty queue (default: 5)")
    p.add_argument("--no-progress", action="store_true", help="no training progress bar")
    add_json(p, "machine-readable summary on standard output")
    p.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    from nas.worker import run_worker

    from .args import CLIError

    if args.max_networks is not None and args.max_networks < 1:
        raise CLIError(f"--max-networks must be at least 1, got {args.max_networks}")
    if args.poll_s <= 0:
        raise CLIError(f"--poll-s must be positive, got {args.poll_s}")
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else (lambda line: print(line, flush=True))
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` releases the claim at once, like Ctrl-C
    try:
        summary = run_worker(args.storage, args.study, device=args.device, wait=args.wait,
                             max_networks=args.max_networks, checkpoint_dir=args.checkpoint_dir, poll_s=args.poll_s,
                             progress=None if args.no_progress else Progress("train", "step"), log=say)
    except KeyboardInterrupt:
        print("evit-nas worker: interrupted", file=sys.stderr)
        return 130
    if args.json and os.environ.get("RANK", "0") == "0":  # under torchrun, the first process prints
        print_json(summary)
    return 1 if summary["failed"] else 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
