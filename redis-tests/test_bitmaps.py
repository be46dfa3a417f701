"""Bitmaps (SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD, BITFIELD_RO), LCS and SWAPDB,
differentially against a stock redis-server 7.0: random command sequences and edge cases run
on both servers over RESP2 and RESP3, replies compared one by one, then the values byte for
byte."""

import random

import pytest
import redis

from conftest import reply_or_error as reply, same


def same_keys(pair, keys):
    for k in keys:
        assert reply(pair[0], "GET", k) == reply(pair[1], "GET", k), k
        assert pair[0].type(k) == pair[1].type(k), k


def test_edge_cases_and_errors(ref_pair):
    pair = ref_pair
    cases = [
        ("SETBIT", "b", 7, 1), ("SETBIT", "b", 7, 1), ("SETBIT", "b", 7, 0), ("GETBIT", "b", 7),
        ("SETBIT", "b", 100, 1), ("GETBIT", "b", 100), ("GETBIT", "b", 10**6), ("GETBIT", "none", 3),
        ("SETBIT", "b", -1, 1), ("SETBIT", "b", 2**32, 1), ("SETBIT", "b", 4294967295, 0),
        ("SETBIT", "b", "x", 1), ("SETBIT", "b", 1, 2), ("SETBIT", "b", 1, -1), ("SETBIT", "b", 1, "a"),
        ("GETBIT", "b", -1),
        # The 512 MB string of the last offset, checked in place rather than copied out twice.
        ("STRLEN", "b"), ("GETBIT", "b", 4294967295), ("GETBIT", "b", 100), ("BITCOUNT", "b"),
        ("BITPOS", "b", 1), ("BITPOS", "b", 1, -1), ("GETRANGE", "b", 0, 15), ("DEL", "b"),
        ("SET", "s", "foobar"), ("BITCOUNT", "s"), ("BITCOUNT", "s", 1, 1),
        ("BITCOUNT", "s", 0, -1), ("BITCOUNT", "s", -2, -1), ("BITCOUNT", "s", 5, 30, "BIT"),
        ("BITCOUNT", "s", 5, 30, "BYTE"), ("BITCOUNT", "s", -5, -1, "BIT"), ("BITCOUNT", "s", 1),
        ("BITCOUNT", "s", 1, 2, "BITS"), ("BITCOUNT", "s", "a", 2), ("BITCOUNT", "none", 0, 1),
        ("BITCOUNT", "s", -1, -2), ("BITCOUNT", "s", 3, 1), ("BITCOUNT", "s", 0, 10**10),
        ("SET", "p", b"\xff\xf0\x00"), ("BITPOS", "p", 0), ("BITPOS", "p", 1), ("BITPOS", "p", 0, 2),
        ("BITPOS", "p", 1, 2), ("BITPOS", "p", 0, 0, -1), ("BITPOS", "p", 1, 7, 15, "BIT"),
        ("BITPOS", "p", 0, 7, 15, "BIT"), ("BITPOS", "p", 0, 1, 1), ("BITPOS", "p", 2),
        ("BITPOS", "none", 0), ("BITPOS", "none", 1), ("BITPOS", "p", 1, 0, 1, "WRONG"),
        ("SET", "full", b"\xff\xff"), ("BITPOS", "full", 0), ("BITPOS", "full", 0, 0, -1),
        ("BITPOS", "full", 0, 0), ("BITPOS", "p", 1, 3, 2), ("BITPOS", "p", 0, 20, 21, "BIT"),
        ("BITOP", "AND", "dst", "s", "p"), ("BITOP", "OR", "dst", "s", "p", "none"),
        ("BITOP", "XOR", "dst", "s", "p"), ("BITOP", "NOT", "dst", "s"), ("GET", "dst"),
        ("BITOP", "NOT", "dst", "s", "p"), ("BITOP", "NAND", "dst", "s"),
        ("BITOP", "AND", "dst", "none", "none2"), ("EXISTS", "dst"), ("LPUSH", "l", "x"),
        ("BITOP", "AND", "dst", "s", "l"), ("SETBIT", "l", 1, 1), ("GETBIT", "l", 1),
        ("BITCOUNT", "l"), ("BITPOS", "l", 1), ("BITFIELD", "l", "GET", "u8", 0),
        ("BITFIELD", "bf", "SET", "i8", 0, 100, "GET", "i8", 0, "INCRBY", "i8", 0, 100),
        ("BITFIELD", "bf", "OVERFLOW", "SAT", "INCRBY", "i8", 0, 100, "INCRBY", "u4", 10, 30),
        ("BITFIELD", "bf", "OVERFLOW", "FAIL", "INCRBY", "i8", 0, 100, "GET", "u16", 0),
        ("BITFIELD", "bf", "OVERFLOW", "WRAP", "INCRBY", "u2", "#3", 7, "GET", "u2", "#3"),
        ("BITFIELD", "bf", "SET", "i64", 64, -5, "GET", "i64", 64, "INCRBY", "i64", 64, -(2**63)),
        ("BITFIELD", "bf", "GET", "u64", 0), ("BITFIELD", "bf", "GET", "i65", 0),
        ("BITFIELD", "bf", "GET", "u0", 0), ("BITFIELD", "bf", "GET", "x8", 0),
        ("BITFIELD", "bf", "OVERFLOW", "MAYBE"), ("BITFIELD", "bf", "GET", "u8"),
        ("BITFIELD", "bf", "SET", "u8", -1, 1), ("BITFIELD", "bf", "SET", "u8", 0, "x"),
        ("BITFIELD", "bf"), ("BITFIELD", "bf", "FOO", "u8", 0), ("BITFIELD", "new", "GET", "u8", 0),
        ("EXISTS", "new"), ("BITFIELD_RO", "bf", "GET", "i8", 0, "GET", "u4", 3),
        ("BITFIELD_RO", "bf", "SET", "i8", 0, 1), ("BITFIELD_RO", "bf", "INCRBY", "i8", 0, 1),
        ("BITFIELD", "bf", "SET", "u8", "#2", 255, "GET", "u8", "#2", "GET", "u8", 16),
        ("BITFIELD", "bf", "INCRBY", "u63", 0, -1, "OVERFLOW", "SAT", "INCRBY", "u63", 0, -1),
        ("GET", "bf"), ("STRLEN", "bf"),
        ("SET", "a", "ohmytext"), ("SET", "b2", "mynewtext"), ("LCS", "a", "b2"),
        ("LCS", "a", "b2", "LEN"), ("LCS", "a", "b2", "IDX"), ("LCS", "a", "b2", "IDX", "MINMATCHLEN", 4),
        ("LCS", "a", "b2", "IDX", "MINMATCHLEN", 4, "WITHMATCHLEN"), ("LCS", "a", "b2", "IDX", "LEN"),
        ("LCS", "a", "none"), ("LCS", "a", "l"), ("LCS", "a", "b2", "MINMATCHLEN"),
        ("LCS", "a", "b2", "FOO"), ("LCS", "a", "b2", "IDX", "WITHMATCHLEN", "MINMATCHLEN", -3),
    ]
    for case in cases:
        same(pair, *case)
    same_keys(pair, [b"b", b"s", b"p", b"dst", b"bf", b"new", b"l"])


def test_random_bitmap_sequences(ref_pair):
    pair = ref_pair
    rng = random.Random(11)
    keys = [f"k{i}" for i in range(4)]
    for step in range(1500):
        k = rng.choice(keys)
        op = rng.randrange(9)
        if op == 0:
            args = ("SETBIT", k, rng.randrange(2000), rng.randrange(2))
        elif op == 1:
            args = ("GETBIT", k, rng.randrange(2100))
        elif op == 2:
            args = ("BITCOUNT", k) if rng.random() < 0.3 else (
                "BITCOUNT", k, rng.randrange(-300, 300), rng.randrange(-300, 300),
                rng.choice(["BIT", "BYTE"]))
        elif op == 3:
            args = ("BITPOS", k, rng.randrange(2))
            if rng.random() < 0.7:
                args += (rng.randrange(-300, 300),)
                if rng.random() < 0.7:
                    args += (rng.randrange(-300, 300),)
                    if rng.random() < 0.5:
                        args += (rng.choice(["BIT", "BYTE"]),)
        elif op == 4:
            args = ("BITOP", rng.choice(["AND", "OR", "XOR"]), rng.choice(keys),
                    *rng.sample(keys, rng.randrange(1, 4)))
        elif op == 5:
            args = ("BITOP", "NOT", rng.choice(keys), k)
        elif op == 6:
            words = []
            for _ in range(rng.randrange(1, 5)):
                t = rng.choice(["i", "u"]) + str(rng.randrange(1, 64))
                off = rng.randrange(300) if rng.random() < 0.8 else f"#{rng.randrange(20)}"
                kind = rng.choice(["GET", "SET", "INCRBY", "OVERFLOW"])
                if kind == "OVERFLOW":
                    words += ["OVERFLOW", rng.choice(["WRAP", "SAT", "FAIL"])]
                elif kind == "GET":
                    words += ["GET", t, off]
                else:
                    words += [kind, t, off, rng.randrange(-2**40, 2**40)]
            args = (rng.choice(["BITFIELD", "BITFIELD_RO"]), k, *words)
        elif op == 7:
            args = ("SETRANGE", k, rng.randrange(100), bytes(rng.randrange(256) for _ in range(5)))
        else:
            args = ("LCS", k, rng.choice(keys), *rng.choice([(), ("LEN",), ("IDX",),
                                                             ("IDX", "WITHMATCHLEN")]))
        same(pair, *args)
    same_keys(pair, keys)


def test_swapdb_moves_keys_watches_and_blocked_clients(ref_servers):
    servers = ref_servers
    for port in servers:
        c = redis.Redis(port=port, decode_responses=True)
        c.flushall()
    a = redis.Redis(port=servers[0], decode_responses=True)
    b = redis.Redis(port=servers[1], decode_responses=True)
    for c in (a, b):
        c.set("x", "in0")
        c.execute_command("SELECT", 0)
    pair = (a, b)
    for case in [("SWAPDB", 0, 1), ("SWAPDB", 0, 16), ("SWAPDB", "a", 1), ("SWAPDB", 0, "b"),
                 ("SWAPDB", -1, 1), ("SWAPDB", 3, 3), ("SWAPDB", 0, 2**40)]:
        same(pair, *case)
    assert a.get("x") is None
    a1 = redis.Redis(port=servers[0], db=1, decode_responses=True)
    assert a1.get("x") == "in0"
    # A WATCHed key that moved away fails the transaction, as in Redis.
    a1.execute_command("SWAPDB", 0, 1)
    w = redis.Redis(port=servers[0], decode_responses=True)
    p = w.pipeline()
    p.watch("x")
    a.execute_command("SWAPDB", 0, 1)
    p.multi()
    p.set("x", "late")
    with pytest.raises(redis.WatchError):
        p.execute()
    # A client blocked on a key of db 0 is served by data swapped in from db 1.
    import threading
    got = {}
    blocked = redis.Redis(port=servers[0], decode_responses=True)
    t = threading.Thread(target=lambda: got.setdefault("v", blocked.blpop("q", timeout=5)))
    t.start()
    import time
    time.sleep(0.3)
    a1.rpush("q", "item")
    a.execute_command("SWAPDB", 0, 1)
    t.join()
    assert got["v"] == ("q", "item")
