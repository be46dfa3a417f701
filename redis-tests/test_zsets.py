"""Sorted-set commands, checked against Debian's redis-server 7.0 (`real_redis`, from test_lists).

The same commands go to both servers over raw sockets, in RESP2 and in RESP3, and the raw reply
bytes must be identical (so score formatting such as "0.30000000000000004", "inf" / ",inf",
"-0" and the nested-array shapes of RESP3 are all checked). The main test plays seeded random
command sequences over a few keys with small member and score domains; the others pin the
option parsing and its errors, odd scores and bounds, blocking pops, stores, ZSCAN and the
listpack / skiplist encodings. Lex-range commands only run on keys whose members all have the
same score (Redis leaves the other case undefined).
"""

import random
import time

import pytest

from conftest import RawConn, Tap, encode_command
from test_lists import real_redis  # noqa: F401  (module fixture: a reference redis-server)


def open_conn(port, proto):
    c = Tap(port)
    if proto == 3:
        c.cmd("HELLO", "3")
    return c


class Pair:
    """One connection to redis-server and one to Locus, same protocol, both flushed."""

    def __init__(self, locus_port, redis_port, proto):
        self.ports = {"redis": redis_port, "locus": locus_port}
        self.proto = proto
        self.redis = open_conn(redis_port, proto)
        self.locus = open_conn(locus_port, proto)
        self.redis.cmd("FLUSHALL")
        self.locus.cmd("FLUSHALL")

    def both(self, *cmd):
        """(Locus's reply bytes, Redis's reply bytes)."""
        return self.locus.reply_bytes(*cmd), self.redis.reply_bytes(*cmd)

    def check(self, *cmd):
        got, want = self.both(*cmd)
        assert got == want, f"{cmd}: Locus {got!r} vs Redis {want!r}"
        return got

    def play(self, steps):
        """Runs every step on both servers, then asserts all replies match; returns Locus's."""
        got, want = [], []
        for cmd in steps:
            g, w = self.both(*cmd)
            got.append(g)
            want.append(w)
        assert list(zip(steps, got)) == list(zip(steps, want)), "Locus (left) vs redis-server (right)"
        return got

    def close(self):
        self.redis.close()
        self.locus.close()


@pytest.fixture
def redis_port(real_redis):  # noqa: F811
    return real_redis.connection_pool.connection_kwargs["port"]


@pytest.fixture
def pair_factory(server_port, redis_port):
    pairs = []

    def make(proto=2):
        p = Pair(server_port, redis_port, proto)
        pairs.append(p)
        return p

    yield make
    for p in pairs:
        p.close()


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def pair(request, pair_factory):
    return pair_factory(request.param)


@pytest.fixture
def pair2(pair_factory):
    return pair_factory(2)


def bulk(s):
    s = s.encode() if isinstance(s, str) else s
    return b"$%d\r\n%s\r\n" % (len(s), s)


def err(msg):
    return b"-" + msg.encode() + b"\r\n"


WRONGTYPE = err("WRONGTYPE Operation against a key holding the wrong kind of value")
SYNTAX = err("ERR syntax error")
NOT_FLOAT = err("ERR value is not a valid float")
NOT_INT = err("ERR value is not an integer or out of range")
MINMAX_FLOAT = err("ERR min or max is not a float")
MINMAX_LEX = err("ERR min or max not valid string range item")


# ---------------------------------------------------------------- random sequences

MEMBERS = ["a", "b", "c", "d", "e"]
SCORES = ["0", "1", "2", "3", "-1", "1.5", "0.1", "0.2", "-0", "inf", "-inf", "+inf", "1e300",
          "-2.5"]
SCORE_BOUNDS = ["-inf", "+inf", "inf", "0", "1", "(1", "2", "(2", "1.5", "(1.5", "(0.1", "-1",
                "(-1", "3", "(inf", "(-inf", "1e300", "-0", "(0"]
LEX_MEMBERS = ["a", "b", "c", "d", "e", "aa", "bb"]
LEX_BOUNDS = ["-", "+", "[a", "(a", "[b", "(b", "[c", "(c", "[e", "(e", "[aa", "(bb", "[z", "(0"]
SCORE_KEYS = ["z1", "z2", "z3"]


def random_command(rng):
    k = rng.choice(SCORE_KEYS + ["str"] * (rng.random() < 0.1))
    sc = lambda: rng.choice(SCORES if rng.random() > 0.03 else ["x", "nan", "1.5.5"])  # noqa: E731
    sb = lambda: rng.choice(SCORE_BOUNDS if rng.random() > 0.03 else ["x", "((1", "1x"])  # noqa: E731
    lb = lambda: rng.choice(LEX_BOUNDS if rng.random() > 0.03 else ["a", ""])  # noqa: E731
    mem = lambda: rng.choice(MEMBERS)  # noqa: E731
    mems = lambda: rng.sample(MEMBERS, rng.randint(1, 3))  # noqa: E731
    idx = lambda: rng.randint(-6, 6)  # noqa: E731
    limit = lambda: ["LIMIT", rng.randint(-1, 3), rng.randint(-1, 3)] if rng.random() < 0.4 else []  # noqa: E731
    ws = lambda: ["WITHSCORES"] if rng.random() < 0.5 else []  # noqa: E731

    def zadd():
        flags = [f for f in ["NX", "XX", "GT", "LT", "CH", "INCR"] if rng.random() < 0.18]
        rng.shuffle(flags)
        pairs = []
        for _ in range(1 if "INCR" in flags and rng.random() < 0.85 else rng.randint(1, 3)):
            pairs += [sc(), mem()]
        return ("ZADD", k, *flags, *pairs)

    def lex():
        m = rng.choice(LEX_MEMBERS)
        return rng.choice([
            ("ZADD", "lx", "0", m, "0", rng.choice(LEX_MEMBERS)),
            ("ZREM", "lx", m),
            ("ZLEXCOUNT", "lx", lb(), lb()),
            ("ZRANGEBYLEX", "lx", lb(), lb(), *limit()),
            ("ZREVRANGEBYLEX", "lx", lb(), lb(), *limit()),
            ("ZRANGE", "lx", lb(), lb(), "BYLEX", *(["REV"] if rng.random() < 0.5 else []), *limit()),
            ("ZREMRANGEBYLEX", "lx", lb(), lb()),
            ("ZRANGESTORE", "lxdst", "lx", lb(), lb(), "BYLEX", *limit()),
            ("ZRANGE", "lxdst", 0, -1, "WITHSCORES"),
            ("ZRANGE", "lx", 0, -1, "WITHSCORES"),
        ])

    def store_srcs():
        n = rng.randint(1, 3)
        return [n, *rng.sample(SCORE_KEYS + ["s", "missing"] + ["str"] * (rng.random() < 0.1), n)]

    def weights(n):
        if rng.random() < 0.4:
            return ["WEIGHTS", *[rng.choice(["1", "2", "0", "-1", "0.5", "inf"]) for _ in range(n)]]
        return []

    def aggregate():
        return ["AGGREGATE", rng.choice(["SUM", "MIN", "MAX"])] if rng.random() < 0.5 else []

    def zunionstore():
        srcs = store_srcs()
        return (rng.choice(["ZUNIONSTORE", "ZINTERSTORE"]), rng.choice(["dst", "z3"]), *srcs,
                *weights(srcs[0]), *aggregate())

    def zrange():
        kind = rng.choice(["", "BYSCORE"])
        rev = ["REV"] if rng.random() < 0.4 else []
        if kind == "BYSCORE":
            return ("ZRANGE", k, sb(), sb(), "BYSCORE", *rev, *limit(), *ws())
        return ("ZRANGE", k, idx(), idx(), *rev, *ws())

    gens = [
        zadd, zadd, zadd, zadd,
        lambda: ("ZREM", k, *mems()),
        lambda: ("ZSCORE", k, mem()),
        lambda: ("ZMSCORE", k, *mems()),
        lambda: ("ZINCRBY", k, sc(), mem()),
        lambda: ("ZCARD", k),
        lambda: ("ZCOUNT", k, sb(), sb()),
        zrange, zrange, zrange,
        lambda: ("ZRANGEBYSCORE", k, sb(), sb(), *ws(), *limit()),
        lambda: ("ZREVRANGEBYSCORE", k, sb(), sb(), *ws(), *limit()),
        lambda: ("ZREVRANGE", k, idx(), idx(), *ws()),
        lambda: ("ZRANK", k, mem()),
        lambda: ("ZREVRANK", k, mem()),
        lambda: ("ZPOPMIN", k),
        lambda: ("ZPOPMAX", k),
        lambda: (rng.choice(["ZPOPMIN", "ZPOPMAX"]), k, rng.randint(0, 3)),
        lambda: ("ZMPOP", rng.randint(1, 3), *rng.sample(SCORE_KEYS + ["str", "missing"], 3),
                 rng.choice(["MIN", "MAX"]), *(["COUNT", rng.randint(1, 3)] if rng.random() < 0.6 else [])),
        lambda: (rng.choice(["BZPOPMIN", "BZPOPMAX"]), *rng.sample(SCORE_KEYS, 3), "0.01"),
        lambda: ("ZRANGESTORE", "dst", k, sb(), sb(), "BYSCORE", *(["REV"] if rng.random() < 0.3 else []), *limit()),
        lambda: ("ZRANGESTORE", "dst", k, idx(), idx()),
        lambda: ("ZRANGE", "dst", 0, -1, "WITHSCORES"),
        lambda: ("ZREMRANGEBYSCORE", k, sb(), sb()),
        lambda: ("ZREMRANGEBYRANK", k, idx(), idx()),
        zunionstore, zunionstore,
        lambda: ("SADD", "s", *mems()),
        lambda: ("TYPE", rng.choice(SCORE_KEYS + ["dst", "str", "s"])),
        lambda: ("EXISTS", k),
        lambda: ("OBJECT", "ENCODING", rng.choice(SCORE_KEYS + ["dst", "lx"])),
        lambda: ("SET", "str", "x"),
        lex, lex, lex,
    ]
    return rng.choice(gens)()


def random_sequence(seed, n=300):
    rng = random.Random(seed)
    return [random_command(rng) for _ in range(n)]


def test_random_generator_hits_the_interesting_cases():
    """The sequences must really reach non-empty ranges, errors, infinities and RESP3 doubles."""
    cmds = [c for seed in range(SEEDS) for c in random_sequence(seed)]
    names = {c[0] for c in cmds}
    for name in ["ZADD", "ZREM", "ZSCORE", "ZMSCORE", "ZINCRBY", "ZCARD", "ZCOUNT", "ZLEXCOUNT",
                 "ZRANGE", "ZRANGEBYSCORE", "ZREVRANGEBYSCORE", "ZRANGEBYLEX", "ZREVRANGEBYLEX",
                 "ZREVRANGE", "ZRANK", "ZREVRANK", "ZPOPMIN", "ZPOPMAX", "ZMPOP", "BZPOPMIN",
                 "BZPOPMAX", "ZRANGESTORE", "ZREMRANGEBYSCORE", "ZREMRANGEBYRANK",
                 "ZREMRANGEBYLEX", "ZUNIONSTORE", "ZINTERSTORE"]:
        assert name in names, name
    zadds = [c for c in cmds if c[0] == "ZADD"]
    for flag in ["NX", "XX", "GT", "LT", "CH", "INCR"]:
        assert sum(flag in c for c in zadds) > 20, flag


SEEDS = 8

# Differences from redis-server 7.0 found by these tests. Each has its own xfail test below; the
# random sequences meet them all, so the full comparison is xfail too, and a second run of the
# same sequences leaves out just the commands that meet them (see `meets_known_difference`).
RANK_RANGE = pytest.mark.xfail(strict=True, reason=(
    "rank ranges whose end is below -len: Redis returns/stores/removes nothing (end+len < 0 < "
    "start), Locus clamps the end to 0 and takes the first member (ZRANGE, ZREVRANGE, "
    "ZRANGESTORE, ZREMRANGEBYRANK)"))
REV_INF = pytest.mark.xfail(strict=True, reason=(
    "reverse score ranges (ZREVRANGEBYSCORE, ZRANGE ... BYSCORE REV, ZRANGESTORE ... REV) leave "
    "out members whose score is +inf although the max bound (+inf, inf, 1e400) includes them"))
INCR_MINUS_ZERO = pytest.mark.xfail(strict=True, reason=(
    "ZINCRBY / ZADD INCR of a new member by -0: Redis replies -0 (the increment itself), Locus 0"))
NEVER_SHRINKS = pytest.mark.xfail(strict=True, reason=(
    "Redis 7.0 never converts a skiplist zset back to listpack when it shrinks (ZREM, ZPOP*, "
    "ZREMRANGEBY*); Locus reports listpack again"))
RANDOM_SEQUENCES = pytest.mark.xfail(strict=True, reason=(
    "the sequences meet the RANK_RANGE, REV_INF and INCR_MINUS_ZERO differences"))


def meets_known_difference(redis_conn, cmd):
    """Whether `cmd`, run on the state redis_conn holds now, meets RANK_RANGE, REV_INF or
    INCR_MINUS_ZERO (asks redis-server only, so Locus's state is not touched)."""
    name, args = cmd[0], list(cmd[1:])
    if name == "ZINCRBY" and args[1] == "-0" or name == "ZADD" and "INCR" in args and "-0" in args:
        return True
    if name in ("ZRANGE", "ZREVRANGE", "ZRANGESTORE", "ZREMRANGEBYRANK"):
        if name == "ZRANGESTORE":
            args = args[1:]
        key, start, stop = args[:3]
        if isinstance(start, int) and isinstance(stop, int):
            n = redis_conn.cmd("ZCARD", key)
            if isinstance(n, int) and min(start, stop) < -n:
                return True
        if "REV" in args and "BYSCORE" in args and redis_conn.cmd("ZCOUNT", key, "inf", "inf"):
            return True
    if name == "ZREVRANGEBYSCORE" and redis_conn.cmd("ZCOUNT", args[0], "inf", "inf"):
        return True
    return False


@pytest.mark.parametrize("seed", range(SEEDS))
@pytest.mark.parametrize("proto", [2, 3], ids=["resp2", "resp3"])
def test_random_sequences_match_redis(pair_factory, proto, seed):
    p = pair_factory(proto)
    for cmd in random_sequence(seed):
        p.check(*cmd)


@pytest.mark.parametrize("seed", range(SEEDS))
@pytest.mark.parametrize("proto", [2, 3], ids=["resp2", "resp3"])
def test_random_sequences_match_redis_apart_from_known_differences(pair_factory, proto, seed):
    p = pair_factory(proto)
    kinds = {"nonempty-range": 0, "error": 0, "double": 0, "left-out": 0}
    for cmd in random_sequence(seed):
        if meets_known_difference(p.redis, cmd):
            kinds["left-out"] += 1
            continue
        got = p.check(*cmd)
        if got.startswith(b"-"):
            kinds["error"] += 1
        if got.startswith(b"*") and got.count(b"\r\n") > 3:
            kinds["nonempty-range"] += 1
        if b"," in got or b"inf" in got:
            kinds["double"] += 1
    assert kinds["left-out"] < 75, kinds
    assert all(v > 3 for k, v in kinds.items() if k != "left-out"), kinds


# ---------------------------------------------------------------- ZADD options and errors


def test_zadd_flags(pair):
    got = pair.play([
        ("ZADD", "z", "1", "a", "2", "b"),
        ("ZADD", "z", "NX", "5", "a", "3", "c"),
        ("ZADD", "z", "XX", "5", "a", "4", "d"),
        ("ZADD", "z", "XX", "CH", "6", "a", "2", "b"),
        ("ZADD", "z", "GT", "CH", "1", "a", "9", "b", "1", "e"),
        ("ZADD", "z", "LT", "CH", "7", "a", "0", "b"),
        ("ZADD", "z", "XX", "GT", "CH", "100", "c", "1", "a"),
        ("ZADD", "z", "CH", "100", "c", "1", "a", "1", "new"),
        ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
        ("ZADD", "z", "INCR", "2", "a"),
        ("ZADD", "z", "NX", "INCR", "2", "a"),
        ("ZADD", "z", "XX", "INCR", "2", "missing"),
        ("ZADD", "z", "GT", "INCR", "-1", "a"),
        ("ZADD", "z", "LT", "INCR", "-1", "a"),
        ("ZADD", "z", "LT", "INCR", "1", "a"),
        ("ZADD", "z", "INCR", "CH", "0.5", "fresh"),
        ("ZADD", "z", "INCR", "0.2", "fresh"),
        ("ZADD", "z", "GT", "5", "brandnew"),
        ("ZADD", "z", "nx", "ch", "xx"),
        ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
        ("ZADD", "z", "XX", "1", "nope"),
        ("ZADD", "z", "1", "dup", "2", "dup", "3", "dup"), ("ZSCORE", "z", "dup"),
        ("ZADD", "z", "CH", "5", "dup", "3", "dup"), ("ZADD", "z", "NX", "1", "x1", "2", "x1"),
        ("ZSCORE", "z", "x1"),
        ("ZADD", "nokey", "XX", "1", "a"),
        ("EXISTS", "nokey"),
    ])
    assert got[1] == b":1\r\n" and got[2] == b":0\r\n" and got[3] == b":1\r\n"
    assert got[4] == b":2\r\n"
    assert got[10] in (b"$-1\r\n", b"_\r\n") and got[11] == got[10]
    assert got[-1] == b":0\r\n"


@pytest.mark.parametrize("args, reply", [
    (("NX", "XX", "1", "a"), err("ERR XX and NX options at the same time are not compatible")),
    (("NX", "GT", "1", "a"), err("ERR GT, LT, and/or NX options at the same time are not compatible")),
    (("NX", "LT", "1", "a"), err("ERR GT, LT, and/or NX options at the same time are not compatible")),
    (("GT", "LT", "1", "a"), err("ERR GT, LT, and/or NX options at the same time are not compatible")),
    (("INCR", "1", "a", "2", "b"), err("ERR INCR option supports a single increment-element pair")),
    (("INCR",), err("ERR wrong number of arguments for 'zadd' command")),
    (("1",), err("ERR wrong number of arguments for 'zadd' command")),
    (("1", "a", "2"), SYNTAX),
    (("NX", "1"), SYNTAX),
    (("x", "a"), NOT_FLOAT),
    (("nan", "a"), NOT_FLOAT),
    (("1", "a", "bad", "b"), NOT_FLOAT),
    (("FOO", "1", "a"), SYNTAX),
    (("FOO", "a"), NOT_FLOAT),
    (("INCR", "x", "a"), NOT_FLOAT),
    (("NX", "XX", "x", "a"), err("ERR XX and NX options at the same time are not compatible")),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_zadd_errors(pair2, args, reply):
    got = pair2.play([("ZADD", "z", "1", "keep"), ("ZADD", "z", *args), ("ZCARD", "z")])
    assert got[1] == reply
    assert got[2] == b":1\r\n"


def test_zadd_incr_nan_and_zincrby(pair):
    got = pair.play([
        ("ZADD", "z", "inf", "a"),
        ("ZADD", "z", "INCR", "-inf", "a"),
        ("ZINCRBY", "z", "-inf", "a"),
        ("ZINCRBY", "z", "1", "a"),
        ("ZINCRBY", "z", "x", "a"),
        ("ZINCRBY", "z", "nan", "a"),
        ("ZINCRBY", "z", "0.1", "b"),
        ("ZINCRBY", "z", "0.2", "b"),
        ("ZSCORE", "z", "b"),
        ("ZINCRBY", "z", "1e300", "c"),
        ("ZINCRBY", "z", "1e300", "c"),
        ("ZADD", "z", "INCR", "-1e300", "c"),
        ("ZINCRBY", "new", "0", "m"),
        ("ZSCORE", "new", "m"),
        ("ZINCRBY", "z", "1", "b", "extra"),
        ("ZSCORE", "z", "a"),
    ])
    nan = err("ERR resulting score is not a number (NaN)")
    assert got[1] == nan and got[2] == nan
    assert got[4] == NOT_FLOAT
    assert b"0.30000000000000004" in got[7]


@pytest.mark.parametrize("cmd", [("ZINCRBY", "z", "-0", "new"), ("ZADD", "z", "INCR", "-0", "new"),
                                 ("ZADD", "z", "NX", "INCR", "-0", "new")], ids=lambda c: " ".join(c))
def test_incr_of_a_new_member_by_minus_zero(pair, cmd):
    got = pair.play([("ZADD", "z", "1", "old"), cmd, ("ZSCORE", "z", "new"), ("ZINCRBY", "z", "-0", "old")])
    assert got[1] == (bulk("-0") if pair.proto == 2 else b",-0\r\n")


# ---------------------------------------------------------------- scores and their formatting

HEX_SCORE = pytest.mark.xfail(strict=True, reason=(
    "Redis parses scores with strtod, so hexadecimal 0x10 is the score 16; Locus says "
    "'ERR value is not a valid float'"))
OUT_OF_RANGE_SCORE = pytest.mark.xfail(strict=True, reason=(
    "Redis rejects scores strtod reports out of range (1e400, -1e400, 1e-400) with 'ERR value "
    "is not a valid float'; Locus accepts them as inf, -inf and 0"))


@pytest.mark.parametrize("score", [
    "1", "-1", "0", "-0", "+0", "0.1", "0.2", "0.30000000000000004", "1.5", "1e300", "-1e300",
    "inf", "-inf", "+inf", "INF", "Infinity", "-infinity", "1e-300", "123456789012345678",
    "4503599627370496", "9007199254740993", "3.0", "1E3", ".5", "5.", " 1", "1 ", "", "nan",
    "NaN", "-nan", "1,5", "1e308", "2.2250738585072014e-308", "5e-324",
    pytest.param("0x10", marks=HEX_SCORE),
    pytest.param("1e400", marks=OUT_OF_RANGE_SCORE),
    pytest.param("-1e400", marks=OUT_OF_RANGE_SCORE),
    pytest.param("1e-400", marks=OUT_OF_RANGE_SCORE),
])
def test_score_parsing_and_formatting(pair, score):
    got = pair.play([
        ("ZADD", "z", score, "m"),
        ("ZSCORE", "z", "m"),
        ("ZINCRBY", "z", score, "m"),
        ("ZINCRBY", "z", "1", "n"),
        ("ZINCRBY", "z", score, "n"),
        ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
        ("ZADD", "big", score, "m", *[x for i in range(130) for x in (i, f"f{i}")]),
        ("ZSCORE", "big", "m"),
        ("ZMSCORE", "z", "m", "missing", "n"),
    ])
    assert got[0] in (b":1\r\n", NOT_FLOAT)


def test_float_scores_keep_full_precision(pair):
    got = pair.play([
        ("ZADD", "z", "0.1", "a"),
        ("ZINCRBY", "z", "0.2", "a"),
        ("ZADD", "z", "INCR", "-0.30000000000000004", "a"),
        ("ZSCORE", "z", "a"),
        ("ZADD", "z", "-0", "b", "0", "c"),
        ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
        ("ZRANGEBYSCORE", "z", "0", "0", "WITHSCORES"),
        ("ZRANGEBYSCORE", "z", "(-0", "+inf"),
    ])
    assert b"0.30000000000000004" in got[1]


# ---------------------------------------------------------------- reads


def test_zrem_zscore_zmscore_zcard(pair):
    got = pair.play([
        ("ZADD", "z", "1", "a", "2", "b", "3", "c"),
        ("ZREM", "z", "a", "a", "x"),
        ("ZREM", "z", "x"),
        ("ZSCORE", "z", "b"), ("ZSCORE", "z", "a"), ("ZSCORE", "missing", "a"),
        ("ZMSCORE", "z", "a", "b", "c"), ("ZMSCORE", "missing", "a", "b"),
        ("ZMSCORE", "z"),
        ("ZCARD", "z"), ("ZCARD", "missing"),
        ("ZREM", "z", "b", "c"), ("EXISTS", "z"), ("TYPE", "z"),
        ("ZREM", "missing", "a"),
        ("ZREM", "z"),
    ])
    assert got[1] == b":1\r\n" and got[2] == b":0\r\n"
    assert got[8] == err("ERR wrong number of arguments for 'zmscore' command")
    assert got[11] == b":2\r\n" and got[12] == b":0\r\n"


def test_zcount_and_zlexcount(pair):
    got = pair.play([
        ("ZADD", "z", "-inf", "n", "1", "a", "2", "b", "2", "bb", "3", "c", "inf", "p"),
        ("ZCOUNT", "z", "-inf", "+inf"), ("ZCOUNT", "z", "(-inf", "(inf"),
        ("ZCOUNT", "z", "2", "2"), ("ZCOUNT", "z", "(2", "3"), ("ZCOUNT", "z", "(1", "(3"),
        ("ZCOUNT", "z", "3", "1"), ("ZCOUNT", "z", "x", "1"), ("ZCOUNT", "z", "1", "(x"),
        ("ZCOUNT", "missing", "0", "1"),
        ("ZADD", "l", "0", "a", "0", "b", "0", "c", "0", "d"),
        ("ZLEXCOUNT", "l", "-", "+"), ("ZLEXCOUNT", "l", "[b", "[c"), ("ZLEXCOUNT", "l", "(b", "+"),
        ("ZLEXCOUNT", "l", "+", "-"), ("ZLEXCOUNT", "l", "b", "c"), ("ZLEXCOUNT", "l", "[a", ""),
        ("ZLEXCOUNT", "l", "[", "(d"), ("ZLEXCOUNT", "missing", "-", "+"),
    ])
    assert got[1] == b":6\r\n" and got[2] == b":4\r\n" and got[3] == b":2\r\n"
    assert got[7] == MINMAX_FLOAT and got[8] == MINMAX_FLOAT
    assert got[15] == MINMAX_LEX


def test_zrange_variants(pair):
    got = pair.play([
        ("ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e"),
        ("ZRANGE", "z", "0", "-1"), ("ZRANGE", "z", "1", "2", "WITHSCORES"),
        ("ZRANGE", "z", "-2", "100", "REV", "WITHSCORES"), ("ZRANGE", "z", "3", "1"),
        ("ZRANGE", "z", "-100", "-4"),
        ("ZRANGE", "z", "(1", "4", "BYSCORE", "WITHSCORES"),
        ("ZRANGE", "z", "4", "(1", "BYSCORE", "REV", "WITHSCORES"),
        ("ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "1", "2"),
        ("ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "1", "-1", "WITHSCORES"),
        ("ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "-1", "2"),
        ("ZRANGE", "z", "1", "4", "BYSCORE", "REV"),
        ("ZADD", "l", "0", "a", "0", "b", "0", "c", "0", "d"),
        ("ZRANGE", "l", "[b", "+", "BYLEX"), ("ZRANGE", "l", "+", "(b", "BYLEX", "REV"),
        ("ZRANGE", "l", "-", "+", "BYLEX", "LIMIT", "1", "2"),
        ("ZRANGE", "l", "+", "-", "BYLEX", "REV", "LIMIT", "0", "1"),
        ("ZRANGE", "missing", "0", "-1"), ("ZRANGE", "missing", "0", "-1", "WITHSCORES"),
        ("ZRANGE", "z", "0", "-1", "withscores", "rev"),
        ("ZRANGE", "z", "0", "-1", "WITHSCORES", "WITHSCORES"),
    ])
    assert got[1] == b"*5\r\n" + b"".join(bulk(m) for m in "abcde")


@pytest.mark.parametrize("args, reply", [
    (("0", "-1", "LIMIT", "0", "1"),
     err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")),
    (("-", "+", "BYLEX", "WITHSCORES"),
     err("ERR syntax error, WITHSCORES not supported in combination with BYLEX")),
    (("0", "1", "BYSCORE", "BYLEX"), SYNTAX),
    (("0", "1", "BYLEX", "BYSCORE"), SYNTAX),
    (("0", "1", "BYSCORE", "LIMIT", "0"), SYNTAX),
    (("0", "1", "BYSCORE", "LIMIT", "x", "1"), NOT_INT),
    (("0", "1", "BYSCORE", "LIMIT", "0", "1.5"), NOT_INT),
    (("0", "1", "FOO"), SYNTAX),
    (("a", "1"), NOT_INT),
    (("0", "1.0"), NOT_INT),
    (("x", "1", "BYSCORE"), MINMAX_FLOAT),
    (("a", "+", "BYLEX"), MINMAX_LEX),
    (("0",), err("ERR wrong number of arguments for 'zrange' command")),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_zrange_syntax_errors(pair2, args, reply):
    got = pair2.play([("ZADD", "z", "1", "a"), ("ZRANGE", "z", *args),
                      ("ZRANGE", "missing", *args)])
    assert got[1] == reply


def test_zrangebyscore_and_lex_commands(pair):
    got = pair.play([
        ("ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e"),
        ("ZRANGEBYSCORE", "z", "-inf", "+inf"),
        ("ZRANGEBYSCORE", "z", "(1", "(4", "WITHSCORES"),
        ("ZRANGEBYSCORE", "z", "2", "5", "LIMIT", "1", "2", "WITHSCORES"),
        ("ZRANGEBYSCORE", "z", "2", "5", "WITHSCORES", "LIMIT", "0", "-5"),
        ("ZRANGEBYSCORE", "z", "5", "2"),
        ("ZRANGEBYSCORE", "z", "2", "5", "LIMIT", "1"),
        ("ZRANGEBYSCORE", "z", "2", "5", "FOO"),
        ("ZRANGEBYSCORE", "z", "2", "x"),
        ("ZREVRANGEBYSCORE", "z", "+inf", "-inf", "WITHSCORES"),
        ("ZREVRANGEBYSCORE", "z", "(5", "2", "LIMIT", "1", "10"),
        ("ZREVRANGEBYSCORE", "z", "2", "5"),
        ("ZREVRANGE", "z", "0", "1", "WITHSCORES"), ("ZREVRANGE", "z", "-2", "-1"),
        ("ZREVRANGE", "z", "0", "1", "FOO"),
        ("ZADD", "l", "0", "a", "0", "b", "0", "c", "0", "d", "0", "e"),
        ("ZRANGEBYLEX", "l", "-", "+"), ("ZRANGEBYLEX", "l", "(a", "[c"),
        ("ZRANGEBYLEX", "l", "-", "+", "LIMIT", "2", "2"),
        ("ZRANGEBYLEX", "l", "-", "+", "LIMIT", "2"),
        ("ZRANGEBYLEX", "l", "a", "+"),
        ("ZREVRANGEBYLEX", "l", "+", "-"), ("ZREVRANGEBYLEX", "l", "[d", "(a", "LIMIT", "1", "2"),
        ("ZREVRANGEBYLEX", "l", "-", "+"),
        ("ZRANGEBYSCORE", "l", "0", "0", "LIMIT", "3", "-1"),
    ])
    assert got[2] == (b"*4\r\n" + bulk("b") + bulk("2") + bulk("c") + bulk("3")
                      if pair.proto == 2 else
                      b"*2\r\n*2\r\n" + bulk("b") + b",2\r\n*2\r\n" + bulk("c") + b",3\r\n")


@pytest.mark.parametrize("cmd", [("ZRANGEBYLEX", "l", "-", "+", "WITHSCORES"),
                                 ("ZREVRANGEBYLEX", "l", "+", "-", "WITHSCORES"),
                                 ("ZRANGEBYLEX", "l", "-", "+", "LIMIT", "0", "1", "WITHSCORES")],
                         ids=lambda c: " ".join(c))
def test_bylex_withscores_error_message(pair2, cmd):
    got = pair2.play([("ZADD", "l", "0", "a"), cmd])
    assert got[1] == err("ERR syntax error, WITHSCORES not supported in combination with BYLEX")


def test_zrank_and_zrevrank(pair):
    got = pair.play([
        ("ZADD", "z", "1", "a", "2", "b", "2", "c", "-inf", "d"),
        ("ZRANK", "z", "a"), ("ZRANK", "z", "d"), ("ZRANK", "z", "c"), ("ZRANK", "z", "x"),
        ("ZREVRANK", "z", "a"), ("ZREVRANK", "z", "d"), ("ZREVRANK", "z", "x"),
        ("ZRANK", "missing", "a"), ("ZREVRANK", "missing", "a"),
        ("ZRANK", "z", "a", "b"),
    ])
    assert got[1] == b":1\r\n" and got[2] == b":0\r\n" and got[5] == b":2\r\n"
    assert got[4] == (b"$-1\r\n" if pair.proto == 2 else b"_\r\n")


# ---------------------------------------------------------------- pops


def test_zpopmin_zpopmax(pair):
    got = pair.play([
        ("ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e", "-0", "z"),
        ("ZPOPMIN", "z"), ("ZPOPMAX", "z"), ("ZPOPMIN", "z", "2"), ("ZPOPMAX", "z", "1"),
        ("ZPOPMIN", "z", "0"), ("ZPOPMIN", "z", "-1"), ("ZPOPMAX", "z", "-5"),
        ("ZPOPMAX", "z", "10"), ("EXISTS", "z"),
        ("ZPOPMIN", "missing"), ("ZPOPMIN", "missing", "2"), ("ZPOPMAX", "missing", "0"),
        ("ZPOPMIN", "z", "1", "2"),
    ])
    # A listpack keeps -0 as the string "0", so redis-server replies 0 here.
    assert got[1] == ((b"*2\r\n" + bulk("z") + bulk("0")) if pair.proto == 2 else
                      (b"*2\r\n" + bulk("z") + b",0\r\n"))
    assert got[6] == err("ERR value is out of range, must be positive")
    assert got[10] == b"*0\r\n"


@pytest.mark.parametrize("cmd", ["ZPOPMIN", "ZPOPMAX"])
def test_zpop_non_integer_count_error(pair2, cmd):
    got = pair2.play([("ZADD", "z", "1", "a"), (cmd, "z", "x"), (cmd, "missing", "1.5")])
    assert got[1] == got[2] == err("ERR value is out of range, must be positive")


def test_zmpop(pair):
    got = pair.play([
        ("ZADD", "z2", "1", "a", "2", "b", "3", "c"),
        ("ZMPOP", "2", "z1", "z2", "MIN"),
        ("ZMPOP", "2", "z1", "z2", "MAX", "COUNT", "5"),
        ("ZMPOP", "1", "z2", "MIN"),
        ("ZADD", "z1", "inf", "x"),
        ("ZMPOP", "3", "z1", "z2", "z3", "min", "count", "1"),
        ("ZMPOP", "0", "z1", "MIN"),
        ("ZMPOP", "-1", "z1", "MIN"),
        ("ZMPOP", "2", "z1", "MIN"),
        ("ZMPOP", "1", "z1", "MIN", "COUNT", "0"),
        ("ZMPOP", "1", "z1", "MIN", "COUNT", "-1"),
        ("ZMPOP", "1", "z1", "MIN", "COUNT"),
        ("ZMPOP", "1", "z1", "MIN", "COUNT", "1", "COUNT", "2"),
        ("ZMPOP", "1", "z1", "LEFT"),
        ("ZMPOP", "x", "z1", "MIN"),
        ("SET", "str", "v"),
        ("ZMPOP", "2", "z1", "str", "MIN"),
        ("ZMPOP", "2", "str", "z1", "MIN"),
    ])
    assert got[1] == (b"*2\r\n" + bulk("z2") + b"*1\r\n*2\r\n" + bulk("a") +
                      (bulk("1") if pair.proto == 2 else b",1\r\n"))
    assert got[6] == err("ERR numkeys should be greater than 0")
    assert got[9] == err("ERR count should be greater than 0")


# ---------------------------------------------------------------- blocking pops


def test_bzpop_immediate(pair):
    got = pair.play([
        ("ZADD", "z2", "1", "a", "2", "b", "3", "c"),
        ("BZPOPMIN", "z1", "z2", "0"),
        ("BZPOPMAX", "z1", "z2", "0"),
        ("BZPOPMIN", "z2", "0.5"),
        ("EXISTS", "z2"),
        ("BZPOPMIN", "z1", "-1"),
        ("BZPOPMIN", "z1", "x"),
        ("BZPOPMIN", "z1"),
        ("SET", "str", "v"),
        ("BZPOPMAX", "str", "0"),
        ("ZADD", "z1", "inf", "m"),
        ("BZPOPMAX", "z1", "str", "0"),
    ])
    assert got[1] == (b"*3\r\n" + bulk("z2") + bulk("a") +
                      (bulk("1") if pair.proto == 2 else b",1\r\n"))
    assert got[5] == err("ERR timeout is negative")
    assert got[6] == err("ERR timeout is not a float or out of range")


def blocked_pop(port, proto, pop, push):
    """Connection A blocks in `pop`; connection B then runs each command of `push`.
    Returns (A's reply bytes, B's replies bytes, seconds A waited)."""
    a, b = open_conn(port, proto), open_conn(port, proto)
    try:
        b.cmd("FLUSHALL")
        t0 = time.monotonic()
        a.send(encode_command(*pop))
        time.sleep(0.05)
        pushed = [b.reply_bytes(*cmd) for cmd in push]
        got = a.read_bytes()
        return got, pushed, time.monotonic() - t0
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("proto", [2, 3], ids=["resp2", "resp3"])
@pytest.mark.parametrize("pop, push", [
    (("BZPOPMIN", "z1", "z2", "5"), [("ZADD", "z2", "2", "b", "1", "a")]),
    (("BZPOPMAX", "z1", "z2", "5"), [("ZADD", "z2", "2", "b", "1", "a")]),
    (("BZPOPMIN", "z1", "z2", "0"), [("SET", "x", "1"), ("ZADD", "z1", "inf", "a")]),
    (("BZPOPMAX", "z1", "5"), [("MULTI",), ("ZADD", "z1", "1", "a", "3", "c"), ("ZREM", "z1", "c"),
                               ("EXEC",)]),
    (("BZPOPMIN", "z1", "5"), [("ZUNIONSTORE", "z1", "1", "missing"), ("SADD", "s", "q"),
                               ("ZUNIONSTORE", "z1", "1", "s")]),
])
def test_bzpop_woken_by_another_client(server_port, redis_port, proto, pop, push):
    got = blocked_pop(server_port, proto, pop, push)
    want = blocked_pop(redis_port, proto, pop, push)
    assert got[:2] == want[:2]
    assert got[2] < 2


@pytest.mark.parametrize("proto", [2, 3], ids=["resp2", "resp3"])
def test_bzpop_fractional_timeout(server_port, redis_port, proto):
    replies = {}
    for name, port in [("redis", redis_port), ("locus", server_port)]:
        c = open_conn(port, proto)
        try:
            c.cmd("DEL", "empty")
            t0 = time.monotonic()
            replies[name] = c.reply_bytes("BZPOPMIN", "empty", "0.25")
            elapsed = time.monotonic() - t0
            c.reply_bytes("BZPOPMAX", "empty", "0.01")  # a short one must work too
        finally:
            c.close()
        if name == "locus":
            assert 0.2 <= elapsed < 1.5, elapsed
    assert replies["locus"] == replies["redis"]
    assert replies["locus"] == (b"*-1\r\n" if proto == 2 else b"_\r\n")


# ---------------------------------------------------------------- stores and removals


def test_zrangestore(pair):
    got = pair.play([
        ("ZADD", "src", "1", "a", "2", "b", "3", "c", "4", "d"),
        ("ZRANGESTORE", "dst", "src", "1", "2"), ("ZRANGE", "dst", "0", "-1", "WITHSCORES"),
        ("ZRANGESTORE", "dst", "src", "(1", "+inf", "BYSCORE", "LIMIT", "1", "5"),
        ("ZRANGE", "dst", "0", "-1", "WITHSCORES"),
        ("ZRANGESTORE", "dst", "src", "3", "1", "BYSCORE", "REV"),
        ("ZRANGE", "dst", "0", "-1", "WITHSCORES"),
        ("ZRANGESTORE", "dst", "src", "5", "6"), ("EXISTS", "dst"),
        ("ZADD", "dst", "1", "x"), ("ZRANGESTORE", "dst", "missing", "0", "-1"), ("EXISTS", "dst"),
        ("ZADD", "l", "0", "a", "0", "b", "0", "c"),
        ("ZRANGESTORE", "dst", "l", "[b", "+", "BYLEX"), ("ZRANGE", "dst", "0", "-1", "WITHSCORES"),
        ("ZRANGESTORE", "dst", "src", "0", "-1", "WITHSCORES"),
        ("ZRANGESTORE", "dst", "src", "0", "-1", "LIMIT", "0", "1"),
        ("SET", "str", "v"),
        ("ZRANGESTORE", "dst", "str", "0", "-1"),
        ("ZRANGESTORE", "str", "src", "0", "0"), ("TYPE", "str"),
        ("ZRANGESTORE", "src", "src", "0", "0"), ("ZRANGE", "src", "0", "-1", "WITHSCORES"),
    ])
    assert got[1] == b":2\r\n"
    assert got[8] == b":0\r\n" and got[11] == b":0\r\n"


def test_zremrange(pair):
    got = pair.play([
        ("ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e"),
        ("ZREMRANGEBYSCORE", "z", "(1", "2"), ("ZREMRANGEBYSCORE", "z", "10", "20"),
        ("ZREMRANGEBYSCORE", "z", "x", "2"), ("ZRANGE", "z", "0", "-1"),
        ("ZREMRANGEBYRANK", "z", "-1", "-1"), ("ZREMRANGEBYRANK", "z", "5", "10"),
        ("ZREMRANGEBYRANK", "z", "1", "0"), ("ZREMRANGEBYRANK", "z", "a", "0"),
        ("ZRANGE", "z", "0", "-1"),
        ("ZREMRANGEBYRANK", "z", "0", "-1"), ("EXISTS", "z"),
        ("ZADD", "l", "0", "a", "0", "b", "0", "c", "0", "d"),
        ("ZREMRANGEBYLEX", "l", "(a", "[c"), ("ZREMRANGEBYLEX", "l", "a", "c"),
        ("ZRANGE", "l", "0", "-1"), ("ZREMRANGEBYLEX", "l", "-", "+"), ("EXISTS", "l"),
        ("ZREMRANGEBYSCORE", "missing", "-inf", "inf"), ("ZREMRANGEBYRANK", "missing", "0", "-1"),
        ("ZREMRANGEBYLEX", "missing", "-", "+"),
    ])
    assert got[1] == b":1\r\n" and got[3] == MINMAX_FLOAT
    assert got[10] == b":3\r\n" and got[11] == b":0\r\n"


def test_zunionstore_zinterstore(pair):
    got = pair.play([
        ("ZADD", "a", "1", "x", "2", "y", "3", "z"),
        ("ZADD", "b", "10", "y", "20", "z", "30", "w"),
        ("SADD", "s", "x", "w", "v"),
        ("ZUNIONSTORE", "d", "2", "a", "b"), ("ZRANGE", "d", "0", "-1", "WITHSCORES"),
        ("ZINTERSTORE", "d", "2", "a", "b"), ("ZRANGE", "d", "0", "-1", "WITHSCORES"),
        ("ZUNIONSTORE", "d", "3", "a", "b", "s", "WEIGHTS", "2", "0.5", "-1"),
        ("ZRANGE", "d", "0", "-1", "WITHSCORES"),
        ("ZUNIONSTORE", "d", "2", "a", "b", "AGGREGATE", "MIN"), ("ZRANGE", "d", "0", "-1", "WITHSCORES"),
        ("ZUNIONSTORE", "d", "2", "a", "b", "AGGREGATE", "max", "WEIGHTS", "1", "-1"),
        ("ZRANGE", "d", "0", "-1", "WITHSCORES"),
        ("ZINTERSTORE", "d", "2", "a", "s"), ("ZRANGE", "d", "0", "-1", "WITHSCORES"),
        ("ZINTERSTORE", "d", "2", "s", "s", "WEIGHTS", "3", "4"), ("ZRANGE", "d", "0", "-1", "WITHSCORES"),
        ("ZINTERSTORE", "d", "2", "a", "missing"), ("EXISTS", "d"),
        ("ZUNIONSTORE", "d", "1", "missing"), ("EXISTS", "d"),
        ("ZUNIONSTORE", "a", "2", "a", "b"), ("ZRANGE", "a", "0", "-1", "WITHSCORES"),
        ("ZADD", "i", "inf", "x", "-inf", "y"), ("ZADD", "j", "-inf", "x", "inf", "y"),
        ("ZUNIONSTORE", "d", "2", "i", "j"), ("ZRANGE", "d", "0", "-1", "WITHSCORES"),
        ("ZUNIONSTORE", "d", "1", "i", "WEIGHTS", "0"), ("ZRANGE", "d", "0", "-1", "WITHSCORES"),
        ("ZINTERSTORE", "d", "2", "i", "j", "AGGREGATE", "MIN"), ("ZRANGE", "d", "0", "-1", "WITHSCORES"),
        ("ZUNIONSTORE", "d", "2", "b", "b", "WEIGHTS", "inf", "1"), ("ZRANGE", "d", "0", "-1", "WITHSCORES"),
    ])
    assert got[3] == b":4\r\n" and got[5] == b":2\r\n"
    assert got[17] == b":0\r\n" and got[18] == b":0\r\n"


@pytest.mark.parametrize("cmd", ["ZUNIONSTORE", "ZINTERSTORE"])
@pytest.mark.parametrize("args, reply", [
    (("0", "a"), err("ERR at least 1 input key is needed for '{cmd}' command")),
    (("-1", "a"), err("ERR at least 1 input key is needed for '{cmd}' command")),
    (("3", "a", "b"), SYNTAX),
    (("x", "a"), NOT_INT),
    (("2", "a", "b", "WEIGHTS", "1"), SYNTAX),
    (("2", "a", "b", "WEIGHTS", "1", "x"), err("ERR weight value is not a float")),
    (("2", "a", "b", "WEIGHTS", "1", "nan"), err("ERR weight value is not a float")),
    (("2", "a", "b", "AGGREGATE", "AVG"), SYNTAX),
    (("2", "a", "b", "AGGREGATE"), SYNTAX),
    (("2", "a", "b", "WITHSCORES"), SYNTAX),
    (("2", "a", "str"), WRONGTYPE),
    (("1", "l"), WRONGTYPE),
    (("2", "a", "b", "FOO"), SYNTAX),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_zstore_errors(pair2, cmd, args, reply):
    got = pair2.play([("ZADD", "a", "1", "x"), ("ZADD", "b", "2", "x"), ("SET", "str", "v"),
                      ("RPUSH", "l", "x"), ("ZADD", "d", "5", "old"),
                      (cmd, "d", *args), ("ZRANGE", "d", "0", "-1", "WITHSCORES")])
    assert got[5] == reply.replace(b"{cmd}", cmd.lower().encode())


def test_zstore_overwrites_other_types(pair2):
    got = pair2.play([("SET", "d", "v"), ("ZADD", "a", "1", "x"),
                      ("ZUNIONSTORE", "d", "1", "a"), ("TYPE", "d"),
                      ("SET", "e", "v"), ("ZINTERSTORE", "e", "1", "missing"), ("EXISTS", "e")])
    assert got[3] == b"+zset\r\n" and got[6] == b":0\r\n"


# ---------------------------------------------------------------- ZSCAN


def zscan_all(conn, key, *opts):
    """All (member, score) pairs from a full ZSCAN iteration, and how many pages it took."""
    cursor, seen, pages = b"0", [], 0
    while True:
        cursor, items = conn.cmd("ZSCAN", key, cursor, *opts)
        pages += 1
        if isinstance(items, dict):
            items = [x for kv in items.items() for x in kv]
        seen += list(zip(items[::2], items[1::2]))
        if cursor == b"0":
            return seen, pages
        assert pages < 1000


@pytest.mark.parametrize("size", [5, 300])
def test_zscan_returns_every_member(pair, size):
    for c in (pair.redis, pair.locus):
        c.cmd("ZADD", "z", *[x for i in range(size) for x in (str(i / 4), f"m{i}")])
        c.cmd("ZADD", "z", "inf", "top", "-inf", "bottom", "0.1", "tenth")
    results = {}
    for name, c in [("redis", pair.redis), ("locus", pair.locus)]:
        plain, _ = zscan_all(c, "z")
        counted, _ = zscan_all(c, "z", "COUNT", "7")
        matched, _ = zscan_all(c, "z", "MATCH", "m1*", "COUNT", "1000")
        results[name] = (dict(plain), set(counted), set(matched))
        assert len(set(x for x, _ in plain)) == size + 3
        assert set(plain) == set(counted)
    assert results["locus"] == results["redis"]
    assert results["locus"][0][b"m3"] == b"0.75"
    assert results["locus"][0][b"tenth"] == b"0.10000000000000001"
    for args in [("z", "x"), ("z", "0", "COUNT", "0"), ("z", "0", "FOO", "1"), ("missing", "0"),
                 ("z", "0", "COUNT", "x"), ("z", "0", "MATCH", "x*", "COUNT", "1000"),
                 ("z", "0", "NOVALUES")]:
        pair.check("ZSCAN", *args)


@pytest.mark.xfail(strict=True, reason=(
    "a -0 score added to a skiplist-encoded zset: Redis keeps the double -0.0 and replies '-0' "
    "(ZRANGE WITHSCORES, ZSCAN, ZSCORE, ZPOPMIN), Locus replies '0'; in a listpack both say '0'"))
def test_minus_zero_score_in_a_skiplist(pair):
    big = [x for i in range(1, 131) for x in (i, f"f{i}")]
    got = pair.play([("ZADD", "z", *big), ("ZADD", "z", "-0", "m"), ("OBJECT", "ENCODING", "z"),
                     ("ZRANGE", "z", "0", "0", "WITHSCORES"), ("ZSCORE", "z", "m"),
                     ("ZSCAN", "z", "0", "MATCH", "m", "COUNT", "1000"), ("ZPOPMIN", "z")])
    assert got[4] == (bulk("-0") if pair.proto == 2 else b",-0\r\n")


# ---------------------------------------------------------------- types and encodings


ZSET_COMMANDS = [
    ("ZADD", "str", "1", "a"), ("ZADD", "str", "INCR", "1", "a"), ("ZREM", "str", "a"),
    ("ZSCORE", "str", "a"), ("ZMSCORE", "str", "a"), ("ZINCRBY", "str", "1", "a"), ("ZCARD", "str"),
    ("ZCOUNT", "str", "0", "1"), ("ZLEXCOUNT", "str", "-", "+"), ("ZRANGE", "str", "0", "-1"),
    ("ZRANGE", "str", "0", "1", "BYSCORE"), ("ZRANGEBYSCORE", "str", "0", "1"),
    ("ZREVRANGEBYSCORE", "str", "1", "0"), ("ZRANGEBYLEX", "str", "-", "+"),
    ("ZREVRANGEBYLEX", "str", "+", "-"), ("ZREVRANGE", "str", "0", "-1"), ("ZRANK", "str", "a"),
    ("ZREVRANK", "str", "a"), ("ZPOPMIN", "str"), ("ZPOPMAX", "str", "2"),
    ("ZMPOP", "1", "str", "MIN"), ("BZPOPMIN", "str", "0"), ("BZPOPMAX", "str", "0"),
    ("ZRANGESTORE", "d", "str", "0", "-1"), ("ZREMRANGEBYSCORE", "str", "0", "1"),
    ("ZREMRANGEBYRANK", "str", "0", "1"), ("ZREMRANGEBYLEX", "str", "-", "+"),
    ("ZUNIONSTORE", "d", "1", "str"), ("ZINTERSTORE", "d", "2", "z", "str"),
    ("ZSCAN", "str", "0"),
]


@pytest.mark.parametrize("other", [("SET", "str", "v"), ("RPUSH", "str", "v"), ("HSET", "str", "f", "v")],
                         ids=["string", "list", "hash"])
@pytest.mark.parametrize("cmd", ZSET_COMMANDS, ids=lambda c: " ".join(c[:1] + c[2:3]))
def test_wrongtype(pair2, other, cmd):
    got = pair2.play([other, ("ZADD", "z", "1", "a"), cmd, ("TYPE", "str")])
    assert got[2] == WRONGTYPE


def test_other_commands_on_a_zset(pair2):
    got = pair2.play([("ZADD", "z", "1", "a"), ("GET", "z"), ("LPUSH", "z", "x"), ("SADD", "z", "x"),
                      ("HSET", "z", "f", "v"), ("SINTERSTORE", "d", "z"), ("TYPE", "z"),
                      ("OBJECT", "ENCODING", "z")])
    assert got[1] == WRONGTYPE and got[6] == b"+zset\r\n" and got[7] == bulk("listpack")


def fill(n, width=1, prefix="m"):
    return [x for i in range(n) for x in (str(i), (prefix + str(i)).ljust(width, "x"))]


def test_encodings(pair2):
    got = pair2.play([
        ("ZADD", "z", *fill(128)), ("OBJECT", "ENCODING", "z"), ("TYPE", "z"),
        ("ZADD", "z", "1000", "one-more"), ("OBJECT", "ENCODING", "z"),
        ("ZADD", "w", "1", "m".ljust(64, "x")), ("OBJECT", "ENCODING", "w"),
        ("ZADD", "w", "1", "m".ljust(65, "x")), ("OBJECT", "ENCODING", "w"),
        ("ZINCRBY", "i", "1", "m".ljust(65, "x")), ("OBJECT", "ENCODING", "i"),
        ("ZADD", "j", "INCR", "1", "m".ljust(65, "x")), ("OBJECT", "ENCODING", "j"),
        ("ZADD", "big", *fill(200)),
        ("ZRANGESTORE", "d1", "big", "0", "2"), ("OBJECT", "ENCODING", "d1"),
        ("ZRANGESTORE", "d2", "big", "0", "150"), ("OBJECT", "ENCODING", "d2"),
        ("ZRANGESTORE", "d3", "big", "0", "127"), ("OBJECT", "ENCODING", "d3"),
        ("ZUNIONSTORE", "u1", "1", "w"), ("OBJECT", "ENCODING", "u1"),
        ("ZUNIONSTORE", "u2", "1", "big"), ("OBJECT", "ENCODING", "u2"),
        ("ZINTERSTORE", "u3", "2", "big", "d1"), ("OBJECT", "ENCODING", "u3"),
        ("SADD", "s", *[str(i) for i in range(200)]), ("ZUNIONSTORE", "u4", "1", "s"),
        ("OBJECT", "ENCODING", "u4"),
        ("OBJECT", "ENCODING", "missing"),
        ("ZRANGE", "d3", "0", "-1", "WITHSCORES"),
    ])
    assert got[1] == bulk("listpack") and got[2] == b"+zset\r\n" and got[4] == bulk("skiplist")
    assert got[6] == bulk("listpack") and got[8] == bulk("skiplist")
    assert got[10] == got[12] == bulk("skiplist")


@NEVER_SHRINKS
@pytest.mark.parametrize("shrink", [
    ("ZREM", "z", *[f"m{i}" for i in range(100)]), ("ZREMRANGEBYRANK", "z", "0", "-3"),
    ("ZREMRANGEBYSCORE", "z", "-inf", "100"), ("ZPOPMIN", "z", "190"), ("ZPOPMAX", "z", "190"),
    ("ZMPOP", "1", "z", "MIN", "COUNT", "199"), ("ZREM", "w", "m".ljust(65, "x")),
], ids=lambda c: c[0])
def test_skiplist_stays_skiplist_when_it_shrinks(pair2, shrink):
    got = pair2.play([("ZADD", "z", *fill(200)), ("ZADD", "w", "1", "m".ljust(65, "x"), "2", "b"),
                      shrink, ("OBJECT", "ENCODING", shrink[1] if shrink[0] != "ZMPOP" else "z")])
    assert got[3] == bulk("skiplist")


def test_big_zset_ranges_match(pair):
    """The same queries on a skiplist-encoded set (300 members, repeated scores)."""
    rng = random.Random(7)
    pairs = [x for i in range(300) for x in (str(rng.randint(-20, 20) / 2), f"m{i:03d}")]
    steps = [("ZADD", "z", *pairs), ("OBJECT", "ENCODING", "z"),
             ("ZADD", "lx", *[x for i in range(200) for x in ("0", f"k{i:03d}")])]
    for _ in range(80):
        a, b = rng.choice(SCORE_BOUNDS[:10] + ["-3", "(4", "5.5"]), rng.choice(SCORE_BOUNDS[:10] + ["(7", "9"])
        i, j = rng.randint(-320, 320), rng.randint(-320, 320)
        la, lb = rng.choice(["-", "+", "[k050", "(k100", "[k1", "(k2"]), rng.choice(["-", "+", "[k150", "(k199", "[k"])
        steps.append(rng.choice([
            ("ZRANGE", "z", i, j, "WITHSCORES"),
            ("ZRANGE", "z", a, b, "BYSCORE", "LIMIT", rng.randint(0, 20), rng.randint(-1, 20)),
            ("ZRANGE", "z", b, a, "BYSCORE", "REV", "LIMIT", rng.randint(0, 20), rng.randint(-1, 20)),
            ("ZCOUNT", "z", a, b), ("ZRANK", "z", f"m{rng.randint(0, 310):03d}"),
            ("ZREVRANK", "z", f"m{rng.randint(0, 310):03d}"),
            ("ZLEXCOUNT", "lx", la, lb), ("ZRANGEBYLEX", "lx", la, lb, "LIMIT", rng.randint(0, 9), 5),
            ("ZREVRANGEBYLEX", "lx", lb, la, "LIMIT", 1, 3),
            ("ZADD", "z", "GT", "CH", str(rng.randint(-20, 20)), f"m{rng.randint(0, 310):03d}"),
            ("ZINCRBY", "z", "0.5", f"m{rng.randint(0, 310):03d}"),
            ("ZREMRANGEBYSCORE", "z", a, a),
        ]))
    steps += [("ZRANGE", "z", "0", "-1", "WITHSCORES"), ("ZPOPMIN", "z", "3"), ("ZPOPMAX", "z", "3"),
              ("ZCARD", "z"), ("OBJECT", "ENCODING", "lx")]
    got = pair.play(steps)
    assert got[1] == bulk("skiplist")


# ---------------------------------------------------------------- odd bounds


STRTOD_BOUND = pytest.mark.xfail(strict=True, reason=(
    "Redis parses score bounds with plain strtod: '(' and '' are 0 (exclusive / inclusive), "
    "leading blanks are skipped, hexadecimal '0x10' is 16; Locus says 'ERR min or max is not a "
    "float'"))


@pytest.mark.parametrize("bound", [
    "1 ", "((1", "(nan", "nan", "1e400", "-1e400", "(-inf", "(+inf", "1.", ".5", "(.5", "+1", "-",
    "[1", "1e-400", "(1e-400", "x1", "1x",
    pytest.param("(", marks=STRTOD_BOUND), pytest.param("", marks=STRTOD_BOUND),
    pytest.param(" 1", marks=STRTOD_BOUND), pytest.param("0x10", marks=STRTOD_BOUND),
    pytest.param("(0x10", marks=STRTOD_BOUND),
])
def test_odd_score_bounds(pair2, bound):
    # (no +inf member here: see test_reverse_score_ranges_include_plus_inf)
    pair2.play([
        ("ZADD", "z", "-1", "n", "0", "a", "0.5", "h", "1", "b", "16", "c", "1e300", "i"),
        ("ZCOUNT", "z", bound, "+inf"), ("ZCOUNT", "z", "-inf", bound),
        ("ZRANGEBYSCORE", "z", bound, "+inf"), ("ZREVRANGEBYSCORE", "z", "+inf", bound),
        ("ZRANGE", "z", bound, "+inf", "BYSCORE"), ("ZREMRANGEBYSCORE", "z", bound, bound),
        ("ZCARD", "z"),
    ])


@pytest.mark.parametrize("bound", ["", "[", "(", "a", "-a", "+a", "[\xff", "(\x00"])
def test_odd_lex_bounds(pair2, bound):
    pair2.play([
        ("ZADD", "l", "0", "", "0", "a", "0", "b", "0", "\xff"),
        ("ZLEXCOUNT", "l", bound, "+"), ("ZLEXCOUNT", "l", "-", bound),
        ("ZRANGEBYLEX", "l", bound, "+"), ("ZREVRANGEBYLEX", "l", "+", bound),
        ("ZRANGE", "l", bound, "+", "BYLEX"), ("ZREMRANGEBYLEX", "l", bound, bound), ("ZCARD", "l"),
    ])


@pytest.mark.parametrize("cmd", [
    ("ZRANGE", "z", "0", "-4"), ("ZRANGE", "z", "-5", "-4"), ("ZRANGE", "z", "0", "-4", "REV"),
    ("ZREVRANGE", "z", "0", "-100"), ("ZREVRANGE", "z", "-4", "-4", "WITHSCORES"),
    ("ZRANGESTORE", "d", "z", "0", "-4"), ("ZREMRANGEBYRANK", "z", "0", "-4"),
    ("ZREMRANGEBYRANK", "z", "-10", "-5"),
], ids=lambda c: " ".join(c))
def test_rank_range_ending_before_the_first_member(pair, cmd):
    got = pair.play([("ZADD", "z", "1", "a", "2", "b", "3", "c"), cmd,
                     ("ZRANGE", "z", "0", "-1"), ("EXISTS", "d")])
    assert got[1] in (b"*0\r\n", b":0\r\n")
    assert got[3] == b":0\r\n"


def test_rank_range_edges(pair):
    """The rank-range edges Locus gets right (end exactly -len, start below -len)."""
    got = pair.play([("ZADD", "z", "1", "a", "2", "b", "3", "c"),
                     ("ZRANGE", "z", "0", "-3"), ("ZRANGE", "z", "-10", "-3"), ("ZRANGE", "z", "-10", "10"),
                     ("ZREVRANGE", "z", "-3", "-3"), ("ZRANGE", "z", "3", "3"), ("ZRANGE", "z", "2", "1"),
                     ("ZRANGE", "z", "-1", "-2"), ("ZREMRANGEBYRANK", "z", "-10", "-3"),
                     ("ZRANGE", "z", "0", "-1")])
    assert got[1] == b"*1\r\n" + bulk("a") and got[8] == b":1\r\n"


@pytest.mark.parametrize("cmd", [
    ("ZREVRANGEBYSCORE", "z", "+inf", "-inf"), ("ZREVRANGEBYSCORE", "z", "inf", "inf"),
    ("ZREVRANGEBYSCORE", "z", "1e400", "(1", "WITHSCORES"),
    ("ZREVRANGEBYSCORE", "z", "+inf", "0", "LIMIT", "0", "1"),
    ("ZRANGE", "z", "+inf", "(0", "BYSCORE", "REV"),
    ("ZRANGESTORE", "d", "z", "+inf", "-inf", "BYSCORE", "REV"),
], ids=lambda c: " ".join(c))
def test_reverse_score_ranges_include_plus_inf(pair, cmd):
    got = pair.play([("ZADD", "z", "1", "a", "2", "b", "inf", "top"), cmd,
                     ("ZRANGE", "d", "0", "-1", "WITHSCORES")])
    assert b"top" in got[1] or got[1] == b":3\r\n"


def test_arity_errors(pair2):
    steps = [(c,) for c in ["ZADD", "ZREM", "ZSCORE", "ZMSCORE", "ZINCRBY", "ZCARD", "ZCOUNT",
                            "ZLEXCOUNT", "ZRANGE", "ZRANGEBYSCORE", "ZREVRANGEBYSCORE",
                            "ZRANGEBYLEX", "ZREVRANGEBYLEX", "ZREVRANGE", "ZRANK", "ZREVRANK",
                            "ZPOPMIN", "ZPOPMAX", "ZMPOP", "BZPOPMIN", "BZPOPMAX", "ZRANGESTORE",
                            "ZREMRANGEBYSCORE", "ZREMRANGEBYRANK", "ZREMRANGEBYLEX", "ZUNIONSTORE",
                            "ZINTERSTORE", "ZSCAN"]]
    steps += [("ZSCORE", "z", "a", "b"), ("ZCARD", "z", "x"), ("ZCOUNT", "z", "1"),
              ("ZREM", "z"), ("ZRANK", "z"), ("ZMPOP", "1"), ("ZMPOP", "1", "z"),
              ("BZPOPMIN", "z"), ("ZRANGESTORE", "d", "z", "0")]
    got = pair2.play(steps)
    assert got[0] == err("ERR wrong number of arguments for 'zadd' command")
