"""Migrating in: `--import-rdb FILE` loads a Redis 7.0 RDB file written by stock redis-server
(every type, several databases, expiries, function libraries) and RedisAI 1.2's tensors and ONNX
models in a file built from RedisAI's layout; unknown module types stop the start by name unless
`--import-skip-unknown yes`; imported keys outlive a restart; `locus-check` reports on the file."""

import os
import random
import subprocess
import time

import pytest
import redis

from conftest import SERVER_BIN, start_redis
from test_dump_restore import ONNX_MODEL_V4, TENSOR_V4, read_back, values


LOCUS_CHECK = os.path.join(os.path.dirname(SERVER_BIN), "locus-check")


def rdb_string(b):
    if len(b) < 64:
        return bytes([len(b)]) + b
    if len(b) < 16384:
        return bytes([0x40 | (len(b) >> 8), len(b) & 0xFF]) + b
    return b"\x80" + len(b).to_bytes(4, "big") + b


def module_id(name, encver):
    charset = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    mid = 0
    for ch in name.encode():
        mid = (mid << 6) | charset.index(ch)
    return (mid << 10) | encver


def rdb_file(entries):
    """An RDB file of (key, DUMP payload) pairs in database 0, checksum off (zero)."""
    body = b"REDIS0010" + b"\xfe\x00"
    for key, payload in entries:
        body += payload[:1] + rdb_string(key) + payload[1:-10]
    return body + b"\xff" + bytes(8)


@pytest.fixture(scope="module")
def redis_rdb(tmp_path_factory):
    """A dump.rdb written by redis-server, and the server (still running) to compare with."""
    d = tmp_path_factory.mktemp("redis-rdb")
    proc, port = start_redis("--dbfilename", "dump.rdb", workdir=str(d))
    c = redis.Redis(port=port)
    rng = random.Random(21)
    for db in (0, 3):
        conn = redis.Redis(port=port, db=db)
        for key, cmds in values(rng).items():
            for cmd in cmds:
                conn.execute_command(*cmd)
        conn.expire("str", 3600)
        conn.pexpire("list", 900000)
    c.set("gone", "x", px=300)
    c.execute_command("FUNCTION", "LOAD",
                      "#!lua name=imported\nredis.register_function('answer', function() return 42 end)")
    time.sleep(0.4)
    c.save()
    yield d / "dump.rdb", port
    proc.terminate()
    proc.wait()


def test_a_redis_rdb_file_imports_whole(spawn, redis_rdb):
    path, port = redis_rdb
    s = spawn("--import-rdb", str(path))
    for db in (0, 3):
        mine = redis.Redis(port=s.port, db=db)
        theirs = redis.Redis(port=port, db=db)
        assert sorted(mine.keys()) == sorted(theirs.keys())
        for key in theirs.keys():
            assert mine.type(key) == theirs.type(key), key
            assert read_back(mine, key) == read_back(theirs, key), key
            assert abs(mine.pttl(key) - theirs.pttl(key)) < 5000, key
    assert redis.Redis(port=s.port).exists("gone") == 0
    assert redis.Redis(port=s.port).fcall("answer", 0) == 42


def test_imported_keys_outlive_a_restart(spawn, redis_rdb, tmp_path):
    path, port = redis_rdb
    s = spawn("--import-rdb", str(path), "--appendonly", "yes", "--dir", str(tmp_path))
    n = redis.Redis(port=s.port).dbsize()
    assert n > 10
    s.stop()
    s2 = spawn("--appendonly", "yes", "--dir", str(tmp_path))
    c = redis.Redis(port=s2.port)
    assert c.dbsize() == n
    assert read_back(c, "bighash") == read_back(redis.Redis(port=port), "bighash")
    assert c.fcall("answer", 0) == 42


def redisai_file(tmp_path, with_unknown):
    entries = [(b"tensor", TENSOR_V4), (b"iris", ONNX_MODEL_V4)]
    if with_unknown:
        body = TENSOR_V4[10:-10]
        fake = b"\x07\x81" + module_id("xyz-types", 1).to_bytes(8, "big") + body + bytes(10)
        entries.append((b"other", fake))
    path = tmp_path / f"redisai-{with_unknown}.rdb"
    path.write_bytes(rdb_file(entries))
    return path


def test_redisai_types_import_and_unknown_types_are_named(spawn, tmp_path):
    clean = redisai_file(tmp_path, False)
    s = spawn("--import-rdb", str(clean))
    c = s.client(decode_responses=False)
    assert c.execute_command("AI.TENSORGET", "tensor", "META", "VALUES") == \
        [b"dtype", b"INT32", b"shape", [2, 1], b"values", [1, 2]]
    c.execute_command("AI.TENSORSET", "in", "FLOAT", 1, 4, "VALUES", 5.1, 3.5, 1.4, 0.2)
    c.execute_command("AI.MODELEXECUTE", "iris", "INPUTS", 1, "in", "OUTPUTS", 1, "out")
    assert c.execute_command("AI.TENSORGET", "out", "META")[1] == b"FLOAT"
    s.stop()

    mixed = redisai_file(tmp_path, True)
    with pytest.raises(RuntimeError) as failed:
        spawn("--import-rdb", str(mixed))
    assert "xyz-types" in str(failed.value) and "other" in str(failed.value)
    s = spawn("--import-rdb", str(mixed), "--import-skip-unknown", "yes")
    c = s.client(decode_responses=False)
    assert sorted(c.keys()) == [b"iris", b"tensor"]
    assert "xyz-types" in s.read_log()


def test_locus_check_reports_on_rdb_files(redis_rdb, tmp_path):
    path, _ = redis_rdb
    out = subprocess.run([LOCUS_CHECK, str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
    assert "RDB version 10 looks OK" in out.stdout and "1 function libraries" in out.stdout
    mixed = redisai_file(tmp_path, True)
    out = subprocess.run([LOCUS_CHECK, str(mixed)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
    assert "3 keys" not in out.stdout and "(1 models)" in out.stdout
    assert "module type 'xyz-types'" in out.stdout
    data = path.read_bytes()
    broken = tmp_path / "broken.rdb"
    broken.write_bytes(data[: len(data) // 2])
    out = subprocess.run([LOCUS_CHECK, str(broken)], capture_output=True, text=True)
    assert out.returncode == 1 and "NOT valid" in out.stdout
