"""End to end: `ganforge train` as a real 2-worker Ray Train DDP job on real tar shards,
logging to a real MLflow store; then everything a user looks for is read back."""

import io
import shutil
import subprocess
import sys
import tarfile

import pytest
import torch
from mlflow import MlflowClient

from pipelines.cli.main import main
from pipelines.config import load
from pipelines.data.manifest import DataError
from pipelines.train.checkpoint import load_checkpoint
from pipelines.train.guard import Diverged
from pipelines.train.launch import train

pytestmark = pytest.mark.slow


def _artifacts(client, run_id, path=None):
    files = []
    for item in client.list_artifacts(run_id, path):
        files += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return files


def test_two_worker_ddp_run_is_fully_tracked(digit_shards, ray_local, tmp_path):
    shards = tmp_path / "digits"  # real shards with two undecodable samples, to be skipped and counted
    shutil.copytree(digit_shards, shards)
    for shard in sorted(shards.glob("*.tar")):
        with tarfile.open(shard, "a") as tar:
            info = tarfile.TarInfo("zzbad.png")
            info.size = 12
            tar.addfile(info, io.BytesIO(b"\x89PNG garbage"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = load("lsgan", overrides=[
        f"data.path={shards}", "data.mode=exact", "train.workers=2", "train.steps=30", "train.log_every=10",
        "train.sample_every=15", "train.checkpoint_every=15", "model.ngf=16", "model.ndf=16",
        "optim.lr_d=1e-4", "eval.every=20", "eval.samples=256", f"tracking.uri={uri}", f"tracking.artifact_root={(tmp_path / 'art').as_uri()}",
        f"train.storage_path={tmp_path / 'ray'}"])
    outcome = train(cfg, progress=False)

    client = MlflowClient(uri)
    run = client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name.startswith("lsgan-digits-")
    params = run.data.params
    assert params["optim.lr_d"] == "0.0001" and params["optim.lr_g"] == "0.0002"
    assert params["train.workers"] == "2" and params["model.ngf"] == "16" and params["gan"] == "lsgan"
    tags = run.data.tags
    assert tags["gan"] == "lsgan" and tags["workers"] == "2" and tags["data"] == str(shards)
    assert tags["git_commit"] and tags["ganforge.world_size"] == "2" and tags["ganforge.backend"] == "gloo"

    for key in ("loss/D", "loss/G"):
        history = client.get_metric_history(outcome.run_id, key)
        assert [m.step for m in history] == [10, 20, 30]
        assert all(torch.isfinite(torch.tensor(m.value)) for m in history)
    assert client.get_metric_history(outcome.run_id, "lr/D")[-1].value == pytest.approx(1e-4)
    assert client.get_metric_history(outcome.run_id, "perf/images_per_sec")[-1].value > 0
    assert client.get_metric_history(outcome.run_id, "data/skipped")[-1].value >= 1  # rank 0's bad samples
    swd = client.get_metric_history(outcome.run_id, "eval/swd")
    assert [m.step for m in swd] == [20, 30] and all(m.value > 0 for m in swd)  # every 20 steps and at the end
    assert outcome.metrics["eval/swd"] == swd[-1].value and tags["ganforge.eval_extractor"] == "pixels"

    files = _artifacts(client, outcome.run_id)
    sample_pngs = [f for f in files if f.startswith("images/samples+step+") and f.endswith(".png")]
    assert {f.split("+")[2] for f in sample_pngs} == {"15", "30"}
    assert {"checkpoint/state.pt", "checkpoint/config.json", "generator/generator.pt"} <= set(files)

    state = load_checkpoint(client.download_artifacts(outcome.run_id, "checkpoint", str(tmp_path / "dl")))
    assert state["engine"]["step"] == 30 and state["config"]["optim"]["lr_d"] == 1e-4
    assert set(state["engine"]["optim"]) == {"G", "D"}
    generator = torch.load(client.download_artifacts(outcome.run_id, "generator/generator.pt", str(tmp_path / "g")),
                           weights_only=True)
    assert set(generator) == {"G"}
    assert outcome.checkpoint_path and load_checkpoint(outcome.checkpoint_path)["engine"]["step"] == 30
    assert outcome.metrics["loss/D"] > 0

    argv = ["evaluate", outcome.run_id, "--data", str(digit_shards), "--n", "300", "--tracking-uri", uri, "--device", "cpu"]
    assert main(argv) == 0
    logged = client.get_run(outcome.run_id).data.metrics
    assert logged["evaluate/swd"] > 0 and logged["evaluate/reference_images"] == 300


def test_train_cli_rejects_bad_input_before_starting_ray(tmp_path, digit_shards, capsys, monkeypatch):
    # One case as a real process (what the user's terminal shows, exit status included) ...
    done = subprocess.run([sys.executable, "-m", "pipelines.cli.main", "train", "lsgan", "--data",
                           str(tmp_path / "missing")], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and "data path" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    # ... the others in this process (each new interpreter costs seconds of imports).
    monkeypatch.chdir(tmp_path)
    cases = [
        (["train", "nogan", "--data", str(digit_shards)], "unknown GAN 'nogan'"),
        (["train", "lsgan", "--data", str(digit_shards), "--set", "optim.lr_g=-1"], "optim.lr_g must be > 0"),
        (["train", "lsgan", "--data", str(digit_shards), "--workers", "2", "--set", "data.mode=exact",
          "--set", "data.loader_workers=8"], "data.mode=exact needs at least 16 shards"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "mlflow.db").exists()  # nothing was started or tracked


def test_train_cli_rejects_domain_mismatches_in_one_line(tmp_path, digit_shards, digit_domain_shards, capsys, monkeypatch):
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


def test_a_data_error_inside_the_workers_fails_the_run_with_its_reason(digit_shards, ray_local, tmp_path):
    garbage = tmp_path / "garbage"
    shutil.copytree(digit_shards, garbage)
    for shard in garbage.glob("*.tar"):  # present (the driver's check passes) but unreadable
        shard.write_bytes(bytes(range(256)) * 12)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = load("lsgan", overrides=[f"data.path={garbage}", "train.workers=2", "train.steps=5",
                                   "model.ngf=8", "model.ndf=8", f"tracking.uri={uri}",
                                   f"train.storage_path={tmp_path / 'ray'}"])
    # whichever rank notices first: rank 0 reading its fixed sample-grid inputs, or a data stream
    with pytest.raises(DataError, match=r"worker \d: .*(held|holds) no decodable image"):
        train(cfg, progress=False)
    run = MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("ganforge-lsgan").experiment_id])[0]
    assert run.info.status == "FAILED"
    assert "no decodable image" in run.data.tags["ganforge.end_reason"]


def test_a_diverging_run_ends_as_diverged_without_a_bad_checkpoint(digit_shards, ray_local, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = load("lsgan", overrides=[f"data.path={digit_shards}", "train.workers=2", "train.steps=50",
                                   "model.ngf=8", "model.ndf=8", "optim.lr_g=1e30", "optim.lr_d=1e30",
                                   "train.max_nonfinite_steps=4", "train.checkpoint_every=1000", "eval.every=0",
                                   f"tracking.uri={uri}", f"train.storage_path={tmp_path / 'ray'}"])
    with pytest.raises(Diverged, match=r"worker \d: diverged: 4 optimizer steps in a row"):
        train(cfg, progress=False)
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("ganforge-lsgan").experiment_id])[0]
    assert run.info.status == "FAILED" and "diverged" in run.data.tags["ganforge.end_reason"]
    assert not list((tmp_path / "ray").rglob("state.pt"))  # nothing written from the blown-up weights
