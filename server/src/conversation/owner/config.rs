//! What an owner knows of its surroundings ([`OwnerConfig`]): the shards,
//! whether it runs in a cluster, and the rules and limits it applies.

use super::{NoticeRules, RECENT_IDS};
use std::rc::Rc;
use std::time::Duration;

/// How many messages, from a seq on, one append may carry (the store's
/// `append_run_limit`).
pub type RunLimit = Rc<dyn Fn(u64) -> usize>;

/// What an owner needs to know about its surroundings.
#[derive(Clone)]
pub struct OwnerConfig {
    /// Shards of this node (fan-out targets).
    pub shards: usize,
    /// Part of a cluster: every local shard gets the fan-out, which is also
    /// published to the other nodes, and recently active heads are nudged.
    pub cluster: bool,
    /// A typing indicator stops after this long without a refresh.
    pub typing_timeout: Duration,
    /// Rooms with more members push no delivered receipts.
    pub receipts_max_members: usize,
    /// `limits.max_members`.
    pub max_members: usize,
    /// Size of the idempotency window.
    pub recent_ids: usize,
    /// The store's cut of an append.
    pub run_limit: RunLimit,
    /// Who may edit, delete and react, until when and how much.
    pub rules: crate::conversation::events::Rules,
    /// Offline notifications (None: off).
    pub notice: Option<NoticeRules>,
}

impl Default for OwnerConfig {
    /// One shard, no cluster, the default limits, no cut of appends.
    fn default() -> Self {
        Self {
            shards: 1,
            cluster: false,
            typing_timeout: Duration::from_secs(3),
            receipts_max_members: 100,
            max_members: 10_000,
            recent_ids: RECENT_IDS,
            run_limit: Rc::new(|_| usize::MAX),
            rules: crate::conversation::events::Rules::default(),
            notice: None,
        }
    }
}
