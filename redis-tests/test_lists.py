"""List commands, checked against Debian's redis-server: the same random command sequences go
to both servers and every reply must match."""
import random
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import redis


@pytest.fixture(scope="module")
def real_redis():
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is needed for the differential list tests")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = tempfile.mkdtemp(prefix="locus-ref-redis-")
    p = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", d],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c = redis.Redis(port=port)
    for _ in range(100):
        try:
            c.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield c
    p.terminate()
    p.wait()


def reply(c, *args):
    try:
        return ("ok", c.execute_command(*args))
    except redis.ResponseError as e:
        return ("err", str(e))


def random_command(rng):
    keys = ["l1", "l2", "s"]
    vals = ["a", "b", "c", "a"]
    k = rng.choice(keys)
    n = lambda: rng.randint(-4, 4)  # noqa: E731
    return rng.choice([
        ("LPUSH", k, *rng.sample(vals, rng.randint(1, 3))),
        ("RPUSH", k, *rng.sample(vals, rng.randint(1, 3))),
        ("LPUSHX", k, rng.choice(vals)),
        ("RPUSHX", k, rng.choice(vals)),
        ("LPOP", k),
        ("RPOP", k),
        ("LPOP", k, rng.randint(0, 3)),
        ("RPOP", k, rng.randint(0, 3)),
        ("LLEN", k),
        ("LRANGE", k, n(), n()),
        ("LINDEX", k, n()),
        ("LSET", k, n(), rng.choice(vals)),
        ("LREM", k, n(), rng.choice(vals)),
        ("LTRIM", k, n(), n()),
        ("LINSERT", k, rng.choice(["BEFORE", "AFTER"]), rng.choice(vals), "z"),
        ("LPOS", k, rng.choice(vals)),
        ("LPOS", k, rng.choice(vals), "RANK", rng.choice([1, 2, -1, -2]), "COUNT", rng.randint(0, 3)),
        ("LMOVE", k, rng.choice(keys), rng.choice(["LEFT", "RIGHT"]), rng.choice(["LEFT", "RIGHT"])),
        ("LMPOP", 2, "l1", "l2", rng.choice(["LEFT", "RIGHT"]), "COUNT", rng.randint(1, 3)),
        ("EXISTS", k),
        ("TYPE", k),
        ("SET", "s", "string"),
    ])


@pytest.mark.parametrize("seed", range(20))
def test_random_sequences_match_redis(r2, real_redis, seed):
    rng = random.Random(seed)
    real_redis.flushall()
    r2.flushall()
    for _ in range(150):
        cmd = random_command(rng)
        want = reply(real_redis, *cmd)
        got = reply(r2, *cmd)
        if isinstance(want[1], bytes):
            want = (want[0], want[1].decode())
        if want[0] == "ok" and isinstance(want[1], list):
            want = ("ok", [x.decode() if isinstance(x, bytes) else ([y.decode() for y in x] if isinstance(x, list) else x) for x in want[1]])
        assert got == want, f"{cmd}: Locus {got} vs Redis {want}"


def test_errors(r2):
    r2.rpush("l", "a")
    with pytest.raises(redis.ResponseError, match="index out of range"):
        r2.lset("l", 5, "x")
    with pytest.raises(redis.ResponseError, match="no such key"):
        r2.lset("missing", 0, "x")
    with pytest.raises(redis.ResponseError, match="RANK can't be zero"):
        r2.execute_command("LPOS", "l", "a", "RANK", 0)
    with pytest.raises(redis.ResponseError, match="must be positive"):
        r2.execute_command("LPOP", "l", -1)
    r2.set("s", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r2.lpush("s", "a")
    assert r2.object("encoding", "l") == "quicklist"  # every Redis 7.0 list

