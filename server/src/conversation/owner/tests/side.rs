//! Typing, receipts, watermarks, idle eviction, mailbox refusals and cluster nudges.

use super::*;

#[test]
fn typing_expires_and_ends_with_a_message() {
    let mut h = Harness::new(0);
    h.owner.handle_attach(h.now, 0, "bob").unwrap();
    h.owner.handle_typing(h.now, "alice".into(), true);
    assert_eq!(h.out().typing(0), vec![("alice".to_string(), true)]);
    assert_eq!(h.owner.poll_timeout(), Some(h.now + Duration::from_secs(3)));
    h.advance(Duration::from_secs(2));
    h.owner.handle_typing(h.now, "alice".into(), true);
    let _ = h.out();
    let refreshed = h.now + Duration::from_secs(3);
    assert_eq!(h.owner.poll_timeout(), Some(refreshed));
    let out = h.fire();
    assert_eq!(h.now, refreshed);
    assert_eq!(out.typing(0), vec![("alice".to_string(), false)]);
    // A message ends its sender's typing at once.
    h.owner.handle_typing(h.now, "bob".into(), true);
    let _ = h.out();
    h.send("bob", "b1");
    let out = h.out();
    assert_eq!(out.typing(0), vec![("bob".to_string(), false)]);
    assert_eq!(out.appends.len(), 1);
    let _ = h.commit(Ok(()));
    assert!(h.out().typing(0).is_empty());
    // Not a member: nothing.
    h.owner.handle_typing(h.now, "mallory".into(), true);
    assert!(h.out().to_shard.is_empty());
}

#[test]
fn receipts_are_pushed_coalesced_every_half_second() {
    let mut h = Harness::new(0);
    h.commit_each(&["alice", "alice"]);
    h.owner.handle_attach(h.now, 0, "alice").unwrap();
    let _ = h.out();
    h.advance(Duration::from_millis(100));
    h.receipt("bob", ReceiptKind::Delivered, 1, None);
    h.advance(Duration::from_millis(100));
    h.receipt("bob", ReceiptKind::Delivered, 2, None);
    h.receipt("carol", ReceiptKind::Read, 1, None);
    assert!(h.out().receipts(0).is_empty(), "coalesced, not pushed at once");
    let out = h.fire();
    assert_eq!(h.now, h.t0 + RECEIPT_PUSH);
    let delivered = ReceiptKind::Delivered as i32;
    let read = ReceiptKind::Read as i32;
    let want =
        vec![("bob".to_string(), delivered, 2), ("carol".to_string(), delivered, 1), ("carol".to_string(), read, 1)];
    assert_eq!(out.receipts(0), vec![want], "one push with the latest watermarks");
    h.advance(Duration::from_millis(50));
    h.receipt("carol", ReceiptKind::Read, 2, None);
    h.receipt("carol", ReceiptKind::Read, 1, None);
    let out = h.fire();
    assert_eq!(h.now, h.t0 + 2 * RECEIPT_PUSH, "at most one push per half second");
    let want = vec![("carol".to_string(), delivered, 2), ("carol".to_string(), read, 2)];
    assert_eq!(out.receipts(0), vec![want]);
}

#[test]
fn big_rooms_push_read_receipts_but_not_delivered() {
    let cfg = OwnerConfig { receipts_max_members: 2, ..OwnerConfig::default() };
    let mut h = Harness::with(cfg, 0);
    h.commit_each(&["alice"]);
    h.owner.handle_attach(h.now, 0, "alice").unwrap();
    h.receipt("bob", ReceiptKind::Delivered, 1, None);
    h.receipt("carol", ReceiptKind::Read, 1, None);
    let out = h.fire();
    assert_eq!(out.receipts(0), vec![vec![("carol".to_string(), ReceiptKind::Read as i32, 1)]]);
}

#[test]
fn watermarks_are_stored_each_second_and_read_receipts_answered_when_durable() {
    let mut h = Harness::new(0);
    h.commit_each(&["alice", "alice", "alice"]);
    h.advance(Duration::from_millis(300));
    h.receipt("bob", ReceiptKind::Delivered, 1, Some(1));
    let out = h.out();
    assert_eq!(out.receipted, vec![(1, Ok(()))], "delivered: answered at once");
    assert!(out.flushes.is_empty(), "delivered: stored with the next flush");
    h.receipt("bob", ReceiptKind::Read, 1, Some(2));
    let out = h.out();
    assert!(out.receipted.is_empty(), "read: answered once durable");
    assert_eq!(out.flushes, vec![vec![(Arc::from("bob"), 1, 1)]]);
    // While that flush is written: another read waits for the next, a delivered does not.
    h.receipt("carol", ReceiptKind::Read, 2, Some(3));
    h.receipt("alice", ReceiptKind::Read, 1, Some(4));
    let out = h.out();
    assert!(out.flushes.is_empty());
    assert_eq!(out.receipted, vec![(4, Ok(()))], "alice's watermark did not move (writing is reading)");
    h.owner.handle_flushed(h.now, Ok(()));
    let out = h.out();
    assert_eq!(out.receipted, vec![(2, Ok(()))]);
    assert_eq!(out.flushes, vec![vec![(Arc::from("carol"), 2, 2)]], "at once, for the waiting read");
    h.owner.handle_flushed(h.now, Err(backend()));
    let out = h.out();
    assert_eq!(out.receipted.len(), 1);
    assert_eq!(out.receipted[0].1.as_ref().unwrap_err().code, ErrorCode::Unavailable);
    // Delivered only: stored on the second grid.
    h.receipt("carol", ReceiptKind::Delivered, 3, None);
    let out = (0..10).map(|_| h.fire()).find(|out| !out.flushes.is_empty()).expect("a flush");
    assert_eq!(h.now, h.t0 + FLUSH_EVERY);
    assert_eq!(out.flushes, vec![vec![(Arc::from("carol"), 3, 0)]]);
    // Receipts of a stranger are refused.
    h.receipt("mallory", ReceiptKind::Read, 1, Some(5));
    assert_eq!(h.out().receipted[0].1.as_ref().unwrap_err().code, ErrorCode::NotFound);
}

#[test]
fn an_idle_owner_sets_no_timer_but_its_eviction() {
    let mut h = Harness::new(0);
    assert_eq!(h.owner.poll_timeout(), Some(h.t0 + IDLE_AFTER));
    h.owner.handle_attach(h.now, 1, "bob").unwrap();
    assert_eq!(h.owner.poll_timeout(), None, "a subscribed owner with nothing due sleeps");
    h.commit_each(&["alice"]);
    h.receipt("bob", ReceiptKind::Delivered, 1, None);
    h.owner.handle_typing(h.now, "bob".into(), true);
    let _ = h.out();
    // Receipts at 0.5 s, flush at 1 s, typing at 3 s: then nothing.
    for _ in 0..10 {
        if h.owner.poll_timeout().is_none() {
            break;
        }
        if !h.fire().flushes.is_empty() {
            h.owner.handle_flushed(h.now, Ok(()));
        }
    }
    assert_eq!(h.now, h.t0 + Duration::from_secs(3));
    h.owner.handle_detach(h.now, 1);
    let quiet = h.now;
    assert_eq!(h.owner.poll_timeout(), Some(quiet + IDLE_AFTER));
    assert!(h.fire().stop);
    assert_eq!(h.now, quiet + IDLE_AFTER);
    // The driver found a queued message and carried on: idle counts again from here.
    assert_eq!(h.owner.poll_timeout(), Some(h.now + IDLE_AFTER));
}

#[test]
fn refused_mailboxes_get_a_nudge_and_user_events_again() {
    let mut h = Harness::new(0);
    h.owner.handle_attach(h.now, 1, "bob").unwrap();
    h.commit_each(&["alice"]);
    let pushed: Arc<[crate::shard::Pushed]> = Arc::from(Vec::new());
    h.owner.handle_refused(h.now, 1, ShardMsg::Fanout(CONV, Fanout::Messages(pushed)));
    let ev = UserEvent::Removed(CONV, bytes::Bytes::new());
    h.owner.handle_refused(h.now, 0, ShardMsg::User("bob".into(), ev));
    let ephemeral = Fanout::Ephemeral { frame: bytes::Bytes::new(), datagram: None, skip_user: None };
    h.owner.handle_refused(h.now, 0, ShardMsg::Fanout(CONV, ephemeral));
    let out = h.fire();
    assert_eq!(h.now, h.t0 + RETRY_AFTER);
    assert_eq!(out.to_shard.len(), 2, "{out:?}");
    assert!(matches!(&out.to_shard[0], (0, ShardMsg::User(u, UserEvent::Removed(CONV, _))) if &**u == "bob"));
    assert!(matches!(out.to_shard[1], (1, ShardMsg::Fanout(CONV, Fanout::Nudge { head: 1 }))));
    // Refused again: retried again.
    let (shard, msg) = out.to_shard.into_iter().nth(1).unwrap();
    h.owner.handle_refused(h.now, shard, msg);
    assert!(matches!(h.fire().to_shard[..], [(1, ShardMsg::Fanout(CONV, Fanout::Nudge { head: 1 }))]));
    assert_eq!(h.owner.poll_timeout(), Some(h.t0 + FLUSH_EVERY), "then only the activity's flush");
}

#[test]
fn cluster_owners_publish_and_nudge_recent_heads_each_second() {
    let cfg = OwnerConfig { cluster: true, shards: 2, ..OwnerConfig::default() };
    let mut h = Harness::with(cfg, 0);
    // A new owner nudges for a while: the previous one may have died mid-fan-out.
    let mut nudges = 0;
    for _ in 0..10 {
        let out = h.fire();
        if out.stop {
            break;
        }
        if h.now <= h.t0 + crate::shard::broker::NUDGE_WINDOW {
            assert!(matches!(out.published[..], [Fanout::Nudge { head: 0 }]), "{out:?}");
            assert_eq!(out.to_shard.len(), 2, "every local shard");
            nudges += 1;
        }
    }
    assert_eq!(nudges, 3);
    assert_eq!(h.now, h.t0 + crate::shard::broker::NUDGE_WINDOW + IDLE_AFTER);
    let start = h.now;
    let a = h.send("alice", "a1");
    let _ = h.out();
    let out = h.commit(Ok(()));
    assert_eq!(out.acked(a), (1, false));
    assert!(matches!(&out.published[..], [Fanout::Messages(m)] if m.len() == 1));
    assert_eq!(out.pushes(0).1, vec![1], "every shard gets the fan-out in a cluster");
    let mut times = Vec::new();
    for _ in 0..10 {
        let out = h.fire();
        if out.stop {
            break;
        }
        if matches!(out.published[..], [Fanout::Nudge { head: 1 }]) {
            times.push(h.now - start);
        }
        if !out.touches.is_empty() {
            h.owner.handle_flushed(h.now, Ok(()));
        }
    }
    assert_eq!(times.len(), 3, "{times:?}");
}

/// A commit moves the conversation up its members' lists: its activity is
/// stored with the next flush, once for many commits, again after a failure;
/// an owner does not stop before it is stored.
#[test]
fn the_activity_is_stored_with_the_next_flush() {
    let mut h = Harness::new(0);
    h.commit_each(&["alice", "bob"]);
    let first = h.fire();
    assert_eq!(h.now, h.t0 + FLUSH_EVERY);
    assert_eq!(first.touches, [WALL], "both commits, one touch");
    h.commit_each(&["carol"]);
    h.owner.handle_flushed(h.now, Err(backend()));
    let retried = h.fire();
    assert_eq!(h.now, h.t0 + 2 * FLUSH_EVERY);
    assert_eq!(retried.touches, [WALL + 1_000], "stored again after a failure, up to date");
    h.owner.handle_flushed(h.now, Ok(()));
    let mut stopped = false;
    for _ in 0..5 {
        let out = h.fire();
        assert!(out.touches.is_empty(), "nothing moved: no touch");
        stopped |= out.stop;
        if stopped {
            break;
        }
    }
    assert!(stopped, "then it stops when idle");
}

/// A room over `receipts_max_members` moves up its members' lists at most
/// once per [`BIG_ROOM_TOUCH`].
#[test]
fn big_rooms_touch_rarely() {
    let cfg = OwnerConfig { receipts_max_members: 2, shards: 2, ..OwnerConfig::default() };
    let mut h = Harness::with(cfg, 0);
    h.commit_each(&["alice"]);
    assert_eq!(h.fire().touches.len(), 1);
    h.owner.handle_flushed(h.now, Ok(()));
    let touched = h.now;
    h.commit_each(&["bob"]);
    let mut next = None;
    for _ in 0..100 {
        let out = h.fire();
        if !out.touches.is_empty() {
            next = Some(h.now);
            break;
        }
        if !out.flushes.is_empty() {
            h.owner.handle_flushed(h.now, Ok(()));
        }
    }
    assert_eq!(next, Some(touched + BIG_ROOM_TOUCH));
}

/// Until the other member of a private conversation reads or writes in it,
/// their delivered receipts are not pushed (they would tell its opener that
/// their device is online); their read receipt is, and later deliveries are.
#[test]
fn an_unaccepted_members_deliveries_are_not_pushed() {
    let mut h = Harness::private();
    let t0 = h.t0;
    h.owner.handle_attach(h.now, 0, "ann").unwrap();
    h.commit_each(&["ann", "ann"]);
    h.receipt("bob", ReceiptKind::Delivered, 2, None);
    let _ = h.out();
    while h.owner.poll_timeout().is_some_and(|t| t <= t0 + 2 * FLUSH_EVERY) {
        let out = h.fire();
        assert!(out.receipts(0).is_empty(), "nothing told: {:?}", out.receipts(0));
        if !out.flushes.is_empty() {
            h.owner.handle_flushed(h.now, Ok(()));
        }
    }
    h.receipt("bob", ReceiptKind::Read, 1, None);
    h.receipt("bob", ReceiptKind::Delivered, 2, None);
    h.send("ann", "third");
    let _ = h.out();
    assert!(h.commit(Ok(())).appends.is_empty());
    h.receipt("bob", ReceiptKind::Delivered, 3, None);
    let _ = h.out();
    let mut told = Vec::new();
    while told.is_empty() {
        told = h.fire().receipts(0);
    }
    let read = ReceiptKind::Read as i32;
    let delivered = ReceiptKind::Delivered as i32;
    assert_eq!(told, [vec![("bob".to_string(), delivered, 3), ("bob".to_string(), read, 1)]]);
}

#[test]
fn a_private_conversation_is_accepted_once_by_its_other_member() {
    // "ann" opened it (see `record`); bob was asked.
    let mut h = Harness::private();
    h.send("ann", "a1");
    let _ = h.out();
    assert!(h.commit(Ok(())).accepted.is_empty(), "its opener accepted it by opening it");
    h.receipt("bob", ReceiptKind::Delivered, 1, None);
    assert!(h.out().accepted.is_empty(), "having it delivered is not accepting it");
    h.receipt("bob", ReceiptKind::Read, 1, None);
    assert_eq!(h.out().accepted, vec![Arc::<str>::from("bob")], "reading it is");
    h.send("bob", "b1");
    let _ = h.out();
    assert!(h.commit(Ok(())).accepted.is_empty(), "once");
    // A group says nothing: its members were added by its staff.
    let mut g = Harness::new(0);
    g.send("bob", "g1");
    let _ = g.out();
    assert!(g.commit(Ok(())).accepted.is_empty());
    // Writing first is accepting too.
    let mut w = Harness::private();
    w.send("bob", "w1");
    let _ = w.out();
    assert_eq!(w.commit(Ok(())).accepted, vec![Arc::<str>::from("bob")]);
}
