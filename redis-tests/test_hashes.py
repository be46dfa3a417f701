"""Hash commands (Redis 7 semantics) with redis-py over RESP2 and RESP3."""

import pytest
import redis

from conftest import same

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_INT = "hash value is not an integer"
NOT_FLOAT = "hash value is not a float"


def expect_error(fn, *args, text=None, **kw):
    with pytest.raises(redis.ResponseError) as e:
        fn(*args, **kw)
    if text is not None:
        assert str(e.value) == text
    return str(e.value)


def arity(cmd):
    return f"wrong number of arguments for '{cmd}' command"


# ---------------------------------------------------------------- HSET / HGET / HSETNX / HMSET


def test_hset_hget(r):
    assert r.hset("h", "a", "1") == 1
    assert r.hset("h", "a", "2") == 0
    assert r.hget("h", "a") == "2"
    assert r.hset("h", mapping={"b": "x", "c": "y", "a": "3"}) == 2
    assert r.hget("h", "a") == "3"
    assert r.hget("h", "missing") is None
    assert r.hget("nokey", "a") is None
    assert r.type("h") == "hash"
    # Duplicate fields in one call count once and the last value wins.
    assert r.execute_command("HSET", "d", "f", "1", "f", "2") == 1
    assert r.hget("d", "f") == "2"


def test_hset_arity(r):
    expect_error(r.execute_command, "HSET", "h", text=arity("hset"))
    expect_error(r.execute_command, "HSET", "h", "f", text=arity("hset"))
    expect_error(r.execute_command, "HSET", "h", "f", "v", "g", text=arity("hset"))
    expect_error(r.execute_command, "HGET", "h", text=arity("hget"))
    assert r.exists("h") == 0


def test_hsetnx(r):
    assert r.hsetnx("h", "a", "1") == 1
    assert r.hsetnx("h", "a", "2") == 0
    assert r.hget("h", "a") == "1"
    assert r.hsetnx("h", "b", "") == 1
    assert r.hget("h", "b") == ""
    expect_error(r.execute_command, "HSETNX", "h", "a", text=arity("hsetnx"))


def test_hmset(r):
    assert r.execute_command("HMSET", "h", "a", "1", "b", "2") in (True, "OK")
    assert r.hmget("h", "a", "b") == ["1", "2"]
    expect_error(r.execute_command, "HMSET", "h", "x", text=arity("hmset"))
    expect_error(r.execute_command, "HMSET", "h", "x", "1", "y", text=arity("hmset"))


def test_hmget(r):
    r.hset("h", mapping={"a": "1", "b": "2"})
    assert r.hmget("h", "a", "missing", "b", "a") == ["1", None, "2", "1"]
    assert r.hmget("nokey", "a", "b") == [None, None]
    expect_error(r.execute_command, "HMGET", "h", text=arity("hmget"))


# ---------------------------------------------------------------- HGETALL / HKEYS / HVALS / HLEN


def test_hgetall(r):
    data = {f"f{i}": f"v{i}" for i in range(50)}
    r.hset("h", mapping=data)
    got = r.hgetall("h")
    assert isinstance(got, dict)
    assert got == data
    assert r.hgetall("nokey") == {}


def test_hgetall_reply_shape_resp2(raw):
    c = raw()
    c.cmd("FLUSHALL")
    c.cmd("HSET", "h", "a", "1", "b", "2")
    reply = c.cmd("HGETALL", "h")
    assert isinstance(reply, list)
    assert dict(zip(reply[0::2], reply[1::2])) == {b"a": b"1", b"b": b"2"}
    assert c.cmd("HGETALL", "nokey") == []
    c.cmd("FLUSHALL")


def test_hgetall_reply_shape_resp3(raw):
    c = raw()
    c.cmd("HELLO", "3")
    c.cmd("FLUSHALL")
    c.cmd("HSET", "h", "a", "1", "b", "2")
    c.send(b"HGETALL h\r\n")
    assert c.readline() == b"%2"
    c.buf = b"%2\r\n" + c.buf
    assert c.read() == {b"a": b"1", b"b": b"2"}
    c.send(b"HGETALL nokey\r\n")
    assert c.readline() == b"%0"
    c.cmd("FLUSHALL")


def test_hkeys_hvals_hlen(r):
    data = {"a": "1", "b": "2", "c": "3"}
    r.hset("h", mapping=data)
    keys = r.hkeys("h")
    vals = r.hvals("h")
    assert sorted(keys) == ["a", "b", "c"]
    assert sorted(vals) == ["1", "2", "3"]
    # HKEYS and HVALS walk the hash in the same order as HGETALL.
    assert [data[k] for k in keys] == vals
    assert list(r.hgetall("h").keys()) == keys
    assert r.hlen("h") == 3
    assert r.hkeys("nokey") == []
    assert r.hvals("nokey") == []
    assert r.hlen("nokey") == 0


# ---------------------------------------------------------------- HDEL / HEXISTS / HSTRLEN


def test_hdel(r):
    r.hset("h", mapping={"a": "1", "b": "2", "c": "3"})
    assert r.hdel("h", "a") == 1
    assert r.hdel("h", "a") == 0
    assert r.hdel("h", "b", "missing", "b") == 1
    assert r.hlen("h") == 1
    assert r.exists("h") == 1
    # Removing the last field removes the key.
    assert r.hdel("h", "c") == 1
    assert r.exists("h") == 0
    assert r.type("h") == "none"
    assert r.hdel("nokey", "a") == 0
    expect_error(r.execute_command, "HDEL", "h", text=arity("hdel"))


def test_hdel_last_field_clears_ttl(r):
    r.hset("h", "a", "1")
    r.expire("h", 100)
    r.hdel("h", "a")
    r.hset("h", "b", "2")
    assert r.ttl("h") == -1


def test_hexists(r):
    r.hset("h", "a", "")
    assert r.hexists("h", "a") is True
    assert r.hexists("h", "b") is False
    assert r.hexists("nokey", "a") is False


def test_hstrlen(r):
    r.hset("h", mapping={"a": "hello", "e": "", "n": 12345})
    assert r.hstrlen("h", "a") == 5
    assert r.hstrlen("h", "e") == 0
    assert r.hstrlen("h", "n") == 5
    assert r.hstrlen("h", "missing") == 0
    assert r.hstrlen("nokey", "a") == 0
    r.hset("h", "u", "héllo")
    assert r.hstrlen("h", "u") == 6


# ---------------------------------------------------------------- HINCRBY / HINCRBYFLOAT


def test_hincrby(r):
    assert r.hincrby("h", "n", 5) == 5
    assert r.hincrby("h", "n", -7) == -2
    assert r.hget("h", "n") == "-2"
    assert r.hincrby("h", "n") == -1
    r.hset("h", "big", str(2 ** 63 - 2))
    assert r.hincrby("h", "big", 1) == 2 ** 63 - 1
    expect_error(r.hincrby, "h", "big", 1, text="increment or decrement would overflow")
    r.hset("h", "small", str(-(2 ** 63)))
    expect_error(r.hincrby, "h", "small", -1, text="increment or decrement would overflow")
    assert r.hget("h", "big") == str(2 ** 63 - 1)


def test_hincrby_errors(r):
    r.hset("h", mapping={"s": "abc", "f": "1.5", "sp": " 1", "e": "", "big": "9223372036854775808"})
    for field in ("s", "f", "sp", "e", "big"):
        expect_error(r.hincrby, "h", field, 1, text=NOT_INT)
    expect_error(r.execute_command, "HINCRBY", "h", "n", "x", text="value is not an integer or out of range")
    expect_error(r.execute_command, "HINCRBY", "h", "n", "1.5", text="value is not an integer or out of range")
    expect_error(r.execute_command, "HINCRBY", "h", "n", text=arity("hincrby"))
    assert r.hexists("h", "n") is False
    assert r.hget("h", "s") == "abc"


def test_hincrbyfloat(r):
    assert r.hincrbyfloat("h", "f", 0.1) == pytest.approx(0.1)
    assert r.hget("h", "f") == "0.1"
    assert r.hincrbyfloat("h", "f", 1.5) == pytest.approx(1.6)
    assert r.hget("h", "f") == "1.6"
    r.hset("h", "i", "10")
    assert r.hincrbyfloat("h", "i", "-2.5") == 7.5
    assert r.hget("h", "i") == "7.5"
    r.hset("h", "e", "5.0e3")
    assert r.hincrbyfloat("h", "e", 1) == 5001
    assert r.hget("h", "e") == "5001"


def test_hincrbyfloat_reply_is_bulk_string(raw):
    # A bulk string in both protocols, as in Redis.
    for proto in ("2", "3"):
        c = raw()
        c.cmd("HELLO", proto)
        c.cmd("DEL", "hf")
        c.send(b"HINCRBYFLOAT hf g 3\r\n")
        assert c.readline() == b"$1"
        assert c.readline() == b"3"
        c.send(b"HINCRBYFLOAT hf g 0.5\r\n")
        assert c.readline() == b"$3"
        assert c.readline() == b"3.5"
        c.cmd("DEL", "hf")


def test_hincrbyfloat_errors(r):
    r.hset("h", mapping={"s": "abc", "e": "", "sp": " 1"})
    for field in ("s", "e", "sp"):
        expect_error(r.hincrbyfloat, "h", field, 1, text=NOT_FLOAT)
    expect_error(r.execute_command, "HINCRBYFLOAT", "h", "n", "abc", text="value is not a valid float")
    expect_error(r.execute_command, "HINCRBYFLOAT", "h", "n", "inf", text="value is NaN or Infinity")
    r.hset("h", "m", "1.7e308")
    expect_error(r.execute_command, "HINCRBYFLOAT", "h", "m", "1.7e308", text="increment would produce NaN or Infinity")
    expect_error(r.execute_command, "HINCRBYFLOAT", "h", "n", text=arity("hincrbyfloat"))
    assert r.hexists("h", "n") is False


# ---------------------------------------------------------------- types, binary safety, keyspace


def test_wrongtype(r):
    r.set("s", "v")
    calls = [
        (r.hset, ("s", "f", "v")),
        (r.hsetnx, ("s", "f", "v")),
        (r.hget, ("s", "f")),
        (r.hmget, ("s", ["f"])),
        (r.hgetall, ("s",)),
        (r.hdel, ("s", "f")),
        (r.hexists, ("s", "f")),
        (r.hlen, ("s",)),
        (r.hkeys, ("s",)),
        (r.hvals, ("s",)),
        (r.hincrby, ("s", "f", 1)),
        (r.hincrbyfloat, ("s", "f", 1.0)),
        (r.hstrlen, ("s", "f")),
    ]
    for fn, args in calls:
        expect_error(fn, *args, text=WRONGTYPE)
    expect_error(r.execute_command, "HMSET", "s", "f", "v", text=WRONGTYPE)
    assert r.get("s") == "v"
    r.hset("h", "f", "v")
    for fn, args in ((r.get, ("h",)), (r.incr, ("h",)), (r.append, ("h", "x")), (r.strlen, ("h",))):
        expect_error(fn, *args, text=WRONGTYPE)
    r.execute_command("AI.TENSORSET", "t", "FLOAT", 1)
    expect_error(r.hget, "t", "f", text=WRONGTYPE)
    expect_error(r.hset, "t", "f", "v", text=WRONGTYPE)
    assert r.set("h", "now a string") is True
    assert r.type("h") == "string"


def test_binary_safe(rb):
    field = b"f\x00\xff\r\n\x80"
    value = bytes(range(256)) * 3
    assert rb.hset(b"bin\x00key", field, value) == 1
    assert rb.hget(b"bin\x00key", field) == value
    assert rb.hgetall(b"bin\x00key") == {field: value}
    assert rb.hkeys(b"bin\x00key") == [field]
    assert rb.hstrlen(b"bin\x00key", field) == 768
    assert rb.hexists(b"bin\x00key", b"f") is False
    rb.hset(b"bin\x00key", b"", b"")
    assert rb.hget(b"bin\x00key", b"") == b""
    assert rb.hlen(b"bin\x00key") == 2
    assert rb.hdel(b"bin\x00key", field, b"") == 2
    assert rb.exists(b"bin\x00key") == 0


def test_binary_hgetall_resp3(server_port):
    c = redis.Redis(host="127.0.0.1", port=server_port, protocol=3, decode_responses=False)
    try:
        c.flushall()
        c.hset("h", mapping={b"\x00a": b"\xff", b"b": b""})
        assert c.hgetall("h") == {b"\x00a": b"\xff", b"b": b""}
    finally:
        c.close()


def test_large_hash(r):
    data = {f"field:{i}": str(i) for i in range(2000)}
    r.hset("h", mapping=data)
    assert r.hlen("h") == 2000
    assert r.hgetall("h") == data
    assert r.hmget("h", "field:0", "field:1999") == ["0", "1999"]


def test_hash_keyspace(r):
    r.hset("h", mapping={"a": "1"})
    assert r.type("h") == "hash"
    assert r.expire("h", 100) is True
    assert 99 <= r.ttl("h") <= 100
    assert r.rename("h", "h2") is True
    assert r.hget("h2", "a") == "1"
    assert r.copy("h2", "h3") is True
    r.hset("h3", "a", "changed")
    assert r.hget("h2", "a") == "1"
    assert sorted(r.scan_iter(_type="hash")) == ["h2", "h3"]
    assert r.memory_usage("h2") > 0
    assert r.delete("h2", "h3") == 2


def test_small_hashes_are_listpacks_in_insertion_order_as_in_redis(ref_pair):
    """A small hash answers HGETALL, HKEYS, HVALS and HSCAN in insertion order, as Redis's
    listpack does, also after updates that change a value's length and after deletes. It turns
    into a hash table past hash-max-listpack-entries fields or a name or value longer than
    hash-max-listpack-value bytes, and stays one when it shrinks again."""
    many = [x for k in range(513) for x in (f"f{k}", k)]
    cmds = [
        ("HSET", "h", "z", 1, "a", 2, "m", 3), ("HSET", "h", "a", "a longer value"),
        ("HDEL", "h", "z"), ("HSET", "h", "z", "0"), ("HSETNX", "h", "q", "new"),
        ("HINCRBY", "h", "n", 5), ("HINCRBYFLOAT", "h", "m", "1.5"), ("HSET", "h", "a", ""),
        ("HGETALL", "h"), ("HKEYS", "h"), ("HVALS", "h"), ("HSCAN", "h", 0),
        ("HSCAN", "h", 0, "MATCH", "[az]"), ("HMGET", "h", "a", "nope", "q"),
        ("HSTRLEN", "h", "m"), ("OBJECT", "ENCODING", "h"),
        ("HSET", "big", "a", "1", "b", "x" * 65), ("OBJECT", "ENCODING", "big"),
        ("HDEL", "big", "b"), ("OBJECT", "ENCODING", "big"), ("HGETALL", "big"),
        ("HSET", "many", *many[:1024]), ("OBJECT", "ENCODING", "many"), ("HKEYS", "many"),
        ("HSET", "many", *many[1024:]), ("OBJECT", "ENCODING", "many"), ("HLEN", "many"),
        ("HSET", "at-limit", "f", "x" * 64, "x" * 64, "v"), ("OBJECT", "ENCODING", "at-limit"),
        ("HSET", "name-too-long", "x" * 65, "1"), ("OBJECT", "ENCODING", "name-too-long"),
        ("HDEL", "h", "a", "n", "m", "z", "q"), ("EXISTS", "h"),
    ]
    for cmd in cmds:
        same(ref_pair, *cmd)


def test_hrandfield_and_hscan(r2):
    r2.hset("h", mapping={"a": "1", "b": "2", "c": "3"})
    assert r2.hrandfield("h") in {"a", "b", "c"}
    two = r2.hrandfield("h", 2)
    assert len(two) == 2 and len(set(two)) == 2
    assert len(r2.hrandfield("h", 10)) == 3
    many = r2.hrandfield("h", -7, withvalues=True)
    assert len(many) == 14
    for f, v in zip(many[::2], many[1::2]):
        assert r2.hget("h", f) == v
    assert r2.hrandfield("missing") is None
    assert r2.hrandfield("missing", 3) == []
    cursor, fields = r2.hscan("h", 0, match="[ab]")
    assert cursor == 0 and fields == {"a": "1", "b": "2"}
    assert dict(r2.hscan_iter("h")) == {"a": "1", "b": "2", "c": "3"}
    r2.set("s", "x")
    for cmd in (("HRANDFIELD", "s"), ("HSCAN", "s", 0)):
        try:
            r2.execute_command(*cmd)
            raise AssertionError("expected WRONGTYPE")
        except Exception as e:
            assert "WRONGTYPE" in str(e)
