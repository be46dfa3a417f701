"""Keyspace commands and expiry, with redis-py over RESP2 and RESP3."""

import fnmatch
import time

import pytest
import redis

from test_lists import real_redis  # noqa: F401  (module fixture: a reference redis-server)
from test_zsets import pair, pair_factory, redis_port  # noqa: F401  (fixtures)

NOT_INT = "value is not an integer or out of range"


def err_text(excinfo):
    return str(excinfo.value)


def expect_error(fn, *args, text=None, **kw):
    with pytest.raises(redis.ResponseError) as e:
        fn(*args, **kw)
    if text is not None:
        assert err_text(e) == text
    return err_text(e)


# ---------------------------------------------------------------- DEL / UNLINK / EXISTS / TYPE


def test_del(r):
    r.mset({"a": 1, "b": 2, "c": 3})
    assert r.delete("a") == 1
    assert r.delete("a") == 0
    assert r.delete("b", "c", "missing", "b") == 2
    assert r.dbsize() == 0
    expect_error(r.execute_command, "DEL", text="wrong number of arguments for 'del' command")


def test_unlink(r):
    r.mset({"a": 1, "b": 2})
    assert r.unlink("a", "b", "x") == 2
    assert r.exists("a", "b") == 0


def test_exists_counts_duplicates(r):
    r.set("a", 1)
    assert r.exists("a") == 1
    assert r.exists("a", "a", "a") == 3
    assert r.exists("a", "missing", "a") == 2
    assert r.exists("missing") == 0


def test_type(r):
    r.set("s", "v")
    r.set("n", 1)
    assert r.type("s") == "string"
    assert r.type("n") == "string"
    assert r.type("missing") == "none"


def test_type_raw_is_status(raw):
    c = raw()
    c.cmd("SET", "s", "v")
    c.cmd("DEL", "missing")
    c.send(b"TYPE s\r\nTYPE missing\r\n")
    assert c.readline() == b"+string"
    assert c.readline() == b"+none"


# ---------------------------------------------------------------- expiry


def test_expire_ttl(r):
    r.set("k", "v")
    assert r.ttl("k") == -1
    assert r.pttl("k") == -1
    assert r.ttl("missing") == -2
    assert r.pttl("missing") == -2
    assert r.expire("k", 100) is True
    assert 99 <= r.ttl("k") <= 100
    assert r.expire("missing", 100) is False
    assert r.pexpire("k", 50000) is True
    assert 49000 <= r.pttl("k") <= 50000
    assert r.ttl("k") in (49, 50)


def test_expireat_pexpireat(r):
    r.set("k", "v")
    now = int(time.time())
    assert r.expireat("k", now + 100) is True
    assert r.expiretime("k") == now + 100
    assert r.pexpiretime("k") == (now + 100) * 1000
    assert r.pexpireat("k", (now + 200) * 1000 + 123) is True
    assert r.pexpiretime("k") == (now + 200) * 1000 + 123
    assert r.expiretime("k") == now + 200
    assert r.expireat("missing", now + 100) is False


def test_expiretime_special_values(r):
    assert r.expiretime("missing") == -2
    assert r.pexpiretime("missing") == -2
    r.set("k", "v")
    assert r.expiretime("k") == -1
    assert r.pexpiretime("k") == -1


def test_expire_in_past_deletes(r):
    r.set("a", 1)
    r.set("b", 1)
    r.set("c", 1)
    assert r.expire("a", -1) is True
    assert r.exists("a") == 0
    assert r.pexpire("b", 0) is True
    assert r.exists("b") == 0
    assert r.expireat("c", int(time.time()) - 10) is True
    assert r.exists("c") == 0


def test_expire_nx_xx(r):
    r.set("k", "v")
    assert r.expire("k", 100, xx=True) is False
    assert r.ttl("k") == -1
    assert r.expire("k", 100, nx=True) is True
    assert r.expire("k", 200, nx=True) is False
    assert 99 <= r.ttl("k") <= 100
    assert r.expire("k", 200, xx=True) is True
    assert 199 <= r.ttl("k") <= 200


def test_expire_gt_lt(r):
    r.set("k", "v")
    # A key without TTL counts as infinite: GT never applies, LT always does.
    assert r.expire("k", 100, gt=True) is False
    assert r.ttl("k") == -1
    assert r.expire("k", 100, lt=True) is True
    assert r.expire("k", 50, gt=True) is False
    assert r.expire("k", 200, gt=True) is True
    assert 199 <= r.ttl("k") <= 200
    assert r.expire("k", 300, lt=True) is False
    assert r.expire("k", 10, lt=True) is True
    assert 9 <= r.ttl("k") <= 10
    assert r.pexpire("k", 5000, lt=True) is True
    assert r.pexpire("k", 1000, gt=True) is False
    now = int(time.time())
    assert r.expireat("k", now + 1000, gt=True) is True
    assert r.pexpireat("k", (now + 10) * 1000, lt=True) is True


def test_expire_option_errors(r):
    r.set("k", "v")
    expect_error(
        r.execute_command,
        "EXPIRE",
        "k",
        "10",
        "NX",
        "XX",
        text="NX and XX, GT or LT options at the same time are not compatible",
    )
    expect_error(
        r.execute_command,
        "EXPIRE",
        "k",
        "10",
        "NX",
        "GT",
        text="NX and XX, GT or LT options at the same time are not compatible",
    )
    expect_error(
        r.execute_command,
        "PEXPIRE",
        "k",
        "10",
        "GT",
        "LT",
        text="GT and LT options at the same time are not compatible",
    )
    expect_error(r.execute_command, "EXPIRE", "k", "10", "BOGUS", text="Unsupported option BOGUS")
    expect_error(r.execute_command, "EXPIRE", "k", "abc", text=NOT_INT)
    expect_error(
        r.execute_command,
        "EXPIRE",
        "k",
        "9223372036854775807",
        text="invalid expire time in 'expire' command",
    )
    expect_error(
        r.execute_command,
        "PEXPIRE",
        "k",
        "9223372036854775807",
        text="invalid expire time in 'pexpire' command",
    )
    expect_error(
        r.execute_command,
        "EXPIREAT",
        "k",
        "9223372036854775807",
        text="invalid expire time in 'expireat' command",
    )
    assert r.ttl("k") == -1


def test_persist(r):
    r.set("k", "v", ex=100)
    assert r.persist("k") is True
    assert r.ttl("k") == -1
    assert r.persist("k") is False
    assert r.persist("missing") is False


def test_set_clears_ttl(r):
    r.set("k", "v", ex=100)
    r.set("k", "v2")
    assert r.ttl("k") == -1


def test_millisecond_expiry(r):
    r.set("k", "v", px=50)
    assert r.get("k") == "v"
    time.sleep(0.12)
    assert r.get("k") is None
    assert r.exists("k") == 0
    assert r.ttl("k") == -2
    r.set("p", "v")
    r.pexpire("p", 30)
    time.sleep(0.1)
    assert r.exists("p") == 0


def test_expired_keys_invisible_to_keys_and_dbsize(r):
    r.set("live", 1)
    for i in range(10):
        r.set(f"gone{i}", 1, px=20)
    time.sleep(0.1)
    assert r.keys("*") == ["live"]
    assert r.mget([f"gone{i}" for i in range(10)]) == [None] * 10


def test_active_expiry(r):
    pipe = r.pipeline(transaction=False)
    for i in range(200):
        pipe.set(f"exp:{i}", "v", px=100)
    pipe.execute()
    assert r.dbsize() == 200
    deadline = time.time() + 1.5
    while time.time() < deadline and r.dbsize() > 0:
        time.sleep(0.1)
    # Nothing touched the keys: only the server's own expiry cycle can drop them.
    assert r.dbsize() == 0
    assert r.info("keyspace").get("db0") is None


# ---------------------------------------------------------------- KEYS / SCAN / RANDOMKEY


def test_keys_glob(r):
    r.mset({k: 1 for k in ["a", "b", "c", "d", "ab", "abc", "hello", "hallo", "hxllo", "h*llo"]})
    assert sorted(r.keys("*")) == sorted(
        ["a", "b", "c", "d", "ab", "abc", "hello", "hallo", "hxllo", "h*llo"]
    )
    assert sorted(r.keys("[a-c]")) == ["a", "b", "c"]
    assert sorted(r.keys("?")) == ["a", "b", "c", "d"]
    assert sorted(r.keys("??")) == ["ab"]
    assert sorted(r.keys("a*")) == ["a", "ab", "abc"]
    assert sorted(r.keys("h?llo")) == ["h*llo", "hallo", "hello", "hxllo"]
    assert sorted(r.keys("h[ae]llo")) == ["hallo", "hello"]
    assert sorted(r.keys("h[^e]llo")) == ["h*llo", "hallo", "hxllo"]
    assert sorted(r.keys("h\\*llo")) == ["h*llo"]
    assert r.keys("nomatch*") == []
    assert sorted(r.keys("*c")) == ["abc", "c"]


def test_scan_all_keys(r):
    keys = {f"key:{i}" for i in range(1000)}
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.set(k, "v")
    pipe.execute()
    seen = []
    cursor = 0
    rounds = 0
    while True:
        cursor, batch = r.scan(cursor=cursor, count=100)
        assert isinstance(cursor, int)
        seen.extend(batch)
        rounds += 1
        assert rounds < 1000
        if cursor == 0:
            break
    assert set(seen) == keys
    assert rounds > 1


def test_scan_iter(r):
    r.mset({f"k{i}": i for i in range(300)})
    assert set(r.scan_iter()) == {f"k{i}" for i in range(300)}


def test_scan_match(r):
    r.mset({f"user:{i}": i for i in range(200)})
    r.mset({f"item:{i}": i for i in range(200)})
    got = set(r.scan_iter(match="user:*", count=50))
    assert got == {f"user:{i}" for i in range(200)}
    got = set(r.scan_iter(match="user:1?", count=1000))
    assert got == {f"user:1{i}" for i in range(10)}


def test_scan_type(r):
    r.mset({f"s{i}": i for i in range(50)})
    assert set(r.scan_iter(_type="string")) == {f"s{i}" for i in range(50)}
    assert list(r.scan_iter(_type="hash")) == []
    assert list(r.scan_iter(_type="STRING", match="s1*")) != []


def test_scan_reply_shape(raw):
    c = raw()
    assert c.cmd("FLUSHALL") == "OK"
    c.cmd("SET", "a", "1")
    rep = c.cmd("SCAN", "0")
    assert rep == [b"0", [b"a"]]
    c.cmd("HELLO", "3")
    rep = c.cmd("SCAN", "0", "COUNT", "10")
    assert rep == [b"0", [b"a"]]


def test_scan_errors(r):
    expect_error(r.execute_command, "SCAN", "abc", text="invalid cursor")
    expect_error(r.execute_command, "SCAN", "0", "COUNT", "0", text="syntax error")
    expect_error(r.execute_command, "SCAN", "0", "COUNT", "x", text=NOT_INT)
    expect_error(r.execute_command, "SCAN", "0", "BOGUS", "x", text="syntax error")
    expect_error(r.execute_command, "SCAN", "0", "MATCH", text="syntax error")


def test_randomkey(r):
    assert r.randomkey() is None
    r.mset({"a": 1, "b": 2, "c": 3})
    seen = {r.randomkey() for _ in range(60)}
    assert seen <= {"a", "b", "c"}
    assert len(seen) >= 2


# ---------------------------------------------------------------- RENAME / COPY / MOVE


def test_rename(r):
    r.set("a", "1", ex=100)
    assert r.rename("a", "b") is True
    assert r.get("a") is None
    assert r.get("b") == "1"
    assert 99 <= r.ttl("b") <= 100
    r.set("c", "3")
    assert r.rename("b", "c")
    assert r.get("c") == "1"
    assert r.ttl("c") > 0
    assert r.rename("c", "c")
    assert r.get("c") == "1"
    expect_error(r.rename, "missing", "x", text="no such key")
    expect_error(r.rename, "missing", "missing", text="no such key")


def test_renamenx(r):
    r.set("a", "1")
    r.set("b", "2")
    assert r.renamenx("a", "b") is False
    assert r.get("a") == "1"
    assert r.renamenx("a", "c") is True
    assert r.get("c") == "1"
    assert r.exists("a") == 0
    expect_error(r.renamenx, "missing", "x", text="no such key")


def test_copy(r):
    r.set("src", "v", ex=100)
    assert r.copy("src", "dst") is True
    assert r.get("dst") == "v"
    assert 99 <= r.ttl("dst") <= 100
    r.set("src", "v2")
    assert r.copy("src", "dst") is False
    assert r.get("dst") == "v"
    assert r.copy("src", "dst", replace=True) is True
    assert r.get("dst") == "v2"
    assert r.ttl("dst") == -1
    assert r.copy("missing", "x") is False
    expect_error(r.copy, "src", "src", text="source and destination objects are the same")


def test_copy_db(r, server_port):
    r.set("k", "v")
    assert r.copy("k", "k", destination_db=1) is True
    other = redis.Redis(port=server_port, db=1, decode_responses=True)
    assert other.get("k") == "v"
    assert r.copy("k", "k", destination_db=1) is False
    r.set("k", "v2")
    assert r.copy("k", "k", destination_db=1, replace=True) is True
    assert other.get("k") == "v2"
    other.close()
    expect_error(r.execute_command, "COPY", "k", "x", "DB", "99", text="DB index is out of range")
    expect_error(r.execute_command, "COPY", "k", "x", "DB", "abc", text=NOT_INT)
    expect_error(r.execute_command, "COPY", "k", "x", "BOGUS", text="syntax error")


def test_move(r, server_port):
    r.set("k", "v", ex=100)
    assert r.move("k", 1) is True
    assert r.exists("k") == 0
    other = redis.Redis(port=server_port, db=1, decode_responses=True)
    assert other.get("k") == "v"
    assert 98 <= other.ttl("k") <= 100
    r.set("k", "again")
    assert r.move("k", 1) is False
    assert r.get("k") == "again"
    assert other.get("k") == "v"
    assert r.move("missing", 1) is False
    other.close()
    expect_error(r.move, "k", 0, text="source and destination objects are the same")
    expect_error(r.move, "k", 16, text="DB index is out of range")
    expect_error(r.execute_command, "MOVE", "k", "x", text=NOT_INT)


def test_touch(r):
    r.mset({"a": 1, "b": 2})
    assert r.touch("a", "b", "missing") == 2
    assert r.touch("missing") == 0


# ---------------------------------------------------------------- OBJECT


def test_object_encoding(r):
    r.set("i", "12345")
    assert r.object("encoding", "i") == "int"
    r.set("neg", "-9223372036854775808")
    assert r.object("encoding", "neg") == "int"
    r.set("lead", "012")
    assert r.object("encoding", "lead") == "embstr"
    r.set("flt", "1.5")
    assert r.object("encoding", "flt") == "embstr"
    r.set("e", "x" * 44)
    assert r.object("encoding", "e") == "embstr"
    r.set("raw", "x" * 45)
    assert r.object("encoding", "raw") == "raw"
    r.set("big", "99999999999999999999")
    assert r.object("encoding", "big") == "embstr"
    assert r.object("encoding", "missing") is None


def test_object_encoding_after_modification(r):
    r.set("a", "hello")
    r.append("a", "x")
    assert r.object("encoding", "a") == "raw"
    r.set("s", "hello")
    r.setrange("s", 0, "j")
    assert r.object("encoding", "s") == "raw"
    r.set("n", "10")
    r.incr("n")
    assert r.object("encoding", "n") == "int"


def test_object_refcount(r):
    r.set("s", "hello")
    assert r.object("refcount", "s") == 1
    r.set("big", "123456")
    assert r.object("refcount", "big") == 1
    assert r.object("refcount", "missing") is None


def test_object_refcount_shared_integer(r):
    # Small integers (< 10000) are shared objects in Redis with maxmemory-policy noeviction.
    r.set("small", "100")
    assert r.object("refcount", "small") == 2147483647


def test_object_idletime(r):
    r.set("k", "v")
    assert r.object("idletime", "k") == 0
    time.sleep(1.1)
    assert r.object("idletime", "k") >= 1
    r.get("k")
    assert r.object("idletime", "k") == 0
    assert r.object("idletime", "missing") is None


def test_object_idletime_not_reset_by_object(r):
    r.set("k", "v")
    time.sleep(1.1)
    r.object("encoding", "k")
    r.type("k")
    r.ttl("k")
    r.exists("k")
    assert r.object("idletime", "k") >= 1


def test_object_freq_needs_lfu(r):
    r.set("k", "v")
    expect_error(
        r.execute_command,
        "OBJECT",
        "FREQ",
        "k",
        text="An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
        "that when switching between policies at runtime LRU and LFU data will take some "
        "time to adjust.",
    )


def test_object_help_and_errors(r):
    lines = r.execute_command("OBJECT", "HELP")
    assert isinstance(lines, list) and lines[0].startswith("OBJECT <subcommand>")
    expect_error(
        r.execute_command, "OBJECT", "foo", "k", text="unknown subcommand 'foo'. Try OBJECT HELP."
    )
    expect_error(
        r.execute_command,
        "OBJECT",
        "ENCODING",
        text="wrong number of arguments for 'object|encoding' command",
    )


def test_flushall_clears_expires(r):
    r.set("k", "v", ex=100)
    r.flushall()
    r.set("k", "v")
    assert r.ttl("k") == -1


def test_hostile_glob_patterns_answer_quickly(r):
    """CVE-2022-36021: `a*a*…*b` against a long key backtracked exponentially; a huge class
    was re-parsed at every step. Every command that matches patterns answers at once."""
    key = "a" * 40
    r.set(key, 1)
    r.hset("h", key, 1)
    r.sadd("s", key)
    r.zadd("z", {key: 1})
    evil = "a*" * 20 + "b"
    config_names = list(r.config_get("*"))
    huge_class = "*[" + "abcdefghij" * 4000 + "]x"
    for pattern in (evil, huge_class, "*" * 5000 + "b", "*a" * 3000 + "b"):
        t0 = time.perf_counter()
        assert r.keys(pattern) == []
        assert r.scan(0, match=pattern, count=1000) == (0, [])
        assert r.hscan("h", 0, match=pattern) == (0, {})
        assert r.sscan("s", 0, match=pattern) == (0, [])
        assert r.zscan("z", 0, match=pattern) == (0, [])
        assert r.pubsub_channels(pattern) == []
        assert sorted(r.config_get(pattern)) == \
            sorted(n for n in config_names if fnmatch.fnmatchcase(n, pattern))
        assert time.perf_counter() - t0 < 1.0, pattern[:40]
    assert r.keys("a*a*a*a") == [key]
    p = r.pubsub()
    p.psubscribe(evil)
    t0 = time.perf_counter()
    assert r.publish(key, "x") == 0
    assert time.perf_counter() - t0 < 1.0
    p.close()


def sort_steps():
    steps = [
        ("RPUSH", "l", "3", "1", "2", "10", "-5.5"),
        ("SADD", "s", "b", "a", "c", "10", "2"),
        ("ZADD", "z", 3, "c", 1, "a", 2, "b"),
        ("RPUSH", "names", "bob", "al", "cy"),
        ("MSET", "w_bob", 3, "w_al", 1, "w_cy", 2, "o_bob", "B", "o_al", "A"),
        ("HSET", "h_bob", "age", 30, "name", "Bob"),
        ("HSET", "h_al", "age", 5, "name", "Al"),
        ("RPUSH", "bad", "x", "1"),
        ("SET", "str", "v"),
    ]
    for args in [
        ("l",), ("l", "DESC"), ("l", "LIMIT", 1, 2), ("l", "LIMIT", -1, 2), ("l", "LIMIT", 0, -1),
        ("l", "LIMIT", 10, 2), ("s", "ALPHA"), ("s", "ALPHA", "DESC", "LIMIT", 0, 3), ("z",),
        ("z", "BY", "nosort"), ("z", "BY", "nosort", "DESC"), ("z", "BY", "nosort", "LIMIT", 1, 5),
        ("names", "BY", "w_*"), ("names", "BY", "w_*", "DESC"), ("names", "ALPHA", "BY", "o_*"),
        ("names", "BY", "w_*", "GET", "#", "GET", "o_*"), ("names", "BY", "h_*->age", "GET", "h_*->name"),
        ("names", "BY", "nosort"), ("names", "BY", "nosort", "GET", "#", "GET", "w_*"),
        ("names", "GET", "nope_*", "ALPHA"), ("names", "ALPHA", "GET", "h_*->"),
        ("bad",), ("bad", "ALPHA"), ("str",), ("nokey",), ("l", "BOGUS"), ("l", "LIMIT", 1),
        ("l", "LIMIT", "x", 1), ("l", "STORE", "dst"), ("s", "BY", "nosort", "STORE", "dst2"),
        ("nokey", "STORE", "dst"),
    ]:
        steps.append(("SORT",) + args)
    steps += [("LRANGE", "dst", 0, -1), ("LRANGE", "dst2", 0, -1), ("EXISTS", "dst"),
              ("SORT_RO", "l", "DESC"), ("SORT_RO", "l", "STORE", "x")]
    return steps


def test_sort_matches_redis(pair):  # noqa: F811
    pair.play(sort_steps())
