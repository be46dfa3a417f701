"""Geo commands and HyperLogLog, differentially against a stock redis-server 7.0: random points
(poles, antimeridian, equator) through GEOADD, GEOPOS, GEOHASH, GEODIST and searches by radius
and box in every unit, with and without COUNT/ANY/ASC/DESC/STORE; and PFADD/PFCOUNT/PFMERGE on
random sets, compared reply by reply and value by value (the stored HyperLogLog bytes, sparse
and dense, equal Redis's), over RESP2 and RESP3; corrupt HyperLogLog values get Redis's
errors."""

import random

import pytest
import redis

from conftest import reply_or_error as reply, same


def random_point(rng):
    kind = rng.random()
    if kind < 0.15:
        lon = rng.choice([-180, 180]) + rng.uniform(-0.5, 0.5) * (1 if rng.random() < 0.5 else 0)
        lon = max(-180, min(180, lon))
        return lon, rng.uniform(-85, 85)
    if kind < 0.3:
        return rng.uniform(-180, 180), rng.choice([-1, 1]) * rng.uniform(84, 85.05112878)
    if kind < 0.4:
        return rng.uniform(-180, 180), rng.uniform(-0.01, 0.01)
    if kind < 0.7:
        return 13.36 + rng.uniform(-2, 2), 38.11 + rng.uniform(-2, 2)
    return rng.uniform(-180, 180), rng.uniform(-85.05112878, 85.05112878)


def test_geo_commands_match_redis(ref_pair):
    pair = ref_pair
    rng = random.Random(3)
    members = []
    for batch in range(20):
        words = []
        for i in range(50):
            lon, lat = random_point(rng)
            m = f"m{batch}:{i}"
            members.append(m)
            words += [f"{lon:.6f}", f"{lat:.6f}", m]
        same(pair, "GEOADD", "pts", *words)
    same(pair, "GEOADD", "pts", "CH", "NX", "13.1", "38.2", "m0:0", "1", "2", "fresh")
    same(pair, "GEOADD", "pts", "XX", "CH", "13.1", "38.2", "m0:0", "1", "2", "fresh2")
    for bad in [("GEOADD", "pts", "181", "0", "x"), ("GEOADD", "pts", "0", "86", "x"),
                ("GEOADD", "pts", "a", "0", "x"), ("GEOADD", "pts", "1", "2"),
                ("GEOADD", "pts", "NX", "XX", "1", "2", "x"), ("GEOADD", "pts", "NX")]:
        same(pair, *bad)
    sample = rng.sample(members, 200)
    same(pair, "GEOPOS", "pts", *sample, "missing")
    same(pair, "GEOHASH", "pts", *sample, "missing")
    for _ in range(200):
        a, b = rng.sample(members, 2)
        same(pair, "GEODIST", "pts", a, b, rng.choice(["m", "km", "mi", "ft", "KM"]))
    for args in [("GEODIST", "pts", "m0:1", "missing"), ("GEODIST", "none", "a", "b"),
                 ("GEODIST", "pts", "m0:1", "m0:2", "parsecs"), ("GEODIST", "pts", "a", "b", "m", "x"),
                 ("GEOPOS", "none", "a"), ("GEOHASH", "none", "a")]:
        same(pair, *args)
    for _ in range(150):
        lon, lat = random_point(rng)
        unit = rng.choice(["m", "km", "mi", "ft"])
        size = rng.choice([1, 50, 500, 5000, 50000, 500000])
        scale = {"m": 1, "km": 1000, "mi": 1609.34, "ft": 0.3048}[unit]
        r = f"{size / scale:.4f}"
        opts = rng.choice([["WITHDIST"], ["WITHDIST", "WITHCOORD", "WITHHASH", "ASC"],
                           ["DESC", "WITHDIST"], ["COUNT", 5, "WITHDIST"],
                           ["COUNT", 3, "ANY", "WITHDIST"], ["ASC", "COUNT", 10]])
        by = (["BYRADIUS", r, unit] if rng.random() < 0.5 else
              ["BYBOX", r, f"{size / scale * rng.uniform(0.3, 2):.4f}", unit])
        frm = (["FROMLONLAT", f"{lon:.6f}", f"{lat:.6f}"] if rng.random() < 0.7 else
               ["FROMMEMBER", rng.choice(members)])
        same(pair, "GEOSEARCH", "pts", *frm, *by, *opts)
        if by[0] == "BYRADIUS":
            same(pair, "GEORADIUS", "pts", f"{lon:.6f}", f"{lat:.6f}", r, unit, *opts)
            same(pair, "GEORADIUSBYMEMBER_RO", "pts", rng.choice(members), r, unit, *opts)
        store = rng.choice(["STORE", "STOREDIST"])
        same(pair, "GEORADIUS", "pts", f"{lon:.6f}", f"{lat:.6f}", r, unit, store, "dst", "ASC")
        same(pair, "ZRANGE", "dst", 0, -1, "WITHSCORES")
        same(pair, "GEOSEARCHSTORE", "dst2", "pts", *frm, *by, "ASC", "STOREDIST")
        same(pair, "ZRANGE", "dst2", 0, -1, "WITHSCORES")
    for args in [("GEOSEARCH", "pts", "FROMLONLAT", 0, 0), ("GEOSEARCH", "pts", "BYRADIUS", 1, "m"),
                 ("GEOSEARCH", "pts", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m", "BYBOX", 1, 1, "m"),
                 ("GEOSEARCH", "pts", "FROMMEMBER", "nobody", "BYRADIUS", 1, "m"),
                 ("GEOSEARCH", "pts", "FROMLONLAT", 0, 0, "BYRADIUS", -1, "m"),
                 ("GEOSEARCH", "pts", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "lightyears"),
                 ("GEOSEARCH", "pts", "FROMLONLAT", 0, 0, "BYBOX", 1, -1, "m"),
                 ("GEOSEARCH", "pts", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m", "ANY"),
                 ("GEOSEARCH", "pts", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m", "COUNT", 0),
                 ("GEOSEARCH", "pts", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m", "STORE", "x"),
                 ("GEORADIUS", "pts", 0, 0, 1, "m", "STORE", "x", "WITHDIST"),
                 ("GEORADIUS_RO", "pts", 0, 0, 1, "m", "STORE", "x"),
                 ("GEOSEARCHSTORE", "x", "pts", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m", "WITHDIST"),
                 ("GEOSEARCH", "none", "FROMMEMBER", "a", "BYRADIUS", 1, "m"),
                 ("GEOSEARCHSTORE", "dst", "none", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m"),
                 ("EXISTS", "dst"), ("GEORADIUSBYMEMBER", "none", "a", 1, "m"),
                 ("GEOSEARCH", "pts", "FROMLONLAT", 0, 0, "BYRADIUS", "x", "m")]:
        same(pair, *args)


def test_hyperloglog_matches_redis_byte_for_byte(ref_pair):
    pair = ref_pair
    rng = random.Random(5)
    keys = ["h1", "h2", "h3"]
    for step in range(600):
        k = rng.choice(keys)
        op = rng.random()
        if op < 0.6:
            n = rng.choice([1, 3, 10, 100, 400])
            same(pair, "PFADD", k, *[f"e{rng.randrange(20000)}" for _ in range(n)])
        elif op < 0.8:
            same(pair, "PFCOUNT", *rng.sample(keys, rng.randrange(1, 4)))
        elif op < 0.95:
            same(pair, "PFMERGE", rng.choice(keys + ["dst"]), *rng.sample(keys, rng.randrange(1, 3)))
        else:
            same(pair, "GET", k)
    for k in keys + ["dst"]:
        same(pair, "GET", k)
        same(pair, "PFCOUNT", k)
        same(pair, "GET", k)
    # Values written by Redis count the same in Locus, and back.
    raw = pair[1].get("h1")
    pair[0].set("copy", raw)
    pair[1].set("copy", raw)
    same(pair, "PFCOUNT", "copy")
    same(pair, "PFADD", "copy", "one-more")
    same(pair, "GET", "copy")
    # Errors: other types, corrupt values.
    pair[0].lpush("list", "x")
    pair[1].lpush("list", "x")
    for args in [("SET", "plain", "hello"), ("PFADD", "plain", "a"), ("PFCOUNT", "plain"),
                 ("PFCOUNT", "h1", "plain"), ("PFMERGE", "h1", "plain"), ("PFADD", "list", "a"),
                 ("PFCOUNT", "list"), ("PFMERGE", "list", "h1"), ("PFADD", "fresh"),
                 ("GET", "fresh"), ("PFCOUNT", "nothing"), ("PFCOUNT", "nothing", "h2"),
                 ("PFMERGE", "target")]:
        same(pair, *args)
    sparse = bytearray(pair[1].get("fresh"))
    for corrupt in [bytes(sparse[:-1]), bytes(sparse) + b"\x80", b"HYLL" + b"\x02" + bytes(11),
                    b"HYLL" + b"\x00" + bytes(11) + bytes(100),
                    bytes(sparse[:16]) + b"\x7f\xff\x7f\xff"]:
        for c in pair:
            c.set("bad", corrupt)
        for args in [("PFCOUNT", "bad"), ("PFADD", "bad", "x", "y"), ("PFMERGE", "m", "bad"),
                     ("PFCOUNT", "bad", "h1"), ("GET", "bad")]:
            same(pair, *args)
