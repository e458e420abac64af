//! The audit trail end to end: the real server on loopback (port 0, fresh
//! data directory), real QUIC and WebTransport, the real Rust SDK; and the
//! real `chatd audit verify` and `chatd audit export` on the embedded store,
//! with stored entries altered, removed and reordered behind its back.

mod common;
use chat_client::{ClientConfig, Transport, Trust};
use chat_protocol::v1::{self, ConversationKind, ErrorCode, MemberRole};
use chat_server::store::{MessageStore, Store};
use common::server::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn read(f: impl FnOnce(&mut v1::ReadAudit)) -> v1::ReadAudit {
    let mut r = v1::ReadAudit::default();
    f(&mut r);
    r
}

/// The entries `r` selects once there are at least `n` (the writer is asynchronous).
async fn entries_at_least(admin: &chat_client::Client, r: v1::ReadAudit, n: usize) -> Vec<v1::AuditEntry> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let all = admin.read_audit_all(r.clone()).await.expect("read audit");
        if all.len() >= n || tokio::time::Instant::now() > deadline {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn details(e: &v1::AuditEntry) -> serde_json::Value {
    serde_json::from_str(&e.details).expect("details are JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_and_a_delete_are_audited_with_the_earlier_version() {
    let mut s = Server::start();
    let (admin, _s) = s.connect("sam", "admin", Transport::Quic).await;
    let (alice, _a) = s.connect("alice", "advocate", Transport::WebTransport).await;
    let conv = create(&alice, ConversationKind::Group, "Estate", "", &["bob"]).await;
    let sent = alice.send_text(conv, "The will is in the safe").await.unwrap();
    let edit = alice.edit(conv, sent.seq, "The will is with the notary").await.unwrap();
    let other = alice.send_text(conv, "Fee note attached").await.unwrap();
    let delete = alice.delete(conv, other.seq).await.unwrap();
    alice.send_text(conv, "A plain send is not audited").await.unwrap();

    let changes = read(|r| {
        r.conversation_id = conv;
        r.kinds = vec!["message.edited".into(), "message.deleted".into()];
    });
    let got = entries_at_least(&admin, changes, 2).await;
    assert_eq!(got.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["message.edited", "message.deleted"]);
    for e in &got {
        assert_eq!((e.actor.as_str(), e.conversation_id), ("alice", conv));
    }
    assert_eq!(details(&got[0])["target_seq"], sent.seq);
    assert_eq!(details(&got[0])["event_seq"], edit.seq);
    assert_eq!(details(&got[1])["target_seq"], other.seq);
    assert_eq!(details(&got[1])["event_seq"], delete.seq);
    assert!(!got[0].details.contains("safe"), "no message content in the trail: {}", got[0].details);
    let all = admin.read_audit_all(read(|r| r.conversation_id = conv)).await.unwrap();
    assert!(all.iter().all(|e| e.kind != "message.sent" && !e.details.contains("plain send")), "sends are not audited");
    assert_eq!(all[0].kind, "conversation.created");

    // The entry's seqs key the earlier version the store kept.
    let cfg = s.cfg.clone();
    let h = s.handle.take().unwrap();
    tokio::task::spawn_blocking(move || h.shutdown()).await.unwrap();
    let store = tokio::task::spawn_blocking(move || Store::open(&cfg).unwrap()).await.unwrap();
    let versions = store.message_versions(conv, sent.seq).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].event_seq, edit.seq);
    let prior = <v1::Message as prost::Message>::decode(&*versions[0].prior).unwrap();
    assert_eq!(common::text(&prior), "The will is in the safe");
    store.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_downloads_are_audited() {
    let s = Server::start();
    let (admin, _s) = s.connect("sam", "admin", Transport::Quic).await;
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::WebTransport).await;
    let conv = create(&alice, ConversationKind::Group, "Deeds", "", &["bob"]).await;
    let mut pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    pdf.extend_from_slice(&[b'a'; 4096]);
    pdf.extend_from_slice(b"\ntrailer << /Root 1 0 R >>\n%%EOF\n");
    let up = alice.upload_bytes(conv, "deed.pdf", "application/pdf", &pdf).await.expect("upload");
    let got = bob.download(conv, &up.attachment_id, 0, 0, false).await.expect("download").bytes().await.unwrap();
    assert_eq!(got, pdf);

    let files = read(|r| {
        r.conversation_id = conv;
        r.kinds = vec!["attachment.uploaded".into(), "attachment.downloaded".into()];
    });
    let got = entries_at_least(&admin, files, 2).await;
    let who: Vec<(&str, &str)> = got.iter().map(|e| (e.kind.as_str(), e.actor.as_str())).collect();
    assert_eq!(who, [("attachment.uploaded", "alice"), ("attachment.downloaded", "bob")]);
    let (u, d) = (details(&got[0]), details(&got[1]));
    assert_eq!((u["attachment_id"].as_str(), u["name"].as_str()), (Some(up.attachment_id.as_str()), Some("deed.pdf")));
    assert_eq!(u["size"], pdf.len());
    assert_eq!(
        (d["attachment_id"].as_str(), d["length"].as_u64()),
        (Some(up.attachment_id.as_str()), Some(pdf.len() as u64))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_system_admins_read_the_trail() {
    let s = Server::start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::WebTransport).await;
    for c in [&alice, &bob] {
        let e = server_error(c.read_audit(v1::ReadAudit::default()).await.unwrap_err());
        assert_eq!(e.code(), Some(ErrorCode::Forbidden));
        assert_eq!(e.message, "only system admins read the audit trail");
        // Refused before the request is looked at.
        let e = server_error(c.read_audit(read(|r| r.kinds = vec!["nope".into()])).await.unwrap_err());
        assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    }
    let (admin, _s) = s.connect("sam", "admin", Transport::Quic).await;
    let e = server_error(admin.read_audit(read(|r| r.kinds = vec!["message.sent".into()])).await.unwrap_err());
    assert_eq!(
        (e.code(), e.message.as_str()),
        (Some(ErrorCode::InvalidArgument), "unknown audit event kind \"message.sent\"")
    );
    let e = server_error(admin.read_audit(read(|r| r.cursor = "garbage".into())).await.unwrap_err());
    assert_eq!(
        (e.code(), e.message.as_str()),
        (Some(ErrorCode::InvalidArgument), "the cursor is not one this server gave")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_sessions_and_refusals_are_audited_and_filtered() {
    let s = Server::start();
    let (admin, _s) = s.connect("sam", "admin", Transport::Quic).await;
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::WebTransport).await;
    let conv = create(&alice, ConversationKind::Group, "Lease", "", &["bob"]).await;
    alice.add_members(conv, vec!["carol".into()]).await.unwrap();
    alice.set_member_role(conv, "bob", MemberRole::Moderator).await.unwrap();
    alice.remove_member(conv, "carol").await.unwrap();
    bob.leave(conv).await.unwrap();
    alice.archive(conv, false).await.unwrap();
    // A token that does not verify is refused, and the refusal says why.
    let mut bad =
        ClientConfig::new(s.h().addr().to_string(), "not-a-token", Trust::cert_hash_hex(s.h().cert_sha256()).unwrap());
    bad.backoff.max = Duration::from_millis(100);
    assert!(chat_client::Client::connect(bad).await.is_err());

    let on_conv = read(|r| r.conversation_id = conv);
    let got = entries_at_least(&admin, on_conv, 6).await;
    let kinds: Vec<(&str, &str)> = got.iter().map(|e| (e.kind.as_str(), e.target_user.as_str())).collect();
    assert_eq!(
        kinds,
        [
            ("conversation.created", ""),
            ("member.added", "carol"),
            ("member.role_changed", "bob"),
            ("member.removed", "carol"),
            ("member.left", "bob"),
            ("conversation.archived", ""),
        ]
    );
    assert_eq!(details(&got[2])["role"], "MEMBER_ROLE_MODERATOR");

    // By user: carol was added and removed (as the target), nothing else.
    let carol = admin.read_audit_all(read(|r| r.user = "carol".into())).await.unwrap();
    assert_eq!(carol.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["member.added", "member.removed"]);
    // By kind and user: bob's session.
    let sessions = admin.read_audit_all(read(|r| {
        r.user = "bob".into();
        r.kinds = vec!["session.opened".into()];
    }));
    let sessions = sessions.await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(details(&sessions[0])["transport"], "webtransport");
    let refused = entries_at_least(&admin, read(|r| r.kinds = vec!["session.refused".into()]), 1).await;
    assert_eq!(refused.len(), 1);
    assert_eq!(details(&refused[0])["code"], "ERROR_CODE_UNAUTHENTICATED");
    assert_eq!(refused[0].actor, "", "nobody was authenticated");
    // The configuration at start, its secret redacted.
    let start = admin.read_audit_all(read(|r| r.kinds = vec!["config.start".into()])).await.unwrap();
    assert_eq!(start.len(), 1);
    assert_eq!(start[0].actor, "chatd");
    assert!(!start[0].details.contains(chat_server::config::PUBLIC_DEV_SECRET), "{}", start[0].details);
    // By time: nothing from the future; the whole range is everything.
    let later = chat_protocol::unix_ms(std::time::SystemTime::now()) + 3_600_000;
    assert!(admin.read_audit_all(read(|r| r.since_ms = later)).await.unwrap().is_empty());
    let everything = admin.read_audit_all(v1::ReadAudit::default()).await.unwrap();
    let ranged = admin.read_audit_all(read(|r| r.until_ms = later)).await.unwrap();
    assert_eq!(ranged.len(), everything.len());
    // Pages of two follow each other without a gap or a repeat, and chain.
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = admin.read_audit(read(|r| {
            r.limit = 2;
            r.cursor = cursor.clone();
        }));
        let page = page.await.unwrap();
        assert!(page.entries.len() <= 2);
        paged.extend(page.entries);
        if page.next.is_empty() {
            break;
        }
        cursor = page.next;
    }
    assert_eq!(paged.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=paged.len() as u64).collect::<Vec<_>>());
    assert_eq!(paged[..everything.len()], everything[..]);
    for w in paged.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash);
    }
}

/// Runs `chatd audit ARGS` on a data directory: (exit success, stdout).
fn chatd_audit(data: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .arg("audit")
        .args(args)
        .env("CHAT_DATA_DIR", data)
        .env_remove("CHAT_SCYLLA_NODES")
        .env_remove("CHAT_CONFIG")
        .stderr(Stdio::piped())
        .output()
        .expect("chatd audit");
    (out.status.success(), String::from_utf8(out.stdout).unwrap())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The embedded store's key of entry `seq` of `chain` (see `store/embedded/audit.rs`).
fn entry_key(chain: &str, seq: u64) -> Vec<u8> {
    let mut k = vec![0u8];
    k.extend_from_slice(&(chain.len() as u16).to_be_bytes());
    k.extend_from_slice(chain.as_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Changes the stored audit keyspace of the data directory `data` with `f`.
fn tamper(data: &Path, f: impl FnOnce(&fjall::Keyspace, &str)) {
    let chain = std::fs::read_to_string(data.join("audit/chain_id")).unwrap();
    let db = fjall::Database::builder(data.join("store/chat.fjall")).open().unwrap();
    let ks = db.keyspace("audit", fjall::KeyspaceCreateOptions::default).unwrap();
    f(&ks, chain.trim());
    db.persist(fjall::PersistMode::SyncAll).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_the_first_altered_removed_or_reordered_entry() {
    let mut s = Server::start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "Probate", "", &["bob"]).await;
    for u in ["carol", "dave", "erin"] {
        alice.add_members(conv, vec![u.into()]).await.unwrap();
    }
    alice.close().await;
    let data = s.cfg.data_dir.clone();
    let h = s.handle.take().unwrap();
    tokio::task::spawn_blocking(move || h.shutdown()).await.unwrap();

    let (ok, said) = chatd_audit(&data, &["verify"]);
    assert!(ok, "{said}");
    assert!(said.starts_with("audit trail OK: 1 chain(s), "), "{said}");
    assert!(said.contains("signed checkpoint(s), 0 entries after the last"), "the shutdown signed the rest: {said}");

    // Export as CSV and as JSON lines; each export is audited, and the trail still verifies.
    let csv = data.join("export.csv");
    let (ok, _) =
        chatd_audit(&data, &["export", "--format", "csv", "-o", csv.to_str().unwrap(), "--kind", "member.added"]);
    assert!(ok);
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "chain,seq,at_ms,kind,actor,conversation_id,target_user,details,prev_hash,hash");
    assert_eq!(lines.len(), 1 + 3, "{text}");
    assert!(lines[1..].iter().all(|l| l.contains(",member.added,alice,")), "{text}");
    let (ok, jsonl) = chatd_audit(&data, &["export", "--kind", "audit.exported"]);
    assert!(ok);
    let exports: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(exports.len(), 1, "the CSV export was recorded: {jsonl}");
    let d: serde_json::Value = serde_json::from_str(exports[0]["details"].as_str().unwrap()).unwrap();
    assert_eq!((d["format"].as_str(), d["count"].as_u64()), (Some("csv"), Some(3)));
    let (ok, said) = chatd_audit(&data, &["export", "--format", "xml"]);
    assert!(!ok && said.is_empty());
    let (ok, said) = chatd_audit(&data, &["verify"]);
    assert!(ok, "{said}");

    let root = tempfile::tempdir().unwrap();
    let copy = |name: &str| {
        let dir = root.path().join(name);
        copy_dir(&data, &dir);
        dir
    };
    // Altered: entry 3's details changed in place.
    let altered = copy("altered");
    tamper(&altered, |ks, chain| {
        let v = ks.get(entry_key(chain, 3)).unwrap().expect("entry 3");
        let mut e: serde_json::Value = serde_json::from_slice(&v).unwrap();
        e["details"] = serde_json::Value::String(r#"{"session":999}"#.into());
        ks.insert(entry_key(chain, 3), serde_json::to_vec(&e).unwrap()).unwrap();
    });
    let (ok, said) = chatd_audit(&altered, &["verify"]);
    assert!(!ok);
    assert!(said.contains("seq 3: altered (its content does not match its hash)"), "{said}");
    // Removed: entry 4 gone.
    let removed = copy("removed");
    tamper(&removed, |ks, chain| ks.remove(entry_key(chain, 4)).unwrap());
    let (ok, said) = chatd_audit(&removed, &["verify"]);
    assert!(!ok);
    assert!(said.contains("seq 4: removed (the chain goes from seq 3 to 5)"), "{said}");
    // Reordered: entries 2 and 3 swapped.
    let swapped = copy("swapped");
    tamper(&swapped, |ks, chain| {
        let (two, three) =
            (ks.get(entry_key(chain, 2)).unwrap().unwrap(), ks.get(entry_key(chain, 3)).unwrap().unwrap());
        ks.insert(entry_key(chain, 2), three).unwrap();
        ks.insert(entry_key(chain, 3), two).unwrap();
    });
    let (ok, said) = chatd_audit(&swapped, &["verify"]);
    assert!(!ok);
    assert!(said.contains("seq 2: reordered (stored after seq 3)"), "{said}");
    // The untouched original still verifies.
    assert!(chatd_audit(&data, &["verify"]).0);
}
