"""Config: per-GAN defaults, dotted overrides, and clear errors naming the bad key."""

from importlib import resources

import pytest

import gan_core
from pipelines.config import ConfigError, build, flatten, load, to_dict


def test_lsgan_defaults_follow_the_paper():
    cfg = load("lsgan")
    assert (cfg.optim.lr_g, cfg.optim.lr_d, cfg.optim.beta1, cfg.optim.beta2) == (2e-4, 2e-4, 0.5, 0.999)
    assert (cfg.model.a, cfg.model.b, cfg.model.c) == (0.0, 1.0, 1.0)


def test_dotted_overrides_set_typed_values():
    cfg = load("lsgan", overrides=["optim.lr_d=4e-4", "train.workers=3", "model.a=-1", "data.hflip=true"])
    assert cfg.optim.lr_d == pytest.approx(4e-4) and isinstance(cfg.optim.lr_d, float)
    assert cfg.train.workers == 3 and cfg.model.a == -1.0 and cfg.data.hflip is True
    assert cfg.optim.lr_g == 2e-4  # untouched: the two rates are independent


def test_config_file_merges_over_defaults(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("optim:\n  lr_g: 1.0e-3\ntrain:\n  steps: 7\n")
    cfg = load("lsgan", str(path), ["train.steps=9"])
    assert cfg.optim.lr_g == 1e-3 and cfg.optim.lr_d == 2e-4 and cfg.train.steps == 9


def test_config_files_merge_in_turn_and_the_later_one_wins(tmp_path):
    (tmp_path / "demo.yaml").write_text("model:\n  ngf: 16\ndata:\n  batch_size: 4\n")
    (tmp_path / "search.yaml").write_text("data:\n  batch_size: 8\ntrain:\n  workers: 1\n")
    cfg = load("cyclegan", [str(tmp_path / "demo.yaml"), str(tmp_path / "search.yaml")])
    assert cfg.model.ngf == 16 and cfg.data.batch_size == 8 and cfg.train.workers == 1 and cfg.model.ndf == 64


def test_tree_round_trips_through_dict_and_flattens_for_mlflow():
    cfg = load("lsgan", overrides=["optim.lr_d=1e-4"])
    assert build(to_dict(cfg)) == cfg
    flat = flatten(to_dict(cfg))
    assert flat["optim.lr_d"] == 1e-4 and flat["model.ngf"] == 64 and flat["gan"] == "lsgan"


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr_dd=1e-4", "unknown config key optim.lr_dd (did you mean optim.lr_d?)"),
        ("optim.lr_d=-1e-4", "optim.lr_d must be > 0"),
        ("optim.beta1=1.5", "optim.beta1 must be in [0, 1)"),
        ("train.steps=many", "train.steps must be of type int"),
        ("train.amp=fp8", "train.amp must be one of"),
        ("train.amp=on", "train.amp must be one of"),
        ("train.compile_mode=fast", "train.compile_mode must be one of"),
        ("train.channels_last=sometimes", "train.channels_last must be one of"),
        ("data.mode=sometimes", "data.mode must be one of"),
        ("model.ngf=0", "model.ngf must be >= 1"),
        ("modle.ngf=3", "unknown config section modle (did you mean model?)"),
        ("lr_d", "not of the form key.path=value"),
    ],
)
def test_bad_values_fail_naming_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        load("lsgan", overrides=[override])
    assert message in str(info.value)


def test_on_and_off_are_words_for_switches_on_the_command_line_and_in_yaml(tmp_path):
    # YAML 1.1 reads on/off as booleans; a string setting takes them as the words.
    (tmp_path / "gpu.yaml").write_text("train:\n  channels_last: on\n")
    cfg = load("lsgan", [str(tmp_path / "gpu.yaml")], ["train.amp=off"])
    assert cfg.train.channels_last == "on" and cfg.train.amp == "off"


def test_unknown_gan_is_a_config_error_listing_the_known_ones():
    with pytest.raises(ConfigError, match="unknown GAN 'lsgann' .*did you mean 'lsgan'"):
        load("lsgann")


def test_stylegan_ada256_preset_is_nvlabs_one_gpu_256px_config():
    """The preset benchmarks/gpu.sh compares with StyleGAN2-ADA's published one-GPU rate:
    it must be that config, or the comparison means nothing."""
    preset = resources.files("pipelines.configs").joinpath("presets/stylegan-ada256.yaml")
    cfg = load("stylegan", [str(preset)])
    assert (cfg.model.channel_base, cfg.model.mapping_layers, cfg.data.batch_size) == (16384, 2, 16)
    assert cfg.optim.lr_g == cfg.optim.lr_d == 0.0025
    gan = gan_core.get("stylegan")(cfg.model, 256, 3)
    assert gan.r1_gamma(cfg.data.batch_size) == pytest.approx(0.8192)  # NVlabs' --gamma for this config


def test_run_storage_defaults_to_the_clusters_bucket_then_a_local_folder(tmp_path, monkeypatch):
    from pipelines.train.paths import STORAGE_ENV, resolved

    cfg = load("lsgan", overrides=[f"data.path={tmp_path}", f"tracking.uri=sqlite:///{tmp_path / 'm.db'}"])
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert resolved(cfg, tmp_path).train.storage_path == str(tmp_path / "ray_results")
    monkeypatch.setenv(STORAGE_ENV, "s3://bucket/ray_results")  # as ray_cluster.yaml's head sets it
    assert resolved(cfg, tmp_path).train.storage_path == "s3://bucket/ray_results"
    given = load("lsgan", overrides=[f"data.path={tmp_path}", "train.storage_path=gs://other/runs"])
    assert resolved(given, tmp_path).train.storage_path == "gs://other/runs"  # a URI stays a URI
