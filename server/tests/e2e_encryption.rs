//! End-to-end encrypted conversations as the server enforces them, on the
//! real server over real QUIC and WebTransport through the Rust SDK: only
//! ciphertext of the group's current epoch is stored (first commit wins, a
//! stale one is refused precisely), the epoch survives a restart, and the
//! KeyPackage directory hands each KeyPackage out once. The MLS bytes here
//! are opaque test payloads: the server never reads them.

mod common;
use chat_client::{Client, Transport};
use chat_protocol::v1::{self, ConversationKind, ErrorCode, message_body::Content};
use common::server::*;

fn ct(epoch: u64, commit: bool, mls: &str) -> v1::E2eCiphertext {
    v1::E2eCiphertext { epoch, commit, mls: mls.as_bytes().to_vec().into(), ..Default::default() }
}

fn body_of(m: &v1::Message) -> &v1::E2eCiphertext {
    match m.body.as_ref().and_then(|b| b.content.as_ref()) {
        Some(Content::Ciphertext(c)) => c,
        other => panic!("not ciphertext: {other:?}"),
    }
}

async fn e2e_group(c: &Client, members: &[&str]) -> u64 {
    let members = members.iter().map(|s| s.to_string()).collect();
    let ok = c.create_e2e_conversation(ConversationKind::Group, "Privileged", "", members).await.expect("create");
    let conv = ok.summary.unwrap().conversation.unwrap();
    assert!(conv.e2e, "the conversation says it is end-to-end encrypted");
    conv.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_e2e_conversation_keeps_only_ciphertext_of_the_groups_epoch() {
    let mut s = Server::start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, mut bob_ev) = s.connect("bob", "client", Transport::WebTransport).await;
    let (carol, _c) = s.connect("carol", "advocate", Transport::Quic).await;
    let conv = e2e_group(&alice, &["bob", "carol"]).await;

    // Plaintext is refused, and nothing is stored.
    assert_eq!(code(alice.send_text(conv, "privileged advice").await.unwrap_err()), Some(ErrorCode::E2eRequired));
    assert!(alice.history(conv, 0, 0, 50).await.unwrap().messages.is_empty());

    // The creator's commit adds the others (epoch 0 -> 1), then messages of epoch 1 go through.
    let add = v1::E2eCiphertext { welcome: b"welcome for bob and carol".to_vec().into(), ..ct(0, true, "commit-0") };
    let ok = alice.send_ciphertext(conv, add).await.expect("first commit");
    assert_eq!(ok.seq, 1);
    let hello = alice.send_ciphertext(conv, ct(1, false, "app-1")).await.expect("application message");
    let got = messages(&mut bob_ev, conv, 2).await;
    assert_eq!(body_of(&got[0]).welcome.as_ref(), b"welcome for bob and carol", "routed as sent");
    assert_eq!((got[0].mls_epoch, got[1].mls_epoch), (1, 1), "stamped with the epoch after each");
    assert_eq!((got[1].seq, body_of(&got[1]).mls.as_ref()), (hello.seq, &b"app-1"[..]));

    // Two commits for epoch 1: the first sequenced wins, the other is refused
    // precisely and its sender rebases; a message of the old epoch too.
    let bob_commit = bob.send_ciphertext(conv, ct(1, true, "bob-update"));
    let carol_commit = carol.send_ciphertext(conv, ct(1, true, "carol-update"));
    let (b, c) = tokio::join!(bob_commit, carol_commit);
    let (winner, loser) = match (b, c) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        other => panic!("exactly one commit of epoch 1 is taken: {other:?}"),
    };
    let loser = server_error(loser);
    assert_eq!(loser.code(), Some(ErrorCode::StaleEpoch));
    assert!(loser.message.contains("the group is at epoch 2, not 1"), "{}", loser.message);
    assert_eq!(winner.seq, 3);
    let stale = carol.send_ciphertext(conv, ct(1, false, "late")).await.unwrap_err();
    assert_eq!(code(stale), Some(ErrorCode::StaleEpoch));
    carol.send_ciphertext(conv, ct(2, false, "rebased")).await.expect("made again in epoch 2");

    // Ciphertext is not edited; a plain conversation takes no ciphertext;
    // malformed E2E bodies are refused before they reach the group.
    let e = alice.edit(conv, hello.seq, "now in clear").await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::NotEditable));
    let plain = create(&alice, ConversationKind::Group, "plain", "", &["bob"]).await;
    assert_eq!(code(alice.send_ciphertext(plain, ct(0, false, "x")).await.unwrap_err()), Some(ErrorCode::NotE2e));
    let empty = v1::E2eCiphertext { epoch: 2, ..Default::default() };
    assert_eq!(code(alice.send_ciphertext(conv, empty).await.unwrap_err()), Some(ErrorCode::InvalidArgument));
    let stray = v1::E2eCiphertext { welcome: b"w".to_vec().into(), ..ct(2, false, "app") };
    assert_eq!(code(alice.send_ciphertext(conv, stray).await.unwrap_err()), Some(ErrorCode::InvalidArgument));
    let big = v1::E2eCiphertext { mls: vec![0u8; 11 * 1024 + 1].into(), ..ct(2, false, "") };
    assert_eq!(code(alice.send_ciphertext(conv, big).await.unwrap_err()), Some(ErrorCode::TextTooLong));

    // Nothing refused was stored: four entries, in order, each of its epoch.
    let h = alice.history(conv, 0, 0, 50).await.unwrap();
    let epochs: Vec<(u64, u64)> = h.messages.iter().map(|m| (m.seq, m.mls_epoch)).collect();
    assert_eq!(epochs, [(1, 1), (2, 1), (3, 2), (4, 2)]);

    // A restarted server learns the epoch from the head.
    drop((alice, bob, carol));
    s.restart().await;
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    assert_eq!(code(alice.send_ciphertext(conv, ct(1, true, "old")).await.unwrap_err()), Some(ErrorCode::StaleEpoch));
    let next = alice.send_ciphertext(conv, ct(2, true, "alice-update")).await.expect("commit of epoch 2");
    assert_eq!(alice.history(conv, next.seq - 1, 0, 1).await.unwrap().messages.len(), 1);
    let h = alice.history(conv, 0, 0, 50).await.unwrap();
    assert_eq!(h.messages.last().map(|m| (m.seq, m.mls_epoch)), Some((5, 3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_has_a_plain_and_an_e2e_private_conversation_and_support_is_never_e2e() {
    let s = Server::start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::Quic).await;
    let plain = create(&alice, ConversationKind::Private, "", "", &["bob"]).await;
    let ok = alice.create_e2e_conversation(ConversationKind::Private, "", "", vec!["bob".into()]).await.unwrap();
    let e2e = ok.summary.unwrap().conversation.unwrap();
    assert!(e2e.e2e && e2e.id != plain);
    assert_eq!(e2e.id, chat_server::command::conversations::private_id("alice", "bob", true));
    // Asked again (by either side): the same E2E one.
    let again = bob.create_e2e_conversation(ConversationKind::Private, "", "", vec!["alice".into()]).await.unwrap();
    assert!(again.existing && again.summary.unwrap().conversation.unwrap().id == e2e.id);
    let e = bob.create_e2e_conversation(ConversationKind::Support, "help", "", vec![]).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::InvalidArgument));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_packages_are_published_counted_and_claimed_once() {
    let s = Server::start_with(|c| c.limits.key_claims_per_hour = 6);
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::WebTransport).await;
    let kp = |d: &str, i: usize| format!("keypackage {d} {i}").into_bytes();

    assert_eq!(bob.publish_key_packages("phone", vec![kp("p", 1), kp("p", 2)]).await.unwrap(), 2);
    assert_eq!(bob.publish_key_packages("laptop", vec![kp("l", 1)]).await.unwrap(), 1);
    // A retry of a publish keeps each KeyPackage once.
    assert_eq!(bob.publish_key_packages("phone", vec![kp("p", 2)]).await.unwrap(), 2);

    // One per device, each handed out once; carol has none.
    let claimed = alice.claim_key_packages(vec!["bob".into(), "carol".into()]).await.unwrap();
    let mut got: Vec<(String, String)> =
        claimed.key_packages.iter().map(|k| (k.user_id.clone(), k.device_id.clone())).collect();
    got.sort();
    assert_eq!(got, [("bob".into(), "laptop".into()), ("bob".into(), "phone".into())]);
    assert_eq!(claimed.unavailable, ["carol"]);
    assert_eq!(bob.count_key_packages("phone").await.unwrap(), 1);
    assert_eq!(bob.count_key_packages("laptop").await.unwrap(), 0);
    let second = alice.claim_key_packages(vec!["bob".into()]).await.unwrap();
    assert_eq!(second.key_packages.len(), 1);
    let first_phone = claimed.key_packages.iter().find(|k| k.device_id == "phone").unwrap();
    assert_ne!(second.key_packages[0].key_package, first_phone.key_package, "never the same one twice");
    // All claimed: a precise refusal, nothing handed out.
    let e = alice.claim_key_packages(vec!["bob".into()]).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::NoKeyPackages));

    // Bad input: each a precise error, nothing written.
    assert_eq!(
        code(alice.claim_key_packages(vec!["nobody-here".into()]).await.unwrap_err()),
        Some(ErrorCode::UnknownUser)
    );
    assert_eq!(code(alice.claim_key_packages(vec![]).await.unwrap_err()), Some(ErrorCode::InvalidArgument));
    let bad = [
        bob.publish_key_packages("no/slash", vec![kp("x", 1)]).await,
        bob.publish_key_packages("phone", vec![vec![0u8; 4097]]).await,
        bob.publish_key_packages("phone", vec![]).await,
    ];
    for r in bad {
        assert_eq!(code(r.unwrap_err()), Some(ErrorCode::InvalidArgument));
    }
    let sixty = |d: &str| (0..60).map(|i| kp(d, 100 + i)).collect::<Vec<_>>();
    assert_eq!(bob.publish_key_packages("tablet", sixty("a")).await.unwrap(), 60);
    let e = bob.publish_key_packages("tablet", sixty("b")).await.unwrap_err();
    let w = server_error(e);
    assert_eq!(
        (w.code(), w.limit.as_deref()),
        (Some(ErrorCode::TooManyKeyPackages), Some("max_key_packages_per_device"))
    );
    assert_eq!(bob.count_key_packages("tablet").await.unwrap(), 60, "nothing of a refused publish is kept");

    // Claims are counted: the seventh within the hour is refused with when to retry.
    for _ in 0..3 {
        alice.claim_key_packages(vec!["bob".into()]).await.unwrap();
    }
    let e = alice.claim_key_packages(vec!["bob".into()]).await.unwrap_err();
    let w = server_error(e);
    assert_eq!((w.code(), w.limit.as_deref()), (Some(ErrorCode::RateLimited), Some("key_claims_per_hour")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_user_leaves_no_key_packages() {
    let s = Server::start();
    let (root, _r) = s.connect("trent", "admin", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::Quic).await;
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    assert_eq!(bob.publish_key_packages("phone", vec![b"kp 1".to_vec(), b"kp 2".to_vec()]).await.unwrap(), 2);
    drop(bob);
    root.erase_user("bob", "art. 17 request").await.expect("erase");
    let e = alice.claim_key_packages(vec!["bob".into()]).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::NoKeyPackages), "nobody can add an erased user's devices");
}
