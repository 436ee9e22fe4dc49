"""`ganforge train` when something is wrong: bad input is refused in one line before Ray
starts; a data error inside the workers and a diverging run end a real 2-worker Ray Train
job with their reason, in the terminal and in its MLflow run. (A good run, and everything it
logs, is read back in test_cluster_jobs_e2e and test_gans_e2e.)"""

import shutil
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from pipelines.cli.main import main
from pipelines.config import load
from pipelines.core.guard import Diverged
from pipelines.data.manifest import DataError
from pipelines.train.launch import train

pytestmark = pytest.mark.slow


def test_train_cli_rejects_bad_input_before_starting_ray(tmp_path, digit_shards, capsys, monkeypatch):
    # One case as a real process (what the user's terminal shows, exit status included) ...
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli.main", "train", "lsgan", "--data", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2 and "data path" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    # ... the others in this process (each new interpreter costs seconds of imports).
    monkeypatch.chdir(tmp_path)
    cases = [
        (["train", "nogan", "--data", str(digit_shards)], "unknown GAN 'nogan'"),
        (["train", "lsgan", "--data", str(digit_shards), "--set", "optim.lr_g=-1"], "optim.lr_g must be > 0"),
        (
            [
                "train",
                "lsgan",
                "--data",
                str(digit_shards),
                "--workers",
                "2",
                "--set",
                "data.mode=exact",
                "--set",
                "data.loader_workers=8",
            ],
            "data.mode=exact needs at least 16 shards",
        ),
        (
            ["train", "lsgan", "--data", str(digit_shards), "--workers", "2", "--batch-size", "5"],
            "data.batch_size=5 is the global batch and does not split evenly over 2 workers: use data.batch_size=4",
        ),
        (
            ["train", "lsgan", "--data", str(digit_shards), "--workers", "1-3", "--batch-size", "16"],
            "does not split evenly over 3 workers",  # an elastic run may run at any count in its range
        ),
        (["train", "lsgan", "--data", str(digit_shards), "--workers", "3-1"], "train.workers must be [min, max]"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "mlflow.db").exists()  # nothing was started or tracked


def test_train_cli_rejects_domain_mismatches_in_one_line(
    tmp_path, digit_shards, digit_domain_shards, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    cases = [
        (["train", "cyclegan", "--data", str(digit_shards)], "cyclegan needs domains A, B"),
        (["train", "discogan", "--data", str(digit_shards)], "--domain-a DIR --domain-b DIR"),
        (["train", "lsgan", "--data", str(digit_domain_shards)], "choose it with --set data.domain=A"),
        (["train", "stylegan", "--data", str(digit_domain_shards), "--set", "data.domain=C"], "has no domain 'C'"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "mlflow.db").exists()


def test_a_data_error_inside_the_workers_fails_the_run_with_its_reason(digit_shards, ray_local, tmp_path, empty_store):
    garbage = tmp_path / "garbage"
    shutil.copytree(digit_shards, garbage)
    for shard in garbage.glob("*.tar"):  # present (the driver's check passes) but unreadable
        shard.write_bytes(bytes(range(256)) * 12)
    uri = empty_store
    cfg = load(
        "lsgan",
        overrides=[
            f"data.path={garbage}",
            "train.workers=2",
            "train.steps=5",
            "model.ngf=8",
            "model.ndf=8",
            f"tracking.uri={uri}",
            f"train.storage_path={tmp_path / 'ray'}",
        ],
    )
    # whichever rank notices first: rank 0 reading its fixed sample-grid inputs, or a data stream
    with pytest.raises(DataError, match=r"worker \d: .*(held|holds) no decodable image"):
        train(cfg, progress=False)
    run = MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("ganforge-lsgan").experiment_id])[0]
    assert run.info.status == "FAILED"
    assert "no decodable image" in run.data.tags["ganforge.end_reason"]


def test_a_diverging_run_ends_as_diverged_without_a_bad_checkpoint(digit_shards, ray_local, tmp_path, empty_store):
    uri = empty_store
    cfg = load(
        "lsgan",
        overrides=[
            f"data.path={digit_shards}",
            "train.workers=2",
            "train.steps=50",
            "model.ngf=8",
            "model.ndf=8",
            "optim.lr_g=1e30",
            "optim.lr_d=1e30",
            "train.max_nonfinite_steps=4",
            "train.checkpoint_every=1000",
            "eval.every=0",
            f"tracking.uri={uri}",
            f"train.storage_path={tmp_path / 'ray'}",
        ],
    )
    with pytest.raises(Diverged, match=r"worker \d: diverged: 4 optimizer steps in a row"):
        train(cfg, progress=False)
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("ganforge-lsgan").experiment_id])[0]
    assert run.info.status == "FAILED" and "diverged" in run.data.tags["ganforge.end_reason"]
    assert not list((tmp_path / "ray").rglob("state.pt"))  # nothing written from the blown-up weights
