"""Fixtures for Locus's Redis compatibility suite.

Every test here talks to a live ``locus-server`` over TCP with real clients (redis-py, raw
sockets, redis-cli). The binary is taken from ``$LOCUS_SERVER``, or
``target/release/locus-server`` under the repository root (the parent of this folder).

Fixtures:
  server_port  session-wide server, started once; yields its port
  r2 / r3      redis-py clients speaking RESP2 / RESP3 (decode_responses=True), FLUSHALL first
  rb           RESP2 client with decode_responses=False, for binary values
  spawn        factory: spawn(*args, config_file=None) starts an extra server, killed at test end
  raw          factory: raw(port=None) opens a RawConn (plain socket with RESP helpers)
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import redis

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_BIN = os.environ.get("LOCUS_SERVER") or os.path.join(
    REPO_ROOT, "target", "release", "locus-server"
)
if not os.path.isabs(SERVER_BIN):
    SERVER_BIN = os.path.join(REPO_ROOT, SERVER_BIN)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One running server process, with its port, working folder and log."""

    def __init__(self, args=(), config_file=None, password=None, binary=None):
        self.binary = binary or SERVER_BIN
        if not os.path.exists(self.binary):
            pytest.exit(f"server binary not found: {self.binary} (set LOCUS_SERVER)", 2)
        self.port = free_port()
        self.password = password
        self.workdir = tempfile.mkdtemp(prefix="locus-test-")
        self.log_path = os.path.join(self.workdir, "server.log")
        cmd = [self.binary]
        if config_file:
            cmd.append(config_file)
        cmd += ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        if "--http-port" not in [str(a) for a in args]:
            # Servers run side by side: no shared default HTTP port.
            cmd += ["--http-port", "0"]
        if "--grpc-port" not in [str(a) for a in args]:
            cmd += ["--grpc-port", "0"]
        cmd += [str(a) for a in args]
        self.cmd = cmd
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            cmd, cwd=self.workdir, stdout=self.log, stderr=subprocess.STDOUT
        )
        self._wait_ready()

    def _wait_ready(self, timeout=10.0):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}: {self.read_log()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if self.password is not None:
                        s.sendall(encode_command("AUTH", self.password))
                        s.recv(1024)
                    s.sendall(b"PING\r\n")
                    data = s.recv(1024)
                    if data.startswith(b"+PONG"):
                        return
                    last = data
            except OSError as e:
                last = e
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not answer PING on {self.port}: {last!r}")

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def client(self, **kw):
        kw.setdefault("decode_responses", True)
        if self.password is not None:
            kw.setdefault("password", self.password)
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def stop(self):
        if self.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if self.password is not None:
                        s.sendall(encode_command("AUTH", self.password))
                    s.sendall(encode_command("SHUTDOWN", "NOSAVE"))
                    s.settimeout(1)
                    try:
                        s.recv(1024)
                    except OSError:
                        pass
            except OSError:
                pass
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


# ---------------------------------------------------------------- RESP helpers for raw sockets


def encode_command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class ErrorReply(Exception):
    pass


class RawConn:
    """A plain TCP connection that sends bytes and parses RESP2/RESP3 replies."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, *args):
        self.send(encode_command(*args))
        return self.read()

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("connection closed by server")
        self.buf += chunk

    def readline(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def readexact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read(self):
        """One reply. Errors come back as ErrorReply instances (not raised)."""
        line = self.readline()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t in (b"-", b"!"):
            if t == b"!":
                rest = self.readexact(int(rest) + 2)[:-2]
            return ErrorReply(rest.decode())
        if t == b":":
            return int(rest)
        if t in (b"$", b"=", b"("):
            if t == b"(":
                return int(rest)
            n = int(rest)
            if n < 0:
                return None
            return self.readexact(n + 2)[:-2]
        if t in (b"*", b"~", b">"):
            n = int(rest)
            if n < 0:
                return None
            return [self.read() for _ in range(n)]
        if t == b"%" or t == b"|":
            n = int(rest)
            return {_hashable(self.read()): self.read() for _ in range(n)}
        if t == b"_":
            return None
        if t == b",":
            return float(rest)
        if t == b"#":
            return rest == b"t"
        raise ValueError(f"unexpected reply line {line!r}")

    def read_closed(self, timeout=3.0):
        """True once the server has closed the connection (EOF or reset) within timeout."""
        self.sock.settimeout(timeout)
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        return False


def _hashable(v):
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    return v


# ---------------------------------------------------------------- fixtures


# LOCUS_TARGET=module runs the AI suites against stock redis-server with the Locus module
# (module_server.py) instead of locus-server; tests of what only locus-server has are marked
# `locus_only` and skipped there.
MODULE_TARGET = os.environ.get("LOCUS_TARGET") == "module"
# TYPE's answer for tensors and routers: Redis module type names have nine characters (the
# module has RedisAI's AI_TENSOR), locus-server's have ten.
TENSOR_TYPE = "AI_TENSOR" if MODULE_TARGET else "AI__TENSOR"
ROUTER_TYPE = "AI_ROUTER" if MODULE_TARGET else "AI__ROUTER"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "locus_only: needs locus-server itself (skipped against the module)")
    # The test command runs the suite on two pytest-xdist workers, a file to a worker, then
    # these alone: they measure latency or overlap on an otherwise quiet machine.
    config.addinivalue_line(
        "markers", "serial: measures timing; the test command runs it with nothing beside it")


def pytest_collection_modifyitems(config, items):
    if not MODULE_TARGET:
        return
    skip = pytest.mark.skip(reason="locus-server only (not part of the Redis module)")
    for item in items:
        if "locus_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def server():
    if MODULE_TARGET:
        from module_server import ModuleServer
        srv = ModuleServer()
    else:
        srv = ServerProcess()
    yield srv
    alive = srv.alive()
    log = srv.read_log()
    srv.stop()
    if not alive:
        pytest.fail(f"the shared server died during the session; log tail:\n{log[-4000:]}")


@pytest.fixture(autouse=True)
def _shared_server_still_alive(server):
    """Fails the test (at teardown) that left the shared server dead, with its log."""
    yield
    if not server.alive():
        pytest.fail(
            f"the shared server exited with {server.proc.returncode} during this test; "
            f"log tail:\n{server.read_log()[-4000:]}"
        )


@pytest.fixture(scope="session")
def server_port(server):
    return server.port


def _client(port, protocol, decode=True):
    c = redis.Redis(
        host="127.0.0.1",
        port=port,
        protocol=protocol,
        decode_responses=decode,
        socket_timeout=10,
    )
    return c


@pytest.fixture
def r2(server_port):
    c = _client(server_port, 2)
    c.flushall()
    yield c
    c.close()


@pytest.fixture
def r3(server_port):
    c = _client(server_port, 3)
    c.flushall()
    yield c
    c.close()


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def r(request, server_port):
    """Parametrised: the same test once over RESP2 and once over RESP3."""
    c = _client(server_port, request.param)
    c.flushall()
    yield c
    c.close()


@pytest.fixture
def rb(server_port):
    c = _client(server_port, 2, decode=False)
    c.flushall()
    yield c
    c.close()


@pytest.fixture
def raw(server_port):
    conns = []

    def make(port=None, timeout=5.0):
        c = RawConn(port or server_port, timeout=timeout)
        conns.append(c)
        return c

    yield make
    for c in conns:
        c.close()


@pytest.fixture
def spawn():
    """spawn(*args, config_file=None, password=None) -> ServerProcess, stopped at test end."""
    servers = []

    def make(*args, config_file=None, password=None):
        s = ServerProcess(args, config_file=config_file, password=password)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def spawn_target(spawn):
    """Like `spawn`, but under LOCUS_TARGET=module it starts stock redis-server with the module,
    given the same arguments (--dir, --appendonly, …): for tests of what both hosts have."""
    if not MODULE_TARGET:
        yield spawn
        return
    from module_server import ModuleServer
    servers = []

    def make(*args):
        s = ModuleServer(*args)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


class Tap(RawConn):
    """A RawConn that also keeps the raw bytes of the last reply, for byte-for-byte comparisons
    with redis-server."""

    tape = b""

    def readline(self):
        line = super().readline()
        self.tape += line + b"\r\n"
        return line

    def readexact(self, n):
        data = super().readexact(n)
        self.tape += data
        return data

    def reply_bytes(self, *args):
        self.tape = b""
        self.cmd(*args)
        return self.tape

    def read_bytes(self):
        self.tape = b""
        self.read()
        return self.tape


# ---- differential tests against a stock redis-server ------------------------------------

def start_redis(*args, workdir=None):
    """A throwaway redis-server (Debian's, 7.0) on a free port: (process, port)."""
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is needed for the differential tests")
    port = free_port()
    d = workdir or tempfile.mkdtemp(prefix="locus-ref-redis-")
    p = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                          "--dir", d, *map(str, args)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if p.poll() is not None:
                return p, None
            time.sleep(0.05)
    return p, port


def reply_or_error(c, *args):
    """A command's reply, or its error's class and text: what differential tests compare."""
    try:
        return ("ok", c.execute_command(*args))
    except redis.RedisError as e:
        return (type(e).__name__, str(e))


# A script that busies the server for ARGV[1] microseconds (by the server's clock).
BUSY_SCRIPT = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
repeat
  t = redis.call('TIME')
until t[1] * 1000000 + t[2] - start >= tonumber(ARGV[1])
return 1
"""


def same(pair, *args):
    """Runs a command on Locus and on redis-server and asserts the replies are equal."""
    got, want = reply_or_error(pair[0], *args), reply_or_error(pair[1], *args)
    assert got == want, (args, got, want)
    return got


@pytest.fixture(scope="module")
def ref_servers():
    """A Locus server and a redis-server, for one test module: their ports."""
    locus = ServerProcess()
    ref, port = start_redis()
    yield locus.port, port
    locus.stop()
    ref.terminate()
    ref.wait()


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def ref_pair(request, ref_servers):
    """Binary clients of both servers (Locus first), flushed, once per protocol version."""
    a = redis.Redis(port=ref_servers[0], protocol=request.param, decode_responses=False)
    b = redis.Redis(port=ref_servers[1], protocol=request.param, decode_responses=False)
    for c in (a, b):
        c.flushall()
    yield a, b

