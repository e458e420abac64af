//! Encryption at rest on the real `chatd` binary: a master key made by
//! `chatd keys generate`, messages sent and read back through the Rust SDK
//! while none of their words is in the store's files, an online rotation
//! with `chatd keys rotate`, and the precise refusals at start of a store
//! opened with the old key only, with no key, or with a bad key.

#[path = "common/chatd.rs"]
mod chatd;

use chat_client::{Client, ClientConfig, Trust};
use chat_protocol::v1::ConversationKind;
use chatd::{run, run_with, serve_with, terminate, text, token};
use std::path::Path;
use std::process::{Command, Stdio};

const SECRET: &str = "Settlement authority 2.4 million, do not disclose";

/// A PDF of three sealed chunks whose text says what it is.
fn exhibit() -> Vec<u8> {
    let mut v = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    for i in 0..5_000 {
        v.extend_from_slice(format!("Privileged exhibit line {i:05}\n").as_bytes());
    }
    v.extend_from_slice(b"\ntrailer << /Root 1 0 R >>\n%%EOF\n");
    v
}

fn key_env(file: &Path) -> Vec<(String, String)> {
    vec![("CHAT_ENCRYPTION__MASTER_KEY_FILE".into(), file.display().to_string())]
}

/// Every file under `dir` whose bytes hold `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path).unwrap().windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// `chatd serve` that must refuse to start; what it said.
fn refused(data: &Path, env: &[(String, String)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--web-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("CHAT_SCYLLA_NODES")
        .stdin(Stdio::null())
        .output()
        .expect("run chatd serve");
    assert!(!out.status.success(), "chatd served: {}", text(&out));
    text(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_is_encrypted_at_rest_and_the_master_key_rotates_online() {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (old, new) = (keys.path().join("old.key"), keys.path().join("new.key"));
    for file in [&old, &new] {
        let made = run(&["keys", "generate", "--to", file.to_str().unwrap()], data.path());
        assert!(made.status.success() && text(&made).contains("master key "), "{}", text(&made));
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(file).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "a key file is private");
    }
    let again = run(&["keys", "generate", "--to", old.to_str().unwrap()], data.path());
    assert!(!again.status.success() && text(&again).contains("never overwritten"), "{}", text(&again));

    let (child, addr, hash, _) = serve_with(data.path(), "127.0.0.1:0", "127.0.0.1:0", &key_env(&old));
    let trust = || Trust::cert_hash_hex(&hash).unwrap();
    let (alice, _a) =
        Client::connect(ClientConfig::new(addr.clone(), token(data.path(), "alice"), trust())).await.expect("alice");
    let conv = alice.create_conversation(ConversationKind::Group, "Matter 12", "", Vec::new()).await.unwrap();
    let conv = conv.summary.unwrap().conversation.unwrap().id;
    let seq = alice.send_text(conv, SECRET).await.expect("send").seq;
    alice.edit(conv, seq, format!("{SECRET} (revised)")).await.expect("edit");
    let file = exhibit();
    let att = alice.upload_bytes(conv, "exhibit.pdf", "application/pdf", &file).await.expect("upload");
    alice.send_with_attachments(conv, "the exhibit", vec![att.attachment_id.clone()]).await.expect("send");
    let got = alice.download(conv, &att.attachment_id, 0, 0, false).await.unwrap().bytes().await.unwrap();
    assert!(got == file, "the file reads back whole");
    let part = alice.download(conv, &att.attachment_id, 70_000, 1_000, false).await.unwrap().bytes().await.unwrap();
    assert_eq!(&part[..], &file[70_000..71_000], "and by range, across a sealed chunk's edge");

    let rotate = |env: Vec<(String, String)>| {
        let (d, n) = (data.path().to_owned(), new.display().to_string());
        tokio::task::spawn_blocking(move || run_with(&["keys", "rotate", "--new-key-file", &n], &d, &env))
    };
    let out = rotate(key_env(&old)).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("re-wrapped 3 data keys under master key"),
        "online: the check key, the conversation's, the files': {}",
        text(&out)
    );
    let history = alice.history(conv, 0, 0, 50).await.expect("history after the rotation").messages;
    assert!(format!("{history:?}").contains("(revised)"), "still readable while serving: {history:?}");
    let off = rotate(Vec::new()).await.unwrap();
    assert!(!off.status.success() && text(&off).contains("encryption at rest is off"), "{}", text(&off));
    drop(alice);
    terminate(child);

    let store = data.path().join("store");
    assert_eq!(files_holding(&store, "Settlement authority"), Vec::<String>::new(), "no plaintext on disk");
    assert_eq!(files_holding(&store, "revised"), Vec::<String>::new(), "nor of the edit");
    let blobs = data.path().join("blobs");
    assert_eq!(files_holding(&blobs, "Privileged exhibit"), Vec::<String>::new(), "nor of the attachment");
    assert!(!files_holding(&store, "alice").is_empty(), "metadata is stored in the clear (the test can fail)");
    let elsewhere = files_holding(data.path(), "Settlement authority");
    let search = data.path().join("search").display().to_string();
    assert!(elsewhere.iter().all(|f| f.starts_with(&search)), "only the search index, as documented: {elsewhere:?}");

    let said = refused(data.path(), &key_env(&old));
    assert!(said.contains("wrapped by master key") && said.contains("is not configured"), "{said}");
    let said = refused(data.path(), &[]);
    assert!(said.contains("holds content encrypted at rest"), "{said}");
    let said = refused(data.path(), &[("CHAT_ENCRYPTION__MASTER_KEY".into(), "00ff".into())]);
    assert!(said.contains("encryption.master_key") && said.contains("32 bytes"), "{said}");

    let (child, addr, hash, _) = serve_with(data.path(), "127.0.0.1:0", "127.0.0.1:0", &key_env(&new));
    let trust = Trust::cert_hash_hex(&hash).unwrap();
    let (alice, _a) = Client::connect(ClientConfig::new(addr, token(data.path(), "alice"), trust)).await.unwrap();
    let history = alice.history(conv, 0, 0, 50).await.expect("history").messages;
    assert!(format!("{history:?}").contains(&format!("{SECRET} (revised)")), "{history:?}");
    let got = alice.download(conv, &att.attachment_id, 0, 0, false).await.unwrap().bytes().await.unwrap();
    assert!(got == file, "the attachment's key was re-wrapped by the rotation too");
    drop(alice);
    terminate(child);
}
