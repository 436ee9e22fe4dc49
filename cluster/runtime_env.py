"""The Ray runtime env of a submitted job: this project's code, shipped with the job (so the
cluster runs the code you submitted, not what its nodes installed), and where to track."""

from __future__ import annotations

import importlib.util

# Never shipped: stores, shards, caches (gitignore syntax, matched inside each package).
EXCLUDES = [
    "__pycache__/",
    "*.pyc",
    ".venv/",
    "data/bench/",
    "shards/",
    "mlflow.db",
    "mlartifacts/",
    "ray_results/",
    "*.tar",
]


def package_dirs() -> list[str]:
    """The three packages as folders. Installed or from a checkout, these hold all our code,
    and nothing of a user's data beside it (a checkout's root would carry venvs and shards)."""
    # Found, not imported: importing gan_core would load torch into a command that needs none.
    return [_package_dir(name) for name in ("gan_core", "pipelines", "cluster")]


def _package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"package {name} is not installed or not a package")
    return next(iter(spec.submodule_search_locations))


def job_runtime_env(tracking_uri: str | None) -> dict:
    # No URI: the cluster's own MLFLOW_TRACKING_URI applies (see ray_cluster.yaml).
    env_vars = {"PYTHONUNBUFFERED": "1", **({"MLFLOW_TRACKING_URI": tracking_uri} if tracking_uri else {})}
    return {"py_modules": package_dirs(), "excludes": EXCLUDES, "env_vars": env_vars}
