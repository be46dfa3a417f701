"""Locus on Redis Cluster: six stock redis-server processes with the module (three masters,
three replicas, made with `redis-cli --cluster create`), the fraud model stored once per
shard under a hash tag, features written across every shard, scored with DAGs whose keys
share a tag and compared with ONNX Runtime in-process; cross-slot calls refused with where
each key lives; and a master killed with SIGKILL while clients score, its replica promoted
and scoring resumed there with the same model and every acknowledged tensor."""

import os
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest
import redis

from locus_cluster import cluster_client, deploy_model, tags_for_masters
from module_server import ModuleServer

ort = pytest.importorskip("onnxruntime")

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
FRAUD = os.path.join(MODELS, "fraud.onnx")


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def cluster():
    if not shutil.which("redis-cli"):
        pytest.fail("redis-cli is needed to create the cluster")
    nodes = [ModuleServer(cluster=True) for _ in range(6)]
    try:
        out = subprocess.run(
            ["redis-cli", "--cluster", "create",
             *[f"127.0.0.1:{n.port}" for n in nodes],
             "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        for n in nodes:
            wait_for(lambda n=n: n.client().cluster("info")["cluster_state"] == "ok", 30,
                     f"cluster_state ok on {n.port}")
        # Every replica has finished its first sync, so WAIT in the tests measures only the
        # writes they make.
        for n in nodes:
            wait_for(lambda n=n: n.client().info("replication")["role"] == "master"
                     or n.client().info("replication")["master_link_status"] == "up", 30,
                     f"the replica on {n.port} to finish its first sync")
        yield nodes
    finally:
        for n in nodes:
            n.stop()


def features(rng, n):
    tx = rng.standard_normal((n, 30)).astype(np.float32)
    ref = rng.standard_normal((1, 256)).astype(np.float32)
    return tx, ref


def put(rc, key, array):
    rc.execute_command("AI.TENSORSET", key, "FLOAT", *array.shape, "BLOB", array.tobytes())


def get(rc, key):
    meta = rc.execute_command("AI.TENSORGET", key, "META", "BLOB")
    d = dict(zip(meta[::2], meta[1::2]))
    return np.frombuffer(d[b"blob"], np.float32).reshape(d[b"shape"])


def score(rc, tag, j):
    return rc.execute_command(
        "AI.DAGEXECUTE", "LOAD", 2, f"{tag}tx:{j}", f"{tag}ref", "PERSIST", 1,
        f"{tag}score:{j}", "|>",
        "AI.MODELEXECUTE", f"{tag}fraud", "INPUTS", 2, f"{tag}tx:{j}", f"{tag}ref",
        "OUTPUTS", 1, f"{tag}score:{j}")


def test_scoring_across_shards_matches_onnxruntime(cluster):
    rc = cluster_client(cluster[0].port)
    tags = tags_for_masters(rc)
    assert len(tags) == 3
    masters_of_tags = {rc.get_node_from_key(t).port for t in tags}
    assert len(masters_of_tags) == 3, "one tag on each master"
    with open(FRAUD, "rb") as f:
        deploy_model(rc, "fraud", f.read(), tags)
    sess = ort.InferenceSession(FRAUD)
    rng = np.random.default_rng(5)
    refs = {}
    rows = {}
    for tag in tags:
        tx, ref = features(rng, 40)
        refs[tag] = ref
        put(rc, f"{tag}ref", ref)
        for j in range(40):
            rows[(tag, j)] = tx[j:j + 1]
            put(rc, f"{tag}tx:{j}", tx[j:j + 1])
    # Every master holds its share of the keys.
    for node in rc.get_primaries():
        assert rc.execute_command("DBSIZE", target_nodes=node) >= 41
    for (tag, j), tx in rows.items():
        assert score(rc, tag, j) == [b"OK"]
        want = sess.run(None, {"transaction": tx, "reference": refs[tag]})[0]
        np.testing.assert_allclose(get(rc, f"{tag}score:{j}"), want, rtol=1e-5, atol=1e-6)
    # A plain run on one shard too.
    tag = tags[1]
    assert rc.execute_command("AI.MODELEXECUTE", f"{tag}fraud", "INPUTS", 2, f"{tag}tx:0",
                              f"{tag}ref", "OUTPUTS", 1, f"{tag}direct") == b"OK"
    np.testing.assert_allclose(get(rc, f"{tag}direct"), get(rc, f"{tag}score:0"))


def test_cross_slot_calls_say_where_keys_live(cluster):
    rc = cluster_client(cluster[0].port)
    a, b = "{shardA}x", "{shardB}y"
    assert rc.keyslot(a) != rc.keyslot(b)
    node = rc.get_node_from_key(a)
    direct = redis.Redis(port=node.port)
    with pytest.raises(redis.ResponseError) as e:
        direct.execute_command("AI.MODELEXECUTE", a, "INPUTS", 1, b, "OUTPUTS", 1, a)
    text = str(e.value)
    assert text.startswith("CROSSSLOT Keys in request don't hash to the same slot")
    assert f"'{a}' is in slot {rc.keyslot(a)}" in text
    assert f"'{b}' is in slot {rc.keyslot(b)}" in text
    with pytest.raises(redis.ResponseError) as e:
        direct.execute_command("AI.DAGEXECUTE", "LOAD", 1, b, "|>", "AI.MODELEXECUTE", a,
                               "INPUTS", 1, b, "OUTPUTS", 1, a)
    assert f"'{b}' is in slot {rc.keyslot(b)}" in str(e.value)
    with pytest.raises(redis.ResponseError) as e:
        direct.execute_command("AI.DAGEXECUTE_RO", "LOAD", 2, a, b, "|>", "AI.TENSORGET", a,
                               "META")
    assert str(e.value).startswith("CROSSSLOT")
    # Other multi-key calls get Redis's own refusal, before the module sees them.
    with pytest.raises(redis.ResponseError) as e:
        direct.execute_command("AI.TENSORSTACK", a, b)
    assert str(e.value) == "CROSSSLOT Keys in request don't hash to the same slot"


def test_request_logs_and_monitors_live_beside_their_model(cluster):
    """AI.LOG and AI.MONITOR on one shard: the log stream and the baselines are keys of the
    model's slot (Redis refuses others with CROSSSLOT), entries land in the shard's stream and
    reach its replica, and the monitor sees the shard's runs."""
    rc = cluster_client(cluster[0].port)
    tag = tags_for_masters(rc, prefix="obs")[0]
    with open(FRAUD, "rb") as f:
        (model,) = deploy_model(rc, "fraud", f.read(), [tag])
    node = rc.get_node_from_key(model)
    direct = redis.Redis(port=node.port)
    elsewhere = "{elsewhere}log"
    assert rc.keyslot(elsewhere) != rc.keyslot(model)
    with pytest.raises(redis.ResponseError) as e:
        direct.execute_command("AI.LOG", "SET", model, "STREAM", elsewhere)
    assert str(e.value).startswith("CROSSSLOT")
    assert rc.execute_command("AI.LOG", "SET", model, "STREAM", f"{tag}log",
                              "PAYLOAD", "DIGEST") == b"OK"
    rng = np.random.default_rng(9)
    put(rc, f"{tag}base", rng.standard_normal((200, 30)).astype(np.float32))
    with pytest.raises(redis.ResponseError) as e:
        direct.execute_command("AI.MONITOR", "SET", model, "BASELINE", "{elsewhere}base")
    assert str(e.value).startswith("CROSSSLOT")
    assert rc.execute_command("AI.MONITOR", "SET", model, "BASELINE", f"{tag}base",
                              "WINDOW", 10, "EVERY", 10) == b"OK"
    tx, ref = features(rng, 3)
    put(rc, f"{tag}ref", ref)
    for j in range(3):
        put(rc, f"{tag}tx:{j}", tx[j:j + 1])
        assert score(rc, tag, j) == [b"OK"]
    entries = rc.xrange(f"{tag}log")
    assert len(entries) == 3
    fields = entries[0][1]
    assert fields[b"key"] == model.encode() and fields[b"outcome"] == b"ok"
    assert fields[b"inputs"] == f"{tag}tx:0,{tag}ref".encode()
    mon = dict(zip(*[iter(rc.execute_command("AI.MONITOR", "GET", model))] * 2))
    assert int(mon[b"rows_seen"]) == 3
    # The entries reach the shard's replica as they are, ids included.
    replicas = direct.execute_command("ROLE")[2]
    assert replicas, "the shard has a replica"
    replica = redis.Redis(port=int(replicas[0][1]), single_connection_client=True)
    replica.execute_command("READONLY")
    wait_for(lambda: replica.xlen(f"{tag}log") == 3, 30, "the log entries on the replica")
    assert replica.xrange(f"{tag}log") == entries


def test_failover_keeps_scoring(cluster):
    rc = cluster_client(cluster[0].port)
    tags = tags_for_masters(rc, prefix="fo")
    with open(FRAUD, "rb") as f:
        deploy_model(rc, "fraud", f.read(), tags)
    rng = np.random.default_rng(9)
    for tag in tags:
        tx, ref = features(rng, 20)
        put(rc, f"{tag}ref", ref)
        for j in range(20):
            put(rc, f"{tag}tx:{j}", tx[j:j + 1])
    # Acknowledged by a replica: these survive the failover (Redis's replication is
    # asynchronous; WAIT is how a writer knows a write reached a replica).
    for tag in tags:
        node = rc.get_node_from_key(tag)
        assert rc.execute_command("WAIT", 1, 5000, target_nodes=node) >= 1
    victim_tag = tags[0]
    victim_port = rc.get_node_from_key(victim_tag).port
    victim = next(n for n in cluster if n.port == victim_port)

    errors, ok = [], {t: 0 for t in tags}
    stop = threading.Event()

    def client_loop():
        port = cluster[1].port if cluster[1] is not victim else cluster[2].port
        c = cluster_client(port)
        j, failures = 0, 0
        while not stop.is_set():
            tag = tags[j % len(tags)]
            try:
                if score(c, tag, j % 20) == [b"OK"]:
                    ok[tag] += 1
                failures = 0
            except Exception as e:  # redis-py's cluster errors are not all RedisErrors
                errors.append(repr(e))
                failures += 1
                time.sleep(0.05)
                if failures % 5 == 0:
                    # A fresh client reads the cluster's new layout.
                    try:
                        c = cluster_client(next(n.port for n in cluster
                                                if n is not victim and n.alive()))
                    except Exception as e2:
                        errors.append(repr(e2))
            j += 1

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        before = dict(ok)
        victim.kill()
        survivors = [n for n in cluster if n is not victim]

        def promoted():
            return all(n.client().cluster("info")["cluster_state"] == "ok" for n in survivors)

        wait_for(promoted, 30, "the cluster to recover")
        resumed_from = ok[victim_tag]
        try:
            wait_for(lambda: ok[victim_tag] > resumed_from + 5, 30,
                     "scoring on the failed-over shard")
        except AssertionError as e:
            raise AssertionError(f"{e}; the clients' last errors: {errors[-5:]}") from None
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert all(ok[t] > before[t] for t in tags)
    rc = cluster_client(survivors[0].port)
    new_master = rc.get_node_from_key(victim_tag)
    assert new_master.port != victim_port
    # The same model (its version list came over with replication) and every tensor.
    versions = rc.execute_command("AI.MODELVERSIONS", f"{victim_tag}fraud")
    assert len(versions) == 1
    for j in range(20):
        assert rc.exists(f"{victim_tag}tx:{j}") == 1
    assert rc.exists(f"{victim_tag}ref") == 1


TXN30 = os.path.join(MODELS, "txn30.onnx")
FIELDS = [f"f{j}" for j in range(30)]


def job_of(node, name):
    reply = node.client().execute_command("AI.JOB", "GET", name)
    if isinstance(reply, dict):
        return {k.decode(): v for k, v in reply.items()}
    return {k.decode(): v for k, v in zip(reply[::2], reply[1::2])}


def test_batch_jobs_score_each_shard_and_resume_after_failover(cluster):
    """AI.SCORE on every master scores that master's keys; a master killed mid-job has its
    replica resume the job from the last checkpoint it received, and every key gets scored."""
    rc = cluster_client(next(n.port for n in cluster if n.alive()))
    tags = tags_for_masters(rc, prefix="job")
    with open(TXN30, "rb") as f:
        deploy_model(rc, "m", f.read(), tags)
    # The victim: a master with a replica still attached (an earlier test failed one over).
    by_port = {n.port: n for n in cluster if n.alive()}
    victim_tag = next(t for t in tags
                      if by_port[rc.get_node_from_key(t).port].client()
                      .info("replication")["connected_slaves"] >= 1)
    victim = by_port[rc.get_node_from_key(victim_tag).port]
    rng = np.random.default_rng(21)
    X = rng.standard_normal((2600, 30)).astype(np.float32)
    keys = [f"row:{i}" for i in range(600)] + [f"{victim_tag}row:{i}" for i in range(2000)]
    p = rc.pipeline(transaction=False)
    for key, row in zip(keys, X):
        p.hset(key, mapping={f: repr(float(v)) for f, v in zip(FIELDS, row)})
    p.execute()
    # One job per master, each over that master's keys; the victim's job scores a row per
    # batch, slow enough to be caught midway.
    for tag in tags:
        node = by_port[rc.get_node_from_key(tag).port]
        batch = 1 if node is victim else 64
        assert node.client().execute_command(
            "AI.SCORE", "j", "MODEL", f"{tag}m", "MATCH", "*row:*", "HASH", "FIELDS", 30, *FIELDS,
            "OUTPUT", "FIELD", "p", "BATCH", batch) == b"OK"
    deadline = time.time() + 30
    while job_of(victim, "j")["rows_scored"] < 100 and time.time() < deadline:
        time.sleep(0.001)
    at_kill = job_of(victim, "j")
    victim.kill()
    assert at_kill["state"] == b"running" and at_kill["rows_scored"] < 2000, at_kill
    survivors = [n for n in cluster if n.alive()]

    def failed_over():
        owner = cluster_client(survivors[0].port).get_node_from_key(victim_tag).port
        return owner != victim.port and all(
            n.client().cluster("info")["cluster_state"] == "ok" for n in survivors)

    wait_for(failed_over, 30, "the victim's replica to take over")
    rc = cluster_client(survivors[0].port)

    def done_everywhere():
        return all(job_of(by_port[rc.get_node_from_key(t).port], "j")["state"] == b"done"
                   for t in tags)

    wait_for(done_everywhere, 60, "every shard's job to finish")
    # Each master scored its own keys; together, every key once, as onnxruntime would.
    counts = [job_of(by_port[rc.get_node_from_key(t).port], "j")["keys_scanned"] for t in tags]
    assert sum(counts) == len(keys), counts
    sess = ort.InferenceSession(TXN30)
    want = sess.run(None, {"transaction": X})[0][:, 0]
    p = rc.pipeline(transaction=False)
    for key in keys:
        p.hget(key, "p")
    got = np.array([float(v) for v in p.execute()], dtype=np.float32)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
