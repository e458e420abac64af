//! Conformance cases of retention: a purge removes a conversation's
//! messages at or below its mark with their versions and client ids, keeps
//! the rest and the last seq, is idempotent and kept across a reopen; legal
//! holds are set, replaced, listed and released; attachment records are
//! deleted.

use bytes::Bytes;
use prost::Message as _;

use super::harness::{ConformanceFactory, all, msg, msgs};
use crate::store::attachments::{AttachmentRecord, AttachmentStore};
use crate::store::retention::{HoldRecord, HoldScope, RetentionStore};
use crate::store::{MessageStore, MessageVersion, NewMessage, TargetWrite};

/// A user's message at `seq`, encoded as the server stores it.
fn real(conv: u64, seq: u64) -> NewMessage {
    let m = chat_protocol::v1::Message {
        conversation_id: conv,
        seq,
        sender_id: "ann".into(),
        client_msg_id: format!("real-{seq}"),
        server_time_ms: 1_000 * seq,
        ..Default::default()
    };
    NewMessage {
        sender_id: "ann".into(),
        client_msg_id: m.client_msg_id.clone(),
        encoded: m.encode_to_vec().into(),
        ..msg(conv, seq)
    }
}

/// An edit at `seq` of message `target`.
fn edit(conv: u64, seq: u64, target: u64) -> NewMessage {
    let version = MessageVersion {
        conversation_id: conv,
        target_seq: target,
        event_seq: seq,
        changed_by: "ann".into(),
        changed_at_ms: 9,
        kind: 3,
        prior: b"before".to_vec(),
    };
    let latest = Bytes::from_static(b"after");
    NewMessage { target: Some(Box::new(TargetWrite { seq: target, latest, version })), ..msg(conv, seq) }
}

fn seqs(rows: &[(u64, Bytes)]) -> Vec<u64> {
    rows.iter().map(|(s, _)| *s).collect()
}

/// A purge removes exactly the messages at or below the mark, their
/// versions and client ids; the last seq stays; a repeat or a lower mark
/// changes nothing; a purge of everything keeps the head; a reopen keeps it.
pub async fn purge_removes_through_the_mark_only<F: ConformanceFactory>(f: &mut F)
where
    F::Store: RetentionStore,
{
    let store = f.fresh().await;
    let conv = 81;
    store.append(vec![real(conv, 1), real(conv, 2)]).await.expect("real messages");
    store.append(msgs(conv, 3..=4)).await.expect("messages");
    store.append(vec![edit(conv, 5, 2), edit(conv, 6, 4)]).await.expect("edits");
    assert_eq!(store.purged_through(conv).await.expect("mark"), 0, "nothing purged yet");
    store.purge_through(conv, 3).await.expect("purge");
    assert_eq!(seqs(&store.read_range(conv, all()).await.expect("read")), [4, 5, 6]);
    assert_eq!(store.purged_through(conv).await.expect("mark"), 3);
    assert!(store.message_versions(conv, 2).await.expect("versions").is_empty(), "a purged message's versions go");
    assert_eq!(store.message_versions(conv, 4).await.expect("versions").len(), 1, "a kept one's stay");
    assert_eq!(store.find_client_msg(conv, "ann", "real-1").await.expect("lookup"), None, "its client id goes");
    assert_eq!(store.last_seq(conv).await.expect("head"), 6);
    store.purge_through(conv, 3).await.expect("again");
    store.purge_through(conv, 1).await.expect("lower");
    assert_eq!(store.purged_through(conv).await.expect("mark"), 3, "the mark never goes down");
    assert_eq!(seqs(&store.read_range(conv, all()).await.expect("read")), [4, 5, 6]);
    assert_eq!(store.purged_through(conv + 1).await.expect("mark"), 0, "other conversations are untouched");
    store.purge_through(conv, 6).await.expect("everything");
    assert!(store.read_range(conv, all()).await.expect("read").is_empty());
    assert_eq!(store.last_seq(conv).await.expect("head"), 6, "purged seqs stay taken");
    let store = f.reopen(store).await;
    assert_eq!(store.purged_through(conv).await.expect("mark"), 6, "kept across a reopen");
    assert_eq!(store.last_seq(conv).await.expect("head"), 6, "and the head with it");
    store.append(msgs(conv, 7..=7)).await.expect("the next seq");
    assert_eq!(seqs(&store.read_range(conv, all()).await.expect("read")), [7]);
}

/// Forgetting one message's versions removes exactly those; the message
/// and other messages' versions stay; a repeat or an unknown one is fine.
pub async fn versions_of_one_message_are_forgotten<F: ConformanceFactory>(f: &mut F)
where
    F::Store: RetentionStore,
{
    let store = f.fresh().await;
    let conv = 83;
    store.append(vec![real(conv, 1), real(conv, 2)]).await.expect("real messages");
    store.append(vec![edit(conv, 3, 1), edit(conv, 4, 2)]).await.expect("edits");
    store.forget_versions(conv, 1).await.expect("forget");
    assert!(store.message_versions(conv, 1).await.expect("versions").is_empty(), "its versions go");
    assert_eq!(store.message_versions(conv, 2).await.expect("versions").len(), 1, "another's stay");
    assert_eq!(seqs(&store.read_range(conv, all()).await.expect("read")), [1, 2, 3, 4], "messages stay");
    store.forget_versions(conv, 1).await.expect("again");
    store.forget_versions(conv, 99).await.expect("unknown");
    let store = f.reopen(store).await;
    assert!(store.message_versions(conv, 1).await.expect("versions").is_empty(), "gone across a reopen");
}

fn hold(scope: HoldScope, target: &str, reason: &str) -> HoldRecord {
    HoldRecord {
        scope,
        target: target.into(),
        reason: reason.into(),
        set_by: "root".into(),
        set_at_ms: 1_700_000_000_000,
    }
}

/// Holds read back by scope then target; a second put replaces; a release
/// says whether there was one; a reopen keeps them.
pub async fn legal_holds_set_list_release<F: ConformanceFactory>(f: &mut F)
where
    F::Store: RetentionStore,
{
    let store = f.fresh().await;
    assert!(store.holds().await.expect("none").is_empty());
    let case = hold(HoldScope::Case, "AZ 12/345 \u{e9}", "court order");
    let user = hold(HoldScope::User, "bob", "dispute");
    let conv = hold(HoldScope::Conversation, "42", "litigation");
    for h in [&case, &user, &conv] {
        store.put_hold(h).await.expect("put");
    }
    assert_eq!(store.holds().await.expect("list"), [conv.clone(), user.clone(), case.clone()]);
    let renewed = hold(HoldScope::User, "bob", "renewed");
    store.put_hold(&renewed).await.expect("replace");
    assert!(store.remove_hold(HoldScope::Conversation, "42").await.expect("release"));
    assert!(!store.remove_hold(HoldScope::Conversation, "42").await.expect("again"), "nothing left to release");
    assert!(!store.remove_hold(HoldScope::Case, "bob").await.expect("other scope"), "a target is per scope");
    let store = f.reopen(store).await;
    assert_eq!(store.holds().await.expect("list"), [renewed, case], "kept across a reopen");
}

/// A deleted attachment record is gone; deleting an absent one is fine.
pub async fn attachment_records_are_deleted<F: ConformanceFactory>(f: &mut F)
where
    F::Store: RetentionStore + AttachmentStore,
{
    let store = f.fresh().await;
    let rec = AttachmentRecord { conversation_id: 9, id: "a".repeat(32), uploader: "ann".into(), ..Default::default() };
    let other = AttachmentRecord { id: "b".repeat(32), ..rec.clone() };
    store.put_attachment(&rec).await.expect("put");
    store.put_attachment(&other).await.expect("put");
    store.delete_attachment(9, &rec.id).await.expect("delete");
    store.delete_attachment(9, &rec.id).await.expect("delete again");
    assert_eq!(store.attachment(9, &rec.id).await.expect("get"), None);
    assert_eq!(store.attachment(9, &other.id).await.expect("get"), Some(other), "the other stays");
}

/// Stripping a message removes its content (body, attachment list) and
/// keeps the rest; an absent message is not stripped; kept across a reopen.
pub async fn a_stripped_message_keeps_its_metadata_only<F: ConformanceFactory>(f: &mut F)
where
    F::Store: RetentionStore,
{
    use chat_protocol::v1::{Attachment, Message, MessageBody, message_body::Content};
    let store = f.fresh().await;
    let conv = 93;
    let body = Some(MessageBody { content: Some(Content::Text("the edited figure".into())) });
    let attachments = vec![Attachment { name: "offer.pdf".into(), ..Default::default() }];
    let m = Message { body, attachments, ..Message::decode(real(conv, 1).encoded).unwrap() };
    store.append(vec![NewMessage { encoded: m.encode_to_vec().into(), ..real(conv, 1) }]).await.expect("append");
    store.append(vec![real(conv, 2)]).await.expect("append");
    assert!(store.strip_message(conv, 1).await.expect("strip"));
    assert!(!store.strip_message(conv, 9).await.expect("strip absent"), "nothing stored there");
    let store = f.reopen(store).await;
    let read = store.read_range(conv, all()).await.expect("read");
    let stripped = Message::decode(read[0].1.clone()).unwrap();
    assert_eq!(stripped, Message { body: None, attachments: Vec::new(), ..m }, "only the content went");
    assert_eq!(read[1].1, real(conv, 2).encoded, "the others are untouched");
}
