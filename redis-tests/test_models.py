"""ONNX models as keys, with redis-py over RESP2 and RESP3: AI.MODELSTORE / AI.MODELSET,
AI.MODELGET, AI.MODELDEL, AI._MODELSCAN, AI.INFO, AI.MODELEXECUTE / AI.MODELRUN, their
RedisAI 1.2 replies and error texts, the kill switch (model-execution-timeout), TIMEOUT,
dynamic batching, deleting or replacing a model while it runs, and models exported by common
ML toolkits (scikit-learn, XGBoost, LightGBM, PyTorch, statsmodels; files made by
models/make_toolkit_models.py) giving the toolkit's own predictions.

Results are compared with ONNX Runtime run in-process (the same library the server loads) or
with the predictions the toolkit itself made when the file was exported.
"""

import glob
import os
import threading
import time

import numpy as np
import pytest
import redis

from conftest import ErrorReply, RawConn, _client, TENSOR_TYPE

ort = pytest.importorskip("onnxruntime")

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
TYPE_NAME = "AI__MODEL"
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
MODEL_EMPTY = "ERR model key is empty"
TENSOR_EMPTY = "ERR tensor key is empty or in a different shard"
INPUTS_MISMATCH = "Number of keys given as INPUTS here does not match model definition"
OUTPUTS_MISMATCH = "Number of keys given as OUTPUTS here does not match model definition"
MODEL_GONE = "ERR model was deleted or replaced while the run was queued; the run was dropped"

DTYPES = {
    np.dtype(np.float32): "FLOAT",
    np.dtype(np.float64): "DOUBLE",
    np.dtype(np.int8): "INT8",
    np.dtype(np.int16): "INT16",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.uint16): "UINT16",
    np.dtype(np.uint32): "UINT32",
    np.dtype(np.uint64): "UINT64",
}
NP_OF = {v: k for k, v in DTYPES.items()}

_blobs = {}


def blob(name):
    if name not in _blobs:
        with open(os.path.join(MODELS, name), "rb") as f:
            _blobs[name] = f.read()
    return _blobs[name]


_sessions = {}


def ort_run(name, feeds):
    """The model run by ONNX Runtime in this process: the reference results."""
    if name not in _sessions:
        _sessions[name] = ort.InferenceSession(
            os.path.join(MODELS, name), providers=["CPUExecutionProvider"]
        )
    return _sessions[name].run(None, feeds)


# ---------------------------------------------------------------- helpers


def sval(v):
    return v.decode() if isinstance(v, bytes) else v


def as_dict(reply):
    """A META / AI.INFO reply as {str: value}: a flat array in RESP2, a map in RESP3."""
    if isinstance(reply, dict):
        return {sval(k): v for k, v in reply.items()}
    assert isinstance(reply, list) and len(reply) % 2 == 0, reply
    return {sval(k): v for k, v in zip(reply[0::2], reply[1::2])}


def server_text(exc):
    """The error as the server sent it, as far as redis-py lets us see it (it strips 'ERR ')."""
    text = str(exc)
    if not text.startswith(("WRONGTYPE", "ERR ")):
        text = "ERR " + text
    return text


def error_of(c, *args):
    """Runs a command that must fail; returns the error text with its 'ERR ' restored."""
    with pytest.raises(redis.ResponseError) as e:
        c.execute_command(*args)
    return server_text(e.value)


def wire_error(conn, *args):
    """The exact error line of a raw connection (no client-side rewriting)."""
    reply = conn.cmd(*args)
    assert isinstance(reply, ErrorReply), (args[:4], reply)
    return str(reply)


def put(c, key, arr):
    arr = np.ascontiguousarray(arr)
    return c.execute_command(
        "AI.TENSORSET", key, DTYPES[arr.dtype], *arr.shape, "BLOB", arr.tobytes()
    )


def get(c, key):
    """A stored tensor as a numpy array (META + BLOB)."""
    d = as_dict(c.execute_command("AI.TENSORGET", key, "META", "BLOB"))
    dtype = sval(d["dtype"])
    data = d["blob"]
    if isinstance(data, str):
        data = data.encode("latin-1")
    return np.frombuffer(data, dtype=NP_OF[dtype]).reshape(d["shape"])


def store(c, key, model_file, *opts, device="CPU"):
    return c.execute_command("AI.MODELSTORE", key, "ONNX", device, *opts, "BLOB", blob(model_file))


def execute(c, key, inputs, outputs, *extra):
    return c.execute_command(
        "AI.MODELEXECUTE", key, "INPUTS", len(inputs), *inputs, "OUTPUTS", len(outputs), *outputs,
        *extra
    )


def fraud_inputs(n, seed):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((n, 30)).astype(np.float32),
        rng.standard_normal((n, 256)).astype(np.float32),
    )


def is_ok(reply):
    return reply in ("OK", b"OK", True)


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def rbin(request, server_port):
    """Binary-safe client (decode_responses=False), once per protocol; .proto tells which."""
    c = _client(server_port, request.param, decode=False)
    c.flushall()
    c.proto = request.param
    yield c
    c.close()


def spawn_ai(spawn, timeout_ms=None):
    """A separate server for tests that tie up its single model worker or change its config."""
    srv = spawn()
    if timeout_ms is not None:
        c = srv.client()
        assert c.config_set("model-execution-timeout", timeout_ms)
        assert c.config_get("model-execution-timeout") == {"model-execution-timeout": str(timeout_ms)}
        c.close()
    return srv


class Runner(threading.Thread):
    """Runs one command on its own connection and records the reply or error and the time."""

    def __init__(self, port, *args):
        super().__init__(daemon=True)
        self.port, self.args = port, args
        self.reply = self.error = None
        self.elapsed = None

    def run(self):
        c = _client(self.port, 2, decode=False)
        t0 = time.perf_counter()
        try:
            self.reply = c.execute_command(*self.args)
        except redis.ResponseError as e:
            self.error = server_text(e)
        finally:
            self.elapsed = time.perf_counter() - t0
            c.close()


def wait_running(c, model_key, timeout=3.0):
    """Waits until a request on the model has been taken off the queue by a worker."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = c.info("ai")
        if info.get("ai_queue_CPU_length", 1) == 0:
            break
        time.sleep(0.01)
    time.sleep(0.05)


# ---------------------------------------------------------------- store / get / del / scan


def test_store_and_meta(rbin):
    assert is_ok(store(rbin, "m", "fraud.onnx", "TAG", "v1.0"))
    assert sval(rbin.type("m")) == TYPE_NAME
    raw_meta = rbin.execute_command("AI.MODELGET", "m", "META")
    # RedisAI's flat array, in RESP3 too, in its field order.
    assert isinstance(raw_meta, list), raw_meta
    assert [sval(k) for k in raw_meta[0::2]] == [
        "backend", "device", "tag", "batchsize", "minbatchsize", "inputs", "outputs",
        "minbatchtimeout",
    ]
    meta = as_dict(raw_meta)
    assert sval(meta["backend"]) == "ONNX"
    assert sval(meta["device"]) == "CPU"
    assert sval(meta["tag"]) == "v1.0"
    assert meta["batchsize"] == 0
    assert meta["minbatchsize"] == 0
    assert meta["minbatchtimeout"] == 0
    assert [sval(x) for x in meta["inputs"]] == ["transaction", "reference"]
    assert [sval(x) for x in meta["outputs"]] == ["probabilities"]
    assert "blob" not in meta


def test_get_blob(rbin):
    store(rbin, "m", "add.onnx")
    assert rbin.execute_command("AI.MODELGET", "m", "BLOB") == blob("add.onnx")
    both = as_dict(rbin.execute_command("AI.MODELGET", "m", "META", "BLOB"))
    assert both["blob"] == blob("add.onnx")
    assert sval(both["backend"]) == "ONNX"
    # The stored blob is a working model: store it again under another key and run it.
    assert is_ok(rbin.execute_command("AI.MODELSTORE", "m2", "ONNX", "CPU", "BLOB", both["blob"]))


def test_store_chunked_blob(rbin):
    data = blob("fraud.onnx")
    chunks = [data[i:i + 10000] for i in range(0, len(data), 10000)]
    assert len(chunks) > 2
    assert is_ok(rbin.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", *chunks))
    assert rbin.execute_command("AI.MODELGET", "m", "BLOB") == data


def test_batch_options_in_meta(rbin):
    store(rbin, "m", "fraud.onnx", "TAG", "b", "BATCHSIZE", 8, "MINBATCHSIZE", 4,
          "MINBATCHTIMEOUT", 200)
    meta = as_dict(rbin.execute_command("AI.MODELGET", "m", "META"))
    assert (meta["batchsize"], meta["minbatchsize"], meta["minbatchtimeout"]) == (8, 4, 200)
    assert sval(meta["tag"]) == "b"


def test_store_with_named_inputs_outputs(rbin):
    assert is_ok(store(rbin, "m", "fraud.onnx", "INPUTS", 2, "transaction", "reference",
                       "OUTPUTS", 1, "probabilities"))
    meta = as_dict(rbin.execute_command("AI.MODELGET", "m", "META"))
    assert [sval(x) for x in meta["inputs"]] == ["transaction", "reference"]
    assert [sval(x) for x in meta["outputs"]] == ["probabilities"]


def test_replace_model(rbin):
    store(rbin, "m", "fraud.onnx", "TAG", "old")
    assert is_ok(store(rbin, "m", "add.onnx", "TAG", "new"))
    meta = as_dict(rbin.execute_command("AI.MODELGET", "m", "META"))
    assert sval(meta["tag"]) == "new"
    assert [sval(x) for x in meta["inputs"]] == ["a", "b"]
    assert rbin.execute_command("AI.MODELGET", "m", "BLOB") == blob("add.onnx")


def test_modeldel(rbin, raw):
    store(rbin, "m", "add.onnx")
    assert is_ok(rbin.execute_command("AI.MODELDEL", "m"))
    assert rbin.exists("m") == 0
    conn = raw()
    assert wire_error(conn, "AI.MODELGET", "m", "META") == MODEL_EMPTY
    assert wire_error(conn, "AI.MODELDEL", "m") == MODEL_EMPTY
    rbin.set("s", "v")
    assert wire_error(conn, "AI.MODELDEL", "s") == WRONGTYPE
    assert wire_error(conn, "AI.MODELGET", "s") == WRONGTYPE
    assert rbin.get("s") == b"v"
    # A model is an ordinary key: DEL removes it too.
    store(rbin, "m", "add.onnx")
    assert rbin.delete("m") == 1
    assert wire_error(conn, "AI.MODELGET", "m") == MODEL_EMPTY


def test_modelscan(rbin):
    assert rbin.execute_command("AI._MODELSCAN") == []
    store(rbin, "m1", "add.onnx", "TAG", "alpha")
    store(rbin, "m2", "int_identity.onnx")
    put(rbin, "t", np.zeros(2, np.float32))
    rbin.set("s", "v")
    got = sorted([sval(k), sval(t)] for k, t in rbin.execute_command("AI._MODELSCAN"))
    assert got == [["m1", "alpha"], ["m2", ""]]
    rbin.execute_command("AI.MODELDEL", "m1")
    assert [[sval(x) for x in e] for e in rbin.execute_command("AI._MODELSCAN")] == [["m2", ""]]


def test_unsupported_backends(rbin, raw):
    conn = raw()
    # RedisAI's texts: TF needs its INPUTS named first; then no other backend can load.
    assert wire_error(conn, "AI.MODELSTORE", "m", "TF", "CPU", "BLOB", b"xx") == \
        "ERR INPUTS not specified for TF"
    for backend in ("TFLITE", "TORCH", "torch"):
        err = wire_error(conn, "AI.MODELSTORE", "m", backend, "CPU", "BLOB", b"xx")
        assert err == "ERR Could not load backend", err
    assert wire_error(conn, "AI.MODELSTORE", "m", "CAFFE", "CPU", "BLOB", b"xx") == \
        "ERR unsupported backend"
    assert rbin.exists("m") == 0


def test_gpu_on_cpu_runtime(rbin, server_port):
    store(rbin, "probe", "add.onnx")  # loads the backend, so INFO ai reports it
    info = _client(server_port, 2).info("ai")
    if int(info.get("ai_onnxruntime_cuda", 0)) == 1:
        pytest.skip("the loaded ONNX Runtime has CUDA")
    for device in ("GPU", "GPU:0", "gpu:1"):
        err = error_of(rbin, "AI.MODELSTORE", "g", "ONNX", device, "BLOB", blob("add.onnx"))
        assert "CUDA" in err, err
    assert rbin.exists("g") == 0


def test_gpu_execution_matches_cpu(rb, server_port):
    """On a server whose ONNX Runtime has the CUDA execution provider (the onnxruntime-gpu
    wheel, on a machine with a GPU): GPU and GPU:0 models give ONNX Runtime's CPU results, one
    request and a dynamic batch alike, and a device that does not exist is refused. Skipped on
    CPU-only runtimes, where test_gpu_on_cpu_runtime checks the error instead."""
    store(rb, "probe", "add.onnx")
    if int(_client(server_port, 2).info("ai").get("ai_onnxruntime_cuda", 0)) != 1:
        pytest.skip("the loaded ONNX Runtime has no CUDA execution provider")
    assert is_ok(store(rb, "g", "fraud.onnx", device="GPU"))
    assert is_ok(store(rb, "g0", "fraud.onnx", "BATCHSIZE", 8, device="GPU:0"))
    assert sval(as_dict(rb.execute_command("AI.MODELGET", "g0", "META"))["device"]) == "GPU:0"
    tx, ref = fraud_inputs(5, 7)
    put(rb, "tx", tx)
    put(rb, "ref", ref)
    (want,) = ort_run("fraud.onnx", {"transaction": tx, "reference": ref})
    for key in ("g", "g0"):
        assert is_ok(execute(rb, key, ["tx", "ref"], ["out"]))
        assert np.allclose(get(rb, "out"), want, rtol=1e-4, atol=1e-5), key
    rows = []
    for i in range(8):
        t, r = fraud_inputs(1, 300 + i)
        put(rb, f"tx{i}", t)
        put(rb, f"ref{i}", r)
        rows.append(ort_run("fraud.onnx", {"transaction": t, "reference": r})[0])
    runners = concurrent(server_port, [
        ("AI.MODELEXECUTE", "g0", "INPUTS", 2, f"tx{i}", f"ref{i}", "OUTPUTS", 1, f"out{i}")
        for i in range(8)
    ])
    for i, r in enumerate(runners):
        assert r.error is None and is_ok(r.reply), (i, r.error, r.reply)
        assert np.allclose(get(rb, f"out{i}"), rows[i], rtol=1e-4, atol=1e-5), i
    err = error_of(rb, "AI.MODELSTORE", "nodev", "ONNX", "GPU:64", "BLOB", blob("fraud.onnx"))
    assert err.startswith("ERR"), err
    assert rb.exists("nodev") == 0


def test_corrupt_blob(rbin, raw):
    conn = raw()
    for bad in (b"this is not an onnx model", blob("fraud.onnx")[:500]):
        err = wire_error(conn, "AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", bad)
        # ONNX Runtime's own text, without a code, as RedisAI passes it on.
        assert not err.startswith("ERR "), err
        assert "protobuf parsing failed" in err.lower(), err
    assert rbin.exists("m") == 0
    # A failed store leaves an existing model as it was.
    store(rbin, "m", "add.onnx", "TAG", "keep")
    wire_error(conn, "AI.MODELSTORE", "m", "ONNX", "CPU", "TAG", "x", "BLOB", b"garbage")
    assert sval(as_dict(rbin.execute_command("AI.MODELGET", "m", "META"))["tag"]) == "keep"


def test_store_wrongtype(rbin, raw):
    rbin.set("s", "v")
    put(rbin, "t", np.zeros(2, np.float32))
    conn = raw()
    for key in ("s", "t"):
        assert wire_error(conn, "AI.MODELSTORE", key, "ONNX", "CPU", "BLOB", blob("add.onnx")) == WRONGTYPE
        assert wire_error(conn, "AI.MODELSET", key, "ONNX", "CPU", "BLOB", blob("add.onnx")) == WRONGTYPE
    assert rbin.get("s") == b"v"
    assert sval(rbin.type("t")) == TENSOR_TYPE


# ---------------------------------------------------------------- AI.INFO


def test_info_stats(rbin):
    store(rbin, "m", "fraud.onnx", "TAG", "t1")
    tx, ref = fraud_inputs(3, 1)
    put(rbin, "tx", tx)
    put(rbin, "ref", ref)
    info = as_dict(rbin.execute_command("AI.INFO", "m"))
    assert isinstance(rbin.execute_command("AI.INFO", "m"), list)
    # RedisAI's fields first, then Locus's own.
    assert list(info) == ["key", "type", "backend", "device", "tag", "duration", "samples",
                          "calls", "errors", "timeouts", "p50_us", "p90_us", "p99_us", "p999_us",
                          "runs", "avg_batch_size", "p99_batch_size"]
    assert sval(info["key"]) == "m"
    assert sval(info["type"]) == "MODEL"
    assert sval(info["backend"]) == "ONNX"
    assert sval(info["device"]) == "CPU"
    assert sval(info["tag"]) == "t1"
    assert (info["duration"], info["samples"], info["calls"], info["errors"]) == (0, 0, 0, 0)
    for i in range(2):
        assert is_ok(execute(rbin, "m", ["tx", "ref"], [f"out{i}"]))
    info = as_dict(rbin.execute_command("AI.INFO", "m"))
    assert info["calls"] == 2
    assert info["samples"] == 6
    assert info["errors"] == 0
    assert info["duration"] > 0
    assert 10 <= info["p50_us"] <= info["p90_us"] <= info["p99_us"] <= info["p999_us"]
    assert info["runs"] == 2 and float(info["avg_batch_size"]) == 1.0
    assert is_ok(rbin.execute_command("AI.INFO", "m", "RESETSTAT"))
    info = as_dict(rbin.execute_command("AI.INFO", "m"))
    assert (info["duration"], info["samples"], info["calls"], info["errors"]) == (0, 0, 0, 0)
    assert (info["p99_us"], info["runs"]) == (0, 0)


def test_info_errors(rbin):
    with pytest.raises(redis.ResponseError) as e:
        rbin.execute_command("AI.INFO", "nope")
    assert "cannot find run info for key" in str(e.value)
    # RedisAI answers the same for a key that holds something else.
    rbin.set("s", "v")
    assert error_of(rbin, "AI.INFO", "s") == "ERR cannot find run info for key"


# ---------------------------------------------------------------- running models


def test_fraud_matches_onnxruntime(rbin):
    store(rbin, "fraud", "fraud.onnx")
    tx, ref = fraud_inputs(5, 42)
    put(rbin, "tx", tx)
    put(rbin, "ref", ref)
    assert is_ok(execute(rbin, "fraud", ["tx", "ref"], ["out"]))
    got = get(rbin, "out")
    (want,) = ort_run("fraud.onnx", {"transaction": tx, "reference": ref})
    assert got.dtype == np.float32 and got.shape == (5, 2)
    assert np.allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)
    meta = as_dict(rbin.execute_command("AI.TENSORGET", "out", "META"))
    assert sval(meta["dtype"]) == "FLOAT" and meta["shape"] == [5, 2]
    assert sval(rbin.type("out")) == TENSOR_TYPE


def test_execute_overwrites_output_tensor(rbin):
    store(rbin, "add", "add.onnx")
    put(rbin, "a", np.array([[1, 2]], np.float32))
    put(rbin, "b", np.array([[10, 20]], np.float32))
    put(rbin, "c", np.zeros((3, 3), np.float64))
    assert is_ok(execute(rbin, "add", ["a", "b"], ["c"]))
    assert np.array_equal(get(rbin, "c"), np.array([[11, 22]], np.float32))
    # Same key as input and output.
    assert is_ok(execute(rbin, "add", ["a", "a"], ["a"]))
    assert np.array_equal(get(rbin, "a"), np.array([[2, 4]], np.float32))


def test_execute_with_timeout_that_is_not_hit(rbin):
    store(rbin, "add", "add.onnx")
    put(rbin, "a", np.ones((2, 2), np.float32))
    assert is_ok(execute(rbin, "add", ["a", "a"], ["c"], "TIMEOUT", 5000))
    assert np.array_equal(get(rbin, "c"), np.full((2, 2), 2, np.float32))


def test_int_model(rbin):
    store(rbin, "m", "int_identity.onnx")
    x = np.array([[1, -2, 3], [2**40, 0, -(2**40)]], np.int64)
    put(rbin, "x", x)
    assert is_ok(execute(rbin, "m", ["x"], ["y"]))
    got = get(rbin, "y")
    assert got.dtype == np.int64
    assert np.array_equal(got, 2 * x)
    vals = rbin.execute_command("AI.TENSORGET", "y", "VALUES")
    assert [int(v) for v in vals] == list((2 * x).ravel())


def test_string_model(rbin):
    store(rbin, "m", "string_label.onnx")
    words = ["dog", "cat", "fish", "bird", ""]
    assert is_ok(rbin.execute_command("AI.TENSORSET", "s", "STRING", len(words), "VALUES", *words))
    assert is_ok(execute(rbin, "m", ["s"], ["label", "echo"]))
    label = get(rbin, "label")
    assert label.dtype == np.int64 and label.shape == (5,)
    assert list(label) == [1, 0, -1, 2, -1]
    meta = as_dict(rbin.execute_command("AI.TENSORGET", "echo", "META"))
    assert sval(meta["dtype"]) == "STRING" and meta["shape"] == [5]
    assert [sval(v) for v in rbin.execute_command("AI.TENSORGET", "echo", "VALUES")] == words


def test_scalar_output(rbin):
    store(rbin, "m", "sum_all.onnx")
    put(rbin, "x", np.array([[1, 2], [3, 4.5]], np.float32))
    assert is_ok(execute(rbin, "m", ["x"], ["total"]))
    meta = as_dict(rbin.execute_command("AI.TENSORGET", "total", "META"))
    assert meta["shape"] == []
    assert get(rbin, "total").reshape(()) == np.float32(10.5)


def test_modelset_modelrun_deprecated(rbin):
    assert is_ok(rbin.execute_command(
        "AI.MODELSET", "m", "ONNX", "CPU", "TAG", "dep", "INPUTS", "transaction", "reference",
        "OUTPUTS", "probabilities", "BLOB", blob("fraud.onnx")))
    meta = as_dict(rbin.execute_command("AI.MODELGET", "m", "META"))
    assert sval(meta["tag"]) == "dep"
    assert [sval(x) for x in meta["inputs"]] == ["transaction", "reference"]
    assert [sval(x) for x in meta["outputs"]] == ["probabilities"]
    # MODELSET without INPUTS/OUTPUTS, with BATCHSIZE.
    assert is_ok(rbin.execute_command(
        "AI.MODELSET", "m2", "ONNX", "CPU", "BATCHSIZE", 4, "BLOB", blob("fraud.onnx")))
    assert as_dict(rbin.execute_command("AI.MODELGET", "m2", "META"))["batchsize"] == 4
    tx, ref = fraud_inputs(2, 3)
    put(rbin, "tx", tx)
    put(rbin, "ref", ref)
    (want,) = ort_run("fraud.onnx", {"transaction": tx, "reference": ref})
    assert is_ok(rbin.execute_command("AI.MODELRUN", "m", "INPUTS", "tx", "ref", "OUTPUTS", "o1"))
    assert np.allclose(get(rbin, "o1"), want, rtol=1e-5, atol=1e-6)
    assert is_ok(rbin.execute_command(
        "AI.MODELRUN", "m", "TIMEOUT", 5000, "INPUTS", "tx", "ref", "OUTPUTS", "o2"))
    assert np.allclose(get(rbin, "o2"), want, rtol=1e-5, atol=1e-6)
    assert is_ok(rbin.execute_command("AI.MODELRUN", "m2", "INPUTS", "tx", "ref", "OUTPUTS", "o3"))
    assert np.allclose(get(rbin, "o3"), want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- execute errors


@pytest.fixture
def fraud_setup(rb):
    """fraud model + valid inputs; 'out' must never be written by a failing command."""
    store(rb, "fraud", "fraud.onnx")
    tx, ref = fraud_inputs(2, 9)
    put(rb, "tx", tx)
    put(rb, "ref", ref)
    return rb


def test_execute_model_key_errors(fraud_setup, raw):
    rb = fraud_setup
    conn = raw()
    assert wire_error(conn, "AI.MODELEXECUTE", "nomodel", "INPUTS", 2, "tx", "ref", "OUTPUTS", 1, "out") == MODEL_EMPTY
    assert wire_error(conn, "AI.MODELRUN", "nomodel", "INPUTS", "tx", "ref", "OUTPUTS", "out") == MODEL_EMPTY
    assert wire_error(conn, "AI.MODELGET", "nomodel") == MODEL_EMPTY
    rb.set("s", "v")
    assert wire_error(conn, "AI.MODELEXECUTE", "s", "INPUTS", 2, "tx", "ref", "OUTPUTS", 1, "out") == WRONGTYPE
    assert wire_error(conn, "AI.MODELEXECUTE", "tx", "INPUTS", 2, "tx", "ref", "OUTPUTS", 1, "out") == WRONGTYPE
    assert rb.exists("out") == 0


def test_execute_syntax_errors(fraud_setup, raw):
    rb = fraud_setup
    conn = raw()
    x = "ERR wrong number of arguments for 'AI.MODELEXECUTE' command"
    # Fewer than 8 arguments is an arity error, as in RedisAI.
    assert wire_error(conn, "AI.MODELEXECUTE", "fraud", "OUTPUTS", 1, "out") == x
    assert wire_error(conn, "AI.MODELEXECUTE", "fraud", "NOTINPUTS", 2, "tx", "ref", "OUTPUTS", 1, "out") == "ERR INPUTS not specified"
    assert wire_error(conn, "AI.MODELEXECUTE", "fraud", "INPUTS", 2, "tx", "ref", "NOTOUTPUTS", 1, "out") == "ERR OUTPUTS not specified"
    assert wire_error(conn, "AI.MODELEXECUTE", "fraud", "INPUTS", 2, "tx", "ref", "out", "o2", "o3") == "ERR OUTPUTS not specified"
    assert wire_error(conn, "AI.MODELRUN", "fraud", "NOTINPUTS", "tx", "ref", "OUTPUTS", "out") == "ERR INPUTS not specified"
    # MODELRUN's INPUTS list runs up to an OUTPUTS keyword, so without one every remaining
    # argument is an input key: either complaint is a faithful reading of RedisAI's parser.
    err = wire_error(conn, "AI.MODELRUN", "fraud", "INPUTS", "tx", "ref", "NOTOUTPUTS", "out")
    assert err == INPUTS_MISMATCH, err
    assert rb.exists("out") == 0


def count_error(conn, *args):
    """The count-mismatch errors: RedisAI sends them without an 'ERR ' prefix (its source sets
    the bare text), which redis-py users see as the same message; accept either on the wire."""
    err = wire_error(conn, *args)
    return err[4:] if err.startswith("ERR ") else err


def test_execute_count_errors(fraud_setup, raw):
    rb = fraud_setup
    conn = raw()
    assert count_error(conn, "AI.MODELEXECUTE", "fraud", "INPUTS", 1, "tx", "OUTPUTS", 1, "out") == INPUTS_MISMATCH
    assert count_error(conn, "AI.MODELEXECUTE", "fraud", "INPUTS", 3, "tx", "ref", "tx", "OUTPUTS", 1, "out") == INPUTS_MISMATCH
    assert count_error(conn, "AI.MODELEXECUTE", "fraud", "INPUTS", 2, "tx", "ref", "OUTPUTS", 2, "out", "o2") == OUTPUTS_MISMATCH
    assert count_error(conn, "AI.MODELRUN", "fraud", "INPUTS", "tx", "OUTPUTS", "out") == INPUTS_MISMATCH
    assert count_error(conn, "AI.MODELRUN", "fraud", "INPUTS", "tx", "ref", "OUTPUTS", "out", "o2") == OUTPUTS_MISMATCH
    # And through redis-py, which strips a leading 'ERR ': the same message either way.
    with pytest.raises(redis.ResponseError) as e:
        execute(rb, "fraud", ["tx"], ["out"])
    assert str(e.value) == INPUTS_MISMATCH
    assert rb.exists("out") == 0
    assert rb.exists("o2") == 0


def test_execute_missing_input(fraud_setup, raw):
    rb = fraud_setup
    conn = raw()
    assert wire_error(conn, "AI.MODELEXECUTE", "fraud", "INPUTS", 2, "tx", "nope", "OUTPUTS", 1, "out") == TENSOR_EMPTY
    assert wire_error(conn, "AI.MODELRUN", "fraud", "INPUTS", "nope", "ref", "OUTPUTS", "out") == TENSOR_EMPTY
    rb.set("s", "v")
    assert wire_error(conn, "AI.MODELEXECUTE", "fraud", "INPUTS", 2, "tx", "s", "OUTPUTS", 1, "out") == WRONGTYPE
    assert rb.exists("out") == 0


def test_execute_output_holds_string(fraud_setup, raw):
    rb = fraud_setup
    rb.set("out", "precious")
    conn = raw()
    assert wire_error(conn, "AI.MODELEXECUTE", "fraud", "INPUTS", 2, "tx", "ref", "OUTPUTS", 1, "out") == WRONGTYPE
    assert wire_error(conn, "AI.MODELRUN", "fraud", "INPUTS", "tx", "ref", "OUTPUTS", "out") == WRONGTYPE
    assert rb.get("out") == b"precious"


def test_execute_signature_errors(fraud_setup, raw):
    rb = fraud_setup
    conn = raw()
    put(rb, "wide", np.zeros((2, 256), np.float32))
    put(rb, "int", np.zeros((2, 30), np.int32))
    put(rb, "flat", np.zeros(30, np.float32))
    put(rb, "tx1", np.zeros((1, 30), np.float32))
    # ONNX Runtime 1.11's texts (RedisAI 1.2.7's runtime), checked before the run.
    fix = " Please fix either the inputs or the model."
    assert wire_error(conn, "AI.MODELEXECUTE", "fraud", "INPUTS", 2, "wide", "ref", "OUTPUTS", 1, "out") == \
        "Got invalid dimensions for input: transaction for the following indices  index: 1 Got: 256 Expected: 30 " + fix
    assert wire_error(conn, "AI.MODELEXECUTE", "fraud", "INPUTS", 2, "int", "ref", "OUTPUTS", 1, "out") == \
        "Unexpected input data type. Actual: (tensor(int32)) , expected: (tensor(float))"
    assert wire_error(conn, "AI.MODELEXECUTE", "fraud", "INPUTS", 2, "tx", "tx", "OUTPUTS", 1, "out") == \
        "Got invalid dimensions for input: reference for the following indices  index: 1 Got: 30 Expected: 256 " + fix
    err = wire_error(conn, "AI.MODELEXECUTE", "fraud", "INPUTS", 2, "flat", "ref", "OUTPUTS", 1, "out")
    assert err == "Invalid rank for input: transaction Got: 1 Expected: 2" + fix, err
    # Batch sizes that disagree between inputs: ONNX Runtime refuses it at run time, in its
    # own words.
    err = wire_error(conn, "AI.MODELEXECUTE", "fraud", "INPUTS", 2, "tx1", "ref", "OUTPUTS", 1, "out")
    assert not err.startswith("ERR ") and err, err
    assert rb.exists("out") == 0
    # The model still works afterwards.
    assert is_ok(execute(rb, "fraud", ["tx", "ref"], ["out"]))
    assert get(rb, "out").shape == (2, 2)


def test_run_time_error_writes_no_output(rb):
    # Shapes that pass the signature check ([N, 2] each) but that ONNX Runtime cannot
    # broadcast: the run itself fails, and the existing output tensor is left as it was.
    store(rb, "add", "add.onnx")
    put(rb, "a", np.ones((2, 2), np.float32))
    put(rb, "b3", np.ones((3, 2), np.float32))
    put(rb, "c", np.array([7], np.int8))
    with pytest.raises(redis.ResponseError):
        execute(rb, "add", ["a", "b3"], ["c"])
    assert np.array_equal(get(rb, "c"), np.array([7], np.int8))
    info = as_dict(rb.execute_command("AI.INFO", "add"))
    assert info["errors"] == 1


# ---------------------------------------------------------------- kill switch and TIMEOUT


@pytest.mark.serial
def test_kill_switch(spawn):
    srv = spawn_ai(spawn, timeout_ms=500)
    c = srv.client(decode_responses=False)
    store(c, "spin", "spin.onnx")
    store(c, "add", "add.onnx")
    put(c, "x", np.zeros(1, np.float32))
    put(c, "a", np.ones((1, 2), np.float32))
    before = srv.client().info("ai")["ai_terminated_runs"]
    runner = Runner(srv.port, "AI.MODELEXECUTE", "spin", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
    pinger = srv.client()
    pinger.ping()
    lat = []
    runner.start()
    deadline = time.time() + 5
    while runner.is_alive() and time.time() < deadline:
        t0 = time.perf_counter()
        assert pinger.ping() is True
        lat.append(time.perf_counter() - t0)
        time.sleep(0.002)
    runner.join(5)
    assert not runner.is_alive(), "the runaway run was not stopped"
    assert runner.error is not None, runner.reply
    assert runner.elapsed < 2.0, runner.elapsed
    assert runner.elapsed >= 0.45, runner.elapsed
    assert "terminat" in runner.error.lower(), runner.error
    assert len(lat) >= 20, len(lat)
    p99 = float(np.percentile(lat, 99))
    assert p99 < 0.05, f"PING p99 {p99 * 1000:.1f} ms while the model ran"
    assert c.exists("y") == 0
    info = srv.client().info("ai")
    assert info["ai_terminated_runs"] == before + 1
    stats = as_dict(c.execute_command("AI.INFO", "spin"))
    assert (stats["calls"], stats["errors"]) == (1, 1)
    # The worker is free again.
    assert is_ok(execute(c, "add", ["a", "a"], ["b"]))
    assert np.array_equal(get(c, "b"), np.full((1, 2), 2, np.float32))


def test_timeout_while_queued(spawn):
    srv = spawn_ai(spawn, timeout_ms=1500)
    c = srv.client(decode_responses=False)
    store(c, "spin", "spin.onnx")
    store(c, "add", "add.onnx")
    put(c, "x", np.zeros(1, np.float32))
    put(c, "a", np.ones((1, 2), np.float32))
    spinner = Runner(srv.port, "AI.MODELEXECUTE", "spin", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
    spinner.start()
    wait_running(srv.client(), "spin")
    assert spinner.is_alive()
    t0 = time.perf_counter()
    reply = execute(c, "add", ["a", "a"], ["out"], "TIMEOUT", 100)
    elapsed = time.perf_counter() - t0
    assert reply == b"TIMEDOUT"
    assert 0.09 <= elapsed < 1.0, elapsed
    # The deprecated form's TIMEOUT (before INPUTS) too.
    reply = c.execute_command("AI.MODELRUN", "add", "TIMEOUT", 100, "INPUTS", "a", "a", "OUTPUTS", "out2")
    assert reply == b"TIMEDOUT"
    # Over raw RESP it is the simple string +TIMEDOUT.
    conn = RawConn(srv.port)
    try:
        assert conn.cmd("AI.MODELEXECUTE", "add", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "out3",
                        "TIMEOUT", 50) == "TIMEDOUT"
    finally:
        conn.close()
    spinner.join(5)
    assert spinner.error is not None
    assert c.exists("out") == 0 and c.exists("out2") == 0 and c.exists("out3") == 0
    assert c.exists("y") == 0
    # Timed-out requests are dropped, never run later.
    time.sleep(0.1)
    assert c.exists("out") == 0
    assert is_ok(execute(c, "add", ["a", "a"], ["out"], "TIMEOUT", 2000))
    assert np.array_equal(get(c, "out"), np.full((1, 2), 2, np.float32))


# ---------------------------------------------------------------- batching


def concurrent(port, commands):
    """Runs the commands at once, each on its own connection; returns the Runners."""
    runners = [Runner(port, *cmd) for cmd in commands]
    barrier = threading.Barrier(len(runners))
    for r in runners:
        orig = r.run

        def run(orig=orig):
            barrier.wait()
            orig()

        r.run = run
        r.start()
    for r in runners:
        r.join(10)
        assert not r.is_alive()
    return runners


@pytest.mark.locus_only
def test_dynamic_batching(rb, server_port):
    store(rb, "plain", "fraud.onnx")
    store(rb, "batched", "fraud.onnx", "BATCHSIZE", 8, "MINBATCHSIZE", 4, "MINBATCHTIMEOUT", 200)
    expected = []
    for i in range(8):
        tx, ref = fraud_inputs(1, 100 + i)
        put(rb, f"tx{i}", tx)
        put(rb, f"ref{i}", ref)
        assert is_ok(execute(rb, "plain", [f"tx{i}", f"ref{i}"], [f"solo{i}"]))
        solo = get(rb, f"solo{i}")
        (want,) = ort_run("fraud.onnx", {"transaction": tx, "reference": ref})
        assert np.allclose(solo, want, rtol=1e-5, atol=1e-6)
        expected.append(solo)
    info = _client(server_port, 2)
    before = info.info("ai")["ai_batched_runs"]
    runners = concurrent(server_port, [
        ("AI.MODELEXECUTE", "batched", "INPUTS", 2, f"tx{i}", f"ref{i}", "OUTPUTS", 1, f"out{i}")
        for i in range(8)
    ])
    for i, r in enumerate(runners):
        assert r.error is None and is_ok(r.reply), (i, r.error, r.reply)
        got = get(rb, f"out{i}")
        assert got.shape == (1, 2)
        assert np.allclose(got, expected[i], rtol=1e-5, atol=1e-6), (i, got, expected[i])
    after = info.info("ai")["ai_batched_runs"]
    assert after > before, (before, after)
    stats = as_dict(rb.execute_command("AI.INFO", "batched"))
    assert stats["calls"] == 8 and stats["samples"] == 8 and stats["errors"] == 0


def test_batching_multi_row_requests(rb, server_port):
    store(rb, "batched", "fraud.onnx", "BATCHSIZE", 6, "MINBATCHSIZE", 6, "MINBATCHTIMEOUT", 1000)
    rows = [1, 2, 3]
    wants = []
    for i, n in enumerate(rows):
        tx, ref = fraud_inputs(n, 200 + i)
        put(rb, f"tx{i}", tx)
        put(rb, f"ref{i}", ref)
        wants.append(ort_run("fraud.onnx", {"transaction": tx, "reference": ref})[0])
    runners = concurrent(server_port, [
        ("AI.MODELEXECUTE", "batched", "INPUTS", 2, f"tx{i}", f"ref{i}", "OUTPUTS", 1, f"out{i}")
        for i in range(len(rows))
    ])
    for i, r in enumerate(runners):
        assert r.error is None, r.error
        got = get(rb, f"out{i}")
        assert got.shape == (rows[i], 2)
        assert np.allclose(got, wants[i], rtol=1e-5, atol=1e-6)
    # Together they reached MINBATCHSIZE well before MINBATCHTIMEOUT.
    assert max(r.elapsed for r in runners) < 0.9


def test_batched_runs_start_while_the_event_loop_stays_busy(spawn):
    """Event loops tell batching workers about new jobs when they go idle; a loop kept busy by
    other clients must still hand them over promptly (one event loop, so they share it)."""
    srv = spawn("--io-threads", 1)
    c = _client(srv.port, 2, decode=False)
    store(c, "batched", "fraud.onnx", "BATCHSIZE", 32)
    tx, ref = fraud_inputs(1, 7)
    put(c, "tx", tx)
    put(c, "ref", ref)
    (want,) = ort_run("fraud.onnx", {"transaction": tx, "reference": ref})
    stop = threading.Event()

    def hammer():
        h = _client(srv.port, 2, decode=False)
        while not stop.is_set():
            p = h.pipeline(transaction=False)
            for _ in range(200):
                p.ping()
            p.execute()
        h.close()

    busy = [threading.Thread(target=hammer, daemon=True) for _ in range(3)]
    for t in busy:
        t.start()
    try:
        slowest = 0.0
        for i in range(20):
            t0 = time.perf_counter()
            assert is_ok(execute(c, "batched", ["tx", "ref"], [f"out{i}"]))
            slowest = max(slowest, time.perf_counter() - t0)
            assert np.allclose(get(c, f"out{i}"), want, rtol=1e-5, atol=1e-6)
    finally:
        stop.set()
        for t in busy:
            t.join(5)
    assert slowest < 0.25, slowest


def test_batching_refuses_output_without_batch_dim(rb, server_port):
    store(rb, "sum", "sum_all.onnx", "BATCHSIZE", 4, "MINBATCHSIZE", 4, "MINBATCHTIMEOUT", 2000)
    for i in range(4):
        put(rb, f"x{i}", np.full((1, 2), i, np.float32))
    runners = concurrent(server_port, [
        ("AI.MODELEXECUTE", "sum", "INPUTS", 1, f"x{i}", "OUTPUTS", 1, f"t{i}") for i in range(4)
    ])
    for r in runners:
        assert r.error is not None, r.reply
        assert "batch size" in r.error, r.error
    for i in range(4):
        assert rb.exists(f"t{i}") == 0
    # Alone (no batch), the same model runs.
    store(rb, "sum1", "sum_all.onnx")
    assert is_ok(execute(rb, "sum1", ["x3"], ["t"]))
    assert get(rb, "t").reshape(()) == 6.0


# ---------------------------------------------------------------- delete / replace while running


def test_delete_and_replace_while_running(spawn):
    srv = spawn_ai(spawn, timeout_ms=800)
    c = srv.client(decode_responses=False)
    store(c, "m", "spin.onnx")
    put(c, "x", np.zeros(1, np.float32))
    put(c, "a", np.ones((1, 2), np.float32))
    spinner = Runner(srv.port, "AI.MODELEXECUTE", "m", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
    spinner.start()
    wait_running(srv.client(), "m")
    t0 = time.perf_counter()
    assert is_ok(c.execute_command("AI.MODELDEL", "m"))
    assert time.perf_counter() - t0 < 0.3
    assert c.exists("m") == 0
    assert is_ok(store(c, "m", "add.onnx"))
    assert spinner.is_alive()
    spinner.join(5)
    assert spinner.error is not None and "terminat" in spinner.error.lower(), spinner.error
    assert c.exists("y") == 0
    assert is_ok(execute(c, "m", ["a", "a"], ["b"]))
    assert np.array_equal(get(c, "b"), np.full((1, 2), 2, np.float32))
    assert srv.alive()


def test_replace_and_delete_under_load(rb, server_port):
    store(rb, "f", "fraud.onnx")
    tx, ref = fraud_inputs(64, 5)
    put(rb, "tx", tx)
    put(rb, "ref", ref)
    (want,) = ort_run("fraud.onnx", {"transaction": tx, "reference": ref})
    results = []
    stop = threading.Event()

    def load(i):
        c = _client(server_port, 2, decode=False)
        while not stop.is_set():
            try:
                results.append(("ok", execute(c, "f", ["tx", "ref"], [f"o{i}"])))
            except redis.ResponseError as e:
                results.append(("err", server_text(e)))
        c.close()

    threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    c = _client(server_port, 2, decode=False)
    for _ in range(15):
        assert is_ok(store(c, "f", "fraud.onnx"))
        time.sleep(0.005)
        assert is_ok(c.execute_command("AI.MODELDEL", "f"))
        time.sleep(0.005)
        assert is_ok(store(c, "f", "fraud.onnx", "BATCHSIZE", 64))
    stop.set()
    for t in threads:
        t.join(10)
    c.close()
    assert results
    assert any(kind == "ok" for kind, _ in results)
    for kind, v in results:
        # A request queued when its model was replaced or deleted is dropped with a clear error.
        assert (kind == "ok" and is_ok(v)) or (kind == "err" and v in (MODEL_EMPTY, MODEL_GONE)), \
            (kind, v)
    for i in range(3):
        if rb.exists(f"o{i}"):
            assert np.allclose(get(rb, f"o{i}"), want, rtol=1e-5, atol=1e-6)
    assert rb.ping()


# ---------------------------------------------------------------- toolkit models

TOOLKIT = ["sk_linreg", "sk_logreg", "sk_rf", "sk_gbr", "xgb_clf", "lgbm_reg", "sm_ols",
           "torch_mlp", "torch_cnn"]


def test_toolkit_files_present():
    found = sorted(os.path.basename(p)[3:-5] for p in glob.glob(os.path.join(MODELS, "tk_*.onnx")))
    assert sorted(TOOLKIT + ["sk_logreg_zipmap"]) == found
    for name in found:
        for ext in ("onnx", "npz"):
            assert os.path.getsize(os.path.join(MODELS, f"tk_{name}.{ext}")) < 1 << 20


def toolkit_case(name):
    d = np.load(os.path.join(MODELS, f"tk_{name}.npz"))
    return d["X"], [str(o) for o in d["outputs"]], {str(e) for e in d["exact"]}, d


@pytest.mark.parametrize("name", TOOLKIT)
def test_toolkit(rb, name):
    X, outputs, exact, d = toolkit_case(name)
    assert is_ok(store(rb, "m", f"tk_{name}.onnx", "TAG", name))
    meta = as_dict(rb.execute_command("AI.MODELGET", "m", "META"))
    assert [sval(o) for o in meta["outputs"]] == outputs
    put(rb, "x", X)
    keys = [f"out_{o}" for o in outputs]
    assert is_ok(execute(rb, "m", ["x"], keys))
    for o, k in zip(outputs, keys):
        got, want = get(rb, k), d[f"expect_{o}"]
        assert got.shape[0] == X.shape[0]
        if o in exact:
            assert np.array_equal(got.ravel(), want.ravel().astype(got.dtype)), (o, got, want)
        else:
            assert np.allclose(got.ravel(), want.ravel(), rtol=1e-4, atol=1e-5), (
                o, float(np.max(np.abs(got.ravel() - want.ravel()))))
    # Classifiers: the labels agree with the arg-max of the probabilities.
    if "probabilities" in outputs and "label" in outputs:
        assert np.array_equal(get(rb, "out_label"), get(rb, "out_probabilities").argmax(axis=1))


def test_toolkit_zipmap_classifier(rb):
    """A scikit-learn classifier exported with skl2onnx's defaults (ZipMap): its probabilities
    are a sequence of maps. As in RedisAI, OUTPUTS may name only the tensor output; beyond
    RedisAI, the maps may be named too and come back as FLOAT [N, classes], with the labels in
    MODELGET META."""
    X, outputs, exact, d = toolkit_case("sk_logreg_zipmap")
    put(rb, "x", X)
    assert is_ok(store(rb, "m", "tk_sk_logreg_zipmap.onnx"))
    assert is_ok(execute(rb, "m", ["x"], ["label"]))
    assert np.array_equal(get(rb, "label"), d["expect_output_label"])
    assert is_ok(execute(rb, "m", ["x"], ["label2", "proba"]))
    assert np.array_equal(get(rb, "label2"), d["expect_output_label"])
    proba = get(rb, "proba")
    assert proba.dtype == np.float32 and proba.shape == d["expect_output_probability"].shape
    assert np.allclose(proba, d["expect_output_probability"], rtol=1e-5, atol=1e-6)
    meta = as_dict(rb.execute_command("AI.MODELGET", "m", "META"))
    assert [sval(l) for l in meta["labels"]] == ["0", "1", "2"]
    # Three keys for a model with two outputs is still refused.
    with pytest.raises(redis.ResponseError) as e:
        execute(rb, "m", ["x"], ["a", "b", "c"])
    assert server_text(e.value).endswith(OUTPUTS_MISMATCH)


def string_label_zipmap_model():
    """A classifier-shaped graph with string labels, as skl2onnx exports one: scores
    [N, 3] -> (ArgMax label [N], ZipMap probabilities: a sequence of maps)."""
    from onnx import TensorProto, helper
    labels = ["eel", "cat", "dog"]
    nodes = [
        helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0),
        helper.make_node("ZipMap", ["scores"], ["probabilities"], domain="ai.onnx.ml",
                         classlabels_strings=labels),
    ]
    seq_of_maps = helper.make_value_info(
        "probabilities", helper.make_sequence_type_proto(
            helper.make_map_type_proto(TensorProto.STRING,
                                       helper.make_tensor_type_proto(TensorProto.FLOAT, []))))
    graph = helper.make_graph(
        nodes, "zipmap_strings",
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]), seq_of_maps])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("ai.onnx.ml", 1)])
    model.ir_version = 8
    return model.SerializeToString(), labels


def test_zipmap_with_string_labels_in_a_dag_and_batched(rb, server_port):
    model, labels = string_label_zipmap_model()
    assert is_ok(rb.execute_command("AI.MODELSTORE", "z", "ONNX", "CPU", "BATCHSIZE", 4,
                                    "BLOB", model))
    meta = as_dict(rb.execute_command("AI.MODELGET", "z", "META"))
    assert [sval(l) for l in meta["labels"]] == labels
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], np.float32)
    reply = rb.execute_command(
        "AI.DAGEXECUTE", "ROUTING", "s",
        "|>", "AI.TENSORSET", "s", "FLOAT", 2, 3, "BLOB", scores.tobytes(),
        "|>", "AI.MODELEXECUTE", "z", "INPUTS", 1, "s", "OUTPUTS", 2, "l", "p",
        "|>", "AI.TENSORGET", "p", "VALUES")
    values = [float(v) for v in reply[2]]
    # Columns follow the model's labels: the map values by label, not by position.
    assert np.allclose(values, scores.reshape(-1))
    # Batched: two clients' rows run together and each gets its own rows back.
    runners = concurrent(server_port, [
        ("AI.DAGEXECUTE", "ROUTING", "s",
         "|>", "AI.TENSORSET", "s", "FLOAT", 1, 3, "BLOB", scores[i:i + 1].tobytes(),
         "|>", "AI.MODELEXECUTE", "z", "INPUTS", 1, "s", "OUTPUTS", 2, "l", "p",
         "|>", "AI.TENSORGET", "p", "VALUES") for i in range(2)])
    for i, r in enumerate(runners):
        assert r.error is None, r.error
        assert np.allclose([float(v) for v in r.reply[2]], scores[i])


@pytest.mark.locus_only
def test_string_tensors_batch(rb, server_port):
    """STRING inputs join a dynamic batch like any other type (MINBATCHSIZE makes the two
    requests one run) and each request gets its own rows back."""
    store(rb, "m", "string_label.onnx", "BATCHSIZE", 4, "MINBATCHSIZE", 3)
    rb.execute_command("AI.TENSORSET", "a", "STRING", 2, "VALUES", "dog", "cat")
    rb.execute_command("AI.TENSORSET", "b", "STRING", 1, "VALUES", "fish\0")
    before = int(_client(server_port, 2).info("ai")["ai_batched_runs"])
    runners = concurrent(server_port, [
        ("AI.MODELEXECUTE", "m", "INPUTS", 1, k, "OUTPUTS", 2, "l" + k, "e" + k) for k in "ab"])
    for r in runners:
        assert r.reply in (b"OK", "OK"), r.error
    assert list(get(rb, "la")) == [1, 0]
    assert [sval(v) for v in rb.execute_command("AI.TENSORGET", "eb", "VALUES")] == ["fish"]
    assert int(_client(server_port, 2).info("ai")["ai_batched_runs"]) == before + 1
    info = as_dict(rb.execute_command("AI.INFO", "m"))
    assert info["calls"] == 2 and info["samples"] == 3


def test_modelget_blob_chunks_as_redisai(rb):
    """AI.CONFIG MODEL_CHUNK_SIZE splits MODELGET's BLOB as RedisAI does: len / chunk + 1 parts,
    the last holding len % chunk bytes (empty when the blob is a whole number of chunks)."""
    data = blob("add.onnx")
    store(rb, "m", "add.onnx")
    old = rb.execute_command("AI.CONFIG", "GET", "MODEL_CHUNK_SIZE")
    try:
        for chunk in (len(data) + 1, len(data), len(data) - 1, len(data) // 3):
            assert is_ok(rb.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", chunk))
            got = rb.execute_command("AI.MODELGET", "m", "BLOB")
            parts = len(data) // chunk + 1
            if parts == 1:
                assert got == data
            else:
                assert isinstance(got, list) and len(got) == parts, (chunk, len(got))
                assert b"".join(got) == data
                assert len(got[-1]) == len(data) % chunk
    finally:
        rb.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", old)
