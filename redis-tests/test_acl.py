"""Redis 7 ACLs, differentially against a stock redis-server 7.0: every ACL subcommand, AUTH and
HELLO AUTH, key patterns with read/write scopes, channels, selectors, first-arg rules, the ACL
log, MULTI/EXEC and scripts under ACLs, users deleted or changed under live connections, the
ACL file and `user` lines in the config file. Each scenario runs the same commands on both
servers and compares the replies (the few fields that differ by nature, such as ages and
client ids, are left out)."""

import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import redis

from conftest import SERVER_BIN, ServerProcess, free_port, start_redis


@pytest.fixture(scope="module")
def servers(ref_servers):
    return ref_servers


def reply(c, *args):
    try:
        return ("ok", c.execute_command(*args))
    except redis.RedisError as e:
        return (type(e).__name__, str(e))


def sort_rules(text):
    """A rule string with its single-command rules sorted: Redis lists them in its hash
    table's order, which is random per process; the categories keep their place."""
    words = text.split(" ")
    head = [w for w in words if not (w[:1] in "+-" and not w.startswith(("+@", "-@")))]
    tail = sorted(w for w in words if w[:1] in "+-" and not w.startswith(("+@", "-@")))
    return " ".join(head + tail)


VARYING = ("age-seconds", "client-info")


def norm(r):
    """Leaves out what differs by nature: ages, client details, random passwords."""
    kind, v = r
    if isinstance(v, Exception):
        return (kind, (type(v).__name__, str(v)))
    if isinstance(v, list):
        out, skip = [], False
        for i, x in enumerate(v):
            if skip:
                skip = False
                continue
            if x in VARYING and i + 1 < len(v):
                skip = True
                continue
            out.append(norm(("x", x))[1])
        return (kind, out)
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if k in VARYING:
                continue
            out[k] = norm(("x", x))[1]
        return (kind, out)
    if isinstance(v, str):
        if v.startswith("user ") or "-@all" in v or "+@all" in v:
            if "(" in v:
                root, _, rest = v.partition(" (")
                sels = [sort_rules(s.rstrip(")")) for s in rest.split(" (")]
                return (kind, sort_rules(root) + "".join(f" ({s})" for s in sels))
            return (kind, sort_rules(v))
    return (kind, v)


class Dual:
    """The same commands on Locus and on redis-server, over named connections."""

    def __init__(self, ports):
        self.ports = ports
        self.conns = {}

    def conn(self, name="main", **kw):
        if name not in self.conns:
            self.conns[name] = tuple(
                redis.Redis(port=p, decode_responses=True, single_connection_client=True,
                            lib_name=None, lib_version=None, **kw)
                for p in self.ports)
        return self.conns[name]

    def check(self, *args, on="main"):
        a, b = self.conn(on)
        ra, rb = reply(a, *args), reply(b, *args)
        assert norm(ra) == norm(rb), f"{args}: locus {ra!r} != redis {rb!r}"
        return ra

    def close(self):
        for pair in self.conns.values():
            for c in pair:
                c.close()


@pytest.fixture
def dual(servers):
    d = Dual(servers)
    yield d
    d.close()
    for p in servers:
        c = redis.Redis(port=p, decode_responses=True, single_connection_client=True,
                        lib_name=None, lib_version=None)
        # A scenario may have left the default user with a password.
        for pw in ("dpw", "rp"):
            reply(c, "AUTH", pw)
        for u in c.execute_command("ACL", "USERS"):
            if u != "default":
                c.execute_command("ACL", "DELUSER", u)
        c.execute_command("ACL", "SETUSER", "default", "on", "nopass", "allkeys", "allchannels",
                          "+@all", "clearselectors")
        c.execute_command("ACL", "LOG", "RESET")
        c.execute_command("FLUSHALL")
        c.close()


def test_user_lifecycle_and_descriptions(dual):
    d = dual
    d.check("ACL", "LIST")
    d.check("ACL", "USERS")
    d.check("ACL", "WHOAMI")
    d.check("ACL", "SETUSER", "newuser")
    d.check("ACL", "LIST")
    d.check("ACL", "GETUSER", "newuser")
    d.check("ACL", "SETUSER", "newuser", "on", ">passwd1", "+acl", "~obj:*", "&chan:*")
    d.check("ACL", "GETUSER", "newuser")
    d.check("ACL", "SETUSER", "newuser", ">passwd2", ">passwd1")
    d.check("ACL", "GETUSER", "newuser")
    d.check("ACL", "SETUSER", "newuser", "<passwd1")
    d.check("ACL", "SETUSER", "newuser", "<nosuchpass")
    d.check("ACL", "SETUSER", "newuser", "#" + "a" * 64, "!" + "a" * 64)
    d.check("ACL", "SETUSER", "newuser", "#abc")
    d.check("ACL", "SETUSER", "newuser", "!" + "A" * 64)
    d.check("ACL", "SETUSER", "newuser", "nopass")
    d.check("ACL", "GETUSER", "newuser")
    d.check("ACL", "SETUSER", "newuser", "resetpass", "off", "skip-sanitize-payload")
    d.check("ACL", "GETUSER", "newuser")
    d.check("ACL", "SETUSER", "newuser", "reset")
    d.check("ACL", "LIST")
    d.check("ACL", "SETUSER", "bad user")
    d.check("ACL", "SETUSER", "x", "badrule")
    d.check("ACL", "SETUSER", "x", "+nosuchcommand")
    d.check("ACL", "SETUSER", "x", "+@nosuchcategory")
    d.check("ACL", "SETUSER", "x", "~a", "allkeys", "~b")
    d.check("ACL", "SETUSER", "x", "&a", "allchannels", "&b")
    d.check("ACL", "SETUSER", "x", "+config|get|x")
    d.check("ACL", "SETUSER", "x", "+get|")
    d.check("ACL", "SETUSER", "x", "%X~a")
    d.check("ACL", "USERS")
    d.check("ACL", "DELUSER", "default")
    d.check("ACL", "DELUSER", "newuser", "nosuch", "x")
    d.check("ACL", "GETUSER", "nosuch")
    d.check("ACL", "USERS")


def test_command_rules_and_categories(dual):
    d = dual
    cases = [
        ["+@all", "-@dangerous"],
        ["-@all", "+@read", "-get"],
        ["-@all", "+@string", "+@hash", "-hdel", "+client|id"],
        ["+@all", "-config|set", "-@admin", "+config|get"],
        ["-@all", "+select|0", "+select|1"],
        ["allcommands", "-client", "+client|list"],
        ["nocommands", "+@set", "-@write"],
    ]
    for i, rules in enumerate(cases):
        d.check("ACL", "SETUSER", f"u{i}", *rules)
        d.check("ACL", "GETUSER", f"u{i}")
    d.check("ACL", "LIST")
    for name in ["keyspace", "read", "write", "set", "sortedset", "list", "hash", "string",
                 "bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow",
                 "blocking", "dangerous", "connection", "transaction", "scripting"]:
        assert name in dual.conn()[0].execute_command("ACL", "CAT")
    d.check("ACL", "CAT", "nosuch")
    for probe in [("u0", "flushall"), ("u0", "get", "k"), ("u1", "get", "k"), ("u1", "mget", "k"),
                  ("u2", "client", "id"), ("u2", "client", "list"), ("u2", "hset", "h", "f", "v"),
                  ("u2", "hdel", "h", "f"), ("u3", "config", "get", "port"),
                  ("u3", "config", "set", "port", "1"), ("u4", "select", "0"), ("u4", "select", "2"),
                  ("u5", "client", "list"), ("u5", "client", "id"), ("u6", "smembers", "s"),
                  ("u6", "sadd", "s", "a")]:
        d.check("ACL", "DRYRUN", *probe)
    d.check("ACL", "DRYRUN", "nosuch", "get", "k")
    d.check("ACL", "DRYRUN", "u0", "nosuchcommand")
    d.check("ACL", "DRYRUN", "u0", "get")
    d.check("ACL", "DRYRUN", "u0", "get", "a", "b")


def test_key_patterns_read_write_and_selectors(dual):
    d = dual
    d.check("ACL", "SETUSER", "k", "on", "nopass", "+@all", "%R~read*", "%W~write*", "~rw*",
            "%RW~both*")
    d.check("ACL", "GETUSER", "k")
    probes = [
        ("get", "read1"), ("get", "write1"), ("set", "write1", "v"), ("set", "read1", "v"),
        ("copy", "read1", "write2"), ("copy", "write1", "read2"), ("lmove", "read1", "write1",
                                                                   "left", "right"),
        ("getdel", "read1"), ("mset", "rw1", "a", "write1", "b"), ("mset", "rw1", "a", "read1", "b"),
        ("sort", "read1", "store", "write1"), ("sort", "read1", "store", "read2"),
        ("eval", "return 1", "1", "write1"), ("xread", "streams", "read1", "0"),
        ("zunionstore", "write1", "2", "read1", "rw2"), ("get", "both1"), ("set", "both1", "x"),
    ]
    for p in probes:
        d.check("ACL", "DRYRUN", "k", *p)
    d.check("ACL", "SETUSER", "s", "on", "nopass", "-@all", "+get", "~a*",
            "(+set ~b*)", "(", "+del", "%R~c*", ")")
    d.check("ACL", "GETUSER", "s")
    d.check("ACL", "LIST")
    for p in [("get", "a1"), ("get", "b1"), ("set", "b1", "v"), ("set", "a1", "v"),
              ("del", "c1"), ("del", "a1")]:
        d.check("ACL", "DRYRUN", "s", *p)
    d.check("ACL", "SETUSER", "s", "clearselectors")
    d.check("ACL", "GETUSER", "s")
    d.check("ACL", "SETUSER", "s", "(+get", "~x")


def test_channels(dual):
    d = dual
    d.check("ACL", "SETUSER", "p", "on", ">pw", "+@all", "~*", "resetchannels", "&news.*",
            "&lit*")
    d.check("ACL", "GETUSER", "p")
    for p in [("publish", "news.a", "m"), ("publish", "other", "m"), ("subscribe", "news.x"),
              ("subscribe", "news.x", "other"), ("psubscribe", "lit*"), ("psubscribe", "news.*"),
              ("psubscribe", "news.a*")]:
        d.check("ACL", "DRYRUN", "p", *p)
    d.check("AUTH", "p", "pw", on="p")
    d.check("PUBLISH", "news.a", "hello", on="p")
    d.check("PUBLISH", "sports", "hello", on="p")
    d.check("ACL", "LOG", "1")


def test_auth_hello_and_the_acl_log(dual):
    d = dual
    d.check("ACL", "SETUSER", "alice", "on", ">secret", "+get", "+acl|whoami", "~a*")
    d.check("ACL", "SETUSER", "off-user", "off", ">pw", "+@all")
    d.check("AUTH", "alice", "wrong", on="a")
    d.check("AUTH", "nosuch", "x", on="a")
    d.check("AUTH", "off-user", "pw", on="a")
    d.check("AUTH", "justapassword", on="a")
    d.check("AUTH", "a", "b", "c", on="a")
    d.check("AUTH", "alice", "secret", on="a")
    d.check("ACL", "WHOAMI", on="a")
    d.check("GET", "abc", on="a")
    d.check("GET", "xyz", on="a")
    d.check("SET", "abc", "1", on="a")
    d.check("GET", "xyz", on="a")
    d.check("ACL", "LOG")
    d.check("ACL", "LOG", "2")
    d.check("ACL", "LOG", "0")
    d.check("ACL", "LOG", "-1")
    d.check("ACL", "LOG", "x")
    d.check("HELLO", "3", "AUTH", "alice", "wrong", on="h")
    # The greeting names each server's own version and client id: both succeed.
    for c in d.conn("h"):
        assert reply(c, "HELLO", "2", "AUTH", "alice", "secret", "SETNAME", "me")[0] == "ok"
    d.check("ACL", "WHOAMI", on="h")
    d.check("ACL", "LOG", "1")
    d.check("ACL", "LOG", "RESET")
    d.check("ACL", "LOG")
    # Entries alike within a minute are counted in one.
    for _ in range(3):
        d.check("GET", "nope", on="a")
    d.check("ACL", "LOG")
    # The default user with a password: new connections must authenticate.
    d.check("ACL", "SETUSER", "default", "resetpass", ">dpw")
    d.check("GET", "x", on="fresh")
    d.check("AUTH", "dpw", on="fresh")
    d.check("GET", "x", on="fresh")
    d.check("ACL", "SETUSER", "default", "nopass")
    d.check("AUTH", "x", on="fresh2")
    d.check("ACL", "GENPASS", "0")
    d.check("ACL", "GENPASS", "5000")
    for bits in [None, 1, 5, 128]:
        args = ["ACL", "GENPASS"] + ([] if bits is None else [bits])
        a, b = (c.execute_command(*args) for c in d.conn())
        assert len(a) == len(b) and all(ch in "0123456789abcdef" for ch in a)
    d.check("ACL", "HELP")
    d.check("ACL", "NOSUCH")


def test_multi_exec_and_scripts_under_acls(dual):
    d = dual
    d.check("ACL", "SETUSER", "t", "on", ">pw", "+@all", "-flushall", "~t*", "&*")
    d.check("AUTH", "t", "pw", on="t")
    d.check("MULTI", on="t")
    d.check("SET", "t1", "v", on="t")
    d.check("SET", "x1", "v", on="t")
    d.check("EXEC", on="t")
    d.check("MULTI", on="t")
    d.check("SET", "t1", "v", on="t")
    d.check("GET", "t1", on="t")
    d.check("ACL", "SETUSER", "t", "-get")
    d.check("EXEC", on="t")
    d.check("EVAL", "return redis.call('get', 't1')", "0", on="t")
    d.check("EVAL", "return redis.call('set', 'x', '1')", "0", on="t")
    d.check("EVAL", "return redis.pcall('flushall')", "0", on="t")
    d.check("ACL", "LOG", "3")


def test_deleted_and_changed_users_under_live_connections(servers):
    for port in servers:
        admin = redis.Redis(port=port, decode_responses=True)
        admin.execute_command("ACL", "SETUSER", "gone", "on", ">pw", "+@all", "~*", "&*")
        c = redis.Redis(port=port, decode_responses=True, single_connection_client=True,
                        username="gone", password="pw")
        assert c.execute_command("ACL", "WHOAMI") == "gone"
        sub = redis.Redis(port=port, decode_responses=True, username="gone", password="pw")
        ps = sub.pubsub()
        ps.subscribe("chan")
        ps.get_message(timeout=1)
        # Revoking the subscribed channel closes the subscriber.
        admin.execute_command("ACL", "SETUSER", "gone", "resetchannels", "&other")
        with pytest.raises(redis.ConnectionError):
            for _ in range(20):
                ps.get_message(timeout=0.1)
                ps.ping()
        assert admin.execute_command("ACL", "DELUSER", "gone") == 1
        with pytest.raises(redis.ConnectionError):
            c.execute_command("PING")
        assert "gone" not in admin.execute_command("ACL", "USERS")
        admin.close()


def test_requirepass_is_the_default_users_password(servers):
    for port in servers:
        c = redis.Redis(port=port, decode_responses=True, single_connection_client=True)
        c.execute_command("CONFIG", "SET", "requirepass", "rp")
        try:
            line = [l for l in c.execute_command("ACL", "LIST") if l.startswith("user default")][0]
            assert "nopass" not in line and "#" in line
            other = redis.Redis(port=port, decode_responses=True)
            with pytest.raises(redis.AuthenticationError):
                other.ping()
            assert redis.Redis(port=port, password="rp").ping()
            assert redis.Redis(port=port, username="default", password="rp").ping()
        finally:
            c.execute_command("CONFIG", "SET", "requirepass", "")
        line = [l for l in c.execute_command("ACL", "LIST") if l.startswith("user default")][0]
        assert line == "user default on nopass ~* &* +@all"
        c.close()


def test_acl_file_save_and_load(tmp_path):
    """ACL SAVE writes what ACL LOAD reads back; a broken file changes nothing and is
    described as redis-server describes it."""
    results = []
    for kind in ("locus", "redis"):
        d = tmp_path / kind
        d.mkdir()
        (d / "users.acl").write_text("user alice on >pw ~a* +get\nuser default on nopass ~* &* +@all\n")
        if kind == "locus":
            s = ServerProcess(["--dir", str(d), "--aclfile", str(d / "users.acl")])
            port, stop = s.port, s.stop
        else:
            p, port = start_redis("--aclfile", str(d / "users.acl"), workdir=str(d))
            stop = lambda p=p: (p.terminate(), p.wait())
        try:
            c = redis.Redis(port=port, decode_responses=True)
            out = [reply(c, "ACL", "LIST")]
            out.append(reply(c, "ACL", "SETUSER", "bob", "on", ">x", "+@read", "~b*"))
            out.append(reply(c, "ACL", "SAVE"))
            saved = (d / "users.acl").read_text()
            out.append(sorted(sort_rules(l) for l in saved.strip().split("\n")))
            out.append(reply(c, "ACL", "DELUSER", "bob"))
            out.append(reply(c, "ACL", "LOAD"))
            out.append(norm(reply(c, "ACL", "LIST")))
            (d / "users.acl").write_text("user carol on >pw +nosuch\nnot a user line\n")
            err = reply(c, "ACL", "LOAD")
            out.append(err[0])
            out.append(err[1].replace(str(d / "users.acl"), "FILE"))
            out.append(norm(reply(c, "ACL", "LIST")))
            (d / "users.acl").unlink()
            err = reply(c, "ACL", "LOAD")
            out.append(err[1].replace(str(d / "users.acl"), "FILE"))
            c.close()
        finally:
            stop()
        results.append(out)
    assert results[0] == results[1]


def test_no_acl_file_configured(dual):
    dual.check("ACL", "SAVE")
    dual.check("ACL", "LOAD")


def test_users_from_the_config_file(tmp_path):
    conf = tmp_path / "locus.conf"
    conf.write_text('user default on nopass ~* &* +@all\n'
                    'user reader on >r3ad ~pub:* +@read\n')
    s = ServerProcess(config_file=str(conf))
    try:
        c = redis.Redis(port=s.port, username="reader", password="r3ad", decode_responses=True)
        assert c.get("pub:x") is None
        with pytest.raises(redis.exceptions.NoPermissionError):
            c.set("pub:x", "1")
        with pytest.raises(redis.exceptions.NoPermissionError):
            c.get("secret")
        admin = redis.Redis(port=s.port, decode_responses=True)
        assert "user=reader" in admin.execute_command("CLIENT", "LIST")
    finally:
        s.stop()
    # Users both in the config file and in an ACL file: refused at start, as Redis does.
    (tmp_path / "u.acl").write_text("user x on nopass +@all\n")
    proc = subprocess.run([SERVER_BIN, str(conf), "--port", str(free_port()), "--aclfile",
                           str(tmp_path / "u.acl"), "--http-port", "0", "--grpc-port", "0"],
                          capture_output=True, timeout=20, cwd=tmp_path)
    assert proc.returncode != 0
    assert b"either an ACL file or declare users" in proc.stdout + proc.stderr


def test_config_rewrite_keeps_the_users(tmp_path):
    """Without an aclfile, CONFIG REWRITE writes the users into the config file as `user`
    lines (replacing the old ones), as Redis does; a restart from the file has them."""
    conf = tmp_path / "locus.conf"
    conf.write_text("hz 10\nuser old on nopass +@all ~*\n")
    s = ServerProcess(config_file=str(conf))
    try:
        c = redis.Redis(port=s.port, decode_responses=True)
        c.execute_command("ACL", "DELUSER", "old")
        c.execute_command("ACL", "SETUSER", "kept", "on", ">pw", "+get", "~k*")
        assert c.config_rewrite()
    finally:
        s.stop()
    lines = conf.read_text().splitlines()
    assert "hz 10" in lines and not any(l.startswith("user old") for l in lines)
    s = ServerProcess(config_file=str(conf))
    try:
        c = redis.Redis(port=s.port, username="kept", password="pw", decode_responses=True)
        assert c.get("k1") is None
        with pytest.raises(redis.exceptions.NoPermissionError):
            c.set("k1", "v")
    finally:
        s.stop()
