"""``ganforge train`` in the driver: check the config and data before anything starts,
create the MLflow run, start or join Ray, run a ``TorchTrainer`` over ``train_worker`` and
show rank 0's progress in the terminal. Ends the MLflow run as FINISHED or FAILED."""

from __future__ import annotations

import dataclasses
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

import gan_core
from gan_core.metrics.inception import WEIGHTS_ENV, weights_path
from cluster.local import alive_nodes, connect
from pipelines.config import ConfigError, RunConfig, flatten, to_dict
from pipelines.data.batches import resolve_domains
from pipelines.data.loader import StreamSpec, readers
from pipelines.data.manifest import DataError, read_dataset
from pipelines.tracking import store
from pipelines.tracking.runs import check_reachable, end_run, git_commit, reopen_run, start_run
from pipelines.errors import Diverged, TrainingFailed
from pipelines.train.resume import STORAGE_TAG


@dataclass
class TrainOutcome:
    run_id: str
    metrics: dict[str, float]
    checkpoint_path: str | None
    tracking: store.TrackingConfig


def check_data(cfg: RunConfig) -> None:
    """Fail in the driver, with a clear message, before Ray starts any worker."""
    if not cfg.data.path:
        raise DataError("no data given: pass --data SHARD_FOLDER (see `ganforge data shard`)")
    dataset = read_dataset(cfg.data.path)
    domains = resolve_domains(dataset, cfg.gan, gan_core.get(cfg.gan).domains, cfg.data.domain)
    spec = StreamSpec(world=cfg.train.workers, mode=cfg.data.mode, loader_workers=cfg.data.loader_workers)
    if cfg.data.mode == "exact" and dataset.estimated_counts:
        raise DataError(f"data.mode=exact needs each shard's sample count, which {cfg.data.path} (a pattern with "
                        "no manifest) does not give; use data.mode=resampled, or a shard folder with its manifest.json")
    if cfg.data.mode == "exact":
        n_shards = min(len(dataset.domain(d).urls) for d in domains.values())
        if n_shards < readers(spec):
            raise DataError(
                f"data.mode=exact needs at least {readers(spec)} shards ({cfg.train.workers} workers x "
                f"{max(1, cfg.data.loader_workers)} loader processes) but {cfg.data.path} has {n_shards}; "
                f"reshard with a smaller --shard-size or use data.mode=resampled")


def check_eval(cfg: RunConfig) -> None:
    """A configured Inception weights file must exist; without one, say once which metrics
    the run will report instead."""
    weights = cfg.eval.inception_weights
    if weights and not Path(weights).expanduser().is_file():
        raise ConfigError(f"eval.inception_weights: no file at {weights}")
    if cfg.eval.every and weights_path(weights or None) is None:
        warnings.warn(f"evaluation without FID Inception weights (set eval.inception_weights or {WEIGHTS_ENV}): "
                      "the run reports eval/swd and eval/kid_pixels", stacklevel=3)


def worker_user_error(exc: BaseException) -> Exception | None:
    """A data or config problem that a worker hit, as the one-line error the CLI prints.

    Ray wraps worker exceptions; one raised in a DataLoader process is re-raised with the
    original traceback in its message, whose last line is the original error."""
    failures = getattr(exc, "worker_failures", None) or {}
    for rank, error in sorted(failures.items()):
        cause = getattr(error, "cause", None) or error
        if isinstance(cause, (DataError, ConfigError, Diverged)):
            last = str(cause).strip().splitlines()[-1]
            prefix = f"{type(cause).__module__}.{type(cause).__name__}: "
            message = f"worker {rank}: {last.removeprefix(prefix)}"
            return Diverged(message, cause.reason) if isinstance(cause, Diverged) else type(cause)(message)
    return None


def _absolute(path: str) -> str:
    """Local paths made absolute; URLs (http shards, s3:// checkpoint storage) and WebDataset
    ``pipe:`` commands as they are."""
    return path if "://" in path or path.startswith("pipe:") else str(Path(path).expanduser().resolve())


def resolved(cfg: RunConfig, workdir: Path | None = None) -> RunConfig:
    """Absolute paths and store URIs, so workers in other directories find the same things."""
    workdir = (workdir or Path.cwd()).resolve()
    tracking = store.resolve(cfg.tracking, workdir)
    if not tracking.run_name:
        stamp = time.strftime("%m%d-%H%M%S")
        tracking = dataclasses.replace(tracking, run_name=f"{cfg.gan}-{Path(cfg.data.path).name}-{stamp}")
    data = dataclasses.replace(cfg.data, path=_absolute(cfg.data.path))
    storage = cfg.train.storage_path or str(workdir / "ray_results")
    train = dataclasses.replace(cfg.train, storage_path=_absolute(storage))
    return dataclasses.replace(cfg, tracking=tracking, data=data, train=train)


class Progress:
    """Draws rank 0's (step, metrics) messages from a Ray queue as a tqdm bar."""

    def __init__(self, queue: Any, total: int, enabled: bool):
        self.queue, self.stop = queue, threading.Event()
        self.outage = False
        self.bar = tqdm(total=total, desc="train", unit="step", disable=not enabled, dynamic_ncols=True)
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        from ray.util.queue import Empty

        while not self.stop.is_set():
            try:
                step, metrics = self.queue.get(timeout=0.5)
            except Empty:
                continue
            except Exception:  # the queue actor is gone: the job ended
                return
            self.bar.update(step - self.bar.n)
            self._report_outage(bool(metrics.get("tracking/outage")), step)
            self.bar.set_postfix({
                "D": f"{metrics.get('loss/D', float('nan')):.3f}",
                "G": f"{metrics.get('loss/G', float('nan')):.3f}",
                "img/s": f"{metrics.get('perf/images_per_sec', 0):.0f}",
            }, refresh=False)

    def _report_outage(self, outage: bool, step: int) -> None:
        if outage and not self.outage:
            warnings.warn(f"MLflow became unreachable at step {step}: training and checkpoints go on, "
                          "metrics and images are queued and retried", stacklevel=1)
        elif self.outage and not outage:
            warnings.warn(f"MLflow is reachable again at step {step}; queued metrics are being sent", stacklevel=1)
        self.outage = outage

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.bar.close()


def make_trainer(cfg: RunConfig, loop_config: dict[str, Any], name: str, callbacks: list | None = None):
    """The run's ``TorchTrainer``; called in the process that created the MLflow run, whose
    node reaches the tracking server, so a loopback server gets its relay here."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig as RayRunConfig, ScalingConfig
    from ray.train.torch import TorchConfig

    from pipelines.tracking.relay import start_relay
    from pipelines.train.ray_worker import train_worker
    from pipelines.train.trainer import torch_trainer_class

    train = cfg.train
    return torch_trainer_class()(
        train_worker,
        train_loop_config={**loop_config, "relay": start_relay(cfg.tracking.uri)},
        scaling_config=ScalingConfig(num_workers=train.workers, use_gpu=train.use_gpu,
                                     resources_per_worker={"CPU": train.threads_per_worker,
                                                           **({"GPU": 1} if train.use_gpu else {})}),
        torch_config=TorchConfig(backend="nccl" if train.use_gpu else "gloo"),
        run_config=RayRunConfig(
            name=name,
            storage_path=train.storage_path,
            checkpoint_config=CheckpointConfig(num_to_keep=train.keep_checkpoints),
            failure_config=FailureConfig(max_failures=train.max_failures),
            callbacks=callbacks or [],
        ),
    )


def run_params(cfg: RunConfig) -> dict[str, Any]:
    """A training run's MLflow params: its whole config but its own id and the search settings."""
    return {k: v for k, v in flatten(to_dict(cfg)).items() if k != "tracking.run_id" and not k.startswith("tune.")}


def _open_run(cfg: RunConfig, resume_from: str | None) -> RunConfig:
    """A new MLflow run, or for a resume the run being continued, reopened; the returned
    config names it (``tracking.run_id``), so workers and checkpoints know it too."""
    storage = {STORAGE_TAG: cfg.train.storage_path}  # where `--resume RUN_ID` finds checkpoints
    if cfg.tracking.run_id:
        reopen_run(cfg.tracking, cfg.tracking.run_id, {**storage, "ganforge.resumed_from": str(resume_from)})
        return cfg
    commit = git_commit()
    tags = {"gan": cfg.gan, "data": cfg.data.path, "workers": str(cfg.train.workers),
            "git_commit": commit, "mlflow.source.git.commit": commit, **storage}
    run_id = start_run(cfg.tracking, cfg.gan, run_params(cfg), tags)
    return dataclasses.replace(cfg, tracking=dataclasses.replace(cfg.tracking, run_id=run_id))


def _fail(cfg: RunConfig, run_id: str, exc: BaseException) -> BaseException:
    """End the MLflow run as FAILED (or KILLED) and return the error the caller should see."""
    user_error = worker_user_error(exc)
    end_run(cfg.tracking, run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED", str(user_error or exc))
    if user_error is not None:
        return user_error
    if isinstance(exc, Exception) and type(exc).__module__.startswith("ray"):
        return TrainingFailed(f"training run {run_id} failed: {exc}")
    return exc


def train(cfg: RunConfig, address: str | None = None, progress: bool = True, verbose: bool = False,
          resume_from: str | None = None) -> TrainOutcome:
    """Run a training job; ``resume_from`` (a checkpoint folder) continues the run that
    ``cfg.tracking.run_id`` names, or starts a new run from the checkpoint if none is named."""
    check_data(cfg)
    check_eval(cfg)
    check_reachable(store.resolve(cfg.tracking).uri)
    if cfg.train.amp == "fp16" and not cfg.train.use_gpu:
        warnings.warn("train.amp=fp16 on CPU is emulated and many times slower; use train.amp=bf16 on CPU",
                      stacklevel=2)
    connect(address, verbose=verbose)
    store.check_shared(store.resolve(cfg.tracking).uri, alive_nodes())
    cfg = _open_run(resolved(cfg), resume_from)
    run_id = cfg.tracking.run_id
    name = f"ganforge-{run_id}" + (f"-resume-{time.strftime('%m%d-%H%M%S')}" if resume_from else "")
    bar = None
    try:
        from ray.util.queue import Queue

        queue = Queue(maxsize=1000, actor_options={"num_cpus": 0})  # must not take a worker's CPU
        bar = Progress(queue, cfg.train.steps, progress)
        loop_config = {"config": to_dict(cfg), "run_id": run_id, "progress": queue, "resume_from": resume_from}
        result = make_trainer(cfg, loop_config, name).fit()
    except BaseException as exc:
        error = _fail(cfg, run_id, exc)
        if error is exc:
            raise
        raise error from exc
    finally:
        if bar is not None:
            bar.close()
    end_run(cfg.tracking, run_id, "FINISHED")
    checkpoint = result.checkpoint.path if result.checkpoint else None
    return TrainOutcome(run_id, dict(result.return_value or {}), checkpoint, cfg.tracking)
