"""``ganforge evaluate RUN --data SHARDS``: sample-quality metrics of a trained generator,
printed and logged to the run in MLflow (when RUN is a run id)."""

from __future__ import annotations

import argparse
import time

from pipelines.cli.generate_cmd import SOURCE_HELP, resolve_device
from pipelines.config.schema import TrackingConfig


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="FID/KID/SWD of a trained generator against held-out shards")
    p.add_argument("source", metavar="RUN", help=SOURCE_HELP)
    p.add_argument("--data", required=True, help="shard folder; its held-out split is the reference if it has one")
    p.add_argument("--n", type=int, default=10000, help="images to generate and reference images (default 10000)")
    p.add_argument("--domain", default="", help="one-domain GAN on two-domain shards: A or B")
    p.add_argument(
        "--inception-weights", default="", help="FID Inception weights (default $GANFORGE_INCEPTION_WEIGHTS)"
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--tracking-uri", default="", help="MLflow store of RUN (default: $MLFLOW_TRACKING_URI or ./mlflow.db)"
    )
    p.set_defaults(func=run)


def _log(tracking: TrackingConfig, run_id: str, result: dict[str, float], data: str, inputs: list) -> None:
    """The metrics beside the run's last step, and the reference images as its evaluation input."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, RunTag

    client = MlflowClient(tracking.uri)
    client.log_inputs(run_id, datasets=inputs)
    history = client.get_metric_history(run_id, "perf/images_per_sec")  # logged by every GAN, at the last step too
    step = max((m.step for m in history), default=0)  # beside the run's last training step
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, now, step) for k, v in result.items()],
        tags=[RunTag("ganforge.evaluate.data", data)],
    )


def run(args: argparse.Namespace) -> None:
    from pipelines.data.manifest import read_dataset
    from pipelines.eval.offline import evaluate_trained
    from pipelines.inference.model import RUN_ID, load_trained
    from pipelines.tracking import store

    tracking = store.resolve(TrackingConfig(uri=args.tracking_uri))
    trained = load_trained(args.source, tracking, resolve_device(args.device))
    dataset = read_dataset(args.data)
    result = evaluate_trained(trained, dataset, args.n, args.inception_weights, args.batch_size, args.domain)
    width = max(map(len, result))
    for key, value in sorted(result.items()):
        print(f"{key:{width}s}  {value:.4f}")
    if RUN_ID.match(args.source):
        from pipelines.data.batches import resolve_domains
        from pipelines.tracking.datasets import reference_inputs

        domains = resolve_domains(dataset, trained.gan.name, trained.gan.domains, args.domain)
        _log(tracking, args.source, result, args.data, reference_inputs(dataset, domains))
        print(f"logged to MLflow run {args.source}")
