"""The generator as an MLflow pyfunc model, logged as a model from code: what MLflow stores
is ganforge's code (``generator_model.py`` builds the model) plus the exported weights as an
artifact, so no pickled module is written or loaded, and the weights load with
``weights_only=True``.

* One-domain GANs take a table of ``seed``, ``n`` and optionally ``truncation`` and return
  the images that ``ganforge sample --seed S --n N`` writes: (sum of n, H, W, C) uint8.
* Translation GANs take (N, H, W, C) uint8 images at the model's size and the param
  ``direction`` (AtoB or BtoA), and return the images that ``ganforge translate`` writes."""

from __future__ import annotations

import math
import os
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

from gan_core.translation import DIRECTIONS
from pipelines.core.tensors import to_uint8
from pipelines.inference.model import Trained, load_trained_folder
from pipelines.inference.run import generated, translated

CODE_FILE = Path(__file__).with_name("generator_model.py")
ARTIFACT = "generator"  # the exported generator folder, under the model's artifacts/
# What the model needs at serving time, besides ganforge: pinned to what logged it.
RUNTIME = ("torch", "numpy", "pillow", "pyyaml", "mlflow", "pandas")
# The signature is given explicitly; MLflow would have predict's type hints say it instead.
warnings.filterwarnings("ignore", message=r".*Add type hints to the `predict` method")


class GeneratorModel(PythonModel):
    """Loads the exported generator on a GPU if there is one, else on the CPU."""

    trained: Trained

    def load_context(self, context: Any) -> None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.trained = load_trained_folder(Path(context.artifacts[ARTIFACT]), device)

    # No type hints on predict: MLflow would read them as a schema; the signature is explicit.
    def predict(self, context, model_input, params=None):
        if self.trained.gan.domains == ("image",):
            return sample_rows(self.trained, pd.DataFrame(model_input))
        return translate_array(self.trained, np.asarray(model_input), (params or {}).get("direction", "AtoB"))


def _nhwc(images: torch.Tensor) -> np.ndarray:
    return to_uint8(images).permute(0, 2, 3, 1).cpu().numpy()


def sample_rows(trained: Trained, rows: pd.DataFrame) -> np.ndarray:
    """Every row's ``n`` images for its ``seed`` (and ``truncation``, default 1), in order."""
    missing = {"seed", "n"} - set(rows.columns)
    if missing:
        raise ValueError(f"the model's input needs the columns seed and n; missing: {', '.join(sorted(missing))}")
    out = []
    for row in rows.to_dict("records"):
        truncation = row.get("truncation")
        truncation = 1.0 if truncation is None or math.isnan(truncation) else float(truncation)
        if int(row["n"]) < 1:
            raise ValueError(f"n must be >= 1, got {row['n']}")
        out += [_nhwc(batch) for batch in generated(trained, int(row["n"]), int(row["seed"]), truncation)]
    return np.concatenate(out)


def translate_array(trained: Trained, images: np.ndarray, direction: str) -> np.ndarray:
    gan = trained.gan
    expected = (gan.resolution, gan.resolution, gan.channels)
    if images.ndim != 4 or images.shape[1:] != expected or images.dtype != np.uint8:
        raise ValueError(
            f"the model translates (N, {', '.join(map(str, expected))}) uint8 images, got {images.shape} {images.dtype}"
        )
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    chw = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return np.concatenate([_nhwc(batch) for batch in translated(trained, chw, direction)])


def signature(meta: dict[str, Any], domains: tuple[str, ...]) -> tuple[ModelSignature, Any]:
    """The model's signature and an input example, for the image size in ``meta``."""
    size, channels = int(meta["resolution"]), int(meta["channels"])
    images = Schema([TensorSpec(np.dtype(np.uint8), (-1, size, size, channels))])
    if domains == ("image",):
        inputs = Schema(
            [ColSpec("long", "seed"), ColSpec("long", "n"), ColSpec("double", "truncation", required=False)]
        )
        return ModelSignature(inputs, images), pd.DataFrame({"seed": [0], "n": [4]})
    params = ParamSchema([ParamSpec("direction", "string", "AtoB")])
    return ModelSignature(images, images, params), np.zeros((1, size, size, channels), np.uint8)


def requirements() -> list[str]:
    """ganforge and its runtime needs at the versions that logged the model."""
    pinned = []
    for name in ("ganforge", *RUNTIME):
        try:
            pinned.append(f"{name}=={version(name).split('+')[0]}")  # torch's 2.13.0+cpu: the local tag is a build
        except PackageNotFoundError:
            pinned.append(name)
    return pinned


def save_pyfunc(path: str | Path, export: str | Path, meta: dict[str, Any], domains: tuple[str, ...]) -> Path:
    """Write the MLflow model for an exported generator folder (``export_generator``) to ``path``;
    logging it names the LoggedModel in its MLmodel file (``tracking.models``)."""
    model_signature, example = signature(meta, domains)
    # MLflow checks the input example against the signature, copying the artifacts with a
    # progress bar: many lines in a worker's log for a folder of two files.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.pyfunc.save_model(
        str(path),
        python_model=str(CODE_FILE),
        artifacts={ARTIFACT: str(export)},
        signature=model_signature,
        input_example=example,
        pip_requirements=requirements(),
    )
    return Path(path)
