//! `ExportUserData` end to end: the real server on loopback (port 0, fresh
//! data directory, its real blob store), real QUIC and WebTransport, the
//! real Rust SDK. A client exports their own data from the app: one tar
//! archive with their profile, membership, exactly their entries, their
//! uploads (sent or not) byte for byte, the audit entries about them and a manifest whose
//! SHA-256s match; an admin exports another user's (an edited message with
//! its earlier text); a client asking for someone else's, an unknown user
//! and the command sent on the control stream are refused precisely; both
//! exports are on the audit trail with who asked; nothing is left in the
//! node's scratch directory.

mod common;
use chat_client::{ClientError, Transport};
use chat_protocol::v1::{self, ConversationKind, ErrorCode, command::Body};
use common::archive::{json_lines, untar};
use common::server::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn pdf() -> Vec<u8> {
    let mut v = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    v.extend((0..200_000u32).map(|i| b'a' + (i % 26) as u8));
    v.extend_from_slice(b"\ntrailer << /Root 1 0 R >>\n%%EOF\n");
    v
}

/// The archive's manifest checks out: every other file listed once, with its size and SHA-256.
fn check_manifest(files: &BTreeMap<String, Vec<u8>>, user: &str) -> Value {
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).expect("manifest.json");
    assert_eq!(manifest["user_id"], user);
    let listed = manifest["files"].as_array().unwrap();
    assert_eq!(listed.len(), files.len() - 1, "every file but the manifest is listed: {manifest}");
    for f in listed {
        let bytes = &files[f["path"].as_str().unwrap()];
        assert_eq!(f["bytes"].as_u64().unwrap(), bytes.len() as u64, "{f}");
        assert_eq!(f["sha256"], hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes)), "{f}");
    }
    manifest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_export_their_own_data_admins_anyones_as_one_archive() {
    let s = Server::start();
    let (root, _r) = s.connect("root", "admin", Transport::Quic).await;
    let (alice, _a) = s.connect("alice", "advocate", Transport::WebTransport).await;
    let (bob, _b) = s.connect("bob", "client", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "Lease", "", &["bob"]).await;
    let first = alice.send_text(conv, "the first draft").await.expect("send").seq;
    alice.edit(conv, first, "the second draft").await.expect("edit");
    let doc = pdf();
    let file = bob.upload_bytes(conv, "id-card.pdf", "application/pdf", &doc).await.expect("upload");
    bob.send_with_attachments(conv, "my id", vec![file.attachment_id.clone()]).await.expect("send");
    bob.send_text(conv, "my address is 1 Main St").await.expect("send");
    let unsent = bob.upload_bytes(conv, "draft.pdf", "application/pdf", &doc[..5_000]).await.expect("upload");
    bob.mark_read(conv, first).await.expect("read");

    // Bob, from his app, exports his own data.
    let export = bob.export_user_data("").await.expect("bob's export");
    let ok = export.ok.clone();
    let archive = export.bytes().await.expect("the archive");
    assert_eq!(archive.len() as u64, ok.length);
    assert_eq!((ok.user_id.as_str(), ok.conversations, ok.messages, ok.attachments), ("bob", 1, 2, 2), "{ok:?}");
    assert!(ok.audit_entries >= 1, "{ok:?}");
    let entries = untar(&archive);
    let names: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    let upload = format!("attachments/{conv}/{}", file.attachment_id);
    let draft = format!("attachments/{conv}/{}", unsent.attachment_id);
    let mut uploads = [upload.as_str(), draft.as_str()];
    uploads.sort();
    assert_eq!(
        names,
        [
            "profile.json",
            "messages.jsonl",
            "conversations.json",
            uploads[0],
            uploads[1],
            "audit.jsonl",
            "manifest.json"
        ],
        "his uploads, sent or not, in id order; the manifest last"
    );
    let files: BTreeMap<String, Vec<u8>> = entries.into_iter().collect();
    check_manifest(&files, "bob");
    assert_eq!(files[&upload], doc, "his upload byte for byte");
    assert_eq!(files[&draft], doc[..5_000], "and the one he never sent");
    let profile: Value = serde_json::from_slice(&files["profile.json"]).unwrap();
    assert_eq!(profile["id"], "bob");
    let convs: Value = serde_json::from_slice(&files["conversations.json"]).unwrap();
    assert_eq!(convs[0]["title"], "Lease");
    assert!(convs[0]["read_seq"].as_u64().unwrap() >= first, "his read receipt: {convs}");
    let msgs = json_lines(&files["messages.jsonl"]);
    let texts: Vec<&str> = msgs.iter().map(|m| m["body"]["text"].as_str().unwrap_or("")).collect();
    assert_eq!(texts, ["my id", "my address is 1 Main St"], "exactly his entries");
    let audit = json_lines(&files["audit.jsonl"]);
    assert!(audit.iter().any(|e| e["kind"] == "session.opened" && e["actor"] == "bob"), "{audit:?}");

    // Refusals, each precise.
    let e = bob.export_user_data("alice").await.err().expect("refused");
    assert_eq!(code(e), Some(ErrorCode::Forbidden), "a client exports only their own data");
    let e = root.export_user_data("nobody").await.err().expect("refused");
    assert_eq!(code(e), Some(ErrorCode::UnknownUser));
    let e = root.request(Body::ExportUserData(v1::ExportUserData { user_id: "alice".into() })).await.unwrap_err();
    let ClientError::Server(w) = e else { panic!("expected a server error, got {e:?}") };
    assert_eq!(w.code(), Some(ErrorCode::Unsupported), "not on the control stream: {w:?}");

    // An admin exports alice's: her edited message with its earlier text.
    let export = root.export_user_data("alice").await.expect("alice's export");
    assert_eq!(export.ok.user_id, "alice");
    let files: BTreeMap<String, Vec<u8>> = untar(&export.bytes().await.expect("the archive")).into_iter().collect();
    check_manifest(&files, "alice");
    let msgs = json_lines(&files["messages.jsonl"]);
    let edited = msgs.iter().find(|m| m["seq"] == first).expect("the edited message");
    assert_eq!(edited["body"]["text"], "the second draft");
    assert_eq!(edited["earlier_versions"][0]["body"]["text"], "the first draft");
    assert!(!msgs.iter().any(|m| m["body"]["text"] == "my id"), "never bob's words");

    // Both on the trail, with who asked; the scratch is gone.
    let read = v1::ReadAudit { kinds: vec!["gdpr.exported".into()], ..Default::default() };
    let deadline = Instant::now() + WAIT;
    loop {
        let entries = root.read_audit_all(read.clone()).await.expect("audit");
        let who: Vec<(&str, &str)> = entries.iter().map(|e| (e.actor.as_str(), e.target_user.as_str())).collect();
        if who == [("bob", "bob"), ("root", "alice")] {
            let details: Value = serde_json::from_str(&entries[0].details).unwrap();
            assert_eq!(details["via"], "ExportUserData");
            assert_eq!(details["messages"], 2);
            break;
        }
        assert!(Instant::now() < deadline, "exports on the trail: {who:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let scratch = s.cfg.data_dir.join("exports");
    let deadline = Instant::now() + WAIT;
    while std::fs::read_dir(&scratch).map(|d| d.count()).unwrap_or(0) > 0 {
        assert!(Instant::now() < deadline, "the export scratch stays: {scratch:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
