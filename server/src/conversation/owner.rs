//! The owner of one conversation as a state machine that does no I/O: it
//! alone assigns sequence numbers, decides what to append and when, answers
//! senders once their message is durable, keeps the member list, typing state
//! and receipt watermarks, and says what to fan out to which shard.
//!
//! In the spirit of quinn-proto: inputs are `handle_*` methods with the time
//! passed in, outputs are [`Owner::poll_effect`] (what to do) and
//! [`Owner::poll_timeout`] (when to call [`Owner::handle_timeout`]). It reads
//! no clock, touches no store, channel or socket, and holds the callers'
//! reply handles as opaque tokens ([`Handles`]): the driver
//! (`super::driver`) performs the effects and feeds the results back; tests
//! drive it by hand.
//!
//! Group commit: sends that arrive while an append is in flight wait in
//! `pending`; when it returns, all of them are sequenced and stored in the
//! next one. One append per conversation is in flight at a time, so a failed
//! append can never leave a hole below a later one; the store's writer
//! batches the appends of all conversations into one fsync. Idempotency is a
//! bounded window of recent `(sender, client_msg_id) -> seq` in memory, and
//! beyond it the store's own check ([`StoreError::Duplicates`]).

mod change;
mod config;
mod e2e;
mod notice;
mod recovery;
mod side;
#[cfg(test)]
mod tests;
mod window;

use super::membership::Roster;
use super::summary;
use crate::frames;
use crate::ids::{Caller, ConvId};
use crate::shard::{Fanout, Pushed, ShardMsg, UserEvent};
use crate::store::{ConversationRecord, MemberRecord, MessageVersion, NewMessage, StoreError, TargetWrite};
use bytes::Bytes;
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, Role};
pub use config::{OwnerConfig, RunLimit};
pub use e2e::epoch_at_head;
pub use notice::{Notice, NoticeRules};
use prost::Message;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use window::Window;

/// The reply handles an owner holds until it can answer (oneshot senders in
/// the driver, plain ids in tests).
pub trait Handles {
    /// Answers a send: once the message is durable, or refused.
    type Send;
    /// Answers a read receipt: once the watermark is durable.
    type Receipt;
}

/// Most sends sequenced into one append.
pub const MAX_BATCH: usize = 1024;
/// Recent client message ids remembered for retries without a store read.
pub const RECENT_IDS: usize = 4096;
/// Times a message is sequenced again after other sequencers took its seq,
/// before its sender is told to retry.
pub const MAX_RESEQUENCE: u8 = 3;
/// After this long with nothing to do an owner stops; the next message for
/// its conversation starts a new one from the store.
pub const IDLE_AFTER: Duration = Duration::from_secs(300);
/// Sends are refused this long after a store failure.
pub const FAILURE_PAUSE: Duration = Duration::from_secs(1);
/// Receipts are pushed at most this often: often enough for a person watching
/// ticks turn, rarely enough that in a busy room receipts do not outnumber
/// messages.
pub const RECEIPT_PUSH: Duration = Duration::from_millis(500);
/// Delivered watermarks are stored this often; cluster heads are nudged this often.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Rooms over `receipts_max_members` store their activity (and so move up
/// their members' lists) at most this often: each move writes a list entry
/// per member.
pub const BIG_ROOM_TOUCH: Duration = Duration::from_secs(60);
/// A user event or nudge that a full mailbox refused is retried after this long.
pub const RETRY_AFTER: Duration = Duration::from_millis(100);

/// What the owner asks its driver to do, in order.
#[derive(Debug)]
pub enum Effect<R: Handles> {
    /// Append this batch; then call [`Owner::handle_committed`]. One at a time.
    Append(Vec<NewMessage>),
    /// Another sequencer took a seq: read the head, the members and the
    /// record; then call [`Owner::handle_reloaded`].
    Reload,
    /// The store failed: read the head; then call [`Owner::handle_head`].
    ReadHead,
    /// Store these watermarks `(user, delivered, read)`, all at once, then
    /// the conversation's activity if given (`touch_conversation`: it moves
    /// the conversation up its members' lists); then call
    /// [`Owner::handle_flushed`]. One at a time.
    Flush {
        /// `(user, delivered, read)`.
        watermarks: Vec<(Arc<str>, u64, u64)>,
        /// The server time of the last stored message, if it moved.
        touch: Option<u64>,
    },
    /// Answer a send.
    Sent(R::Send, Result<v1::SendMessageOk, WireError>),
    /// Answer a receipt.
    Receipted(R::Receipt, Result<(), WireError>),
    /// Put this into a shard's mailbox without waiting; a full one hands it
    /// back through [`Owner::handle_refused`].
    ToShard(usize, ShardMsg),
    /// Cluster: publish this fan-out to the other nodes.
    Publish(Fanout),
    /// Cluster: publish this user event to the other nodes.
    PublishUser(Arc<str>, UserEvent),
    /// A member of a private conversation accepted it (read or wrote in it
    /// for the first time): the others may now see whether they are online
    /// (`crate::presence::accepted`); show them where it stands now.
    Accepted(Arc<str>),
    /// Read the stored message at this seq (the target of parked changes);
    /// then call [`Owner::handle_target`]. Several may be out at once.
    ReadTarget(u64),
    /// Tell these members of a stored message if none of their devices is
    /// connected (offline notifications).
    Notify(Box<Notice>),
    /// A stored message for the webhooks of the service accounts among the members.
    Hook(Box<v1::Message>),
    /// Nothing to do for [`IDLE_AFTER`]: stop, unless a message is queued.
    Stop,
}

/// What a reload after a fence read from the store.
#[derive(Debug, Clone)]
pub struct Reloaded {
    /// The highest stored seq.
    pub last: u64,
    /// The members.
    pub members: Vec<MemberRecord>,
    /// The record (None: gone; the one in memory is kept).
    pub rec: Option<ConversationRecord>,
    /// E2E: the group's epoch after the head ([`epoch_at_head`]).
    pub mls_epoch: Option<u64>,
}

/// A message waiting to be sequenced and stored.
struct Pending<R: Handles> {
    msg: v1::Message,
    sender: Arc<str>,
    /// The first asker; retries joined later get `duplicate: true`.
    reply: R::Send,
    retries: Vec<R::Send>,
    /// The session that sent it.
    origin: u64,
    /// Times it was sequenced again after another node took its seq.
    resequenced: u8,
    /// An event: the message it changes, before and after (None: a message).
    change: Option<Box<change::Changed>>,
}

/// The store operation of the sequence in flight (one at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreOp {
    Idle,
    Appending,
    Reloading,
    ReadingHead,
}

/// The owner of one conversation.
pub struct Owner<R: Handles> {
    cfg: OwnerConfig,
    rec: ConversationRecord,
    members: HashMap<Arc<str>, MemberRecord>,
    /// Highest durable seq.
    committed: u64,
    pending: VecDeque<Pending<R>>,
    /// The batch being appended (or reloaded after a fence), seqs assigned.
    inflight: Vec<Pending<R>>,
    /// The push frames of the batch being appended.
    inflight_frames: Option<Vec<Pushed>>,
    store_op: StoreOp,
    recent: Window,
    subscribers: Vec<bool>,
    /// Shards owed a nudge (a fan-out of messages to them was refused).
    nudge: Vec<bool>,
    typing: HashMap<Arc<str>, Instant>,
    receipts: HashMap<(Arc<str>, i32), u64>,
    receipts_due: Option<Instant>,
    /// Watermarks moved since the last flush, and the read receipts waiting for the next.
    dirty: HashMap<Arc<str>, (u64, u64)>,
    waiters: Vec<R::Receipt>,
    /// The read receipts of the flush being written (Some while one is).
    flushing: Option<Vec<R::Receipt>>,
    flush_due: Option<Instant>,
    /// The server time of the last stored message, the activity stored, when
    /// it is to be stored next, the one being stored (Some while a flush
    /// carries it) and when it last was.
    activity: u64,
    activity_stored: u64,
    touch_due: Option<Instant>,
    touching: Option<u64>,
    touched_at: Option<Instant>,
    /// User events a full mailbox refused.
    undelivered: VecDeque<(usize, Arc<str>, UserEvent)>,
    retry_due: Option<Instant>,
    /// Sends are refused until then after a store failure.
    failing_until: Option<Instant>,
    /// When the head last moved (cluster: recently active conversations
    /// publish their head each second, so a lost last message is filled).
    last_commit: Option<Instant>,
    head_nudge_due: Option<Instant>,
    /// Since when there has been nothing to do.
    quiet_since: Option<Instant>,
    /// The latest state of messages changed lately by events, stored or on
    /// their way (see [`Owner::cached_target`]).
    targets: HashMap<u64, v1::Message>,
    /// The highest seq the retention job purged, as told (no change reaches it).
    purged_through: u64,
    /// E2E: the group's epoch after the stored messages (see [`e2e`]).
    mls_epoch: Option<u64>,
    /// Changes waiting for the store's copy of their target, in arrival order.
    parked: VecDeque<change::Parked<R>>,
    /// When each member was last considered for a notification.
    notified: HashMap<Arc<str>, Instant>,
    /// Periodic work runs on a grid from here.
    born: Instant,
    /// Wall-clock anchor: `(instant, unix ms)` at the same moment.
    wall: (Instant, u64),
    effects: VecDeque<Effect<R>>,
}

/// The retryable answer after a store failure.
pub(crate) fn unavailable() -> WireError {
    WireError::limited(
        ErrorCode::Unavailable,
        "store",
        "the store could not take the write; retry",
        Some(Duration::from_secs(1)),
    )
}

fn archived() -> WireError {
    WireError::new(ErrorCode::Archived, "conversation is archived (read-only)")
}

impl<R: Handles> Owner<R> {
    /// The owner of `rec` with its members and head (its seq and, E2E, the
    /// epoch after it), as loaded; `unix_ms` is the wall clock at `now`.
    pub fn new(
        cfg: OwnerConfig,
        rec: ConversationRecord,
        members: Vec<MemberRecord>,
        (last, mls_epoch): (u64, Option<u64>),
        now: Instant,
        unix_ms: u64,
    ) -> Self {
        // In a cluster sessions attach without telling the owner (it may be on
        // another node when they do), so every local shard gets the fan-out.
        let everyone = cfg.cluster;
        let shards = cfg.shards;
        let cap = cfg.recent_ids;
        let mut owner = Self {
            cfg,
            rec,
            members: members.into_iter().map(|m| (Arc::from(m.user_id.as_str()), m)).collect(),
            committed: last,
            pending: VecDeque::new(),
            inflight: Vec::new(),
            inflight_frames: None,
            store_op: StoreOp::Idle,
            recent: Window::new(cap),
            subscribers: vec![everyone; shards],
            nudge: vec![false; shards],
            typing: HashMap::new(),
            receipts: HashMap::new(),
            receipts_due: None,
            dirty: HashMap::new(),
            waiters: Vec::new(),
            flushing: None,
            flush_due: None,
            activity: 0,
            activity_stored: 0,
            touch_due: None,
            touching: None,
            touched_at: None,
            undelivered: VecDeque::new(),
            retry_due: None,
            failing_until: None,
            // A new owner nudges its head for a few seconds too: the previous
            // owner may have stored messages it never got to fan out (it died).
            last_commit: everyone.then_some(now),
            head_nudge_due: None,
            quiet_since: None,
            targets: HashMap::new(),
            purged_through: 0,
            mls_epoch,
            parked: VecDeque::new(),
            notified: HashMap::new(),
            born: now,
            wall: (now, unix_ms),
            effects: VecDeque::new(),
        };
        owner.settle(now);
        owner
    }

    /// The conversation's id.
    pub fn id(&self) -> ConvId {
        self.rec.id
    }

    /// Whether it is end-to-end encrypted (fixed at creation).
    pub fn is_e2e(&self) -> bool {
        self.rec.e2e
    }

    /// The highest durable seq.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// What the membership rules look at.
    pub fn roster(&self) -> Roster<'_> {
        Roster { rec: &self.rec, members: &self.members, committed: self.committed, max_members: self.cfg.max_members }
    }

    /// The next thing to do, if any. Drain after every input.
    #[must_use]
    pub fn poll_effect(&mut self) -> Option<Effect<R>> {
        self.effects.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due; None: nothing is
    /// (an idle conversation only has its eviction deadline).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let typing = self.typing.values().min().copied();
        let idle = self.idle_deadline();
        [typing, self.receipts_due, self.flush_due, self.retry_due, self.head_nudge_due, idle]
            .into_iter()
            .flatten()
            .min()
    }

    /// When the owner stops if nothing happens: [`IDLE_AFTER`] after it became
    /// quiet and after the head stopped being nudged.
    fn idle_deadline(&self) -> Option<Instant> {
        let quiet = self.quiet_since?;
        Some(self.last_commit.map_or(quiet, |t| quiet.max(t + crate::shard::broker::NUDGE_WINDOW)) + IDLE_AFTER)
    }

    /// Re-anchors the wall clock used for `server_time_ms` (the driver calls it
    /// before each send, so a stepped system clock is followed).
    pub fn handle_wall_clock(&mut self, now: Instant, unix_ms: u64) {
        self.wall = (now, unix_ms);
    }

    fn unix_ms(&self, now: Instant) -> u64 {
        let (at, ms) = self.wall;
        match now.checked_duration_since(at) {
            Some(d) => ms + d.as_millis() as u64,
            None => ms.saturating_sub((at - now).as_millis() as u64),
        }
    }

    fn ok(&self, seq: u64, duplicate: bool, now: Instant) -> v1::SendMessageOk {
        v1::SendMessageOk {
            conversation_id: self.id(),
            seq,
            server_time_ms: self.unix_ms(now),
            duplicate,
            attachments: Vec::new(),
        }
    }

    /// A member's read watermark moved from `was` to `now`: the first time in
    /// a private conversation they did not open, they accepted it.
    pub(super) fn note_acceptance(&mut self, user: &Arc<str>, was: u64, now: u64) {
        let private = self.rec.kind == v1::ConversationKind::Private as i32;
        if private && was == 0 && now > 0 && self.rec.created_by.as_str() != &**user {
            self.effects.push_back(Effect::Accepted(user.clone()));
        }
    }

    fn is_member(&self, user: &str) -> bool {
        self.members.contains_key(user)
    }

    /// A message to store and deliver, from `sender` (a session on this node
    /// or another: `origin` gets no echo). Answered once durable or refused.
    /// `attachments` are those it names, resolved by the caller.
    pub fn handle_send(
        &mut self,
        now: Instant,
        sender: Caller,
        origin: u64,
        msg: v1::SendMessage,
        attachments: Vec<v1::Attachment>,
        reply: R::Send,
    ) {
        self.send(now, sender, origin, msg, attachments, reply);
        self.settle(now);
    }

    fn send(
        &mut self,
        now: Instant,
        caller: Caller,
        origin: u64,
        mut msg: v1::SendMessage,
        attachments: Vec<v1::Attachment>,
        reply: R::Send,
    ) {
        // A service account's message (the server API's) is a system message.
        let kind = if caller.role == Role::Service { v1::MessageKind::System } else { v1::MessageKind::User };
        let cmid = std::mem::take(&mut msg.client_msg_id);
        let Some((sender, cmid, reply)) = self.admit(now, caller.user, cmid, reply) else {
            return;
        };
        let m = v1::Message {
            conversation_id: self.id(),
            sender_id: sender.to_string(),
            client_msg_id: cmid,
            body: msg.body,
            reply_to: msg.reply_to,
            kind: kind as i32,
            attachments,
            ..Default::default()
        };
        if let Some(e) = self.refusal(&sender, msg.reply_to).or_else(|| self.body_refusal(&m)) {
            self.effects.push_back(Effect::Sent(reply, Err(e)));
            return;
        }
        // A typing indicator ends with the message.
        if self.typing.remove(&sender).is_some() {
            self.push_typing(&sender, false);
        }
        self.pending.push_back(Pending {
            msg: m,
            sender,
            reply,
            retries: Vec::new(),
            origin,
            resequenced: 0,
            change: None,
        });
    }

    /// A new request of `sender` under `cmid`, or a retry: a retry of the
    /// caller's own message is answered (or joins the first attempt) here,
    /// first: it was accepted before any later archive or removal, and must
    /// not look failed. After a store failure every send is refused for a
    /// moment, so no later message of a sender can overtake one that failed.
    /// None: answered.
    fn admit(
        &mut self,
        now: Instant,
        sender: Arc<str>,
        cmid: String,
        reply: R::Send,
    ) -> Option<(Arc<str>, String, R::Send)> {
        let key = (sender, cmid);
        if let Some(&seq) = self.recent.get(&key) {
            match self.inflight.iter_mut().find(|p| p.msg.seq == seq) {
                Some(p) if seq > self.committed => p.retries.push(reply),
                _ => self.effects.push_back(Effect::Sent(reply, Ok(self.ok(seq, true, now)))),
            }
            return None;
        }
        let (sender, cmid) = key;
        if let Some(p) = self.pending.iter_mut().find(|p| p.sender == sender && p.msg.client_msg_id == cmid) {
            p.retries.push(reply);
            return None;
        }
        if let Some(until) = self.failing_until {
            if now < until {
                self.effects.push_back(Effect::Sent(reply, Err(unavailable())));
                return None;
            }
            self.failing_until = None;
        }
        Some((sender, cmid, reply))
    }

    /// Why a new message of `sender` is refused: not a member, archived, or a
    /// `reply_to` beyond the last message.
    fn refusal(&self, sender: &str, reply_to: u64) -> Option<WireError> {
        if !self.is_member(sender) {
            return Some(summary::no_access(self.id()));
        }
        if self.rec.archived_at_ms != 0 {
            return Some(archived());
        }
        let head = self.committed + self.inflight.len() as u64 + self.pending.len() as u64;
        (reply_to != 0 && reply_to > head)
            .then(|| WireError::new(ErrorCode::InvalidArgument, format!("reply_to {reply_to} does not exist")))
    }

    /// Why a message already accepted may not be stored (any more): the
    /// sender is no longer a member, or the conversation is archived.
    /// Events pass (the change was checked when it was accepted).
    fn unpostable(&self, p: &Pending<R>) -> Option<WireError> {
        let posted = [v1::MessageKind::User as i32, v1::MessageKind::System as i32];
        if !posted.contains(&p.msg.kind) {
            return None;
        }
        if !self.is_member(&p.sender) {
            return Some(summary::no_access(self.id()));
        }
        (self.rec.archived_at_ms != 0).then(archived)
    }

    /// Answers the first asker with `first` and every retry as a duplicate.
    fn answer(&mut self, p: Pending<R>, first: Result<v1::SendMessageOk, WireError>) {
        if p.retries.is_empty() {
            self.effects.push_back(Effect::Sent(p.reply, first));
            return;
        }
        let again = first.clone().map(|ok| v1::SendMessageOk { duplicate: true, ..ok });
        self.effects.push_back(Effect::Sent(p.reply, first));
        for r in p.retries {
            self.effects.push_back(Effect::Sent(r, again.clone()));
        }
    }

    /// Refuses everything waiting and every send for a moment: the store failed.
    fn fail_pending(&mut self, now: Instant) {
        self.failing_until = Some(now + FAILURE_PAUSE);
        // Changes build on what the owner believed was being stored.
        self.targets.clear();
        for p in std::mem::take(&mut self.pending) {
            self.answer(p, Err(unavailable()));
        }
    }

    /// Forgets a message's idempotency entry and refuses it with `e`.
    fn drop_message(&mut self, mut p: Pending<R>, e: WireError) {
        self.recent.forget(&p.sender, &mut p.msg.client_msg_id);
        self.answer(p, Err(e));
    }

    /// After every input: starts the next append if it can, and notes since
    /// when there has been nothing to do.
    fn settle(&mut self, now: Instant) {
        if self.store_op == StoreOp::Idle && !self.pending.is_empty() {
            self.start_append(now);
        }
        if self.store_op == StoreOp::Idle && self.pending.is_empty() && self.targets.len() > change::TARGETS {
            // Everything is stored: the store knows these as well.
            self.targets.clear();
        }
        self.schedule(now);
        if !self.is_quiet() {
            self.quiet_since = None;
        } else if self.quiet_since.is_none() {
            self.quiet_since = Some(now);
        }
    }

    /// Sequences what is pending (up to the batch limits) and asks for its append.
    fn start_append(&mut self, now: Instant) {
        // The store may need a batch cut (ScyllaDB: at a partition edge, so
        // that an append is all-or-nothing); the rest goes with the next append.
        let limit = (self.cfg.run_limit)(self.committed + 1).max(1);
        let n = self.pending.len().min(MAX_BATCH).min(limit);
        let mut epoch = self.mls_epoch;
        while self.inflight.len() < n {
            let Some(mut p) = self.pending.pop_front() else { break };
            match e2e::stamp_epoch(self.rec.e2e, &mut p.msg, &mut epoch) {
                Ok(()) => self.inflight.push(p),
                Err(e) => self.answer(p, Err(e)),
            }
        }
        if self.inflight.is_empty() {
            return;
        }
        let time = self.unix_ms(now);
        let mut batch = Vec::with_capacity(n);
        let mut pushed = Vec::with_capacity(n);
        for (i, p) in self.inflight.iter_mut().enumerate() {
            p.msg.seq = self.committed + 1 + i as u64;
            p.msg.server_time_ms = time;
            let encoded = Bytes::from(p.msg.encode_to_vec());
            pushed.push(Pushed {
                seq: p.msg.seq,
                frame: frames::message_push(&encoded),
                origin: p.origin,
                // Set again at the commit (see `handle_committed`).
                committed: now,
            });
            let target = p.change.as_ref().map(|c| {
                Box::new(TargetWrite {
                    seq: c.latest.seq,
                    latest: Bytes::from(c.latest.encode_to_vec()),
                    version: MessageVersion {
                        conversation_id: p.msg.conversation_id,
                        target_seq: c.latest.seq,
                        event_seq: p.msg.seq,
                        changed_by: p.msg.sender_id.clone(),
                        changed_at_ms: time,
                        kind: p.msg.kind,
                        prior: c.prior.encode_to_vec(),
                    },
                })
            });
            batch.push(NewMessage {
                conversation_id: p.msg.conversation_id,
                seq: p.msg.seq,
                sender_id: p.msg.sender_id.clone(),
                client_msg_id: p.msg.client_msg_id.clone(),
                encoded,
                target,
            });
            self.recent.remember((p.sender.clone(), p.msg.client_msg_id.clone()), p.msg.seq);
        }
        self.inflight_frames = Some(pushed);
        self.store_op = StoreOp::Appending;
        self.effects.push_back(Effect::Append(batch));
    }

    /// The append asked for last returned.
    pub fn handle_committed(&mut self, now: Instant, res: Result<(), StoreError>) {
        debug_assert_eq!(self.store_op, StoreOp::Appending);
        self.store_op = StoreOp::Idle;
        let frames = self.inflight_frames.take();
        match res {
            Ok(()) => {
                let batch = std::mem::take(&mut self.inflight);
                self.committed += batch.len() as u64;
                if let Some(last) = batch.last().filter(|_| self.rec.e2e) {
                    self.mls_epoch = Some(last.msg.mls_epoch);
                }
                for p in batch {
                    // Writing is reading (the store moved it in the append too).
                    if let Some(m) = self.members.get_mut(&p.sender) {
                        let was = m.read_seq;
                        m.read_seq = m.read_seq.max(p.msg.seq);
                        m.delivered_seq = m.delivered_seq.max(p.msg.seq);
                        let now_read = m.read_seq;
                        self.note_acceptance(&p.sender, was, now_read);
                    }
                    self.activity = self.activity.max(p.msg.server_time_ms);
                    self.notice(now, &p.msg, &p.sender);
                    self.hook(&p.msg);
                    let ok = v1::SendMessageOk {
                        conversation_id: p.msg.conversation_id,
                        seq: p.msg.seq,
                        server_time_ms: p.msg.server_time_ms,
                        duplicate: false,
                        attachments: p.msg.attachments.clone(),
                    };
                    self.answer(p, Ok(ok));
                }
                self.last_commit = Some(now);
                if let Some(mut frames) = frames {
                    // Delivery latency is measured from here, the commit.
                    for p in &mut frames {
                        p.committed = now;
                    }
                    self.fanout(Fanout::Messages(frames.into()));
                }
            }
            Err(StoreError::SeqTaken { seq, .. }) => {
                // Kept in flight (retries still join it) until the reload.
                tracing::warn!(conv = self.id(), seq, "seq taken by another sequencer; reloading the head");
                self.store_op = StoreOp::Reloading;
                self.effects.push_back(Effect::Reload);
            }
            Err(StoreError::Duplicates(stored)) => self.duplicates(now, stored),
            Err(e) => self.append_failed(now, &e),
        }
        self.settle(now);
    }

    /// Sends to every subscribed shard (a full mailbox comes back through
    /// [`handle_refused`](Self::handle_refused)). In a cluster, also to the
    /// other nodes (stored messages, typing, receipts, membership lines;
    /// presence travels on its own).
    fn fanout(&mut self, f: Fanout) {
        if self.cfg.cluster {
            self.effects.push_back(Effect::Publish(f.clone()));
        }
        let conv = self.id();
        let Some(last) = self.subscribers.iter().rposition(|&s| s) else { return };
        for shard in 0..last {
            if self.subscribers[shard] {
                self.effects.push_back(Effect::ToShard(shard, ShardMsg::Fanout(conv, f.clone())));
            }
        }
        self.effects.push_back(Effect::ToShard(last, ShardMsg::Fanout(conv, f)));
    }
}
