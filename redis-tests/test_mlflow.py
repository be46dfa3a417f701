"""locus-model import/export against a real MLflow tracking server (sqlite backend, artifacts
served by the server), with models logged through mlflow.onnx.log_model."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

from conftest import SERVER_BIN, free_port
from test_model_lifecycle import run, scale, versions

# No usage telemetry from the mlflow client or server: the test machine has no route out, and
# the telemetry thread's session state has failed a client call before.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed (pip install mlflow)")
pytest.importorskip("onnxruntime")

LOCUS_MODEL = os.path.join(os.path.dirname(SERVER_BIN), "locus-model")


@pytest.fixture(scope="module")
def registry():
    """An mlflow server with `fraud` v1 (x*2, stage Production) and v2 (x*3, alias champion),
    and `bad`, whose artifact is not ONNX."""
    d = tempfile.mkdtemp(prefix="locus-mlflow-")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(os.path.join(d, "mlflow.log"), "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{d}/db.sqlite",
         "--artifacts-destination", f"{d}/artifacts", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], cwd=d, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(open(os.path.join(d, "mlflow.log")).read()[-2000:])
                time.sleep(0.5)
        mlflow.set_tracking_uri(url)
        client = mlflow.MlflowClient()
        runs = {}
        for k in (2, 3):
            with mlflow.start_run() as r:
                import onnx
                mlflow.onnx.log_model(onnx.load_from_string(scale(k)), name="model",
                                      registered_model_name="fraud")
                runs[k] = r.info.run_id
        client.set_registered_model_alias("fraud", "champion", "2")
        client.transition_model_version_stage("fraud", "1", "Production")
        with mlflow.start_run() as r:
            mlflow.log_text("this is no ONNX model", "bad/model.onnx")
            bad_run = r.info.run_id
        client.create_registered_model("bad")
        client.create_model_version("bad", f"runs:/{bad_run}/bad", run_id=bad_run)
        yield url, runs
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(d, ignore_errors=True)


def locus_model(port, *args):
    return subprocess.run([LOCUS_MODEL, *args, "-p", str(port)], capture_output=True, text=True,
                          timeout=60)


def meta_of(v):
    m = v["meta"]
    return m if isinstance(m, dict) else dict(zip(m[::2], m[1::2]))


def test_import_by_version_alias_and_stage(registry, spawn):
    url, runs = registry
    srv = spawn()
    c = srv.client()
    out = locus_model(srv.port, "import", "--mlflow", url, "models:/fraud/1", "--key", "fraud")
    assert out.returncode == 0, out.stderr
    assert "stored fraud version 1 (live)" in out.stdout
    assert run(c, "fraud") == 2
    out = locus_model(srv.port, "import", "--mlflow", url, "models:/fraud@champion", "--key",
                      "fraud")
    assert out.returncode == 0, out.stderr
    assert run(c, "fraud") == 3
    out = locus_model(srv.port, "import", "--mlflow", url, "models:/fraud/Production", "--key",
                      "fraud", "--staged")
    assert out.returncode == 0, out.stderr
    vs = versions(c, "fraud")
    assert [(v["version"], v["status"]) for v in vs] == \
        [(1, "previous"), (2, "live"), (3, "staged")]
    m = meta_of(vs[1])
    assert m["mlflow_name"] == "fraud" and m["mlflow_version"] == "2"
    assert m["mlflow_run_id"] == runs[3] and m["mlflow_uri"] == "models:/fraud@champion"
    assert m["mlflow_source"]
    assert meta_of(vs[2])["mlflow_run_id"] == runs[2]
    assert run(c, "fraud", "VERSION", 3) == 2
    # The audit stream names the tool.
    assert {e["client"] for _, e in c.xrange("locus:audit")} == {"locus-model"}


def test_bad_imports_change_nothing(registry, spawn):
    url, _ = registry
    srv = spawn()
    c = srv.client()
    cases = [
        ("models:/nope/1", "not found"),
        ("models:/fraud/7", "not found"),
        ("models:/fraud@nobody", "alias"),
        ("models:/fraud/Archived", "has no version in stage 'Archived'"),
        ("models:/bad/1", "is not an ONNX model"),
        ("runs:/x/model", None),
    ]
    for uri, want in cases:
        out = locus_model(srv.port, "import", "--mlflow", url, uri, "--key", "fraud")
        assert out.returncode != 0, (uri, out.stdout)
        if want:
            assert want in out.stderr, (uri, out.stderr)
    out = locus_model(srv.port, "import", "--mlflow", f"http://127.0.0.1:{free_port()}",
                      "models:/fraud/1", "--key", "fraud")
    assert out.returncode == 1 and "locus-model:" in out.stderr
    assert c.exists("fraud") == 0


def test_export_writes_blob_and_record(registry, spawn):
    url, runs = registry
    srv = spawn()
    assert locus_model(srv.port, "import", "--mlflow", url, "models:/fraud/1", "--key",
                       "m").returncode == 0
    assert locus_model(srv.port, "import", "--mlflow", url, "models:/fraud/2", "--key",
                       "m").returncode == 0
    d = tempfile.mkdtemp(prefix="locus-export-")
    try:
        out = locus_model(srv.port, "export", "--key", "m", "--version", "1", "--dir", d)
        assert out.returncode == 0, out.stderr
        with open(os.path.join(d, "model.onnx"), "rb") as f:
            assert f.read() == scale(2)
        doc = json.load(open(os.path.join(d, "locus-model.json")))
        assert doc["key"] == "m" and doc["version"]["version"] == 1
        assert doc["version"]["meta"]["mlflow_run_id"] == runs[2]
        assert doc["settings"]["backend"] == "ONNX"
        out = locus_model(srv.port, "export", "--key", "m", "--dir", d)
        assert out.returncode == 0 and "version 2" in out.stdout
        with open(os.path.join(d, "model.onnx"), "rb") as f:
            assert f.read() == scale(3)
        out = locus_model(srv.port, "export", "--key", "m", "--version", "9", "--dir", d)
        assert out.returncode == 1 and "no such version" in out.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)
