#!/usr/bin/env python3
"""Generate commands/*.json command specs from a real Redis server.

Starts a throw-away `redis-server` on a free loopback port, asks it
`COMMAND INFO` and `COMMAND DOCS` for every command Locus implements (the
WANTED table below), and writes one JSON file per command / subcommand into
commands/ in the shape of Redis 7's own src/commands/*.json files:

    {
        "SET": {
            "summary": ..., "complexity": ..., "group": ..., "since": ...,
            "arity": ..., ["container": ...,] "function": "strings::set",
            "history": [...], "deprecated_since": ..., "replaced_by": ...,
            "doc_flags": [...], "command_flags": [...], "acl_categories": [...],
            "command_tips": [...], "key_specs": [...], "arguments": [...]
        }
    }

Conversions from the wire replies to the JSON file shape (as Redis's own
utils/generate-command-code.py expects them):
  * command flags, doc flags, command tips and key-spec flags are upper-cased;
    the computed "movablekeys" flag is dropped (Redis derives it from key specs).
  * ACL categories lose their '@' and are upper-cased; categories that Redis
    adds implicitly from the command flags (setImplicitACLCategories():
    WRITE, READ, ADMIN+DANGEROUS, PUBSUB, FAST, BLOCKING, SLOW) are dropped,
    exactly as the JSON files omit them.  A consumer must re-add them.
  * key specs: {"type":"index","spec":{"index":1}} -> {"index":{"pos":1}},
    range/keynum "keystep" -> "step", unknown -> {"unknown": null}.
  * arguments: "display_text" -> "display", the flags list becomes booleans
    "optional"/"multiple"/"multiple_token".
  * empty lists are omitted, as in Redis's files.

Commands missing from the installed Redis (e.g. CLIENT SETINFO, new in 7.2,
when run against 7.0) are taken from the hand-written FALLBACK table.

Usage:  python3 scripts/gen_command_specs.py [--redis-server PATH] [--out DIR]
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import redis

# group -> Locus handler module
MODULE_BY_GROUP = {
    "string": "strings",
    "generic": "keys",
    "connection": "connection",
    "server": "server",
    "hash": "hashes",
    "list": "lists",
    "set": "sets",
    "transactions": "transactions",
    "pubsub": "pubsub",
    "sorted_set": "zsets",
    "sorted-set": "zsets",
    "stream": "streams",
    "scripting": "scripting",
}

# command -> list of subcommands ([] for plain commands)
WANTED = {
    # connection
    "PING": [], "ECHO": [], "QUIT": [], "HELLO": [], "AUTH": [], "SELECT": [],
    "RESET": [],
    "CLIENT": ["ID", "SETNAME", "GETNAME", "LIST", "INFO", "KILL", "SETINFO",
               "NO-EVICT", "REPLY", "HELP"],
    # string
    "GET": [], "SET": [], "SETNX": [], "SETEX": [], "PSETEX": [], "MGET": [],
    "MSET": [], "MSETNX": [], "GETSET": [], "GETDEL": [], "GETEX": [],
    "APPEND": [], "STRLEN": [], "GETRANGE": [], "SETRANGE": [], "INCR": [],
    "INCRBY": [], "INCRBYFLOAT": [], "DECR": [], "DECRBY": [],
    # generic
    "DEL": [], "UNLINK": [], "EXISTS": [], "TYPE": [], "EXPIRE": [],
    "PEXPIRE": [], "EXPIREAT": [], "PEXPIREAT": [], "EXPIRETIME": [],
    "PEXPIRETIME": [], "TTL": [], "PTTL": [], "PERSIST": [], "KEYS": [],
    "SCAN": [], "RANDOMKEY": [], "RENAME": [], "RENAMENX": [], "COPY": [],
    "MOVE": [], "TOUCH": [], "SORT": [], "SORT_RO": [],
    "OBJECT": ["ENCODING", "REFCOUNT", "IDLETIME", "FREQ", "HELP"],
    # server
    "DBSIZE": [], "FLUSHDB": [], "FLUSHALL": [], "INFO": [], "TIME": [],
    "SHUTDOWN": [], "MONITOR": [], "LASTSAVE": [], "SAVE": [], "BGSAVE": [],
    "BGREWRITEAOF": [],
    "SLOWLOG": ["GET", "LEN", "RESET", "HELP"],
    "LATENCY": ["DOCTOR", "LATEST", "HISTORY", "RESET", "HELP"],
    "CONFIG": ["GET", "SET", "RESETSTAT", "REWRITE", "HELP"],
    "COMMAND": ["COUNT", "INFO", "DOCS", "LIST", "GETKEYS", "HELP"],
    "MEMORY": ["USAGE", "HELP"],
    # hash
    "HSET": [], "HSETNX": [], "HGET": [], "HMGET": [], "HMSET": [], "HGETALL": [],
    "HDEL": [], "HEXISTS": [], "HLEN": [], "HKEYS": [], "HVALS": [], "HINCRBY": [],
    "HINCRBYFLOAT": [], "HSTRLEN": [], "HRANDFIELD": [], "HSCAN": [],
    # list (the blocking ones come with blocking support)
    "LPUSH": [], "RPUSH": [], "LPUSHX": [], "RPUSHX": [], "LPOP": [], "RPOP": [],
    "LLEN": [], "LRANGE": [], "LINDEX": [], "LSET": [], "LREM": [], "LTRIM": [],
    "LINSERT": [], "LPOS": [], "LMOVE": [], "LMPOP": [],
    "BLPOP": [], "BRPOP": [], "BLMOVE": [], "BLMPOP": [],
    "RPOPLPUSH": [], "BRPOPLPUSH": [],
    # set
    "SADD": [], "SREM": [], "SMEMBERS": [], "SISMEMBER": [], "SMISMEMBER": [], "SCARD": [],
    "SPOP": [], "SRANDMEMBER": [], "SMOVE": [], "SINTER": [], "SINTERCARD": [], "SUNION": [],
    "SDIFF": [], "SINTERSTORE": [], "SUNIONSTORE": [], "SDIFFSTORE": [], "SSCAN": [],
    # sorted set
    "ZADD": [], "ZREM": [], "ZSCORE": [], "ZMSCORE": [], "ZINCRBY": [], "ZCARD": [],
    "ZCOUNT": [], "ZLEXCOUNT": [], "ZRANGE": [], "ZRANGEBYSCORE": [], "ZREVRANGEBYSCORE": [],
    "ZRANGEBYLEX": [], "ZREVRANGEBYLEX": [], "ZREVRANGE": [], "ZRANK": [], "ZREVRANK": [],
    "ZPOPMIN": [], "ZPOPMAX": [], "ZMPOP": [], "BZPOPMIN": [], "BZPOPMAX": [],
    "ZRANGESTORE": [], "ZREMRANGEBYSCORE": [], "ZREMRANGEBYRANK": [], "ZREMRANGEBYLEX": [],
    "ZUNIONSTORE": [], "ZINTERSTORE": [], "ZSCAN": [],
    # stream
    "XADD": [], "XLEN": [], "XRANGE": [], "XREVRANGE": [], "XREAD": [], "XDEL": [],
    "XTRIM": [], "XREADGROUP": [], "XACK": [], "XPENDING": [], "XCLAIM": [],
    "XAUTOCLAIM": [],
    "XINFO": ["STREAM", "GROUPS", "CONSUMERS", "HELP"],
    "XGROUP": ["CREATE", "DESTROY", "SETID", "CREATECONSUMER", "DELCONSUMER", "HELP"],
    # pub/sub
    "SUBSCRIBE": [], "UNSUBSCRIBE": [], "PSUBSCRIBE": [], "PUNSUBSCRIBE": [],
    "PUBLISH": [], "PUBSUB": ["CHANNELS", "NUMSUB", "NUMPAT", "HELP"],
    # transactions
    "MULTI": [], "EXEC": [], "DISCARD": [], "WATCH": [], "UNWATCH": [],
    # scripting
    "EVAL": [], "EVALSHA": [], "EVAL_RO": [], "EVALSHA_RO": [],
    "SCRIPT": ["LOAD", "EXISTS", "FLUSH", "KILL", "HELP"],
    "FCALL": [], "FCALL_RO": [],
    "FUNCTION": ["LOAD", "DELETE", "LIST", "FLUSH", "DUMP", "RESTORE", "STATS", "KILL",
                 "HELP"],
}

# Hand-written specs (already in JSON-file shape, minus "function") for
# commands the installed redis-server may not know.  Used only when the
# server reports nothing for the command.
FALLBACK = {
    "client|setinfo": {
        "summary": "Sets information specific to the client or connection.",
        "complexity": "O(1)",
        "group": "connection",
        "since": "7.2.0",
        "arity": 4,
        "container": "CLIENT",
        "command_flags": ["NOSCRIPT", "LOADING", "STALE"],
        "acl_categories": ["CONNECTION"],
        "arguments": [
            {
                "name": "attr",
                "type": "oneof",
                "arguments": [
                    {"name": "libname", "type": "string", "token": "LIB-NAME"},
                    {"name": "libver", "type": "string", "token": "LIB-VER"},
                ],
            }
        ],
    },
    "client|no-evict": {
        "summary": "Set client eviction mode for the current connection",
        "complexity": "O(1)",
        "group": "connection",
        "since": "7.0.0",
        "arity": 3,
        "container": "CLIENT",
        "command_flags": ["ADMIN", "NOSCRIPT", "LOADING", "STALE"],
        "acl_categories": ["CONNECTION"],
        "arguments": [
            {
                "name": "enabled",
                "type": "oneof",
                "arguments": [
                    {"name": "on", "type": "pure-token", "token": "ON"},
                    {"name": "off", "type": "pure-token", "token": "OFF"},
                ],
            }
        ],
    },
}

FIELD_ORDER = [
    "summary", "complexity", "group", "since", "arity", "container",
    "function", "history", "deprecated_since", "replaced_by", "doc_flags",
    "command_flags", "acl_categories", "command_tips", "key_specs",
    "arguments",
]

ARG_FIELD_ORDER = [
    "name", "type", "key_spec_index", "token", "display", "optional",
    "multiple", "multiple_token", "since", "deprecated_since", "summary",
    "arguments",
]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary, workdir):
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--http-port", "0", "--grpc-port", "0",
         "--appendonly", "no", "--daemonize", "no", "--dir", workdir,
         "--logfile", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while True:
        try:
            conn = redis.Connection(host="127.0.0.1", port=port, protocol=3,
                                    decode_responses=True)
            conn.connect()
            conn.send_command("PING")
            conn.read_response()
            return proc, conn
        except (redis.ConnectionError, OSError):
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise SystemExit("could not start %s" % binary)
            time.sleep(0.1)


def query(conn, *args):
    # A bare Connection applies no redis-py response callbacks: raw RESP3.
    conn.send_command(*args)
    return conn.read_response()


# Commands whose handlers live in a file of their own rather than their group's.
MODULE_BY_COMMAND = {"SORT": "sort", "SORT_RO": "sort"}


def handler_function(group, cmd, sub):
    module = MODULE_BY_COMMAND.get(cmd.upper(), MODULE_BY_GROUP[group])
    name = cmd if sub is None else cmd + "_" + sub
    return "%s::%s" % (module, name.lower().replace("-", "_").replace(" ", "_"))


def convert_flags(flags):
    return [f.upper() for f in flags if f != "movablekeys"]


def convert_acl(categories, flags):
    flags = set(flags)
    cats = [c.lstrip("@").upper() for c in categories]
    implicit = set()
    if "write" in flags:
        implicit.add("WRITE")
    if "readonly" in flags and "SCRIPTING" not in cats:
        implicit.add("READ")
    if "admin" in flags:
        implicit.update(("ADMIN", "DANGEROUS"))
    if "pubsub" in flags:
        implicit.add("PUBSUB")
    if "fast" in flags:
        implicit.add("FAST")
    if "blocking" in flags:
        implicit.add("BLOCKING")
    if "FAST" not in cats:
        implicit.add("SLOW")
    return [c for c in cats if c not in implicit]


def convert_key_spec(ks):
    out = {}
    if "notes" in ks:
        out["notes"] = ks["notes"]
    out["flags"] = [f.upper() for f in ks["flags"]]

    bs = ks["begin_search"]
    if bs["type"] == "index":
        out["begin_search"] = {"index": {"pos": bs["spec"]["index"]}}
    elif bs["type"] == "keyword":
        out["begin_search"] = {"keyword": {
            "keyword": bs["spec"]["keyword"],
            "startfrom": bs["spec"]["startfrom"]}}
    elif bs["type"] == "unknown":
        out["begin_search"] = {"unknown": None}
    else:
        raise ValueError("begin_search type %r" % bs["type"])

    fk = ks["find_keys"]
    if fk["type"] == "range":
        out["find_keys"] = {"range": {
            "lastkey": fk["spec"]["lastkey"],
            "step": fk["spec"]["keystep"],
            "limit": fk["spec"]["limit"]}}
    elif fk["type"] == "keynum":
        out["find_keys"] = {"keynum": {
            "keynumidx": fk["spec"]["keynumidx"],
            "firstkey": fk["spec"]["firstkey"],
            "step": fk["spec"]["keystep"]}}
    elif fk["type"] == "unknown":
        out["find_keys"] = {"unknown": None}
    else:
        raise ValueError("find_keys type %r" % fk["type"])

    extra = set(ks) - {"notes", "flags", "begin_search", "find_keys"}
    if extra:
        raise ValueError("unexpected key spec fields %r" % extra)
    return out


def convert_arg(arg):
    out = {}
    for k, v in arg.items():
        if k == "display_text":
            out["display"] = v
        elif k == "flags":
            for f in v:
                if f not in ("optional", "multiple", "multiple_token"):
                    raise ValueError("unexpected argument flag %r" % f)
                out[f] = True
        elif k == "arguments":
            out["arguments"] = [convert_arg(a) for a in v]
        elif k in ("name", "type", "key_spec_index", "token", "since",
                   "deprecated_since", "summary"):
            out[k] = v
        else:
            raise ValueError("unexpected argument field %r" % k)
    return {k: out[k] for k in ARG_FIELD_ORDER if k in out}


def build_spec(info, docs, container):
    (_name, arity, flags, _first, _last, _step, acl, tips, key_specs,
     _subcommands) = info
    spec = {
        "summary": docs.get("summary"),
        "complexity": docs.get("complexity"),
        "group": docs.get("group"),
        "since": docs.get("since"),
        "arity": arity,
    }
    if container is not None:
        spec["container"] = container
    for k in ("history", "deprecated_since", "replaced_by"):
        if docs.get(k):
            spec[k] = docs[k]
    if docs.get("doc_flags"):
        spec["doc_flags"] = [f.upper() for f in docs["doc_flags"]]
    spec["command_flags"] = convert_flags(flags)
    spec["acl_categories"] = convert_acl(acl, flags)
    spec["command_tips"] = [t.upper() for t in tips]
    spec["key_specs"] = [convert_key_spec(ks) for ks in key_specs]
    spec["arguments"] = [convert_arg(a) for a in docs.get("arguments", [])]
    extra = set(docs) - {"summary", "complexity", "group", "since",
                         "history", "deprecated_since", "replaced_by",
                         "doc_flags", "arguments", "subcommands"}
    if extra:
        raise ValueError("unexpected docs fields %r" % extra)
    return spec


def finish(spec, cmd, sub):
    if sub is not None:  # plain commands and subcommands get a handler
        spec["function"] = handler_function(spec["group"], cmd, sub)
    elif not WANTED[cmd] or spec.get("arity") == -1:
        # Plain commands, and containers that also run bare (COMMAND), get a handler.
        spec["function"] = handler_function(spec["group"], cmd, None)
    spec = {k: v for k, v in spec.items() if v not in (None, [], {})}
    unknown = set(spec) - set(FIELD_ORDER)
    if unknown:
        raise ValueError("unexpected fields %r" % unknown)
    return {k: spec[k] for k in FIELD_ORDER if k in spec}


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis-server", default=shutil.which("redis-server")
                    or "redis-server")
    ap.add_argument("--out", default=os.path.join(root, "commands"))
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="gen-command-specs-")
    proc, conn = start_server(args.redis_server, workdir)
    try:
        version = query(conn, "INFO", "server")
        version = dict(l.split(":", 1) for l in version.splitlines()
                       if ":" in l).get("redis_version", "?")
        print("querying redis-server %s" % version)
        written, fallback = [], []
        for cmd, subs in WANTED.items():
            targets = [(cmd, None)] + [(cmd, s) for s in subs]
            for c, s in targets:
                wire = c.lower() if s is None else "%s|%s" % (c.lower(),
                                                              s.lower())
                info = query(conn, "COMMAND", "INFO", wire)[0]
                docs = query(conn, "COMMAND", "DOCS", wire).get(wire)
                if info is None or docs is None:
                    if wire not in FALLBACK:
                        raise SystemExit("redis %s lacks %s and there is no "
                                         "fallback" % (version, wire))
                    spec = json.loads(json.dumps(FALLBACK[wire]))
                    fallback.append(wire)
                else:
                    spec = build_spec(info, docs, None if s is None else c)
                spec = finish(spec, c, s)
                key = c if s is None else s
                fname = wire.replace("|", "-") + ".json"
                with open(os.path.join(args.out, fname), "w") as f:
                    json.dump({key: spec}, f, indent=4, ensure_ascii=False)
                    f.write("\n")
                written.append(fname)
        print("wrote %d files to %s" % (len(written), args.out))
        if fallback:
            print("hand-written (missing from redis %s): %s"
                  % (version, ", ".join(fallback)))
    finally:
        conn.disconnect()
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
