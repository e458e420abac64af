//! Edits, deletes, reactions and replies end to end: the real server (2
//! shards) on loopback, real QUIC and WebTransport, the real Rust SDK and its
//! `MessageView`. Each test starts its own server on port 0.

mod common;
use chat_client::{Client, Event, Events, MessageView, Transport};
use chat_protocol::v1::{self, ConversationKind, ErrorCode, MessageKind, message_body};
use common::server::*;
use common::text;
use std::time::Duration;

/// The next entry (message or change) of `conv`, into `view`.
async fn entry(ev: &mut Events, conv: u64, view: &mut MessageView) -> v1::Message {
    let e = next_where(ev, |e| match &e {
        Event::Message(m) | Event::Changed(m) if m.conversation_id == conv => Some(e),
        _ => None,
    })
    .await;
    view.apply_event(&e);
    match e {
        Event::Message(m) | Event::Changed(m) => m,
        _ => unreachable!(),
    }
}

fn reactions(m: &v1::Message) -> Vec<(String, Vec<String>)> {
    m.reactions.iter().map(|r| (r.emoji.clone(), r.user_ids.clone())).collect()
}

fn err(r: Result<v1::SendMessageOk, chat_client::ClientError>) -> ErrorCode {
    code(r.expect_err("refused")).expect("a known code")
}

async fn group(s: &Server, other: Transport) -> (Client, Events, Client, Events, u64) {
    let (alice, a_ev) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, b_ev) = s.connect("bob", "client", other).await;
    let conv = create(&alice, ConversationKind::Group, "matter", "", &["bob", "carol"]).await;
    (alice, a_ev, bob, b_ev, conv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_are_seen_live_and_history_shows_the_latest_state() {
    for transport in [Transport::Quic, Transport::WebTransport] {
        let s = Server::start();
        let (alice, _a_ev, bob, mut b_ev, conv) = group(&s, transport).await;
        let mut view = MessageView::new();
        let first = alice.send_text(conv, "helo").await.unwrap().seq;
        let second = alice.send_text(conv, "to the wrong client").await.unwrap().seq;
        entry(&mut b_ev, conv, &mut view).await;
        entry(&mut b_ev, conv, &mut view).await;
        let edit = alice.edit(conv, first, "hello").await.unwrap();
        assert_eq!(edit.seq, second + 1, "an edit has a seq of its own, after the messages");
        let got = entry(&mut b_ev, conv, &mut view).await;
        assert_eq!((got.kind, got.target_seq, text(&got)), (MessageKind::Edit as i32, first, "hello".into()));
        assert_eq!(text(view.get(conv, first).unwrap()), "hello", "{transport:?}: the other member sees the edit");
        assert!(view.get(conv, first).unwrap().edited_at_ms > 0);
        alice.delete(conv, second).await.unwrap();
        let got = entry(&mut b_ev, conv, &mut view).await;
        assert_eq!((got.kind, got.target_seq), (MessageKind::Delete as i32, second));
        let shown = view.get(conv, second).unwrap();
        assert!(shown.deleted && shown.body.is_none(), "{transport:?}: shown as deleted, its text gone");
        // History: each message in its latest state, the events at their seqs.
        let h = bob.history(conv, 0, 0, 50).await.unwrap();
        let kinds: Vec<(u64, i32)> = h.messages.iter().map(|m| (m.seq, m.kind)).collect();
        let (user, ed, del) = (MessageKind::User as i32, MessageKind::Edit as i32, MessageKind::Delete as i32);
        assert_eq!(kinds, [(first, user), (second, user), (second + 1, ed), (second + 2, del)]);
        assert_eq!(text(&h.messages[0]), "hello");
        assert!(h.messages[0].edited_at_ms > 0);
        assert!(h.messages[1].deleted);
        assert_eq!((h.messages[1].body.as_ref(), h.messages[1].deleted_by.as_str()), (None, "alice"));
        // A fresh view from history alone shows the same.
        let mut fresh = MessageView::new();
        fresh.apply_history(&h);
        assert_eq!(fresh.get(conv, first), view.get(conv, first));
        assert_eq!(fresh.get(conv, second), view.get(conv, second));
    }
}

/// Deleting an edited message takes the text of its EDIT events with it:
/// history keeps the events (at their seqs, with who and when) but none of
/// the words, and a view made from history alone shows the message deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_messages_edits_keep_no_text() {
    let s = Server::start();
    let (alice, _a_ev, bob, _b_ev, conv) = group(&s, Transport::Quic).await;
    let seq = alice.send_text(conv, "the figure is 2.4").await.unwrap().seq;
    let first = alice.edit(conv, seq, "the figure is 2.5").await.unwrap().seq;
    let second = alice.edit(conv, seq, "the figure is 2.6").await.unwrap().seq;
    let before = bob.history(conv, 0, 0, 50).await.unwrap();
    assert!(format!("{before:?}").contains("2.5"), "the edits carry their text until the delete");
    alice.delete(conv, seq).await.unwrap();
    let h = bob.history(conv, 0, 0, 50).await.unwrap();
    assert!(!format!("{h:?}").contains("the figure"), "no word of it is left: {h:?}");
    let edits: Vec<_> = h.messages.iter().filter(|m| m.kind == MessageKind::Edit as i32).collect();
    assert_eq!(edits.iter().map(|m| m.seq).collect::<Vec<_>>(), [first, second], "the events stay");
    assert!(edits.iter().all(|m| m.body.is_none() && m.sender_id == "alice" && m.target_seq == seq));
    let mut fresh = MessageView::new();
    fresh.apply_history(&h);
    assert!(fresh.get(conv, seq).unwrap().deleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_toggle_with_counts_and_who() {
    let s = Server::start_with(|c| c.messages.max_reactions_per_user = 2);
    let (alice, mut a_ev, bob, _b_ev, conv) = group(&s, Transport::WebTransport).await;
    let (carol, _c_ev) = s.connect("carol", "client", Transport::Quic).await;
    let mut view = MessageView::new();
    let m = bob.send_text(conv, "settlement draft attached").await.unwrap().seq;
    entry(&mut a_ev, conv, &mut view).await;
    bob.react(conv, m, "👍", true).await.unwrap();
    carol.react(conv, m, "👍", true).await.unwrap();
    alice.react(conv, m, "🎉", true).await.unwrap();
    for _ in 0..3 {
        entry(&mut a_ev, conv, &mut view).await;
    }
    let who = |v: &MessageView| reactions(v.get(conv, m).unwrap());
    let thumbs = |users: &[&str]| ("👍".to_string(), users.iter().map(|u| u.to_string()).collect::<Vec<_>>());
    assert_eq!(who(&view), [thumbs(&["bob", "carol"]), ("🎉".into(), vec!["alice".into()])]);
    // Toggled per user: again is nothing, off takes only theirs away.
    let again = bob.react(conv, m, "👍", true).await.unwrap();
    assert!(again.duplicate && again.seq == 0, "{again:?}");
    bob.react(conv, m, "👍", false).await.unwrap();
    let off = entry(&mut a_ev, conv, &mut view).await;
    assert_eq!(off.reaction, Some(v1::ReactionChange { emoji: "👍".into(), on: false }));
    assert_eq!(who(&view), [thumbs(&["carol"]), ("🎉".into(), vec!["alice".into()])]);
    let h = alice.history(conv, 0, 0, 50).await.unwrap();
    assert_eq!(reactions(&h.messages[0]), who(&view), "history has the same summary");
    // Bounded per user, and one emoji each.
    alice.react(conv, m, "❤️", true).await.unwrap();
    let e = alice.react(conv, m, "👍", true).await.expect_err("a third reaction");
    let chat_client::ClientError::Server(w) = e else { panic!("{e:?}") };
    assert_eq!((w.code(), w.limit.as_deref()), (Some(ErrorCode::TooManyReactions), Some("max_reactions_per_user")));
    assert_eq!(err(alice.react(conv, m, "👍👍", true).await), ErrorCode::InvalidEmoji);
    assert_eq!(err(alice.react(conv, m, "ok", true).await), ErrorCode::InvalidEmoji);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_precise_and_change_nothing() {
    let s = Server::start();
    let (alice, _a_ev, bob, mut b_ev, conv) = group(&s, Transport::WebTransport).await;
    let mine = alice.send_text(conv, "privileged and confidential").await.unwrap().seq;
    let theirs = bob.send_text(conv, "thanks").await.unwrap().seq;
    assert_eq!(err(bob.edit(conv, mine, "changed").await), ErrorCode::NotYourMessage, "a non-sender's edit");
    assert_eq!(err(bob.delete(conv, mine).await), ErrorCode::NotYourMessage, "a member deleting another's");
    assert_eq!(err(alice.edit(conv, theirs, "x").await), ErrorCode::NotYourMessage, "not even the admin edits");
    assert_eq!(err(alice.edit(conv, 99, "x").await), ErrorCode::NotFound);
    // The conversation's admin (its creator) deletes another's message.
    alice.delete(conv, theirs).await.unwrap();
    assert_eq!(err(bob.edit(conv, theirs, "x").await), ErrorCode::MessageDeleted);
    assert_eq!(err(alice.react(conv, theirs, "👍", true).await), ErrorCode::MessageDeleted);
    // Replies: the target must exist in this conversation; kept as sent.
    let reply = |reply_to| v1::SendMessage {
        conversation_id: conv,
        client_msg_id: format!("reply-{reply_to}"),
        body: Some(v1::MessageBody { content: Some(message_body::Content::Text("re".into())) }),
        reply_to,
        attachment_ids: Vec::new(),
    };
    let e = bob.send(reply(500)).await.expect_err("a reply to nothing");
    let chat_client::ClientError::Server(w) = e else { panic!("{e:?}") };
    assert_eq!((w.code(), w.message.as_str()), (Some(ErrorCode::InvalidArgument), "reply_to 500 does not exist"));
    let r = bob.send(reply(mine)).await.unwrap().seq;
    let h = bob.history(conv, 0, 0, 50).await.unwrap();
    assert_eq!(h.messages.iter().find(|m| m.seq == r).unwrap().reply_to, mine);
    assert_eq!(text(&h.messages[0]), "privileged and confidential", "refused edits changed nothing");
    // Bob saw exactly: two messages, the delete, the reply.
    let mut view = MessageView::new();
    let seqs: Vec<u64> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(entry(&mut b_ev, conv, &mut view).await.seq);
        }
        v
    };
    assert_eq!(seqs, [mine, theirs, theirs + 1, r]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edit_window_closes() {
    let s = Server::start_with(|c| c.messages.edit_window_secs = 1);
    let (alice, _a_ev, _bob, _b_ev, conv) = group(&s, Transport::Quic).await;
    let m = alice.send_text(conv, "draft").await.unwrap().seq;
    alice.edit(conv, m, "draft 2").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(err(alice.edit(conv, m, "draft 3").await), ErrorCode::EditWindowClosed);
    alice.delete(conv, m).await.expect("deleting is not bound by the window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_delivers_edits_deletes_and_reactions_once_in_order() {
    let s = Server::start();
    let (alice, _a_ev, bob, mut b_ev, conv) = group(&s, Transport::Quic).await;
    let mut view = MessageView::new();
    let a = alice.send_text(conv, "one").await.unwrap().seq;
    let b = alice.send_text(conv, "two").await.unwrap().seq;
    entry(&mut b_ev, conv, &mut view).await;
    entry(&mut b_ev, conv, &mut view).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let state = bob.resume_state();
    bob.close().await;
    alice.edit(conv, a, "one, corrected").await.unwrap();
    alice.react(conv, a, "👍", true).await.unwrap();
    alice.delete(conv, b).await.unwrap();
    let c = alice.send_text(conv, "three").await.unwrap().seq;
    alice.react(conv, a, "👍", false).await.unwrap();
    let (_bob2, mut b2) =
        Client::connect(s.client_config("bob", "client", Transport::WebTransport).resume(Some(state))).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(entry(&mut b2, conv, &mut view).await);
    }
    let order: Vec<(u64, i32, u64)> = got.iter().map(|m| (m.seq, m.kind, m.target_seq)).collect();
    let k = |k: MessageKind| k as i32;
    assert_eq!(
        order,
        [
            (b + 1, k(MessageKind::Edit), a),
            (b + 2, k(MessageKind::Reaction), a),
            (b + 3, k(MessageKind::Delete), b),
            (c, k(MessageKind::User), 0),
            (c + 1, k(MessageKind::Reaction), a),
        ]
    );
    next_where(&mut b2, |e| matches!(e, Event::CaughtUp).then_some(())).await;
    let late = tokio::time::timeout(Duration::from_millis(300), entry(&mut b2, conv, &mut view)).await;
    assert!(late.is_err(), "nothing twice: {late:?}");
    let one = view.get(conv, a).unwrap();
    assert_eq!((text(one), one.reactions.len()), ("one, corrected".into(), 0));
    assert!(view.get(conv, b).unwrap().deleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_in_flight_when_the_server_restarts_are_stored_once_in_order() {
    let mut s = Server::start();
    let (alice, _a_ev, bob, mut b_ev, conv) = group(&s, Transport::WebTransport).await;
    let m = alice.send_text(conv, "draft 0").await.unwrap().seq;
    // The edits and reactions go through the outbox, like sends: a restart
    // in the middle neither fails nor doubles them.
    let changer = {
        let alice = alice.clone();
        tokio::spawn(async move {
            for i in 1..=20 {
                alice.edit(conv, m, format!("draft {i}")).await.expect("edit carried over");
                alice.react(conv, m, "👍", i % 2 == 1).await.expect("reaction carried over");
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.restart().await;
    tokio::time::timeout(Duration::from_secs(30), changer).await.unwrap().unwrap();
    let mut view = MessageView::new();
    let mut got = Vec::new();
    while got.len() < 41 {
        got.push(entry(&mut b_ev, conv, &mut view).await);
    }
    let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (m..m + 41).collect::<Vec<_>>(), "each once, in order");
    let edits: Vec<String> = got.iter().filter(|e| e.kind == MessageKind::Edit as i32).map(text).collect();
    assert_eq!(edits, (1..=20).map(|i| format!("draft {i}")).collect::<Vec<_>>());
    let h = bob.history(conv, 0, 0, 100).await.unwrap();
    let latest = h.messages.iter().find(|x| x.seq == m).unwrap();
    assert_eq!((text(latest), latest.reactions.len()), ("draft 20".into(), 0), "the last reaction took it away");
}
