"""``ganforge tune`` in the driver: check the config and data, open the parent MLflow run,
start or join Ray, size the trial concurrency to the cluster, run the Tuner and record the
result. A search's state lives in ``<train.storage_path>/<name>``; ``resume`` continues it
without repeating finished trials."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any

from cluster.capacity import Capacity
from cluster.connect import TRIAL_RESOURCE, alive_nodes, connect
from pipelines.config import ConfigError, GanforgeConfig, build, to_dict
from pipelines.core import storage
from pipelines.data.manifest import read_dataset
from pipelines.errors import NotFound, SearchInterrupted
from pipelines.eval.objective import objective_metric
from pipelines.tracking import store
from pipelines.tracking.runs import end_run, reopen_run
from pipelines.train.paths import resolved
from pipelines.train.preflight import check_capacity, check_run, check_search
from pipelines.tune.mlflow_runs import open_search_run
from pipelines.tune.schedule import scheduler, search_algorithm
from pipelines.tune.summary import Trial, collect, pool_seeds, record
from pipelines.tune.tracker import SearchTracker
from pipelines.tune.trial import run_trial

SEARCH_STATE = "ganforge_search.json"  # beside Tune's own state: what a resume needs to know


def _unfinished(folder: str) -> bool:
    """Whether Tune stopped before every trial ended (Ctrl+C). Read from the state Tune saved:
    in memory it marks the trials it stopped on the way out as terminated like finished ones."""
    from ray.tune import ExperimentAnalysis

    return any(t.status not in ("TERMINATED", "ERROR") for t in ExperimentAnalysis(folder).trials)


@dataclass
class SearchOutcome:
    name: str
    parent_run_id: str
    metric: str
    trials: list[Trial]
    configs: list[Trial]  # the trials, or with tune.seeds > 1 the points pooled over seeds, best first
    best: Trial | None
    tracking: store.TrackingConfig


def for_trials(cfg: GanforgeConfig) -> GanforgeConfig:
    """Settings every trial runs with: checkpoints at evaluations (each report Tune scores
    carries one, for PBT), the stability monitor on, enough checkpoints kept per trial."""
    train = dataclasses.replace(cfg.train, checkpoint_every=cfg.eval.every, keep_checkpoints=_checkpoints_kept(cfg))
    return dataclasses.replace(cfg, train=train, stability=dataclasses.replace(cfg.stability, check=True))


def _checkpoints_kept(cfg: GanforgeConfig) -> int:
    """A PBT exploit restarts a trial from the checkpoint the better trial had when PBT chose
    it; that trial trains on meanwhile, so its checkpoints of two perturbation intervals stay."""
    if cfg.tune.scheduler == "pbt":
        return max(cfg.train.keep_checkpoints, 2 * cfg.tune.perturbation_evals + 1)
    return max(cfg.train.keep_checkpoints, 2)


def concurrency(cfg: GanforgeConfig, capacity: Capacity) -> int:
    """As many trials as the cluster holds at once (never more than there are trials, and at
    least one: the preflight has checked that one fits): each trial's workers take CPUs (GPUs);
    the trial's own driver takes only a ``ganforge_trial`` unit, so it never holds a CPU its
    workers wait for."""
    from pipelines.train.torch_trainer import worker_resources

    fits = capacity.workers_fit(worker_resources(cfg)) // cfg.train.max_workers
    limit = cfg.tune.max_concurrent or fits
    return max(1, min(limit, fits, int(capacity.totals().get(TRIAL_RESOURCE, 1))))


def _trials_total(cfg: GanforgeConfig, dims: dict) -> int:
    grid = math.prod(len(d.values) for d in dims.values() if d.kind == "grid")
    return cfg.tune.samples * grid


def _tuner(cfg: GanforgeConfig, search: dict[str, Any], dims: dict, limit: int, callbacks: list, resume: bool):
    from ray import tune

    trainable = tune.with_resources(tune.with_parameters(run_trial, search=search), {TRIAL_RESOURCE: 1})
    if resume:
        return tune.Tuner.restore(search["folder"], trainable, resume_unfinished=True, resume_errored=True)
    # Tune's checkpoints are small pointers to Train checkpoints: under PBT all stay, since an
    # exploit may name one several reports old (Train's own retention bounds the disk used).
    pointers_kept = None if cfg.tune.scheduler == "pbt" else 2
    return tune.Tuner(
        trainable,
        param_space={k: d.domain() for k, d in dims.items()},
        tune_config=tune.TuneConfig(
            metric="objective",
            mode="min",
            num_samples=cfg.tune.samples,
            search_alg=search_algorithm(cfg, dims, limit),
            scheduler=scheduler(cfg, dims),
        ),
        run_config=tune.RunConfig(
            name=search["name"],
            storage_path=cfg.train.storage_path,
            callbacks=callbacks,
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=pointers_kept),
        ),
    )


def _prepare(cfg: GanforgeConfig, name: str | None, resume: bool) -> tuple[GanforgeConfig, str, str]:
    cfg = resolved(cfg)
    name = name or f"{cfg.gan}-{storage.basename(cfg.data.path)}-{time.strftime('%m%d-%H%M%S')}"
    folder = storage.join(cfg.train.storage_path, name)
    if resume and not storage.is_file(storage.join(folder, SEARCH_STATE)):
        raise NotFound(
            f"no search named {name} in the storage path {cfg.train.storage_path} (no {SEARCH_STATE}); "
            "pass the name `ganforge tune` printed, and the same train.storage_path"
        )
    if not resume and storage.exists(folder):
        raise ConfigError(
            f"a search named {name} exists in {cfg.train.storage_path}: resume it with --resume {name} "
            "or choose another --name"
        )
    return cfg, name, folder


def run_search(
    cfg: GanforgeConfig,
    name: str | None = None,
    address: str | None = None,
    resume: bool = False,
    progress: bool = True,
    verbose: bool = False,
    callbacks: tuple = (),
) -> SearchOutcome:
    """``callbacks``: more Tune callbacks for a new search, beside ganforge's own. Tune saves
    them with the search, so a resumed search runs with those it began with."""
    cfg, name, folder = _prepare(cfg, name, resume)
    if resume:  # the search's own config, not today's defaults
        state = json.loads(storage.read_text(storage.join(folder, SEARCH_STATE)))
        cfg = resolved(build(state["tree"]))
    dims = check_search(cfg)
    check_run(cfg)
    metric = objective_metric(cfg, read_dataset(cfg.data.path).resolution)
    # Tune's per-trial result.json / progress.csv: the result grid reads them (the quiet
    # defaults of `connect` turn them off for plain training).
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "0"
    # Tune warns when trials checkpoint often; ganforge sets how many pointers it keeps.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    connect(address, verbose=verbose)
    limit = concurrency(cfg, check_capacity(cfg, address, search=True))
    store.check_shared(store.resolve(cfg.tracking).uri, alive_nodes())
    if resume:
        parent = state["parent"]
        reopen_run(cfg.tracking, parent, {"ganforge.resumed": time.strftime("%Y-%m-%d %H:%M:%S")})
    else:
        parent = open_search_run(cfg, name, {k: d.describe() for k, d in dims.items()}, limit)
        storage.write_text(storage.join(folder, SEARCH_STATE), json.dumps({"parent": parent, "tree": to_dict(cfg)}))
    search = {
        "tree": to_dict(for_trials(cfg)),
        "parent": parent,
        "name": name,
        "metric": metric,
        "folder": folder,  # Tune's state, beside SEARCH_STATE
        "storage": storage.join(cfg.train.storage_path, f"{name}-train"),  # the trials' Train runs
    }
    tracker = SearchTracker(cfg, parent, _trials_total(cfg, dims), progress)  # on resume: Tune restores its own
    try:
        results = _tuner(cfg, search, dims, limit, [tracker, *callbacks], resume).fit()
        if _unfinished(folder):  # Tune returns normally after Ctrl+C, with its state saved
            raise SearchInterrupted(
                f"search {name} interrupted; continue it with: ganforge tune {cfg.gan} "
                f"--resume {name} --set train.storage_path={cfg.train.storage_path}"
            )
        trials = collect(results, cfg, parent)
        configs = pool_seeds(trials) if cfg.tune.seeds > 1 else trials
        best = record(cfg, to_dict(cfg), parent, trials, configs, metric)
    except BaseException as exc:
        stopped = isinstance(exc, (KeyboardInterrupt, SearchInterrupted))
        end_run(cfg.tracking, parent, "KILLED" if stopped else "FAILED", str(exc))
        raise
    end_run(cfg.tracking, parent, "FINISHED")
    return SearchOutcome(name, parent, metric, trials, configs, best, cfg.tracking)
