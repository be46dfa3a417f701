"""MIGRATE between Locus and stock redis-server, both ways: values, expiries, COPY, REPLACE,
KEYS, AUTH, and the errors (NOKEY, a busy key on the target, a target that is not there)."""

import socket

import pytest
import redis



def clients(ports):
    return [redis.Redis(port=p) for p in ports]


@pytest.mark.parametrize("direction", ["locus->redis", "redis->locus"])
def test_migrate_moves_values_and_expiries(ref_servers, direction):
    pair = ref_servers
    src_port, dst_port = pair if direction == "locus->redis" else pair[::-1]
    src, dst = clients((src_port, dst_port))
    for c in (src, dst):
        c.flushall()
    src.set("s", "v")
    src.rpush("l", *range(50))
    src.hset("h", mapping={"a": 1, "b": "x" * 100})
    src.zadd("z", {"m": 1.5})
    src.sadd("set", *range(20))
    src.set("ttl", "t", px=60000)
    assert src.execute_command("MIGRATE", "127.0.0.1", dst_port, "s", 0, 5000) == b"OK"
    assert not src.exists("s") and dst.get("s") == b"v"
    assert src.execute_command("MIGRATE", "127.0.0.1", dst_port, "", 3, 5000, "COPY",
                               "KEYS", "l", "h", "z", "set", "ttl", "missing") == b"OK"
    dst3 = redis.Redis(port=dst_port, db=3)
    assert dst3.lrange("l", 0, -1) == src.lrange("l", 0, -1)
    assert dst3.hgetall("h") == src.hgetall("h")
    assert dst3.zrange("z", 0, -1, withscores=True) == [(b"m", 1.5)]
    assert dst3.smembers("set") == src.smembers("set")
    assert 50000 < dst3.pttl("ttl") <= 60000
    assert src.exists("l", "h", "z", "set", "ttl") == 5   # COPY keeps them
    # The target already has them: an error, nothing deleted here; REPLACE then works.
    with pytest.raises(redis.ResponseError, match="Target instance replied with error: BUSYKEY"):
        src.execute_command("MIGRATE", "127.0.0.1", dst_port, "l", 3, 5000)
    assert src.exists("l")
    assert src.execute_command("MIGRATE", "127.0.0.1", dst_port, "l", 3, 5000, "REPLACE") == b"OK"
    assert not src.exists("l")
    assert src.execute_command("MIGRATE", "127.0.0.1", dst_port, "nosuch", 0, 5000) == b"NOKEY"


def test_migrate_errors_match_redis(ref_servers):
    pair = ref_servers
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    outs = []
    for p, other in (pair, pair[::-1]):
        c = redis.Redis(port=p, decode_responses=True)
        c.flushall()
        c.set("k", "v")
        got = []
        for args in [("127.0.0.1", port, "k", 0, 200),
                     ("127.0.0.1", other, "k", 0, 1000, "KEYS", "k"),
                     ("127.0.0.1", other, "k", 0, 1000, "AUTH"),
                     ("127.0.0.1", other, "k", 0, 1000, "BOGUS"),
                     ("127.0.0.1", other, "k", "x", 1000),
                     ("127.0.0.1", other, "k", 0, "x"),
                     ("127.0.0.1", other, "k", 0, 1000, "AUTH", "wrong")]:
            try:
                got.append(("ok", c.execute_command("MIGRATE", *args)))
            except redis.ResponseError as e:
                got.append(("err", str(e)))
        outs.append(got)
        assert c.get("k") == "v"
    assert outs[0] == outs[1]
