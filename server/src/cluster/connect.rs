//! How a node reaches Redis: the `fred` client configuration made from
//! `[cluster]` (the URL, the ACL user and password, TLS for `rediss://` with
//! the configured CA and optional client certificate), and what a failure to
//! connect is explained as, so that an operator reads the cause (an untrusted
//! CA, a name the certificate lacks, TLS on one side only, a wrong password, a
//! missing ACL permission) rather than a bare driver error. It sends no
//! commands: the bridge does.

use super::keys::ClusterError;
use crate::config::ClusterConfig;
use fred::types::config::{Config, TlsConfig, TlsConnector, TlsHostMapping};
use std::path::Path;

/// The scheme of a TLS connection to one Redis server.
const TLS_SCHEME: &str = "rediss://";

/// The client configuration for `cfg`'s Redis: credentials from the config
/// fields (else the URL's) and, for `rediss://`, TLS with this build's
/// rustls (ring) and the configured trust.
pub(super) fn redis_config(cfg: &ClusterConfig) -> Result<Config, ClusterError> {
    let url = &cfg.redis_url;
    let tls = url.starts_with(TLS_SCHEME);
    // Parsed as plain, so that the driver does not build a TLS setup of its
    // own (system roots only): ours follows the configuration.
    let plain = if tls { format!("redis://{}", &url[TLS_SCHEME.len()..]) } else { url.clone() };
    let mut config = Config::from_url(&plain).map_err(|e| ClusterError::redis(url, e))?;
    if !cfg.redis_username.is_empty() {
        config.username = Some(cfg.redis_username.clone());
    }
    if !cfg.redis_password.is_empty() {
        config.password = Some(cfg.redis_password.clone());
    }
    if tls {
        let client = rustls_config(cfg)
            .map_err(|e| ClusterError::Tls { url: crate::config::redact_url(url), reason: format!("{e:#}") })?;
        config.tls = Some(TlsConfig { connector: TlsConnector::from(client), hostnames: TlsHostMapping::None });
    }
    Ok(config)
}

/// The rustls client setup: roots from `redis_ca_file` (else the system's),
/// a client certificate when one is configured.
fn rustls_config(cfg: &ClusterConfig) -> anyhow::Result<rustls::ClientConfig> {
    use anyhow::Context;
    let mut roots = rustls::RootCertStore::empty();
    if cfg.redis_ca_file.is_empty() {
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        anyhow::ensure!(
            added > 0,
            "no trusted CA certificates found on this system (set cluster.redis_ca_file to the CA that signs the \
             Redis server's certificate)"
        );
    } else {
        let path = Path::new(&cfg.redis_ca_file);
        for cert in crate::tls::read_certs(path).context("cluster.redis_ca_file")? {
            roots.add(cert).with_context(|| format!("cluster.redis_ca_file: a certificate of {}", path.display()))?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    if cfg.redis_cert_file.is_empty() {
        return Ok(builder.with_no_client_auth());
    }
    let id = crate::tls::load_pem(Path::new(&cfg.redis_cert_file), Path::new(&cfg.redis_key_file))
        .context("cluster.redis_cert_file / cluster.redis_key_file")?;
    builder.with_client_auth_cert(id.chain, id.key).context("cluster.redis_cert_file / cluster.redis_key_file")
}

/// A connection failure (`error`, the driver's words) with its likely cause
/// said in the configuration's terms.
pub(super) fn explain(cfg: &ClusterConfig, error: &str) -> String {
    let tls = cfg.redis_url.starts_with(TLS_SCHEME);
    let hint = if error.contains("UnknownIssuer") || error.contains("BadSignature") {
        let trusted = if cfg.redis_ca_file.is_empty() {
            "the system's roots (set cluster.redis_ca_file)".to_string()
        } else {
            format!("cluster.redis_ca_file {:?}", cfg.redis_ca_file)
        };
        format!("the Redis server's certificate is not signed by a CA this node trusts: {trusted}")
    } else if error.contains("NotValidForName") {
        "the Redis server's certificate is not valid for the host in cluster.redis_url (use a name or address the \
         certificate lists)"
            .to_string()
    } else if error.contains("WRONGPASS") || error.contains("invalid password") {
        "wrong Redis user or password (cluster.redis_username / cluster.redis_password, or the URL)".to_string()
    } else if error.contains("NOAUTH") {
        "Redis wants a password (cluster.redis_password, or rediss://user:password@host:port)".to_string()
    } else if error.contains("NOPERM") {
        "the Redis user lacks a permission chatd needs (see the ACL line in deploy/CLUSTER.md)".to_string()
    } else if tls && (error.contains("CorruptMessage") || error.contains("InvalidContentType")) {
        "the server did not answer in TLS (a plain port? use redis://)".to_string()
    } else if tls && error.contains("timed out") {
        // A plain Redis reads a ClientHello as the start of a command and waits for the rest.
        "the server did not answer in TLS in time (a plain port? use redis://)".to_string()
    } else if tls && error.contains("CertificateRequired") {
        "the Redis server wants a client certificate (cluster.redis_cert_file and cluster.redis_key_file)".to_string()
    } else if !tls && is_closed(error) {
        "the server closed the connection (a TLS-only port? use rediss://)".to_string()
    } else {
        return error.to_string();
    };
    format!("{hint} ({error})")
}

/// Whether the driver saw the connection closed or reset before an answer.
fn is_closed(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    ["closed", "reset", "broken pipe", "eof", "unexpected end"].iter().any(|w| e.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> ClusterConfig {
        ClusterConfig { redis_url: url.into(), ..ClusterConfig::default() }
    }

    #[test]
    fn credentials_come_from_the_fields_over_the_url() {
        let c = redis_config(&cfg("redis://chatd:from-url@10.0.0.9:6379")).unwrap();
        assert_eq!((c.username.as_deref(), c.password.as_deref()), (Some("chatd"), Some("from-url")));
        assert!(c.tls.is_none());
        let mut f = cfg("redis://chatd:from-url@10.0.0.9:6379");
        (f.redis_username, f.redis_password) = ("other".into(), "from-field".into());
        let c = redis_config(&f).unwrap();
        assert_eq!((c.username.as_deref(), c.password.as_deref()), (Some("other"), Some("from-field")));
    }

    #[test]
    fn a_bad_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg("rediss://chatd:pw@127.0.0.1:6380");
        c.redis_ca_file = dir.path().join("missing.pem").display().to_string();
        let e = redis_config(&c).unwrap_err().to_string();
        assert!(e.contains("rediss://<redacted>@127.0.0.1:6380") && e.contains("cluster.redis_ca_file"), "{e}");
        assert!(e.contains("missing.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        c.redis_ca_file = empty.display().to_string();
        let e = redis_config(&c).unwrap_err().to_string();
        assert!(e.contains("no certificate in"), "{e}");
    }

    #[test]
    fn failures_are_explained_in_the_configurations_terms() {
        let tls = cfg("rediss://h:1");
        let e = explain(&tls, "Tls: invalid peer certificate: UnknownIssuer");
        assert!(e.contains("not signed by a CA this node trusts") && e.contains("UnknownIssuer"), "{e}");
        assert!(explain(&tls, "x NotValidForName").contains("not valid for the host"));
        assert!(explain(&tls, "Auth: WRONGPASS invalid username-password pair").contains("wrong Redis user"));
        assert!(explain(&tls, "received corrupt message of type InvalidContentType").contains("use redis://"));
        assert!(explain(&tls, "Timeout Error: Request timed out.").contains("use redis://"));
        assert!(explain(&cfg("redis://h:1"), "IO Error: Connection reset by peer").contains("use rediss://"));
        assert_eq!(explain(&tls, "something else"), "something else");
    }
}
