"""The typed config tree of a run. The same tree goes to Ray workers (as a dict), to Tune's
search space (by dotted path) and, flattened, into MLflow params.

``model`` is the GAN's own ``Config`` dataclass (declared next to the GAN in ``gan_core``);
everything else is shared by all GANs. Each dataclass checks its values in
``__post_init__`` so a bad value fails with a message naming the key before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

AMP_MODES = ("off", "bf16", "fp16")
DATA_MODES = ("resampled", "exact")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass
class OptimConfig:
    """Adam per optimizer group. lr_g and lr_d are separate: their balance is the main
    knob of GAN stability (the two-time-scale update rule), and what ``ganforge tune`` searches."""

    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 0.0
    # Fraction of train.steps after which both learning rates fall linearly to 0 at the last
    # step; 1.0 keeps them constant. CycleGAN's 100 constant + 100 decaying epochs is 0.5.
    lr_decay_from: float = 1.0

    def __post_init__(self) -> None:
        for key in ("lr_g", "lr_d"):
            _require(getattr(self, key) > 0, f"optim.{key} must be > 0, got {getattr(self, key)}")
        for key in ("beta1", "beta2"):
            _require(0 <= getattr(self, key) < 1, f"optim.{key} must be in [0, 1), got {getattr(self, key)}")
        _require(self.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        _require(0 <= self.lr_decay_from <= 1, f"optim.lr_decay_from must be in [0, 1], got {self.lr_decay_from}")


@dataclass
class DataConfig:
    path: str = ""  # a shard folder written by `ganforge data shard`
    domain: str = ""  # one-domain GANs on two-domain shards: which domain to learn (A or B)
    mode: str = "resampled"  # resampled: fixed-length epochs for step-based training; exact: each sample once
    batch_size: int = 64  # per worker
    loader_workers: int = 1  # DataLoader processes per Ray worker
    shuffle_buffer: int = 1000
    hflip: bool = False
    epoch_batches: int = 0  # resampled mode: batches per epoch per worker; 0 = dataset size / global batch

    def __post_init__(self) -> None:
        _require(self.mode in DATA_MODES, f"data.mode must be one of {DATA_MODES}, got {self.mode!r}")
        _require(self.batch_size >= 1, f"data.batch_size must be >= 1, got {self.batch_size}")
        _require(self.loader_workers >= 0, f"data.loader_workers must be >= 0, got {self.loader_workers}")
        _require(self.shuffle_buffer >= 0, f"data.shuffle_buffer must be >= 0, got {self.shuffle_buffer}")
        _require(self.epoch_batches >= 0, f"data.epoch_batches must be >= 0, got {self.epoch_batches}")


@dataclass
class TrainConfig:
    steps: int = 2000
    workers: int = 2  # Ray Train DDP workers
    use_gpu: bool = False
    threads_per_worker: int = 1  # torch intra-op threads per worker: workers x threads <= cores
    amp: str = "off"  # off | bf16 | fp16 (fp16 adds a gradient scaler)
    ema_half_life_kimg: float = 0.0  # EMA of the ema_nets, half-life in thousands of images; 0 = off
    # StyleGAN2-ADA's ramp-up: the half-life is at most this fraction of the images seen so
    # far, so early EMA weights are not dominated by the random init; 0 = no ramp-up.
    ema_rampup: float = 0.0
    seed: int = 0
    log_every: int = 10  # steps between metric logs
    sample_every: int = 200  # steps between sample grids
    sample_count: int = 64
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    max_failures: int = 0  # worker-group restarts Ray Train may do, resuming from the last checkpoint
    max_nonfinite_steps: int = 25  # non-finite optimizer steps in a row (each skipped) that end the run; 0 = never
    storage_path: str = ""  # Ray Train run storage; "" = ./ray_results

    def __post_init__(self) -> None:
        for key in ("steps", "workers", "threads_per_worker", "log_every", "sample_every",
                    "sample_count", "checkpoint_every", "keep_checkpoints"):
            _require(getattr(self, key) >= 1, f"train.{key} must be >= 1, got {getattr(self, key)}")
        _require(self.amp in AMP_MODES, f"train.amp must be one of {AMP_MODES}, got {self.amp!r}")
        _require(self.ema_half_life_kimg >= 0, "train.ema_half_life_kimg must be >= 0")
        _require(self.ema_rampup >= 0, "train.ema_rampup must be >= 0")
        _require(self.max_failures >= 0, "train.max_failures must be >= 0")
        _require(self.max_nonfinite_steps >= 0, "train.max_nonfinite_steps must be >= 0")


@dataclass
class EvalConfig:
    """Sample quality during training (and `ganforge evaluate`): SWD and KID always, FID and
    KID on Inception features when its weights are given. Reference: the shards' held-out
    split (`data shard --holdout N`), else the training split."""

    every: int = 1000  # steps between evaluations, plus one at the end; 0 = never
    samples: int = 2048  # images generated per evaluation (split over the ranks) and reference images
    inception_weights: str = ""  # the FID Inception weights file; "" = $GANFORGE_INCEPTION_WEIGHTS
    batch_size: int = 64  # per rank, for generation and feature extraction

    def __post_init__(self) -> None:
        _require(self.every >= 0, f"eval.every must be >= 0, got {self.every}")
        for key in ("samples", "batch_size"):
            _require(getattr(self, key) >= 1, f"eval.{key} must be >= 1, got {getattr(self, key)}")


@dataclass
class TrackingConfig:
    uri: str = ""  # MLflow tracking URI; "" = $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db
    experiment: str = ""  # "" = ganforge-<gan>
    run_name: str = ""  # "" = <gan>-<data>-<time>
    artifact_root: str = ""  # for a local store; "" = ./mlartifacts
    run_id: str = ""  # set by ganforge: the MLflow run the job writes to (a resume continues it)


@dataclass
class RunConfig:
    gan: str
    model: Any
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
