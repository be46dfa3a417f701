"""Routers as keys: SPLIT (with STICKY), SHADOW, CASCADE, ENSEMBLE and BANDIT, guards that roll
a candidate back, ramps that promote it, and their persistence, audit and alerts.

Every model is a real ONNX graph built here. `scale(k)` multiplies its input by k, so an output
tells which target answered; `fragile()` returns its input unless the input's first element is 3,
when ONNX Runtime fails (a reshape that cannot be done), so a test controls which requests a
candidate fails on.
"""

import json
import tempfile
import threading
import time

import numpy as np
import pytest
import redis
from onnx import TensorProto, helper

from conftest import _client, ROUTER_TYPE
from test_models import Runner, is_ok, put

pytest.importorskip("onnxruntime")


def _model(graph):
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m.SerializeToString()


def scale(k, cols=4):
    """y = x * k, float [N, cols]."""
    return _model(helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["y"])], f"scale{k}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", cols])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", cols])],
        [helper.make_tensor("k", TensorProto.FLOAT, [1], [float(k)])]))


def fragile():
    """y = x, except that ONNX Runtime fails when x[0, 0] is 3 (x reshaped to [x[0,0], -1])."""
    i64 = TensorProto.INT64
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["x", "zero"], ["row"], axis=0),
        helper.make_node("Gather", ["row", "zero"], ["first"], axis=0),
        helper.make_node("Cast", ["first"], ["c"], to=i64),
        helper.make_node("Unsqueeze", ["c", "axes"], ["c1"]),
        helper.make_node("Concat", ["c1", "minus1"], ["newshape"], axis=0),
        helper.make_node("Reshape", ["x", "newshape"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["y"]),
    ]
    return _model(helper.make_graph(
        nodes, "fragile",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor("zero", i64, [], [0]),
         helper.make_tensor("axes", i64, [1], [0]),
         helper.make_tensor("minus1", i64, [1], [-1])]))


def identity(cols):
    """y = x, float [N, cols]: class scores that are the input itself."""
    return _model(helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", cols])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", cols])]))


def store(c, key, blob, *opts):
    return c.execute_command("AI.MODELSTORE", key, "ONNX", "CPU", *opts, "BLOB", blob)


def routerset(c, key, *words):
    return c.execute_command("AI.ROUTERSET", key, *words)


def dag(router, values, inp="x", cols=4):
    rows = len(values) // cols
    return ("AI.DAGEXECUTE", "ROUTING", router, "|>", "AI.TENSORSET", inp, "FLOAT", rows, cols,
            "VALUES", *values, "|>", "AI.MODELEXECUTE", router, "INPUTS", 1, inp, "OUTPUTS",
            1, "y", "|>", "AI.TENSORGET", "y", "VALUES")


def run(c, router, values=None, cols=4):
    """Runs `router` on `values` (ones by default) and returns the output's values."""
    values = values or [1] * cols
    reply = c.execute_command(*dag(router, values, cols=cols))
    for r in reply:
        if isinstance(r, Exception):
            raise r
    return [float(v) for v in reply[-1]]


def factor(c, router):
    out = run(c, router)
    assert len(set(out)) == 1, out
    return out[0]


def execute(c, router, inp, out):
    return c.execute_command("AI.MODELEXECUTE", router, "INPUTS", 1, inp, "OUTPUTS", 1, out)


def values(c, key):
    return [float(v) for v in c.execute_command("AI.TENSORGET", key, "VALUES")]


def to_dict(reply):
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2]))


def info(c, key):
    d = to_dict(c.execute_command("AI.ROUTERINFO", key))
    d["targets"] = {t["target"]: t for t in map(to_dict, d["targets"])}
    for t in d["targets"].values():
        if "agreement" in t:
            t["agreement"] = [to_dict(a) for a in t["agreement"]]
    return d


def error_of(c, *args):
    """The error text as the server sent it (redis-py drops the leading "ERR ")."""
    with pytest.raises(redis.ResponseError) as e:
        c.execute_command(*args)
    text = str(e.value)
    return text if text.startswith("WRONGTYPE") else "ERR " + text


@pytest.fixture
def c(server_port):
    conn = _client(server_port, 2, decode=True)
    conn.flushall()
    yield conn
    conn.flushall()
    conn.close()


@pytest.fixture
def versions2(c):
    """Model `m`: version 1 multiplies by 1, version 2 (live) by 2."""
    assert is_ok(store(c, "m", scale(1)))
    assert is_ok(store(c, "m", scale(2)))
    return c


def test_split_weights_hold_statistically(versions2):
    """A 95/5 canary over 20,000 requests: the observed split passes a chi-square test, and
    AI.ROUTERINFO counts what the clients saw."""
    c = versions2
    assert is_ok(routerset(c, "canary", "SPLIT", "m@1", 95, "m@2", 5))
    counts = {1.0: 0, 2.0: 0}
    n = 20_000
    for _ in range(n // 1000):
        p = c.pipeline(transaction=False)
        for _ in range(1000):
            p.execute_command(*dag("canary", [1] * 4))
        for reply in p.execute():
            counts[float(reply[-1][0])] += 1
    expected = {1.0: 0.95 * n, 2.0: 0.05 * n}
    chi2 = sum((counts[k] - expected[k]) ** 2 / expected[k] for k in counts)
    assert chi2 < 10.83, f"{counts}: chi-square {chi2:.2f} (p < 0.001 with 1 degree of freedom)"
    i = info(c, "canary")
    assert i["kind"] == "SPLIT" and i["calls"] == n and i["errors"] == 0
    assert i["targets"]["m@1"]["calls"] == counts[1.0]
    assert i["targets"]["m@2"]["calls"] == counts[2.0]
    assert abs(float(i["targets"]["m@2"]["share"]) - counts[2.0] / n) < 1e-9
    assert int(i["targets"]["m@1"]["p99_us"]) >= int(i["targets"]["m@1"]["p50_us"]) > 0
    assert is_ok(c.execute_command("AI.ROUTERINFO", "canary", "RESETSTAT"))
    assert info(c, "canary")["targets"]["m@1"]["calls"] == 0


def test_a_router_is_accepted_wherever_a_model_key_is(versions2):
    c = versions2
    assert is_ok(routerset(c, "r", "SPLIT", "m@1", 1))
    put(c, "x", np.ones((2, 4), np.float32))
    assert is_ok(execute(c, "r", "x", "y"))
    assert values(c, "y") == [1.0] * 8
    assert is_ok(c.execute_command("AI.MODELRUN", "r", "INPUTS", "x", "OUTPUTS", "y2"))
    assert values(c, "y2") == [1.0] * 8
    assert factor(c, "r") == 1.0
    assert c.type("r") == ROUTER_TYPE
    # A router naming the live version follows promotions.
    assert is_ok(routerset(c, "live", "SPLIT", "m", 1))
    assert factor(c, "live") == 2.0
    assert is_ok(c.execute_command("AI.MODELPROMOTE", "m", "VERSION", 1))
    assert factor(c, "live") == 1.0
    # Routers nest: a split over an ensemble and a model.
    assert is_ok(routerset(c, "ens", "ENSEMBLE", "MEAN", "m@1", "m@2"))
    assert is_ok(routerset(c, "outer", "SPLIT", "ens", 1))
    assert factor(c, "outer") == 1.5
    # RENAME and COPY keep a working router; DEL removes it.
    assert c.rename("outer", "outer2")
    assert factor(c, "outer2") == 1.5
    assert c.copy("outer2", "outer3")
    assert factor(c, "outer3") == 1.5
    assert info(c, "outer3")["calls"] == 1, "a copy counts its own requests"
    assert c.delete("outer2") == 1
    assert c.exists("outer2") == 0
    assert error_of(c, "AI.MODELGET", "r") == "WRONGTYPE Operation against a key holding the wrong kind of value"
    assert "VERSION applies to model keys" in error_of(
        c, "AI.MODELEXECUTE", "r", "VERSION", 1, "INPUTS", 1, "x", "OUTPUTS", 1, "y")


def test_sticky_routes_one_entity_to_one_target_across_restarts(spawn):
    d = tempfile.mkdtemp(prefix="locus-routers-")
    srv = spawn("--dir", d, "--appendonly", "yes")
    c = srv.client()
    assert is_ok(store(c, "m", scale(1)))
    assert is_ok(store(c, "m", scale(2)))
    assert is_ok(routerset(c, "ab", "SPLIT", "m@1", 50, "m@2", 50, "STICKY"))

    def assignments(conn):
        out = {}
        for i in range(200):
            key = f"user:{i}"
            put(conn, key, np.ones((1, 4), np.float32))
            reply = conn.execute_command("AI.DAGEXECUTE", "LOAD", 1, key, "|>", "AI.MODELEXECUTE",
                                         "ab", "INPUTS", 1, key, "OUTPUTS", 1, "y", "|>",
                                         "AI.TENSORGET", "y", "VALUES")
            out[key] = float(reply[-1][0])
        return out

    first = assignments(c)
    assert first == assignments(c), "the same entity met another target"
    assert 60 < list(first.values()).count(2.0) < 140
    srv.stop()
    srv2 = spawn("--dir", d, "--appendonly", "yes")
    assert assignments(srv2.client()) == first


def test_shadow_never_changes_the_reply_and_measures_agreement(versions2):
    c = versions2
    assert is_ok(routerset(c, "sh", "SHADOW", "m@2", "m@1"))
    put(c, "x", np.ones((3, 4), np.float32))
    for _ in range(50):
        assert is_ok(execute(c, "sh", "x", "y"))
        assert values(c, "y") == [2.0] * 12
    assert factor(c, "sh") == 2.0
    keys = set(c.keys("*"))
    deadline = time.time() + 5
    while info(c, "sh")["targets"]["m@1"]["calls"] < 51 and time.time() < deadline:
        time.sleep(0.02)
    i = info(c, "sh")
    cand = i["targets"]["m@1"]
    assert i["targets"]["m@2"]["calls"] == 51 and cand["calls"] == 51
    (agreement,) = cand["agreement"]
    assert agreement["compared"] == 51
    assert float(agreement["max_abs_diff"]) == 1.0
    # Scores that are all equal have the same argmax: full agreement.
    assert float(agreement["argmax_agreement"]) == 1.0
    assert set(c.keys("*")) == keys, "the shadow wrote keys"
    # SAMPLE 0 turns the shadow off; ROUTERWEIGHT sets the sample rate.
    assert is_ok(c.execute_command("AI.ROUTERWEIGHT", "sh", "m@1", 0))
    for _ in range(20):
        assert factor(c, "sh") == 2.0
    time.sleep(0.2)
    assert info(c, "sh")["targets"]["m@1"]["calls"] == 51
    # A version a router sends requests to keeps its session though it is not live, when the
    # others not live let theirs go.
    assert is_ok(store(c, "m", scale(3), "STAGED"))
    loaded = {v["version"]: v["loaded"] for v in map(to_dict, c.execute_command("AI.MODELVERSIONS", "m"))}
    assert loaded[1] == 1 and loaded[2] == 1, loaded


@pytest.mark.locus_only
def test_shadow_guard_rolls_back_within_one_window(c):
    """A candidate failing on 5% of inputs is cut off by an ERRORS 0.02 WINDOW 100 guard on
    its third failure, within its first window; the client never sees a failure."""
    assert is_ok(store(c, "stable", scale(1)))
    assert is_ok(store(c, "cand", fragile()))
    assert is_ok(routerset(c, "sh", "SHADOW", "stable", "cand", "GUARD", "ERRORS", 0.02,
                           "WINDOW", 100))
    sub = c.pubsub()
    sub.subscribe("__locus__:alerts")
    assert sub.get_message(timeout=1)["type"] == "subscribe"
    for i in range(200):
        bad = i % 20 == 19  # every 20th request: 5%
        assert run(c, "sh", [3 if bad else 1, 1, 1, 1])[1] == 1.0
        time.sleep(0.002)
    deadline = time.time() + 5
    while info(c, "sh")["rollbacks"] == 0 and time.time() < deadline:
        time.sleep(0.02)
    i = info(c, "sh")
    cand = i["targets"]["cand"]
    assert i["rollbacks"] == 1 and cand["rollbacks"] == 1
    assert cand["guard"].startswith("breached: errors: 3 of the last 100")
    assert cand["calls"] == 60, "the third failure (request 60) stops the shadow"
    assert float(cand["weight"]) == 0.0
    msg = sub.get_message(timeout=2)
    assert msg and msg["channel"] == "__locus__:alerts"
    alert = json.loads(msg["data"])
    assert alert["type"] == "rollback" and alert["router"] == "sh" and alert["target"] == "cand"
    (entry,) = c.xrange("locus:alerts")[-1:]
    assert entry[1]["type"] == "rollback" and entry[1]["target"] == "cand"
    audit = [e for _, e in c.xrange("locus:audit") if e["key"] == "sh"]
    assert [a["command"] for a in audit] == ["AI.ROUTERSET", "AI.ROUTERWEIGHT"]
    assert "rollback of cand" in audit[-1]["detail"]
    assert "only the server appends" in error_of(c, "XADD", "locus:alerts", "*", "f", "v")
    sub.close()


def test_split_guard_takes_the_canary_out(c):
    """A canary that fails on 5% of requests: its weight drops to 0 and every later request
    goes to the stable model."""
    assert is_ok(store(c, "stable", scale(1)))
    assert is_ok(store(c, "cand", fragile()))
    assert is_ok(routerset(c, "r", "SPLIT", "stable", 50, "cand", 50, "GUARD", "ERRORS", 0.02,
                           "P99", 1000, "WINDOW", 100))
    failures = 0
    for i in range(2000):
        bad = i % 20 == 19
        try:
            run(c, "r", [3 if bad else 1, 1, 1, 1])
        except redis.ResponseError:
            failures += 1
        if i > 0 and i % 100 == 0 and float(info(c, "r")["targets"]["cand"]["weight"]) == 0:
            break
    t = info(c, "r")["targets"]
    assert float(t["cand"]["weight"]) == 0.0 and t["cand"]["rollbacks"] == 1
    assert 3 <= t["cand"]["errors"] == failures
    assert t["cand"]["calls"] <= 200
    before = t["cand"]["calls"]
    for _ in range(100):
        assert factor(c, "r") == 1.0
    assert info(c, "r")["targets"]["cand"]["calls"] == before
    # A weight set by hand re-arms the guard.
    assert is_ok(c.execute_command("AI.ROUTERWEIGHT", "r", "cand", 50))
    assert info(c, "r")["targets"]["cand"]["guard"] == "ok"


@pytest.mark.locus_only
def test_ramp_promotes_a_healthy_candidate(versions2):
    c = versions2
    assert is_ok(c.execute_command("AI.MODELPROMOTE", "m", "VERSION", 1))
    assert is_ok(routerset(c, "r", "SPLIT", "m@1", 90, "m@2", 10, "GUARD", "ERRORS", 0.1,
                           "WINDOW", 20, "RAMP", 30, 10))
    for _ in range(400):
        run(c, "r")
        if float(info(c, "r")["targets"]["m@2"]["weight"]) == 100:
            break
    assert [float(w) for w in to_dict(c.execute_command("AI.ROUTERGET", "r"))["weights"]] == [0, 100]
    time.sleep(0.2)
    status = {v["version"]: v["status"] for v in map(to_dict, c.execute_command("AI.MODELVERSIONS", "m"))}
    assert status[2] == "live", status
    assert factor(c, "r") == 2.0
    alerts = [e for _, e in c.xrange("locus:alerts") if e["router"] == "r"]
    assert alerts[-1]["type"] == "ramp-complete" and "version 2 promoted" in alerts[-1]["detail"]
    audit = [e["command"] for _, e in c.xrange("locus:audit")]
    assert "AI.MODELPROMOTE" in audit


def test_cascade_escalates_unsure_or_flagged_requests(c):
    assert is_ok(store(c, "small", identity(2)))
    assert is_ok(store(c, "big", scale(10, cols=2)))
    assert is_ok(routerset(c, "cas", "CASCADE", "small", "big", "IF", "MAXPROB", "<", 0.7))
    assert run(c, "cas", [0.9, 0.1], cols=2) == pytest.approx([0.9, 0.1])
    assert run(c, "cas", [0.6, 0.4], cols=2) == pytest.approx([6.0, 4.0])
    t = info(c, "cas")["targets"]
    assert t["small"]["calls"] == 2 and t["big"]["calls"] == 1
    assert is_ok(routerset(c, "plate", "CASCADE", "small", "big", "OUTPUT", 0, "IF", "ARGMAX",
                           "==", 1))
    assert run(c, "plate", [0.9, 0.1], cols=2) == pytest.approx([0.9, 0.1])
    assert run(c, "plate", [0.2, 0.8], cols=2) == pytest.approx([2.0, 8.0])


def test_ensembles_combine_outputs(c):
    assert is_ok(store(c, "a", scale(1)))
    assert is_ok(store(c, "b", scale(3)))
    assert is_ok(routerset(c, "mean", "ENSEMBLE", "MEAN", "a", "b"))
    assert factor(c, "mean") == 2.0
    assert is_ok(routerset(c, "w", "ENSEMBLE", "WEIGHTED", 3, 1, "a", "b"))
    assert factor(c, "w") == 1.5
    assert is_ok(c.execute_command("AI.ROUTERWEIGHT", "w", "b", 3))
    assert factor(c, "w") == 2.0
    # VOTE: each class's share of the members' argmax votes.
    assert is_ok(store(c, "p", identity(3)))
    assert is_ok(store(c, "q", identity(3)))
    assert is_ok(store(c, "s", scale(-1, cols=3)))
    assert is_ok(routerset(c, "vote", "ENSEMBLE", "VOTE", "p", "q", "s"))
    out = run(c, "vote", [0.2, 0.7, 0.1], cols=3)
    assert out == pytest.approx([0, 2 / 3, 1 / 3])  # p and q vote 1, s (negated) votes 2
    t = info(c, "vote")["targets"]
    assert t["p"]["calls"] == t["q"]["calls"] == t["s"]["calls"] == 1


def test_bandits_converge_on_the_best_arm(c):
    """Bernoulli rewards 0.1/0.2/0.3: each strategy sends at least 85% of the last 2,000 of
    10,000 requests to the best arm (fixed seeds)."""
    for k in (1, 2, 3):
        assert is_ok(store(c, f"arm{k}", scale(k)))
    p = {1.0: 0.1, 2.0: 0.2, 3.0: 0.3}
    for strategy in (["EPSILON", 0.1], ["UCB1"], ["THOMPSON"]):
        assert is_ok(routerset(c, "b", "BANDIT", *strategy, "arm1", "arm2", "arm3", "SEED", 7))
        rng = np.random.default_rng(11)
        best = 0
        for i in range(10_000):
            arm = float(c.execute_command(*dag("b", [1] * 4))[-1][0])
            reward = 1 if rng.random() < p[arm] else 0
            credited = c.execute_command("AI.ROUTERREWARD", "b", "OUTPUT", "y", reward)
            assert credited == f"arm{int(arm)}"
            if i >= 8_000 and arm == 3.0:
                best += 1
        assert best >= 1_700, f"{strategy}: {best} of the last 2,000 to the best arm"
        arms = info(c, "b")["targets"]
        assert arms["arm3"]["pulls"] > arms["arm1"]["pulls"]
        assert abs(float(arms["arm3"]["mean_reward"]) - 0.3) < 0.05
    assert "no recent request" in error_of(c, "AI.ROUTERREWARD", "b", "OUTPUT", "nope", 1)
    assert "between 0 and 1" in error_of(c, "AI.ROUTERREWARD", "b", "OUTPUT", "y", 2)
    assert is_ok(routerset(c, "s", "SPLIT", "arm1", 1))
    assert "only a BANDIT" in error_of(c, "AI.ROUTERREWARD", "s", "OUTPUT", "y", 1)


@pytest.mark.locus_only
def test_bad_definitions_change_nothing(versions2):
    c = versions2
    put(c, "t", np.ones((1, 4), np.float32))
    assert is_ok(routerset(c, "r", "SPLIT", "m@1", 1))
    before = c.execute_command("AI.ROUTERGET", "r")
    cases = [
        (("ROUND", "m", 1), "ERR unknown router kind 'ROUND': expected SPLIT, SHADOW, CASCADE, ENSEMBLE or BANDIT"),
        (("SPLIT", "m", "heavy"), "ERR weight 'heavy' is not a number"),
        (("SPLIT", "t", 1), "ERR router target 't' is not a model or a router"),
        (("SPLIT", "nokey", 1), "ERR router target 'nokey' does not exist"),
        (("SPLIT", "m@9", 1), "ERR router target 'm@9': model has no version 9"),
        (("SPLIT", "r", 1), "ERR router 'r' cannot route to itself"),
        (("ENSEMBLE", "MEAN", "m"), "ERR ENSEMBLE needs at least two targets"),
    ]
    for words, err in cases:
        assert error_of(c, "AI.ROUTERSET", "r", *words) == err
    assert c.execute_command("AI.ROUTERGET", "r") == before
    # A cycle through another router.
    assert is_ok(routerset(c, "outer", "SPLIT", "r", 1))
    assert error_of(c, "AI.ROUTERSET", "r", "SPLIT", "outer", 1) == \
        "ERR router 'r' would route to itself through 'outer' (a cycle)"
    assert c.execute_command("AI.ROUTERGET", "r") == before
    assert error_of(c, "AI.ROUTERSET", "t", "SPLIT", "m", 1).startswith("WRONGTYPE")
    assert error_of(c, "AI.ROUTERWEIGHT", "r", "zzz", 1) == "ERR router has no target 'zzz'"
    assert error_of(c, "AI.ROUTERWEIGHT", "r", "m@1", -1) == "ERR weight must be a non-negative number"
    assert error_of(c, "AI.ROUTERWEIGHT", "r", "m@1", 0) == "ERR at least one target must keep a positive weight"
    assert error_of(c, "AI.ROUTERINFO", "nokey") == "ERR router key is empty"
    assert c.execute_command("AI.ROUTERGET", "r") == before
    # Refusals are audited too.
    refused = [e for _, e in c.xrange("locus:audit") if e["key"] == "r" and e["outcome"] != "ok"]
    assert len(refused) >= len(cases) + 2
    # Ensembles of ensembles multiply: a request may not fan out without bound.
    assert is_ok(routerset(c, "e0", "ENSEMBLE", "MEAN", "m", "m"))
    for i in range(1, 10):
        assert is_ok(routerset(c, f"e{i}", "ENSEMBLE", "MEAN", f"e{i - 1}", f"e{i - 1}"))
    assert factor(c, "e7") == 2.0  # 256 runs
    assert error_of(c, *dag("e9", [1] * 4)) == \
        "ERR the request fans out to more than 256 model runs through nested routers"
    # A target deleted later: the request fails clearly and counts against that target.
    assert is_ok(store(c, "gone", scale(5)))
    assert is_ok(routerset(c, "g", "SPLIT", "gone", 1))
    c.delete("gone")
    assert error_of(c, *dag("g", [1] * 4)) == "ERR router target 'gone' does not exist"
    assert info(c, "g")["targets"]["gone"]["errors"] == 1


def test_requests_from_any_router_batch_together(c, server_port):
    """A version waiting for a batch of 4 gets it from two routers and a direct client."""
    assert is_ok(store(c, "bm", scale(2), "BATCHSIZE", 4, "MINBATCHSIZE", 4))
    assert is_ok(routerset(c, "r1", "SPLIT", "bm", 1))
    assert is_ok(routerset(c, "r2", "ENSEMBLE", "MEAN", "bm", "bm@1"))
    put(c, "x", np.ones((1, 4), np.float32))
    runners = [Runner(server_port, "AI.MODELEXECUTE", key, "INPUTS", 1, "x", "OUTPUTS", 1,
                      f"o{i}", "TIMEOUT", 5000) for i, key in enumerate(["r1", "r2", "bm"])]
    for r in runners:
        r.start()
    for r in runners:
        r.join(10)
    # None of the four could run before all four were queued: they ran as one batch.
    assert [r.reply for r in runners] == [b"OK"] * 3, [r.error for r in runners]
    assert all(r.elapsed < 4 for r in runners)
    stats = to_dict(c.execute_command("AI.INFO", "bm"))
    assert stats["samples"] == 4, stats
    assert values(c, "o1") == [2.0] * 4, "the mean of one version run twice"


@pytest.mark.locus_only
@pytest.mark.parametrize("how", ["snapshot", "aof", "aof-rewrite"])
def test_routers_survive_restarts(spawn, how):
    d = tempfile.mkdtemp(prefix="locus-routers-")
    args = ["--dir", d] + (["--appendonly", "yes"] if how != "snapshot" else [])
    srv = spawn(*args)
    c = srv.client()
    assert is_ok(store(c, "m", scale(1)))
    assert is_ok(store(c, "m", scale(2)))
    assert is_ok(store(c, "cand", fragile()))
    assert is_ok(routerset(c, "r", "SPLIT", "m@1", 90, "m@2", 10, "STICKY", "GUARD", "ERRORS",
                           0.05, "WINDOW", 50))
    assert is_ok(c.execute_command("AI.ROUTERWEIGHT", "r", "m@2", 30))
    # A shadow that fails on every request is rolled back, and that persists.
    assert is_ok(routerset(c, "sh", "SHADOW", "m", "cand", "SAMPLE", 0.5, "GUARD", "ERRORS",
                           0.01, "WINDOW", 10))
    for _ in range(40):
        run(c, "sh", [3, 1, 1, 1])
    deadline = time.time() + 5
    while info(c, "sh")["rollbacks"] == 0 and time.time() < deadline:
        time.sleep(0.02)
    assert info(c, "sh")["rollbacks"] == 1
    time.sleep(0.1)
    assert is_ok(routerset(c, "b", "BANDIT", "THOMPSON", "m@1", "m@2", "SEED", 3))
    if how == "aof-rewrite":
        c.bgrewriteaof()
        time.sleep(1)
        assert is_ok(c.execute_command("AI.ROUTERWEIGHT", "r", "m@1", 70))
    if how == "snapshot":
        assert c.save()
    before = {k: c.execute_command("AI.ROUTERGET", k) for k in ("r", "sh", "b")}
    srv.stop()
    srv2 = spawn(*args)
    c2 = srv2.client()
    after = {k: c2.execute_command("AI.ROUTERGET", k) for k in ("r", "sh", "b")}
    assert after == before
    assert float(to_dict(after["sh"])["weights"][1]) == 0.0
    assert c2.type("r") == ROUTER_TYPE
    assert factor(c2, "sh") == 2.0
