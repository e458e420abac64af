//! GDPR erasure end to end: the real server on loopback (port 0, fresh
//! data directory, its real blob store), real QUIC and WebTransport, the
//! real Rust SDK. An admin erases a user: their messages become tombstones
//! other members see live and in history, their files go (sent or not), their profile is
//! pseudonymised, their sessions close and they cannot sign in again; what
//! a legal hold covers stays, and the result and the audit trail say so.

mod common;
use chat_client::{Event, Events, Transport};
use chat_protocol::v1::{self, ConversationKind, ErrorCode, HoldScope, MessageKind};
use chat_server::store::attachments::AttachmentStore;
use common::server::*;
use common::text;

fn pdf() -> Vec<u8> {
    let mut v = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    v.extend((0..2_000u32).map(|i| b'a' + (i % 26) as u8));
    v.extend_from_slice(b"\ntrailer << /Root 1 0 R >>\n%%EOF\n");
    v
}

/// The next delete event of `conv` another member receives: its target seq.
async fn tombstone_seen(ev: &mut Events, conv: u64) -> u64 {
    next_where(ev, |e| match e {
        Event::Changed(m) if m.conversation_id == conv && m.kind == MessageKind::Delete as i32 => Some(m.target_seq),
        _ => None,
    })
    .await
}

/// The error a client's connection ended with.
async fn disconnected(ev: &mut Events) -> Option<i32> {
    next_where(ev, |e| match e {
        Event::Disconnected { error, .. } => Some(error.map(|e| e.code)),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_tombstones_live_and_in_history_removes_files_and_signs_the_user_out_keeping_what_is_held() {
    let s = Server::start();
    let (root, _r) = s.connect("root", "admin", Transport::Quic).await;
    let (alice, mut a_ev) = s.connect("alice", "advocate", Transport::WebTransport).await;
    let (bob, mut b_ev) = s.connect("bob", "client", Transport::Quic).await;
    let free = create(&alice, ConversationKind::Group, "Smith", "", &["bob"]).await;
    let held = create(&alice, ConversationKind::Case, "Jones", "AZ-9", &["bob"]).await;
    let file = bob.upload_bytes(free, "id-card.pdf", "application/pdf", &pdf()).await.expect("upload");
    let with_file = bob.send_with_attachments(free, "my id", vec![file.attachment_id.clone()]).await.expect("send");
    // An upload he never sent.
    let unsent = bob.upload_bytes(free, "draft.pdf", "application/pdf", &pdf()).await.expect("upload");
    let plain = bob.send_text(free, "my address is 1 Main St").await.expect("send");
    let hers = alice.send_text(free, "thanks").await.expect("send");
    let kept = bob.send_text(held, "the contract terms").await.expect("send");
    root.set_legal_hold(HoldScope::Case, "AZ-9", "court order 12/26").await.expect("hold");
    alice.download(free, &file.attachment_id, 0, 0, false).await.expect("downloadable before");

    // Refusals first: nothing changes.
    let e = alice.erase_user("bob", "please").await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::Forbidden), "only admins erase");
    let e = root.erase_user("nobody", "art. 17").await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::UnknownUser));
    let e = root.erase_user("bob", "").await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::EraseReasonRequired));
    let e = root.erase_user("bob", "r".repeat(501)).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::InvalidArgument));
    assert_eq!(alice.history(free, 0, 0, 50).await.expect("history").messages.iter().filter(|m| m.deleted).count(), 0);

    let result = root.erase_user("bob", "art. 17 request of 3 Dec").await.expect("erase");
    assert_eq!((result.messages_erased, result.attachments_erased, result.messages_failed), (2, 2, 0), "{result:?}");
    assert_eq!(result.kept.len(), 1, "{result:?}");
    let k = &result.kept[0];
    assert_eq!((k.conversation_id, k.scope, k.target.as_str(), k.messages), (held, HoldScope::Case as i32, "AZ-9", 1));
    assert!(result.pseudonym.starts_with("Erased user "), "{}", result.pseudonym);

    // Live: the other member sees both tombstones; bob's session is closed.
    let mut seen = vec![tombstone_seen(&mut a_ev, free).await, tombstone_seen(&mut a_ev, free).await];
    seen.sort();
    assert_eq!(seen, [with_file.seq, plain.seq]);
    assert_eq!(disconnected(&mut b_ev).await, Some(ErrorCode::UserDisabled as i32));
    match chat_client::Client::connect(s.client_config("bob", "client", Transport::Quic)).await {
        Ok(_) => panic!("an erased user signed in"),
        Err(e) => assert_eq!(code(e), Some(ErrorCode::UserDisabled)),
    }

    // History: bob's messages erased (no body), alice's intact; the held one kept.
    let h = alice.history(free, 0, 0, 50).await.expect("history");
    for seq in [with_file.seq, plain.seq] {
        let m = h.messages.iter().find(|m| m.seq == seq).expect("the tombstone stays in place");
        assert!(m.deleted && m.body.is_none() && m.attachments.is_empty(), "{m:?}");
    }
    let mine = h.messages.iter().find(|m| m.seq == hers.seq).expect("hers");
    assert_eq!(text(mine), "thanks");
    let h = alice.history(held, 0, 0, 50).await.expect("history");
    let m = h.messages.iter().find(|m| m.seq == kept.seq).expect("held");
    assert_eq!(text(m), "the contract terms", "a legal hold keeps it");
    let e = alice.download(free, &file.attachment_id, 0, 0, false).await.err().expect("the file is gone");
    assert_eq!(code(e), Some(ErrorCode::UnknownAttachment));
    let left = s.h().store().attachment(free, &unsent.attachment_id).await.expect("store");
    assert_eq!(left, None, "the record of the upload he never sent is gone too");
    // The bytes of both (one blob: the same file twice) go with the purge
    // job's sweep once nobody touched them for the grace (a day).
    let blob = s.blob_file(&file.sha256);
    assert!(blob.exists(), "kept until the sweep");
    let now = chat_protocol::unix_ms(std::time::SystemTime::now());
    let soon = s.h().purge_expired(now + 60_000).await;
    assert_eq!((soon.blobs, soon.failed), (0, 0), "within the grace: {soon:?}");
    let later = s.h().purge_expired(now + 2 * 86_400_000).await;
    assert_eq!((later.blobs, later.failed), (1, 0), "{later:?}");
    assert!(!blob.exists(), "the file is gone from the disk");

    // The profile: pseudonymised (members see the pseudonym), the id kept.
    let members = alice.get_members(free).await.expect("members");
    let m = members.members.iter().find(|m| m.user_id == "bob").expect("bob stays a member, by id");
    assert_eq!(m.display_name, result.pseudonym);
    assert!(!root.search_users("bob", 50, "").await.expect("search").users.iter().any(|u| u.id == "bob"));

    // Audited once per erasure, with counts; erasing again finds nothing more.
    let again = root.erase_user("bob", "re-run").await.expect("again");
    assert_eq!((again.messages_erased, again.attachments_erased, again.kept.len()), (0, 0, 1), "{again:?}");
    let read = v1::ReadAudit { kinds: vec!["gdpr.erased".into()], ..Default::default() };
    let deadline = std::time::Instant::now() + WAIT;
    let entries = loop {
        let entries = root.read_audit_all(read.clone()).await.expect("audit");
        if entries.len() >= 2 || std::time::Instant::now() > deadline {
            break entries;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert_eq!(entries.len(), 2, "one entry per erasure: {entries:?}");
    assert_eq!((entries[0].actor.as_str(), entries[0].target_user.as_str()), ("root", "bob"));
    let details: serde_json::Value = serde_json::from_str(&entries[0].details).expect("json");
    assert_eq!(details["messages_erased"], 2);
    assert_eq!(details["kept"][0]["target"], "AZ-9");
    assert!(!entries[0].details.contains("Main St"), "counts, never content");
}

/// An erasure also reaches conversations the user left or was removed
/// from (found on the audit trail) and archived ones: every message of
/// theirs there becomes a tombstone the remaining members read in history.
/// A hold on the user keeps theirs in a conversation they left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_reaches_conversations_the_user_left_was_removed_from_or_that_are_archived() {
    let s = Server::start();
    let (root, _r) = s.connect("root", "admin", Transport::Quic).await;
    let (alice, _a) = s.connect("alice", "advocate", Transport::WebTransport).await;
    let (bob, _b) = s.connect("bob", "client", Transport::Quic).await;
    let (carol, _c) = s.connect("carol", "client", Transport::Quic).await;
    let left = create(&alice, ConversationKind::Group, "Left", "", &["bob"]).await;
    let removed = create(&alice, ConversationKind::Group, "Removed", "", &["bob"]).await;
    let archived = create(&alice, ConversationKind::Group, "Archived", "", &["bob"]).await;
    let held = create(&alice, ConversationKind::Group, "Held", "", &["carol"]).await;
    let mut theirs = Vec::new();
    for conv in [left, removed, archived] {
        theirs.push((conv, bob.send_text(conv, format!("bob's secret in {conv}")).await.expect("send").seq));
    }
    // An edit carries the text it edited to: the erasure takes it too.
    bob.edit(left, theirs[0].1, "bob's secret, edited").await.expect("edit");
    let carols = carol.send_text(held, "carol's words").await.expect("send").seq;
    bob.leave(left).await.expect("leave");
    alice.remove_member(removed, "bob").await.expect("remove");
    alice.archive(archived, false).await.expect("archive");
    carol.leave(held).await.expect("leave");
    root.set_legal_hold(HoldScope::User, "carol", "her matter").await.expect("hold");

    let result = root.erase_user("bob", "art. 17").await.expect("erase");
    assert_eq!((result.messages_erased, result.messages_failed), (3, 0), "{result:?}");
    for (conv, seq) in theirs {
        let history = alice.history(conv, 0, 0, 50).await.expect("history").messages;
        let m = history.iter().find(|m| m.seq == seq).expect("the message stays, as a tombstone");
        assert!(m.deleted && m.body.is_none(), "erased in {conv}: {m:?}");
        assert!(!format!("{history:?}").contains("bob's secret"), "{history:?}");
    }
    let kept = root.erase_user("carol", "art. 17").await.expect("erase carol");
    assert_eq!(kept.messages_erased, 0, "the hold on her keeps her words where she left: {kept:?}");
    assert!(kept.kept.iter().any(|k| k.conversation_id == held && k.messages == 1), "{kept:?}");
    let history = alice.history(held, 0, 0, 50).await.expect("history").messages;
    assert!(history.iter().any(|m| m.seq == carols && !m.deleted), "{history:?}");
}
