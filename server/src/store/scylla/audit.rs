//! The audit trail in ScyllaDB: `audit_entries` (partition `(chain,
//! bucket)`, clustering `seq`; a bucket holds 65,536 entries so that no
//! partition grows without bound), `audit_chains` (each chain's highest
//! bucket, written before the entries so that a reader finds them) and
//! `audit_checkpoints` (partition `chain`, clustering `seq`). Records are JSON
//! in one column, the exact fields `crate::audit` hashes. One writer per chain,
//! so plain inserts: a retried write rewrites the same rows.

use super::rows::{id_from_db, id_to_db};
use super::{ScyllaStore, StoreResult};
use crate::store::StoreError;
use crate::store::audit::{AuditRecord, AuditStore, CheckpointRecord};

/// Entries per bucket (a power of two): `bucket = seq >> BUCKET_BITS`.
const BUCKET_BITS: u32 = 16;

fn to_json<T: serde::Serialize>(op: &'static str, v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend { op, source: Box::new(e) })
}

fn from_json<T: serde::de::DeserializeOwned>(table: &'static str, json: &str) -> StoreResult<T> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt { table, detail: format!("a record does not decode: {e}") })
}

impl ScyllaStore {
    /// The chain's highest bucket (None: no such chain).
    async fn audit_last_bucket(&self, chain: &str) -> StoreResult<Option<u64>> {
        const OP: &str = "audit_last_bucket";
        let chain = chain.to_owned();
        let row: Option<(i64,)> = self
            .call(OP, false, move |i| async move { i.one(OP, &i.st.select_audit_chain, (chain,), None).await })
            .await?;
        Ok(row.map(|(b,)| id_from_db(b)))
    }
}

impl AuditStore for ScyllaStore {
    async fn append_audit(&self, entries: &[AuditRecord], checkpoint: Option<&CheckpointRecord>) -> StoreResult<()> {
        const OP: &str = "append_audit";
        let Some(chain) = entries.last().map(|e| &e.chain).or(checkpoint.map(|c| &c.chain)).cloned() else {
            return Ok(());
        };
        let last_bucket = entries.last().map(|e| id_to_db(e.seq >> BUCKET_BITS));
        let rows: Vec<(i64, i64, String)> = entries
            .iter()
            .map(|e| Ok((id_to_db(e.seq >> BUCKET_BITS), id_to_db(e.seq), to_json(OP, e)?)))
            .collect::<StoreResult<_>>()?;
        let cp = checkpoint.map(|c| Ok::<_, StoreError>((id_to_db(c.seq), to_json(OP, c)?))).transpose()?;
        self.call(OP, true, move |i| async move {
            if let Some(bucket) = last_bucket {
                i.exec(OP, &i.st.upsert_audit_chain, (chain.clone(), bucket), None).await?;
            }
            for (bucket, seq, json) in rows {
                i.exec(OP, &i.st.insert_audit_entry, (chain.clone(), bucket, seq, json), None).await?;
            }
            if let Some((seq, json)) = cp {
                i.exec(OP, &i.st.insert_audit_checkpoint, (chain, seq, json), None).await?;
            }
            Ok(())
        })
        .await
    }

    async fn audit_entries(&self, chain: &str, after: u64, limit: usize) -> StoreResult<Vec<AuditRecord>> {
        const OP: &str = "audit_entries";
        let Some(top) = self.audit_last_bucket(chain).await? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        let mut bucket = after.saturating_add(1) >> BUCKET_BITS;
        while bucket <= top && out.len() < limit {
            let want = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            let (c, b, a) = (chain.to_owned(), id_to_db(bucket), id_to_db(after));
            let rows: Vec<(String,)> =
                self.call(OP, false, move |i| async move {
                    i.rows(OP, &i.st.select_audit_entries, (c, b, a, want), None).await
                })
                .await?;
            for (json,) in rows {
                out.push(from_json("audit_entries", &json)?);
            }
            bucket += 1;
        }
        out.truncate(limit);
        Ok(out)
    }

    async fn audit_last(&self, chain: &str) -> StoreResult<Option<AuditRecord>> {
        const OP: &str = "audit_last";
        let Some(top) = self.audit_last_bucket(chain).await? else { return Ok(None) };
        for bucket in (0..=top).rev() {
            let (c, b) = (chain.to_owned(), id_to_db(bucket));
            let row: Option<(String,)> = self
                .call(OP, false, move |i| async move { i.one(OP, &i.st.select_audit_last, (c, b), None).await })
                .await?;
            if let Some((json,)) = row {
                return from_json("audit_entries", &json).map(Some);
            }
        }
        Ok(None)
    }

    async fn audit_chains(&self) -> StoreResult<Vec<String>> {
        const OP: &str = "audit_chains";
        let rows: Vec<(String,)> =
            self.call(OP, false, move |i| async move { i.rows(OP, &i.st.select_audit_chains, (), None).await }).await?;
        let mut chains: Vec<String> = rows.into_iter().map(|(c,)| c).collect();
        chains.sort();
        Ok(chains)
    }

    async fn audit_checkpoints(&self, chain: &str) -> StoreResult<Vec<CheckpointRecord>> {
        const OP: &str = "audit_checkpoints";
        let c = chain.to_owned();
        let rows: Vec<(String,)> = self
            .call(OP, false, move |i| async move { i.rows(OP, &i.st.select_audit_checkpoints, (c,), None).await })
            .await?;
        rows.iter().map(|(json,)| from_json("audit_checkpoints", json)).collect()
    }
}
