"""Drift and outlier monitors (AI.MONITOR): per-feature scores checked against scipy's
`ks_2samp` (statistic), `kstwobign` (asymptotic p-value) and a NumPy PSI on the same data,
alerts on crossing and on recovery, outliers."""

import json
import time

import numpy as np
import pytest
from scipy import stats

from test_models import is_ok, put
from test_request_log import c  # noqa: F401 (the fixture: a bytes client, flushed around)
from test_routers import error_of, execute, identity, store

pytest.importorskip("onnxruntime")


def get(c, key):
    r = c.execute_command("AI.MONITOR", "GET", key)
    d = dict(zip(r[::2], r[1::2]))
    return {k.decode(): v for k, v in d.items()}


def floats(v):
    return [float(x) for x in v]


def numpy_psi(base, live):
    edges = np.quantile(base, np.arange(1, 10) / 10)
    def shares(x):
        counts = np.bincount(np.searchsorted(edges, x, side="left"), minlength=10)
        return np.maximum(counts / len(x), 1e-4)
    e, a = shares(base), shares(live)
    return float(np.sum((a - e) * np.log(a / e)))


def alerts(c):
    return [{k.decode(): v.decode() for k, v in zip(a[::2], a[1::2])}
            for a in c.execute_command("AI.ALERTS", "COUNT", 100)]


def feed(c, rows):
    put(c, "live", rows.astype(np.float32))
    assert is_ok(execute(c, "m", "live", "out"))


def test_ks_scores_match_scipy_and_alerts_come_and_go(c):
    rng = np.random.default_rng(7)
    base = rng.standard_normal((500, 3)).astype(np.float32)
    assert is_ok(store(c, "m", identity(3)))
    put(c, "base", base)
    sub = c.pubsub()
    sub.subscribe("__locus__:alerts")
    sub.get_message(timeout=1)
    assert is_ok(c.execute_command("AI.MONITOR", "SET", "m", "BASELINE", "base", "OUTPUT-BASELINE",
                                   "base", "WINDOW", 300, "EVERY", 300, "METHOD", "KS"))
    live = rng.standard_normal((300, 3)).astype(np.float32)
    live[:, 1] += 1.0
    feed(c, live)
    g = get(c, "m")
    assert g["method"] == b"KS" and g["window_rows"] == 300 and g["rows_seen"] == 300
    for col in range(3):
        ref = stats.ks_2samp(base[:, col].astype(np.float64), live[:, col].astype(np.float64),
                             method="asymp")
        assert abs(float(g["scores"][col]) - ref.statistic) < 1e-6
        # The p-value is Kolmogorov's limiting distribution at sqrt(nm/(n+m)) * D (scipy's
        # ks_2samp uses the finite-n distribution of round(nm/(n+m)) samples instead).
        en = 500 * 300 / 800
        limit = stats.kstwobign.sf(np.sqrt(en) * ref.statistic)
        assert abs(float(g["p_values"][col]) - limit) < 1e-6
    # The model is the identity: its outputs drift as its inputs do.
    assert floats(g["output_scores"]) == pytest.approx(floats(g["scores"]), abs=1e-12)
    assert g["state"] == b"drift"
    msg = sub.get_message(timeout=2)
    alert = json.loads(msg["data"])
    assert alert["type"] == "drift" and alert["key"] == "m" and "[1]" in alert["detail"]
    # Back to the baseline's distribution: the alert clears (KS rescoring waits 50 ms).
    time.sleep(0.06)
    feed(c, rng.standard_normal((300, 3)))
    assert get(c, "m")["state"] == b"ok"
    assert [a["type"] for a in alerts(c)][:2] == ["drift-cleared", "drift"]
    sub.close()


def test_psi_scores_match_numpy(c):
    rng = np.random.default_rng(11)
    base = rng.standard_normal((1000, 4)).astype(np.float32)
    assert is_ok(store(c, "m", identity(4)))
    put(c, "base", base)
    assert is_ok(c.execute_command("AI.MONITOR", "SET", "m", "BASELINE", "base", "WINDOW", 400,
                                   "EVERY", 200))
    live = rng.standard_normal((400, 4)).astype(np.float32)
    live[:, 2] = live[:, 2] * 2 + 0.5
    for half in (live[:200], live[200:]):
        feed(c, half)
    g = get(c, "m")
    assert g["method"] == b"PSI" and float(g["threshold"]) == 0.2
    for col in range(4):
        ref = numpy_psi(base[:, col].astype(np.float64), live[:, col].astype(np.float64))
        assert abs(float(g["scores"][col]) - ref) < 1e-6, (col, g["scores"][col], ref)
    assert g["state"] == b"drift"


def test_outliers(c):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((500, 2)).astype(np.float32)
    assert is_ok(store(c, "m", identity(2)))
    put(c, "base", base)
    assert is_ok(c.execute_command("AI.MONITOR", "SET", "m", "BASELINE", "base", "WINDOW", 100,
                                   "EVERY", 100, "THRESHOLD", 100, "OUTLIER", "ZSCORE", 4,
                                   "RATE", 0.05))
    live = rng.standard_normal((100, 2)).astype(np.float32) * 0.5
    live[:10, 0] = 50.0
    feed(c, live)
    g = get(c, "m")
    assert float(g["outlier_rate"]) == pytest.approx(0.10)
    assert g["state"] == b"outliers"
    assert alerts(c)[0]["type"] == "outliers"


def test_bad_settings_and_inputs(c):
    assert is_ok(store(c, "m", identity(3)))
    put(c, "base", np.zeros((20, 3), np.float32))
    put(c, "small", np.zeros((5, 3), np.float32))
    c.set("s", "x")
    cases = [
        (("AI.MONITOR", "SET", "m", "BASELINE", "s"), "ERR BASELINE 's' is not a tensor"),
        (("AI.MONITOR", "SET", "m", "BASELINE", "small"), "ERR the baseline needs at least 10 rows"),
        (("AI.MONITOR", "SET", "m", "BASELINE", "base", "METHOD", "CHI2"), "ERR METHOD is PSI or KS"),
        (("AI.MONITOR", "SET", "m", "BASELINE", "base", "THRESHOLD", -1), "ERR THRESHOLD must be a positive number"),
        (("AI.MONITOR", "SET", "m", "BASELINE", "base", "WINDOW", 0), "ERR WINDOW must be a positive integer"),
        (("AI.MONITOR", "SET", "m", "BASELINE", "base", "WINDOW", 10**9), "ERR WINDOW is at most 1000000 rows"),
        (("AI.MONITOR", "SET", "m", "WINDOW", 10), "ERR AI.MONITOR SET needs BASELINE"),
        (("AI.MONITOR", "SET", "nokey", "BASELINE", "base"), "ERR model key is empty"),
    ]
    for args, err in cases:
        assert error_of(c, *args) == err, args
    assert c.execute_command("AI.MONITOR", "GET", "m") is None
    assert is_ok(c.execute_command("AI.MONITOR", "SET", "m", "BASELINE", "base", "EVERY", 1))
    # Rows of another width (a model accepting any) are not counted, and nothing breaks.
    assert is_ok(store(c, "any", identity(3)))
    feed(c, np.ones((4, 3)))
    assert get(c, "m")["rows_seen"] == 4
    assert c.execute_command("AI.MONITOR", "DEL", "m") == 1
    assert c.execute_command("AI.MONITOR", "DEL", "m") == 0


@pytest.mark.parametrize("how", ["snapshot", "aof", "aof-rewrite"])
def test_monitors_survive_restarts(spawn_target, how):
    """The definition and its baselines persist, even after the baseline keys are gone; the
    window fills again after the restart, and drift is still caught."""
    import tempfile

    spawn = spawn_target
    d = tempfile.mkdtemp(prefix="locus-monitors-")
    args = ["--dir", d] + (["--appendonly", "yes"] if how != "snapshot" else [])
    srv = spawn(*args)
    c = srv.client(decode_responses=False)
    assert is_ok(store(c, "m", identity(3)))
    rng = np.random.default_rng(11)
    put(c, "base", rng.standard_normal((300, 3)).astype(np.float32))
    put(c, "obase", rng.standard_normal((300, 3)).astype(np.float32))
    assert is_ok(c.execute_command("AI.MONITOR", "SET", "m", "BASELINE", "base",
                                   "OUTPUT-BASELINE", "obase", "WINDOW", 50, "EVERY", 50,
                                   "METHOD", "KS", "THRESHOLD", 0.3, "OUTLIER", "ZSCORE", 4,
                                   "RATE", 0.2))
    c.delete("base", "obase")
    if how == "aof-rewrite":
        c.bgrewriteaof()
        time.sleep(1)
    if how == "snapshot":
        assert c.save()
    before = get(c, "m")
    srv.stop()
    srv2 = spawn(*args)
    c2 = srv2.client(decode_responses=False)
    after = get(c2, "m")
    for field in ("method", "threshold", "window", "every"):
        assert after[field] == before[field], field
    assert after["rows_seen"] == 0
    # Shifted traffic drifts against the saved baseline.
    put(c2, "live", (rng.standard_normal((50, 3)) + 3).astype(np.float32))
    assert is_ok(execute(c2, "m", "live", "out"))
    assert get(c2, "m")["state"].startswith(b"drift")
    assert min(floats(get(c2, "m")["scores"])) > 0.3


@pytest.mark.locus_only  # error rates are read from the models of locus-server's own keyspace
def test_a_failing_model_raises_an_error_rate_alert(c):
    """A version failing more than alert-error-rate (5%) of its requests over the window (with
    at least 20 requests) raises `error-rate`; a healthy one does not."""
    from test_routers import fragile, scale

    assert is_ok(store(c, "bad", fragile()))
    assert is_ok(store(c, "good", scale(2)))
    put(c, "ok", np.ones((1, 4), np.float32))
    put(c, "boom", np.full((1, 4), 3, np.float32))
    deadline = time.time() + 15
    found = []
    while time.time() < deadline and not found:
        for _ in range(10):
            execute(c, "good", "ok", "y")
            execute(c, "bad", "ok", "y")
            try:
                execute(c, "bad", "boom", "y")
            except Exception:
                pass
        time.sleep(0.2)
        found = [a for a in alerts(c) if a["type"] == "error-rate"]
    assert found, "no error-rate alert"
    assert {a["key"] for a in found} == {"bad"}
    assert found[0]["version"] == "1" and "requests failed" in found[0]["detail"]
    c.config_set("alert-error-rate", "0.9")
    assert c.config_get("alert-error-rate") in ({"alert-error-rate": "0.9"},
                                                {b"alert-error-rate": b"0.9"})
    with pytest.raises(Exception):
        c.config_set("alert-error-rate", "2")
    c.config_set("alert-error-rate", "0.05")
