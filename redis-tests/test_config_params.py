"""Every Redis 7.0 configuration parameter, aliases included, against a stock redis-server:
CONFIG GET * names the same parameters, each default reads back as Redis's where Locus
follows it, CONFIG SET of an alias changes the parameter, several pairs are set all or
nothing, immutable ones are refused with Redis's text; WAIT answers as Redis does without
replicas; RESP framing errors have Redis's words."""

import socket
import time

import pytest
import redis

from conftest import same

# Parameters whose defaults are Locus's own (ports, files, threads, limits it sets
# differently on purpose); their names must still be there.
OWN_DEFAULTS = {
    "port", "dir", "dbfilename", "appendfilename", "io-threads", "save", "bind",
    "maxmemory-policy", "hz", "databases", "logfile", "pidfile", "protected-mode",
    "client-output-buffer-limit", "proto-max-bulk-len", "oom-score-adj-values",
    "appendonly", "aclfile", "tcp-backlog", "daemonize", "supervised", "unixsocket",
    "maxclients", "enable-debug-command", "enable-module-command", "enable-protected-configs",
    "busy-reply-threshold", "lua-time-limit", "timeout", "tcp-keepalive", "loglevel",
    "server_cpulist", "bio_cpulist", "aof_rewrite_cpulist", "bgsave_cpulist",
}


def config_map(c):
    return c.config_get("*")


def test_every_redis_parameter_is_known(ref_servers):
    locus = redis.Redis(port=ref_servers[0], decode_responses=True)
    ref = redis.Redis(port=ref_servers[1], decode_responses=True)
    mine, theirs = config_map(locus), config_map(ref)
    missing = sorted(set(theirs) - set(mine))
    assert not missing, missing
    differ = {k: (mine[k], v) for k, v in theirs.items()
              if k not in OWN_DEFAULTS and mine[k] != v}
    assert not differ, differ


def test_aliases_and_atomic_multi_set(ref_pair):
    pair = ref_pair
    for args in [("CONFIG", "SET", "zset-max-ziplist-entries", "64"),
                 ("CONFIG", "GET", "zset-max-listpack-entries"),
                 ("CONFIG", "GET", "zset-max-ziplist-entries"),
                 ("CONFIG", "SET", "hash-max-listpack-entries", "100", "list-compress-depth", "1"),
                 ("CONFIG", "GET", "list-compress-depth"),
                 ("CONFIG", "SET", "hash-max-listpack-entries", "7", "nosuch", "1"),
                 ("CONFIG", "GET", "hash-max-listpack-entries"),
                 ("CONFIG", "SET", "set-max-intset-entries", "abc"),
                 ("CONFIG", "SET", "active-expire-effort", "11"),
                 ("CONFIG", "SET", "daemonize", "yes"),
                 ("CONFIG", "SET", "slave-read-only", "no"),
                 ("CONFIG", "GET", "replica-read-only"),
                 ("CONFIG", "SET", "oom-score-adj", "maybe"),
                 ("CONFIG", "SET", "zset-max-listpack-entries", "128", "hash-max-listpack-entries", "512",
                  "list-compress-depth", "0", "replica-read-only", "yes")]:
        same(pair, *args)


def test_wait_without_replicas(ref_pair):
    pair = ref_pair
    for args in [("WAIT", 0, 0), ("WAIT", 0, 100), ("WAIT", "x", 0), ("WAIT", 0, -1),
                 ("WAIT", 0, "y")]:
        same(pair, *args)
    for c in pair:
        t = time.time()
        assert c.execute_command("WAIT", 1, 200) == 0
        assert 0.15 < time.time() - t < 2


def raw(port, data):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(data)
    s.settimeout(1)
    out = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    s.close()
    return out


@pytest.mark.parametrize("data", [b"*-5\r\n*1\r\n$4\r\nPING\r\n", b"*1\r\n$-5\r\n",
                                  b"*3000000000\r\n", b"*1\r\n$abc\r\n", b"*abc\r\n",
                                  b"*0\r\n*1\r\n$4\r\nPING\r\n"])
def test_framing_errors_are_worded_as_redis_words_them(ref_servers, data):
    assert raw(ref_servers[0], data) == raw(ref_servers[1], data)


def test_object_encoding_follows_the_thresholds_as_redis_does(ref_pair):
    """OBJECT ENCODING of fresh values answers what Redis 7.0 answers under the configured
    thresholds (lists are quicklists, sets intsets or hash tables, small hashes and sorted sets
    listpacks)."""
    pair = ref_pair
    for c in pair:
        c.config_set("hash-max-listpack-entries", 4)
        c.config_set("zset-max-ziplist-value", 8)
        c.config_set("set-max-intset-entries", 3)
    try:
        cmds = [("RPUSH", "l", "a"), ("SADD", "s1", 1, 2, 3), ("SADD", "s2", 1, 2, 3, 4),
                ("SADD", "s3", "a"), ("HSET", "h1", "a", 1), ("HSET", "h2", *range(10)),
                ("ZADD", "z1", 1, "short"), ("ZADD", "z2", 1, "x" * 9), ("SET", "n", 12),
                ("SET", "e", "x" * 44), ("SET", "r", "x" * 45)]
        for cmd in cmds:
            same(pair, *cmd)
            same(pair, "OBJECT", "ENCODING", cmd[1])
    finally:
        for c in pair:
            c.config_set("hash-max-listpack-entries", 128)
            c.config_set("zset-max-listpack-value", 64)
            c.config_set("set-max-intset-entries", 512)
