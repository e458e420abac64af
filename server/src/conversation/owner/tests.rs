//! Tests of the owner state machine: a hand-driven clock, plain ids for
//! reply handles, store results fed in by hand; no runtime, no sockets.

use super::*;
use crate::shard::{Fanout, ShardMsg, UserEvent};
use chat_protocol::v1::{ConversationKind, MemberRole, ReceiptKind, push, server_frame};

#[derive(Debug)]
struct Ids;

impl Handles for Ids {
    type Send = u32;
    type Receipt = u32;
}

const CONV: u64 = 7;
const WALL: u64 = 1_700_000_000_000;

/// Everything the owner asked for since the last look, sorted by kind.
#[derive(Debug, Default)]
struct Out {
    appends: Vec<Vec<NewMessage>>,
    reloads: usize,
    head_reads: usize,
    flushes: Vec<Vec<(Arc<str>, u64, u64)>>,
    sent: Vec<(u32, Result<v1::SendMessageOk, WireError>)>,
    receipted: Vec<(u32, Result<(), WireError>)>,
    to_shard: Vec<(usize, ShardMsg)>,
    published: Vec<Fanout>,
    published_users: Vec<(Arc<str>, UserEvent)>,
    stop: bool,
}

impl Out {
    /// The (seq, sender, client id) of each message of the only append.
    fn append(&self) -> Vec<(u64, String, String)> {
        assert_eq!(self.appends.len(), 1, "one append expected: {self:?}");
        self.appends[0].iter().map(|m| (m.seq, m.sender_id.clone(), m.client_msg_id.clone())).collect()
    }

    /// The answer to send `id`.
    fn answer(&self, id: u32) -> &Result<v1::SendMessageOk, WireError> {
        let found: Vec<_> = self.sent.iter().filter(|(i, _)| *i == id).collect();
        assert_eq!(found.len(), 1, "one answer to {id} expected: {:?}", self.sent);
        &found[0].1
    }

    /// The seq and duplicate flag answered to send `id`.
    fn acked(&self, id: u32) -> (u64, bool) {
        match self.answer(id) {
            Ok(ok) => (ok.seq, ok.duplicate),
            Err(e) => panic!("send {id} refused: {e:?}"),
        }
    }

    /// The error code answered to send `id`.
    fn refused(&self, id: u32) -> ErrorCode {
        match self.answer(id) {
            Ok(ok) => panic!("send {id} accepted: {ok:?}"),
            Err(e) => e.code,
        }
    }

    /// The pushes (decoded) fanned out to `shard`, and the seqs of stored messages.
    fn pushes(&self, shard: usize) -> (Vec<push::Event>, Vec<u64>) {
        let (mut events, mut seqs) = (Vec::new(), Vec::new());
        for (s, msg) in &self.to_shard {
            match msg {
                ShardMsg::Fanout(CONV, Fanout::Ephemeral { frame, .. }) if *s == shard => events.push(decode(frame)),
                ShardMsg::Fanout(CONV, Fanout::Messages(list)) if *s == shard => {
                    seqs.extend(list.iter().map(|p| p.seq))
                }
                _ => {}
            }
        }
        (events, seqs)
    }

    /// Typing pushes to `shard`: (user, typing).
    fn typing(&self, shard: usize) -> Vec<(String, bool)> {
        let (events, _) = self.pushes(shard);
        events
            .into_iter()
            .filter_map(|e| match e {
                push::Event::Typing(t) => Some((t.user_id, t.typing)),
                _ => None,
            })
            .collect()
    }

    /// Receipt pushes to `shard`, each as [(user, kind, seq)].
    fn receipts(&self, shard: usize) -> Vec<Vec<(String, i32, u64)>> {
        let (events, _) = self.pushes(shard);
        events
            .into_iter()
            .filter_map(|e| match e {
                push::Event::Receipts(b) => Some(b.receipts.into_iter().map(|r| (r.user_id, r.kind, r.seq)).collect()),
                _ => None,
            })
            .collect()
    }
}

fn decode(frame: &[u8]) -> push::Event {
    let f = v1::ServerFrame::decode_length_delimited(frame).expect("a server frame");
    match f.kind {
        Some(server_frame::Kind::Push(p)) => p.event.expect("an event"),
        other => panic!("not a push: {other:?}"),
    }
}

fn record(kind: ConversationKind) -> ConversationRecord {
    ConversationRecord {
        id: CONV,
        kind: kind as i32,
        title: "t".into(),
        case_id: String::new(),
        created_by: "alice".into(),
        created_at_ms: 1,
        archived_at_ms: 0,
        support_state: 0,
        e2e: false,
        retention_days: 0,
        legal_hold: false,
    }
}

fn member(user: &str, seq: u64) -> MemberRecord {
    MemberRecord {
        conversation_id: CONV,
        user_id: user.into(),
        role: MemberRole::Member as i32,
        joined_at_ms: 1,
        delivered_seq: seq,
        read_seq: seq,
    }
}

fn members(users: &[&str], seq: u64) -> Vec<MemberRecord> {
    users.iter().map(|u| member(u, seq)).collect()
}

/// An owner with a hand-driven clock.
struct Harness {
    owner: Owner<Ids>,
    t0: Instant,
    now: Instant,
    next: u32,
}

impl Harness {
    /// A group of alice, bob and carol whose head is `last`, on two shards.
    fn new(last: u64) -> Self {
        Self::with(OwnerConfig { shards: 2, ..OwnerConfig::default() }, last)
    }

    fn with(cfg: OwnerConfig, last: u64) -> Self {
        let t0 = Instant::now();
        let members = members(&["alice", "bob", "carol"], last);
        let owner = Owner::new(cfg, record(ConversationKind::Group), members, last, t0, WALL);
        Self { owner, t0, now: t0, next: 0 }
    }

    fn out(&mut self) -> Out {
        let mut out = Out::default();
        while let Some(e) = self.owner.poll_effect() {
            match e {
                Effect::Append(b) => out.appends.push(b),
                Effect::Reload => out.reloads += 1,
                Effect::ReadHead => out.head_reads += 1,
                Effect::FlushWatermarks(b) => out.flushes.push(b),
                Effect::Sent(id, r) => out.sent.push((id, r)),
                Effect::Receipted(id, r) => out.receipted.push((id, r)),
                Effect::ToShard(s, m) => out.to_shard.push((s, m)),
                Effect::Publish(f) => out.published.push(f),
                Effect::PublishUser(u, ev) => out.published_users.push((u, ev)),
                Effect::Stop => out.stop = true,
            }
        }
        out
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Moves the clock to the owner's next deadline and fires it.
    fn fire(&mut self) -> Out {
        let at = self.owner.poll_timeout().expect("a deadline");
        self.now = self.now.max(at);
        self.owner.handle_timeout(self.now);
        self.out()
    }

    /// A send of `user` with client id `cmid`; returns its reply id.
    fn send(&mut self, user: &str, cmid: &str) -> u32 {
        self.send_reply_to(user, cmid, 0)
    }

    fn send_reply_to(&mut self, user: &str, cmid: &str, reply_to: u64) -> u32 {
        self.next += 1;
        let msg = v1::SendMessage {
            conversation_id: CONV,
            client_msg_id: cmid.into(),
            body: Some(v1::MessageBody { content: Some(v1::message_body::Content::Text(format!("from {user}"))) }),
            reply_to,
        };
        self.owner.handle_send(self.now, user.into(), 100, msg, self.next);
        self.next
    }

    fn commit(&mut self, res: Result<(), StoreError>) -> Out {
        self.owner.handle_committed(self.now, res);
        self.out()
    }

    fn receipt(&mut self, user: &str, kind: ReceiptKind, seq: u64, reply: Option<u32>) {
        self.owner.handle_receipt(self.now, user.into(), kind, seq, reply);
    }

    /// Sends and commits one message of each user, in order.
    fn commit_each(&mut self, users: &[&str]) {
        for (i, u) in users.iter().enumerate() {
            let id = self.send(u, &format!("pre-{i}"));
            let out = self.out();
            assert_eq!(out.appends.len(), 1);
            assert!(self.commit(Ok(())).answer(id).is_ok());
        }
    }
}

fn backend() -> StoreError {
    StoreError::Backend { op: "append", source: "disk on fire".into() }
}

fn seq_taken(seq: u64) -> StoreError {
    StoreError::SeqTaken { conversation_id: CONV, seq }
}

fn triple(seq: u64, user: &str, cmid: &str) -> (u64, String, String) {
    (seq, user.into(), cmid.into())
}

#[test]
fn sequences_from_the_head_and_acks_only_when_durable() {
    let mut h = Harness::new(41);
    assert_eq!(h.owner.handle_attach(h.now, 1, "bob"), Ok(41));
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
    assert_eq!(out.pushes(1).1, vec![42], "fanned out to the subscribed shard");
    assert!(out.pushes(0).1.is_empty(), "not to a shard without subscribers");
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
    let reloaded = Reloaded { last: 30, members: members(&["alice", "bob", "carol"], 0), rec: None };
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
        let reloaded = Reloaded { last: round as u64, members: members(&["alice", "bob"], 0), rec: None };
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
    let reloaded = Reloaded { last: 1, members: members(&["bob", "carol"], 0), rec: None };
    h.owner.handle_reloaded(h.now, Ok(reloaded));
    let out = h.out();
    assert_eq!((out.refused(a), out.refused(c)), (ErrorCode::NotFound, ErrorCode::NotFound));
    assert_eq!(out.append(), vec![triple(2, "bob", "b1")]);
    let _ = h.commit(Err(seq_taken(2)));
    let archived = ConversationRecord { archived_at_ms: 5, ..record(ConversationKind::Group) };
    let reloaded = Reloaded { last: 2, members: members(&["bob", "carol"], 0), rec: Some(archived) };
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
    let out = loop {
        let out = h.fire();
        if !out.flushes.is_empty() {
            break out;
        }
    };
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
    while h.owner.poll_timeout().is_some() {
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
    assert_eq!(h.owner.poll_timeout(), None);
}

#[test]
fn cluster_owners_publish_and_nudge_recent_heads_each_second() {
    let cfg = OwnerConfig { cluster: true, shards: 2, ..OwnerConfig::default() };
    let mut h = Harness::with(cfg, 0);
    // A new owner nudges for a while: the previous one may have died mid-fan-out.
    let mut nudges = 0;
    while h.now < h.t0 + Duration::from_secs(10) {
        let out = h.fire();
        if out.stop {
            break;
        }
        if h.now <= h.t0 + crate::cluster::NUDGE_WINDOW {
            assert!(matches!(out.published[..], [Fanout::Nudge { head: 0 }]), "{out:?}");
            assert_eq!(out.to_shard.len(), 2, "every local shard");
            nudges += 1;
        }
    }
    assert_eq!(nudges, 3);
    assert_eq!(h.now, h.t0 + crate::cluster::NUDGE_WINDOW + IDLE_AFTER);
    let start = h.now;
    let a = h.send("alice", "a1");
    let _ = h.out();
    let out = h.commit(Ok(()));
    assert_eq!(out.acked(a), (1, false));
    assert!(matches!(&out.published[..], [Fanout::Messages(m)] if m.len() == 1));
    assert_eq!(out.pushes(0).1, vec![1], "every shard gets the fan-out in a cluster");
    let mut times = Vec::new();
    loop {
        let out = h.fire();
        if out.stop {
            break;
        }
        if matches!(out.published[..], [Fanout::Nudge { head: 1 }]) {
            times.push(h.now - start);
        }
    }
    assert_eq!(times.len(), 3, "{times:?}");
}
