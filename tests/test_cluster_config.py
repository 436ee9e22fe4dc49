"""ray_cluster.yaml is a valid Ray cluster-launcher config whose services stay on loopback."""

from pathlib import Path

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from cluster.connect import TRIAL_RESOURCE

CONFIG = Path(__file__).resolve().parents[1] / "ray_cluster.yaml"


def test_cluster_config_passes_rays_own_schema():
    config = prepare_config(yaml.safe_load(CONFIG.read_text()))
    validate_config(config)  # raises on any schema violation
    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    # No training on the head, but room for the drivers of Tune trials (see cluster/local.py).
    assert types["head"]["resources"]["CPU"] == 0 and types["head"]["resources"][TRIAL_RESOURCE] >= 1
    assert types["gpu_worker"]["max_workers"] >= 1
    assert types["gpu_worker"]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"


def test_services_stay_inside_the_cluster_and_setup_installs_the_project():
    config = yaml.safe_load(CONFIG.read_text())
    head = " ".join(config["head_start_ray_commands"])
    # Dashboard, Jobs API and MLflow on the head's loopback: from outside through the SSH tunnel
    # only; workers' logging reaches MLflow through the driver's relay (pipelines/tracking/relay.py).
    assert "--dashboard-host=127.0.0.1" in head
    assert "mlflow server --host 127.0.0.1" in head and "0.0.0.0" not in head
    assert "MLFLOW_TRACKING_URI=http://127.0.0.1:5000" in head  # jobs log there by default
    assert "GANFORGE_STORAGE_PATH=s3://" in head  # and keep their checkpoints and searches in S3
    assert "--artifacts-destination $ARTIFACTS" in head and "ARTIFACTS=s3://" in head
    assert any("pip install -e ." in c for c in config["setup_commands"])


def test_every_node_runs_in_token_mode_with_the_users_token():
    config = yaml.safe_load(CONFIG.read_text())
    assert config["file_mounts"]["/home/ubuntu/.ray/auth_token"] == "~/.ray/auth_token"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = next(c for c in config[key] if "ray start" in c)
        assert start.index("export RAY_AUTH_MODE=token;") < start.index("ray start")
