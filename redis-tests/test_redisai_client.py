"""The official `redisai` Python client (1.2.x, on top of redis-py 5.x) against Locus's tensor
commands.

Known client-side incompatibilities, worked around here rather than skipped:
  * redisai's numpy2blob has no entry for numpy's bool dtype, so `tensorset` raises TypeError
    before anything is sent; BOOL tensors are written with the equivalent raw AI.TENSORSET
    (one byte per element) and read back with the client's `tensorget`.
  * `tensorget(as_numpy_mutable=True)` calls np.fromstring in binary mode, which NumPy 2
    removed (ValueError); the equivalent (BLOB read + np.frombuffer(...).copy()) is tested.
"""

import numpy as np
import pytest

from conftest import TENSOR_TYPE
import redis

redisai = pytest.importorskip("redisai")


@pytest.fixture
def con(server_port, r2):
    # r2 flushes the server first. The client speaks RESP2 (redisai's post-processing expects
    # RedisAI's flat reply arrays).
    c = redisai.Client(host="127.0.0.1", port=server_port)
    yield c
    c.close()


NP_TYPES = [
    (np.float32, "FLOAT"),
    (np.float64, "DOUBLE"),
    (np.int8, "INT8"),
    (np.int16, "INT16"),
    (np.int32, "INT32"),
    (np.int64, "INT64"),
    (np.uint8, "UINT8"),
    (np.uint16, "UINT16"),
    (np.uint32, "UINT32"),
    (np.uint64, "UINT64"),
]


def sample(np_t, shape=(2, 3, 4)):
    n = int(np.prod(shape))
    if np.issubdtype(np_t, np.floating):
        a = np.random.default_rng(1).standard_normal(n).astype(np_t)
    else:
        info = np.iinfo(np_t)
        lo, hi = int(info.min), int(info.max)
        a = np.array([lo + (hi - lo) * i // (n - 1) for i in range(n)], dtype=np_t)
    return a.reshape(shape)


@pytest.mark.parametrize("np_t,name", NP_TYPES, ids=[n for _, n in NP_TYPES])
def test_numpy_roundtrip(con, r2, np_t, name):
    arr = sample(np_t)
    assert con.tensorset("t", arr) == "OK"
    got = con.tensorget("t")
    assert isinstance(got, np.ndarray)
    assert got.dtype == arr.dtype
    assert got.shape == arr.shape
    assert np.array_equal(got, arr)
    assert got.tobytes() == arr.tobytes()
    assert r2.type("t") == TENSOR_TYPE
    assert con.tensorget("t", meta_only=True) == {"dtype": name, "shape": list(arr.shape)}


@pytest.mark.parametrize("np_t,name", NP_TYPES, ids=[n for _, n in NP_TYPES])
def test_values_as_list(con, np_t, name):
    arr = sample(np_t, (3, 2))
    con.tensorset("t", arr)
    d = con.tensorget("t", as_numpy=False)
    assert set(d) == {"dtype", "shape", "values"}
    assert d["dtype"] == name
    assert d["shape"] == [3, 2]
    if np.issubdtype(np_t, np.floating):
        # redisai turns the %.17g strings into Python floats: exactly the stored values.
        assert all(isinstance(v, float) for v in d["values"])
        assert np.array_equal(np.array(d["values"], dtype=np.float64), arr.ravel().astype(np.float64))
    else:
        assert d["values"] == [int(v) for v in arr.ravel()]


def test_bool_tensor(con, r2):
    arr = np.array([[True, False, True], [False, False, True]])
    # redisai.utils.numpy2blob: "RedisAI doesn't support tensors of type bool".
    with pytest.raises(TypeError):
        con.tensorset("b", arr)
    assert r2.exists("b") == 0
    # The raw equivalent of what the client would send, then the client's own tensorget.
    con.execute_command("AI.TENSORSET", "b", "BOOL", 2, 3, "BLOB", arr.astype(np.uint8).tobytes())
    got = con.tensorget("b")
    assert got.dtype == np.bool_
    assert np.array_equal(got, arr)
    assert con.tensorget("b", meta_only=True) == {"dtype": "BOOL", "shape": [2, 3]}
    assert con.tensorget("b", as_numpy=False)["values"] == [1, 0, 1, 0, 0, 1]


def test_float16_via_raw_blob(con):
    # numpy float16 is not in redisai's dtype table either; FLOAT16 is a Locus extension.
    arr = np.array([1.5, -2.0, 65504.0, 0.0009765625], dtype=np.float16)
    with pytest.raises(TypeError):
        con.tensorset("h", arr)
    con.execute_command("AI.TENSORSET", "h", "FLOAT16", 4, "BLOB", arr.tobytes())
    got = con.tensorget("h")
    assert got.dtype == np.float16
    assert np.array_equal(got, arr)


def test_list_and_tuple_input(con):
    assert con.tensorset("l", [1, 2, 3, 4], shape=(2, 2), dtype="int32") == "OK"
    got = con.tensorget("l")
    assert got.dtype == np.int32
    assert np.array_equal(got, np.array([[1, 2], [3, 4]], dtype=np.int32))
    assert con.tensorset("f", (1.5, 2.25), dtype="float") == "OK"
    assert con.tensorget("f", as_numpy=False) == {"dtype": "FLOAT", "shape": [2], "values": [1.5, 2.25]}
    assert con.tensorset("d", [0.1], dtype="double") == "OK"
    assert con.tensorget("d")[0] == 0.1


def test_scalar_like_and_large(con):
    big = np.random.default_rng(5).standard_normal((32, 64, 64)).astype(np.float32)
    con.tensorset("big", big)
    assert np.array_equal(con.tensorget("big"), big)
    one = np.array([42], dtype=np.int64)
    con.tensorset("one", one)
    assert np.array_equal(con.tensorget("one"), one)


def test_as_numpy_mutable_equivalent(con):
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    con.tensorset("t", arr)
    try:
        got = con.tensorget("t", as_numpy_mutable=True)
    except ValueError as e:
        # NumPy 2 removed np.fromstring's binary mode, which redisai 1.2 uses here.
        assert "fromstring" in str(e)
        meta = con.tensorget("t", meta_only=True)
        blob = con.execute_command("AI.TENSORGET", "t", "BLOB")
        got = np.frombuffer(blob, dtype=np.float32).copy().reshape(meta["shape"])
    got[0, 0] = 100
    assert got.flags.writeable
    assert np.array_equal(con.tensorget("t"), arr)


def test_readonly_default_array(con):
    con.tensorset("t", np.arange(3, dtype=np.int16))
    got = con.tensorget("t")
    assert not got.flags.writeable


def test_missing_and_wrongtype(con, r2):
    with pytest.raises(redis.ResponseError) as e:
        con.tensorget("nokey")
    assert str(e.value) == "tensor key is empty or in a different shard"
    r2.set("s", "v")
    with pytest.raises(redis.ResponseError) as e:
        con.tensorget("s")
    assert str(e.value).startswith("WRONGTYPE")
    with pytest.raises(redis.ResponseError) as e:
        con.tensorset("s", np.zeros(2, dtype=np.float32))
    assert str(e.value).startswith("WRONGTYPE")


def test_no_postprocess(server_port, r2):
    c = redisai.Client(host="127.0.0.1", port=server_port, enable_postprocess=False)
    try:
        assert c.tensorset("t", np.array([1, 2], dtype=np.uint8)) == b"OK"
        assert c.tensorget("t") == [b"dtype", b"UINT8", b"shape", [2], b"blob", b"\x01\x02"]
        assert c.tensorget("t", as_numpy=False) == [b"dtype", b"UINT8", b"shape", [2], b"values", [1, 2]]
        assert c.tensorget("t", meta_only=True) == [b"dtype", b"UINT8", b"shape", [2]]
    finally:
        c.close()


def test_pipeline(con):
    p = con.pipeline(transaction=False)
    p.tensorset("a", np.arange(4, dtype=np.int64).reshape(2, 2))
    p.tensorget("a")
    p.tensorget("a", as_numpy=False)
    p.tensorget("a", meta_only=True)
    res = p.execute()
    assert res[0] in ("OK", b"OK")
    assert np.array_equal(res[1], np.arange(4, dtype=np.int64).reshape(2, 2))
    assert res[2] == {"dtype": "INT64", "shape": [2, 2], "values": [0, 1, 2, 3]}
    assert res[3] == {"dtype": "INT64", "shape": [2, 2]}
