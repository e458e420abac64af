//! The audit trail in the embedded store: the `audit` keyspace, keys
//! `tag(1) | len(chain)(2) | chain | seq(8)` (tag 0: an entry, tag 1: a
//! checkpoint) and `tag 2 | chain` (the chain exists), values JSON; the
//! [`AuditStore`] impl (reads on a snapshot, appends queued to the writer,
//! refused if they would overwrite anything: the trail is append-only).

use fjall::Readable;

use super::EmbeddedStore;
use super::db::{Ks, backend, decode, encode};
use super::ops::{Done, Op};
use super::txn::Txn;
use crate::store::audit::{AuditRecord, AuditStore, CheckpointRecord};
use crate::store::{StoreError, StoreResult};

const ENTRY: u8 = 0;
const CHECKPOINT: u8 = 1;
const CHAIN: u8 = 2;

/// `tag | len(chain)(2) | chain`.
fn prefix(op: &'static str, tag: u8, chain: &str) -> StoreResult<Vec<u8>> {
    super::key::tagged(op, tag, chain)
}

/// `prefix | seq(8)`.
fn key(op: &'static str, tag: u8, chain: &str, seq: u64) -> StoreResult<Vec<u8>> {
    let mut key = prefix(op, tag, chain)?;
    key.extend_from_slice(&seq.to_be_bytes());
    Ok(key)
}

impl AuditStore for EmbeddedStore {
    async fn append_audit(&self, entries: &[AuditRecord], checkpoint: Option<&CheckpointRecord>) -> StoreResult<()> {
        let op = Op::AppendAudit(Box::new((entries.to_vec(), checkpoint.cloned())));
        self.submit(op).await.map(|_| ())
    }

    async fn audit_entries(&self, chain: &str, after: u64, limit: usize) -> StoreResult<Vec<AuditRecord>> {
        const OP: &str = "audit_entries";
        let Some(from) = after.checked_add(1) else { return Ok(Vec::new()) };
        let range = key(OP, ENTRY, chain, from)?..=key(OP, ENTRY, chain, u64::MAX)?;
        let snap = self.snapshot();
        let mut out = Vec::new();
        for guard in snap.range(self.db.ks(Ks::Audit), range).take(limit) {
            let (_, value) = guard.into_inner().map_err(backend(OP))?;
            out.push(decode(Ks::Audit, &value)?);
        }
        Ok(out)
    }

    async fn audit_last(&self, chain: &str) -> StoreResult<Option<AuditRecord>> {
        const OP: &str = "audit_last";
        let range = key(OP, ENTRY, chain, 0)?..=key(OP, ENTRY, chain, u64::MAX)?;
        let last = self.snapshot().range(self.db.ks(Ks::Audit), range).next_back();
        match last {
            None => Ok(None),
            Some(g) => {
                let (_, value) = g.into_inner().map_err(backend(OP))?;
                decode(Ks::Audit, &value).map(Some)
            }
        }
    }

    async fn audit_chains(&self) -> StoreResult<Vec<String>> {
        const OP: &str = "audit_chains";
        let rows = self.scan_prefix(OP, Ks::Audit, &[CHAIN])?;
        rows.iter()
            .map(|(k, _)| {
                String::from_utf8(k[1..].to_vec()).map_err(|_| StoreError::Corrupt {
                    table: Ks::Audit.name(),
                    detail: "a chain id is not UTF-8".into(),
                })
            })
            .collect()
    }

    async fn audit_checkpoints(&self, chain: &str) -> StoreResult<Vec<CheckpointRecord>> {
        const OP: &str = "audit_checkpoints";
        let rows = self.scan_prefix(OP, Ks::Audit, &prefix(OP, CHECKPOINT, chain)?)?;
        rows.iter().map(|(_, v)| decode(Ks::Audit, v)).collect()
    }
}

impl Txn<'_> {
    /// Stages audit entries and a checkpoint; nothing if any key is taken.
    pub(super) fn append_audit(&mut self, entries: &[AuditRecord], cp: Option<&CheckpointRecord>) -> StoreResult<Done> {
        const OP: &str = "append_audit";
        let mut staged = Vec::with_capacity(entries.len() + 2);
        for e in entries {
            staged.push((key(OP, ENTRY, &e.chain, e.seq)?, encode(OP, e)?));
        }
        if let Some(cp) = cp {
            staged.push((key(OP, CHECKPOINT, &cp.chain, cp.seq)?, encode(OP, cp)?));
        }
        for (k, _) in &staged {
            if self.get(Ks::Audit, k)?.is_some() {
                return Err(StoreError::Backend {
                    op: OP,
                    source: "an audit entry or checkpoint is already stored".into(),
                });
            }
        }
        for (k, v) in staged {
            self.put(Ks::Audit, &k, v);
        }
        if let Some(e) = entries.first() {
            let mut chain = vec![CHAIN];
            chain.extend_from_slice(e.chain.as_bytes());
            self.put(Ks::Audit, &chain, fjall::Slice::from(&b""[..]));
        }
        Ok(Done::Unit)
    }
}
