"""Server commands: DBSIZE, FLUSH*, INFO, TIME, SLOWLOG, MONITOR, CONFIG, COMMAND, LATENCY,
and the generic error replies."""

import re
import socket
import time

import pytest
import redis

from conftest import ErrorReply, RawConn, encode_command, free_port

NOT_INT = "value is not an integer or out of range"


def err_text(excinfo):
    return str(excinfo.value)


def expect_error(fn, *args, text=None, **kw):
    with pytest.raises(redis.ResponseError) as e:
        fn(*args, **kw)
    if text is not None:
        assert err_text(e) == text
    return err_text(e)


def info_text(c, *sections):
    """The raw INFO payload as text (RESP2 bulk string)."""
    rep = c.cmd("INFO", *sections)
    assert isinstance(rep, bytes), rep
    return rep.decode()


def parse_info_text(text):
    out = {}
    section = None
    for line in text.split("\r\n"):
        if not line:
            continue
        if line.startswith("# "):
            section = line[2:]
            out.setdefault(section, {})
            continue
        assert ":" in line, f"INFO line without a colon: {line!r}"
        k, v = line.split(":", 1)
        out[section][k] = v
    return out


# ---------------------------------------------------------------- DBSIZE / FLUSH


def test_dbsize(r):
    assert r.dbsize() == 0
    r.mset({"a": 1, "b": 2})
    assert r.dbsize() == 2
    r.delete("a")
    assert r.dbsize() == 1
    expect_error(r.execute_command, "DBSIZE", "x", text="wrong number of arguments for 'dbsize' command")


def test_flushdb_only_current_db(r, server_port):
    r.set("a", 1)
    other = redis.Redis(port=server_port, db=1, decode_responses=True)
    other.set("b", 1)
    assert r.flushdb() is True
    assert r.dbsize() == 0
    assert other.dbsize() == 1
    assert other.flushdb(asynchronous=True) is True
    assert other.dbsize() == 0
    r.set("c", 1)
    assert r.execute_command("FLUSHDB", "SYNC")
    assert r.dbsize() == 0
    other.close()


def test_flushall(r, server_port):
    r.set("a", 1)
    other = redis.Redis(port=server_port, db=5, decode_responses=True)
    other.set("b", 1)
    assert r.flushall() is True
    assert other.dbsize() == 0
    other.close()


def test_flushall_async(r, server_port):
    pipe = r.pipeline(transaction=False)
    for i in range(1000):
        pipe.set(f"k{i}", i)
    pipe.execute()
    assert r.flushall(asynchronous=True) is True
    assert r.dbsize() == 0
    assert r.execute_command("FLUSHALL", "SYNC")


def test_flush_syntax_error(r):
    expect_error(r.execute_command, "FLUSHALL", "bogus", text="syntax error")
    expect_error(r.execute_command, "FLUSHDB", "bogus", text="syntax error")


def test_flush_conflicting_options(r):
    r.set("keep", "1")
    expect_error(r.execute_command, "FLUSHALL", "SYNC", "ASYNC", text="syntax error")
    expect_error(r.execute_command, "FLUSHDB", "ASYNC", "SYNC", text="syntax error")
    assert r.get("keep") == "1"


# ---------------------------------------------------------------- INFO


def test_info_default_sections(raw):
    c = raw()
    text = info_text(c)
    sections = [l[2:] for l in text.split("\r\n") if l.startswith("# ")]
    for s in ("Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "CPU", "Keyspace"):
        assert s in sections, s
    assert "Commandstats" not in sections
    assert text.endswith("\r\n")
    # Every non-header line is key:value.
    parse_info_text(text)


def test_info_everything_includes_commandstats(raw):
    c = raw()
    c.cmd("PING")
    for arg in ("everything", "all"):
        sections = parse_info_text(info_text(c, arg))
        assert "Commandstats" in sections, arg
        assert "Server" in sections


def test_info_server(r):
    info = r.info("server")
    missing = [f for f in (
        "redis_version",
        "redis_mode",
        "os",
        "arch_bits",
        "multiplexing_api",
        "process_id",
        "run_id",
        "tcp_port",
        "uptime_in_seconds",
        "uptime_in_days",
        "hz",
        "configured_hz",
        "executable",
        "config_file",
    ) if f not in info]
    assert missing == []
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(info["redis_version"]))
    assert info["redis_mode"] == "standalone"
    assert info["tcp_port"] == r.connection_pool.connection_kwargs["port"]
    assert re.fullmatch(r"[0-9a-f]{40}", info["run_id"])
    assert info["arch_bits"] == 64


def test_info_server_raw_format(raw, server):
    c = raw()
    text = info_text(c, "server")
    assert text.startswith("# Server\r\n")
    assert f"\r\ntcp_port:{server.port}\r\n" in text
    assert f"\r\nprocess_id:{server.proc.pid}\r\n" in text
    lines = text.split("\r\n")
    assert lines[-1] == ""
    for line in lines[1:-1]:
        if line:
            assert re.fullmatch(r"[a-z0-9_]+:[^\r\n]*", line), line


def test_info_clients(r, server_port):
    others = [redis.Redis(port=server_port) for _ in range(3)]
    for o in others:
        o.ping()
    info = r.info("clients")
    missing = [f for f in ("connected_clients", "blocked_clients", "maxclients") if f not in info]
    assert missing == []
    assert info["connected_clients"] >= 4
    assert info["maxclients"] == 10000
    for o in others:
        o.close()


def test_info_memory(r):
    info = r.info("memory")
    missing = [f for f in (
        "used_memory",
        "used_memory_human",
        "used_memory_rss",
        "used_memory_peak",
        "used_memory_peak_human",
        "maxmemory",
        "maxmemory_human",
        "maxmemory_policy",
        "mem_fragmentation_ratio",
        "mem_allocator",
    ) if f not in info]
    assert missing == []
    assert info["used_memory"] > 0
    assert info["maxmemory_policy"] == "noeviction"


def test_info_memory_grows(r):
    before = r.info("memory")["used_memory"]
    r.set("big", "x" * (8 << 20))
    after = r.info("memory")["used_memory"]
    assert after - before >= 7 << 20


def test_info_stats(r):
    info = r.info("stats")
    missing = [f for f in (
        "total_connections_received",
        "total_commands_processed",
        "instantaneous_ops_per_sec",
        "total_net_input_bytes",
        "total_net_output_bytes",
        "rejected_connections",
        "expired_keys",
        "evicted_keys",
        "keyspace_hits",
        "keyspace_misses",
        "total_error_replies",
    ) if f not in info]
    assert missing == []


def test_info_stats_counters(r):
    s0 = r.info("stats")
    r.set("k", "v")
    r.get("k")
    r.get("k")
    r.get("missing")
    with pytest.raises(redis.ResponseError):
        r.incr("k")
    s1 = r.info("stats")
    assert s1["keyspace_hits"] - s0["keyspace_hits"] == 2
    assert s1["keyspace_misses"] - s0["keyspace_misses"] == 1
    assert s1["total_commands_processed"] - s0["total_commands_processed"] >= 6
    assert s1["total_error_replies"] - s0["total_error_replies"] == 1


def test_info_stats_expired_keys(r):
    s0 = r.info("stats")["expired_keys"]
    r.set("e", "v", px=10)
    time.sleep(0.05)
    assert r.get("e") is None
    assert r.info("stats")["expired_keys"] - s0 == 1


def test_info_keyspace(r, server_port):
    r.mset({"a": 1, "b": 2, "c": 3})
    r.expire("a", 100)
    other = redis.Redis(port=server_port, db=3)
    other.set("x", 1)
    info = r.info("keyspace")
    assert info["db0"]["keys"] == 3
    assert info["db0"]["expires"] == 1
    # Redis estimates avg_ttl from samples in its cron, so 0 is allowed right after the EXPIRE.
    assert 0 <= info["db0"]["avg_ttl"] <= 100000
    assert info["db3"] == {"keys": 1, "expires": 0, "avg_ttl": 0}
    assert "db1" not in info
    other.close()


def test_info_keyspace_raw(raw):
    c = raw()
    c.cmd("FLUSHALL")
    c.cmd("SET", "a", "1")
    text = info_text(c, "keyspace")
    assert text == "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n"
    c.cmd("FLUSHALL")
    assert info_text(c, "keyspace") == "# Keyspace\r\n"


def test_info_commandstats(r):
    r.config_resetstat()
    r.set("a", 1)
    r.set("b", 2)
    r.get("a")
    info = r.info("commandstats")
    assert info["cmdstat_set"]["calls"] == 2
    assert info["cmdstat_get"]["calls"] == 1
    for field in ("usec", "usec_per_call", "rejected_calls", "failed_calls"):
        assert field in info["cmdstat_set"], field


def test_info_commandstats_raw_format(raw):
    c = raw()
    c.cmd("CONFIG", "RESETSTAT")
    c.cmd("SET", "a", "1")
    c.cmd("CLIENT", "ID")
    text = info_text(c, "commandstats")
    assert text.startswith("# Commandstats\r\n")
    assert re.search(
        r"\r\ncmdstat_set:calls=1,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=0,failed_calls=0\r\n",
        text,
    )
    assert re.search(r"\r\ncmdstat_client\|id:calls=1,", text)


def test_info_commandstats_failed_and_rejected(raw):
    c = raw()
    c.cmd("CONFIG", "RESETSTAT")
    c.cmd("SET", "s", "abc")
    assert isinstance(c.cmd("INCR", "s"), ErrorReply)  # fails while executing
    assert isinstance(c.cmd("GET"), ErrorReply)  # rejected: wrong arity
    sections = parse_info_text(info_text(c, "commandstats"))["Commandstats"]
    assert "failed_calls=1" in sections["cmdstat_incr"]
    assert "calls=1," in sections["cmdstat_incr"]
    assert sections["cmdstat_get"].startswith("calls=0,")
    assert "rejected_calls=1" in sections["cmdstat_get"]


def test_info_errorstats(raw):
    c = raw()
    c.cmd("CONFIG", "RESETSTAT")
    c.cmd("SET", "s", "abc")
    c.cmd("INCR", "s")
    c.cmd("NOSUCHCOMMAND")
    text = info_text(c, "errorstats")
    assert text == "# Errorstats\r\nerrorstat_ERR:count=2\r\n"


def test_info_multiple_sections(raw):
    c = raw()
    sections = parse_info_text(info_text(c, "server", "clients"))
    assert list(sections) == ["Server", "Clients"]


def test_info_unknown_section_is_empty(raw):
    c = raw()
    assert c.cmd("INFO", "bogus") == b""


def test_info_resp3_is_verbatim(raw):
    c = raw()
    c.cmd("HELLO", "3")
    c.send(encode_command("INFO", "server"))
    first = c.readline()
    assert first.startswith(b"=")
    body = c.readexact(int(first[1:]) + 2)[:-2]
    assert body.startswith(b"txt:# Server\r\n")


def test_info_redis_py_both_protocols(r):
    info = r.info()
    assert "redis_version" in info
    assert "connected_clients" in info
    assert "used_memory" in info


# ---------------------------------------------------------------- TIME


def test_time(r):
    secs, usecs = r.time()
    assert abs(secs + usecs / 1e6 - time.time()) < 2
    assert 0 <= usecs < 1_000_000


def test_time_raw(raw):
    c = raw()
    rep = c.cmd("TIME")
    assert isinstance(rep, list) and len(rep) == 2
    assert all(isinstance(x, bytes) and x.isdigit() for x in rep)


# ---------------------------------------------------------------- SLOWLOG


@pytest.fixture
def slowlog_all(r2):
    r2.config_set("slowlog-log-slower-than", 0)
    r2.slowlog_reset()
    yield r2
    r2.config_set("slowlog-log-slower-than", 10000)
    r2.slowlog_reset()


def test_slowlog(slowlog_all, r):
    r.client_setname("slowclient")
    r.set("slowkey", "slowvalue")
    entries = r.slowlog_get()
    assert len(entries) >= 1
    cmds = [e["command"].decode() if isinstance(e["command"], bytes) else e["command"] for e in entries]
    assert "SET slowkey slowvalue" in cmds
    e = entries[cmds.index("SET slowkey slowvalue")]
    assert e["duration"] >= 0
    assert abs(e["start_time"] - time.time()) < 5
    assert e["client_name"] in ("slowclient", b"slowclient")
    addr = e["client_address"]
    assert (addr.decode() if isinstance(addr, bytes) else addr).startswith("127.0.0.1:")
    assert r.slowlog_len() >= 2
    assert r.slowlog_reset() is True
    # The RESET itself is logged once the reset is done.
    assert r.slowlog_len() <= 1


def test_slowlog_raw_entry_shape(slowlog_all, raw):
    c = raw()
    c.cmd("SET", "a", "b")
    rep = c.cmd("SLOWLOG", "GET", "1")
    assert len(rep) == 1
    entry = rep[0]
    assert len(entry) == 6
    eid, ts, dur, args, addr, name = entry
    assert isinstance(eid, int) and isinstance(ts, int) and isinstance(dur, int)
    assert args == [b"SET", b"a", b"b"]
    assert addr.startswith(b"127.0.0.1:")
    assert name == b""


def test_slowlog_ids_increase_and_count(slowlog_all, raw):
    c = raw()
    for i in range(5):
        c.cmd("SET", f"k{i}", "v")
    rep = c.cmd("SLOWLOG", "GET", "3")
    assert len(rep) == 3
    ids = [e[0] for e in rep]
    assert ids == sorted(ids, reverse=True)
    assert rep[0][3][:1] == [b"SET"] or rep[0][3][:1] == [b"SLOWLOG"]
    assert len(c.cmd("SLOWLOG", "GET", "-1")) >= 6


def test_slowlog_long_args_truncated(slowlog_all, raw):
    c = raw()
    c.cmd("SET", "k", "x" * 200)
    args = c.cmd("SLOWLOG", "GET", "1")[0][3]
    assert args[0] == b"SET"
    assert args[2] == b"x" * 128 + b"... (72 more bytes)"
    many = ["x"] * 40
    c.cmd("DEL", *many)
    args = c.cmd("SLOWLOG", "GET", "1")[0][3]
    assert len(args) == 32
    assert args[-1] == b"... (10 more arguments)"


def test_slowlog_max_len(slowlog_all, r):
    r.config_set("slowlog-max-len", 3)
    try:
        for i in range(10):
            r.set(f"k{i}", i)
        assert r.slowlog_len() == 3
    finally:
        r.config_set("slowlog-max-len", 128)


def test_slowlog_errors(r):
    expect_error(
        r.execute_command, "SLOWLOG", "GET", "-5", text="count should be greater than or equal to -1"
    )
    expect_error(
        r.execute_command, "SLOWLOG", "GET", "abc", text="count should be greater than or equal to -1"
    )
    expect_error(
        r.execute_command, "SLOWLOG", "foo", text="unknown subcommand 'foo'. Try SLOWLOG HELP."
    )


def test_slowlog_not_logged_below_threshold(r):
    r.slowlog_reset()
    r.set("fast", 1)
    assert all("fast" not in e["command"] for e in r.slowlog_get())


# ---------------------------------------------------------------- MONITOR


def test_monitor_raw(raw, server_port):
    mon = raw()
    assert mon.cmd("MONITOR") == "OK"
    other = redis.Redis(port=server_port, db=2)
    other.set("monkey", "val ue")
    line = b""
    deadline = time.time() + 3
    seen = []
    while time.time() < deadline:
        line = mon.readline()
        seen.append(line)
        if b'"monkey"' in line:
            break
    assert re.fullmatch(
        rb'\+\d+\.\d{6} \[2 127\.0\.0\.1:\d+\] "SET" "monkey" "val ue"', line
    ), seen
    other.close()


def test_monitor_redis_py(r, server_port):
    other = redis.Redis(port=server_port, decode_responses=True)
    with r.monitor() as m:
        other.get("watched-key")
        for _ in range(20):
            cmd = m.next_command()
            if "watched-key" in cmd["command"]:
                break
        assert cmd["command"] == "GET watched-key"
        assert cmd["db"] == 0
        assert cmd["client_type"] == "tcp"
        assert abs(cmd["time"] - time.time()) < 5
    other.close()


def test_monitor_escapes_binary(raw, server_port):
    mon = raw()
    assert mon.cmd("MONITOR") == "OK"
    c = raw()
    c.cmd("SET", b"bin\x00\r\n\"", "v")
    deadline = time.time() + 3
    while time.time() < deadline:
        line = mon.readline()
        if b'"bin' in line:
            break
    assert line.endswith(b'"SET" "bin\\x00\\r\\n\\"" "v"')


def test_monitor_hides_auth(spawn):
    srv = spawn("--requirepass", "pw", password="pw")
    mon = RawConn(srv.port)
    c = RawConn(srv.port)
    try:
        assert mon.cmd("AUTH", "pw") == "OK"
        assert mon.cmd("MONITOR") == "OK"
        assert c.cmd("AUTH", "pw") == "OK"
        c.cmd("SET", "after", "auth")
        lines = [mon.readline()]
        while b'"SET"' not in lines[-1]:
            lines.append(mon.readline())
        assert all(b"pw" not in l for l in lines), lines
        assert lines[-1].endswith(b'"SET" "after" "auth"'), lines
    finally:
        mon.close()
        c.close()


def test_monitor_shows_redacted_auth(spawn):
    srv = spawn("--requirepass", "pw", password="pw")
    mon = RawConn(srv.port)
    c = RawConn(srv.port)
    try:
        assert mon.cmd("AUTH", "pw") == "OK"
        assert mon.cmd("MONITOR") == "OK"
        assert c.cmd("AUTH", "pw") == "OK"
        c.cmd("SET", "after", "auth")
        line = mon.readline()
        assert line.endswith(b'"AUTH" "(redacted)"'), line
    finally:
        mon.close()
        c.close()


# ---------------------------------------------------------------- CONFIG


def test_config_get_glob(r):
    cfg = r.config_get("slowlog*")
    assert cfg == {"slowlog-log-slower-than": "10000", "slowlog-max-len": "128"}
    cfg = r.config_get("*")
    assert len(cfg) > 10
    for name in ("port", "databases", "maxmemory", "maxmemory-policy", "timeout", "requirepass", "save"):
        assert name in cfg, name
    assert r.config_get("nosuchparam") == {}
    assert r.config_get("max*") == {k: v for k, v in cfg.items() if k.startswith("max")}
    assert r.config_get("databas?") == {}
    assert r.config_get("databa?es") == {"databases": "16"}
    assert set(r.config_get("[pt]ort")) == {"port"}


def test_config_get_multiple(r, server_port):
    cfg = r.execute_command("CONFIG GET", "port", "databases", "nosuch")
    assert cfg == {"port": str(server_port), "databases": "16"}


def test_config_get_raw_shapes(raw, server_port):
    c = raw()
    assert c.cmd("CONFIG", "GET", "port") == [b"port", str(server_port).encode()]
    c.cmd("HELLO", "3")
    c.send(encode_command("CONFIG", "GET", "port"))
    assert c.readline() == b"%1"
    assert c.read() == b"port"
    assert c.read() == str(server_port).encode()


def test_config_get_arity(r):
    expect_error(
        r.execute_command, "CONFIG", "GET", text="wrong number of arguments for 'config|get' command"
    )


def test_config_set_get_roundtrip(r):
    try:
        assert r.config_set("maxmemory", "100mb") is True
        assert r.config_get("maxmemory") == {"maxmemory": "104857600"}
        assert r.config_set("maxmemory-policy", "ALLKEYS-LRU")
        assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
        assert r.config_set("timeout", 300)
        assert r.config_get("timeout") == {"timeout": "300"}
        assert r.config_set("hz", 20)
        assert r.info("server")["hz"] == 20
        assert r.info("memory")["maxmemory"] == 104857600
    finally:
        r.config_set("maxmemory", 0)
        r.config_set("maxmemory-policy", "noeviction")
        r.config_set("timeout", 0)
        r.config_set("hz", 10)


def test_busy_poll_setting_and_many_clients(r, server_port):
    """busy-poll-us is a run-time setting; with polling on or off, many clients at once each
    get their own replies."""
    import threading
    import redis as redis_py

    assert r.config_get("busy-poll-us") == {"busy-poll-us": "20"}
    try:
        for value in ("0", "200"):
            assert r.config_set("busy-poll-us", value) is True
            assert r.config_get("busy-poll-us") == {"busy-poll-us": value}
            errors = []

            def client(i):
                c = redis_py.Redis(port=server_port)
                try:
                    for j in range(200):
                        c.set(f"bp:{i}", j)
                        if c.get(f"bp:{i}") != str(j).encode():
                            errors.append((i, j))
                finally:
                    c.delete(f"bp:{i}")
                    c.close()

            threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == []
        with pytest.raises(redis_py.ResponseError):
            r.config_set("busy-poll-us", "-1")
    finally:
        r.config_set("busy-poll-us", "20")


def test_config_set_multiple(r):
    try:
        assert r.execute_command("CONFIG", "SET", "maxmemory", "1mb", "hz", "15")
        assert r.config_get("maxmemory") == {"maxmemory": "1048576"}
        assert r.config_get("hz") == {"hz": "15"}
        # All or nothing: one bad value means none of them are applied.
        expect_error(r.execute_command, "CONFIG", "SET", "maxmemory", "2mb", "hz", "abc")
        assert r.config_get("maxmemory") == {"maxmemory": "1048576"}
    finally:
        r.config_set("maxmemory", 0)
        r.config_set("hz", 10)


def test_config_set_duplicate_param(r):
    expect_error(
        r.execute_command,
        "CONFIG",
        "SET",
        "hz",
        "10",
        "hz",
        "11",
        text="CONFIG SET failed (possibly related to argument 'hz') - duplicate parameter",
    )


def test_config_set_immutable(r):
    expect_error(
        r.config_set,
        "databases",
        3,
        text="CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config",
    )
    expect_error(
        r.config_set,
        "daemonize",
        "yes",
        text="CONFIG SET failed (possibly related to argument 'daemonize') - can't set immutable config",
    )


def test_config_set_errors(r):
    expect_error(
        r.config_set,
        "hz",
        "abc",
        text="CONFIG SET failed (possibly related to argument 'hz') - argument couldn't be parsed into an integer",
    )
    expect_error(
        r.config_set,
        "nosuchparam",
        "1",
        text="Unknown option or number of arguments for CONFIG SET - 'nosuchparam'",
    )
    expect_error(
        r.config_set,
        "appendonly",
        "maybe",
        text="CONFIG SET failed (possibly related to argument 'appendonly') - argument must be 'yes' or 'no'",
    )
    expect_error(
        r.execute_command,
        "CONFIG",
        "SET",
        "hz",
        text="wrong number of arguments for 'config|set' command",
    )


def test_config_set_enum_error_lists_redis_order(r):
    expect_error(
        r.config_set,
        "maxmemory-policy",
        "foo",
        text="CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be "
        "one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, "
        "allkeys-lru, allkeys-lfu, allkeys-random, noeviction",
    )


def test_config_set_port_is_mutable(spawn):
    srv = spawn()
    c = srv.client()

    new_port = free_port()
    assert c.config_set("port", new_port) is True
    c2 = redis.Redis(port=new_port, decode_responses=True)
    assert c2.ping()
    assert c2.config_get("port") == {"port": str(new_port)}
    c2.close()
    srv.port = new_port  # so the fixture's SHUTDOWN reaches it


def test_config_set_port_that_is_taken_keeps_the_old_one(spawn):
    srv = spawn()
    c = srv.client()
    c.ping()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        expect_error(
            c.config_set,
            "port",
            busy,
            text="CONFIG SET failed (possibly related to argument 'port') - Unable to listen on this port",
        )
    assert c.config_get("port") == {"port": str(srv.port)}
    # The connected client and new clients on the old port are served as before.
    assert c.ping()
    fresh = redis.Redis(port=srv.port)
    assert fresh.ping()
    fresh.close()


def test_config_resetstat(r):
    r.set("a", 1)
    r.get("a")
    r.get("missing")
    assert r.config_resetstat() is True
    stats = r.info("stats")
    assert stats["keyspace_hits"] == 0
    assert stats["keyspace_misses"] == 0
    assert stats["total_commands_processed"] <= 2
    cs = r.info("commandstats")
    assert "cmdstat_set" not in cs
    assert "cmdstat_get" not in cs


def test_config_rewrite_without_file(r):
    expect_error(r.config_rewrite, text="The server is running without a config file")


def test_config_rewrite(spawn, tmp_path):
    conf = tmp_path / "test.conf"
    conf.write_text(
        "# a comment that must survive\n"
        "hz 10\n"
        "maxmemory-policy noeviction\n"
        "timeout 0\n"
    )
    before = conf.read_text()
    srv = spawn(config_file=str(conf))
    c = srv.client()
    assert c.info("server")["config_file"] == str(conf)
    assert c.config_get("hz") == {"hz": "10"}
    assert c.config_set("hz", 25)
    assert c.config_set("maxmemory", "1mb")
    assert c.config_set("maxmemory-policy", "allkeys-lru")
    assert c.config_rewrite() in (True, "OK")
    after = conf.read_text()
    assert after != before
    lines = after.splitlines()
    assert "# a comment that must survive" in lines
    assert "hz 25" in lines
    assert "hz 10" not in lines
    assert "maxmemory-policy allkeys-lru" in lines
    assert len([l for l in lines if l.startswith("maxmemory ")]) == 1
    # Redis keeps the order of the lines that were already there.
    assert lines.index("hz 25") < lines.index("maxmemory-policy allkeys-lru")
    # The file is loadable: a new server started from it sees the rewritten values.
    srv2 = spawn(config_file=str(conf))
    c2 = srv2.client()
    assert c2.config_get("hz") == {"hz": "25"}
    assert c2.config_get("maxmemory") == {"maxmemory": "1048576"}
    assert c2.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    c.close()
    c2.close()


def test_config_rewrite_memory_units(spawn, tmp_path):
    """Redis writes memory sizes back with units when they divide evenly."""
    conf = tmp_path / "m.conf"
    conf.write_text("hz 10\n")
    srv = spawn(config_file=str(conf))
    c = srv.client()
    assert c.config_set("maxmemory", "1mb")
    assert c.config_rewrite() in (True, "OK")
    assert "maxmemory 1mb" in conf.read_text().splitlines()
    c.close()


def test_config_file_and_overrides(spawn, tmp_path):
    conf = tmp_path / "o.conf"
    conf.write_text('hz 30\nrequirepass "from file"\nslowlog-max-len 5\n')
    srv = spawn("--slowlog-max-len", "7", config_file=str(conf), password="from file")
    c = srv.client()
    assert c.config_get("hz") == {"hz": "30"}
    assert c.config_get("slowlog-max-len") == {"slowlog-max-len": "7"}
    assert c.config_get("requirepass") == {"requirepass": "from file"}
    c.close()


def test_config_help_and_unknown(r):
    lines = r.execute_command("CONFIG", "HELP")
    assert lines[0].startswith("CONFIG <subcommand>")
    expect_error(
        r.execute_command, "CONFIG", "foo", text="unknown subcommand 'foo'. Try CONFIG HELP."
    )


# ---------------------------------------------------------------- COMMAND


def test_command_count(r):
    n = r.execute_command("COMMAND COUNT")
    assert isinstance(n, int) and n > 0
    assert n == len(r.command())


def test_command_all(r):
    cmds = r.command()
    assert "get" in cmds and "set" in cmds and "client" in cmds
    get = cmds["get"]
    assert get["arity"] == 2
    assert "readonly" in get["flags"]
    assert get["first_key_pos"] == 1 and get["last_key_pos"] == 1 and get["step_count"] == 1


def test_command_info_get(r):
    rep = r.execute_command("COMMAND INFO", "get", "nosuchcmd", "client|id")
    assert len(rep) == 3
    get = rep[0]
    assert len(get) == 10
    name, arity, flags, first, last, step, cats, tips, specs, subs = get
    assert name == "get"
    assert arity == 2
    assert set(flags) == {"readonly", "fast"}
    assert (first, last, step) == (1, 1, 1)
    assert set(cats) == {"@read", "@string", "@fast"}
    assert tips == []
    assert subs == []
    assert rep[1] is None
    assert rep[2][0] == "client|id"


def test_command_info_key_specs(raw):
    """Key specs use Redis's field names: begin_search index / find_keys keystep, lower-case
    `access` flag."""
    c = raw()
    rep = c.cmd("COMMAND", "INFO", "get")
    spec = rep[0][8][0]
    d = dict(zip(spec[::2], spec[1::2]))
    assert d[b"flags"] == ["RO", "access"]
    bs = dict(zip(d[b"begin_search"][::2], d[b"begin_search"][1::2]))
    assert bs[b"type"] == b"index"
    assert bs[b"spec"] == [b"index", 1]
    fk = dict(zip(d[b"find_keys"][::2], d[b"find_keys"][1::2]))
    assert fk[b"type"] == b"range"
    assert fk[b"spec"] == [b"lastkey", 0, b"keystep", 1, b"limit", 0]


def test_command_info_resp3_types(raw):
    c = raw()
    c.cmd("HELLO", "3")
    c.send(encode_command("COMMAND", "INFO", "get"))
    time.sleep(0.2)
    c._fill()
    data = c.buf
    # flags, ACL categories, tips and key specs are sets in RESP3.
    assert b"~2\r\n+readonly\r\n+fast\r\n" in data
    assert b"~3\r\n+@read\r\n+@string\r\n+@fast\r\n~0\r\n~1\r\n%3\r\n$5\r\nflags\r\n~2\r\n+RO\r\n+access\r\n" in data


def test_command_docs_resp2(r2):
    rep = r2.execute_command("COMMAND DOCS", "get")
    assert isinstance(rep, list) and rep[0] == "get"
    doc = dict(zip(rep[1][::2], rep[1][1::2]))
    assert doc["summary"] == "Get the value of a key"
    assert doc["since"] == "1.0.0"
    assert doc["group"] == "string"
    assert doc["complexity"] == "O(1)"
    arg = dict(zip(doc["arguments"][0][::2], doc["arguments"][0][1::2]))
    assert arg == {"name": "key", "type": "key", "key_spec_index": 0}


def test_command_docs_resp3(r3):
    rep = r3.execute_command("COMMAND DOCS", "get", "set")
    assert isinstance(rep, dict)
    assert set(rep) == {"get", "set"}
    assert rep["get"]["summary"] == "Get the value of a key"
    assert rep["get"]["arguments"] == [{"name": "key", "type": "key", "key_spec_index": 0}]
    set_args = [a["name"] for a in rep["set"]["arguments"]]
    assert set_args[:2] == ["key", "value"]
    assert "history" in rep["set"]


def test_command_docs_subcommands(r3):
    rep = r3.execute_command("COMMAND DOCS", "client")
    assert "subcommands" in rep["client"]
    assert "client|kill" in rep["client"]["subcommands"]
    assert r3.execute_command("COMMAND DOCS", "nosuchcmd") == {}


def test_command_docs_all(r3):
    rep = r3.execute_command("COMMAND DOCS")
    assert len(rep) == r3.execute_command("COMMAND COUNT")


def test_command_list(r):
    names = r.execute_command("COMMAND LIST")
    assert "get" in names and "set" in names and "client|kill" in names
    assert r.execute_command("COMMAND LIST", "FILTERBY", "PATTERN", "getd*") == ["getdel"]
    ks = r.execute_command("COMMAND LIST", "FILTERBY", "ACLCAT", "keyspace")
    assert "del" in ks and "get" not in ks
    assert r.execute_command("COMMAND LIST", "FILTERBY", "MODULE", "nosuchmodule") == []


def test_command_getkeys(r):
    assert r.execute_command("COMMAND GETKEYS", "set", "k", "v") == ["k"]
    assert r.execute_command("COMMAND GETKEYS", "mset", "a", "1", "b", "2") == ["a", "b"]
    assert r.execute_command("COMMAND GETKEYS", "copy", "a", "b") == ["a", "b"]
    assert r.execute_command("COMMAND GETKEYS", "del", "x", "y", "z") == ["x", "y", "z"]
    expect_error(
        r.execute_command, "COMMAND", "GETKEYS", "ping", "x", text="The command has no key arguments"
    )
    expect_error(r.execute_command, "COMMAND", "GETKEYS", "nosuch", "x", text="Invalid command specified")
    expect_error(
        r.execute_command,
        "COMMAND",
        "GETKEYS",
        "get",
        "a",
        "b",
        text="Invalid number of arguments specified for command",
    )


def test_command_unknown_subcommand(r):
    expect_error(
        r.execute_command, "COMMAND", "FOO", text="unknown subcommand 'FOO'. Try COMMAND HELP."
    )


# ---------------------------------------------------------------- LATENCY


def test_latency_doctor_disabled(r):
    text = r.execute_command("LATENCY", "DOCTOR")
    assert isinstance(text, str)
    assert text.startswith(
        "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance."
    )


def test_latency_doctor_says_monitoring_is_off_even_when_threshold_set(r):
    """Locus records no latency events, so it never claims to have watched for spikes: it gives
    Redis's "monitoring is disabled" answer whatever latency-monitor-threshold says."""
    r.config_set("latency-monitor-threshold", 100)
    try:
        text = r.execute_command("LATENCY", "DOCTOR")
        assert text.startswith(
            "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance."
        )
    finally:
        r.config_set("latency-monitor-threshold", 0)


def test_latency_doctor_resp3_verbatim(raw):
    c = raw()
    c.cmd("HELLO", "3")
    c.send(encode_command("LATENCY", "DOCTOR"))
    first = c.readline()
    assert first.startswith(b"=")
    assert c.readexact(4) == b"txt:"


def test_latency_other_subcommands(r):
    assert r.execute_command("LATENCY", "LATEST") == []
    assert r.execute_command("LATENCY", "HISTORY", "command") == []
    assert r.execute_command("LATENCY", "RESET") == 0
    assert isinstance(r.execute_command("LATENCY", "HELP"), list)


# ---------------------------------------------------------------- errors


def test_unknown_command_text(raw):
    c = raw()
    rep = c.cmd("foo", "bar")
    assert str(rep) == "ERR unknown command 'foo', with args beginning with: 'bar' "
    rep = c.cmd("foo")
    assert str(rep) == "ERR unknown command 'foo', with args beginning with: "
    rep = c.cmd("foo", "a", "b")
    assert str(rep) == "ERR unknown command 'foo', with args beginning with: 'a' 'b' "


def test_unknown_command_redis_py(r):
    expect_error(
        r.execute_command, "foo", "bar", text="unknown command 'foo', with args beginning with: 'bar' "
    )


def test_unknown_command_long_args_truncated(raw):
    c = raw()
    rep = str(c.cmd("foo", "x" * 200))
    assert rep == "ERR unknown command 'foo', with args beginning with: '" + "x" * 128 + "' "


def test_wrong_arity(r):
    expect_error(r.execute_command, "GET", text="wrong number of arguments for 'get' command")
    expect_error(r.execute_command, "get", "a", "b", text="wrong number of arguments for 'get' command")
    expect_error(r.execute_command, "SET", "a", text="wrong number of arguments for 'set' command")


def test_unknown_subcommand(r):
    expect_error(
        r.execute_command, "CLIENT", "foo", text="unknown subcommand 'foo'. Try CLIENT HELP."
    )
    expect_error(
        r.execute_command, "OBJECT", "foo", "x", text="unknown subcommand 'foo'. Try OBJECT HELP."
    )


def test_command_names_case_insensitive(r):
    assert r.execute_command("sEt", "k", "v")
    assert r.execute_command("GeT", "k") == "v"
    assert r.execute_command("client", "ID") == r.client_id()


def test_memory_usage(r):
    r.set("k", "x" * 1000)
    assert r.memory_usage("k") >= 1000
    assert r.memory_usage("missing") is None


# ---------------------------------------------------------------- SHUTDOWN


@pytest.mark.parametrize(
    "args",
    [("NOSAVE", "SAVE"), ("SAVE", "NOSAVE", "NOW"), ("NOSAVE", "ABORT"), ("ABORT", "FORCE")],
    ids=lambda a: "-".join(a),
)
def test_shutdown_conflicting_options_is_an_error(spawn, args):
    srv = spawn()
    c = RawConn(srv.port)
    try:
        rep = c.cmd("SHUTDOWN", *args)
        assert isinstance(rep, ErrorReply) and str(rep) == "ERR syntax error", rep
        assert c.cmd("PING") == "PONG"
    finally:
        c.close()
    assert srv.alive()


def test_shutdown_abort_without_shutdown(spawn):
    srv = spawn()
    c = RawConn(srv.port)
    try:
        rep = c.cmd("SHUTDOWN", "ABORT")
        assert str(rep) == "ERR No shutdown in progress."
    finally:
        c.close()
    assert srv.alive()


def test_maxclients(spawn):
    srv = spawn("--maxclients", "2")
    a, b = RawConn(srv.port), RawConn(srv.port)
    try:
        assert a.cmd("PING") == "PONG"
        assert b.cmd("PING") == "PONG"
        third = RawConn(srv.port)
        third.send(b"PING\r\n")
        assert third.readline() == b"-ERR max number of clients reached"
        assert third.read_closed()
        third.close()
        a.close()
        time.sleep(0.2)
        fourth = RawConn(srv.port)
        assert fourth.cmd("PING") == "PONG"
        fourth.close()
    finally:
        a.close()
        b.close()


def test_shutdown(spawn):
    srv = spawn()
    c = RawConn(srv.port)
    rep = c.cmd("SHUTDOWN", "BOGUS")
    assert isinstance(rep, ErrorReply) and str(rep) == "ERR syntax error"
    c.send(encode_command("SHUTDOWN", "NOSAVE"))
    assert c.read_closed()
    assert srv.proc.wait(timeout=5) == 0
    c.close()
