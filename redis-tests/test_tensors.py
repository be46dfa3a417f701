"""AI.TENSORSET / AI.TENSORGET (RedisAI 1.2 syntax, replies and errors, plus Locus's extensions),
AI.TENSORSTACK, AI.TENSORFROMHASH and tensors in the key space, with redis-py over RESP2 and
RESP3. Blobs are built with numpy."""

import os
import time

import numpy as np
import pytest
import redis

from conftest import _client, TENSOR_TYPE

TYPE_NAME = TENSOR_TYPE
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
EMPTY_KEY = "ERR tensor key is empty or in a different shard"

# Locus dtype name -> numpy dtype used to build blobs (BFLOAT16 as its raw 16-bit patterns,
# BOOL as one byte per element).
NUMERIC = {
    "FLOAT": np.float32,
    "DOUBLE": np.float64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FLOAT16": np.float16,
    "BFLOAT16": np.uint16,
}
INT_TYPES = ["INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"]


def _server_text(excinfo):
    """The error text as the server sent it (redis-py strips a leading 'ERR ')."""
    text = str(excinfo.value)
    if isinstance(excinfo.value, redis.ResponseError) and not text.startswith(
        ("WRONGTYPE", "ERR ", "NOAUTH", "NOPERM")
    ):
        # redis-py removes the "ERR " prefix of generic errors.
        text = "ERR " + text
    return text


def expect_error(c, *args, text=None, contains=None):
    with pytest.raises(redis.ResponseError) as e:
        c.execute_command(*args)
    got = _server_text(e)
    if text is not None:
        assert got == text, (args[:6], got)
    if contains is not None:
        assert contains in got, (args[:6], got)
    return got


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def rbin(request, server_port):
    """Binary-safe client (decode_responses=False), once per protocol; .proto tells which."""
    c = _client(server_port, request.param, decode=False)
    c.flushall()
    c.proto = request.param
    yield c
    c.close()


def as_dict(reply, proto):
    """Checks the META reply shape (RedisAI's flat name/value array, in RESP2 and RESP3 alike)
    and returns it as a {str: value} dict."""
    assert isinstance(reply, list), reply
    assert len(reply) % 2 == 0
    keys = [k.decode() if isinstance(k, bytes) else k for k in reply[0::2]]
    return dict(zip(keys, reply[1::2]))


def sval(v):
    return v.decode() if isinstance(v, bytes) else v


def to_float(v):
    """A float from a VALUES element: RESP2 bulk string (%.17g) or RESP3 double."""
    if isinstance(v, (bytes, str)):
        return float(sval(v))
    assert isinstance(v, float), (type(v), v)
    return v


def tset(c, key, dtype, shape, *data):
    return c.execute_command("AI.TENSORSET", key, dtype, *shape, *data)


def tget(c, key, *fmt):
    return c.execute_command("AI.TENSORGET", key, *fmt)


def random_bytes(n, seed):
    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes()


def bf16_bits(values):
    """bfloat16 bit patterns of values exactly representable in bfloat16."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32)
    assert np.all(bits & 0xFFFF == 0)
    return (bits >> 16).astype(np.uint16)


def bf16_values(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


# ---------------------------------------------------------------- BLOB round trips


def sample_array(dtype_name, shape):
    n = int(np.prod(shape))
    if dtype_name == "BOOL":
        return (np.arange(n) % 3 == 0).astype(np.uint8).reshape(shape)
    if dtype_name == "BFLOAT16":
        return bf16_bits((np.arange(n) - n // 2) * 0.5).reshape(shape)
    base = np.arange(n) - (n // 2 if dtype_name not in ("UINT8", "UINT16", "UINT32", "UINT64") else 0)
    return base.astype(NUMERIC[dtype_name]).reshape(shape)


@pytest.mark.parametrize("dtype", list(NUMERIC) + ["BOOL"])
def test_blob_roundtrip_every_dtype(rbin, dtype):
    arr = sample_array(dtype, (2, 3, 4))
    blob = arr.tobytes()
    assert tset(rbin, "t", dtype, arr.shape, "BLOB", blob) in (True, b"OK")
    assert tget(rbin, "t", "BLOB") == blob
    meta = as_dict(tget(rbin, "t", "META", "BLOB"), rbin.proto)
    assert list(meta) == ["dtype", "shape", "blob"]
    assert sval(meta["dtype"]) == dtype
    assert meta["shape"] == [2, 3, 4]
    assert meta["blob"] == blob
    assert rbin.type("t") == TYPE_NAME.encode()


@pytest.mark.parametrize("dtype", list(NUMERIC))
def test_blob_random_bytes_are_kept_exactly(rb, dtype):
    # Any bit pattern (NaN payloads, subnormals, -0.0 included) comes back byte-identical.
    itemsize = np.dtype(NUMERIC[dtype]).itemsize
    blob = random_bytes(itemsize * 257, seed=itemsize * 31 + len(dtype))
    rb.execute_command("AI.TENSORSET", "t", dtype, 257, "BLOB", blob)
    assert rb.execute_command("AI.TENSORGET", "t", "BLOB") == blob


def test_blob_all_byte_values(rb):
    blob = bytes(range(256))
    rb.execute_command("AI.TENSORSET", "t", "UINT8", 16, 16, "BLOB", blob)
    assert rb.execute_command("AI.TENSORGET", "t", "BLOB") == blob
    assert rb.execute_command("AI.TENSORGET", "t", "VALUES") == list(range(256))


def test_big_blob_roundtrip(rb):
    arr = np.random.default_rng(7).standard_normal((64, 128, 32)).astype(np.float32)
    rb.execute_command("AI.TENSORSET", "big", "FLOAT", *arr.shape, "BLOB", arr.tobytes())
    got = rb.execute_command("AI.TENSORGET", "big", "BLOB")
    assert got == arr.tobytes()
    assert np.array_equal(np.frombuffer(got, dtype=np.float32).reshape(arr.shape), arr)


def test_blob_must_be_one_argument(rb):
    """RedisAI takes exactly one binary string after BLOB."""
    text = "ERR a single binary string should come after the BLOB argument in 'AI.TENSORSET' command"
    expect_error(rb, "AI.TENSORSET", "t", "FLOAT", 2, "BLOB", b"abcd", b"efgh", text=text)
    expect_error(rb, "AI.TENSORSET", "t", "FLOAT", 2, "BLOB", text=text)
    expect_error(rb, "AI.TENSORSET", "t", "FLOAT", 2, "BLOB", b"abcd",
                 text="ERR data length does not match tensor shape and type")
    assert rb.exists("t") == 0


def test_bool_blob_roundtrip(rbin):
    arr = np.array([[1, 0, 1], [0, 0, 1]], dtype=np.uint8)
    tset(rbin, "b", "BOOL", arr.shape, "BLOB", arr.tobytes())
    assert tget(rbin, "b", "BLOB") == arr.tobytes()
    assert tget(rbin, "b", "VALUES") == [1, 0, 1, 0, 0, 1]
    assert np.array_equal(np.frombuffer(tget(rbin, "b", "BLOB"), dtype=np.bool_), arr.astype(bool).ravel())


# ---------------------------------------------------------------- VALUES round trips


@pytest.mark.parametrize("dtype", INT_TYPES)
def test_values_roundtrip_integers(rbin, dtype):
    np_t = NUMERIC[dtype]
    info = np.iinfo(np_t)
    vals = sorted({int(info.min), int(info.min) + 1, 0, 1, int(info.max) - 1, int(info.max), 7, int(info.max) // 3})
    if info.min < 0:
        vals = sorted(set(vals) | {-1, -7})
    tset(rbin, "t", dtype, (len(vals),), "VALUES", *[str(v) for v in vals])
    got = tget(rbin, "t", "VALUES")
    assert isinstance(got, list)
    assert len(got) == len(vals)
    for g, v in zip(got, vals):
        if -(2 ** 63) <= v < 2 ** 63:
            assert isinstance(g, int) and not isinstance(g, bool), (dtype, g, v)
            assert g == v
        else:
            # UINT64 above INT64_MAX cannot be a RESP integer; it must still parse to the value.
            assert int(sval(g) if isinstance(g, bytes) else g) == v, (dtype, g, v)
    assert tget(rbin, "t", "BLOB") == np.array(vals, dtype=np_t).tobytes()


def float_samples(np_t, n, seed):
    rng = np.random.default_rng(seed)
    itemsize = np.dtype(np_t).itemsize
    raw = rng.integers(0, 256, size=n * itemsize, dtype=np.uint8).tobytes()
    vals = np.frombuffer(raw, dtype=np_t)
    vals = vals[np.isfinite(vals)]
    fi = np.finfo(np_t)
    extra = np.array(
        [0.0, -0.0, 1.0, -1.0, 0.1, 1 / 3, fi.max, -fi.max, fi.tiny, fi.smallest_subnormal,
         -fi.smallest_subnormal, np.inf, -np.inf],
        dtype=np_t,
    )
    return np.concatenate([extra, vals])


@pytest.mark.parametrize(
    "dtype,np_t,uint_t",
    [("FLOAT", np.float32, np.uint32), ("DOUBLE", np.float64, np.uint64), ("FLOAT16", np.float16, np.uint16)],
)
def test_values_roundtrip_floats_exact_bits(rbin, dtype, np_t, uint_t):
    vals = float_samples(np_t, 500, seed=len(dtype))
    # repr of the (exactly widened) double is the shortest text that parses back to it.
    args = [repr(float(v)) for v in vals]
    tset(rbin, "t", dtype, (len(vals),), "VALUES", *args)
    assert tget(rbin, "t", "BLOB") == vals.tobytes()
    got = tget(rbin, "t", "VALUES")
    assert len(got) == len(vals)
    if rbin.proto == 3:
        assert all(isinstance(g, float) for g in got)
    else:
        assert all(isinstance(g, bytes) for g in got)
    doubles = np.array([to_float(g) for g in got], dtype=np.float64)
    # Each reply parses to exactly the stored value widened to double...
    assert np.array_equal(doubles.view(np.uint64), vals.astype(np.float64).view(np.uint64))
    # ...so narrowing it again gives the same bits.
    assert np.array_equal(doubles.astype(np_t).view(uint_t), vals.view(uint_t))


def test_values_float_text_forms(rbin):
    tset(rbin, "t", "DOUBLE", (6,), "VALUES", "1", "-2.5", "1e3", "16", "+4", ".5")
    got = [to_float(g) for g in tget(rbin, "t", "VALUES")]
    assert got == [1.0, -2.5, 1000.0, 16.0, 4.0, 0.5]
    # A FLOAT value is rounded to float32, and the reply shows the float32 exactly.
    tset(rbin, "f", "FLOAT", (1,), "VALUES", "0.1")
    (g,) = tget(rbin, "f", "VALUES")
    assert to_float(g) == float(np.float32(0.1))
    if rbin.proto == 2:
        assert g == b"0.10000000149011612"


def test_values_nan_from_blob(rbin):
    arr = np.array([np.nan, np.inf, -np.inf, -0.0], dtype=np.float32)
    tset(rbin, "t", "FLOAT", (4,), "BLOB", arr.tobytes())
    got = [to_float(g) for g in tget(rbin, "t", "VALUES")]
    assert np.isnan(got[0])
    assert got[1:3] == [float("inf"), float("-inf")]
    assert got[3] == 0.0 and np.signbit(got[3])


def test_values_bfloat16(rbin):
    exact = np.array([0.0, 1.0, -2.0, 1.5, 3.140625, 65280.0, -0.0078125, 2.0 ** -100, 2.0 ** 100], dtype=np.float32)
    bits = bf16_bits(exact)
    tset(rbin, "t", "BFLOAT16", (len(exact),), "VALUES", *[repr(float(v)) for v in exact])
    assert tget(rbin, "t", "BLOB") == bits.tobytes()
    got = np.array([to_float(g) for g in tget(rbin, "t", "VALUES")], dtype=np.float64)
    assert np.array_equal(got, exact.astype(np.float64))
    # Random finite bit patterns through BLOB -> VALUES -> VALUES -> BLOB.
    rnd = np.random.default_rng(3).integers(0, 1 << 16, size=300, dtype=np.uint16)
    rnd = rnd[np.isfinite(bf16_values(rnd))]
    tset(rbin, "r", "BFLOAT16", (len(rnd),), "BLOB", rnd.tobytes())
    vals = [to_float(g) for g in tget(rbin, "r", "VALUES")]
    assert np.array_equal(np.array(vals, dtype=np.float64), bf16_values(rnd).astype(np.float64))
    tset(rbin, "r2", "BFLOAT16", (len(rnd),), "VALUES", *[repr(v) for v in vals])
    assert tget(rbin, "r2", "BLOB") == rnd.tobytes()


def test_values_bool(rbin):
    tset(rbin, "b", "BOOL", (2, 2), "VALUES", 1, 0, 0, 1)
    assert tget(rbin, "b", "BLOB") == b"\x01\x00\x00\x01"
    got = tget(rbin, "b", "VALUES")
    assert got == [1, 0, 0, 1]
    assert all(isinstance(g, int) for g in got)


def test_values_then_blob_matches_numpy(rbin):
    tset(rbin, "t", "INT32", (2, 3), "VALUES", 1, -2, 3, -4, 5, -6)
    assert tget(rbin, "t", "BLOB") == np.array([1, -2, 3, -4, 5, -6], dtype="<i4").tobytes()
    tset(rbin, "h", "FLOAT16", (3,), "VALUES", "1.5", "-2", "65504")
    assert tget(rbin, "h", "BLOB") == np.array([1.5, -2, 65504], dtype="<f2").tobytes()


# ---------------------------------------------------------------- META / formats / zeros


def test_meta_reply_shapes(rbin):
    tset(rbin, "t", "INT16", (1, 2, 3), "VALUES", 1, 2, 3, 4, 5, 6)
    # RedisAI answers flat arrays in both protocols (it never sends maps).
    meta = tget(rbin, "t", "META")
    assert meta == [b"dtype", b"INT16", b"shape", [1, 2, 3]]
    full = tget(rbin, "t", "META", "VALUES")
    assert full == [b"dtype", b"INT16", b"shape", [1, 2, 3], b"values", [1, 2, 3, 4, 5, 6]]


def test_meta_decoded_client(r):
    # The decoding clients of the shared fixtures, for a type whose reply is text only.
    r.execute_command("AI.TENSORSET", "t", "FLOAT", 2, 2, "VALUES", 1, 2, 3, 4.5)
    meta = r.execute_command("AI.TENSORGET", "t", "META", "VALUES")
    d = as_dict(meta, 2 if isinstance(meta, list) else 3)
    assert d["dtype"] == "FLOAT"
    assert d["shape"] == [2, 2]
    assert [to_float(v) for v in d["values"]] == [1.0, 2.0, 3.0, 4.5]


def test_default_format_is_meta_and_blob(rbin):
    arr = np.array([[1.5, 2.5], [3.5, 4.5]], dtype=np.float32)
    tset(rbin, "t", "FLOAT", (2, 2), "BLOB", arr.tobytes())
    got = tget(rbin, "t")
    assert got == [b"dtype", b"FLOAT", b"shape", [2, 2], b"blob", arr.tobytes()]
    assert tget(rbin, "t", "META", "BLOB") == got
    assert tget(rbin, "t", "BLOB", "META") == got


def test_format_variants(rbin):
    tset(rbin, "t", "INT8", (3,), "VALUES", -1, 0, 1)
    assert tget(rbin, "t", "BLOB") == b"\xff\x00\x01"
    assert tget(rbin, "t", "VALUES") == [-1, 0, 1]
    assert tget(rbin, "t", "values") == [-1, 0, 1]
    assert tget(rbin, "t", "blob") == b"\xff\x00\x01"
    assert as_dict(tget(rbin, "t", "meta", "values"), rbin.proto)["values"] == [-1, 0, 1]
    assert as_dict(tget(rbin, "t", "VALUES", "META"), rbin.proto)["values"] == [-1, 0, 1]
    assert sval(as_dict(tget(rbin, "t", "Meta"), rbin.proto)["dtype"]) == "INT8"


def test_lowercase_dtype_and_keywords(rbin):
    # RedisAI compares type names and keywords case-insensitively.
    tset(rbin, "t", "float", (2,), "values", 1, 2)
    assert sval(as_dict(tget(rbin, "t", "META"), rbin.proto)["dtype"]) == "FLOAT"
    tset(rbin, "u", "Int32", (1,), "blob", b"\x05\x00\x00\x00")
    assert tget(rbin, "u", "VALUES") == [5]


@pytest.mark.parametrize("dtype", list(NUMERIC) + ["BOOL"])
def test_no_data_means_zeros(rbin, dtype):
    tset(rbin, "z", dtype, (2, 3))
    itemsize = 1 if dtype == "BOOL" else np.dtype(NUMERIC[dtype]).itemsize
    assert tget(rbin, "z", "BLOB") == b"\x00" * (6 * itemsize)
    vals = tget(rbin, "z", "VALUES")
    assert len(vals) == 6
    assert all(to_float(v) == 0.0 if isinstance(v, (float, bytes)) else v == 0 for v in vals)
    assert as_dict(tget(rbin, "z", "META"), rbin.proto)["shape"] == [2, 3]


def test_tensorset_replaces_tensor(rbin):
    tset(rbin, "t", "FLOAT", (2,), "VALUES", 1, 2)
    tset(rbin, "t", "INT64", (3, 1), "VALUES", 7, 8, 9)
    meta = as_dict(tget(rbin, "t", "META", "VALUES"), rbin.proto)
    assert sval(meta["dtype"]) == "INT64"
    assert meta["shape"] == [3, 1]
    assert meta["values"] == [7, 8, 9]


def test_many_dims_and_scalar_like(rbin):
    tset(rbin, "t", "UINT8", (1, 1, 1, 1, 1, 1, 1, 2), "VALUES", 3, 4)
    assert as_dict(tget(rbin, "t", "META"), rbin.proto)["shape"] == [1, 1, 1, 1, 1, 1, 1, 2]
    tset(rbin, "s", "DOUBLE", (1,), "VALUES", "2.5")
    assert [to_float(v) for v in tget(rbin, "s", "VALUES")] == [2.5]


# ---------------------------------------------------------------- STRING tensors


def test_string_tensor_blob(rbin):
    blob = b"ab\x00\x00c d\x00"
    tset(rbin, "s", "STRING", (3,), "BLOB", blob)
    assert tget(rbin, "s", "BLOB") == blob
    assert tget(rbin, "s", "VALUES") == [b"ab", b"", b"c d"]
    meta = as_dict(tget(rbin, "s", "META"), rbin.proto)
    assert sval(meta["dtype"]) == "STRING"
    assert meta["shape"] == [3]


def test_string_tensor_values_utf8(rbin):
    words = ["hello", "", "héllo wörld", "日本語", "x" * 300]
    tset(rbin, "s", "STRING", (5,), "VALUES", *words)
    assert tget(rbin, "s", "VALUES") == [w.encode() for w in words]
    assert tget(rbin, "s", "BLOB") == b"".join(w.encode() + b"\x00" for w in words)
    full = as_dict(tget(rbin, "s"), rbin.proto)
    assert full["blob"] == b"".join(w.encode() + b"\x00" for w in words)


def test_string_tensor_2d(rbin):
    tset(rbin, "s", "STRING", (2, 2), "BLOB", b"a\x00bb\x00\x00dd\x00")
    assert tget(rbin, "s", "VALUES") == [b"a", b"bb", b"", b"dd"]
    assert as_dict(tget(rbin, "s", "META"), rbin.proto)["shape"] == [2, 2]


def test_string_tensor_zeros(rbin):
    tset(rbin, "s", "STRING", (2,))
    assert tget(rbin, "s", "VALUES") == [b"", b""]
    assert tget(rbin, "s", "BLOB") == b"\x00\x00"


def test_string_tensor_errors(rb):
    n = "ERR Number of string elements in data blob does not match tensor length"
    expect_error(rb, "AI.TENSORSET", "s", "STRING", 2, "BLOB", b"a\x00", text=n)
    expect_error(rb, "AI.TENSORSET", "s", "STRING", 2, "BLOB", b"a\x00b\x00c\x00", text=n)
    expect_error(rb, "AI.TENSORSET", "s", "STRING", 2, "BLOB", b"a", text=n)
    expect_error(rb, "AI.TENSORSET", "s", "STRING", 2, "VALUES", b"ok", b"a\x00b",
                 text="ERR C-string value contains null character")
    expect_error(rb, "AI.TENSORSET", "s", "STRING", 2, "VALUES", b"ok", b"a\x00\x00",
                 text="ERR C-string value contains null character")
    assert rb.exists("s") == 0


# ---------------------------------------------------------------- AI.TENSORSET errors


def test_tensorset_errors(rb):
    c = rb
    expect_error(c, "AI.TENSORSET", "e", "FOO", 2, text="ERR invalid data type")
    expect_error(c, "AI.TENSORSET", "e", "COMPLEX64", 2, "VALUES", 1, 2, text="ERR invalid data type")
    shape = "ERR invalid or negative value found in tensor shape"
    expect_error(c, "AI.TENSORSET", "e", "FLOAT", -1, text=shape)
    expect_error(c, "AI.TENSORSET", "e", "FLOAT", 0, text=shape)
    expect_error(c, "AI.TENSORSET", "e", "FLOAT", 2, "abc", text=shape)
    expect_error(c, "AI.TENSORSET", "e", "FLOAT", "2.5", text=shape)
    expect_error(c, "AI.TENSORSET", "e", "FLOAT", 2, -3, "VALUES", 1, text=shape)
    length = "ERR data length does not match tensor shape and type"
    expect_error(c, "AI.TENSORSET", "e", "FLOAT", 2, "BLOB", b"abc", text=length)
    expect_error(c, "AI.TENSORSET", "e", "FLOAT", 2, "BLOB", b"abcdefghi", text=length)
    expect_error(c, "AI.TENSORSET", "e", "INT16", 2, 2, "BLOB", b"\x00" * 7, text=length)
    expect_error(c, "AI.TENSORSET", "e", "FLOAT", 1, "BLOB", b"", text=length)
    expect_error(c, "AI.TENSORSET", "e", "FLOAT", 2, "VALUES", 1, "x", text="ERR invalid value")
    expect_error(c, "AI.TENSORSET", "e", "INT32", 2, "VALUES", 1, "1.5", text="ERR invalid value")
    expect_error(c, "AI.TENSORSET", "e", "INT32", 1, "VALUES", "", text="ERR invalid value")
    expect_error(c, "AI.TENSORSET", "e", "DOUBLE", 1, "VALUES", "nan", text="ERR invalid value")
    nvals = "ERR wrong number of values was given in 'AI.TENSORSET' command"
    expect_error(c, "AI.TENSORSET", "e", "FLOAT", 2, "VALUES", 1, text=nvals)
    expect_error(c, "AI.TENSORSET", "e", "FLOAT", 2, "VALUES", 1, 2, 3, text=nvals)
    expect_error(c, "AI.TENSORSET", "e", "FLOAT", 2, "VALUES", text=nvals)
    expect_error(c, "AI.TENSORSET", "e", "FLOAT", 2, "BLOB",
                 text="ERR a single binary string should come after the BLOB argument in 'AI.TENSORSET' command")
    expect_error(c, "AI.TENSORSET", "e", "BOOL", 2, "BLOB", b"\x01\x02",
                 text="ERR BOOL tensor elements must be 0 or 1")
    expect_error(c, "AI.TENSORSET", "e", "BOOL", 3, "BLOB", b"\x00\xff\x01",
                 text="ERR BOOL tensor elements must be 0 or 1")
    # A BOOL value other than 0/1 is refused too (either RedisAI text).
    got = expect_error(c, "AI.TENSORSET", "e", "BOOL", 2, "VALUES", 1, 2)
    assert got in ("ERR invalid value", "ERR BOOL tensor elements must be 0 or 1"), got
    assert c.exists("e") == 0


def test_tensorset_arity(rb):
    for args in (("AI.TENSORSET",), ("AI.TENSORSET", "e"), ("AI.TENSORSET", "e", "FLOAT")):
        got = expect_error(rb, *args)
        assert "wrong number of arguments" in got and "ai.tensorset" in got.lower(), got


def test_tensorset_wrongtype(r):
    r.set("s", "v")
    expect_error(r, "AI.TENSORSET", "s", "FLOAT", 1, "VALUES", 1, text=WRONGTYPE)
    r.hset("h", "f", "v")
    expect_error(r, "AI.TENSORSET", "h", "FLOAT", 1, text=WRONGTYPE)
    assert r.get("s") == "v"
    assert r.type("h") == "hash"


def test_failed_tensorset_keeps_old_tensor(rb):
    rb.execute_command("AI.TENSORSET", "t", "INT8", 2, "VALUES", 1, 2)
    expect_error(rb, "AI.TENSORSET", "t", "INT8", 2, "VALUES", 1, "x", text="ERR invalid value")
    expect_error(rb, "AI.TENSORSET", "t", "INT8", 2, "BLOB", b"x", text="ERR data length does not match tensor shape and type")
    assert rb.execute_command("AI.TENSORGET", "t", "VALUES") == [1, 2]


# ---------------------------------------------------------------- AI.TENSORGET errors


def test_tensorget_errors(rb):
    c = rb
    expect_error(c, "AI.TENSORGET", "missing", text=EMPTY_KEY)
    expect_error(c, "AI.TENSORGET", "missing", "VALUES", text=EMPTY_KEY)
    c.set("str", "v")
    expect_error(c, "AI.TENSORGET", "str", text=WRONGTYPE)
    expect_error(c, "AI.TENSORGET", "str", "META", text=WRONGTYPE)
    c.execute_command("AI.TENSORSET", "t", "FLOAT", 1)
    expect_error(c, "AI.TENSORGET", "t", "FOO", text="ERR unsupported data format")
    expect_error(c, "AI.TENSORGET", "t", "META", "JSON", text="ERR unsupported data format")
    expect_error(c, "AI.TENSORGET", "t", "BLOB", "VALUES", text="ERR both BLOB and VALUES specified")
    expect_error(c, "AI.TENSORGET", "t", "VALUES", "BLOB", text="ERR both BLOB and VALUES specified")
    arity = "ERR wrong number of arguments for 'ai.tensorget' command"
    expect_error(c, "AI.TENSORGET", "t", "META", "BLOB", "META", "BLOB", text=arity)
    expect_error(c, "AI.TENSORGET", "t", "META", "BLOB", "VALUES", "META", "X", text=arity)
    got = expect_error(c, "AI.TENSORGET")
    assert "wrong number of arguments" in got and "ai.tensorget" in got.lower(), got


def test_tensorget_three_format_args_is_arity_error(rb):
    # RedisAI 1.2's ParseTensorGetArgs: `if (argc < 2 || argc > 4) -> wrong number of
    # arguments`, i.e. at most two format words after the key.
    rb.execute_command("AI.TENSORSET", "t", "FLOAT", 1)
    arity = "ERR wrong number of arguments for 'ai.tensorget' command"
    expect_error(rb, "AI.TENSORGET", "t", "META", "BLOB", "BLOB", text=arity)
    expect_error(rb, "AI.TENSORGET", "t", "META", "BLOB", "VALUES", text=arity)


# ---------------------------------------------------------------- tensor-max-bytes


def test_huge_shape_refused_quickly(r):
    t0 = time.monotonic()
    got = expect_error(r, "AI.TENSORSET", "big", "FLOAT", 100000, 100000, 100000)
    assert "tensor is too large" in got
    got = expect_error(r, "AI.TENSORSET", "big", "DOUBLE", 100000, 100000, 100000, "VALUES", 1)
    assert "tensor is too large" in got
    got = expect_error(r, "AI.TENSORSET", "big", "INT8", 100000, 100000, 100000, "BLOB", "x")
    assert "tensor is too large" in got
    got = expect_error(r, "AI.TENSORSET", "big", "FLOAT", 9223372036854775807, 9223372036854775807)
    assert "tensor is too large" in got
    assert time.monotonic() - t0 < 2.0
    assert r.ping() is True
    assert r.exists("big") == 0
    r.execute_command("AI.TENSORSET", "small", "FLOAT", 2, "VALUES", 1, 2)
    assert r.execute_command("AI.TENSORGET", "small", "VALUES") is not None


@pytest.mark.locus_only
def test_default_tensor_max_bytes(r):
    assert r.config_get("tensor-max-bytes") == {"tensor-max-bytes": str(512 * 1024 * 1024)}


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_tensor_max_bytes_config(spawn):
    srv = spawn("--tensor-max-bytes", "1000")
    c = srv.client()
    assert c.config_get("tensor-max-bytes") == {"tensor-max-bytes": "1000"}
    c.execute_command("AI.TENSORSET", "ok", "FLOAT", 250)
    got = expect_error(c, "AI.TENSORSET", "no", "FLOAT", 251)
    assert "tensor is too large" in got
    got = expect_error(c, "AI.TENSORSET", "no", "UINT8", 1001, "BLOB", b"\x00" * 1001)
    assert "tensor is too large" in got
    got = expect_error(c, "AI.TENSORSET", "no", "DOUBLE", 10, 20)
    assert "tensor is too large" in got
    assert c.exists("no") == 0
    c.config_set("tensor-max-bytes", "1mb")
    assert c.config_get("tensor-max-bytes") == {"tensor-max-bytes": str(1024 * 1024)}
    c.execute_command("AI.TENSORSET", "ok2", "FLOAT", 512, 512)
    got = expect_error(c, "AI.TENSORSET", "no", "FLOAT", 512, 513)
    assert "tensor is too large" in got
    # A refused shape allocates nothing: 200 refusals of a 600 MB tensor (over the default
    # limit) leave the resident size where it was.
    c.config_set("tensor-max-bytes", str(512 * 1024 * 1024))
    before = _rss_kib(srv.proc.pid)
    t0 = time.monotonic()
    for _ in range(200):
        with pytest.raises(redis.ResponseError, match="tensor is too large"):
            c.execute_command("AI.TENSORSET", "no", "FLOAT", 150 * 1024 * 1024)
    assert time.monotonic() - t0 < 3.0
    assert _rss_kib(srv.proc.pid) - before < 50 * 1024
    assert c.ping() is True
    c.close()


# ---------------------------------------------------------------- key space integration


def test_type_del_exists_dbsize(r):
    r.execute_command("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1, 2)
    assert r.type("t") == TYPE_NAME
    assert r.exists("t") == 1
    assert r.dbsize() == 1
    assert r.delete("t") == 1
    assert r.exists("t") == 0
    assert r.type("t") == "none"
    expect_error(r, "AI.TENSORGET", "t", text=EMPTY_KEY)
    r.execute_command("AI.TENSORSET", "u", "INT8", 1)
    assert r.unlink("u") == 1
    assert r.dbsize() == 0


def test_type_is_status_reply(raw):
    c = raw()
    c.cmd("FLUSHALL")
    c.cmd("AI.TENSORSET", "t", "FLOAT", "1")
    c.send(b"TYPE t\r\n")
    assert c.readline() == b"+" + TENSOR_TYPE.encode()


def test_expire_ttl(r):
    r.execute_command("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1, 2)
    assert r.ttl("t") == -1
    assert r.expire("t", 100) is True
    assert 99 <= r.ttl("t") <= 100
    assert r.persist("t") is True
    assert r.ttl("t") == -1
    assert r.pexpire("t", 60) is True
    time.sleep(0.15)
    assert r.exists("t") == 0
    expect_error(r, "AI.TENSORGET", "t", text=EMPTY_KEY)


def test_rename(rbin):
    tset(rbin, "a", "INT32", (2,), "VALUES", 5, 6)
    assert rbin.rename("a", "b") is True
    assert rbin.exists("a") == 0
    assert tget(rbin, "b", "VALUES") == [5, 6]
    assert rbin.type("b") == TYPE_NAME.encode()
    rbin.set("s", "x")
    assert rbin.rename("b", "s") is True  # RENAME overwrites any type
    assert rbin.type("s") == TYPE_NAME.encode()
    tset(rbin, "c", "INT8", (1,))
    assert rbin.renamenx("c", "s") is False
    assert tget(rbin, "s", "VALUES") == [5, 6]


def test_copy(rbin):
    tset(rbin, "a", "DOUBLE", (2,), "VALUES", 1.5, 2.5)
    assert rbin.copy("a", "b") is True
    assert tget(rbin, "b") == tget(rbin, "a")
    # The copy is independent of the source.
    tset(rbin, "b", "DOUBLE", (2,), "VALUES", 9, 9)
    assert [to_float(v) for v in tget(rbin, "a", "VALUES")] == [1.5, 2.5]
    assert rbin.copy("a", "b") is False
    assert rbin.copy("a", "b", replace=True) is True
    assert [to_float(v) for v in tget(rbin, "b", "VALUES")] == [1.5, 2.5]
    assert rbin.copy("a", "other_db", destination_db=2) is True
    c2 = _client(rbin.connection_pool.connection_kwargs["port"], 2, decode=False)
    try:
        c2.execute_command("SELECT", 2)
        assert c2.execute_command("AI.TENSORGET", "other_db", "VALUES") == [b"1.5", b"2.5"]
        c2.flushdb()
    finally:
        c2.close()


def test_move(server_port, r2):
    r2.execute_command("AI.TENSORSET", "t", "INT64", 3, "VALUES", 1, 2, 3)
    assert r2.move("t", 1) is True
    assert r2.exists("t") == 0
    c1 = redis.Redis(host="127.0.0.1", port=server_port, db=1, decode_responses=True)
    try:
        assert c1.type("t") == TYPE_NAME
        assert c1.execute_command("AI.TENSORGET", "t", "VALUES") == [1, 2, 3]
        assert c1.move("t", 0) is True
        assert r2.execute_command("AI.TENSORGET", "t", "VALUES") == [1, 2, 3]
    finally:
        c1.flushdb()
        c1.close()


def test_scan_type(r):
    for i in range(20):
        r.execute_command("AI.TENSORSET", f"t:{i}", "FLOAT", 1)
        r.set(f"s:{i}", i)
    r.hset("h", "f", "v")
    assert sorted(r.scan_iter(_type=TYPE_NAME, count=7)) == sorted(f"t:{i}" for i in range(20))
    assert sorted(r.scan_iter(_type=TYPE_NAME.lower())) == sorted(f"t:{i}" for i in range(20))
    assert sorted(r.scan_iter(_type="string")) == sorted(f"s:{i}" for i in range(20))
    assert list(r.scan_iter(match="t:1*", _type="string")) == []
    assert sorted(r.scan_iter(match="t:1?", _type=TYPE_NAME)) == sorted(f"t:{i}" for i in range(10, 20))
    assert sorted(r.keys("t:*")) == sorted(f"t:{i}" for i in range(20))


def test_memory_usage(r):
    r.execute_command("AI.TENSORSET", "t", "FLOAT", 1000, 100)
    usage = r.memory_usage("t")
    assert isinstance(usage, int)
    assert 400_000 <= usage < 2 * 400_000 + 65536
    r.execute_command("AI.TENSORSET", "s", "INT8", 10)
    small = r.memory_usage("s")
    assert 10 <= small < usage
    assert r.memory_usage("missing") is None


def test_info_keyspace(r):
    r.execute_command("AI.TENSORSET", "t1", "FLOAT", 1)
    r.execute_command("AI.TENSORSET", "t2", "FLOAT", 1)
    r.set("s", "v")
    r.expire("t2", 1000)
    ks = r.info("keyspace")
    assert ks["db0"]["keys"] == 3
    assert ks["db0"]["expires"] == 1
    r.delete("t1")
    assert r.info("keyspace")["db0"]["keys"] == 2


def test_get_and_string_commands_on_tensor(r):
    r.execute_command("AI.TENSORSET", "t", "FLOAT", 1)
    for fn, args in ((r.get, ()), (r.append, ("x",)), (r.strlen, ()), (r.incr, ()), (r.getrange, (0, 1))):
        with pytest.raises(redis.ResponseError) as e:
            fn("t", *args)
        assert str(e.value) == WRONGTYPE
    with pytest.raises(redis.ResponseError) as e:
        r.hget("t", "f")
    assert str(e.value) == WRONGTYPE
    assert r.type("t") == TYPE_NAME


def test_set_over_tensor_replaces_it(r):
    r.execute_command("AI.TENSORSET", "t", "FLOAT", 1)
    assert r.set("t", "plain") is True
    assert r.type("t") == "string"
    assert r.get("t") == "plain"
    expect_error(r, "AI.TENSORGET", "t", text=WRONGTYPE)
    r.execute_command("AI.TENSORSET", "u", "FLOAT", 1)
    assert r.set("u", "x", nx=True) is None
    assert r.type("u") == TYPE_NAME
    r.execute_command("AI.TENSORSET", "v", "FLOAT", 1)
    r.mset({"v": "m"})
    assert r.get("v") == "m"


def test_flushall_and_select_isolation(server_port, r2):
    r2.execute_command("AI.TENSORSET", "t", "FLOAT", 1)
    c3 = redis.Redis(host="127.0.0.1", port=server_port, db=3, decode_responses=True)
    try:
        assert c3.exists("t") == 0
        c3.execute_command("AI.TENSORSET", "t", "INT8", 2, "VALUES", 3, 4)
        assert r2.execute_command("AI.TENSORGET", "t", "META")[1] == "FLOAT"
        assert c3.execute_command("AI.TENSORGET", "t", "VALUES") == [3, 4]
        r2.flushall()
        assert c3.exists("t") == 0
        assert r2.exists("t") == 0
    finally:
        c3.close()


def test_pipeline_with_tensors(r):
    # A plain pipeline (Locus has no MULTI/EXEC).
    p = r.pipeline(transaction=False)
    p.execute_command("AI.TENSORSET", "t", "INT32", 2, "VALUES", 1, 2)
    p.execute_command("AI.TENSORGET", "t", "VALUES")
    p.type("t")
    res = p.execute()
    assert res[1:] == [[1, 2], TYPE_NAME]


def test_resp3_double_text(raw):
    # Extreme doubles must come back in a form clients parse: hiredis (redis-py's fast parser)
    # refuses a RESP3 double of 326 characters or more ("Double value is too large"), and Redis
    # itself writes such values with an exponent (1.7976931348623157e+308).
    c = raw()
    c.cmd("HELLO", "3")
    vals = ["1.7976931348623157e+308", "5e-324", "-2.2250738585072014e-308", "1e+22", "123.5", "-0.0"]
    assert c.cmd("AI.TENSORSET", "d", "DOUBLE", str(len(vals)), "VALUES", *vals) == "OK"
    c.send(b"AI.TENSORGET d VALUES\r\n")
    assert c.readline() == b"*%d" % len(vals)
    for v in vals:
        line = c.readline()
        assert line[:1] == b",", line
        text = line[1:].decode()
        assert len(text) < 326, (v, len(text))
        assert float(text) == float(v) and np.signbit(float(text)) == np.signbit(float(v)), (v, text)
    c.cmd("FLUSHALL")


# ---------------------------------------------------------------- AI.TENSORSTACK


def test_tensorstack(rbin):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.arange(6, 9, dtype=np.float32).reshape(1, 3)
    tset(rbin, "a", "FLOAT", a.shape, "BLOB", a.tobytes())
    tset(rbin, "b", "FLOAT", b.shape, "BLOB", b.tobytes())
    assert tstack(rbin, "s", "a", "b") in (True, b"OK")
    meta = as_dict(tget(rbin, "s", "META", "BLOB"), rbin.proto)
    assert sval(meta["dtype"]) == "FLOAT"
    assert meta["shape"] == [3, 3]
    assert meta["blob"] == np.concatenate([a, b]).tobytes()
    # The same source twice, and a single source.
    tstack(rbin, "s2", "b", "a", "b")
    assert tget(rbin, "s2", "BLOB") == np.concatenate([b, a, b]).tobytes()
    tstack(rbin, "one", "a")
    assert tget(rbin, "one") == tget(rbin, "a")
    # Overwrites an existing tensor at dst, even one of its sources.
    tstack(rbin, "a", "a", "a")
    assert as_dict(tget(rbin, "a", "META"), rbin.proto)["shape"] == [4, 3]


def tstack(c, dst, *srcs):
    return c.execute_command("AI.TENSORSTACK", dst, *srcs)


def test_tensorstack_other_dtypes(rbin):
    x = np.array([[[1, 2], [3, 4]]], dtype=np.int64)
    y = np.array([[[5, 6], [7, 8]], [[9, 10], [11, 12]]], dtype=np.int64)
    tset(rbin, "x", "INT64", x.shape, "BLOB", x.tobytes())
    tset(rbin, "y", "INT64", y.shape, "BLOB", y.tobytes())
    tstack(rbin, "z", "x", "y")
    meta = as_dict(tget(rbin, "z", "META", "VALUES"), rbin.proto)
    assert meta["shape"] == [3, 2, 2]
    assert meta["values"] == list(range(1, 13))
    tset(rbin, "s1", "STRING", (1,), "VALUES", "ab")
    tset(rbin, "s2", "STRING", (2,), "VALUES", "c", "")
    tstack(rbin, "s", "s1", "s2")
    assert tget(rbin, "s", "VALUES") == [b"ab", b"c", b""]
    tset(rbin, "v", "UINT8", (2,), "VALUES", 1, 2)
    tstack(rbin, "vv", "v", "v")
    assert tget(rbin, "vv", "VALUES") == [1, 2, 1, 2]
    assert as_dict(tget(rbin, "vv", "META"), rbin.proto)["shape"] == [4]


def test_tensorstack_errors(rb):
    c = rb
    c.execute_command("AI.TENSORSET", "f", "FLOAT", 2, 3)
    c.execute_command("AI.TENSORSET", "d", "DOUBLE", 2, 3)
    c.execute_command("AI.TENSORSET", "g", "FLOAT", 2, 4)
    c.execute_command("AI.TENSORSET", "h", "FLOAT", 6)
    c.set("str", "v")
    got = expect_error(c, "AI.TENSORSTACK", "dst", "f", "d")
    assert "dtype" in got.lower() or "data type" in got.lower(), got
    got = expect_error(c, "AI.TENSORSTACK", "dst", "f", "g")
    assert "shape" in got.lower(), got
    got = expect_error(c, "AI.TENSORSTACK", "dst", "f", "h")
    assert "shape" in got.lower(), got
    expect_error(c, "AI.TENSORSTACK", "dst", "f", "missing", text=EMPTY_KEY)
    expect_error(c, "AI.TENSORSTACK", "dst", "f", "str", text=WRONGTYPE)
    expect_error(c, "AI.TENSORSTACK", "str", "f", "f", text=WRONGTYPE)
    assert c.get("str") == b"v"
    got = expect_error(c, "AI.TENSORSTACK", "dst")
    assert "wrong number of arguments" in got, got
    got = expect_error(c, "AI.TENSORSTACK")
    assert "wrong number of arguments" in got, got
    assert c.exists("dst") == 0


def test_tensorstack_respects_max_bytes(spawn):
    srv = spawn("--tensor-max-bytes", "1000")
    c = srv.client()
    c.execute_command("AI.TENSORSET", "a", "FLOAT", 200)
    got = expect_error(c, "AI.TENSORSTACK", "dst", "a", "a")
    assert "tensor is too large" in got
    assert c.exists("dst") == 0
    c.close()


# ---------------------------------------------------------------- AI.TENSORFROMHASH


def test_tensorfromhash(rbin):
    rbin.hset("h", mapping={"a": "1", "b": "2.5", "c": "-3", "d": "1e2"})
    assert rbin.execute_command("AI.TENSORFROMHASH", "t", "FLOAT", "h", "a", "b", "c", "d") in (True, b"OK")
    meta = as_dict(tget(rbin, "t", "META", "VALUES"), rbin.proto)
    assert sval(meta["dtype"]) == "FLOAT"
    assert meta["shape"] == [1, 4]
    assert [to_float(v) for v in meta["values"]] == [1.0, 2.5, -3.0, 100.0]
    assert tget(rbin, "t", "BLOB") == np.array([1, 2.5, -3, 100], dtype=np.float32).tobytes()
    # Field order is the order given; fields may repeat.
    rbin.execute_command("AI.TENSORFROMHASH", "t2", "DOUBLE", "h", "d", "a", "a")
    assert [to_float(v) for v in tget(rbin, "t2", "VALUES")] == [100.0, 1.0, 1.0]
    rbin.hset("ints", mapping={"x": "7", "y": "-8", "z": "9000000000"})
    rbin.execute_command("AI.TENSORFROMHASH", "i", "INT64", "ints", "z", "y", "x")
    assert tget(rbin, "i", "VALUES") == [9000000000, -8, 7]
    assert as_dict(tget(rbin, "i", "META"), rbin.proto)["shape"] == [1, 3]
    rbin.execute_command("AI.TENSORFROMHASH", "one", "UINT8", "ints", "x")
    assert as_dict(tget(rbin, "one", "META", "BLOB"), rbin.proto)["blob"] == b"\x07"
    # dst may already hold a tensor: it is replaced.
    rbin.execute_command("AI.TENSORFROMHASH", "i", "INT8", "ints", "x")
    assert tget(rbin, "i", "VALUES") == [7]


def test_tensorfromhash_errors(rb):
    c = rb
    c.hset("h", mapping={"a": "1", "s": "abc", "big": "300"})
    c.set("str", "v")
    expect_error(c, "AI.TENSORFROMHASH", "t", "FOO", "h", "a", text="ERR invalid data type")
    got = expect_error(c, "AI.TENSORFROMHASH", "t", "FLOAT", "missing", "a")
    assert got.startswith("ERR"), got
    got = expect_error(c, "AI.TENSORFROMHASH", "t", "FLOAT", "h", "a", "nofield")
    assert "nofield" in got, got
    got = expect_error(c, "AI.TENSORFROMHASH", "t", "FLOAT", "h", "a", "s")
    assert got.startswith("ERR") and "value" in got, got
    got = expect_error(c, "AI.TENSORFROMHASH", "t", "INT32", "h", "a", "s")
    assert got.startswith("ERR"), got
    expect_error(c, "AI.TENSORFROMHASH", "t", "FLOAT", "str", "a", text=WRONGTYPE)
    expect_error(c, "AI.TENSORFROMHASH", "str", "FLOAT", "h", "a", text=WRONGTYPE)
    c.execute_command("AI.TENSORSET", "tens", "FLOAT", 1)
    expect_error(c, "AI.TENSORFROMHASH", "t", "FLOAT", "tens", "a", text=WRONGTYPE)
    for args in (("t", "FLOAT", "h"), ("t", "FLOAT"), ("t",), ()):
        got = expect_error(c, "AI.TENSORFROMHASH", *args)
        assert "wrong number of arguments" in got, (args, got)
    assert c.exists("t") == 0
    assert c.get("str") == b"v"
