"""Dataset lineage in a real MLflow store: a run's inputs are its training shards (context
``training``) and its held-out reference (context ``evaluation``), one per domain and split,
each with its source, a digest from the manifest and a profile of counts and image size;
`ganforge evaluate` logs the reference it measured against the same way."""

from __future__ import annotations

import json
import shutil

from mlflow import MlflowClient
from test_mlflow_models import trained_run

from pipelines.cli.main import main
from pipelines.data.manifest import read_dataset
from pipelines.data.shard import ShardOptions, write_shards
from pipelines.tracking.datasets import log_inputs, run_inputs


def _inputs(client: MlflowClient, run_id: str) -> dict[str, tuple[str, dict, dict]]:
    found = {}
    for item in client.get_run(run_id).inputs.dataset_inputs:
        context = {t.key: t.value for t in item.tags}["mlflow.data.context"]
        found[item.dataset.name] = (context, json.loads(item.dataset.profile), item.dataset)
    return found


def test_a_run_records_its_training_shards_and_held_out_reference(held_out_digits, empty_store, tmp_path):
    client = MlflowClient(empty_store)
    run_id = client.create_run(client.create_experiment("lineage")).info.run_id
    dataset = read_dataset(held_out_digits)
    log_inputs(empty_store, run_id, run_inputs(dataset, {"image": "image"}, evaluated=True))
    found = _inputs(client, run_id)
    assert set(found) == {"digits-16:image", "digits-16:image-holdout"}
    context, profile, entity = found["digits-16:image"]
    assert context == "training" and profile["images"] == 1797 - 300 and profile["resolution"] == 16
    assert profile["channels"] == 1 and profile["shards"] == 4 and profile["split"] == "train"
    assert json.loads(entity.source)["uri"] == str(held_out_digits) and entity.source_type == "local"
    context, profile, _ = found["digits-16:image-holdout"]
    assert context == "evaluation" and profile["images"] == 300 and profile["split"] == "holdout"
    assert entity.digest == dataset.digest(dataset.domain("image")) != dataset.digest(dataset.holdout("image"))


def test_the_digest_follows_the_shards_not_where_they_are(held_out_digits, digits_dir, tmp_path):
    copy = tmp_path / "elsewhere"
    shutil.copytree(held_out_digits, copy)
    original, moved = read_dataset(held_out_digits), read_dataset(copy)
    assert original.digest(original.domain("image")) == moved.digest(moved.domain("image"))
    resharded = tmp_path / "resharded"
    write_shards(
        {"image": digits_dir},
        resharded,
        ShardOptions(size=16, channels="L", shard_size=300, holdout=300, progress=False),
    )
    again = read_dataset(resharded)
    assert again.digest(again.domain("image")) != original.digest(original.domain("image"))


def test_evaluate_logs_its_reference_as_an_evaluation_input(held_out_digits, empty_store, tmp_path):
    run_id = trained_run(empty_store, tmp_path, "lsgan", {10: 0.3})
    argv = [
        "evaluate",
        run_id,
        "--data",
        str(held_out_digits),
        "--n",
        "64",
        "--device",
        "cpu",
        "--tracking-uri",
        empty_store,
    ]
    assert main(argv) == 0
    found = _inputs(MlflowClient(empty_store), run_id)
    assert found["digits-16:image-holdout"][0] == "evaluation" and found["digits-16:image-holdout"][1]["images"] == 300
