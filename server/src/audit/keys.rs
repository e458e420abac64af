//! Where a node's chain id and checkpoint signing key come from: the
//! configuration, else files made once under `data_dir/audit/` (`0600`, in a
//! private directory, never overwritten). Nothing else reads them.

use std::path::{Path, PathBuf};

use ring::signature::{Ed25519KeyPair, KeyPair};

use crate::config::Config;

/// Why the audit trail could not start or be read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A key or id file could not be read or made.
    #[error("audit file {path}: {source}")]
    File {
        /// Which file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The signing key file is not an Ed25519 PKCS#8 key.
    #[error("audit signing key {0}: not an Ed25519 PKCS#8 key")]
    BadKey(PathBuf),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// An export could not be written.
    #[error("writing the export: {0}")]
    Write(#[from] std::io::Error),
    /// The writer has stopped.
    #[error("the audit writer has stopped")]
    Stopped,
}

/// `data_dir/audit`.
pub fn audit_dir(cfg: &Config) -> PathBuf {
    cfg.data_dir.join("audit")
}

/// The signing key file in force.
pub fn key_path(cfg: &Config) -> PathBuf {
    cfg.audit.signing_key_file.clone().unwrap_or_else(|| audit_dir(cfg).join("signing_key.pk8"))
}

/// This node's chain id: `audit.chain_id`, else `cluster.node_id`, else the
/// id kept in `data_dir/audit/chain_id` (made on first use).
pub fn chain_id(cfg: &Config) -> Result<String, AuditError> {
    if !cfg.audit.chain_id.is_empty() {
        return Ok(cfg.audit.chain_id.clone());
    }
    if !cfg.cluster.node_id.is_empty() {
        return Ok(cfg.cluster.node_id.clone());
    }
    let path = audit_dir(cfg).join("chain_id");
    let id = crate::files::secret_file(&path, || format!("node-{:016x}", rand::random::<u64>()).into_bytes())
        .map_err(|source| AuditError::File { path: path.clone(), source })?;
    String::from_utf8(id).map(|s| s.trim().to_owned()).map_err(|_| AuditError::File {
        path,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"),
    })
}

/// The signing key at `path`, made on first use.
pub fn signing_key(path: &Path) -> Result<Ed25519KeyPair, AuditError> {
    let bytes = crate::files::secret_file(path, || {
        let rng = ring::rand::SystemRandom::new();
        Ed25519KeyPair::generate_pkcs8(&rng).map(|d| d.as_ref().to_vec()).unwrap_or_default()
    })
    .map_err(|source| AuditError::File { path: path.to_owned(), source })?;
    Ed25519KeyPair::from_pkcs8(&bytes).map_err(|_| AuditError::BadKey(path.to_owned()))
}

/// The public half of `key`, hex (as checkpoints record it).
pub fn public_hex(key: &Ed25519KeyPair) -> String {
    hex::encode(key.public_key().as_ref())
}
