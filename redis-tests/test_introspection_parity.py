"""Introspection and scripting details compared with stock redis-server: COMMAND GETKEYS /
GETKEYSANDFLAGS, CLUSTER on a standalone server, hidden and start-only CONFIG parameters,
CONFIG SET rollback, CLIENT REPLY SKIP then ON, MONITOR around transactions, and how errors
inside scripts are counted (INFO errorstats, commandstats)."""

import socket
import time

import pytest
import redis

from conftest import BUSY_SCRIPT, RawConn, reply_or_error, same, start_redis, ServerProcess


def raw_same(ports, proto, *args):
    """Sends one command to Locus and redis-server over plain connections and compares the
    parsed replies (redis-py reshapes COMMAND's replies, so it is kept out of the way)."""
    got = []
    for p in ports:
        c = RawConn(p)
        if proto == 3:
            c.cmd("HELLO", "3")
        r = c.cmd(*args)
        got.append(str(r) if isinstance(r, Exception) else r)
        c.close()
    assert got[0] == got[1], (args, got)
    return got[0]


@pytest.mark.parametrize("proto", [2, 3])
def test_getkeys_and_flags(ref_servers, proto):
    for args in [
        ("set", "k1", "v1"),
        ("set", "k1", "v1", "GET"),
        ("mset", "k1", "v1", "k2", "v2"),
        ("LMOVE", "k1", "k2", "left", "right"),
        ("sort", "k1", "store", "k2"),
        ("sort", "k1"),
        ("bitfield", "k", "GET", "u8", "0"),
        ("bitfield", "k", "SET", "u8", "0", "1"),
        ("zunionstore", "dst", "2", "a", "b"),
        ("eval", "return 1", "0"),
        ("eval", "return 1", "2", "a", "b"),
        ("xread", "STREAMS", "s1", "s2", "0", "0"),
        ("georadius", "g", "0", "0", "1", "km", "STORE", "dst"),
    ]:
        for sub in ("GETKEYS", "GETKEYSANDFLAGS"):
            raw_same(ref_servers, proto, "COMMAND", sub, *args)
    for bad in [("nosuch", "x"), ("ping",), ("get",), ("set", "k"), ("zunionstore", "d", "x", "a")]:
        for sub in ("GETKEYS", "GETKEYSANDFLAGS"):
            raw_same(ref_servers, proto, "COMMAND", sub, *bad)


@pytest.mark.parametrize("proto", [2, 3])
def test_cluster_commands_answer_as_a_standalone_redis(ref_servers, proto):
    for args in [("CLUSTER", "INFO"), ("CLUSTER", "SLOTS"), ("CLUSTER", "HELP"),
                 ("CLUSTER", "KEYSLOT", "x"), ("ASKING",), ("READONLY",), ("READWRITE",),
                 ("CLUSTER", "NOSUCH"), ("CLUSTER",)]:
        raw_same(ref_servers, proto, *args)
    got = []
    for p in ref_servers:
        r = RawConn(p).cmd("EVAL", "return redis.call('cluster', 'reset')", "0")
        got.append(str(r).split(" script:")[0])
    assert got[0] == got[1]
    names = [sorted(RawConn(p).cmd("COMMAND", "LIST", "FILTERBY", "PATTERN", "cl*help")) for p in ref_servers]
    assert names[0] == names[1]


def test_hidden_and_start_only_parameters(ref_pair):
    a, b = ref_pair
    for c in (a, b):
        everything = c.config_get("*")
        assert b"key-load-delay" not in everything and "key-load-delay" not in everything
    same(ref_pair, "CONFIG", "GET", "key-load-delay")
    same(ref_pair, "CONFIG", "GET", "watchdog-period")
    same(ref_pair, "CONFIG", "SET", "daemonize", "yes")
    same(ref_pair, "CONFIG", "SET", "maxmemory-clients", "200%")
    same(ref_pair, "CONFIG", "SET", "maxmemory-clients", "10%")
    same(ref_pair, "CONFIG", "GET", "maxmemory-clients")
    same(ref_pair, "CONFIG", "SET", "maxmemory-clients", "0")
    # The first bad value is named, and nothing is applied.
    same(ref_pair, "CONFIG", "SET", "maxmemory", "10000002")
    same(ref_pair, "CONFIG", "SET", "maxmemory", "10000001", "maxmemory-clients", "200%",
         "client-query-buffer-limit", "invalid")
    same(ref_pair, "CONFIG", "GET", "maxmemory")
    same(ref_pair, "CONFIG", "SET", "maxmemory", "0")


def test_locus_start_only_parameters_accept_their_value_and_nothing_else():
    s = ServerProcess()
    try:
        c = redis.Redis(port=s.port, decode_responses=True)
        current = c.config_get("*")
        for name in ("http-port", "backend-memory-limit", "threads-per-queue", "bind"):
            assert c.config_set(name, current[name])
            with pytest.raises(redis.ResponseError, match="can't set immutable config"):
                c.config_set(name, current[name] + "1")
        # Writing back every parameter CONFIG GET * shows, as configuration tools do, works for
        # Locus's own parameters too.
        for name, value in current.items():
            if name in {"daemonize", "io-threads", "databases", "unixsocket", "logfile", "dir",
                        "dbfilename", "appendfilename", "appenddirname", "pidfile", "aclfile",
                        "requirepass", "supervised", "syslog-ident", "syslog-facility",
                        "syslog-enabled", "unixsocketperm", "replicaof", "slaveof",
                        "rdbchecksum", "io-threads-do-reads", "tcp-backlog", "always-show-logo",
                        "cluster-enabled", "disable-thp", "set-proc-title", "cluster-config-file",
                        "cluster-port", "oom-score-adj", "oom-score-adj-values",
                        "enable-protected-configs", "enable-debug-command",
                        "enable-module-command", "socket-mark-id", "server_cpulist",
                        "bio_cpulist", "aof_rewrite_cpulist", "bgsave_cpulist"} or name.startswith("tls-"):
                continue
            assert c.config_set(name, value), name
        assert c.config_get("*") == current
    finally:
        s.stop()


def test_config_set_rolls_back_every_parameter_when_a_port_cannot_be_bound(ref_servers):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        outs = []
        for p in ref_servers:
            c = redis.Redis(port=p, decode_responses=True)
            before = {k: c.config_get(k)[k] for k in ("maxmemory", "client-query-buffer-limit", "port")}
            outs.append(reply_or_error(c, "CONFIG", "SET", "maxmemory", "10000001", "port", str(port),
                                       "client-query-buffer-limit", "10m"))
            after = {k: c.config_get(k)[k] for k in before}
            assert after == before
            assert c.ping()
        assert outs[0][0] == outs[1][0] == "ResponseError"
        assert all(o[1].startswith("CONFIG SET failed (possibly related to argument 'port') - Unable to listen on this port")
                   for o in outs), outs
    finally:
        taken.close()


def test_client_reply_skip_then_on_answers_the_on(ref_servers):
    for p in ref_servers:
        c = RawConn(p)
        c.send(b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$4\r\nSKIP\r\n")
        c.send(b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$2\r\nON\r\n")
        assert c.read() == "OK"
        assert c.cmd("PING") == "PONG"
        c.send(b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$4\r\nSKIP\r\n")
        c.send(b"*2\r\n$4\r\nECHO\r\n$1\r\na\r\n")
        assert c.cmd("ECHO", "b") == b"b"
        c.close()


def test_monitor_shows_transactions_in_execution_order(ref_servers):
    def lines(port):
        m = RawConn(port)
        assert m.cmd("MONITOR") == "OK"
        c = RawConn(port)
        for args in [("MULTI",), ("SET", "foo", "bar"), ("GET", "foo"), ("EXEC",),
                     ("MULTI",), ("NOSUCHCMD",), ("EXEC",), ("PING",)]:
            c.cmd(*args)
        out = []
        while True:
            line = m.read()
            words = [w.strip('"') for w in line.split(" ")[3:]]
            out.append(words)
            if words and words[0].lower() == "ping":
                break
        m.close()
        return out
    assert lines(ref_servers[0]) == lines(ref_servers[1])


def test_acl_check_cmd_in_scripts(ref_servers):
    outs = []
    for p in ref_servers:
        c = redis.Redis(port=p, decode_responses=True)
        c.acl_setuser("bob", enabled=True, passwords=["+123"], commands=["+@scripting", "+set"], keys=["x*"], reset=True)
        u = redis.Redis(port=p, decode_responses=True, username="bob", password="123")
        run = []
        for script, keys in [("return redis.acl_check_cmd('set','xx',1)", ["xx"]),
                             ("return redis.acl_check_cmd('hset','xx','f',1)", ["xx"]),
                             ("return redis.acl_check_cmd('set','yy',1)", []),
                             ("return redis.acl_check_cmd('invalid-cmd','arg')", [])]:
            r = reply_or_error(u, "EVAL", script, len(keys), *keys)
            if r[0] != "ok":
                r = (r[0], r[1].split(" script:")[0])
            run.append(r)
        outs.append(run)
        c.acl_deluser("bob")
    assert outs[0] == outs[1]
    assert outs[0][0] == ("ok", 1)
    assert "Invalid command passed to redis.acl_check_cmd()" in outs[0][3][1]


def _stats(c):
    info = c.info("all")
    errs = {k: v for k, v in info.items() if k.startswith("errorstat_")}
    cmds = {k: {f: v[f] for f in ("calls", "rejected_calls", "failed_calls")}
            for k, v in info.items() if k.startswith("cmdstat_") and k != "cmdstat_info"
            and k not in ("cmdstat_config",)}
    return info["total_error_replies"], errs, cmds


@pytest.mark.parametrize("script,keys,numkeys_ro,maxmemory", [
    ("return redis.call('set','x','y')", ["x"], False, "1"),
    ("local t = redis.pcall('set','x','y') return t['err'] and 1 or 0", ["x"], False, "1"),
    ("return redis.pcall('set','x','y')", ["x"], False, "1"),
    ("return redis.call('select',99)", [], False, "0"),
    ("local t = redis.pcall('select',99) return 1", [], False, "0"),
    ("return redis.call('set','x','y')", ["x"], True, "0"),
    ("local t = redis.pcall('set','x','y') return 1", ["x"], True, "0"),
    ("return redis.call('GEOADD', 'Sicily', '13.361389', '38.115556', 'Palermo')", ["x"], False, "0"),
    ("return redis.error_reply('MY_ERR_CODE custom msg')", [], False, "0"),
    ("return redis.call('nosuchcommand')", [], False, "0"),
])
def test_script_errors_are_counted_once(ref_servers, script, keys, numkeys_ro, maxmemory):
    """Redis 7.0's "Consistent eval error reporting": a command's error inside a script counts
    once, when the command gives it; the script's failure counts as EVAL's failed call."""
    results = []
    for p in ref_servers:
        c = redis.Redis(port=p, decode_responses=True)
        c.flushall()
        c.set("Sicily", 1)
        c.config_resetstat()
        c.config_set("maxmemory", maxmemory)
        try:
            r = reply_or_error(c, "EVAL_RO" if numkeys_ro else "EVAL", script, len(keys), *keys)
        finally:
            c.config_set("maxmemory", "0")
        r = (r[0], r[1].split(" script:")[0]) if r[0] != "ok" else r
        total, errs, cmds = _stats(c)
        results.append((r, total, errs, cmds))
    assert results[0] == results[1]


def test_xsetid(ref_pair):
    same(ref_pair, "XSETID", "nostream", "1-1")
    same(ref_pair, "XADD", "s", "5-1", "a", "b")
    for args in [("s", "200-0"), ("s", "1-1"), ("s", "1-1", "0"), ("s", "1-1", "0-0"),
                 ("s", "300-0", "ENTRIESADDED", "-1", "MAXDELETEDID", "0-0"),
                 ("s", "300-0", "ENTRIESADDED", "0"), ("s", "300-0", "MAXDELETEDID", "400-0"),
                 ("s", "300-0", "ENTRIESADDED", "7", "MAXDELETEDID", "250-3"),
                 ("s", "abc"), ("s", "*"), ("s", "300-0", "ENTRIESADDED", "x")]:
        same(ref_pair, "XSETID", *args)
    a, b = ref_pair
    info = lambda c: {k: v for k, v in c.xinfo_stream("s").items()
                      if k in ("last-generated-id", "entries-added", "max-deleted-entry-id", "length")}
    assert info(a) == info(b)
    same(ref_pair, "SET", "str", "x")
    same(ref_pair, "XSETID", "str", "1-1")


def test_hrandfield_count_limits(ref_pair):
    same(ref_pair, "HSET", "h", "a", "1")
    for args in [("-9223372036854770000", "WITHVALUES"), ("-9223372036854775808", "WITHVALUES"),
                 ("-9223372036854775808",), ("9223372036854775807", "WITHVALUES"),
                 ("-9223372036854775808", "NOPE"), ("x",)]:
        same(ref_pair, "HRANDFIELD", "h", *args)


def _blocked_xreadgroup(port, then):
    """A client blocked in XREADGROUP, `then` run on another connection: the blocked client's
    reply and the error and command statistics afterwards."""
    c = redis.Redis(port=port, decode_responses=True)
    c.flushall()
    c.xgroup_create("mystream", "mygroup", "$", mkstream=True)
    c.config_resetstat()
    rd = RawConn(port)
    rd.send(b"*8\r\n$10\r\nXREADGROUP\r\n$5\r\nGROUP\r\n$7\r\nmygroup\r\n$5\r\nAlice\r\n"
            b"$5\r\nBLOCK\r\n$1\r\n0\r\n$7\r\nSTREAMS\r\n$8\r\nmystream\r\n")
    for _ in range(100):
        if c.info("clients")["blocked_clients"] == 1:
            break
        time.sleep(0.01)
    then(c)
    reply = str(rd.read())
    rd.close()
    info = c.info("all")
    return (reply, info["total_error_replies"],
            {k: v for k, v in info.items() if k.startswith("errorstat_")},
            {f: info["cmdstat_xreadgroup"][f] for f in ("calls", "rejected_calls", "failed_calls")})


@pytest.mark.parametrize("then", ["flushall", "flushdb", "destroy", "del"])
def test_blocked_xreadgroup_learns_its_stream_or_group_went_away(ref_servers, then):
    action = {
        "flushall": lambda c: c.flushall(),
        "flushdb": lambda c: c.flushdb(),
        "destroy": lambda c: c.xgroup_destroy("mystream", "mygroup"),
        "del": lambda c: c.delete("mystream"),
    }[then]
    got = [_blocked_xreadgroup(p, action) for p in ref_servers]
    assert got[0] == got[1]


def test_blocked_commands_and_transactions_in_the_slow_log(ref_servers):
    """A blocked command is logged as sent once served; a transaction's commands are logged
    one by one and EXEC itself is not."""
    outs = []
    for p in ref_servers:
        c = RawConn(p)
        c.cmd("FLUSHALL")
        c.cmd("CONFIG", "SET", "slowlog-log-slower-than", "0")
        rd = RawConn(p)
        rd.send(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nl\r\n$1\r\n0\r\n")
        for _ in range(100):
            if b"blocked_clients:1" in c.cmd("INFO", "clients"):
                break
            time.sleep(0.01)
        for args in [("MULTI",), ("LPUSH", "l", "foo"), ("SLOWLOG", "RESET"), ("SET", "k", "v"), ("EXEC",)]:
            c.cmd(*args)
        rd.read()
        rd.close()
        entries = [e[3] for e in c.cmd("SLOWLOG", "GET")]
        c.cmd("CONFIG", "SET", "slowlog-log-slower-than", "10000")
        outs.append(sorted(entries))
    assert outs[0] == outs[1]
    assert [b"BLPOP", b"l", b"0"] in outs[0]




def _latencystats(c):
    """INFO latencystats as {command: {percentile name: microseconds}}."""
    raw = RawConn(c.connection_pool.connection_kwargs["port"])
    text = raw.cmd("INFO", "latencystats")
    raw.close()
    text = text.decode() if isinstance(text, bytes) else text
    out = {}
    for line in text.splitlines():
        if not line.startswith("latency_percentiles_usec_"):
            continue
        name, fields = line[len("latency_percentiles_usec_"):].split(":", 1)
        out[name] = {k: float(v) for k, v in (f.split("=") for f in fields.split(",") if f)}
    return out


def test_latencystats_as_redis_reports_them(ref_pair):
    """INFO latencystats: the same commands with the same percentile names as redis-server,
    configured the same way, with the same errors for bad percentiles; each figure an upper
    bound of what the command took, within a bucket's width (Redis: HdrHistogram)."""
    for c in ref_pair:
        c.config_resetstat()
        c.config_set("latency-tracking", "yes")
    same(ref_pair, "CONFIG", "GET", "latency-tracking-info-percentiles")
    for bad in ["10.0 50.0 a", "10.0 50.0 101.0", "-1", "nan"]:
        same(ref_pair, "CONFIG", "SET", "latency-tracking-info-percentiles", bad)
    same(ref_pair, "CONFIG", "GET", "latency-tracking-info-percentiles")
    same(ref_pair, "CONFIG", "SET", "latency-tracking-info-percentiles", "0.0 50.0 99.990 100")
    same(ref_pair, "CONFIG", "GET", "latency-tracking-info-percentiles")
    stats = []
    for c in ref_pair:
        c.config_resetstat()
        c.set("k", "v")
        c.get("k")
        c.client_id()
        c.eval(BUSY_SCRIPT, 0, 30000)
        stats.append(_latencystats(c))
    for name in ["set", "get", "client|id", "eval", "config|resetstat"]:
        assert name in stats[0] and name in stats[1], (name, stats)
        assert list(stats[0][name]) == list(stats[1][name]) == ["p0", "p50", "p99.99", "p100"]
    # The script ran for 30 ms: each reading is at least that (the two servers' figures are
    # both upper bounds at two significant digits).
    for s in stats:
        assert 30000 <= s["eval"]["p50"] < 60000, s["eval"]
        assert s["get"]["p50"] <= s["eval"]["p50"]
    # The script's time is EVAL's: in commandstats and in the slow log.
    for c in ref_pair:
        assert c.info("commandstats")["cmdstat_eval"]["usec"] >= 30000
        (entry,) = c.slowlog_get(1)
        assert entry["command"].split()[0].lower() == b"eval" and entry["duration"] >= 30000
    # Off: the section is empty, as in Redis; RESETSTAT forgets the histograms.
    for c in ref_pair:
        c.config_set("latency-tracking", "no")
        c.get("k")
        assert _latencystats(c) == {}
        c.config_set("latency-tracking", "yes")
        c.config_resetstat()
        assert set(_latencystats(c)) <= {"config|resetstat"}
    same(ref_pair, "CONFIG", "SET", "latency-tracking-info-percentiles", "")
    same(ref_pair, "CONFIG", "GET", "latency-tracking-info-percentiles")
    for c in ref_pair:
        c.get("k")
        assert _latencystats(c)["get"] == {}, "listed with no percentiles"
        c.config_set("latency-tracking-info-percentiles", "50 99 99.9")
