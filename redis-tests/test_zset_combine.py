"""Sorted-set combinations and random members, differentially against a stock redis-server 7.0:
ZUNION, ZINTER, ZDIFF (WITHSCORES), ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE, ZINTERCARD (LIMIT)
over random sorted sets and plain sets with WEIGHTS and AGGREGATE, infinities included; every
argument error; ZRANDMEMBER's counts and their bounds; BZMPOP; and blocked clients (CLIENT
UNBLOCK, a key that changes type under a blocked client), over RESP2 and RESP3."""

import random
import threading
import time

import pytest
import redis

from conftest import reply_or_error as reply, same


def fill(pair, rng):
    keys = []
    for i in range(6):
        key = f"z{i}{{t}}"
        n = rng.choice([0, 1, 5, 40, 200])
        if n:
            words = []
            for _ in range(n):
                score = rng.choice([rng.randint(-5, 5), round(rng.uniform(-100, 100), 3),
                                    float("inf"), float("-inf")]) if rng.random() < 0.9 else 0
                words += [score, f"m{rng.randint(0, 300)}"]
            same(pair, "ZADD", key, *words)
        keys.append(key)
    same(pair, "SADD", "s{t}", *[f"m{rng.randint(0, 300)}" for _ in range(30)])
    keys.append("s{t}")
    return keys


def test_combinations_match_redis(ref_pair):
    pair = ref_pair
    rng = random.Random(11)
    keys = fill(pair, rng)
    for _ in range(300):
        picked = rng.sample(keys, rng.randint(1, 4))
        opts = []
        if rng.random() < 0.5:
            opts += ["WEIGHTS", *[rng.choice([1, 2, -1, 0, 0.5, "inf"]) for _ in picked]]
        if rng.random() < 0.5:
            opts += ["AGGREGATE", rng.choice(["SUM", "MIN", "MAX", "min"])]
        scores = ["WITHSCORES"] if rng.random() < 0.5 else []
        n = len(picked)
        same(pair, "ZUNION", n, *picked, *opts, *scores)
        same(pair, "ZINTER", n, *picked, *opts, *scores)
        same(pair, "ZDIFF", n, *picked, *scores)
        same(pair, "ZINTERCARD", n, *picked)
        same(pair, "ZINTERCARD", n, *picked, "LIMIT", rng.randint(0, 5))
        for store in ("ZUNIONSTORE", "ZINTERSTORE"):
            same(pair, store, "dst{t}", n, *picked, *opts)
            same(pair, "ZRANGE", "dst{t}", 0, -1, "WITHSCORES")
        same(pair, "ZDIFFSTORE", "dst{t}", n, *picked)
        same(pair, "ZRANGE", "dst{t}", 0, -1, "WITHSCORES")
        same(pair, "EXISTS", "dst{t}")


def test_combination_errors_match_redis(ref_pair):
    pair = ref_pair
    same(pair, "ZADD", "a{t}", 1, "x", 2, "y")
    same(pair, "SET", "str{t}", "v")
    for args in [
        ("ZUNION", 0, "a{t}"), ("ZINTER", -1, "a{t}"), ("ZDIFF", 0, "a{t}"),
        ("ZINTERCARD", 0, "a{t}"), ("ZUNIONSTORE", "d{t}", 0, "a{t}"),
        ("ZDIFFSTORE", "d{t}", 0, "a{t}"), ("ZUNION", "x", "a{t}"), ("ZUNION", 3, "a{t}"),
        ("ZUNION", 2, "a{t}", "str{t}"), ("ZINTER", 2, "str{t}", "a{t}", "BOGUS"),
        ("ZUNION", 1, "a{t}", "WEIGHTS"), ("ZUNION", 1, "a{t}", "WEIGHTS", "x"),
        ("ZUNION", 1, "a{t}", "WEIGHTS", 1, 2), ("ZUNION", 1, "a{t}", "AGGREGATE"),
        ("ZUNION", 1, "a{t}", "AGGREGATE", "avg"), ("ZDIFF", 1, "a{t}", "WEIGHTS", 1),
        ("ZDIFF", 1, "a{t}", "AGGREGATE", "SUM"), ("ZINTERCARD", 1, "a{t}", "WITHSCORES"),
        ("ZINTERCARD", 1, "a{t}", "LIMIT", -1), ("ZINTERCARD", 1, "a{t}", "LIMIT", "x"),
        ("ZINTERCARD", 1, "a{t}", "LIMIT"), ("ZUNIONSTORE", "d{t}", 1, "a{t}", "WITHSCORES"),
        ("ZINTERCARD", 1, "a{t}", "WEIGHTS", 1), ("ZUNION", 1, "a{t}", "LIMIT", 1),
    ]:
        same(pair, *args)
    # A store over an existing key of another type replaces it; an empty result deletes it.
    same(pair, "ZUNIONSTORE", "str{t}", 1, "a{t}")
    same(pair, "TYPE", "str{t}")
    same(pair, "ZDIFFSTORE", "str{t}", 2, "a{t}", "a{t}")
    same(pair, "EXISTS", "str{t}")


def test_zrandmember_matches_redis(ref_pair):
    pair = ref_pair
    same(pair, "ZADD", "z", *[x for i in range(20) for x in (i, f"m{i}")])
    same(pair, "SET", "str", "v")
    for args in [("ZRANDMEMBER", "none"), ("ZRANDMEMBER", "none", 5), ("ZRANDMEMBER", "none", -5),
                 ("ZRANDMEMBER", "str"), ("ZRANDMEMBER", "str", 0), ("ZRANDMEMBER", "z", 0),
                 ("ZRANDMEMBER", "z", 20, "WITHSCORES"), ("ZRANDMEMBER", "z", 100),
                 ("ZRANDMEMBER", "z", "x"), ("ZRANDMEMBER", "z", 3, "x"),
                 ("ZRANDMEMBER", "z", 3, "WITHSCORES", "x"),
                 ("ZRANDMEMBER", "z", -9223372036854775808),
                 ("ZRANDMEMBER", "z", -9223372036854770000, "WITHSCORES"),
                 ("ZRANDMEMBER", "z", 9223372036854770000, "WITHSCORES")]:
        same(pair, *args)
    members = {f"m{i}".encode(): float(i) for i in range(20)}
    locus = pair[0]
    for count in (1, 5, 19):
        got = locus.execute_command("ZRANDMEMBER", "z", count)
        assert len(got) == count and len(set(got)) == count and set(got) <= set(members)
    got = locus.execute_command("ZRANDMEMBER", "z", -50, "WITHSCORES")
    pairs = got if locus.get_connection_kwargs().get("protocol") == 3 else list(
        zip(got[::2], got[1::2]))
    assert len(pairs) == 50
    for m, s in pairs:
        assert members[m] == float(s)
    # Every member turns up: the picks are random, not the first ones.
    seen = set()
    for _ in range(200):
        seen.add(locus.execute_command("ZRANDMEMBER", "z"))
    assert seen == set(members)
    # A negative count repeats members, so the count alone sizes the reply: one past the bound
    # is refused rather than built.
    assert isinstance(reply(locus, "ZRANDMEMBER", "z", -(1 << 40))[1], str)
    assert isinstance(reply(locus, "SRANDMEMBER", "str", -(1 << 40)), tuple)
    locus.execute_command("SADD", "s", "a")
    assert "too large" in reply(locus, "SRANDMEMBER", "s", -(1 << 40))[1]
    locus.execute_command("HSET", "h", "f", "v")
    assert "too large" in reply(locus, "HRANDFIELD", "h", -(1 << 40))[1]
    assert locus.ping()


def test_bzmpop_matches_redis(ref_pair):
    pair = ref_pair
    same(pair, "ZADD", "b1{t}", 1, "a", 2, "b", 3, "c")
    for args in [("BZMPOP", 0.01, 2, "none{t}", "b1{t}", "MIN"),
                 ("BZMPOP", 0.01, 1, "b1{t}", "MAX", "COUNT", 5),
                 ("BZMPOP", 0.01, 1, "b1{t}", "MIN"),
                 ("BZMPOP", 0, 0, "b1{t}", "MIN"), ("BZMPOP", 0, "x", "b1{t}", "MIN"),
                 ("BZMPOP", -1, 1, "b1{t}", "MIN"), ("BZMPOP", 0, 1, "b1{t}", "SIDEWAYS"),
                 ("BZMPOP", 0, 1, "b1{t}", "MIN", "COUNT", 0), ("BZMPOP", 0, 1)]:
        same(pair, *args)


def blocked_call(port, *args):
    """Runs a blocking command on its own connection: (its client id, a thread, result box)."""
    c = redis.Redis(port=port)
    cid = c.client_id()
    box = {}

    def run():
        box["reply"] = reply(c, *args)

    t = threading.Thread(target=run)
    t.start()
    return cid, t, box


def wait_blocked(c, n):
    for _ in range(200):
        if c.info("clients")["blocked_clients"] >= n:
            return
        time.sleep(0.01)
    raise AssertionError("the client never blocked")


@pytest.mark.parametrize("command", [
    ("BLPOP", "q", 0), ("BRPOPLPUSH", "q", "d", 0), ("BLMPOP", 0, 1, "q", "LEFT"),
    ("BZPOPMIN", "q", 0), ("BZMPOP", 0, 1, "q", "MIN"),
])
def test_client_unblock_matches_redis(ref_servers, command):
    outcomes = []
    for port in ref_servers:
        c = redis.Redis(port=port)
        c.flushall()
        seen = []
        for how in ([], ["TIMEOUT"], ["ERROR"]):
            cid, t, box = blocked_call(port, *command)
            wait_blocked(c, 1)
            seen.append(c.execute_command("CLIENT", "UNBLOCK", cid, *how))
            t.join(5)
            seen.append(box["reply"])
        seen.append(reply(c, "CLIENT", "UNBLOCK", c.client_id()))
        seen.append(reply(c, "CLIENT", "UNBLOCK", "x"))
        seen.append(reply(c, "CLIENT", "UNBLOCK", 1, "LATER"))
        seen.append(reply(c, "CLIENT", "UNBLOCK", 1, "ERROR", "x"))
        outcomes.append(seen)
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("command,push", [
    (("BZPOPMIN", "k", 0), ("ZADD", "k", 1, "bar")),
    (("BLPOP", "k", 0), ("RPUSH", "k", "bar")),
])
def test_a_key_retyped_under_a_blocked_client_does_not_serve_it(ref_servers, command, push):
    """MULTI adds the key, deletes it and sets a string there: the blocked client goes on
    waiting, then takes the value of its type that comes later (Redis's own test)."""
    outcomes = []
    for port in ref_servers:
        c = redis.Redis(port=port)
        c.flushall()
        _, t, box = blocked_call(port, *command)
        wait_blocked(c, 1)
        p = c.pipeline(transaction=True)
        p.execute_command(push[0], push[1], *push[2:-1], "foo")
        p.delete("k")
        p.set("k", "foo")
        p.execute()
        time.sleep(0.1)
        still_blocked = "reply" not in box
        c.delete("k")
        c.execute_command(*push)
        t.join(5)
        outcomes.append((still_blocked, box.get("reply")))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0]
