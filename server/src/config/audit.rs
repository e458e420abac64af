//! The `[audit]` section: which chain this node writes, where its
//! checkpoint signing key is, how often checkpoints are signed, and how many
//! events may wait for the writer.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The tamper-evident audit trail (always on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// This node's chain id. Empty (default): `cluster.node_id` if set, else
    /// an id made once and kept in `data_dir/audit/chain_id`. Two running
    /// nodes must never share one.
    pub chain_id: String,
    /// The Ed25519 key (PKCS#8, binary) that signs checkpoints. Unset
    /// (default): `data_dir/audit/signing_key.pk8`, made on first start.
    pub signing_key_file: Option<PathBuf>,
    /// A checkpoint after this many entries at most. Default 1000.
    pub checkpoint_every: u64,
    /// A checkpoint this many seconds after the last at most, while entries
    /// come. Default 60.
    pub checkpoint_interval_secs: u64,
    /// Events waiting for the writer at most; past it their producers wait
    /// (nothing is dropped). Default 4096.
    pub queue_bound: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            chain_id: String::new(),
            signing_key_file: None,
            checkpoint_every: 1000,
            checkpoint_interval_secs: 60,
            queue_bound: 4096,
        }
    }
}

impl AuditConfig {
    /// Checks the bounds; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        if self.checkpoint_every == 0 {
            return Err("audit.checkpoint_every must be at least 1".into());
        }
        if self.checkpoint_interval_secs == 0 {
            return Err("audit.checkpoint_interval_secs must be at least 1".into());
        }
        if self.queue_bound == 0 || self.queue_bound > 1 << 20 {
            return Err("audit.queue_bound must be between 1 and 1048576".into());
        }
        if self.chain_id.len() > 64 || self.chain_id.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err("audit.chain_id: at most 64 characters, no spaces".into());
        }
        Ok(())
    }
}
