//! The `[encryption]` section: where the master key of encryption at rest
//! comes from (off unless one is given), and the older master keys still
//! accepted while a rotation finishes.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Encryption at rest of message content (see `crate::store::at_rest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// The master key, 64 hex digits (32 bytes); better from the environment:
    /// `CHAT_ENCRYPTION__MASTER_KEY`. Empty (default) with no file: off.
    pub master_key: String,
    /// A file holding the master key (64 hex digits, as `chatd keys generate`
    /// writes it). Not with `master_key`.
    pub master_key_file: Option<PathBuf>,
    /// Files of earlier master keys: data keys still wrapped by one of them
    /// are read, and `chatd keys rotate` re-wraps them under the current key.
    pub previous_master_key_files: Vec<PathBuf>,
}

impl EncryptionConfig {
    /// Whether a master key is configured.
    pub fn enabled(&self) -> bool {
        !self.master_key.is_empty() || self.master_key_file.is_some()
    }

    /// Checks that the sources do not conflict; the message names the keys.
    pub fn check(&self) -> Result<(), String> {
        if !self.master_key.is_empty() && self.master_key_file.is_some() {
            return Err("encryption.master_key and encryption.master_key_file: give one, not both".into());
        }
        if !self.enabled() && !self.previous_master_key_files.is_empty() {
            return Err("encryption.previous_master_key_files needs a current master key".into());
        }
        Ok(())
    }
}
