//! `chatd gdpr export` on the real binary: after alice and bob talk (alice
//! edits a message and sends a PDF), the export of alice taken from the
//! running server (over its control socket) holds her profile, her
//! membership with its receipts, exactly her entries (the edited one with
//! its earlier text, never bob's), the PDF byte for byte, the audit entries
//! about her, and a manifest whose SHA-256s match the files; the export is
//! on the audit trail; with chatd stopped the export (from the store
//! directly) holds the same entries. Refusals, running or not: a non-empty
//! target, an unknown user. `chatd gdpr erase` asks the running server too:
//! the user's messages become tombstones others read in history, their
//! session ends, a legal hold keeps what it covers and the summary names it,
//! the erasure is on the trail with its reason; with no chatd running it is
//! refused, naming why. So is `chatd conversations erase`, which a legal
//! hold refuses and which empties the conversation otherwise.

#[path = "common/archive.rs"]
#[allow(dead_code)]
mod archive;
#[path = "common/chatd.rs"]
mod chatd;

use chat_client::{Client, ClientConfig, Trust};
use chat_protocol::v1::{ConversationKind, HoldScope};
use chatd::{run, serve, terminate, text, token, token_as};
use serde_json::Value;
use std::path::Path;

fn pdf() -> Vec<u8> {
    let mut v = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    v.extend((0..300_000u32).map(|i| b'a' + (i % 26) as u8));
    v.extend_from_slice(b"\ntrailer << /Root 1 0 R >>\n%%EOF\n");
    v
}

fn json_lines(path: &Path) -> Vec<Value> {
    archive::json_lines(&std::fs::read(path).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_holds_exactly_the_users_data_with_a_manifest_that_matches() {
    let data = tempfile::tempdir().unwrap();
    let (child, addr, hash) = serve(data.path());
    let connect =
        |user: &str| ClientConfig::new(addr.clone(), token(data.path(), user), Trust::cert_hash_hex(&hash).unwrap());
    let (alice, _a) = Client::connect(connect("alice")).await.expect("alice");
    let (bob, _b) = Client::connect(connect("bob")).await.expect("bob");
    let conv = alice
        .create_conversation(ConversationKind::Group, "Lease", "", vec!["bob".into()])
        .await
        .expect("create")
        .summary
        .unwrap()
        .conversation
        .unwrap()
        .id;
    let first = alice.send_text(conv, "the first draft").await.expect("send").seq;
    alice.edit(conv, first, "the second draft").await.expect("edit");
    bob.send_text(conv, "bob's own words").await.expect("bob sends");
    let doc = pdf();
    let up = alice.upload_bytes(conv, "lease.pdf", "application/pdf", &doc).await.expect("upload");
    alice.send_with_attachments(conv, "the lease", vec![up.attachment_id.clone()]).await.expect("send pdf");
    alice.mark_read(conv, first).await.expect("read");

    // From the running server.
    let out_dir = tempfile::tempdir().unwrap();
    let to = out_dir.path().join("alice");
    let (d, target) = (data.path().to_owned(), to.clone());
    let out = tokio::task::spawn_blocking(move || {
        run(&["gdpr", "export", "--user", "alice", "--to", target.to_str().unwrap()], &d)
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("exported alice"), "{}", text(&out));
    let nobody_to = out_dir.path().join("n");
    let nobody = run(&["gdpr", "export", "--user", "nobody", "--to", nobody_to.to_str().unwrap()], data.path());
    assert!(!nobody.status.success());
    assert!(text(&nobody).contains("no user \"nobody\""), "{}", text(&nobody));
    drop((alice, bob));
    terminate(child);

    let profile: Value = serde_json::from_slice(&std::fs::read(to.join("profile.json")).unwrap()).unwrap();
    assert_eq!(profile["id"], "alice");
    let convs: Value = serde_json::from_slice(&std::fs::read(to.join("conversations.json")).unwrap()).unwrap();
    assert_eq!(convs.as_array().unwrap().len(), 1);
    assert_eq!(convs[0]["title"], "Lease");
    assert!(convs[0]["read_seq"].as_u64().unwrap() >= first, "her read receipt: {convs}");

    let msgs = json_lines(&to.join("messages.jsonl"));
    assert!(msgs.iter().all(|m| m["conversation_id"] == conv), "{msgs:?}");
    assert!(!msgs.iter().any(|m| m["body"]["text"] == "bob's own words"), "never another's words");
    let edited = msgs.iter().find(|m| m["seq"] == first).expect("the edited message");
    assert_eq!(edited["body"]["text"], "the second draft");
    assert_eq!(edited["earlier_versions"][0]["body"]["text"], "the first draft");
    assert!(msgs.iter().any(|m| m["kind"] == "MESSAGE_KIND_EDIT"), "the edit entry is hers too");
    let with_file = msgs.iter().find(|m| m["body"]["text"] == "the lease").expect("the PDF's message");
    let file = with_file["attachments"][0]["file"].as_str().unwrap();
    assert_eq!(std::fs::read(to.join(file)).unwrap(), doc, "the PDF byte for byte");

    let audit = json_lines(&to.join("audit.jsonl"));
    assert!(audit.iter().any(|e| e["kind"] == "session.opened" && e["actor"] == "alice"), "{audit:?}");

    let manifest: Value = serde_json::from_slice(&std::fs::read(to.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["user_id"], "alice");
    assert_eq!(manifest["attachments"], 1);
    for f in manifest["files"].as_array().unwrap() {
        let bytes = std::fs::read(to.join(f["path"].as_str().unwrap())).unwrap();
        assert_eq!(f["bytes"].as_u64().unwrap(), bytes.len() as u64, "{f}");
        assert_eq!(f["sha256"], hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes)), "{f}");
    }
    assert_eq!(manifest["files"].as_array().unwrap().len(), 5, "profile, messages, conversations, the PDF, audit");

    // The export is on the trail.
    let trail = run(&["audit", "export", "--kind", "gdpr.exported"], data.path());
    assert!(trail.status.success(), "{}", text(&trail));
    let line = String::from_utf8_lossy(&trail.stdout);
    assert!(line.contains("\"target_user\":\"alice\"") && line.contains("chatd gdpr export"), "{line}");

    // With chatd stopped, from the store directly: the same entries.
    let direct = out_dir.path().join("direct");
    let out = run(&["gdpr", "export", "--user", "alice", "--to", direct.to_str().unwrap()], data.path());
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json_lines(&direct.join("messages.jsonl")), msgs);

    // Refusals, naming why.
    let again = run(&["gdpr", "export", "--user", "alice", "--to", to.to_str().unwrap()], data.path());
    assert!(!again.status.success());
    assert!(text(&again).contains("is not empty"), "{}", text(&again));
    let nobody_to = out_dir.path().join("m");
    let nobody = run(&["gdpr", "export", "--user", "nobody", "--to", nobody_to.to_str().unwrap()], data.path());
    assert!(!nobody.status.success());
    assert!(text(&nobody).contains("no user \"nobody\""), "{}", text(&nobody));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatd_gdpr_erase_erases_through_the_running_server_and_keeps_what_a_hold_covers() {
    let data = tempfile::tempdir().unwrap();
    let (child, addr, hash) = serve(data.path());
    let trust = || Trust::cert_hash_hex(&hash).unwrap();
    let connect = |user: &str| ClientConfig::new(addr.clone(), token(data.path(), user), trust());
    let root_token = token_as(data.path(), "root", "admin");
    let (root, _r) = Client::connect(ClientConfig::new(addr.clone(), root_token, trust())).await.expect("root");
    let (alice, _a) = Client::connect(connect("alice")).await.expect("alice");
    let (bob, _b) = Client::connect(connect("bob")).await.expect("bob");
    let create = |kind, title: &'static str, case: &'static str| {
        let alice = alice.clone();
        async move {
            let ok = alice.create_conversation(kind, title, case, vec!["bob".into()]).await.expect("create");
            ok.summary.unwrap().conversation.unwrap().id
        }
    };
    let free = create(ConversationKind::Group, "Smith", "").await;
    let held = create(ConversationKind::Case, "Jones", "AZ-1").await;
    let gone = bob.send_text(free, "my address is 1 Main St").await.expect("send").seq;
    alice.send_text(free, "thanks").await.expect("send");
    bob.send_text(held, "the contract terms").await.expect("send");
    root.set_legal_hold(HoldScope::Case, "AZ-1", "court order").await.expect("hold");

    let erase = |user: &str, reason: &str| {
        let (d, args) =
            (data.path().to_owned(), ["gdpr", "erase", "--user", user, "--reason", reason].map(String::from));
        tokio::task::spawn_blocking(move || run(&args.each_ref().map(String::as_str), &d))
    };
    let e = erase("bob", "").await.unwrap();
    assert!(!e.status.success() && text(&e).contains("EraseReasonRequired"), "{}", text(&e));
    let e = erase("nobody", "art. 17").await.unwrap();
    assert!(!e.status.success() && text(&e).contains("UnknownUser"), "{}", text(&e));

    let out = erase("bob", "art. 17 request of 5 Dec").await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("erased bob (now \"Erased user ") && said.contains("): 1 messages,"), "{said}");
    assert!(
        said.contains(&format!(
            "kept conversation {held}: 1 of their messages, under the legal hold HOLD_SCOPE_CASE AZ-1"
        )),
        "{said}"
    );
    let history = alice.history(free, 0, 0, 50).await.expect("history").messages;
    let m = history.iter().find(|m| m.seq == gone).expect("bob's message");
    assert!(m.deleted, "a tombstone: {m:?}");
    assert!(!format!("{history:?}").contains("1 Main St"), "the words are gone: {history:?}");
    let kept = alice.history(held, 0, 0, 50).await.expect("history").messages;
    assert!(kept.iter().any(|m| !m.deleted && format!("{m:?}").contains("the contract terms")), "{kept:?}");
    assert!(bob.send_text(free, "still here?").await.is_err(), "his session is closed");
    let again = erase("bob", "art. 17 request of 5 Dec").await.unwrap();
    assert!(text(&again).contains("): 0 messages,"), "idempotent: {}", text(&again));

    // `chatd conversations erase`: refused under the hold, done on the other.
    let erase_conv = |id: u64| {
        let d = data.path().to_owned();
        let args = ["conversations", "erase", "--id", &id.to_string(), "--reason", "matter closed"].map(String::from);
        tokio::task::spawn_blocking(move || run(&args.each_ref().map(String::as_str), &d))
    };
    let e = erase_conv(held).await.unwrap();
    assert!(!e.status.success() && text(&e).contains("UnderLegalHold") && text(&e).contains("AZ-1"), "{}", text(&e));
    let out = erase_conv(free).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("erased conversation {free}: ")), "{}", text(&out));
    assert!(alice.history(free, 0, 0, 50).await.expect("history").messages.is_empty(), "emptied");

    drop((root, alice, bob));
    terminate(child);
    let trail = run(&["audit", "export", "--kind", "conversation.erased"], data.path());
    let line = String::from_utf8_lossy(&trail.stdout);
    assert!(line.contains("\"actor\":\"chatd\"") && line.contains("matter closed"), "{line}");
    let stopped = run(&["conversations", "erase", "--id", &free.to_string(), "--reason", "x"], data.path());
    assert!(!stopped.status.success() && text(&stopped).contains("no chatd serves"), "{}", text(&stopped));
    let trail = run(&["audit", "export", "--kind", "gdpr.erased"], data.path());
    let line = String::from_utf8_lossy(&trail.stdout);
    assert!(line.contains("\"actor\":\"chatd\"") && line.contains("art. 17 request of 5 Dec"), "{line}");
    let stopped = run(&["gdpr", "erase", "--user", "alice", "--reason", "art. 17"], data.path());
    assert!(!stopped.status.success(), "{}", text(&stopped));
    assert!(text(&stopped).contains("no chatd serves"), "{}", text(&stopped));
}
