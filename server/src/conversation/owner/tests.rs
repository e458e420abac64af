//! Tests of the owner state machine: a hand-driven clock, plain ids for
//! reply handles, store results fed in by hand; no runtime, no sockets. This
//! file is the harness; `message_path` tests sequencing, group commit,
//! idempotency, fences and failures, `changes` edits, deletes and reactions,
//! `notices` offline notifications,
//! `side` typing, receipts, watermarks,
//! timers and mailbox refusals.

mod changes;
mod e2e;
mod message_path;
mod notices;
mod side;

use super::*;
use crate::ids::Caller;
use crate::shard::{Fanout, ShardMsg, UserEvent};
use chat_protocol::v1::{ConversationKind, MemberRole, ReceiptKind, push, server_frame};
use std::rc::Rc;

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
    touches: Vec<u64>,
    sent: Vec<(u32, Result<v1::SendMessageOk, WireError>)>,
    receipted: Vec<(u32, Result<(), WireError>)>,
    to_shard: Vec<(usize, ShardMsg)>,
    published: Vec<Fanout>,
    published_users: Vec<(Arc<str>, UserEvent)>,
    accepted: Vec<Arc<str>>,
    /// Seqs of targets the owner asked the store for.
    target_reads: Vec<u64>,
    /// Offline notices asked for.
    notices: Vec<Notice>,
    /// Messages handed to the webhooks.
    hooks: Vec<v1::Message>,
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
    crate::conversation::membership::tests::record(CONV, kind)
}

fn member(user: &str, seq: u64) -> MemberRecord {
    crate::conversation::membership::tests::member(CONV, user, MemberRole::Member, seq)
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

    /// A private conversation "ann" opened (see `record`) with "bob".
    fn private() -> Self {
        let t0 = Instant::now();
        let rec = record(ConversationKind::Private);
        let owner = Owner::new(OwnerConfig::default(), rec, members(&["ann", "bob"], 0), (0, None), t0, WALL);
        Self { owner, t0, now: t0, next: 0 }
    }

    fn with(cfg: OwnerConfig, last: u64) -> Self {
        let t0 = Instant::now();
        let members = members(&["alice", "bob", "carol"], last);
        let owner = Owner::new(cfg, record(ConversationKind::Group), members, (last, None), t0, WALL);
        Self { owner, t0, now: t0, next: 0 }
    }

    fn out(&mut self) -> Out {
        let mut out = Out::default();
        while let Some(e) = self.owner.poll_effect() {
            match e {
                Effect::Append(b) => out.appends.push(b),
                Effect::Reload => out.reloads += 1,
                Effect::ReadHead => out.head_reads += 1,
                Effect::Flush { watermarks, touch } => {
                    out.flushes.push(watermarks);
                    out.touches.extend(touch);
                }
                Effect::Sent(id, r) => out.sent.push((id, r)),
                Effect::Receipted(id, r) => out.receipted.push((id, r)),
                Effect::ToShard(s, m) => out.to_shard.push((s, m)),
                Effect::Publish(f) => out.published.push(f),
                Effect::PublishUser(u, ev) => out.published_users.push((u, ev)),
                Effect::Accepted(u) => out.accepted.push(u),
                Effect::ReadTarget(seq) => out.target_reads.push(seq),
                Effect::Notify(n) => out.notices.push(*n),
                Effect::Hook(m) => out.hooks.push(*m),
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
        let again = self.owner.poll_timeout();
        assert!(again.is_none_or(|t| t > self.now), "due again at once after a timeout: {again:?}");
        self.out()
    }

    /// A send of `user` with client id `cmid`; returns its reply id.
    fn send(&mut self, user: &str, cmid: &str) -> u32 {
        self.send_reply_to(user, cmid, 0)
    }

    fn send_reply_to(&mut self, user: &str, cmid: &str, reply_to: u64) -> u32 {
        let text = v1::message_body::Content::Text(format!("from {user}"));
        self.send_body(user, cmid, reply_to, text)
    }

    fn send_body(&mut self, user: &str, cmid: &str, reply_to: u64, content: v1::message_body::Content) -> u32 {
        self.next += 1;
        let msg = v1::SendMessage {
            conversation_id: CONV,
            client_msg_id: cmid.into(),
            body: Some(v1::MessageBody { content: Some(content) }),
            reply_to,
            attachment_ids: Vec::new(),
        };
        // A service account's user id is `svc:<id>`: it sends as one.
        let role = if user.starts_with("svc:") { Role::Service } else { Role::Advocate };
        let caller = Caller { user: user.into(), role };
        self.owner.handle_send(self.now, caller, 100, msg, Vec::new(), self.next);
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
