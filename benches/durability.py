#!/usr/bin/env python3
"""Durability benchmarks: locus-server against Debian's redis-server, in the same run.

1. SET throughput with `appendonly yes` and `appendfsync everysec` on both servers:
   `redis-benchmark -t set -n N -c 50 -P p`, alternating servers round after round, medians.
2. Restart time with about 1 GB of data: Locus holds it as tensors (AI.TENSORSET BLOB of 1 MB
   each), Redis the same bytes as strings (SET). Each server saves (SAVE; for the AOF, a
   rewrite), is stopped, and restarted; the time is from process start until it answers PING
   (Redis answers -LOADING until it is done) with every key present.

Usage: benches/durability.py [--rounds 3] [--requests 200000] [--gigabytes 1]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp_compare import bench, free_port, start  # noqa: E402

import redis  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCUS = os.path.join(ROOT, "target/release/locus-server")


def server_cmd(kind, port, d, extra):
    if kind == "redis":
        return ["redis-server", "--port", str(port), "--dir", d, "--save", ""] + extra
    return [LOCUS, "--port", str(port), "--dir", d, "--save", "", "--http-port", "0", "--grpc-port", "0"] + extra


def set_everysec(args):
    rows = {}
    procs = []
    ports = {}
    dirs = []
    try:
        for kind in ("redis", "locus"):
            d = tempfile.mkdtemp(prefix=f"locus-dur-{kind}-")
            dirs.append(d)
            port = free_port()
            ports[kind] = port
            procs.append(start(server_cmd(kind, port, d, ["--appendonly", "yes", "--appendfsync", "everysec"]), port))
        for p in (1, 16):
            for _ in range(args.rounds):
                for kind in ("redis", "locus"):
                    r = bench(ports[kind], "set", args.requests, 50, p, ["-d", "3"])
                    rows.setdefault((p, kind), []).append(r["SET"])
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    print("### SET with appendonly yes, appendfsync everysec\n")
    print(f"Command: `redis-benchmark -q -n {args.requests} -c 50 -d 3 -t set -P <p>` against each server "
          f"(median of {args.rounds} alternating rounds). Target: Locus/Redis >= 0.9.\n")
    print("| pipeline | Locus/Redis req/s | Locus req/s | Redis req/s | Locus p50 ms | Redis p50 ms |")
    print("|---|---|---|---|---|---|")
    for p in (1, 16):
        lr = statistics.median(r for r, _ in rows[(p, "locus")])
        rr = statistics.median(r for r, _ in rows[(p, "redis")])
        lp = statistics.median(l for _, l in rows[(p, "locus")])
        rp = statistics.median(l for _, l in rows[(p, "redis")])
        print(f"| {p} | **{lr / rr:.2f}** | {lr:,.0f} | {rr:,.0f} | {lp:.3f} | {rp:.3f} |")
    print()


def wait_ready(port, keys, timeout=600):
    c = redis.Redis(port=port, socket_connect_timeout=0.2, socket_timeout=60)
    end = time.time() + timeout
    while time.time() < end:
        try:
            if c.ping() and c.dbsize() == keys:
                return
        except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
            pass
        time.sleep(0.005)
    raise RuntimeError("server did not come back")


def restart_time(kind, persist, args):
    """Fills a server with ~args.gigabytes GB, persists it, restarts it; returns seconds."""
    d = tempfile.mkdtemp(prefix=f"locus-restart-{kind}-")
    extra = ["--appendonly", "yes", "--appendfsync", "no"] if persist == "aof" else []
    if kind == "redis" and persist == "aof":
        extra += ["--aof-use-rdb-preamble", "yes"]
    port = free_port()
    n = int(args.gigabytes * 1024)
    blob = os.urandom(1 << 20)
    try:
        proc = start(server_cmd(kind, port, d, extra), port)
        c = redis.Redis(port=port)
        pipe = c.pipeline(transaction=False)
        for i in range(n):
            if kind == "redis":
                pipe.set(f"k{i}", blob)
            else:
                pipe.execute_command("AI.TENSORSET", f"k{i}", "UINT8", 1 << 20, "BLOB", blob)
            if i % 32 == 31:
                pipe.execute()
        pipe.execute()
        if persist == "aof":
            # An automatic rewrite may be running already; the measured file is a fresh one.
            def settle():
                while c.info("persistence")["aof_rewrite_in_progress"]:
                    time.sleep(0.05)
            settle()
            c.execute_command("BGREWRITEAOF")
            time.sleep(0.1)
            settle()
        else:
            c.execute_command("SAVE")
        proc.terminate()
        proc.wait()
        disk = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
        times = []
        for _ in range(args.rounds):
            subprocess.run(["sync"])
            t0 = time.perf_counter()
            proc = subprocess.Popen(server_cmd(kind, port, d, extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_ready(port, n)
            times.append(time.perf_counter() - t0)
            proc.terminate()
            proc.wait()
        return statistics.median(times), disk
    finally:
        shutil.rmtree(d, ignore_errors=True)


def restarts(args):
    print(f"### Restart time with {args.gigabytes:g} GB of data\n")
    print("Locus holds 1 MB UINT8 tensors (AI.TENSORSET BLOB); Redis the same bytes as 1 MB strings. "
          "Time from process start until PING answers and DBSIZE shows every key "
          f"(median of {args.rounds} restarts; the files are in the page cache).\n")
    print("| persistence | Locus s | Redis s | Locus/Redis time | Locus file bytes | Redis file bytes |")
    print("|---|---|---|---|---|---|")
    for persist, label in (("snapshot", "snapshot (Locus dump.locus / Redis dump.rdb)"),
                           ("aof", "AOF after a rewrite (Locus base snapshot / Redis RDB preamble)")):
        lt, ld = restart_time("locus", persist, args)
        rt, rd = restart_time("redis", persist, args)
        print(f"| {label} | {lt:.3f} | {rt:.3f} | **{lt / rt:.2f}** | {ld:,} | {rd:,} |")
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--gigabytes", type=float, default=1.0)
    ap.add_argument("--sections", default="set,restart")
    args = ap.parse_args()
    if "set" in args.sections:
        set_everysec(args)
    if "restart" in args.sections:
        restarts(args)


if __name__ == "__main__":
    main()
