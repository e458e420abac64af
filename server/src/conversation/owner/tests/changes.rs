//! Changes at the owner: sequenced like sends with the target's new state
//! and the replaced version in the same append, building on each other while
//! in flight, and forgotten (refused, retryable) when an append fails.

use super::*;
use crate::shard::Change;

/// A reaction of `user` to `seq`; returns its reply id.
fn react(h: &mut Harness, user: &str, cmid: &str, seq: u64) -> u32 {
    h.next += 1;
    let r = v1::React { conversation_id: CONV, seq, emoji: "👍".into(), on: true, client_msg_id: cmid.into() };
    h.owner.handle_change(h.now, user.into(), 100, Change::React(r), h.next);
    h.next
}

/// The owner asked the store for `seq`, and it answers `stored`.
fn read_answers(h: &mut Harness, seq: u64, stored: Option<v1::Message>) -> Out {
    assert_eq!(h.out().target_reads, [seq], "the owner reads the target");
    h.owner.handle_target(h.now, seq, Ok(stored));
    h.out()
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
    let bob = react(&mut h, "bob", "r-bob", 1);
    let out = read_answers(&mut h, 1, Some(stored_first()));
    assert_eq!(out.append(), [triple(2, "bob", "r-bob")]);
    // While bob's reaction is in flight, carol's builds on it (the owner's memory, not the store's).
    assert!(h.owner.cached_target(1).is_some());
    let carol = react(&mut h, "carol", "r-carol", 1);
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
    let bob = react(&mut h, "bob", "r-bob", 1);
    let _ = read_answers(&mut h, 1, Some(stored_first()));
    let carol = react(&mut h, "carol", "r-carol", 1);
    let out = h.commit(Err(backend()));
    assert_eq!(out.refused(bob), ErrorCode::Unavailable);
    assert_eq!(out.refused(carol), ErrorCode::Unavailable, "it built on a change that failed");
    assert!(h.owner.cached_target(1).is_none(), "the store answers next time");
}

#[test]
fn a_change_of_a_message_that_is_not_there_is_not_found() {
    let mut h = Harness::new(0);
    h.commit_each(&["alice"]);
    let beyond = react(&mut h, "bob", "r1", 5);
    let missing = react(&mut h, "bob", "r2", 1);
    let out = h.out();
    assert_eq!(out.refused(beyond), ErrorCode::NotFound, "beyond the head: no read needed");
    h.owner.handle_target(h.now, 1, Ok(None));
    let out = h.out();
    assert_eq!(out.refused(missing), ErrorCode::NotFound);
    assert!(out.appends.is_empty());
}

#[test]
fn sends_go_on_while_a_target_is_read_and_changes_of_it_wait_in_order() {
    let mut h = Harness::new(0);
    h.commit_each(&["alice"]);
    let bob = react(&mut h, "bob", "r-bob", 1);
    let carol = react(&mut h, "carol", "r-carol", 1);
    assert_eq!(h.out().target_reads, [1], "one read for both");
    assert_eq!(h.owner.parked(), 2);
    // The conversation does not wait for the read.
    let sent = h.send("alice", "m-2");
    let out = h.out();
    assert_eq!(out.append(), [triple(2, "alice", "m-2")]);
    assert_eq!(h.commit(Ok(())).acked(sent), (2, false));
    h.owner.handle_target(h.now, 1, Ok(Some(stored_first())));
    let out = h.out();
    assert_eq!(out.append(), [triple(3, "bob", "r-bob"), triple(4, "carol", "r-carol")]);
    assert_eq!(latest(&out.appends[0][1]).reactions[0].user_ids, ["bob", "carol"], "in the order they came");
    let out = h.commit(Ok(()));
    assert_eq!((out.acked(bob), out.acked(carol)), ((3, false), (4, false)));
    assert_eq!(h.owner.parked(), 0);
}

#[test]
fn a_change_sent_again_while_parked_is_stored_once() {
    let mut h = Harness::new(0);
    h.commit_each(&["alice"]);
    let first = react(&mut h, "bob", "r-bob", 1);
    let again = react(&mut h, "bob", "r-bob", 1);
    let out = read_answers(&mut h, 1, Some(stored_first()));
    assert_eq!(out.append(), [triple(2, "bob", "r-bob")]);
    let out = h.commit(Ok(()));
    assert_eq!(out.acked(first), (2, false));
    assert_eq!(out.acked(again), (2, true));
}

#[test]
fn a_failed_target_read_refuses_its_changes_as_retryable() {
    let mut h = Harness::new(0);
    h.commit_each(&["alice"]);
    let bob = react(&mut h, "bob", "r-bob", 1);
    let _ = h.out();
    h.owner.handle_target(h.now, 1, Err(backend()));
    let out = h.out();
    assert_eq!(out.refused(bob), ErrorCode::Unavailable);
    assert!(out.appends.is_empty());
    assert_eq!(h.owner.parked(), 0);
}

#[test]
fn changes_beyond_the_parking_bound_are_refused_as_overloaded() {
    let mut h = Harness::new(0);
    h.commit_each(&["alice"]);
    for i in 0..super::super::change::PARKED {
        react(&mut h, "bob", &format!("r-{i}"), 1);
    }
    let over = react(&mut h, "bob", "r-over", 1);
    let out = h.out();
    assert_eq!(out.target_reads, [1]);
    assert_eq!(out.refused(over), ErrorCode::Overloaded);
}

#[test]
fn a_purged_message_is_forgotten_and_its_changes_are_not_found() {
    let mut h = Harness::new(0);
    h.commit_each(&["alice"]);
    let bob = react(&mut h, "bob", "r-bob", 1);
    let _ = read_answers(&mut h, 1, Some(stored_first()));
    assert_eq!(h.commit(Ok(())).acked(bob), (2, false));
    assert!(h.owner.cached_target(1).is_some(), "the owner keeps what it changed");
    h.owner.handle_purged(2);
    assert!(h.owner.cached_target(1).is_none(), "purged: forgotten");
    let carol = react(&mut h, "carol", "r-carol", 1);
    let out = h.out();
    assert!(out.target_reads.is_empty(), "no store read for a purged seq");
    assert!(out.appends.is_empty(), "nothing appended: the message is not written back");
    assert_eq!(out.refused(carol), ErrorCode::NotFound);
    h.owner.handle_purged(1);
    let again = react(&mut h, "dave", "r-dave", 2);
    assert_eq!(h.out().refused(again), ErrorCode::NotFound, "the mark never goes back");
}
