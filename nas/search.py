"""The latency-budget search: an Optuna multi-objective study over the SearchSpace.

Each trial suggests a network (one categorical parameter per decision), scores it from
cached numbers (predicted latency from the device table, fvcore MACs and parameters per
block, an accuracy proxy), records everything as one trial attribute, and reports
``predicted latency - budget`` as a constraint, so samplers treat over-budget networks as
infeasible and the Pareto front (``study.best_trials``) holds feasible networks only.

Storage: an Optuna journal file by default (embedded, no server); any Optuna storage URL
otherwise (``postgresql://...`` for several machines: start the same command on each).
The same command resumes a study; ``--trials`` is the study's total of completed trials.
With a journal file, the sampler runs on an in-memory mirror of the study and each
finished trial is appended as one record (Optuna's own path appends one fsynced record per
parameter, which dominates the cost); with a database, workers ask and tell the shared
study directly so that every sampler sees every worker's trials.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from latency_tables.table import LatencyTable
from search_space import ArchSpec, SearchSpace
from search_space.blocks import network_blocks
from search_space.cost import block_macs, block_params
from search_space.errors import EvitNasError
from search_space.records import package_version, write_atomic, write_csv

from .proxy import DEFAULT_PROXY, Proxy, make_proxy

__all__ = ["OBJECTIVES", "SAMPLERS", "SearchError", "TrialResult", "Evaluator", "open_storage", "fastest_network", "sampled_latencies",
           "run_search", "load_study", "open_study", "parse_objectives", "trial_result", "front", "default_study_name",
           "export_front"]

#: objective name -> direction
OBJECTIVES = {"proxy": "maximize", "latency": "minimize", "macs": "minimize", "params": "minimize"}
SAMPLERS: dict[str, Callable[[int | None], optuna.samplers.BaseSampler]] = {
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed),
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}
DEFAULT_JOURNAL = "evit-nas.journal"
#: columns of an exported front's front.csv
FRONT_COLUMNS = ("trial", "latency_ms", "macs", "params", "proxy", "proxy_name", "spec_file", "onnx_file", "summary")


def _worker() -> str:
    """``host:pid`` of this process (asked each time: a forked worker has its own pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class SearchError(EvitNasError, ValueError):
    """A search request that cannot run; the message says what to change."""


def parse_objectives(text: str | Sequence[str]) -> list[str]:
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else list(text)
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or not names or len(set(names)) != len(names):
        raise SearchError(f"objectives {names}: choose distinct names among {sorted(OBJECTIVES)}, e.g. proxy,latency")
    return names


def open_storage(url: str | None, heartbeat: bool = False) -> optuna.storages.BaseStorage:
    """An Optuna storage: a journal file for a path (default ``evit-nas.journal``), an RDB
    storage for a URL, ``memory`` for a throw-away study. Unreachable databases fail fast
    with a clear message. ``heartbeat``: a journal file gets the heartbeat interface of
    ``nas.heartbeat`` (RDB storages have it; the memory storage cannot have it)."""
    url = url or DEFAULT_JOURNAL
    if url == "memory":
        if heartbeat:
            raise SearchError("storage memory: workers need a storage other processes can reach; "
                              "use a journal file or a database URL")
        return optuna.storages.InMemoryStorage()
    if "://" not in url:
        path = Path(url)
        if path.parent and not path.parent.exists():
            raise SearchError(f"storage {url}: folder {path.parent} does not exist")
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        if heartbeat:
            from .heartbeat import HeartbeatJournalStorage

            return HeartbeatJournalStorage(JournalFileBackend(str(path)))
        return JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs: dict[str, Any] = {}
    shown = url
    if url.startswith("postgresql://") and _has("psycopg") and not _has("psycopg2"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]  # SQLAlchemy's default driver is psycopg2
    if url.startswith(("postgresql", "mysql")):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    for attempt in range(6):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except ImportError as exc:
            raise SearchError(f"storage {shown}: a database driver is missing ({exc}); for PostgreSQL: "
                              "pip install 'evit-nas[postgres]' (psycopg 3)") from None
        except Exception as exc:  # sqlalchemy raises many types for unreachable servers
            reason = str(exc).strip().splitlines()[0][:200]
            # Workers started together race to create Optuna's tables: the loser retries.
            if attempt < 5 and ("duplicate key" in reason or "already exists" in reason):
                time.sleep(0.3 + random.random())
                continue
            raise SearchError(f"cannot open storage {shown}: {reason}. Check that the server is up and the URL is right") from None
    raise AssertionError("unreachable")


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True)
class TrialResult:
    """What a trial scored, stored as the trial's ``result`` attribute (as a plain dict).

    Attributes:
        spec: the network, as ArchSpec JSON data (see :attr:`arch`).
        latency_ms: predicted latency on the table's device (ms, batch 1).
        macs: fvcore MACs at the table's resolution.
        params: trainable parameters.
        proxy: the accuracy proxy's score (higher is better).
        proxy_name: which proxy.
    """

    spec: dict[str, Any]
    latency_ms: float
    macs: int
    params: int
    proxy: float
    proxy_name: str

    @property
    def arch(self) -> ArchSpec:
        return ArchSpec.from_dict(self.spec)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


@dataclass
class Evaluator:
    """Scores a network from cached numbers; only the proxy may run the network."""

    table: LatencyTable
    proxy: Proxy

    def __call__(self, spec: ArchSpec) -> TrialResult:
        blocks = network_blocks(spec, self.table.resolution)  # once; every score is a sum over it
        keys = [key for _, key in blocks]
        return TrialResult(
            spec=spec.to_dict(),
            latency_ms=self.table.predict_blocks(keys),
            macs=sum(block_macs(key) for key in keys),
            params=sum(block_params(slot.key) for slot, _ in blocks),
            proxy=self.proxy(spec),
            proxy_name=self.proxy.name,
        )


def fastest_network(space: SearchSpace, table: LatencyTable) -> tuple[ArchSpec, float]:
    """The (near-)fastest network of the space on the table, by coordinate descent from
    the smallest choice of every decision."""
    decisions = space.decisions()
    values = {name: (False if isinstance(choices[0], bool) else min(choices, key=lambda c: -1 if c is None else c))
              for name, choices in decisions}

    def latency(v: dict[str, Any]) -> float:
        return table.predict_ms(space.decide(lambda n, _c: v[n]))

    best = latency(values)
    for _ in range(5):
        improved = False
        for name, choices in decisions:
            for choice in choices:
                trial = {**values, name: choice}
                ms = latency(trial)
                if ms < best - 1e-9:
                    best, values, improved = ms, trial, True
        if not improved:
            break
    return space.decide(lambda n, _c: values[n]), best


def sampled_latencies(space: SearchSpace, table: LatencyTable, samples: int = 2000, seed: int = 0) -> list[float]:
    """Predicted latencies (ms), sorted, of ``samples`` networks drawn at random from the
    space: the share of them under a budget is the share of a search's random start that
    can meet it."""
    rng = random.Random(seed)
    return sorted(table.predict_ms(space.sample(rng)) for _ in range(samples))


def trial_result(trial: optuna.trial.FrozenTrial) -> TrialResult | None:
    """The scores a trial stored (None for a trial that never finished)."""
    data = trial.user_attrs.get("result")
    return None if data is None else TrialResult.from_dict(data)


def front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The feasible Pareto front, sorted by predicted latency."""
    return sorted(study.best_trials, key=lambda t: trial_result(t).latency_ms)


def _fail_dead_local_workers(study: optuna.Study, storage: optuna.storages.BaseStorage) -> int:
    """Mark trials left RUNNING by killed processes of this machine as FAIL."""
    host = socket.gethostname()
    failed = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", "")
        worker_host, _, pid = worker.rpartition(":")
        if worker_host == host and pid.isdigit() and not _alive(int(pid)):
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            failed += 1
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _study_attrs(table: LatencyTable, space: SearchSpace, budget_ms: float, objectives: list[str], proxy: str,
                 sampler: str, seed: int | None, table_path: str) -> dict[str, Any]:
    return {
        "objectives": objectives,
        "budget_ms": budget_ms,
        "proxy": proxy,
        "sampler": sampler,
        "seed": seed,
        "table": table_path,
        "table_meta": {k: table.meta.get(k) for k in ("device", "cpu", "arch", "os", "onnxruntime", "threads",
                                                        "resolution", "date", "space_fingerprint")},
        "space": space.to_dict(),
        "space_fingerprint": space.fingerprint(),
        "package_version": package_version(),
    }


def open_study(storage: optuna.storages.BaseStorage, name: str, attrs: dict[str, Any],
               sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """Create the study, or load it and check that it was made for the same search."""
    directions = [OBJECTIVES[o] for o in attrs["objectives"]]
    study = optuna.create_study(study_name=name, storage=storage, directions=directions, sampler=sampler,
                                load_if_exists=True)
    existing = study.user_attrs
    if not existing:
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        return study
    # A worker that created the study a moment ago may still be writing its attributes (one
    # storage call each): wait for all of them before comparing, so a partial set is not
    # mistaken for another search.
    deadline = time.monotonic() + 10.0
    while not set(attrs) <= set(existing) and time.monotonic() < deadline:
        time.sleep(0.05)
        existing = study.user_attrs
    for key, what in (("objectives", "objectives"), ("budget_ms", "budget"), ("proxy", "proxy"),
                      ("space_fingerprint", "search space")):
        if existing.get(key) != attrs[key]:
            raise SearchError(
                f"study {name!r} exists with {what} {existing.get(key)!r}, not {attrs[key]!r}; "
                "give another --study name, or the same settings to resume it"
            )
    if existing.get("table_meta", {}).get("resolution") != attrs["table_meta"]["resolution"] or \
            existing.get("table_meta", {}).get("device") != attrs["table_meta"]["device"]:
        raise SearchError(f"study {name!r} was searched with another latency table "
                          f"({existing.get('table_meta', {}).get('device')}, {existing.get('table_meta', {}).get('resolution')}); "
                          "give another --study name")
    return study


def run_search(
    table: LatencyTable,
    space: SearchSpace,
    *,
    budget_ms: float,
    trials: int,
    objectives: Sequence[str] = ("proxy", "latency"),
    proxy: str = DEFAULT_PROXY,
    sampler: str = "nsga2",
    storage: str | None = None,
    study_name: str = "evit-nas",
    seed: int | None = 0,
    table_path: str = "",
    progress: Callable[[int, int, int, int], None] | None = None,
) -> optuna.Study:
    """Run (or resume) the search until the study holds ``trials`` completed trials.

    Args:
        progress: called after each trial with (completed, trials, feasible, front size).

    Raises:
        SearchError: bad objectives/sampler/budget, a table that does not fit the space,
            an unreachable storage, or a study made for another search.
    """
    objectives = parse_objectives(objectives)
    if sampler not in SAMPLERS:
        raise SearchError(f"unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}")
    if not isinstance(budget_ms, (int, float)) or not budget_ms > 0 or budget_ms != budget_ms:
        raise SearchError(f"--budget-ms must be a positive number of milliseconds, got {budget_ms!r}")
    if trials < 1:
        raise SearchError(f"--trials must be at least 1, got {trials}")
    if table.meta.get("coverage") == "space":
        table.check(space_fingerprint=space.fingerprint())
    try:
        proxy_obj = make_proxy(proxy, table.resolution)
    except ValueError as exc:
        raise SearchError(str(exc)) from None
    fast_spec, fast_ms = fastest_network(space, table)
    if budget_ms < fast_ms:
        raise SearchError(
            f"budget {budget_ms:g} ms is below the fastest network of the space on this table "
            f"({fast_ms:.2f} ms predicted for {fast_spec.summary()}); raise --budget-ms to at least {fast_ms:.2f}"
        )
    store = open_storage(storage)
    attrs = _study_attrs(table, space, float(budget_ms), objectives, proxy, sampler, seed, table_path)
    sampler_obj = SAMPLERS[sampler](seed)
    evaluate = Evaluator(table, proxy_obj)
    with _optuna_quiet():  # Optuna logs every trial at INFO: thousands of lines
        study = open_study(store, study_name, attrs, sampler_obj)
        if isinstance(store, optuna.storages.JournalStorage):
            _run_mirrored(study, store, space, evaluate, budget_ms, trials, objectives, sampler_obj, progress)
        else:
            _run_shared(study, store, space, evaluate, budget_ms, trials, objectives, progress)
    return study


@contextlib.contextmanager
def _optuna_quiet():
    """Optuna's logging at WARNING for the duration (restored after)."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _score_trial(trial: optuna.Trial, space: SearchSpace, evaluate: Evaluator, budget_ms: float,
                 objectives: Sequence[str]) -> tuple[TrialResult, list[float]]:
    result = evaluate(space.suggest(trial))
    trial.set_user_attr("result", result.to_dict())
    trial.set_constraint("latency_budget_ms", result.latency_ms - budget_ms)
    return result, [_objective_value(result, o) for o in objectives]


def _run_mirrored(study, store, space, evaluate, budget_ms, trials, objectives, sampler, progress) -> None:
    """Journal storage: the sampler works on an in-memory mirror of the study, and each
    finished trial is written to the journal as one record (params, values, attributes,
    constraint) with ``add_trial``. A journal write costs an fsync, and Optuna's per-trial
    path writes one record per parameter; here a trial costs one. A killed process loses at
    most the trial it was scoring, and leaves nothing half-written or RUNNING behind."""
    mirror = optuna.create_study(directions=study.directions, sampler=sampler)
    worker = _worker()
    run_id = f"{worker}:{uuid.uuid4().hex[:8]}"
    seen = 0

    def sync() -> int:
        nonlocal seen
        persisted = study.get_trials(deepcopy=False)
        # this run's own trials came from the mirror: they are in it already
        fresh = [t for t in persisted[seen:] if t.state == TrialState.COMPLETE and t.user_attrs.get("run") != run_id]
        if fresh:
            mirror.add_trials(fresh)
        seen = len(persisted)
        return sum(1 for t in persisted if t.state == TrialState.COMPLETE)

    _fail_dead_local_workers(study, store)
    complete, last_report = sync(), 0.0
    while complete < trials:
        trial = mirror.ask()
        _, values = _score_trial(trial, space, evaluate, budget_ms, objectives)
        mirror.tell(trial, values)
        done = mirror.get_trials(deepcopy=False)[-1]
        complete = sync()  # other processes may share the journal
        if complete >= trials:
            break
        study.add_trial(optuna.trial.create_trial(
            values=done.values, params=done.params, distributions=done.distributions,
            user_attrs={**done.user_attrs, "worker": worker, "run": run_id}, system_attrs=done.system_attrs))
        complete = sync()
        if progress is not None and (time.monotonic() - last_report > 1.0 or complete >= trials):
            progress(complete, trials, *_front_stats(study))
            last_report = time.monotonic()


def _run_shared(study, store, space, evaluate, budget_ms, trials, objectives, progress) -> None:
    """Database storage, shared by workers on several machines: each trial is asked from
    and told to the shared study (the samplers see every worker's trials at once), and the
    total is kept exact by trial numbers: a trial whose earlier trials (complete or running)
    already fill the total is marked failed as surplus instead of being scored."""
    _fail_dead_local_workers(study, store)
    busy = (TrialState.COMPLETE, TrialState.RUNNING)
    last_report = 0.0
    while len(study.get_trials(deepcopy=False, states=busy)) < trials:
        trial = study.ask()
        # One query per trial: other workers move the count, so a local tally would drift.
        earlier = [t for t in study.get_trials(deepcopy=False, states=busy) if t.number < trial.number]
        if len(earlier) >= trials:
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=TrialState.FAIL)
            break
        trial.set_user_attr("worker", _worker())
        _, values = _score_trial(trial, space, evaluate, budget_ms, objectives)
        study.tell(trial, values)
        if progress is not None and (time.monotonic() - last_report > 1.0 or len(earlier) + 1 >= trials):
            complete = sum(1 for t in earlier if t.state == TrialState.COMPLETE) + 1
            progress(complete, trials, *_front_stats(study))
            last_report = time.monotonic()


def _objective_value(result: TrialResult, objective: str) -> float:
    return float(getattr(result, "latency_ms" if objective == "latency" else objective))


def _front_stats(study: optuna.Study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    feasible = sum(1 for t in trials if t.user_attrs.get("result", {}).get("latency_ms", 1e30) <= study.user_attrs["budget_ms"])
    return feasible, len(study.best_trials)


def default_study_name(table_path: str | Path, budget_ms: float, objectives: str, proxy: str, sampler: str,
                       seed: int | None) -> str:
    """The study name a search gets when none is given: its table and settings."""
    return (f"{Path(table_path).stem}-budget{budget_ms:g}ms-{objectives.replace(',', '-')}-{proxy}-{sampler}"
            f"-seed{seed}")


def export_front(study: optuna.Study, directory: str | Path, onnx: bool = True) -> list[dict[str, Any]]:
    """Write the feasible front to ``directory``: ``front.csv`` and, per network,
    ``trialNNNNN.json`` (its ArchSpec) and ``trialNNNNN.onnx`` (at the table's resolution,
    unless ``onnx`` is False). Returns the rows of ``front.csv``."""
    from search_space.cost import export_onnx
    from search_space.model import build_model

    out = Path(directory)
    resolution = tuple(study.user_attrs["table_meta"]["resolution"])
    rows = []
    for trial in front(study):
        result = trial_result(trial)
        spec, stem = result.arch, f"trial{trial.number:05d}"
        write_atomic(out / f"{stem}.json", spec.to_json() + "\n")
        if onnx:
            export_onnx(build_model(spec), (1, 3, *resolution), out / f"{stem}.onnx")
        rows.append({"trial": trial.number, "latency_ms": f"{result.latency_ms:.6g}", "macs": result.macs,
                     "params": result.params, "proxy": f"{result.proxy:.6g}", "proxy_name": result.proxy_name,
                     "spec_file": f"{stem}.json", "onnx_file": f"{stem}.onnx" if onnx else "", "summary": spec.summary()})
    write_csv(out / "front.csv", FRONT_COLUMNS, rows)
    return rows


def load_study(storage: str | None, name: str) -> optuna.Study:
    """Load an existing study (for pareto, validate and report)."""
    store = open_storage(storage)
    try:
        return optuna.load_study(study_name=name, storage=store)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(store)]
        raise SearchError(f"no study {name!r} in {storage or DEFAULT_JOURNAL}; studies there: {names or 'none'}") from None


