"""MULTI / EXEC / DISCARD / WATCH / UNWATCH, as redis-server 7.0 does them.

Deterministic sequences are played on Locus and on Debian's redis-server (`real_redis`, from
test_lists) over raw sockets, and the raw reply bytes must be identical; the tests also pin the
key replies to concrete values. Then redis-py's transaction helpers, RESP3, races between
connections (EXEC isolation, an optimistic-lock counter) and RedisAI commands inside MULTI.
"""

import os
import threading
import time

import pytest
import redis

from conftest import RawConn, Tap, _client
from test_lists import real_redis  # noqa: F401  (module fixture: a reference redis-server)

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")


def play(locus_port, redis_port, steps, proto=2):
    """Plays `steps` on redis-server, then on Locus, over fresh connections (after FLUSHALL),
    asserts the raw replies are byte for byte the same and returns Locus's.

    A step is a command tuple, run on connection 0, or (n, *command) to run it on connection n
    (opened on first use); ("SLEEP", seconds) pauses and records None."""
    runs = []
    for port in (redis_port, locus_port):
        conns = {}

        def conn(n):
            if n not in conns:
                conns[n] = Tap(port)
                if proto == 3:
                    conns[n].cmd("HELLO", "3")
            return conns[n]

        conn(0).cmd("FLUSHALL")
        out = []
        for step in steps:
            n, cmd = (step[0], step[1:]) if isinstance(step[0], int) else (0, step)
            if cmd[0] == "SLEEP":
                time.sleep(cmd[1])
                out.append(None)
            else:
                out.append(conn(n).reply_bytes(*cmd))
        for c in conns.values():
            c.close()
        runs.append(out)
    want, got = runs
    assert list(zip(steps, got)) == list(zip(steps, want)), "Locus (left) vs redis-server (right)"
    return got


@pytest.fixture
def diff(server_port, real_redis):  # noqa: F811
    redis_port = real_redis.connection_pool.connection_kwargs["port"]
    return lambda steps, proto=2: play(server_port, redis_port, steps, proto)


OK, QUEUED, NIL_ARRAY = b"+OK\r\n", b"+QUEUED\r\n", b"*-1\r\n"
EXECABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"


# ---------------------------------------------------------------- queueing and EXEC replies


@pytest.mark.parametrize("proto", [2, 3])
def test_exec_reply_holds_per_command_errors(diff, proto):
    got = diff([
        ("MULTI",), ("SET", "a", "1"), ("INCR", "a"), ("SET", "s", "x"), ("INCR", "s"),
        ("LPUSH", "s", "y"), ("GET", "a"), ("EXEC",), ("GET", "a"), ("GET", "s"),
    ], proto)
    assert got[0] == OK and got[1:7] == [QUEUED] * 6
    assert got[7] == (
        b"*6\r\n+OK\r\n:2\r\n+OK\r\n-ERR value is not an integer or out of range\r\n"
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n$1\r\n2\r\n"
    )
    assert got[8:] == [b"$1\r\n2\r\n", b"$1\r\nx\r\n"]


def test_empty_exec_and_runtime_errors_of_all_kinds(diff):
    got = diff([
        ("MULTI",), ("EXEC",),
        ("MULTI",), ("SET", "a", "1", "EX", "0"), ("SET", "b", "1"), ("LPUSH", "b", "x"),
        ("HGET", "b", "f"), ("EXEC",),
    ])
    assert got[1] == b"*0\r\n"
    assert got[7] == (
        b"*4\r\n-ERR invalid expire time in 'set' command\r\n+OK\r\n"
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    )


def test_unknown_command_aborts_the_transaction(diff):
    got = diff([
        ("SET", "a", "0"), ("MULTI",), ("SET", "a", "1"), ("FOO", "bar"), ("INCR", "a"),
        ("EXEC",), ("GET", "a"), ("EXEC",),
    ])
    assert got[3] == b"-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n"
    assert got[4] == QUEUED
    assert got[5] == EXECABORT
    assert got[6] == b"$1\r\n0\r\n"
    assert got[7] == b"-ERR EXEC without MULTI\r\n"


@pytest.mark.parametrize("bad", [("GET",), ("SET", "a"), ("MULTI", "x"), ("DISCARD", "x"),
                                 ("LPUSH", "l")], ids=lambda c: " ".join(c))
def test_wrong_arity_aborts_the_transaction(diff, bad):
    got = diff([("MULTI",), ("SET", "a", "1"), bad, ("EXEC",), ("EXISTS", "a")])
    assert got[2] == b"-ERR wrong number of arguments for '%s' command\r\n" % bad[0].lower().encode()
    assert got[3] == EXECABORT
    assert got[4] == b":0\r\n"


def test_exec_with_arguments_discards_the_transaction(diff):
    got = diff([("MULTI",), ("SET", "a", "1"), ("EXEC", "x"), ("EXEC",), ("GET", "a")])
    assert got[2] == (b"-EXECABORT Transaction discarded because of: wrong number of arguments "
                      b"for 'exec' command\r\n")
    assert got[3] == b"-ERR EXEC without MULTI\r\n"
    assert got[4] == b"$-1\r\n"


def test_nested_multi_and_watch_inside_multi_do_not_abort(diff):
    got = diff([
        ("MULTI",), ("SET", "a", "1"), ("MULTI",), ("WATCH", "a"), ("INCR", "a"), ("EXEC",),
        ("GET", "a"),
    ])
    assert got[2] == b"-ERR MULTI calls can not be nested\r\n"
    assert got[3] == b"-ERR WATCH inside MULTI is not allowed\r\n"
    assert got[5] == b"*2\r\n+OK\r\n:2\r\n"
    assert got[6] == b"$1\r\n2\r\n"


def test_exec_and_discard_without_multi(diff):
    got = diff([("EXEC",), ("DISCARD",), ("MULTI",), ("INCR", "a"), ("DISCARD",), ("EXEC",),
                ("DISCARD",), ("GET", "a")])
    assert got[0] == b"-ERR EXEC without MULTI\r\n"
    assert got[1] == b"-ERR DISCARD without MULTI\r\n"
    assert got[4] == OK
    assert got[5] == b"-ERR EXEC without MULTI\r\n"
    assert got[6] == b"-ERR DISCARD without MULTI\r\n"
    assert got[7] == b"$-1\r\n"


def test_select_inside_multi(diff):
    got = diff([
        ("SET", "a", "db0"),
        ("MULTI",), ("SELECT", "1"), ("SET", "a", "db1"), ("GET", "a"), ("SELECT", "99"),
        ("GET", "a"), ("EXEC",),
        ("GET", "a"), ("SELECT", "0"), ("GET", "a"),
    ])
    assert got[7] == b"*5\r\n+OK\r\n+OK\r\n$3\r\ndb1\r\n-ERR DB index is out of range\r\n$3\r\ndb1\r\n"
    assert got[8] == b"$3\r\ndb1\r\n"  # the connection stays in the database EXEC selected
    assert got[10] == b"$3\r\ndb0\r\n"


def test_blocking_commands_inside_multi_do_not_block(diff):
    t0 = time.monotonic()
    got = diff([
        ("MULTI",), ("BLPOP", "l", "0"), ("BRPOP", "l", "0"), ("BLMOVE", "l", "m", "LEFT", "RIGHT", "0"),
        ("BLMPOP", "0", "1", "l", "LEFT"), ("RPUSH", "l", "a"), ("BLPOP", "l", "0"), ("EXEC",),
    ])
    assert time.monotonic() - t0 < 5
    assert got[7] == b"*6\r\n*-1\r\n*-1\r\n$-1\r\n*-1\r\n:1\r\n*2\r\n$1\r\nl\r\n$1\r\na\r\n"


def test_queued_commands_with_side_effects(diff):
    got = diff([
        ("MULTI",), ("PING",), ("ECHO", "hi"), ("UNWATCH",), ("FLUSHALL",), ("DBSIZE",),
        ("EXEC",),
    ])
    assert got[6] == b"*5\r\n+PONG\r\n$2\r\nhi\r\n+OK\r\n+OK\r\n:0\r\n"


# ---------------------------------------------------------------- WATCH


def watch_case(diff, *between, before=(), key="k"):
    """WATCH key on connection 0, run `between` (on other connections), then MULTI / EXEC.
    Returns the EXEC reply (and checks every step against redis-server)."""
    steps = [*before, ("WATCH", key), *between, ("MULTI",), ("SET", "done", "1"), ("EXEC",)]
    return diff(steps)[-1]


APPLIED = b"*1\r\n+OK\r\n"


@pytest.mark.parametrize("write", [
    ("SET", "k", "new"), ("SET", "k", "v"), ("DEL", "k"), ("EXPIRE", "k", "100"),
    ("PEXPIRE", "k", "0"), ("APPEND", "k", "x"), ("RENAME", "other", "k"), ("UNLINK", "k"),
    ("PERSIST", "k"), ("FLUSHDB",), ("FLUSHALL",),
], ids=lambda c: " ".join(c))
def test_watch_broken_by_another_connection(diff, write):
    before = [("SET", "k", "v"), ("SET", "other", "o")]
    if write[0] == "PERSIST":
        before.append(("EXPIRE", "k", "100"))
    assert watch_case(diff, (1, *write), before=before) == NIL_ARRAY


def test_watch_on_a_missing_key_broken_when_created(diff):
    assert watch_case(diff, (1, "LPUSH", "k", "x")) == NIL_ARRAY


@pytest.mark.parametrize("write", [
    ("SET", "k2", "x"), ("DEL", "k"), ("EXPIRE", "k", "10"), ("FLUSHDB",), ("FLUSHALL",),
    ("GET", "k"), ("EXISTS", "k"),
], ids=lambda c: " ".join(c))
def test_watch_on_a_missing_key_kept_by_no_ops(diff, write):
    # Redis 7.0 touches watched keys on FLUSHDB/FLUSHALL only where the key existed.
    assert watch_case(diff, (1, *write)) == APPLIED


@pytest.mark.parametrize("between", [
    [(1, "SET", "k2", "x")],
    [(1, "GET", "k")],
    [(1, "SELECT", "1"), (1, "SET", "k", "db1")],
    [(1, "SELECT", "1"), (1, "FLUSHDB")],
], ids=["other key", "read", "same key in db 1", "FLUSHDB of db 1"])
def test_watch_not_broken_by_reads_or_other_keys_or_databases(diff, between):
    assert watch_case(diff, *between, before=[("SET", "k", "v")]) == APPLIED


def test_watch_broken_by_own_write_and_by_a_transaction(diff):
    assert watch_case(diff, ("SET", "k", "mine")) == NIL_ARRAY
    assert watch_case(diff, (1, "MULTI"), (1, "INCR", "k"), (1, "EXEC")) == NIL_ARRAY
    # The transaction of another connection that was discarded changes nothing.
    assert watch_case(diff, (1, "MULTI"), (1, "INCR", "k"), (1, "DISCARD")) == APPLIED


def test_watch_several_keys_one_changed(diff):
    got = diff([("WATCH", "a", "b"), ("WATCH", "c"), (1, "SET", "c", "1"), ("MULTI",),
                ("SET", "done", "1"), ("EXEC",), ("EXISTS", "done")])
    assert got[-2:] == [NIL_ARRAY, b":0\r\n"]


def test_watched_key_expiring_breaks_exec(diff):
    got = diff([("SET", "k", "v", "PX", "50"), ("WATCH", "k"), ("SLEEP", 0.15), ("MULTI",),
                ("SET", "done", "1"), ("EXEC",), ("EXISTS", "done")])
    assert got[-2:] == [NIL_ARRAY, b":0\r\n"]



@pytest.mark.parametrize("between, exec_reply", [
    ([], APPLIED),
    ([(1, "EXISTS", "k")], APPLIED),
    ([(1, "KEYS", "*")], APPLIED),
    ([(1, "SET", "k", "v2")], NIL_ARRAY),
    ([(1, "GET", "k")], APPLIED),
    ([("GET", "k")], APPLIED),
    ([(1, "FLUSHDB")], APPLIED),
], ids=["nothing", "EXISTS", "KEYS", "SET", "GET", "own GET", "FLUSHDB"])
def test_watching_an_already_expired_key(diff, between, exec_reply):
    # The key had already expired at WATCH: only a write that recreates it is a change.
    got = diff([("SET", "k", "v", "PX", "20"), ("SLEEP", 0.1), ("WATCH", "k"), *between,
                ("MULTI",), ("SET", "done", "1"), ("EXEC",)])
    assert got[-1] == exec_reply


def test_unwatch_discard_exec_and_execabort_clear_watches(diff):
    got = diff([
        ("SET", "k", "v"),
        ("WATCH", "k"), (1, "SET", "k", "1"), ("UNWATCH",), ("MULTI",), ("EXEC",),
        ("WATCH", "k"), (1, "SET", "k", "2"), ("MULTI",), ("DISCARD",), ("MULTI",), ("EXEC",),
        ("WATCH", "k"), (1, "SET", "k", "3"), ("MULTI",), ("EXEC",), ("MULTI",), ("EXEC",),
        ("WATCH", "k"), ("MULTI",), ("EXEC",), (1, "SET", "k", "4"), ("MULTI",), ("EXEC",),
        ("WATCH", "k"), (1, "SET", "k", "5"), ("MULTI",), ("NOPE",), ("EXEC",), ("MULTI",),
        ("EXEC",),
    ])
    empty = b"*0\r\n"
    assert got[5] == empty                      # UNWATCH
    assert got[11] == empty                     # DISCARD
    assert got[15:18] == [NIL_ARRAY, OK, empty]  # a failed EXEC
    assert got[20] == empty and got[23] == empty  # a successful EXEC
    assert got[28:] == [EXECABORT, OK, empty]   # EXECABORT


def test_resp3_exec_on_a_broken_watch_is_null(diff, server_port):
    got = diff([("WATCH", "k"), (1, "SET", "k", "1"), ("MULTI",), ("GET", "k"), ("EXEC",),
                ("MULTI",), ("GET", "k"), ("EXEC",)], proto=3)
    assert got[4] == b"_\r\n"
    assert got[7] == b"*1\r\n$1\r\n1\r\n"

    c = _client(server_port, 3)
    c2 = redis.Redis(host="127.0.0.1", port=server_port, protocol=3, decode_responses=True,
                     single_connection_client=True)
    try:
        c.flushall()
        assert c2.execute_command("WATCH", "k") in (True, "OK")
        c.set("k", "x")
        assert c2.execute_command("MULTI") in (True, "OK")
        assert c2.execute_command("GET", "k") == "QUEUED"
        assert c2.execute_command("EXEC") is None
    finally:
        c.close()
        c2.close()


# ---------------------------------------------------------------- redis-py helpers


def test_redis_py_transaction_pipeline(r):
    p = r.pipeline(transaction=True)
    p.set("a", 1).incr("a").lpush("l", "x").get("a").incr("l")
    res = p.execute(raise_on_error=False)
    assert res[:4] == [True, 2, 1, "2"]
    assert isinstance(res[4], redis.ResponseError) and "WRONGTYPE" in str(res[4])
    assert r.get("a") == "2"

    p = r.pipeline(transaction=True)
    p.set("b", 1).execute_command("NOSUCHCMD", "x")
    with pytest.raises(redis.ResponseError, match="unknown command"):
        p.execute()
    assert r.exists("b") == 0


def test_redis_py_watch_pipeline_raises_watch_error(r, server_port):
    other = _client(server_port, 2)
    try:
        r.set("k", 1)
        with r.pipeline() as p:
            p.watch("k")
            assert p.get("k") == "1"
            other.set("k", 5)
            p.multi()
            p.set("k", 2)
            with pytest.raises(redis.WatchError):
                p.execute()
        assert r.get("k") == "5"
        with r.pipeline() as p:
            p.watch("k")
            v = int(p.get("k"))
            p.multi()
            p.set("k", v + 1)
            assert p.execute() == [True]
        assert r.get("k") == "6"
    finally:
        other.close()


def test_redis_py_transaction_helper_retries(r, server_port):
    other = _client(server_port, 2)
    calls = []

    def bump(pipe):
        calls.append(1)
        v = int(pipe.get("counter") or 0)
        if len(calls) == 1:
            other.set("counter", 100)  # someone else writes between WATCH and EXEC
        pipe.multi()
        pipe.set("counter", v + 1)
        return v + 1

    try:
        assert r.transaction(bump, "counter", value_from_callable=True) == 101
        assert len(calls) == 2
        assert r.get("counter") == "101"
        assert r.transaction(bump, "counter") == [True]
        assert r.get("counter") == "102"
    finally:
        other.close()


# ---------------------------------------------------------------- races
# These run on a server of their own with several event loops (io-threads), so that commands
# of different connections really run in parallel (the default takes half the cores: one loop
# on a two-core machine, where nothing could interleave).


@pytest.fixture
def parallel_server(spawn):
    return spawn("--io-threads", "4")


def test_exec_is_isolated_from_concurrent_readers(parallel_server):
    # Each transaction scans a long list between its two INCRs: a reader that could see inside
    # a transaction has a wide window to (without MULTI nearly every read sees a != b).
    port = parallel_server.port
    writers, per_writer = 3, 40
    c0 = _client(port, 2)
    c0.mset({"a": 0, "b": 0})
    for _ in range(20):
        c0.rpush("big", *range(10000))
    done = threading.Event()
    errors, seen = [], []

    def writer():
        c = _client(port, 2)
        try:
            for _ in range(per_writer):
                p = c.pipeline(transaction=True)
                p.incr("a")
                for _ in range(5):
                    p.execute_command("LPOS", "big", "missing")
                p.incr("b")
                res = p.execute()
                if res[0] != res[-1]:
                    errors.append(("exec", res[0], res[-1]))
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            c.close()

    def reader():
        c = _client(port, 2)
        try:
            while not done.is_set():
                a, b = c.mget("a", "b")
                seen.append(a)
                if a != b:
                    errors.append(("mget", a, b))
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            c.close()

    readers = [threading.Thread(target=reader, daemon=True) for _ in range(2)]
    ws = [threading.Thread(target=writer, daemon=True) for _ in range(writers)]
    for t in readers + ws:
        t.start()
    for t in ws:
        t.join(20)
    done.set()
    for t in readers:
        t.join(5)
    assert not any(t.is_alive() for t in readers + ws)
    assert errors[:5] == []
    assert c0.mget("a", "b") == [str(writers * per_writer)] * 2
    assert len(set(seen)) > 1  # the readers really ran while the writers did
    c0.close()


def test_optimistic_lock_counter(parallel_server):
    port = parallel_server.port
    threads, per_thread = 4, 40
    c0 = _client(port, 2)
    c0.set("counter", 0)
    wins, retries, errors = [0] * threads, [0] * threads, []

    def worker(i):
        c = _client(port, 2)
        try:
            while wins[i] < per_thread:
                with c.pipeline() as p:
                    try:
                        p.watch("counter")
                        v = int(p.get("counter"))
                        time.sleep(0.0005)  # widen the window between read and EXEC
                        p.multi()
                        p.set("counter", v + 1)
                        p.execute()
                        wins[i] += 1
                    except redis.WatchError:
                        retries[i] += 1
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            c.close()

    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert not any(t.is_alive() for t in ts)
    assert errors == []
    assert sum(wins) == threads * per_thread
    assert int(c0.get("counter")) == sum(wins)
    assert sum(retries) > 0  # the threads did collide, and WATCH caught it
    c0.close()


# ---------------------------------------------------------------- RedisAI inside MULTI


def test_redisai_commands_inside_multi(server_port, raw, rb):
    with open(os.path.join(MODELS, "add.onnx"), "rb") as f:
        rb.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", f.read())
    rb.execute_command("AI.TENSORSET", "a", "FLOAT", 1, 2, "VALUES", 1, 2)
    rb.execute_command("AI.TENSORSET", "b", "FLOAT", 1, 2, "VALUES", 3, 5)
    # Outside a transaction the model runs.
    assert rb.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c") == b"OK"
    assert rb.execute_command("AI.TENSORGET", "c", "VALUES") == [b"4", b"7"]

    c = raw()
    assert c.cmd("MULTI") == "OK"
    assert c.cmd("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "d") == "QUEUED"
    assert c.cmd("AI.TENSORSET", "e", "FLOAT", 1, "VALUES", 7) == "QUEUED"
    assert c.cmd("SET", "x", "1") == "QUEUED"
    res = c.cmd("EXEC")
    assert [str(res[0]), res[1], res[2]] == [
        "ERR Cannot run RedisAI command within a transaction or a LUA script", "OK", "OK"]
    assert type(res[0]).__name__ == "ErrorReply"
    assert rb.exists("d") == 0
    assert rb.exists("e", "x") == 2
