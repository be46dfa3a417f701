"""AI.EXPLAIN: attributions for scikit-learn models exported to ONNX, checked against the `shap`
package run on the same ONNX files through onnxruntime (Exact explainer), against the closed
form of a linear model, and for additivity; occlusion against onnxruntime itself; EXPLAIN in
DAGs, with versions, routers and a monitor's baseline; bad input refused with nothing written;
other models' runs going on while a large explanation runs."""

import socket
import threading
import time

import numpy as np
import pytest
import redis

from test_models import get, is_ok, put

onnxruntime = pytest.importorskip("onnxruntime")
shap = pytest.importorskip("shap")
skl2onnx = pytest.importorskip("skl2onnx")
from skl2onnx.common.data_types import FloatTensorType  # noqa: E402
from sklearn.ensemble import GradientBoostingClassifier  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402


def export(model, features):
    """The fitted model as ONNX bytes, probabilities as a plain [N, classes] tensor."""
    opts = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
    onx = skl2onnx.to_onnx(model, initial_types=[("x", FloatTensorType([None, features]))],
                           options=opts, target_opset=17)
    return onx.SerializeToString()


def data(n, features, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype(np.float32)


_models = {}


def linear(features=6):
    if "linear" not in _models:
        x = data(400, features, 1)
        y = x @ np.arange(1, features + 1) + 0.5
        _models["linear"] = (LinearRegression().fit(x, y), features)
    return _models["linear"]


def logistic(features=7):
    if "logistic" not in _models:
        x = data(400, features, 2)
        y = (x[:, 0] - 2 * x[:, 1] + x[:, 2] * x[:, 3] > 0).astype(int)
        _models["logistic"] = (LogisticRegression().fit(x, y), features)
    return _models["logistic"]


def boosted(features=8):
    if "boosted" not in _models:
        x = data(600, features, 3)
        y = ((x[:, 0] > 0) & (x[:, 1] > -0.5) | (x[:, 2] * x[:, 3] > 0.5)).astype(int)
        _models["boosted"] = (GradientBoostingClassifier(n_estimators=30, max_depth=3,
                                                         random_state=0).fit(x, y), features)
    return _models["boosted"]


def store(c, key, model_features):
    model, features = model_features
    onx = export(model, features)
    assert is_ok(c.execute_command("AI.MODELSTORE", key, "ONNX", "CPU", "BLOB", onx))
    return onnxruntime.InferenceSession(onx, providers=["CPUExecutionProvider"])


def explain(c, key, x_key, out, *opts, background=("bg",), version=None):
    args = ["AI.EXPLAIN", key] + (["VERSION", version] if version else []) + ["INPUTS", 1, x_key]
    if background:
        args += ["BACKGROUND", len(background), *background]
    args += ["OUTPUTS", 1, out, *opts]
    return c.execute_command(*args)


def shap_exact(session, x, bg, output, klass=None):
    def f(v):
        out = session.run(None, {"x": v.astype(np.float32)})[output]
        out = out.astype(np.float64)
        return out[:, klass] if klass is not None else out.reshape(len(v))
    explainer = shap.explainers.Exact(f, shap.maskers.Independent(bg, max_samples=len(bg)))
    return explainer(x).values


@pytest.fixture
def c(server_port):
    client = redis.Redis(port=server_port, decode_responses=False)
    client.flushall()
    yield client
    client.flushall()


def test_linear_model_both_methods_equal_the_closed_form(c):
    model, features = linear()
    store(c, "lin", (model, features))
    x, bg = data(5, features, 10), data(40, features, 11)
    put(c, "x", x)
    put(c, "bg", bg)
    want = model.coef_ * (x - bg.mean(axis=0))
    for method in (["METHOD", "EXACT"], ["METHOD", "KERNELSHAP", "NSAMPLES", 500, "SEED", 3]):
        assert is_ok(explain(c, "lin", "x", "attr", *method))
        attr = get(c, "attr")
        assert attr.dtype == np.float32 and attr.shape == (5, features)
        np.testing.assert_allclose(attr, want, atol=1e-4)


@pytest.mark.parametrize("which", ["logistic", "boosted"])
def test_exact_equals_shap_exact_and_is_additive(c, which):
    mf = {"logistic": logistic, "boosted": boosted}[which]()
    session = store(c, "m", mf)
    features = mf[1]
    x, bg = data(6, features, 20), data(50, features, 21)
    put(c, "x", x)
    put(c, "bg", bg)
    assert is_ok(explain(c, "m", "x", "attr", "METHOD", "EXACT", "TARGET", 1, "CLASS", 1))
    attr = get(c, "attr").astype(np.float64)
    want = shap_exact(session, x, bg, output=1, klass=1)
    np.testing.assert_allclose(attr, want, atol=1e-5)
    probs = session.run(None, {"x": x})[1][:, 1].astype(np.float64)
    base = session.run(None, {"x": bg})[1][:, 1].astype(np.float64).mean()
    np.testing.assert_allclose(attr.sum(axis=1), probs - base, atol=1e-4)


def test_kernelshap_is_close_to_exact_and_additive(c):
    session = store(c, "m", boosted())
    x, bg = data(4, 8, 30), data(30, 8, 31)
    put(c, "x", x)
    put(c, "bg", bg)
    exact = shap_exact(session, x, bg, output=1, klass=1)
    # Enough samples to enumerate every coalition of 8 features: exact.
    assert is_ok(explain(c, "m", "x", "attr", "METHOD", "KERNELSHAP", "NSAMPLES", 2048,
                         "TARGET", 1, "CLASS", 1))
    np.testing.assert_allclose(get(c, "attr"), exact, atol=1e-5)
    # Fewer samples than coalitions (254): sampled, still close, still exactly additive.
    assert is_ok(explain(c, "m", "x", "attr", "METHOD", "KERNELSHAP", "NSAMPLES", 200, "SEED", 9,
                         "TARGET", 1, "CLASS", 1))
    attr = get(c, "attr").astype(np.float64)
    assert np.abs(attr - exact).max() < 1e-2
    probs = session.run(None, {"x": x})[1][:, 1].astype(np.float64)
    base = session.run(None, {"x": bg})[1][:, 1].astype(np.float64).mean()
    np.testing.assert_allclose(attr.sum(axis=1), probs - base, atol=1e-4)
    # SEED makes it reproducible.
    assert is_ok(explain(c, "m", "x", "attr2", "METHOD", "KERNELSHAP", "NSAMPLES", 200, "SEED", 9,
                         "TARGET", 1, "CLASS", 1))
    np.testing.assert_array_equal(get(c, "attr2"), get(c, "attr"))


def test_kernelshap_sampling_over_many_features_stays_close(c):
    features = 14
    xs = data(500, features, 40)
    y = xs @ np.linspace(-1, 1, features) + xs[:, 0] * xs[:, 1]
    model = GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=0)
    model.fit(xs, (y > 0).astype(int))
    session = store(c, "m", (model, features))
    x, bg = data(2, features, 41), data(20, features, 42)
    put(c, "x", x)
    put(c, "bg", bg)
    exact = shap_exact(session, x, bg, output=1, klass=1)
    assert is_ok(explain(c, "m", "x", "exact", "METHOD", "EXACT", "TARGET", 1, "CLASS", 1))
    np.testing.assert_allclose(get(c, "exact"), exact, atol=1e-5)
    assert is_ok(explain(c, "m", "x", "attr", "METHOD", "KERNELSHAP", "NSAMPLES", 6000, "SEED", 1,
                         "TARGET", 1, "CLASS", 1))
    assert np.abs(get(c, "attr") - exact).max() < 1e-2


def test_default_class_is_each_rows_predicted_class(c):
    session = store(c, "m", logistic())
    x, bg = data(8, 7, 50), data(30, 7, 51)
    put(c, "x", x)
    put(c, "bg", bg)
    assert is_ok(explain(c, "m", "x", "attr", "METHOD", "EXACT", "TARGET", 1))
    attr = get(c, "attr").astype(np.float64)
    probs = session.run(None, {"x": x})[1]
    predicted = probs.argmax(axis=1)
    assert len(set(predicted)) == 2, "the rows should cover both classes"
    for k in (0, 1):
        rows = predicted == k
        want = shap_exact(session, x[rows], bg, output=1, klass=k)
        np.testing.assert_allclose(attr[rows], want, atol=1e-5)


def test_occlusion_is_the_drop_when_a_feature_takes_its_baseline(c):
    session = store(c, "m", boosted())
    x, bg = data(3, 8, 60), data(25, 8, 61)
    put(c, "x", x)
    put(c, "bg", bg)

    def occluded(baseline_row):
        p = session.run(None, {"x": x})[1][:, 1]
        out = np.zeros((3, 8))
        for j in range(8):
            z = x.copy()
            z[:, j] = baseline_row[j]
            out[:, j] = p - session.run(None, {"x": z})[1][:, 1]
        return out

    assert is_ok(explain(c, "m", "x", "attr", "METHOD", "OCCLUSION", "BASELINE", 0.25,
                         "TARGET", 1, "CLASS", 1, background=()))
    np.testing.assert_allclose(get(c, "attr"), occluded(np.full(8, 0.25, np.float32)), atol=1e-6)
    # Without BASELINE: the background's mean.
    assert is_ok(explain(c, "m", "x", "attr", "METHOD", "OCCLUSION", "TARGET", 1, "CLASS", 1))
    np.testing.assert_allclose(get(c, "attr"), occluded(bg.mean(axis=0)), atol=1e-5)


@pytest.mark.locus_only
def test_background_defaults_to_the_monitors_baseline_then_zeros(c):
    model, features = linear()
    store(c, "lin", (model, features))
    x, base = data(3, features, 70), data(60, features, 71)
    put(c, "x", x)
    put(c, "base", base)
    assert is_ok(explain(c, "lin", "x", "zeros", "METHOD", "EXACT", background=()))
    np.testing.assert_allclose(get(c, "zeros"), model.coef_ * x, atol=1e-4)
    assert is_ok(c.execute_command("AI.MONITOR", "SET", "lin", "BASELINE", "base"))
    assert is_ok(explain(c, "lin", "x", "mon", "METHOD", "EXACT", background=()))
    np.testing.assert_allclose(get(c, "mon"), model.coef_ * (x - base.mean(axis=0)), atol=1e-4)
    # Several BACKGROUND tensors are their rows end to end.
    put(c, "b1", base[:20])
    put(c, "b2", base[20:])
    assert is_ok(explain(c, "lin", "x", "two", "METHOD", "EXACT", background=("b1", "b2")))
    np.testing.assert_allclose(get(c, "two"), get(c, "mon"), atol=1e-5)


def test_explain_in_a_dag_with_versions_and_routers(c):
    session = store(c, "m", boosted())
    x, bg = data(2, 8, 80), data(20, 8, 81)
    put(c, "x", x)
    put(c, "bg", bg)
    assert is_ok(explain(c, "m", "x", "direct", "METHOD", "EXACT", "TARGET", 1, "CLASS", 1))
    want = get(c, "direct")
    r = c.execute_command("AI.DAGEXECUTE", "LOAD", 2, "x", "bg", "PERSIST", 1, "attr", "|>",
                          "AI.EXPLAIN", "m", "INPUTS", 1, "x", "BACKGROUND", 1, "bg",
                          "OUTPUTS", 1, "attr", "METHOD", "EXACT", "TARGET", 1, "CLASS", 1,
                          "|>", "AI.TENSORGET", "attr", "META")
    assert r[0] in (b"OK", "OK")
    np.testing.assert_array_equal(get(c, "attr"), want)
    # A later version, then VERSION 1 explains the first one again.
    lin_model = LinearRegression().fit(data(100, 8, 82), data(100, 8, 83)[:, 0])
    assert is_ok(c.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB",
                                   export(lin_model, 8)))
    assert is_ok(explain(c, "m", "x", "v1", "METHOD", "EXACT", "TARGET", 1, "CLASS", 1,
                         version=1))
    np.testing.assert_array_equal(get(c, "v1"), want)
    assert is_ok(explain(c, "m", "x", "latest", "METHOD", "EXACT"))
    np.testing.assert_allclose(get(c, "latest"), lin_model.coef_ * (x - bg.mean(axis=0)),
                               atol=1e-4)
    # A router explains its primary target's model.
    assert is_ok(c.execute_command("AI.ROUTERSET", "r", "SPLIT", "m@1", 50, "m@2", 50))
    assert is_ok(explain(c, "r", "x", "routed", "METHOD", "EXACT", "TARGET", 1, "CLASS", 1))
    np.testing.assert_array_equal(get(c, "routed"), want)
    del session


def test_bad_input_gets_clear_errors_and_writes_nothing(c):
    store(c, "m", boosted())
    put(c, "x", data(2, 8, 90))
    put(c, "bg", data(10, 8, 91))
    put(c, "narrow", data(10, 5, 92))
    put(c, "ints", np.ones((10, 8), np.int32))
    c.execute_command("AI.TENSORSET", "s", "STRING", 2, 8, "VALUES", *(["a"] * 16))
    put(c, "wide", data(2, 20, 93))
    lin_model = LinearRegression().fit(data(50, 20, 94), data(50, 20, 95)[:, 0])
    assert is_ok(c.execute_command("AI.MODELSTORE", "wide_m", "ONNX", "CPU", "BLOB",
                                   export(lin_model, 20)))
    for args, fragment in _bad_cases():
        with pytest.raises(redis.ResponseError, match=fragment):
            explain(c, *args[0], **args[1])
        assert not c.exists("a")
    # OUTPUTS names exactly one tensor.
    with pytest.raises(redis.ResponseError, match="OUTPUTS 1 key"):
        c.execute_command("AI.EXPLAIN", "m", "INPUTS", 1, "x", "OUTPUTS", 2, "a", "b")
    # The server is fine afterwards.
    assert is_ok(explain(c, "m", "x", "a", "METHOD", "EXACT"))


def _bad_cases():
    def case(*args, background=("bg",)):
        return (args, {"background": background})
    return [
        (case("m", "x", "a", background=("narrow",)), "background must be rows like"),
        (case("m", "x", "a", background=("ints",)), "background must be rows like"),
        (case("m", "x", "a", "METHOD", "KERNELSHAP", "NSAMPLES", 1), "NSAMPLES must be between"),
        (case("m", "x", "a", "METHOD", "KERNELSHAP", "NSAMPLES", 10**9),
         "NSAMPLES must be between"),
        (case("m", "x", "a", "TARGET", 5), "TARGET index 5 is out of range"),
        (case("m", "x", "a", "TARGET", 1, "CLASS", 7), "CLASS 7 is out of range"),
        (case("m", "x", "a", "FEATURES", 3), "FEATURES index 3 is out of range"),
        (case("m", "x", "a", "METHOD", "MAGIC"), "METHOD must be EXACT, KERNELSHAP or OCCLUSION"),
        (case("m", "s", "a"), "cannot perturb a STRING input"),
        (case("wide_m", "wide", "a", "METHOD", "EXACT", background=()), "METHOD KERNELSHAP"),
        (case("nothing", "x", "a"), "model key is empty"),
        (case("m", "x", "a", "BOGUS"), "syntax error"),
    ]


@pytest.mark.serial
def test_other_models_run_while_a_large_explanation_runs(c, server_port):
    store(c, "big", boosted())
    model, features = linear()
    store(c, "lin", (model, features))
    put(c, "x", data(200, 8, 100))
    put(c, "bg", data(100, 8, 101))
    put(c, "lx", data(1, features, 102))
    done = {}

    def run():
        other = redis.Redis(port=server_port)
        t0 = time.time()
        done["reply"] = explain(other, "big", "x", "attr", "METHOD", "EXACT", "TARGET", 1,
                                "CLASS", 1)
        done["seconds"] = time.time() - t0

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.3)
    worst = 0.0
    while t.is_alive():
        t0 = time.time()
        assert is_ok(c.execute_command("AI.MODELEXECUTE", "lin", "INPUTS", 1, "lx",
                                       "OUTPUTS", 1, "ly"))
        worst = max(worst, time.time() - t0)
        time.sleep(0.02)
    t.join()
    assert is_ok(done["reply"])
    # 200 rows × 256 coalitions × 100 background rows: about 5 million model rows.
    assert done["seconds"] > 0.5, "the explanation was too small to tell"
    assert worst < 0.25, f"an online run waited {worst:.3f}s behind the explanation"


def test_a_client_going_away_stops_its_explanation(c, server_port):
    store(c, "big", boosted())
    put(c, "x", data(1000, 8, 110))
    put(c, "bg", data(100, 8, 111))
    s = socket.create_connection(("127.0.0.1", server_port))
    args = [b"AI.EXPLAIN", b"big", b"INPUTS", b"1", b"x", b"BACKGROUND", b"1", b"bg",
            b"OUTPUTS", b"1", b"attr", b"METHOD", b"EXACT", b"TARGET", b"1", b"CLASS", b"1"]
    s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    time.sleep(0.3)
    s.close()
    # The queue drains at once instead of running the rest of 25 million rows.
    deadline = time.time() + 3
    while time.time() < deadline:
        info = c.info("ai")
        queued = sum(int(v) for k, v in info.items() if k.startswith("ai_queue_") and
                     k.endswith("_length") and str(v).isdigit())
        if queued == 0:
            break
        time.sleep(0.05)
    time.sleep(0.5)
    assert not c.exists("attr")
    calls_then = int(dict(zip(*[iter(c.execute_command("AI.INFO", "big"))] * 2))[b"calls"])
    time.sleep(0.5)
    calls_later = int(dict(zip(*[iter(c.execute_command("AI.INFO", "big"))] * 2))[b"calls"])
    assert calls_later == calls_then, "batches kept running after the client left"


def test_the_v2_http_api_explains_as_ai_explain_does():
    import json
    import urllib.error
    import urllib.request

    from conftest import ServerProcess, free_port

    http = free_port()
    s = ServerProcess(["--http-port", http])
    try:
        c = s.client(decode_responses=False)
        store(c, "m", boosted())
        x, bg = data(3, 8, 120), data(20, 8, 121)
        put(c, "x", x)
        put(c, "bg", bg)
        assert is_ok(explain(c, "m", "x", "attr", "METHOD", "EXACT", "TARGET", 1, "CLASS", 1))

        def post(body):
            req = urllib.request.Request(f"http://127.0.0.1:{http}/v2/models/m/explain",
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        def tensor(name, a):
            return {"name": name, "datatype": "FP32", "shape": list(a.shape),
                    "data": a.ravel().tolist()}

        status, body = post({"inputs": [tensor("x", x)], "background": tensor("bg", bg),
                             "parameters": {"method": "exact", "target": 1, "class": 1}})
        assert status == 200, body
        out = body["outputs"][0]
        assert body["method"] == "exact" and out["shape"] == [3, 8] and out["datatype"] == "FP32"
        np.testing.assert_allclose(np.array(out["data"]).reshape(3, 8), get(c, "attr"), atol=1e-6)
        status, body = post({"inputs": [tensor("x", x)], "background": tensor("bg", bg[:, :5]),
                             "parameters": {"method": "exact"}})
        assert status == 400 and "background must be rows like" in body["error"], body
        status, body = post({"inputs": [tensor("x", x)], "parameters": {"method": "magic"}})
        assert status == 400 and "unknown explanation method" in body["error"], body
    finally:
        s.stop()


@pytest.mark.locus_only
def test_acl_checks_every_key_an_explanation_reads(c):
    store(c, "m", boosted())
    put(c, "x", data(2, 8, 130))
    put(c, "secret_bg", data(10, 8, 131))
    keys = c.command_getkeys("AI.EXPLAIN", "m", "INPUTS", 1, "x",
                             "BACKGROUND", 1, "secret_bg", "OUTPUTS", 1, "attr", "METHOD", "EXACT")
    assert [k if isinstance(k, str) else k.decode() for k in keys] == ["m", "x", "secret_bg", "attr"]
    assert is_ok(c.execute_command("ACL", "SETUSER", "analyst", "on", ">pw", "+@ai-run",
                                   "~m", "~x", "~attr"))
    other = redis.Redis(port=c.connection_pool.connection_kwargs["port"], username="analyst",
                        password="pw")
    with pytest.raises(redis.exceptions.NoPermissionError):
        explain(other, "m", "x", "attr", "METHOD", "EXACT", background=("secret_bg",))
    assert is_ok(explain(other, "m", "x", "attr", "METHOD", "EXACT", background=()))
    c.execute_command("ACL", "DELUSER", "analyst")
