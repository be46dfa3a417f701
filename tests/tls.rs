//! TLS on the RESP port with certificates made at run time (rcgen): a client presenting a
//! certificate signed by the configured CA is served; one without is refused while
//! `tls-auth-clients yes`; the plain port keeps working beside the TLS one.

use crate::common;

use common::{free_port, TestServer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Pki {
    ca: rcgen::Certificate,
    client: rcgen::Certificate,
    client_key: rcgen::KeyPair,
}

fn make_pki(dir: &std::path::Path) -> Pki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client = rcgen::CertificateParams::new(vec!["client".into()])
        .unwrap()
        .signed_by(&client_key, &ca, &ca_key)
        .unwrap();
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.crt"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    Pki {
        ca,
        client,
        client_key,
    }
}

fn connect(pki: &Pki, port: u16, with_cert: bool) -> std::io::Result<Vec<u8>> {
    let provider = Arc::new(locus::server::tls::ring_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if with_cert {
        let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(pki.client_key.serialize_der()));
        let chain: Vec<CertificateDer<'static>> = vec![pki.client.der().clone()];
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\ntls\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
    )?;
    let want = b"+OK\r\n+PONG\r\n$3\r\ntls\r\n".len();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < want {
        let n = tls.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(got)
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the TLS port never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn tls_port_serves_clients_with_certificates_signed_by_the_ca() {
    let dir =
        std::env::temp_dir().join(format!("locus-tls-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = make_pki(&dir);
    let tls_port = free_port();
    let path = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let server = TestServer::start_in(
        &dir,
        &[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &path("server.crt"),
            "--tls-key-file",
            &path("server.key"),
            "--tls-ca-cert-file",
            &path("ca.crt"),
        ],
    );
    wait_port(tls_port);
    assert_eq!(
        connect(&pki, tls_port, true).unwrap(),
        b"+OK\r\n+PONG\r\n$3\r\ntls\r\n"
    );
    // No client certificate while tls-auth-clients is yes: the handshake fails.
    assert!(!matches!(connect(&pki, tls_port, false), Ok(ref r) if r.starts_with(b"+OK")));
    let mut plain = server.conn();
    let v: String = redis::cmd("GET").arg("k").query(&mut plain).unwrap();
    assert_eq!(v, "tls");
}
