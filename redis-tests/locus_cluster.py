"""Placing models and features on Redis Cluster with the Locus module (the recipe README's
"Scaling out" describes, as Python helpers over redis-py's RedisCluster).

A model run reads its model and its tensors on one shard, so they share a hash tag: the model
is stored once per tag (`{shard0}fraud`, `{shard1}fraud`, …) and each feature key carries the
tag of the model copy that scores it (`{shard0}tx:42`). One tag per master spreads the work
over every master; more tags per master (any tag works) let Redis move them between masters
when the cluster is resharded.
"""

import redis


def tags_for_masters(rc, prefix="shard"):
    """One hash tag per master: `{shardN}`, with N chosen so that each master serves one of
    the tags' slots."""
    primaries = {node.name for node in rc.get_primaries()}
    chosen = {}
    n = 0
    while len(chosen) < len(primaries):
        tag = "{%s%d}" % (prefix, n)
        n += 1
        owner = rc.get_node_from_key(tag).name
        chosen.setdefault(owner, tag)
    return [chosen[name] for name in sorted(chosen)]


def deploy_model(rc, name, blob, tags, *options):
    """Stores the model once under each tag (`{tag}name`); returns the keys."""
    keys = []
    for tag in tags:
        key = tag + name
        reply = rc.execute_command("AI.MODELSTORE", key, "ONNX", "CPU", *options, "BLOB", blob)
        assert reply in (b"OK", "OK", True), reply
        keys.append(key)
    return keys


def cluster_client(port, **kw):
    kw.setdefault("decode_responses", False)
    return redis.RedisCluster(host="127.0.0.1", port=port, **kw)
