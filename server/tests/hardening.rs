//! Hardening: what one user or one connection can cost the server, and how
//! long a token's session lives. The real server on loopback, real clients;
//! every bound here was seen broken before its fix (see SECURITY.md).

mod common;
use chat_client::{Client, ClientError, Event, Transport};
use chat_protocol::v1::{self, ErrorCode};
use chat_protocol::v1::{ConversationKind, command};
use chat_server::config::PUBLIC_DEV_SECRET;
use common::server::*;
use std::time::Duration;

/// One user cannot hold more than `limits.max_connections_per_user`
/// connections on a node: the next is refused precisely (a reconnect-later
/// code naming the limit), and one closing makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_user_are_capped() {
    let s = Server::start_with(|c| c.limits.max_connections_per_user = 3);
    let mut held = Vec::new();
    for transport in [Transport::Quic, Transport::WebTransport, Transport::Quic] {
        held.push(s.connect("alice", "advocate", transport).await);
    }
    let e = Client::connect(s.client_config("alice", "advocate", Transport::Quic)).await.expect_err("refused");
    let ClientError::Server(w) = e else { panic!("a server error expected, got {e:?}") };
    assert_eq!(w.code(), Some(ErrorCode::ConnectionRateLimited));
    assert!(w.message.contains("more than 3 connections"), "{}", w.message);
    assert_eq!(w.limit.as_deref(), Some("max_connections_per_user"));
    // Other users are not affected.
    let (bob, _) = s.connect("bob", "client", Transport::Quic).await;
    bob.ping().await.unwrap();
    // Closing one makes room (the count drops when the server sees it go).
    let (first, _) = held.remove(0);
    first.close().await;
    let mut back = None;
    for _ in 0..50 {
        if let Ok(c) = Client::connect(s.client_config("alice", "advocate", Transport::Quic)).await {
            back = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    back.expect("a closed connection frees its place").0.ping().await.unwrap();
}

/// A session lives as long as its token: at `exp` the server says goodbye
/// with TOKEN_EXPIRED and closes, and the SDK does not reconnect with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_when_its_token_expires() {
    let s = Server::start();
    let mut cfg = s.client_config("alice", "advocate", Transport::Quic);
    cfg.token = chat_server::auth::mint_hs256(PUBLIC_DEV_SECRET, "alice", "", "advocate", Duration::from_secs(2));
    let started = std::time::Instant::now();
    let (alice, mut events) = Client::connect(cfg).await.unwrap();
    alice.ping().await.expect("usable before its expiry");
    let error = next_where(&mut events, |e| match e {
        Event::Disconnected { error, will_retry, .. } => Some((error, will_retry)),
        _ => None,
    })
    .await;
    assert_eq!(error.0.and_then(|e| e.code()), Some(ErrorCode::TokenExpired));
    assert!(!error.1, "an expired token is not retried");
    let lived = started.elapsed();
    assert!(lived >= Duration::from_millis(900) && lived < Duration::from_secs(6), "ended at exp: {lived:?}");
    assert!(alice.ping().await.is_err(), "nothing is served after the expiry");
}

/// A raw QUIC connection to `s` (ALPN `chat/1`, no SDK) and the encoded
/// `Hello` of mallory to open a session with on its control stream.
async fn raw_quic(s: &Server) -> (quinn::Endpoint, quinn::Connection, Vec<u8>) {
    use chat_protocol::v1::{self, client_frame};
    let trust = chat_client::Trust::cert_hash_hex(s.h().cert_sha256()).unwrap();
    let tls = chat_client::rustls_client_config(&trust, chat_protocol::ALPN_CHAT).unwrap();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(crypto)));
    let conn = endpoint.connect(s.h().addr(), "localhost").unwrap().await.unwrap();
    let token = chat_server::auth::mint_hs256(PUBLIC_DEV_SECRET, "mallory", "", "client", Duration::from_secs(600));
    let hello = chat_protocol::encode_frame_to_vec(&v1::ClientFrame {
        kind: Some(client_frame::Kind::Hello(v1::Hello {
            token,
            protocol_version: chat_protocol::PROTOCOL_VERSION,
            ..Default::default()
        })),
    });
    (endpoint, conn, hello)
}

/// A raw QUIC peer that opens streams and never lets the server read them
/// can make it hold at most the stream window per stream, on at most a few
/// streams (before: 1.25 MB on each of 24 streams).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_quic_streams_pin_little() {
    let s = Server::start();
    let (_endpoint, conn, hello) = raw_quic(&s).await;
    // A real session on the control stream (the server reads that one).
    let (mut control, _control_rx) = conn.open_bi().await.unwrap();
    control.write_all(&hello).await.unwrap();
    // Three more streams the server never reads; a fifth cannot be opened.
    let mut unread = Vec::new();
    for _ in 0..3 {
        unread.push(conn.open_bi().await.unwrap().0);
    }
    let fifth = tokio::time::timeout(Duration::from_millis(500), conn.open_bi()).await;
    assert!(fifth.is_err(), "a fifth bidirectional stream is not granted");
    let mut pinned = 0;
    for stream in &mut unread {
        let mut on_stream = 0;
        while on_stream < 4 << 20 {
            match tokio::time::timeout(Duration::from_millis(300), stream.write(&[0u8; 16 * 1024])).await {
                Ok(Ok(n)) => on_stream += n,
                _ => break,
            }
        }
        assert!(on_stream <= 256 * 1024, "one unread stream took {on_stream} bytes");
        pinned += on_stream;
    }
    assert!(pinned > 0 && pinned <= 1 << 20, "all unread streams together: {pinned} bytes");
    conn.close(0u32.into(), b"done");
}

/// A raw QUIC connection that pipelines large history requests and never
/// reads its control stream is closed at the write timeout with
/// SLOW_CONSUMER, a code it gets without reading a byte (before: the session
/// just ended and the connection closed with code 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quic_peer_that_never_reads_replies_is_told_it_is_a_slow_consumer() {
    use chat_protocol::v1;
    let s = Server::start_with(|c| c.session.write_timeout_ms = 2_000);
    let (alice, _) = s.connect("alice", "advocate", Transport::Quic).await;
    let members = vec!["mallory".to_string()];
    let created = alice.create_conversation(ConversationKind::Group, "big", "", members).await.unwrap();
    let conv = created.summary.and_then(|s| s.conversation).map(|c| c.id).unwrap();
    // Pages of 2 MB: more than the client's stream window (1.25 MB) takes.
    let big = "x".repeat(10 * 1024 - 16);
    for i in 0..200 {
        alice.send_text(conv, &format!("{i} {big}")).await.unwrap();
    }
    let (_endpoint, conn, mut bytes) = raw_quic(&s).await;
    for id in 1..=16u64 {
        let page =
            command::Body::GetHistory(v1::GetHistory { conversation_id: conv, limit: 200, ..Default::default() });
        bytes.extend(common::web::command_frame(id, page));
    }
    let (mut control, _never_read) = conn.open_bi().await.unwrap();
    control.write_all(&bytes).await.unwrap();
    let asked = std::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(15), conn.closed()).await.expect("closed in time");
    let quinn::ConnectionError::ApplicationClosed(close) = closed else { panic!("closed by the server: {closed:?}") };
    assert_eq!(close.error_code, quinn::VarInt::from(ErrorCode::SlowConsumer as u32), "{close:?}");
    assert!(asked.elapsed() >= Duration::from_millis(1_900), "at the write timeout: {:?}", asked.elapsed());
    // Others are served as before.
    alice.ping().await.unwrap();
}

/// What a client can repeat is limited, each limit answered precisely (which
/// limit, when to retry) with the connection still usable: new conversations
/// per user per hour, typing changes, conversations named by receipts and
/// users asked about by presence queries per connection per minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_a_client_repeats_is_limited() {
    let s = Server::start_with(|c| {
        c.limits.conversations_per_hour = 3;
        c.limits.typing_per_minute = 2;
        c.limits.receipt_ids_per_minute = 3;
        c.limits.presence_ids_per_minute = 4;
    });
    let (alice, _) = s.connect("alice", "advocate", Transport::Quic).await;
    let limited = |e: ClientError, limit: &str| {
        let ClientError::Server(w) = e else { panic!("a server error expected, got {e:?}") };
        assert_eq!((w.code(), w.limit.as_deref()), (Some(ErrorCode::RateLimited), Some(limit)), "{}", w.message);
        assert!(w.retry_after.is_some(), "says when to retry");
    };
    let mut convs = Vec::new();
    for peer in ["bob", "carol", "dave"] {
        convs.push(create(&alice, ConversationKind::Private, "", "", &[peer]).await);
    }
    let fourth = alice.create_conversation(ConversationKind::Group, "one more", "", vec!["erin".into()]).await;
    limited(fourth.unwrap_err(), "conversations_per_hour");
    // Counted per user: another device of alice is refused too; bob is not.
    let (alice2, _) = s.connect("alice", "advocate", Transport::WebTransport).await;
    let again = alice2.create_conversation(ConversationKind::Private, "", "", vec!["frank".into()]).await;
    limited(again.unwrap_err(), "conversations_per_hour");
    let (bob, _) = s.connect("bob", "client", Transport::Quic).await;
    create(&bob, ConversationKind::Private, "", "", &["erin"]).await;

    alice.set_typing(convs[0], true).await.unwrap();
    alice.set_typing(convs[0], false).await.unwrap();
    limited(alice.set_typing(convs[0], true).await.unwrap_err(), "typing_per_minute");

    for conv in &convs {
        alice.mark_read(*conv, 0).await.unwrap();
    }
    limited(alice.mark_read(convs[0], 0).await.unwrap_err(), "receipt_ids_per_minute");

    let who = ["bob", "carol", "dave"].map(String::from).to_vec();
    alice.get_presence(who.clone()).await.unwrap();
    limited(alice.get_presence(who).await.unwrap_err(), "presence_ids_per_minute");
    // And the connection is still usable.
    alice.send_text(convs[1], "still here").await.unwrap();
}

/// One address holding thousands of idle keep-alive HTTP connections cannot
/// starve the web endpoint: past `web.max_connections_per_ip` its
/// connections are closed at accept, and everyone else is served (before:
/// 2,100 idle connections made every new HTTP and WebSocket connection fail).
/// The server closes an idle keep-alive connection after
/// `session.handshake_timeout_ms` (hyper's header read timeout), which frees
/// its slot: on a loaded machine the flood outlasts the default 10 s and
/// more than the cap would be served over time, though never at once. The
/// test counts connections held at once, so it keeps them all open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_flood_from_one_address_starves_no_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start_with(|c| {
        c.web.max_connections_per_ip = 16;
        c.session.handshake_timeout_ms = 600_000;
    });
    let web = s.h().web_addr().unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {web}\r\n\r\n");
    let mut flood = Vec::new();
    let mut answered = 0;
    for _ in 0..2_100 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let Ok(mut tcp) = socket.connect(web).await else { continue };
        if tcp.write_all(request.as_bytes()).await.is_err() {
            continue;
        }
        let mut buf = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await
            && buf[..n].starts_with(b"HTTP/1.1 200")
        {
            answered += 1;
            flood.push(tcp); // kept open, idle (keep-alive)
        }
    }
    // 16 per shard, 2 shards.
    assert!(answered <= 32, "{answered} connections of one address were served at once");
    assert!(answered > 0, "the address itself is not banned");
    // Someone else: plain HTTP and a WebSocket session.
    let mut tcp = tokio::net::TcpStream::connect(web).await.unwrap();
    tcp.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {web}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut out)).await.expect("served in time").unwrap();
    assert!(out.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&out));
    let (_ws, welcome) = common::web::Ws::connect(web, "alice").await;
    assert_eq!(welcome.user.unwrap().id, "alice");
    drop(flood);
}

/// Anyone can open a private conversation with anyone: that must not reveal
/// whether the other person is online until they accept it (read or write
/// in it). The one who opened it is visible at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_does_not_see_presence_until_accepted() {
    let s = Server::start();
    let (alice, mut a_ev) = s.connect("alice", "client", Transport::Quic).await;
    let (mallory, mut m_ev) = s.connect("mallory", "advocate", Transport::Quic).await;
    let conv = create(&mallory, ConversationKind::Private, "", "", &["alice"]).await;
    let asked = || mallory.get_presence(vec!["alice".into()]);
    assert!(asked().await.unwrap().is_empty(), "alice never answered mallory");
    // Alice sees mallory (who opened it) once the conversation reaches her.
    next_where(&mut a_ev, |e| matches!(e, Event::Conversation(_)).then_some(())).await;
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = alice.get_presence(vec!["mallory".into()]).await.unwrap();
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.len() == 1 && seen[0].online, "the opener is visible: {seen:?}");
    // Mallory writes; alice's device receives it (her SDK says so), which
    // mallory is not told: neither a delivered receipt nor in the members.
    mallory.send_text(conv, "are you there?").await.unwrap();
    next_where(&mut a_ev, |e| matches!(e, Event::Message(m) if m.seq == 1).then_some(())).await;
    alice.mark_delivered(conv, 1).await.unwrap();
    let told = tokio::time::timeout(Duration::from_millis(1_500), async {
        next_where(&mut m_ev, |e| match e {
            Event::Receipt(r) if r.user_id == "alice" => Some(r),
            _ => None,
        })
        .await
    })
    .await;
    assert!(told.is_err(), "no receipt of alice's device: {told:?}");
    let delivered = |members: chat_protocol::v1::Members| {
        members.members.iter().find(|m| m.user_id == "alice").map(|m| m.delivered_seq)
    };
    assert_eq!(delivered(mallory.get_members(conv).await.unwrap()), Some(0), "members show nothing either");
    assert_eq!(delivered(alice.get_members(conv).await.unwrap()), Some(1), "alice sees her own");
    // Once alice answers, mallory sees her at once, and asks about her too.
    alice.send_text(conv, "hello?").await.unwrap();
    let shown = next_where(&mut m_ev, |e| match e {
        Event::Presence(p) if p.user_id == "alice" => Some(p.online),
        _ => None,
    })
    .await;
    assert!(shown, "alice is shown online once she wrote");
    let p = asked().await.unwrap();
    assert!(p.len() == 1 && p[0].online, "after alice wrote: {p:?}");
    // And when she leaves, mallory sees that too.
    alice.close().await;
    let gone = next_where(&mut m_ev, |e| match e {
        Event::Presence(p) if p.user_id == "alice" => Some(p.online),
        _ => None,
    })
    .await;
    assert!(!gone, "alice is shown offline when she leaves");
}

/// No existence oracle: private ids follow from the pair, so anyone can
/// compute the id of "alice and bob". Every command a non-member sends about
/// it gets exactly the answer it gets about a pair that never talked (the id
/// aside), so nobody learns who talks privately with whom.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_tells_an_existing_conversation_from_an_absent_one() {
    use chat_protocol::v1::{self as p, command::Body as B};
    let s = Server::start();
    let (alice, _) = s.connect("alice", "advocate", Transport::Quic).await;
    let pair = create(&alice, ConversationKind::Private, "", "", &["bob"]).await;
    alice.send_text(pair, "privileged").await.unwrap();
    let absent = chat_server::command::conversations::private_id("alice", "zed", false);
    let web = s.h().web_addr().unwrap();
    let (mut eve, _) = common::web::Ws::connect(web, "eve").await;
    let commands = |c: u64| {
        let text = Some(p::MessageBody { content: Some(p::message_body::Content::Text("hi".into())) });
        vec![
            B::SendMessage(p::SendMessage {
                conversation_id: c,
                client_msg_id: "m1".into(),
                body: text,
                reply_to: 0,
                attachment_ids: Vec::new(),
            }),
            B::GetHistory(p::GetHistory { conversation_id: c, limit: 10, ..Default::default() }),
            B::GetConversation(p::GetConversation { conversation_id: c }),
            B::GetMembers(p::GetMembers { conversation_id: c }),
            B::JoinConversation(p::JoinConversation { conversation_id: c }),
            B::LeaveConversation(p::LeaveConversation { conversation_id: c }),
            B::AddMembers(p::AddMembers { conversation_id: c, user_ids: vec!["eve".into()] }),
            B::RemoveMember(p::RemoveMember { conversation_id: c, user_id: "bob".into() }),
            B::SetMemberRole(p::SetMemberRole { conversation_id: c, user_id: "eve".into(), role: 3 }),
            B::ArchiveConversation(p::ArchiveConversation { conversation_id: c, unarchive: false }),
            B::MarkRead(p::MarkRead { conversation_id: c, seq: 1 }),
            B::MarkDelivered(p::MarkDelivered { conversation_id: c, seq: 1, more: Vec::new() }),
            B::SetTyping(p::SetTyping { conversation_id: c, typing: true }),
        ]
    };
    for (existing, missing) in commands(pair).into_iter().zip(commands(absent)) {
        let what = format!("{existing:?}").split('(').next().unwrap_or_default().to_string();
        let a = eve.request(existing).await;
        let b = eve.request(missing).await;
        let bytes = |r: &p::reply::Result, id: u64| {
            let r = p::Reply { id: 0, result: Some(r.clone()) };
            String::from_utf8_lossy(&prost::Message::encode_to_vec(&r)).replace(&id.to_string(), "N")
        };
        assert_eq!(bytes(&a, pair), bytes(&b, absent), "{what}: {a:?} / {b:?}");
        if what != "SetTyping" {
            assert!(
                matches!(a, p::reply::Result::Error(ref e) if e.code == ErrorCode::NotFound as i32),
                "{what}: {a:?}"
            );
        }
    }
}

/// However many support requests wait, one answer to staff holds at most 100
/// (before: 100,000 waiting made an 8.6 MB answer, over the frame limit the
/// SDKs accept), read a page at a time from the store's queue order: the pages
/// hold every request once, oldest first; a bad cursor is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_support_queue_answers_a_page() {
    let s = Server::start_with(|c| c.limits.conversations_per_hour = 1_000);
    let (client, _) = s.connect("clara", "client", Transport::Quic).await;
    let mut opened = Vec::new();
    for _ in 0..101 {
        opened.push(create(&client, ConversationKind::Support, "help", "", &[]).await);
    }
    let (staff, _) = s.connect("sam", "admin", Transport::Quic).await;
    let first = staff.support_queue(v1::ListSupportQueue { limit: 1_000, page: String::new() }).await.unwrap();
    assert_eq!(first.conversations.len(), 100, "capped at 100");
    assert!(!first.next.is_empty(), "more are waiting");
    let mut seen = Vec::new();
    let mut page = String::new();
    loop {
        let got = staff.support_queue(v1::ListSupportQueue { limit: 7, page }).await.unwrap();
        assert!(got.conversations.len() <= 7);
        seen.extend(got.conversations.iter().filter_map(|c| c.conversation.as_ref()).map(|c| (c.created_at_ms, c.id)));
        if got.next.is_empty() {
            break;
        }
        page = got.next;
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "oldest first");
    let mut ids: Vec<u64> = seen.iter().map(|(_, id)| *id).collect();
    ids.sort();
    opened.sort();
    assert_eq!(ids, opened, "every waiting request once");
    let bad = staff.support_queue(v1::ListSupportQueue { limit: 1, page: "12".into() }).await.unwrap_err();
    let ClientError::Server(w) = bad else { panic!("a server error expected") };
    assert_eq!(w.code(), Some(ErrorCode::InvalidArgument));
}

/// A user's conversations page in the store, most recently active first: the
/// pages of any size hold each conversation once, in order; writing in the
/// oldest one moves it to the top (within the owner's flush, a second); a
/// filter that matches little still answers (a short page and a cursor)
/// without reading the whole list; a bad cursor is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_lists_page_in_the_store() {
    let s = Server::start_with(|c| c.limits.conversations_per_hour = 10_000);
    let peers: Vec<String> = (0..40).map(|i| format!("peer{i}")).collect();
    seed_directory(s.h().store(), &peers.iter().map(String::as_str).collect::<Vec<_>>());
    let (alice, _) = s.connect("alice", "advocate", Transport::Quic).await;
    let mut made = Vec::new();
    for i in 0..40 {
        let peer = format!("peer{i}");
        let kind = if i == 7 { ConversationKind::Case } else { ConversationKind::Group };
        let case = if i == 7 { "case-7" } else { "" };
        made.push(create(&alice, kind, "matter", case, &[peer.as_str()]).await);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let walk = |limit: u32, case_id: &'static str| {
        let alice = &alice;
        async move {
            let mut out = Vec::new();
            let mut page = String::new();
            loop {
                let q = v1::ListConversations { limit, page, case_id: case_id.into(), ..Default::default() };
                let got = alice.list_conversations(q).await.unwrap();
                assert!(got.conversations.len() <= limit as usize);
                out.extend(got.conversations.iter().filter_map(|c| c.conversation.as_ref()).map(|c| c.id));
                if got.next.is_empty() {
                    return out;
                }
                page = got.next;
            }
        }
    };
    let newest_first: Vec<u64> = made.iter().rev().copied().collect();
    for limit in [1, 3, 50] {
        assert_eq!(walk(limit, "").await, newest_first, "pages of {limit}");
    }
    assert_eq!(walk(2, "case-7").await, [made[7]], "a filter");
    // Writing in the oldest moves it to the top once the owner stores its activity.
    alice.send_text(made[0], "news").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while walk(50, "").await.first() != Some(&made[0]) {
        assert!(std::time::Instant::now() < deadline, "the conversation written in moves up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bad = v1::ListConversations { page: "abc".into(), ..Default::default() };
    let ClientError::Server(w) = alice.list_conversations(bad).await.unwrap_err() else { panic!("a server error") };
    assert_eq!(w.code(), Some(ErrorCode::InvalidArgument));
}
