//! Retention and legal hold end to end: the real server on loopback (port
//! 0, fresh data directory, its real tantivy index and blob store), real
//! QUIC and WebTransport, the real Rust SDK. The purge job's clock is the
//! test's: `ServerHandle::purge_expired(now)` runs one pass as if it were
//! `now` (a `test-support` hook), so nothing waits real days.

mod common;
use chat_client::{Client, ClientConfig, Event, ResumeState, Transport};
use chat_protocol::v1::{self, ConversationKind, ErrorCode, HoldScope};
use chat_server::retention::job::PassReport;
use common::server::*;
use common::text;
use std::time::{Duration, SystemTime};

const DAY_MS: u64 = 86_400_000;

fn start() -> Server {
    Server::start_with(|c| {
        c.search.commit_interval_ms = 50;
        c.retention.default_days = 30;
        c.retention.max_purged_per_sec = 100_000;
    })
}

fn now_ms() -> u64 {
    chat_protocol::unix_ms(SystemTime::now())
}

/// `days` from now, as the purge job's clock.
fn in_days(days: u64) -> u64 {
    now_ms() + days * DAY_MS
}

fn summary_of(ok: v1::ConversationOk) -> v1::Conversation {
    ok.summary.and_then(|s| s.conversation).expect("a conversation")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_messages_leave_history_search_and_their_attachments() {
    let s = start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::WebTransport).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["bob"]).await;
    let file = alice.upload_bytes(conv, "brief.pdf", "application/pdf", &pdf_of(2_000)).await.expect("upload");
    alice.send_with_attachments(conv, "the brief", vec![file.attachment_id.clone()]).await.expect("send");
    let memo = alice.send_text(conv, "deposition memo").await.expect("send");
    let edit = alice.edit(conv, memo.seq, "deposition memo, revised").await.expect("edit");
    search_until(&bob, "deposition", &[memo.seq]).await;
    bob.download(conv, &file.attachment_id, 0, 0, false).await.expect("downloadable before");

    let early = s.h().purge_expired(in_days(29)).await;
    assert_eq!(early.messages, 0, "nothing is 30 days old yet: {early:?}");
    assert_eq!(seqs(&bob, conv).await.last(), Some(&edit.seq));

    let report = s.h().purge_expired(in_days(31)).await;
    assert_eq!(report.messages, edit.seq, "every message of the conversation expired: {report:?}");
    assert_eq!(report.attachments, 1);
    assert_eq!(report.blobs, 1, "its bytes, untouched for more than the grace, went too");
    assert!(!s.blob_file(&file.sha256).exists());
    let h = bob.history(conv, 0, 0, 100).await.expect("history");
    assert!(h.messages.is_empty(), "history is empty: {:?}", h.messages);
    assert_eq!(h.purged_through, edit.seq, "the page says where the purge stopped");
    let forward = bob.history(conv, 0, 1, 100).await.expect("history after a purged seq");
    assert!(forward.messages.is_empty());
    search_until(&bob, "deposition", &[]).await;
    let e = bob.download(conv, &file.attachment_id, 0, 0, false).await.err().expect("the attachment is gone");
    assert_eq!(code(e), Some(ErrorCode::UnknownAttachment));
    // A change of a purged message is refused as unknown, never resurrecting it.
    let e = alice.edit(conv, memo.seq, "again").await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::NotFound));
    let e = bob.react(conv, memo.seq, "👍", true).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::NotFound));
    assert!(seqs(&bob, conv).await.is_empty(), "nothing came back");

    // A repeat pass is harmless; the sequence goes on where it was.
    let again = s.h().purge_expired(in_days(31)).await;
    assert_eq!(again, PassReport { conversations: 1, ..Default::default() });
    let next = alice.send_text(conv, "after the purge").await.expect("send");
    assert_eq!(next.seq, edit.seq + 1);
    assert_eq!(seqs(&bob, conv).await, [next.seq]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_shared_with_a_kept_attachment_stay() {
    let s = start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::Quic).await;
    let short = create(&alice, ConversationKind::Group, "short", "", &["bob"]).await;
    let other = create(&alice, ConversationKind::Group, "other", "", &["bob"]).await;
    let sent = alice.upload_bytes(short, "brief.pdf", "application/pdf", &pdf_of(2_000)).await.expect("upload");
    alice.send_with_attachments(short, "the brief", vec![sent.attachment_id.clone()]).await.expect("send");
    // The same file, uploaded to a conversation kept forever and not sent: its record stays.
    alice.set_retention(other, 0).await.expect("keep forever");
    let kept = alice.upload_bytes(other, "copy.pdf", "application/pdf", &pdf_of(2_000)).await.expect("upload");
    assert_eq!(kept.sha256, sent.sha256, "one blob");

    let report = s.h().purge_expired(in_days(31)).await;
    assert_eq!((report.messages, report.attachments, report.blobs, report.failed), (1, 1, 0, 0), "{report:?}");
    assert!(s.blob_file(&sent.sha256).exists(), "another attachment names the bytes");
    let e = bob.download(short, &sent.attachment_id, 0, 0, false).await.err().expect("the purged one is gone");
    assert_eq!(code(e), Some(ErrorCode::UnknownAttachment));
    let got = bob.download(other, &kept.attachment_id, 0, 0, false).await.expect("the kept one downloads");
    assert_eq!(got.bytes().await.expect("its bytes"), pdf_of(2_000), "whole");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_never_sent_expires_with_the_retention() {
    let s = start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "drafts", "", &["bob"]).await;
    let draft = alice.upload_bytes(conv, "draft.pdf", "application/pdf", &pdf_of(2_500)).await.expect("upload");
    // It could still be sent for a day (blobs.send_within_secs), and a message
    // sent then lives 30 days: the record stays until both have passed.
    let early = s.h().purge_expired(in_days(30)).await;
    assert_eq!((early.attachments, early.blobs), (0, 0), "{early:?}");
    let report = s.h().purge_expired(in_days(32)).await;
    assert_eq!((report.messages, report.attachments, report.blobs, report.failed), (0, 1, 1, 0), "{report:?}");
    let e = alice.send_with_attachments(conv, "late", vec![draft.attachment_id.clone()]).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::UnknownAttachment));
    assert!(!s.blob_file(&draft.sha256).exists(), "its bytes went with the sweep");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_on_a_conversation_a_user_or_a_case_keep_everything_until_released() {
    let s = start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (root, _r) = s.connect("root", "admin", Transport::Quic).await;
    let held_conv = create(&alice, ConversationKind::Group, "held", "", &["bob"]).await;
    let with_user = create(&alice, ConversationKind::Group, "with dave", "", &["dave"]).await;
    let of_case = create(&alice, ConversationKind::Case, "case", "AZ-7", &["bob"]).await;
    let free = create(&alice, ConversationKind::Group, "free", "", &["bob"]).await;
    for conv in [held_conv, with_user, of_case, free] {
        alice.send_text(conv, "privileged").await.expect("send");
    }
    root.set_legal_hold(HoldScope::Conversation, held_conv.to_string(), "litigation").await.expect("hold");
    root.set_legal_hold(HoldScope::User, "dave", "dispute").await.expect("hold");
    let holds = root.set_legal_hold(HoldScope::Case, "AZ-7", "court order").await.expect("hold");
    assert_eq!(holds.len(), 3);
    assert_eq!((holds[2].target.as_str(), holds[2].set_by.as_str()), ("AZ-7", "root"));
    for (conv, held) in [(held_conv, true), (with_user, true), (of_case, true), (free, false)] {
        let c = summary_of(alice.get_conversation(conv).await.expect("get"));
        assert_eq!(c.legal_hold, held, "summary of {conv}");
    }

    let report = s.h().purge_expired(in_days(400)).await;
    assert_eq!(report.held, 3, "{report:?}");
    for conv in [held_conv, with_user, of_case] {
        assert_eq!(seqs(&alice, conv).await.len(), 1, "held conversation {conv} keeps everything");
    }
    assert!(seqs(&alice, free).await.is_empty(), "the free one is purged");

    let set = summary_of(alice.set_retention(with_user, 60).await.expect("set"));
    assert!(set.legal_hold, "the answer to a retention change shows the hold too");
    root.release_legal_hold(HoldScope::Conversation, held_conv.to_string()).await.expect("release");
    let e = root.release_legal_hold(HoldScope::Conversation, held_conv.to_string()).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::HoldNotFound));
    assert_eq!(root.list_legal_holds().await.expect("list").len(), 2);
    s.h().purge_expired(in_days(400)).await;
    assert!(seqs(&alice, held_conv).await.is_empty(), "released: purged");
    assert_eq!(seqs(&alice, with_user).await.len(), 1, "still held");
    assert_eq!(seqs(&alice, of_case).await.len(), 1, "still held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_is_set_by_admins_shown_in_the_summary_and_refused_to_others() {
    let s = start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::WebTransport).await;
    let (carol, _c) = s.connect("carol", "advocate", Transport::Quic).await;
    let (root, _r) = s.connect("root", "admin", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "matter", "", &["bob"]).await;
    let shown = summary_of(bob.get_conversation(conv).await.expect("get"));
    assert_eq!(shown.retention_days, 30, "a new conversation has the configured default");

    let e = bob.set_retention(conv, 7).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::Forbidden), "a member who is not an admin");
    let e = carol.set_retention(conv, 7).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::NotFound), "a non-member learns nothing");
    let e = alice.set_retention(conv, 36_501).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::RetentionOutOfRange));
    assert_eq!(summary_of(alice.set_retention(conv, 7).await.expect("admin")).retention_days, 7);
    assert_eq!(summary_of(bob.get_conversation(conv).await.expect("get")).retention_days, 7);
    let listed = bob.list_conversations(v1::ListConversations::default()).await.expect("list");
    let c = listed.conversations.iter().filter_map(|s| s.conversation.as_ref()).find(|c| c.id == conv);
    assert_eq!(c.map(|c| c.retention_days), Some(7));
    assert_eq!(summary_of(root.set_retention(conv, 0).await.expect("firm admin")).retention_days, 0);

    alice.send_text(conv, "kept forever").await.expect("send");
    let report = s.h().purge_expired(in_days(10_000)).await;
    assert_eq!(report.messages, 0, "0 days keeps forever: {report:?}");
    assert_eq!(seqs(&bob, conv).await.len(), 1);

    for e in [
        bob.set_legal_hold(HoldScope::User, "alice", "x").await.unwrap_err(),
        bob.list_legal_holds().await.unwrap_err(),
        alice.release_legal_hold(HoldScope::User, "alice").await.unwrap_err(),
    ] {
        assert_eq!(code(e), Some(ErrorCode::Forbidden));
    }
    for (scope, target) in [
        (HoldScope::Unspecified, "alice"),
        (HoldScope::Conversation, "0"),
        (HoldScope::Conversation, "abc"),
        (HoldScope::User, ""),
        (HoldScope::Case, "has space"),
    ] {
        let e = root.set_legal_hold(scope, target, "r").await.unwrap_err();
        assert_eq!(code(e), Some(ErrorCode::HoldTargetInvalid), "{scope:?} {target:?}");
    }
    let e = root.set_legal_hold(HoldScope::User, "alice", "r".repeat(1025)).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::HoldTargetInvalid));
    assert!(root.list_legal_holds().await.expect("list").is_empty(), "nothing refused was stored");
}

async fn resume(s: &Server, state: ResumeState) -> (Client, chat_client::Events) {
    let cfg: ClientConfig = s.client_config("bob", "client", Transport::WebTransport).resume(Some(state));
    Client::connect(cfg).await.expect("reconnect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_behind_the_purge_point_skips_ahead_and_resumes_cleanly() {
    let s = start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, mut b_ev) = s.connect("bob", "client", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "matter", "", &["bob"]).await;
    alice.send_text(conv, "seen").await.expect("send");
    messages(&mut b_ev, conv, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let state = bob.resume_state();
    bob.close().await;
    for i in 0..5 {
        alice.send_text(conv, &format!("while away {i}")).await.expect("send");
    }
    let report = s.h().purge_expired(in_days(31)).await;
    assert_eq!(report.messages, 6, "{report:?}");
    let after = alice.send_text(conv, "after the purge").await.expect("send");

    let (bob2, mut b2) = resume(&s, state).await;
    // The replay's message waits behind the purged run until the history
    // page says where the purge stopped (CaughtUp may come first).
    let mut caught_up = false;
    let got = next_where(&mut b2, |e| match e {
        Event::CaughtUp => {
            caught_up = true;
            None
        }
        Event::Message(m) if m.conversation_id == conv => Some(m),
        _ => None,
    })
    .await;
    assert_eq!((got.seq, text(&got).as_str()), (after.seq, "after the purge"), "skipped the purged run");
    if !caught_up {
        next_where(&mut b2, |e| matches!(e, Event::CaughtUp).then_some(())).await;
    }
    let live = alice.send_text(conv, "live").await.expect("send");
    let got = messages(&mut b2, conv, 1).await;
    assert_eq!(got[0].seq, live.seq, "live delivery goes on");
    assert_quiet(&mut b2, conv, Duration::from_millis(300)).await;
    assert_eq!(bob2.resume_state().cursors.get(&conv), Some(&live.seq), "the cursor is at the head");
}
