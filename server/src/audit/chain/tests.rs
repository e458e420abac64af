//! Unit tests of the chain: appends link, checkpoints are due on cadence and
//! verify, and each kind of tampering is named at the right entry.

use super::*;
use crate::audit::event::{AuditEvent, EventKind};
use serde_json::json;

fn key() -> Ed25519KeyPair {
    let rng = ring::rand::SystemRandom::new();
    Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap()
}

/// A chain of `n` entries with a checkpoint every `every`.
fn chain(n: u64, every: u64, key: &Ed25519KeyPair) -> (Vec<AuditRecord>, Vec<CheckpointRecord>) {
    let mut head = Head::new("node-a", None, 0);
    let cadence = Cadence { every, interval_ms: u64::MAX };
    let (mut entries, mut cps) = (Vec::new(), Vec::new());
    for i in 0..n {
        let ev = AuditEvent::new(EventKind::MemberAdded, "alice").conversation(7).target(format!("u{i}"));
        entries.push(head.append(&ev.details(json!({"i": i})), 1000 + i));
        if head.checkpoint_due(cadence, 1000 + i) {
            cps.push(head.checkpoint(key, 1000 + i));
        }
    }
    (entries, cps)
}

fn walk(entries: &[AuditRecord], cps: &[CheckpointRecord], trusted: Option<String>) -> Result<Verified, Fault> {
    let mut v = Verifier::new("node-a", cps.to_vec(), trusted);
    for e in entries {
        v.push(e)?;
    }
    v.finish()
}

#[test]
fn appends_link_each_entry_to_the_previous() {
    let k = key();
    let (entries, _) = chain(3, 100, &k);
    assert_eq!(entries[0].seq, 1);
    assert_eq!(entries[0].prev_hash, GENESIS);
    assert_eq!(entries[1].prev_hash, entries[0].hash);
    assert_eq!(entries[2].prev_hash, entries[1].hash);
    assert_eq!(entries[2].kind, "member.added");
    assert_eq!(entries[2].details, r#"{"i":2}"#);
    for e in &entries {
        assert_eq!(entry_hash(e), e.hash);
    }
    // A head resumed from the last stored entry goes on from it.
    let mut head = Head::new("node-a", entries.last(), 0);
    let next = head.append(&AuditEvent::new(EventKind::MemberLeft, "bob"), 5);
    assert_eq!((next.seq, next.prev_hash.as_str()), (4, entries[2].hash.as_str()));
}

#[test]
fn every_field_is_committed_to() {
    let (entries, _) = chain(1, 100, &key());
    let e = &entries[0];
    let changes: [fn(&mut AuditRecord); 9] = [
        |e| e.chain.push('x'),
        |e| e.seq += 1,
        |e| e.at_ms += 1,
        |e| e.kind.push('x'),
        |e| e.actor.push('x'),
        |e| e.conversation_id += 1,
        |e| e.target_user.push('x'),
        |e| e.details.push(' '),
        |e| e.prev_hash.replace_range(0..1, "f"),
    ];
    for change in changes {
        let mut t = e.clone();
        change(&mut t);
        assert_ne!(entry_hash(&t), e.hash, "{t:?}");
    }
    // Length prefixes: moving a byte from one field to the next changes the hash.
    let mut a = e.clone();
    a.actor = "alic".into();
    a.target_user = format!("e{}", e.target_user);
    assert_ne!(entry_hash(&a), e.hash);
}

#[test]
fn checkpoints_come_on_count_and_on_time() {
    let k = key();
    let (entries, cps) = chain(10, 4, &k);
    assert_eq!(cps.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![4, 8]);
    assert!(cps.iter().all(checkpoint_signed));
    assert_eq!(cps[1].hash, entries[7].hash);
    let mut head = Head::new("node-a", None, 0);
    let cadence = Cadence { every: 1000, interval_ms: 60_000 };
    assert!(!head.checkpoint_due(cadence, 120_000), "nothing to sign");
    head.append(&AuditEvent::new(EventKind::ConfigAtStart, "chatd"), 1);
    assert!(!head.checkpoint_due(cadence, 59_999));
    assert!(head.checkpoint_due(cadence, 60_000));
    head.checkpoint(&k, 60_000);
    assert!(!head.checkpoint_due(cadence, 200_000), "signed, nothing new");
}

#[test]
fn a_whole_chain_verifies() {
    let k = key();
    let (entries, cps) = chain(10, 4, &k);
    let ok = walk(&entries, &cps, Some(hex::encode(k.public_key().as_ref()))).unwrap();
    assert_eq!((ok.entries, ok.checkpoints, ok.unsigned), (10, 2, 2));
    assert_eq!(walk(&[], &[], None).unwrap().entries, 0);
}

#[test]
fn an_altered_entry_is_named() {
    let (mut entries, cps) = chain(6, 100, &key());
    entries[2].details = r#"{"i":99}"#.into();
    let f = walk(&entries, &cps, None).unwrap_err();
    assert!(matches!(&f, Fault::Altered { seq: 3, .. }), "{f}");
    assert_eq!(f.to_string(), "chain node-a seq 3: altered (its content does not match its hash)");
}

#[test]
fn an_altered_and_rehashed_entry_is_named_by_its_successor() {
    let (mut entries, cps) = chain(6, 100, &key());
    entries[2].actor = "mallory".into();
    entries[2].hash = entry_hash(&entries[2]);
    let f = walk(&entries, &cps, None).unwrap_err();
    assert!(matches!(f, Fault::Altered { seq: 3, .. }), "{f}");
}

#[test]
fn a_rewritten_tail_is_caught_by_the_signed_checkpoint() {
    let (mut entries, cps) = chain(8, 4, &key());
    // Rewrite entry 3 and re-hash everything after it: the links hold, the signed hash at 4 does not.
    entries[2].actor = "mallory".into();
    for i in 2..entries.len() {
        if i > 2 {
            entries[i].prev_hash = entries[i - 1].hash.clone();
        }
        entries[i].hash = entry_hash(&entries[i]);
    }
    let f = walk(&entries, &cps, None).unwrap_err();
    assert!(matches!(f, Fault::Altered { seq: 4, .. }), "{f}");
}

#[test]
fn a_removed_entry_is_named() {
    let (mut entries, cps) = chain(6, 100, &key());
    entries.remove(3);
    let f = walk(&entries, &cps, None).unwrap_err();
    assert!(matches!(&f, Fault::Removed { seq: 4, .. }), "{f}");
    assert_eq!(f.to_string(), "chain node-a seq 4: removed (the chain goes from seq 3 to 5)");
}

#[test]
fn a_removed_tail_is_caught_by_a_checkpoint() {
    let (mut entries, cps) = chain(8, 4, &key());
    entries.truncate(6);
    let f = walk(&entries, &cps, None).unwrap_err();
    assert!(matches!(f, Fault::Removed { seq: 7, .. }), "{f}");
    // Without checkpoints past it, a cut tail cannot be told from a shorter chain: that is what they are for.
    assert!(walk(&entries, &cps[..1], None).is_ok());
}

#[test]
fn swapped_entries_are_named() {
    let (mut entries, cps) = chain(6, 100, &key());
    entries.swap(2, 3);
    let f = walk(&entries, &cps, None).unwrap_err();
    assert!(matches!(&f, Fault::Reordered { seq: 3, .. }), "{f}");
    assert_eq!(f.to_string(), "chain node-a seq 3: reordered (stored after seq 4)");
    let (mut entries, _) = chain(6, 100, &key());
    entries.swap(4, 1);
    let f = walk(&entries, &[], None).unwrap_err();
    assert!(matches!(&f, Fault::Reordered { seq: 2, .. }), "{f}");
}

#[test]
fn forged_or_foreign_checkpoints_are_refused() {
    let k = key();
    let (entries, mut cps) = chain(8, 4, &k);
    cps[0].at_ms += 1;
    let f = walk(&entries, &cps, None).unwrap_err();
    assert!(matches!(&f, Fault::Checkpoint { seq: 4, .. }), "{f}");
    let (entries, cps) = chain(8, 4, &k);
    let other = hex::encode(key().public_key().as_ref());
    let f = walk(&entries, &cps, Some(other)).unwrap_err();
    assert_eq!(f.to_string(), "chain node-a checkpoint at seq 4: signed by a key other than this node's");
}
