"""TLS on the RESP port (`tls-port`) and, with `tls-http yes`, on the HTTP and gRPC ports, driven
by stock clients: `redis-cli --tls`, redis-py with `ssl=True`, `redis-benchmark --tls`, urllib
over HTTPS and tritonclient's gRPC with TLS. Certificates (a CA, the server's, a client's) are
generated at run time."""

import datetime
import ipaddress
import json
import ssl
import subprocess
import urllib.request

import numpy as np
import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import SERVER_BIN, ServerProcess, free_port
from test_routers import scale


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer, issuer_key, ca=False, san=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Locus Test CA", ca_key, "Locus Test CA", ca_key, ca=True)
    out = {"dir": d}
    for name, san in (("server", [x509.DNSName("localhost"),
                                  x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                      ("client", None)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(name, key, "Locus Test CA", ca_key, san=san)
        (d / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / f"{name}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        out[name] = (str(d / f"{name}.crt"), str(d / f"{name}.key"))
    (d / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out["ca"] = str(d / "ca.crt")
    return out


def tls_args(certs, *extra):
    return ["--tls-cert-file", certs["server"][0], "--tls-key-file", certs["server"][1],
            "--tls-ca-cert-file", certs["ca"], *extra]


def tls_client(port, certs, client_cert=True, **kw):
    opts = dict(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=certs["ca"],
                decode_responses=True, **kw)
    if client_cert:
        opts.update(ssl_certfile=certs["client"][0], ssl_keyfile=certs["client"][1])
    return redis.Redis(**opts)


@pytest.fixture(scope="module")
def srv(certs):
    tls = free_port()
    s = ServerProcess(["--tls-port", tls, *tls_args(certs)])
    s.tls = tls
    yield s
    s.stop()


def test_redis_cli_and_redis_py_over_tls(srv, certs):
    cli = ["redis-cli", "-p", str(srv.tls), "--tls", "--cacert", certs["ca"],
           "--cert", certs["client"][0], "--key", certs["client"][1]]
    assert subprocess.run(cli + ["SET", "k", "over-tls"], capture_output=True, text=True,
                          timeout=10).stdout.strip() == "OK"
    assert subprocess.run(cli + ["GET", "k"], capture_output=True, text=True,
                          timeout=10).stdout.strip() == "over-tls"
    c = tls_client(srv.tls, certs)
    assert c.get("k") == "over-tls"
    # Pipelines and large values cross TLS records intact.
    big = "x" * 1_000_000
    p = c.pipeline(transaction=False)
    for i in range(100):
        p.set(f"p{i}", big if i == 50 else str(i))
        p.get(f"p{i}")
    out = p.execute()
    assert out[101] == big and out[199] == "99"
    # The plain port keeps working beside the TLS one.
    assert srv.client().get("k") == "over-tls"
    info = c.execute_command("CLIENT", "INFO")
    assert "laddr=127.0.0.1:%d" % srv.tls in info


def test_tls_auth_clients_yes_no_optional(certs, spawn):
    port = free_port()
    s = spawn("--tls-port", port, *tls_args(certs))
    with pytest.raises(redis.ConnectionError):
        tls_client(port, certs, client_cert=False).ping()
    assert tls_client(port, certs).ping()
    for mode in ("optional", "no"):
        port = free_port()
        spawn("--tls-port", port, *tls_args(certs, "--tls-auth-clients", mode))
        assert tls_client(port, certs, client_cert=False).ping()
        if mode == "optional":
            assert tls_client(port, certs).ping()
    assert s.client().ping()


def ping_over(port, certs, max_version=None, min_version=None, ciphers=None):
    """A TLS handshake with Python's ssl, limited as asked, then PING: True on +PONG."""
    import socket
    ctx = ssl.create_default_context(cafile=certs["ca"])
    ctx.load_cert_chain(*certs["client"])
    if max_version:
        ctx.maximum_version = max_version
    if min_version:
        ctx.minimum_version = min_version
    if ciphers:
        ctx.set_ciphers(ciphers)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"PING\r\n")
                return tls.recv(7) == b"+PONG\r\n"
    except (ssl.SSLError, OSError):
        return False


def test_protocols_and_ciphers(certs, spawn):
    port = free_port()
    spawn("--tls-port", port, *tls_args(certs, "--tls-protocols", "TLSv1.3"))
    assert not ping_over(port, certs, max_version=ssl.TLSVersion.TLSv1_2)
    assert ping_over(port, certs, min_version=ssl.TLSVersion.TLSv1_3)
    port = free_port()
    spawn("--tls-port", port, *tls_args(certs, "--tls-protocols", "TLSv1.2",
                                        "--tls-ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"))
    assert ping_over(port, certs, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    assert not ping_over(port, certs, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")
    assert not ping_over(port, certs, min_version=ssl.TLSVersion.TLSv1_3)


def test_redis_benchmark_over_tls(srv, certs):
    out = subprocess.run(["redis-benchmark", "-p", str(srv.tls), "--tls", "--cacert", certs["ca"],
                          "--cert", certs["client"][0], "--key", certs["client"][1],
                          "-t", "set,get", "-n", "5000", "-c", "10", "-P", "4", "--csv"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = {line.split(",")[0].strip('"'): float(line.split(",")[1].strip('"'))
            for line in out.stdout.splitlines()[1:]}
    assert rows["SET"] > 0 and rows["GET"] > 0


def test_bad_input_on_the_tls_port(srv, certs):
    import socket
    # Plain RESP on the TLS port: at most a TLS alert, then the connection is closed.
    with socket.create_connection(("127.0.0.1", srv.tls), timeout=5) as sock:
        sock.sendall(b"PING\r\n*3\r\n$3\r\nSET\r\n")
        got = b""
        while True:
            chunk = sock.recv(100)
            if not chunk:
                break
            got += chunk
        assert b"PONG" not in got and len(got) < 16
    # A client that connects and says nothing does not hold anything up.
    idle = socket.create_connection(("127.0.0.1", srv.tls), timeout=5)
    try:
        assert tls_client(srv.tls, certs).ping()
    finally:
        idle.close()
    assert srv.client().ping()


def test_bad_certificates_stop_the_start(certs, tmp_path):
    (tmp_path / "bad.crt").write_text("not a certificate")
    proc = subprocess.run([SERVER_BIN, "--port", str(free_port()), "--tls-port", str(free_port()),
                           "--tls-cert-file", str(tmp_path / "bad.crt"),
                           "--tls-key-file", certs["server"][1], "--tls-auth-clients", "no",
                           "--http-port", "0", "--grpc-port", "0"],
                          capture_output=True, text=True, timeout=20, cwd=tmp_path)
    assert proc.returncode != 0
    assert "Failed to load certificate" in proc.stdout + proc.stderr


def test_http_and_grpc_take_the_same_certificates(certs, spawn):
    grpc_client = pytest.importorskip("tritonclient.grpc")
    http, grpc = free_port(), free_port()
    s = spawn("--http-port", http, "--grpc-port", grpc, "--tls-http", "yes",
              *tls_args(certs, "--tls-auth-clients", "optional"))
    c = s.client()
    c.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", scale(2))
    ctx = ssl.create_default_context(cafile=certs["ca"])
    with urllib.request.urlopen(f"https://127.0.0.1:{http}/healthz", context=ctx,
                                timeout=10) as r:
        assert json.loads(r.read())["status"] == "ok"
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                   "data": [1, 2, 3, 4]}]}).encode()
    req = urllib.request.Request(f"https://127.0.0.1:{http}/v2/models/m/infer", data=body,
                                 method="POST")
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        assert json.loads(r.read())["outputs"][0]["data"] == [2, 4, 6, 8]
    with pytest.raises(Exception):
        urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=5)
    g = grpc_client.InferenceServerClient(
        f"127.0.0.1:{grpc}", ssl=True, root_certificates=certs["ca"])
    x = grpc_client.InferInput("x", [1, 4], "FP32")
    x.set_data_from_numpy(np.arange(4, dtype=np.float32).reshape(1, 4))
    assert g.infer("m", [x]).as_numpy("y").tolist() == [[0, 2, 4, 6]]


def test_acl_users_over_the_tls_port(srv, certs):
    """ACL rules hold on the TLS port as on the plain one: AUTH, HELLO AUTH, key patterns,
    NOPERM texts and the ACL log's entries."""
    admin = srv.client(decode_responses=True)
    admin.execute_command("ACL", "SETUSER", "tlsuser", "on", ">s3cret", "+get", "+set", "+acl|whoami",
                          "~t:*")
    try:
        c = tls_client(srv.tls, certs, username="tlsuser", password="s3cret")
        assert c.set("t:1", "v") and c.get("t:1") == "v"
        assert c.execute_command("ACL", "WHOAMI") == "tlsuser"
        with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions to access one of the keys"):
            c.set("other", "v")
        with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions to run the 'del'"):
            c.delete("t:1")
        with pytest.raises(redis.exceptions.AuthenticationError):
            tls_client(srv.tls, certs, username="tlsuser", password="wrong").ping()
        h = tls_client(srv.tls, certs, protocol=3, username="tlsuser", password="s3cret")
        assert h.get("t:1") == "v"
        log = admin.execute_command("ACL", "LOG", "3")
        assert any("tlsuser" in str(e) for e in log)
    finally:
        admin.execute_command("ACL", "DELUSER", "tlsuser")
