"""Dataset lineage: the shards a run trained on (context ``training``) and the images it was
evaluated against (context ``evaluation``), logged as MLflow dataset inputs, one per domain
and split. Each names its source URI and a digest from the manifest, and profiles its
image count, shard count and image size, so the UI's Datasets column shows what a run read
and which runs read the same data."""

from __future__ import annotations

import json
from urllib.parse import urlparse

from mlflow import MlflowClient
from mlflow.entities import Dataset as MlflowDataset
from mlflow.entities import DatasetInput, InputTag

from pipelines.data.manifest import Dataset, DomainShards

CONTEXT_TAG = "mlflow.data.context"  # the tag MLflow's UI shows a dataset's role by
TRAINING, EVALUATION = "training", "evaluation"


def _source_type(root: str) -> str:
    scheme = urlparse(root).scheme
    return scheme if scheme in ("s3", "gs", "http", "https") else "local"


def dataset_input(dataset: Dataset, shards: DomainShards, split: str, context: str) -> DatasetInput:
    root = str(dataset.root)
    name = f"{root.rstrip('/').rsplit('/', 1)[-1]}:{shards.name}"  # e.g. digits-16:image, horse2zebra:A-holdout
    profile = {
        "images": shards.count,
        "shards": len(shards.urls),
        "resolution": dataset.resolution,
        "channels": dataset.channels,
        "split": split,
        "estimated_counts": dataset.estimated_counts,
    }
    entity = MlflowDataset(
        name=name,
        digest=dataset.digest(shards),
        source_type=_source_type(root),
        source=json.dumps({"uri": root, "domain": shards.name}),
        profile=json.dumps(profile),
    )
    return DatasetInput(entity, tags=[InputTag(CONTEXT_TAG, context)])


def run_inputs(dataset: Dataset, domains: dict[str, str], evaluated: bool) -> list[DatasetInput]:
    """A training run's inputs: each domain's training split, and, when it is evaluated
    against held-out images, those (a run evaluated against its training split read no more)."""
    inputs = [dataset_input(dataset, dataset.domain(d), "train", TRAINING) for d in sorted(set(domains.values()))]
    if evaluated:
        inputs += reference_inputs(dataset, domains, held_out_only=True)
    return inputs


def reference_inputs(dataset: Dataset, domains: dict[str, str], held_out_only: bool = False) -> list[DatasetInput]:
    """The images each domain is evaluated against (the held-out split, else the training split)."""
    found = []
    for domain in sorted(set(domains.values())):
        shards, split = dataset.reference(domain)
        if split == "holdout" or not held_out_only:
            found.append(dataset_input(dataset, shards, split, EVALUATION))
    return found


def log_inputs(uri: str, run_id: str, inputs: list[DatasetInput]) -> None:
    MlflowClient(uri).log_inputs(run_id, datasets=inputs)
