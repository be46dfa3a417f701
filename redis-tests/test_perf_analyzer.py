"""NVIDIA's perf_analyzer, Triton's own load generator, against Locus's KServe V2 faces: it
reads the model's metadata and config, sends load over REST and gRPC at two concurrencies, and
reads the server's statistics extension around each measurement (it stops if the statistics
break Triton's rules, e.g. compute counts that differ). Its own request counts are checked
against the statistics Locus reports.

perf_analyzer comes from PyPI inside tritonclient 2.40's wheel (`scripts/perf-analyzer.sh`,
which the test command runs)."""

import csv
import os
import subprocess

import pytest

from conftest import REPO_ROOT, ServerProcess, free_port
from test_models import is_ok, store

PERF_ANALYZER = os.environ.get("PERF_ANALYZER") or os.path.join(
    REPO_ROOT, "target", "tools", "perf_analyzer")

pytestmark = pytest.mark.skipif(
    not os.access(PERF_ANALYZER, os.X_OK),
    reason="perf_analyzer is not installed (scripts/perf-analyzer.sh)")

http_client = pytest.importorskip("tritonclient.http")


def cuda_runtime_dir():
    """Where PyPI's nvidia-cuda-runtime-cu12 keeps libcudart.so.12, which perf_analyzer links."""
    runtime = pytest.importorskip("nvidia.cuda_runtime")
    return os.path.join(list(runtime.__path__)[0], "lib")


@pytest.fixture(scope="module")
def srv():
    http, grpc = free_port(), free_port()
    s = ServerProcess(["--http-port", http, "--grpc-port", grpc])
    s.http, s.grpc = http, grpc
    assert is_ok(store(s.client(), "fraud", "fraud.onnx", "BATCHSIZE", 32))
    yield s
    s.stop()


def successes(srv):
    stats = http_client.InferenceServerClient(f"127.0.0.1:{srv.http}").get_inference_statistics(
        "fraud")["model_stats"][0]
    return stats["inference_stats"]["success"]["count"], stats["inference_count"]


@pytest.mark.parametrize("protocol,batch", [("http", 1), ("grpc", 4)])
def test_perf_analyzer_loads_both_faces(srv, tmp_path, protocol, batch):
    port = srv.http if protocol == "http" else srv.grpc
    report = tmp_path / "report.csv"
    requests_before, rows_before = successes(srv)
    env = dict(os.environ, LD_LIBRARY_PATH=cuda_runtime_dir())
    # Counted windows of 200 requests; a stability bound this machine's noise cannot fail, since
    # what is tested is that the tool works against Locus, not how steady the machine is. Even so
    # perf_analyzer has given up on stability once with other tests loading both cores: it gets
    # a second go then (any other failure fails at once).
    for attempt in range(2):
        r = subprocess.run(
            [PERF_ANALYZER, "-m", "fraud", "-u", f"127.0.0.1:{port}", "-i", protocol, "-b",
             str(batch), "--concurrency-range", "1:4:3", "--measurement-mode", "count_windows",
             "--measurement-request-count", "200", "--stability-percentage", "1000",
             "--max-trials", "6", "-f", str(report)],
            capture_output=True, text=True, env=env, timeout=300)
        if r.returncode == 0 or "Failed to obtain stable measurement" not in r.stdout:
            break
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # perf_analyzer prints the server's side of each measurement, from the statistics.
    assert "Server: " in r.stdout and "Successful request count" in r.stdout, r.stdout[-3000:]
    with open(report, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["Concurrency"]) for row in rows] == [1, 4]
    assert all(float(row["Inferences/Second"]) > 0 for row in rows)
    # Every request it measured (and its warm-up) succeeded on the server, `batch` rows each.
    requests_after, rows_after = successes(srv)
    assert requests_after - requests_before >= 2 * 200
    assert rows_after - rows_before == batch * (requests_after - requests_before)
