"""ACLs that understand models: the `@ai`, `@ai-run` and `@ai-manage` categories (a user may run
`fraud` without being able to replace it), every key an AI command touches checked against the
user's key patterns (models, inputs, outputs, DAG LOAD/PERSIST and the models of DAG ops, router
targets), COMMAND GETKEYS reporting them, and the HTTP and gRPC faces authenticating against
the same users (Basic or Bearer) with the same permissions. Real ONNX models throughout."""

import base64
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import redis

from conftest import RawConn, ServerProcess, free_port
from test_models import blob, execute, is_ok, put
from test_routers import scale

grpc_client = pytest.importorskip("tritonclient.grpc")
http_client = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

ADMIN_PW = "adm1n"
RUNNER_PW = "run-pw-7c1d"


@pytest.fixture(scope="module")
def srv():
    http, grpc = free_port(), free_port()
    s = ServerProcess(["--http-port", http, "--grpc-port", grpc, "--requirepass", ADMIN_PW],
                      password=ADMIN_PW)
    s.http, s.grpc = http, grpc
    c = s.client()
    assert is_ok(c.execute_command("AI.MODELSTORE", "fraud", "ONNX", "CPU", "BLOB",
                                   blob("fraud.onnx")))
    for key, k in (("m2", 2), ("hidden", 3)):
        assert is_ok(c.execute_command("AI.MODELSTORE", key, "ONNX", "CPU", "BLOB", scale(k)))
    assert is_ok(c.execute_command("AI.ROUTERSET", "r:ok", "SPLIT", "m2", "1"))
    assert is_ok(c.execute_command("AI.ROUTERSET", "r:mixed", "SPLIT", "m2", "1", "hidden", "1"))
    c.execute_command("ACL", "SETUSER", "runner", "on", ">" + RUNNER_PW, "+@ai-run",
                      "~fraud", "~m2", "~r:*", "~in:*", "~out:*")
    c.execute_command("ACL", "SETUSER", "manager", "on", ">mgr", "+@ai", "~m*", "~r:*")
    c.close()
    yield s
    s.stop()


def as_user(srv, user, pw):
    return redis.Redis(port=srv.port, username=user, password=pw, decode_responses=True)


def err(c, *args):
    with pytest.raises(redis.RedisError) as e:
        c.execute_command(*args)
    return str(e.value)


def test_categories_split_running_from_managing(srv):
    admin = srv.client()
    run = set(admin.execute_command("ACL", "CAT", "ai-run"))
    manage = set(admin.execute_command("ACL", "CAT", "ai-manage"))
    every = set(admin.execute_command("ACL", "CAT", "ai"))
    assert {"ai.modelexecute", "ai.tensorset", "ai.tensorget", "ai.dagexecute",
            "ai.score"} <= run
    assert {"ai.modelstore", "ai.modeldel", "ai.modelpromote", "ai.modelrollback",
            "ai.routerset", "ai.monitor|set", "ai.config"} <= manage
    assert not run & manage and run | manage == every
    assert all(c.startswith("ai.") for c in every)
    assert {"ai", "ai-run", "ai-manage"} <= set(admin.execute_command("ACL", "CAT"))
    raw = RawConn(srv.port)
    raw.cmd("AUTH", ADMIN_PW)
    cats = raw.cmd("COMMAND", "INFO", "AI.MODELSTORE")[0][6]
    raw.close()
    assert [c.decode() if isinstance(c, bytes) else c for c in cats] == [
        "@keyspace", "@write", "@slow", "@ai", "@ai-manage"]


def test_a_runner_runs_fraud_but_cannot_replace_it(srv):
    r = as_user(srv, "runner", RUNNER_PW)
    x = np.random.default_rng(1).standard_normal((2, 30)).astype(np.float32)
    ref = np.zeros((2, 256), np.float32)
    assert is_ok(put(r, "in:x", x)) and is_ok(put(r, "in:ref", ref))
    assert is_ok(execute(r, "fraud", ["in:x", "in:ref"], ["out:y"]))
    assert r.execute_command("AI.TENSORGET", "out:y", "META")
    assert err(r, "AI.MODELSTORE", "fraud", "ONNX", "CPU", "BLOB", blob("fraud.onnx")) == \
        "this user has no permissions to run the 'ai.modelstore' command"
    assert "'ai.modeldel' command" in err(r, "AI.MODELDEL", "fraud")
    keys_err = "this user has no permissions to access one of the keys used as arguments"
    assert err(r, *["AI.MODELEXECUTE", "hidden", "INPUTS", 1, "in:x", "OUTPUTS", 1, "out:z"]) \
        == keys_err
    assert err(r, *["AI.MODELEXECUTE", "fraud", "INPUTS", 2, "in:x", "in:ref", "OUTPUTS", 1,
                    "secret:y"]) == keys_err
    assert err(r, "AI.TENSORGET", "secret", "META") == keys_err
    assert err(r, "GET", "in:x").startswith("this user has no permissions to run")
    admin = srv.client()
    log = admin.execute_command("ACL", "LOG", "3")
    objects = [dict(zip(e[::2], e[1::2]))["object"] for e in log]
    assert "secret" in objects and "secret:y" in objects
    admin.close()


def test_dag_keys_include_the_models_of_its_ops(srv):
    admin = srv.client()
    dag = ["AI.DAGEXECUTE", "LOAD", 1, "in:x", "PERSIST", 1, "out:d",
           "|>", "AI.MODELEXECUTE", "hidden", "INPUTS", 1, "in:x", "OUTPUTS", 1, "t",
           "|>", "AI.MODELEXECUTE", "m2", "INPUTS", 1, "t", "OUTPUTS", 1, "out:d"]
    assert admin.command_getkeys(*dag) == ["in:x", "out:d", "hidden", "m2"]
    modelrun = ["AI.MODELRUN", "fraud", "INPUTS", "a", "b", "OUTPUTS", "c"]
    assert admin.command_getkeys(*modelrun) == ["fraud", "a", "b", "c"]
    r = as_user(srv, "runner", RUNNER_PW)
    assert is_ok(put(r, "in:v", np.ones((1, 4), np.float32)))
    assert "keys used as arguments" in err(r, *dag)
    ok = ["AI.DAGEXECUTE", "LOAD", 1, "in:v", "PERSIST", 1, "out:d",
          "|>", "AI.MODELEXECUTE", "m2", "INPUTS", 1, "in:v", "OUTPUTS", 1, "out:d"]
    r.execute_command(*ok)
    assert r.execute_command("AI.TENSORGET", "out:d", "VALUES") == ["2", "2", "2", "2"] or \
        [float(v) for v in r.execute_command("AI.TENSORGET", "out:d", "VALUES")] == [2.0] * 4
    dryrun = admin.execute_command("ACL", "DRYRUN", "runner", *dag)
    assert dryrun == "This user has no permissions to access the 'hidden' key"
    admin.close()


def test_router_targets_are_checked(srv):
    r = as_user(srv, "runner", RUNNER_PW)
    assert is_ok(put(r, "in:v", np.ones((1, 4), np.float32)))
    assert is_ok(execute(r, "r:ok", ["in:v"], ["out:r"]))
    for _ in range(4):
        assert "router target 'hidden'" in err(r, *["AI.MODELEXECUTE", "r:mixed", "INPUTS", 1,
                                                    "in:v", "OUTPUTS", 1, "out:r"])
    admin = srv.client()
    # Refused requests never count against a target.
    info = admin.execute_command("AI.ROUTERINFO", "r:mixed")
    info = dict(zip(info[::2], info[1::2]))
    assert (info["calls"], info["errors"]) == (0, 0)
    for t in info["targets"]:
        t = dict(zip(t[::2], t[1::2]))
        assert (t["calls"], t["errors"]) == (0, 0), t
    m = as_user(srv, "manager", "mgr")
    assert "router target 'hidden'" in err(m, "AI.ROUTERSET", "r:new", "SPLIT", "m2", "1",
                                           "hidden", "1")
    assert is_ok(m.execute_command("AI.ROUTERSET", "r:new", "SPLIT", "m2", "1"))
    # A manager's model change is audited under its name.
    assert is_ok(m.execute_command("AI.MODELSTORE", "m9", "ONNX", "CPU", "BLOB", scale(9)))
    entries = admin.xrange("locus:audit")
    last = [f for _, f in entries if f.get("key") == "m9"][-1]
    assert last["user"] == "manager"
    admin.close()


def http_call(srv, method, path, body=None, headers=None, port=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port or srv.http}{path}", data=body,
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def basic(user, pw):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


def infer_body(model_cols=4):
    return json.dumps({"inputs": [{"name": "x", "shape": [1, model_cols], "datatype": "FP32",
                                   "data": [1, 2, 3, 4]}]}).encode()


def test_v2_rest_authenticates_and_applies_the_users_rules(srv):
    assert http_call(srv, "GET", "/v2/health/live")[0] == 200
    assert http_call(srv, "GET", "/v2")[0] == 401
    assert http_call(srv, "POST", "/v2/models/m2/infer", infer_body())[0] == 401
    assert http_call(srv, "POST", "/v2/models/m2/infer", infer_body(),
                     basic("runner", "wrong"))[0] == 401
    status, body = http_call(srv, "POST", "/v2/models/m2/infer", infer_body(),
                             basic("runner", RUNNER_PW))
    assert status == 200 and json.loads(body)["outputs"][0]["data"] == [2, 4, 6, 8]
    bearer = {"Authorization": "Bearer " + RUNNER_PW}
    assert http_call(srv, "POST", "/v2/models/m2/infer", infer_body(), bearer)[0] == 200
    status, body = http_call(srv, "POST", "/v2/models/hidden/infer", infer_body(),
                             basic("runner", RUNNER_PW))
    assert status == 403 and "hidden" in json.loads(body)["error"]
    status, body = http_call(srv, "POST", "/v2/models/r:mixed/infer", infer_body(),
                             basic("runner", RUNNER_PW))
    assert status == 403 and "router target 'hidden'" in json.loads(body)["error"]
    assert http_call(srv, "GET", "/v2/models/m2", headers=basic("runner", RUNNER_PW))[0] == 200
    assert http_call(srv, "GET", "/v2/models/hidden", headers=basic("runner", RUNNER_PW))[0] \
        == 403
    # Listing all models is managing them.
    assert http_call(srv, "POST", "/v2/repository/index", b"{}",
                     basic("runner", RUNNER_PW))[0] == 403
    assert http_call(srv, "POST", "/v2/repository/index", b"{}",
                     basic("default", ADMIN_PW))[0] == 200
    rest = http_client.InferenceServerClient(f"127.0.0.1:{srv.http}")
    x = http_client.InferInput("x", [1, 4], "FP32")
    x.set_data_from_numpy(np.arange(4, dtype=np.float32).reshape(1, 4))
    res = rest.infer("m2", [x], headers=basic("runner", RUNNER_PW))
    assert res.as_numpy("y").tolist() == [[0, 2, 4, 6]]
    with pytest.raises(InferenceServerException):
        rest.infer("hidden", [x], headers=basic("runner", RUNNER_PW))


def test_v2_grpc_authenticates_and_applies_the_users_rules(srv):
    g = grpc_client.InferenceServerClient(f"127.0.0.1:{srv.grpc}")
    x = grpc_client.InferInput("x", [1, 4], "FP32")
    x.set_data_from_numpy(np.arange(4, dtype=np.float32).reshape(1, 4))
    auth = {"authorization": basic("runner", RUNNER_PW)["Authorization"]}
    assert g.infer("m2", [x], headers=auth).as_numpy("y").tolist() == [[0, 2, 4, 6]]
    with pytest.raises(InferenceServerException) as e:
        g.infer("hidden", [x], headers=auth)
    assert "PERMISSION_DENIED" in str(e.value.status())
    with pytest.raises(InferenceServerException) as e:
        g.infer("m2", [x])
    assert "UNAUTHENTICATED" in str(e.value.status())
    assert g.is_server_live()


def test_dashboard_and_metrics_act_as_the_logged_in_user(srv):
    hdr = {**basic("runner", RUNNER_PW), "X-Locus-Dashboard": "1"}
    status, body = http_call(srv, "POST", "/api/command",
                             json.dumps(["AI.TENSORGET", "in:v", "META"]).encode(), hdr)
    assert status == 200, body
    status, body = http_call(srv, "POST", "/api/command",
                             json.dumps(["AI.MODELDEL", "fraud"]).encode(), hdr)
    assert status == 400 and "NOPERM" in json.loads(body)["error"]
    admin = {**basic("default", ADMIN_PW), "X-Locus-Dashboard": "1"}
    status, body = http_call(srv, "POST", "/api/command",
                             json.dumps(["ACL", "WHOAMI"]).encode(), admin)
    assert status == 200 and json.loads(body) == {"ok": "default"}
    assert http_call(srv, "GET", "/metrics", headers=basic("runner", RUNNER_PW))[0] == 401
    assert http_call(srv, "GET", "/metrics", headers=basic("default", ADMIN_PW))[0] == 200


def test_acl_changes_while_a_run_is_queued(srv):
    """A run waiting in its queue when its user loses the right to run models finishes as it
    was admitted (as a Redis command already running does); the user's next run is refused. A
    run whose user is deleted goes with its connection: the queue drains, nothing is written."""
    import threading
    import time

    admin = as_user(srv, "default", ADMIN_PW)
    assert is_ok(admin.execute_command("AI.MODELSTORE", "slow", "ONNX", "CPU", "BATCHSIZE", 4,
                                       "MINBATCHSIZE", 4, "MINBATCHTIMEOUT", 800, "BLOB", scale(5)))
    admin.execute_command("ACL", "SETUSER", "waiter", "on", ">w", "+@ai-run", "~slow", "~in:*",
                          "~out:*")
    assert is_ok(put(admin, "in:w", np.ones((1, 4), np.float32)))
    c = as_user(srv, "waiter", "w")
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("r", execute(c, "slow", ["in:w"], ["out:w1"])))
    t.start()
    time.sleep(0.2)
    admin.execute_command("ACL", "SETUSER", "waiter", "-@ai-run")
    t.join(5)
    assert is_ok(got["r"])
    assert admin.exists("out:w1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        execute(c, "slow", ["in:w"], ["out:w2"])
    # Deleted while its run waits: the connection closes and the run leaves the queue.
    admin.execute_command("ACL", "SETUSER", "waiter", "+@ai-run")
    c2 = as_user(srv, "waiter", "w")
    t2 = threading.Thread(target=lambda: got.setdefault(
        "r2", err(c2, "AI.MODELEXECUTE", "slow", "INPUTS", 1, "in:w", "OUTPUTS", 1, "out:w3")))
    t2.start()
    time.sleep(0.2)
    admin.execute_command("ACL", "DELUSER", "waiter")
    t2.join(5)
    time.sleep(1.0)
    assert not admin.exists("out:w3")
    info = admin.info("ai")
    queued = {k: v for k, v in info.items() if k.startswith("ai_queue_") and k.endswith("_length")}
    assert all(int(v) == 0 for v in queued.values()), queued
