"""Client-side caching (CLIENT TRACKING) against stock redis-server: the same scripted sessions
run on both servers and the transcripts (every reply and every invalidation push, in the order a
client reads them) must be equal. Then what only a multithreaded server can get wrong: a client
caching what it reads while other clients write never ends up holding a stale value."""

import random
import threading
import time

import pytest

from conftest import ErrorReply, RawConn, ServerProcess, encode_command, start_redis


@pytest.fixture(scope="module")
def ports():
    locus = ServerProcess()
    ref, port = start_redis()
    yield {"locus": locus.port, "redis": port}
    locus.stop()
    ref.terminate()
    ref.wait()


def norm(v):
    if isinstance(v, ErrorReply):
        return ("err", str(v))
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, list):
        return [norm(x) for x in v]
    if isinstance(v, dict):
        return {norm(k) if not isinstance(k, tuple) else k: norm(x) for k, x in v.items()}
    return v


class Session:
    """Named connections to one server, each reading replies with the pushes before them."""

    def __init__(self, port):
        self.port = port
        self.conns = {}
        self.ids = {}
        self.log = []
        RawConn(port).cmd("FLUSHALL")
        RawConn(port).cmd("CONFIG", "SET", "tracking-table-max-keys", "1000000")

    def conn(self, name):
        if name not in self.conns:
            c = RawConn(self.port)
            self.conns[name] = c
            self.ids[name] = c.cmd("CLIENT", "ID")
        return self.conns[name]

    def run(self, name, *args, expect_push_only=False):
        """Sends a command on `name` and logs the pushes read before its reply, and the reply."""
        args = [self.ids[a[1:]] if isinstance(a, str) and a.startswith("@") else a for a in args]
        c = self.conn(name)
        if expect_push_only:
            self.log.append((name, "push", norm(c.read())))
            return
        c.send(encode_command(*args))
        self.read_reply(name, args)

    def read_reply(self, name, args):
        c = self.conns[name]
        pushes = []
        while True:
            # A push is told apart by its first line: RawConn reads `>` as a list.
            line_peek = self._peek(c)
            v = c.read()
            if line_peek == b">" and args[0].upper() != "SUBSCRIBE":
                pushes.append(norm(v))
                continue
            if isinstance(v, list) and v and v[0] in (b"message",) and args[0].upper() != "SUBSCRIBE":
                pushes.append(norm(v))
                continue
            break
        reply = norm(v)
        if str(args[0]).upper() == "HELLO":
            reply = reply["proto"]  # server name, version and id differ by design
        self.log.append((name, " ".join(map(str, args)), pushes, reply))

    @staticmethod
    def _peek(c):
        while not c.buf:
            c._fill()
        return c.buf[:1]

    def close(self):
        for c in self.conns.values():
            c.close()


def both(ports, steps):
    """Runs `steps` (a function of a Session) on Locus and on redis-server; returns both logs."""
    logs = {}
    for which, port in ports.items():
        s = Session(port)
        try:
            steps(s)
        finally:
            s.close()
        logs[which] = s.log
    return logs["locus"], logs["redis"]


def check(ports, steps):
    got, want = both(ports, steps)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"step {i}: locus {g!r} != redis {w!r}\nlocus: {got}\nredis: {want}"
    assert len(got) == len(want)


def test_default_mode_resp3(ports):
    def steps(s):
        s.run("t", "HELLO", "3")
        s.run("t", "CLIENT", "TRACKING", "ON")
        s.run("w", "SET", "a", "1")
        s.run("t", "GET", "a")
        s.run("t", "GET", "b")
        s.run("w", "SET", "a", "2")
        s.run("w", "SET", "b", "1")
        s.run("t", "GET", "a")            # the invalidations of a and b come before this reply
        s.run("w", "INCR", "a")
        s.run("w", "INCR", "a")           # a was forgotten after its first change
        s.run("t", "MGET", "a", "b", "c")
        s.run("w", "MSET", "a", "1", "b", "2", "c", "3")
        s.run("t", "PING")
        # The client's own change: its invalidation follows the reply.
        s.run("t", "HSET", "h", "f", "1")
        s.run("t", "HGET", "h", "f")
        s.run("t", "HDEL", "h", "f")
        s.run("t", "PING")
        # Reads of every family are tracked; writes of every family invalidate.
        s.run("t", "LRANGE", "l", "0", "-1")
        s.run("t", "SMEMBERS", "s")
        s.run("t", "ZRANGE", "z", "0", "-1")
        s.run("t", "STRLEN", "str")
        s.run("w", "RPUSH", "l", "x")
        s.run("w", "SADD", "s", "x")
        s.run("w", "ZADD", "z", "1", "x")
        s.run("w", "APPEND", "str", "x")
        s.run("t", "PING")
        s.run("w", "RENAME", "l", "l2")   # no one reads l any more: no message
        s.run("t", "PING")
        s.run("t", "CLIENT", "TRACKING", "OFF")
        s.run("t", "GET", "a")
        s.run("w", "SET", "a", "9")
        s.run("t", "PING")
    check(ports, steps)


def test_bcast_prefixes_and_noloop(ports):
    def steps(s):
        s.run("t", "HELLO", "3")
        s.run("t", "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:", "PREFIX", "cfg:", "NOLOOP")
        s.run("w", "SET", "user:1", "x")
        s.run("t", "PING")
        s.run("w", "MSET", "user:2", "y", "cfg:a", "z", "other", "q")
        s.run("t", "PING")
        s.run("t", "SET", "user:3", "mine")   # NOLOOP: not told of its own change
        s.run("t", "PING")
        s.run("w", "MULTI")
        s.run("w", "INCR", "user:9")
        s.run("w", "INCR", "user:8")
        s.run("w", "DEL", "cfg:a")
        s.run("w", "EXEC")
        s.run("t", "PING")
        s.run("t", "CLIENT", "TRACKINGINFO")
        s.run("t", "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "cf")   # overlaps cfg:
        s.run("t", "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "job:")  # adds a prefix
        s.run("w", "SET", "job:1", "1")
        s.run("t", "PING")
        s.run("t", "CLIENT", "TRACKING", "OFF")
        s.run("t", "CLIENT", "TRACKING", "ON", "BCAST")  # every key
        s.run("w", "SET", "anything", "1")
        s.run("t", "PING")
    check(ports, steps)


def test_optin_optout(ports):
    def steps(s):
        s.run("t", "HELLO", "3")
        s.run("t", "CLIENT", "TRACKING", "ON", "OPTIN")
        s.run("t", "GET", "k1")
        s.run("t", "CLIENT", "CACHING", "yes")
        s.run("t", "CLIENT", "TRACKINGINFO")
        s.run("t", "GET", "k2")
        s.run("t", "GET", "k3")               # CACHING yes applied to one command only
        s.run("w", "MSET", "k1", "1", "k2", "2", "k3", "3")
        s.run("t", "PING")
        s.run("t", "CLIENT", "CACHING", "no")
        s.run("t", "CLIENT", "TRACKING", "ON", "OPTOUT")
        s.run("t", "CLIENT", "TRACKING", "OFF")
        s.run("t", "CLIENT", "TRACKING", "ON", "OPTOUT")
        s.run("t", "GET", "k4")
        s.run("t", "CLIENT", "CACHING", "no")
        s.run("t", "GET", "k5")
        s.run("w", "MSET", "k4", "1", "k5", "2")
        s.run("t", "PING")
        # In a transaction CACHING lasts to EXEC.
        s.run("t", "CLIENT", "TRACKING", "OFF")
        s.run("t", "CLIENT", "TRACKING", "ON", "OPTIN")
        s.run("t", "CLIENT", "CACHING", "yes")
        s.run("t", "MULTI")
        s.run("t", "GET", "m1")
        s.run("t", "GET", "m2")
        s.run("t", "EXEC")
        s.run("w", "MSET", "m1", "1", "m2", "2")
        s.run("t", "PING")
    check(ports, steps)


def test_redirect_to_resp2_subscriber_and_broken_redirect(ports):
    def steps(s):
        s.conn("r")
        s.run("r", "SUBSCRIBE", "__redis__:invalidate")
        s.run("t", "CLIENT", "TRACKING", "ON", "REDIRECT", "@r")
        s.run("t", "CLIENT", "GETREDIR")
        s.run("t", "GET", "x")
        s.run("t", "GET", "y")
        s.run("w", "SET", "x", "1")
        s.run("r", None, expect_push_only=True)
        s.run("w", "FLUSHALL")
        s.run("r", None, expect_push_only=True)
        # The redirect's connection closes: a RESP3 client is told once its key changes.
        s.run("t", "HELLO", "3")
        s.run("t", "GET", "z")
        s.conns.pop("r").close()
        time.sleep(0.2)
        s.run("w", "SET", "z", "1")
        s.run("t", "PING")
        s.run("t", "CLIENT", "TRACKINGINFO")
    got, want = both(ports, steps)
    # CLIENT LIST-style ids differ between servers; TRACKINGINFO's redirect is compared as
    # "an id" (the redirect the session named), the rest exactly.
    def scrub(log):
        out = []
        for entry in log:
            if entry[1] == "CLIENT TRACKINGINFO" or entry[1] == "CLIENT GETREDIR":
                entry = (entry[0], entry[1], entry[2], "redirect-reply")
            if entry[1].startswith("CLIENT TRACKING ON REDIRECT"):
                entry = (entry[0], "CLIENT TRACKING ON REDIRECT <id>", entry[2], entry[3])
            entry = tuple(
                [["tracking-redir-broken", "<id>"] if isinstance(p, list) and p and p[0] == "tracking-redir-broken" else p
                 for p in x] if isinstance(x, list) else x for x in entry)
            out.append(entry)
        return out
    assert scrub(got) == scrub(want)


def test_flush_transactions_and_scripts(ports):
    def steps(s):
        s.run("t", "HELLO", "3")
        s.run("t", "CLIENT", "TRACKING", "ON")
        s.run("w", "MSET", "a", "1", "b", "2")
        s.run("t", "GET", "a")
        s.run("t", "MULTI")
        s.run("t", "INCR", "a")
        s.run("t", "GET", "b")
        s.run("t", "EXEC")                # EXEC's reply, then the invalidation of a
        s.run("t", "PING")
        s.run("t", "GET", "a")
        s.run("w", "FLUSHDB")
        s.run("t", "PING")                # invalidate nil
        # A script that reads tracks the keys it declares; one that only writes does not.
        s.run("t", "EVAL", "return redis.call('set', KEYS[1], 'v')", "2", "s1", "s2")
        s.run("t", "PING")
        s.run("w", "MSET", "s1", "1", "s2", "2")
        s.run("t", "PING")
        s.run("t", "EVAL", "return redis.call('get', 'other')", "2", "s1", "s2")
        s.run("w", "MSET", "s2", "1", "s1", "2")
        s.run("t", "PING")
        s.run("t", "EVAL_RO", "return redis.call('ping')", "1", "s1")
        s.run("w", "SET", "s1", "3")
        s.run("t", "PING")
    check(ports, steps)


def test_errors_and_info(ports):
    def steps(s):
        for args in [
            ("CLIENT", "TRACKING", "ON", "PREFIX", "a"),
            ("CLIENT", "TRACKING", "ON", "BCAST", "OPTIN"),
            ("CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT"),
            ("CLIENT", "TRACKING", "ON", "REDIRECT", "999999"),
            ("CLIENT", "TRACKING", "ON", "REDIRECT", "abc"),
            ("CLIENT", "TRACKING", "ON", "BOGUS"),
            ("CLIENT", "TRACKING", "MAYBE"),
            ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "FOOBAR", "PREFIX", "FOO"),
            ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "FOO", "PREFIX", "FOOBAR"),
            ("CLIENT", "CACHING", "yes"),
            ("CLIENT", "GETREDIR"),
            ("CLIENT", "TRACKINGINFO"),
            ("CLIENT", "TRACKING", "ON"),
            ("CLIENT", "CACHING", "yes"),
            ("CLIENT", "CACHING", "no"),
            ("CLIENT", "CACHING", "maybe"),
            ("CLIENT", "TRACKING", "ON", "BCAST"),
            ("CLIENT", "TRACKING", "ON", "OPTIN"),
            ("CLIENT", "TRACKING", "ON", "OPTOUT"),
            ("CLIENT", "TRACKING", "ON", "OPTIN", "NOLOOP"),
            ("CLIENT", "TRACKING", "ON", "OPTOUT"),
            ("CLIENT", "TRACKINGINFO"),
            ("CLIENT", "GETREDIR"),
            ("CLIENT", "TRACKING", "OFF"),
            ("CLIENT", "TRACKING", "OFF"),
            ("CLIENT", "TRACKINGINFO"),
        ]:
            s.run("t", *args)
    check(ports, steps)


def info_fields(port):
    text = RawConn(port).cmd("INFO").decode()
    return {k: v for k, v in (l.split(":", 1) for l in text.split("\r\n") if ":" in l)}


def test_info_and_client_list(ports):
    def fields(port):
        t, b = RawConn(port), RawConn(port)
        RawConn(port).cmd("FLUSHALL")
        t.cmd("CLIENT", "TRACKING", "ON")
        t.cmd("GET", "k1")
        t.cmd("MGET", "k2", "k3")
        b.cmd("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "p:", "PREFIX", "q:")
        i = info_fields(port)
        line_t = t.cmd("CLIENT", "INFO").decode()
        line_b = b.cmd("CLIENT", "INFO").decode()
        flags = lambda line: dict(f.split("=", 1) for f in line.split())["flags"]
        redir = lambda line: dict(f.split("=", 1) for f in line.split())["redir"]
        out = ({k: i[k] for k in ("tracking_clients", "tracking_total_keys",
                                   "tracking_total_items", "tracking_total_prefixes")},
               flags(line_t), redir(line_t), flags(line_b), redir(line_b))
        t.close()
        b.close()
        return out
    assert fields(ports["locus"]) == fields(ports["redis"])


def test_table_limit_invalidates_as_if_changed(ports):
    """tracking-table-max-keys: once over it, keys are forgotten with an invalidation each, until
    the table is back under the limit (on the next command, or by the background tick)."""
    for which, port in ports.items():
        t, r = RawConn(port), RawConn(port)
        t.cmd("FLUSHALL")
        t.cmd("HELLO", "3")
        t.cmd("CLIENT", "TRACKING", "ON")
        for i in range(250):
            t.cmd("GET", f"key{i}")
        assert info_fields(port)["tracking_total_keys"] == "250", which
        r.cmd("CONFIG", "SET", "tracking-table-max-keys", "10")
        time.sleep(0.5)
        # Pushes for 240 keys, then PONG.
        t.send(b"*1\r\n$4\r\nPING\r\n")
        keys = set()
        while True:
            v = t.read()
            if v == "PONG":
                break
            assert v[0] == b"invalidate", (which, v)
            keys.update(v[1])
        assert len(keys) == 240, which
        assert info_fields(port)["tracking_total_keys"] == "10", which
        r.cmd("CONFIG", "SET", "tracking-table-max-keys", "1000000")
        t.close()
        r.close()


def test_expired_and_evicted_keys_invalidate(ports):
    def steps(s):
        s.run("t", "HELLO", "3")
        s.run("t", "CLIENT", "TRACKING", "ON")
        s.run("w", "SET", "e", "1", "PX", "50")
        s.run("t", "GET", "e")
        time.sleep(0.6)                       # active expiry removes it
        s.run("t", "PING")
        s.run("t", "CLIENT", "TRACKING", "OFF")
        s.run("t", "CLIENT", "TRACKING", "ON", "BCAST", "NOLOOP")
        s.run("t", "SET", "mine", "1", "PX", "50")   # NOLOOP hides the SET, not the expiry
        time.sleep(0.6)
        s.run("t", "PING")
    check(ports, steps)


def test_tracking_clients_never_keep_stale_values():
    """Writers change keys on other connections while a tracking client caches what it reads,
    dropping entries as invalidations arrive. Once writes stop and the last messages are read,
    every cached value equals the server's: no read can slip between a change and its
    invalidation, however the server's threads interleave them."""
    server = ServerProcess()
    try:
        port = server.port
        keys = [f"k{i}" for i in range(16)]
        RawConn(port).cmd("MSET", *[x for k in keys for x in (k, "0")])
        stop = threading.Event()

        def writer(seed):
            rnd = random.Random(seed)
            c = RawConn(port)
            while not stop.is_set():
                k = rnd.choice(keys)
                if rnd.random() < 0.5:
                    c.cmd("INCR", k)
                else:
                    c.cmd("MSET", k, str(rnd.randrange(1000)), rnd.choice(keys), str(rnd.randrange(1000)))
            c.close()

        t = RawConn(port)
        t.cmd("HELLO", "3")
        t.cmd("CLIENT", "TRACKING", "ON")
        cache = {}

        def read_reply():
            while True:
                peek = Session._peek(t)
                v = t.read()
                if peek == b">":
                    assert v[0] == b"invalidate"
                    if v[1] is None:
                        cache.clear()
                    else:
                        for k in v[1]:
                            cache.pop(k.decode(), None)
                    continue
                return v

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
        for th in threads:
            th.start()
        rnd = random.Random(7)
        reads = 0
        deadline = time.time() + 3
        while time.time() < deadline:
            k = rnd.choice(keys)
            if k not in cache:
                t.send(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k.encode()))
                cache[k] = read_reply()
                reads += 1
            else:
                t.send(b"*1\r\n$4\r\nPING\r\n")
                assert read_reply() == "PONG"
        stop.set()
        for th in threads:
            th.join()
        time.sleep(0.2)
        t.send(b"*1\r\n$4\r\nPING\r\n")
        assert read_reply() == "PONG"
        truth = RawConn(port)
        stale = {k: (v, truth.cmd("GET", k)) for k, v in cache.items() if truth.cmd("GET", k) != v}
        assert not stale, f"stale cache entries after {reads} reads: {stale}"
        assert reads > 100
    finally:
        server.stop()


def test_tracking_off_clients_pay_nothing_and_disconnects_clean_up():
    """Disconnected tracking clients leave no state behind: the counters return to zero."""
    server = ServerProcess()
    try:
        port = server.port
        conns = []
        for i in range(20):
            c = RawConn(port)
            c.cmd("CLIENT", "TRACKING", "ON", *(("BCAST", "PREFIX", f"p{i}:") if i % 2 else ()))
            c.cmd("GET", f"key{i}")
            conns.append(c)
        i = info_fields(port)
        assert i["tracking_clients"] == "20"
        assert i["tracking_total_prefixes"] == "10"
        for c in conns:
            c.cmd("QUIT")
            c.close()
        for _ in range(50):
            i = info_fields(port)
            if i["tracking_clients"] == "0":
                break
            time.sleep(0.05)
        assert (i["tracking_clients"], i["tracking_total_keys"], i["tracking_total_prefixes"]) == ("0", "0", "0")
    finally:
        server.stop()
