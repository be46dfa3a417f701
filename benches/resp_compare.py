#!/usr/bin/env python3
"""RESP throughput and latency: locus-server against Debian's redis-server, in the same run.

Starts both servers side by side on free loopback ports, then runs
`redis-benchmark -q -n N -c 50 -t ping,set,get -P p --csv` against each, alternating servers round
after round so that machine noise hits both alike, and reports the median of each metric with
Locus/Redis ratios as a Markdown table.

Usage: benches/resp_compare.py [--rounds 5] [--requests 200000] [--clients 50] [--pipelines 1,16]
"""
import argparse
import csv
import io
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def start(cmd, port):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p


def bench(port, tests, n, clients, pipeline, extra):
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-q", "-n", str(n), "-c", str(clients), "-P", str(pipeline), "-t", tests, "--csv"] + extra,
        check=True, capture_output=True, text=True,
    ).stdout
    rows = {}
    for r in csv.DictReader(io.StringIO(out)):
        rows[r["test"]] = (float(r["rps"]), float(r["p50_latency_ms"]))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--pipelines", default="1,16")
    ap.add_argument("--tests", default="ping,set,get")
    ap.add_argument("--data-size", type=int, default=3, help="redis-benchmark -d")
    ap.add_argument("--locus", default=os.path.join(ROOT, "target/release/locus-server"))
    ap.add_argument("--locus-args", default="")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="locus-bench-")
    rport, lport = free_port(), free_port()
    redis = start(["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no", "--dir", tmp], rport)
    locus = start([args.locus, "--port", str(lport), "--dir", tmp, "--http-port", "0", "--grpc-port", "0"] + args.locus_args.split(), lport)
    extra = ["-d", str(args.data_size)]
    results = {}
    try:
        for p in [int(x) for x in args.pipelines.split(",")]:
            for _ in range(args.rounds):
                for name, port in (("redis", rport), ("locus", lport)):
                    for test, (rps, p50) in bench(port, args.tests, args.requests, args.clients, p, extra).items():
                        results.setdefault((p, test, name), []).append((rps, p50))
    finally:
        for proc in (redis, locus):
            proc.terminate()
            proc.wait()

    cpu = platform.processor() or platform.machine()
    print(f"Machine: {os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}; "
          f"redis-server {subprocess.run(['redis-server', '--version'], capture_output=True, text=True).stdout.split()[2]}")
    print(f"Command: redis-benchmark -q -n {args.requests} -c {args.clients} -d {args.data_size} -t {args.tests} -P <p> "
          f"(median of {args.rounds} alternating rounds)\n")
    print("| test | pipeline | Locus/Redis req/s | Locus req/s | Redis req/s | Locus p50 ms | Redis p50 ms |")
    print("|---|---|---|---|---|---|---|")
    worst = None
    for (p, test, name) in sorted({(k[0], k[1], "") for k in results}, key=lambda k: (k[0], k[1])):
        lr = statistics.median(r for r, _ in results[(p, test, "locus")])
        rr = statistics.median(r for r, _ in results[(p, test, "redis")])
        lp = statistics.median(l for _, l in results[(p, test, "locus")])
        rp = statistics.median(l for _, l in results[(p, test, "redis")])
        ratio = lr / rr
        worst = ratio if worst is None else min(worst, ratio)
        print(f"| {test} | {p} | **{ratio:.2f}** | {lr:,.0f} | {rr:,.0f} | {lp:.3f} | {rp:.3f} |")
    print(f"\nLowest throughput ratio: {worst:.2f}")


if __name__ == "__main__":
    sys.exit(main())
