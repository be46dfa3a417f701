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
