//! TLS configurations, always with the `ring` provider given explicitly, and
//! the verifier that pins the server certificate by its SHA-256 digest.

use crate::config::Trust;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

/// The provider every configuration of this crate is built with.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts exactly the end-entity certificates whose DER SHA-256 is pinned;
/// handshake signatures are still verified with the provider's algorithms.
#[derive(Debug)]
pub(crate) struct PinnedCertVerifier {
    hashes: Vec<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedCertVerifier {
    pub(crate) fn new(hashes: Vec<[u8; 32]>) -> Self {
        Self { hashes, algorithms: provider().signature_verification_algorithms }
    }

    /// Whether `cert` is one of the pinned certificates.
    pub(crate) fn accepts(&self, cert: &[u8]) -> bool {
        let digest = ring::digest::digest(&ring::digest::SHA256, cert);
        self.hashes.iter().any(|h| h.as_slice() == digest.as_ref())
    }
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.accepts(end_entity.as_ref()) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A TLS 1.3 client configuration for `trust`, offering `alpn`.
pub fn client_config(trust: &Trust, alpn: &[u8]) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS setup: {e}"))?;
    let mut config = match trust {
        Trust::CertHashes(hashes) => {
            if hashes.is_empty() {
                return Err("no certificate hash to trust".into());
            }
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedCertVerifier::new(hashes.clone())))
                .with_no_client_auth()
        }
        Trust::Roots(roots) => {
            let mut store = rustls::RootCertStore::empty();
            for root in roots {
                store.add(root.clone()).map_err(|e| format!("bad root certificate: {e}"))?;
            }
            builder.with_root_certificates(store).with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_exactly_the_given_digest() {
        let cert = b"not really DER but bytes are bytes";
        let digest: [u8; 32] =
            ring::digest::digest(&ring::digest::SHA256, cert).as_ref().try_into().expect("sha256 is 32 bytes");
        let v = PinnedCertVerifier::new(vec![[0; 32], digest]);
        assert!(v.accepts(cert));
        assert!(!v.accepts(b"another certificate"));
        let der = CertificateDer::from(cert.to_vec());
        let name = ServerName::try_from("localhost").expect("valid name");
        assert!(v.verify_server_cert(&der, &[], &name, &[], UnixTime::now()).is_ok());
        let other = CertificateDer::from(b"x".to_vec());
        assert!(v.verify_server_cert(&other, &[], &name, &[], UnixTime::now()).is_err());
    }

    #[test]
    fn configs_build_with_alpn() {
        let c = client_config(&Trust::CertHashes(vec![[1; 32]]), chat_protocol::ALPN_CHAT).expect("config");
        assert_eq!(c.alpn_protocols, vec![b"chat/1".to_vec()]);
        assert!(client_config(&Trust::CertHashes(vec![]), b"h3").is_err());
        assert!(client_config(&Trust::Roots(vec![]), b"h3").is_ok());
    }
}
