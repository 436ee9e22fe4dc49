"""The `ganforge` command starts fast: building its parser (every subcommand's options)
loads none of torch, Ray, MLflow or WebDataset, which take seconds to import; each command
loads what it needs when it runs. `ganforge --help`, `data`, `cluster` and `jobs` stay quick."""

import json
import subprocess
import sys

HEAVY = ("torch", "ray", "mlflow", "webdataset", "gan_core")


def test_the_cli_parser_loads_no_heavy_package():
    code = (
        "import json, sys\n"
        "from pipelines.cli.main import parser\n"
        "parser().parse_args(['train', 'lsgan', '--data', 'x'])\n"
        "print(json.dumps(sorted({k.split('.')[0] for k in sys.modules} & set(" + repr(HEAVY) + "))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_gans_still_lists_the_registry():
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.cli.main", "gans"], capture_output=True, text=True, check=True
    )
    assert [line.split()[0] for line in out.stdout.splitlines()] == ["cyclegan", "discogan", "lsgan", "stylegan"]


def test_version_and_the_data_help_a_cluster_user_needs():
    from importlib.metadata import version

    out = subprocess.run([sys.executable, "-m", "pipelines.cli.main", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"ganforge {version('ganforge')}"
    for command in ("train", "tune"):
        text = subprocess.run(
            [sys.executable, "-m", "pipelines.cli.main", command, "--help"], capture_output=True, text=True, check=True
        ).stdout
        flat = " ".join(text.split())
        assert all(form in flat for form in ("s3://", "gs://", "http(s)", "{000000..000127}", "pipe:")), command
