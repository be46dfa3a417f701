"""Set commands, checked against Debian's redis-server with random command sequences (members
compared as sets, random picks by size and membership)."""
import random

import pytest
import redis

from test_lists import real_redis  # noqa: F401  (the reference redis-server fixture)


def reply(c, *args):
    try:
        return ("ok", normalise(c.execute_command(*args)))
    except redis.ResponseError as e:
        return ("err", str(e))


def normalise(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, (set, list)) and all(isinstance(x, (bytes, str)) for x in v):
        return sorted(x.decode() if isinstance(x, bytes) else x for x in v)
    if isinstance(v, list):
        return [normalise(x) for x in v]
    return v


def random_command(rng):
    keys = ["s1", "s2", "s3", "str"]
    vals = ["a", "b", "c", "1", "2"]
    k = rng.choice(keys)
    pick = lambda: rng.sample(vals, rng.randint(1, 3))  # noqa: E731
    return rng.choice([
        ("SADD", k, *pick()),
        ("SREM", k, *pick()),
        ("SMEMBERS", k),
        ("SISMEMBER", k, rng.choice(vals)),
        ("SMISMEMBER", k, *pick()),
        ("SCARD", k),
        ("SMOVE", k, rng.choice(keys), rng.choice(vals)),
        ("SINTER", *rng.sample(keys[:3], 2)),
        ("SUNION", *rng.sample(keys[:3], 2)),
        ("SDIFF", *rng.sample(keys[:3], 2)),
        ("SINTERSTORE", "dst", *rng.sample(keys, 2)),
        ("SUNIONSTORE", "dst", *rng.sample(keys[:3], 2)),
        ("SDIFFSTORE", "dst", *rng.sample(keys[:3], 2)),
        ("SINTERCARD", 2, *rng.sample(keys[:3], 2), "LIMIT", rng.randint(0, 2)),
        ("SMEMBERS", "dst"),
        ("TYPE", k),
        ("SET", "str", "x"),
    ])


@pytest.mark.parametrize("seed", range(20))
def test_random_sequences_match_redis(r2, real_redis, seed):  # noqa: F811
    rng = random.Random(seed)
    real_redis.flushall()
    r2.flushall()
    for _ in range(150):
        cmd = random_command(rng)
        assert reply(r2, *cmd) == reply(real_redis, *cmd), cmd


def test_random_picks(r2):
    r2.sadd("s", *"abcde")
    assert r2.srandmember("s") in set("abcde")
    assert len(set(r2.srandmember("s", 3))) == 3
    assert len(r2.srandmember("s", -8)) == 8
    popped = r2.spop("s", 2)
    assert len(popped) == 2 and r2.scard("s") == 3
    assert not set(popped) & r2.smembers("s")
    cursor, members = r2.sscan("s", 0)
    assert cursor == 0 and set(members) == r2.smembers("s")
    r2.spop("s", 10)
    assert r2.exists("s") == 0
    assert r2.object("encoding", "missing") is None
    r2.sadd("ints", 1, 2, 3)
    assert r2.object("encoding", "ints") == "intset"
