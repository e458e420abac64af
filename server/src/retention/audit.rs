//! The one place every audited retention event goes through ([`audit`]):
//! retention set, legal hold set and released, and purge counts per
//! conversation (counts, never content). For now it logs each event on the
//! `audit` tracing target with all its fields; the audit trail takes them
//! from here.

use crate::store::retention::HoldScope;

/// An audited retention event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditEvent<'a> {
    /// A conversation's retention was set.
    RetentionSet {
        /// Who set it.
        actor: &'a str,
        /// The conversation.
        conversation_id: u64,
        /// The new retention, days (0: forever).
        days: u32,
    },
    /// A legal hold was set (or renewed).
    HoldSet {
        /// The admin.
        actor: &'a str,
        /// What it covers.
        scope: HoldScope,
        /// Its target.
        target: &'a str,
        /// Why.
        reason: &'a str,
    },
    /// A legal hold was released.
    HoldReleased {
        /// The admin.
        actor: &'a str,
        /// What it covered.
        scope: HoldScope,
        /// Its target.
        target: &'a str,
    },
    /// The purge job removed expired messages of a conversation.
    Purged {
        /// The conversation.
        conversation_id: u64,
        /// Its new purge mark.
        through: u64,
        /// Messages removed.
        messages: u64,
        /// Attachments removed.
        attachments: u64,
    },
}

/// Records an audited event (now: an `info` event on target `audit`).
pub fn audit(event: &AuditEvent<'_>) {
    match *event {
        AuditEvent::RetentionSet { actor, conversation_id, days } => {
            tracing::info!(target: "audit", event = "retention_set", actor, conversation_id, days);
        }
        AuditEvent::HoldSet { actor, scope, target, reason } => {
            tracing::info!(target: "audit", event = "legal_hold_set", actor, scope = ?scope, target, reason);
        }
        AuditEvent::HoldReleased { actor, scope, target } => {
            tracing::info!(target: "audit", event = "legal_hold_released", actor, scope = ?scope, target);
        }
        AuditEvent::Purged { conversation_id, through, messages, attachments } => {
            tracing::info!(target: "audit", event = "retention_purge", conversation_id, through, messages, attachments);
        }
    }
}
