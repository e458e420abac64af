//! `chatd backup` and `chatd restore` on the real binary: a backup taken over
//! the control socket while a client sends, restored into an empty data
//! directory, served again: every message acknowledged before the backup
//! began is there in order, the attachment downloads byte for byte, the
//! audit trail verifies, and a client that held later seqs resyncs (new
//! epoch). Refusals: a non-empty target, a corrupted or incomplete backup.

#[path = "common/chatd.rs"]
mod chatd;

use chat_client::{Client, ClientConfig, Event, Events, Trust};
use chat_protocol::v1::ConversationKind;
use chatd::{run, serve, serve_with, terminate, text, token};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn client(addr: &str, hash: &str, data: &Path, user: &str) -> ClientConfig {
    ClientConfig::new(addr, token(data, user), Trust::cert_hash_hex(hash).unwrap())
}

/// Waits for the first event that `f` picks.
async fn until<T>(events: &mut Events, mut f: impl FnMut(&Event) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let ev = tokio::time::timeout_at(deadline, events.next()).await.expect("event in time").expect("events open");
        if let Some(t) = f(&ev) {
            return t;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_acknowledged_message_and_clients_resync() {
    let (data, backup, restored) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let backup_dir = backup.path().join("b");
    // The load is over the default 100 messages a minute.
    let raised = [("CHAT_LIMITS__MESSAGES_PER_MINUTE".to_string(), "100000".to_string())];
    let (child, addr, hash, _) = serve_with(data.path(), "127.0.0.1:0", "127.0.0.1:0", &raised);
    assert!(data.path().join("control.sock").exists(), "the control socket is made at start");
    Client::connect(client(&addr, &hash, data.path(), "bob")).await.unwrap().0.close().await;
    let (alice, _a_ev) = Client::connect(client(&addr, &hash, data.path(), "alice")).await.unwrap();
    let (bob, mut b_ev) = Client::connect(client(&addr, &hash, data.path(), "bob")).await.unwrap();
    let conv = alice.create_conversation(ConversationKind::Group, "matter", "", vec!["bob".into()]).await.unwrap();
    let conv = conv.summary.and_then(|s| s.conversation).map(|c| c.id).unwrap();
    let brief: Vec<u8> = (0..200_000u32).map(|i| b"privileged notes\n"[(i % 17) as usize]).collect();
    let att = alice.upload_bytes(conv, "notes.txt", "text/plain", &brief).await.expect("upload");
    alice.send_with_attachments(conv, "the notes", vec![att.attachment_id.clone()]).await.expect("send attachment");

    // Alice sends continuously; each ack is stamped with the time it arrived.
    let acks: Arc<Mutex<Vec<(u64, String, Instant)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (alice, acks, stop) = (alice.clone(), acks.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = format!("message {i}");
                let ok = alice.send_text(conv, &body).await.expect("send under load");
                acks.lock().unwrap().push((ok.seq, body, Instant::now()));
                i += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    // Load before the backup: some acknowledged sends (however slow the machine).
    let deadline = Instant::now() + Duration::from_secs(20);
    while acks.lock().unwrap().len() <= 20 {
        assert!(Instant::now() < deadline, "sends are acknowledged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let began = Instant::now();
    let (to, d) = (backup_dir.clone(), data.path().to_owned());
    let out = tokio::task::spawn_blocking(move || run(&["backup", "--to", to.to_str().unwrap()], &d)).await.unwrap();
    assert!(out.status.success(), "chatd backup: {}", text(&out));
    assert!(!text(&out).contains("from the store directly"), "asked the running server: {}", text(&out));
    // And load after it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !acks.lock().unwrap().iter().any(|(_, _, at)| *at > began + Duration::from_millis(100)) {
        assert!(Instant::now() < deadline, "sends go on after the backup");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    sender.await.unwrap();
    let acks = acks.lock().unwrap().clone();
    let before: Vec<_> = acks.iter().filter(|(_, _, at)| *at < began).collect();
    let after = acks.iter().filter(|(_, _, at)| *at > began + Duration::from_millis(100)).count();
    assert!(before.len() > 20 && after > 0, "load on both sides of the backup: {} before, {after} after", before.len());
    // Bob saw everything, the last seq included: he holds seqs the backup lacks.
    let last = acks.last().unwrap().0;
    until(&mut b_ev, |e| matches!(e, Event::Message(m) if m.seq == last).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bob_state = bob.resume_state();
    let old_epoch = bob_state.epoch.clone();
    bob.close().await;
    alice.close().await;
    terminate(child);
    assert!(!data.path().join("control.sock").exists(), "the control socket is removed at stop");

    let target = restored.path().join("d");
    let out = run(&["restore", "--from", backup_dir.to_str().unwrap()], &target);
    assert!(out.status.success(), "chatd restore: {}", text(&out));
    assert!(text(&out).contains("audit signing key"), "restore warns that the key is not there: {}", text(&out));
    // The documented separate step: the audit key comes back from the key backup.
    std::fs::create_dir_all(target.join("audit")).unwrap();
    std::fs::copy(data.path().join("audit/signing_key.pk8"), target.join("audit/signing_key.pk8")).unwrap();
    let out = run(&["audit", "verify"], &target);
    assert!(out.status.success() && text(&out).contains("audit trail OK"), "audit verify: {}", text(&out));

    let (child, addr, hash) = serve(&target);
    let (alice, _a_ev) = Client::connect(client(&addr, &hash, &target, "alice")).await.unwrap();
    assert_ne!(alice.welcome().unwrap().epoch, old_epoch, "a restored store has a new epoch");
    // Paging back from the newest: each page ends before the oldest seq read.
    let mut history = Vec::new();
    let mut older_than = 0;
    loop {
        let page = alice.history(conv, older_than, 0, 100).await.unwrap();
        let Some(first) = page.messages.first().map(|m| m.seq) else { break };
        history.splice(0..0, page.messages);
        if first <= 1 {
            break;
        }
        older_than = first;
    }
    let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "history is whole and in order");
    let texts: std::collections::HashMap<u64, String> =
        history.iter().filter_map(|m| common_text(m).map(|t| (m.seq, t))).collect();
    for (seq, body, _) in &before {
        assert_eq!(texts.get(seq), Some(body), "acked before the backup began: seq {seq}");
    }
    let got =
        alice.download(conv, &att.attachment_id, 0, 0, false).await.expect("download").bytes().await.expect("bytes");
    assert_eq!(got, brief, "the attachment comes back byte for byte");

    // Bob resumes with cursors of the old epoch, past what was restored: he is told to resync.
    let (bob, mut b_ev) = Client::connect(client(&addr, &hash, &target, "bob").resume(Some(bob_state))).await.unwrap();
    until(&mut b_ev, |e| matches!(e, Event::Resync { .. }).then_some(())).await;
    let next = alice.send_text(conv, "after the restore").await.unwrap();
    assert_eq!(next.seq, seqs.len() as u64 + 1, "the next seq follows the restored history");
    let m = until(&mut b_ev, |e| match e {
        Event::Message(m) if m.seq == next.seq => Some(m.clone()),
        _ => None,
    })
    .await;
    assert_eq!(common_text(&m).as_deref(), Some("after the restore"));
    assert_eq!(bob.resume_state().epoch, alice.welcome().unwrap().epoch, "bob's cursors are of the new epoch");
    bob.close().await;
    alice.close().await;
    terminate(child);
}

/// A message's text, if it is one.
fn common_text(m: &chat_protocol::v1::Message) -> Option<String> {
    use chat_protocol::v1::message_body::Content;
    match m.body.as_ref()?.content.as_ref()? {
        Content::Text(t) => Some(t.clone()),
        _ => None,
    }
}

#[test]
fn a_bad_target_or_a_damaged_backup_is_refused_naming_why() {
    let (data, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let b = work.path().join("b");
    // No server on the data directory: the backup opens the store itself.
    let out = run(&["backup", "--to", b.to_str().unwrap()], data.path());
    assert!(out.status.success() && text(&out).contains("from the store directly"), "{}", text(&out));
    let out = run(&["backup", "--to", b.to_str().unwrap()], data.path());
    assert!(!out.status.success() && text(&out).contains("is not empty"), "a used backup dir: {}", text(&out));

    // A non-empty target data directory.
    let full = work.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("keep.txt"), "mine").unwrap();
    let out = run(&["restore", "--from", b.to_str().unwrap()], &full);
    assert!(!out.status.success(), "restore into a non-empty directory succeeded");
    assert!(text(&out).contains("is not empty (it holds keep.txt)"), "{}", text(&out));
    assert_eq!(std::fs::read_dir(&full).unwrap().count(), 1, "nothing written");

    // One flipped byte in a partition file: refused naming it, nothing written.
    let file = b.join("partitions/meta.bin");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let target = work.path().join("t1");
    let out = run(&["restore", "--from", b.to_str().unwrap()], &target);
    assert!(!out.status.success());
    assert!(text(&out).contains("partitions/meta.bin: checksum mismatch"), "{}", text(&out));
    assert!(!target.exists(), "nothing written");
    bytes[10] ^= 1;

    // A truncated file is refused too (its size), and a missing manifest.
    std::fs::write(&file, &bytes[..bytes.len() - 3]).unwrap();
    let out = run(&["restore", "--from", b.to_str().unwrap()], &target);
    assert!(
        text(&out).contains("partitions/meta.bin:") && text(&out).contains("bytes, the manifest says"),
        "{}",
        text(&out)
    );
    std::fs::write(&file, &bytes).unwrap();
    std::fs::rename(b.join("manifest.json"), work.path().join("m.json")).unwrap();
    let out = run(&["restore", "--from", b.to_str().unwrap()], &target);
    assert!(text(&out).contains("manifest.json is missing: the backup is incomplete"), "{}", text(&out));
    assert!(!target.exists(), "nothing written");

    // Whole again: it restores, and the restored store opens.
    std::fs::rename(work.path().join("m.json"), b.join("manifest.json")).unwrap();
    let out = run(&["restore", "--from", b.to_str().unwrap()], &target);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["audit", "verify"], &target);
    assert!(out.status.success(), "{}", text(&out));
}
