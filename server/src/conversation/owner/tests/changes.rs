//! Changes at the owner: sequenced like sends with the target's new state
//! and the replaced version in the same append, building on each other while
//! in flight, and forgotten (refused, retryable) when an append fails.

use super::*;
use crate::shard::Change;

fn react(h: &mut Harness, user: &str, cmid: &str, seq: u64, stored: Option<v1::Message>) -> u32 {
    h.next += 1;
    let r = v1::React { conversation_id: CONV, seq, emoji: "👍".into(), on: true, client_msg_id: cmid.into() };
    h.owner.handle_change(h.now, user.into(), 100, Change::React(r), stored, h.next);
    h.next
}

/// Message 1 of alice as the store holds it.
fn stored_first() -> v1::Message {
    v1::Message {
        conversation_id: CONV,
        seq: 1,
        sender_id: "alice".into(),
        client_msg_id: "pre-0".into(),
        kind: v1::MessageKind::User as i32,
        server_time_ms: WALL,
        ..Default::default()
    }
}

fn latest(m: &NewMessage) -> v1::Message {
    v1::Message::decode(&m.target.as_ref().expect("an event").latest[..]).unwrap()
}

#[test]
fn changes_in_flight_build_on_each_other_and_carry_the_version_they_replace() {
    let mut h = Harness::new(0);
    h.commit_each(&["alice"]);
    let bob = react(&mut h, "bob", "r-bob", 1, Some(stored_first()));
    let out = h.out();
    assert_eq!(out.append(), [triple(2, "bob", "r-bob")]);
    // While bob's reaction is in flight, carol's builds on it (the owner's memory, not the store's).
    assert!(h.owner.cached_target(1).is_some());
    let carol = react(&mut h, "carol", "r-carol", 1, None);
    let first = &out.appends[0][0];
    let t = first.target.as_ref().unwrap();
    assert_eq!((t.seq, t.version.event_seq, t.version.changed_by.as_str()), (1, 2, "bob"));
    assert_eq!(t.version.prior, stored_first().encode_to_vec(), "the version replaced is the stored one");
    let out = h.commit(Ok(()));
    assert_eq!(out.acked(bob), (2, false));
    assert_eq!(out.appends.len(), 1);
    let who = &latest(&out.appends[0][0]).reactions[0].user_ids;
    assert_eq!(who, &["bob", "carol"]);
    assert_eq!(h.commit(Ok(())).acked(carol), (3, false));
}

#[test]
fn a_failed_append_forgets_changes_and_refuses_those_waiting() {
    let mut h = Harness::new(0);
    h.commit_each(&["alice"]);
    let bob = react(&mut h, "bob", "r-bob", 1, Some(stored_first()));
    let _ = h.out();
    let carol = react(&mut h, "carol", "r-carol", 1, None);
    let out = h.commit(Err(backend()));
    assert_eq!(out.refused(bob), ErrorCode::Unavailable);
    assert_eq!(out.refused(carol), ErrorCode::Unavailable, "it built on a change that failed");
    assert!(h.owner.cached_target(1).is_none(), "the store answers next time");
}

#[test]
fn a_change_of_a_message_that_is_not_there_is_not_found() {
    let mut h = Harness::new(0);
    h.commit_each(&["alice"]);
    let beyond = react(&mut h, "bob", "r1", 5, None);
    let missing = react(&mut h, "bob", "r2", 1, None);
    let out = h.out();
    assert_eq!((out.refused(beyond), out.refused(missing)), (ErrorCode::NotFound, ErrorCode::NotFound));
    assert!(out.appends.is_empty());
}
