#!/usr/bin/env python3
"""The reference runner: starts Debian's redis-server and locus-server side by side and measures
every comparison the issues ask for in one run, printing BENCHMARKS.md sections (ratios first,
absolute numbers second). Each comparison alternates target and reference over several rounds
and reports medians, because the machine is shared and noisy.

Usage: benches/compare.py [--rounds 3] [--sections resp,durability,tensors,memory,models,dag,lifecycle,routers,observability,scoring,v2,metrics,acl,tls,explain,datatypes,import,module] [--no-metrics PATH]
       [--baseline OLD_LOCUS_SERVER] > BENCHMARKS.md
"""
import argparse
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCUS = os.path.join(ROOT, "target/release/locus-server")
BENCH = os.path.join(ROOT, "target/release/locus-benchmark")
MODELS = os.path.join(ROOT, "redis-tests/models")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp_compare import free_port, start  # noqa: E402


def lb(port, *args):
    """Runs locus-benchmark with --json and returns its reports."""
    out = subprocess.run([BENCH, "-p", str(port), "--json", *map(str, args)], check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def median_runs(rounds, fn):
    vals = [fn() for _ in range(rounds)]
    return {k: statistics.median(v[k] for v in vals) for k in vals[0]}


def redis_cmd(port, *args):
    import redis
    return redis.Redis(port=port).execute_command(*args)


def section_resp(args):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benches/resp_compare.py"), "--rounds", str(args.rounds)],
                         check=True, capture_output=True, text=True).stdout
    print("## RESP commands: locus-server vs redis-server (issue: server foundation)\n")
    print("Target: Locus req/s >= Redis on every line, p50 no worse.\n")
    print(out)


def section_durability(args):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benches/durability.py"), "--rounds", str(args.rounds)],
                         check=True, capture_output=True, text=True).stdout
    print("## Durability: AOF writes and restart time (issue: durability)\n")
    print(out)


def section_tensors(args, rport, lport):
    print("## Tensors: AI.TENSORSET / AI.TENSORGET BLOB vs redis-server SET / GET of the same bytes\n")
    print("Same load generator (locus-benchmark, 50 clients, pipeline 1) for both servers. Target: ratio >= 0.9.\n")
    print("| payload | Locus TENSORSET / Redis SET | Locus TENSORGET / Redis GET | TENSORSET req/s | SET req/s | TENSORGET req/s | GET req/s |")
    print("|---|---|---|---|---|---|---|")
    for size, n in ((1024, 100000), (16384, 40000), (1 << 20, 1500)):
        def one():
            r = {x["test"]: x["rps"] for x in lb(rport, "-c", 50, "-n", n, "-d", size, "-t", "set,get")}
            l = {x["test"]: x["rps"] for x in lb(lport, "-c", 50, "-n", n, "-d", size, "-t", "tensorset,tensorget")}
            return {"set": r["SET"], "get": r["GET"], "tset": l["TENSORSET"], "tget": l["TENSORGET"]}
        m = median_runs(args.rounds, one)
        print(f"| {size // 1024} KiB | **{m['tset'] / m['set']:.2f}** | **{m['tget'] / m['get']:.2f}** | {m['tset']:,.0f} | {m['set']:,.0f} | {m['tget']:,.0f} | {m['get']:,.0f} |")
    print(f"\nCommand: `locus-benchmark -p PORT -c 50 -n N -d SIZE -t set,get` (redis-server) and `-t tensorset,tensorget` (Locus), median of {args.rounds} rounds.\n")


def used_memory(port):
    import redis
    return int(redis.Redis(port=port).info("memory")["used_memory"])


def section_memory(args, rport, lport):
    import redis
    n, size = 100000, 1024
    blob = bytes(range(256)) * 4
    r, l = redis.Redis(port=rport), redis.Redis(port=lport)
    r.flushall()
    l.flushall()
    time.sleep(0.5)
    r0, l0 = used_memory(rport), used_memory(lport)
    for start in range(0, n, 1000):
        p = r.pipeline(transaction=False)
        q = l.pipeline(transaction=False)
        for i in range(start, start + 1000):
            p.set(f"key:{i:08d}", blob)
            q.execute_command("AI.TENSORSET", f"key:{i:08d}", "FLOAT", 256, "BLOB", blob)
        p.execute()
        q.execute()
    time.sleep(0.5)
    r1, l1 = used_memory(rport), used_memory(lport)
    per_r, per_l = (r1 - r0) / n, (l1 - l0) / n
    print("## Memory per stored 1 KiB value\n")
    print("100,000 keys `key:NNNNNNNN`, each 1 KiB: strings in redis-server, FLOAT[256] tensors in Locus; `INFO memory` used_memory before and after. Target: ratio <= 1.3.\n")
    print("| Locus/Redis | Locus bytes per tensor | Redis bytes per string |")
    print("|---|---|---|")
    print(f"| **{per_l / per_r:.2f}** | {per_l:,.0f} | {per_r:,.0f} |\n")
    r.flushall()
    l.flushall()


def section_models(args, rport, lport):
    fraud = os.path.join(MODELS, "fraud.onnx")
    print("## Models: fraud workload (shared/reference/fraud-model.md)\n")
    # 1. One client latency vs in-process ONNX Runtime + PING round trip.
    rows = []
    for _ in range(args.rounds):
        ex = lb(lport, "--model", fraud, "--model-key", "fraud1", "-c", 1, "-n", 5000)[0]
        inproc = lb(lport, "--model", fraud, "--inprocess", "-c", 1, "-n", 5000, "--intra-threads", 1)[0]
        ping = lb(rport, "-c", 1, "-n", 5000, "-t", "ping")[0]
        rows.append((ex["latency_ms"]["p50"], inproc["latency_ms"]["p50"], ping["latency_ms"]["p50"]))
    ex, inproc, ping = (statistics.median(r[i] for r in rows) for i in range(3))
    budget = inproc + ping + 0.030
    print("### One client, AI.MODELEXECUTE on stored inputs (batch 1)\n")
    print("Target: Locus p50 <= in-process ONNX Runtime p50 + redis-server PING p50 + 30 µs.\n")
    print("| Locus p50 | budget (in-process + PING + 30 µs) | in-process ORT p50 | redis-server PING p50 | within target |")
    print("|---|---|---|---|---|")
    print(f"| {ex * 1000:.0f} µs | {budget * 1000:.0f} µs | {inproc * 1000:.0f} µs | {ping * 1000:.0f} µs | {'yes' if ex <= budget else 'no'} |\n")
    # 2. 32 clients with and without BATCHSIZE vs GET.
    def batched():
        # Runs of a second or more: shorter ones vary too much on a shared machine.
        b = lb(lport, "--model", fraud, "--model-key", "fraud32", "--batchsize", 32, "-c", 32, "-n", 100000)[0]["rps"]
        nb = lb(lport, "--model", fraud, "--model-key", "fraud0", "-c", 32, "-n", 100000)[0]["rps"]
        get = lb(rport, "-c", 32, "-n", 200000, "-t", "get")[0]["rps"]
        return {"b": b, "nb": nb, "get": get}
    m = median_runs(args.rounds, batched)
    print("### 32 concurrent clients, AI.MODELEXECUTE\n")
    print("Target: with BATCHSIZE 32, >= 0.7x redis-server GET req/s (same load generator and clients), and clearly above the unbatched run.\n")
    print("| BATCHSIZE 32 / Redis GET | BATCHSIZE 32 req/s | no BATCHSIZE req/s | redis-server GET req/s |")
    print("|---|---|---|---|")
    print(f"| **{m['b'] / m['get']:.2f}** | {m['b']:,.0f} | {m['nb']:,.0f} | {m['get']:,.0f} |\n")
    # 3. PING p99 of 10 clients while one client runs a model for >= 1 s.
    spin = os.path.join(MODELS, "spin.onnx")
    redis_cmd(lport, "CONFIG", "SET", "model-execution-timeout", "1500")
    with open(spin, "rb") as f:
        redis_cmd(lport, "AI.MODELSTORE", "spin", "ONNX", "CPU", "BLOB", f.read())
    redis_cmd(lport, "AI.TENSORSET", "x", "FLOAT", 1, "VALUES", 0)
    stop = time.time() + 4
    def runner():
        while time.time() < stop:
            try:
                redis_cmd(lport, "AI.MODELEXECUTE", "spin", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
            except Exception:
                pass
    t = threading.Thread(target=runner)
    t.start()
    time.sleep(0.3)
    p = lb(lport, "-c", 10, "-n", 100000, "-t", "ping")[0]
    t.join()
    redis_cmd(lport, "CONFIG", "SET", "model-execution-timeout", "5000")
    print("### PING while a model runs for 1.5 s (until the kill switch stops it), repeatedly\n")
    print("Target: PING p99 of 10 other clients under 1 ms.\n")
    print("| PING p50 | PING p99 | PING max | requests |")
    print("|---|---|---|---|")
    print(f"| {p['latency_ms']['p50']:.3f} ms | **{p['latency_ms']['p99']:.3f} ms** | {p['latency_ms']['max']:.3f} ms | {p['completed']} |\n")
    print(f"Commands: `locus-benchmark --model fraud.onnx -c 1 -n 5000` vs `--inprocess --intra-threads 1`; `-c 32 -n 100000 --batchsize 32` (Redis GET `-n 200000`); `-t ping -c 10` while `AI.MODELEXECUTE spin` loops. Medians of {args.rounds} rounds.\n")


def section_dag(args, rport, lport):
    fraud = os.path.join(MODELS, "fraud.onnx")
    print("## Data-local scoring: one AI.DAGEXECUTE vs Redis + client-side inference\n")
    print("Locus: `AI.DAGEXECUTE LOAD 1 ref:{id} |> AI.TENSORSET txn … |> AI.MODELEXECUTE fraud … |> AI.TENSORGET out BLOB`, "
          "1,000 stored reference tensors chosen at random, model stored with BATCHSIZE 32. Peer: a compiled client that GETs the "
          "reference blob from redis-server and runs ONNX Runtime in-process with one intra-op thread per client. "
          "Both closed loop from locus-benchmark on the same machine. Target: Locus throughput >= 1.3x the peer's with 32 clients, and lower p99.\n")
    rows = {}
    for clients, n in ((32, 100000), (1, 10000)):
        def one():
            l = lb(lport, "--model", fraud, "--model-key", "fraudd", "--batchsize", 32, "--mode", "dag", "--refs", 1000, "-c", clients, "-n", n)[0]
            p = lb(lport, "--model", fraud, "--inprocess", "--peer-redis", rport, "--refs", 1000, "-c", clients, "-n", n, "--intra-threads", 1)[0]
            return {"lr": l["rps"], "pr": p["rps"], "l50": l["latency_ms"]["p50"], "p50": p["latency_ms"]["p50"],
                    "l99": l["latency_ms"]["p99"], "p99": p["latency_ms"]["p99"]}
        rows[clients] = median_runs(args.rounds, one)
    print("| clients | Locus/peer req/s | Locus req/s | peer req/s | Locus p50 | peer p50 | Locus p99 | peer p99 |")
    print("|---|---|---|---|---|---|---|---|")
    for c, m in rows.items():
        print(f"| {c} | **{m['lr'] / m['pr']:.2f}** | {m['lr']:,.0f} | {m['pr']:,.0f} | {m['l50']:.3f} ms | {m['p50']:.3f} ms | {m['l99']:.3f} ms | {m['p99']:.3f} ms |")
    print(f"\nCommands: `locus-benchmark --model fraud.onnx --batchsize 32 --mode dag --refs 1000 -c C` and "
          f"`locus-benchmark --model fraud.onnx --inprocess --peer-redis REDIS_PORT --refs 1000 --intra-threads 1 -c C`. Medians of {args.rounds} rounds.\n")


def section_lifecycle(args, rport, lport):
    """Model versions must cost nothing on the run path: the fraud workload through a plain key
    and through `VERSION n`, against a locus-server built before versions (`--baseline`), the
    two servers measured alternately on the same machine."""
    fraud = os.path.join(MODELS, "fraud.onnx")
    print("## Model lifecycle: version resolution on the run path (issue: model lifecycle)\n")
    if not args.baseline:
        print("Skipped: pass `--baseline PATH` (a locus-server built before model versions).\n")
        return
    # Both servers started here with the same settings (no snapshots: a BGSAVE triggered by the
    # outputs written would weigh on one side only).
    bport, nport = free_port(), free_port()
    base = start([args.baseline, "--port", str(bport), "--dir", tempfile.mkdtemp(), "--save", ""], bport)
    new = start([LOCUS, "--port", str(nport), "--dir", tempfile.mkdtemp(), "--save", "", "--http-port", "0", "--grpc-port", "0"], nport)
    lport_main, lport = lport, nport
    try:
        time.sleep(1)
        order = [("base", bport, []), ("plain", lport, []), ("ver", lport, ["--model-version", 1])]
        shuffler = random.Random(7)
        def one():
            # A fresh random order each round: a fixed order (even alternating) lets a run's
            # position, after which run it comes, show up as a difference between servers.
            # The ratios are taken within a round (runs seconds apart), then their median.
            shuffler.shuffle(order)
            row = {}
            for name, port, extra in order:
                r1 = lb(port, "--model-key", "lc1", "-c", 1, "-n", 20000, *extra)[0]
                r32 = lb(port, "--model-key", "lc32", "-c", 32, "-n", 60000, *extra)[0]
                row[name + "1"] = r1["rps"]
                row[name + "p50"] = r1["latency_ms"]["p50"]
                row[name + "32"] = r32["rps"]
            for k in ("1", "32"):
                row["plain/" + k] = row["plain" + k] / row["base" + k]
                row["ver/" + k] = row["ver" + k] / row["base" + k]
            row["plainp50/"] = row["basep50"] / row["plainp50"]
            row["verp50/"] = row["basep50"] / row["verp50"]
            return row
        # Stored once (each store adds a version): version 1 is the live one on the new server.
        with open(fraud, "rb") as f:
            fblob = f.read()
        for port in (bport, lport):
            redis_cmd(port, "AI.MODELSTORE", "lc1", "ONNX", "CPU", "BLOB", fblob)
            redis_cmd(port, "AI.MODELSTORE", "lc32", "ONNX", "CPU", "BATCHSIZE", 32, "BLOB", fblob)
        m = median_runs(args.rounds, one)
    finally:
        for p in (base, new):
            p.terminate()
            p.wait()
    lport = lport_main
    print("Target: fraud AI.MODELEXECUTE, 1 client and 32 clients (BATCHSIZE 32), plain key and `VERSION n`, each >= 0.97x the server before versions.\n")
    print("Ratios are medians of per-round ratios (the three runs of a round, in random order, are seconds apart); req/s are medians over rounds.\n")
    print("| load | before req/s | plain key req/s | plain / before | `VERSION 1` req/s | `VERSION 1` / before |")
    print("|---|---|---|---|---|---|")
    for label, k in (("1 client", "1"), ("32 clients, BATCHSIZE 32", "32")):
        print(f"| {label} | {m['base' + k]:,.0f} | {m['plain' + k]:,.0f} | **{m['plain/' + k]:.2f}** | {m['ver' + k]:,.0f} | **{m['ver/' + k]:.2f}** |")
    print(f"\n1-client p50: before {m['basep50'] * 1000:.0f} µs, plain {m['plainp50'] * 1000:.0f} µs "
          f"(before/plain **{m['plainp50/']:.2f}**), VERSION 1 {m['verp50'] * 1000:.0f} µs (before/VERSION 1 **{m['verp50/']:.2f}**).\n")
    # PING while 40 MB models are stored.
    big = os.path.join(MODELS, "mlp_big.onnx")
    if not os.path.exists(big):
        subprocess.run([sys.executable, os.path.join(MODELS, "make_models.py"), "--big"], check=True, cwd=MODELS,
                       capture_output=True)
    with open(big, "rb") as f:
        blob = f.read()
    def ping_while(port, cmd):
        """PING p99 of 10 clients while one client sends `cmd` (with the 42 MB blob) in a loop."""
        stop = threading.Event()
        times = []
        def sender():
            import redis
            c = redis.Redis(port=port)
            while not stop.is_set():
                t0 = time.perf_counter()
                c.execute_command(*cmd)
                times.append(time.perf_counter() - t0)
        t = threading.Thread(target=sender)
        t.start()
        time.sleep(0.2)
        p = lb(port, "-c", 10, "-n", 100000, "-t", "ping")[0]
        stop.set()
        t.join()
        return {"p50": p["latency_ms"]["p50"], "p99": p["latency_ms"]["p99"], "n": len(times),
                "each": statistics.median(times)}
    cases = [("Locus, AI.MODELSTORE", lport, ("AI.MODELSTORE", "big", "ONNX", "CPU", "BLOB", blob)),
             ("Locus, SET of the same bytes", lport, ("SET", "bigblob", blob)),
             ("redis-server, SET of the same bytes", rport, ("SET", "bigblob", blob))]
    rows = {name: [] for name, _, _ in cases}
    for _ in range(args.rounds):
        for name, port, cmd in cases:
            rows[name].append(ping_while(port, cmd))
    redis_cmd(lport, "DEL", "big", "bigblob")
    redis_cmd(rport, "DEL", "bigblob")
    print(f"### PING while a {len(blob) / 1e6:.0f} MB model is stored again and again\n")
    print("Target: PING p99 of 10 clients under 1 ms. References in the same run: the same bytes sent with SET, to Locus and to redis-server "
          "(the transfer alone, without parsing and optimising a model).\n")
    print("| while | PING p50 | PING p99 | PING p99 / redis-server's | commands during the run | each took (median) |")
    print("|---|---|---|---|---|---|")
    ref99 = statistics.median(r["p99"] for r in rows["redis-server, SET of the same bytes"])
    for name, _, _ in cases:
        m = {k: statistics.median(r[k] for r in rows[name]) for k in ("p50", "p99", "n", "each")}
        print(f"| {name} | {m['p50']:.3f} ms | **{m['p99']:.3f} ms** | {m['p99'] / ref99:.2f} | {m['n']:.0f} | {m['each'] * 1000:.0f} ms |")
    print()
    print(f"Commands: `benches/compare.py --sections lifecycle --baseline OLD_LOCUS_SERVER --rounds {args.rounds}`: "
          f"`locus-benchmark --model-key lc1 -c 1 -n 20000` and `--model-key lc32 -c 32 -n 60000` (BATCHSIZE 32), with and without "
          f"`--model-version 1`, both servers started with the same settings, runs in random order each round; `-t ping -c 10 -n 100000` while a client loops AI.MODELSTORE of mlp_big.onnx (or SET of its bytes). Medians of {args.rounds} rounds.\n")


def scale_model(k):
    """y = x * k, float [N, 4] (the bandit's arms: the output tells which arm answered)."""
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["y"])], f"scale{k}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor("k", TensorProto.FLOAT, [1], [float(k)])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m.SerializeToString()


def section_routers(args):
    """Routers on the run path: the fraud workload direct and through SPLIT, SHADOW and
    ENSEMBLE routers over two versions of the model, on one server, in random order per
    round; then a bandit's convergence."""
    import redis
    print("## Routers (issue: routers)\n")
    port = free_port()
    srv = start([LOCUS, "--port", str(port), "--dir", tempfile.mkdtemp(), "--save", "", "--http-port", "0", "--grpc-port", "0"], port)
    try:
        time.sleep(1)
        with open(os.path.join(MODELS, "fraud.onnx"), "rb") as f:
            fblob = f.read()
        for _ in range(2):
            redis_cmd(port, "AI.MODELSTORE", "fr", "ONNX", "CPU", "BLOB", fblob)
            redis_cmd(port, "AI.MODELSTORE", "fr32", "ONNX", "CPU", "BATCHSIZE", 32, "BLOB", fblob)
        redis_cmd(port, "AI.ROUTERSET", "split1", "SPLIT", "fr@1", 50, "fr@2", 50)
        redis_cmd(port, "AI.ROUTERSET", "split32", "SPLIT", "fr32@1", 50, "fr32@2", 50)
        redis_cmd(port, "AI.ROUTERSET", "shadow1", "SHADOW", "fr@2", "fr@1")
        redis_cmd(port, "AI.ROUTERSET", "ens32", "ENSEMBLE", "MEAN", "fr32@1", "fr32@2")
        runs = [("direct1", "fr", None, 1, 20000), ("split1", "fr", "split1", 1, 20000),
                ("shadow1", "fr", "shadow1", 1, 20000), ("direct32", "fr32", None, 32, 60000),
                ("split32", "fr32", "split32", 32, 60000), ("ens32", "fr32", "ens32", 32, 60000)]
        shuffler = random.Random(11)
        for name, key, run_key, clients, n in runs:  # warm every session and queue first
            lb(port, "--model-key", key, "-c", clients, "-n", 3000, *(["--run-key", run_key] if run_key else []))

        def one():
            shuffler.shuffle(runs)
            row = {}
            for name, key, run_key, clients, n in runs:
                extra = ["--run-key", run_key] if run_key else []
                r = lb(port, "--model-key", key, "-c", clients, "-n", n, *extra)[0]
                row[name] = r["rps"]
                row[name + "_p50"] = r["latency_ms"]["p50"] * 1000
            row["split1_dp50"] = row["split1_p50"] - row["direct1_p50"]
            row["shadow1/"] = row["shadow1_p50"] / row["direct1_p50"]
            row["split32/"] = row["split32"] / row["direct32"]
            row["ens32/"] = row["ens32"] / row["direct32"]
            return row
        m = median_runs(args.rounds, one)
        print("Targets: through a SPLIT over two versions of the fraud model, 1-client p50 <= direct + 3 µs and 32 clients "
              "(BATCHSIZE 32) >= 0.95x direct req/s; SHADOW at 1 client, primary p50 <= 1.1x direct; ENSEMBLE of two at "
              "32 clients >= 0.45x a single model's req/s.\n")
        print("Ratios are medians of per-round ratios (each round runs every case once, in random order); absolute numbers are medians over rounds.\n")
        print("| case | req/s | p50 | against direct |")
        print("|---|---|---|---|")
        print(f"| direct, 1 client | {m['direct1']:,.0f} | {m['direct1_p50']:.0f} µs | |")
        print(f"| SPLIT 50/50, 1 client | {m['split1']:,.0f} | {m['split1_p50']:.0f} µs | p50 **{m['split1_dp50']:+.1f} µs** |")
        print(f"| SHADOW (primary v2, shadow v1), 1 client | {m['shadow1']:,.0f} | {m['shadow1_p50']:.0f} µs | p50 **{m['shadow1/']:.2f}x** |")
        print(f"| direct, 32 clients, BATCHSIZE 32 | {m['direct32']:,.0f} | {m['direct32_p50']:.0f} µs | |")
        print(f"| SPLIT 50/50, 32 clients | {m['split32']:,.0f} | {m['split32_p50']:.0f} µs | req/s **{m['split32/']:.2f}x** |")
        print(f"| ENSEMBLE MEAN of v1 and v2, 32 clients | {m['ens32']:,.0f} | {m['ens32_p50']:.0f} µs | req/s **{m['ens32/']:.2f}x** (runs two) |")
        print()
        # The bandit's convergence: 10,000 requests, Bernoulli rewards 0.1/0.2/0.3.
        c = redis.Redis(port=port)
        for k in (1, 2, 3):
            c.execute_command("AI.MODELSTORE", f"arm{k}", "ONNX", "CPU", "BLOB", scale_model(k))
        p = {1.0: 0.1, 2.0: 0.2, 3.0: 0.3}
        curves = {}
        for strategy in (["EPSILON", 0.1], ["UCB1"], ["THOMPSON"]):
            c.execute_command("AI.ROUTERSET", "bandit", "BANDIT", *strategy, "arm1", "arm2", "arm3", "SEED", 7)
            rng = random.Random(11)
            best = []
            for i in range(10_000):
                reply = c.execute_command("AI.DAGEXECUTE", "ROUTING", "bandit", "|>", "AI.TENSORSET", "x", "FLOAT", 1, 4,
                                          "VALUES", 1, 1, 1, 1, "|>", "AI.MODELEXECUTE", "bandit", "INPUTS", 1, "x",
                                          "OUTPUTS", 1, "y", "|>", "AI.TENSORGET", "y", "VALUES")
                arm = float(reply[-1][0])
                c.execute_command("AI.ROUTERREWARD", "bandit", "OUTPUT", "y", 1 if rng.random() < p[arm] else 0)
                best.append(arm == 3.0)
            curves[" ".join(map(str, strategy))] = [sum(best[j:j + 1000]) / 10 for j in range(0, 10_000, 1000)]
        print("### Bandit convergence\n")
        print("Share of requests sent to the best arm (reward 0.3 against 0.2 and 0.1), per 1,000 requests, SEED 7. "
              "Target: >= 85% over the last 2,000.\n")
        print("| strategy | " + " | ".join(f"{j + 1}k" for j in range(10)) + " | last 2,000 |")
        print("|---|" + "---|" * 11)
        for name, curve in curves.items():
            print(f"| {name} | " + " | ".join(f"{v:.0f}%" for v in curve) + f" | **{(curve[-1] + curve[-2]) / 2:.1f}%** |")
        print()
        print(f"Commands: `benches/compare.py --sections routers --rounds {args.rounds}`: `locus-benchmark --model-key fr -c 1 -n 20000` "
              "and `--model-key fr32 -c 32 -n 60000` (BATCHSIZE 32), direct and with `--run-key ROUTER`; the bandit "
              "loop is AI.DAGEXECUTE then AI.ROUTERREWARD from one redis-py client.\n")
    finally:
        srv.terminate()
        srv.wait()


def section_observability(args):
    """What watching costs: the fraud workload at 32 clients (BATCHSIZE 32) plain, with a PSI
    drift monitor on its 30 transaction features, and with request logging at SAMPLE 0.01 with
    full payloads; each round runs the three in random order on one server."""
    import numpy as np
    import redis
    print("## Observability: monitors and request logging on the run path (issue: observability)\n")
    port = free_port()
    srv = start([LOCUS, "--port", str(port), "--dir", tempfile.mkdtemp(), "--save", "", "--http-port", "0", "--grpc-port", "0"], port)
    try:
        time.sleep(1)
        c = redis.Redis(port=port)
        with open(os.path.join(MODELS, "fraud.onnx"), "rb") as f:
            c.execute_command("AI.MODELSTORE", "fr32", "ONNX", "CPU", "BATCHSIZE", 32, "BLOB", f.read())
        base = np.random.default_rng(1).standard_normal((1000, 30)).astype(np.float32)
        c.execute_command("AI.TENSORSET", "base", "FLOAT", 1000, 30, "BLOB", base.tobytes())
        def configure(case):
            c.execute_command("AI.MONITOR", "DEL", "fr32")
            c.execute_command("AI.LOG", "DEL", "fr32")
            if case == "monitor":
                c.execute_command("AI.MONITOR", "SET", "fr32", "BASELINE", "base")
            elif case == "log":
                c.execute_command("AI.LOG", "SET", "fr32", "STREAM", "lg", "SAMPLE", 0.01, "PAYLOAD", "FULL")
        cases = ["plain", "monitor", "log"]
        lb(port, "--model-key", "fr32", "-c", 32, "-n", 20000)
        shuffler = random.Random(3)
        def one():
            shuffler.shuffle(cases)
            row = {}
            for case in cases:
                configure(case)
                row[case] = lb(port, "--model-key", "fr32", "-c", 32, "-n", 60000)[0]["rps"]
            row["monitor/"] = row["monitor"] / row["plain"]
            row["log/"] = row["log"] / row["plain"]
            return row
        m = median_runs(args.rounds, one)
        print("Targets: a drift monitor on the fraud model's 30 transaction features >= 0.95x without it; request logging at "
              "SAMPLE 0.01 with FULL payloads >= 0.95x.\n")
        print("| case | req/s | against plain |")
        print("|---|---|---|")
        print(f"| plain, 32 clients, BATCHSIZE 32 | {m['plain']:,.0f} | |")
        print(f"| AI.MONITOR SET … BASELINE (PSI, window 1000, every 100) | {m['monitor']:,.0f} | **{m['monitor/']:.2f}x** |")
        print(f"| AI.LOG SET … SAMPLE 0.01 PAYLOAD FULL | {m['log']:,.0f} | **{m['log/']:.2f}x** |")
        print()
        print(f"Commands: `benches/compare.py --sections observability --rounds {args.rounds}`: `locus-benchmark --model-key fr32 -c 32 -n 60000`, "
              "the three cases in random order each round on one server; ratios are medians of per-round ratios.\n")
    finally:
        srv.terminate()
        srv.wait()


def section_v2(args):
    """The KServe V2 faces against RESP: the fraud model (BATCHSIZE 32) at 32 clients over RESP
    AI.MODELEXECUTE, V2 REST with binary tensors, V2 REST with JSON tensors and V2 gRPC, in random
    order each round on one server; then one client's p50 over RESP and over REST."""
    import redis
    print("## KServe V2 over REST and gRPC against RESP (issue: HTTP face)\n")
    port, http, grpc = free_port(), free_port(), free_port()
    srv = start([LOCUS, "--port", str(port), "--dir", tempfile.mkdtemp(), "--save", "",
                 "--http-port", str(http), "--grpc-port", str(grpc)], port)
    try:
        time.sleep(1)
        c = redis.Redis(port=port)
        with open(os.path.join(MODELS, "fraud.onnx"), "rb") as f:
            c.execute_command("AI.MODELSTORE", "fr32", "ONNX", "CPU", "BATCHSIZE", 32, "BLOB", f.read())
        faces = {"resp": [], "rest": ["--http", http], "json": ["--http", http, "--v2-json"],
                 "grpc": ["--grpc", grpc]}
        for extra in faces.values():
            lb(port, "--model-key", "fr32", "-c", 32, "-n", 10000, *extra)
        shuffler = random.Random(5)
        order = list(faces)
        def one():
            shuffler.shuffle(order)
            row = {}
            for face in order:
                r = lb(port, "--model-key", "fr32", "-c", 32, "-n", 60000, *faces[face])[0]
                assert r["errors"] == 0, r
                row[face] = r["rps"]
            for face in ("rest", "json", "grpc"):
                row[face + "/"] = row[face] / row["resp"]
            for face in ("resp", "rest"):
                row[face + "_p50"] = lb(port, "--model-key", "fr32", "-c", 1, "-n", 5000, *faces[face])[0]["latency_ms"]["p50"] * 1000
            row["p50+"] = row["rest_p50"] - row["resp_p50"]
            return row
        m = median_runs(args.rounds, one)
        print("Targets: V2 REST with binary tensors >= 0.6x RESP AI.MODELEXECUTE req/s, JSON >= 0.4x, gRPC >= 0.6x; "
              "one client's REST p50 <= RESP p50 + 40 µs.\n")
        print("| face (fraud model, 32 clients, BATCHSIZE 32) | req/s | against RESP |")
        print("|---|---|---|")
        print(f"| RESP AI.MODELEXECUTE (stored inputs) | {m['resp']:,.0f} | |")
        print(f"| V2 REST, binary tensor data | {m['rest']:,.0f} | **{m['rest/']:.2f}x** |")
        print(f"| V2 REST, JSON tensors | {m['json']:,.0f} | **{m['json/']:.2f}x** |")
        print(f"| V2 gRPC, raw_input_contents | {m['grpc']:,.0f} | **{m['grpc/']:.2f}x** |")
        print()
        print(f"One client: RESP p50 {m['resp_p50']:.0f} µs, V2 REST (binary) p50 {m['rest_p50']:.0f} µs: "
              f"**{m['p50+']:+.0f} µs**.\n")
        print(f"Commands: `benches/compare.py --sections v2 --rounds {args.rounds}`: `locus-benchmark --model-key fr32 -c 32 -n 60000` "
              "with nothing (RESP), `--http PORT`, `--http PORT --v2-json` and `--grpc PORT` in random order each round, then "
              "`-c 1 -n 5000` over RESP and REST; the V2 requests carry their inputs (the RESP requests name stored ones), and "
              "the gRPC clients share one HTTP/2 connection; ratios are medians of per-round ratios.\n")
    finally:
        srv.terminate()
        srv.wait()


def section_explain(args):
    """Explanations (issue: explainability): one fraud row over its 30 transaction features, 100
    background rows, KernelSHAP with 2048 samples. Locus's AI.EXPLAIN against the shap package's
    KernelExplainer in this process with the same model in onnxruntime (1 thread, as the
    server's sessions run), the same samples and the same pure kernel regression (l1_reg=False),
    alternating; then AI.EXPLAIN's p50 and p99 for 1 and 8 concurrent clients."""
    import numpy as np
    import onnxruntime as ort
    import redis
    import shap
    print("## Explanations: AI.EXPLAIN against shap's KernelExplainer (issue: explainability)\n")
    port = free_port()
    srv = start([LOCUS, "--port", str(port), "--dir", tempfile.mkdtemp(), "--save", "",
                 "--http-port", "0", "--grpc-port", "0"], port)
    try:
        time.sleep(1)
        c = redis.Redis(port=port)
        fraud = os.path.join(MODELS, "fraud.onnx")
        with open(fraud, "rb") as f:
            c.execute_command("AI.MODELSTORE", "fraud", "ONNX", "CPU", "BLOB", f.read())
        rng = np.random.default_rng(4)
        bg = rng.standard_normal((100, 30)).astype(np.float32)
        rows = rng.standard_normal((64, 30)).astype(np.float32)
        ref = rng.standard_normal((1, 256)).astype(np.float32)
        c.execute_command("AI.TENSORSET", "bg", "FLOAT", 100, 30, "BLOB", bg.tobytes())
        c.execute_command("AI.TENSORSET", "ref", "FLOAT", 1, 256, "BLOB", ref.tobytes())
        for i, r in enumerate(rows):
            c.execute_command("AI.TENSORSET", f"x{i}", "FLOAT", 1, 30, "BLOB", r.tobytes())
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(fraud, so)

        def f(X):
            X = np.asarray(X, dtype=np.float32)
            return sess.run(None, {"transaction": X, "reference": np.repeat(ref, len(X), axis=0)})[0][:, 1]

        explainer = shap.KernelExplainer(f, bg)

        def explain(client, i, out="attr", model="fraud"):
            inputs = ["INPUTS", 2, f"x{i}", "ref"] if model == "fraud" else ["INPUTS", 1, f"x{i}"]
            return client.execute_command(
                "AI.EXPLAIN", model, *inputs, "BACKGROUND", 1, "bg",
                "OUTPUTS", 1, out, "METHOD", "KERNELSHAP", "NSAMPLES", 2048, "TARGET", 0 if model == "fraud" else 1,
                "CLASS", 1)

        # A model that costs little per row: a logistic regression over the same 30 features.
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType
        from sklearn.linear_model import LogisticRegression
        lr = LogisticRegression().fit(bg, (bg[:, 0] + bg[:, 1] > 0).astype(int))
        lr_onnx = to_onnx(lr, initial_types=[("x", FloatTensorType([None, 30]))],
                          options={id(lr): {"zipmap": False}}, target_opset=17).SerializeToString()
        c.execute_command("AI.MODELSTORE", "logit", "ONNX", "CPU", "BLOB", lr_onnx)
        lr_sess = ort.InferenceSession(lr_onnx, so)
        lr_explainer = shap.KernelExplainer(
            lambda X: lr_sess.run(None, {"x": np.asarray(X, dtype=np.float32)})[1][:, 1], bg)
        pairs = {"fraud": explainer, "logit": lr_explainer}
        for name, ex in pairs.items():
            explain(c, 0, model=name)
            ex.shap_values(rows[:1], nsamples=2048, l1_reg=False, silent=True)

        # The floor: onnxruntime alone on as many rows as one explanation runs, in batches of
        # the size AI.EXPLAIN queues (about 1 MiB of input each).
        floor_inputs = {
            "fraud": (sess, lambda X: {"transaction": X, "reference": np.repeat(ref, len(X), axis=0)}, 900),
            "logit": (lr_sess, lambda X: {"x": X}, 8700),
        }
        evals = rng.standard_normal((2049 * 100, 30)).astype(np.float32)
        fed = {name: [feed(evals[i:i + step]) for i in range(0, len(evals), step)]
               for name, (_, feed, step) in floor_inputs.items()}

        def floor(name):
            session = floor_inputs[name][0]
            t = time.perf_counter()
            for batch in fed[name]:
                session.run(None, batch)
            return (time.perf_counter() - t) * 1000

        def one():
            row = {}
            for name in pairs:
                row[name + "_floor"] = floor(name)
            for name, ex in pairs.items():
                t = time.perf_counter()
                for i in range(8):
                    explain(c, i, model=name)
                locus = (time.perf_counter() - t) / 8
                t = time.perf_counter()
                for i in range(3):
                    ex.shap_values(rows[i:i + 1], nsamples=2048, l1_reg=False, silent=True)
                py = (time.perf_counter() - t) / 3
                row.update({name: locus * 1000, name + "_shap": py * 1000, name + "_x": py / locus})
            return row

        m = median_runs(args.rounds, one)

        def latencies(clients, per_client):
            lat = []
            lock = threading.Lock()

            def worker(k):
                cl = redis.Redis(port=port)
                mine = []
                for j in range(per_client):
                    t = time.perf_counter()
                    explain(cl, (k * per_client + j) % len(rows), out=f"attr{k}")
                    mine.append((time.perf_counter() - t) * 1000)
                with lock:
                    lat.extend(mine)

            t0 = time.perf_counter()
            ts = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            wall = time.perf_counter() - t0
            lat.sort()
            return (lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))],
                    len(lat) / wall)

        one_client = latencies(1, 100)
        eight = latencies(8, 25)
        print("Target: >= 10x faster than `shap.KernelExplainer` with the same model in onnxruntime and the same "
              "sample count.\n")
        print("| one row, 30 features, 100 background rows, 2048 samples | shap.KernelExplainer ms | AI.EXPLAIN ms | against shap | onnxruntime alone on the same rows, ms |")
        print("|---|---|---|---|---|")
        print(f"| fraud model (MLP 286-128-64-2, the issue's workload) | {m['fraud_shap']:.1f} | {m['fraud']:.1f} | **{m['fraud_x']:.1f}x faster** | {m['fraud_floor']:.1f} |")
        print(f"| logistic regression over the same 30 features | {m['logit_shap']:.1f} | {m['logit']:.1f} | **{m['logit_x']:.1f}x faster** | {m['logit_floor']:.1f} |")
        print()
        print("| AI.EXPLAIN clients | p50 ms | p99 ms | explanations/s |")
        print("|---|---|---|---|")
        print(f"| 1 | {one_client[0]:.1f} | {one_client[1]:.1f} | {one_client[2]:.1f} |")
        print(f"| 8 | {eight[0]:.1f} | {eight[1]:.1f} | {eight[2]:.1f} |")
        print()
        print(f"Commands: `benches/compare.py --sections explain --rounds {args.rounds}`: each round runs 8 explanations "
              "through AI.EXPLAIN, then 3 through `KernelExplainer.shap_values(row, nsamples=2048, l1_reg=False)` "
              "for each model (both explain the second class probability; the fraud model keeps the row's own reference "
              "input); ratios are medians of per-round ratios. onnxruntime runs 1 thread on both sides. Latencies: 100 explanations from 1 client, then 25 from each of 8 clients. "
              "Each explanation evaluates 2048 coalitions over 100 background rows: 204,900 model rows; the last "
              "column runs just those rows through onnxruntime in this process (the fraud model's 1 KiB reference input "
              "repeated per row, as the model needs it), the floor any explainer running the same samples has.\n")
    finally:
        srv.terminate()
        srv.wait()


def section_datatypes(args):
    """Bitmaps, HyperLogLog and geo (issue: the rest of Redis): redis-benchmark running SETBIT,
    BITCOUNT over a 1 MiB string, PFADD, PFCOUNT of 3 keys, GEOADD and GEOSEARCH BYRADIUS
    against locus-server and redis-server loaded with the same data, alternating servers in
    random order each round."""
    import random as rnd
    import redis
    print("## Bitmaps, HyperLogLog and geo against redis-server (issue: the rest of Redis)\n")
    tmp = tempfile.mkdtemp(prefix="locus-bench-")
    rport, lport = free_port(), free_port()
    servers = {
        "redis": start(["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no", "--dir", tmp], rport),
        "locus": start([LOCUS, "--port", str(lport), "--dir", tmp, "--save", "", "--http-port", "0", "--grpc-port", "0"], lport),
    }
    ports = {"redis": rport, "locus": lport}
    try:
        time.sleep(1)
        data = rnd.Random(9)
        big = bytes(data.randrange(256) for _ in range(1 << 20))
        points = [(15 + data.uniform(-3, 3), 37 + data.uniform(-3, 3), f"p{i}") for i in range(20000)]
        for port in ports.values():
            c = redis.Redis(port=port)
            c.set("bm1mb", big)
            p = c.pipeline(transaction=False)
            for k in ("h1", "h2", "h3"):
                for i in range(0, 100000, 1000):
                    p.pfadd(k, *[f"{k}:{j}" for j in range(i, i + 1000)])
            for i in range(0, len(points), 500):
                p.geoadd("geo", [x for pt in points[i:i + 500] for x in pt])
            p.execute()
        tests = {
            "SETBIT": (200000, ["-r", 100000, "SETBIT", "bits:__rand_int__", 12345, 1]),
            "BITCOUNT 1 MiB": (20000, ["BITCOUNT", "bm1mb"]),
            "PFADD": (200000, ["-r", 10000000, "PFADD", "hll", "__rand_int__"]),
            "PFCOUNT 3 keys": (20000, ["PFCOUNT", "h1", "h2", "h3"]),
            "GEOADD": (200000, ["-r", 170, "GEOADD", "geo2", "__rand_int__", "45", "m__rand_int__"]),
            "GEOSEARCH BYRADIUS 20 km": (50000, ["GEOSEARCH", "geo", "FROMLONLAT", "15", "37", "BYRADIUS", "20", "km", "ASC"]),
        }
        order = list(ports)
        shuffler = rnd.Random(4)

        def one():
            row = {}
            for name, (n, words) in tests.items():
                shuffler.shuffle(order)
                got = {}
                for server in order:
                    r = redis_benchmark(ports[server], "-c", 50, "-n", n, *words)
                    got[server] = max(r.values())
                row[name + "/locus"] = got["locus"]
                row[name + "/redis"] = got["redis"]
                row[name] = got["locus"] / got["redis"]
            return row

        m = median_runs(args.rounds, one)
        print("Target: each >= 0.9x redis-server.\n")
        print("| command (50 clients) | redis-server req/s | locus-server req/s | locus / redis |")
        print("|---|---|---|---|")
        for name in tests:
            print(f"| {name} | {m[name + '/redis']:,.0f} | {m[name + '/locus']:,.0f} | **{m[name]:.2f}x** |")
        print()
        print(f"Commands: `benches/compare.py --sections datatypes --rounds {args.rounds}`: `redis-benchmark -c 50 -n N` "
              "with the command shown (SETBIT of bit 12,345 in one of 100,000 keys, PFADD of random elements, GEOADD of "
              "random longitudes; BITCOUNT over a 1 MiB random string, PFCOUNT of three dense HyperLogLogs of "
              "100,000 elements each, GEOSEARCH around a point among 20,000 points within ±3°), the two servers "
              "in random order for each command each round; ratios are medians of per-round ratios.\n")
    finally:
        for p in servers.values():
            p.terminate()
            p.wait()


def _ready_after(cmd, port, timeout=900):
    """Starts a server and returns (process, seconds until it answers PING): the time it took
    to load its data."""
    import redis
    t = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c = redis.Redis(port=port, socket_connect_timeout=0.2)
    while time.time() - t < timeout:
        try:
            c.ping()
            return proc, time.time() - t
        except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}")
            time.sleep(0.02)
    raise RuntimeError(f"{cmd[0]} did not load in {timeout} s")


def section_import(args):
    """Importing a 1 GB RDB (issue: the rest of Redis): redis-server writes an uncompressed RDB
    of strings, hashes, lists, sets and sorted sets; then redis-server loading it at start and
    locus-server importing it with --import-rdb are timed alternately, to the first PING."""
    import redis
    print("## Importing a Redis RDB file against redis-server loading it (issue: the rest of Redis)\n")
    tmp = tempfile.mkdtemp(prefix="locus-bench-import-")
    port = free_port()
    src = start(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", tmp,
                 "--dbfilename", "big.rdb", "--rdbcompression", "no", "--enable-debug-command", "yes"], port)
    try:
        c = redis.Redis(port=port)
        c.execute_command("DEBUG", "POPULATE", 1_800_000, "str", 500)
        data = random.Random(3)
        p = c.pipeline(transaction=False)
        for i in range(150_000):
            p.hset(f"h:{i}", mapping={f"f{j}": data.randbytes(40) for j in range(8)})
            p.rpush(f"l:{i}", *[data.randbytes(30) for _ in range(6)])
            if i % 3 == 0:
                p.sadd(f"s:{i}", *range(i, i + 20))
                p.zadd(f"z:{i}", {f"m{j}": data.random() for j in range(10)})
            if i % 5000 == 4999:
                p.execute()
        p.execute()
        keys = c.dbsize()
        c.save()
    finally:
        src.terminate()
        src.wait()
    path = os.path.join(tmp, "big.rdb")
    size = os.path.getsize(path)

    def one():
        row = {}
        for name in random.sample(["redis", "locus"], 2):
            port = free_port()
            if name == "redis":
                cmd = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", tmp,
                       "--dbfilename", "big.rdb"]
            else:
                cmd = [LOCUS, "--port", str(port), "--dir", tmp, "--save", "", "--http-port", "0",
                       "--grpc-port", "0", "--import-rdb", path]
            proc, secs = _ready_after(cmd, port)
            loaded = redis.Redis(port=port).dbsize()
            proc.terminate()
            proc.wait()
            assert loaded == keys, (name, loaded, keys)
            row[name] = secs
        row["ratio"] = row["locus"] / row["redis"]
        return row

    m = median_runs(args.rounds, one)
    print(f"Target: a time recorded next to redis-server's for a {size / 1e9:.2f} GB file.\n")
    print("| file | keys | redis-server load (s) | locus-server --import-rdb (s) | locus / redis |")
    print("|---|---|---|---|---|")
    print(f"| {size / 1e9:.2f} GB, uncompressed | {keys:,} | {m['redis']:.1f} | {m['locus']:.1f} | **{m['ratio']:.2f}x** |")
    print()
    print(f"Commands: `benches/compare.py --sections import --rounds {args.rounds}`: redis-server 7.0 writes the file "
          "(`DEBUG POPULATE 1800000 str 500`, 150,000 hashes of 8 fields of 40 random bytes and lists of 6 "
          "elements of 30, 50,000 sets of 20 integers and sorted sets of 10 members; `rdbcompression no`); "
          "each round starts redis-server on it and locus-server with `--import-rdb` on it, in random order, "
          "timing each from launch to its first PING answered with every key loaded; ratios are medians of "
          "per-round ratios.\n")
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)


def section_metrics(args):
    """What the metrics cost: this build against one built without its histograms
    (`cargo build --release --no-default-features --bin locus-server`, copied to
    target/no-metrics/locus-server before the normal build), the fraud workload at 32 clients
    (BATCHSIZE 32) and GET -P 16, alternating servers in random order each round."""
    import redis
    print("## Metrics on against metrics compiled out (issue: observability)\n")
    if not args.no_metrics or not os.path.exists(args.no_metrics):
        print("Skipped: pass --no-metrics PATH to a locus-server built with --no-default-features.\n")
        return
    servers = {}
    for name, binary in (("on", LOCUS), ("off", args.no_metrics)):
        port = free_port()
        servers[name] = (port, start([binary, "--port", str(port), "--dir", tempfile.mkdtemp(), "--save", "",
                                      "--http-port", "0", "--grpc-port", "0"], port))
    try:
        time.sleep(1)
        for port, _ in servers.values():
            c = redis.Redis(port=port)
            with open(os.path.join(MODELS, "fraud.onnx"), "rb") as f:
                c.execute_command("AI.MODELSTORE", "fr32", "ONNX", "CPU", "BATCHSIZE", 32, "BLOB", f.read())
            c.set("key:__rand_int__", "x" * 3)
            lb(port, "--model-key", "fr32", "-c", 32, "-n", 10000)
        shuffler = random.Random(9)
        order = ["on", "off"]
        def one():
            row = {}
            for work in ("fraud", "get"):
                shuffler.shuffle(order)
                for name in order:
                    port = servers[name][0]
                    if work == "fraud":
                        r = lb(port, "--model-key", "fr32", "-c", 32, "-n", 60000)[0]
                    else:
                        r = lb(port, "-t", "get", "-P", 16, "-c", 50, "-n", 1000000)[0]
                    row[f"{work}_{name}"] = r["rps"]
                row[work + "/"] = row[f"{work}_on"] / row[f"{work}_off"]
            return row
        m = median_runs(args.rounds, one)
        print("Targets: with metrics (always on) against a build with them compiled out: fraud 32 clients BATCHSIZE 32 >= 0.97x, "
              "RESP GET -P 16 >= 0.97x.\n")
        print("| workload | metrics on req/s | compiled out req/s | on / off |")
        print("|---|---|---|---|")
        print(f"| fraud, 32 clients, BATCHSIZE 32 | {m['fraud_on']:,.0f} | {m['fraud_off']:,.0f} | **{m['fraud/']:.2f}x** |")
        print(f"| GET, 50 clients, -P 16 | {m['get_on']:,.0f} | {m['get_off']:,.0f} | **{m['get/']:.2f}x** |")
        print()
        print(f"Commands: `benches/compare.py --sections metrics --no-metrics target/no-metrics/locus-server --rounds {args.rounds}`: "
              "`locus-benchmark --model-key fr32 -c 32 -n 60000` and `locus-benchmark -t get -P 16 -c 50 -n 1000000` on each "
              "server in random order each round; ratios are medians of per-round ratios.\n")
    finally:
        for _, p in servers.values():
            p.terminate()
            p.wait()


MODULE_LIB = os.path.join(ROOT, "target/release/liblocus_redis.so")


def section_module(args):
    """The Redis module against locus-server on the fraud workload: one client's
    AI.MODELEXECUTE p50, and 32 clients with BATCHSIZE 32, the servers in random order each
    round; with each server's CPU time per request, from which the cluster estimate follows."""
    import redis
    print("## The Redis module against locus-server (issue: Redis module)\n")
    if not os.path.exists(MODULE_LIB):
        print("Skipped: build the module first (`cargo build --release -p locus-redis`).\n")
        return
    servers = {}
    tmp = tempfile.mkdtemp(prefix="locus-bench-module-")
    port = free_port()
    servers["module"] = (port, start(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                                      "--dir", tmp, "--loadmodule", MODULE_LIB], port))
    port = free_port()
    servers["locus"] = (port, start([LOCUS, "--port", str(port), "--dir", tmp, "--save", "",
                                     "--http-port", "0", "--grpc-port", "0"], port))
    try:
        time.sleep(1)
        with open(os.path.join(MODELS, "fraud.onnx"), "rb") as f:
            blob = f.read()
        for port, _ in servers.values():
            c = redis.Redis(port=port)
            c.execute_command("AI.MODELSTORE", "fr1", "ONNX", "CPU", "BLOB", blob)
            c.execute_command("AI.MODELSTORE", "fr32", "ONNX", "CPU", "BATCHSIZE", 32, "BLOB", blob)
            lb(port, "--model-key", "fr32", "-c", 32, "-n", 10000)
            lb(port, "--model-key", "fr1", "-c", 1, "-n", 2000)
        shuffler = random.Random(16)
        order = ["module", "locus"]
        n32 = 60000

        def one():
            row = {}
            shuffler.shuffle(order)
            for name in order:
                row[f"p50_{name}"] = lb(servers[name][0], "--model-key", "fr1", "-c", 1, "-n", 5000)[0]["latency_ms"]["p50"] * 1000
            shuffler.shuffle(order)
            for name in order:
                port, proc = servers[name]
                before = process_cpu_seconds(proc.pid)
                row[f"rps_{name}"] = lb(port, "--model-key", "fr32", "-c", 32, "-n", n32)[0]["rps"]
                row[f"cpu_{name}"] = (process_cpu_seconds(proc.pid) - before) / n32 * 1e6
            row["p50+"] = row["p50_module"] - row["p50_locus"]
            row["rps/"] = row["rps_module"] / row["rps_locus"]
            return row
        m = median_runs(args.rounds, one)
        print("Targets: one client, AI.MODELEXECUTE p50 <= locus-server's + 10 µs; 32 clients with BATCHSIZE 32 >= 0.8x "
              "locus-server's req/s.\n")
        print("| workload | module (redis-server 7.0) | locus-server | module against locus-server |")
        print("|---|---|---|---|")
        print(f"| 1 client, p50 | {m['p50_module']:.0f} µs | {m['p50_locus']:.0f} µs | **{m['p50+']:+.0f} µs** |")
        print(f"| 32 clients, BATCHSIZE 32, req/s | {m['rps_module']:,.0f} | {m['rps_locus']:,.0f} | **{m['rps/']:.2f}x** |")
        print(f"| 32 clients, server CPU per request | {m['cpu_module']:.1f} µs | {m['cpu_locus']:.1f} µs | |")
        print()
        print("Scaling out, estimated from the per-shard figures above (two cores cannot show a cluster): requests on "
              "different shards share nothing (a run reads only its own shard's keys), so a cluster's throughput is the "
              f"sum of its masters'. One master here served {m['rps_module']:,.0f} req/s at {m['cpu_module']:.1f} µs of CPU "
              "per request, on two cores it shared with the load generator; M masters on M machines like this one "
              f"should serve about M times that (~{3 * m['rps_module']:,.0f} req/s for three) when clients spread "
              "their keys over every master's hash tags. Replicas add no run work: each output reaches them as one "
              "AI.TENSORSET.\n")
        print(f"Commands: `benches/compare.py --sections module --rounds {args.rounds}`: `locus-benchmark --model-key fr1 -c 1 -n 5000` "
              f"and `--model-key fr32 -c 32 -n {n32}` on each server in random order each round; medians of per-round "
              "figures.\n")
        _module_scoring(args, servers, blob)
    finally:
        for _, p in servers.values():
            p.terminate()
            p.wait()


def _module_scoring(args, servers, fraud_blob):
    """AI.SCORE over the same hashes on both hosts (the fraud model with a CONST reference,
    PRIORITY NORMAL), the servers in random order each round."""
    import numpy as np
    import redis
    n = args.module_score_rows
    X = np.random.default_rng(1).standard_normal((n, 30)).astype(np.float32)
    ref = np.random.default_rng(3).standard_normal((1, 256)).astype(np.float32)
    fields = [f"f{j}" for j in range(30)]
    for port, _ in servers.values():
        _pipe_hashes(port, X, "tx:")
        c = redis.Redis(port=port)
        c.execute_command("AI.MODELSTORE", "fraud", "ONNX", "CPU", "BLOB", fraud_blob)
        c.execute_command("AI.TENSORSET", "ref", "FLOAT", 1, 256, "BLOB", ref.tobytes())
    shuffler = random.Random(17)
    order = list(servers)
    rounds = []
    for r in range(args.rounds):
        shuffler.shuffle(order)
        row = {}
        for name in order:
            port, proc = servers[name]
            took, _ = _run_job(redis.Redis(port=port), proc.pid, f"bench{r}", "MODEL", "fraud", "MATCH", "tx:*",
                               "HASH", "FIELDS", 30, *fields, "CONST", 1, "ref", "OUTPUT", "FIELD", "score",
                               "INDEX", 1, "PRIORITY", "NORMAL")
            row[name] = n / took
        row["ratio"] = row["module"] / row["locus"]
        rounds.append(row)
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print(f"AI.SCORE over {n:,} hashes of 30 fields (fraud model, CONST reference, PRIORITY NORMAL, BATCH 256), "
          "on each host in random order each round:\n")
    print("| host | rows/s | module against locus-server |")
    print("|---|---|---|")
    print(f"| module (redis-server 7.0) | {med['module']:,.0f} | **{med['ratio']:.2f}x** |")
    print(f"| locus-server | {med['locus']:,.0f} | |")
    print()
    print(f"Command: the same section (`--module-score-rows {n}`); per-round ratios: "
          + ", ".join(f"{r['ratio']:.2f}" for r in rounds) + ".\n")


def redis_benchmark(port, *args):
    """redis-benchmark --csv: {test name: requests per second}."""
    out = subprocess.run(["redis-benchmark", "-p", str(port), "--csv", *map(str, args)],
                         check=True, capture_output=True, text=True).stdout
    rps = {}
    for line in out.splitlines()[1:]:
        cols = [c.strip('"') for c in line.split(",")]
        if len(cols) > 1:
            rps[cols[0]] = float(cols[1])
    return rps


def process_cpu_seconds(pid):
    """User plus system CPU time a process has used, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def alternate_get_set(args, runs, target, reference, seed, cpu_pid=None):
    """redis-benchmark GET and SET at -P 1 and -P 16 (50 clients) for each named run
    (`runs`: name -> (port, extra redis-benchmark args)), the runs in random order each round;
    returns the medians of req/s per run and of the per-round ratios target / reference.
    With `cpu_pid` (one server serving every run), also the server's CPU time per request of
    each run (`cpu_{pipe}_{name}`, µs) and the per-round ratio reference / target
    (`cpu_{pipe}/`): what the server itself spent, which the load generator's share of two
    cores and the machine's drift move far less than throughput."""
    shuffler = random.Random(seed)
    order = list(runs)

    def one():
        row = {}
        for pipe in (1, 16):
            shuffler.shuffle(order)
            for name in order:
                port, extra = runs[name]
                n = 200000 if pipe == 1 else 1000000
                before = process_cpu_seconds(cpu_pid) if cpu_pid else 0
                r = redis_benchmark(port, *extra, "-t", "get,set", "-P", pipe, "-c", 50, "-n", n)
                if cpu_pid:
                    row[f"cpu_{pipe}_{name}"] = (process_cpu_seconds(cpu_pid) - before) / (2 * n) * 1e6
                for test, v in r.items():
                    row[f"{test}_{pipe}_{name}"] = v
            for test in ("GET", "SET"):
                row[f"{test}_{pipe}/"] = row[f"{test}_{pipe}_{target}"] / row[f"{test}_{pipe}_{reference}"]
            if cpu_pid:
                row[f"cpu_{pipe}/"] = row[f"cpu_{pipe}_{reference}"] / row[f"cpu_{pipe}_{target}"]
        return row
    return median_runs(args.rounds, one)


def print_get_set(m, target, reference, names):
    """The table of `alternate_get_set`'s medians; `names` label the reference and target."""
    print(f"| command | pipeline | {names[0]} req/s | {names[1]} req/s | {names[1]} / {names[0]} |")
    print("|---|---|---|---|---|")
    for test in ("GET", "SET"):
        for pipe in (1, 16):
            print(f"| {test} | {pipe} | {m[f'{test}_{pipe}_{reference}']:,.0f} | {m[f'{test}_{pipe}_{target}']:,.0f} | "
                  f"**{m[f'{test}_{pipe}/']:.2f}x** |")
    print()


def section_acl(args):
    """What ACL checks cost: GET and SET from a user restricted to a key pattern (`+@all
    ~key:*`, so every key is matched against the pattern) against the default user (no checks),
    on one server, alternating the users in random order each round."""
    print("## ACL checks: a user restricted to a key pattern against the default user (issue: security)\n")
    port = free_port()
    # The event loops' idle polling is off, so that the server's CPU time is the work it did.
    server = start([LOCUS, "--port", str(port), "--dir", tempfile.mkdtemp(), "--save", "",
                    "--http-port", "0", "--grpc-port", "0", "--busy-poll-us", "0"], port)
    try:
        time.sleep(1)
        redis_cmd(port, "ACL", "SETUSER", "app", "on", ">pw", "+@all", "~key:*")
        runs = {"default": (port, []), "restricted": (port, ["--user", "app", "-a", "pw"])}
        m = alternate_get_set(args, runs, "restricted", "default", 21, cpu_pid=server.pid)
        print("Target: the restricted user >= 0.97x the default user on GET and SET, -P 1 and -P 16.\n")
        print_get_set(m, "restricted", "default", ("default", "restricted"))
        print("The server's CPU time per request (SET and GET together, user and system, from /proc), "
              "the same runs:\n")
        print("| pipeline | default µs | restricted µs | default / restricted |")
        print("|---|---|---|---|")
        for pipe in (1, 16):
            print(f"| {pipe} | {m[f'cpu_{pipe}_default']:.3f} | {m[f'cpu_{pipe}_restricted']:.3f} | "
                  f"**{m[f'cpu_{pipe}/']:.2f}x** |")
        print()
        print(f"Commands: `benches/compare.py --sections acl --rounds {args.rounds}`: `redis-benchmark -t get,set -c 50 "
              "-P 1|16 -n 200000|1000000 [--user app -a pw]` against one locus-server (`--busy-poll-us 0`), the two "
              "users in random order each round; ratios are medians of per-round ratios.\n")
    finally:
        server.terminate()
        server.wait()


def section_tls(args):
    """RESP over TLS: locus-server against redis-server, both with TLS on (the same
    self-signed certificate, no client certificates), GET and SET at -P 1 and -P 16, 50
    clients, alternating the servers in random order each round."""
    print("## TLS: locus-server against redis-server, both over TLS (issue: security)\n")
    d = tempfile.mkdtemp(prefix="locus-bench-tls-")
    crt, key = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    tls = ["--tls-cert-file", crt, "--tls-key-file", key, "--tls-auth-clients", "no"]
    rp, lp = free_port(), free_port()
    procs = [start(["redis-server", "--port", str(free_port()), "--tls-port", str(rp), *tls, "--save", "",
                    "--appendonly", "no", "--dir", d], rp),
             start([LOCUS, "--port", str(free_port()), "--tls-port", str(lp), *tls, "--save", "",
                    "--dir", d, "--http-port", "0", "--grpc-port", "0"], lp)]
    try:
        time.sleep(1)
        client = ["--tls", "--cacert", crt]
        m = alternate_get_set(args, {"redis": (rp, client), "locus": (lp, client)}, "locus", "redis", 5)
        print("Target: locus-server >= 0.9x redis-server on GET and SET over TLS, -P 1 and -P 16.\n")
        print_get_set(m, "locus", "redis", ("redis-server", "locus-server"))
        print(f"Commands: `benches/compare.py --sections tls --rounds {args.rounds}`: `redis-benchmark --tls --cacert "
              "server.crt -t get,set -c 50 -P 1|16 -n 200000|1000000` against each server (TLS only on its tls-port, "
              "`tls-auth-clients no`), in random order each round; ratios are medians of per-round ratios.\n")
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def _pipe_hashes(port, X, prefix):
    """Loads rows as hashes of 30 fields (f0..f29) through redis-cli --pipe, 50,000 at a time."""
    fields = [f"f{j}".encode() for j in range(30)]
    for start_row in range(0, len(X), 50000):
        out = []
        for i in range(start_row, min(start_row + 50000, len(X))):
            args = [b"HSET", f"{prefix}{i}".encode()]
            for f, v in zip(fields, X[i]):
                args += [f, repr(float(v)).encode()]
            out.append(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        r = subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=b"".join(out), capture_output=True)
        assert b"errors: 0" in r.stdout, r.stdout


def _rss_kb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _run_job(c, pid, name, *words):
    """Runs an AI.SCORE job to its end; returns (seconds, peak RSS growth in KiB while it ran)."""
    base = _rss_kb(pid)
    peak = base
    t = time.perf_counter()
    c.execute_command("AI.SCORE", name, *words)
    while True:
        reply = c.execute_command("AI.JOB", "GET", name)
        state = dict(zip(reply[::2], reply[1::2]))[b"state"]
        peak = max(peak, _rss_kb(pid))
        if state != b"running":
            break
        time.sleep(0.01)
    took = time.perf_counter() - t
    assert state == b"done", reply
    c.execute_command("AI.JOB", "DEL", name)
    return took, peak - base


def section_scoring(args):
    """Batch scoring (issue: batch scoring): AI.SCORE over N hashes of 30 fields with the fraud
    model and a CONST reference, against onnxruntime in this process scoring the same rows from
    memory at the same batch size (1 thread, as the server's sessions run), and against a Python
    client that SCANs, HMGETs in pipelines, runs onnxruntime and HSETs back (on 100,000 keys)."""
    import numpy as np
    import onnxruntime as ort
    import redis
    n = args.score_rows
    print(f"## Batch scoring: AI.SCORE over {n:,} hashes (issue: batch scoring)\n")
    port = free_port()
    srv = start([LOCUS, "--port", str(port), "--dir", tempfile.mkdtemp(), "--save", "", "--http-port", "0", "--grpc-port", "0"], port)
    try:
        time.sleep(1)
        c = redis.Redis(port=port)
        X = np.random.default_rng(1).standard_normal((n, 30)).astype(np.float32)
        P = np.random.default_rng(2).standard_normal((100000, 30)).astype(np.float32)
        _pipe_hashes(port, X, "tx:")
        _pipe_hashes(port, P, "py:")
        ref = np.random.default_rng(3).standard_normal((1, 256)).astype(np.float32)
        fraud = os.path.join(MODELS, "fraud.onnx")
        with open(fraud, "rb") as f:
            c.execute_command("AI.MODELSTORE", "fraud", "ONNX", "CPU", "BLOB", f.read())
        c.execute_command("AI.TENSORSET", "ref", "FLOAT", 1, 256, "BLOB", ref.tobytes())
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(fraud, so)
        R = np.repeat(ref, 256, axis=0)
        fields = [f"f{j}" for j in range(30)]

        def inprocess():
            t = time.perf_counter()
            for i in range(0, n, 256):
                x = X[i:i + 256]
                sess.run(None, {"transaction": x, "reference": R[:len(x)]})
            return time.perf_counter() - t

        def job(prefix, prio, tag):
            return _run_job(c, srv.pid, f"bench-{tag}", "MODEL", "fraud", "MATCH", f"{prefix}*", "HASH", "FIELDS", 30, *fields,
                            "CONST", 1, "ref", "OUTPUT", "FIELD", "score", "INDEX", 1, "PRIORITY", prio)

        def python_client():
            t = time.perf_counter()
            cursor = 0
            while True:
                cursor, keys = c.scan(cursor, match="py:*", count=1000)
                for i in range(0, len(keys), 256):
                    chunk = keys[i:i + 256]
                    p = c.pipeline(transaction=False)
                    for k in chunk:
                        p.hmget(k, fields)
                    x = np.array(p.execute(), dtype=np.float32)
                    out = sess.run(None, {"transaction": x, "reference": R[:len(x)]})[0][:, 1]
                    p = c.pipeline(transaction=False)
                    for k, v in zip(chunk, out):
                        p.hset(k, "pyscore", repr(float(v)))
                    p.execute()
                if cursor == 0:
                    break
            return time.perf_counter() - t

        # locus-score on a CSV of the same rows (the 30-feature model: locus-score has no CONST).
        csv_path = os.path.join(tempfile.mkdtemp(), "rows.csv")
        with open(csv_path, "w") as f:
            f.write(",".join(fields) + "\n")
            np.savetxt(f, X, delimiter=",", fmt="%.9g")
        txn30 = os.path.join(MODELS, "txn30.onnx")
        sess30 = ort.InferenceSession(txn30, so)
        score_bin = LOCUS.replace("locus-server", "locus-score")

        def inprocess30():
            t = time.perf_counter()
            for i in range(0, n, 1024):
                sess30.run(None, {"transaction": X[i:i + 1024]})
            return time.perf_counter() - t

        # The same rows as Parquet (pyarrow's defaults: snappy, dictionary pages).
        import pyarrow as pa
        import pyarrow.parquet as pq
        parquet_path = os.path.join(os.path.dirname(csv_path), "rows.parquet")
        pq.write_table(pa.table({f: X[:, j] for j, f in enumerate(fields)}), parquet_path)
        # locus-score finds ONNX Runtime through this Python (not a shim in front of it).
        score_env = dict(os.environ, LOCUS_PYTHON=sys.executable)

        def locus_score(path):
            t = time.perf_counter()
            subprocess.run([score_bin, "--inprocess", txn30, "--input", path, "--output", path + ".out" + os.path.splitext(path)[1],
                            "--batch", "1024"], check=True, capture_output=True, env=score_env)
            return time.perf_counter() - t

        rounds = []
        for r in range(args.rounds):
            row = {"inproc": inprocess(), "inproc30": inprocess30(), "score_csv": locus_score(csv_path),
                   "score_parquet": locus_score(parquet_path)}
            row["normal"], row["normal_rss"] = job("tx:", "NORMAL", f"n{r}")
            row["low"], row["low_rss"] = job("tx:", "LOW", f"l{r}")
            row["py100k"], row["py100k_rss"] = job("py:", "NORMAL", f"p{r}")
            row["python"] = python_client()
            rounds.append(row)
        m = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        ratio = {k: statistics.median(r["inproc"] / r[k] for r in rounds) for k in ("normal", "low")}
        vs_py = statistics.median(r["python"] / r["py100k"] for r in rounds)
        csv_ratio = statistics.median(r["inproc30"] / r["score_csv"] for r in rounds)
        parquet_ratio = statistics.median(r["inproc30"] / r["score_parquet"] for r in rounds)
        rate = lambda rows, secs: f"{rows / secs:,.0f}"
        print("Targets: AI.SCORE >= 0.5x in-process ONNX Runtime on the same rows at the same batch size; >= 10x a Python "
              "SCAN/HMGET/onnxruntime/HSET client; memory flat in the size of the job.\n")
        print("| run | rows/s | against in-process ORT | against the Python client |")
        print("|---|---|---|---|")
        print(f"| in-process onnxruntime, batch 256, 1 thread (reference) | {rate(n, m['inproc'])} | 1.00x | |")
        print(f"| AI.SCORE PRIORITY NORMAL, BATCH 256 | {rate(n, m['normal'])} | **{ratio['normal']:.2f}x** | |")
        print(f"| AI.SCORE PRIORITY LOW (no online traffic) | {rate(n, m['low'])} | **{ratio['low']:.2f}x** | |")
        print(f"| AI.SCORE NORMAL over 100,000 keys | {rate(100000, m['py100k'])} | | **{vs_py:.1f}x** |")
        print(f"| Python client (SCAN, HMGET x256 pipelined, onnxruntime, HSET x256), 100,000 keys | {rate(100000, m['python'])} | | 1.0x |")
        print(f"| locus-score --inprocess on a {n:,}-row CSV (txn30.onnx, batch 1024) | {rate(n, m['score_csv'])} | **{csv_ratio:.2f}x** (against in-process ORT on txn30, {rate(n, m['inproc30'])} rows/s) | |")
        print(f"| locus-score --inprocess on a {n:,}-row Parquet file (the same) | {rate(n, m['score_parquet'])} | **{parquet_ratio:.2f}x** | |")
        print()
        print(f"Server memory while a job runs (growth of its RSS over the loaded dataset): {m['py100k_rss'] / 1024:.0f} MiB "
              f"for a 100,000-key job, {m['normal_rss'] / 1024:.0f} MiB for the {n:,}-key job (NORMAL: batches read by "
              f"{os.cpu_count()} threads), {m['low_rss'] / 1024:.0f} MiB for LOW.\n")
        print(f"Commands: `benches/compare.py --sections scoring --score-rows {n} --rounds {args.rounds}`; "
              "AI.SCORE … HASH FIELDS 30 f0 … f29 CONST 1 ref OUTPUT FIELD score INDEX 1; medians of per-round ratios.\n")
    finally:
        srv.terminate()
        srv.wait()


def settle():
    """Lets the disk catch up (the durability section writes gigabytes that the kernel flushes
    for a while after) and the machine calm down, so one section's tail does not weigh on the
    next section's figures."""
    os.sync()
    time.sleep(3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sections", default="resp,durability,tensors,memory,models,dag,lifecycle,routers,observability,scoring,v2,metrics,acl,tls,explain,datatypes,import,module")
    ap.add_argument("--score-rows", type=int, default=1_000_000, help="hashes the scoring section scores")
    ap.add_argument("--module-score-rows", type=int, default=200_000,
                    help="hashes the module section scores on both hosts")
    ap.add_argument("--no-metrics", help="a locus-server built with --no-default-features, for the metrics section")
    ap.add_argument("--baseline", help="an earlier locus-server for the lifecycle section's before/after ratios")
    args = ap.parse_args()
    sections = args.sections.split(",")
    print("# Benchmarks\n")
    print(f"Generated by `benches/compare.py --rounds {args.rounds}` on {time.strftime('%Y-%m-%d')}: "
          f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()} {platform.release()}, "
          f"{subprocess.run(['redis-server', '--version'], capture_output=True, text=True).stdout.split()[2]}. "
          "Every figure is a ratio against a reference measured in the same run; absolute numbers follow. "
          "The machine is shared, so absolute numbers vary between runs.\n")
    if "resp" in sections:
        section_resp(args)
        settle()
    if "durability" in sections:
        section_durability(args)
        settle()
    tmp = tempfile.mkdtemp(prefix="locus-bench-")
    rport, lport = free_port(), free_port()
    redis = start(["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no", "--dir", tmp], rport)
    locus = start([LOCUS, "--port", str(lport), "--dir", tmp, "--http-port", "0", "--grpc-port", "0"], lport)
    try:
        time.sleep(1)
        if "tensors" in sections:
            section_tensors(args, rport, lport)
        if "memory" in sections:
            section_memory(args, rport, lport)
        if "models" in sections:
            settle()
            section_models(args, rport, lport)
        if "dag" in sections:
            settle()
            section_dag(args, rport, lport)
        if "lifecycle" in sections:
            settle()
            section_lifecycle(args, rport, lport)
        if "routers" in sections:
            settle()
            section_routers(args)
        if "observability" in sections:
            settle()
            section_observability(args)
        if "scoring" in sections:
            settle()
            section_scoring(args)
        if "v2" in sections:
            settle()
            section_v2(args)
        if "metrics" in sections:
            settle()
            section_metrics(args)
        if "acl" in sections:
            settle()
            section_acl(args)
        if "explain" in sections:
            settle()
            section_explain(args)
        if "datatypes" in sections:
            settle()
            section_datatypes(args)
        if "tls" in sections:
            settle()
            section_tls(args)
        if "import" in sections:
            settle()
            section_import(args)
        if "module" in sections:
            settle()
            section_module(args)
    finally:
        for p in (redis, locus):
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
