//! The `[search]` section: whether the node keeps a full-text index of the
//! messages its owners commit, how often the indexer makes new messages
//! searchable, and how many committed batches may wait for it.

use serde::{Deserialize, Serialize};

/// Full-text search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Index committed messages under `data_dir/search` and answer `Search`.
    /// Default true.
    pub enabled: bool,
    /// How often the indexer commits what it took (new messages become
    /// searchable then), in milliseconds. Default 500.
    pub commit_interval_ms: u64,
    /// Committed batches waiting for the indexer at most; past it a batch is
    /// not indexed (counted in `chatd_search_dropped_total`; `chatd reindex`
    /// repairs). Default 65536.
    pub queue_bound: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self { enabled: true, commit_interval_ms: 500, queue_bound: 65_536 }
    }
}
