"""`ganforge data shard`: real images in, real tar shards out; bad files skipped and listed;
nothing half-written; an existing output is never silently replaced."""

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from pipelines.cli.main import main
from pipelines.data.loader import read_images
from pipelines.data.manifest import DataError, read_dataset
from pipelines.data.shard import ShardOptions, write_shards


def _members(path):
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def _mixed_folder(root):
    """Images of every awkward kind, plus files that are not images."""
    rng = np.random.default_rng(0)
    (root / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (40, 70, 3), np.uint8)).save(root / "wide.png")
    Image.fromarray(rng.integers(0, 255, (90, 33), np.uint8), "L").save(root / "sub" / "gray.jpg")
    Image.fromarray(rng.integers(0, 255, (50, 50, 4), np.uint8), "RGBA").save(root / "sub" / "alpha.png")
    Image.fromarray(rng.integers(0, 65535, (31, 17), np.uint16)).save(root / "sub" / "deeper" / "sixteen.png")
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).save(root / "sub" / "deeper" / "photo.webp")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (root / "notes.jpg").write_text("a text file with an image extension")
    (root / "readme.txt").write_text("ignored: not an image extension")
    return 5, {"broken.png", "notes.jpg"}


def test_every_readable_image_becomes_a_sample_and_bad_files_are_listed(tmp_path):
    good, bad = _mixed_folder(tmp_path / "src")
    manifest = write_shards(
        {"image": tmp_path / "src"},
        tmp_path / "out",
        ShardOptions(size=32, channels="RGB", shard_size=2, progress=False),
    )
    domain = manifest["domains"]["image"]
    assert manifest["images"] == domain["count"] == good
    assert manifest["shards"] == 3 and [s["count"] for s in domain["shards"]] == [2, 2, 1]
    assert {s["file"] for s in domain["skipped"]} == bad and manifest["skipped_count"] == 2
    assert all(s["reason"].startswith("not a readable image") for s in domain["skipped"])
    assert (manifest["resolution"], manifest["channel_mode"]) == (32, "RGB")
    assert domain["source"] == str((tmp_path / "src").resolve())
    sources = set()
    for shard in domain["shards"]:
        members = _members(tmp_path / "out" / shard["name"])
        for name, data in members.items():
            if name.endswith(".png"):
                with Image.open(io.BytesIO(data)) as image:
                    assert image.size == (32, 32) and image.mode == "RGB"
            else:
                sources.add(data.decode())
    assert sources == {"wide.png", "sub/gray.jpg", "sub/alpha.png", "sub/deeper/sixteen.png", "sub/deeper/photo.webp"}
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == manifest


def test_sixteen_bit_images_keep_their_tones(tmp_path):
    (tmp_path / "src").mkdir()
    Image.fromarray(np.full((20, 20), 32768, np.uint16)).save(tmp_path / "src" / "mid.png")
    write_shards({"image": tmp_path / "src"}, tmp_path / "out", ShardOptions(size=8, channels="L", progress=False))
    png = next(v for k, v in _members(tmp_path / "out" / "image-000000.tar").items() if k.endswith(".png"))
    assert abs(int(np.asarray(Image.open(io.BytesIO(png))).mean()) - 128) <= 1  # mid-grey, not clipped white


def test_existing_output_is_refused_then_replaced_with_overwrite(tmp_path, digits_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    opts = ShardOptions(size=16, channels="L", shard_size=500, progress=False)
    with pytest.raises(DataError, match="already exists; pass --overwrite"):
        write_shards({"image": digits_dir}, out, opts)
    assert (out / "precious.txt").read_text() == "keep me"
    write_shards({"image": digits_dir}, out, ShardOptions(**{**opts.__dict__, "overwrite": True}))
    assert not (out / "precious.txt").exists() and read_dataset(out).domain("image").count == 1797


def test_a_failed_run_leaves_nothing_behind(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "fake.png").write_text("not an image")
    with pytest.raises(DataError, match="none of the 1 files .* is a readable image"):
        write_shards({"image": tmp_path / "src"}, tmp_path / "out", ShardOptions(progress=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no output, no temp folder


def test_cli_reports_bad_input_in_one_line_without_traceback(tmp_path, capsys):
    code = main(["data", "shard", "--src", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ganforge: error: image folder") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_shards_a_folder_and_reports_skips(tmp_path, capsys):
    _mixed_folder(tmp_path / "src")
    assert main(["data", "shard", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "o"), "--size", "16"]) == 0
    out = capsys.readouterr().out
    assert "image: 5 images in 1 shard(s), 2 skipped" in out and "skipped broken.png" in out


def test_cli_shards_two_unpaired_domains_of_different_sizes(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for domain, count in (("a", 7), ("b", 3)):
        (tmp_path / domain).mkdir()
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (20, 30, 3), np.uint8)).save(tmp_path / domain / f"{i}.png")
    argv = [
        "data",
        "shard",
        "--domain-a",
        str(tmp_path / "a"),
        "--domain-b",
        str(tmp_path / "b"),
        "--out",
        str(tmp_path / "pairs"),
        "--size",
        "16",
        "--shard-size",
        "4",
    ]
    assert main(argv) == 0
    assert "A: 7 images in 2 shard(s)" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "pairs" / "manifest.json").read_text())
    assert {d: manifest["domains"][d]["count"] for d in ("A", "B")} == {"A": 7, "B": 3}
    ds = read_dataset(tmp_path / "pairs")
    assert ds.domain("A").count == 7 and ds.domain("B").count == 3 and ds.resolution == 16

    assert main(["data", "shard", "--domain-a", str(tmp_path / "a"), "--out", str(tmp_path / "x")]) == 2
    assert "needs both --domain-a and --domain-b" in capsys.readouterr().err


def test_holdout_split_is_kept_out_of_training(digits_dir, tmp_path):
    manifest = write_shards(
        {"image": digits_dir},
        tmp_path / "s",
        ShardOptions(size=16, channels="L", shard_size=500, holdout=200, progress=False),
    )
    ds = read_dataset(tmp_path / "s")
    assert manifest["domains"]["image"]["holdout"]["count"] == 200 and ds.domain("image").count == 1597
    train_names = set(read_images(ds.domain("image"), 0, 16, 1)[1])
    held_images, held_names = read_images(ds.holdout("image"), 0, 16, 1)
    assert len(held_names) == 200 and held_images.shape == (200, 1, 16, 16)
    assert not train_names & set(held_names) and len(train_names | set(held_names)) == 1797
    plain = write_shards({"image": digits_dir}, tmp_path / "p", ShardOptions(size=16, channels="L", progress=False))
    assert plain["holdout"] == 0 and read_dataset(tmp_path / "p").holdout("image") is None


def test_paired_domains_hold_out_the_same_names(tmp_path):
    rng = np.random.default_rng(0)
    for domain in ("a", "b"):
        (tmp_path / domain).mkdir()
        for i in range(20):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), np.uint8)).save(tmp_path / domain / f"{i:02d}.png")
    write_shards(
        {"A": tmp_path / "a", "B": tmp_path / "b"},
        tmp_path / "s",
        ShardOptions(size=16, holdout=5, seed=3, progress=False),
    )
    ds = read_dataset(tmp_path / "s")
    names = {d: read_images(ds.holdout(d), 0, 16, 3)[1] for d in "AB"}
    assert len(names["A"]) == 5 and sorted(names["A"]) == sorted(names["B"])
    with pytest.raises(DataError, match="--holdout 20 leaves no training images in domain A"):
        write_shards(
            {"A": tmp_path / "a", "B": tmp_path / "b"},
            tmp_path / "x",
            ShardOptions(size=16, holdout=20, progress=False),
        )


def test_an_empty_folder_or_an_empty_shard_list_fails_clearly(tmp_path, digits_dir, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["data", "shard", "--src", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no images (.png, .jpg, .jpeg, .webp) found under" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    write_shards({"image": digits_dir}, tmp_path / "s", ShardOptions(size=16, channels="L", progress=False))
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    manifest["domains"]["image"]["shards"] = []
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="domain 'image' has no shards"):
        read_dataset(tmp_path / "s")
