//! The audit trail as stored: the [`AuditRecord`] (one entry of a node's
//! hash chain), the [`CheckpointRecord`] (a signed `(chain, seq, hash)`) and
//! the [`AuditStore`] contract every backend implements (embedded: the
//! `audit` keyspace; ScyllaDB: the `audit_entries`, `audit_chains` and
//! `audit_checkpoints` tables), with [`Store`] choosing the configured one.
//! The store only keeps and scans entries, append-only; chaining, signing
//! and verifying are `crate::audit`'s.

use super::{Store, StoreResult};

/// One audit entry. `(chain, seq)` is its key; `hash` commits to every other
/// field, `prev_hash` included (see `crate::audit::chain`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    /// The chain (one per node) it belongs to.
    pub chain: String,
    /// Its place in the chain, from 1, without gaps.
    pub seq: u64,
    /// When it happened, ms since the Unix epoch.
    pub at_ms: u64,
    /// The event kind (`session.opened`, `message.edited`...).
    pub kind: String,
    /// Who did it (a user id; `chatd` for the server itself; empty if unknown).
    pub actor: String,
    /// The conversation it concerns (0: none).
    pub conversation_id: u64,
    /// The user it was done to (empty: none).
    pub target_user: String,
    /// Details, a JSON object, exactly the text that was hashed.
    pub details: String,
    /// The previous entry's hash, hex (64 zeros for seq 1).
    pub prev_hash: String,
    /// SHA-256 of the entry's canonical encoding, hex.
    pub hash: String,
}

/// A signed statement that a chain had `hash` at `seq`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointRecord {
    /// The chain.
    pub chain: String,
    /// The entry signed.
    pub seq: u64,
    /// That entry's hash, hex.
    pub hash: String,
    /// When it was signed, ms since the Unix epoch.
    pub at_ms: u64,
    /// The Ed25519 public key that signed it, hex.
    pub public_key: String,
    /// The Ed25519 signature of the checkpoint's signed bytes, hex.
    pub signature: String,
}

/// Storage of the audit trail: append-only. Every write is durable on return.
#[allow(async_fn_in_trait)]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends entries of one chain (ascending, contiguous) and optionally a
    /// checkpoint, in one write where the backend can. Each chain has one
    /// writer, so there is no compare-and-set.
    async fn append_audit(&self, entries: &[AuditRecord], checkpoint: Option<&CheckpointRecord>) -> StoreResult<()>;

    /// At most `limit` entries of `chain` with `seq > after`, ascending.
    async fn audit_entries(&self, chain: &str, after: u64, limit: usize) -> StoreResult<Vec<AuditRecord>>;

    /// The last (highest seq) entry of `chain`.
    async fn audit_last(&self, chain: &str) -> StoreResult<Option<AuditRecord>>;

    /// Every chain that has entries, sorted.
    async fn audit_chains(&self) -> StoreResult<Vec<String>>;

    /// Every checkpoint of `chain`, ascending by seq.
    async fn audit_checkpoints(&self, chain: &str) -> StoreResult<Vec<CheckpointRecord>>;
}

impl AuditStore for Store {
    async fn append_audit(&self, entries: &[AuditRecord], checkpoint: Option<&CheckpointRecord>) -> StoreResult<()> {
        super::delegate!(self, s => s.append_audit(entries, checkpoint).await)
    }

    async fn audit_entries(&self, chain: &str, after: u64, limit: usize) -> StoreResult<Vec<AuditRecord>> {
        super::delegate!(self, s => s.audit_entries(chain, after, limit).await)
    }

    async fn audit_last(&self, chain: &str) -> StoreResult<Option<AuditRecord>> {
        super::delegate!(self, s => s.audit_last(chain).await)
    }

    async fn audit_chains(&self) -> StoreResult<Vec<String>> {
        super::delegate!(self, s => s.audit_chains().await)
    }

    async fn audit_checkpoints(&self, chain: &str) -> StoreResult<Vec<CheckpointRecord>> {
        super::delegate!(self, s => s.audit_checkpoints(chain).await)
    }
}
