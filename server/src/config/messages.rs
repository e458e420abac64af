//! The `[messages]` section: the rules for changing a message after it was
//! sent (edit window, who may delete) and the reaction limits.

use serde::{Deserialize, Serialize};

/// Edits, deletes and reactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessagesConfig {
    /// How long after sending a sender may edit their message, in seconds.
    /// 0 (default): no limit.
    pub edit_window_secs: u64,
    /// Conversation admins and moderators may delete other members'
    /// messages. Default true.
    pub moderators_delete: bool,
    /// Most distinct emoji on one message. Default 20.
    pub max_reaction_emoji: usize,
    /// Most reactions of one user on one message. Default 10.
    pub max_reactions_per_user: usize,
}

impl Default for MessagesConfig {
    fn default() -> Self {
        Self { edit_window_secs: 0, moderators_delete: true, max_reaction_emoji: 20, max_reactions_per_user: 10 }
    }
}
