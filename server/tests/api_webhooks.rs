//! Event webhooks end to end: a receiver started by the test (a real HTTP
//! server on loopback) subscribed through the API gets signed events of the
//! service account's case conversations, retried after a refusal, filtered
//! by case and kind, with content only when asked; a forged body fails the
//! signature check a receiver makes.

mod common;

use chat_client::Transport;
use chat_server::notify::{EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use chat_server::store::service_accounts::Scope;
use common::api::{call, create_account};
use common::server::Server;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// One request the receiver got: its headers and body.
struct Got {
    event: String,
    timestamp: u64,
    signature: String,
    body: bytes::Bytes,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A webhook receiver on loopback that answers 503 to its first request
/// (so the sender retries) and 200 after; its URL and what it got.
async fn receiver() -> (String, mpsc::Receiver<Got>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/chatd-events", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel(100);
    let seen = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (tx, seen) = (tx.clone(), seen.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (tx, seen) = (tx.clone(), seen.clone());
                    async move {
                        let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                        let (event, ts, signature) = (h(EVENT_HEADER), h(TIMESTAMP_HEADER), h(SIGNATURE_HEADER));
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let first = seen.fetch_add(1, Ordering::SeqCst) == 0;
                        let _ = tx.send(Got { event, timestamp: ts.parse().unwrap_or(0), signature, body }).await;
                        let status = if first { 503 } else { 200 };
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder().status(status).body(Full::new(bytes::Bytes::new())).unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
    (url, rx)
}

async fn next(rx: &mut mpsc::Receiver<Got>) -> Got {
    tokio::time::timeout(Duration::from_secs(15), rx.recv()).await.expect("an event in time").expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_get_signed_events_of_their_cases() {
    // The receiver listens on plain http on loopback.
    let s = Server::start_with(|c| {
        c.api.webhook_allow_http = true;
        c.api.webhook_allow_private = true;
    });
    let web = s.h().web_addr().unwrap();
    let cms = create_account(&s.cfg.data_dir, "cms", &[Scope::Read, Scope::Write]).await;
    let (url, mut got) = receiver().await;
    let (other_url, mut other) = receiver().await;

    let r = call(
        web,
        Some(&cms),
        "POST",
        "/cases/C-9/conversations",
        Some(json!({"title": "t", "members": ["alice", "bob"]})),
    )
    .await;
    let conv: u64 = r.json["conversation"]["id"].as_str().unwrap().parse().unwrap();
    let all =
        json!(["message.posted", "member.added", "member.removed", "conversation.archived", "attachment.uploaded"]);
    let sub = json!({"url": url, "events": all, "case_ids": ["C-9"]});
    let r = call(web, Some(&cms), "POST", "/webhooks", Some(sub)).await;
    assert_eq!(r.status, 201, "{}", r.json);
    let secret = r.json["secret"].as_str().unwrap().to_string();
    let hook_id = r.json["id"].as_str().unwrap().to_string();
    let r = call(
        web,
        Some(&cms),
        "POST",
        "/webhooks",
        Some(json!({"url": other_url, "events": all, "case_ids": ["OTHER"], "include_content": true})),
    )
    .await;
    assert_eq!(r.status, 201);
    let listed = call(web, Some(&cms), "GET", "/webhooks", None).await;
    assert_eq!(listed.json["webhooks"].as_array().unwrap().len(), 2);
    assert!(listed.json["webhooks"][0].get("secret").is_none(), "the secret is shown once");

    // A person's message: signed, retried after the 503, no text (not asked for).
    let (alice, _ev) = s.connect("alice", "advocate", Transport::Quic).await;
    let sent = alice.send_text(conv, "our privileged strategy").await.unwrap();
    let first = next(&mut got).await;
    let retry = next(&mut got).await;
    assert_eq!(first.json()["id"], retry.json()["id"], "a retry is the same delivery");
    let ev = retry.json();
    assert_eq!((retry.event.as_str(), ev["event"].as_str()), ("message.posted", Some("message.posted")));
    assert_eq!(
        (ev["conversation_id"].as_str(), ev["case_id"].as_str()),
        (Some(conv.to_string().as_str()), Some("C-9"))
    );
    assert_eq!((ev["actor"].as_str(), ev["details"]["seq"].as_u64()), (Some("alice"), Some(sent.seq)));
    assert!(ev["details"].get("text").is_none(), "content only when asked: {ev}");
    assert!(!String::from_utf8_lossy(&retry.body).contains("privileged"));
    assert_eq!(ev["webhook_id"].as_str(), Some(hook_id.as_str()));
    // The receiver checks the signature; a forged body fails it.
    assert_eq!(retry.signature, sign(secret.as_bytes(), retry.timestamp, &retry.body));
    let forged: Vec<u8> = retry.body.iter().map(|&b| if b == b'9' { b'8' } else { b }).collect();
    assert_ne!(retry.signature, sign(secret.as_bytes(), retry.timestamp, &forged));
    assert_ne!(retry.signature, sign(b"another secret", retry.timestamp, &retry.body));

    // A file, then a member leaving: each its event, in order.
    let att = alice.upload_bytes(conv, "brief.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n").await.unwrap();
    let up = next(&mut got).await.json();
    assert_eq!(
        (up["event"].as_str(), up["details"]["sha256"].as_str()),
        (Some("attachment.uploaded"), Some(att.sha256.as_str()))
    );
    let (bob, _bev) = s.connect("bob", "client", Transport::Quic).await;
    bob.leave(conv).await.unwrap();
    let left = next(&mut got).await.json();
    assert_eq!((left["event"].as_str(), left["details"]["user_id"].as_str()), (Some("member.removed"), Some("bob")));

    // The account's own doings are not echoed; another case's webhook got nothing.
    let posted = json!({"client_msg_id": "s1", "text": "from the system"});
    assert_eq!(
        call(web, Some(&cms), "POST", &format!("/conversations/{conv}/messages"), Some(posted)).await.status,
        201
    );
    alice.send_text(conv, "last").await.unwrap();
    let last = next(&mut got).await.json();
    assert_eq!(last["actor"], "alice", "the system message of the account itself was skipped: {last}");
    assert!(other.try_recv().is_err(), "the webhook of case OTHER was told nothing");

    // Unsubscribed: nothing more comes.
    let r = call(web, Some(&cms), "DELETE", &format!("/webhooks/{hook_id}"), None).await;
    assert_eq!(r.status, 200, "{}", r.json);
    call(web, Some(&cms), "DELETE", &format!("/webhooks/{hook_id}"), None)
        .await
        .assert_problem(404, "ERROR_CODE_NOT_FOUND");
    alice.send_text(conv, "after").await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(700), got.recv()).await.is_err(), "unsubscribed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_subscriptions_are_refused() {
    let s = Server::start();
    let web = s.h().web_addr().unwrap();
    let cms = create_account(&s.cfg.data_dir, "cms", &[Scope::Read]).await;
    let bad = |b: Value| call(web, Some(&cms), "POST", "/webhooks", Some(b));
    bad(json!({"url": "ftp://x/y", "events": ["message.posted"]}))
        .await
        .assert_problem(400, "ERROR_CODE_INVALID_ARGUMENT");
    bad(json!({"url": "https://x/y", "events": []})).await.assert_problem(400, "ERROR_CODE_INVALID_ARGUMENT");
    bad(json!({"url": "https://x/y", "events": ["message.read"]})).await.assert_problem(400, "ERROR_CODE_MALFORMED");
    bad(json!({"url": "https://x/y", "events": ["member.added"], "case_ids": [""]}))
        .await
        .assert_problem(400, "ERROR_CODE_INVALID_ARGUMENT");
    for _ in 0..10 {
        assert_eq!(bad(json!({"url": "https://x/y", "events": ["member.added"]})).await.status, 201);
    }
    let r = bad(json!({"url": "https://x/y", "events": ["member.added"]})).await;
    r.assert_problem(400, "ERROR_CODE_INVALID_ARGUMENT");
    assert!(r.json["detail"].as_str().unwrap().contains("at most 10"));
}

/// A receiver whose name resolves inside the network gets nothing unless
/// `api.webhook_allow_private` is set: the name is resolved at delivery and
/// every address checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_resolves_inside_the_network_is_not_posted_to() {
    let s = Server::start_with(|c| c.api.webhook_allow_http = true);
    let web = s.h().web_addr().unwrap();
    let cms = create_account(&s.cfg.data_dir, "cms", &[Scope::Read, Scope::Write]).await;
    let (url, mut got) = receiver().await;
    let by_name = url.replace("127.0.0.1", "localhost");
    let r =
        call(web, Some(&cms), "POST", "/cases/C-1/conversations", Some(json!({"title": "t", "members": ["alice"]})))
            .await;
    let conv: u64 = r.json["conversation"]["id"].as_str().unwrap().parse().unwrap();
    let r =
        call(web, Some(&cms), "POST", "/webhooks", Some(json!({"url": by_name, "events": ["message.posted"]}))).await;
    assert_eq!(r.status, 201, "a name is checked when it is resolved: {}", r.json);
    let (alice, _ev) = s.connect("alice", "advocate", Transport::Quic).await;
    alice.send_text(conv, "privileged").await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(1_500), got.recv()).await.is_err(),
        "nothing posted to localhost"
    );
}
