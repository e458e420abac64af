//! Cluster-wide search: 3 real `chatd` nodes in this process on one shared
//! store and a real `redis-server` (the harness of `cluster.rs`,
//! `common::cluster`), clients through the real SDK over QUIC. Each node's
//! index holds only what its owners committed; a search from any node finds
//! the messages of conversations homed on every node, with the same hits and
//! the same cursors page by page, and never a conversation the caller is not
//! in. A node that does not answer makes the search fail, retryably, rather
//! than give a silently partial page.

mod common;
use chat_client::{Client, ClientError};
use chat_protocol::v1::{self, ConversationKind, ErrorCode};
use chat_server::cluster::NODES_KEY;
use chat_server::redis_server::{self, RedisServer};
use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::cluster::*;

async fn start() -> Cluster {
    let redis = RedisServer::start().unwrap();
    let url = redis.url();
    Cluster::start_on(redis, NODE_IDS.len(), |_, cfg| {
        cfg.cluster.redis_url = url.clone();
        cfg.search.commit_interval_ms = 50;
    })
    .await
}

fn q(query: &str, limit: u32, cursor: &str) -> v1::Search {
    v1::Search { query: query.into(), limit, cursor: cursor.into(), ..Default::default() }
}

/// (conversation, seq, time) of each hit of a page, and its cursor.
type Page = (Vec<(u64, u64, u64)>, String);

async fn page(c: &Client, s: v1::Search) -> Page {
    let r = c.search(s).await.expect("search");
    (r.hits.iter().map(|h| (h.conversation_id, h.seq, h.server_time_ms)).collect(), r.next_cursor)
}

/// Every page of `query` from `c`, `limit` hits at a time.
async fn all_pages(c: &Client, query: &str, limit: u32) -> Vec<Page> {
    let mut pages = Vec::new();
    let mut cursor = String::new();
    loop {
        let p = page(c, q(query, limit, &cursor)).await;
        cursor = p.1.clone();
        pages.push(p);
        if cursor.is_empty() {
            return pages;
        }
        assert!(pages.len() < 50, "paging never ends");
    }
}

/// Waits until `c`'s search for "deposition" finds `n` hits.
async fn wait_for_hits(c: &Client, n: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (hits, _) = page(c, q("deposition", 100, "")).await;
        if hits.len() == n {
            return;
        }
        let convs: HashSet<u64> = hits.iter().map(|h| h.0).collect();
        assert!(Instant::now() < deadline, "found {} of {n} hits, in {convs:?}", hits.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_finds_every_nodes_messages_with_the_same_pages() {
    let c = start().await;
    let mut alice = Vec::new();
    for node in 0..3 {
        alice.push(c.connect("alice", "advocate", node).await.0);
    }
    let (bob, _) = c.connect("bob", "advocate", 1).await;
    // One conversation of alice's homed on each node, and one she is not in.
    let mut mine = Vec::new();
    for owner in 0..3 {
        mine.push(c.create_owned_by(&alice[0], ConversationKind::Group, &["bob"], owner).await);
    }
    let not_mine = c.create_owned_by(&bob, ConversationKind::Group, &["carol"], 2).await;
    let per_conv = 4;
    for k in 0..per_conv {
        for &conv in &mine {
            alice[0].send_text(conv, &format!("deposition draft {k}")).await.unwrap();
        }
        bob.send_text(not_mine, &format!("deposition secret {k}")).await.unwrap();
    }
    let total = mine.len() * per_conv;
    // Each node's index commits on its own interval: wait until all are in,
    // bob's conversation with carol included (its last message is the last sent).
    wait_for_hits(&alice[0], total).await;
    wait_for_hits(&bob, total + per_conv).await;
    let pages: Vec<Vec<Page>> = {
        let mut v = Vec::new();
        for a in &alice {
            v.push(all_pages(a, "deposition", 5).await);
        }
        v
    };
    for (node, p) in pages.iter().enumerate().skip(1) {
        assert_eq!(p, &pages[0], "node {node} gives the pages and cursors node A gives");
    }
    let hits: Vec<(u64, u64, u64)> = pages[0].iter().flat_map(|p| p.0.clone()).collect();
    assert_eq!(pages[0].len(), total.div_ceil(5), "full pages of 5, the last one without a cursor");
    assert_eq!(hits.len(), total, "every hit once");
    let distinct: HashSet<(u64, u64)> = hits.iter().map(|h| (h.0, h.1)).collect();
    assert_eq!(distinct.len(), total);
    assert!(hits.iter().all(|h| mine.contains(&h.0)), "never a conversation alice is not in: {hits:?}");
    for conv in &mine {
        assert_eq!(
            hits.iter().filter(|h| h.0 == *conv).count(),
            per_conv,
            "conversation {conv} (owner {})",
            c.owner_of(*conv)
        );
    }
    let order: Vec<_> = hits.iter().map(|h| (h.2, h.0, h.1)).collect();
    let mut newest_first = order.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(order, newest_first, "newest first across nodes");
    // Bob, in one of them through node C, sees only his own.
    let (bob_hits, _) = page(&bob, q("deposition", 100, "")).await;
    assert_eq!(bob_hits.len(), total + per_conv, "bob is in every conversation");
    let (secret, _) = page(&alice[2], q("secret", 100, "")).await;
    assert!(secret.is_empty(), "alice never finds bob's conversation with carol: {secret:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_answer_fails_the_search_retryably() {
    let mut c = start().await;
    // A request timeout well past the search's own 2 s, so that a slow
    // machine still sees the server's answer rather than its own timeout.
    let cfg = c.client_config("alice", "advocate", 0).request_timeout(Duration::from_secs(10));
    let (alice, _) = chat_client::Client::connect(cfg).await.unwrap();
    let conv = c.create_owned_by(&alice, ConversationKind::Group, &["bob"], 0).await;
    alice.send_text(conv, "retainer agreement").await.unwrap();
    let deadline = Instant::now() + WAIT;
    while page(&alice, q("retainer", 10, "")).await.0.is_empty() {
        assert!(Instant::now() < deadline, "never indexed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Node C hangs: it stays in the live set (its entry a minute ahead) but answers nothing.
    let port = c.redis_port();
    c.kill(2).await;
    let ahead = (chat_protocol::unix_ms(std::time::SystemTime::now()) + 60_000).to_string();
    redis_server::command(port, &["ZADD", NODES_KEY, &ahead, NODE_IDS[2]]).unwrap();
    tokio::time::sleep(Duration::from_millis(4 * HEARTBEAT_MS)).await;
    let asked = Instant::now();
    let e = alice.search(q("retainer", 10, "")).await.unwrap_err();
    let took = asked.elapsed();
    let ClientError::Server(w) = e else { panic!("expected a server error, got {e:?}") };
    assert_eq!(w.code(), Some(ErrorCode::Unavailable), "{w:?}");
    assert!(w.message.contains("node-c"), "says which node: {}", w.message);
    assert!(w.retry_after.is_some(), "retryable");
    assert!(took >= Duration::from_millis(1_900) && took < Duration::from_secs(5), "after the 2 s timeout: {took:?}");
    // Once the node is out of the live set, the others answer again.
    redis_server::command(port, &["ZREM", NODES_KEY, NODE_IDS[2]]).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match alice.search(q("retainer", 10, "")).await {
            Ok(r) if r.hits.len() == 1 => break,
            other => assert!(Instant::now() < deadline, "still {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
