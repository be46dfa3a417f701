"""Model lifecycle: versions, staged stores, VERSION n, promote and rollback, metadata, the
catalog (AI.MODELLIST) and the audit stream, with persistence through snapshots, AOF replay and
rewrites, and atomic flips under load.

The models are real ONNX graphs built here: `scale(k)` multiplies its float input by k, so the
output tells which version answered.
"""

import tempfile
import threading
import time

import numpy as np
import pytest
import redis
from onnx import TensorProto, helper

from conftest import _client
from test_models import Runner, is_ok, put, spawn_ai

pytest.importorskip("onnxruntime")


def scale(k):
    """y = x * k, float [N, 4]."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["y"])], f"scale{k}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor("k", TensorProto.FLOAT, [1], [float(k)])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def store(c, key, k, *opts):
    return c.execute_command("AI.MODELSTORE", key, "ONNX", "CPU", *opts, "BLOB", scale(k))


def run(c, key, *version):
    """Runs `key` (optionally VERSION n) on ones and returns the factor it applied."""
    reply = c.execute_command("AI.DAGEXECUTE", "ROUTING", key, "|>", "AI.TENSORSET", "x",
                              "FLOAT", 2, 4, "VALUES", *([1] * 8), "|>", "AI.MODELEXECUTE", key,
                              *version, "INPUTS", 1, "x", "OUTPUTS", 1, "y", "|>",
                              "AI.TENSORGET", "y", "VALUES")
    values = [float(v) for v in reply[-1]]
    assert len(set(values)) == 1, f"a reply mixes versions: {values}"
    return values[0]


def versions(c, key):
    out = []
    for v in c.execute_command("AI.MODELVERSIONS", key):
        d = v if isinstance(v, dict) else dict(zip(v[::2], v[1::2]))
        out.append({(k.decode() if isinstance(k, bytes) else k): x for k, x in d.items()})
    return out


def status(c, key):
    return {v["version"]: v["status"] for v in versions(c, key)}


def as_text(v):
    return v.decode() if isinstance(v, bytes) else v


def error_of(c, *args):
    with pytest.raises(redis.ResponseError) as e:
        c.execute_command(*args)
    return str(e.value)


@pytest.fixture
def c(server_port):
    conn = _client(server_port, 2, decode=True)
    conn.flushall()
    yield conn
    conn.close()


def test_each_store_adds_a_version_and_the_newest_serves(c):
    assert is_ok(store(c, "m", 2))
    assert run(c, "m") == 2
    assert is_ok(store(c, "m", 3))
    assert run(c, "m") == 3
    assert run(c, "m", "VERSION", 1) == 2
    assert run(c, "m", "VERSION", 2) == 3
    assert status(c, "m") == {1: "previous", 2: "live"}
    # Plain RedisAI usage is unchanged: MODELGET shows the live version.
    raw = _client(c.connection_pool.connection_kwargs["port"], 2, decode=False)
    assert raw.execute_command("AI.MODELGET", "m", "BLOB") == scale(3)
    assert raw.execute_command("AI.MODELGET", "m", "VERSION", 1, "BLOB") == scale(2)
    raw.close()


def test_versions_record_who_what_and_when(c):
    c.client_setname("trainer")
    t0 = int(time.time() * 1000)
    assert is_ok(store(c, "m", 2, "TAG", "v1", "META", "run", "r-17", "auc", "0.91"))
    v = versions(c, "m")[0]
    import hashlib
    assert v["version"] == 1 and v["status"] == "live"
    assert t0 - 5 <= v["created"] <= int(time.time() * 1000) + 5
    assert v["created_by"] == "default" and v["client_name"] == "trainer"
    assert v["sha256"] == hashlib.sha256(scale(2)).hexdigest()
    assert v["size"] == len(scale(2)) and v["tag"] == "v1"
    assert v["meta"] == ["run", "r-17", "auc", "0.91"]
    meta = c.execute_command("AI.MODELGET", "m", "META")
    d = dict(zip(meta[::2], meta[1::2]))
    assert d["meta"] == ["run", "r-17", "auc", "0.91"]
    assert d["tag"] == "v1"


def test_staged_store_does_not_serve_until_promoted(c):
    assert is_ok(store(c, "m", 2))
    assert is_ok(store(c, "m", 5, "STAGED"))
    assert run(c, "m") == 2
    assert run(c, "m", "VERSION", 2) == 5
    assert status(c, "m") == {1: "live", 2: "staged"}
    assert is_ok(c.execute_command("AI.MODELPROMOTE", "m", "VERSION", 2))
    assert run(c, "m") == 5
    assert status(c, "m") == {1: "previous", 2: "live"}
    # A key whose only store was staged has nothing live.
    assert is_ok(store(c, "s", 2, "STAGED"))
    assert error_of(c, "AI.MODELEXECUTE", "s", "INPUTS", 1, "x", "OUTPUTS", 1, "y") == \
        "model has no live version: promote one first"
    assert run(c, "s", "VERSION", 1) == 2


def test_promote_and_rollback(c):
    for k in (2, 3, 4):
        assert is_ok(store(c, "m", k))
    assert run(c, "m") == 4
    assert is_ok(c.execute_command("AI.MODELPROMOTE", "m", "VERSION", 1))
    assert run(c, "m") == 2
    # Rollback returns to what was live before the last promote, then further back.
    assert is_ok(c.execute_command("AI.MODELROLLBACK", "m"))
    assert run(c, "m") == 4
    assert is_ok(c.execute_command("AI.MODELROLLBACK", "m"))
    assert run(c, "m") == 3
    assert is_ok(c.execute_command("AI.MODELROLLBACK", "m"))
    assert run(c, "m") == 2
    assert error_of(c, "AI.MODELROLLBACK", "m") == "no earlier live version to roll back to"
    assert run(c, "m") == 2


def test_lifecycle_errors_change_nothing(c):
    assert is_ok(store(c, "m", 2))
    assert is_ok(store(c, "m", 3))
    put(c, "t", np.ones((1, 4), np.float32))
    before = versions(c, "m")
    cases = [
        (("AI.MODELPROMOTE", "m", "VERSION", 9), "model has no version 9"),
        (("AI.MODELEXECUTE", "m", "VERSION", 9, "INPUTS", 1, "t", "OUTPUTS", 1, "y"),
         "model has no version 9"),
        (("AI.MODELGET", "m", "VERSION", 7, "META"), "model has no version 7"),
        (("AI.MODELDEL", "m", "VERSION", 2),
         "version is live: promote another version first, or delete the whole model"),
        (("AI.MODELDEL", "m", "VERSION", 5), "model has no version 5"),
        (("AI.MODELGET", "m", "VERSION", 0, "META"), "VERSION must be a positive integer"),
        (("AI.MODELGET", "m", "VERSION", "x", "META"), "VERSION must be a positive integer"),
        (("AI.MODELPROMOTE", "m", "VERSION", -1), "VERSION must be a positive integer"),
        (("AI.MODELPROMOTE", "m", "1", "2"), "syntax error"),
        (("AI.MODELGET", "t", "VERSION", 1, "META"),
         "WRONGTYPE Operation against a key holding the wrong kind of value"),
        (("AI.MODELPROMOTE", "t", "VERSION", 1),
         "WRONGTYPE Operation against a key holding the wrong kind of value"),
        (("AI.MODELVERSIONS", "nokey"), "model key is empty"),
        (("AI.MODELROLLBACK", "nokey"), "model key is empty"),
        (("AI.MODELSTORE", "m", "ONNX", "CPU", "META", "BLOB", scale(2)),
         "META needs field value pairs"),
        (("AI.MODELSTORE", "m", "ONNX", "CPU", "META", "run", "BLOB", scale(2)),
         "META needs field value pairs"),
        (("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", b"not onnx"), None),
        (("AI.MODELSTORE", "t", "ONNX", "CPU", "BLOB", scale(2)),
         "WRONGTYPE Operation against a key holding the wrong kind of value"),
        (("AI.MODELSTORE", "m", "ONNX", "CPU", "_STAMP", 1, "u", "c", "BLOB", scale(2)),
         "Invalid argument, expected BLOB"),
        (("AI.MODELVERSIONS", "m", "extra"), "wrong number of arguments for 'ai.modelversions' command"),
    ]
    for args, want in cases:
        got = error_of(c, *args)
        if want is not None:
            assert got == want, (args, got)
    assert versions(c, "m") == before
    assert run(c, "m") == 3


def test_delete_one_version_or_the_model(c):
    for k in (2, 3, 4):
        assert is_ok(store(c, "m", k))
    assert is_ok(c.execute_command("AI.MODELDEL", "m", "VERSION", 2))
    assert status(c, "m") == {1: "previous", 3: "live"}
    # Rollback skips a deleted version.
    assert is_ok(c.execute_command("AI.MODELROLLBACK", "m"))
    assert run(c, "m") == 2
    assert error_of(c, "AI.MODELPROMOTE", "m", "VERSION", 2) == "model has no version 2"
    # Numbers are never reused.
    assert is_ok(store(c, "m", 6))
    assert sorted(status(c, "m")) == [1, 3, 4]
    assert is_ok(c.execute_command("AI.MODELDEL", "m"))
    assert c.exists("m") == 0


@pytest.mark.locus_only
def test_versions_max_evicts_the_oldest_that_does_not_serve(c):
    assert c.config_set("model-versions-max", 3)
    try:
        assert is_ok(store(c, "m", 1))
        assert is_ok(store(c, "m", 2))
        assert is_ok(c.execute_command("AI.MODELPROMOTE", "m", "VERSION", 1))
        for k in (3, 4, 5):
            assert is_ok(store(c, "m", k, "STAGED"))
        # Version 1 is live, so 2, 3 went first.
        assert status(c, "m") == {1: "live", 4: "staged", 5: "staged"}
        assert run(c, "m") == 1
    finally:
        c.config_set("model-versions-max", 10)
    assert c.config_get("model-versions-max") == {"model-versions-max": "10"}


def test_only_the_serving_version_keeps_a_session(c):
    assert is_ok(store(c, "m", 2))
    one = c.memory_usage("m")
    assert is_ok(store(c, "m", 3))
    loaded = {v["version"]: v["loaded"] for v in versions(c, "m")}
    assert loaded == {1: 0, 2: 1}
    # MEMORY USAGE counts both versions' blobs, and the sessions pooled: one now.
    two_blobs = c.memory_usage("m")
    assert two_blobs >= 2 * len(scale(2))
    # Running an older version loads it again on demand: a second session is counted.
    assert run(c, "m", "VERSION", 1) == 2
    assert {v["version"]: v["loaded"] for v in versions(c, "m")}[1] == 1
    assert c.memory_usage("m") > max(one, two_blobs)
    assert is_ok(c.execute_command("AI.MODELPROMOTE", "m", "VERSION", 1))
    assert {v["version"]: v["loaded"] for v in versions(c, "m")} == {1: 1, 2: 0}


def test_modellist_catalog(c):
    assert is_ok(store(c, "fraud:a", 2, "BATCHSIZE", 8, "META", "owner", "risk"))
    assert is_ok(store(c, "fraud:a", 3))
    assert is_ok(store(c, "fraud:b", 4, "TAG", "b"))
    assert is_ok(store(c, "other", 5, "STAGED"))
    put(c, "fraud:t", np.ones((1, 4), np.float32))
    listing = [dict(zip(e[::2], e[1::2])) for e in c.execute_command("AI.MODELLIST")]
    assert [e["key"] for e in listing] == ["fraud:a", "fraud:b", "other"]
    a = listing[0]
    assert a["live"] == 2 and a["versions"] == 2 and a["device"] == "CPU"
    assert a["batchsize"] == 0 and "meta" not in a
    assert listing[2]["live"] is None
    only = c.execute_command("AI.MODELLIST", "MATCH", "fraud:*", "COUNT", 1, "WITHMETA")
    assert len(only) == 1
    d = dict(zip(only[0][::2], only[0][1::2]))
    assert d["key"] == "fraud:a" and d["meta"] == []
    assert error_of(c, "AI.MODELLIST", "COUNT", 0) == "COUNT must be a positive integer"
    assert error_of(c, "AI.MODELLIST", "BOGUS") == "syntax error"


def test_resp3_shapes(server_port):
    c = _client(server_port, 3, decode=True)
    c.flushall()
    assert is_ok(store(c, "m", 2, "META", "a", "b"))
    v = c.execute_command("AI.MODELVERSIONS", "m")[0]
    assert isinstance(v, dict) and v["meta"] == {"a": "b"} and v["status"] == "live"
    e = c.execute_command("AI.MODELLIST", "WITHMETA")[0]
    assert isinstance(e, dict) and e["key"] == "m"
    c.close()


def test_version_in_transactions(c):
    assert is_ok(store(c, "m", 2))
    p = c.pipeline(transaction=True)
    p.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "STAGED", "BLOB", scale(7))
    p.execute_command("AI.MODELPROMOTE", "m", "VERSION", 2)
    p.execute_command("AI.MODELROLLBACK", "m")
    p.execute_command("AI.MODELPROMOTE", "m", "VERSION", 2)
    assert all(is_ok(r) for r in p.execute())
    assert run(c, "m") == 7


def audit_entries(c, key="locus:audit"):
    return [fields for _, fields in c.xrange(key)]


@pytest.mark.locus_only
def test_audit_stream(c, server_port):
    c.client_setname("ops")
    assert is_ok(store(c, "m", 2))
    assert is_ok(store(c, "m", 3, "STAGED"))
    assert is_ok(c.execute_command("AI.MODELPROMOTE", "m", "VERSION", 2))
    assert is_ok(c.execute_command("AI.MODELROLLBACK", "m"))
    error_of(c, "AI.MODELPROMOTE", "m", "VERSION", 8)
    assert is_ok(c.execute_command("AI.MODELDEL", "m", "VERSION", 2))
    error_of(c, "AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", b"junk")
    assert is_ok(c.execute_command("AI.MODELDEL", "m"))
    e = audit_entries(c)
    assert [(x["command"], x["version"], x["outcome"]) for x in e[:-2]] == [
        ("AI.MODELSTORE", "1", "ok"),
        ("AI.MODELSTORE", "2", "ok"),
        ("AI.MODELPROMOTE", "2", "ok"),
        ("AI.MODELROLLBACK", "1", "ok"),
        ("AI.MODELPROMOTE", "8", "ERR model has no version 8"),
        ("AI.MODELDEL", "2", "ok"),
    ]
    assert e[-2]["command"] == "AI.MODELSTORE" and e[-2]["outcome"] != "ok"
    assert (e[-1]["command"], e[-1]["version"], e[-1]["outcome"]) == ("AI.MODELDEL", "", "ok")
    import hashlib
    assert e[0]["sha256"] == hashlib.sha256(scale(2)).hexdigest()
    assert all(x["client"] == "ops" and x["user"] == "default" for x in e)
    assert all(x["key"] == "m" and x["addr"].startswith("127.0.0.1:") for x in e)
    assert all(abs(int(x["time"]) - time.time() * 1000) < 60_000 for x in e)
    # Clients cannot write into it through the stream commands.
    for args in (("XADD", "locus:audit", "*", "f", "v"), ("XDEL", "locus:audit", "0-1"),
                 ("XTRIM", "locus:audit", "MAXLEN", 0)):
        assert error_of(c, *args) == \
            "'locus:audit' is the audit stream: only the server appends to it"
    assert len(audit_entries(c)) == len(e)


@pytest.mark.locus_only
def test_audit_wakes_readers_and_is_bounded(c, server_port):
    reader = Runner(server_port, "XREAD", "BLOCK", 5000, "STREAMS", "locus:audit", "$")
    reader.start()
    time.sleep(0.2)
    assert is_ok(store(c, "m", 2))
    reader.join(3)
    assert not reader.is_alive() and reader.error is None, reader.error
    assert b"AI.MODELSTORE" in repr(reader.reply).encode()
    assert c.config_set("audit-maxlen", 3)
    try:
        for _ in range(5):
            assert is_ok(c.execute_command("AI.MODELPROMOTE", "m", "VERSION", 1))
        assert c.xlen("locus:audit") == 3
    finally:
        c.config_set("audit-maxlen", 10000)
    assert c.config_set("audit-stream", "")
    try:
        assert is_ok(store(c, "n", 2))
        assert c.xlen("locus:audit") == 3
    finally:
        c.config_set("audit-stream", "locus:audit")


def lifecycle_script(c):
    c.client_setname("deployer")
    assert is_ok(store(c, "m", 2, "META", "run", "r1"))
    assert is_ok(store(c, "m", 3, "TAG", "t3"))
    assert is_ok(store(c, "m", 4, "STAGED"))
    assert is_ok(c.execute_command("AI.MODELPROMOTE", "m", "VERSION", 3))
    assert is_ok(store(c, "m", 5))
    assert is_ok(c.execute_command("AI.MODELDEL", "m", "VERSION", 2))
    error_of(c, "AI.MODELROLLBACK", "nokey")


def snapshot_of(c):
    return versions(c, "m"), audit_entries(c)


@pytest.mark.parametrize("how", ["snapshot", "aof", "aof-rewrite"])
def test_lifecycle_survives_restarts(spawn, how):
    d = tempfile.mkdtemp(prefix="locus-lifecycle-")
    args = ["--dir", d] + (["--appendonly", "yes"] if how != "snapshot" else [])
    srv = spawn(*args)
    c = srv.client()
    assert c.config_set("model-versions-max", 3)
    lifecycle_script(c)
    if how == "aof-rewrite":
        c.bgrewriteaof()
        time.sleep(1)
        # Changes after the rewrite go to the new incremental file.
        assert is_ok(store(c, "m", 6, "STAGED", "META", "after", "rewrite"))
        assert is_ok(c.execute_command("AI.MODELPROMOTE", "m", "VERSION", 5))
    if how == "snapshot":
        assert c.save()
    before = snapshot_of(c)
    # Version 1 was evicted by model-versions-max, 2 deleted.
    rewritten = how == "aof-rewrite"
    assert [v["version"] for v in before[0]] == ([3, 4, 5] if rewritten else [3, 4])
    srv.stop()
    srv2 = spawn(*args)
    c2 = srv2.client()
    after = snapshot_of(c2)
    for v in after[0]:
        v.pop("loaded")
    for v in before[0]:
        v.pop("loaded")
    assert after == before
    assert run(c2, "m") == (6 if rewritten else 5)
    # The rollback history survived too.
    assert is_ok(c2.execute_command("AI.MODELROLLBACK", "m"))
    assert run(c2, "m") == (5 if rewritten else 4)


def test_queued_run_finishes_on_its_version(spawn):
    """A run waiting for its batch on version 1 stays on version 1 when a new version is
    stored, and runs when version 1's batch fills; deleting version 1 drops it."""
    srv = spawn_ai(spawn)
    c = srv.client()
    assert is_ok(store(c, "m", 2, "BATCHSIZE", 2, "MINBATCHSIZE", 2))
    put(c, "x", np.ones((1, 4), np.float32))
    args = ("AI.MODELEXECUTE", "m", "INPUTS", 1, "x", "OUTPUTS", 1)
    waiting = Runner(srv.port, *args, "o1")
    waiting.start()
    time.sleep(0.2)
    assert is_ok(store(c, "m", 3, "BATCHSIZE", 2, "MINBATCHSIZE", 2))
    time.sleep(0.2)
    assert waiting.is_alive()
    assert is_ok(c.execute_command("AI.MODELEXECUTE", "m", "VERSION", 1, "INPUTS", 1, "x",
                                   "OUTPUTS", 1, "o2"))
    waiting.join(3)
    assert waiting.reply in (b"OK", "OK"), waiting.error
    assert [float(v) for v in c.execute_command("AI.TENSORGET", "o1", "VALUES")] == [2.0] * 4
    # A run queued on version 1 is dropped when version 1 is deleted.
    gone = Runner(srv.port, "AI.MODELEXECUTE", "m", "VERSION", 1, "INPUTS", 1, "x",
                  "OUTPUTS", 1, "o3")
    gone.start()
    time.sleep(0.2)
    assert is_ok(c.execute_command("AI.MODELDEL", "m", "VERSION", 1))
    gone.join(3)
    assert gone.error == \
        "ERR model was deleted or replaced while the run was queued; the run was dropped"
    assert c.exists("o3") == 0


def test_flips_under_load_are_atomic(spawn):
    """32 clients score while another flips the live version 1,000 times: no errors, and every
    reply comes wholly from one version."""
    srv = spawn()
    c = srv.client()
    assert is_ok(store(c, "m", 2))
    assert is_ok(store(c, "m", 3))
    stop = threading.Event()
    seen, errors = set(), []

    def score(i):
        cc = srv.client()
        key = f"{{m}}x{i}"
        try:
            while not stop.is_set():
                seen.add(run_keyed(cc, key))
        except Exception as e:  # noqa: BLE001 - any failure fails the test
            errors.append(repr(e))

    def run_keyed(cc, key):
        reply = cc.execute_command("AI.DAGEXECUTE", "ROUTING", "m", "|>", "AI.TENSORSET", key,
                                   "FLOAT", 8, 4, "VALUES", *([1] * 32), "|>",
                                   "AI.MODELEXECUTE", "m", "INPUTS", 1, key, "OUTPUTS", 1,
                                   key + "y", "|>", "AI.TENSORGET", key + "y", "VALUES")
        values = {float(v) for v in reply[-1]}
        assert len(values) == 1, f"a reply mixes versions: {values}"
        return values.pop()

    threads = [threading.Thread(target=score, args=(i,), daemon=True) for i in range(32)]
    for t in threads:
        t.start()
    for i in range(1000):
        assert is_ok(c.execute_command("AI.MODELPROMOTE", "m", "VERSION", 1 + i % 2))
    stop.set()
    for t in threads:
        t.join(10)
    assert not errors, errors[:3]
    assert seen == {2.0, 3.0}
    assert c.xlen("locus:audit") == 1002
