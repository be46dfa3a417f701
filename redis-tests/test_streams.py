"""Stream commands, checked against Debian's redis-server 7.0 (`real_redis`, from test_lists).

The same commands go to Locus and to redis-server over raw sockets (the `pair` fixtures of
test_zsets), in RESP2 and in RESP3, and the replies must match. Replies are parsed into typed
trees (so RESP3 maps, nulls and simple-vs-bulk strings are all compared) and compared exactly,
except for the few values that depend on the clock or on the server's internals, which are
masked and checked by property instead: idle times (XPENDING's extended form, XINFO CONSUMERS)
and delivery / seen times (XINFO STREAM FULL) must be equal within a tolerance, XINFO STREAM's
radix-tree-keys / radix-tree-nodes must be non-negative integers, and `*` ids are checked against
the wall clock. Explicit ids (`1-1`, `5-0`) are used everywhere else so replies are identical.

Covered: XADD (ids, `*`, `ms-*`, NOMKSTREAM, MAXLEN / MINID with `=`, `~` and LIMIT, the whole-
node trimming of `~` with 100-entry nodes, errors), XLEN, XRANGE / XREVRANGE, XDEL, XTRIM, XINFO
STREAM [FULL] / GROUPS / CONSUMERS (entries-read and lag, also with tombstones), XGROUP CREATE /
DESTROY / SETID / CREATECONSUMER / DELCONSUMER, XREADGROUP (new entries, history, NOACK, COUNT),
XACK, XPENDING, XCLAIM, XAUTOCLAIM, XREAD (COUNT, `$`, BLOCK timing out or woken by another
client, XREADGROUP BLOCK), WRONGTYPE and arity errors, keyspace commands on streams, and seeded
random command sequences over a few keys.
"""

import random
import re
import threading
import time

import pytest

from conftest import RawConn, Tap, encode_command
from test_blocking import wait_until
from test_lists import real_redis  # noqa: F401  (module fixture: a reference redis-server)
from test_zsets import bulk, err, pair, pair2, pair_factory, redis_port  # noqa: F401  (fixtures)

WRONGTYPE = err("WRONGTYPE Operation against a key holding the wrong kind of value")
SYNTAX = err("ERR syntax error")
NOT_INT = err("ERR value is not an integer or out of range")
INVALID_ID = err("ERR Invalid stream ID specified as stream command argument")
TOP_ITEM = err("ERR The ID specified in XADD is equal or smaller than the target stream top item")
ZERO_ID = err("ERR The ID specified in XADD must be greater than 0-0")
EXHAUSTED = err("ERR The stream has exhausted the last possible ID, unable to add more items")
NO_KEY_XGROUP = err(
    "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to "
    "use the MKSTREAM option to create an empty stream automatically.")
LIMIT_WITHOUT_TILDE = err("ERR syntax error, LIMIT cannot be used without the special ~ option")
LIMIT_WITHOUT_STRATEGY = err(
    "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy")
MAXLEN_AND_MINID = err(
    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible")


def arity(cmd):
    return err(f"ERR wrong number of arguments for '{cmd}' command")


def nogroup(key, group):
    return err(f"NOGROUP No such key '{key}' or consumer group '{group}'")


def nogroup_xgroup(key, group):
    return err(f"NOGROUP No such consumer group '{group}' for key name '{key}'")


def nogroup_xreadgroup(key, group):
    return err(f"NOGROUP No such key '{key}' or consumer group '{group}' in XREADGROUP with GROUP option")


def null(proto):
    """A null bulk string (RESP2) / null (RESP3)."""
    return b"$-1\r\n" if proto == 2 else b"_\r\n"


def null_array(proto):
    return b"*-1\r\n" if proto == 2 else b"_\r\n"


def entry(id_, *fv):
    """The RESP bytes of one stream entry [id, [field, value, ...]]."""
    return b"*2\r\n" + bulk(id_) + b"*%d\r\n" % len(fv) + b"".join(bulk(x) for x in fv)


def now_ms():
    return int(time.time() * 1000)


# ---------------------------------------------------------------- typed replies and masking


def parse(data):
    """One RESP2/RESP3 reply -> a typed tree: (type character, value). Aggregates hold a list of
    trees (a map its keys and values in order); a null array is ("*", None)."""
    node, pos = _parse(data, 0)
    assert pos == len(data), f"trailing bytes after the reply: {data!r}"
    return node


def _parse(data, pos):
    end = data.index(b"\r\n", pos)
    t, line = data[pos:pos + 1].decode(), data[pos + 1:end]
    pos = end + 2
    if t in "+-_,#(":
        return (t, line.decode()), pos
    if t == ":":
        return (t, int(line)), pos
    if t in "$=!":
        n = int(line)
        if n < 0:
            return (t, None), pos
        assert data[pos + n:pos + n + 2] == b"\r\n", f"bad bulk length in {data!r}"
        return (t, data[pos:pos + n]), pos + n + 2
    if t in "*~>%|":
        n = int(line)
        if n < 0:
            return (t, None), pos
        items = []
        for _ in range(2 * n if t in "%|" else n):
            item, pos = _parse(data, pos)
            items.append(item)
        return (t, items), pos
    raise ValueError(f"unexpected reply type in {data!r}")


class Near:
    """A masked clock-dependent integer: equal to another Near of the same kind within `tol`."""

    def __init__(self, kind, value, tol):
        self.kind, self.value, self.tol = kind, value, tol

    def __eq__(self, other):
        return (isinstance(other, Near) and other.kind == self.kind
                and abs(other.value - self.value) <= self.tol)

    def __repr__(self):
        return f"<{self.kind}~{self.value}>"


def masked(kind, node):
    assert node[0] == ":" and node[1] >= 0, f"{kind}: expected a non-negative integer, got {node}"
    tol = {"idle": 1000, "time": 1000, "radix": float("inf")}[kind]
    return ("MASKED", Near(kind, node[1], tol))


def is_str(node, text):
    return node[0] in "$+" and node[1] in (text, text.encode())


def mask_fields(node, names):
    """Masks the integer after each key named in `names` (a dict name -> kind), at any depth;
    works for RESP2 flat arrays and RESP3 maps alike."""
    if node[0] not in "*%~" or node[1] is None:
        return node
    items = [mask_fields(x, names) for x in node[1]]
    for i in range(len(items) - 1):
        for name, kind in names.items():
            if is_str(items[i], name) and items[i + 1][0] == ":":
                items[i + 1] = masked(kind, items[i + 1])
    return (node[0], items)


def mask_pel_times(node):
    """XINFO STREAM FULL: the delivery times in the groups' and the consumers' PEL entries."""
    if node[0] not in "*%" or node[1] is None:
        return node
    items = [mask_pel_times(x) for x in node[1]]
    for i in range(len(items) - 1):
        if is_str(items[i], "pending") and items[i + 1][0] == "*":
            pel = []
            for e in items[i + 1][1]:
                e = list(e[1])
                at = 2 if len(e) == 4 else 1  # [id, consumer, time, count] / [id, time, count]
                e[at] = masked("time", e[at])
                pel.append(("*", e))
            items[i + 1] = ("*", pel)
    return (node[0], items)


def mask_xpending_idle(node):
    """XPENDING's extended form: [id, consumer, idle, delivery count] per entry."""
    if node[0] != "*" or node[1] is None:
        return node
    out = []
    for e in node[1]:
        e = list(e[1])
        e[2] = masked("idle", e[2])
        out.append(("*", e))
    return ("*", out)


def normalise(cmd, node):
    """The reply of `cmd` with its clock- or implementation-dependent values masked."""
    if node[0] in "-!":
        return node
    name = str(cmd[0]).upper()
    sub = str(cmd[1]).upper() if len(cmd) > 1 else ""
    if name == "XPENDING" and len(cmd) > 3:
        return mask_xpending_idle(node)
    if name == "XINFO" and sub == "CONSUMERS":
        return mask_fields(node, {"idle": "idle"})
    if name == "XINFO" and sub == "STREAM":
        node = mask_fields(node, {"radix-tree-keys": "radix", "radix-tree-nodes": "radix",
                                  "seen-time": "time"})
        return mask_pel_times(node)
    return node


def run(pair, steps):  # noqa: F811
    """Plays every step on both servers; the normalised replies must all match. Returns Locus's
    raw replies."""
    got, bad = [], []
    for cmd in steps:
        g, w = pair.both(*cmd)
        got.append(g)
        if normalise(cmd, parse(g)) != normalise(cmd, parse(w)):
            bad.append(f"{cmd}:\n    Locus {g!r}\n    Redis {w!r}")
    assert not bad, f"{len(bad)} replies differ, Locus vs redis-server:\n" + "\n".join(bad[:15])
    return got


def as_dict(node):
    """A RESP2 flat field/value array or a RESP3 map -> {field: value}, with bulk strings
    decoded, nulls as None and nested replies left as typed trees."""
    items = node[1]
    return {k[1].decode(): None if v[0] == "_" or v[1] is None else
            v[1].decode() if v[0] == "$" else v[1] if v[0] == ":" else v
            for k, v in zip(items[::2], items[1::2])}


def groups(reply):
    """XINFO GROUPS's reply bytes -> {name: {field: value}}."""
    return {d["name"]: d for d in map(as_dict, parse(reply)[1])}


def pipeline(conn, commands, chunk=1000):
    """Sends commands in batches and reads all replies (for filling big streams quickly)."""
    replies = []
    for i in range(0, len(commands), chunk):
        batch = commands[i:i + chunk]
        conn.send(b"".join(encode_command(*c) for c in batch))
        replies += [conn.read() for _ in batch]
    return replies


def fill(pair, key, n, start=1, field="f", value="v"):  # noqa: F811
    """XADD `key` `i-0` for i in start..start+n-1 on both servers."""
    cmds = [("XADD", key, f"{i}-0", field, value) for i in range(start, start + n)]
    for c in (pair.locus, pair.redis):
        replies = pipeline(c, cmds)
        assert replies[-1] == f"{start + n - 1}-0".encode(), replies[-1]


# ---------------------------------------------------------------- random sequences

KEYS = ["s1", "s2"]
GROUPS = ["g1", "g2"]
CONSUMERS = ["alice", "bob", "carol"]
FIELDS = ["f", "g", "name"]


class Gen:
    """Random stream commands; ids come from one increasing counter shared by all keys, so
    every XADD with a fresh id succeeds on any key, and old ids give the error paths."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.ms, self.seq = 0, 0
        self.ids = []

    def fresh_id(self):
        rng = self.rng
        if rng.random() < 0.3 and self.ids:
            self.seq += 1
        else:
            self.ms += rng.randint(1, 3)
            self.seq = rng.randint(0, 2)
        form = rng.random()
        if form < 0.1:  # ms-* on a fresh ms: the server picks ms-0
            self.ms += 1
            self.seq = 0
            self.ids.append(f"{self.ms}-0")
            return f"{self.ms}-*"
        if form < 0.15:  # bare ms: ms-0
            self.ms += 1
            self.seq = 0
            self.ids.append(f"{self.ms}-0")
            return str(self.ms)
        self.ids.append(f"{self.ms}-{self.seq}")
        return self.ids[-1]

    def some_id(self):
        rng = self.rng
        r = rng.random()
        if not self.ids or r < 0.05:
            return rng.choice(["0", "0-0", "1", "99999-0"])
        old = rng.choice(self.ids[-12:] if r < 0.7 else self.ids)
        if rng.random() < 0.15:
            return old.split("-")[0]  # incomplete: ms only
        return old

    def bound(self, lo):
        rng = self.rng
        r = rng.random()
        if r < 0.25:
            return "-" if lo else "+"
        if r < 0.35:
            return "(" + self.some_id()
        return self.some_id()

    def command(self):
        rng = self.rng
        k = rng.choice(KEYS + ["str"] * (rng.random() < 0.05))
        g = rng.choice(GROUPS)
        c = rng.choice(CONSUMERS)
        cnt = lambda: ["COUNT", rng.randint(-1, 4)] if rng.random() < 0.5 else []  # noqa: E731

        def fields():
            return [x for f in rng.sample(FIELDS, rng.randint(1, 2)) for x in (f, str(rng.randint(0, 9)))]

        def trim():
            kind = rng.choice(["MAXLEN", "MINID"])
            approx = rng.choice([[], ["="], ["~"]])
            threshold = rng.randint(0, 8) if kind == "MAXLEN" else self.some_id()
            limit = ["LIMIT", rng.randint(0, 3)] if approx == ["~"] and rng.random() < 0.4 else []
            return [kind, *approx, threshold, *limit]

        def xadd():
            opts = []
            if rng.random() < 0.1:
                opts.append("NOMKSTREAM")
            if rng.random() < 0.2:
                opts += trim()
            id_ = self.fresh_id() if rng.random() < 0.93 else self.some_id()
            return ("XADD", k, *opts, id_, *fields())

        def xreadgroup():
            keys = [k] if rng.random() < 0.8 else KEYS
            ids = [rng.choice([">", ">", ">", "0", self.some_id()]) for _ in keys]
            noack = ["NOACK"] if rng.random() < 0.15 else []
            return ("XREADGROUP", "GROUP", g, c, *cnt(), *noack, "STREAMS", *keys, *ids)

        def xgroup():
            r = rng.random()
            if r < 0.4:
                start = rng.choice(["0", "$", self.some_id()])
                extra = ["MKSTREAM"] if rng.random() < 0.3 else []
                if rng.random() < 0.15:
                    extra += ["ENTRIESREAD", rng.randint(-1, 5)]
                return ("XGROUP", "CREATE", k, g, start, *extra)
            if r < 0.45:
                return ("XGROUP", "DESTROY", k, g)
            if r < 0.75:
                extra = ["ENTRIESREAD", rng.randint(-1, 5)] if rng.random() < 0.3 else []
                return ("XGROUP", "SETID", k, g, rng.choice(["0", "$", self.some_id()]), *extra)
            if r < 0.87:
                return ("XGROUP", "CREATECONSUMER", k, g, c)
            return ("XGROUP", "DELCONSUMER", k, g, c)

        def xpending():
            bounds = ["-", "+"] if rng.random() < 0.6 else [self.bound(True), self.bound(False)]
            return ("XPENDING", k, g, *bounds, rng.randint(0, 5), *([c] if rng.random() < 0.3 else []))

        def xclaim():
            return ("XCLAIM", k, g, c, "0", *[self.some_id() for _ in range(rng.randint(1, 3))],
                    *(["JUSTID"] if rng.random() < 0.7 else []))

        def xautoclaim():
            return ("XAUTOCLAIM", k, g, c, "0", rng.choice(["0", "-", self.some_id()]),
                    *(["COUNT", rng.randint(1, 3)] if rng.random() < 0.5 else []),
                    *(["JUSTID"] if rng.random() < 0.5 else []))

        gens = [
            xadd, xadd, xadd, xadd, xadd, xadd,
            lambda: ("XLEN", k),
            lambda: ("XRANGE", k, self.bound(True), self.bound(False), *cnt()),
            lambda: ("XREVRANGE", k, self.bound(False), self.bound(True), *cnt()),
            lambda: ("XDEL", k, *[self.some_id() for _ in range(rng.randint(1, 3))]),
            lambda: ("XTRIM", k, *trim()),
            xgroup, xgroup, xgroup,
            xreadgroup, xreadgroup, xreadgroup, xreadgroup,
            lambda: ("XACK", k, g, *[self.some_id() for _ in range(rng.randint(1, 3))]),
            lambda: ("XPENDING", k, g),
            xpending, xpending,
            xclaim, xclaim, xautoclaim,
            lambda: ("XINFO", "GROUPS", k),
            lambda: ("XINFO", "CONSUMERS", k, g),
            lambda: ("XINFO", "STREAM", k),
            lambda: ("XREAD", *cnt(), "STREAMS", *KEYS, self.some_id(), self.some_id()),
            lambda: ("EXISTS", k),
            lambda: ("TYPE", k),
            lambda: ("DEL", k) if rng.random() < 0.1 else ("XLEN", k),
            lambda: ("SET", "str", "x"),
        ]
        return rng.choice(gens)()


SEEDS = 8
STEPS = 250


def random_sequence(seed):
    gen = Gen(seed)
    setup = [("XGROUP", "CREATE", k, g, "0", "MKSTREAM") for k in KEYS for g in GROUPS]
    return setup + [gen.command() for _ in range(STEPS)]


def test_random_generator_hits_the_interesting_cases():
    cmds = [c for seed in range(SEEDS) for c in random_sequence(seed)]
    names = {c[0] if c[0] not in ("XGROUP", "XINFO") else f"{c[0]} {c[1]}" for c in cmds}
    for name in ["XADD", "XLEN", "XRANGE", "XREVRANGE", "XDEL", "XTRIM", "XGROUP CREATE",
                 "XGROUP DESTROY", "XGROUP SETID", "XGROUP CREATECONSUMER", "XGROUP DELCONSUMER",
                 "XREADGROUP", "XACK", "XPENDING", "XCLAIM", "XAUTOCLAIM", "XINFO GROUPS",
                 "XINFO CONSUMERS", "XINFO STREAM", "XREAD"]:
        assert name in names, name
    xadds = [c for c in cmds if c[0] == "XADD"]
    for opt in ["NOMKSTREAM", "MAXLEN", "MINID", "~", "=", "LIMIT"]:
        assert sum(opt in c for c in xadds) > 5, opt
    assert sum(any(str(a).endswith("-*") for a in c) for c in xadds) > 20


@pytest.mark.parametrize("seed", range(SEEDS))
@pytest.mark.parametrize("proto", [2, 3], ids=["resp2", "resp3"])
def test_random_sequences_match_redis(pair_factory, proto, seed):  # noqa: F811
    p = pair_factory(proto)
    steps = random_sequence(seed)
    got = run(p, steps)
    kinds = {"error": 0, "delivered": 0, "claimed": 0, "pending": 0, "range": 0}
    for cmd, reply in zip(steps, got):
        if reply.startswith((b"-", b"!")):
            kinds["error"] += 1
        elif cmd[0] == "XREADGROUP" and reply.count(b"\r\n") > 6:
            kinds["delivered"] += 1
        elif cmd[0] in ("XCLAIM", "XAUTOCLAIM") and reply.count(b"\r\n") > 6:
            kinds["claimed"] += 1
        elif cmd[0] == "XPENDING" and len(cmd) > 3 and reply != b"*0\r\n":
            kinds["pending"] += 1
        elif cmd[0] in ("XRANGE", "XREVRANGE") and reply.count(b"\r\n") > 6:
            kinds["range"] += 1
    assert all(v > 0 for v in kinds.values()), kinds


# ---------------------------------------------------------------- XADD


def test_xadd_explicit_ids(pair):  # noqa: F811
    got = run(pair, [
        ("XADD", "s", "1-1", "f", "v"), ("XADD", "s", "1-2", "a", "1", "b", "2"),
        ("XADD", "s", "2", "f", "v"), ("XADD", "s", "2-*", "f", "v"), ("XADD", "s", "3-*", "f", "v"),
        ("XADD", "s", "3-*", "f", "v"), ("XADD", "s", "00007-0003", "f", "v"),
        ("XADD", "s", "7-3", "f", "v"), ("XADD", "s", "7-2", "f", "v"), ("XADD", "s", "6-9", "f", "v"),
        ("XADD", "s", "7-*", "f", "v"), ("XADD", "s", "6-*", "f", "v"), ("XADD", "s", "0-0", "f", "v"),
        ("XLEN", "s"), ("XRANGE", "s", "-", "+"),
        ("XADD", "t", "0-0", "f", "v"), ("XADD", "t", "0", "f", "v"), ("XADD", "t", "0-*", "f", "v"),
        ("XADD", "t", "0-*", "f", "v"), ("XADD", "t", "0-1", "f", "v"), ("EXISTS", "t"),
        ("XRANGE", "t", "-", "+"),
    ])
    assert got[:8] == [bulk(x) for x in ["1-1", "1-2", "2-0", "2-1", "3-0", "3-1", "7-3"]] + [TOP_ITEM]
    assert got[8:13] == [TOP_ITEM, TOP_ITEM, bulk("7-4"), TOP_ITEM, ZERO_ID]  # 0-0 checked first
    assert got[13] == b":8\r\n"
    assert got[14].startswith(b"*8\r\n" + entry("1-1", "f", "v") + entry("1-2", "a", "1", "b", "2"))
    assert got[15:20] == [ZERO_ID, ZERO_ID, bulk("0-1"), bulk("0-2"), TOP_ITEM]


def test_xadd_extreme_ids(pair):  # noqa: F811
    top = "18446744073709551615-18446744073709551615"
    got = run(pair, [
        ("XADD", "s", top, "f", "v"), ("XADD", "s", "*", "f", "v"),
        ("XADD", "s", "18446744073709551615-*", "f", "v"), ("XADD", "s", "1-1", "f", "v"),
        ("XLEN", "s"),
        ("XADD", "t", "5-18446744073709551615", "f", "v"), ("XADD", "t", "5-*", "f", "v"),
        ("XADD", "t", "6-*", "f", "v"), ("XRANGE", "t", "-", "+"),
        ("XADD", "u", "18446744073709551616-0", "f", "v"),
        ("XADD", "u", "1-18446744073709551616", "f", "v"), ("EXISTS", "u"),
    ])
    assert got[0] == bulk(top) and got[1:4] == [EXHAUSTED, EXHAUSTED, EXHAUSTED]
    # a full sequence number within an ms: Redis reports it with this (odd) message
    assert got[6] == err("ERR Elements are too large to be stored")
    assert got[7] == bulk("6-0")
    assert got[9:] == [INVALID_ID, INVALID_ID, b":0\r\n"]


@pytest.mark.parametrize("text, want", [
    ("abc", None), ("1-x", None), ("-1", None), ("-1-0", None), ("1-", None), ("-", None),
    ("+", None), ("$", None), (">", None), ("*-1", None), ("1-1-1", None), ("0x10", None),
    ("1.5", None), ("", None), ("(1-0", None), ("1 ", None),
    (" 1-1", "1-1"), ("+2-1", "2-1"), ("3-+1", "3-1"), ("00006-0001", "6-1"),
], ids=repr)
def test_xadd_id_texts(pair2, text, want):  # noqa: F811
    """Redis parses both parts of an id with strtoull after refusing a leading '-', so leading
    blanks, '+' signs and zeros are accepted; anything else is 'Invalid stream ID'."""
    got = run(pair2, [("XADD", "s", text, "f", "v"), ("XRANGE", "s", "-", "+"), ("EXISTS", "s")])
    assert got[0] == (INVALID_ID if want is None else bulk(want))


def test_xadd_auto_ids(pair):  # noqa: F811
    """`*` ids: the wall clock's ms (or the top item's ms when that is later) and a sequence
    number; checked by property since the two servers' clocks tick between the calls."""
    for conn in (pair.locus, pair.redis):
        before = now_ms()
        ids = [conn.cmd("XADD", "s", "*", "n", str(i)).decode() for i in range(20)]
        after = now_ms()
        parts = [tuple(map(int, x.split("-"))) for x in ids]
        assert parts == sorted(set(parts)), ids
        assert all(before - 5 <= ms <= after + 5 for ms, _ in parts), (before, ids, after)
        for (ms1, seq1), (ms2, seq2) in zip(parts, parts[1:]):
            assert ms2 > ms1 and seq2 == 0 or ms2 == ms1 and seq2 == seq1 + 1, ids
        rows = conn.cmd("XRANGE", "s", "-", "+")
        assert [r[0].decode() for r in rows] == ids
        assert [r[1] for r in rows] == [[b"n", str(i).encode()] for i in range(20)]
        info = conn.cmd("XINFO", "STREAM", "s")
        info = info if isinstance(info, dict) else dict(zip(info[::2], info[1::2]))
        assert info[b"last-generated-id"].decode() == ids[-1]
        assert info[b"entries-added"] == 20 and info[b"length"] == 20
        # ms-* with the current ms of the top item continues its sequence
        ms, seq = parts[-1]
        assert conn.cmd("XADD", "s", f"{ms}-*", "f", "v") == f"{ms}-{seq + 1}".encode()
    # top items in the future: `*` keeps their ms and counts the sequence up
    got = run(pair, [
        ("XADD", "f", "99999999999999-5", "f", "v"), ("XADD", "f", "*", "f", "v"),
        ("XADD", "f", "*", "f", "v"), ("XADD", "f", "99999999999999-*", "f", "v"),
        ("XADD", "f", "99999999999998-*", "f", "v"), ("XADD", "f", "NOMKSTREAM", "*", "f", "v"),
        ("XADD", "missing", "NOMKSTREAM", "*", "f", "v"), ("EXISTS", "missing"),
    ])
    assert got[1:4] == [bulk("99999999999999-6"), bulk("99999999999999-7"), bulk("99999999999999-8")]
    assert got[4] == TOP_ITEM and got[5] == bulk("99999999999999-9")
    assert got[6] == null(pair.proto) and got[7] == b":0\r\n"


def test_xadd_nomkstream_and_fields(pair):  # noqa: F811
    got = run(pair, [
        ("XADD", "s", "NOMKSTREAM", "1-0", "f", "v"), ("EXISTS", "s"),
        ("XADD", "s", "NOMKSTREAM", "MAXLEN", "1", "1-0", "f", "v"), ("EXISTS", "s"),
        ("XADD", "s", "1-0", "f", "1", "f", "2", "", ""),
        ("XADD", "s", "nomkstream", "2-0", "bin", b"\x00\xff\r\n"),
        ("XADD", "s", "NOMKSTREAM", "NOMKSTREAM", "3-0", "f", "v"),
        ("XADD", "s", "4-0", "f", "x" * 5000, "g", "y"),
        ("XRANGE", "s", "-", "+"), ("XREVRANGE", "s", "+", "-", "COUNT", "2"),
        ("XADD", "s", "5-0", "f"), ("XADD", "s", "5-0"), ("XADD", "s", "5-0", "a", "b", "c"),
        ("XADD", "s"), ("XADD", "s", "NOMKSTREAM", "5-0"), ("XADD", "s", "f", "v", "x"),
        ("XLEN", "s"),
    ])
    assert got[0] == null(pair.proto) and got[1] == b":0\r\n"
    assert got[2] == null(pair.proto) and got[3] == b":0\r\n"
    assert entry("1-0", "f", "1", "f", "2", "", "") in got[8]
    assert got[10:14] == [arity("xadd")] * 4
    assert got[15] == INVALID_ID and got[16] == b":4\r\n"


def test_xadd_wrongtype(pair2):  # noqa: F811
    got = run(pair2, [("SET", "str", "x"), ("XADD", "str", "1-0", "f", "v"),
                      ("XADD", "str", "NOMKSTREAM", "1-0", "f", "v"),
                      ("XADD", "str", "MAXLEN", "0", "1-0", "f", "v"), ("GET", "str"),
                      ("RPUSH", "l", "a"), ("XADD", "l", "*", "f", "v")])
    assert got[1:4] == [WRONGTYPE] * 3 and got[6] == WRONGTYPE


def test_xadd_exact_trimming(pair):  # noqa: F811
    got = run(pair, [
        *[("XADD", "s", f"{i}-0", "f", "v") for i in range(1, 6)],
        ("XADD", "s", "MAXLEN", "3", "6-0", "f", "v"), ("XRANGE", "s", "-", "+"),
        ("XADD", "s", "MAXLEN", "=", "2", "7-0", "f", "v"), ("XRANGE", "s", "-", "+"),
        ("XADD", "s", "maxlen", "=", "5", "8-0", "f", "v"), ("XLEN", "s"),
        ("XADD", "s", "MINID", "8", "9-0", "f", "v"), ("XRANGE", "s", "-", "+"),
        ("XADD", "s", "MINID", "=", "9-1", "10-0", "f", "v"), ("XRANGE", "s", "-", "+"),
        ("XADD", "s", "MINID", "100", "11-0", "f", "v"), ("XLEN", "s"), ("EXISTS", "s"),
        ("XINFO", "STREAM", "s"),
        ("XADD", "s", "MAXLEN", "0", "12-0", "f", "v"), ("XLEN", "s"),
        ("XADD", "s", "NOMKSTREAM", "MAXLEN", "1", "13-0", "f", "v"),
        ("XADD", "s", "NOMKSTREAM", "MAXLEN", "1", "14-0", "f", "v"), ("XRANGE", "s", "-", "+"),
        ("XADD", "s", "MAXLEN", "~", "1", "15-0", "f", "v"), ("XRANGE", "s", "-", "+"),
        ("XADD", "s", "MAXLEN", "~", "1", "LIMIT", "10", "16-0", "f", "v"), ("XLEN", "s"),
        ("XADD", "s", "MAXLEN", "~", "5", "LIMIT", "0", "17-0", "f", "v"), ("XLEN", "s"),
        ("XINFO", "STREAM", "s"),
    ])
    assert got[5] == bulk("6-0")
    assert got[6] == b"*3\r\n" + entry("4-0", "f", "v") + entry("5-0", "f", "v") + entry("6-0", "f", "v")
    assert got[12] == b"*2\r\n" + entry("8-0", "f", "v") + entry("9-0", "f", "v")
    assert got[16:18] == [b":0\r\n", b":1\r\n"]


def test_xadd_approximate_trim_of_a_single_node(pair):  # noqa: F811
    """`~` only removes whole nodes; a stream of a few entries is one node, which goes as a
    whole (the new entry included) once every entry in it may be trimmed."""
    got = run(pair, [
        ("XADD", "s", "1-0", "f", "v"), ("XADD", "s", "2-0", "f", "v"),
        ("XADD", "s", "MAXLEN", "~", "1", "3-0", "f", "v"), ("XLEN", "s"),
        ("XADD", "s", "MAXLEN", "~", "0", "4-0", "f", "v"), ("XLEN", "s"), ("EXISTS", "s"),
        ("XINFO", "STREAM", "s"),
        ("XADD", "s", "5-0", "f", "v"), ("XADD", "s", "MINID", "~", "6", "6-0", "f", "v"),
        ("XLEN", "s"), ("XADD", "s", "MINID", "~", "9", "7-0", "f", "v"), ("XLEN", "s"),
        ("XINFO", "STREAM", "s"),
    ])
    assert got[3] == b":3\r\n" and got[5] == b":0\r\n" and got[6] == b":1\r\n"
    assert got[10] == b":2\r\n" and got[12] == b":0\r\n"


@pytest.mark.parametrize("args, reply", [
    (("MAXLEN", "-1"), err("ERR The MAXLEN argument must be >= 0.")),
    (("MAXLEN", "x"), NOT_INT),
    (("MAXLEN", "1.5"), NOT_INT),
    (("MAXLEN", "=", "x"), NOT_INT),
    (("MAXLEN",), NOT_INT),  # MAXLEN takes the id as its count
    (("MAXLEN", "1", "LIMIT", "10"), LIMIT_WITHOUT_TILDE),
    (("MAXLEN", "=", "1", "LIMIT", "10"), LIMIT_WITHOUT_TILDE),
    (("MINID", "1", "LIMIT", "10"), LIMIT_WITHOUT_TILDE),
    (("LIMIT", "10"), LIMIT_WITHOUT_STRATEGY),
    (("MAXLEN", "~", "1", "LIMIT", "-1"), err("ERR The LIMIT argument must be >= 0.")),
    (("MAXLEN", "~", "1", "LIMIT", "x"), NOT_INT),
    (("MAXLEN", "1", "MINID", "1"), MAXLEN_AND_MINID),
    (("MINID", "1", "MAXLEN", "1"), MAXLEN_AND_MINID),
    (("MAXLEN", "1", "MAXLEN", "2"), MAXLEN_AND_MINID),
    (("MINID", "x"), INVALID_ID),
    (("MINID", "(5"), INVALID_ID),
    (("MINID", "~", "-"), INVALID_ID),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_xadd_trim_option_errors(pair2, args, reply):  # noqa: F811
    got = run(pair2, [("XADD", "s", "1-0", "f", "v"), ("XADD", "s", *args, "2-0", "f", "v"),
                      ("XLEN", "s"), ("XTRIM", "s", *args)])
    assert got[1] == reply and got[2] == b":1\r\n"


def test_approximate_trimming_removes_whole_nodes(pair):  # noqa: F811
    """250 small entries make nodes of 100 (stream-node-max-entries): `~` removes only whole
    nodes, LIMIT caps the entries removed (a node that does not fit stops the trim), LIMIT 0
    means no limit."""
    fill(pair, "s", 250)
    got = run(pair, [
        ("XADD", "s", "MAXLEN", "~", "200", "251-0", "f", "v"), ("XLEN", "s"),
        ("XADD", "s", "MAXLEN", "~", "150", "252-0", "f", "v"), ("XLEN", "s"),
        ("XRANGE", "s", "-", "+", "COUNT", "1"),
        ("XADD", "s", "MAXLEN", "~", "50", "LIMIT", "99", "253-0", "f", "v"), ("XLEN", "s"),
        ("XADD", "s", "MAXLEN", "~", "50", "LIMIT", "100", "254-0", "f", "v"), ("XLEN", "s"),
        ("XRANGE", "s", "-", "+", "COUNT", "1"), ("XINFO", "STREAM", "s"),
        ("XTRIM", "s", "MAXLEN", "~", "0"), ("XLEN", "s"), ("XINFO", "STREAM", "s"),
    ])
    assert got[1] == b":251\r\n" and got[3] == b":152\r\n"
    assert got[4] == b"*1\r\n" + entry("101-0", "f", "v")
    assert got[6] == b":153\r\n" and got[8] == b":54\r\n"
    assert got[11] == b":54\r\n" and got[12] == b":0\r\n"


def test_node_size_settings(pair2):  # noqa: F811
    """stream-node-max-entries / stream-node-max-bytes decide where nodes close, and so what
    `~` trims; CONFIG GET reports them."""
    try:
        run(pair2, [
            ("CONFIG", "SET", "stream-node-max-entries", "10"),
            ("CONFIG", "GET", "stream-node-max-entries"),
        ])
        fill(pair2, "s", 35)
        run(pair2, [
            ("XTRIM", "s", "MAXLEN", "~", "12"), ("XLEN", "s"),
            ("XADD", "s", "MAXLEN", "~", "3", "36-0", "f", "v"), ("XLEN", "s"),
            ("XRANGE", "s", "-", "+", "COUNT", "1"),
            ("CONFIG", "SET", "stream-node-max-entries", "0"),
            ("CONFIG", "SET", "stream-node-max-bytes", "300"),
            ("CONFIG", "GET", "stream-node-max-bytes"),
        ])
        fill(pair2, "t", 40, value="x" * 30)
        run(pair2, [
            ("XTRIM", "t", "MAXLEN", "~", "20"), ("XLEN", "t"),
            ("XTRIM", "t", "MAXLEN", "~", "5"), ("XLEN", "t"),
        ])
    finally:
        run(pair2, [
            ("CONFIG", "SET", "stream-node-max-entries", "100"),
            ("CONFIG", "SET", "stream-node-max-bytes", "4096"),
        ])


def test_approximate_trimming_by_minid_and_limit(pair2):  # noqa: F811
    fill(pair2, "s", 250)
    got = run(pair2, [
        ("XTRIM", "s", "MINID", "~", "150"), ("XRANGE", "s", "-", "+", "COUNT", "1"),
        ("XTRIM", "s", "MINID", "~", "200"), ("XTRIM", "s", "MINID", "~", "201"),
        ("XTRIM", "s", "MINID", "~", "251", "LIMIT", "50"), ("XLEN", "s"),
        ("XTRIM", "s", "MINID", "~", "251", "LIMIT", "49"), ("XLEN", "s"),
        ("XTRIM", "s", "MINID", "~", "251"), ("XLEN", "s"), ("EXISTS", "s"),
        ("XADD", "s", "300-0", "f", "v"), ("XINFO", "STREAM", "s"),
    ])
    assert got[0] == b":100\r\n" and got[2] == b":0\r\n" and got[3] == b":100\r\n"
    assert got[4] == b":50\r\n" and got[5] == b":0\r\n"
    fill(pair2, "t", 250)
    got = run(pair2, [
        ("XTRIM", "t", "MAXLEN", "~", "0", "LIMIT", "0"), ("XLEN", "t"),
        ("XADD", "u", "1-0", "f", "v"),
    ])
    assert got[0] == b":250\r\n"
    fill(pair2, "u", 250, start=2)
    got = run(pair2, [
        ("XTRIM", "u", "MAXLEN", "~", "0", "LIMIT", "1"), ("XTRIM", "u", "MAXLEN", "~", "0", "LIMIT", "100"),
        ("XTRIM", "u", "MAXLEN", "~", "1", "LIMIT", "1000000"), ("XLEN", "u"),
        ("XTRIM", "u", "MAXLEN", "=", "10"), ("XLEN", "u"), ("XRANGE", "u", "-", "+", "COUNT", "1"),
    ])
    assert got[0] == b":0\r\n" and got[1] == b":100\r\n" and got[2] == b":100\r\n"
    assert got[4] == b":41\r\n"


def test_approximate_trimming_default_limit(pair2):  # noqa: F811
    """Without LIMIT, `~` removes at most 100 * stream-node-max-entries = 10000 entries."""
    fill(pair2, "s", 10250)
    got = run(pair2, [("XTRIM", "s", "MAXLEN", "~", "0"), ("XLEN", "s"),
                      ("XADD", "s", "MAXLEN", "~", "0", "10251-0", "f", "v"), ("XLEN", "s"),
                      ("XINFO", "STREAM", "s")])
    assert got[0] == b":10000\r\n" and got[1] == b":250\r\n" and got[3] == b":0\r\n"


def test_approximate_trimming_with_deleted_entries(pair2):  # noqa: F811
    """Deleted entries still take their slots in a node (new entries go to a new node once
    valid + deleted reach 100); `~` counts only a node's live entries."""
    fill(pair2, "s", 250)
    steps = [("XDEL", "s", *[f"{i}-0" for i in range(1, 100, 2)]),
             ("XDEL", "s", *[f"{i}-0" for i in range(150, 200)]), ("XLEN", "s")]
    steps += [("XADD", "s", f"{i}-0", "f", "v") for i in range(251, 320)]
    steps += [("XTRIM", "s", "MAXLEN", "~", "190"), ("XLEN", "s"),
              ("XTRIM", "s", "MAXLEN", "~", "100", "LIMIT", "50"), ("XLEN", "s"),
              ("XTRIM", "s", "MAXLEN", "~", "100"), ("XLEN", "s"),
              ("XTRIM", "s", "MAXLEN", "~", "60"), ("XLEN", "s"),
              ("XRANGE", "s", "-", "+", "COUNT", "2"), ("XINFO", "STREAM", "s"),
              ("XTRIM", "s", "MINID", "~", "300"), ("XLEN", "s"), ("XINFO", "STREAM", "s")]
    run(pair2, steps)


def test_approximate_trimming_counts_node_bytes(pair2):  # noqa: F811
    """A node is also full once its listpack would reach stream-node-max-bytes (4096): with
    1500-byte values a node holds two entries, and `~` trims in steps of two."""
    big = "x" * 1500
    steps = [("XADD", "s", f"{i}-0", "f", big) for i in range(1, 11)]
    steps += [("XTRIM", "s", "MAXLEN", "~", "5"), ("XLEN", "s"), ("XRANGE", "s", "-", "+", "COUNT", "0"),
              ("XTRIM", "s", "MAXLEN", "~", "3"), ("XLEN", "s"),
              ("XADD", "s", "MAXLEN", "~", "1", "11-0", "f", big), ("XLEN", "s"),
              ("XTRIM", "s", "MINID", "~", "11"), ("XLEN", "s")]
    got = run(pair2, steps)
    assert got[10:13] == [b":4\r\n", b":6\r\n", b"*-1\r\n"]
    assert got[13:15] == [b":2\r\n", b":4\r\n"] and got[16] == b":1\r\n"


# ---------------------------------------------------------------- XRANGE, XREVRANGE, XLEN


RANGE_DATA = [("XADD", "s", "1-1", "a", "1"), ("XADD", "s", "1-2", "b", "2", "c", "3"),
              ("XADD", "s", "2-0", "a", "1"), ("XADD", "s", "5-0", "x", "y"),
              ("XADD", "s", "5-1", "x", "y"), ("XADD", "s", "7-3", "x", "y")]


def test_xrange_and_xrevrange(pair):  # noqa: F811
    max_id = "18446744073709551615-18446744073709551615"
    got = run(pair, [
        *RANGE_DATA,
        ("XRANGE", "s", "-", "+"), ("XRANGE", "s", "-", "+", "COUNT", "2"),
        ("XRANGE", "s", "-", "+", "COUNT", "0"), ("XRANGE", "s", "-", "+", "COUNT", "-1"),
        ("XRANGE", "s", "-", "+", "count", "1", "COUNT", "3"),
        ("XRANGE", "s", "-", "+", "COUNT", "9223372036854775807"),
        ("XRANGE", "s", "5", "5"), ("XRANGE", "s", "1", "1"), ("XRANGE", "s", "5-0", "5"),
        ("XRANGE", "s", "(1-1", "+"), ("XRANGE", "s", "-", "(5-1"), ("XRANGE", "s", "(5", "+"),
        ("XRANGE", "s", "-", "(5"), ("XRANGE", "s", "(0-0", "+"), ("XRANGE", "s", "-", f"({max_id}"),
        ("XRANGE", "s", "(1-1", "(1-2"), ("XRANGE", "s", "(1-1", "(1-3"), ("XRANGE", "s", "5-1", "5-0"),
        ("XRANGE", "s", "0", "18446744073709551615"), ("XRANGE", "s", "18446744073709551615", "0"),
        ("XRANGE", "s", "2-0", "2-0"), ("XRANGE", "s", "3", "4"), ("XRANGE", "s", "0-0", "0-0"),
        ("XRANGE", "s", "+", "-"), ("XRANGE", "s", "-", "-"), ("XRANGE", "s", "+", "+"),
        ("XRANGE", "missing", "-", "+"), ("XRANGE", "missing", "-", "+", "COUNT", "0"),
        ("XREVRANGE", "s", "+", "-"), ("XREVRANGE", "s", "-", "+"), ("XREVRANGE", "s", "+", "-", "COUNT", "2"),
        ("XREVRANGE", "s", "5", "5"), ("XREVRANGE", "s", "(5-1", "-"), ("XREVRANGE", "s", "+", "(5-1"),
        ("XREVRANGE", "s", "5", "-", "COUNT", "0"), ("XREVRANGE", "s", "(5", "(1"),
        ("XREVRANGE", "s", "+", "-", "COUNT", "-5"), ("XREVRANGE", "missing", "+", "-"),
        ("XLEN", "s"), ("XLEN", "missing"),
    ])
    assert got[6] == b"*6\r\n" + b"".join([
        entry("1-1", "a", "1"), entry("1-2", "b", "2", "c", "3"), entry("2-0", "a", "1"),
        entry("5-0", "x", "y"), entry("5-1", "x", "y"), entry("7-3", "x", "y")])
    assert got[8] == got[9] == null_array(pair.proto)  # COUNT 0 and negative COUNT: null
    assert got[10] == b"*3\r\n" + entry("1-1", "a", "1") + entry("1-2", "b", "2", "c", "3") + entry("2-0", "a", "1")
    assert got[12] == got[14] == b"*2\r\n" + entry("5-0", "x", "y") + entry("5-1", "x", "y")
    assert got[33] == b"*0\r\n"  # a missing key: an empty array even with COUNT 0
    assert got[40] == got[42] == null_array(pair.proto)
    assert got[35] == b"*0\r\n" and got[-2] == b":6\r\n" and got[-1] == b":0\r\n"


@pytest.mark.parametrize("cmd", ["XRANGE", "XREVRANGE"])
def test_xrange_errors(pair2, cmd):  # noqa: F811
    max_id = "18446744073709551615-18446744073709551615"
    if cmd == "XRANGE":
        bounds = lambda start, end: (start, end)  # noqa: E731
    else:
        bounds = lambda start, end: (end, start)  # noqa: E731
    got = run(pair2, [
        *RANGE_DATA,
        (cmd, "s", *bounds("(-", "+")), (cmd, "s", *bounds("-", "(+")),
        (cmd, "s", *bounds(f"({max_id}", "+")), (cmd, "s", *bounds("-", "(0-0")),
        (cmd, "s", *bounds(f"({max_id}", "(0-0")),
        (cmd, "s", *bounds("abc", "+")), (cmd, "s", *bounds("-", "1-1-1")), (cmd, "s", *bounds("((1", "+")),
        (cmd, "s", *bounds("1-*", "+")), (cmd, "s", *bounds("5-", "+")), (cmd, "s", *bounds("", "+")),
        (cmd, "s", *bounds("-", "-1")),
        (cmd, "s", "-", "+", "COUNT", "x"), (cmd, "s", "-", "+", "COUNT"), (cmd, "s", "-", "+", "FOO", "1"),
        (cmd, "s", "-", "+", "COUNT", "18446744073709551616"), (cmd, "s", "-", "+", "COUNT", "1.0"),
        (cmd, "s"), (cmd, "s", "-"), (cmd,),
        ("SET", "str", "x"), (cmd, "str", "-", "+"), (cmd, "str", "abc", "+"),
        (cmd, "missing", "abc", "+"), (cmd, "missing", *bounds(f"({max_id}", "+")),
    ])
    n = len(RANGE_DATA)
    assert got[n:n + 2] == [INVALID_ID, INVALID_ID]
    assert got[n + 2] == got[n + 4] == err("ERR invalid start ID for the interval")
    assert got[n + 3] == err("ERR invalid end ID for the interval")
    assert got[n + 5:n + 12] == [INVALID_ID] * 7
    assert got[n + 12:n + 14] == [NOT_INT, SYNTAX]
    assert got[n + 17:n + 20] == [arity(cmd.lower())] * 3
    assert got[n + 21] == WRONGTYPE and got[n + 22] == got[n + 23] == INVALID_ID


def test_xlen_xdel(pair):  # noqa: F811
    got = run(pair, [
        *RANGE_DATA,
        ("XDEL", "s", "1-2"), ("XDEL", "s", "1-2"), ("XDEL", "s", "2-0", "9-9", "2-0", "5-0"),
        ("XDEL", "s", "5"), ("XDEL", "s", "1-1", "abc"), ("XDEL", "s", "7-3", "-"), ("XLEN", "s"),
        ("XRANGE", "s", "-", "+"), ("XDEL", "missing", "1-0"), ("XDEL", "s"), ("XLEN", "s", "x"),
        ("XINFO", "STREAM", "s"),
        ("XDEL", "s", "1-1", "5-1", "7-3"), ("XLEN", "s"), ("EXISTS", "s"), ("XRANGE", "s", "-", "+"),
        ("XINFO", "STREAM", "s"), ("XADD", "s", "7-3", "f", "v"), ("XADD", "s", "8-0", "f", "v"),
        ("XINFO", "STREAM", "s"),
        ("SET", "str", "x"), ("XDEL", "str", "1-0"), ("XLEN", "str"), ("XDEL", "str", "abc"),
    ])
    n = len(RANGE_DATA)
    assert got[n:n + 4] == [b":1\r\n", b":0\r\n", b":2\r\n", b":0\r\n"]
    assert got[n + 4:n + 6] == [INVALID_ID, INVALID_ID]  # nothing deleted when any id is bad
    assert got[n + 6] == b":3\r\n"
    assert got[n + 8] == b":0\r\n" and got[n + 9] == arity("xdel") and got[n + 10] == arity("xlen")
    assert got[n + 12:n + 15] == [b":3\r\n", b":0\r\n", b":1\r\n"]  # an emptied stream stays
    assert got[n + 17] == TOP_ITEM
    assert got[-3:] == [WRONGTYPE, WRONGTYPE, WRONGTYPE]


def test_xtrim(pair):  # noqa: F811
    got = run(pair, [
        *[("XADD", "s", f"{i}-{j}", "f", "v") for i in range(1, 6) for j in range(2)],
        ("XTRIM", "s", "MAXLEN", "8"), ("XTRIM", "s", "MAXLEN", "8"), ("XRANGE", "s", "-", "(2"),
        ("XTRIM", "s", "MAXLEN", "=", "6"), ("XTRIM", "s", "maxlen", "~", "0", "LIMIT", "1"),
        ("XLEN", "s"), ("XTRIM", "s", "MINID", "3-1"), ("XRANGE", "s", "-", "(4"),
        ("XTRIM", "s", "MINID", "=", "4"), ("XTRIM", "s", "MINID", "0"), ("XTRIM", "s", "MINID", "5-1"),
        ("XRANGE", "s", "-", "+"), ("XINFO", "STREAM", "s"),
        ("XTRIM", "s", "MAXLEN", "0"), ("XLEN", "s"), ("EXISTS", "s"), ("XINFO", "STREAM", "s"),
        ("XTRIM", "missing", "MAXLEN", "0"), ("EXISTS", "missing"),
        ("XTRIM", "s", "MAXLEN", "1", "LIMIT", "5"), ("XTRIM", "s", "LIMIT", "5"),
        ("XTRIM", "s", "MAXLEN", "~", "1", "LIMIT", "1", "LIMIT", "2"),
        ("XTRIM", "s", "FOO", "1"), ("XTRIM", "s", "MAXLEN", "1", "FOO"), ("XTRIM", "s", "MAXLEN"),
        ("XTRIM", "s"), ("XTRIM", "s", "MINID", "(5"), ("XTRIM", "s", "MAXLEN", "-1"),
        ("SET", "str", "x"), ("XTRIM", "str", "MAXLEN", "0"),
    ])
    assert got[10:12] == [b":2\r\n", b":0\r\n"]
    assert got[13:17] == [b":2\r\n", b":0\r\n", b":6\r\n", b":1\r\n"]
    assert got[18:21] == [b":1\r\n", b":0\r\n", b":3\r\n"]
    assert got[23:26] == [b":1\r\n", b":0\r\n", b":1\r\n"]  # an emptied stream stays
    assert got[27:29] == [b":0\r\n", b":0\r\n"]
    assert got[29:31] == [LIMIT_WITHOUT_TILDE, LIMIT_WITHOUT_STRATEGY]
    assert got[31] == b":0\r\n"  # the last LIMIT wins
    assert got[32:36] == [SYNTAX, SYNTAX, arity("xtrim"), arity("xtrim")]
    assert got[36] == INVALID_ID and got[37] == err("ERR The MAXLEN argument must be >= 0.")
    assert got[-1] == WRONGTYPE


# ---------------------------------------------------------------- XGROUP, XINFO


def test_xgroup_create(pair):  # noqa: F811
    got = run(pair, [
        ("XGROUP", "CREATE", "s", "g", "$"), ("EXISTS", "s"),
        ("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"), ("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"),
        ("XGROUP", "CREATE", "s", "g", "0"), ("XGROUP", "CREATE", "s", "z", "0", "mkstream"),
        ("TYPE", "s"), ("XLEN", "s"), ("XINFO", "STREAM", "s"), ("XINFO", "GROUPS", "s"),
        ("XADD", "s", "1-0", "a", "1"), ("XADD", "s", "2-0", "b", "2"), ("XADD", "s", "3-0", "c", "3"),
        ("XGROUP", "CREATE", "s", "g3", "1-0", "ENTRIESREAD", "1"),
        ("XGROUP", "CREATE", "s", "g4", "1-0", "ENTRIESREAD", "0"),
        ("XGROUP", "CREATE", "s", "g5", "1-0", "ENTRIESREAD", "-1"),
        ("XGROUP", "CREATE", "s", "g6", "1-0", "ENTRIESREAD", "-2"),
        ("XGROUP", "CREATE", "s", "g7", "1-0", "ENTRIESREAD", "4"),
        ("XGROUP", "CREATE", "s", "g8", "1-0", "ENTRIESREAD", "x"),
        ("XGROUP", "CREATE", "s", "g9", "1-0", "ENTRIESREAD"),
        ("XGROUP", "CREATE", "s", "g10", "1-0", "FOO"),
        ("XGROUP", "CREATE", "s", "g11", "abc"), ("XGROUP", "CREATE", "s", "g12", "5-0"),
        ("XGROUP", "CREATE", "s", "g13", "+"), ("XGROUP", "CREATE", "s", "g14", "-"),
        ("XGROUP", "CREATE", "s", "g15", ">"), ("XGROUP", "CREATE", "s", "g16", "$", "ENTRIESREAD", "2"),
        ("XGROUP", "CREATE", "s", "g17", "1"), ("XGROUP", "CREATE", "s", "G", "2-0", "MKSTREAM"),
        ("XGROUP", "CREATE", "s", "g18", "3-0", "ENTRIESREAD", "3", "MKSTREAM"),
        ("XINFO", "GROUPS", "s"), ("XINFO", "STREAM", "s"),
    ])
    assert got[0] == NO_KEY_XGROUP and got[1] == b":0\r\n"
    assert got[2] == b"+OK\r\n" and got[3] == got[4] == err("BUSYGROUP Consumer Group name already exists")
    assert got[6] == b"+stream\r\n" and got[7] == b":0\r\n"
    assert got[16] == err("ERR value for ENTRIESREAD must be positive or -1")
    assert got[18] == NOT_INT
    assert got[19] == got[20] == err(
        "ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP.")
    assert got[21] == INVALID_ID and got[22] == b"+OK\r\n" and got[23:26] == [INVALID_ID] * 3


def test_xgroup_destroy_setid_consumers(pair):  # noqa: F811
    got = run(pair, [
        ("XADD", "s", "1-0", "a", "1"), ("XADD", "s", "2-0", "b", "2"), ("XADD", "s", "3-0", "c", "3"),
        ("XGROUP", "CREATE", "s", "g", "0"), ("XGROUP", "CREATE", "s", "h", "0"),
        ("XGROUP", "SETID", "s", "g", "2-0"), ("XINFO", "GROUPS", "s"),
        ("XGROUP", "SETID", "s", "g", "$"), ("XINFO", "GROUPS", "s"),
        ("XGROUP", "SETID", "s", "g", "0", "ENTRIESREAD", "0"), ("XINFO", "GROUPS", "s"),
        ("XGROUP", "SETID", "s", "g", "$", "ENTRIESREAD", "3"), ("XINFO", "GROUPS", "s"),
        ("XGROUP", "SETID", "s", "g", "1-0", "ENTRIESREAD", "7"), ("XINFO", "GROUPS", "s"),
        ("XGROUP", "SETID", "s", "g", "9-0"), ("XINFO", "GROUPS", "s"),
        ("XGROUP", "SETID", "s", "g", "abc"), ("XGROUP", "SETID", "s", "g", "2-0", "ENTRIESREAD", "x"),
        ("XGROUP", "SETID", "s", "g", "2-0", "ENTRIESREAD", "-5"),
        ("XGROUP", "SETID", "s", "g", "2-0", "FOO", "1"), ("XGROUP", "SETID", "s", "g", "2-0", "ENTRIESREAD"),
        ("XGROUP", "SETID", "s", "nog", "2-0"), ("XGROUP", "SETID", "missing", "g", "2-0"),
        ("XGROUP", "CREATECONSUMER", "s", "h", "alice"), ("XGROUP", "CREATECONSUMER", "s", "h", "alice"),
        ("XGROUP", "CREATECONSUMER", "s", "h", "bob"), ("XGROUP", "CREATECONSUMER", "s", "nog", "alice"),
        ("XGROUP", "CREATECONSUMER", "missing", "h", "alice"), ("XINFO", "GROUPS", "s"),
        ("XREADGROUP", "GROUP", "h", "bob", "COUNT", "2", "STREAMS", "s", ">"),
        ("XGROUP", "DELCONSUMER", "s", "h", "bob"), ("XGROUP", "DELCONSUMER", "s", "h", "bob"),
        ("XGROUP", "DELCONSUMER", "s", "h", "nobody"), ("XGROUP", "DELCONSUMER", "s", "nog", "alice"),
        ("XGROUP", "DELCONSUMER", "missing", "h", "alice"), ("XINFO", "GROUPS", "s"), ("XPENDING", "s", "h"),
        ("XGROUP", "DESTROY", "s", "g"), ("XGROUP", "DESTROY", "s", "g"), ("XGROUP", "DESTROY", "missing", "g"),
        ("XINFO", "GROUPS", "s"), ("XINFO", "STREAM", "s"),
    ])
    assert got[5] == got[7] == got[9] == b"+OK\r\n"
    assert got[17] == INVALID_ID and got[18] == NOT_INT
    assert got[19] == err("ERR value for ENTRIESREAD must be positive or -1")
    assert got[20] == got[21] == err(
        "ERR unknown subcommand or wrong number of arguments for 'SETID'. Try XGROUP HELP.")
    assert got[22] == nogroup_xgroup("s", "nog") and got[23] == NO_KEY_XGROUP
    assert got[24:29] == [b":1\r\n", b":0\r\n", b":1\r\n", nogroup_xgroup("s", "nog"), NO_KEY_XGROUP]
    assert got[31:36] == [b":2\r\n", b":0\r\n", b":0\r\n", nogroup_xgroup("s", "nog"), NO_KEY_XGROUP]
    assert got[38:41] == [b":1\r\n", b":0\r\n", NO_KEY_XGROUP]


def test_xgroup_arity_and_wrongtype(pair2):  # noqa: F811
    got = run(pair2, [
        ("XGROUP",), ("XGROUP", "FOO"), ("XGROUP", "FOO", "s", "g"), ("XGROUP", "CREATE", "s"),
        ("XGROUP", "CREATE", "s", "g"), ("XGROUP", "DESTROY", "s"), ("XGROUP", "SETID", "s", "g"),
        ("XGROUP", "CREATECONSUMER", "s", "g"), ("XGROUP", "DELCONSUMER", "s", "g"),
        ("XGROUP", "DESTROY", "s", "g", "x"),
        ("SET", "str", "x"), ("XGROUP", "CREATE", "str", "g", "$"),
        ("XGROUP", "CREATE", "str", "g", "$", "MKSTREAM"), ("XGROUP", "DESTROY", "str", "g"),
        ("XGROUP", "SETID", "str", "g", "$"), ("XGROUP", "CREATECONSUMER", "str", "g", "c"),
        ("XGROUP", "DELCONSUMER", "str", "g", "c"),
    ])
    assert got[0] == arity("xgroup")
    assert got[1] == err("ERR unknown subcommand 'FOO'. Try XGROUP HELP.")
    assert got[3] == arity("xgroup|create") and got[5] == arity("xgroup|destroy")
    assert got[11:] == [WRONGTYPE] * 6


def test_xinfo_groups_entries_read_and_lag(pair):  # noqa: F811
    """entries-read and lag as Redis 7.0 keeps / estimates them: exact while no tombstone lies
    after the group's last id, estimated from entries-added / first id otherwise, null when it
    cannot tell. Groups are listed by name."""
    got = run(pair, [
        *[("XADD", "s", f"{i}-0", "f", str(i)) for i in range(1, 6)],
        ("XGROUP", "CREATE", "s", "g1", "0"), ("XGROUP", "CREATE", "s", "g2", "$"),
        ("XGROUP", "CREATE", "s", "g3", "2-0"), ("XGROUP", "CREATE", "s", "g10", "0-1"),
        ("XGROUP", "CREATE", "s", "g4", "1-0"), ("XGROUP", "CREATE", "s", "g5", "9-0"),
        ("XINFO", "GROUPS", "s"),
        ("XREADGROUP", "GROUP", "g1", "alice", "COUNT", "2", "STREAMS", "s", ">"), ("XINFO", "GROUPS", "s"),
        ("XDEL", "s", "3-0"), ("XINFO", "GROUPS", "s"), ("XINFO", "STREAM", "s"),
        ("XDEL", "s", "4-0", "1-0"), ("XINFO", "GROUPS", "s"),
        ("XREADGROUP", "GROUP", "g1", "alice", "STREAMS", "s", ">"), ("XINFO", "GROUPS", "s"),
        ("XREADGROUP", "GROUP", "g3", "bob", "STREAMS", "s", ">"), ("XINFO", "GROUPS", "s"),
        ("XADD", "s", "6-0", "f", "6"), ("XINFO", "GROUPS", "s"),
        ("XREADGROUP", "GROUP", "g4", "bob", "COUNT", "1", "STREAMS", "s", ">"), ("XINFO", "GROUPS", "s"),
        ("XTRIM", "s", "MAXLEN", "2"), ("XINFO", "GROUPS", "s"), ("XINFO", "STREAM", "s"),
        ("XDEL", "s", "5-0", "6-0"), ("XINFO", "GROUPS", "s"), ("XINFO", "STREAM", "s"),
        ("XADD", "s", "7-0", "f", "7"), ("XINFO", "GROUPS", "s"),
        ("XREADGROUP", "GROUP", "g2", "carol", "STREAMS", "s", ">"), ("XINFO", "GROUPS", "s"),
    ])
    # (entries-read, lag) of g1, g10, g2, g3, g4, g5 after each step
    want = {
        11: [(None, 5), (None, 5), (None, 0), (None, None), (None, 4), (None, None)],
        13: [(2, 3), (None, 5), (None, 0), (None, None), (None, 4), (None, None)],
        15: [(2, None), (None, None), (None, 0), (None, None), (None, None), (None, None)],
        20: [(3, 2), (None, None), (None, 0), (None, None), (None, None), (None, None)],
        22: [(3, 2), (None, None), (None, 0), (5, 0), (None, None), (None, None)],
        24: [(3, 3), (None, None), (None, None), (5, 1), (None, None), (None, None)],
        26: [(3, 3), (None, None), (None, None), (5, 1), (None, None), (None, None)],
        28: [(3, 3), (None, 2), (None, 1), (5, 1), (None, 2), (None, None)],
        31: [(3, 3), (None, 0), (None, 0), (5, 1), (None, 0), (None, None)],
        34: [(3, 4), (None, 1), (None, 1), (5, 2), (None, 1), (None, None)],
        36: [(3, 4), (None, 1), (7, 0), (5, 2), (None, 1), (None, None)],
    }
    for i, rows in want.items():
        info = groups(got[i])
        assert list(info) == ["g1", "g10", "g2", "g3", "g4", "g5"]  # by name
        assert [(g["entries-read"], g["lag"]) for g in info.values()] == rows, i


def test_xinfo_groups_lag_on_a_fresh_and_an_emptied_stream(pair):  # noqa: F811
    run(pair, [
        ("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"), ("XINFO", "GROUPS", "s"),
        ("XADD", "s", "1-0", "f", "v"), ("XADD", "s", "2-0", "f", "v"), ("XINFO", "GROUPS", "s"),
        ("XGROUP", "CREATE", "s", "h", "$"), ("XGROUP", "CREATE", "s", "i", "1-0"),
        ("XGROUP", "CREATE", "s", "j", "0-0", "ENTRIESREAD", "5"), ("XINFO", "GROUPS", "s"),
        ("XDEL", "s", "1-0", "2-0"), ("XINFO", "GROUPS", "s"), ("XINFO", "STREAM", "s"),
        ("XGROUP", "SETID", "s", "g", "0"), ("XINFO", "GROUPS", "s"),
        ("XADD", "s", "3-0", "f", "v"), ("XINFO", "GROUPS", "s"),
        ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"), ("XINFO", "GROUPS", "s"),
        ("XTRIM", "s", "MAXLEN", "0"), ("XINFO", "GROUPS", "s"),
        ("XGROUP", "CREATE", "e", "g", "0", "MKSTREAM"), ("XGROUP", "SETID", "e", "g", "5-0"),
        ("XINFO", "GROUPS", "e"),
    ])


def test_xinfo_stream(pair):  # noqa: F811
    got = run(pair, [
        ("XINFO", "STREAM", "s"), ("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"),
        ("XINFO", "STREAM", "s"),
        *RANGE_DATA, ("XINFO", "STREAM", "s"),
        ("XDEL", "s", "1-1"), ("XINFO", "STREAM", "s"), ("XDEL", "s", "2-0"), ("XINFO", "STREAM", "s"),
        ("XDEL", "s", "7-3"), ("XINFO", "STREAM", "s"),
        ("XTRIM", "s", "MAXLEN", "1"), ("XINFO", "STREAM", "s"),
        ("XADD", "s", "MAXLEN", "0", "8-0", "f", "v"), ("XINFO", "STREAM", "s"),
        ("XADD", "s", "9-0", "f", "v"), ("XINFO", "STREAM", "s"),
        ("XINFO", "STREAM", "s", "FOO"), ("XINFO", "STREAM", "missing"), ("XINFO", "STREAM", "s", "FULL", "FOO"),
    ])
    assert got[0] == err("ERR no such key")
    assert got[-3] == err("ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP.")
    info = parse(got[-4])
    assert info[0] == ("*" if pair.proto == 2 else "%")
    info = as_dict(info)
    assert list(info) == ["length", "radix-tree-keys", "radix-tree-nodes", "last-generated-id",
                          "max-deleted-entry-id", "entries-added", "recorded-first-entry-id",
                          "groups", "first-entry", "last-entry"]
    assert [info[k] for k in ["length", "last-generated-id", "max-deleted-entry-id", "entries-added",
                              "recorded-first-entry-id", "groups"]] == [1, "9-0", "7-3", 8, "9-0", 1]
    empty = as_dict(parse(got[2]))  # made by MKSTREAM
    assert [empty[k] for k in ["length", "last-generated-id", "entries-added", "recorded-first-entry-id",
                               "first-entry", "last-entry"]] == [0, "0-0", 0, "0-0", None, None]


def test_xinfo_stream_full(pair):  # noqa: F811
    before = now_ms()
    got = run(pair, [
        ("XADD", "s", "1-0", "a", "1"), ("XADD", "s", "2-0", "b", "2"), ("XADD", "s", "3-0", "c", "3"),
        ("XGROUP", "CREATE", "s", "g", "0"), ("XGROUP", "CREATE", "s", "h", "$"),
        ("XREADGROUP", "GROUP", "g", "alice", "COUNT", "1", "STREAMS", "s", ">"),
        ("XREADGROUP", "GROUP", "g", "bob", "COUNT", "1", "STREAMS", "s", ">"),
        ("XGROUP", "CREATECONSUMER", "s", "h", "carol"),
        ("XINFO", "STREAM", "s", "FULL"), ("XINFO", "STREAM", "s", "FULL", "COUNT", "1"),
        ("XINFO", "STREAM", "s", "FULL", "COUNT", "0"), ("XINFO", "STREAM", "s", "FULL", "COUNT", "-1"),
        ("XINFO", "STREAM", "s", "FULL", "COUNT", "x"), ("XINFO", "STREAM", "s", "FULL", "COUNT"),
        ("XINFO", "STREAM", "missing", "FULL"),
        ("XADD", "e", "MAXLEN", "0", "1-0", "f", "v"), ("XINFO", "STREAM", "e", "FULL"),
    ])
    after = now_ms()
    assert got[12] == NOT_INT and got[14] == err("ERR no such key")
    # the masked times are real timestamps of this test
    full = normalise(("XINFO", "STREAM", "s", "FULL"), parse(got[8]))
    times = []

    def walk(n):
        if n[0] == "MASKED" and n[1].kind == "time":
            times.append(n[1].value)
        elif n[0] in "*%" and n[1]:
            for x in n[1]:
                walk(x)
    walk(full)
    # g's PEL (2 entries), alice's and bob's seen-time and PEL entry, carol's seen-time
    assert len(times) == 7 and all(before - 5 <= t <= after + 5 for t in times), (before, times, after)


def test_xinfo_consumers(pair):  # noqa: F811
    got = run(pair, [
        ("XADD", "s", "1-0", "a", "1"), ("XADD", "s", "2-0", "b", "2"), ("XADD", "s", "3-0", "c", "3"),
        ("XGROUP", "CREATE", "s", "g", "0"), ("XINFO", "CONSUMERS", "s", "g"),
        ("XREADGROUP", "GROUP", "g", "zed", "COUNT", "2", "STREAMS", "s", ">"),
        ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"),
        ("XGROUP", "CREATECONSUMER", "s", "g", "bob"),
        ("XINFO", "CONSUMERS", "s", "g"), ("XACK", "s", "g", "1-0"), ("XINFO", "CONSUMERS", "s", "g"),
        ("XINFO", "CONSUMERS", "s", "nog"), ("XINFO", "CONSUMERS", "missing", "g"), ("XINFO", "CONSUMERS", "s"),
        ("XINFO", "GROUPS"), ("XINFO", "STREAM"), ("XINFO",), ("XINFO", "FOO"), ("XINFO", "GROUPS", "s", "x"),
        ("XINFO", "GROUPS", "missing"),
        ("SET", "str", "x"), ("XINFO", "STREAM", "str"), ("XINFO", "GROUPS", "str"),
        ("XINFO", "CONSUMERS", "str", "g"), ("XINFO", "STREAM", "str", "FULL"),
    ])
    assert got[4] == b"*0\r\n"
    consumers = parse(got[8])[1]
    assert [c[1][1][1] for c in consumers] == [b"alice", b"bob", b"zed"]  # by name
    for c in consumers:
        fields = c[1]
        assert [f[1] for f in fields[::2]] == [b"name", b"pending", b"idle"]
        assert 0 <= fields[5][1] < 5000
    assert got[11] == nogroup_xgroup("s", "nog") and got[12] == err("ERR no such key")
    assert got[13] == arity("xinfo|consumers") and got[16] == arity("xinfo")
    assert got[17] == err("ERR unknown subcommand 'FOO'. Try XINFO HELP.")
    assert got[19] == err("ERR no such key") and got[21:] == [WRONGTYPE] * 4


# ---------------------------------------------------------------- XREADGROUP, XACK, XPENDING


def test_xreadgroup_new_entries_and_history(pair):  # noqa: F811
    got = run(pair, [
        ("XADD", "s", "1-0", "a", "1"), ("XADD", "s", "2-0", "b", "2"), ("XADD", "s", "3-0", "c", "3"),
        ("XADD", "t", "1-0", "x", "1"), ("XGROUP", "CREATE", "s", "g", "0"), ("XGROUP", "CREATE", "t", "g", "0"),
        ("XREADGROUP", "GROUP", "g", "alice", "COUNT", "1", "STREAMS", "s", ">"),
        ("XREADGROUP", "GROUP", "g", "alice", "COUNT", "0", "STREAMS", "s", ">"),
        ("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", "t", ">", ">"),
        ("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", "t", ">", ">"),
        ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "0"),
        ("XREADGROUP", "GROUP", "g", "alice", "COUNT", "1", "STREAMS", "s", "0"),
        ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "1-0"),
        ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "1"),
        ("XREADGROUP", "GROUP", "g", "alice", "COUNT", "-1", "STREAMS", "s", "0"),
        ("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", "t", "0", "0"),
        ("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", "t", "0", ">"),
        ("XREADGROUP", "GROUP", "g", "carol", "STREAMS", "s", "0"),
        ("XPENDING", "s", "g", "-", "+", "10"),  # history reads count as deliveries
        ("XINFO", "GROUPS", "s"), ("XINFO", "CONSUMERS", "s", "g"),
        ("XDEL", "s", "2-0"), ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "0"),
        ("XADD", "s", "4-0", "d", "4"), ("XDEL", "s", "4-0"),
        ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"), ("XINFO", "GROUPS", "s"),
        ("XADD", "s", "5-0", "e", "5"), ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"),
        ("XINFO", "GROUPS", "s"), ("XPENDING", "s", "g"),
    ])
    s = lambda *entries: (b"*1\r\n*2\r\n" if pair.proto == 2 else b"%1\r\n") + bulk("s") + b"*%d\r\n" % len(entries) + b"".join(entries)  # noqa: E731
    assert got[6] == s(entry("1-0", "a", "1"))
    assert got[7] == s(entry("2-0", "b", "2"), entry("3-0", "c", "3"))  # COUNT 0: no limit
    assert got[9] == null_array(pair.proto)
    assert got[11] == s(entry("1-0", "a", "1"))
    assert got[12] == got[13] == s(entry("2-0", "b", "2"), entry("3-0", "c", "3"))
    assert got[17] == s()  # a history read of an empty PEL: the stream with no entries
    # a deleted entry still in the PEL reads back as [id, nil]
    assert b"*2\r\n" + bulk("2-0") + null_array(pair.proto) in got[22]
    assert got[25] == null_array(pair.proto)


def test_xreadgroup_noack(pair):  # noqa: F811
    got = run(pair, [
        ("XADD", "s", "1-0", "a", "1"), ("XADD", "s", "2-0", "b", "2"), ("XGROUP", "CREATE", "s", "g", "0"),
        ("XREADGROUP", "GROUP", "g", "alice", "NOACK", "COUNT", "1", "STREAMS", "s", ">"),
        ("XPENDING", "s", "g"), ("XINFO", "GROUPS", "s"), ("XINFO", "CONSUMERS", "s", "g"),
        ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"),
        ("XREADGROUP", "GROUP", "g", "alice", "noack", "STREAMS", "s", "0"),
        ("XPENDING", "s", "g"), ("XPENDING", "s", "g", "-", "+", "10"),
    ])
    assert got[4] == b"*4\r\n:0\r\n" + null(pair.proto) * 2 + null_array(pair.proto)


def test_xreadgroup_errors(pair2):  # noqa: F811
    got = run(pair2, [
        ("XADD", "s", "1-0", "a", "1"), ("XADD", "t", "1-0", "a", "1"), ("XGROUP", "CREATE", "s", "g", "0"),
        ("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", "$"),
        ("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", "+"),
        ("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", "abc"),
        ("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", "(1-0"),
        ("XREADGROUP", "GROUP", "nog", "bob", "STREAMS", "s", ">"),
        ("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "missing", ">"),
        ("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", "t", ">", ">"),
        ("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s"),
        ("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", "t", ">"),
        ("XREADGROUP", "GROUP", "g", "bob", "s", ">"), ("XREADGROUP", "GROUP", "g", "STREAMS", "s", ">"),
        ("XREADGROUP", "g", "bob", "STREAMS", "s", ">"), ("XREADGROUP", "STREAMS", "s", ">"),
        ("XREADGROUP", "GROUP", "g", "bob", "COUNT", "x", "STREAMS", "s", ">"),
        ("XREADGROUP", "GROUP", "g", "bob", "BLOCK", "-1", "STREAMS", "s", ">"),
        ("XREADGROUP", "GROUP", "g", "bob", "BLOCK", "x", "STREAMS", "s", ">"),
        ("XREADGROUP", "GROUP", "g", "bob", "FOO", "STREAMS", "s", ">"),
        ("XREADGROUP", "GROUP", "g", "bob", "COUNT", "1", "s", ">"),
        ("SET", "str", "x"), ("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "str", ">"),
        ("XINFO", "GROUPS", "s"),
    ])
    assert got[3] == err(
        "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of "
        "this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would "
        "just return an empty result set.")
    assert got[4:7] == [INVALID_ID] * 3
    assert got[7] == nogroup_xreadgroup("s", "nog") and got[8] == nogroup_xreadgroup("missing", "g")
    assert got[9] == nogroup_xreadgroup("t", "g")
    assert got[10] == arity("xreadgroup")
    assert got[11] == err(
        "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.")
    assert got[16] == NOT_INT and got[17] == err("ERR timeout is negative")
    assert got[18] == err("ERR timeout is not an integer or out of range")
    assert got[19] == SYNTAX and got[22] == WRONGTYPE


def test_xack(pair):  # noqa: F811
    got = run(pair, [
        *[("XADD", "s", f"{i}-0", "f", "v") for i in range(1, 5)], ("XGROUP", "CREATE", "s", "g", "0"),
        ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"),
        ("XACK", "s", "g", "1-0", "2-0", "9-0", "1-0"), ("XACK", "s", "g", "1-0"), ("XACK", "s", "g", "3"),
        ("XACK", "s", "nog", "4-0"), ("XACK", "missing", "g", "4-0"), ("XACK", "s", "g", "4-0", "abc"),
        ("XACK", "s", "g"), ("XPENDING", "s", "g"), ("XINFO", "CONSUMERS", "s", "g"),
        ("SET", "str", "x"), ("XACK", "str", "g", "1-0"),
    ])
    assert got[6:11] == [b":2\r\n", b":0\r\n", b":1\r\n", b":0\r\n", b":0\r\n"]
    assert got[11] == INVALID_ID and got[12] == arity("xack") and got[-1] == WRONGTYPE
    assert got[13] == b"*4\r\n:1\r\n" + bulk("4-0") + bulk("4-0") + (
        b"*1\r\n*2\r\n" + bulk("alice") + bulk("1"))


def test_xpending(pair):  # noqa: F811
    got = run(pair, [
        *[("XADD", "s", f"{i}-0", "f", "v") for i in range(1, 5)], ("XGROUP", "CREATE", "s", "g", "0"),
        ("XPENDING", "s", "g"), ("XPENDING", "s", "g", "-", "+", "10"),
        ("XREADGROUP", "GROUP", "g", "bob", "COUNT", "2", "STREAMS", "s", ">"),
        ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"),
        ("XPENDING", "s", "g"), ("XPENDING", "s", "g", "-", "+", "10"),
        ("XPENDING", "s", "g", "-", "+", "10", "alice"), ("XPENDING", "s", "g", "-", "+", "10", "nobody"),
        ("XPENDING", "s", "g", "IDLE", "0", "-", "+", "10"), ("XPENDING", "s", "g", "idle", "0", "-", "+", "10", "bob"),
        ("XPENDING", "s", "g", "IDLE", "100000", "-", "+", "10"),
        ("XPENDING", "s", "g", "(1-0", "+", "10"), ("XPENDING", "s", "g", "-", "(4-0", "2"),
        ("XPENDING", "s", "g", "2", "3", "10"), ("XPENDING", "s", "g", "3", "2", "10"),
        ("XPENDING", "s", "g", "-", "+", "0"), ("XPENDING", "s", "g", "-", "+", "-1"),
        ("XPENDING", "s", "g", "+", "-", "10"),
        ("XPENDING", "s", "g", "-", "+", "x"), ("XPENDING", "s", "g", "-", "+"), ("XPENDING", "s", "g", "-"),
        ("XPENDING", "s", "g", "IDLE", "10"), ("XPENDING", "s", "g", "IDLE", "x", "-", "+", "10"),
        ("XPENDING", "s", "g", "abc", "+", "10"), ("XPENDING", "s", "g", "(-", "+", "10"),
        ("XPENDING", "s", "nog"), ("XPENDING", "missing", "g"), ("XPENDING", "s", "nog", "-", "+", "10"),
        ("XPENDING", "s"),
        ("SET", "str", "x"), ("XPENDING", "str", "g"), ("XPENDING", "str", "g", "-", "+", "1"),
    ])
    assert got[5] == b"*4\r\n:0\r\n" + null(pair.proto) * 2 + null_array(pair.proto)
    assert got[6] == b"*0\r\n"
    assert got[9] == b"*4\r\n:4\r\n" + bulk("1-0") + bulk("4-0") + b"*2\r\n" + (
        b"*2\r\n" + bulk("alice") + bulk("2") + b"*2\r\n" + bulk("bob") + bulk("2"))
    ext = normalise(("XPENDING", "s", "g", "-"), parse(got[10]))
    assert [(e[1][0][1], e[1][1][1], e[1][3][1]) for e in ext[1]] == [
        (b"1-0", b"bob", 1), (b"2-0", b"bob", 1), (b"3-0", b"alice", 1), (b"4-0", b"alice", 1)]
    assert all(0 <= e[1][2][1].value < 5000 for e in ext[1])
    assert got[12] == b"*0\r\n" and got[15] == b"*0\r\n"
    assert got[20:22] == [b"*0\r\n", b"*0\r\n"]  # COUNT 0 and negative: nothing
    assert got[23] == NOT_INT and got[24:27] == [SYNTAX] * 3 and got[27] == NOT_INT
    assert got[28:30] == [INVALID_ID] * 2
    assert got[30:33] == [nogroup("s", "nog"), nogroup("missing", "g"), nogroup("s", "nog")]
    assert got[33] == arity("xpending") and got[-2:] == [WRONGTYPE] * 2


def test_xpending_idle_filter(pair):  # noqa: F811
    got = run(pair, [
        *[("XADD", "s", f"{i}-0", "f", "v") for i in range(1, 4)], ("XGROUP", "CREATE", "s", "g", "0"),
        ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"),
        ("XCLAIM", "s", "g", "bob", "0", "2-0", "IDLE", "500000", "JUSTID"),
        ("XPENDING", "s", "g", "IDLE", "400000", "-", "+", "10"),
        ("XPENDING", "s", "g", "IDLE", "400000", "-", "+", "10", "alice"),
        ("XPENDING", "s", "g", "IDLE", "600000", "-", "+", "10"),
        ("XPENDING", "s", "g", "IDLE", "-5", "-", "+", "10"),
    ])
    ext = normalise(("XPENDING", "s", "g", "-"), parse(got[6]))
    assert len(ext[1]) == 1 and ext[1][0][1][0][1] == b"2-0"
    assert 500000 <= ext[1][0][1][2][1].value < 505000
    assert got[7] == got[8] == b"*0\r\n"
    assert got[9].startswith(b"*3\r\n")


def test_xclaim(pair):  # noqa: F811
    got = run(pair, [
        *[("XADD", "s", f"{i}-0", "f", str(i)) for i in range(1, 5)], ("XGROUP", "CREATE", "s", "g", "0"),
        ("XREADGROUP", "GROUP", "g", "alice", "COUNT", "2", "STREAMS", "s", ">"),
        ("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", ">"),
        ("XCLAIM", "s", "g", "carol", "0", "1-0"), ("XCLAIM", "s", "g", "carol", "0", "1-0", "JUSTID"),
        ("XPENDING", "s", "g", "-", "+", "10"),  # JUSTID does not count a delivery
        ("XCLAIM", "s", "g", "dave", "0", "1-0", "2-0", "9-0", "JUSTID"),
        ("XCLAIM", "s", "g", "dave", "0", "1-0", "RETRYCOUNT", "7"), ("XPENDING", "s", "g", "-", "+", "10"),
        ("XCLAIM", "s", "g", "dave", "0", "5-0", "FORCE"),  # not in the stream: nothing
        ("XCLAIM", "s", "g", "dave", "0", "4-0", "FORCE"),
        ("XCLAIM", "s", "g", "dave", "3600000", "3-0"),  # not idle long enough
        ("XGROUP", "CREATECONSUMER", "s", "g", "x"), ("XACK", "s", "g", "3-0"),
        ("XCLAIM", "s", "g", "erin", "0", "3-0"), ("XCLAIM", "s", "g", "erin", "0", "3-0", "FORCE", "JUSTID"),
        ("XPENDING", "s", "g", "-", "+", "10"), ("XINFO", "CONSUMERS", "s", "g"),
        ("XCLAIM", "s", "g", "erin", "0", "3-0", "LASTID", "9-0", "JUSTID"), ("XINFO", "GROUPS", "s"),
        ("XCLAIM", "s", "g", "erin", "0", "3-0", "LASTID", "2-0", "JUSTID"), ("XINFO", "GROUPS", "s"),
        ("XCLAIM", "s", "g", "newbie", "3600000", "1-0"), ("XINFO", "GROUPS", "s"),  # no consumer made
        ("XCLAIM", "s", "g", "erin", "0", "2-0", "RETRYCOUNT", "5", "IDLE", "0", "TIME", "0", "FORCE"),
    ])
    assert got[7] == b"*1\r\n" + entry("1-0", "f", "1") and got[8] == b"*1\r\n" + bulk("1-0")
    assert got[10] == b"*2\r\n" + bulk("1-0") + bulk("2-0")
    assert got[13] == b"*0\r\n" and got[14] == b"*1\r\n" + entry("4-0", "f", "4") and got[15] == b"*0\r\n"
    assert got[18] == b"*0\r\n" and got[19] == b"*1\r\n" + bulk("3-0")


def test_xclaim_drops_deleted_entries(pair):  # noqa: F811
    got = run(pair, [
        *[("XADD", "s", f"{i}-0", "f", str(i)) for i in range(1, 4)], ("XGROUP", "CREATE", "s", "g", "0"),
        ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"), ("XDEL", "s", "2-0"),
        ("XPENDING", "s", "g"), ("XCLAIM", "s", "g", "bob", "0", "1-0", "2-0", "3-0"),
        ("XPENDING", "s", "g"), ("XPENDING", "s", "g", "-", "+", "10"),
        ("XDEL", "s", "3-0"), ("XCLAIM", "s", "g", "bob", "0", "3-0", "JUSTID"), ("XPENDING", "s", "g"),
    ])
    assert got[7] == b"*2\r\n" + entry("1-0", "f", "1") + entry("3-0", "f", "3")
    assert got[8] == b"*4\r\n:2\r\n" + bulk("1-0") + bulk("3-0") + b"*1\r\n*2\r\n" + bulk("bob") + bulk("2")


def test_xclaim_idle_and_time(pair):  # noqa: F811
    got = run(pair, [
        ("XADD", "s", "1-0", "f", "v"), ("XADD", "s", "2-0", "f", "v"), ("XGROUP", "CREATE", "s", "g", "0"),
        ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"),
        ("XCLAIM", "s", "g", "bob", "0", "1-0", "IDLE", "100000", "JUSTID"),
        ("XCLAIM", "s", "g", "bob", "0", "2-0", "TIME", "1000", "JUSTID"),
        ("XPENDING", "s", "g", "-", "+", "10"),
        ("XCLAIM", "s", "g", "carol", "50000", "1-0", "JUSTID"),
        ("XCLAIM", "s", "g", "carol", "50000", "1-0", "JUSTID"),
    ])
    ext = normalise(("XPENDING", "s", "g", "-"), parse(got[6]))
    idle1, idle2 = (e[1][2][1].value for e in ext[1])
    assert 100000 <= idle1 < 105000
    assert abs(idle2 - (now_ms() - 1000)) < 10000
    assert got[7] == b"*1\r\n" + bulk("1-0") and got[8] == b"*0\r\n"


@pytest.mark.parametrize("args, reply", [
    (("0", "1-0", "FOO"), err("ERR Unrecognized XCLAIM option 'FOO'")),
    (("0", "abc"), err("ERR Unrecognized XCLAIM option 'abc'")),
    (("0", "1-0", "abc"), err("ERR Unrecognized XCLAIM option 'abc'")),
    (("0", "1-0", "IDLE", "x"), err("ERR Invalid IDLE option argument for XCLAIM")),
    (("0", "1-0", "TIME", "x"), err("ERR Invalid TIME option argument for XCLAIM")),
    (("0", "1-0", "RETRYCOUNT", "x"), err("ERR Invalid RETRYCOUNT option argument for XCLAIM")),
    (("0", "1-0", "LASTID", "x"), INVALID_ID),
    (("x", "1-0"), err("ERR Invalid min-idle-time argument for XCLAIM")),
    (("0",), arity("xclaim")),
    (("-1", "1-0", "IDLE", "-1", "JUSTID"), b"*1\r\n" + bulk("1-0")),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_xclaim_errors(pair2, args, reply):  # noqa: F811
    got = run(pair2, [("XADD", "s", "1-0", "f", "v"), ("XGROUP", "CREATE", "s", "g", "0"),
                      ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"),
                      ("XCLAIM", "s", "g", "bob", *args), ("XPENDING", "s", "g")])
    assert got[3] == reply


def test_xclaim_missing_group_and_key(pair2):  # noqa: F811
    got = run(pair2, [("XADD", "s", "1-0", "f", "v"), ("XCLAIM", "s", "nog", "c", "0", "1-0"),
                      ("XCLAIM", "missing", "g", "c", "0", "1-0"), ("SET", "str", "x"),
                      ("XCLAIM", "str", "g", "c", "0", "1-0")])
    assert got[1:3] == [nogroup("s", "nog"), nogroup("missing", "g")] and got[4] == WRONGTYPE


def test_xautoclaim(pair):  # noqa: F811
    got = run(pair, [
        *[("XADD", "s", f"{i}-0", "f", str(i)) for i in range(1, 6)], ("XGROUP", "CREATE", "s", "g", "0"),
        ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"), ("XDEL", "s", "2-0", "4-0"),
        ("XAUTOCLAIM", "s", "g", "bob", "0", "0", "COUNT", "2"), ("XPENDING", "s", "g", "-", "+", "10"),
        ("XAUTOCLAIM", "s", "g", "bob", "0", "3-0", "COUNT", "2"), ("XPENDING", "s", "g", "-", "+", "10"),
        ("XAUTOCLAIM", "s", "g", "carol", "0", "0", "JUSTID"), ("XPENDING", "s", "g", "-", "+", "10"),
        ("XAUTOCLAIM", "s", "g", "carol", "0", "0"), ("XAUTOCLAIM", "s", "g", "carol", "3600000", "0"),
        ("XAUTOCLAIM", "s", "g", "carol", "0", "(1-0"), ("XAUTOCLAIM", "s", "g", "carol", "0", "-", "COUNT", "1"),
        ("XAUTOCLAIM", "s", "g", "carol", "0", "+", "COUNT", "1"), ("XAUTOCLAIM", "s", "g", "carol", "0", "9-0"),
        ("XAUTOCLAIM", "s", "g", "carol", "0", "0", "JUSTID", "COUNT", "1"),
        ("XAUTOCLAIM", "s", "g", "carol", "0", "0", "JUSTID", "JUSTID"),
        ("XAUTOCLAIM", "s", "g", "carol", "-1", "0"),
        ("XAUTOCLAIM", "s", "g", "newbie", "3600000", "0"), ("XINFO", "GROUPS", "s"),  # no consumer made
        ("XAUTOCLAIM", "s", "g", "dave", "0", "0"), ("XPENDING", "s", "g"), ("XPENDING", "s", "g", "-", "+", "10"),
        ("XINFO", "CONSUMERS", "s", "g"), ("XINFO", "GROUPS", "s"),
    ])
    assert got[8] == b"*3\r\n" + bulk("3-0") + b"*1\r\n" + entry("1-0", "f", "1") + b"*1\r\n" + bulk("2-0")
    assert got[10] == b"*3\r\n" + bulk("5-0") + b"*1\r\n" + entry("3-0", "f", "3") + b"*1\r\n" + bulk("4-0")
    assert got[12] == b"*3\r\n" + bulk("0-0") + b"*3\r\n" + bulk("1-0") + bulk("3-0") + bulk("5-0") + b"*0\r\n"
    assert got[15] == b"*3\r\n" + bulk("0-0") + b"*0\r\n*0\r\n"


@pytest.mark.parametrize("args, reply", [
    (("0", "0", "COUNT", "0"), err("ERR COUNT must be > 0")),
    (("0", "0", "COUNT", "-1"), err("ERR COUNT must be > 0")),
    (("0", "0", "COUNT", "x"), err("ERR COUNT must be > 0")),
    (("0", "0", "COUNT", "576460752303423488"), err("ERR COUNT must be > 0")),
    (("0", "0", "COUNT"), SYNTAX),
    (("0", "0", "FOO"), SYNTAX),
    (("x", "0"), err("ERR Invalid min-idle-time argument for XAUTOCLAIM")),
    (("0", "abc"), INVALID_ID),
    (("0", "(abc"), INVALID_ID),
    (("0",), arity("xautoclaim")),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_xautoclaim_errors(pair2, args, reply):  # noqa: F811
    got = run(pair2, [("XADD", "s", "1-0", "f", "v"), ("XGROUP", "CREATE", "s", "g", "0"),
                      ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"),
                      ("XAUTOCLAIM", "s", "g", "bob", *args), ("XPENDING", "s", "g"),
                      ("XAUTOCLAIM", "s", "nog", "bob", "0", "0"), ("XAUTOCLAIM", "missing", "g", "bob", "0", "0"),
                      ("SET", "str", "x"), ("XAUTOCLAIM", "str", "g", "bob", "0", "0")])
    assert got[3] == reply
    assert got[5:7] == [nogroup("s", "nog"), nogroup("missing", "g")] and got[8] == WRONGTYPE


# ---------------------------------------------------------------- XREAD


def test_xread(pair):  # noqa: F811
    got = run(pair, [
        ("XADD", "s", "1-0", "a", "1"), ("XADD", "s", "2-0", "b", "2"), ("XADD", "t", "5-0", "c", "3"),
        ("XREAD", "STREAMS", "s", "t", "0", "0"), ("XREAD", "COUNT", "1", "STREAMS", "s", "t", "0", "0"),
        ("XREAD", "COUNT", "0", "STREAMS", "s", "t", "0", "0"), ("XREAD", "COUNT", "-3", "STREAMS", "s", "0"),
        ("XREAD", "STREAMS", "s", "t", "1-0", "5"), ("XREAD", "STREAMS", "s", "t", "2-0", "5-0"),
        ("XREAD", "STREAMS", "s", "t", "$", "$"), ("XREAD", "STREAMS", "s", "missing", "0", "0"),
        ("XREAD", "STREAMS", "missing", "0"), ("XREAD", "STREAMS", "s", "s", "0", "1-0"),
        ("XREAD", "STREAMS", "s", "1"), ("XREAD", "BLOCK", "0", "STREAMS", "s", "0"),
        ("XREAD", "BLOCK", "10", "COUNT", "1", "STREAMS", "s", "0"), ("XREAD", "STREAMS", "STREAMS", "0"),
        ("XREAD", "streams", "s", "0"),
    ])
    both = (b"*2\r\n*2\r\n" if pair.proto == 2 else b"%2\r\n") + bulk("s") + b"*2\r\n" + (
        entry("1-0", "a", "1") + entry("2-0", "b", "2")) + (b"*2\r\n" if pair.proto == 2 else b"") + (
        bulk("t") + b"*1\r\n" + entry("5-0", "c", "3"))
    assert got[3] == got[5] == both
    assert got[8] == got[9] == got[11] == null_array(pair.proto)


def test_xread_errors(pair2):  # noqa: F811
    got = run(pair2, [
        ("XADD", "s", "1-0", "a", "1"),
        ("XREAD", "STREAMS", "s", ">"), ("XREAD", "STREAMS", "s", "+"), ("XREAD", "STREAMS", "s", "-"),
        ("XREAD", "STREAMS", "s", "(1-0"), ("XREAD", "STREAMS", "s", "abc"), ("XREAD", "STREAMS", "s", "1-*"),
        ("XREAD", "STREAMS", "s"), ("XREAD", "STREAMS", "s", "t", "0"), ("XREAD", "STREAMS"),
        ("XREAD", "s", "0"), ("XREAD", "COUNT", "1", "s", "0"), ("XREAD", "FOO", "STREAMS", "s", "0"),
        ("XREAD", "COUNT", "x", "STREAMS", "s", "0"), ("XREAD", "COUNT", "STREAMS", "s", "0"),
        ("XREAD", "BLOCK", "x", "STREAMS", "s", "0"), ("XREAD", "BLOCK", "-1", "STREAMS", "s", "0"),
        ("XREAD", "BLOCK", "1.5", "STREAMS", "s", "0"), ("XREAD", "NOACK", "STREAMS", "s", "0"),
        ("XREAD", "GROUP", "g", "c", "STREAMS", "s", "0"),
        ("XREAD", "BLOCK", "10", "STREAMS", "s", "9-0", "t", "9-0"),  # keys s, 9-0; ids t, 9-0
        ("SET", "str", "x"), ("XREAD", "STREAMS", "str", "0"), ("XREAD", "STREAMS", "s", "str", "0", "0"),
        ("XREAD", "STREAMS", "s", "str", "$", "$"),
    ])
    assert got[1] == err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP "
                         "<group> <consumer> option.")
    assert got[2:7] == [INVALID_ID] * 5 and got[7] == arity("xread")
    assert got[8] == err("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must "
                         "be specified.")
    assert got[11:13] == [SYNTAX, SYNTAX] and got[13:15] == [NOT_INT, NOT_INT]
    assert got[16] == err("ERR timeout is negative")
    assert got[18] == err("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.")
    assert got[20] == INVALID_ID and got[-3:] == [WRONGTYPE] * 3


# ---------------------------------------------------------------- blocking reads


def blocked_clients(conn):
    info = conn.cmd("INFO", "clients")
    return int(re.search(rb"blocked_clients:(\d+)", info).group(1))


class Reader(threading.Thread):
    """Runs one (blocking) command on a connection of its own; keeps its raw reply bytes."""

    def __init__(self, port, proto, cmd):
        super().__init__(daemon=True)
        self.conn = Tap(port, timeout=10)
        if proto == 3:
            self.conn.cmd("HELLO", "3")
        self.cmd = cmd
        self.reply = self.elapsed = None

    def run(self):
        t0 = time.monotonic()
        try:
            self.reply = self.conn.reply_bytes(*self.cmd)
        except Exception as e:  # noqa: BLE001
            self.reply = repr(e)
        self.elapsed = time.monotonic() - t0


def play_blocking(port, proto, steps):
    """Steps: a command (run on a control connection, its reply recorded), ("BLOCK", name, *cmd)
    (starts cmd on a new connection and records whether the server counts it as blocked),
    ("REPLY", name) (records its reply once it is done), ("ALIVE?", name) (records, after 0.1 s,
    whether it still waits). Returns (records, readers)."""
    ctl, info = Tap(port), RawConn(port)
    if proto == 3:
        ctl.cmd("HELLO", "3")
    ctl.cmd("FLUSHALL")
    readers, out = {}, []
    try:
        for step in steps:
            if step[0] == "BLOCK":
                before = blocked_clients(info)
                r = readers[step[1]] = Reader(port, proto, step[2:])
                r.start()
                wait_until(lambda: blocked_clients(info) > before or not r.is_alive())
                out.append(("blocked", r.is_alive()))
            elif step[0] == "REPLY":
                r = readers[step[1]]
                r.join(5)
                out.append(r.reply if not r.is_alive() else "still blocked after 5 s")
            elif step[0] == "ALIVE?":
                time.sleep(0.1)
                out.append(("waiting", readers[step[1]].is_alive()))
            else:
                out.append(ctl.reply_bytes(*step))
    finally:
        for r in readers.values():
            r.conn.close()
        ctl.close()
        info.close()
    return out, readers


@pytest.fixture
def blocking_diff(server_port, redis_port):  # noqa: F811
    """blocking_diff(steps, proto) plays the steps on redis-server, then on Locus, asserts the
    records match and returns Locus's (records, readers)."""
    def play(steps, proto=2):
        want, _ = play_blocking(redis_port, proto, steps)
        got, readers = play_blocking(server_port, proto, steps)
        norm = lambda step, r: normalise(step, parse(r)) if isinstance(r, bytes) else r  # noqa: E731
        assert [(step, norm(step, r)) for step, r in zip(steps, got)] == [
            (step, norm(step, r)) for step, r in zip(steps, want)], (
            "Locus (left) vs redis-server (right):\n" + "\n".join(
                f"{step}: {g!r} vs {w!r}" for step, g, w in zip(steps, got, want)))
        return got, readers
    return play


@pytest.mark.parametrize("proto", [2, 3])
def test_xread_block_times_out(blocking_diff, proto):
    got, readers = blocking_diff([
        ("XADD", "s", "1-0", "f", "v"),
        ("BLOCK", "a", "XREAD", "BLOCK", "300", "STREAMS", "s", "$"),
        ("BLOCK", "b", "XREAD", "BLOCK", "300", "STREAMS", "s", "missing", "1-0", "$"),
        ("XADD", "s", "1-1", "f", "v"),  # after $ (1-0) and after 1-0: serves both
        ("REPLY", "a"), ("REPLY", "b"),
    ], proto)
    assert got[1] == got[2] == ("blocked", True)
    assert got[4] != null_array(proto) and got[5] != null_array(proto)
    got, readers = blocking_diff([
        ("XADD", "s", "1-0", "f", "v"),
        ("BLOCK", "a", "XREAD", "BLOCK", "300", "STREAMS", "s", "$"),
        ("BLOCK", "b", "XREAD", "COUNT", "5", "BLOCK", "300", "STREAMS", "s", "missing", "1-0", "$"),
        ("REPLY", "a"), ("REPLY", "b"),
    ], proto)
    assert got[3] == got[4] == null_array(proto)
    assert all(0.25 <= r.elapsed < 2.5 for r in readers.values()), [r.elapsed for r in readers.values()]


@pytest.mark.parametrize("proto", [2, 3])
def test_xread_block_woken_by_xadd(blocking_diff, proto):
    got, _ = blocking_diff([
        ("XADD", "s", "1-0", "a", "1"),
        ("BLOCK", "dollar", "XREAD", "BLOCK", "0", "STREAMS", "s", "$"),
        ("XADD", "s", "2-0", "b", "2"), ("REPLY", "dollar"),
        ("BLOCK", "later", "XREAD", "BLOCK", "0", "STREAMS", "s", "100-0"),
        ("XADD", "s", "50-0", "c", "3"), ("ALIVE?", "later"),  # not after 100-0: still waits
        ("XADD", "s", "150-0", "d", "4"), ("REPLY", "later"),
        ("BLOCK", "two", "XREAD", "BLOCK", "0", "STREAMS", "s", "t", "$", "$"),
        ("XADD", "t", "1-0", "e", "5"), ("REPLY", "two"),
        ("BLOCK", "count", "XREAD", "COUNT", "1", "BLOCK", "0", "STREAMS", "s", "$"),
        ("MULTI",), ("XADD", "s", "200-0", "f", "6"), ("XADD", "s", "201-0", "g", "7"), ("EXEC",),
        ("REPLY", "count"),
        ("BLOCK", "new", "XREAD", "BLOCK", "0", "STREAMS", "fresh", "$"),
        ("SET", "fresh", "x"), ("ALIVE?", "new"), ("DEL", "fresh"),  # another type does not wake it
        ("XADD", "fresh", "1-0", "h", "8"), ("REPLY", "new"),
        ("BLOCK", "x", "XREAD", "BLOCK", "0", "STREAMS", "s", "$"),
        ("BLOCK", "y", "XREAD", "BLOCK", "0", "STREAMS", "s", "$"),
        ("XADD", "s", "300-0", "i", "9"), ("REPLY", "x"), ("REPLY", "y"),  # both served
    ], proto)
    s = lambda *entries: (b"*1\r\n*2\r\n" if proto == 2 else b"%1\r\n") + bulk("s") + b"*%d\r\n" % len(entries) + b"".join(entries)  # noqa: E731
    assert got[3] == s(entry("2-0", "b", "2"))
    assert got[6] == ("waiting", True) and got[8] == s(entry("150-0", "d", "4"))
    assert got[17] == s(entry("200-0", "f", "6"))
    assert got[20] == ("waiting", True)
    assert got[23] == s(entry("1-0", "h", "8")).replace(bulk("s"), bulk("fresh"))
    assert got[27] == got[28] == s(entry("300-0", "i", "9"))


@pytest.mark.parametrize("proto", [2, 3])
def test_xreadgroup_block_woken_by_xadd(blocking_diff, proto):
    got, readers = blocking_diff([
        ("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"),
        ("BLOCK", "a", "XREADGROUP", "GROUP", "g", "alice", "BLOCK", "0", "STREAMS", "s", ">"),
        ("XADD", "s", "1-0", "a", "1"), ("REPLY", "a"),
        ("XPENDING", "s", "g"), ("XINFO", "GROUPS", "s"),
        ("BLOCK", "h", "XREADGROUP", "GROUP", "g", "alice", "BLOCK", "0", "STREAMS", "s", "0"),
        ("REPLY", "h"),  # a history read never blocks
        ("BLOCK", "n", "XREADGROUP", "GROUP", "g", "bob", "COUNT", "1", "NOACK", "BLOCK", "0", "STREAMS", "s", ">"),
        ("MULTI",), ("XADD", "s", "2-0", "b", "2"), ("XADD", "s", "3-0", "c", "3"), ("EXEC",), ("REPLY", "n"),
        ("XPENDING", "s", "g"), ("XINFO", "GROUPS", "s"),
        # 3-0 is still undelivered: no blocking
        ("BLOCK", "c", "XREADGROUP", "GROUP", "g", "carol", "BLOCK", "300", "STREAMS", "s", ">"),
        ("REPLY", "c"),
        ("BLOCK", "t", "XREADGROUP", "GROUP", "g", "carol", "BLOCK", "300", "STREAMS", "s", ">"),
        ("REPLY", "t"),
        ("BLOCK", "x", "XREADGROUP", "GROUP", "g", "dave", "BLOCK", "0", "STREAMS", "s", ">"),
        ("BLOCK", "y", "XREADGROUP", "GROUP", "g", "erin", "BLOCK", "0", "STREAMS", "s", ">"),
        ("XADD", "s", "4-0", "d", "4"), ("ALIVE?", "y"),  # one entry: only the first waiter gets it
        ("XADD", "s", "5-0", "e", "5"), ("REPLY", "x"), ("REPLY", "y"),
        ("XPENDING", "s", "g"), ("XINFO", "CONSUMERS", "s", "g"), ("XINFO", "GROUPS", "s"),
    ], proto)
    s = lambda *entries: (b"*1\r\n*2\r\n" if proto == 2 else b"%1\r\n") + bulk("s") + b"*%d\r\n" % len(entries) + b"".join(entries)  # noqa: E731
    assert got[1] == ("blocked", True) and got[3] == s(entry("1-0", "a", "1"))
    assert got[6] == ("blocked", False) and got[7] == got[3]
    assert got[8] == ("blocked", True) and got[13] == s(entry("2-0", "b", "2"))
    assert got[16] == ("blocked", False) and got[17] == s(entry("3-0", "c", "3"))
    assert got[18] == ("blocked", True) and got[19] == null_array(proto)
    assert 0.25 <= readers["t"].elapsed < 2.5
    assert got[23] == ("waiting", True)
    assert got[25] == s(entry("4-0", "d", "4")) and got[26] == s(entry("5-0", "e", "5"))


@pytest.mark.parametrize("proto", [2, 3])
def test_blocked_xreadgroup_when_the_group_or_key_goes(blocking_diff, proto):
    got, _ = blocking_diff([
        ("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"),
        ("BLOCK", "a", "XREADGROUP", "GROUP", "g", "alice", "BLOCK", "0", "STREAMS", "s", ">"),
        ("XGROUP", "DESTROY", "s", "g"), ("REPLY", "a"),
        ("XGROUP", "CREATE", "s", "g", "$"),
        ("BLOCK", "b", "XREADGROUP", "GROUP", "g", "alice", "BLOCK", "0", "STREAMS", "s", ">"),
        ("DEL", "s"), ("REPLY", "b"),
        ("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"),
        ("BLOCK", "c", "XREADGROUP", "GROUP", "g", "alice", "BLOCK", "0", "STREAMS", "s", ">"),
        ("SET", "s", "x"), ("REPLY", "c"),
    ], proto)
    assert got[3] == err("NOGROUP the consumer group this client was blocked on no longer exists")
    assert got[7] == err("UNBLOCKED the stream key no longer exists")
    assert got[11] == err("UNBLOCKED the stream key no longer exists")  # SET replaced it


def test_blocking_reads_inside_multi_do_not_block(pair):  # noqa: F811
    got = run(pair, [
        ("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"),
        ("MULTI",), ("XREAD", "BLOCK", "0", "STREAMS", "s", "$"),
        ("XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"),
        ("XADD", "s", "1-0", "f", "v"), ("XREAD", "BLOCK", "0", "STREAMS", "s", "0"), ("EXEC",),
    ])
    assert got[6].startswith(b"*4\r\n" + null_array(pair.proto) * 2 + bulk("1-0"))


# ---------------------------------------------------------------- types, keyspace, arity


STREAM_COMMANDS = [
    ("XADD", "str", "1-0", "f", "v"), ("XLEN", "str"), ("XRANGE", "str", "-", "+"),
    ("XREVRANGE", "str", "+", "-"), ("XDEL", "str", "1-0"), ("XTRIM", "str", "MAXLEN", "0"),
    ("XREAD", "STREAMS", "str", "0"), ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "str", ">"),
    ("XGROUP", "CREATE", "str", "g", "$"), ("XGROUP", "SETID", "str", "g", "$"),
    ("XACK", "str", "g", "1-0"), ("XPENDING", "str", "g"), ("XPENDING", "str", "g", "-", "+", "1"),
    ("XCLAIM", "str", "g", "c", "0", "1-0"), ("XAUTOCLAIM", "str", "g", "c", "0", "0"),
    ("XINFO", "STREAM", "str"), ("XINFO", "GROUPS", "str"), ("XINFO", "CONSUMERS", "str", "g"),
]


@pytest.mark.parametrize("other", [("SET", "str", "v"), ("RPUSH", "str", "v"), ("ZADD", "str", "1", "m")],
                         ids=["string", "list", "zset"])
@pytest.mark.parametrize("cmd", STREAM_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_wrongtype(pair2, other, cmd):  # noqa: F811
    got = run(pair2, [other, cmd, ("TYPE", "str")])
    assert got[1] == WRONGTYPE


def test_error_precedence(pair2):  # noqa: F811
    """Which error wins when a command has several problems (missing key / wrong type / bad
    id / bad option) differs from command to command."""
    got = run(pair2, [
        ("SET", "str", "x"),
        ("XDEL", "missing", "abc"), ("XDEL", "str", "abc"),
        ("XACK", "missing", "g", "abc"), ("XACK", "str", "g", "abc"),
        ("XTRIM", "missing", "MINID", "abc"), ("XTRIM", "str", "MINID", "abc"), ("XTRIM", "str", "MAXLEN", "-1"),
        ("XPENDING", "missing", "g", "abc", "+", "10"), ("XPENDING", "str", "g", "abc", "+", "10"),
        ("XCLAIM", "missing", "g", "c", "0", "1-0", "IDLE", "x"), ("XCLAIM", "str", "g", "c", "x", "1-0"),
        ("XAUTOCLAIM", "missing", "g", "c", "0", "abc"), ("XAUTOCLAIM", "str", "g", "c", "0", "abc"),
        ("XGROUP", "SETID", "missing", "g", "abc"), ("XGROUP", "CREATE", "missing", "g", "abc"),
        ("XGROUP", "CREATE", "missing", "g", "abc", "MKSTREAM"), ("XGROUP", "CREATE", "str", "g", "abc"),
        ("XREAD", "STREAMS", "missing", "abc"), ("XREAD", "STREAMS", "str", "abc"),
        ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "missing", "abc"),
        ("XADD", "str", "abc", "f", "v"), ("XADD", "missing", "NOMKSTREAM", "abc", "f", "v"),
        ("XADD", "str", "MAXLEN", "-1", "1-0", "f", "v"),
        ("XINFO", "STREAM", "str", "FOO"), ("XINFO", "STREAM", "missing", "FOO"),
        ("XRANGE", "str", "-", "+", "COUNT", "x"), ("XRANGE", "missing", "-", "+", "COUNT", "x"),
        ("XRANGE", "missing", "abc", "+"),
    ])
    assert got[1:5] == [b":0\r\n", WRONGTYPE, b":0\r\n", WRONGTYPE]  # key first, then ids
    assert got[5:10] == [INVALID_ID, INVALID_ID, err("ERR The MAXLEN argument must be >= 0."),
                         INVALID_ID, INVALID_ID]  # arguments first, then the key
    assert got[10:12] == [nogroup("missing", "g"), WRONGTYPE]
    assert got[12:14] == [INVALID_ID, INVALID_ID]
    assert got[14:18] == [NO_KEY_XGROUP, NO_KEY_XGROUP, INVALID_ID, WRONGTYPE]
    assert got[18:21] == [INVALID_ID, WRONGTYPE, nogroup_xreadgroup("missing", "g")]
    assert got[21:24] == [INVALID_ID, INVALID_ID, err("ERR The MAXLEN argument must be >= 0.")]
    assert got[24:26] == [WRONGTYPE, err("ERR no such key")]
    assert got[26:] == [NOT_INT, NOT_INT, INVALID_ID]


def test_other_commands_on_a_stream(pair2):  # noqa: F811
    got = run(pair2, [
        ("XADD", "s", "1-0", "f", "v"), ("XGROUP", "CREATE", "s", "g", "0"),
        ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"),
        ("TYPE", "s"), ("OBJECT", "ENCODING", "s"), ("EXISTS", "s"),
        ("GET", "s"), ("LPUSH", "s", "x"), ("HSET", "s", "f", "v"), ("SADD", "s", "x"), ("ZADD", "s", "1", "x"),
        ("INCR", "s"), ("APPEND", "s", "x"), ("STRLEN", "s"),
        ("COPY", "s", "c"), ("XINFO", "GROUPS", "c"), ("XPENDING", "c", "g"), ("XACK", "s", "g", "1-0"),
        ("XPENDING", "c", "g"), ("XPENDING", "s", "g"), ("XADD", "c", "2-0", "f", "v"), ("XLEN", "s"),
        ("XLEN", "c"), ("COPY", "s", "c"), ("TYPE", "c"),
        ("RENAME", "s", "r"), ("EXISTS", "s"), ("XINFO", "GROUPS", "r"), ("XRANGE", "r", "-", "+"),
        ("EXPIRE", "r", "100"), ("TTL", "r"), ("PERSIST", "r"), ("TTL", "r"),
        ("XGROUP", "CREATE", "e", "g", "$", "MKSTREAM"), ("TYPE", "e"), ("OBJECT", "ENCODING", "e"),
        ("COPY", "e", "e2"), ("XINFO", "STREAM", "e2"), ("XINFO", "GROUPS", "e2"),
        ("DEL", "r", "c", "e2"), ("EXISTS", "r", "c", "e2"), ("XLEN", "r"),
        ("PEXPIRE", "e", "1"),
    ])
    assert got[3] == b"+stream\r\n" and got[4] == bulk("stream")
    assert got[6:14] == [WRONGTYPE] * 8
    assert got[14] == b":1\r\n" and got[23] == b":0\r\n"
    time.sleep(0.05)
    got = run(pair2, [("EXISTS", "e"), ("XLEN", "e"), ("XINFO", "STREAM", "e")])
    assert got[0] == b":0\r\n"


def test_scan_type_stream(pair):  # noqa: F811
    for conn in (pair.locus, pair.redis):
        conn.cmd("XADD", "s1", "1-0", "f", "v")
        conn.cmd("XGROUP", "CREATE", "s2", "g", "$", "MKSTREAM")
        conn.cmd("SET", "str", "x")
        conn.cmd("RPUSH", "l", "x")
    found = {}
    for name, conn in (("locus", pair.locus), ("redis", pair.redis)):
        keys, cursor = set(), b"0"
        while True:
            cursor, page = conn.cmd("SCAN", cursor, "TYPE", "stream", "COUNT", "100")
            keys |= set(page)
            if cursor == b"0":
                break
        found[name] = keys
    assert found["locus"] == found["redis"] == {b"s1", b"s2"}


def test_arity_errors(pair2):  # noqa: F811
    names = ["XADD", "XLEN", "XRANGE", "XREVRANGE", "XDEL", "XTRIM", "XREAD", "XREADGROUP",
             "XGROUP", "XACK", "XPENDING", "XCLAIM", "XAUTOCLAIM", "XINFO"]
    steps = [(n,) for n in names] + [(n, "s") for n in names]
    got = run(pair2, steps)
    assert got[:len(names)] == [arity(n.lower()) for n in names]
    assert got[len(names) + 1] == b":0\r\n"  # XLEN s
