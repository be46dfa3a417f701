"""Protected mode, as Redis 7.0 has it, on every face: with `protected-mode yes` and no
password for the default user, only 127.0.0.1 and ::1 are served. A RESP client elsewhere gets
Redis's DENIED text and is closed (compared with redis-server byte for byte); HTTP answers 403
except the health checks; gRPC answers PERMISSION_DENIED.

Other hosts are played by connecting from 127.0.0.2: Linux routes all of 127.0.0.0/8 to the
loopback interface, and Redis (and Locus) count only 127.0.0.1 itself as local."""

import http.client
import json
import socket

import pytest
import redis

from conftest import free_port, start_redis

OTHER = "127.0.0.2"


def from_other_host(port, payload=b"PING\r\n"):
    """Connects from 127.0.0.2, sends `payload`, and returns everything read until the server
    closes or goes quiet for a second."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1.0)
    s.bind((OTHER, 0))
    s.connect(("127.0.0.1", port))
    try:
        s.sendall(payload)
    except OSError:
        pass
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return got


@pytest.fixture
def pair(spawn):
    locus = spawn("--http-port", free_port())
    ref, port = start_redis()
    yield locus, port
    ref.terminate()
    ref.wait()


def test_resp_as_redis_answers_other_hosts(pair):
    locus, ref_port = pair
    ports = [locus.port, ref_port]
    clients = [redis.Redis(port=p) for p in ports]
    # Protected, no password: Redis's DENIED text, then the connection is closed.
    denied = [from_other_host(p) for p in ports]
    assert denied[0] == denied[1], denied
    assert denied[0].startswith(b"-DENIED Redis is running in protected mode")
    for c in clients:
        assert c.info("stats")["rejected_connections"] == 1
        assert c.ping(), "local clients are served"
    # Turned off from the loopback interface: served.
    for c in clients:
        c.config_set("protected-mode", "no")
    assert [from_other_host(p) for p in ports] == [b"+PONG\r\n"] * 2
    # On again, with a password: the connection is kept and asked to authenticate.
    for c in clients:
        c.config_set("protected-mode", "yes")
        c.config_set("requirepass", "s3cret")
    got = [from_other_host(p, b"PING\r\nAUTH s3cret\r\nPING\r\n") for p in ports]
    assert got[0] == got[1] == b"-NOAUTH Authentication required.\r\n+OK\r\n+PONG\r\n", got
    for c in clients:
        c.execute_command("AUTH", "s3cret")
        c.config_set("requirepass", "")
        assert c.info("stats")["rejected_connections"] == 1


def http_get(port, path, source=OTHER):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read().decode()
    conn.close()
    return r.status, body


def test_http_refuses_other_hosts_but_health_checks(pair):
    locus, _ = pair
    port = int(locus.client().config_get("http-port")["http-port"])
    status, body = http_get(port, "/metrics")
    assert status == 403 and "protected mode" in json.loads(body)["error"]
    assert http_get(port, "/v2")[0] == 403
    assert http_get(port, "/")[0] == 403, "the dashboard too"
    assert http_get(port, "/healthz")[0] == 200
    assert http_get(port, "/v2/health/live")[0] == 200
    assert http_get(port, "/metrics", source="127.0.0.1")[0] == 200
    c = locus.client()
    c.config_set("protected-mode", "no")
    assert http_get(port, "/metrics")[0] == 200
    c.config_set("protected-mode", "yes")
    # A password lifts protected mode; the credentials are then what is asked for.
    c.config_set("requirepass", "s3cret")
    assert http_get(port, "/metrics")[0] == 401


def outward_address():
    """This host's address on its default route, if it has one other than loopback."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.254", 9))
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") else ip


def test_grpc_refuses_other_hosts(spawn):
    grpc_client = pytest.importorskip("tritonclient.grpc")
    ip = outward_address()
    if ip is None:
        pytest.skip("this host has no address besides loopback for a gRPC client to come from")
    port = free_port()
    srv = spawn("--grpc-port", port, "--bind", f"127.0.0.1 {ip}")
    outside = grpc_client.InferenceServerClient(f"{ip}:{port}")
    local = grpc_client.InferenceServerClient(f"127.0.0.1:{port}")
    with pytest.raises(grpc_client.InferenceServerException) as e:
        outside.get_server_metadata()
    assert "PERMISSION_DENIED" in str(e.value.status()) and "protected mode" in e.value.message()
    assert outside.is_server_live(), "liveness stays open"
    assert local.get_server_metadata().name
    srv.client().config_set("protected-mode", "no")
    assert outside.get_server_metadata().name
