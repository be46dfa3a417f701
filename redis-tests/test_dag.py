"""DAG and tensor-op tests with redis-py: the image-style pipeline checked against numpy, and
each AI.TENSOROP against its numpy equivalent."""
import os

import numpy as np
import onnxruntime as ort
import pytest

MODELS = os.path.join(os.path.dirname(__file__), "models")


def model_bytes(name):
    with open(os.path.join(MODELS, name), "rb") as f:
        return f.read()


def get_values(r, key, dtype=np.float32):
    meta = r.execute_command("AI.TENSORGET", key, "META", "BLOB")
    d = dict(zip(meta[::2], meta[1::2])) if isinstance(meta, list) else meta
    shape = d[b"shape"] if b"shape" in d else d["shape"]
    blob = d[b"blob"] if b"blob" in d else d["blob"]
    return np.frombuffer(blob, dtype=dtype).reshape(shape)


def test_image_pipeline_matches_numpy(rb):
    """UINT8 image -> cast + normalise -> CNN -> softmax -> top-5, all in one DAG."""
    rb.execute_command("AI.MODELSTORE", "cnn", "ONNX", "CPU", "BLOB", model_bytes("cnn.onnx"))
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, size=(1, 3, 8, 8), dtype=np.uint8)
    mean, std = [123.7, 116.3, 103.5], [58.4, 57.1, 57.4]
    reply = rb.execute_command(
        "AI.DAGEXECUTE", "ROUTING", "img",
        "|>", "AI.TENSORSET", "img", "UINT8", 1, 3, 8, 8, "BLOB", img.tobytes(),
        "|>", "AI.TENSOROP", "f", "CAST", "img", "FLOAT",
        "|>", "AI.TENSOROP", "x", "NORMALIZE", "f", "MEAN", 3, *mean, "STD", 3, *std, "AXIS", 1,
        "|>", "AI.MODELEXECUTE", "cnn", "INPUTS", 1, "x", "OUTPUTS", 1, "logits",
        "|>", "AI.TENSOROP", "p", "SOFTMAX", "logits", "AXIS", 1,
        "|>", "AI.TENSOROP", "top", "TOPK", "p", 5, "AXIS", 1, "VALUES", "topv",
        "|>", "AI.TENSORGET", "top", "BLOB",
        "|>", "AI.TENSORGET", "topv", "BLOB",
    )
    assert reply[:6] == [b"OK"] * 6
    top = np.frombuffer(reply[6], dtype=np.int64)
    topv = np.frombuffer(reply[7], dtype=np.float32)
    # The same pipeline in numpy, the CNN run by ONNX Runtime in-process.
    x = (img.astype(np.float32) - np.array(mean, np.float32).reshape(1, 3, 1, 1)) / np.array(std, np.float32).reshape(1, 3, 1, 1)
    logits = ort.InferenceSession(os.path.join(MODELS, "cnn.onnx")).run(None, {"image": x})[0]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    want = np.argsort(-p[0], kind="stable")[:5]
    assert list(top) == list(want)
    assert np.allclose(topv, p[0][want], atol=1e-5)
    # Nothing DAG-local reached the keyspace.
    assert rb.exists("img", "f", "x", "logits", "p", "top", "topv") == 0


@pytest.fixture
def x(rb):
    a = np.array([[1, 5, 3], [4, 2, 6]], dtype=np.float32)
    rb.execute_command("AI.TENSORSET", "x", "FLOAT", 2, 3, "BLOB", a.tobytes())
    return a


def test_tensor_ops_against_numpy(rb, x):
    def op(*args):
        assert rb.execute_command("AI.TENSOROP", *args) == b"OK"

    op("c", "CAST", "x", "INT32")
    assert (get_values(rb, "c", np.int32) == x.astype(np.int32)).all()
    op("r", "RESHAPE", "x", 3, 2)
    assert (get_values(rb, "r") == x.reshape(3, 2)).all()
    op("cc", "CONCAT", "x", "x", "AXIS", 1)
    assert (get_values(rb, "cc") == np.concatenate([x, x], axis=1)).all()
    op("st", "STACK", "x", "x")
    assert (get_values(rb, "st") == np.stack([x, x])).all()
    op("sl", "SLICE", "x", 1, 3, "AXIS", 1)
    assert (get_values(rb, "sl") == x[:, 1:3]).all()
    op("n", "NORMALIZE", "x", "MEAN", 3, 1, 2, 3, "STD", 3, 2, 2, 2)
    assert np.allclose(get_values(rb, "n"), (x - [1, 2, 3]) / 2)
    op("sm", "SOFTMAX", "x")
    e = np.exp(x - x.max(axis=1, keepdims=True))
    assert np.allclose(get_values(rb, "sm"), e / e.sum(axis=1, keepdims=True))
    op("am", "ARGMAX", "x", "AXIS", 1)
    assert (get_values(rb, "am", np.int64) == x.argmax(axis=1)).all()
    op("tk", "TOPK", "x", 2, "VALUES", "tv")
    assert (get_values(rb, "tk", np.int64) == np.argsort(-x, axis=1)[:, :2]).all()
    assert (get_values(rb, "tv") == -np.sort(-x, axis=1)[:, :2]).all()
    op("a", "ADD", "x", "x")
    assert (get_values(rb, "a") == x + x).all()
    op("m", "MUL", "x", "SCALAR", 0.5)
    assert (get_values(rb, "m") == x * 0.5).all()


def test_tensor_op_errors(rb, x):
    with pytest.raises(Exception, match="unknown tensor op"):
        rb.execute_command("AI.TENSOROP", "d", "FROB", "x")
    with pytest.raises(Exception, match="axis 5 is out of range"):
        rb.execute_command("AI.TENSOROP", "d", "SOFTMAX", "x", "AXIS", 5)
    with pytest.raises(Exception, match="tensor key is empty"):
        rb.execute_command("AI.TENSOROP", "d", "SOFTMAX", "missing")
    with pytest.raises(Exception, match="keep the number of elements"):
        rb.execute_command("AI.TENSOROP", "d", "RESHAPE", "x", 4, 2)
    rb.set("s", "str")
    with pytest.raises(Exception, match="WRONGTYPE"):
        rb.execute_command("AI.TENSOROP", "s", "SOFTMAX", "x")
    assert rb.exists("d") == 0


def test_scripts_are_replaced(rb):
    with pytest.raises(Exception, match="tensor ops"):
        rb.execute_command("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 1, "f", "SOURCE", "def f(a): return a")
