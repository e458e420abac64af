//! Conformance cases of events (edits, deletes, reactions): an event is
//! appended at its own seq, rewrites the message it names in the same
//! append, and the version it replaces is kept for the audit trail
//! ([`MessageStore::message_versions`]), never for an event that was not stored.

use bytes::Bytes;

use super::harness::{ConformanceFactory, all, msg, msgs, payload};
use crate::store::{MessageStore, MessageVersion, NewMessage, StoreError, TargetWrite};

/// An event at `seq` by `user-0` that turns message `target` from `prior` into `latest`.
fn event(conv: u64, seq: u64, target: u64, prior: &Bytes, latest: &str) -> NewMessage {
    let version = MessageVersion {
        conversation_id: conv,
        target_seq: target,
        event_seq: seq,
        changed_by: "user-0".into(),
        changed_at_ms: 1_000 + seq,
        kind: 3,
        prior: prior.to_vec(),
    };
    let latest = Bytes::from(latest.to_owned());
    NewMessage {
        sender_id: "user-0".into(),
        target: Some(Box::new(TargetWrite { seq: target, latest, version })),
        ..msg(conv, seq)
    }
}

/// An event rewrites its target in place (history reads the latest state),
/// is itself stored at its seq, and every earlier version is kept in order.
pub async fn events_rewrite_their_target_and_keep_versions<F: ConformanceFactory>(f: &mut F) {
    let store = f.fresh().await;
    let conv = 61;
    store.append(msgs(conv, 1..=2)).await.expect("messages");
    store.append(vec![event(conv, 3, 1, &payload(conv, 1), "edited once")]).await.expect("first event");
    store.append(vec![event(conv, 4, 1, &Bytes::from_static(b"edited once"), "edited twice")]).await.expect("second");
    let read = store.read_range(conv, all()).await.expect("read");
    let seqs: Vec<u64> = read.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "events have seqs of their own");
    assert_eq!(read[0].1, Bytes::from_static(b"edited twice"), "the target reads in its latest state");
    assert_eq!(read[1].1, payload(conv, 2), "other messages are untouched");
    assert_eq!(read[2].1, payload(conv, 3), "the event is stored as given");
    let versions = store.message_versions(conv, 1).await.expect("versions");
    assert_eq!(versions.iter().map(|v| v.event_seq).collect::<Vec<_>>(), [3, 4], "oldest first");
    assert_eq!(versions[0].prior, payload(conv, 1).to_vec(), "the original is kept");
    assert_eq!(versions[1].prior, b"edited once".to_vec());
    assert_eq!(versions[1], MessageVersion { prior: b"edited once".to_vec(), ..event_version(conv, 4, 1) });
    assert!(store.message_versions(conv, 2).await.expect("none").is_empty(), "an unchanged message has no versions");
    assert!(store.message_versions(conv + 1, 1).await.expect("none").is_empty());
    let store = f.reopen(store).await;
    assert_eq!(store.message_versions(conv, 1).await.expect("after reopen").len(), 2);
    assert_eq!(store.read_range(conv, all()).await.expect("read")[0].1, Bytes::from_static(b"edited twice"));
}

fn event_version(conv: u64, seq: u64, target: u64) -> MessageVersion {
    event(conv, seq, target, &Bytes::new(), "").target.expect("an event").version
}

/// Several events on one message in one append apply in call order.
pub async fn events_in_one_append_apply_in_order<F: ConformanceFactory>(f: &mut F) {
    let store = f.fresh().await;
    let conv = 62;
    store.append(msgs(conv, 1..=1)).await.expect("message");
    let a = event(conv, 2, 1, &payload(conv, 1), "a");
    let b = event(conv, 3, 1, &Bytes::from_static(b"a"), "b");
    store.append(vec![a, b]).await.expect("events");
    assert_eq!(store.read_range(conv, all()).await.expect("read")[0].1, Bytes::from_static(b"b"));
    let versions = store.message_versions(conv, 1).await.expect("versions");
    assert_eq!(
        versions.iter().map(|v| (v.event_seq, v.prior.clone())).collect::<Vec<_>>(),
        [(2, payload(conv, 1).to_vec()), (3, b"a".to_vec())]
    );
}

/// An event that is not stored (its seq is taken, or its client id is)
/// changes nothing and leaves no version.
pub async fn a_refused_event_changes_nothing<F: ConformanceFactory>(f: &mut F) {
    let store = f.fresh().await;
    let conv = 63;
    store.append(msgs(conv, 1..=2)).await.expect("messages");
    let taken = store.append(vec![event(conv, 2, 1, &payload(conv, 1), "never")]).await;
    assert!(matches!(taken, Err(StoreError::SeqTaken { seq: 2, .. })), "{taken:?}");
    let mut again = event(conv, 3, 1, &payload(conv, 1), "never");
    again.sender_id = "user-2".into();
    again.client_msg_id = msg(conv, 2).client_msg_id;
    let dup = store.append(vec![again]).await;
    assert!(matches!(dup, Err(StoreError::Duplicates(_))), "{dup:?}");
    assert_eq!(store.read_range(conv, all()).await.expect("read")[0].1, payload(conv, 1), "target untouched");
    assert!(store.message_versions(conv, 1).await.expect("versions").is_empty(), "no version of a refused event");
}
