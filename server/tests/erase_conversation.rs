//! Erasing a whole conversation end to end: the real server on loopback
//! (port 0, fresh data directory, encryption at rest on, its real tantivy
//! index and blob store), real QUIC and WebTransport, the real Rust SDK. A
//! system admin erases a case conversation: refused while a hold covers it,
//! then every message, search entry and attachment goes, its data key is
//! destroyed, it stays archived, and another conversation is untouched.

mod common;
use chat_client::{Client, Event, Transport};
use chat_protocol::v1::{self, ConversationKind, ErrorCode, HoldScope};
use common::server::*;
use std::time::{Duration, Instant, SystemTime};

/// The audit entries of `kind`, waiting until there are `n`.
async fn audited(root: &Client, kind: &str, n: usize) -> Vec<v1::AuditEntry> {
    let read = v1::ReadAudit { kinds: vec![kind.into()], ..Default::default() };
    let deadline = Instant::now() + WAIT;
    loop {
        let entries = root.read_audit_all(read.clone()).await.expect("audit");
        if entries.len() >= n || Instant::now() > deadline {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_erases_a_whole_conversation_and_destroys_its_key() {
    let s = Server::start_with(|c| {
        c.search.commit_interval_ms = 50;
        c.encryption.master_key = "5a".repeat(32);
    });
    let (root, _r) = s.connect("root", "admin", Transport::Quic).await;
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, mut b_ev) = s.connect("bob", "client", Transport::WebTransport).await;
    let conv = create(&alice, ConversationKind::Case, "Doe v. Roe", "CV-77", &["bob"]).await;
    let other = create(&alice, ConversationKind::Group, "Other matter", "", &["bob"]).await;
    let file = alice.upload_bytes(conv, "brief.pdf", "application/pdf", &pdf_of(3_000)).await.expect("upload");
    alice.send_with_attachments(conv, "the brief", vec![file.attachment_id.clone()]).await.expect("send");
    let memo = alice.send_text(conv, "deposition schedule").await.expect("send");
    let edit = alice.edit(conv, memo.seq, "deposition schedule, revised").await.expect("edit");
    let kept = alice.send_text(other, "deposition elsewhere").await.expect("send");
    search_until(&bob, "schedule", &[memo.seq]).await;

    // Refusals first: nothing changes.
    let e = alice.erase_conversation(conv, "closing the matter").await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::Forbidden), "only system admins erase");
    let e = root.erase_conversation(conv, "  ").await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::EraseReasonRequired));
    let e = root.erase_conversation(987_654_321, "no such").await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::NotFound));
    root.set_legal_hold(HoldScope::Case, "CV-77", "pending appeal").await.expect("hold");
    let e = root.erase_conversation(conv, "matter closed").await.unwrap_err();
    assert_eq!(code(e.clone()), Some(ErrorCode::UnderLegalHold));
    assert!(e.to_string().contains("CV-77"), "the refusal names the hold: {e}");
    assert_eq!(seqs(&bob, conv).await.last(), Some(&edit.seq), "nothing went");
    root.release_legal_hold(HoldScope::Case, "CV-77").await.expect("release");

    let done = root.erase_conversation(conv, "matter closed; client's instruction").await.expect("erase");
    assert_eq!((done.conversation_id, done.messages, done.attachments), (conv, edit.seq, 1), "{done:?}");
    assert!(done.key_destroyed, "its data key is destroyed");
    assert!(s.h().store().is_shredded(conv).await.unwrap());
    // Live: members are told how far it was purged, so their apps drop what they hold.
    let told = next_where(&mut b_ev, |e| match e {
        Event::Conversation(s) if s.purged_through > 0 => Some(s),
        _ => None,
    })
    .await;
    assert_eq!(told.purged_through, edit.seq, "{told:?}");
    assert!(told.conversation.is_some_and(|c| c.id == conv && c.archived_at_ms > 0));

    // Members see it emptied and archived for good.
    let h = bob.history(conv, 0, 0, 100).await.expect("history");
    assert!(h.messages.is_empty() && h.purged_through == edit.seq, "{h:?}");
    let c = bob.get_conversation(conv).await.expect("get").summary.and_then(|s| s.conversation).expect("conv");
    assert!(c.archived_at_ms > 0, "archived: {c:?}");
    let e = bob.send_text(conv, "anyone there?").await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::Archived));
    let e = alice.archive(conv, true).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::Archived), "an erased conversation stays archived");
    let e = bob.download(conv, &file.attachment_id, 0, 0, false).await.err().expect("the file is gone");
    assert_eq!(code(e), Some(ErrorCode::UnknownAttachment));
    search_until(&bob, "schedule", &[]).await;
    search_until(&bob, "elsewhere", &[kept.seq]).await;
    assert_eq!(seqs(&bob, other).await.last(), Some(&kept.seq), "another conversation is untouched");

    // Erasing again finds nothing more; the file's bytes go with the sweep.
    let again = root.erase_conversation(conv, "re-run").await.expect("again");
    assert_eq!((again.messages, again.attachments, again.key_destroyed), (0, 0, false), "{again:?}");
    let now = chat_protocol::unix_ms(SystemTime::now());
    let swept = s.h().purge_expired(now + 2 * 86_400_000).await;
    assert_eq!((swept.blobs, swept.failed), (1, 0), "{swept:?}");
    assert!(!s.blob_file(&file.sha256).exists());

    // Audited per erasure, with counts, never content.
    let entries = audited(&root, "conversation.erased", 2).await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!((entries[0].actor.as_str(), entries[0].conversation_id), ("root", conv));
    let details: serde_json::Value = serde_json::from_str(&entries[0].details).expect("json");
    assert_eq!((details["messages"].as_u64(), details["key_destroyed"].as_bool()), (Some(edit.seq), Some(true)));
    assert!(!entries[0].details.contains("deposition"), "counts, never content");

    // Its members may still leave it (a membership change writes no message).
    bob.leave(conv).await.expect("leave the erased conversation");
    let e = bob.history(conv, 0, 0, 10).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::NotFound), "no longer his");
}
