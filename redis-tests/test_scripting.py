"""Lua scripting (EVAL, EVALSHA, the _RO forms, SCRIPT, FUNCTION, FCALL), checked byte for byte
against Debian's redis-server 7.0 over RESP2 and RESP3 (the `pair` fixtures of test_zsets),
plus what a differential test cannot show: atomicity under concurrent clients, BUSY and SCRIPT
KILL / FUNCTION KILL, the AOF, and RedisAI commands inside scripts.
"""

import os
import random
import tempfile
import threading
import time

import numpy as np
import pytest
import redis

from conftest import RawConn, _client, encode_command
from test_lists import real_redis  # noqa: F401  (module fixture: a reference redis-server)
from test_zsets import pair, pair2, pair_factory, redis_port  # noqa: F401  (fixtures)

SCRIPTS = [
    "return 1",
    "return 3.99",
    "return -7",
    "return 'hello'",
    "return true",
    "return false",
    "return nil",
    "return {}",
    "return {1, 2, 3, 'a', {4, 5}}",
    "return {1, nil, 3}",
    "return {ok = 'FINE'}",
    "return {err = 'My Error'}",
    "return {err = 'WRONG kind'}",
    "return {double = 3.5}",
    "return redis.status_reply('DONE')",
    "return redis.error_reply('My Error')",
    "return redis.error_reply('-CODE message')",
    "return redis.error_reply('x')",
    "return redis.sha1hex('')",
    "return redis.sha1hex('Pizza & Mandolino')",
    "return #KEYS + #ARGV",
    "return {KEYS[1], ARGV[1], ARGV[2]}",
    "redis.call('set', KEYS[1], ARGV[1]); return redis.call('get', KEYS[1])",
    "return redis.call('incr', 'str')",
    "return redis.pcall('incr', 'str')",
    "local ok, e = pcall(redis.call, 'incr', 'str'); return e",
    "local ok, e = pcall(redis.call, 'incr', 'str'); return {ok and 1 or 0, type(e)}",
    "return redis.call('nosuchcommand')",
    "return redis.call('get')",
    "return redis.call()",
    "return redis.call({})",
    "return redis.call('exec')",
    "return redis.call('eval', 'return 1', 0)",
    "error('boom')",
    "local function f() error('deep') end f()",
    "return error({err = 'TABLE raised'})",
    "x = 1",
    "return undefined_global",
    "redis = nil",
    "return (",
    "return tostring(os)",
    "return cjson.encode({a = 1, b = {1, 2, 3}})",
    "return cjson.decode('[1,2,{\"a\":3}]')[3].a",
    "return bit.band(0xff, 0x0f) + bit.bor(1, 2) + bit.lshift(1, 4)",
    "return bit.tohex(65535)",
    "return string.format('%d %s', 5, 'x')",
    "return math.floor(7.9)",
    "return table.concat({'a', 'b'}, '-')",
    "redis.call('hset', 'h', 'f', 'v'); return redis.call('hgetall', 'h')",
    "redis.setresp(3); redis.call('hset', 'h', 'f', 'v'); return redis.call('hgetall', 'h')",
    "redis.setresp(3); return redis.call('get', 'nokey')",
    "return redis.call('get', 'nokey')",
    "redis.setresp(3); return true",
    "redis.setresp(3); return false",
    "redis.setresp(4)",
    "redis.call('zadd', 'z', 1.5, 'a'); return redis.call('zscore', 'z', 'a')",
    "redis.setresp(3); redis.call('zadd', 'z', 1.5, 'a'); return redis.call('zscore', 'z', 'a')",
    "redis.call('sadd', 's', 'm'); redis.setresp(3); return redis.call('smembers', 's')",
    "redis.call('select', 1); redis.call('set', 'in1', 'v'); return redis.call('get', 'in1')",
    "return redis.call('get', 'in1')",
    "return redis.call('set', 'n', 1.5)",
    "return redis.call('set', 'n', 12)",
    "return redis.REDIS_VERSION ~= nil",
    "return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}",
    "redis.log(redis.LOG_WARNING, 'from a script'); return 1",
    "#!lua flags=no-writes\nreturn redis.call('set', 'x', '1')",
    "#!lua flags=no-writes\nreturn redis.call('get', 'x')",
    "#!lua flags=bad\nreturn 1",
    "#!lua\nreturn 2",
]


def eval_steps():
    steps = [("SET", "str", "text")]
    for body in SCRIPTS:
        steps.append(("EVAL", body, 2, "k1", "k2", "a1", "a2"))
    return steps


def test_eval_matches_redis(pair):  # noqa: F811
    pair.play(eval_steps())


def test_eval_errors_match_redis(pair):  # noqa: F811
    pair.play([
        ("EVAL", "return 1", 2, "a"),
        ("EVAL", "return 1", -1),
        ("EVAL", "return 1", "x"),
        ("EVAL", "return 1"),
        ("EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", 0),
        ("EVALSHA", "short", 0),
        ("EVAL_RO", "return redis.call('set', 'x', 1)", 0),
        ("EVAL_RO", "return redis.call('get', 'x')", 0),
        ("SCRIPT", "KILL"),
        ("FUNCTION", "KILL"),
        ("SCRIPT", "FLUSH", "BAD"),
        ("SCRIPT", "NOSUCH"),
    ])


def test_script_cache_matches_redis(pair):  # noqa: F811
    body = "return {KEYS[1], ARGV[1]}"
    sha = pair.check("SCRIPT", "LOAD", body)
    sha = sha.split(b"\r\n")[1].decode()
    pair.play([
        ("EVALSHA", sha, 1, "k", "v"),
        ("EVALSHA", sha.upper(), 1, "k", "v"),
        ("EVALSHA_RO", sha, 1, "k", "v"),
        ("SCRIPT", "EXISTS", sha, "ffffffffffffffffffffffffffffffffffffffff", sha.upper()),
        ("SCRIPT", "FLUSH"),
        ("SCRIPT", "EXISTS", sha),
        ("EVALSHA", sha, 1, "k", "v"),
        ("EVAL", body, 1, "k", "v"),
        ("SCRIPT", "EXISTS", sha),
        ("SCRIPT", "FLUSH", "ASYNC"),
        ("SCRIPT", "LOAD", "return ("),
    ])


LIB = """#!lua name=mylib
local function hello(keys, args) return 'hello ' .. (args[1] or 'world') end
local function setter(keys, args) return redis.call('set', keys[1], args[1]) end
redis.register_function('hello', hello)
redis.register_function{function_name = 'ro_get', callback = function(keys) return redis.call('get', keys[1]) end, flags = {'no-writes'}, description = 'reads a key'}
redis.register_function('setter', setter)
redis.register_function('fails', function() return redis.call('nosuch') end)
"""


def test_functions_match_redis(pair):  # noqa: F811
    pair.play([
        ("FUNCTION", "FLUSH"),
        ("FUNCTION", "LOAD", LIB),
        ("FUNCTION", "LOAD", LIB),
        ("FCALL", "hello", 0),
        ("FCALL", "hello", 0, "you"),
        ("FCALL", "setter", 1, "k", "v"),
        ("FCALL", "ro_get", 1, "k"),
        ("FCALL_RO", "ro_get", 1, "k"),
        ("FCALL_RO", "setter", 1, "k", "v"),
        ("FCALL", "fails", 0),
        ("FCALL", "nosuch", 0),
        ("FCALL", "hello", 3, "a"),
        ("FCALL", "hello", -1),
        ("FUNCTION", "STATS"),
        ("FUNCTION", "LOAD", "REPLACE", LIB.replace("hello ", "hi ")),
        ("FCALL", "hello", 0),
        ("FUNCTION", "LOAD", "#!lua name=other\nredis.register_function('hello', function() return 1 end)"),
        ("FUNCTION", "LOAD", "#!lua name=empty\nlocal x = 1"),
        ("FUNCTION", "LOAD", "return 1"),
        ("FUNCTION", "LOAD", "#!lua name=bad-name\nredis.register_function('f', function() end)"),
        ("FUNCTION", "LOAD", "#!lua name=badf\nredis.register_function('bad-f', function() end)"),
        ("FUNCTION", "LOAD", "#!lua name=calls\nredis.call('ping')"),
        ("FUNCTION", "DELETE", "nosuch"),
        ("FUNCTION", "DELETE", "mylib"),
        ("FCALL", "hello", 0),
        ("FUNCTION", "LIST"),
        ("FUNCTION", "FLUSH"),
    ])


def test_function_list_matches_redis(pair):  # noqa: F811
    """One function per library: Redis lists functions and libraries in hash-table order."""
    one = "#!lua name=one\nredis.register_function{function_name='ro', callback=function(k) return 1 end, flags={'no-writes', 'allow-stale'}, description='d'}"
    pair.play([
        ("FUNCTION", "FLUSH"),
        ("FUNCTION", "LOAD", one),
        ("FUNCTION", "LIST"),
        ("FUNCTION", "LIST", "WITHCODE"),
        ("FUNCTION", "LIST", "LIBRARYNAME", "o*"),
        ("FUNCTION", "LIST", "LIBRARYNAME", "x*"),
        ("FUNCTION", "LIST", "LIBRARYNAME"),
        ("FUNCTION", "LIST", "BOGUS"),
        ("FUNCTION", "STATS"),
    ])


def test_function_dump_restore_matches_redis(pair2):  # noqa: F811
    p = pair2
    p.check("FUNCTION", "FLUSH")
    p.check("FUNCTION", "LOAD", LIB)
    # Each server restores its own dump, and the other's: the payloads are interchangeable.
    dumps = {}
    for name, conn in (("locus", p.locus), ("redis", p.redis)):
        dumps[name] = conn.cmd("FUNCTION", "DUMP")
        assert isinstance(dumps[name], bytes)
    for payload in (dumps["redis"], dumps["locus"]):
        p.play([
            ("FUNCTION", "RESTORE", payload),
            ("FUNCTION", "RESTORE", payload, "REPLACE"),
            ("FUNCTION", "FLUSH"),
            ("FUNCTION", "RESTORE", payload),
            ("FCALL", "hello", 0),
            ("FUNCTION", "RESTORE", payload, "FLUSH"),
            ("FUNCTION", "RESTORE", payload, "BOGUS"),
            ("FUNCTION", "RESTORE", payload[:-1] + bytes([payload[-1] ^ 1])),
            ("FUNCTION", "RESTORE", b"short"),
        ])


def test_scripts_inside_multi_match_redis(pair):  # noqa: F811
    pair.play([
        ("MULTI",),
        ("EVAL", "return redis.call('incr', 'c')", 0),
        ("EVAL", "return redis.call('incr', 'c')", 0),
        ("GET", "c"),
        ("EXEC",),
        ("GET", "c"),
    ])


def test_random_script_sequences_match_redis(pair2):  # noqa: F811
    """Random scripts over a small keyspace: strings, hashes, lists, sets, with errors."""
    rng = random.Random(7)
    ops = [
        "redis.call('set', KEYS[1], ARGV[1])",
        "redis.call('incr', KEYS[1])",
        "redis.call('lpush', KEYS[1], ARGV[1])",
        "redis.call('hset', KEYS[1], ARGV[1], ARGV[1])",
        "redis.call('sadd', KEYS[1], ARGV[1])",
        "redis.pcall('incr', KEYS[1])",
        "redis.call('del', KEYS[1])",
    ]
    steps = []
    for _ in range(150):
        body = "local r = {} "
        for _ in range(rng.randint(1, 4)):
            body += "table.insert(r, " + rng.choice(ops) + ") "
        body += "return r"
        steps.append(("EVAL", body, 1, rng.choice(["a", "b", "c"]), rng.choice(["1", "x", "7"])))
    for k in ("a", "b", "c"):
        steps.append(("TYPE", k))
    pair2.play(steps)


# ---------------------------------------------------------------- beyond a differential test


def test_scripts_are_atomic(server_port):
    """Two clients increment a counter through a read-modify-write script at once: no update
    is lost, and no reader sees the two keys the script writes out of step."""
    c = _client(server_port, 2)
    c.flushall()
    script = "local v = tonumber(redis.call('get', 'n') or '0') + 1 " \
             "redis.call('set', 'n', v) redis.call('set', 'm', v) return v"
    errors = []

    def bump():
        cc = _client(server_port, 2)
        for _ in range(300):
            cc.eval(script, 0)
        cc.close()

    def watch():
        cc = _client(server_port, 2)
        for _ in range(300):
            n, m = cc.mget("n", "m")
            if n != m:
                errors.append((n, m))
        cc.close()

    threads = [threading.Thread(target=bump) for _ in range(2)] + [threading.Thread(target=watch)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert c.get("n") == "600"
    assert not errors, errors[:5]


def test_busy_script_kill(spawn):
    srv = spawn("--busy-reply-threshold", "200")
    c = srv.client()
    runner_result = {}

    def run():
        cc = srv.client()
        try:
            cc.eval("local i = 0 while true do i = i + 1 end", 0)
        except redis.ResponseError as e:
            runner_result["err"] = str(e)

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)
    other = RawConn(srv.port)
    try:
        busy = other.cmd("PING")
        assert str(busy) == "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
        assert str(other.cmd("FUNCTION", "KILL")) == str(busy)
        assert other.cmd("SCRIPT", "KILL") == "OK"
    finally:
        other.close()
    t.join(5)
    assert not t.is_alive()
    assert runner_result["err"].startswith("Script killed by user with SCRIPT KILL... script: "), runner_result
    assert runner_result["err"].endswith(", on @user_script:1."), runner_result
    assert c.ping()
    assert str(RawConn(srv.port).cmd("SCRIPT", "KILL")) == "NOTBUSY No scripts in execution right now."


def test_transactions_during_a_busy_script(spawn):
    """As Redis 7.0's multi.tcl checks: while a script runs past busy-reply-threshold, a
    command sent to an open transaction is refused with BUSY and fails the transaction, and
    an EXEC refused for BUSY discards it with EXECABORT naming why; nothing of it runs."""
    srv = spawn("--busy-reply-threshold", "100")
    c = srv.client()
    c.set("xx", 1)

    def run():
        try:
            srv.client().eval("while true do end", 0)
        except redis.ResponseError:
            pass

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.4)
    tx = RawConn(srv.port)
    queued = RawConn(srv.port)
    try:
        assert tx.cmd("MULTI") == "OK"
        assert str(tx.cmd("INCR", "xx")).startswith("BUSY ")
        # A transaction opened before: its EXEC is refused and the transaction discarded.
        killer = RawConn(srv.port)
        assert killer.cmd("SCRIPT", "KILL") == "OK"
        killer.close()
        t.join(5)
        assert str(tx.cmd("EXEC")).startswith("EXECABORT Transaction discarded because of previous errors")
        assert tx.cmd("PING") == "PONG"
        assert queued.cmd("MULTI") == "OK"
        assert queued.cmd("INCR", "xx") == "QUEUED"
        t2 = threading.Thread(target=run)
        t2.start()
        time.sleep(0.4)
        assert str(queued.cmd("EXEC")).startswith("EXECABORT Transaction discarded because of: BUSY ")
        assert RawConn(srv.port).cmd("SCRIPT", "KILL") == "OK"
        t2.join(5)
        assert queued.cmd("PING") == "PONG"
    finally:
        tx.close()
        queued.close()
    assert c.get("xx") == "1"


def test_busy_script_that_wrote_is_unkillable_but_shutdown_nosave_stops_it(spawn):
    srv = spawn("--busy-reply-threshold", "100")
    c = srv.client()

    def run():
        cc = srv.client()
        try:
            cc.eval("redis.call('set', 'x', 1) while true do end", 0)
        except redis.RedisError:
            pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    time.sleep(0.4)
    other = RawConn(srv.port)
    assert str(other.cmd("SCRIPT", "KILL")).startswith("UNKILLABLE Sorry the script already executed write commands")
    other.send(encode_command("SHUTDOWN", "NOSAVE"))
    srv.proc.wait(10)
    assert srv.proc.returncode == 0
    other.close()
    c.close()


def test_busy_function_kill(spawn):
    srv = spawn("--busy-reply-threshold", "100")
    c = srv.client()
    c.function_load("#!lua name=spin\nredis.register_function('spin', function() while true do end end)")
    result = {}

    def run():
        try:
            srv.client().fcall("spin", 0)
        except redis.ResponseError as e:
            result["err"] = str(e)

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.4)
    other = RawConn(srv.port)
    assert str(other.cmd("GET", "x")) == "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
    stats = other.cmd("FUNCTION", "STATS")
    assert stats[0] == b"running_script" and stats[1][1] == b"spin", stats
    assert str(other.cmd("SCRIPT", "KILL")) == "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
    assert other.cmd("FUNCTION", "KILL") == "OK"
    t.join(5)
    assert result["err"].startswith("Script killed by user with SCRIPT KILL... script: spin, on @user_function:2."), result
    assert c.ping()
    other.close()


def test_script_effects_survive_a_restart_through_the_aof(spawn):
    d = tempfile.mkdtemp(prefix="locus-script-aof-")
    srv = spawn("--appendonly", "yes", "--appendfsync", "always", "--dir", d)
    c = srv.client()
    c.eval("for i = 1, 5 do redis.call('rpush', 'l', i) end redis.call('set', 'r', math.random(1000000))", 0)
    c.function_load("#!lua name=lib\nredis.register_function('f', function(k) return redis.call('incr', k[1]) end)")
    assert c.fcall("f", 1, "counter") == 1
    before = (c.lrange("l", 0, -1), c.get("r"), c.get("counter"))
    srv.stop()
    srv2 = spawn("--appendonly", "yes", "--dir", d)
    c2 = srv2.client()
    assert (c2.lrange("l", 0, -1), c2.get("r"), c2.get("counter")) == before
    assert c2.fcall("f", 1, "counter") == 2


def test_redisai_commands_in_scripts(server_port):
    c = _client(server_port, 2, decode=False)
    c.flushall()
    assert c.eval("return redis.call('AI.TENSORSET', 't', 'FLOAT', 2, 'VALUES', 1, 2)", 0) == b"OK"
    assert c.eval("return redis.call('AI.TENSORGET', 't', 'VALUES')", 0) == [b"1", b"2"]
    with pytest.raises(redis.ResponseError) as e:
        c.eval("return redis.call('AI.MODELEXECUTE', 'm', 'INPUTS', 1, 't', 'OUTPUTS', 1, 'o')", 0)
    assert "Cannot run RedisAI command within a transaction or a LUA script" in str(e.value)
    assert c.eval("local r = redis.pcall('AI.TENSOROP', 'x', 'SOFTMAX', 't') return r.err", 0) == \
        b"ERR Cannot run RedisAI command within a transaction or a LUA script"
    assert c.exists("x") == 0


def test_bad_scripts_keep_the_server_serving(server_port):
    c = _client(server_port, 2)
    c.flushall()
    for body in ["return string.rep('x', -1)", "local t = {} t[nil] = 1", "return {1, {2, {3, {4}}}}",
                 "local s = '' for i = 1, 1000 do s = s .. i end return #s",
                 "return redis.call('set', 'a')", "return tostring(1/0)", "return 0/0",
                 "return string.rep('ab', 100000)"]:
        try:
            c.eval(body, 0)
        except redis.ResponseError:
            pass
    assert c.ping()
    assert c.dbsize() == 0


@pytest.mark.parametrize("how", ["snapshot", "aof-rewrite"])
def test_functions_survive_snapshots_and_aof_rewrites(spawn, how):
    d = tempfile.mkdtemp(prefix="locus-functions-")
    args = ["--dir", d] + (["--appendonly", "yes"] if how == "aof-rewrite" else [])
    srv = spawn(*args)
    c = srv.client()
    c.function_load("#!lua name=keep\nredis.register_function('twice', function(k, a) return a[1] * 2 end)")
    c.set("k", "v")
    if how == "snapshot":
        assert c.save()
    else:
        assert c.bgrewriteaof()
        deadline = time.time() + 10
        while c.info("persistence")["aof_rewrite_in_progress"] and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    srv.stop()
    srv2 = spawn(*args)
    c2 = srv2.client()
    assert c2.get("k") == "v"
    assert c2.fcall("twice", 0, 21) == 42
    stats = c2.function_stats()
    assert stats[3] == ["LUA", ["libraries_count", 1, "functions_count", 1]], stats


def test_min_replicas_to_write_matches_redis(pair):  # noqa: F811
    """With min-replicas-to-write above 0 and no replicas, writes get NOREPLICAS: plain ones,
    scripts that declare flags without no-writes (before they start), and writes from scripts
    that declare none."""
    try:
        pair.play([
            ("SET", "x", "v"),
            ("CONFIG", "SET", "min-replicas-to-write", 1),
            ("SET", "x", 1),
            ("GET", "x"),
            ("EVAL", "#!lua flags=no-writes\nreturn redis.call('get','x')", 1, "x"),
            ("EVAL", "return redis.call('get','x')", 1, "x"),
            ("EVAL", "#!lua\nreturn redis.call('get','x')", 1, "x"),
            ("EVAL", "return redis.call('set','x',1)", 1, "x"),
            ("MULTI",),
            ("SET", "x", 2),
            ("GET", "x"),
            ("EXEC",),
        ])
    finally:
        pair.play([("CONFIG", "SET", "min-replicas-to-write", 0)])
