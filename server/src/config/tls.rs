//! The `[tls]` section: where the server's certificate and key come from
//! (a self-signed development certificate unless configured).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain. Empty (default): a self-signed dev certificate
    /// (ECDSA P-256, 14 days, renewed when near expiry) under `data_dir/tls/`.
    pub cert: Option<PathBuf>,
    /// PEM private key (with `cert`).
    pub key: Option<PathBuf>,
    /// Extra host names for the dev certificate (always: localhost, 127.0.0.1, ::1).
    pub dev_names: Vec<String>,
}
