"""redis-cli, the real client, scripted against the server (stdout is a pipe, so redis-cli
uses its raw output mode unless --no-raw is given)."""

import shutil
import subprocess

import pytest

REDIS_CLI = shutil.which("redis-cli")

pytestmark = pytest.mark.skipif(REDIS_CLI is None, reason="redis-cli is not installed")


def cli(port, *args, stdin=None, timeout=15):
    p = subprocess.run(
        [REDIS_CLI, "-p", str(port), *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
    )
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def out(port, *args, **kw):
    rc, stdout, stderr = cli(port, *args, **kw)
    assert rc == 0, (rc, stdout, stderr)
    return stdout


@pytest.fixture
def port(r2, server_port):
    # r2 flushes the server first.
    return server_port


def test_ping(port):
    assert out(port, "ping") == "PONG\n"


def test_set_get(port):
    assert out(port, "set", "clikey", "hello world") == "OK\n"
    assert out(port, "get", "clikey") == "hello world\n"
    assert out(port, "get", "missing") == "\n"
    assert out(port, "incr", "n") == "1\n"
    assert out(port, "dbsize") == "2\n"


def test_no_raw(port):
    out(port, "set", "k", "v")
    assert out(port, "--no-raw", "get", "k") == '"v"\n'
    assert out(port, "--no-raw", "get", "missing") == "(nil)\n"
    assert out(port, "--no-raw", "incr", "n") == "(integer) 1\n"
    assert out(port, "--no-raw", "mget", "k", "missing") == '1) "v"\n2) (nil)\n'
    assert out(port, "--no-raw", "config", "get", "port") == f'1) "port"\n2) "{port}"\n'
    assert out(port, "--no-raw", "get") == "(error) ERR wrong number of arguments for 'get' command\n"


def test_resp3_hello(port):
    text = out(port, "-3", "hello", "3")
    lines = text.splitlines()
    assert lines[0] == "server redis"
    assert "proto 3" in lines
    assert "mode standalone" in lines
    text = out(port, "-3", "--no-raw", "hello", "3")
    lines = text.splitlines()
    assert lines[0] == '1# "server" => "redis"'
    assert '3# "proto" => (integer) 3' in lines


def test_resp3_map_and_null(port):
    assert out(port, "-3", "--no-raw", "config", "get", "port") == f'1# "port" => "{port}"\n'
    assert out(port, "-3", "--no-raw", "get", "missing") == "(nil)\n"


def test_csv(port):
    out(port, "set", "k", "v")
    out(port, "set", "n", "1")
    assert out(port, "--csv", "mget", "k", "n", "missing") == '"v","1",NULL\n'
    assert out(port, "--csv", "incr", "n") == "2\n"
    assert out(port, "--csv", "ping") == '"PONG"\n'


def test_commands_from_stdin(port):
    text = out(port, stdin=b"set a 1\nget a\nincr a\n")
    assert text == "OK\n1\n2\n"


def test_stdin_quoted_args(port):
    text = out(port, stdin=b'set q "hello world"\nget q\nstrlen q\n')
    assert text == "OK\nhello world\n11\n"


def test_x_reads_last_arg_from_stdin(port):
    assert out(port, "-x", "set", "xk", stdin=b"from stdin\x00bin") == "OK\n"
    assert out(port, "strlen", "xk") == "14\n"


def test_info_server(port):
    text = out(port, "info", "server")
    lines = text.splitlines()
    assert lines[0] == "# Server"
    assert any(l.startswith("redis_version:") for l in lines)
    assert f"tcp_port:{port}" in lines


def test_command_docs_get(port):
    text = out(port, "command", "docs", "get")
    assert text.strip() != ""
    lines = text.splitlines()
    assert lines[0] == "get"
    assert "summary" in lines
    assert "Get the value of a key" in lines


def test_command_docs_all_is_parsable(port):
    # redis-cli fetches COMMAND DOCS at start-up for its hints; it must survive the full reply.
    text = out(port, "--no-raw", "command", "docs")
    assert '"get"' in text and '"set"' in text


def test_error_output(port):
    rc, stdout, stderr = cli(port, "foo", "bar")
    assert stdout == "ERR unknown command 'foo', with args beginning with: 'bar' \n\n"
    rc, stdout, stderr = cli(port, "--no-raw", "client", "foo")
    assert stdout == "(error) ERR unknown subcommand 'foo'. Try CLIENT HELP.\n"


def test_select_db(port):
    assert out(port, "-n", "3", "set", "dbk", "1") == "OK\n"
    assert out(port, "-n", "3", "dbsize") == "1\n"
    assert out(port, "dbsize") == "0\n"


def test_scan_mode(port):
    text = out(port, stdin=b"".join(b"set key:%d v\n" % i for i in range(50)))
    assert text.count("OK") == 50
    out(port, "set", "other", "1")
    keys = out(port, "--scan", "--pattern", "key:*").split()
    assert sorted(keys) == sorted(f"key:{i}" for i in range(50))


def test_repeat(port):
    assert out(port, "-r", "3", "incr", "c") == "1\n2\n3\n"


def test_bigkeys(port):
    out(port, "set", "small", "x")
    out(port, "set", "large", "x" * 1000)
    text = out(port, "--bigkeys")
    assert "Biggest string found '\"large\"' has 1000 bytes" in text


def test_memkeys(port):
    out(port, "set", "large", "x" * 5000)
    text = out(port, "--memkeys")
    assert "Biggest string found '\"large\"'" in text


def test_auth(spawn):
    srv = spawn("--requirepass", "secret", password="secret")
    assert out(srv.port, "ping").startswith("NOAUTH Authentication required.")
    assert out(srv.port, "-a", "secret", "--no-auth-warning", "ping") == "PONG\n"
    assert out(srv.port, "--user", "default", "--pass", "secret", "--no-auth-warning", "ping") == "PONG\n"
    rc, stdout, stderr = cli(srv.port, "-a", "wrong", "--no-auth-warning", "ping")
    assert "AUTH failed: WRONGPASS invalid username-password pair or user is disabled." in stderr
    assert out(srv.port, "-3", "-a", "secret", "--no-auth-warning", "--no-raw", "config", "get", "port") == (
        f'1# "port" => "{srv.port}"\n'
    )


# ---------------------------------------------------------------- tensors and hashes


def test_tensorset_tensorget(port):
    assert out(port, "AI.TENSORSET", "t", "FLOAT", "2", "VALUES", "1", "2") == "OK\n"
    assert out(port, "AI.TENSORGET", "t", "VALUES") == "1\n2\n"
    assert out(port, "--no-raw", "AI.TENSORGET", "t", "VALUES") == '1) "1"\n2) "2"\n'
    assert out(port, "type", "t") == "AI__TENSOR\n"
    assert out(port, "--no-raw", "AI.TENSORGET", "t", "META", "VALUES") == (
        '1) "dtype"\n2) "FLOAT"\n3) "shape"\n4) 1) (integer) 2\n5) "values"\n6) 1) "1"\n   2) "2"\n'
    )
    assert out(port, "AI.TENSORGET", "t", "META", "VALUES") == "dtype\nFLOAT\nshape\n2\nvalues\n1\n2\n"
    assert out(port, "--csv", "AI.TENSORGET", "t", "META", "VALUES") == (
        '"dtype","FLOAT","shape",2,"values","1","2"\n'
    )
    assert out(port, "AI.TENSORSET", "f", "FLOAT", "1", "VALUES", "0.1") == "OK\n"
    assert out(port, "AI.TENSORGET", "f", "VALUES") == "0.10000000149011612\n"


def test_tensorget_resp3(port):
    out(port, "AI.TENSORSET", "t", "DOUBLE", "1", "2", "VALUES", "1.5", "-2")
    # RedisAI's flat array in RESP3 too; the values are RESP3 doubles.
    assert out(port, "-3", "--no-raw", "AI.TENSORGET", "t", "META", "VALUES") == (
        '1) "dtype"\n'
        '2) "DOUBLE"\n'
        '3) "shape"\n'
        "4) 1) (integer) 1\n"
        "   2) (integer) 2\n"
        '5) "values"\n'
        "6) 1) (double) 1.5\n"
        "   2) (double) -2\n"
    )
    assert out(port, "-3", "--no-raw", "AI.TENSORGET", "t", "VALUES") == "1) (double) 1.5\n2) (double) -2\n"
    assert out(port, "-3", "AI.TENSORGET", "t", "META") == "dtype\nDOUBLE\nshape\n1\n2\n"


def test_tensor_blob_from_stdin(port):
    assert out(port, "-x", "AI.TENSORSET", "u", "UINT8", "2", "2", "BLOB", stdin=b"\x01\x02\x03\xff") == "OK\n"
    assert out(port, "AI.TENSORGET", "u", "VALUES") == "1\n2\n3\n255\n"
    assert out(port, "--no-raw", "AI.TENSORGET", "u", "BLOB") == '"\\x01\\x02\\x03\\xff"\n'
    assert out(port, "AI.TENSORGET", "u", "BLOB").encode("latin-1", "replace")[:3] == b"\x01\x02\x03"


def test_tensor_errors(port):
    assert out(port, "--no-raw", "AI.TENSORSET", "t", "FOO", "1") == "(error) ERR invalid data type\n"
    assert out(port, "--no-raw", "AI.TENSORGET", "nokey") == (
        "(error) ERR tensor key is empty or in a different shard\n"
    )
    out(port, "set", "s", "v")
    assert out(port, "--no-raw", "AI.TENSORGET", "s") == (
        "(error) WRONGTYPE Operation against a key holding the wrong kind of value\n"
    )
    assert out(port, "--no-raw", "AI.TENSORSET", "t", "FLOAT", "2", "VALUES", "1") == (
        "(error) ERR wrong number of values was given in 'AI.TENSORSET' command\n"
    )


def test_tensor_stdin_script(port):
    script = (
        b"AI.TENSORSET a INT32 1 2 VALUES 1 2\n"
        b"AI.TENSORSET b INT32 1 2 VALUES 3 4\n"
        b"AI.TENSORSTACK c a b\n"
        b"AI.TENSORGET c VALUES\n"
        b"HSET h x 5 y 6\n"
        b"AI.TENSORFROMHASH d INT64 h y x\n"
        b"AI.TENSORGET d VALUES\n"
        b"TYPE d\n"
    )
    assert out(port, stdin=script) == "OK\nOK\nOK\n1\n2\n3\n4\n2\nOK\n6\n5\nAI__TENSOR\n"


def test_tensor_bigkeys_memkeys_scan(port):
    out(port, "AI.TENSORSET", "small", "FLOAT", "2")
    out(port, "AI.TENSORSET", "large", "FLOAT", "100", "100")
    out(port, "set", "str", "x")
    text = out(port, "--memkeys")
    assert "Biggest AI__TENSOR found '\"large\"'" in text
    assert "2 AI__TENSORs with" in text
    text = out(port, "--bigkeys")
    assert "2 AI__TENSORs with" in text
    lines = out(port, "scan", "0", "type", "AI__TENSOR", "count", "1000").split()
    assert lines[0] == "0"
    assert sorted(lines[1:]) == ["large", "small"]


def test_hash_commands(port):
    assert out(port, "hset", "h", "a", "1", "b", "2") == "2\n"
    assert out(port, "hget", "h", "a") == "1\n"
    assert out(port, "--no-raw", "hget", "h", "zz") == "(nil)\n"
    assert out(port, "hincrby", "h", "a", "10") == "11\n"
    assert out(port, "hincrbyfloat", "h", "b", "0.5") == "2.5\n"
    assert out(port, "hlen", "h") == "2\n"
    assert out(port, "type", "h") == "hash\n"
    assert sorted(out(port, "hkeys", "h").split()) == ["a", "b"]
    assert out(port, "--no-raw", "hincrby", "h", "b", "1") == "(error) ERR hash value is not an integer\n"
    text = out(port, "-3", "--no-raw", "hgetall", "h")
    assert sorted(l.split(" ", 1)[1] for l in text.splitlines()) == ['"a" => "11"', '"b" => "2.5"']
