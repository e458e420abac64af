//! Memory a server holds for connections that never read, measured as this
//! process's resident memory: alone in its test binary, because every other
//! test in a process (they run in parallel) moves the same figure (in
//! `hardening.rs`, beside a QUIC peer pipelining history pages, it read 65
//! MiB on a loaded CI run against 42-46 MiB alone).

mod common;
use chat_client::Transport;
use chat_protocol::v1::{ConversationKind, command};
use common::server::*;
use std::time::Duration;

/// Resident memory of this process (the server runs in it), bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// WebSocket clients that pipeline hundreds of large history requests and
/// never read their answers cannot make the server hold them: answers are
/// made a few at a time per connection and queued bounded in bytes (before:
/// ~136 MiB held per connection, for 30 s). Other users are served meanwhile,
/// and the hoarders are closed as slow consumers at the write timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_read_cannot_hoard_answers() {
    let s = Server::start_with(|c| c.session.write_timeout_ms = 3_000);
    let (alice, _) = s.connect("alice", "advocate", Transport::Quic).await;
    let members = ["mallory", "bob"].map(String::from).to_vec();
    let created = alice.create_conversation(ConversationKind::Group, "big", "", members).await.unwrap();
    let conv = created.summary.and_then(|s| s.conversation).map(|c| c.id).unwrap();
    let big = "x".repeat(10 * 1024 - 16);
    for i in 0..200 {
        alice.send_text(conv, &format!("{i} {big}")).await.unwrap();
    }
    let (bob, _) = s.connect("bob", "client", Transport::Quic).await;
    let before = rss();
    let web = s.h().web_addr().unwrap();
    let mut hoarders = Vec::new();
    for _ in 0..4 {
        let (mut ws, _) = common::web::Ws::connect(web, "mallory").await;
        for id in 1..=256u64 {
            let page = command::Body::GetHistory(chat_protocol::v1::GetHistory {
                conversation_id: conv,
                limit: 200,
                ..Default::default()
            });
            ws.send_bytes(common::web::command_frame(id, page)).await;
        }
        hoarders.push(ws);
    }
    // While they hoard: others are served, and memory stays put.
    let mut peak = 0;
    for _ in 0..20 {
        tokio::time::timeout(Duration::from_secs(2), bob.ping()).await.expect("bob is served in time").unwrap();
        peak = peak.max(rss().saturating_sub(before));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(peak < 64 << 20, "4 hoarding connections grew the server by {} MiB", peak >> 20);
    // At the write timeout they are closed as slow consumers.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for mut ws in hoarders {
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            use futures_util::StreamExt;
            loop {
                match ws.ws.next().await {
                    None | Some(Err(_)) => return None,
                    Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
        .expect("the hoarder is closed");
        assert!(closed.is_none() || closed == Some(4301), "closed as a slow consumer: {closed:?}");
    }
}
