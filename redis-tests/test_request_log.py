"""Request logging (AI.LOG) to streams, with routing decisions and payloads, and AI.ALERTS."""

import hashlib
import tempfile
import time

import numpy as np
import pytest
import redis

from conftest import MODULE_TARGET, _client
from test_models import is_ok, put
from test_routers import error_of, execute, routerset, scale, store

pytest.importorskip("onnxruntime")


@pytest.fixture
def c(server_port):
    conn = _client(server_port, 2, decode=False)
    conn.flushall()
    yield conn
    conn.flushall()
    conn.close()


def entries(c, stream):
    return [{k.decode(): v for k, v in e.items()} for _, e in c.xrange(stream)]


def test_log_records_runs_with_payloads(c):
    assert is_ok(store(c, "m", scale(2)))
    c.client_setname("scorer")
    assert is_ok(c.execute_command("AI.LOG", "SET", "m", "STREAM", "log:m", "PAYLOAD", "FULL"))
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    put(c, "x", x)
    assert is_ok(execute(c, "m", "x", "y"))
    (e,) = entries(c, "log:m")
    assert e["key"] == b"m" and e["model"] == b"m" and e["version"] == b"1"
    assert e["router"] == b"" and e["target"] == b""
    assert (e["inputs"], e["outputs"]) == (b"x", b"y")
    assert (e["input_shapes"], e["output_shapes"]) == (b"2x4", b"2x4")
    assert e["outcome"] == b"ok" and e["client"] == b"scorer" and e["user"] == b"default"
    assert int(e["latency_us"]) > 0
    assert e["input_0_dtype"] == b"FLOAT"
    assert np.array_equal(np.frombuffer(e["input_0_blob"], np.float32).reshape(2, 4), x)
    assert np.array_equal(np.frombuffer(e["output_0_blob"], np.float32).reshape(2, 4), x * 2)
    # DIGEST: the blobs' SHA-256 instead of the blobs.
    assert is_ok(c.execute_command("AI.LOG", "SET", "m", "STREAM", "log:m", "PAYLOAD", "DIGEST"))
    assert is_ok(execute(c, "m", "x", "y"))
    e = entries(c, "log:m")[-1]
    assert e["input_0_sha256"].decode() == hashlib.sha256(x.tobytes()).hexdigest()
    assert e["output_0_sha256"].decode() == hashlib.sha256((x * 2).tobytes()).hexdigest()
    assert "input_0_blob" not in e
    got = c.execute_command("AI.LOG", "GET", "m")
    got = dict(zip(got[::2], got[1::2]))
    assert got == {b"stream": b"log:m", b"sample": b"1", b"maxlen": b"10000", b"payload": b"DIGEST"}
    assert c.execute_command("AI.LOG", "DEL", "m") == 1
    assert c.execute_command("AI.LOG", "DEL", "m") == 0
    assert c.execute_command("AI.LOG", "GET", "m") is None
    assert is_ok(execute(c, "m", "x", "y"))
    assert len(entries(c, "log:m")) == 2


def test_log_of_a_router_records_its_decision(c):
    assert is_ok(store(c, "m", scale(1)))
    assert is_ok(store(c, "m", scale(2)))
    assert is_ok(routerset(c, "r", "SPLIT", "m@1", 1, "m@2", 1))
    assert is_ok(c.execute_command("AI.LOG", "SET", "r", "STREAM", "log:r"))
    put(c, "x", np.ones((1, 4), np.float32))
    for _ in range(40):
        assert is_ok(execute(c, "r", "x", "y"))
    seen = set()
    for e in entries(c, "log:r"):
        assert e["key"] == b"r" and e["router"] == b"r" and e["model"] == b"m"
        assert e["target"] == b"m@" + e["version"]
        seen.add(e["version"])
        assert "input_0_blob" not in e and "input_0_sha256" not in e
    assert seen == {b"1", b"2"}


def test_sampling_and_bounds(c):
    assert is_ok(store(c, "m", scale(2)))
    assert is_ok(c.execute_command("AI.LOG", "SET", "m", "STREAM", "log", "SAMPLE", 0.25, "MAXLEN", 5000))
    put(c, "x", np.ones((1, 4), np.float32))
    p = c.pipeline(transaction=False)
    for _ in range(4000):
        p.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
    p.execute()
    n = c.xlen("log")
    assert 800 < n < 1200, n  # 1000 expected; 6 standard deviations either side
    assert is_ok(c.execute_command("AI.LOG", "SET", "m", "STREAM", "log", "MAXLEN", 10))
    for _ in range(30):
        execute(c, "m", "x", "y")
    assert c.xlen("log") == 10


def test_bad_settings_change_nothing(c):
    assert is_ok(store(c, "m", scale(2)))
    c.set("str", "v")
    put(c, "t", np.ones((1, 4), np.float32))
    cases = [
        (("AI.LOG", "SET", "m", "STREAM", "str"), "ERR log stream 'str' holds another type of value"),
        (("AI.LOG", "SET", "m", "STREAM", "s", "SAMPLE", 2), "ERR SAMPLE must be between 0 and 1"),
        (("AI.LOG", "SET", "m", "STREAM", "s", "PAYLOAD", "ALL"), "ERR PAYLOAD is NONE, DIGEST or FULL"),
        (("AI.LOG", "SET", "m", "STREAM", "s", "MAXLEN", 0), "ERR MAXLEN must be a positive integer"),
        (("AI.LOG", "SET", "m", "SAMPLE", 1), "ERR AI.LOG SET needs STREAM stream"),
        (("AI.LOG", "SET", "nokey", "STREAM", "s"), "ERR model key is empty"),
    ]
    if not MODULE_TARGET:
        # The module keeps no audit stream (Redis's AOF and replication carry its stores).
        cases.append((("AI.LOG", "SET", "m", "STREAM", "locus:audit"),
                      "ERR 'locus:audit' is the audit stream: log to another stream"))
    for args, err in cases:
        assert error_of(c, *args) == err, args
    assert error_of(c, "AI.LOG", "SET", "t", "STREAM", "s").startswith("WRONGTYPE")
    assert c.execute_command("AI.LOG", "GET", "m") is None
    # A stream key replaced by another type later: entries are dropped, the run still answers.
    assert is_ok(c.execute_command("AI.LOG", "SET", "m", "STREAM", "s"))
    c.delete("s")
    c.set("s", "not a stream")
    assert is_ok(execute(c, "m", "t", "y"))
    assert c.get("s") == b"not a stream"


def test_settings_survive_restarts(spawn_target):
    spawn = spawn_target
    d = tempfile.mkdtemp(prefix="locus-log-")
    for how in (["--appendonly", "yes"], []):
        srv = spawn("--dir", d, *how)
        c = srv.client(decode_responses=False)
        assert is_ok(store(c, "m", scale(2)))
        assert is_ok(c.execute_command("AI.LOG", "SET", "m", "STREAM", "lg", "SAMPLE", 0.5, "PAYLOAD", "DIGEST"))
        before = c.execute_command("AI.LOG", "GET", "m")
        if not how:
            assert c.save()
        srv.stop()
        srv2 = spawn("--dir", d, *how)
        c2 = srv2.client(decode_responses=False)
        assert c2.execute_command("AI.LOG", "GET", "m") == before
        c2.flushall()
        srv2.stop()


def test_alerts_lists_the_latest(c):
    assert is_ok(store(c, "a", scale(1)))
    assert is_ok(store(c, "gone", scale(3)))
    assert c.execute_command("AI.ALERTS") == []
    assert is_ok(routerset(c, "r", "SPLIT", "a", 1, "gone", 1, "GUARD", "ERRORS", 0.1, "WINDOW", 5))
    c.delete("gone")
    put(c, "x", np.ones((1, 4), np.float32))
    for _ in range(40):
        try:
            execute(c, "r", "x", "y")
        except redis.ResponseError:
            pass
    deadline = time.time() + 5
    while not c.execute_command("AI.ALERTS") and time.time() < deadline:
        time.sleep(0.02)
    (alert,) = c.execute_command("AI.ALERTS", "COUNT", 5)
    alert = dict(zip(alert[::2], alert[1::2]))
    assert alert[b"type"] == b"rollback" and alert[b"router"] == b"r" and alert[b"target"] == b"gone"
    assert error_of(c, "AI.ALERTS", "COUNT", 0) == "ERR COUNT must be a positive integer"


def test_queue_depth_alert_at_most_once_a_minute(spawn):
    from test_models import Runner
    srv = spawn("--alert-queue-depth", 2)
    c = srv.client(decode_responses=False)
    assert is_ok(store(c, "mb", scale(2), "BATCHSIZE", 8, "MINBATCHSIZE", 8))
    put(c, "x", np.ones((1, 4), np.float32))
    runners = [Runner(srv.port, "AI.MODELEXECUTE", "mb", "INPUTS", 1, "x", "OUTPUTS", 1, f"o{i}",
                      "TIMEOUT", 1500) for i in range(4)]
    for r in runners:
        r.start()
    time.sleep(1.0)  # ten checks of the periodic task while four requests wait
    for r in runners:
        r.join(5)
    found = [dict(zip(a[::2], a[1::2])) for a in c.execute_command("AI.ALERTS", "COUNT", 50)]
    depth = [a for a in found if a[b"type"] == b"queue-depth"]
    assert len(depth) == 1, found
    assert depth[0][b"queue"] == b"CPU" and b"4 requests waiting" in depth[0][b"detail"]


def test_dag_model_ops_are_logged_with_their_routing_and_monitored(c):
    """A DAG's model ops are logged and observed as AI.MODELEXECUTE runs are: the DAG-local
    tensor names, the router's decision, payloads, and a failed op's error."""
    assert is_ok(store(c, "m", scale(1)))
    assert is_ok(store(c, "m", scale(2)))
    assert is_ok(routerset(c, "r", "SPLIT", "m@1", 0, "m@2", 1))
    assert is_ok(c.execute_command("AI.LOG", "SET", "r", "STREAM", "log:r", "PAYLOAD", "FULL"))
    base = np.random.default_rng(1).standard_normal((100, 4)).astype(np.float32)
    put(c, "base", base)
    assert is_ok(c.execute_command("AI.MONITOR", "SET", "r", "BASELINE", "base", "WINDOW", 10,
                                   "EVERY", 10))
    reply = c.execute_command(
        "AI.DAGEXECUTE", "ROUTING", "r", "|>", "AI.TENSORSET", "a", "FLOAT", 1, 4, "VALUES",
        1, 2, 3, 4, "|>", "AI.MODELEXECUTE", "r", "INPUTS", 1, "a", "OUTPUTS", 1, "b", "|>",
        "AI.TENSORGET", "b", "VALUES")
    assert [float(v) for v in reply[-1]] == [2, 4, 6, 8]
    (e,) = entries(c, "log:r")
    assert e["router"] == b"r" and e["target"] == b"m@2" and e["version"] == b"2"
    assert e["inputs"] == b"a" and e["outputs"] == b"b" and e["outcome"] == b"ok"
    assert np.frombuffer(e["output_0_blob"], np.float32).tolist() == [2, 4, 6, 8]
    mon = c.execute_command("AI.MONITOR", "GET", "r")
    mon = dict(zip(mon[::2], mon[1::2]))
    assert int(mon[b"rows_seen"]) == 1
    # A failing op is logged with its error.
    c.execute_command(
        "AI.DAGEXECUTE", "ROUTING", "r", "|>", "AI.TENSORSET", "a", "FLOAT", 1, 3, "VALUES",
        1, 2, 3, "|>", "AI.MODELEXECUTE", "r", "INPUTS", 1, "a", "OUTPUTS", 1, "b")
    failed = entries(c, "log:r")[-1]
    assert b"Expected: 4" in failed["outcome"] and failed["input_shapes"] == b"1x3"


def test_settings_follow_swapdb_and_go_with_flushdb(server_port):
    """Request logs and monitors belong to their database: SWAPDB moves them with the keys,
    FLUSHDB drops them (on locus-server and in the module, which follows Redis's events)."""
    c0 = _client(server_port, 2, decode=False)
    c1 = redis.Redis(host="127.0.0.1", port=server_port, db=1, socket_timeout=10)
    try:
        c0.flushall()
        assert is_ok(store(c0, "m", scale(2)))
        put(c0, "base", np.ones((20, 4), np.float32))
        assert is_ok(c0.execute_command("AI.LOG", "SET", "m", "STREAM", "lg"))
        assert is_ok(c0.execute_command("AI.MONITOR", "SET", "m", "BASELINE", "base"))
        assert c0.swapdb(0, 1)
        assert c0.execute_command("AI.LOG", "GET", "m") is None
        assert c1.execute_command("AI.LOG", "GET", "m")[:2] == [b"stream", b"lg"]
        assert c1.execute_command("AI.MONITOR", "GET", "m") is not None
        # Runs in database 1 are logged there.
        put(c1, "x", np.ones((1, 4), np.float32))
        assert is_ok(execute(c1, "m", "x", "y"))
        assert c1.xlen("lg") == 1 and c0.exists("lg") == 0
        c1.flushdb()
        assert c1.execute_command("AI.LOG", "GET", "m") is None
        assert c1.execute_command("AI.MONITOR", "GET", "m") is None
    finally:
        c0.flushall()
        c0.close()
        c1.close()
