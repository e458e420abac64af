//! The web endpoint against the real server (2 shards, both listeners on port
//! 0): the embedded app and its headers, `/config.json`, WebSocket sessions
//! (the same frames as QUIC, chatting with a Rust SDK user over QUIC), the
//! precise errors on bad input, and the browser-origin policy of WebSocket and
//! WebTransport alike.

mod common;
use bytes::BytesMut;
use chat_client::{Client, ClientConfig, Event, Events, Trust};
use chat_protocol::v1::{self, ConversationKind, ErrorCode, command, push, reply, server_frame};
use chat_protocol::{FrameDecoder, encode_frame_to_vec};
use chat_server::config::{Config, PUBLIC_DEV_SECRET};
use common::web::*;
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, Message};

struct Server {
    handle: Option<chat_server::ServerHandle>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start_with(f: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            shards: 2,
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        cfg.web.listen = "127.0.0.1:0".parse().unwrap();
        cfg.auth.hs256_secret = PUBLIC_DEV_SECRET.into();
        cfg.limits.connections_per_minute_per_ip = 10_000;
        cfg.limits.connections_per_minute_per_user = 10_000;
        cfg.limits.messages_per_minute = 10_000;
        cfg.limits.conversations_per_hour = 10_000;
        f(&mut cfg);
        let handle = chat_server::start(cfg).unwrap();
        Server { handle: Some(handle), _dir: dir }
    }

    fn start() -> Self {
        Self::start_with(|_| {})
    }

    fn h(&self) -> &chat_server::ServerHandle {
        self.handle.as_ref().unwrap()
    }

    fn web(&self) -> SocketAddr {
        self.h().web_addr().expect("the web endpoint is on")
    }

    async fn quic_client(&self, user: &str) -> (Client, Events) {
        let trust = Trust::cert_hash_hex(self.h().cert_sha256()).unwrap();
        Client::connect(ClientConfig::new(self.h().addr().to_string(), token(user), trust)).await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_files_are_served_with_security_headers() {
    let s = Server::start();
    let web = s.web();
    let host = web.to_string();
    let index = http(web, "GET", "/", &host).await;
    assert_eq!(index.status, 200);
    index.assert_secure("text/html; charset=utf-8");
    assert_eq!(index.body, include_bytes!("../../client-sdk/web/dist/index.html"));
    let js = http(web, "GET", "/app.js", &host).await;
    assert_eq!(js.status, 200);
    js.assert_secure("text/javascript; charset=utf-8");
    assert_eq!(js.body, include_bytes!("../../client-sdk/web/dist/app.js"));
    let css = http(web, "GET", "/app.css", &host).await;
    assert_eq!(css.status, 200);
    css.assert_secure("text/css; charset=utf-8");
    assert_eq!(css.body, include_bytes!("../../client-sdk/web/dist/app.css"));
    let health = http(web, "GET", "/healthz", &host).await;
    assert_eq!((health.status, health.body.as_slice()), (200, &b"ok\n"[..]));
    health.assert_secure("text/plain; charset=utf-8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_methods_and_head() {
    let s = Server::start();
    let web = s.web();
    let host = web.to_string();
    for path in ["/nope", "/index.html", "/app.js/", "/../server/Cargo.toml", "/dist/app.js"] {
        let r = http(web, "GET", path, &host).await;
        assert_eq!(r.status, 404, "{path}");
        r.assert_secure("text/plain; charset=utf-8");
    }
    // HEAD: the same head as GET, no body.
    let get = http(web, "GET", "/app.js", &host).await;
    let head = http(web, "HEAD", "/app.js", &host).await;
    assert_eq!(head.status, 200);
    head.assert_secure("text/javascript; charset=utf-8");
    assert!(head.body.is_empty(), "HEAD has no body");
    assert_eq!(head.header("content-length"), Some(get.body.len().to_string().as_str()));
    // Anything but GET/HEAD is refused, saying what is allowed.
    for (method, path) in [("POST", "/"), ("POST", "/config.json"), ("PUT", "/app.js"), ("DELETE", "/healthz")] {
        let r = http(web, method, path, &host).await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        r.assert_secure("text/plain; charset=utf-8");
    }
    let r = http(web, "POST", "/ws", &host).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    // /ws without an upgrade.
    let r = http(web, "GET", "/ws", &host).await;
    assert_eq!((r.status, r.header("upgrade")), (426, Some("websocket")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_json_says_where_to_connect() {
    let s = Server::start();
    let web = s.web();
    let quic = s.h().addr().port();
    for (host, wt_host) in [
        (web.to_string(), "127.0.0.1".to_string()),
        (format!("localhost:{}", web.port()), "localhost".into()),
        (format!("[::1]:{}", web.port()), "[::1]".into()),
    ] {
        let r = http(web, "GET", "/config.json", &host).await;
        assert_eq!(r.status, 200);
        r.assert_secure("application/json");
        // The page may connect to exactly what it is told to connect to.
        let csp = r.header("content-security-policy").unwrap();
        assert!(csp.ends_with(&format!("connect-src 'self' ws://{host} https://{wt_host}:{quic}")), "{csp}");
        assert_eq!(r.header("strict-transport-security"), None, "no HSTS over plain HTTP");
        let c: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(c["webtransport_url"], format!("https://{wt_host}:{quic}/chat"));
        assert_eq!(c["websocket_url"], format!("ws://{host}/ws"));
        assert_eq!(c["cert_hashes"], serde_json::json!([s.h().cert_sha256()]));
        assert_eq!(c["version"], env!("CARGO_PKG_VERSION"));
    }
    let r = http(web, "GET", "/config.json", "evil\"host").await;
    assert_eq!(r.status, 400, "a Host that is not a host name is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_hello_gets_welcome_and_a_forged_token_a_precise_error() {
    let s = Server::start();
    let (mut ws, welcome) = Ws::connect(s.web(), "alice").await;
    assert_eq!(welcome.user.unwrap().id, "alice");
    assert_eq!(welcome.epoch, s.h().epoch());
    ws.ping().await;
    // A client's close is answered with a close (a clean closing handshake).
    ws.ws.close(None).await.unwrap();
    let answer = tokio::time::timeout(WAIT, async {
        loop {
            match ws.ws.next().await {
                Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => {}
                _ => return false,
            }
        }
    })
    .await
    .expect("an answer in time");
    assert!(answer, "the server answers a close frame with one");

    // A token signed with another secret.
    let forged =
        chat_server::auth::mint_hs256("not-the-secret", "mallory", "Mallory", "admin", Duration::from_secs(600));
    let mut raw = ws_open(s.web(), None).await.unwrap();
    raw.send(Message::Binary(encode_frame_to_vec(&hello(&forged)).into())).await.unwrap();
    let mut saw_error = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, raw.next()).await.expect("an answer in time") {
            Some(Ok(Message::Binary(b))) => {
                let mut buf = BytesMut::from(&b[..]);
                let f = FrameDecoder::new(usize::MAX).decode(&mut buf).unwrap().unwrap();
                match v1::ServerFrame::decode(f).unwrap().kind {
                    Some(server_frame::Kind::Reply(v1::Reply { result: Some(reply::Result::Error(e)), .. })) => {
                        assert_eq!(e.code, ErrorCode::Unauthenticated as i32);
                        assert!(e.message.contains("signature"), "{}", e.message);
                        saw_error = true;
                    }
                    other => panic!("expected an error reply, got {other:?}"),
                }
            }
            Some(Ok(Message::Close(Some(c)))) => {
                assert!(saw_error, "the error frame comes before the close");
                // UNAUTHENTICATED (4000) in the application range: 4000 + 4 * 100 + 0.
                assert_eq!(u16::from(c.code), 4400);
                assert_eq!(chat_server::transport::ws_close_code(ErrorCode::Unauthenticated as u32), 4400);
                break;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected the error then a close, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_quic_users_chat_both_ways_in_order() {
    let s = Server::start();
    let (mut alice, _) = Ws::connect(s.web(), "alice").await;
    let (bob, mut bob_events) = s.quic_client("bob").await;
    let created = alice
        .request(command::Body::CreateConversation(v1::CreateConversation {
            kind: ConversationKind::Private as i32,
            members: vec!["bob".into()],
            ..Default::default()
        }))
        .await;
    let conv = match created {
        reply::Result::Conversation(ok) => ok.summary.unwrap().conversation.unwrap().id,
        other => panic!("expected a conversation, got {other:?}"),
    };
    assert_eq!(conv, chat_server::command::conversations::private_id("alice", "bob", false));
    const N: u64 = 20;
    // Alice (WebSocket) → Bob (QUIC): pipelined sends, acks in order.
    let ids: Vec<u64> = (0..N).map(|i| 100 + i).collect();
    for (i, id) in ids.iter().enumerate() {
        let m = v1::SendMessage {
            conversation_id: conv,
            client_msg_id: format!("ws-{i}"),
            body: text_body(&format!("from alice {i}")),
            reply_to: 0,
            attachment_ids: Vec::new(),
        };
        alice.send_bytes(command_frame(*id, command::Body::SendMessage(m))).await;
    }
    for (i, id) in ids.iter().enumerate() {
        match alice.reply(*id).await {
            reply::Result::SendMessage(ok) => assert_eq!(ok.seq, i as u64 + 1),
            other => panic!("expected an ack, got {other:?}"),
        }
    }
    for i in 0..N {
        let m = tokio::time::timeout(WAIT, async {
            loop {
                if let Some(Event::Message(m)) = bob_events.next().await
                    && m.conversation_id == conv
                {
                    return m;
                }
            }
        })
        .await
        .expect("bob gets alice's message");
        assert_eq!((m.seq, text_of(&m), m.sender_id.as_str()), (i + 1, format!("from alice {i}").as_str(), "alice"));
    }
    // Bob (QUIC) → Alice (WebSocket).
    for i in 0..N {
        let ok = bob.send_text(conv, &format!("from bob {i}")).await.unwrap();
        assert_eq!(ok.seq, N + i + 1);
    }
    for i in 0..N {
        // Her own messages may come back too: a session that fell behind its
        // fan-out queue is filled from the store, which does not know which
        // connection sent what (the SDK drops what it was acked). Bob's
        // follow, in order.
        let m = loop {
            let m = alice.message(conv).await;
            if !(m.seq <= N && m.sender_id == "alice") {
                break m;
            }
        };
        assert_eq!((m.seq, text_of(&m), m.sender_id.as_str()), (N + i + 1, format!("from bob {i}").as_str(), "bob"));
    }
    // Typing travels as an ordinary frame (QUIC would use a datagram).
    bob.set_typing(conv, true).await.unwrap();
    let typing = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(i) = alice.pushes.iter().position(|e| matches!(e, push::Event::Typing(_))) {
                return alice.pushes.remove(i);
            }
            for f in alice.frames().await {
                if let Some(server_frame::Kind::Push(v1::Push { event: Some(e) })) = f.kind {
                    alice.pushes.push(e);
                }
            }
        }
    })
    .await
    .expect("typing reaches the websocket");
    assert!(matches!(typing, push::Event::Typing(t) if t.user_id == "bob" && t.typing && t.conversation_id == conv));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_over_websocket_gets_precise_errors_and_the_connection_stays() {
    let s = Server::start();
    let (mut ws, _) = Ws::connect(s.web(), "alice").await;
    // A whole frame whose bytes are not a ClientFrame.
    ws.send_bytes(vec![3, 0xff, 0xff, 0xff]).await;
    let e = error_of(ws.reply(0).await);
    assert_eq!(e.code, ErrorCode::Malformed as i32);
    assert!(e.message.contains("does not decode"), "{}", e.message);
    ws.ping().await;

    // A text message is not a frame.
    ws.ws.send(Message::Text("hello".into())).await.unwrap();
    let e = error_of(ws.reply(0).await);
    assert_eq!(e.code, ErrorCode::Malformed as i32);
    assert!(e.message.contains("text WebSocket message"), "{}", e.message);
    ws.ping().await;

    // An oversize frame: the decoder's precise error with the command id, not a closed socket.
    let big = v1::SendMessage {
        conversation_id: 1,
        client_msg_id: "big".into(),
        body: text_body(&"x".repeat(70 * 1024)),
        reply_to: 0,
        attachment_ids: Vec::new(),
    };
    ws.send_bytes(command_frame(77, command::Body::SendMessage(big))).await;
    let e = error_of(ws.reply(77).await);
    assert_eq!(e.code, ErrorCode::FrameTooLarge as i32);
    ws.ping().await;

    // A frame split over several messages is one frame.
    let ping = command_frame(900, command::Body::Ping(v1::Ping::default()));
    let (a, b) = ping.split_at(2);
    ws.send_bytes(a.to_vec()).await;
    ws.send_bytes(b.to_vec()).await;
    assert!(matches!(ws.reply(900).await, reply::Result::Pong(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_bad_frames_close_the_websocket_as_a_violation() {
    let s = Server::start_with(|c| c.limits.bad_frames_per_minute = 2);
    let (mut ws, _) = Ws::connect(s.web(), "alice").await;
    for _ in 0..3 {
        let _ = ws.ws.send(Message::Text("no".into())).await;
    }
    let code = tokio::time::timeout(WAIT, async {
        loop {
            match ws.ws.next().await {
                Some(Ok(Message::Close(Some(c)))) => return u16::from(c.code),
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(code, 4302, "PROTOCOL_VIOLATION (3002)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_origins_are_checked() {
    let s = Server::start_with(|c| c.web.allowed_origins = vec!["https://app.firm.example".into()]);
    let web = s.web();
    for foreign in ["https://evil.example", "null", "http://localhost:1"] {
        match ws_open(web, Some(foreign)).await {
            Err(tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 403, "{foreign}");
                let body = String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).to_string();
                assert!(body.contains("may not open sessions"), "{body}");
            }
            other => panic!("origin {foreign} must be refused, got {:?}", other.map(|_| "a socket")),
        }
    }
    let own = format!("http://localhost:{}", web.port());
    for allowed in [Some(own.as_str()), Some("https://app.firm.example"), None] {
        let mut ws = ws_open(web, allowed).await.unwrap_or_else(|e| panic!("{allowed:?} is allowed: {e}"));
        ws.send(Message::Binary(encode_frame_to_vec(&hello(&token("alice"))).into())).await.unwrap();
        let Some(Ok(Message::Binary(_))) = tokio::time::timeout(WAIT, ws.next()).await.unwrap() else {
            panic!("welcome expected");
        };
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webtransport_origins_are_checked() {
    let s = Server::start();
    let trust = Trust::cert_hash_hex(s.h().cert_sha256()).unwrap();
    let connect = |origin: String| {
        let tls = chat_client::rustls_client_config(&trust, wtransport::tls::WEBTRANSPORT_ALPN).unwrap();
        let url = format!("https://127.0.0.1:{}/chat", s.h().addr().port());
        async move {
            let config = wtransport::ClientConfig::builder().with_bind_default().with_custom_tls(tls).build();
            let endpoint = wtransport::Endpoint::client(config).unwrap();
            let opts = wtransport::endpoint::ConnectOptions::builder(url).add_header("origin", origin).build();
            tokio::time::timeout(WAIT, endpoint.connect(opts)).await.expect("an answer in time")
        }
    };
    match connect("https://evil.example".into()).await {
        Err(wtransport::error::ConnectingError::SessionRejected) => {}
        other => panic!("a foreign origin must be refused, got {:?}", other.map(|_| "a session")),
    }
    connect(format!("http://127.0.0.1:{}", s.web().port())).await.expect("the app's own origin is allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_says_goodbye_over_websocket_and_closes_the_listener() {
    let mut s = Server::start();
    let web = s.web();
    let (mut ws, _) = Ws::connect(web, "alice").await;
    let h = s.handle.take().unwrap();
    let stop = tokio::task::spawn_blocking(move || h.shutdown());
    let goodbye = tokio::time::timeout(WAIT, async {
        loop {
            for f in ws.frames().await {
                if let Some(server_frame::Kind::Push(v1::Push { event: Some(push::Event::Goodbye(g)) })) = f.kind {
                    return g;
                }
            }
        }
    })
    .await
    .expect("goodbye in time");
    assert_eq!(goodbye.error.unwrap().code, ErrorCode::ShuttingDown as i32);
    let close = tokio::time::timeout(WAIT, async {
        loop {
            match ws.ws.next().await {
                Some(Ok(Message::Close(c))) => return c.map(|c| u16::from(c.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(close, Some(4300), "SHUTTING_DOWN (3000)");
    stop.await.unwrap();
    assert!(tokio::net::TcpStream::connect(web).await.is_err(), "the web listener is closed");
}

#[test]
fn token_prints_a_sign_in_link_on_stderr() {
    // `chatd token` makes its data directory's dev secret: a fresh one, not ./data.
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args(["token", "--user", "alice"])
        .env("CHAT_WEB__LISTEN", "127.0.0.1:8181")
        .env("CHAT_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let token = token.trim_end();
    assert!(!token.is_empty() && !token.contains(char::is_whitespace), "stdout is the token alone: {token:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(&format!("http://127.0.0.1:8181/#token={token}")), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_certificate_means_https_and_wss() {
    // A certificate that is not the dev one: configured by path, so served as a real one.
    let certs = tempfile::tempdir().unwrap();
    let id = chat_server::tls::dev_identity(certs.path(), &[], std::time::SystemTime::now()).unwrap();
    let (cert, key) = (certs.path().join("dev-cert.pem"), certs.path().join("dev-key.pem"));
    let s = Server::start_with(|c| {
        c.tls.cert = Some(cert);
        c.tls.key = Some(key);
    });
    assert!(!s.h().dev_cert());
    assert_eq!(s.h().web_url(), Some(format!("https://{}/", s.web())));
    let trust = Trust::cert_hash_hex(&id.sha256_hex()).unwrap();
    let tls = std::sync::Arc::new(chat_client::rustls_client_config(&trust, b"http/1.1").unwrap());
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(s.web()).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp).await.expect("a TLS handshake")
    };

    // Plain HTTP gets nothing.
    let mut plain = tokio::net::TcpStream::connect(s.web()).await.unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut out)).await.expect("closed in time");
    assert!(!out.starts_with(b"HTTP/1.1 200"), "no plain HTTP next to HTTPS");

    let mut https = connect().await;
    let host = format!("localhost:{}", s.web().port());
    https
        .write_all(format!("GET /config.json HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, https.read_to_end(&mut out)).await.expect("an answer in time").unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("strict-transport-security: max-age=31536000\r\n"), "HSTS over HTTPS: {out}");
    assert!(out.contains(&format!("connect-src 'self' wss://{host} https://localhost:")), "{out}");
    let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
    let c: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(c["websocket_url"], format!("wss://{host}/ws"));
    assert_eq!(c["webtransport_url"], format!("https://localhost:{}/chat", s.h().addr().port()));
    assert_eq!(c["cert_hashes"], serde_json::json!([]), "a real certificate is not pinned");

    let (mut wss, _) = tokio_tungstenite::client_async(format!("wss://{host}/ws"), connect().await).await.unwrap();
    wss.send(Message::Binary(encode_frame_to_vec(&hello(&token("alice"))).into())).await.unwrap();
    let Some(Ok(Message::Binary(b))) = tokio::time::timeout(WAIT, wss.next()).await.unwrap() else {
        panic!("welcome expected");
    };
    let mut buf = BytesMut::from(&b[..]);
    let f = FrameDecoder::new(usize::MAX).decode(&mut buf).unwrap().unwrap();
    assert!(matches!(v1::ServerFrame::decode(f).unwrap().kind, Some(server_frame::Kind::Welcome(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_that_does_not_read_is_closed_as_a_slow_consumer() {
    let s = Server::start_with(|c| {
        c.session.write_timeout_ms = 300;
        c.store.fsync = false;
    });
    // Alice's socket takes almost nothing into its receive buffer and she never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(s.web()).await.unwrap();
    let (mut alice, _) = tokio_tungstenite::client_async(format!("ws://{}/ws", s.web()), tcp).await.unwrap();
    alice.send(Message::Binary(encode_frame_to_vec(&hello(&token("alice"))).into())).await.unwrap();
    let (bob, _bob_events) = s.quic_client("bob").await;
    let conv = bob.create_conversation(ConversationKind::Private, "", "", vec!["alice".into()]).await.unwrap();
    let conv = conv.summary.unwrap().conversation.unwrap().id;
    // Several MB: more than the kernel's buffers and the server's bounded queue hold.
    let line = "y".repeat(9000);
    const SENT: usize = 800;
    for _ in 0..SENT {
        bob.send_text(conv, &line).await.unwrap();
    }
    // Longer than the write timeout and the 1 s close grace after it: the
    // server's writes to Alice are blocked all that time.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Now read: what was buffered arrives, then the socket ends (no endless stream).
    let mut received = 0;
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match alice.next().await {
                Some(Ok(Message::Binary(b))) => received += b.len(),
                Some(Ok(Message::Close(c))) => return format!("close {:?}", c.map(|c| u16::from(c.code))),
                Some(Ok(_)) => {}
                Some(Err(e)) => return format!("error {e}"),
                None => return "end".into(),
            }
        }
    })
    .await
    .expect("the slow reader was disconnected");
    assert!(received < SENT * 9000, "{received} bytes arrived before the disconnect ({ended})");
    // Reset, not closed: a closed socket keeps what the server could not send
    // queued in the kernel (here ~2.8 MB, all of which then reached Alice) for
    // as long as Alice's kernel answers probes. A reset drops it.
    assert!(ended.contains("Connection reset by peer"), "the stuck socket is reset: {ended}");
    assert!(received < 256 << 10, "the server's kernel queue was dropped, not delivered: {received} bytes");
    // The server is fine: Bob still chats, and Alice can come back.
    bob.send_text(conv, "still here").await.unwrap();
    let (mut again, _) = Ws::connect(s.web(), "alice").await;
    again.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_connections_count_against_the_per_ip_rate() {
    let s = Server::start_with(|c| c.limits.connections_per_minute_per_ip = 2);
    let (_a, _) = Ws::connect(s.web(), "alice").await;
    let (_b, _) = Ws::connect(s.web(), "bob").await;
    // The third from this address in the minute: a precise refusal, then a close.
    let mut ws = ws_open(s.web(), None).await.unwrap();
    ws.send(Message::Binary(encode_frame_to_vec(&hello(&token("carol"))).into())).await.unwrap();
    let Some(Ok(Message::Binary(b))) = tokio::time::timeout(WAIT, ws.next()).await.unwrap() else {
        panic!("an error frame expected");
    };
    let mut buf = BytesMut::from(&b[..]);
    let f = FrameDecoder::new(usize::MAX).decode(&mut buf).unwrap().unwrap();
    let Some(server_frame::Kind::Reply(v1::Reply { result: Some(reply::Result::Error(e)), .. })) =
        v1::ServerFrame::decode(f).unwrap().kind
    else {
        panic!("an error reply expected");
    };
    assert_eq!(e.code, ErrorCode::ConnectionRateLimited as i32);
    assert!(e.retry_after_ms > 0);
    let close = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(c))) => return c.map(|c| u16::from(c.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(close, Some(4304), "CONNECTION_RATE_LIMITED (3004)");
}
