//! TLS with rustls, configured as Redis configures OpenSSL: `tls-port`, `tls-cert-file`,
//! `tls-key-file`, `tls-ca-cert-file` / `tls-ca-cert-dir`, `tls-auth-clients yes|no|optional`,
//! `tls-protocols`, `tls-ciphersuites` (TLS 1.3) and `tls-ciphers` (TLS 1.2, OpenSSL's names),
//! `tls-session-caching` and its size. The RESP TLS port, and with `tls-http yes` the HTTP and
//! gRPC ports, take the same certificates.

use crate::config::Config;
use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use std::sync::Arc;

/// ring's provider. rustls 0.23.48 marks it deprecated to steer users to aws-lc-rs for
/// post-quantum key exchange; ring builds with nothing but a C compiler, which the test
/// command's machines have, and the TLS Redis clients speak does not need post-quantum groups.
#[allow(deprecated)]
pub fn ring_provider() -> rustls::crypto::CryptoProvider {
    provider::default_provider()
}

/// Whether any TLS listener is configured.
pub fn wanted(config: &Config) -> bool {
    config.get_i64("tls-port") != 0 || config.get_bool("tls-http")
}

fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("Failed to load certificate: {path}: {e}"))?
        .collect();
    let certs = certs.map_err(|e| format!("Failed to load certificate: {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "Failed to load certificate: {path}: no certificate"
        ));
    }
    Ok(certs)
}

/// The CA certificates client certificates are checked against.
fn roots(config: &Config) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let mut files = Vec::new();
    let file = config.get("tls-ca-cert-file");
    if !file.is_empty() {
        files.push(file);
    }
    let dir = config.get("tls-ca-cert-dir");
    if !dir.is_empty() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| format!("Failed to load CA certificates: {dir}: {e}"))?;
        for e in entries.flatten() {
            if e.path().is_file() {
                files.push(e.path().display().to_string());
            }
        }
    }
    for f in files {
        for c in read_certs(&f)? {
            roots
                .add(c)
                .map_err(|e| format!("Failed to load CA certificate {f}: {e}"))?;
        }
    }
    Ok(roots)
}

/// `tls-protocols`: "TLSv1.2 TLSv1.3" by default; TLS 1.0 and 1.1 are not offered by rustls.
fn protocols(config: &Config) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let text = config.get("tls-protocols");
    if text.trim().is_empty() {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    }
    let mut out = Vec::new();
    for p in text.split_whitespace() {
        match p.to_ascii_lowercase().as_str() {
            "tlsv1.3" => out.push(&rustls::version::TLS13),
            "tlsv1.2" => out.push(&rustls::version::TLS12),
            "tlsv1" | "tlsv1.1" => {
                tracing::warn!("{p} is not supported (rustls offers TLSv1.2 and TLSv1.3)")
            }
            _ => return Err(format!("Invalid tls-protocols specified: {p}")),
        }
    }
    if out.is_empty() {
        return Err("Failed to configure TLS: no supported protocol in tls-protocols".into());
    }
    Ok(out)
}

/// OpenSSL's (and IANA's) names of the cipher suites rustls implements.
fn suite_names(s: &SupportedCipherSuite) -> &'static [&'static str] {
    use rustls::CipherSuite as C;
    match s.suite() {
        C::TLS13_AES_256_GCM_SHA384 => &["TLS_AES_256_GCM_SHA384"],
        C::TLS13_AES_128_GCM_SHA256 => &["TLS_AES_128_GCM_SHA256"],
        C::TLS13_CHACHA20_POLY1305_SHA256 => &["TLS_CHACHA20_POLY1305_SHA256"],
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => &["ECDHE-ECDSA-AES256-GCM-SHA384"],
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => &["ECDHE-ECDSA-AES128-GCM-SHA256"],
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => &["ECDHE-ECDSA-CHACHA20-POLY1305"],
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => &["ECDHE-RSA-AES256-GCM-SHA384"],
        C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => &["ECDHE-RSA-AES128-GCM-SHA256"],
        C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => &["ECDHE-RSA-CHACHA20-POLY1305"],
        _ => &[],
    }
}

/// The suites `tls-ciphersuites` (TLS 1.3) and `tls-ciphers` (TLS 1.2) allow, each an
/// OpenSSL-style `:`-separated list; names rustls does not implement are skipped, as OpenSSL
/// skips those it lacks, but a list naming none it has is an error.
fn suites(config: &Config) -> Result<Vec<SupportedCipherSuite>, String> {
    let all = ring_provider().cipher_suites;
    let pick = |param: &str, tls13: bool| -> Result<Vec<SupportedCipherSuite>, String> {
        let of_kind: Vec<_> = all
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)) == tls13)
            .copied()
            .collect();
        let text = config.get(param);
        if text.trim().is_empty() {
            return Ok(of_kind);
        }
        let wanted: Vec<&str> = text.split(':').map(str::trim).collect();
        let chosen: Vec<_> = of_kind
            .into_iter()
            .filter(|s| suite_names(s).iter().any(|n| wanted.contains(n)))
            .collect();
        if chosen.is_empty() {
            return Err(format!(
                "Failed to configure TLS: {param} names no cipher this server supports: {text}"
            ));
        }
        Ok(chosen)
    };
    let mut out = pick("tls-ciphersuites", true)?;
    out.extend(pick("tls-ciphers", false)?);
    Ok(out)
}

/// The server configuration from the `tls-*` parameters, with `alpn` offered (HTTP/2 for
/// gRPC, HTTP/1.1 for the REST API, none for RESP).
pub fn server_config(config: &Config, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, String> {
    let cert_file = config.get("tls-cert-file");
    let key_file = config.get("tls-key-file");
    if cert_file.is_empty() || key_file.is_empty() {
        return Err("Failed to configure TLS: tls-cert-file and tls-key-file are required".into());
    }
    let certs = read_certs(&cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .map_err(|e| format!("Failed to load private key: {key_file}: {e}"))?;
    let mut provider = ring_provider();
    provider.cipher_suites = suites(config)?;
    let builder = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&protocols(config)?)
        .map_err(|e| format!("Failed to configure TLS: {e}"))?;
    let auth = config.get("tls-auth-clients");
    let builder = if auth == "no" {
        builder.with_no_client_auth()
    } else {
        let roots = roots(config)?;
        if roots.is_empty() {
            return Err("Failed to configure TLS: tls-auth-clients needs tls-ca-cert-file or tls-ca-cert-dir (or tls-auth-clients no)".into());
        }
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots));
        let verifier = if auth == "optional" {
            verifier.allow_unauthenticated()
        } else {
            verifier
        };
        builder.with_client_cert_verifier(
            verifier
                .build()
                .map_err(|e| format!("Failed to configure TLS: {e}"))?,
        )
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("Failed to configure TLS: {e}"))?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    if config.get_bool("tls-session-caching") {
        let size = config.get_i64("tls-session-cache-size").max(1) as usize;
        cfg.session_storage = ServerSessionMemoryCache::new(size);
    } else {
        cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        cfg.send_tls13_tickets = 0;
    }
    Ok(Arc::new(cfg))
}

/// How long a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
