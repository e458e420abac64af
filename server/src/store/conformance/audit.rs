//! Conformance cases of the audit trail's storage: entries of each chain
//! read back whole and in seq order, paged by `after` and `limit` (across
//! ScyllaDB's buckets too), the last one found, chains listed, checkpoints
//! kept, and everything kept across a reopen.

use super::harness::ConformanceFactory;
use crate::store::audit::{AuditRecord, AuditStore, CheckpointRecord};

fn entry(chain: &str, seq: u64) -> AuditRecord {
    AuditRecord {
        chain: chain.into(),
        seq,
        at_ms: 1_700_000_000_000 + seq,
        kind: "member.added".into(),
        actor: "alice".into(),
        conversation_id: seq % 3,
        target_user: format!("user-{seq}"),
        details: format!(r#"{{"n":{seq},"text":"\u00e9, \"quoted\""}}"#),
        prev_hash: format!("{:064x}", seq - 1),
        hash: format!("{seq:064x}"),
    }
}

fn checkpoint(chain: &str, seq: u64) -> CheckpointRecord {
    CheckpointRecord {
        chain: chain.into(),
        seq,
        hash: format!("{seq:064x}"),
        at_ms: 1_700_000_000_000 + seq,
        public_key: "ab".repeat(32),
        signature: "cd".repeat(64),
    }
}

/// Appends read back in order per chain, paged; the last entry, the chains
/// and the checkpoints are found; a reopen keeps them.
pub async fn audit_entries_append_and_scan<F: ConformanceFactory>(factory: &mut F)
where
    F::Store: AuditStore,
{
    let store = factory.fresh().await;
    assert_eq!(store.audit_chains().await.expect("chains"), Vec::<String>::new());
    assert_eq!(store.audit_last("node-b").await.expect("last"), None);
    assert_eq!(store.audit_entries("node-b", 0, 10).await.expect("scan"), vec![]);
    let b: Vec<AuditRecord> = (1..=5).map(|s| entry("node-b", s)).collect();
    let a: Vec<AuditRecord> = (1..=2).map(|s| entry("node-a", s)).collect();
    store.append_audit(&b[..3], None).await.expect("append b 1-3");
    store.append_audit(&a, Some(&checkpoint("node-a", 2))).await.expect("append a");
    store.append_audit(&b[3..], Some(&checkpoint("node-b", 5))).await.expect("append b 4-5");
    // A checkpoint alone (the writer signs on time with no new entry).
    store.append_audit(&[], Some(&checkpoint("node-b", 4))).await.expect("checkpoint alone");
    assert_eq!(store.audit_chains().await.expect("chains"), vec!["node-a".to_string(), "node-b".to_string()]);
    assert_eq!(store.audit_entries("node-b", 0, 100).await.expect("scan"), b);
    assert_eq!(store.audit_entries("node-b", 1, 2).await.expect("page"), b[1..3].to_vec());
    assert_eq!(store.audit_entries("node-b", 5, 10).await.expect("past the end"), vec![]);
    assert_eq!(store.audit_entries("node-a", 0, 100).await.expect("scan a"), a, "chains are apart");
    assert_eq!(store.audit_entries("node", 0, 100).await.expect("prefix"), vec![], "a prefix of a chain is no chain");
    assert_eq!(store.audit_last("node-b").await.expect("last"), Some(b[4].clone()));
    let cps = store.audit_checkpoints("node-b").await.expect("checkpoints");
    assert_eq!(cps, vec![checkpoint("node-b", 4), checkpoint("node-b", 5)], "by seq");
    let store = factory.reopen(store).await;
    assert_eq!(store.audit_entries("node-b", 0, 100).await.expect("scan"), b, "kept across a reopen");
    assert_eq!(store.audit_checkpoints("node-a").await.expect("checkpoints"), vec![checkpoint("node-a", 2)]);
}

/// A chain past 65,536 entries reads on across the boundary (ScyllaDB's
/// buckets), forward and for its last entry.
pub async fn audit_entries_read_across_buckets<F: ConformanceFactory>(factory: &mut F)
where
    F::Store: AuditStore,
{
    let store = factory.fresh().await;
    let chain: Vec<AuditRecord> = (65_533..=65_539).map(|s| entry("node-c", s)).collect();
    store.append_audit(&chain, None).await.expect("append");
    assert_eq!(store.audit_entries("node-c", 65_534, 3).await.expect("page"), chain[2..5].to_vec());
    assert_eq!(store.audit_entries("node-c", 0, 100).await.expect("all"), chain);
    assert_eq!(store.audit_last("node-c").await.expect("last"), chain.last().cloned());
}
