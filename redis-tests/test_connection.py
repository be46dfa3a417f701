"""Connection commands: PING, ECHO, QUIT, HELLO, AUTH, SELECT, RESET, CLIENT *."""


import pytest
import redis

from conftest import ErrorReply, RawConn

NOAUTH = "NOAUTH Authentication required."
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."


def err_text(excinfo):
    return str(excinfo.value)


def parse_client_line(line):
    return dict(kv.split("=", 1) for kv in line.strip().split(" "))


def need_72(r):
    """Skip when the server under test is older than Redis 7.2 (e.g. Debian's 7.0 for reference)."""
    ver = r.info("server")["redis_version"]
    if tuple(int(x) for x in str(ver).split(".")[:2]) < (7, 2):
        pytest.skip(f"needs Redis 7.2 behaviour, server is {ver}")


# ---------------------------------------------------------------- PING / ECHO / QUIT


def test_ping(r):
    assert r.ping() is True


def test_ping_wrong_arity(r):
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("PING", "a", "b")
    assert err_text(e) == "wrong number of arguments for 'ping' command"


def test_ping_raw_reply_shapes(raw):
    c = raw()
    c.send(b"*1\r\n$4\r\nPING\r\n")
    assert c.readline() == b"+PONG"
    c.send(b"*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n")
    assert c.readline() == b"$2"
    assert c.readline() == b"hi"
    c.cmd("HELLO", "3")
    c.send(b"*1\r\n$4\r\nPING\r\n")
    assert c.readline() == b"+PONG"


def test_echo(r):
    assert r.echo("hello") == "hello"
    assert r.echo("") == ""
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("ECHO")
    assert err_text(e) == "wrong number of arguments for 'echo' command"
    with pytest.raises(redis.ResponseError):
        r.execute_command("ECHO", "a", "b")


def test_echo_binary(rb):
    v = b"a\x00b\r\nc\xff"
    assert rb.echo(v) == v


def test_quit_closes_connection(raw):
    c = raw()
    assert c.cmd("QUIT") == "OK"
    assert c.read_closed()


def test_quit_after_pipelined_commands(raw):
    c = raw()
    c.send(b"PING\r\nQUIT\r\nPING\r\n")
    assert c.read() == "PONG"
    assert c.read() == "OK"
    assert c.read_closed()
    assert c.buf == b""


# ---------------------------------------------------------------- HELLO


HELLO_KEYS = ["server", "version", "proto", "id", "mode", "role", "modules"]


def test_hello_2(r2):
    reply = r2.execute_command("HELLO", "2")
    assert isinstance(reply, list)
    d = dict(zip(reply[::2], reply[1::2]))
    for k in HELLO_KEYS:
        assert k in d
    assert reply[:2] == ["server", "redis"]
    assert d["proto"] == 2
    assert d["id"] == r2.client_id()
    assert d["mode"] == "standalone"
    assert d["role"] == "master"
    assert d["modules"] == []
    assert d["version"].count(".") == 2


def test_hello_exact_fields(raw):
    """Redis replies with exactly these seven fields, in this order."""
    c = raw()
    rep = c.cmd("HELLO", "2")
    assert rep[::2] == [k.encode() for k in HELLO_KEYS]
    rep = c.cmd("HELLO", "3")
    assert list(rep.keys()) == [k.encode() for k in HELLO_KEYS]


def test_hello_3(r3):
    d = r3.execute_command("HELLO", "3")
    assert isinstance(d, dict)
    for k in HELLO_KEYS:
        assert k in d
    assert d["server"] == "redis"
    assert d["proto"] == 3
    assert d["id"] == r3.client_id()
    assert d["mode"] == "standalone"
    assert d["role"] == "master"
    assert d["modules"] == []


def test_hello_no_args_keeps_protocol(r2, r3):
    d2 = r2.execute_command("HELLO")
    assert isinstance(d2, list)
    assert dict(zip(d2[::2], d2[1::2]))["proto"] == 2
    d3 = r3.execute_command("HELLO")
    assert isinstance(d3, dict) and d3["proto"] == 3


def test_hello_raw_switches_protocol(raw):
    c = raw()
    c.send(b"HELLO 3\r\n")
    assert c.buf == b""
    assert isinstance(c.read(), dict)
    c.send(b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$9\r\ndatabases\r\n")
    assert c.readline() == b"%1"
    assert c.read() == b"databases"
    assert c.read() == b"16"
    # A null in RESP3 is `_`.
    c.send(b"*2\r\n$3\r\nGET\r\n$11\r\nmissing-key\r\n")
    assert c.readline() == b"_"
    rep = c.cmd("HELLO", "2")
    assert isinstance(rep, list)
    c.send(b"*2\r\n$3\r\nGET\r\n$11\r\nmissing-key\r\n")
    assert c.readline() == b"$-1"
    c.send(b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$9\r\ndatabases\r\n")
    assert c.readline() == b"*2"


@pytest.mark.parametrize("ver", ["4", "1", "0", "-1"])
def test_hello_unsupported_version(r, ver):
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("HELLO", ver)
    assert err_text(e) == "NOPROTO unsupported protocol version"
    assert r.ping()


def test_hello_noproto_raw(raw):
    c = raw()
    rep = c.cmd("HELLO", "4")
    assert isinstance(rep, ErrorReply)
    assert str(rep) == "NOPROTO unsupported protocol version"


def test_hello_bad_version(r):
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("HELLO", "abc")
    assert err_text(e) == "Protocol version is not an integer or out of range"


def test_hello_setname(r2):
    r2.execute_command("HELLO", "2", "SETNAME", "myname")
    assert r2.client_getname() == "myname"
    with pytest.raises(redis.ResponseError) as e:
        r2.execute_command("HELLO", "2", "SETNAME", "a b")
    assert err_text(e) == "Client names cannot contain spaces, newlines or special characters."


def test_hello_syntax_error(r2):
    with pytest.raises(redis.ResponseError) as e:
        r2.execute_command("HELLO", "2", "FOO")
    assert "Syntax error in HELLO option 'FOO'" in err_text(e)


# ---------------------------------------------------------------- AUTH


@pytest.fixture
def authsrv(spawn):
    return spawn("--requirepass", "secret", password="secret")


def test_auth_without_password_configured(raw):
    c = raw()
    rep = c.cmd("AUTH", "foo")
    assert isinstance(rep, ErrorReply)
    assert str(rep) == (
        "ERR AUTH <password> called without any password configured for the default user. "
        "Are you sure your configuration is correct?"
    )
    # The default user is "nopass" then: any password is accepted with a user name.
    assert c.cmd("AUTH", "default", "foo") == "OK"
    rep = c.cmd("AUTH", "a", "b", "c")
    assert isinstance(rep, ErrorReply) and str(rep) == "ERR syntax error"


def test_auth_noauth_and_wrongpass(authsrv):
    c = RawConn(authsrv.port)
    try:
        assert str(c.cmd("PING")) == NOAUTH
        assert str(c.cmd("GET", "x")) == NOAUTH
        assert str(c.cmd("SELECT", "1")) == NOAUTH
        rep = c.cmd("AUTH", "wrong")
        assert isinstance(rep, ErrorReply) and str(rep) == WRONGPASS
        rep = c.cmd("AUTH", "default", "wrong")
        assert isinstance(rep, ErrorReply) and str(rep) == WRONGPASS
        rep = c.cmd("AUTH", "someuser", "secret")
        assert isinstance(rep, ErrorReply) and str(rep) == WRONGPASS
        assert str(c.cmd("PING")) == NOAUTH
        assert c.cmd("AUTH", "secret") == "OK"
        assert c.cmd("PING") == "PONG"
    finally:
        c.close()


def test_auth_unknown_command_before_auth(authsrv):
    c = RawConn(authsrv.port)
    try:
        # Redis checks the command table first, then authentication.
        rep = c.cmd("NOSUCHCMD", "x")
        assert isinstance(rep, ErrorReply)
        assert str(rep).startswith("ERR unknown command 'NOSUCHCMD'")
    finally:
        c.close()


def test_auth_user_and_password(authsrv):
    c = RawConn(authsrv.port)
    try:
        assert c.cmd("AUTH", "default", "secret") == "OK"
        assert c.cmd("SET", "k", "v") == "OK"
        assert c.cmd("GET", "k") == b"v"
    finally:
        c.close()


def test_auth_redis_py_password(authsrv):
    for proto in (2, 3):
        c = redis.Redis(port=authsrv.port, password="secret", protocol=proto, decode_responses=True)
        assert c.ping()
        assert c.set("a", "1")
        assert c.get("a") == "1"
        c.close()
    bad = redis.Redis(port=authsrv.port, password="nope", decode_responses=True)
    with pytest.raises(redis.AuthenticationError):
        bad.ping()
    none = redis.Redis(port=authsrv.port, decode_responses=True)
    with pytest.raises(redis.AuthenticationError):
        none.ping()


def test_auth_allowed_commands_before_auth(authsrv):
    c = RawConn(authsrv.port)
    try:
        assert c.cmd("RESET") == "RESET"
        assert c.cmd("QUIT") == "OK"
        assert c.read_closed()
    finally:
        c.close()


def test_hello_requires_auth(authsrv):
    c = RawConn(authsrv.port)
    try:
        rep = c.cmd("HELLO", "3")
        assert isinstance(rep, ErrorReply)
        assert str(rep).startswith(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO"
        )
        assert str(c.cmd("PING")) == NOAUTH
    finally:
        c.close()


def test_hello_3_auth_setname(authsrv):
    c = RawConn(authsrv.port)
    try:
        rep = c.cmd("HELLO", "3", "AUTH", "default", "wrong")
        assert isinstance(rep, ErrorReply) and str(rep) == WRONGPASS
        assert str(c.cmd("PING")) == NOAUTH
        rep = c.cmd("HELLO", "3", "AUTH", "default", "secret", "SETNAME", "n")
        assert isinstance(rep, dict)
        assert rep[b"proto"] == 3
        assert rep[b"server"] == b"redis"
        assert c.cmd("CLIENT", "GETNAME") == b"n"
        assert c.cmd("PING") == "PONG"
        c.send(b"*2\r\n$3\r\nGET\r\n$7\r\nmissing\r\n")
        assert c.readline() == b"_"
    finally:
        c.close()


def test_hello_2_auth(authsrv):
    c = RawConn(authsrv.port)
    try:
        rep = c.cmd("HELLO", "2", "AUTH", "default", "secret")
        assert isinstance(rep, list) and b"proto" in rep
        assert rep[rep.index(b"proto") + 1] == 2
        assert c.cmd("PING") == "PONG"
    finally:
        c.close()


def test_reset_deauthenticates(authsrv):
    c = RawConn(authsrv.port)
    try:
        assert c.cmd("AUTH", "secret") == "OK"
        assert c.cmd("PING") == "PONG"
        assert c.cmd("RESET") == "RESET"
        assert str(c.cmd("PING")) == NOAUTH
    finally:
        c.close()


def test_config_set_requirepass(spawn):
    srv = spawn()
    c = srv.client()
    assert c.config_set("requirepass", "pw2")
    # Existing connection stays authenticated; new ones need the password.
    assert c.ping()
    fresh = RawConn(srv.port)
    try:
        assert str(fresh.cmd("PING")) == NOAUTH
        assert fresh.cmd("AUTH", "pw2") == "OK"
        assert fresh.cmd("CONFIG", "SET", "requirepass", "") == "OK"
    finally:
        fresh.close()
    fresh = RawConn(srv.port)
    try:
        assert fresh.cmd("PING") == "PONG"
    finally:
        fresh.close()
    c.close()


# ---------------------------------------------------------------- SELECT


def test_select(r2, server_port):
    r2.set("k", "db0")
    assert r2.execute_command("SELECT", 1) is True
    assert r2.get("k") is None
    r2.set("k", "db1")
    r2.execute_command("SELECT", 0)
    assert r2.get("k") == "db0"
    c15 = redis.Redis(port=server_port, db=15, decode_responses=True)
    c15.set("k15", "x")
    assert c15.get("k15") == "x"
    assert r2.get("k15") is None
    c15.close()


def test_select_raw(raw):
    c = raw()
    assert c.cmd("SELECT", "3") == "OK"
    assert c.cmd("SET", "x", "1") == "OK"
    assert c.cmd("CLIENT", "INFO").find(b" db=3 ") >= 0


@pytest.mark.parametrize("idx", ["16", "-1", "100000"])
def test_select_out_of_range(r, idx):
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("SELECT", idx)
    assert err_text(e) == "DB index is out of range"


def test_select_not_integer(r):
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("SELECT", "abc")
    assert err_text(e) == "value is not an integer or out of range"


def test_select_databases_config(spawn):
    srv = spawn("--databases", "2")
    c = RawConn(srv.port)
    try:
        assert c.cmd("SELECT", "1") == "OK"
        rep = c.cmd("SELECT", "2")
        assert isinstance(rep, ErrorReply) and str(rep) == "ERR DB index is out of range"
        assert c.cmd("CONFIG", "GET", "databases") == [b"databases", b"2"]
    finally:
        c.close()


# ---------------------------------------------------------------- RESET


def test_reset(raw):
    c = raw()
    my_id = c.cmd("CLIENT", "ID")
    assert c.cmd("SELECT", "2") == "OK"
    assert c.cmd("CLIENT", "SETNAME", "before") == "OK"
    assert isinstance(c.cmd("HELLO", "3"), dict)
    assert c.cmd("RESET") == "RESET"
    # Back to RESP2, db 0, no name, same connection id.
    c.send(b"*2\r\n$3\r\nGET\r\n$7\r\nmissing\r\n")
    assert c.readline() == b"$-1"
    assert c.cmd("CLIENT", "GETNAME") is None
    assert c.cmd("CLIENT", "ID") == my_id
    info = parse_client_line(c.cmd("CLIENT", "INFO").decode())
    assert info["db"] == "0"
    assert info["resp"] == "2"
    assert info["name"] == ""


def test_reset_turns_client_reply_on(raw):
    c = raw()
    c.send(b"CLIENT REPLY OFF\r\nRESET\r\nPING\r\n")
    assert c.read() == "RESET"
    assert c.read() == "PONG"


def test_reset_redis_py(r2):
    assert r2.execute_command("RESET") == "RESET"


# ---------------------------------------------------------------- CLIENT


def test_client_id(r, server_port):
    a = r.client_id()
    assert isinstance(a, int) and a > 0
    assert r.client_id() == a
    other = redis.Redis(port=server_port)
    b = other.client_id()
    assert b != a
    other.close()
    newer = redis.Redis(port=server_port)
    assert newer.client_id() > b
    newer.close()


def test_client_setname_getname(r):
    r.execute_command("CLIENT", "SETNAME", "")
    assert r.client_getname() is None
    assert r.client_setname("conn-1") is True
    assert r.client_getname() == "conn-1"
    for bad in ("a b", "a\nb", "a\x01b"):
        with pytest.raises(redis.ResponseError) as e:
            r.client_setname(bad)
        assert err_text(e) == "Client names cannot contain spaces, newlines or special characters."
    assert r.client_getname() == "conn-1"
    assert r.client_setname("") is True
    assert r.client_getname() is None


def test_client_list(r):
    r.client_setname("lister")
    clients = r.client_list()
    assert isinstance(clients, list) and len(clients) >= 1
    me = [c for c in clients if c["name"] == "lister"]
    assert len(me) == 1
    me = me[0]
    for field in ("id", "addr", "laddr", "fd", "name", "age", "idle", "flags", "db", "cmd", "resp"):
        assert field in me, field
    assert int(me["id"]) == r.client_id()
    assert me["cmd"] == "client|list"
    assert me["addr"].startswith("127.0.0.1:")
    assert me["db"] == "0"


def test_client_list_raw_format(raw):
    text = raw().cmd("CLIENT", "LIST").decode()
    assert text.endswith("\n")
    for line in text.strip("\n").split("\n"):
        assert line.startswith("id=")
        fields = dict(kv.split("=", 1) for kv in line.split(" "))
        assert "addr" in fields and "cmd" in fields


def test_client_list_type_and_id(r, server_port):
    other = redis.Redis(port=server_port)
    oid = other.client_id()
    my = r.client_id()
    lst = r.execute_command("CLIENT LIST", "ID", oid)
    assert [int(c["id"]) for c in lst] == [oid]
    lst = r.execute_command("CLIENT LIST", "ID", oid, my, 999999)
    assert sorted(int(c["id"]) for c in lst) == sorted([oid, my])
    assert len(r.client_list(_type="normal")) >= 2
    assert r.client_list(_type="pubsub") == []
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("CLIENT", "LIST", "TYPE", "bogus")
    assert err_text(e) == "Unknown client type 'bogus'"
    other.close()


def test_client_info(r):
    r.client_setname("infoname")
    info = r.client_info()
    assert info["name"] == "infoname"
    assert int(info["id"]) == r.client_id()
    assert info["cmd"] == "client|info"


def test_client_info_raw_format(raw):
    c = raw()
    assert c.cmd("CLIENT", "SETNAME", "rawname") == "OK"
    text = c.cmd("CLIENT", "INFO").decode()
    assert text.startswith("id=") and text.endswith("\n")
    assert text.count("\n") == 1
    info = parse_client_line(text)
    assert info["name"] == "rawname"
    assert info["cmd"] == "client|info"
    assert int(info["id"]) == c.cmd("CLIENT", "ID")


def test_client_info_resp(r2, r3):
    assert r2.client_info()["resp"] == "2"
    assert r3.client_info()["resp"] == "3"


def test_client_kill_by_id(r, server_port):
    victim = redis.Redis(port=server_port, decode_responses=True)
    vid = victim.client_id()
    assert r.execute_command("CLIENT", "KILL", "ID", vid) == 1
    assert all(int(c["id"]) != vid for c in r.client_list())
    assert r.execute_command("CLIENT", "KILL", "ID", vid) == 0
    # redis-py reconnects transparently: the new connection has a new id.
    assert victim.client_id() != vid
    victim.close()


def test_client_kill_raw_victim(raw):
    victim = raw()
    killer = raw()
    vid = victim.cmd("CLIENT", "ID")
    assert killer.cmd("CLIENT", "KILL", "ID", str(vid)) == 1
    assert victim.read_closed()
    assert killer.cmd("PING") == "PONG"


def test_client_kill_old_addr_form(raw):
    victim = raw()
    killer = raw()
    addr = parse_client_line(victim.cmd("CLIENT", "INFO").decode())["addr"]
    assert killer.cmd("CLIENT", "KILL", addr) == "OK"
    assert victim.read_closed()
    rep = killer.cmd("CLIENT", "KILL", addr)
    assert isinstance(rep, ErrorReply) and str(rep) == "ERR No such client"


def test_client_kill_addr_filter(raw):
    victim = raw()
    killer = raw()
    addr = parse_client_line(victim.cmd("CLIENT", "INFO").decode())["addr"]
    assert killer.cmd("CLIENT", "KILL", "ADDR", addr) == 1
    assert victim.read_closed()
    assert killer.cmd("CLIENT", "KILL", "ADDR", addr) == 0


def test_client_kill_filters(raw):
    c = raw()
    assert c.cmd("CLIENT", "KILL", "TYPE", "pubsub") == 0
    rep = c.cmd("CLIENT", "KILL", "TYPE", "bogus")
    assert str(rep) == "ERR Unknown client type 'bogus'"
    assert c.cmd("CLIENT", "KILL", "LADDR", "1.2.3.4:5") == 0
    assert c.cmd("CLIENT", "KILL", "USER", "default", "ID", "999999999") == 0
    rep = c.cmd("CLIENT", "KILL", "ID", "1", "ID")
    assert str(rep) == "ERR syntax error"


def test_client_kill_unknown_user(raw):
    c = raw()
    rep = c.cmd("CLIENT", "KILL", "USER", "nosuchuser")
    assert isinstance(rep, ErrorReply)
    assert str(rep) == "ERR No such user 'nosuchuser'"


def test_client_kill_laddr(raw, server_port):
    victim = raw()
    killer = raw()
    vid = victim.cmd("CLIENT", "ID")
    laddr = parse_client_line(victim.cmd("CLIENT", "INFO").decode())["laddr"]
    assert laddr.endswith(f":{server_port}")
    n = killer.cmd("CLIENT", "KILL", "LADDR", laddr, "SKIPME", "yes")
    assert n >= 1
    assert victim.read_closed()
    assert killer.cmd("PING") == "PONG"
    assert all(
        parse_client_line(l)["id"] != str(vid)
        for l in killer.cmd("CLIENT", "LIST").decode().strip().split("\n")
    )


def test_client_kill_skipme(raw):
    c = raw()
    my_id = c.cmd("CLIENT", "ID")
    assert c.cmd("CLIENT", "KILL", "ID", str(my_id), "SKIPME", "yes") == 0
    assert c.cmd("PING") == "PONG"


def test_client_kill_self(raw):
    c = raw()
    my_id = c.cmd("CLIENT", "ID")
    assert c.cmd("CLIENT", "KILL", "ID", str(my_id), "SKIPME", "no") == 1
    assert c.read_closed()


def test_client_kill_errors(r):
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("CLIENT", "KILL", "1.2.3.4:5")
    assert err_text(e) == "No such client"
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("CLIENT", "KILL", "ID", "notanumber")
    assert err_text(e) == "client-id should be greater than 0"
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("CLIENT", "KILL", "BOGUS", "x")
    assert err_text(e) == "syntax error"


def test_client_setinfo(r):
    need_72(r)
    assert r.execute_command("CLIENT", "SETINFO", "lib-name", "mylib")
    assert r.execute_command("CLIENT", "SETINFO", "LIB-VER", "1.2.3")
    info = r.client_info()
    assert info["lib-name"] == "mylib"
    assert info["lib-ver"] == "1.2.3"
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("CLIENT", "SETINFO", "foo", "bar")
    assert err_text(e) == "Unrecognized option 'foo'"
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("CLIENT", "SETINFO", "lib-name", "a b")
    assert "lib-name cannot contain spaces, newlines or special characters" in err_text(e)


def test_client_no_evict(r):
    assert r.execute_command("CLIENT NO-EVICT", "on") in ("OK", True, b"OK")
    assert "e" in r.client_info()["flags"]
    assert r.execute_command("CLIENT NO-EVICT", "off") in ("OK", True, b"OK")
    assert "e" not in r.client_info()["flags"]
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("CLIENT", "NO-EVICT", "maybe")
    assert err_text(e) == "syntax error"


def test_client_reply_off_on(raw):
    c = raw()
    c.send(b"CLIENT REPLY OFF\r\n")
    c.send(b"SET k v\r\n")
    c.send(b"GET k\r\n")
    c.send(b"PING\r\n")
    c.send(b"CLIENT REPLY ON\r\n")
    assert c.read() == "OK"
    assert c.cmd("GET", "k") == b"v"


def test_client_reply_skip(raw):
    c = raw()
    c.send(b"CLIENT REPLY SKIP\r\nSET s 1\r\nGET s\r\n")
    # The SKIP itself and the SET are silent; the GET answers.
    assert c.read() == b"1"
    assert c.cmd("PING") == "PONG"


def test_client_reply_errors_silenced(raw):
    c = raw()
    c.send(b"CLIENT REPLY OFF\r\nNOSUCHCMD\r\nGET\r\nCLIENT REPLY ON\r\n")
    assert c.read() == "OK"


def test_client_reply_bad_arg(r):
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("CLIENT", "REPLY", "foo")
    assert err_text(e) == "syntax error"


def test_client_help(r):
    lines = r.execute_command("CLIENT", "HELP")
    assert isinstance(lines, list) and len(lines) > 5
    assert lines[0].startswith("CLIENT <subcommand>")


def test_client_unknown_subcommand(r):
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("CLIENT", "foo")
    assert err_text(e) == "unknown subcommand 'foo'. Try CLIENT HELP."


def test_client_wrong_arity(r):
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("CLIENT", "SETNAME")
    assert err_text(e) == "wrong number of arguments for 'client|setname' command"
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("CLIENT")
    assert err_text(e) == "wrong number of arguments for 'client' command"


def test_timeout_closes_idle_clients(spawn):
    srv = spawn("--timeout", "1")
    c = RawConn(srv.port)
    try:
        assert c.cmd("PING") == "PONG"
        assert c.read_closed(timeout=4.0)
    finally:
        c.close()
