//! The `[retention]` section: how long a new conversation keeps its
//! messages unless its admins say otherwise, how often and how fast the
//! purge job removes what expired, and how long unreferenced attachment
//! bytes wait before its sweep removes them.

use serde::{Deserialize, Serialize};

use super::error::ConfigError;

/// The longest retention a conversation may have, days (100 years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// Retention and the purge job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Retention of a new conversation, days (0: keep forever). A
    /// conversation keeps the value it was made with; its admins change it.
    /// Default 365.
    pub default_days: u32,
    /// Seconds between two runs of the purge job over the conversations
    /// this node owns (0: the job does not run). Default 3600.
    pub purge_interval_secs: u64,
    /// Messages the purge job removes per second at most, over the node.
    /// Default 200.
    pub max_purged_per_sec: u32,
    /// After each pass the job removes attachment bytes that no attachment
    /// record names and that nobody uploaded again for this long, seconds
    /// (at least 600: an upload's record is written just after its bytes).
    /// Default 86400 (a day).
    pub orphan_blob_grace_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { default_days: 365, purge_interval_secs: 3600, max_purged_per_sec: 200, orphan_blob_grace_secs: 86_400 }
    }
}

impl RetentionConfig {
    /// The section's values are in range.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.default_days > MAX_RETENTION_DAYS {
            return Err(ConfigError::Inconsistent(format!(
                "retention.default_days must be at most {MAX_RETENTION_DAYS} (0 keeps forever)"
            )));
        }
        if self.max_purged_per_sec == 0 {
            return Err(ConfigError::Inconsistent("retention.max_purged_per_sec must be at least 1".into()));
        }
        if self.orphan_blob_grace_secs < 600 {
            return Err(ConfigError::Inconsistent("retention.orphan_blob_grace_secs must be at least 600".into()));
        }
        Ok(())
    }
}
