"""The shard coverage a run logs (data/shards_by_rank.json): one epoch's shards per rank.
Across real nodes it is checked in tests/test_cluster_jobs_e2e.py."""

from pipelines.core.coverage import ShardCoverage, shard_of


def test_keys_name_their_shard_file():
    assert shard_of("/data/shards/image-000003.tar#digit_0042") == "image-000003.tar"
    assert shard_of("pipe:curl -s http://host/a/b-000001.tar#k") == "b-000001.tar"


def test_only_the_recorded_epoch_counts_and_every_domain_is_kept():
    coverage = ShardCoverage(epoch=1)
    coverage.add({"keys": {"A": ["/s/A-0.tar#x"], "B": ["/s/B-0.tar#y"]}}, epoch=0)  # an earlier epoch's tail
    coverage.add({"keys": {"A": ["/s/A-1.tar#x", "/s/A-1.tar#z"], "B": ["/s/B-2.tar#y"]}}, epoch=1)
    coverage.add({"keys": {"A": ["/s/A-3.tar#x"], "B": ["/s/B-3.tar#y"]}}, epoch=2)
    report = coverage.gather(rank=0, node="n0", complete=True)  # no process group: this rank alone
    assert report == {
        "epoch": 1,
        "complete": True,
        "ranks": [{"rank": 0, "node": "n0", "shards": {"A": ["A-1.tar"], "B": ["B-2.tar"]}}],
    }
