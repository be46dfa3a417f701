"""Keyspace notifications against a stock redis-server 7.0: the same commands on both servers
publish the same `__keyspace@db__` and `__keyevent@db__` messages in the same order, for every
class (generic, strings, lists, sets, sorted sets, hashes, streams, expired, evicted, new keys)
and flag mask; CONFIG GET shows the flags as Redis prints them; the AI types announce their
events (`ai.tensorset`, `ai.modelstore`, `ai.modeldel`, `ai.modelexecute`) in class `d`."""

import os
import time

import pytest
import redis

from conftest import reply_or_error as reply

MODELS = os.path.join(os.path.dirname(__file__), "models")

SEQUENCE = [
    ("SET", "s", "1"), ("SET", "s", "2", "EX", 100), ("SETNX", "s2", "x"), ("SETEX", "s3", 100, "v"),
    ("MSET", "m1", "a", "m2", "b"), ("GETSET", "s", "3"), ("APPEND", "s", "x"), ("SETRANGE", "s", 1, "yy"),
    ("INCR", "n"), ("INCRBY", "n", 5), ("DECR", "n"), ("INCRBYFLOAT", "f", "1.5"), ("GETEX", "s", "EX", 50),
    ("GETEX", "s", "PERSIST"), ("GETEX", "s", "PERSIST"), ("GETDEL", "s2"), ("EXPIRE", "m1", 100),
    ("PERSIST", "m1"), ("PERSIST", "m1"), ("PEXPIRE", "m2", -1), ("DEL", "m1", "missing", "n"),
    ("RENAME", "f", "f2"), ("COPY", "f2", "f3"), ("UNLINK", "f2", "f3"),
    ("RPUSH", "l", "a", "b", "c"), ("LPUSH", "l", "z"), ("LPUSHX", "nol", "x"), ("LSET", "l", 0, "y"),
    ("LINSERT", "l", "BEFORE", "b", "q"), ("LREM", "l", 0, "q"), ("LTRIM", "l", 0, 1), ("LPOP", "l"),
    ("RPOP", "l"), ("RPUSH", "l", "a", "b"), ("LMOVE", "l", "l2", "LEFT", "RIGHT"), ("RPOPLPUSH", "l", "l2"),
    ("SADD", "st", "a", "b", "c"), ("SADD", "st", "a"), ("SREM", "st", "a"), ("SMOVE", "st", "st2", "b"),
    ("SPOP", "st"), ("SADD", "x1", 1, 2), ("SADD", "x2", 2, 3), ("SINTERSTORE", "x3", "x1", "x2"),
    ("SUNIONSTORE", "x3", "x1", "x2"), ("SDIFFSTORE", "x3", "x1", "x1"),
    ("ZADD", "z", 1, "a", 2, "b", 3, "c"), ("ZADD", "z", 1, "a"), ("ZADD", "z", "INCR", 5, "a"),
    ("ZINCRBY", "z", 1, "b"), ("ZREM", "z", "c", "nope"), ("ZPOPMIN", "z"), ("ZADD", "z", 4, "d", 5, "e"),
    ("ZREMRANGEBYSCORE", "z", 4, 4), ("ZREMRANGEBYRANK", "z", 0, 0), ("ZADD", "z", 1, "a"),
    ("ZREMRANGEBYLEX", "z", "-", "+"), ("ZADD", "z", 1, "a", 2, "b"), ("ZUNIONSTORE", "zu", 1, "z"),
    ("ZINTERSTORE", "zu", 2, "z", "nokey"), ("ZRANGESTORE", "zr", "z", 0, 0), ("ZMPOP", 1, "z", "MAX"),
    ("HSET", "h", "a", 1, "b", 2), ("HSETNX", "h", "c", 3), ("HSETNX", "h", "c", 4), ("HINCRBY", "h", "a", 2),
    ("HINCRBYFLOAT", "h", "b", "0.5"), ("HDEL", "h", "a", "zz"), ("HDEL", "h", "b", "c"),
    ("XADD", "x", "1-1", "f", "v"), ("XADD", "x", "MAXLEN", 1, "2-1", "f", "v"), ("XDEL", "x", "2-1"),
    ("XADD", "x", "3-1", "f", "v"), ("XTRIM", "x", "MAXLEN", 0), ("XGROUP", "CREATE", "x", "g", "$"),
    ("XGROUP", "SETID", "x", "g", "0"), ("XGROUP", "CREATECONSUMER", "x", "g", "c"),
    ("XGROUP", "CREATECONSUMER", "x", "g", "c"), ("XGROUP", "DELCONSUMER", "x", "g", "c"),
    ("XGROUP", "DESTROY", "x", "g"),
    ("XGROUP", "CREATE", "x", "g2", "0"), ("XADD", "x", "9-1", "f", "v"),
    ("XREADGROUP", "GROUP", "g2", "alice", "STREAMS", "x", ">"),
    ("XCLAIM", "x", "g2", "mike", 0, "9-1", "FORCE"), ("XAUTOCLAIM", "x", "g2", "alice", 0, "0"),
    ("XGROUP", "DELCONSUMER", "x", "g2", "lee"),
    ("SETBIT", "b", 7, 1), ("SETBIT", "b", 7, 1), ("BITOP", "AND", "b2", "b", "b"),
    ("BITOP", "AND", "b2", "nokey"), ("BITFIELD", "b", "SET", "u8", 0, 255), ("BITFIELD", "b", "GET", "u8", 0),
    ("PFADD", "hl", "a", "b"), ("PFADD", "hl", "a"), ("PFMERGE", "hl2", "hl"),
    ("GEOADD", "g", 13.36, 38.11, "p"), ("GEOSEARCHSTORE", "gs", "g", "FROMLONLAT", 13.36, 38.11, "BYRADIUS", 10, "km"),
    ("GEORADIUS", "g", 13.36, 38.11, 10, "km", "STORE", "gr"),
    ("GEOSEARCHSTORE", "gs", "g", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "km"),
]


def collect(sub):
    out = []
    deadline = time.time() + 1.0
    while time.time() < deadline:
        m = sub.get_message(timeout=0.05)
        if m is None:
            if out:
                # Quiet for a moment after messages came: done.
                m = sub.get_message(timeout=0.2)
                if m is None:
                    break
            else:
                continue
        if m["type"] == "pmessage":
            out.append((m["channel"], m["data"]))
    return out


def events(port, flags, commands):
    c = redis.Redis(port=port)
    c.flushall()
    c.config_set("notify-keyspace-events", flags)
    sub = c.pubsub()
    sub.psubscribe("__key*__:*")
    sub.get_message(timeout=1)
    for cmd in commands:
        reply(c, *cmd)
    got = collect(sub)
    sub.close()
    c.config_set("notify-keyspace-events", "")
    return got


@pytest.mark.parametrize("flags", ["KEA", "KA", "EA", "Eg", "K$", "El", "Ks", "Ez", "Kh", "Et", "En", "KEA$lshzgn"])
def test_events_match_redis(ref_servers, flags):
    mine = events(ref_servers[0], flags, SEQUENCE)
    theirs = events(ref_servers[1], flags, SEQUENCE)
    assert mine == theirs
    if flags in ("KEA",):
        assert len(mine) > 100


def next_event(sub, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = sub.get_message(timeout=0.2)
        if m and m["type"] == "pmessage":
            return m["channel"], m["data"]
    return None


def test_expired_and_evicted_events(ref_servers):
    for port in ref_servers:
        c = redis.Redis(port=port)
        c.flushall()
        c.config_set("notify-keyspace-events", "Ex")
        sub = c.pubsub()
        sub.psubscribe("*")
        sub.get_message(timeout=1)
        c.psetex("foo", 100, 1)
        # Active expiry finds it (nobody reads the key).
        assert next_event(sub) == (b"__keyevent@0__:expired", b"foo"), port
        c.config_set("notify-keyspace-events", "Ee")
        c.config_set("maxmemory-policy", "allkeys-lru")
        c.set("bar", "x")
        c.config_set("maxmemory", 1)
        # Lowering the limit evicts at once, without another command.
        got = next_event(sub)
        c.config_set("maxmemory", 0)
        c.config_set("maxmemory-policy", "noeviction")
        c.config_set("notify-keyspace-events", "")
        sub.close()
        assert got == (b"__keyevent@0__:evicted", b"bar"), port


def test_flags_are_shown_as_redis_shows_them(ref_servers):
    for given in ["gKE", "$lshzxeKE", "KA", "EA", "AKEmn", "Kd", "", "KEg$lshzxetd"]:
        got = [redis.Redis(port=p).config_set("notify-keyspace-events", given) and
               redis.Redis(port=p).config_get("notify-keyspace-events") for p in ref_servers]
        assert got[0] == got[1], given
    errs = [reply(redis.Redis(port=p), "CONFIG", "SET", "notify-keyspace-events", "KQ") for p in ref_servers]
    assert errs[0] == errs[1]
    for p in ref_servers:
        redis.Redis(port=p).config_set("notify-keyspace-events", "")


def test_ai_events(ref_servers):
    c = redis.Redis(port=ref_servers[0])
    c.flushall()
    c.config_set("notify-keyspace-events", "KEd")
    sub = c.pubsub()
    sub.psubscribe("__keyevent@0__:ai.*")
    sub.get_message(timeout=1)
    with open(os.path.join(MODELS, "add.onnx"), "rb") as f:
        blob = f.read()
    c.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", blob)
    c.execute_command("AI.TENSORSET", "x", "FLOAT", 2, 2, "VALUES", 1, 2, 3, 4)
    c.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "x", "x", "OUTPUTS", 1, "y")
    c.execute_command("AI.MODELDEL", "m")
    got = collect(sub)
    c.config_set("notify-keyspace-events", "")
    sub.close()
    assert got == [(b"__keyevent@0__:ai.modelstore", b"m"), (b"__keyevent@0__:ai.tensorset", b"x"),
                   (b"__keyevent@0__:ai.modelexecute", b"y"), (b"__keyevent@0__:ai.modeldel", b"m")]
