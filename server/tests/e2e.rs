//! End to end: the real server (2 shards) on loopback, real QUIC and
//! WebTransport, the real Rust SDK. Each test starts its own server on port 0
//! with a fresh data directory.

mod common;
use chat_client::{Client, ClientError, Event, ResumeState, Transport, Trust};
use chat_protocol::v1::{self, ConversationKind, ErrorCode, ReceiptKind, message_body};
use chat_server::config::PUBLIC_DEV_SECRET;
use common::server::*;
use common::text;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_chat_across_shards_and_transports() {
    let s = Server::start();
    let (alice, mut a_ev) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, mut b_ev) = s.connect("bob", "client", Transport::WebTransport).await;
    let (carol, mut c_ev) = s.connect("carol", "advocate", Transport::Quic).await;
    // Several groups so their owners land on both shards.
    let mut convs = Vec::new();
    for i in 0..4 {
        convs.push(create(&alice, ConversationKind::Group, &format!("team {i}"), "", &["bob", "carol"]).await);
    }
    for &conv in &convs {
        for (who, c) in [("a", &alice), ("b", &bob), ("c", &carol)] {
            for k in 0..3 {
                c.send_text(conv, &format!("{who}{k}")).await.unwrap();
            }
        }
    }
    for &conv in &convs {
        let a = messages(&mut a_ev, conv, 9).await;
        let b = messages(&mut b_ev, conv, 9).await;
        let c = messages(&mut c_ev, conv, 9).await;
        let seqs: Vec<u64> = a.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=9).collect::<Vec<_>>(), "one total order, no gaps");
        let order = |v: &[v1::Message]| v.iter().map(text).collect::<Vec<_>>();
        assert_eq!(order(&a), order(&b), "every member sees the same order");
        assert_eq!(order(&a), order(&c));
        assert_eq!(order(&a), vec!["a0", "a1", "a2", "b0", "b1", "b2", "c0", "c1", "c2"]);
        assert_eq!(a[3].sender_id, "bob");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_is_one_per_pair_and_send_is_idempotent() {
    let s = Server::start();
    let (alice, _a_ev) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, mut b_ev) = s.connect("bob", "client", Transport::Quic).await;
    let first = alice.create_conversation(ConversationKind::Private, "", "", vec!["bob".into()]).await.unwrap();
    let again = bob.create_conversation(ConversationKind::Private, "", "", vec!["alice".into()]).await.unwrap();
    let id = first.summary.unwrap().conversation.unwrap().id;
    assert!(!first.existing);
    assert!(again.existing, "the pair's conversation is found, not made twice");
    assert_eq!(again.summary.unwrap().conversation.unwrap().id, id);
    let msg = v1::SendMessage {
        conversation_id: id,
        client_msg_id: "retry-me-1".into(),
        body: Some(v1::MessageBody { content: Some(message_body::Content::Text("once".into())) }),
        reply_to: 0,
        attachment_ids: Vec::new(),
    };
    let a = alice.send(msg.clone()).await.unwrap();
    let b = alice.send(msg).await.unwrap();
    assert_eq!(a.seq, b.seq);
    assert!(!a.duplicate);
    assert!(b.duplicate, "a retry returns the first attempt");
    alice.send_text(id, "next").await.unwrap();
    let got = messages(&mut b_ev, id, 2).await;
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), vec!["once", "next"]);
    let h = bob.history(id, 0, 0, 50).await.unwrap();
    assert_eq!(h.messages.len(), 2, "one stored message per client_msg_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_user_gets_missed_messages_on_reconnect() {
    let s = Server::start();
    let (alice, _a_ev) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, mut b_ev) = s.connect("bob", "client", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "matter", "", &["bob"]).await;
    alice.send_text(conv, "before").await.unwrap();
    messages(&mut b_ev, conv, 1).await;
    let state: ResumeState = {
        tokio::time::sleep(Duration::from_millis(300)).await;
        bob.resume_state()
    };
    bob.close().await;
    for i in 0..20 {
        alice.send_text(conv, &format!("while away {i}")).await.unwrap();
    }
    let (_bob2, mut b2) =
        Client::connect(s.client_config("bob", "client", Transport::WebTransport).resume(Some(state))).await.unwrap();
    let got = messages(&mut b2, conv, 20).await;
    assert_eq!(got.iter().map(|m| m.seq).collect::<Vec<_>>(), (2..=21).collect::<Vec<_>>());
    assert_eq!(text(&got[0]), "while away 0");
    next_where(&mut b2, |e| matches!(e, Event::CaughtUp).then_some(())).await;
    assert_quiet(&mut b2, conv, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_conversation_loses_and_repeats_nothing() {
    let mut s = Server::start();
    let (alice, mut a_ev) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, mut b_ev) = s.connect("bob", "client", Transport::WebTransport).await;
    let conv = create(&alice, ConversationKind::Case, "Doe v. Roe", "CASE-17", &["bob"]).await;
    for i in 0..10 {
        alice.send_text(conv, &format!("m{i}")).await.unwrap();
    }
    // The server goes away with sends in flight; the outbox carries them over.
    let sender = {
        let alice = alice.clone();
        tokio::spawn(async move {
            for i in 10..40 {
                alice.send_text(conv, &format!("m{i}")).await.unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.restart().await;
    tokio::time::timeout(Duration::from_secs(30), sender).await.unwrap().unwrap();
    let got = messages(&mut b_ev, conv, 40).await;
    assert_eq!(got.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=40).collect::<Vec<_>>());
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), (0..40).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert_quiet(&mut b_ev, conv, Duration::from_millis(300)).await;
    let _ = &mut a_ev;
    // History survived the restart.
    let h = bob.history(conv, 0, 0, 100).await.unwrap();
    assert_eq!(h.messages.len(), 40);
    let list = bob
        .list_conversations(v1::ListConversations { case_id: "CASE-17".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(list.conversations.len(), 1, "listing by case id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_starts_stops_and_expires() {
    let s = Server::start();
    let (alice, _a_ev) = s.connect("alice", "advocate", Transport::Quic).await;
    let (_bob, mut b_ev) = s.connect("bob", "client", Transport::WebTransport).await;
    let conv = create(&alice, ConversationKind::Private, "", "", &["bob"]).await;
    // Typing goes to the sessions attached at the time: wait until Bob's has
    // heard of the conversation (else he could see only the expiry).
    next_where(&mut b_ev, |e| match e {
        Event::Conversation(c) if c.conversation.as_ref().is_some_and(|x| x.id == conv) => Some(()),
        _ => None,
    })
    .await;
    alice.set_typing(conv, true).await.unwrap();
    let t = next_where(&mut b_ev, |e| match e {
        Event::Typing(t) => Some(t),
        _ => None,
    })
    .await;
    assert!(t.typing && t.user_id == "alice" && t.conversation_id == conv);
    // No refresh: it stops by itself after the timeout (600 ms in this test).
    let started = tokio::time::Instant::now();
    let t = next_where(&mut b_ev, |e| match e {
        Event::Typing(t) => Some(t),
        _ => None,
    })
    .await;
    assert!(!t.typing);
    assert!(started.elapsed() >= Duration::from_millis(300), "stopped too early: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_counts_devices() {
    let s = Server::start();
    let (bob, mut b_ev) = s.connect("bob", "client", Transport::Quic).await;
    let (alice1, _e1) = s.connect("alice", "advocate", Transport::Quic).await;
    create(&alice1, ConversationKind::Private, "", "", &["bob"]).await;
    let (alice2, _e2) = s.connect("alice", "advocate", Transport::WebTransport).await;
    let p = presence_settles(&bob, "alice", |p| p.devices == 2).await;
    assert_eq!(p.devices, 2, "{p:?}");
    alice1.close().await;
    let p = presence_settles(&bob, "alice", |p| p.devices == 1).await;
    assert!(p.online && p.devices == 1, "still online with one device: {p:?}");
    alice2.close().await;
    let off = next_where(&mut b_ev, |e| match e {
        Event::Presence(p) if p.user_id == "alice" && !p.online => Some(p),
        _ => None,
    })
    .await;
    assert!(!off.online);
    // Presence is only for contacts.
    let (_eve, _) = s.connect("eve", "client", Transport::Quic).await;
    let p = bob.get_presence(vec!["eve".into()]).await.unwrap();
    assert!(p.is_empty(), "eve shares no conversation with bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_and_unread_counts() {
    let s = Server::start();
    let (alice, mut a_ev) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, mut b_ev) = s.connect("bob", "client", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "g", "", &["bob"]).await;
    for i in 0..3 {
        alice.send_text(conv, &format!("{i}")).await.unwrap();
    }
    messages(&mut b_ev, conv, 3).await;
    // Bob's SDK acknowledged delivery by itself.
    let d = next_where(&mut a_ev, |e| match e {
        Event::Receipt(r) if r.user_id == "bob" && r.kind == ReceiptKind::Delivered as i32 && r.seq == 3 => Some(r),
        _ => None,
    })
    .await;
    assert_eq!(d.conversation_id, conv);
    let list = bob.list_conversations(Default::default()).await.unwrap();
    let sum = &list.conversations[0];
    assert_eq!(sum.unread_count, 3);
    assert_eq!(text(sum.last_message.as_ref().unwrap()), "2");
    bob.mark_read(conv, 2).await.unwrap();
    let r = next_where(&mut a_ev, |e| match e {
        Event::Receipt(r) if r.kind == ReceiptKind::Read as i32 => Some(r),
        _ => None,
    })
    .await;
    assert_eq!((r.user_id.as_str(), r.seq), ("bob", 2));
    let list = bob.list_conversations(Default::default()).await.unwrap();
    assert_eq!(list.conversations[0].unread_count, 1);
    let a_list = alice.list_conversations(Default::default()).await.unwrap();
    assert_eq!(a_list.conversations[0].unread_count, 0, "own messages are read");
    let members = alice.get_members(conv).await.unwrap();
    let b = members.members.iter().find(|m| m.user_id == "bob").unwrap();
    assert_eq!((b.delivered_seq, b.read_seq), (3, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_both_ways() {
    let s = Server::start();
    let (alice, _) = s.connect("alice", "advocate", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "g", "", &["bob"]).await;
    for i in 1..=25 {
        alice.send_text(conv, &format!("{i}")).await.unwrap();
    }
    let seqs = |h: &v1::History| h.messages.iter().map(|m| m.seq).collect::<Vec<_>>();
    let p1 = alice.history(conv, 0, 0, 10).await.unwrap();
    assert_eq!(seqs(&p1), (16..=25).collect::<Vec<_>>());
    assert!(p1.has_more);
    let p2 = alice.history(conv, 16, 0, 10).await.unwrap();
    assert_eq!(seqs(&p2), (6..=15).collect::<Vec<_>>());
    let p3 = alice.history(conv, 6, 0, 10).await.unwrap();
    assert_eq!(seqs(&p3), (1..=5).collect::<Vec<_>>());
    assert!(!p3.has_more);
    let f = alice.history(conv, 0, 20, 10).await.unwrap();
    assert_eq!(seqs(&f), (21..=25).collect::<Vec<_>>());
    assert!(!f.has_more);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_precisely() {
    let s = Server::start();
    let base = s.client_config("alice", "advocate", Transport::Quic);
    let try_token = |t: String| {
        let mut c = base.clone();
        c.token = t;
        async move { Client::connect(c).await.err().map(code) }
    };
    assert_eq!(try_token(String::new()).await, Some(Some(ErrorCode::Unauthenticated)), "missing");
    let forged =
        chat_server::auth::mint_hs256("some-other-secret-value", "alice", "", "admin", Duration::from_secs(60));
    assert_eq!(try_token(forged).await, Some(Some(ErrorCode::Unauthenticated)), "forged");
    let expired = chat_server::auth::Claims {
        sub: "alice".into(),
        name: String::new(),
        role: "advocate".into(),
        exp: 1_000_000,
        iat: 0,
        iss: None,
        aud: None,
    };
    assert_eq!(
        try_token(chat_server::auth::mint_claims(PUBLIC_DEV_SECRET, &expired)).await,
        Some(Some(ErrorCode::TokenExpired)),
        "expired"
    );
    let bad_role = chat_server::auth::mint_hs256(PUBLIC_DEV_SECRET, "alice", "", "judge", Duration::from_secs(60));
    assert_eq!(try_token(bad_role).await, Some(Some(ErrorCode::Unauthenticated)), "unknown role");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_only_and_role_rules() {
    let s = Server::start();
    let (alice, _) = s.connect("alice", "advocate", Transport::Quic).await;
    let (mallory, _) = s.connect("mallory", "client", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "privileged", "", &["bob"]).await;
    alice.send_text(conv, "secret").await.unwrap();
    assert_eq!(code(mallory.send_text(conv, "hi").await.unwrap_err()), Some(ErrorCode::NotFound));
    assert_eq!(code(mallory.history(conv, 0, 0, 10).await.unwrap_err()), Some(ErrorCode::NotFound));
    assert_eq!(code(mallory.get_members(conv).await.unwrap_err()), Some(ErrorCode::NotFound));
    assert_eq!(code(mallory.get_conversation(conv).await.unwrap_err()), Some(ErrorCode::NotFound));
    // Joining is for staff picking up support requests; to anyone else a
    // conversation they are not in does not exist.
    assert_eq!(code(mallory.join(conv).await.unwrap_err()), Some(ErrorCode::NotFound));
    assert_eq!(code(mallory.history(999_999, 0, 0, 10).await.unwrap_err()), Some(ErrorCode::NotFound));
    // Private ids follow from the pair, so "not a member" must read exactly like
    // "does not exist": nobody learns who talks privately with whom.
    let pair = create(&alice, ConversationKind::Private, "", "", &["bob"]).await;
    let existing = mallory.get_conversation(pair).await.unwrap_err();
    let missing = mallory
        .get_conversation(chat_server::command::conversations::private_id("alice", "zed", false))
        .await
        .unwrap_err();
    match (existing, missing) {
        (ClientError::Server(a), ClientError::Server(b)) => {
            assert_eq!(a.code, b.code);
            assert_eq!(
                a.message.replace(&pair.to_string(), "N"),
                b.message
                    .replace(&chat_server::command::conversations::private_id("alice", "zed", false).to_string(), "N")
            );
        }
        other => panic!("{other:?}"),
    }
    // Clients do not create groups; members who are not admins do not add people.
    let e = mallory.create_conversation(ConversationKind::Group, "x", "", vec!["alice".into()]).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::Forbidden));
    let (bob, _) = s.connect("bob", "client", Transport::Quic).await;
    assert_eq!(code(bob.add_members(conv, vec!["mallory".into()]).await.unwrap_err()), Some(ErrorCode::Forbidden));
    // The admin adds mallory: now she reads; removed again: she no longer does.
    alice.add_members(conv, vec!["mallory".into()]).await.unwrap();
    assert_eq!(mallory.history(conv, 0, 0, 10).await.unwrap().messages.len(), 1);
    alice.remove_member(conv, "mallory").await.unwrap();
    assert_eq!(code(mallory.send_text(conv, "still here?").await.unwrap_err()), Some(ErrorCode::NotFound));
    // Archived conversations are read-only.
    alice.archive(conv, false).await.unwrap();
    assert_eq!(code(alice.send_text(conv, "late").await.unwrap_err()), Some(ErrorCode::Archived));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_queue_until_staff_joins() {
    let s = Server::start();
    let (client, _) = s.connect("carla", "client", Transport::Quic).await;
    let (staff, mut st_ev) = s.connect("sam", "admin", Transport::Quic).await;
    let (adv, _) = s.connect("alice", "advocate", Transport::Quic).await;
    let conv = create(&client, ConversationKind::Support, "billing question", "", &[]).await;
    client.send_text(conv, "hello, I need help").await.unwrap();
    assert_eq!(code(adv.support_queue(Default::default()).await.unwrap_err()), Some(ErrorCode::Forbidden));
    let q = staff.support_queue(Default::default()).await.unwrap();
    assert_eq!(q.conversations.len(), 1);
    assert_eq!(q.conversations[0].conversation.as_ref().unwrap().support_state, v1::SupportState::Waiting as i32);
    staff.join(conv).await.unwrap();
    assert!(staff.support_queue(Default::default()).await.unwrap().conversations.is_empty(), "picked up");
    client.send_text(conv, "thanks").await.unwrap();
    let m = messages(&mut st_ev, conv, 1).await;
    assert_eq!(text(&m[0]), "thanks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_rate_limit_answers_and_stays_usable() {
    let s = Server::start_with(|c| c.limits.messages_per_minute = 5);
    let (alice, _) = s.connect("alice", "advocate", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "g", "", &["bob"]).await;
    for i in 0..5 {
        alice.send_text(conv, &format!("{i}")).await.unwrap();
    }
    match alice.send_text(conv, "one too many").await.unwrap_err() {
        ClientError::Server(e) => {
            assert_eq!(e.code(), Some(ErrorCode::RateLimited));
            assert_eq!(e.limit.as_deref(), Some("messages_per_minute"));
            let r = e.retry_after.expect("retry_after");
            assert!(r > Duration::ZERO && r <= Duration::from_secs(13), "{r:?}");
        }
        other => panic!("{other:?}"),
    }
    alice.ping().await.expect("the connection stays usable");
    assert_eq!(alice.history(conv, 0, 0, 10).await.unwrap().messages.len(), 5, "nothing lost, nothing extra");
    // The limit is per user, not per connection: three devices (spread over
    // the shards by the kernel) share one budget.
    let s = Server::start_with(|c| c.limits.messages_per_minute = 5);
    let mut devices = Vec::new();
    for t in [Transport::Quic, Transport::WebTransport, Transport::Quic] {
        devices.push(s.connect("alice", "advocate", t).await.0);
    }
    let conv = create(&devices[0], ConversationKind::Group, "g", "", &["bob"]).await;
    let mut refused = 0;
    for d in &devices {
        for _ in 0..2 {
            if let Err(e) = d.send_text(conv, "x").await {
                assert_eq!(code(e), Some(ErrorCode::RateLimited));
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 1, "6 sends against a budget of 5, whatever the shards");
    let alice = &devices[0];
    // Text over the limit: precise error, nothing stored.
    let e = alice.send_text(conv, &"x".repeat(10 * 1024 + 1)).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::TextTooLong));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_rate_limit_per_ip() {
    let s = Server::start_with(|c| c.limits.connections_per_minute_per_ip = 2);
    let (_a, _) = s.connect("alice", "advocate", Transport::Quic).await;
    let (_b, _) = s.connect("bob", "client", Transport::WebTransport).await;
    match Client::connect(s.client_config("carol", "client", Transport::Quic)).await {
        Err(ClientError::Server(e)) => {
            assert_eq!(e.code(), Some(ErrorCode::ConnectionRateLimited));
            assert_eq!(e.limit.as_deref(), Some("connections_per_minute_per_ip"));
            assert!(e.retry_after.is_some());
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_rate_limit_per_user_lets_an_office_behind_one_address_in() {
    let s = Server::start_with(|c| {
        c.limits.connections_per_minute_per_ip = 60;
        c.limits.connections_per_minute_per_user = 2;
    });
    let (_a1, _) = s.connect("alice", "advocate", Transport::Quic).await;
    let (_a2, _) = s.connect("alice", "advocate", Transport::WebTransport).await;
    match Client::connect(s.client_config("alice", "advocate", Transport::Quic)).await {
        Err(ClientError::Server(e)) => {
            assert_eq!(e.code(), Some(ErrorCode::ConnectionRateLimited));
            assert_eq!(e.limit.as_deref(), Some("connections_per_minute_per_user"));
            assert!(e.retry_after.is_some_and(|r| r > Duration::ZERO));
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    // Colleagues at the same address are not held back by alice's third try.
    for user in ["bob", "carol", "dan", "erin"] {
        Client::connect(s.client_config(user, "client", Transport::Quic)).await.expect("a colleague connects");
    }
}

/// A raw QUIC connection, below the SDK, for frames the SDK would never send.
mod raw {
    use super::*;
    use bytes::BytesMut;
    use chat_protocol::{FrameDecoder, encode_frame_to_vec};
    use prost::Message;
    use std::sync::Arc;

    pub struct Raw {
        pub send: quinn::SendStream,
        pub recv: quinn::RecvStream,
        dec: FrameDecoder,
        buf: BytesMut,
        _ep: quinn::Endpoint,
        _conn: quinn::Connection,
    }

    impl Raw {
        pub async fn connect(s: &Server, user: &str) -> Raw {
            let trust = Trust::cert_hash_hex(s.h().cert_sha256()).unwrap();
            let tls = chat_client::rustls_client_config(&trust, chat_protocol::ALPN_CHAT).unwrap();
            let qc = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
            let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
            ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(qc)));
            let conn = ep.connect(s.h().addr(), "localhost").unwrap().await.unwrap();
            let (mut send, recv) = conn.open_bi().await.unwrap();
            let token = chat_server::auth::mint_hs256(PUBLIC_DEV_SECRET, user, "", "advocate", Duration::from_secs(60));
            let hello = v1::ClientFrame {
                kind: Some(v1::client_frame::Kind::Hello(v1::Hello {
                    token,
                    protocol_version: 1,
                    ..Default::default()
                })),
            };
            send.write_all(&encode_frame_to_vec(&hello)).await.unwrap();
            let mut r = Raw { send, recv, dec: FrameDecoder::new(1 << 22), buf: BytesMut::new(), _ep: ep, _conn: conn };
            assert!(matches!(r.frame().await.kind, Some(v1::server_frame::Kind::Welcome(_))));
            r
        }

        pub async fn frame(&mut self) -> v1::ServerFrame {
            loop {
                if let Some(f) = self.dec.decode(&mut self.buf).unwrap() {
                    return v1::ServerFrame::decode(f).unwrap();
                }
                let mut chunk = [0u8; 4096];
                let n = tokio::time::timeout(WAIT, self.recv.read(&mut chunk)).await.unwrap().unwrap().unwrap();
                self.buf.extend_from_slice(&chunk[..n]);
            }
        }

        pub async fn reply(&mut self) -> v1::Reply {
            match self.frame().await.kind {
                Some(v1::server_frame::Kind::Reply(r)) => r,
                other => panic!("expected a reply, got {other:?}"),
            }
        }
    }

    pub fn command(id: u64, body: v1::command::Body) -> Vec<u8> {
        encode_frame_to_vec(&v1::ClientFrame {
            kind: Some(v1::client_frame::Kind::Command(v1::Command { id, body: Some(body) })),
        })
    }
}

fn error_of(r: &v1::Reply) -> (u64, ErrorCode) {
    match &r.result {
        Some(v1::reply::Result::Error(e)) => (r.id, ErrorCode::try_from(e.code).unwrap()),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversize_frames_get_precise_errors() {
    let s = Server::start();
    let mut r = raw::Raw::connect(&s, "alice").await;
    // Bytes that are not a ClientFrame, in a well-formed frame.
    r.send.write_all(&[3, 0xff, 0xff, 0xff]).await.unwrap();
    assert_eq!(error_of(&r.reply().await).1, ErrorCode::Malformed);
    // A command with an unknown body (field 35 of Command): id 7 answered as unknown.
    r.send.write_all(&[7, 0x12, 5, 0x08, 7, 0x9a, 0x02, 0x00]).await.unwrap();
    let reply = r.reply().await;
    assert_eq!(error_of(&reply), (7, ErrorCode::UnknownCommand));
    // An oversize frame: refused by its command id, the stream stays in step.
    let huge = v1::command::Body::SendMessage(v1::SendMessage {
        conversation_id: 1,
        client_msg_id: "x".into(),
        body: Some(v1::MessageBody { content: Some(message_body::Content::Text("y".repeat(100_000))) }),
        reply_to: 0,
        attachment_ids: Vec::new(),
    });
    r.send.write_all(&raw::command(9, huge)).await.unwrap();
    assert_eq!(error_of(&r.reply().await), (9, ErrorCode::FrameTooLarge));
    // Invalid UTF-8 in a string: a precise invalid-argument error with the id.
    let mut bad = raw::command(11, v1::command::Body::Ping(v1::Ping {}));
    bad.truncate(0);
    let send = v1::SendMessage {
        conversation_id: 5,
        client_msg_id: "ab".into(),
        body: None,
        reply_to: 0,
        attachment_ids: Vec::new(),
    };
    let mut frame = raw::command(12, v1::command::Body::SendMessage(send));
    let pos = frame.windows(2).position(|w| w == b"ab").unwrap();
    frame[pos] = 0xff;
    bad.extend_from_slice(&frame);
    r.send.write_all(&bad).await.unwrap();
    assert_eq!(error_of(&r.reply().await), (12, ErrorCode::InvalidArgument));
    // Id 0 asks for no reply: the next reply on the stream is the one for 13.
    r.send.write_all(&raw::command(0, v1::command::Body::Ping(v1::Ping {}))).await.unwrap();
    // After all that, the connection still works.
    r.send.write_all(&raw::command(13, v1::command::Body::Ping(v1::Ping {}))).await.unwrap();
    let pong = r.reply().await;
    assert_eq!(pong.id, 13);
    assert!(matches!(pong.result, Some(v1::reply::Result::Pong(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_paged_to_the_store() {
    // A tiny per-connection queue: a reader that does not keep up must be fed
    // from the store, never lose a message, never make the server buffer it all.
    let s = Server::start_with(|c| c.session.outbound_queue = 4);
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (_bob, mut b_ev) =
        Client::connect(s.client_config("bob", "client", Transport::Quic).event_buffer(4)).await.unwrap();
    let conv = create(&alice, ConversationKind::Group, "g", "", &["bob"]).await;
    let filler = "z".repeat(1000);
    // 3 MB: more than QUIC's stream window, so the server's writes block while bob sleeps.
    const N: usize = 3000;
    for chunk in 0..N / 100 {
        let texts: Vec<String> = (0..100).map(|i| format!("{} {filler}", chunk * 100 + i)).collect();
        let sends = texts.iter().map(|t| alice.send_text(conv, t));
        for r in futures_util::future::join_all(sends).await {
            r.unwrap();
        }
    }
    let got = messages(&mut b_ev, conv, N).await;
    assert_eq!(got.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=N as u64).collect::<Vec<_>>());
    assert_quiet(&mut b_ev, conv, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_devices_and_new_members_go_live() {
    let s = Server::start();
    let (phone, _p) = s.connect("alice", "advocate", Transport::Quic).await;
    let (_desk, mut desk_ev) = s.connect("alice", "advocate", Transport::WebTransport).await;
    let (_carol, mut c_ev) = s.connect("carol", "client", Transport::Quic).await;
    let conv = create(&phone, ConversationKind::Group, "g", "", &["bob"]).await;
    phone.send_text(conv, "from my phone").await.unwrap();
    let m = messages(&mut desk_ev, conv, 1).await;
    assert_eq!((m[0].seq, text(&m[0]).as_str()), (1, "from my phone"), "a user's other device gets their message");
    // Carol is added while connected: she is told, and is live from then on.
    phone.add_members(conv, vec!["carol".into()]).await.unwrap();
    let sum = next_where(&mut c_ev, |e| match e {
        Event::Conversation(s) => s.conversation,
        _ => None,
    })
    .await;
    assert_eq!((sum.id, sum.last_seq), (conv, 1));
    phone.send_text(conv, "welcome carol").await.unwrap();
    let m = messages(&mut c_ev, conv, 1).await;
    assert_eq!(
        (m[0].seq, text(&m[0]).as_str()),
        (2, "welcome carol"),
        "live after the head she joined at, no replay of history"
    );
    let h = _carol.history(conv, 0, 0, 10).await.unwrap();
    assert_eq!(h.messages.len(), 2, "earlier messages are history she may read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_store_makes_clients_resync() {
    let mut s = Server::start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, mut b_ev) = s.connect("bob", "client", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Private, "", "", &["bob"]).await;
    alice.send_text(conv, "old world").await.unwrap();
    messages(&mut b_ev, conv, 1).await;
    let old_epoch = bob.resume_state().epoch;
    // The store is wiped (e.g. restored from elsewhere): bob's cursors mean nothing now.
    let h = s.handle.take().unwrap();
    let addr = h.addr();
    tokio::task::spawn_blocking(move || h.shutdown()).await.unwrap();
    std::fs::remove_dir_all(s.cfg.data_dir.join("store")).unwrap();
    s.cfg.listen = addr;
    s.handle = Some(chat_server::start(s.cfg.clone()).unwrap());
    let reason = next_where(&mut b_ev, |e| match e {
        Event::Resync { reason } => Some(reason),
        _ => None,
    })
    .await;
    assert!(reason.contains("epoch"), "{reason}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_ne!(bob.resume_state().epoch, old_epoch, "the SDK took the new epoch");
    assert!(bob.list_conversations(Default::default()).await.unwrap().conversations.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_cut_batches_where_the_store_needs() {
    use chat_server::store::Store;
    use chat_server::store::embedded::{EmbeddedConfig, EmbeddedStore};
    // A store that refuses an append spanning two runs of 5 seqs, as ScyllaDB's
    // buckets would split it: concurrent sends must be committed in batches
    // cut at each edge, every one stored once.
    let dir = tempfile::tempdir().unwrap();
    let ecfg = EmbeddedConfig { fsync: false, append_run: Some(5), ..EmbeddedConfig::default() };
    let store = std::sync::Arc::new(Store::from(EmbeddedStore::open(&dir.path().join("store"), ecfg).unwrap()));
    let cfg = config(dir.path());
    let handle = chat_server::start_with_store(cfg.clone(), store.clone()).unwrap();
    seed_directory(&store, CAST);
    let s = Server { handle: Some(handle), cfg, _dir: Some(dir) };
    let (alice, _a_ev) = s.connect("alice", "advocate", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "runs", "", &["bob"]).await;
    const N: usize = 60;
    let sends = (0..N).map(|i| alice.send_text(conv, format!("m{i}")));
    let mut seqs: Vec<u64> =
        futures_util::future::join_all(sends).await.into_iter().map(|r| r.expect("every send is stored").seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), N, "one seq each");
    let h = alice.history(conv, 0, 0, 200).await.unwrap();
    let stored: Vec<u64> = h.messages.iter().map(|m| m.seq).collect();
    assert_eq!(stored, (1..=stored.len() as u64).collect::<Vec<_>>(), "no gaps");
    let mut texts: Vec<String> = h.messages.iter().map(text).filter(|t| t.starts_with('m')).collect();
    texts.sort_unstable();
    texts.dedup();
    assert_eq!(texts.len(), N, "each message stored once");
    // The cuts were needed: the store does refuse a call across an edge.
    let across = |seq| chat_server::store::NewMessage {
        conversation_id: 1 << 40,
        seq,
        sender_id: "x".into(),
        client_msg_id: String::new(),
        encoded: Default::default(),
        target: None,
    };
    use chat_server::store::MessageStore;
    assert!(store.append(vec![across(4), across(5)]).await.is_err());
    assert_eq!(store.append_run_limit(4), 1);
    assert_eq!(store.append_run_limit(5), 5);
}

/// Whoever a new conversation shows is a contact as soon as it is made: a
/// creator who asks who is online right after the answer is told (the
/// session's own refresh of its contacts used to come after the answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_answered_right_after_a_conversation_is_made() {
    let s = Server::start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let mut peers = Vec::new();
    for i in 0..20 {
        let name = format!("peer{i}");
        peers.push((name.clone(), s.connect(&name, "client", Transport::Quic).await));
    }
    for (name, _) in &peers {
        let conv = alice.create_conversation(ConversationKind::Group, "matter", "", vec![name.clone()]).await.unwrap();
        assert!(conv.summary.is_some());
        let seen = alice.get_presence(vec![name.clone()]).await.unwrap();
        assert!(seen.len() == 1 && seen[0].online, "{name} right after the create: {seen:?}");
    }
}
