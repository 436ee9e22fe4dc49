"""The FID Inception-v3 matches the standard network: parameter count, the feature-map shape
after every block, 2048-d pool features; the weights load strictly from a local file with
weights_only=True, and a missing file means 'no Inception', never a download."""

import pytest
import torch

from gan_core.metrics.inception import WEIGHTS_ENV, FIDInceptionV3, load_fid_inception

# torchvision's inception_v3 without the auxiliary head has 23,834,568 parameters with 1000
# classes; the FID network has 1008 classes: 8 more rows of the 2048-wide fc and 8 biases.
FID_INCEPTION_PARAMETERS = 23_834_568 + 8 * 2048 + 8

# (channels, height, width) after each block for a 299 x 299 input: the standard layout.
SHAPES = [
    (32, 149, 149),
    (32, 147, 147),
    (64, 147, 147),
    (64, 73, 73),
    (80, 73, 73),
    (192, 71, 71),
    (192, 35, 35),
    (256, 35, 35),
    (288, 35, 35),
    (288, 35, 35),
    (768, 17, 17),
    (768, 17, 17),
    (768, 17, 17),
    (768, 17, 17),
    (768, 17, 17),
    (1280, 8, 8),
    (2048, 8, 8),
    (2048, 8, 8),
]


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return FIDInceptionV3().eval()


def test_parameter_count_is_the_reference_networks(net):
    assert sum(p.numel() for p in net.parameters()) == FID_INCEPTION_PARAMETERS


@torch.no_grad()
def test_every_block_has_the_reference_output_shape_and_features_are_2048_d(net):
    x = torch.rand(2, 3, 299, 299) * 2 - 1
    shapes = []
    for block in net.blocks():
        x = block(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == SHAPES
    features = net(torch.rand(2, 1, 32, 32) * 2 - 1)  # any size, grayscale too
    assert features.shape == (2, 2048) and torch.isfinite(features).all()


@torch.no_grad()
def test_weights_load_strictly_from_a_local_file(net, tmp_path, monkeypatch):
    path = tmp_path / "pt_inception.pth"
    torch.save(net.state_dict(), path)
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    loaded = load_fid_inception(str(path))
    assert torch.allclose(loaded(images), net(images))
    monkeypatch.setenv(WEIGHTS_ENV, str(path))
    assert load_fid_inception() is not None
    state = net.state_dict()
    state.pop("fc.bias")
    torch.save(state, path)
    with pytest.raises(RuntimeError, match="fc.bias"):
        load_fid_inception(str(path))


def test_no_weights_file_means_none(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert load_fid_inception() is None
    assert load_fid_inception(str(tmp_path / "missing.pth")) is None
