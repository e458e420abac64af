//! Offline notifications end to end: the real server, real clients over
//! QUIC and WebTransport, and a real HTTP receiver (hyper) started by the
//! test on port 0. A member with no connected device gets one signed POST
//! without the message's content; a connected one gets none; a receiver
//! that refuses is tried again.

mod common;
use bytes::Bytes;
use chat_protocol::v1::ConversationKind;
use common::server::*;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const SECRET: &str = "a-webhook-secret-of-at-least-32-bytes!";

/// One request the receiver got: when, its headers of interest, its body.
#[derive(Debug)]
struct Hook {
    at: Instant,
    timestamp: String,
    signature: String,
    body: serde_json::Value,
    raw: Bytes,
}

/// An HTTP receiver on 127.0.0.1:0 that refuses its first `refuse` requests
/// with 503; its URL and what it received.
async fn receiver(refuse: usize) -> (String, mpsc::UnboundedReceiver<Hook>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/chat", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    let seen = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (tx, seen) = (tx.clone(), seen.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (tx, seen) = (tx.clone(), seen.clone());
                    async move {
                        let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                        let (timestamp, signature) = (h("x-chatd-timestamp"), h("x-chatd-signature"));
                        assert_eq!(req.uri().path(), "/hooks/chat");
                        let raw = req.into_body().collect().await.unwrap().to_bytes();
                        let body = serde_json::from_slice(&raw).unwrap();
                        let _ = tx.send(Hook { at: Instant::now(), timestamp, signature, body, raw });
                        let status = if seen.fetch_add(1, Ordering::SeqCst) < refuse { 503 } else { 200 };
                        let resp = hyper::Response::builder().status(status).body(Full::new(Bytes::new())).unwrap();
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
    (url, rx)
}

fn server(url: &str) -> Server {
    let url = url.to_string();
    Server::start_with(move |c| {
        c.notify.webhook_url = url;
        c.notify.secret = SECRET.into();
    })
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Hook>) -> Hook {
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("a notification in time").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_member_gets_one_signed_notification_without_content() {
    let (url, mut hooks) = receiver(0).await;
    let s = server(&url);
    let (alice, _a) = s.connect("alice", "advocate", chat_client::Transport::Quic).await;
    let (_carol, _c) = s.connect("carol", "client", chat_client::Transport::WebTransport).await;
    // Bob is a member with no device connected; carol is online.
    let conv = create(&alice, ConversationKind::Group, "matter", "", &["bob", "carol"]).await;
    alice.send_text(conv, "the privileged advice").await.unwrap();
    alice.send_text(conv, "and a second line").await.unwrap();
    let hook = next(&mut hooks).await;
    let b = &hook.body;
    assert_eq!(b["event"], "message");
    assert_eq!(b["recipient_id"], "bob");
    assert_eq!(b["conversation_id"], conv);
    assert_eq!(b["sender_id"], "alice");
    assert_eq!(b["sender_name"], "alice name");
    assert_eq!(b["unread"], 1);
    assert!(!String::from_utf8_lossy(&hook.raw).contains("privileged"), "no content by default: {b}");
    // The receiver can check who sent it: HMAC-SHA256 over "timestamp.body".
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let signed = [hook.timestamp.as_bytes(), b".", &hook.raw].concat();
    let mac = hex::decode(hook.signature.strip_prefix("v1=").expect("v1 signature")).unwrap();
    ring::hmac::verify(&key, &signed, &mac).expect("a valid signature");
    let age = chat_protocol::unix_ms(std::time::SystemTime::now()) / 1000 - hook.timestamp.parse::<u64>().unwrap();
    assert!(age < 30, "a fresh timestamp");
    // Nothing for carol (online), nothing more for bob (debounced).
    let more = tokio::time::timeout(Duration::from_millis(1_500), hooks.recv()).await;
    assert!(more.is_err(), "one notification only: {more:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_receiver_is_tried_again_with_backoff() {
    let (url, mut hooks) = receiver(2).await;
    let s = server(&url);
    let (alice, _a) = s.connect("alice", "advocate", chat_client::Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Private, "", "", &["bob"]).await;
    alice.send_text(conv, "hello").await.unwrap();
    let tries = [next(&mut hooks).await, next(&mut hooks).await, next(&mut hooks).await];
    assert!(tries.iter().all(|h| h.body["recipient_id"] == "bob" && h.body["seq"] == tries[0].body["seq"]));
    let gaps = [tries[1].at - tries[0].at, tries[2].at - tries[1].at];
    assert!(gaps[0] >= Duration::from_millis(900), "about 1 s before the second try: {gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(1_900), "about 2 s before the third: {gaps:?}");
    let more = tokio::time::timeout(Duration::from_millis(2_500), hooks.recv()).await;
    assert!(more.is_err(), "accepted on the third try, not sent again: {more:?}");
}

#[test]
fn a_webhook_without_a_strong_secret_is_refused_at_start() {
    let mut cfg = chat_server::config::Config::default();
    cfg.notify.webhook_url = "http://127.0.0.1:9/hook".into();
    cfg.notify.secret = "short".into();
    let e = cfg.check().expect_err("refused");
    assert!(e.to_string().contains("notify: secret must be at least 32 bytes"), "{e}");
}
