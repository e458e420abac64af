//! Full-text search end to end: the real server on loopback (port 0, fresh
//! data directory, its real tantivy index), real QUIC and WebTransport, the
//! real Rust SDK. The index follows commits within `search.commit_interval_ms`,
//! so the tests wait until a search shows what they expect (or time out).

mod common;
use chat_client::{Client, Transport};
use chat_protocol::v1::{self, ConversationKind, ErrorCode};
use common::server::*;
use std::time::{Duration, Instant};

fn start() -> Server {
    Server::start_with(|c| c.search.commit_interval_ms = 50)
}

fn q(query: &str) -> v1::Search {
    v1::Search { query: query.into(), ..Default::default() }
}

/// (conversation, seq) of each hit of one page.
async fn hits(c: &Client, s: v1::Search) -> Vec<(u64, u64)> {
    c.search(s).await.expect("search").hits.iter().map(|h| (h.conversation_id, h.seq)).collect()
}

/// Searches until the hits are `want` (the index commits on an interval).
async fn eventually(c: &Client, s: v1::Search, want: &[(u64, u64)]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = hits(c, s.clone()).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "search {:?}: got {got:?}, want {want:?}", s.query);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_word_finds_its_message_with_a_highlighted_snippet() {
    let s = start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::WebTransport).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["bob"]).await;
    let text = "The Deposition of Mr. Smith moved to Monday";
    let sent = alice.send_text(conv, text).await.unwrap();
    alice.send_text(conv, "unrelated line").await.unwrap();
    for c in [&bob, &alice] {
        eventually(c, q("deposition"), &[(conv, sent.seq)]).await;
        let page = c.search(q("deposition")).await.unwrap();
        let h = &page.hits[0];
        assert_eq!((h.sender_id.as_str(), h.server_time_ms), ("alice", sent.server_time_ms));
        let marked: Vec<&str> = h.highlights.iter().map(|r| &h.snippet[r.start as usize..r.end as usize]).collect();
        assert_eq!(marked, ["Deposition"], "snippet {:?}", h.snippet);
        let body = h.message.as_ref().and_then(|m| m.body.clone()).and_then(|b| b.content);
        assert_eq!(body, Some(v1::message_body::Content::Text(text.into())));
        assert!(page.next_cursor.is_empty(), "one hit, no next page");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_see_hits_and_a_removed_member_stops_seeing_them() {
    let s = start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::WebTransport).await;
    let (carol, _c) = s.connect("carol", "advocate", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "matter", "", &["bob"]).await;
    let mine = create(&carol, ConversationKind::Group, "carol's", "", &["dave"]).await;
    let m = alice.send_text(conv, "privileged strategy memo").await.unwrap();
    let c = carol.send_text(mine, "privileged note of carol").await.unwrap();
    eventually(&alice, q("privileged"), &[(conv, m.seq)]).await;
    eventually(&carol, q("privileged"), &[(mine, c.seq)]).await;
    // Naming a conversation one is not in is refused like a missing one.
    let e = carol.search(v1::Search { conversation_id: conv, ..q("privileged") }).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::NotFound));

    eventually(&bob, q("privileged"), &[(conv, m.seq)]).await;
    alice.remove_member(conv, "bob").await.unwrap();
    assert_eq!(hits(&bob, q("privileged")).await, [], "membership is checked when searching");
    assert_eq!(hits(&bob, q("strategy")).await, []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_reindexes_and_a_delete_leaves_the_index() {
    let s = start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::WebTransport).await;
    let conv = create(&alice, ConversationKind::Group, "matter", "", &["bob"]).await;
    let m = alice.send_text(conv, "hearing on tuesday").await.unwrap();
    let other = alice.send_text(conv, "draft the retainer").await.unwrap();
    eventually(&alice, q("tuesday"), &[(conv, m.seq)]).await;
    alice.edit(conv, m.seq, "hearing on thursday").await.unwrap();
    alice.react(conv, m.seq, "👍", true).await.unwrap();
    eventually(&alice, q("thursday"), &[(conv, m.seq)]).await;
    assert_eq!(hits(&alice, q("tuesday")).await, [], "the old word no longer matches");
    eventually(&alice, q("hearing"), &[(conv, m.seq)]).await;

    alice.delete(conv, other.seq).await.unwrap();
    eventually(&alice, q("retainer"), &[]).await;
    let all = hits(&alice, v1::Search { conversation_id: conv, ..q("") }).await;
    assert_eq!(all, [(conv, m.seq)], "only the edited message is left; events are not hits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_filter_narrows_the_hits() {
    let s = start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::WebTransport).await;
    let case = create(&alice, ConversationKind::Case, "Smith v. Jones", "CASE-7", &["bob"]).await;
    let group = create(&alice, ConversationKind::Group, "firm", "", &["bob"]).await;
    let a1 = alice.send_text(case, "invoice for March").await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let b1 = bob.send_text(case, "invoice received").await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let g1 = alice.send_text(group, "invoice template").await.unwrap();
    let all = [(group, g1.seq), (case, b1.seq), (case, a1.seq)];
    eventually(&alice, q("invoice"), &all).await;

    let f = |s: v1::Search| v1::Search { query: "invoice".into(), ..s };
    let d = v1::Search::default;
    assert_eq!(hits(&alice, f(v1::Search { conversation_id: case, ..d() })).await, [all[1], all[2]]);
    assert_eq!(hits(&alice, f(v1::Search { sender_id: "bob".into(), ..d() })).await, [all[1]]);
    assert_eq!(hits(&alice, f(v1::Search { from_ms: b1.server_time_ms, ..d() })).await, [all[0], all[1]]);
    assert_eq!(hits(&alice, f(v1::Search { to_ms: b1.server_time_ms, ..d() })).await, [all[2]]);
    assert_eq!(hits(&alice, f(v1::Search { case_id: "CASE-7".into(), ..d() })).await, [all[1], all[2]]);
    assert_eq!(hits(&alice, f(v1::Search { case_id: "CASE-8".into(), ..d() })).await, []);
    let kind = ConversationKind::Group as i32;
    assert_eq!(hits(&bob, f(v1::Search { kind, ..d() })).await, [all[0]]);
    // Attachments: by having one, and by its (sniffed) type.
    let mut doc = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    doc.extend_from_slice(b"trailer << /Root 1 0 R >>\n%%EOF\n");
    let att = alice.upload_bytes(case, "invoice.pdf", "application/pdf", &doc).await.unwrap();
    let a2 = alice.send_with_attachments(case, "invoice attached", vec![att.attachment_id]).await.unwrap();
    eventually(&alice, v1::Search { has_attachment: true, ..q("invoice") }, &[(case, a2.seq)]).await;
    let pdf = v1::Search { attachment_type: "application/pdf".into(), ..d() };
    assert_eq!(hits(&alice, f(pdf)).await, [(case, a2.seq)]);
    let png = v1::Search { attachment_type: "image/png".into(), ..d() };
    assert_eq!(hits(&alice, f(png)).await, []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_returns_every_hit_once_newest_first() {
    let s = start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::WebTransport).await;
    let (bob, _b) = s.connect("bob", "client", Transport::Quic).await;
    let one = create(&alice, ConversationKind::Group, "one", "", &["bob"]).await;
    let two = create(&alice, ConversationKind::Group, "two", "", &["bob"]).await;
    let mut sent = Vec::new();
    for i in 0..23u64 {
        let conv = if i % 2 == 0 { one } else { two };
        let ok = alice.send_text(conv, format!("memo number {i}")).await.unwrap();
        sent.push((ok.server_time_ms, conv, ok.seq));
    }
    sent.sort_by(|a, b| b.cmp(a));
    let want: Vec<(u64, u64)> = sent.iter().map(|(_, c, s)| (*c, *s)).collect();
    let wait_all = v1::Search { limit: 100, ..q("memo") };
    eventually(&bob, wait_all, &want).await;

    let mut got = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = bob.search(v1::Search { limit: 5, cursor: cursor.clone(), ..q("memo") }).await.unwrap();
        assert!(page.hits.len() <= 5);
        got.extend(page.hits.iter().map(|h| (h.conversation_id, h.seq)));
        assert!(got.len() <= want.len(), "more hits than messages: {got:?}");
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    assert_eq!(got, want, "every hit once, newest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_search_input_gets_a_precise_error() {
    let s = start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::WebTransport).await;
    let conv = create(&alice, ConversationKind::Group, "matter", "", &["bob"]).await;
    alice.send_text(conv, "still works").await.unwrap();
    for c in [&alice, &bob] {
        let e = c.search(q("body:(")).await.unwrap_err();
        assert_eq!(code(e), Some(ErrorCode::SearchQueryMalformed));
        let e = c.search(q(&"word ".repeat(300))).await.unwrap_err();
        assert_eq!(code(e), Some(ErrorCode::SearchQueryMalformed));
        let e = c.search(v1::Search { limit: 101, ..q("works") }).await.unwrap_err();
        assert_eq!(code(e), Some(ErrorCode::SearchLimitOutOfRange));
        let e = c.search(v1::Search { cursor: "not a cursor".into(), ..q("works") }).await.unwrap_err();
        assert_eq!(code(e), Some(ErrorCode::SearchCursorInvalid));
        let e = c.search(v1::Search { from_ms: 10, to_ms: 5, ..q("works") }).await.unwrap_err();
        assert_eq!(code(e), Some(ErrorCode::InvalidArgument));
        // The connection stays usable and the index too.
        eventually(c, q("works"), &[(conv, 1)]).await;
    }
    // A cursor of one query is refused for another.
    let two = alice.send_text(conv, "works again").await.unwrap();
    eventually(&alice, q("works"), &[(conv, two.seq), (conv, 1)]).await;
    let page = alice.search(v1::Search { limit: 1, ..q("works") }).await.unwrap();
    assert!(!page.next_cursor.is_empty());
    let e = alice.search(v1::Search { cursor: page.next_cursor, ..q("again") }).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::SearchCursorInvalid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_turned_off_says_so() {
    let s = Server::start_with(|c| c.search.enabled = false);
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let e = alice.search(q("anything")).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::SearchDisabled));
    assert!(!s.cfg.data_dir.join("search").exists(), "no index is made");
}
