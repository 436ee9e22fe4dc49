"""ganforge's tar reader yields exactly the samples WebDataset's does, for the shards it
writes and for tar files from other writers (long names in GNU and pax form), and hands a
truncated or corrupt shard to the handler after the samples before the damage."""

import io
import tarfile

import pytest
import webdataset as wds

from pipelines.data.tar import TarError, tar_samples


def _keep(sample):
    return {k: v for k, v in sample.items() if k != "__local_path__"}


def test_the_samples_of_real_shards_are_webdatasets(digit_shards):
    urls = [{"url": str(p)} for p in sorted(digit_shards.glob("*.tar"))]
    ours = list(tar_samples(urls, handler=wds.reraise_exception))
    theirs = [_keep(s) for s in wds.tarfile_samples(iter(urls), handler=wds.reraise_exception)]
    assert len(ours) == 1797 and ours == theirs


@pytest.mark.parametrize("form", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_long_names_and_every_tar_format_read_alike(tmp_path, form):
    shard = tmp_path / "other.tar"
    folder = "d" * 120 if form != tarfile.USTAR_FORMAT else "d" * 90  # ustar: prefix + name
    with tarfile.open(shard, "w", format=form) as tar:
        for key in ("a", "b"):
            for ext, data in (("png", key.encode() * 3), ("cls", b"7")):
                info = tarfile.TarInfo(f"{folder}/{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    ours = list(tar_samples([{"url": str(shard)}], handler=wds.reraise_exception))
    theirs = [_keep(s) for s in wds.tarfile_samples(iter([{"url": str(shard)}]), handler=wds.reraise_exception)]
    assert ours == theirs and [s["__key__"] for s in ours] == [f"{folder}/a", f"{folder}/b"]


def test_a_damaged_shard_goes_to_the_handler_after_its_good_samples(digit_shards, tmp_path):
    whole = (digit_shards / "image-000000.tar").read_bytes()
    errors = []

    def count(exc):
        errors.append(exc)
        return True

    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole[: len(whole) // 2])  # a download that stopped half way
    got = list(tar_samples([{"url": str(cut)}, {"url": str(digit_shards / "image-000001.tar")}], handler=count))
    assert len(errors) == 1 and isinstance(errors[0], TarError) and str(cut) in errors[0].args
    assert 90 <= sum(s["__url__"] == str(cut) for s in got) < 200  # what came before the cut
    assert sum(s["__url__"].endswith("image-000001.tar") for s in got) == 200  # the next shard whole

    flipped = bytearray(whole)
    flipped[10] ^= 0xFF  # inside the first header's name: its checksum no longer adds up
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(TarError):
        list(tar_samples([{"url": str(bad)}], handler=wds.reraise_exception))
