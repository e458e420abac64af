//! End-to-end encrypted conversations with MLS between Rust SDK devices
//! (openmls), on the real server over real QUIC and WebTransport: two users
//! talk, a third added later reads from then on, two commits for one epoch
//! are settled by the server (the loser catches up and commits again), a
//! removed member cannot read what is sent after, a restart and a reopened
//! device file change nothing, and no plaintext reaches the server's data
//! directory.

mod common;
use chat_client::mls::{Device, Received};
use chat_client::{Event, Events, Transport};
use chat_protocol::v1::{self, ConversationKind};
use common::server::*;
use std::path::Path;

const SECRETS: [&str; 7] = [
    "settlement floor is 40,000 (privileged)",
    "client agrees to the floor",
    "carol: the deposition moved to Tuesday",
    "after both updates, all still read this",
    "bob is gone: the new strategy is mediation",
    "after the restart: file by Friday",
    "from a reopened device: witness list attached",
];

/// Feeds `conv`'s messages from `ev` to `d` until `done` holds for what it made of one.
async fn pump(
    d: &mut Device,
    ev: &mut Events,
    conv: u64,
    mut done: impl FnMut(&Received) -> bool,
) -> Vec<(v1::Message, Received)> {
    let mut out = Vec::new();
    loop {
        let m = next_where(ev, |e| match e {
            Event::Message(m) if m.conversation_id == conv => Some(m),
            _ => None,
        })
        .await;
        let r = d.receive(&m).unwrap_or_else(|e| panic!("{} cannot apply seq {}: {e}", d.user(), m.seq));
        let stop = done(&r);
        out.push((m, r));
        if stop {
            return out;
        }
    }
}

fn text(want: &str) -> impl FnMut(&Received) -> bool + '_ {
    move |r| matches!(r, Received::Text { text, .. } if text == want)
}

fn texts(got: &[Received]) -> Vec<&str> {
    got.iter()
        .filter_map(|r| match r {
            Received::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// Every file under `dir`, read whole.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((p, bytes));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_devices_talk_end_to_end_and_a_removed_one_reads_nothing_after() {
    let mut s = Server::start();
    let keys = tempfile::tempdir().unwrap();
    let (alice, _a_ev) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, mut b_ev) = s.connect("bob", "client", Transport::WebTransport).await;
    let (carol, mut c_ev) = s.connect("carol", "advocate", Transport::Quic).await;
    let mut ad = Device::create(keys.path().join("alice.mls"), "alice", "laptop").unwrap();
    let mut bd = Device::create(keys.path().join("bob.mls"), "bob", "phone").unwrap();
    let mut cd = Device::create(keys.path().join("carol.mls"), "carol", "desk").unwrap();
    for (d, c) in [(&mut ad, &alice), (&mut bd, &bob), (&mut cd, &carol)] {
        assert_eq!(d.replenish(c, 5).await.unwrap(), 5);
    }

    // Alice makes the group with bob: bob joins from the Welcome and they talk.
    let conv = ad.create_conversation(&alice, ConversationKind::Group, "Privileged", "", &["bob"]).await.unwrap();
    assert_eq!(bob.count_key_packages("phone").await.unwrap(), 4, "one of bob's was claimed");
    pump(&mut bd, &mut b_ev, conv, |r| matches!(r, Received::Joined { .. })).await;
    // Garbage ciphertext (bytes that are no MLS message, or one of another
    // group) is the sender's fault: the server stores what it cannot read,
    // the device refuses it precisely and its group is unharmed.
    let garbage = v1::E2eCiphertext { epoch: 1, mls: b"not an MLS message".to_vec().into(), ..Default::default() };
    alice.send_ciphertext(conv, garbage).await.expect("stored: the server cannot tell");
    let m = next_where(&mut b_ev, |e| match e {
        Event::Message(m) if m.conversation_id == conv => Some(m),
        _ => None,
    })
    .await;
    match bd.receive(&m).unwrap() {
        Received::Refused { seq, why } => assert!(seq == m.seq && why.starts_with("mls: "), "{why}"),
        other => panic!("garbage taken as {other:?}"),
    }
    ad.send_text(&alice, conv, SECRETS[0]).await.unwrap();
    let got = pump(&mut bd, &mut b_ev, conv, text(SECRETS[0])).await;
    let Received::Text { sender, device, .. } = &got.last().unwrap().1 else { unreachable!() };
    assert_eq!((sender.as_str(), device.as_str()), ("alice", "laptop"));
    bd.send_text(&bob, conv, SECRETS[1]).await.unwrap();
    let got = ad.catch_up(&alice, conv).await.unwrap();
    assert_eq!(texts(&got), [SECRETS[1]]);
    assert!(matches!(got[0], Received::Refused { .. }), "the garbage, passed over: {got:?}");

    // Carol is added later: she reads from then on, not before.
    ad.add_members(&alice, conv, &["carol"]).await.unwrap();
    pump(&mut cd, &mut c_ev, conv, |r| matches!(r, Received::Joined { .. })).await;
    pump(&mut bd, &mut b_ev, conv, |r| matches!(r, Received::Committed { .. })).await;
    let before = cd.catch_up(&carol, conv).await.unwrap();
    assert!(texts(&before).is_empty(), "history from before she joined stays unreadable: {before:?}");
    ad.send_text(&alice, conv, SECRETS[2]).await.unwrap();
    pump(&mut bd, &mut b_ev, conv, text(SECRETS[2])).await;
    pump(&mut cd, &mut c_ev, conv, text(SECRETS[2])).await;
    let numbers = ad.safety_numbers(conv).unwrap();
    assert_eq!(numbers.len(), 3);
    assert_eq!(numbers, bd.safety_numbers(conv).unwrap(), "everyone sees the same keys");
    assert_eq!(numbers, cd.safety_numbers(conv).unwrap());

    // Carol's second device, set up after she joined, is added by a member
    // and reads from then on.
    let (carol_phone, mut cp_ev) = s.connect("carol", "advocate", Transport::WebTransport).await;
    let mut cp = Device::create(keys.path().join("carol-phone.mls"), "carol", "phone").unwrap();
    cp.replenish(&carol_phone, 2).await.unwrap();
    assert_eq!(ad.add_new_devices(&alice, conv).await.unwrap(), 1, "only the new device");
    pump(&mut cp, &mut cp_ev, conv, |r| matches!(r, Received::Joined { .. })).await;
    bd.catch_up(&bob, conv).await.unwrap();
    cd.catch_up(&carol, conv).await.unwrap();
    ad.send_text(&alice, conv, "to every device").await.unwrap();
    pump(&mut cp, &mut cp_ev, conv, text("to every device")).await;
    assert_eq!(texts(&cd.catch_up(&carol, conv).await.unwrap()), ["to every device"]);
    drop(carol_phone);

    // Bob and carol commit at once: one is sequenced first, the other is
    // refused as stale, catches up and commits again.
    let epoch = ad.epoch(conv).unwrap();
    let (b, c) = tokio::join!(bd.update(&bob, conv), cd.update(&carol, conv));
    b.unwrap();
    c.unwrap();
    ad.catch_up(&alice, conv).await.unwrap();
    assert_eq!(ad.epoch(conv), Some(epoch + 2), "both commits applied, one after the other");
    bd.catch_up(&bob, conv).await.unwrap();
    cd.catch_up(&carol, conv).await.unwrap();
    assert_eq!((bd.epoch(conv), cd.epoch(conv)), (Some(epoch + 2), Some(epoch + 2)));
    ad.send_text(&alice, conv, SECRETS[3]).await.unwrap();
    assert_eq!(texts(&bd.catch_up(&bob, conv).await.unwrap()), [SECRETS[3]]);
    assert_eq!(texts(&cd.catch_up(&carol, conv).await.unwrap()), [SECRETS[3]]);

    // Bob is removed: even given every entry after it, his device reads nothing.
    ad.remove_member(&alice, conv, "bob").await.unwrap();
    ad.send_text(&alice, conv, SECRETS[4]).await.unwrap();
    let after = pump(&mut cd, &mut c_ev, conv, text(SECRETS[4])).await;
    for (m, _) in &after {
        match bd.receive(m) {
            Ok(Received::Text { text, .. }) => panic!("a removed member read {text:?}"),
            Ok(Received::Committed { removed, .. }) => assert!(removed, "the commit that removed him"),
            Ok(_) | Err(_) => {}
        }
    }
    assert_eq!(bd.epoch(conv), None, "his device left the group");

    // A restart, and a device reopened from its file, change nothing.
    s.restart().await;
    ad.send_text(&alice, conv, SECRETS[5]).await.unwrap();
    pump(&mut cd, &mut c_ev, conv, text(SECRETS[5])).await;
    drop(ad);
    let mut ad = Device::open(keys.path().join("alice.mls")).unwrap();
    ad.send_text(&alice, conv, SECRETS[6]).await.unwrap();
    pump(&mut cd, &mut c_ev, conv, text(SECRETS[6])).await;
    let got = cd.catch_up(&carol, conv).await.unwrap();
    assert!(got.is_empty(), "{got:?}");

    // The server kept ciphertext only (a plain conversation's text, by
    // contrast, is found: the search can see what is there).
    let plain = create(&alice, ConversationKind::Group, "plain", "", &["carol"]).await;
    let marker = "plaintext marker of a plain conversation";
    alice.send_text(plain, marker).await.unwrap();
    let stored = files_under(&s.cfg.data_dir);
    let seen = |needle: &str| stored.iter().any(|(_, b)| b.windows(needle.len()).any(|w| w == needle.as_bytes()));
    assert!(seen(marker), "the scan sees a plaintext that is stored");
    assert!(stored.len() > 5, "the data directory holds the store: {}", stored.len());
    for secret in SECRETS {
        for (path, bytes) in &stored {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{} holds the plaintext {secret:?}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_an_e2e_conversation_is_encrypted_on_the_device() {
    let s = Server::start();
    let keys = tempfile::tempdir().unwrap();
    let (alice, _a_ev) = s.connect("alice", "advocate", Transport::WebTransport).await;
    let (bob, mut b_ev) = s.connect("bob", "client", Transport::Quic).await;
    let mut ad = Device::create(keys.path().join("alice.mls"), "alice", "laptop").unwrap();
    let mut bd = Device::create(keys.path().join("bob.mls"), "bob", "phone").unwrap();
    bd.replenish(&bob, 2).await.unwrap();
    let conv = ad.create_conversation(&alice, ConversationKind::Private, "", "", &["bob"]).await.unwrap();
    pump(&mut bd, &mut b_ev, conv, |r| matches!(r, Received::Joined { .. })).await;

    let secret = b"%PDF-1.7\n% the privileged settlement memo, page 1 of 3\n".repeat(50);
    ad.send_file(&alice, conv, "the memo", ("memo.pdf", "application/pdf", &secret)).await.unwrap();
    let got = pump(&mut bd, &mut b_ev, conv, |r| matches!(r, Received::Text { .. })).await;
    let (m, Received::Text { text, files, .. }) = got.last().unwrap() else { unreachable!() };
    assert_eq!((text.as_str(), files.len()), ("the memo", 1));
    assert_eq!((files[0].name.as_str(), files[0].media_type.as_str()), ("memo.pdf", "application/pdf"));
    // The server knows a ciphertext of that id, not its name or type.
    assert_eq!(m.attachments.len(), 1);
    assert_eq!(m.attachments[0].attachment_id, files[0].attachment_id);
    assert_eq!(m.attachments[0].media_type, "application/vnd.chatd.e2e-encrypted");
    assert_ne!(m.attachments[0].name, "memo.pdf");
    assert_eq!(bd.download_file(&bob, conv, &files[0]).await.unwrap(), secret);

    // A file in the clear is refused here; an encrypted one in a plain conversation too.
    let e = alice.upload_bytes(conv, "memo.pdf", "application/pdf", &secret).await.unwrap_err();
    assert_eq!(code(e), Some(v1::ErrorCode::E2eRequired));
    let plain = create(&alice, ConversationKind::Group, "plain", "", &["bob"]).await;
    let e = alice.upload_bytes(plain, "x.bin", "application/vnd.chatd.e2e-encrypted", b"x").await.unwrap_err();
    assert_eq!(code(e), Some(v1::ErrorCode::NotE2e));

    let needle: &[u8] = b"privileged settlement memo";
    for (path, bytes) in files_under(&s.cfg.data_dir) {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{} holds the file's plaintext", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_added_while_away_finds_its_welcome_far_back() {
    let s = Server::start();
    let (alice, _a_ev) = s.connect("alice", "advocate", Transport::Quic).await;
    let (dave, _d_ev) = s.connect("dave", "client", Transport::Quic).await;
    let mut ad = Device::in_memory("alice", "laptop").unwrap();
    let mut dd = Device::in_memory("dave", "phone").unwrap();
    dd.replenish(&dave, 2).await.unwrap();
    // dave is added, then 250 messages pass before his device catches up:
    // more than a history page, so the Welcome is not on the newest one.
    let conv = ad.create_conversation(&alice, ConversationKind::Group, "away", "", &["dave"]).await.unwrap();
    for i in 0..250 {
        ad.send_text(&alice, conv, &format!("entry {i}")).await.unwrap();
    }
    let got = dd.catch_up(&dave, conv).await.unwrap();
    assert!(matches!(got.first(), Some(Received::Joined { .. })), "{:?}", got.first());
    let read = texts(&got);
    assert_eq!((read.len(), read.last().copied()), (250, Some("entry 249")));
    // Next time only what is new is read.
    ad.send_text(&alice, conv, "one more").await.unwrap();
    assert_eq!(texts(&dd.catch_up(&dave, conv).await.unwrap()), ["one more"]);
}
