"""The HTTP face's /metrics and /healthz: Prometheus text that promtool accepts, scraped by a real
Prometheus (Debian's `prometheus`) whose HTTP API answers `histogram_quantile` over Locus's
series; credentials when a password is set; a taken port stops the start."""

import base64
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import json

import numpy as np
import pytest

from conftest import BUSY_SCRIPT, ServerProcess, free_port
from test_models import execute, is_ok, put, store

pytest.importorskip("onnxruntime")


def get(port, path, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.headers, r.read().decode()


def metric(text, name, **labels):
    """The value of the sample `name` whose labels include `labels`."""
    for line in text.splitlines():
        if line.startswith("#") or not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        series, value = line.rsplit(" ", 1)
        if series.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            return float(value)
    raise AssertionError(f"no {name} with {labels}")


@pytest.fixture
def http_srv(spawn):
    port = free_port()
    srv = spawn("--http-port", port)
    srv.http = port
    return srv


def traffic(c, n=20):
    store(c, "m", "fraud.onnx", "BATCHSIZE", 8)
    rng = np.random.default_rng(3)
    put(c, "tx", rng.standard_normal((1, 30)).astype(np.float32))
    put(c, "ref", rng.standard_normal((1, 256)).astype(np.float32))
    for i in range(n):
        assert is_ok(execute(c, "m", ["tx", "ref"], ["out"]))


def test_metrics_and_health(http_srv):
    c = http_srv.client()
    traffic(c)
    assert is_ok(c.execute_command("AI.ROUTERSET", "r", "SPLIT", "m", 1))
    assert is_ok(execute(c, "r", ["tx", "ref"], ["out"]))
    status, headers, text = get(http_srv.http, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    labels = dict(db="0", key="m", version="1", status="live")
    assert metric(text, "locus_model_requests_total", **labels) == 21
    assert metric(text, "locus_model_errors_total", **labels) == 0
    assert metric(text, "locus_model_request_seconds_count", **labels) == 21
    assert metric(text, "locus_model_request_seconds_bucket", le="+Inf", **labels) == 21
    assert metric(text, "locus_model_request_seconds_bucket", le="10", **labels) == 21
    assert metric(text, "locus_model_request_seconds_sum", **labels) > 0
    assert metric(text, "locus_model_batch_size_bucket", le="1", **labels) == 21
    assert metric(text, "locus_router_requests_total", router="r", target="m") == 1
    assert metric(text, "locus_router_weight", router="r", target="m") == 1
    assert metric(text, "locus_router_request_seconds_count", router="r", target="m") == 1
    assert metric(text, "locus_router_request_seconds_bucket", router="r", target="m", le="10") == 1
    assert metric(text, "locus_router_request_seconds_bucket", router="r", target="m",
                  le="0.00001") == 0, "a model run through a router takes more than 10 µs"
    assert metric(text, "locus_command_calls_total", command="ai.modelexecute") == 21
    assert metric(text, "locus_keyspace_keys", db="0") == 6  # m tx ref out r locus:audit
    assert metric(text, "locus_connected_clients") >= 1
    assert metric(text, "locus_queue_depth", queue="CPU") == 0
    status, headers, body = get(http_srv.http, "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    # AI.INFO gains latency percentiles and batch sizes from the same histograms.
    info = c.execute_command("AI.INFO", "m")
    info = {k.decode() if isinstance(k, bytes) else k: v for k, v in zip(info[::2], info[1::2])}
    assert info["runs"] == 21 and 0 < info["p50_us"] <= info["p99_us"]
    # A router's AI.INFO is its per-target figures.
    rinfo = [x.decode() if isinstance(x, bytes) else x for x in c.execute_command("AI.INFO", "r")]
    assert rinfo[rinfo.index("kind") + 1] == "SPLIT"


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian prometheus) is not installed")
def test_promtool_accepts_the_output(http_srv):
    c = http_srv.client()
    traffic(c, 5)
    c.set('we"ird\nkey', "x")
    assert is_ok(c.execute_command("AI.ROUTERSET", 'r"\\', "ENSEMBLE", "MEAN", "m", "m@1"))
    _, _, text = get(http_srv.http, "/metrics")
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_openmetrics_by_accept_header(http_srv):
    parser = pytest.importorskip("prometheus_client.openmetrics.parser")
    c = http_srv.client()
    traffic(c, 3)
    status, headers, text = get(http_srv.http, "/metrics",
                                {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    requests = families["locus_model_requests"]
    assert requests.type == "counter"
    (sample,) = [s for s in requests.samples if s.labels.get("key") == "m"]
    assert sample.name == "locus_model_requests_total" and sample.value == 3
    assert families["locus_model_request_seconds"].type == "histogram"


@pytest.mark.skipif(not shutil.which("prometheus"), reason="prometheus (Debian) is not installed")
def test_a_real_prometheus_scrapes_histograms(http_srv):
    c = http_srv.client()
    traffic(c, 50)
    d = tempfile.mkdtemp(prefix="locus-prometheus-")
    with open(os.path.join(d, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n"
                f"  - job_name: locus\n    static_configs:\n      - targets: ['127.0.0.1:{http_srv.http}']\n")
    port = free_port()
    prom = subprocess.Popen(
        ["prometheus", f"--config.file={d}/prometheus.yml", f"--storage.tsdb.path={d}/data",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def query(q):
            url = f"/api/v1/query?query={urllib.parse.quote(q)}"
            try:
                _, _, body = get(port, url)
            except (urllib.error.URLError, ConnectionError):
                return None
            result = json.loads(body)["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        deadline = time.time() + 60
        total = None
        while time.time() < deadline:
            for i in range(10):
                execute(c, "m", ["tx", "ref"], ["out"])
            total = query('locus_model_requests_total{key="m"}')
            p50 = query('histogram_quantile(0.5, sum by (le) (locus_model_request_seconds_bucket{key="m"}))')
            if total and total >= 50 and p50:
                break
            time.sleep(1)
        assert total and total >= 50, total
        # Requests of a model this small take between 10 µs and a second.
        assert 1e-5 <= p50 < 1.0, p50
        # Commands' latency histograms: a 30 ms script reads as one at the quantile.
        for _ in range(3):
            c.eval(BUSY_SCRIPT, 0, 30000)
        deadline = time.time() + 30
        script_p50 = None
        while time.time() < deadline:
            q = 'histogram_quantile(0.5, locus_command_duration_seconds_bucket{command="eval"})'
            script_p50 = query(q)
            if script_p50 and query('locus_command_duration_seconds_count{command="eval"}') == 3:
                break
            time.sleep(1)
        assert script_p50 and 0.025 <= script_p50 <= 0.05, script_p50
        up = query('up{job="locus"}')
        assert up == 1.0
    finally:
        prom.terminate()
        prom.wait(10)




def test_command_latency_histograms(http_srv):
    """Every command's calls land in its latency histogram: fast pipelined ones at their share
    of the batch, slow ones (a 30 ms script, timed to its answer) in their own bucket;
    CONFIG RESETSTAT clears them, and latency-tracking no stops them, as in Redis."""
    c = http_srv.client()
    p = c.pipeline(transaction=False)
    for i in range(500):
        p.set(f"k{i}", i)
        p.get(f"k{i}")
    p.execute()
    c.eval(BUSY_SCRIPT, 0, 30000)
    _, _, text = get(http_srv.http, "/metrics")
    for cmd in ("set", "get"):
        assert metric(text, "locus_command_duration_seconds_count", command=cmd) == 500
        assert metric(text, "locus_command_duration_seconds_bucket", command=cmd, le="+Inf") == 500
        # Each took far less than a millisecond of the server's time.
        assert metric(text, "locus_command_duration_seconds_bucket", command=cmd, le="0.001") == 500
    calls = metric(text, "locus_command_calls_total", command="get")
    assert calls == 500
    labels = dict(command="eval")
    assert metric(text, "locus_command_duration_seconds_count", **labels) == 1
    assert metric(text, "locus_command_duration_seconds_bucket", le="0.025", **labels) == 0
    assert metric(text, "locus_command_duration_seconds_bucket", le="10", **labels) == 1
    assert 0.03 <= metric(text, "locus_command_duration_seconds_sum", **labels) < 10
    # Buckets are cumulative and end at the count.
    buckets = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith('locus_command_duration_seconds_bucket{command="get"')]
    assert buckets == sorted(buckets) and buckets[-1] == 500 and len(buckets) == 20
    assert c.config_resetstat()
    _, _, text = get(http_srv.http, "/metrics")
    with pytest.raises(AssertionError):
        metric(text, "locus_command_duration_seconds_count", command="get")
    c.config_set("latency-tracking", "no")
    c.get("k1")
    _, _, text = get(http_srv.http, "/metrics")
    assert metric(text, "locus_command_calls_total", command="get") == 1
    with pytest.raises(AssertionError):
        metric(text, "locus_command_duration_seconds_count", command="get")
    c.config_set("latency-tracking", "yes")


def test_memory_by_area(http_srv):
    """locus_memory_bytes splits memory by what holds it: a 16 MB tensor shows in `tensors`
    and leaves with its key, a model's blob and session in `models`, ONNX Runtime's heap in
    `onnxruntime`; `used` is INFO's used_memory."""
    c = http_srv.client()

    def areas():
        _, _, text = get(http_srv.http, "/metrics")
        return {a: metric(text, "locus_memory_bytes", area=a)
                for a in ("used", "tensors", "models", "onnxruntime", "lua")}

    before = areas()
    put(c, "big", np.ones((4, 1024, 1024), np.float32))
    with_tensor = areas()
    assert with_tensor["tensors"] - before["tensors"] >= 16 << 20
    assert with_tensor["used"] - before["used"] >= 16 << 20
    c.delete("big")
    assert areas()["tensors"] - before["tensors"] < 1 << 20
    store(c, "m", "fraud.onnx")
    with_model = areas()
    size = os.path.getsize(os.path.join(os.path.dirname(__file__), "models", "fraud.onnx"))
    assert with_model["models"] - before["models"] >= size
    assert with_model["onnxruntime"] > 0
    info = c.info("memory")
    assert abs(with_model["used"] - info["used_memory"]) < 8 << 20
    c.eval("return 1", 0)
    assert areas()["lua"] > 0


def test_credentials_when_a_password_is_set(spawn):
    port = free_port()
    srv = spawn("--http-port", port, "--requirepass", "s3cret", password="s3cret")
    with pytest.raises(urllib.error.HTTPError) as e:
        get(port, "/metrics")
    assert e.value.code == 401
    with pytest.raises(urllib.error.HTTPError):
        get(port, "/metrics", {"Authorization": "Basic " + base64.b64encode(b"default:wrong").decode()})
    ok = {"Authorization": "Basic " + base64.b64encode(b"default:s3cret").decode()}
    assert get(port, "/metrics", ok)[0] == 200
    assert get(port, "/metrics", {"Authorization": "Bearer s3cret"})[0] == 200
    assert get(port, "/healthz")[0] == 200, "health needs no credentials"
    c = srv.client()
    assert c.config_set("metrics-public", "yes")
    assert get(port, "/metrics")[0] == 200


def test_a_taken_http_port_stops_the_start(http_srv):
    with pytest.raises(RuntimeError) as e:
        ServerProcess(["--http-port", http_srv.http])
    assert f"Could not create the HTTP listener on 127.0.0.1:{http_srv.http}" in str(e.value)


def test_http_port_0_turns_it_off(spawn):
    srv = spawn()  # the harness passes --http-port 0
    assert srv.client().config_get("http-port") == {"http-port": "0"}


def test_scraping_a_thousand_models_is_quick(http_srv):
    c = http_srv.client()
    with open(os.path.join(os.path.dirname(__file__), "models", "add.onnx"), "rb") as f:
        blob = f.read()
    p = c.pipeline(transaction=False)
    for i in range(1000):
        p.execute_command("AI.MODELSTORE", f"m{i}", "ONNX", "CPU", "BLOB", blob)
    p.execute()
    put(c, "a", np.ones((1, 2), np.float32))
    p = c.pipeline(transaction=False)
    for i in range(1000):
        p.execute_command("AI.MODELEXECUTE", f"m{i}", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "y")
    assert all(is_ok(r) for r in p.execute())
    get(http_srv.http, "/metrics")
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        _, _, text = get(http_srv.http, "/metrics")
        times.append(time.perf_counter() - t0)
    assert metric(text, "locus_model_requests_total", key="m999") == 1
    assert sorted(times)[2] < 0.05, times


def slow_run(c, seconds):
    """Sets `n` so that the `slow` model's run on `x` takes at least `seconds` (doubling it)."""
    n = 20000
    while True:
        put(c, "n", np.array([n], np.int64))
        t0 = time.perf_counter()
        assert is_ok(execute(c, "slow", ["x", "n"], ["y"]))
        if time.perf_counter() - t0 >= seconds or n > 50_000_000:
            return
        n *= 2


def test_in_flight_gauges_and_event_loop_busy_time(http_srv):
    """While slow runs are queued and running, the model's queued and in-flight gauges show
    them; every event loop reports the time it spent serving."""
    import threading

    c = http_srv.client(decode_responses=False)
    assert is_ok(store(c, "slow", "slow.onnx"))
    put(c, "x", np.zeros(1, np.float32))
    slow_run(c, 0.25)

    def run():
        conn = http_srv.client(decode_responses=False)
        execute(conn, "slow", ["x", "n"], ["y"])
        conn.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    _, _, text = get(http_srv.http, "/metrics")
    for t in threads:
        t.join(30)
    assert metric(text, "locus_model_in_flight", key="slow") == 3
    assert metric(text, "locus_model_queued", key="slow") == 2
    _, _, after = get(http_srv.http, "/metrics")
    assert metric(after, "locus_model_in_flight", key="slow") == 0
    assert metric(after, "locus_event_loop_busy_seconds_total", loop="0") > 0


def test_refused_requests_count_as_rejected(http_srv):
    c = http_srv.client(decode_responses=False)
    traffic(c, n=5)
    put(c, "short", np.zeros((1, 29), np.float32))
    with pytest.raises(Exception, match="Expected: 30"):
        execute(c, "m", ["short", "ref"], ["out"])
    _, _, text = get(http_srv.http, "/metrics")
    assert metric(text, "locus_model_rejected_total", key="m") == 1
    assert metric(text, "locus_model_errors_total", key="m") == 1
    assert metric(text, "locus_model_requests_total", key="m") == 6


def test_model_runs_are_timed_to_their_answer(http_srv):
    """AI.MODELEXECUTE answers later: its commandstats time, latency histogram and slow-log
    entry are the time to its answer, so a slow run is logged and a quick one is not."""
    c = http_srv.client(decode_responses=False)
    assert is_ok(store(c, "slow", "slow.onnx"))
    put(c, "x", np.zeros(1, np.float32))
    c.config_set("slowlog-log-slower-than", 25000)
    c.slowlog_reset()
    c.config_resetstat()
    slow_run(c, 0.05)
    entries = [e for e in c.slowlog_get(128) if e["command"].startswith(b"AI.MODELEXECUTE")]
    assert entries and entries[0]["duration"] >= 25000, entries
    assert c.info("commandstats")["cmdstat_ai.modelexecute"]["usec"] >= 50000
    _, _, text = get(http_srv.http, "/metrics")
    runs = metric(text, "locus_command_duration_seconds_count", command="ai.modelexecute")
    slow = runs - metric(text, "locus_command_duration_seconds_bucket",
                         command="ai.modelexecute", le="0.025")
    assert slow >= 1 and slow == len(entries), (runs, slow, len(entries))
    c.config_set("slowlog-log-slower-than", 10000)
