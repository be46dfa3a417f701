"""Stock redis-server (Debian's 7.0) with Locus loaded as a module, for the module's tests.

The library is ``$LOCUS_MODULE`` or ``target/release/liblocus_redis.so`` (built by the test
command with ``cargo build --release -p locus-redis``).
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

from conftest import REPO_ROOT, free_port

MODULE_LIB = os.environ.get("LOCUS_MODULE") or os.path.join(
    REPO_ROOT, "target", "release", "liblocus_redis.so"
)


def _bindable(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_cluster_port():
    """A free port whose cluster bus port (port + 10000) is free too (an ephemeral port from
    the kernel can be too high for that)."""
    import random
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(20000, 30000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


class ModuleServer:
    """One redis-server with the module: its port, folder and log."""

    def __init__(self, *args, module_args=(), port=None, workdir=None, cluster=False):
        if not shutil.which("redis-server"):
            pytest.fail("redis-server is needed for the module's tests")
        if not os.path.exists(MODULE_LIB):
            pytest.fail(f"module not built: {MODULE_LIB} (cargo build --release -p locus-redis)")
        self.port = port or (free_cluster_port() if cluster else free_port())
        self.workdir = workdir or tempfile.mkdtemp(prefix="locus-module-")
        self.log_path = os.path.join(self.workdir, "redis.log")
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
               "--dir", self.workdir, "--logfile", self.log_path,
               "--enable-debug-command", "yes",
               "--loadmodule", MODULE_LIB, *map(str, module_args)]
        if cluster:
            cmd += ["--cluster-enabled", "yes",
                    "--cluster-config-file", os.path.join(self.workdir, "nodes.conf"),
                    "--cluster-node-timeout", "2000",
                    # A new replica syncs at once (Redis 7 waits 5 s by default for more
                    # replicas to share a diskless transfer).
                    "--repl-diskless-sync-delay", "0"]
        cmd += [str(a) for a in args]
        if "--save" not in cmd:
            cmd += ["--save", ""]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready()

    def _wait_ready(self, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.read_log()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on {self.port}")

    def read_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def client(self, **kw):
        kw.setdefault("decode_responses", False)
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def kill(self):
        """kill -9: no shutdown, no save."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, keep_dir=False):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if not keep_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
