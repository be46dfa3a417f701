"""`maxmemory` counting everything Locus holds (strings and collections, tensors, models with
their ONNX Runtime sessions, client buffers), Redis's OOM error under `noeviction` while reads
and model runs whose outputs fit keep working, eviction under the LRU, LFU, random and TTL
policies (logged to the AOF as DELs), and INFO memory / MEMORY USAGE reporting tensors and
models."""

import time

import numpy as np
import pytest
import redis

from conftest import ServerProcess
from test_models import blob, execute, is_ok, put
from test_routers import scale

OOM = "command not allowed when used memory > 'maxmemory'."


def info_mem(c):
    return c.info("memory")


def used(c):
    """used_memory once ONNX Runtime is loaded: a new server loads it in the background, and
    a baseline read before that would be some megabytes short."""
    deadline = time.time() + 30
    while c.info("ai")["ai_onnxruntime_version"] == "not loaded" and time.time() < deadline:
        time.sleep(0.01)
    return int(info_mem(c)["used_memory"])


def fill_until_oom(c, prefix, size=256 * 1024, limit=4000):
    """SETs values until the server refuses with OOM; returns how many were stored."""
    value = "x" * size
    for i in range(limit):
        try:
            c.set(f"{prefix}{i}", value)
        except redis.ResponseError as e:
            assert str(e) == OOM, e
            return i
    pytest.fail("never reached maxmemory")


@pytest.fixture
def srv():
    s = ServerProcess()
    yield s
    s.stop()


def test_noeviction_refuses_writes_and_keeps_reads_and_fitting_runs(srv):
    c = srv.client()
    assert is_ok(c.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", scale(2)))
    assert is_ok(put(c, "x", np.ones((1, 4), np.float32)))
    c.config_set("maxmemory", used(c) + 8 * 1024 * 1024)
    n = fill_until_oom(c, "k")
    assert n > 10
    # Reads, deletes and metadata still work; writes that may grow memory do not.
    assert len(c.get("k0")) == 256 * 1024
    assert c.execute_command("AI.TENSORGET", "x", "META")
    with pytest.raises(redis.ResponseError, match="used memory > 'maxmemory'"):
        c.execute_command("AI.TENSORSET", "t", "FLOAT", 1, 4, "VALUES", 1, 2, 3, 4)
    with pytest.raises(redis.ResponseError, match="used memory > 'maxmemory'"):
        c.lpush("l", "a")
    # A model run's outputs do not fit while the server is over the limit: nothing is written.
    with pytest.raises(redis.ResponseError, match="used memory > 'maxmemory'"):
        execute(c, "m", ["x"], ["y"])
    assert c.exists("y") == 0
    # MULTI queues nothing over the limit.
    p = c.pipeline(transaction=True)
    p.set("a", "1")
    with pytest.raises(redis.ResponseError):
        p.execute()
    # Freed memory lets writes and runs through again.
    for i in range(n // 2):
        c.delete(f"k{i}")
    time.sleep(0.05)
    assert is_ok(execute(c, "m", ["x"], ["y"]))
    assert [float(v) for v in c.execute_command("AI.TENSORGET", "y", "VALUES")] == [2.0] * 4
    assert c.set("after", "1")
    errors = c.info("errorstats")
    assert errors["errorstat_OOM"]["count"] >= 4


def test_allkeys_lru_keeps_the_hot_keys_under_the_limit(srv):
    c = srv.client()
    c.config_set("maxmemory-policy", "allkeys-lru")
    base = used(c)
    limit = base + 40 * 1024 * 1024
    c.config_set("maxmemory", limit)
    value = "v" * 64 * 1024
    for i in range(20):
        c.set(f"hot{i}", value)
    # Each round writes cold keys, then (a second later: access times have second
    # resolution, as Redis's LRU clock) reads the hot ones, which are then the most recent.
    # The limit holds a few rounds, so older cold keys are always there to go first.
    for r in range(6):
        for i in range(100):
            c.set(f"cold{r}:{i}", value)
        time.sleep(1.1)
        for i in range(20):
            c.get(f"hot{i}")
    assert used(c) <= limit + 2 * 1024 * 1024
    assert int(c.info("stats")["evicted_keys"]) > 50
    hot = sum(c.exists(f"hot{i}") for i in range(20))
    assert hot >= 19, hot
    # The oldest round went first.
    first = sum(c.exists(f"cold0:{i}") for i in range(100))
    last = sum(c.exists(f"cold5:{i}") for i in range(100))
    assert first < last


def test_volatile_ttl_evicts_only_keys_with_an_expiry(srv):
    c = srv.client()
    c.config_set("maxmemory-policy", "volatile-ttl")
    c.config_set("maxmemory", used(c) + 8 * 1024 * 1024)
    value = "v" * 128 * 1024
    for i in range(20):
        c.set(f"keep{i}", value)
    for i in range(200):
        c.set(f"tmp{i}", value, ex=1000 + i)
    assert all(c.exists(f"keep{i}") for i in range(20))
    survivors = [i for i in range(200) if c.exists(f"tmp{i}")]
    assert survivors and len(survivors) < 200
    # The nearest expiries went first.
    assert min(survivors) > 0
    # With no volatile key left, writes are refused.
    n = fill_until_oom(c, "more")
    assert n < 400


def test_allkeys_lfu_and_random_policies_evict(srv):
    c = srv.client()
    value = "v" * 64 * 1024
    for policy in ("allkeys-lfu", "allkeys-random", "volatile-random", "volatile-lru",
                   "volatile-lfu"):
        c.flushall()
        c.config_set("maxmemory", 0)
        c.config_set("maxmemory-policy", policy)
        c.config_set("maxmemory", used(c) + 8 * 1024 * 1024)
        before = int(c.info("stats")["evicted_keys"])
        for i in range(300):
            c.set(f"{policy}:{i}", value, ex=10_000)
        assert int(c.info("stats")["evicted_keys"]) > before, policy
        assert c.dbsize() < 300


def test_evictions_reach_the_aof(tmp_path):
    s = ServerProcess(["--dir", str(tmp_path), "--appendonly", "yes",
                       "--maxmemory-policy", "allkeys-random"])
    try:
        c = s.client()
        c.config_set("maxmemory", used(c) + 6 * 1024 * 1024)
        # Pipelined, so the AOF's buffer grows past the limit between writes to the file:
        # the buffer is not held against maxmemory (eviction could not shrink it).
        p = c.pipeline(transaction=False)
        for i in range(200):
            p.set(f"k{i}", "v" * 64 * 1024)
        assert all(p.execute())
        assert "mem_aof_buffer" in c.info("memory")
        # Eviction may go on in the background while memory is over the limit (as Redis's
        # does): lift the limit before reading what is left.
        c.config_set("maxmemory", 0)
        kept = {k for k in c.keys("k*")}
        assert 0 < len(kept) < 200
    finally:
        s.stop()
    s = ServerProcess(["--dir", str(tmp_path), "--appendonly", "yes"])
    try:
        assert set(s.client().keys("k*")) == kept
    finally:
        s.stop()


def test_info_memory_and_memory_usage_count_tensors_and_models(srv):
    c = srv.client()
    before = info_mem(c)
    arr = np.zeros((1024, 1024, 2), np.float32)  # 8 MiB
    assert is_ok(put(c, "big", arr))
    after = info_mem(c)
    grew = int(after["used_memory_tensors"]) - int(before["used_memory_tensors"])
    assert 8 * 1024 * 1024 <= grew < 9 * 1024 * 1024
    assert int(after["used_memory"]) - int(before["used_memory"]) >= 8 * 1024 * 1024
    assert c.memory_usage("big") >= 8 * 1024 * 1024
    model = blob("fraud.onnx")
    assert is_ok(c.execute_command("AI.MODELSTORE", "fr", "ONNX", "CPU", "BLOB", model))
    m = info_mem(c)
    assert int(m["used_memory_models"]) >= 2 * len(model)
    assert int(m["used_memory_native"]) > 0
    assert c.memory_usage("fr") >= 2 * len(model)
    c.delete("big", "fr")
    time.sleep(0.3)
    end = info_mem(c)
    assert int(end["used_memory_tensors"]) <= int(before["used_memory_tensors"]) + 64 * 1024
    assert int(end["used_memory_models"]) == 0


def test_eviction_under_many_writers_and_flushall(srv):
    """Eight clients writing past maxmemory under allkeys-lru while another flushes every
    database over and over: every write succeeds (eviction makes room), the server stays up
    and under its limit once the writers stop."""
    import threading

    c = srv.client()
    c.config_set("maxmemory-policy", "allkeys-lru")
    c.config_set("maxmemory", used(c) + 8 * 1024 * 1024)
    errors, stop = [], threading.Event()
    value = "v" * 32 * 1024

    def writer(n):
        w = srv.client()
        try:
            for i in range(400):
                w.set(f"w{n}:{i}", value)
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            errors.append(repr(e))

    def flusher():
        f = srv.client()
        while not stop.is_set():
            f.flushall()
            time.sleep(0.05)

    fl = threading.Thread(target=flusher)
    fl.start()
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    fl.join()
    assert errors == []
    mem = info_mem(c)
    limit = int(mem["maxmemory"])
    counted = int(mem["used_memory"]) - int(mem.get("mem_not_counted_for_evict", 0))
    assert counted <= limit + 1024 * 1024, (counted, limit)
    assert c.ping()


def test_scripts_over_maxmemory(srv):
    """As Redis 7.0: over maxmemory, a command that may grow memory called from a script is
    refused with OOM (redis.pcall gets the error as a table), reads still run, a script that
    declares it may write without allow-oom does not start, and one declaring allow-oom runs."""
    c = srv.client()
    c.set("r", "1")
    c.config_set("maxmemory", 1)
    try:
        with pytest.raises(redis.ResponseError, match=OOM):
            c.eval("return redis.call('set','x','y')", 1, "x")
        assert c.eval("local t = redis.pcall('set','x','y') return t['err']", 1, "x") == \
            "OOM " + OOM
        assert c.eval("return redis.call('get','r')", 1, "r") == "1"
        with pytest.raises(redis.ResponseError, match="allow-oom flag is not set on the script"):
            c.eval("#!lua\nreturn 1", 0)
        assert c.eval("#!lua flags=no-writes\nreturn redis.call('get','r')", 1, "r") == "1"
        assert c.eval("#!lua flags=allow-oom\nreturn redis.call('set','x','y')", 1, "x") == "OK"
    finally:
        c.config_set("maxmemory", 0)
    assert not c.exists("nothing")

