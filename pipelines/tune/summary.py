"""What a finished search leaves in its parent MLflow run: a CSV of every trial, a heatmap of
the final metric over (lr_G, lr_D) with stopped trials marked, the best config (params, a
``best_config.yaml`` that ``ganforge train --from-search`` reads) and the best trial's
best model registered as ``<gan>-generator`` (or ``tracking.register``), with the alias
``best`` where it beats the version holding it. With ``tune.seeds`` > 1
points are ranked, drawn and reported by their mean over seeds (``configs.csv`` lists them)."""

from __future__ import annotations

import csv
import math
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

from pipelines.config import GanforgeConfig
from pipelines.config.space import SEED_KEY, apply_point
from pipelines.core import storage
from pipelines.errors import NotFound
from pipelines.tracking.models import RUN_MODEL_TAG, Registered
from pipelines.train import run_record
from pipelines.tune.mlflow_runs import find_trial_run
from pipelines.tune.tracker import UNSTABLE, stop_reason

BEST_CONFIG = "best_config.yaml"


@dataclass
class Trial:
    trial_id: str
    point: dict[str, Any]  # the final point (PBT may have perturbed the first one)
    objective: float  # the last evaluation's metric
    step: int
    reason: str
    run_id: str | None
    seeds: int = 1  # a point pooled over seeds: objective is their mean, spread their std
    spread: float = 0.0

    @property
    def eligible(self) -> bool:
        """Trials that may be called best: they ran their whole budget without instability."""
        return self.reason == "completed" and math.isfinite(self.objective)


def collect(results: Any, cfg: GanforgeConfig, parent: str) -> list[Trial]:
    trials = []
    for result in results:
        metrics = result.metrics or {}
        trial_id = str(metrics.get("trial_id") or storage.basename(result.path))
        point = dict(result.config or {})
        reason = "error" if result.error else stop_reason(metrics, cfg.train.steps)
        trials.append(
            Trial(
                trial_id,
                point,
                float(metrics.get("objective", math.inf)),
                int(metrics.get("step", 0)),
                reason,
                find_trial_run(cfg, parent, trial_id),
            )
        )
    return best_first(trials)


def best_first(trials: list[Trial]) -> list[Trial]:
    """Eligible trials first, each group by objective (lower is better)."""
    return sorted(trials, key=lambda t: (not t.eligible, t.objective))


def pool_seeds(trials: list[Trial]) -> list[Trial]:
    """One entry per point over its seeds, best first: the mean objective (and its std), the
    first reason other than completed, and the best seed's trial and run (the one registered)."""
    groups: dict[tuple, list[Trial]] = {}
    for t in trials:
        groups.setdefault(tuple(sorted((k, v) for k, v in t.point.items() if k != SEED_KEY)), []).append(t)
    pooled = []
    for point, members in groups.items():
        members = best_first(members)
        values = [t.objective for t in members]
        finite = all(math.isfinite(v) for v in values)
        reason = next((t.reason for t in members if t.reason != "completed"), "completed")
        pooled.append(
            Trial(
                members[0].trial_id,
                dict(point),
                statistics.fmean(values) if finite else math.inf,
                min(t.step for t in members),
                reason,
                members[0].run_id,
                seeds=len(members),
                spread=statistics.pstdev(values) if finite else math.nan,
            )
        )
    return best_first(pooled)


def write_csv(trials: list[Trial], path: Path) -> None:
    keys = sorted({k for t in trials for k in t.point})
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "trial_id",
                *keys,
                "lr_ratio_d_over_g",
                "objective",
                "objective_std",
                "seeds",
                "step",
                "stop_reason",
                "run_id",
            ]
        )
        for t in trials:
            ratio = (
                t.point["optim.lr_d"] / t.point["optim.lr_g"] if {"optim.lr_d", "optim.lr_g"} <= t.point.keys() else ""
            )
            writer.writerow(
                [
                    t.trial_id,
                    *(t.point.get(k, "") for k in keys),
                    ratio,
                    t.objective,
                    t.spread,
                    t.seeds,
                    t.step,
                    t.reason,
                    t.run_id or "",
                ]
            )


def heatmap(trials: list[Trial], metric: str, path: Path, cfg: GanforgeConfig) -> bool:
    """Final metric over (lr_G, lr_D), log axes; stopped trials as crosses, the best starred.
    False (nothing drawn) when the search did not vary both learning rates."""
    points = [t for t in trials if {"optim.lr_g", "optim.lr_d"} <= t.point.keys()]
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=110)
    scored = [t for t in points if math.isfinite(t.objective) and t.reason in ("completed", "early_stopped")]
    seeds = max(t.seeds for t in points)
    if scored:
        _scored_dots(
            fig, ax, scored, f"{metric} at the last evaluation" + (f", mean of {seeds} seeds" if seeds > 1 else "")
        )
    for reason in (*UNSTABLE, "error"):
        group = [t for t in points if t.reason == reason]
        if group:
            ax.scatter(
                [t.point["optim.lr_g"] for t in group],
                [t.point["optim.lr_d"] for t in group],
                marker="x" if reason != "error" else "s",
                color="red",
                s=70,
                label=f"stopped: {reason}",
            )
    best = next((t for t in trials if t.eligible and t in points), None)
    if best is not None:
        ax.scatter(
            [best.point["optim.lr_g"]],
            [best.point["optim.lr_d"]],
            marker="*",
            s=420,
            color="gold",
            edgecolors="black",
            zorder=5,
            label=f"best: {best.objective:.4f}" + (f" ± {best.spread:.2g}" if best.seeds > 1 else ""),
        )
    lo = min(min(t.point["optim.lr_g"], t.point["optim.lr_d"]) for t in points) / 1.5
    hi = max(max(t.point["optim.lr_g"], t.point["optim.lr_d"]) for t in points) * 1.5
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--", label="lr_D = lr_G")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="lr_G",
        ylabel="lr_D",
        title=f"{cfg.gan}: {len(points)} {f'points x {seeds} seeds' if seeds > 1 else 'trials'}, "
        f"{cfg.train.steps} steps each (large dots ran to the end)",
    )
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _scored_dots(fig: Any, ax: Any, scored: list[Trial], label: str) -> None:
    """One dot per scored trial, coloured and labelled by its metric; a log colour scale when
    the values spread widely, so the good region is not one colour next to a few failures."""
    from matplotlib.colors import LogNorm

    values = [t.objective for t in scored]
    spread = min(values) > 0 and max(values) > 4 * min(values)
    xs, ys = [t.point["optim.lr_g"] for t in scored], [t.point["optim.lr_d"] for t in scored]
    dots = ax.scatter(
        xs,
        ys,
        c=values,
        cmap="viridis_r",
        norm=LogNorm() if spread else None,
        s=[140 if t.reason == "completed" else 60 for t in scored],
        edgecolors=["black" if t.reason == "completed" else "none" for t in scored],
    )
    for x, y, value in zip(xs, ys, values):
        ax.annotate(f"{value:.3g}", (x, y), textcoords="offset points", xytext=(7, 5), fontsize=7)
    fig.colorbar(dots, ax=ax, label=f"{label} (lower is better)")


def register_best(client: MlflowClient, cfg: GanforgeConfig, best: Trial) -> Registered | None:
    """Register the best trial's best model under ``tracking.register`` (default
    ``<gan>-generator``); it takes the alias best if it beats the holder (``tracking.models``)."""
    if best.run_id is None or RUN_MODEL_TAG not in client.get_run(best.run_id).data.tags:
        return None
    return run_record.register_best(cfg, best.run_id, cfg.tracking.register or f"{cfg.gan}-generator")


def record(
    cfg: GanforgeConfig, base_tree: dict[str, Any], parent: str, trials: list[Trial], configs: list[Trial], metric: str
) -> Trial | None:
    """Write the search's results into its parent run; returns the best of ``configs`` (the
    trials, or with several seeds the points pooled over them). ``base_tree``: the user's
    config, to which the best point is applied for ``best_config.yaml``."""
    client = MlflowClient(cfg.tracking.uri)
    best = next((t for t in configs if t.eligible), None)
    for trial in trials:  # here, not in the trial: Tune ends a trial as soon as it reports its last step
        if trial.run_id is not None:
            run_record.name_best_model(cfg.tracking.uri, trial.run_id)
    counts = {
        f"trials/{r}": sum(t.reason == r for t in trials) for r in ("completed", "early_stopped", *UNSTABLE, "error")
    }
    now = int(time.time() * 1000)  # a real timestamp: 0 reads as 1970 in the UI
    metrics = [Metric(k, float(v), now, 0) for k, v in counts.items()]
    with tempfile.TemporaryDirectory(prefix="ganforge-search-") as folder:
        write_csv(trials, Path(folder, "trials.csv"))
        if configs is not trials:
            write_csv(configs, Path(folder, "configs.csv"))
        heatmap(configs, metric, Path(folder, "lr_heatmap.png"), cfg)
        if best is not None:
            tree = apply_point(base_tree, best.point)
            tree["tracking"].update(run_name="", run_id="")  # a run trained from it is a new run
            Path(folder, BEST_CONFIG).write_text(yaml.safe_dump(tree, sort_keys=False))
        client.log_artifacts(parent, folder)
    params = []
    if best is not None:
        metrics.append(Metric("best/objective", best.objective, now, 0))
        if best.seeds > 1:
            metrics.append(Metric("best/objective_std", best.spread, now, 0))
        params = [Param(f"best.{k}", str(v)) for k, v in best.point.items()]
        params += [Param("best.trial_id", best.trial_id), Param("best.run_id", best.run_id or "")]
        logged = client.get_run(parent).data.params  # a resumed search ends a second time
        params = [p for p in params if p.key not in logged]
        registered = register_best(client, cfg, best)
        if registered is not None:
            client.set_tag(parent, "ganforge.registered_model", f"{registered.name}/{registered.version}")
    client.log_batch(parent, metrics=metrics, params=params)
    return best


def best_config(parent: str, tracking_uri: str) -> dict[str, Any]:
    """The config tree of a search's best trial, for ``ganforge train --from-search``."""
    from mlflow.artifacts import download_artifacts

    from pipelines.tracking.runs import check_store

    check_store(tracking_uri)
    try:
        MlflowClient(tracking_uri).get_run(parent)
    except MlflowException as exc:
        raise NotFound(f"no MLflow run {parent} in the tracking store {tracking_uri}") from exc
    try:
        with tempfile.TemporaryDirectory(prefix="ganforge-best-") as folder:
            path = download_artifacts(
                run_id=parent, artifact_path=BEST_CONFIG, dst_path=folder, tracking_uri=tracking_uri
            )
            return yaml.safe_load(Path(path).read_text())
    except (MlflowException, OSError) as exc:
        raise NotFound(
            f"run {parent} in {tracking_uri} has no {BEST_CONFIG}: it is not a finished search, or no "
            "trial completed its budget without instability"
        ) from exc
