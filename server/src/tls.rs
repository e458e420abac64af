//! TLS for both transports: the dev certificate (made on first start, kept
//! under `data_dir/tls/`, renewed before it expires) or a configured one, and
//! the rustls/quinn server configuration that advertises both ALPNs (`h3` for
//! WebTransport, `chat/1` for raw QUIC) on one port.
//!
//! Browsers accept a self-signed certificate pinned by hash
//! (`serverCertificateHashes`) only if it is ECDSA P-256 and valid for at most
//! 14 days, so the dev certificate is exactly that.

use crate::config::{Config, SessionConfig};
use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Validity of a dev certificate (browsers refuse more than 14 days).
pub const DEV_CERT_VALIDITY: Duration = Duration::from_secs(13 * 24 * 3600);

/// Renew a dev certificate with less than this left.
pub const DEV_CERT_RENEW_BEFORE: Duration = Duration::from_secs(2 * 24 * 3600);

/// Streams a client may open at once: a chat client needs one control stream
/// (the server opens the events stream), plus a few for transfers.
const PEER_BIDI_STREAMS: u32 = 4;
/// Unidirectional streams a client may open at once: HTTP/3 under
/// WebTransport opens three (control, QPACK encoder and decoder).
const PEER_UNI_STREAMS: u32 = 4;
/// Bytes a client may send on one stream before the server reads them (a
/// 1 MiB `Hello` still arrives, at the pace the server reads).
const STREAM_RECEIVE_WINDOW: u32 = 256 * 1024;
/// Bytes a client may send on all its streams before the server reads them:
/// with the stream limits above, what one connection can make the server
/// hold of its input (quinn's default is unlimited).
const CONNECTION_RECEIVE_WINDOW: u32 = 1024 * 1024;
/// Bytes the server keeps in flight (sent, not yet acknowledged) per
/// connection: plenty for chat, and a bound on what a peer that stops
/// reading can make it buffer (quinn's default is 10 MB).
const SEND_WINDOW: u64 = 2 * 1024 * 1024;

/// A certificate chain with its key.
#[derive(Debug)]
pub struct Identity {
    /// Chain, end-entity first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Private key.
    pub key: PrivateKeyDer<'static>,
    /// When a dev certificate expires (None for configured certificates).
    pub dev_expires: Option<SystemTime>,
}

impl Identity {
    /// SHA-256 of the end-entity certificate, hex: what clients pin.
    pub fn sha256_hex(&self) -> String {
        self.chain
            .first()
            .map(|c| hex::encode(ring::digest::digest(&ring::digest::SHA256, c).as_ref()))
            .unwrap_or_default()
    }
}

/// Loads the configured certificate, or the dev one (making or renewing it).
pub fn load_identity(cfg: &Config) -> anyhow::Result<Identity> {
    match (&cfg.tls.cert, &cfg.tls.key) {
        (Some(cert), Some(key)) => load_pem(cert, key),
        _ => dev_identity(&cfg.data_dir.join("tls"), &cfg.tls.dev_names, SystemTime::now()),
    }
}

/// A certificate chain and its key from PEM files.
pub fn load_pem(cert: &Path, key: &Path) -> anyhow::Result<Identity> {
    let chain = read_certs(cert)?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).with_context(|| format!("open {}", key.display()))?,
    ))
    .with_context(|| format!("read key from {}", key.display()))?
    .with_context(|| format!("no private key in {}", key.display()))?;
    Ok(Identity { chain, key, dev_expires: None })
}

/// The certificates of a PEM file (at least one).
pub fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("read certificates from {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}

fn dev_paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (dir.join("dev-cert.pem"), dir.join("dev-key.pem"), dir.join("dev-cert.expires"))
}

/// The dev certificate under `dir`: reused while it has more than
/// [`DEV_CERT_RENEW_BEFORE`] left, otherwise made anew.
pub fn dev_identity(dir: &Path, extra_names: &[String], now: SystemTime) -> anyhow::Result<Identity> {
    let (cert_p, key_p, exp_p) = dev_paths(dir);
    if let Ok(exp) = std::fs::read_to_string(&exp_p)
        && let Ok(secs) = exp.trim().parse::<u64>()
    {
        let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        if expires > now + DEV_CERT_RENEW_BEFORE
            && let Ok(mut id) = load_pem(&cert_p, &key_p)
        {
            id.dev_expires = Some(expires);
            return Ok(id);
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    names.extend(extra_names.iter().cloned());
    let mut params = rcgen::CertificateParams::new(names)?;
    let start = time::OffsetDateTime::from(now) - time::Duration::hours(1);
    params.not_before = start;
    // Counted from not_before so the whole span stays under 14 days.
    params.not_after = start + DEV_CERT_VALIDITY;
    params.distinguished_name.push(rcgen::DnType::CommonName, "chatd dev certificate");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    let expires = SystemTime::from(params.not_after);
    std::fs::write(&cert_p, cert.pem())?;
    write_private(&key_p, key.serialize_pem().as_bytes())?;
    let secs = expires.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    std::fs::write(&exp_p, secs.to_string())?;
    tracing::info!(path = %cert_p.display(), "made a new dev certificate");
    Ok(Identity {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        dev_expires: Some(expires),
    })
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    opts.open(path)?.write_all(data)
}

/// A TLS client trusting the system's root certificates (outgoing HTTPS:
/// the notification webhook, the identity provider).
pub fn client_connector() -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let cfg = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// The crypto provider every TLS config of the process uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where the key of stateless resets lives, under the data directory.
pub fn reset_key_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("quic").join("reset.key")
}

/// The quinn endpoint configuration, with this data directory's stateless
/// reset key (64 random bytes, made on first use, `0600`) and a connection
/// id generator keyed from it. A restarted server recognizes its
/// predecessor's connection ids as its own (a random generator key would
/// drop their packets as invalid) and answers them with resets made with
/// the same key, which the clients accept: they reconnect at once instead of
/// waiting out their idle timeout. Resets are not rate-limited (see below).
pub fn quinn_endpoint_config(data_dir: &std::path::Path) -> anyhow::Result<quinn::EndpointConfig> {
    let path = reset_key_path(data_dir);
    let key = crate::files::secret_file(&path, || rand::random::<[u8; 64]>().to_vec())
        .with_context(|| format!("stateless reset key {}", path.display()))?;
    if key.len() < 32 {
        anyhow::bail!("{} holds fewer than 32 bytes; delete it to make a new one", path.display());
    }
    let reset = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let tag = ring::hmac::sign(&reset, b"chatd connection ids");
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&tag.as_ref()[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    let mut config = quinn::EndpointConfig::new(Arc::new(reset));
    config.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key)));
    // quinn sends at most one reset per 20 ms by default, per endpoint: after
    // a restart, 1,000 clients' packets got 50 resets a second on each shard,
    // and most clients waited out their idle timeout instead. No interval:
    // a reset answers only a connection id that passes the keyed generator's
    // check (a forged one is dropped), and it is always smaller than the
    // packet that caused it, so it cannot amplify nor loop.
    config.min_reset_interval(Duration::ZERO);
    Ok(config)
}

/// The quinn server configuration: TLS 1.3, ALPN `h3` and `chat/1`, no
/// connection migration (shards share the port and the kernel routes by
/// 4-tuple, so a migrated connection would land on a shard that does not know it).
pub fn quinn_server_config(id: &Identity, session: &SessionConfig) -> anyhow::Result<quinn::ServerConfig> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(id.chain.clone(), id.key.clone_key())?;
    tls.alpn_protocols = vec![b"h3".to_vec(), chat_protocol::ALPN_CHAT.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(Duration::from_millis(session.idle_timeout_ms).try_into()?))
        // Idle peers are pinged, so one that vanished (its packets just stop)
        // is closed within the idle timeout and a quarter.
        .keep_alive_interval(Some(Duration::from_millis(session.idle_timeout_ms / 4)))
        .max_concurrent_uni_streams(PEER_UNI_STREAMS.into())
        .max_concurrent_bidi_streams(PEER_BIDI_STREAMS.into())
        .stream_receive_window(STREAM_RECEIVE_WINDOW.into())
        .receive_window(CONNECTION_RECEIVE_WINDOW.into())
        .send_window(SEND_WINDOW)
        .datagram_receive_buffer_size(Some(64 * 1024));
    server.transport_config(Arc::new(transport));
    server.migration(false);
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_cert_is_reused_then_renewed() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let a = dev_identity(dir.path(), &[], now).unwrap();
        let b = dev_identity(dir.path(), &[], now).unwrap();
        assert_eq!(a.sha256_hex(), b.sha256_hex(), "a valid dev certificate is reused");
        let exp = a.dev_expires.unwrap();
        let span = exp.duration_since(now).unwrap();
        assert!(span < Duration::from_secs(14 * 24 * 3600), "browsers refuse more than 14 days");
        // Twelve days later it has under two days left: renewed.
        let later = now + Duration::from_secs(12 * 24 * 3600);
        let c = dev_identity(dir.path(), &[], later).unwrap();
        assert_ne!(a.sha256_hex(), c.sha256_hex());
        assert!(c.dev_expires.unwrap() > exp);
    }
}
