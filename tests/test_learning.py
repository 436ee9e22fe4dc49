"""The GANs learn, on real images, through the real engine, loop and WebDataset loader in one
process (the Ray wrapper is tested end to end elsewhere); the runs are in learning_runs.py.

* LSGAN and StyleGAN: the sliced Wasserstein distance between samples and handwritten digits
  falls clearly below the untrained generator's.
* CycleGAN and DiscoGAN: trained on unpaired photo crops (A) and colour-inverted crops (B),
  G_AB's translations of unseen crops come clearly closer to their true inverses than the
  untranslated input and than a constant grey guess."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest
from learning_runs import SECONDS, TRANSLATION, UNCONDITIONAL, run


@pytest.fixture(scope="module")
def learned(request, digit_shards, inverted_photo_shards):
    """The selected tests' runs, all started before the first of these tests: two processes
    (spawned: this one may hold Ray's threads) train one GAN each at a time, longest first."""
    names = sorted(
        {item.callspec.params["name"] for item in request.session.items if item.module is request.module},
        key=SECONDS.get,
        reverse=True,
    )
    shards = {name: str(digit_shards if name in UNCONDITIONAL else inverted_photo_shards) for name in names}
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield {name: pool.submit(run, name, shards[name]) for name in names}
        pool.shutdown(cancel_futures=True)


@pytest.mark.parametrize("name", sorted(UNCONDITIONAL))
def test_unconditional_gan_learns_the_digit_distribution(name, learned):
    result = learned[name].result()
    steps, _, bound = UNCONDITIONAL[name]
    assert result["steps"] == steps and result["finite"]
    assert result["after"] < bound * result["before"], (
        f"SWD {result['before']:.1f} -> {result['after']:.1f}: {name} did not learn"
    )


@pytest.mark.parametrize("name", sorted(TRANSLATION))
def test_translation_gan_learns_an_unpaired_pixel_mapping(name, learned):
    result = learned[name].result()
    l1, untranslated, grey = result["l1"], result["untranslated"], result["grey"]
    assert l1 < 0.45 * untranslated, f"L1 {l1:.3f} vs untranslated {untranslated:.3f}"
    assert l1 < 0.85 * grey, f"L1 {l1:.3f} vs constant grey {grey:.3f}"  # a wrong mapping scores above grey
