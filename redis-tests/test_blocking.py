"""Blocking list pops (BLPOP, BRPOP, BLMOVE, BLMPOP), as redis-server 7.0 does them.

Replies that come at once (data there, errors, inside MULTI) are compared byte for byte with
Debian's redis-server (`diff`, from test_transactions). The rest runs blocked clients in
threads, each on its own connection: timeouts, wake-ups by other clients' writes, the order
blocked clients are served in, INFO's blocked_clients, disconnected and killed blocked clients,
and many blocked clients at once.
"""

import socket
import threading
import time

import pytest
import redis

from conftest import RawConn, _client
from test_lists import real_redis  # noqa: F401  (module fixture: a reference redis-server)
from test_transactions import NIL_ARRAY, Tap, diff  # noqa: F401  (diff: fixture)
from test_zsets import pair, pair_factory, redis_port  # noqa: F401  (fixtures)

JOIN = 5.0  # seconds a test waits at most for a thread that should be done


def blocked_clients(c):
    return c.info("clients")["blocked_clients"]


def wait_until(pred, timeout=5.0, every=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(every)
    return pred()


class Blocker(threading.Thread):
    """Runs one (blocking) command on a connection of its own; `reply` and `elapsed` once
    done. The connection is opened at once, so its CLIENT ID is known before it blocks."""

    def __init__(self, port, *cmd, timeout=10.0, db=0):
        super().__init__(daemon=True)
        self.conn = RawConn(port, timeout=timeout)
        self.id = self.conn.cmd("CLIENT", "ID")
        if db:
            assert self.conn.cmd("SELECT", db) == "OK"
        self.cmd = cmd
        self.reply = self.error = self.elapsed = None

    def run(self):
        t0 = time.monotonic()
        try:
            self.reply = self.conn.cmd(*self.cmd)
        except Exception as e:  # noqa: BLE001
            self.error = e
        self.elapsed = time.monotonic() - t0

    def result(self, timeout=JOIN):
        self.join(timeout)
        assert not self.is_alive(), f"{self.cmd} still blocked after {timeout}s"
        assert self.error is None, f"{self.cmd}: {self.error!r}"
        return self.reply


@pytest.fixture
def blockers(server_port):
    made = []

    def make(*cmd, **kw):
        b = Blocker(server_port, *cmd, **kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.conn.close()
    for b in made:
        b.join(2)


@pytest.fixture
def ctl(r2):
    """A plain client; `ctl.base` is the number of clients blocked when the test began."""
    r2.base = blocked_clients(r2)
    return r2


def block(ctl, b):
    """Starts blocker b and returns once the server counts it as blocked."""
    want = blocked_clients(ctl) + 1
    b.start()
    assert wait_until(lambda: blocked_clients(ctl) >= want), f"{b.cmd} never blocked"
    return b


# ---------------------------------------------------------------- immediate replies vs redis


LISTS = [("RPUSH", "l", "a", "b", "c"), ("RPUSH", "m", "x"), ("SET", "s", "str")]


@pytest.mark.parametrize("proto", [2, 3])
def test_immediate_pops_match_redis(diff, proto):  # noqa: F811
    got = diff([*LISTS,
                ("BLPOP", "l", "0"), ("BRPOP", "l", "0"), ("BLPOP", "nx", "m", "0"),
                ("BRPOP", "nx", "l", "1.5"), ("EXISTS", "l", "m"),
                *LISTS,
                ("BLPOP", "l", "l", "0"), ("BLMPOP", "0", "2", "nx", "l", "RIGHT", "COUNT", "5"),
                ("BLMPOP", "0", "1", "m", "left", "count", "1"), ("EXISTS", "l", "m"),
                *LISTS,
                ("BLMOVE", "l", "l", "LEFT", "RIGHT", "0"), ("LRANGE", "l", "0", "-1"),
                ("BLMOVE", "l", "new", "RIGHT", "LEFT", "0"), ("BLMOVE", "l", "new", "left", "left", "0"),
                ("BLMOVE", "m", "new", "LEFT", "RIGHT", "0"),
                ("LRANGE", "new", "0", "-1"), ("LRANGE", "l", "0", "-1"), ("EXISTS", "m"),
                ], proto)
    assert got[3:8] == [
        b"*2\r\n$1\r\nl\r\n$1\r\na\r\n", b"*2\r\n$1\r\nl\r\n$1\r\nc\r\n",
        b"*2\r\n$1\r\nm\r\n$1\r\nx\r\n", b"*2\r\n$1\r\nl\r\n$1\r\nb\r\n", b":0\r\n",
    ]
    assert got[11:15] == [
        b"*2\r\n$1\r\nl\r\n$1\r\na\r\n", b"*2\r\n$1\r\nl\r\n*2\r\n$1\r\nc\r\n$1\r\nb\r\n",
        b"*2\r\n$1\r\nm\r\n*1\r\n$1\r\nx\r\n", b":0\r\n",
    ]
    assert got[18:] == [
        b"$1\r\na\r\n", b"*3\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\na\r\n", b"$1\r\na\r\n",
        b"$1\r\nb\r\n", b"$1\r\nx\r\n", b"*3\r\n$1\r\nb\r\n$1\r\na\r\n$1\r\nx\r\n",
        b"*1\r\n$1\r\nc\r\n", b":0\r\n",
    ]


WRONGTYPE = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"


def test_wrongtype_matches_redis(diff):  # noqa: F811
    got = diff([*LISTS,
                ("BLPOP", "s", "0"), ("BLPOP", "nx", "s", "0"), ("BRPOP", "s", "l", "0"),
                ("BLPOP", "l", "s", "0"),
                ("BLMOVE", "s", "l", "LEFT", "LEFT", "0"), ("BLMOVE", "l", "s", "LEFT", "LEFT", "0"),
                ("BLMPOP", "0", "1", "s", "LEFT"), ("BLMPOP", "0", "2", "nx", "s", "LEFT"),
                ("LRANGE", "l", "0", "-1")])
    assert got[3:] == [WRONGTYPE, WRONGTYPE, WRONGTYPE, b"*2\r\n$1\r\nl\r\n$1\r\na\r\n",
                       WRONGTYPE, WRONGTYPE, WRONGTYPE, WRONGTYPE,
                       b"*2\r\n$1\r\nb\r\n$1\r\nc\r\n"]


NEGATIVE = b"-ERR timeout is negative\r\n"
NOT_FLOAT = b"-ERR timeout is not a float or out of range\r\n"
TIMEOUT_EDGE = pytest.mark.xfail(strict=True, reason=(
    "Redis 7.0 takes ceil(timeout * 1000) as a long long: a timeout in (-1 ms, 0) is 0 (no "
    "error), one past a long long (or +/-inf) overflows into 'timeout is negative', and strtold "
    "reads hex ('0x10' is 16 s); Locus refuses these ('negative', 'not a float', 'out of range')"))


@pytest.mark.parametrize("timeout, want", [
    ("-1", NEGATIVE), ("-0.5", NEGATIVE), ("-0.01", NEGATIVE), ("abc", NOT_FLOAT),
    ("", NOT_FLOAT), ("1 ", NOT_FLOAT), (" 1", NOT_FLOAT), ("nan", NOT_FLOAT), ("1s", NOT_FLOAT),
    ("0.05", None), ("1e1", None), ("00.5", None),
    pytest.param("-0.0001", None, marks=TIMEOUT_EDGE),
    pytest.param("1e400", NEGATIVE, marks=TIMEOUT_EDGE),
    pytest.param("inf", NEGATIVE, marks=TIMEOUT_EDGE),
    pytest.param("-inf", NEGATIVE, marks=TIMEOUT_EDGE),
    pytest.param("1e308", NEGATIVE, marks=TIMEOUT_EDGE),
    pytest.param("99999999999999999", NEGATIVE, marks=TIMEOUT_EDGE),
    pytest.param("0x10", None, marks=TIMEOUT_EDGE),
])
def test_timeout_argument_matches_redis(diff, timeout, want):  # noqa: F811
    got = diff([("RPUSH", "l", "a", "b", "c", "d", "e"),
                ("BLPOP", "l", timeout), ("BRPOP", "l", timeout),
                ("BLMOVE", "l", "m", "LEFT", "LEFT", timeout),
                ("BLMPOP", timeout, "1", "l", "LEFT")])
    if want is not None:
        assert got[1:] == [want] * 4
    else:  # valid: the data is there, so each pops at once
        assert got[1:] == [b"*2\r\n$1\r\nl\r\n$1\r\na\r\n", b"*2\r\n$1\r\nl\r\n$1\r\ne\r\n",
                           b"$1\r\nb\r\n", b"*2\r\n$1\r\nl\r\n*1\r\n$1\r\nc\r\n"]


def test_argument_errors_match_redis(diff):  # noqa: F811
    syntax = b"-ERR syntax error\r\n"
    numkeys = b"-ERR numkeys should be greater than 0\r\n"
    count = b"-ERR count should be greater than 0\r\n"
    got = diff([("RPUSH", "l", "a"),
                ("BLMPOP", "0", "0", "l", "LEFT"), ("BLMPOP", "0", "-1", "l", "LEFT"),
                ("BLMPOP", "0", "x", "l", "LEFT"), ("BLMPOP", "0", "2", "l", "LEFT"),
                ("BLMPOP", "0", "3", "l", "LEFT"), ("BLMPOP", "0", "99999999999", "l", "LEFT"),
                ("BLMPOP", "0", "1", "l", "UP"), ("BLMPOP", "0", "1", "l", "LEFT", "COUNT", "0"),
                ("BLMPOP", "0", "1", "l", "LEFT", "COUNT", "-1"),
                ("BLMPOP", "0", "1", "l", "LEFT", "COUNT"),
                ("BLMPOP", "0", "1", "l", "LEFT", "FOO", "1"),
                ("BLMPOP", "0", "1", "l", "LEFT", "COUNT", "1", "COUNT", "2"),
                ("BLMOVE", "l", "m", "UP", "LEFT", "0"), ("BLMOVE", "l", "m", "LEFT", "DOWN", "0"),
                ("BLPOP", "l"), ("BLPOP",), ("BRPOP", "l"), ("BLMOVE", "l", "m", "LEFT", "LEFT"),
                ("BLMPOP", "0", "1", "l"), ("BLMPOP", "0"),
                ("LRANGE", "l", "0", "-1")])
    assert got[1:15] == [numkeys, numkeys, numkeys, syntax, syntax, syntax, syntax, count, count,
                         syntax, syntax, syntax, syntax, syntax]
    assert got[15:21] == [b"-ERR wrong number of arguments for '%s' command\r\n" % c for c in
                          (b"blpop", b"blpop", b"brpop", b"blmove", b"blmpop", b"blmpop")]
    assert got[21] == b"*1\r\n$1\r\na\r\n"


def test_blmpop_count_not_an_integer(diff):  # noqa: F811
    got = diff([("RPUSH", "l", "a"), ("BLMPOP", "0", "1", "l", "LEFT", "COUNT", "x")])
    assert got[1] == b"-ERR count should be greater than 0\r\n"


def test_blocking_commands_inside_multi_do_not_block(diff):  # noqa: F811
    t0 = time.monotonic()
    got = diff([("MULTI",), ("BLPOP", "l", "0"), ("BRPOP", "l", "m", "0"),
                ("BLMOVE", "l", "m", "LEFT", "RIGHT", "0"), ("BLMPOP", "0", "1", "l", "LEFT"),
                ("EXEC",), (1, "RPUSH", "l", "late"), ("LRANGE", "l", "0", "-1")])
    assert time.monotonic() - t0 < 3
    assert got[5] == b"*4\r\n*-1\r\n*-1\r\n$-1\r\n*-1\r\n"
    assert got[7] == b"*1\r\n$4\r\nlate\r\n"  # nothing was left waiting for it


# ---------------------------------------------------------------- timeouts


@pytest.mark.parametrize("cmd", [
    ("BLPOP", "nx", "T"), ("BRPOP", "nx", "nx2", "T"), ("BLMOVE", "nx", "d", "LEFT", "RIGHT", "T"),
    ("BLMPOP", "T", "2", "nx", "nx2", "LEFT", "COUNT", "3"),
], ids=lambda c: c[0])
@pytest.mark.parametrize("timeout", [0.1, 0.25])
def test_fractional_timeout(server_port, ctl, cmd, timeout):
    cmd = tuple(str(timeout) if a == "T" else a for a in cmd)
    c = RawConn(server_port)
    try:
        t0 = time.monotonic()
        assert c.cmd(*cmd) is None
        elapsed = time.monotonic() - t0
    finally:
        c.close()
    assert timeout - 0.005 <= elapsed < timeout + 1.5, elapsed
    assert ctl.exists("d") == 0
    assert wait_until(lambda: blocked_clients(ctl) == ctl.base)


@pytest.mark.parametrize("proto", [2, 3])
def test_timeout_reply_shape(server_port, proto):
    want = b"*-1\r\n" if proto == 2 else b"_\r\n"
    c = Tap(server_port)
    try:
        if proto == 3:
            c.cmd("HELLO", "3")
        for cmd in [("BLPOP", "nx", "0.01"), ("BRPOP", "nx", "0.01"),
                    ("BLMPOP", "0.01", "1", "nx", "RIGHT")]:
            assert c.reply_bytes(*cmd) == want, cmd
    finally:
        c.close()


def test_blmove_timeout_reply_matches_redis(diff):  # noqa: F811
    got = diff([("BLMOVE", "nx", "d", "LEFT", "LEFT", "0.01")])
    assert got[0] == NIL_ARRAY


def test_zero_timeout_blocks_until_served(ctl, blockers):
    b = block(ctl, blockers("BLPOP", "k", "0"))
    time.sleep(0.3)
    assert b.is_alive()
    assert ctl.rpush("k", "v") == 1
    assert b.result() == [b"k", b"v"]


def test_timed_out_waiter_leaves_the_queue(ctl, blockers):
    first = block(ctl, blockers("BLPOP", "k", "0.2"))
    second = block(ctl, blockers("BLPOP", "k", "0"))
    assert first.result() is None
    assert wait_until(lambda: blocked_clients(ctl) == ctl.base + 1)
    ctl.rpush("k", "v")
    assert second.result() == [b"k", b"v"]
    assert ctl.exists("k") == 0


# ---------------------------------------------------------------- wake-ups


@pytest.mark.parametrize("push", ["LPUSH", "RPUSH", "LMOVE", "BLMOVE", "MULTI"])
def test_woken_by_another_client(ctl, blockers, push):
    b = block(ctl, blockers("BLPOP", "k", "5"))
    if push in ("LPUSH", "RPUSH"):
        assert ctl.execute_command(push, "k", "v") == 1
    elif push in ("LMOVE", "BLMOVE"):
        ctl.rpush("src", "v", "w")
        args = ("src", "k", "LEFT", "RIGHT") + (("0",) if push == "BLMOVE" else ())
        assert ctl.execute_command(push, *args) == "v"
    else:  # a push queued in another client's transaction
        p = ctl.pipeline(transaction=True)
        p.rpush("k", "v")
        assert p.execute() == [1]
    assert b.result() == [b"k", b"v"]
    assert b.elapsed < 4
    assert ctl.exists("k") == 0
    assert wait_until(lambda: blocked_clients(ctl) == ctl.base)


@pytest.mark.parametrize("cmd, push, want, left", [
    (("BLPOP", "k", "5"), ("LPUSH", "k", "a", "b", "c"), [b"k", b"c"], ["b", "a"]),
    (("BRPOP", "k", "5"), ("RPUSH", "k", "a", "b", "c"), [b"k", b"c"], ["a", "b"]),
    (("BLMOVE", "k", "d", "RIGHT", "LEFT", "5"), ("RPUSH", "k", "a", "b"), b"b", ["a"]),
    (("BLMOVE", "k", "k", "LEFT", "RIGHT", "5"), ("RPUSH", "k", "a", "b"), b"a", ["b", "a"]),
    (("BLMPOP", "5", "2", "x", "k", "RIGHT", "COUNT", "2"), ("RPUSH", "k", "a", "b", "c"),
     [b"k", [b"c", b"b"]], ["a"]),
    (("BLMPOP", "5", "1", "k", "LEFT", "COUNT", "9"), ("RPUSH", "k", "a", "b"),
     [b"k", [b"a", b"b"]], []),
], ids=["BLPOP", "BRPOP", "BLMOVE", "BLMOVE-rotate", "BLMPOP", "BLMPOP-all"])
def test_served_like_redis(ctl, blockers, cmd, push, want, left):
    b = block(ctl, blockers(*cmd))
    ctl.execute_command(*push)
    assert b.result() == want
    assert ctl.lrange("k", 0, -1) == left
    if cmd[0] == "BLMOVE" and cmd[2] == "d":
        assert ctl.lrange("d", 0, -1) == ["b"]


def test_pusher_sees_the_blocked_client_served(ctl, blockers):
    for i in range(5):
        b = block(ctl, blockers("BLPOP", "k", "5"))
        assert ctl.rpush("k", f"v{i}") == 1
        assert b.result() == [b"k", f"v{i}".encode()]
        assert ctl.llen("k") == 0


@pytest.mark.xfail(strict=True, reason=(
    "Locus serves a blocked client asynchronously, after the pusher's pipelined commands that "
    "follow the push; Redis serves it right after the pushing command, so RPUSH k v + LLEN k "
    "sent together answer [1, 0] there and [1, 1] on Locus"))
def test_blocked_client_served_before_the_pushers_next_command(ctl, blockers):
    for i in range(5):
        b = block(ctl, blockers("BLPOP", "k", "5"))
        p = ctl.pipeline(transaction=False)
        p.rpush("k", f"v{i}").llen("k").lrange("k", 0, -1)
        assert p.execute() == [1, 0, []], f"round {i}"
        assert b.result() == [b"k", f"v{i}".encode()]


def test_push_inside_exec_serves_after_exec(ctl, blockers):
    b = block(ctl, blockers("BLPOP", "k", "5"))
    p = ctl.pipeline(transaction=True)
    p.rpush("k", "a").rpush("k", "b").lrange("k", 0, -1)
    assert p.execute() == [1, 2, ["a", "b"]]  # nobody took anything inside the transaction
    assert b.result() == [b"k", b"a"]
    assert ctl.lrange("k", 0, -1) == ["b"]


def test_exec_pushing_and_popping_leaves_the_client_blocked(ctl, blockers):
    b = block(ctl, blockers("BLPOP", "k", "10"))
    p = ctl.pipeline(transaction=True)
    p.lpush("k", "x").lpop("k")
    assert p.execute() == [1, "x"]
    time.sleep(0.3)
    assert b.is_alive()
    assert blocked_clients(ctl) == ctl.base + 1
    ctl.rpush("k", "y")
    assert b.result() == [b"k", b"y"]


def test_served_in_arrival_order(ctl, blockers):
    bs = [block(ctl, blockers("BLPOP", "k", "5")) for _ in range(3)]
    assert ctl.rpush("k", "1", "2", "3") == 3
    assert [b.result() for b in bs] == [[b"k", b"1"], [b"k", b"2"], [b"k", b"3"]]

    bs = [block(ctl, blockers("BRPOP", "k", "5")) for _ in range(3)]
    for v in ("x", "y", "z"):
        ctl.rpush("k", v)
        time.sleep(0.05)
    assert [b.result() for b in bs] == [[b"k", b"x"], [b"k", b"y"], [b"k", b"z"]]
    assert ctl.exists("k") == 0


def test_one_push_serves_only_as_many_as_it_brings(ctl, blockers):
    bs = [block(ctl, blockers("BLPOP", "k", "5")) for _ in range(3)]
    ctl.rpush("k", "1", "2")
    assert [b.result() for b in bs[:2]] == [[b"k", b"1"], [b"k", b"2"]]
    time.sleep(0.2)
    assert bs[2].is_alive()
    ctl.rpush("k", "3")
    assert bs[2].result() == [b"k", b"3"]


def test_several_keys(ctl, blockers):
    b = block(ctl, blockers("BLPOP", "k1", "k2", "k3", "5"))
    ctl.rpush("k2", "v")
    assert b.result() == [b"k2", b"v"]
    assert ctl.exists("k1", "k2", "k3") == 0

    b = block(ctl, blockers("BLMPOP", "5", "3", "k1", "k2", "k3", "LEFT", "COUNT", "5"))
    ctl.rpush("k3", "a", "b")
    assert b.result() == [b"k3", [b"a", b"b"]]


@pytest.mark.xfail(strict=True, reason=(
    "BLPOP k1 k2 blocked, then MULTI; RPUSH k2 b; RPUSH k1 a; EXEC: Redis 7.0 serves the key "
    "that became ready first ([k2, b]), Locus the first key in BLPOP's order ([k1, a])"))
def test_keys_pushed_in_one_transaction_serve_the_first_ready(ctl, blockers):
    # Redis serves keys in the order they became ready, not in the order of BLPOP's keys.
    b = block(ctl, blockers("BLPOP", "k1", "k2", "5"))
    p = ctl.pipeline(transaction=True)
    p.rpush("k2", "b").rpush("k1", "a")
    p.execute()
    assert b.result() == [b"k2", b"b"]
    assert ctl.lrange("k1", 0, -1) == ["a"]


def test_other_database_does_not_wake(ctl, blockers, server_port):
    b = block(ctl, blockers("BLPOP", "k", "5", db=3))
    ctl.rpush("k", "db0")
    time.sleep(0.2)
    assert b.is_alive()
    assert ctl.lrange("k", 0, -1) == ["db0"]
    c3 = _client(server_port, 2)
    try:
        c3.execute_command("SELECT", 3)
        c3.rpush("k", "db3")
        assert b.result() == [b"k", b"db3"]
        assert c3.exists("k") == 0
    finally:
        c3.close()


def test_other_type_stays_blocked(ctl, blockers):
    b = block(ctl, blockers("BLPOP", "k", "5"))
    ctl.set("k", "str")
    time.sleep(0.2)
    assert b.is_alive(), b.reply
    ctl.delete("k")
    ctl.rpush("k", "v")
    assert b.result() == [b"k", b"v"]


def test_blmove_chain_wakes_the_next(ctl, blockers):
    last = block(ctl, blockers("BLPOP", "dst", "5"))
    mover = block(ctl, blockers("BLMOVE", "src", "dst", "LEFT", "RIGHT", "5"))
    ctl.rpush("src", "v")
    assert mover.result() == b"v"
    assert last.result() == [b"dst", b"v"]
    assert ctl.exists("src", "dst") == 0

    # A chain of three: src -> mid -> dst -> popped.
    last = block(ctl, blockers("BRPOP", "dst", "5"))
    m2 = block(ctl, blockers("BLMOVE", "mid", "dst", "LEFT", "LEFT", "5"))
    m1 = block(ctl, blockers("BLMOVE", "src", "mid", "RIGHT", "LEFT", "5"))
    ctl.rpush("src", "a", "z")
    assert m1.result() == b"z"
    assert m2.result() == b"z"
    assert last.result() == [b"dst", b"z"]
    assert ctl.lrange("src", 0, -1) == ["a"]
    assert ctl.exists("mid", "dst") == 0


# ---------------------------------------------------------------- blocked clients as clients


def test_info_blocked_clients(ctl, blockers):
    bs = [block(ctl, blockers("BLPOP", f"k{i}", "5")) for i in range(3)]
    assert blocked_clients(ctl) == ctl.base + 3
    listed = [ln for ln in ctl.execute_command("CLIENT", "LIST").splitlines()
              if "cmd=blpop" in ln]
    assert len(listed) == 3
    ctl.rpush("k0", "v")
    assert bs[0].result() == [b"k0", b"v"]
    assert wait_until(lambda: blocked_clients(ctl) == ctl.base + 2)
    ctl.rpush("k1", "v")
    ctl.rpush("k2", "v")
    assert [b.result() for b in bs[1:]] == [[b"k1", b"v"], [b"k2", b"v"]]
    assert wait_until(lambda: blocked_clients(ctl) == ctl.base)


def test_disconnected_blocked_client_does_not_swallow_a_push(ctl, blockers):
    b = blockers("BLPOP", "k", "0")
    b.conn.sock.settimeout(None)
    block(ctl, b)
    b.conn.sock.shutdown(socket.SHUT_RDWR)
    b.conn.close()
    left = wait_until(lambda: blocked_clients(ctl) == ctl.base, timeout=3)
    ctl.rpush("k", "v")
    time.sleep(0.2)
    assert ctl.lrange("k", 0, -1) == ["v"]
    assert left, "the disconnected client is still counted as blocked"


def test_client_kill_of_a_blocked_client(ctl, blockers):
    b = block(ctl, blockers("BLPOP", "k", "0"))
    assert ctl.execute_command("CLIENT", "KILL", "ID", b.id) == 1
    b.join(JOIN)
    assert not b.is_alive()
    assert isinstance(b.error, (ConnectionError, OSError)), (b.reply, b.error)
    assert wait_until(lambda: blocked_clients(ctl) == ctl.base)
    ctl.rpush("k", "v")
    time.sleep(0.2)
    assert ctl.lrange("k", 0, -1) == ["v"]
    assert ctl.execute_command("CLIENT", "KILL", "ID", b.id) == 0


def test_many_blocked_clients_hold_no_thread(ctl, server_port):
    n = 200
    conns = [RawConn(server_port, timeout=10) for _ in range(n)]
    try:
        for i, c in enumerate(conns):
            c.send(b"*3\r\n$5\r\nBLPOP\r\n$%d\r\nq%d\r\n$1\r\n0\r\n" % (len(str(i)) + 1, i))
        assert wait_until(lambda: blocked_clients(ctl) == ctl.base + n, timeout=10)
        # The server still answers everyone else at once.
        t0 = time.monotonic()
        worst = 0.0
        for i in range(100):
            t1 = time.monotonic()
            assert ctl.ping() is True
            assert ctl.set(f"s{i}", i) is True
            assert ctl.get(f"s{i}") == str(i)
            worst = max(worst, time.monotonic() - t1)
        assert time.monotonic() - t0 < 3 and worst < 0.5, (time.monotonic() - t0, worst)
        # And each blocked client gets its own push.
        p = ctl.pipeline(transaction=False)
        for i in range(n):
            p.rpush(f"q{i}", f"v{i}")
        p.execute()
        for i, c in enumerate(conns):
            assert c.read() == [f"q{i}".encode(), f"v{i}".encode()]
        assert wait_until(lambda: blocked_clients(ctl) == ctl.base)
    finally:
        for c in conns:
            c.close()


def test_rpoplpush_and_brpoplpush_match_redis(pair):  # noqa: F811
    """The deprecated RPOPLPUSH / BRPOPLPUSH, byte for byte against redis-server."""
    pair.play([
        ("RPUSH", "src", "a", "b", "c"),
        ("RPOPLPUSH", "src", "dst"),
        ("RPOPLPUSH", "src", "src"),
        ("LRANGE", "src", 0, -1),
        ("LRANGE", "dst", 0, -1),
        ("RPOPLPUSH", "nosuch", "dst"),
        ("SET", "str", "x"),
        ("RPOPLPUSH", "str", "dst"),
        ("RPOPLPUSH", "src", "str"),
        ("RPOPLPUSH", "src"),
        ("BRPOPLPUSH", "src", "dst", 0),
        ("BRPOPLPUSH", "nosuch", "dst", "0.05"),
        ("BRPOPLPUSH", "src", "dst", "-1"),
        ("BRPOPLPUSH", "src", "dst", "x"),
        ("MULTI",),
        ("BRPOPLPUSH", "nosuch", "dst", 0),
        ("RPOPLPUSH", "dst", "src"),
        ("EXEC",),
        ("LRANGE", "src", 0, -1),
        ("LRANGE", "dst", 0, -1),
    ])


def test_brpoplpush_is_woken_by_a_push(server_port):
    c = redis.Redis(port=server_port)
    c.delete("q", "done")
    result = {}

    def wait():
        result["v"] = redis.Redis(port=server_port).brpoplpush("q", "done", timeout=5)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.2)
    c.rpush("q", "job")
    t.join(5)
    assert result["v"] == b"job"
    assert c.lrange("done", 0, -1) == [b"job"]
