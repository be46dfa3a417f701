"""locus-score: files in, predictions out, in process or through a server; checked against
onnxruntime on the same rows, interrupted and resumed without duplicate rows."""

import csv
import json
import os
import signal
import subprocess
import tempfile
import time

import numpy as np
import onnxruntime as ort
import pytest
import redis

from conftest import SERVER_BIN

SCORE_BIN = SERVER_BIN.replace("locus-server", "locus-score")
MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
TXN30 = os.path.join(MODELS, "txn30.onnx")
COLS = [f"f{j}" for j in range(30)]


def expected(X):
    return ort.InferenceSession(TXN30).run(None, {"transaction": X.astype(np.float32)})[0]


def write_csv(path, X, ids=None):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", *COLS, "note"])
        for i, row in enumerate(X):
            w.writerow([ids[i] if ids else f"tx-{i}", *[repr(float(v)) for v in row], "a, quoted note"])


def locus_score(*args, check=True):
    r = subprocess.run([SCORE_BIN, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.fixture
def tmp():
    return tempfile.mkdtemp(prefix="locus-score-files-")


def test_csv_in_process_matches_onnxruntime_and_skips_bad_rows(tmp):
    X = np.random.default_rng(1).standard_normal((500, 30)).astype(np.float32)
    src = os.path.join(tmp, "in.csv")
    write_csv(src, X)
    with open(src, "a") as f:
        f.write("tx-bad," + ",".join(["x"] * 30) + ",n\n")
    out = os.path.join(tmp, "out.csv")
    r = locus_score("--inprocess", TXN30, "--input", src, "--columns", ",".join(COLS),
                    "--id-column", "id", "--output", out, "--batch", 128)
    assert "row 500 skipped: 'x' is not a number" in r.stderr
    assert "500 rows scored, 1 rows failed" in r.stderr
    header, rows = read_csv(out)
    assert header == ["id", "probabilities_0", "probabilities_1"]
    assert [row[0] for row in rows] == [f"tx-{i}" for i in range(500)]
    got = np.array([[float(v) for v in row[1:]] for row in rows], np.float32)
    np.testing.assert_allclose(got, expected(X), rtol=1e-5, atol=1e-6)
    assert not os.path.exists(out + ".partial") and not os.path.exists(out + ".partial.ckpt")


@pytest.mark.parametrize("layout", ["plain", "crlf", "quote_late"])
def test_plain_numeric_csv_reads_as_the_csv_module_does(tmp, layout):
    """A CSV of bare numbers (the usual export) is read by locus-score's own block reader on
    several threads; a CSV that turns to quoting part way through is handed to the csv
    reader from there. Either way, rows, ids and failures are those Python's csv sees."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((60_000, 30)).astype(np.float32)
    X[::7] *= 1e6
    X[::11] /= 1e7
    src = os.path.join(tmp, "in.csv")
    eol = "\r\n" if layout == "crlf" else "\n"
    bad = {1234: ",".join(["1"] * 29), 40_001: ",".join(["1"] * 14 + ["", *["2"] * 15]),
           59_999: ",".join(["nan?"] * 30)}
    with open(src, "w", newline="") as f:
        f.write("id," + ",".join(COLS) + eol)
        for i, row in enumerate(X):
            if i in bad:
                f.write(f"{i},{bad[i]}{eol}")
                continue
            if i == 30_000:
                f.write(eol)  # a blank line is no row
            ident = f'"tx {i}, late"' if layout == "quote_late" and i >= 50_000 else str(i)
            f.write(ident + "," + ",".join(repr(float(v)) for v in row) + eol)
    out = os.path.join(tmp, "out.csv")
    r = locus_score("--inprocess", TXN30, "--input", src, "--id-column", "id", "--output", out,
                    "--batch", 1000)
    assert f"{len(X) - len(bad)} rows scored, {len(bad)} rows failed" in r.stderr
    assert "row 1234 skipped: the row has 30 fields" in r.stderr
    assert "row 40001 skipped: '' is not a number" in r.stderr
    assert "row 59999 skipped: 'nan?' is not a number" in r.stderr
    header, rows = read_csv(out)
    keep = [i for i in range(len(X)) if i not in bad]
    want_ids = [f"tx {i}, late" if layout == "quote_late" and i >= 50_000 else str(i)
                for i in keep]
    assert [row[0] for row in rows] == want_ids
    got = np.array([[float(v) for v in row[1:]] for row in rows], np.float32)
    np.testing.assert_allclose(got, expected(X[keep]), rtol=1e-5, atol=1e-6)


def test_through_the_server_over_several_connections(server_port, tmp):
    c = redis.Redis(port=server_port)
    c.flushall()
    with open(TXN30, "rb") as f:
        c.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", f.read())
    X = np.random.default_rng(2).standard_normal((1000, 30)).astype(np.float32)
    src = os.path.join(tmp, "in.csv")
    write_csv(src, X)
    out = os.path.join(tmp, "out.csv")
    locus_score("--model", "m", "-p", server_port, "--input", src, "--columns", ",".join(COLS),
                "--id-column", "id", "--output", out, "--batch", 64, "--connections", 3)
    _, rows = read_csv(out)
    assert [row[0] for row in rows] == [f"tx-{i}" for i in range(1000)]
    got = np.array([[float(v) for v in row[1:]] for row in rows], np.float32)
    np.testing.assert_allclose(got, expected(X), rtol=1e-5, atol=1e-6)
    info = dict(zip(*[iter(c.execute_command("AI.INFO", "m"))] * 2))
    assert info[b"samples"] == 1000  # the server's statistics saw every row


def test_jsonl_and_npy(tmp):
    X = np.random.default_rng(3).standard_normal((300, 30)).astype(np.float32)
    src = os.path.join(tmp, "in.jsonl")
    with open(src, "w") as f:
        for i, row in enumerate(X):
            f.write(json.dumps({"user": f"u{i}", **{c: float(v) for c, v in zip(COLS, row)}}) + "\n")
        f.write('{"user": "broken", "f0": "high"}\n')
    out = os.path.join(tmp, "out.jsonl")
    r = locus_score("--inprocess", TXN30, "--input", src, "--id-column", "user", "--output", out)
    assert "300 rows scored, 1 rows failed" in r.stderr
    lines = [json.loads(l) for l in open(out)]
    assert [l["user"] for l in lines] == [f"u{i}" for i in range(300)]
    np.testing.assert_allclose(np.array([l["probabilities"] for l in lines], np.float32),
                               expected(X), rtol=1e-5, atol=1e-6)
    npy = os.path.join(tmp, "in.npy")
    np.save(npy, X.astype(np.float64))
    out = os.path.join(tmp, "out.npy")
    locus_score("--inprocess", TXN30, "--input", npy, "--output", out, "--batch", 7)
    np.testing.assert_allclose(np.load(out), expected(X), rtol=1e-5, atol=1e-6)


def interrupt_and_resume(args, out, n):
    """Kills the run `args` once it has checkpointed (no output file may be left), then
    resumes it, which must go on from the checkpoint."""
    p = subprocess.Popen(args, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not os.path.exists(out + ".partial.ckpt") and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not os.path.exists(out), "an interrupted run left an output file"
    done = json.load(open(out + ".partial.ckpt"))["consumed"]
    assert 0 < done < n
    r = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"resuming after {done} rows" in r.stderr


def test_an_interrupted_run_resumes_without_duplicate_rows(server_port, tmp):
    c = redis.Redis(port=server_port)
    c.flushall()
    with open(TXN30, "rb") as f:
        c.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", f.read())
    n = 60000
    X = np.random.default_rng(4).standard_normal((n, 30)).astype(np.float32)
    src = os.path.join(tmp, "in.csv")
    write_csv(src, X)
    out = os.path.join(tmp, "out.csv")
    args = [SCORE_BIN, "--model", "m", "-p", str(server_port), "--input", src, "--columns",
            ",".join(COLS), "--id-column", "id", "--output", out, "--batch", "16", "--connections", "1"]
    interrupt_and_resume(args, out, n)
    _, rows = read_csv(out)
    assert [row[0] for row in rows] == [f"tx-{i}" for i in range(n)]
    got = np.array([[float(v) for v in row[1:]] for row in rows], np.float32)
    np.testing.assert_allclose(got, expected(X), rtol=1e-5, atol=1e-6)


def test_bad_input_gets_clear_errors_and_no_output(tmp):
    src = os.path.join(tmp, "in.csv")
    write_csv(src, np.zeros((3, 30), np.float32))
    out = os.path.join(tmp, "out.csv")
    cases = [
        (["--input", os.path.join(tmp, "missing.csv")], "missing.csv: No such file"),
        (["--input", src, "--columns", "f0,nope"], "the CSV has no column 'nope'"),
        (["--input", src, "--columns", ",".join(COLS[:29])], "29"),
        (["--input", src, "--format", "xml"], "unknown format 'xml'"),
    ]
    for extra, err in cases:
        r = locus_score("--inprocess", TXN30, "--output", out, *extra, check=False)
        assert r.returncode != 0 and err in r.stderr, (extra, r.stderr)
        assert not os.path.exists(out)
    r = locus_score("--inprocess", TXN30, "--input", src, "--columns", ",".join(COLS),
                    "--output", os.path.join(tmp, "no", "such", "dir.csv"), check=False)
    assert r.returncode != 0 and "cannot write" in r.stderr
    r = locus_score("--model", "m", "-p", 1, "--input", src, "--output", out, check=False)
    assert r.returncode != 0 and "cannot connect" in r.stderr


pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def write_parquet(path, X, ids, compression="snappy", row_group_size=None, nulls=()):
    cols = {"id": ids if isinstance(ids, pa.Array) else pa.array(ids)}
    for j, c in enumerate(COLS):
        # Half the features as float64, a few as float32: both physical types are read.
        v = X[:, j].astype(np.float64 if j % 2 else np.float32)
        mask = np.array([(i, j) in nulls for i in range(len(X))])
        cols[c] = pa.array(v, mask=mask if mask.any() else None)
    cols["note"] = pa.array(["a, quoted note"] * len(X))
    pq.write_table(pa.table(cols), path, compression=compression, row_group_size=row_group_size)


@pytest.mark.parametrize("compression", ["snappy", "gzip", "lz4", "zstd", "none"])
def test_parquet_in_process_matches_onnxruntime(tmp, compression):
    n = 2500
    X = np.random.default_rng(5).standard_normal((n, 30)).astype(np.float32)
    src = os.path.join(tmp, "in.parquet")
    # Row groups of 1,000 rows against batches of 384: chunks span row groups.
    # Row 7 has nulls in f3 (float64) and f4 (float32): the first is named.
    write_parquet(src, X, [f"tx-{i}" for i in range(n)], compression, 1000,
                  nulls={(7, 3), (7, 4), (1500, 4)})
    out = os.path.join(tmp, "out.parquet")
    r = locus_score("--inprocess", TXN30, "--input", src, "--columns", ",".join(COLS),
                    "--id-column", "id", "--output", out, "--batch", 384)
    assert f"{n - 2} rows scored, 2 rows failed" in r.stderr, r.stderr
    assert "row 7 skipped: column 'f3' is null" in r.stderr, r.stderr
    assert "row 1500 skipped: column 'f4' is null" in r.stderr, r.stderr
    t = pq.read_table(out)
    assert t.column_names == ["id", "probabilities_0", "probabilities_1"]
    assert t.schema.field("id").type == pa.string()
    assert t.schema.field("probabilities_0").type == pa.float64()
    keep = [i for i in range(n) if i not in (7, 1500)]
    assert t.column("id").to_pylist() == [f"tx-{i}" for i in keep]
    got = np.stack([t.column(c).to_numpy() for c in t.column_names[1:]], axis=1)
    np.testing.assert_allclose(got, expected(X[keep]), rtol=1e-5, atol=1e-6)


def test_parquet_through_the_server_resumes_without_duplicate_rows(server_port, tmp):
    c = redis.Redis(port=server_port)
    c.flushall()
    with open(TXN30, "rb") as f:
        c.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", f.read())
    n = 60000
    X = np.random.default_rng(6).standard_normal((n, 30)).astype(np.float32)
    src = os.path.join(tmp, "in.parquet")
    write_parquet(src, X, list(range(100, 100 + n)), row_group_size=7000)
    out = os.path.join(tmp, "out.parquet")
    args = [SCORE_BIN, "--model", "m", "-p", str(server_port), "--input", src, "--columns",
            ",".join(COLS), "--id-column", "id", "--output", out, "--batch", "16",
            "--connections", "1"]
    interrupt_and_resume(args, out, n)
    t = pq.read_table(out)
    # Integer ids stay integers.
    assert t.schema.field("id").type == pa.int64()
    assert t.column("id").to_pylist() == list(range(100, 100 + n))
    got = np.stack([t.column(c).to_numpy() for c in t.column_names[1:]], axis=1)
    np.testing.assert_allclose(got, expected(X), rtol=1e-5, atol=1e-6)


def test_parquet_bad_input(tmp):
    X = np.zeros((3, 30), np.float32)
    src = os.path.join(tmp, "in.parquet")
    write_parquet(src, X, ["a", "b", "c"])
    out = os.path.join(tmp, "out.parquet")
    bad = os.path.join(tmp, "bad.parquet")
    with open(bad, "wb") as f:
        f.write(b"PAR1 this is not a parquet file")
    cases = [
        # Without --columns every column but the id is a feature, and `note` is text.
        (["--input", src, "--id-column", "id"], "column 'note' is BYTE_ARRAY, not a number"),
        (["--input", src, "--columns", "f0,nope"], "no flat column 'nope'"),
        (["--input", src, "--columns", ",".join(COLS[:29])], "29"),
        (["--input", bad], "the Parquet file does not read"),
    ]
    for extra, err in cases:
        r = locus_score("--inprocess", TXN30, "--output", out, *extra, check=False)
        assert r.returncode != 0 and err in r.stderr, (extra, r.stderr)
        assert not os.path.exists(out)
    # No row at all: a valid, empty output with the id and output columns.
    empty = os.path.join(tmp, "empty.parquet")
    write_parquet(empty, np.zeros((0, 30), np.float32), pa.array([], pa.string()))
    locus_score("--inprocess", TXN30, "--input", empty, "--columns", ",".join(COLS),
                "--id-column", "id", "--output", out)
    t = pq.read_table(out)
    assert t.num_rows == 0 and t.column_names[0] == "id"
