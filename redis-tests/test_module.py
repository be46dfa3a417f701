"""Locus as a Redis module inside stock redis-server 7.0: the same AI.* commands, replies and
errors as locus-server (compared call by call), key specs Redis routes with, runs that never
block Redis's main thread, module values through RDB, AOF rewrite, DUMP/RESTORE, COPY,
MEMORY USAGE and DEBUG DIGEST, replication of a run as its outputs, and MULTI."""

import os
import threading
import time

import numpy as np
import pytest
import redis

from conftest import ServerProcess, free_port
from module_server import ModuleServer

ort = pytest.importorskip("onnxruntime")

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")


def blob(name):
    with open(os.path.join(MODELS, name), "rb") as f:
        return f.read()


def outcome(c, *args):
    try:
        return ("ok", c.execute_command(*args))
    except redis.ResponseError as e:
        return ("error", str(e))


@pytest.fixture(scope="module")
def module():
    s = ModuleServer()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def locus():
    s = ServerProcess()
    yield s
    s.stop()


@pytest.fixture
def m(module):
    c = module.client()
    c.flushall()
    return c


# Calls in order; each is made on both servers and must get the same reply or error.
ADD = blob("add.onnx")
SPIN = blob("spin.onnx")
LINREG = blob("tk_sk_linreg.onnx")
SCRIPT = [
    ("AI.TENSORSET", "a", "FLOAT", 2, 2, "VALUES", 1, 2, 3, 4),
    ("AI.TENSORSET", "b", "FLOAT", 2, 2, "BLOB", np.array([10, 20, 30, 40], np.float32).tobytes()),
    ("AI.TENSORGET", "a", "META"),
    ("AI.TENSORGET", "a", "VALUES"),
    ("AI.TENSORGET", "b", "BLOB"),
    ("AI.TENSORGET", "a", "META", "VALUES"),
    ("AI.TENSORGET", "a", "META", "BLOB"),
    ("AI.TENSORSET", "bad", "FLOAT", 2, "VALUES", 1),
    ("AI.TENSORSET", "bad", "FLOAT8", 2, "VALUES", 1, 2),
    ("AI.TENSORSET", "bad", "FLOAT", 2, "BLOB", b"abc"),
    ("AI.TENSORSET", "s", "STRING", 2, "VALUES", "hello", "world"),
    ("AI.TENSORGET", "s", "VALUES"),
    ("AI.TENSORSET", "i", "INT64", 3, "VALUES", -1, 0, 1),
    ("AI.TENSORGET", "i", "VALUES"),
    ("AI.TENSORGET", "missing", "META"),
    ("SET", "str", "x"),
    ("AI.TENSORGET", "str", "META"),
    ("AI.TENSORSET", "str", "FLOAT", 1, "VALUES", 1),
    ("AI.TENSORSET",),
    ("AI.TENSORGET", "a", "NOPE"),
    ("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", ADD),
    ("AI.MODELSTORE", "m2", "ONNX", "CPU", "TAG", "v7", "BATCHSIZE", 4, "MINBATCHSIZE", 2,
     "BLOB", ADD),
    ("AI.MODELSTORE", "bad", "ONNX", "CPU", "BLOB", b"not a model"),
    ("AI.MODELSTORE", "bad", "TF", "CPU", "BLOB", ADD),
    ("AI.MODELSTORE", "str", "ONNX", "CPU", "BLOB", ADD),
    ("AI.MODELGET", "m", "META"),
    ("AI.MODELGET", "m2", "META"),
    ("AI.MODELGET", "nothing", "META"),
    ("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c"),
    ("AI.TENSORGET", "c", "VALUES"),
    ("AI.MODELRUN", "m", "INPUTS", "a", "b", "OUTPUTS", "c2"),
    ("AI.TENSORGET", "c2", "META", "VALUES"),
    ("AI.MODELEXECUTE", "m", "INPUTS", 1, "a", "OUTPUTS", 1, "c"),
    ("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "missing", "OUTPUTS", 1, "c"),
    ("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "str"),
    ("AI.MODELEXECUTE", "nothing", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c"),
    ("AI.MODELEXECUTE", "a", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c"),
    ("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c", "TIMEOUT", 1000),
    ("AI.TENSORGET", "c", "VALUES"),
    ("AI.DAGEXECUTE", "LOAD", 2, "a", "b", "PERSIST", 1, "d", "|>",
     "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "t", "|>",
     "AI.MODELEXECUTE", "m", "INPUTS", 2, "t", "a", "OUTPUTS", 1, "d"),
    ("AI.TENSORGET", "d", "VALUES"),
    ("AI.DAGEXECUTE_RO", "LOAD", 1, "a", "|>", "AI.TENSORGET", "a", "VALUES"),
    ("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.TENSOROP", "sm", "SOFTMAX", "a", "AXIS", 1,
     "|>", "AI.TENSORGET", "sm", "VALUES"),
    ("AI.DAGEXECUTE", "LOAD", 1, "nope", "|>", "AI.TENSORGET", "nope", "VALUES"),
    ("AI.DAGEXECUTE", "PERSIST", 1, "x", "|>", "AI.TENSORSET", "x", "FLOAT", 1, "VALUES", 5),
    ("AI.TENSORGET", "x", "VALUES"),
    ("AI.MODELSTORE", "m", "ONNX", "CPU", "TAG", "second", "BLOB", ADD),
    ("AI.MODELVERSIONS", "m"),
    ("AI.MODELROLLBACK", "m"),
    ("AI.MODELGET", "m", "META"),
    ("AI.MODELPROMOTE", "m", "VERSION", 2),
    ("AI.MODELPROMOTE", "m", "VERSION", 9),
    ("AI.MODELEXECUTE", "m", "VERSION", 1, "INPUTS", 2, "a", "b", "OUTPUTS", 1, "v1"),
    ("AI.TENSORGET", "v1", "VALUES"),
    ("AI.ROUTERSET", "r", "SPLIT", "m", 1, "m2", 0),
    ("AI.ROUTERGET", "r"),
    ("AI.MODELEXECUTE", "r", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "routed"),
    ("AI.TENSORGET", "routed", "VALUES"),
    ("AI.ROUTERWEIGHT", "r", "m", 0, "m2", 1),
    ("AI.ROUTERSET", "r2", "SPLIT", "nothing", 1),
    ("AI.ROUTERSET", "a", "SPLIT", "m", 1),
    ("AI.INFO", "m2"),
    ("AI.INFO", "nothing"),
    ("AI.CONFIG", "GET", "THREADS_PER_QUEUE"),
    ("AI.CONFIG", "NOPE", 1),
    ("AI.SCRIPTEXECUTE", "s", "f", "KEYS", 1, "a"),
    ("AI.MODELDEL", "m2"),
    ("AI.MODELDEL", "m2"),
    ("AI.MODELDEL", "a"),
    ("AI.TENSORSET", "a", "FLOAT", 1, "VALUES", 9),
    ("AI.TENSORGET", "a", "VALUES"),
    ("HSET", "h", "f1", "1.5", "f2", "-2", "s", "abc"),
    ("AI.TENSORFROMHASH", "fh", "FLOAT", "h", "f2", "f1", "f2"),
    ("AI.TENSORGET", "fh", "META", "VALUES"),
    ("AI.TENSORFROMHASH", "fh", "FLOAT", "h", "f1", "nope"),
    ("AI.TENSORFROMHASH", "fh", "FLOAT", "h", "s"),
    ("AI.TENSORFROMHASH", "fh", "FLOAT", "nohash", "f1"),
    ("AI.TENSORFROMHASH", "fh", "FLOAT", "str", "f1"),
    ("AI.TENSORFROMHASH", "str", "FLOAT", "h", "f1"),
    ("AI.TENSORFROMHASH", "fh", "FLOAT", "a", "f1"),
    ("AI.TENSORFROMHASH", "h", "FLOAT", "h", "f1"),
    ("TYPE", "h"),
    ("AI.MODELSTORE", "lin", "ONNX", "CPU", "TAG", "linear", "META", "owner", "risk",
     "BLOB", LINREG),
    ("AI.MODELLIST",),
    ("AI.MODELLIST", "MATCH", "l*", "WITHMETA"),
    ("AI.MODELLIST", "COUNT", 0),
    ("AI._MODELSCAN",),
    ("AI._MODELSCAN", "extra"),
    ("AI.TENSORSET", "ex", "FLOAT", 2, 6, "VALUES", *range(1, 13)),
    ("AI.TENSORSET", "ebg", "FLOAT", 1, 6, "VALUES", *([0.5] * 6)),
    ("AI.EXPLAIN", "lin", "INPUTS", 1, "ex", "BACKGROUND", 1, "ebg", "OUTPUTS", 1, "att",
     "METHOD", "EXACT"),
    ("AI.TENSORGET", "att", "META", "VALUES"),
    ("AI.EXPLAIN", "lin", "INPUTS", 1, "missing", "OUTPUTS", 1, "att"),
    ("AI.EXPLAIN", "nothing", "INPUTS", 1, "ex", "OUTPUTS", 1, "att"),
]


def normalize(reply):
    """Replies compared as they come, except model version timestamps (taken when stored)."""
    if isinstance(reply, dict):
        return {k: b"<time>" if k in (b"created", b"promoted") else normalize(v)
                for k, v in reply.items()}
    if isinstance(reply, list):
        out = []
        skip = False
        for i, v in enumerate(reply):
            if skip:
                skip = False
                out.append(b"<time>")
                continue
            if v in (b"created", b"promoted"):
                skip = True
            out.append(normalize(v))
        return out
    return reply


@pytest.mark.parametrize("protocol", [2, 3])
def test_same_replies_as_locus_server(module, locus, protocol):
    a = redis.Redis(port=locus.port, protocol=protocol)
    b = redis.Redis(port=module.port, protocol=protocol)
    for c in (a, b):
        c.flushall()
    for call in SCRIPT:
        got, want = outcome(b, *call), outcome(a, *call)
        if call[0] == "AI.MODELVERSIONS":
            got, want = (got[0], normalize(got[1])), (want[0], normalize(want[1]))
        if call[0] == "AI._MODELSCAN" and got[0] == "ok":
            got, want = (got[0], sorted(got[1])), (want[0], sorted(want[1]))
        assert got == want, (call[:4], got, want)


def test_types_memory_copy_digest_dump(m):
    m.execute_command("AI.TENSORSET", "t", "FLOAT", 2, 2, "VALUES", 1, 2, 3, 4)
    m.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", ADD)
    m.execute_command("AI.ROUTERSET", "r", "SPLIT", "m", 1)
    assert m.type("t") == b"AI_TENSOR"
    assert m.type("m") == b"AI__MODEL"
    assert m.type("r") == b"AI_ROUTER"
    assert m.memory_usage("t") >= 16
    assert m.memory_usage("m") >= len(ADD)
    assert m.copy("t", "t2") and m.copy("m", "m2") and m.copy("r", "r2")
    assert m.execute_command("AI.TENSORGET", "t2", "VALUES") == [b"1", b"2", b"3", b"4"]
    assert m.execute_command("DEBUG", "DIGEST-VALUE", "t") == \
        m.execute_command("DEBUG", "DIGEST-VALUE", "t2")
    m.execute_command("AI.TENSORSET", "t2", "FLOAT", 1, "VALUES", 5)
    assert m.execute_command("DEBUG", "DIGEST-VALUE", "t") != \
        m.execute_command("DEBUG", "DIGEST-VALUE", "t2")
    dumped = m.dump("m")
    m.restore("m3", 0, dumped)
    m.execute_command("AI.TENSORSET", "b", "FLOAT", 2, 2, "VALUES", 1, 1, 1, 1)
    for key in ("m2", "m3", "r2"):
        m.execute_command("AI.MODELEXECUTE", key, "INPUTS", 2, "t", "b", "OUTPUTS", 1, "o")
        assert m.execute_command("AI.TENSORGET", "o", "VALUES") == [b"2", b"3", b"4", b"5"]
    m.delete("m", "m2", "m3")
    m.execute_command("AI.TENSORSET", "t", "FLOAT", 1, "VALUES", 1)


def test_key_specs_and_getkeys(m):
    m.set_response_callback("COMMAND", lambda r, **kw: r)
    assert m.execute_command("COMMAND", "GETKEYS", "AI.MODELEXECUTE", "m", "INPUTS", 2, "a",
                             "b", "OUTPUTS", 1, "c") == [b"m", b"a", b"b", b"c"]
    # A DAG's keys: its LOAD and PERSIST keys and the models its ops run.
    keys = m.execute_command("COMMAND", "GETKEYS", "AI.DAGEXECUTE", "LOAD", 1, "a", "PERSIST",
                             1, "o", "|>", "AI.MODELEXECUTE", "m", "INPUTS", 1, "a",
                             "OUTPUTS", 1, "o")
    assert sorted(keys) == [b"a", b"m", b"o"]
    # A tensor op's sources and TOPK's second output, where the op puts them.
    assert m.execute_command("COMMAND", "GETKEYS", "AI.TENSOROP", "d", "ADD", "x", "y") == \
        [b"d", b"x", b"y"]
    assert m.execute_command("COMMAND", "GETKEYS", "AI.TENSOROP", "top", "TOPK", "p", 5,
                             "AXIS", 1, "VALUES", "vals") == [b"top", b"p", b"vals"]
    info = m.execute_command("COMMAND", "INFO", "AI.TENSORSET")[0]
    assert info[0] == b"ai.tensorset" and info[1] == -1
    assert b"write" in info[2] and b"denyoom" in info[2]
    specs = m.execute_command("COMMAND", "INFO", "AI.MODELEXECUTE")[0][8]
    assert len(specs) == 3
    assert [s[1] for s in specs] == [[b"RO", b"access"], [b"RO", b"access"], [b"OW", b"update"]]


def slow_run(c, seconds):
    """Sets `n` so that the `slow` model's run on `x` takes at least `seconds` (doubling it)."""
    n = 20000
    while True:
        c.execute_command("AI.TENSORSET", "n", "INT64", 1, "VALUES", n)
        t0 = time.perf_counter()
        c.execute_command("AI.MODELEXECUTE", "slow", "INPUTS", 2, "x", "n", "OUTPUTS", 1, "y")
        if time.perf_counter() - t0 >= seconds or n > 50_000_000:
            return
        n *= 2


@pytest.mark.serial
def test_runs_do_not_block_the_main_thread(m, module):
    """A model that computes for a while answers later; meanwhile Redis serves others."""
    m.execute_command("AI.MODELSTORE", "slow", "ONNX", "CPU", "BLOB", blob("slow.onnx"))
    m.execute_command("AI.TENSORSET", "x", "FLOAT", 1, "VALUES", 1)
    slow_run(m, 0.4)
    done = {}

    def slow():
        c = module.client()
        t = time.perf_counter()
        done["reply"] = c.execute_command("AI.MODELEXECUTE", "slow", "INPUTS", 2, "x", "n",
                                          "OUTPUTS", 1, "out")
        done["took"] = time.perf_counter() - t

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.02)
    worst = 0.0
    pings = 0
    other = module.client()
    while th.is_alive():
        t = time.perf_counter()
        assert other.ping()
        worst = max(worst, time.perf_counter() - t)
        pings += 1
        time.sleep(0.002)
    th.join()
    assert done["reply"] == b"OK"
    assert done["took"] >= 0.3 and pings > 20
    assert worst < 0.05, worst
    out = m.execute_command("AI.TENSORGET", "out", "VALUES")
    n = int(m.execute_command("AI.TENSORGET", "n", "VALUES")[0])
    assert float(out[0]) == 1 + n


def fill(c):
    """A tensor, a model with two versions (the second live), a router and a run's output."""
    c.execute_command("AI.TENSORSET", "t", "FLOAT", 2, 2, "VALUES", 1, 2, 3, 4)
    c.execute_command("AI.TENSORSET", "s", "STRING", 2, "VALUES", "a", "bc")
    c.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "TAG", "one", "BLOB", ADD)
    c.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "TAG", "two", "BLOB", ADD)
    c.execute_command("AI.ROUTERSET", "r", "SPLIT", "m", 1)
    c.execute_command("AI.MODELEXECUTE", "r", "INPUTS", 2, "t", "t", "OUTPUTS", 1, "o")


def check_filled(c):
    assert c.execute_command("AI.TENSORGET", "t", "VALUES") == [b"1", b"2", b"3", b"4"]
    assert c.execute_command("AI.TENSORGET", "s", "VALUES") == [b"a", b"bc"]
    assert c.execute_command("AI.TENSORGET", "o", "VALUES") == [b"2", b"4", b"6", b"8"]
    versions = c.execute_command("AI.MODELVERSIONS", "m")
    assert [v[v.index(b"tag") + 1] for v in versions] == [b"one", b"two"]
    assert [v[v.index(b"status") + 1] for v in versions] == [b"previous", b"live"]
    assert c.execute_command("AI.ROUTERGET", "r")
    c.execute_command("AI.MODELEXECUTE", "r", "INPUTS", 2, "o", "t", "OUTPUTS", 1, "o2")
    assert c.execute_command("AI.TENSORGET", "o2", "VALUES") == [b"3", b"6", b"9", b"12"]


def test_rdb_save_and_load():
    s = ModuleServer()
    try:
        c = s.client()
        fill(c)
        c.save()
        s.stop(keep_dir=True)
        s = ModuleServer(workdir=s.workdir, port=s.port)
        check_filled(s.client())
        # DEBUG RELOAD: save and load in place.
        c = s.client()
        c.execute_command("DEBUG", "RELOAD")
        check_filled(c)
    finally:
        s.stop()


def test_aof_rewrite_and_replay():
    s = ModuleServer("--appendonly", "yes")
    try:
        c = s.client()
        fill(c)
        c.bgrewriteaof()
        for _ in range(200):
            if c.info("persistence")["aof_rewrite_in_progress"] == 0 and \
                    c.info("persistence")["aof_rewrite_scheduled"] == 0:
                break
            time.sleep(0.05)
        # Written after the rewrite: logged as commands (the run as its output).
        c.execute_command("AI.TENSORSET", "late", "FLOAT", 1, 2, "VALUES", 7, 8)
        c.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "late", "late", "OUTPUTS", 1,
                          "late2")
        s.stop(keep_dir=True)
        s = ModuleServer("--appendonly", "yes", workdir=s.workdir, port=s.port)
        c = s.client()
        check_filled(c)
        assert c.execute_command("AI.TENSORGET", "late2", "VALUES") == [b"14", b"16"]
        aof_dir = os.path.join(s.workdir, "appendonlydir")
        logged = b"".join(open(os.path.join(aof_dir, f), "rb").read()
                          for f in os.listdir(aof_dir) if f.endswith(".incr.aof"))
        assert b"AI._RESTORE" not in logged and b"AI.MODELEXECUTE" not in logged
        assert b"late2" in logged
    finally:
        s.stop()


def test_replica_gets_outputs_not_runs():
    master = ModuleServer()
    replica = ModuleServer("--replicaof", "127.0.0.1", master.port)
    try:
        c, rc = master.client(), replica.client()
        deadline = time.time() + 20
        while rc.info("replication").get("master_link_status") != "up":
            assert time.time() < deadline, "the replica did not sync"
            time.sleep(0.05)
        fill(c)
        c.execute_command("AI.DAGEXECUTE", "LOAD", 1, "t", "PERSIST", 1, "d", "|>",
                          "AI.MODELEXECUTE", "m", "INPUTS", 2, "t", "t", "OUTPUTS", 1, "d")
        # An explanation replicates as the tensor it stored (KernelSHAP samples at random).
        c.execute_command("AI.MODELSTORE", "lin", "ONNX", "CPU", "BLOB", LINREG)
        c.execute_command("AI.TENSORSET", "ex", "FLOAT", 3, 6, "VALUES", *range(18))
        c.execute_command("AI.EXPLAIN", "lin", "INPUTS", 1, "ex", "OUTPUTS", 1, "att",
                          "METHOD", "KERNELSHAP", "NSAMPLES", 64)
        c.execute_command("WAIT", 1, 5000)
        deadline = time.time() + 10
        while time.time() < deadline and (rc.exists("d") == 0 or rc.exists("att") == 0):
            time.sleep(0.05)
        check_filled_read_only(rc)
        assert rc.execute_command("AI.TENSORGET", "d", "VALUES") == [b"2", b"4", b"6", b"8"]
        assert rc.execute_command("AI.TENSORGET", "att", "BLOB") == \
            c.execute_command("AI.TENSORGET", "att", "BLOB")
        stats = rc.info("commandstats")
        assert "cmdstat_ai.modelexecute" not in stats and "cmdstat_ai.dagexecute" not in stats
        assert "cmdstat_ai.explain" not in stats
        assert stats["cmdstat_ai.tensorset"]["calls"] >= 3
        assert stats["cmdstat_ai.modelstore"]["calls"] == 3
        # A replica refuses writes, runs included.
        with pytest.raises(redis.ReadOnlyError):
            rc.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "t", "t", "OUTPUTS", 1, "x")
    finally:
        replica.stop()
        master.stop()


def test_replica_attached_mid_stream_gets_every_output():
    """The module builds replicated commands only once replication has begun (Redis would drop
    them); a replica that attaches while runs go on still ends with every key the master has."""
    master = ModuleServer()
    replica = ModuleServer()
    try:
        c = master.client()
        c.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", ADD)
        c.execute_command("AI.TENSORSET", "t", "FLOAT", 1, 2, "VALUES", 1, 2)
        stop = threading.Event()
        made = []

        def stream():
            w = master.client()
            i = 0
            while not stop.is_set():
                w.execute_command("AI.TENSORSET", f"in{i}", "FLOAT", 1, 2, "VALUES", i, -i)
                w.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, f"in{i}", "t",
                                  "OUTPUTS", 1, f"out{i}")
                i += 1
            made.append(i)

        th = threading.Thread(target=stream)
        th.start()
        time.sleep(0.3)
        rc = replica.client()
        rc.replicaof("127.0.0.1", master.port)
        deadline = time.time() + 20
        while rc.info("replication").get("master_link_status") != "up":
            assert time.time() < deadline, "the replica did not sync"
            time.sleep(0.01)
        time.sleep(0.3)
        stop.set()
        th.join(10)
        n = made[0]
        assert n > 100, n
        assert c.dbsize() == 2 * n + 2
        # WAIT would count only this connection's writes (none): wait for the replica to catch
        # up with the writer's, then compare.
        deadline = time.time() + 10
        while rc.dbsize() != 2 * n + 2 and time.time() < deadline:
            time.sleep(0.05)
        assert rc.dbsize() == 2 * n + 2

        def outputs(client):
            p = client.pipeline(transaction=False)
            for i in range(n):
                p.execute_command("AI.TENSORGET", f"out{i}", "VALUES")
            return p.execute()

        got = outputs(c)
        assert got[n - 1] == [str(n).encode(), str(2 - (n - 1)).encode()]
        assert outputs(rc) == got
    finally:
        replica.stop()
        master.stop()


def check_filled_read_only(c):
    assert c.execute_command("AI.TENSORGET", "t", "VALUES") == [b"1", b"2", b"3", b"4"]
    assert c.execute_command("AI.TENSORGET", "o", "VALUES") == [b"2", b"4", b"6", b"8"]
    versions = c.execute_command("AI.MODELVERSIONS", "m")
    assert [v[v.index(b"tag") + 1] for v in versions] == [b"one", b"two"]


def test_multi_and_scripts_as_locus_server(module, locus):
    """Inside MULTI and Lua a run cannot wait for its batch: both hosts refuse it alike."""
    replies = []
    for port in (locus.port, module.port):
        c = redis.Redis(port=port)
        c.flushall()
        c.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", ADD)
        c.execute_command("AI.TENSORSET", "a", "FLOAT", 1, 2, "VALUES", 1, 2)
        p = c.pipeline(transaction=True)
        p.execute_command("AI.TENSORSET", "b", "FLOAT", 1, 2, "VALUES", 3, 4)
        p.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c")
        p.execute_command("AI.TENSORGET", "b", "VALUES")
        got = p.execute(raise_on_error=False)
        replies.append([str(r) if isinstance(r, Exception) else r for r in got])
        replies.append(outcome(c, "EVAL", "return redis.call('AI.TENSORGET', 'a', 'VALUES')", 0))
    assert replies[0] == replies[2]
    assert replies[1] == replies[3]


def test_loadmodule_arguments_and_kill_switch():
    """RedisAI's loadmodule settings configure the engine: MODEL_EXECUTION_TIMEOUT stops a
    runaway model (Redis stays responsive meanwhile), TIMEOUT answers TIMEDOUT while queued,
    and backend paths are accepted and ignored."""
    s = ModuleServer(module_args=["THREADS_PER_QUEUE", 1, "MODEL_EXECUTION_TIMEOUT", 600,
                                  "BACKENDSPATH", "/nonexistent"])
    try:
        c = s.client()
        c.execute_command("AI.MODELSTORE", "spin", "ONNX", "CPU", "BLOB", SPIN)
        c.execute_command("AI.MODELSTORE", "add", "ONNX", "CPU", "BLOB", ADD)
        c.execute_command("AI.TENSORSET", "x", "FLOAT", 1, "VALUES", 0)
        c.execute_command("AI.TENSORSET", "a", "FLOAT", 1, 2, "VALUES", 1, 1)
        outcome = {}

        def spin():
            c2 = s.client()
            t0 = time.perf_counter()
            try:
                c2.execute_command("AI.MODELEXECUTE", "spin", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
            except redis.ResponseError as e:
                outcome["error"] = str(e)
            outcome["elapsed"] = time.perf_counter() - t0

        t = threading.Thread(target=spin)
        t.start()
        time.sleep(0.15)
        assert c.execute_command("AI.MODELEXECUTE", "add", "INPUTS", 2, "a", "a", "OUTPUTS", 1,
                                 "b", "TIMEOUT", 100) == b"TIMEDOUT"
        assert c.ping()
        t.join(5)
        assert "terminat" in outcome["error"].lower() and outcome["elapsed"] < 2.0
        assert c.exists("y") == 0 and c.exists("b") == 0
        # A client that leaves before its answer: the run still stores its output.
        raw = s.client(single_connection_client=True)
        conn = raw.connection
        conn.send_command("AI.MODELEXECUTE", "add", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "left")
        conn.disconnect()
        deadline = time.time() + 5
        while c.exists("left") == 0 and time.time() < deadline:
            time.sleep(0.02)
        assert c.execute_command("AI.TENSORGET", "left", "VALUES") == [b"2", b"2"]
        assert "Locus: BACKENDSPATH is ignored" in s.read_log()
    finally:
        s.stop()


def test_concurrent_batched_runs_all_answer(m, module):
    """Many clients on a batching model: every run answers (a lost wake-up would leave a
    client waiting forever) with its own rows' result."""
    m.execute_command("AI.MODELSTORE", "mb", "ONNX", "CPU", "BATCHSIZE", 8, "BLOB", ADD)
    errors = []

    def client(i):
        c = module.client(socket_timeout=20)
        try:
            for j in range(150):
                c.execute_command("AI.TENSORSET", f"in{i}", "FLOAT", 1, 2, "VALUES", i, j)
                c.execute_command("AI.MODELEXECUTE", "mb", "INPUTS", 2, f"in{i}", f"in{i}",
                                  "OUTPUTS", 1, f"out{i}")
                got = c.execute_command("AI.TENSORGET", f"out{i}", "VALUES")
                if got != [str(2 * i).encode(), str(2 * j).encode()]:
                    errors.append((i, j, got))
        except Exception as e:
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


# redis-py drops the "ERR " of an error reply.
MODEL_GONE = "model was deleted or replaced while the run was queued; the run was dropped"


@pytest.mark.parametrize("how", ["DEL", "UNLINK", "SET", "AI.MODELDEL", "FLUSHDB", "FLUSHALL"])
@pytest.mark.parametrize("host", ["module", "locus"])
def test_queued_run_of_a_removed_model_is_dropped(request, host, how):
    """A run waiting for its batch whose model leaves the keyspace is dropped with the same
    error on both servers: the module's copy of the call's keys must not keep the model."""
    srv = request.getfixturevalue(host)
    c = srv.client(decode_responses=False)
    c.flushall()
    c.execute_command("AI.MODELSTORE", "mb", "ONNX", "CPU", "BATCHSIZE", 4, "MINBATCHSIZE", 4,
                      "BLOB", ADD)
    c.execute_command("AI.TENSORSET", "x", "FLOAT", 1, 2, "VALUES", 1, 2)
    got = {}

    def waiting():
        w = srv.client(socket_timeout=10, decode_responses=False)
        got["reply"] = outcome(w, "AI.MODELEXECUTE", "mb", "INPUTS", 2, "x", "x",
                               "OUTPUTS", 1, "o")

    th = threading.Thread(target=waiting)
    th.start()
    time.sleep(0.3)
    assert th.is_alive(), got
    if how == "SET":
        assert c.set("mb", "plain")
    elif how in ("FLUSHDB", "FLUSHALL"):
        c.execute_command(how)
    else:
        assert c.execute_command(how, "mb") in (1, b"OK")
    th.join(5)
    assert not th.is_alive(), "the waiting client was never answered"
    assert got["reply"] == ("error", MODEL_GONE)
    assert c.exists("o") == 0
    # The server goes on: the model stored again runs.
    c.delete("mb")
    c.execute_command("AI.MODELSTORE", "mb", "ONNX", "CPU", "BLOB", ADD)
    c.execute_command("AI.TENSORSET", "x", "FLOAT", 1, 2, "VALUES", 1, 2)
    assert c.execute_command("AI.MODELEXECUTE", "mb", "INPUTS", 2, "x", "x",
                             "OUTPUTS", 1, "o") == b"OK"
    assert c.execute_command("AI.TENSORGET", "o", "VALUES") == [b"2", b"4"]
