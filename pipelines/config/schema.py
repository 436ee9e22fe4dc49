"""The typed config tree of a run. The same tree goes to Ray workers (as a dict), to Tune's
search space (by dotted path) and, flattened, into MLflow params.

``model`` is the GAN's own ``Config`` dataclass (declared next to the GAN in ``gan_core``);
everything else is shared by all GANs. Each dataclass checks its values in
``__post_init__`` so a bad value fails with a message naming the key before any work starts.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

AMP_MODES = ("auto", "off", "bf16", "fp16")
# torch.compile's modes; reduce-overhead and max-autotune replay CUDA graphs on a GPU
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
AUG_KINDS = ("none", "ada", "diffaug")  # gan_core/augment.py's pipelines, and none
SWITCHES = ("auto", "on", "off")
DATA_MODES = ("resampled", "exact")
SEARCHES = ("random", "optuna")
SCHEDULERS = ("asha", "pbt", "none")
# Three decades each, so the ratio lr_d / lr_g spans both sides of 1 (TTUR's best ratios do).
DEFAULT_SPACE = ("optim.lr_g=loguniform:1e-5:1e-2", "optim.lr_d=loguniform:1e-5:1e-2")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _worker_range(value: object) -> int | list[int]:
    """``train.workers``: N, or [MIN, MAX] ("MIN-MAX" as typed on the command line); a range
    of one count is that count."""
    if isinstance(value, str) and "-" in value:
        value = value.split("-", 1)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        bounds = None
        with contextlib.suppress(TypeError, ValueError):
            bounds = [int(v) for v in value]
        if bounds is not None:
            low, high = bounds
            _require(1 <= low <= high, f"train.workers must be [min, max] with 1 <= min <= max, got {value}")
            return low if low == high else [low, high]
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value >= 1,
        f"train.workers must be a count >= 1 or [min, max] (MIN-MAX), got {value!r}",
    )
    return value  # type: ignore[return-value]  # an int, checked just above


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
    batch_size: int = 64  # the global batch, split evenly across the workers (NVIDIA's --batch)
    # DataLoader processes per Ray worker and domain; -1 = auto: on a GPU node its CPUs per GPU
    # (less one for the training process) shared by the domains, at most 8; 1 without a GPU.
    loader_workers: int = 1
    shuffle_buffer: int = 1000
    hflip: bool = False
    epoch_batches: int = 0  # resampled mode: batches per epoch per worker; 0 = dataset size / global batch

    def __post_init__(self) -> None:
        _require(self.mode in DATA_MODES, f"data.mode must be one of {DATA_MODES}, got {self.mode!r}")
        _require(self.batch_size >= 1, f"data.batch_size must be >= 1, got {self.batch_size}")
        _require(
            self.loader_workers >= -1, f"data.loader_workers must be >= 0, or -1 (auto), got {self.loader_workers}"
        )
        _require(self.shuffle_buffer >= 0, f"data.shuffle_buffer must be >= 0, got {self.shuffle_buffer}")
        _require(self.epoch_batches >= 0, f"data.epoch_batches must be >= 0, got {self.epoch_batches}")


@dataclass
class TrainConfig:
    steps: int = 2000
    # Ray Train DDP workers: a count, or [min, max] (also "MIN-MAX") for an elastic run that
    # starts with what the cluster has, down to min, shrinks when a node is lost and grows back.
    workers: int | list[int] = 2
    use_gpu: bool = False
    threads_per_worker: int = 1  # torch intra-op threads per worker: workers x threads <= cores
    # The GPU path; "auto" is on with CUDA, off on CPU. amp: autocast dtype, auto = bf16 where
    # the GPU has it (fp16 adds a gradient scaler, for GPUs without bf16).
    amp: str = "auto"  # auto | off | bf16 | fp16
    channels_last: str = "auto"  # auto | on | off: NHWC nets and batches (tensor cores' layout)
    # TF32 matmuls and convolutions on Ampere and newer (no effect on CPU): auto = the official
    # code's choice per GAN (off for StyleGAN, as NVlabs; on for the others), on or off.
    tf32: str = "auto"
    compile: bool = False  # torch.compile every net (minutes of compiling; pays off on long GPU runs)
    # torch.compile's mode: reduce-overhead replays each net's kernels as CUDA graphs, for
    # steps bound by kernel launches (CycleGAN at batch 1); no effect without compile.
    compile_mode: str = "default"
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
    # Elastic runs: seconds between Ray Train's checks for capacity to grow back into.
    resize_check_s: float = 60.0
    max_nonfinite_steps: int = 25  # non-finite optimizer steps in a row (each skipped) that end the run; 0 = never
    storage_path: str = ""  # Ray Train run storage (a folder or s3://...); "" = $GANFORGE_STORAGE_PATH or ./ray_results
    # Seconds to wait for an autoscaling cluster to grow until it holds the run's workers;
    # 0 = as long as it takes. A cluster that cannot grow refuses such a run at once.
    wait_timeout: float = 0.0

    @property
    def min_workers(self) -> int:
        return self.workers if isinstance(self.workers, int) else self.workers[0]

    @property
    def max_workers(self) -> int:
        return self.workers if isinstance(self.workers, int) else self.workers[1]

    @property
    def elastic(self) -> bool:
        return self.min_workers != self.max_workers

    @property
    def worker_counts(self) -> range:
        """Every number of workers the run may train with."""
        return range(self.min_workers, self.max_workers + 1)

    def __post_init__(self) -> None:
        self.workers = _worker_range(self.workers)
        for key in (
            "steps",
            "threads_per_worker",
            "log_every",
            "sample_every",
            "sample_count",
            "checkpoint_every",
            "keep_checkpoints",
        ):
            _require(getattr(self, key) >= 1, f"train.{key} must be >= 1, got {getattr(self, key)}")
        _require(self.amp in AMP_MODES, f"train.amp must be one of {AMP_MODES}, got {self.amp!r}")
        _require(
            self.channels_last in SWITCHES, f"train.channels_last must be one of {SWITCHES}, got {self.channels_last!r}"
        )
        _require(self.tf32 in SWITCHES, f"train.tf32 must be one of {SWITCHES}, got {self.tf32!r}")
        _require(
            self.compile_mode in COMPILE_MODES,
            f"train.compile_mode must be one of {COMPILE_MODES}, got {self.compile_mode!r}",
        )
        _require(self.ema_half_life_kimg >= 0, "train.ema_half_life_kimg must be >= 0")
        _require(self.ema_rampup >= 0, "train.ema_rampup must be >= 0")
        _require(self.max_failures >= 0, "train.max_failures must be >= 0")
        _require(self.resize_check_s > 0, f"train.resize_check_s must be > 0, got {self.resize_check_s}")
        _require(self.max_nonfinite_steps >= 0, "train.max_nonfinite_steps must be >= 0")
        _require(self.wait_timeout >= 0, f"train.wait_timeout must be >= 0, got {self.wait_timeout}")


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
class StabilityConfig:
    """Ends a run that has stopped learning, with a reason (checked at each evaluation;
    ``ganforge tune`` turns it on so unstable trials free their workers early)."""

    check: bool = False
    # d_overpowers: D's loss below this (its floor is 0 for every GAN here) at each of the
    # last `patience` evaluations while G's loss rose over them.
    d_loss_below: float = 0.05
    patience: int = 3  # evaluations
    # mode_collapse: eval/diversity (spread of generated features / spread of real ones) below
    # this fraction of its best value so far for `patience` evaluations in a row.
    collapse_ratio: float = 0.25

    def __post_init__(self) -> None:
        _require(self.d_loss_below >= 0, f"stability.d_loss_below must be >= 0, got {self.d_loss_below}")
        _require(self.patience >= 1, f"stability.patience must be >= 1, got {self.patience}")
        _require(0 <= self.collapse_ratio < 1, f"stability.collapse_ratio must be in [0, 1), got {self.collapse_ratio}")


@dataclass
class TuneConfig:
    """``ganforge tune``: each trial is a full training run of ``train.steps`` steps on
    ``train.workers`` workers, scored by its evaluations (``eval.every``)."""

    samples: int = 16  # configurations tried (a grid: repeats of the grid)
    search: str = "random"  # random | optuna (TPE)
    scheduler: str = "asha"  # asha: stop poor trials early; pbt: perturb lrs during training; none
    metric: str = "auto"  # an eval metric, minimised; auto = fid_inception with weights, else swd
    # "dotted.key=kind:args", kind one of loguniform:lo:hi, uniform:lo:hi, choice:a,b,c, grid:a,b,c
    space: list[str] = field(default_factory=lambda: list(DEFAULT_SPACE))
    # Points tried first, in order, each "key=value,key=value" over keys of the space: e.g. the
    # default config, so the search shows what it gains over it. They count towards `samples`.
    points: list[str] = field(default_factory=list)
    grace_evals: int = 2  # ASHA: evaluations a trial gets before it may be stopped
    reduction_factor: int = 3  # ASHA: keep 1/reduction_factor of the trials at each rung
    perturbation_evals: int = 2  # PBT: evaluations between exploit/explore rounds
    pbt_quantile: float = 0.25  # PBT: the bottom fraction copies the top fraction's weights
    # PBT: perturb only when every trial has reached the round (reproducible rounds; trials that
    # arrive first wait, and each wait restarts their Train run) instead of as each arrives.
    pbt_synch: bool = False
    max_concurrent: int = 0  # trials at once; 0 = as many as the cluster's CPUs (or GPUs) hold
    seed: int = 0  # for the search algorithm's sampling
    # Train every point with this many seeds (train.seed, train.seed + 1, ...) and rank points
    # by their mean: GAN runs differ from seed to seed by about as much as close configs do.
    seeds: int = 1

    def __post_init__(self) -> None:
        _require(self.search in SEARCHES, f"tune.search must be one of {SEARCHES}, got {self.search!r}")
        _require(self.scheduler in SCHEDULERS, f"tune.scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        for key in ("samples", "grace_evals", "perturbation_evals", "seeds"):
            _require(getattr(self, key) >= 1, f"tune.{key} must be >= 1, got {getattr(self, key)}")
        _require(self.reduction_factor >= 2, f"tune.reduction_factor must be >= 2, got {self.reduction_factor}")
        _require(0 < self.pbt_quantile <= 0.5, f"tune.pbt_quantile must be in (0, 0.5], got {self.pbt_quantile}")
        _require(self.max_concurrent >= 0, f"tune.max_concurrent must be >= 0, got {self.max_concurrent}")
        for key in ("space", "points"):
            value = getattr(self, key)
            _require(
                isinstance(value, list) and all(isinstance(s, str) for s in value),
                f"tune.{key} must be a list of strings, got {value!r}",
            )


@dataclass
class TrackingConfig:
    uri: str = ""  # MLflow tracking URI; "" = $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db
    experiment: str = ""  # "" = ganforge-<gan>
    run_name: str = ""  # "" = <gan>-<data>-<time>
    artifact_root: str = ""  # for a local store; "" = ./mlartifacts
    run_id: str = ""  # set by ganforge: the MLflow run the job writes to (a resume continues it)
    # Register the run's best model under this name (a search: its best trial's); "" = train: none,
    # tune: <gan>-generator. The version takes the alias best when it scores better than the holder.
    register: str = ""
    system_metrics: bool = True  # CPU, memory, disk, network and GPU of every node, as system/<node>/...
    system_metrics_interval: float = 10.0  # seconds between samples

    def __post_init__(self) -> None:
        _require(
            self.system_metrics_interval > 0,
            f"tracking.system_metrics_interval must be > 0 seconds, got {self.system_metrics_interval}",
        )


@dataclass
class AugConfig:
    """Discriminator augmentation (gan_core/augment.py) on every image D sees, real or fake.
    ada: NVlabs' 'bgc' pipeline at a probability p that adapts so that E[sign(D(real))]
    stays at ``target``; diffaug: DiffAugment's colour, translation and cutout; none."""

    kind: str = "none"  # none | ada | diffaug
    target: float = 0.6  # ADA's r_t target
    interval: int = 4  # steps between adjustments of p
    kimg: float = 500.0  # thousands of images over which p can go from 0 to 1
    p: float = 0.0  # ADA's initial p

    def __post_init__(self) -> None:
        _require(self.kind in AUG_KINDS, f"aug.kind must be one of {AUG_KINDS}, got {self.kind!r}")
        _require(0 <= self.target <= 1, f"aug.target must be in [0, 1], got {self.target}")
        _require(0 <= self.p <= 1, f"aug.p must be in [0, 1], got {self.p}")
        _require(self.interval >= 1, f"aug.interval must be >= 1, got {self.interval}")
        _require(self.kimg > 0, f"aug.kimg must be > 0, got {self.kimg}")


@dataclass
class GanforgeConfig:
    gan: str
    model: Any
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    stability: StabilityConfig = field(default_factory=StabilityConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    aug: AugConfig = field(default_factory=AugConfig)
