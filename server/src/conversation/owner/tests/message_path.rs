//! Sequencing, group commit, idempotency, fences, checks on send, and store failures.

use super::*;

#[test]
fn sequences_from_the_head_and_acks_only_when_durable() {
    let mut h = Harness::new(41);
    assert_eq!(h.owner.handle_attach(h.now, 0, "bob"), Ok(41));
    assert_eq!(h.owner.handle_attach(h.now, 1, "mallory"), Err(summary::no_access(CONV)), "members only");
    h.advance(Duration::from_millis(250));
    let a = h.send("alice", "a1");
    let out = h.out();
    assert!(out.sent.is_empty(), "nothing is acked before the store says durable");
    assert_eq!(out.append(), vec![triple(42, "alice", "a1")]);
    let stored = v1::Message::decode(out.appends[0][0].encoded.as_ref()).unwrap();
    assert_eq!((stored.seq, stored.server_time_ms, stored.sender_id.as_str()), (42, WALL + 250, "alice"));
    let out = h.commit(Ok(()));
    assert_eq!(out.acked(a), (42, false));
    assert_eq!(out.answer(a).as_ref().unwrap().server_time_ms, WALL + 250);
    assert_eq!(out.pushes(0).1, vec![42], "fanned out to the subscribed shard");
    assert!(out.pushes(1).1.is_empty(), "not to a shard without subscribers");
    assert_eq!(h.owner.committed(), 42);
    let b = h.send("bob", "b1");
    assert_eq!(h.out().append(), vec![triple(43, "bob", "b1")]);
    assert_eq!(h.commit(Ok(())).acked(b), (43, false));
}

#[test]
fn group_commit_one_append_in_flight_then_everything_waiting() {
    let mut h = Harness::new(0);
    let a = h.send("alice", "a1");
    assert_eq!(h.out().append(), vec![triple(1, "alice", "a1")]);
    let b = h.send("bob", "b1");
    let c = h.send("carol", "c1");
    let out = h.out();
    assert!(out.appends.is_empty() && out.sent.is_empty(), "waits for the append in flight: {out:?}");
    let out = h.commit(Ok(()));
    assert_eq!(out.acked(a), (1, false));
    assert!(out.sent.len() == 1, "b and c are not durable yet");
    assert_eq!(out.append(), vec![triple(2, "bob", "b1"), triple(3, "carol", "c1")]);
    let out = h.commit(Ok(()));
    assert_eq!((out.acked(b), out.acked(c)), ((2, false), (3, false)));
    assert!(out.appends.is_empty());
}

#[test]
fn an_append_never_exceeds_the_batch_or_the_stores_run_limit() {
    // A store whose first partition ends at seq 3.
    let run_limit: RunLimit = Rc::new(|next| if next <= 3 { (4 - next) as usize } else { usize::MAX });
    let mut h = Harness::with(OwnerConfig { run_limit, ..OwnerConfig::default() }, 0);
    h.send("alice", "first");
    assert_eq!(h.out().appends[0].len(), 1);
    for i in 0..MAX_BATCH + 10 {
        h.send("bob", &format!("m{i}"));
    }
    assert!(h.out().appends.is_empty());
    let sizes = |out: &Out| (out.appends[0].len(), out.appends[0][0].seq);
    assert_eq!(sizes(&h.commit(Ok(()))), (2, 2), "cut at the store's edge");
    assert_eq!(sizes(&h.commit(Ok(()))), (MAX_BATCH, 4), "at most MAX_BATCH");
    assert_eq!(sizes(&h.commit(Ok(()))), (8, 4 + MAX_BATCH as u64));
}

#[test]
fn retries_are_answered_from_memory_or_join_the_original() {
    let mut h = Harness::new(0);
    // Committed: answered at once with its seq, as a duplicate.
    let a = h.send("alice", "a1");
    let _ = h.out();
    assert_eq!(h.commit(Ok(())).acked(a), (1, false));
    let again = h.send("alice", "a1");
    let out = h.out();
    assert_eq!(out.acked(again), (1, true));
    assert!(out.appends.is_empty());
    // The same client id from someone else is another message.
    h.send("bob", "a1");
    assert_eq!(h.out().append(), vec![triple(2, "bob", "a1")]);
    // In flight: joins it, answered when it is durable.
    let in_flight = h.send("bob", "a1");
    assert!(h.out().sent.is_empty(), "not durable yet");
    // Pending: joins it; stored once.
    let c = h.send("carol", "c1");
    let c_again = h.send("carol", "c1");
    let out = h.commit(Ok(()));
    assert_eq!(out.acked(in_flight), (2, true));
    assert_eq!(out.sent.len(), 2, "bob's original and retry: {:?}", out.sent);
    assert_eq!(out.append(), vec![triple(3, "carol", "c1")]);
    let out = h.commit(Ok(()));
    assert_eq!((out.acked(c), out.acked(c_again)), ((3, false), (3, true)));
}

#[test]
fn the_idempotency_window_is_bounded() {
    let cfg = OwnerConfig { recent_ids: 4, ..OwnerConfig::default() };
    let mut h = Harness::with(cfg, 0);
    for i in 0..5 {
        h.send("alice", &format!("m{i}"));
        let _ = h.out();
        let _ = h.commit(Ok(()));
    }
    // m1..m4 are remembered; m0 fell out and goes to the store, whose check answers it.
    let recent = h.send("alice", "m1");
    assert_eq!(h.out().acked(recent), (2, true));
    let old = h.send("alice", "m0");
    let out = h.out();
    assert!(out.sent.is_empty());
    assert_eq!(out.append(), vec![triple(6, "alice", "m0")]);
    let out = h.commit(Err(StoreError::Duplicates(vec![(6, 1)])));
    assert_eq!(out.acked(old), (1, true));
}

#[test]
fn duplicates_found_by_the_store_are_answered_and_the_rest_goes_again_first() {
    let mut h = Harness::new(20);
    let a = h.send("alice", "a1");
    let _ = h.out();
    let b = h.send("bob", "b-old");
    let c = h.send("carol", "c1");
    let _ = h.commit(Ok(()));
    // b and c in flight as 22 and 23; d waits.
    let d = h.send("alice", "a2");
    let out = h.commit(Err(StoreError::Duplicates(vec![(22, 5)])));
    assert_eq!(out.acked(b), (5, true), "answered with the seq it is stored at");
    assert!(out.sent.len() == 1, "c and d are not stored yet: {:?}", out.sent);
    assert_eq!(out.append(), vec![triple(22, "carol", "c1"), triple(23, "alice", "a2")], "in order, ahead of d");
    let out = h.commit(Ok(()));
    assert_eq!((out.acked(c), out.acked(d)), ((22, false), (23, false)));
    // Remembered: a later retry is answered from memory.
    let b_again = h.send("bob", "b-old");
    assert_eq!(h.out().acked(b_again), (5, true));
    assert_eq!(h.owner.committed(), 23);
    let _ = a;
}

#[test]
fn duplicates_the_batch_does_not_have_are_a_store_failure() {
    let mut h = Harness::new(0);
    let a = h.send("alice", "a1");
    let _ = h.out();
    let out = h.commit(Err(StoreError::Duplicates(vec![(9, 3)])));
    assert_eq!(out.refused(a), ErrorCode::Unavailable);
    assert_eq!(out.head_reads, 1);
}

#[test]
fn a_fence_reloads_and_sequences_again_after_the_new_head() {
    let mut h = Harness::new(0);
    let a = h.send("alice", "a1");
    let _ = h.out();
    let out = h.commit(Err(seq_taken(1)));
    assert_eq!(out.reloads, 1);
    assert!(out.sent.is_empty() && out.appends.is_empty());
    // Meanwhile: a retry joins the fenced message, a new one waits.
    let a_again = h.send("alice", "a1");
    let b = h.send("bob", "b1");
    assert!(h.out().appends.is_empty(), "nothing is appended during a reload");
    let reloaded = Reloaded { last: 30, members: members(&["alice", "bob", "carol"], 0), rec: None, mls_epoch: None };
    h.owner.handle_reloaded(h.now, Ok(reloaded));
    let out = h.out();
    assert_eq!(out.append(), vec![triple(31, "alice", "a1"), triple(32, "bob", "b1")]);
    let out = h.commit(Ok(()));
    assert_eq!((out.acked(a), out.acked(a_again), out.acked(b)), ((31, false), (31, true), (32, false)));
}

#[test]
fn a_fence_gives_up_after_three_resequences_with_a_retryable_timeout() {
    let mut h = Harness::new(0);
    let a = h.send("alice", "a1");
    let mut appends = h.out().appends.len();
    for round in 1..=MAX_RESEQUENCE + 1 {
        let _ = h.commit(Err(seq_taken(round as u64)));
        let reloaded =
            Reloaded { last: round as u64, members: members(&["alice", "bob"], 0), rec: None, mls_epoch: None };
        h.owner.handle_reloaded(h.now, Ok(reloaded));
        let out = h.out();
        appends += out.appends.len();
        if round <= MAX_RESEQUENCE {
            assert_eq!(out.append()[0].0, round as u64 + 1);
        } else {
            assert!(out.appends.is_empty());
            assert_eq!(out.refused(a), ErrorCode::Timeout);
            let e = out.answer(a).as_ref().unwrap_err();
            assert_eq!(e.retry_after, Some(Duration::from_millis(200)));
        }
    }
    assert_eq!(appends, 1 + MAX_RESEQUENCE as usize);
}

#[test]
fn a_fence_refuses_senders_removed_and_conversations_archived_meanwhile() {
    let mut h = Harness::new(0);
    let a = h.send("alice", "a1");
    let _ = h.out();
    let _ = h.commit(Err(seq_taken(1)));
    let b = h.send("bob", "b1");
    let c = h.send("alice", "a2");
    let reloaded = Reloaded { last: 1, members: members(&["bob", "carol"], 0), rec: None, mls_epoch: None };
    h.owner.handle_reloaded(h.now, Ok(reloaded));
    let out = h.out();
    assert_eq!((out.refused(a), out.refused(c)), (ErrorCode::NotFound, ErrorCode::NotFound));
    assert_eq!(out.append(), vec![triple(2, "bob", "b1")]);
    let _ = h.commit(Err(seq_taken(2)));
    let archived = ConversationRecord { archived_at_ms: 5, ..record(ConversationKind::Group) };
    let reloaded = Reloaded { last: 2, members: members(&["bob", "carol"], 0), rec: Some(archived), mls_epoch: None };
    h.owner.handle_reloaded(h.now, Ok(reloaded));
    let out = h.out();
    assert_eq!(out.refused(b), ErrorCode::Archived);
    assert!(out.appends.is_empty());
}

#[test]
fn a_failed_reload_refuses_the_batch_and_pauses_sends() {
    let mut h = Harness::new(0);
    let a = h.send("alice", "a1");
    let _ = h.out();
    let _ = h.commit(Err(seq_taken(1)));
    let b = h.send("bob", "b1");
    h.owner.handle_reloaded(h.now, Err(backend()));
    let out = h.out();
    assert_eq!((out.refused(a), out.refused(b)), (ErrorCode::Unavailable, ErrorCode::Unavailable));
    let c = h.send("carol", "c1");
    assert_eq!(h.out().refused(c), ErrorCode::Unavailable);
}

#[test]
fn sends_are_checked_for_membership_archive_and_reply_to() {
    let mut h = Harness::new(0);
    h.commit_each(&["alice", "bob"]);
    let stranger = h.send("mallory", "m1");
    let out = h.out();
    assert_eq!(out.refused(stranger), ErrorCode::NotFound);
    assert!(out.answer(stranger).as_ref().unwrap_err().message.contains("does not exist or you are not a member"));
    let bad = h.send_reply_to("alice", "r1", 3);
    assert_eq!(h.out().refused(bad), ErrorCode::InvalidArgument);
    let good = h.send_reply_to("alice", "r2", 2);
    let out = h.out();
    assert!(out.sent.is_empty() && out.appends.len() == 1, "reply_to 2 exists: {out:?}");
    let _ = h.commit(Ok(()));
    // Archived: new messages are refused; a retry of an accepted one is still answered.
    let mut plan = crate::conversation::membership::Plan::default();
    let archived = ConversationRecord { archived_at_ms: 9, ..record(ConversationKind::Group) };
    plan.writes.push(crate::conversation::membership::Write::UpdateConversation(archived));
    for w in plan.writes {
        h.owner.handle_written(h.now, w);
    }
    let _ = h.out();
    let late = h.send("alice", "r3");
    assert_eq!(h.out().refused(late), ErrorCode::Archived);
    let retry = h.send("alice", "r2");
    assert_eq!(h.out().acked(retry), (3, true));
    let _ = good;
}

#[test]
fn a_store_failure_refuses_what_waits_pauses_sends_and_rereads_the_head() {
    let mut h = Harness::new(0);
    let a = h.send("alice", "a1");
    let _ = h.out();
    let b = h.send("bob", "b1");
    let out = h.commit(Err(backend()));
    assert_eq!((out.refused(a), out.refused(b)), (ErrorCode::Unavailable, ErrorCode::Unavailable));
    assert_eq!(out.head_reads, 1);
    // Refused for a second, so no later message overtakes one that failed.
    h.advance(Duration::from_millis(900));
    let c = h.send("carol", "c1");
    assert_eq!(h.out().refused(c), ErrorCode::Unavailable);
    h.advance(Duration::from_millis(100));
    // The head is not re-read yet: accepted, but not sequenced on a stale head.
    let d = h.send("carol", "c2");
    assert!(h.out().appends.is_empty());
    h.owner.handle_head(h.now, Ok(4));
    assert_eq!(h.out().append(), vec![triple(5, "carol", "c2")]);
    assert_eq!(h.commit(Ok(())).acked(d), (5, false));
    // The failed message was forgotten: its retry is a new message.
    let a_again = h.send("alice", "a1");
    assert_eq!(h.out().append(), vec![triple(6, "alice", "a1")]);
    assert_eq!(h.commit(Ok(())).acked(a_again), (6, false));
}
