"""The official `redisai` Python client (1.2.x, on top of redis-py 5.x) against Locus's model
commands: modelstore / modelset, modelget, modeldel, modelscan, modelexecute / modelrun,
infoget / inforeset, with tensors moved by the client's tensorset / tensorget.

Known client-side incompatibilities, worked around minimally rather than skipped:
  * `modelstore`/`modelset` raise ValueError when `inputs`/`outputs` are given for any backend
    other than TF ("Inputs and outputs keywords should not be specified for this backend"),
    although RedisAI 1.2 (and Locus) accept them for ONNX; such a store is sent as the raw
    AI.MODELSTORE the client would otherwise build.
  * The client's device check allows only "CPU" and "GPU" (no "GPU:n"), client-side.
  * redisai has no STRING dtype: `tensorset` of strings raises TypeError and `tensorget` of a
    STRING tensor cannot decode it, so the string model's input and its echoed output go
    through raw AI.TENSORSET / AI.TENSORGET (its INT64 label output uses `tensorget`).
  * The client's Pipeline has no model methods, and it runs its tensorget post-processing on
    every array reply of 4+ elements; model commands in a pipeline are queued with
    `execute_command` on the argument list the client's own command builder makes.
  * `modelscan` always emits an "Experimental" UserWarning; `modelset`/`modelrun` emit
    DeprecationWarnings (as against RedisAI): the tests expect them.
"""

import os
import threading
import time
import warnings

import numpy as np
import pytest
import redis

from conftest import _client

redisai = pytest.importorskip("redisai")
ort = pytest.importorskip("onnxruntime")
from redisai import command_builder  # noqa: E402

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
TOOLKIT = ["sk_linreg", "sk_logreg", "sk_rf", "sk_gbr", "xgb_clf", "lgbm_reg", "sm_ols",
           "torch_mlp", "torch_cnn"]


def blob(name):
    with open(os.path.join(MODELS, name), "rb") as f:
        return f.read()


def fraud_inputs(n, seed):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((n, 30)).astype(np.float32),
        rng.standard_normal((n, 256)).astype(np.float32),
    )


def ort_fraud(tx, ref):
    s = ort.InferenceSession(os.path.join(MODELS, "fraud.onnx"), providers=["CPUExecutionProvider"])
    return s.run(None, {"transaction": tx, "reference": ref})[0]


@pytest.fixture
def con(server_port, r2):
    # r2 flushes the server first. RESP2: redisai's post-processing expects flat arrays.
    c = redisai.Client(host="127.0.0.1", port=server_port)
    yield c
    c.close()


def test_store_get_execute_del(con, r2):
    assert con.modelstore("fraud", "ONNX", "CPU", blob("fraud.onnx"), tag="v1") == "OK"
    assert r2.type("fraud") == "AI__MODEL"
    meta = con.modelget("fraud", meta_only=True)
    assert meta == {
        "backend": "ONNX", "device": "CPU", "tag": "v1", "batchsize": 0, "minbatchsize": 0,
        "inputs": ["transaction", "reference"], "outputs": ["probabilities"],
        "minbatchtimeout": 0,
    }
    full = con.modelget("fraud")
    assert full["blob"] == blob("fraud.onnx")
    assert {k: v for k, v in full.items() if k != "blob"} == meta

    tx, ref = fraud_inputs(4, 11)
    assert con.tensorset("tx", tx) == "OK"
    assert con.tensorset("ref", ref) == "OK"
    assert con.modelexecute("fraud", ["tx", "ref"], ["out"]) == "OK"
    got = con.tensorget("out")
    assert got.dtype == np.float32 and got.shape == (4, 2)
    assert np.allclose(got, ort_fraud(tx, ref), rtol=1e-5, atol=1e-6)
    assert con.tensorget("out", meta_only=True) == {"dtype": "FLOAT", "shape": [4, 2]}
    # A single input / output may be given as a plain string.
    con.modelstore("dbl", "ONNX", "CPU", blob("int_identity.onnx"))
    con.tensorset("x", np.array([[1, 2, 3], [-4, 5, -6]], dtype=np.int64))
    assert con.modelexecute("dbl", "x", "y") == "OK"
    assert np.array_equal(con.tensorget("y"), np.array([[2, 4, 6], [-8, 10, -12]], dtype=np.int64))
    assert con.tensorget("y", as_numpy=False)["values"] == [2, 4, 6, -8, 10, -12]

    assert con.modeldel("fraud") == "OK"
    assert r2.exists("fraud") == 0
    with pytest.raises(redis.ResponseError) as e:
        con.modelget("fraud")
    assert str(e.value) == "model key is empty"
    with pytest.raises(redis.ResponseError) as e:
        con.modeldel("fraud")
    assert str(e.value) == "model key is empty"
    with pytest.raises(redis.ResponseError) as e:
        con.modelexecute("fraud", ["tx", "ref"], ["out2"])
    assert str(e.value) == "model key is empty"
    assert r2.exists("out2") == 0


def test_modelstore_options(con):
    assert con.modelstore("b", "onnx", "cpu", blob("fraud.onnx"), batch=8, minbatch=4,
                          minbatchtimeout=200, tag="batched") == "OK"
    meta = con.modelget("b", meta_only=True)
    # RedisAI echoes the device as written; the backend name is canonical.
    assert meta["device"].upper() == "CPU"
    assert meta["backend"] == "ONNX"
    assert (meta["batchsize"], meta["minbatchsize"], meta["minbatchtimeout"]) == (8, 4, 200)
    assert meta["tag"] == "batched"


def test_inputs_outputs_for_onnx(con):
    # The client refuses INPUTS/OUTPUTS for ONNX before sending anything...
    with pytest.raises(ValueError):
        con.modelstore("m", "ONNX", "CPU", blob("fraud.onnx"),
                       inputs=["transaction", "reference"], outputs=["probabilities"])
    # ...so send what it would have built for TF, with the ONNX backend.
    args = command_builder.modelstore("m", "TF", "CPU", blob("fraud.onnx"), None, None, None,
                                      None, ["transaction", "reference"], ["probabilities"])
    args[2] = "ONNX"
    assert con.execute_command(*args) == b"OK"
    meta = con.modelget("m", meta_only=True)
    assert meta["inputs"] == ["transaction", "reference"]
    assert meta["outputs"] == ["probabilities"]


def test_info_and_reset(con):
    con.modelstore("m", "ONNX", "CPU", blob("add.onnx"), tag="t")
    con.tensorset("a", np.ones((3, 2), dtype=np.float32))
    info = con.infoget("m")
    redisai = {"key": "m", "type": "MODEL", "backend": "ONNX", "device": "CPU", "tag": "t",
               "duration": 0, "samples": 0, "calls": 0, "errors": 0}
    # RedisAI's fields as RedisAI gives them, then Locus's latency and batch figures.
    assert {k: info[k] for k in redisai} == redisai
    assert list(info)[:len(redisai)] == list(redisai)
    assert info["p99_us"] == 0 and info["runs"] == 0
    for _ in range(3):
        assert con.modelexecute("m", ["a", "a"], ["c"]) == "OK"
    info = con.infoget("m")
    assert (info["calls"], info["samples"], info["errors"]) == (3, 9, 0)
    assert info["duration"] > 0
    assert np.array_equal(con.tensorget("c"), np.full((3, 2), 2, dtype=np.float32))
    assert con.inforeset("m") == "OK"
    assert con.infoget("m")["calls"] == 0


def test_modelscan(con):
    con.modelstore("m1", "ONNX", "CPU", blob("add.onnx"), tag="one")
    con.modelstore("m2", "ONNX", "CPU", blob("sum_all.onnx"))
    with pytest.warns(UserWarning, match="Experimental"):
        got = con.modelscan()
    assert sorted(got) == [["m1", "one"], ["m2", ""]]


def test_deprecated_modelset_modelrun(con):
    with pytest.warns(DeprecationWarning):
        assert con.modelset("m", "ONNX", "CPU", blob("fraud.onnx"), batch=4, minbatch=2, tag="old") == "OK"
    meta = con.modelget("m", meta_only=True)
    assert (meta["batchsize"], meta["minbatchsize"], meta["tag"]) == (4, 2, "old")
    tx, ref = fraud_inputs(2, 12)
    con.tensorset("tx", tx)
    con.tensorset("ref", ref)
    with pytest.warns(DeprecationWarning):
        assert con.modelrun("m", ["tx", "ref"], ["out"]) == "OK"
    assert np.allclose(con.tensorget("out"), ort_fraud(tx, ref), rtol=1e-5, atol=1e-6)


def test_errors_through_client(con, r2):
    con.modelstore("fraud", "ONNX", "CPU", blob("fraud.onnx"))
    con.tensorset("wide", np.zeros((2, 256), dtype=np.float32))
    con.tensorset("ints", np.zeros((2, 30), dtype=np.int32))
    con.tensorset("ref", np.zeros((2, 256), dtype=np.float32))
    con.tensorset("tx", np.zeros((2, 30), dtype=np.float32))
    cases = [
        (["wide", "ref"], ["out"], "Got invalid dimensions for input: transaction for the following "
         "indices  index: 1 Got: 256 Expected: 30  Please fix either the inputs or the model."),
        (["ints", "ref"], ["out"], "Unexpected input data type. Actual: (tensor(int32)) , expected: (tensor(float))"),
        (["wide"], ["out"], "Number of keys given as INPUTS here does not match model definition"),
        (["wide", "ref"], ["out", "o2"], "Number of keys given as OUTPUTS here does not match model definition"),
        (["nope", "ref"], ["out"], "tensor key is empty or in a different shard"),
    ]
    for inputs, outputs, text in cases:
        with pytest.raises(redis.ResponseError) as e:
            con.modelexecute("fraud", inputs, outputs)
        assert str(e.value) == text
    r2.set("str", "v")
    with pytest.raises(redis.ResponseError) as e:
        con.modelexecute("fraud", ["tx", "ref"], ["str"])
    assert str(e.value).startswith("WRONGTYPE")
    assert r2.get("str") == "v"
    assert r2.exists("out") == 0 and r2.exists("o2") == 0
    with pytest.raises(redis.ResponseError) as e:
        con.modelstore("t", "TORCH", "CPU", b"not a torchscript file")
    assert str(e.value) == "Could not load backend"
    with pytest.raises(redis.ResponseError) as e:
        con.modelstore("bad", "ONNX", "CPU", b"garbage")
    assert "protobuf parsing failed" in str(e.value).lower()
    with pytest.raises(redis.ResponseError) as e:
        con.modelstore("str", "ONNX", "CPU", blob("add.onnx"))
    assert str(e.value).startswith("WRONGTYPE")
    # "GPU:1" never leaves the client (its device whitelist is CPU / GPU).
    with pytest.raises(ValueError):
        con.modelstore("g", "ONNX", "GPU:1", blob("add.onnx"))
    if int(r2.info("ai").get("ai_onnxruntime_cuda", 0)) == 0:
        with pytest.raises(redis.ResponseError) as e:
            con.modelstore("g", "ONNX", "GPU", blob("add.onnx"))
        assert "CUDA" in str(e.value)
    assert r2.exists("t", "bad", "g") == 0


def test_string_model(con):
    con.modelstore("m", "ONNX", "CPU", blob("string_label.onnx"))
    with pytest.raises(TypeError):
        con.tensorset("s", np.array(["cat", "dog"]))
    con.execute_command("AI.TENSORSET", "s", "STRING", 4, "VALUES", "cat", "dog", "bird", "eel")
    assert con.modelexecute("m", "s", ["label", "echo"]) == "OK"
    assert np.array_equal(con.tensorget("label"), np.array([0, 1, 2, -1], dtype=np.int64))
    assert con.execute_command("AI.TENSORGET", "echo", "VALUES") == [b"cat", b"dog", b"bird", b"eel"]


def test_pipeline_model_commands(con):
    con.modelstore("m", "ONNX", "CPU", blob("add.onnx"))
    p = con.pipeline(transaction=False)
    p.tensorset("a", np.array([[1, 2]], dtype=np.float32))
    p.execute_command(*command_builder.modelexecute("m", ["a", "a"], ["c"], None))
    p.tensorget("c")
    res = p.execute()
    assert res[1] == b"OK"
    assert np.array_equal(res[2], np.array([[2, 4]], dtype=np.float32))


@pytest.mark.locus_only
def test_batching_through_client(con, server_port):
    con.modelstore("plain", "ONNX", "CPU", blob("fraud.onnx"))
    con.modelstore("batched", "ONNX", "CPU", blob("fraud.onnx"), batch=8, minbatch=4,
                   minbatchtimeout=200)
    solo = []
    for i in range(8):
        tx, ref = fraud_inputs(1, 300 + i)
        con.tensorset(f"tx{i}", tx)
        con.tensorset(f"ref{i}", ref)
        con.modelexecute("plain", [f"tx{i}", f"ref{i}"], [f"solo{i}"])
        solo.append(con.tensorget(f"solo{i}"))
    before = int(_client(server_port, 2).info("ai")["ai_batched_runs"])
    barrier = threading.Barrier(8)
    replies = [None] * 8

    def client(i):
        c = redisai.Client(host="127.0.0.1", port=server_port)
        barrier.wait()
        replies[i] = c.modelexecute("batched", [f"tx{i}", f"ref{i}"], [f"out{i}"])
        c.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert replies == ["OK"] * 8
    for i in range(8):
        assert np.allclose(con.tensorget(f"out{i}"), solo[i], rtol=1e-5, atol=1e-6)
    assert int(_client(server_port, 2).info("ai")["ai_batched_runs"]) > before


@pytest.mark.parametrize("name", TOOLKIT)
def test_toolkit_model_through_client(con, name):
    d = np.load(os.path.join(MODELS, f"tk_{name}.npz"))
    outputs = [str(o) for o in d["outputs"]]
    exact = {str(e) for e in d["exact"]}
    assert con.modelstore("m", "ONNX", "CPU", blob(f"tk_{name}.onnx")) == "OK"
    con.tensorset("x", d["X"])
    keys = [f"o_{o}" for o in outputs]
    assert con.modelexecute("m", "x", keys) == "OK"
    for o, k in zip(outputs, keys):
        got, want = con.tensorget(k), d[f"expect_{o}"]
        if o in exact:
            assert np.array_equal(got.ravel(), want.ravel()), o
        else:
            assert np.allclose(got.ravel(), want.ravel(), rtol=1e-4, atol=1e-5), o


def test_kill_switch_and_timedout_through_client(spawn):
    srv = spawn()
    c = srv.client()
    c.config_set("model-execution-timeout", 600)
    con = redisai.Client(host="127.0.0.1", port=srv.port)
    con.modelstore("spin", "ONNX", "CPU", blob("spin.onnx"))
    con.modelstore("add", "ONNX", "CPU", blob("add.onnx"))
    con.tensorset("x", np.zeros(1, dtype=np.float32))
    con.tensorset("a", np.ones((1, 2), dtype=np.float32))
    outcome = {}

    def spin():
        c2 = redisai.Client(host="127.0.0.1", port=srv.port)
        t0 = time.perf_counter()
        try:
            outcome["reply"] = c2.modelexecute("spin", "x", "y")
        except redis.ResponseError as e:
            outcome["error"] = str(e)
        outcome["elapsed"] = time.perf_counter() - t0
        c2.close()

    t = threading.Thread(target=spin)
    t.start()
    time.sleep(0.15)
    # The single worker is busy: a request that waits more than 100 ms is answered TIMEDOUT.
    assert con.modelexecute("add", ["a", "a"], ["b"], timeout=100) == "TIMEDOUT"
    assert c.ping()
    t.join(5)
    assert "error" in outcome, outcome
    assert "terminat" in outcome["error"].lower()
    assert outcome["elapsed"] < 2.0
    assert c.exists("y") == 0 and c.exists("b") == 0
    assert con.infoget("spin")["errors"] == 1
    assert con.modelexecute("add", ["a", "a"], ["b"], timeout=1000) == "OK"
    assert np.array_equal(con.tensorget("b"), np.full((1, 2), 2, dtype=np.float32))
    con.close()
