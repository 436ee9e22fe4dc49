"""gan_core must stay pure PyTorch: importing all of it, in a fresh interpreter, loads no
Ray, MLflow or WebDataset module, and no source file names them in an import. The training
step (engine, loop, device settings, model batches) needs torch alone too, so GPU
benchmarks run on a machine without the orchestration stack."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import gan_core

FORBIDDEN = ("ray", "mlflow", "webdataset")


def test_importing_gan_core_loads_no_orchestration_module():
    code = (
        "import json, sys, pkgutil, importlib, gan_core, gan_core.metrics\n"
        "names = gan_core.available()\n"
        "for m in pkgutil.walk_packages(gan_core.__path__, 'gan_core.'): importlib.import_module(m.name)\n"
        "bad = sorted({k.split('.')[0] for k in sys.modules} & set(" + repr(FORBIDDEN) + "))\n"
        "print(json.dumps({'gans': names, 'bad': bad}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["bad"] == []
    assert "lsgan" in result["gans"]


def test_no_gan_core_source_imports_orchestration_packages():
    offenders = []
    for path in Path(gan_core.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_the_training_step_and_its_benchmark_load_no_orchestration_module():
    code = (
        "import json, sys\n"
        "import pipelines.core.engine, pipelines.core.loop, pipelines.core.device, pipelines.core.tensors\n"
        "sys.argv = ['step_time']; sys.path.insert(0, 'benchmarks'); import step_time\n"
        "print(json.dumps(sorted({k.split('.')[0] for k in sys.modules} & set(" + repr(FORBIDDEN) + "))))\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
