"""What a run keeps, by its evaluations: Ray Train keeps the best-scored checkpoints (lower
eval metric is better) besides the newest one, and the run's model is its best-scored
evaluation, which need not be the last; with ``tracking.system_metrics=false`` no system
metrics are logged. A real 1-worker Ray Train run on real shards and a real MLflow store."""

import pytest
from mlflow import MlflowClient

from pipelines.config import load
from pipelines.core.checkpoint import load_checkpoint
from pipelines.tracking.models import run_models
from pipelines.train.launch import train

pytestmark = pytest.mark.slow


def test_the_best_scored_checkpoint_and_model_are_kept(digit_shards, ray_local, tmp_path, empty_store):
    cfg = load(
        "lsgan",
        overrides=[
            f"data.path={digit_shards}",
            "train.workers=1",
            "train.steps=50",
            "model.ngf=8",
            "model.ndf=8",
            "model.latent_dim=16",
            "data.batch_size=16",
            "eval.every=10",
            "eval.samples=128",
            "train.checkpoint_every=10",
            "train.keep_checkpoints=1",
            "tracking.system_metrics=false",
            f"tracking.uri={empty_store}",
            f"train.storage_path={tmp_path / 'ray'}",
        ],
    )
    outcome = train(cfg, progress=False)
    client = MlflowClient(empty_store)
    swd = {m.step: m.value for m in client.get_metric_history(outcome.run_id, "eval/swd")}
    assert sorted(swd) == [10, 20, 30, 40, 50]
    best_step = min(swd, key=swd.__getitem__)

    kept = {load_checkpoint(p.parent)["engine"]["step"] for p in (tmp_path / "ray").rglob("state.pt")}
    assert kept == {best_step, 50}  # the best by eval/swd, and the newest to resume from

    models = run_models(client, outcome.run_id)
    assert [int(m.tags["ganforge.step"]) for m in models] == [10, 20, 30, 40, 50]
    run = client.get_run(outcome.run_id)
    best = next(m for m in models if int(m.tags["ganforge.step"]) == best_step)
    assert run.data.tags["ganforge.model"] == outcome.model == f"models:/{best.model_id}"
    assert run.data.tags["ganforge.model_step"] == str(best_step)
    assert not [k for k in run.data.metrics if k.startswith("system/")]
