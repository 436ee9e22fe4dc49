"""``ganforge evaluate``: the metrics of a trained generator in one process, against the
shards' held-out split (else their training split); for translation GANs, also L1 and PSNR
against the true counterpart when the split is paired by file name."""

from __future__ import annotations

import torch

from gan_core.metrics import make_suite
from pipelines.data.batches import resolve_domains
from pipelines.data.manifest import DataError, Dataset
from pipelines.eval.evaluator import Evaluator, quantise
from pipelines.eval.reference import to_float
from pipelines.inference.model import Trained


def check_compatible(trained: Trained, dataset: Dataset) -> None:
    gan = trained.gan
    if (gan.resolution, gan.channels) != (dataset.resolution, dataset.channels):
        raise DataError(
            f"the model makes {gan.resolution}px images with {gan.channels} channel(s) but "
            f"{dataset.root} holds {dataset.resolution}px with {dataset.channels}"
        )


@torch.no_grad()
def paired_metrics(trained: Trained, evaluator: Evaluator, batch_size: int) -> dict[str, float]:
    """L1 (on [0, 1]) and PSNR (dB) of each translation against the image of the same name in
    the other domain; empty when the reference splits are not paired by name."""
    refs = {d: evaluator.reference(d) for d in ("A", "B")}
    index = {d: {name: i for i, name in enumerate(refs[d].names)} for d in refs}
    common = sorted(set(index["A"]) & set(index["B"]))
    if not common or len(common) < min(len(refs["A"].names), len(refs["B"].names)):
        return {}
    result = {}
    for direction, src, dst in (("AtoB", "A", "B"), ("BtoA", "B", "A")):
        errors, mses = [], []
        for start in range(0, len(common), batch_size):
            names = common[start : start + batch_size]
            inputs = to_float(refs[src].images[[index[src][n] for n in names]]).to(trained.device)
            fake = quantise(trained.gan.translate(trained.nets, inputs, direction)).cpu().float() / 255
            truth = refs[dst].images[[index[dst][n] for n in names]].float() / 255
            errors.append((fake - truth).abs().flatten(1).mean(1))
            mses.append((fake - truth).square().flatten(1).mean(1))
        mse = torch.cat(mses).clamp_min(1e-10)
        result[f"evaluate/{direction}/paired_l1"] = torch.cat(errors).mean().item()
        result[f"evaluate/{direction}/paired_psnr"] = (10 * torch.log10(1 / mse)).mean().item()
    result["evaluate/paired_pairs"] = float(len(common))
    return result


def evaluate_trained(
    trained: Trained, dataset: Dataset, n: int, weights: str = "", batch_size: int = 64, domain: str = "", seed: int = 0
) -> dict[str, float]:
    check_compatible(trained, dataset)
    domains = resolve_domains(dataset, trained.gan.name, trained.gan.domains, domain)
    suite = make_suite(weights or None, trained.device)
    suite.batch_size = batch_size
    evaluator = Evaluator(trained.gan, dataset, domains, suite, n, batch_size, seed)
    result = {k.replace("eval/", "evaluate/", 1): v for k, v in evaluator(trained.nets).items()}
    if trained.gan.domains == ("A", "B"):
        result.update(paired_metrics(trained, evaluator, batch_size))
    first = evaluator.reference(next(iter(domains)))
    result["evaluate/reference_images"] = float(len(first.images))
    return result
