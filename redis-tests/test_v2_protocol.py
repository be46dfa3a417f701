"""The KServe V2 Open Inference Protocol over REST and gRPC, driven by stock clients
(`tritonclient[http]`, `tritonclient[grpc]`, the `kserve` SDK's REST client) and checked against
in-process ONNX Runtime: metadata from the ONNX signature, Triton's config and statistics
extensions, JSON and binary tensors, versions and routers, the errors each protocol specifies,
and V2 and RESP requests batching together in one queue."""

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import onnxruntime as ort
import pytest
import redis

from conftest import ServerProcess, free_port
from test_models import execute, is_ok, put, store
from test_routers import scale

grpc_client = pytest.importorskip("tritonclient.grpc")
http_client = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

MODELS = __import__("os").path.join(__import__("os").path.dirname(__file__), "models")


@pytest.fixture(scope="module")
def srv():
    http, grpc = free_port(), free_port()
    s = ServerProcess(["--http-port", http, "--grpc-port", grpc, "--http-max-body", "4mb"])
    s.http, s.grpc = http, grpc
    c = s.client()
    assert is_ok(store(c, "fraud", "fraud.onnx", "BATCHSIZE", 32))
    assert is_ok(store(c, "labels", "string_label.onnx"))
    yield s
    s.stop()


@pytest.fixture
def c(srv):
    conn = srv.client()
    yield conn
    conn.close()


@pytest.fixture
def rest(srv):
    return http_client.InferenceServerClient(f"127.0.0.1:{srv.http}")


@pytest.fixture
def grpc(srv):
    return grpc_client.InferenceServerClient(f"127.0.0.1:{srv.grpc}")


def fraud_batch(n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 30)).astype(np.float32),
            rng.standard_normal((n, 256)).astype(np.float32))


def reference(x, ref):
    sess = ort.InferenceSession(f"{MODELS}/fraud.onnx", providers=["CPUExecutionProvider"])
    return sess.run(None, {"transaction": x, "reference": ref})[0]


def inputs_for(module, x, ref, binary=True):
    a = module.InferInput("transaction", list(x.shape), "FP32")
    b = module.InferInput("reference", list(ref.shape), "FP32")
    if module is http_client:
        a.set_data_from_numpy(x, binary_data=binary)
        b.set_data_from_numpy(ref, binary_data=binary)
    else:
        a.set_data_from_numpy(x)
        b.set_data_from_numpy(ref)
    return [a, b]


def http(srv, method, path, body=None, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{srv.http}{path}", data=body,
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_health_and_server_metadata_over_both_protocols(rest, grpc):
    assert rest.is_server_live() and rest.is_server_ready()
    assert grpc.is_server_live() and grpc.is_server_ready()
    meta = rest.get_server_metadata()
    assert meta["name"] == "locus"
    assert {"binary_tensor_data", "model_configuration", "statistics"} <= set(meta["extensions"])
    gmeta = grpc.get_server_metadata(as_json=True)
    assert gmeta["name"] == "locus" and gmeta["version"] == meta["version"]


def test_model_metadata_comes_from_the_onnx_signature(rest, grpc):
    meta = rest.get_model_metadata("fraud")
    assert meta["platform"] == "onnxruntime_onnx" and meta["versions"] == ["1"]
    assert meta["inputs"] == [
        {"name": "transaction", "datatype": "FP32", "shape": [-1, 30]},
        {"name": "reference", "datatype": "FP32", "shape": [-1, 256]},
    ]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]
    g = grpc.get_model_metadata("fraud", as_json=True)
    assert [(i["name"], i["datatype"], [int(d) for d in i["shape"]]) for i in g["inputs"]] == [
        ("transaction", "FP32", [-1, 30]), ("reference", "FP32", [-1, 256])]
    labels = rest.get_model_metadata("labels")
    assert labels["inputs"] == [{"name": "s", "datatype": "BYTES", "shape": [-1]}]
    assert rest.is_model_ready("fraud") and grpc.is_model_ready("fraud")
    assert not rest.is_model_ready("nope") and not grpc.is_model_ready("nope")


def test_config_and_statistics_extensions(rest, grpc):
    cfg = rest.get_model_config("fraud")
    assert cfg["max_batch_size"] == 32
    assert [(i["name"], i["data_type"], i["dims"]) for i in cfg["input"]] == [
        ("transaction", "TYPE_FP32", [30]), ("reference", "TYPE_FP32", [256])]
    assert cfg["output"][0]["dims"] == [2]
    assert cfg["dynamic_batching"]["preferred_batch_size"] == [32]
    assert cfg["instance_group"][0]["kind"] == "KIND_CPU"
    gcfg = grpc.get_model_config("fraud", as_json=True)["config"]
    assert gcfg["max_batch_size"] == 32 and gcfg["input"][0]["data_type"] == "TYPE_FP32"
    assert [int(d) for d in gcfg["input"][1]["dims"]] == [256]
    # Unbatched models keep their batch dimension in dims and say max_batch_size 0.
    assert rest.get_model_config("labels")["max_batch_size"] == 0
    assert rest.get_model_config("labels")["input"][0]["dims"] == [-1]

    before = rest.get_inference_statistics("fraud")["model_stats"][0]
    x, ref = fraud_batch(3)
    rest.infer("fraud", inputs_for(http_client, x, ref))
    grpc.infer("fraud", inputs_for(grpc_client, x, ref))
    after = rest.get_inference_statistics("fraud")["model_stats"][0]
    assert after["inference_count"] - before["inference_count"] == 6
    ok = after["inference_stats"]["success"]
    assert ok["count"] - before["inference_stats"]["success"]["count"] == 2
    assert ok["ns"] > before["inference_stats"]["success"]["ns"]
    # Triton's rule, which perf_analyzer enforces: the three compute counts agree (each
    # counts requests; Locus times input and output within the run).
    stages = after["inference_stats"]
    counts = {stages[k]["count"] for k in ("compute_input", "compute_infer", "compute_output")}
    assert len(counts) == 1, stages
    assert stages["compute_infer"]["count"] - before["inference_stats"]["compute_infer"]["count"] == 2
    g = grpc.get_inference_statistics("fraud", as_json=True)["model_stats"][0]
    g_stages = g["inference_stats"]
    assert g_stages["compute_input"]["count"] == g_stages["compute_output"]["count"] == \
        g_stages["compute_infer"]["count"]
    assert int(g["inference_count"]) == after["inference_count"]
    everything = rest.get_inference_statistics()["model_stats"]
    assert {m["name"] for m in everything} >= {"fraud", "labels"}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_rest_inference_matches_onnx_runtime(rest, binary):
    x, ref = fraud_batch(5, seed=1)
    out = http_client.InferRequestedOutput("probabilities", binary_data=binary)
    res = rest.infer("fraud", inputs_for(http_client, x, ref, binary), outputs=[out],
                     request_id="req-1")
    np.testing.assert_allclose(res.as_numpy("probabilities"), reference(x, ref), rtol=1e-5,
                               atol=1e-6)
    r = res.get_response()
    assert r["model_name"] == "fraud" and r["model_version"] == "1" and r["id"] == "req-1"
    assert r["outputs"][0]["shape"] == [5, 2]


def test_grpc_inference_matches_onnx_runtime(grpc):
    x, ref = fraud_batch(7, seed=2)
    res = grpc.infer("fraud", inputs_for(grpc_client, x, ref))
    np.testing.assert_allclose(res.as_numpy("probabilities"), reference(x, ref), rtol=1e-5,
                               atol=1e-6)
    assert res.get_response().model_version == "1"


def test_grpc_typed_contents_without_raw_bytes(srv):
    """A client that fills `contents.fp32_contents` instead of raw_input_contents."""
    import grpc as grpcio
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    x, ref = fraud_batch(2, seed=3)
    req = service_pb2.ModelInferRequest(model_name="fraud")
    for name, arr in (("transaction", x), ("reference", ref)):
        t = req.inputs.add(name=name, datatype="FP32", shape=list(arr.shape))
        t.contents.fp32_contents.extend(arr.ravel().tolist())
    with grpcio.insecure_channel(f"127.0.0.1:{srv.grpc}") as ch:
        resp = service_pb2_grpc.GRPCInferenceServiceStub(ch).ModelInfer(req)
    got = np.frombuffer(resp.raw_output_contents[0], dtype=np.float32).reshape(2, 2)
    np.testing.assert_allclose(got, reference(x, ref), rtol=1e-5, atol=1e-6)


def test_bytes_tensors_both_ways(rest, grpc):
    words = np.array([b"alpha", b"", b"gamma"], dtype=object)
    for module, client in ((http_client, rest), (grpc_client, grpc)):
        i = module.InferInput("s", [3], "BYTES")
        i.set_data_from_numpy(words)
        res = client.infer("labels", [i])
        assert list(res.as_numpy("echo")) == list(words)
        assert res.as_numpy("label").dtype == np.int64


def test_json_body_by_hand_with_nested_data(srv):
    x, ref = fraud_batch(2, seed=4)
    body = json.dumps({
        "inputs": [
            {"name": "reference", "datatype": "FP32", "shape": [2, 256], "data": ref.tolist()},
            {"name": "transaction", "datatype": "FP32", "shape": [2, 30],
             "data": x.ravel().tolist()},
        ]
    }).encode()
    status, headers, raw = http(srv, "POST", "/v2/models/fraud/infer", body,
                                {"Content-Type": "application/json"})
    assert status == 200, raw
    assert headers["content-type"].startswith("application/json")
    out = json.loads(raw)["outputs"][0]
    got = np.array(out["data"], dtype=np.float32).reshape(out["shape"])
    np.testing.assert_allclose(got, reference(x, ref), rtol=1e-5, atol=1e-6)


def test_versions_are_addressable(srv, c, rest, grpc):
    assert is_ok(c.execute_command("AI.MODELSTORE", "sc", "ONNX", "CPU", "BLOB", scale(2)))
    assert is_ok(c.execute_command("AI.MODELSTORE", "sc", "ONNX", "CPU", "STAGED", "BLOB",
                                   scale(3)))
    x = np.ones((1, 4), dtype=np.float32)

    def run(client, module, version=""):
        i = module.InferInput("x", [1, 4], "FP32")
        i.set_data_from_numpy(x)
        res = client.infer("sc", [i], model_version=version)
        return float(res.as_numpy("y")[0, 0]), res.get_response()

    for client, module in ((rest, http_client), (grpc, grpc_client)):
        assert run(client, module)[0] == 2.0
        assert run(client, module, "2")[0] == 3.0
        assert run(client, module, "1")[0] == 2.0
    assert rest.get_model_metadata("sc")["versions"] == ["1", "2"]
    with pytest.raises(InferenceServerException, match="version 9"):
        run(rest, http_client, "9")
    status, _, raw = http(srv, "GET", "/v2/models/sc/versions/latest")
    assert status == 400 and "versions are numbers" in json.loads(raw)["error"]
    c.delete("sc")


def test_a_router_serves_v2_requests(c, rest, grpc):
    assert is_ok(c.execute_command("AI.MODELSTORE", "a", "ONNX", "CPU", "BLOB", scale(2)))
    assert is_ok(c.execute_command("AI.MODELSTORE", "b", "ONNX", "CPU", "BLOB", scale(5)))
    assert is_ok(c.execute_command("AI.ROUTERSET", "ab", "SPLIT", "a", 1, "b", 1))
    seen = set()
    for n in range(40):
        client, module = ((rest, http_client), (grpc, grpc_client))[n % 2]
        i = module.InferInput("x", [1, 4], "FP32")
        i.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
        seen.add(float(client.infer("ab", [i]).as_numpy("y")[0, 0]))
    assert seen == {2.0, 5.0}
    info = c.execute_command("AI.ROUTERINFO", "ab")
    info = dict(zip(info[::2], info[1::2])) if isinstance(info, list) else info
    assert info["calls"] == 40
    assert rest.get_model_metadata("ab")["platform"] == "locus_router"
    c.delete("ab", "a", "b")


def test_errors_as_each_protocol_specifies(srv, rest, grpc):
    x, ref = fraud_batch(1)
    # Unknown model: 404 / NOT_FOUND.
    status, _, raw = http(srv, "GET", "/v2/models/nope")
    assert status == 404 and "nope" in json.loads(raw)["error"]
    with pytest.raises(InferenceServerException) as e:
        grpc.infer("nope", inputs_for(grpc_client, x, ref))
    assert e.value.status() == "StatusCode.NOT_FOUND"
    # Wrong datatype.
    bad = [http_client.InferInput("transaction", [1, 30], "FP64"),
           http_client.InferInput("reference", [1, 256], "FP32")]
    bad[0].set_data_from_numpy(x.astype(np.float64))
    bad[1].set_data_from_numpy(ref)
    with pytest.raises(InferenceServerException, match="data-type is 'FP64'") as e:
        rest.infer("fraud", bad)
    assert e.value.status() == "400"
    gbad = [grpc_client.InferInput("transaction", [1, 30], "FP64"),
            grpc_client.InferInput("reference", [1, 256], "FP32")]
    gbad[0].set_data_from_numpy(x.astype(np.float64))
    gbad[1].set_data_from_numpy(ref)
    with pytest.raises(InferenceServerException, match="data-type is 'FP64'") as e:
        grpc.infer("fraud", gbad)
    assert e.value.status() == "StatusCode.INVALID_ARGUMENT"
    # Wrong shape: ONNX Runtime's own words, as AI.MODELEXECUTE gives them.
    wrong = inputs_for(http_client, np.ones((1, 29), np.float32), ref)
    with pytest.raises(InferenceServerException, match="Got: 29 Expected: 30"):
        rest.infer("fraud", wrong)
    # Unknown input and output names.
    odd = http_client.InferInput("nonsense", [1, 30], "FP32")
    odd.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException, match="unexpected inference input 'nonsense'"):
        rest.infer("fraud", [odd, inputs_for(http_client, x, ref)[1]])
    with pytest.raises(InferenceServerException, match="unexpected inference output 'zz'"):
        rest.infer("fraud", inputs_for(http_client, x, ref),
                   outputs=[http_client.InferRequestedOutput("zz")])
    # Bad JSON, data that does not fit its shape, binary data nobody claims.
    status, _, raw = http(srv, "POST", "/v2/models/fraud/infer", b"{not json")
    assert status == 400 and "JSON" in json.loads(raw)["error"]
    short = {"inputs": [{"name": "transaction", "datatype": "FP32", "shape": [1, 30],
                         "data": [1.0] * 29}]}
    status, _, raw = http(srv, "POST", "/v2/models/fraud/infer", json.dumps(short).encode())
    assert status == 400 and "29 elements" in json.loads(raw)["error"]
    head = json.dumps({"inputs": []}).encode()
    status, _, raw = http(srv, "POST", "/v2/models/fraud/infer", head + b"\0" * 8,
                          {"Inference-Header-Content-Length": str(len(head))})
    assert status == 400 and "not claimed" in json.loads(raw)["error"]
    # A huge shape is refused before anything is allocated.
    huge = {"inputs": [{"name": "transaction", "datatype": "FP32",
                        "shape": [1 << 40, 1 << 20], "data": [1.0]}]}
    status, _, raw = http(srv, "POST", "/v2/models/fraud/infer", json.dumps(huge).encode())
    assert status == 400, raw
    # Bodies over http-max-body (4mb here): 413, and a refused gRPC message.
    status, _, raw = http(srv, "POST", "/v2/models/fraud/infer", b" " * (5 << 20))
    assert status == 413 and "http-max-body" in json.loads(raw)["error"]
    big = np.zeros((5000, 256), np.float32)
    with pytest.raises(InferenceServerException) as e:
        grpc.infer("fraud", inputs_for(grpc_client, np.zeros((5000, 30), np.float32), big))
    # tonic refuses it while decoding, before any handler, with OUT_OF_RANGE.
    assert e.value.status() in ("StatusCode.RESOURCE_EXHAUSTED", "StatusCode.OUT_OF_RANGE")
    assert "too large" in e.value.message()
    # The server is still up and serving.
    assert rest.infer("fraud", inputs_for(http_client, x, ref)).as_numpy("probabilities").shape \
        == (1, 2)


def test_v2_and_resp_requests_batch_together(srv, c, rest):
    """MINBATCHSIZE 2 with no timeout: a lone request waits for a second one. A RESP request
    and a V2 request for the same model can only finish by running as one batch."""
    assert is_ok(store(c, "pair", "fraud.onnx", "BATCHSIZE", 4, "MINBATCHSIZE", 2))
    x, ref = fraud_batch(1, seed=9)
    put(c, "px", x)
    put(c, "pref", ref)
    done = {}

    def resp_side():
        conn = srv.client()
        done["resp"] = execute(conn, "pair", ["px", "pref"], ["pout"])
        conn.close()

    t = threading.Thread(target=resp_side)
    t.start()
    time.sleep(0.3)
    assert "resp" not in done, "a lone request must wait for its batch"
    res = rest.infer("pair", inputs_for(http_client, x, ref))
    t.join(10)
    assert is_ok(done["resp"])
    raw = srv.client(decode_responses=False)
    stored = np.frombuffer(raw.execute_command("AI.TENSORGET", "pout", "BLOB"), np.float32)
    raw.close()
    np.testing.assert_allclose(res.as_numpy("probabilities").ravel(), stored)
    stats = rest.get_inference_statistics("pair")["model_stats"][0]
    assert stats["execution_count"] == 1 and stats["inference_count"] == 2
    c.delete("pair")


def test_kserve_sdk_rest_client(srv):
    """kserve's InferenceRESTClient, in a process of its own: its generated protobuf modules and
    tritonclient's register the same message names."""
    script = f"""
import asyncio, json, sys
import numpy as np
from kserve import InferenceRESTClient, InferRequest, InferInput, RESTConfig

async def main():
    client = InferenceRESTClient(RESTConfig(protocol="v2"))
    base = "http://127.0.0.1:{srv.http}"
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 30)).astype(np.float32)
    ref = rng.standard_normal((4, 256)).astype(np.float32)
    a = InferInput("transaction", [4, 30], "FP32"); a.set_data_from_numpy(x, binary_data=False)
    b = InferInput("reference", [4, 256], "FP32"); b.set_data_from_numpy(ref, binary_data=True)
    res = await client.infer(base, InferRequest(model_name="fraud", infer_inputs=[a, b],
                                                request_id="k1"), model_name="fraud")
    ready = await client.is_server_ready(base) and await client.is_model_ready(base, "fraud")
    await client.close()
    np.save(sys.argv[1], x); np.save(sys.argv[2], ref)
    print(json.dumps({{"ready": ready, "id": res.id,
                       "out": res.outputs[0].as_numpy().tolist()}}))

asyncio.run(main())
"""
    import tempfile
    d = tempfile.mkdtemp()
    out = subprocess.run([sys.executable, "-c", script, f"{d}/x.npy", f"{d}/r.npy"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["ready"] and got["id"] == "k1"
    want = reference(np.load(f"{d}/x.npy"), np.load(f"{d}/r.npy"))
    np.testing.assert_allclose(np.array(got["out"], np.float32), want, rtol=1e-5, atol=1e-6)


def test_a_taken_grpc_port_stops_the_start(srv):
    with pytest.raises(RuntimeError, match="Could not create the gRPC listener"):
        ServerProcess(["--grpc-port", srv.grpc])


def test_grpc_port_0_turns_it_off(spawn):
    s = spawn()  # the harness passes --grpc-port 0
    assert s.client().config_get("grpc-port") == {"grpc-port": "0"}


def test_v2_requests_are_logged_and_monitored(c, rest, grpc):
    """AI.LOG and AI.MONITOR watch V2 requests as they watch RESP ones."""
    assert is_ok(c.execute_command("AI.LOG", "SET", "fraud", "STREAM", "v2log", "SAMPLE", 1))
    base = np.random.default_rng(5).standard_normal((200, 30)).astype(np.float32)
    raw = redis.Redis(port=c.connection_pool.connection_kwargs["port"])
    raw.execute_command("AI.TENSORSET", "v2base", "FLOAT", 200, 30, "BLOB", base.tobytes())
    assert is_ok(c.execute_command("AI.MONITOR", "SET", "fraud", "BASELINE", "v2base",
                                   "WINDOW", 10, "EVERY", 10))
    x, ref = fraud_batch(5, seed=6)
    rest.infer("fraud", inputs_for(http_client, x, ref), request_id="logged-1")
    grpc.infer("fraud", inputs_for(grpc_client, x, ref))
    entries = c.execute_command("XRANGE", "v2log", "-", "+")
    assert len(entries) == 2
    fields = dict(zip(entries[0][1][::2], entries[0][1][1::2])) \
        if isinstance(entries[0][1], list) else entries[0][1]
    assert fields["key"] == "fraud" and fields["outcome"] == "ok"
    assert "transaction" in str(fields) and "probabilities" in str(fields)
    mon = c.execute_command("AI.MONITOR", "GET", "fraud")
    mon = dict(zip(mon[::2], mon[1::2])) if isinstance(mon, list) else mon
    assert int(mon["rows_seen"]) == 10
    c.execute_command("AI.LOG", "DEL", "fraud")
    c.execute_command("AI.MONITOR", "DEL", "fraud")
    raw.close()


def test_timeouts_deletes_and_disconnects(srv, c, rest):
    """A V2 request waiting for its batch honours Triton's `timeout` parameter (503), a model
    deleted meanwhile answers 404 afterwards, and a client that hangs up leaves nothing behind."""
    import socket

    assert is_ok(store(c, "lone", "fraud.onnx", "BATCHSIZE", 4, "MINBATCHSIZE", 2))
    x, ref = fraud_batch(1, seed=3)
    body = json.dumps({
        "parameters": {"timeout": 200000},
        "inputs": [
            {"name": "transaction", "datatype": "FP32", "shape": [1, 30], "data": x.ravel().tolist()},
            {"name": "reference", "datatype": "FP32", "shape": [1, 256], "data": ref.ravel().tolist()},
        ]}).encode()
    t0 = time.time()
    status, _, raw = http(srv, "POST", "/v2/models/lone/infer", body)
    assert status == 503 and "timed out" in json.loads(raw)["error"]
    assert 0.15 < time.time() - t0 < 5
    # A client that sends a request and hangs up before its batch fills.
    s = socket.create_connection(("127.0.0.1", srv.http))
    s.sendall(b"POST /v2/models/lone/infer HTTP/1.1\r\nHost: x\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\n\r\n" + body)
    time.sleep(0.1)
    s.close()
    c.delete("lone")
    status, _, raw = http(srv, "POST", "/v2/models/lone/infer", body)
    assert status == 404
    assert rest.is_server_live()
    assert rest.infer("fraud", inputs_for(http_client, x, ref)).as_numpy("probabilities").shape \
        == (1, 2)
