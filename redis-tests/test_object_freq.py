"""OBJECT FREQ: Redis's logarithmic, decaying access counter, kept under an LFU policy."""
import pytest
import redis


def test_freq_needs_an_lfu_policy(spawn):
    c = spawn("--maxmemory-policy", "noeviction").client()
    c.set("k", "v")
    with pytest.raises(redis.ResponseError, match="An LFU maxmemory policy is not selected"):
        c.object("freq", "k")


def test_freq_starts_at_five_and_grows_logarithmically(spawn):
    c = spawn("--maxmemory-policy", "allkeys-lfu").client()
    c.set("hot", "v")
    c.set("cold", "v")
    assert c.object("freq", "hot") == 5
    p = c.pipeline(transaction=False)
    for _ in range(300):
        p.get("hot")
    p.execute()
    hot = c.object("freq", "hot")
    # redis-server 7.0 reads 12-14 after 200-300 accesses: each step gets ten times rarer.
    assert 9 <= hot <= 20, hot
    assert c.object("freq", "cold") == 5
    assert c.object("freq", "missing") is None


def test_freq_follows_config_set(spawn):
    c = spawn("--maxmemory-policy", "noeviction").client()
    c.set("k", "v")
    c.config_set("maxmemory-policy", "volatile-lfu")
    for _ in range(50):
        c.get("k")
    assert c.object("freq", "k") > 5
