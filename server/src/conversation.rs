//! The owner of one conversation: an actor on its home shard that alone
//! assigns sequence numbers, stores messages in group commits, keeps the
//! member list, typing state and receipt watermarks, and fans everything out
//! to the shards whose sessions subscribe.
//!
//! Group commit: sends that arrive while a commit is in flight wait in
//! `pending`; when the commit returns, all of them are sequenced and stored in
//! the next one. One append per conversation is in flight at a time, so a
//! failed commit can never leave a hole below a later one; the store's writer
//! batches the appends of all conversations into one fsync.

use crate::frames;
use crate::ids::{Caller, ConvId};
use crate::shard::broker::NUDGE_WINDOW;
use crate::shard::{AdminOp, ConvMsg, Fanout, Pushed, Reply, ShardCtx, ShardMsg, UserEvent};
use crate::store::{ConversationRecord, MemberRecord, MessageStore, NewMessage};
use bytes::Bytes;
use chat_protocol::WireError;
use chat_protocol::v1::{self, ConversationKind, ErrorCode, MemberRole, MembershipChange, ReceiptKind, Role, push};
use prost::Message;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Capacity of an actor's inbox.
const INBOX: usize = 4096;
/// Most sends sequenced into one append.
const MAX_BATCH: usize = 1024;
/// Recent client message ids remembered for retries without a store read.
const RECENT_IDS: usize = 4096;
/// Ticks with nothing to do after which an actor stops (5 minutes); the next
/// message for its conversation starts a new one from the store.
const IDLE_TICKS: u32 = 3000;
/// Receipts are pushed every this many ticks (500 ms): often enough for a
/// person watching ticks turn, rarely enough that in a busy room receipts do
/// not outnumber messages.
const RECEIPT_PUSH_TICKS: u32 = 5;
/// Delivered watermarks are stored every this many ticks (1 s).
const WATERMARK_FLUSH_TICKS: u32 = 10;
/// Times a message is sequenced again after other sequencers took its seq,
/// before its sender is told to retry.
const MAX_RESEQUENCE: u8 = 3;
/// The actor's tick: typing expiry, receipt pushes, retries.
const TICK: Duration = Duration::from_millis(100);

/// Spawns the actor of `conv` on this shard and returns its inbox.
pub fn spawn(ctx: Rc<ShardCtx>, conv: ConvId) -> mpsc::Sender<ConvMsg> {
    let (tx, rx) = mpsc::channel(INBOX);
    let me = tx.downgrade();
    tokio::task::spawn_local(async move {
        let store = ctx.shared.store.clone();
        let loaded = async {
            let Some(rec) = store.get_conversation(conv).await? else { return Ok(None) };
            let members = store.members(conv).await?;
            let last = store.last_seq(conv).await?;
            Ok::<_, crate::store::StoreError>(Some((rec, members, last)))
        }
        .await;
        match loaded {
            Ok(Some((rec, members, last))) => Actor::new(ctx.clone(), rec, members, last).run(rx, &me).await,
            Ok(None) => {
                refuse_all(rx, WireError::new(ErrorCode::NotFound, format!("conversation {conv} does not exist"))).await
            }
            Err(e) => {
                tracing::error!(conv, error = %e, "cannot load conversation");
                refuse_all(rx, WireError::new(ErrorCode::Unavailable, "conversation temporarily unavailable")).await
            }
        }
        remove_own_entry(&ctx, conv, &me);
    });
    tx
}

/// Forgets this actor in the shard's map, unless a successor already took its place.
fn remove_own_entry(ctx: &ShardCtx, conv: ConvId, me: &mpsc::WeakSender<ConvMsg>) {
    let mut actors = ctx.state.actors.borrow_mut();
    let mine = match (actors.get(&conv), me.upgrade()) {
        (Some(current), Some(me)) => current.same_channel(&me),
        _ => false,
    };
    if mine {
        actors.remove(&conv);
    }
}

/// Answers what is queued with `err`, then stops.
async fn refuse_all(mut rx: mpsc::Receiver<ConvMsg>, err: WireError) {
    rx.close();
    while let Some(m) = rx.recv().await {
        match m {
            ConvMsg::Send { reply, .. } => drop(reply.send(Err(err.clone()))),
            ConvMsg::Attach { reply, .. } => drop(reply.send(Err(err.clone()))),
            ConvMsg::Admin { reply, .. } => drop(reply.send(Err(err.clone()))),
            ConvMsg::Members { reply, .. } => drop(reply.send(Err(err.clone()))),
            ConvMsg::Receipt { reply: Some(reply), .. } => drop(reply.send(Err(err.clone()))),
            _ => {}
        }
    }
}

/// A message waiting to be sequenced and stored.
struct Pending {
    msg: v1::Message,
    replies: Vec<Reply<v1::SendMessageOk>>,
    /// The session that sent it.
    origin: u64,
    /// Times it was sequenced again after another node took its seq.
    resequenced: u8,
}

struct Actor {
    ctx: Rc<ShardCtx>,
    rec: ConversationRecord,
    members: HashMap<Arc<str>, MemberRecord>,
    /// Highest durable seq.
    committed: u64,
    pending: Vec<Pending>,
    /// The batch being committed, with its seqs assigned.
    inflight: Vec<Pending>,
    /// The push frames of the in-flight batch.
    inflight_frames: Option<Arc<[Pushed]>>,
    recent: HashMap<(Arc<str>, String), u64>,
    recent_order: VecDeque<(Arc<str>, String)>,
    subscribers: Vec<bool>,
    nudge: Vec<bool>,
    typing: HashMap<Arc<str>, Instant>,
    receipts: HashMap<(Arc<str>, i32), u64>,
    /// Watermarks moved since the last flush to the store, and who waits for it.
    dirty_watermarks: HashMap<Arc<str>, (u64, u64)>,
    watermark_waiters: Vec<Reply<()>>,
    /// A watermark flush is being written.
    flushing: Rc<std::cell::Cell<bool>>,
    /// User events a full mailbox refused, retried each tick.
    undelivered: VecDeque<(usize, Arc<str>, UserEvent)>,
    /// Sends are refused until then after a store failure.
    failing_until: Option<Instant>,
    /// Ticks with nothing to do; the actor stops after enough of them.
    idle_ticks: u32,
    /// Ticks so far.
    ticks: u32,
    /// When the head last moved (cluster: recently active conversations
    /// publish their head each second, so a lost last message is filled).
    last_commit: Option<Instant>,
}

type Commit = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), crate::store::StoreError>>>>;

impl Actor {
    fn new(ctx: Rc<ShardCtx>, rec: ConversationRecord, members: Vec<MemberRecord>, last: u64) -> Self {
        let shards = ctx.shared.mesh.len();
        // In a cluster sessions attach without telling the owner (it may be on
        // another node when they do), so every local shard gets the fan-out.
        let everyone = ctx.shared.broker.is_some();
        Self {
            ctx,
            rec,
            members: members.into_iter().map(|m| (Arc::from(m.user_id.as_str()), m)).collect(),
            committed: last,
            pending: Vec::new(),
            inflight: Vec::new(),
            inflight_frames: None,
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            subscribers: vec![everyone; shards],
            nudge: vec![false; shards],
            typing: HashMap::new(),
            receipts: HashMap::new(),
            dirty_watermarks: HashMap::new(),
            watermark_waiters: Vec::new(),
            flushing: Rc::new(std::cell::Cell::new(false)),
            undelivered: VecDeque::new(),
            failing_until: None,
            idle_ticks: 0,
            ticks: 0,
            // A new owner nudges its head for a few seconds too: the previous
            // owner may have stored messages it never got to fan out (it died).
            last_commit: everyone.then(Instant::now),
        }
    }

    fn id(&self) -> ConvId {
        self.rec.id
    }

    async fn run(mut self, mut rx: mpsc::Receiver<ConvMsg>, me: &mpsc::WeakSender<ConvMsg>) {
        let mut commit: Option<Commit> = None;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if commit.is_none() && !self.pending.is_empty() {
                commit = Some(self.start_commit());
            }
            tokio::select! {
                res = async { commit.as_mut().expect("guarded").await }, if commit.is_some() => {
                    commit = None;
                    self.finish_commit(res).await;
                }
                m = rx.recv() => match m {
                    Some(m) => self.handle(m).await,
                    None => break,
                },
                _ = tick.tick() => {
                    self.on_tick();
                    self.idle_ticks = if self.is_idle() { self.idle_ticks + 1 } else { 0 };
                    // No await between the emptiness check and leaving the map:
                    // the mailbox runs on this thread, so nothing slips in between.
                    if self.idle_ticks >= IDLE_TICKS && commit.is_none() && rx.is_empty() {
                        remove_own_entry(&self.ctx, self.id(), me);
                        return;
                    }
                }
            }
        }
        if let Some(c) = commit {
            let res = c.await;
            self.finish_commit(res).await;
        }
    }

    /// Nothing subscribed, queued, in flight or pending a flush.
    fn is_idle(&self) -> bool {
        (self.ctx.shared.broker.is_some() || !self.subscribers.contains(&true))
            && self.last_commit.is_none_or(|t| t.elapsed() > NUDGE_WINDOW)
            && self.pending.is_empty()
            && self.inflight.is_empty()
            && self.typing.is_empty()
            && self.receipts.is_empty()
            && self.dirty_watermarks.is_empty()
            && !self.flushing.get()
            && self.undelivered.is_empty()
            && !self.nudge.contains(&true)
    }

    fn is_member(&self, user: &str) -> bool {
        self.members.contains_key(user)
    }

    fn role_of(&self, user: &str) -> Option<MemberRole> {
        self.members.get(user).map(|m| MemberRole::try_from(m.role).unwrap_or(MemberRole::Member))
    }

    fn not_member(&self) -> WireError {
        no_access(self.id())
    }

    async fn handle(&mut self, m: ConvMsg) {
        match m {
            ConvMsg::Send { caller, origin, msg, reply } => self.on_send(caller, origin, msg, reply).await,
            ConvMsg::Attach { shard, user, reply } => {
                if !self.is_member(&user) {
                    let _ = reply.send(Err(self.not_member()));
                    return;
                }
                self.subscribers[shard] = true;
                let _ = reply.send(Ok(self.committed));
            }
            ConvMsg::Detach { shard } => self.subscribers[shard] = false,
            ConvMsg::Typing { user, typing } => {
                if !self.is_member(&user) {
                    return;
                }
                let was = self.typing.contains_key(&user);
                if typing {
                    let timeout = Duration::from_millis(self.ctx.shared.cfg.limits.typing_timeout_ms);
                    self.typing.insert(user.clone(), Instant::now() + timeout);
                } else {
                    self.typing.remove(&user);
                }
                if typing || was {
                    self.push_typing(&user, typing);
                }
            }
            ConvMsg::Receipt { user, kind, seq, reply } => match (self.on_receipt(&user, kind, seq), reply) {
                // A read receipt is answered once it is durable (an unread
                // count read right after must agree); group-committed.
                (Ok(true), Some(r)) if kind == ReceiptKind::Read => {
                    self.watermark_waiters.push(r);
                    self.flush_watermarks();
                }
                // Delivered watermarks move constantly (every device acks what
                // it got): kept in memory, pushed on the tick, stored each second.
                (Ok(_), r) => drop(r.map(|r| r.send(Ok(())))),
                (Err(e), r) => drop(r.map(|r| r.send(Err(e)))),
            },
            ConvMsg::Presence { user, online, version } => {
                self.fanout(Fanout::Presence { user, online, version });
            }
            ConvMsg::Admin { caller, op, reply } => {
                let res = self.on_admin(&caller, op).await;
                let _ = reply.send(res);
            }
            ConvMsg::Members { caller, reply } => {
                let ok = self.is_member(&caller.user)
                    || (caller.role == Role::Admin && self.rec.kind == ConversationKind::Support as i32);
                let _ = reply.send(if ok { Ok(self.member_list().await) } else { Err(self.not_member()) });
            }
        }
    }

    async fn on_send(
        &mut self,
        caller: Caller,
        origin: u64,
        msg: Box<v1::SendMessage>,
        reply: Reply<v1::SendMessageOk>,
    ) {
        let msg = *msg;
        // A retry of the caller's own message is answered first: it was accepted
        // before any later archive or removal, and must not look failed.
        let key = (caller.user.clone(), msg.client_msg_id.clone());
        if let Some(&seq) = self.recent.get(&key) {
            if seq <= self.committed {
                let _ = reply.send(Ok(self.ok(seq, true)));
            } else if let Some(p) = self.inflight.iter_mut().find(|p| p.msg.seq == seq) {
                p.replies.push(reply);
            }
            return;
        }
        if let Some(p) = self
            .pending
            .iter_mut()
            .find(|p| p.msg.sender_id == *caller.user && p.msg.client_msg_id == msg.client_msg_id)
        {
            p.replies.push(reply);
            return;
        }
        if let Some(until) = self.failing_until {
            // After a store failure every send is refused for a moment, so no
            // later message of a sender can overtake one that failed.
            if Instant::now() < until {
                let _ = reply.send(Err(unavailable()));
                return;
            }
            self.failing_until = None;
        }
        match self.ctx.shared.store.find_client_msg(self.id(), &caller.user, &msg.client_msg_id).await {
            Ok(Some(seq)) => {
                let _ = reply.send(Ok(self.ok(seq, true)));
                return;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(conv = self.id(), error = %e, "idempotency lookup failed");
                self.fail_pending();
                let _ = reply.send(Err(unavailable()));
                return;
            }
        }
        if !self.is_member(&caller.user) {
            let _ = reply.send(Err(self.not_member()));
            return;
        }
        if self.rec.archived_at_ms != 0 {
            let _ = reply.send(Err(WireError::new(ErrorCode::Archived, "conversation is archived (read-only)")));
            return;
        }
        if msg.reply_to != 0 && msg.reply_to > self.committed + self.inflight.len() as u64 + self.pending.len() as u64 {
            let _ = reply.send(Err(WireError::new(
                ErrorCode::InvalidArgument,
                format!("reply_to {} does not exist", msg.reply_to),
            )));
            return;
        }
        // A typing indicator ends with the message.
        if self.typing.remove(&caller.user).is_some() {
            self.push_typing(&caller.user, false);
        }
        let m = v1::Message {
            conversation_id: self.id(),
            seq: 0,
            sender_id: caller.user.to_string(),
            client_msg_id: msg.client_msg_id,
            body: msg.body,
            server_time_ms: 0,
            reply_to: msg.reply_to,
            kind: v1::MessageKind::User as i32,
        };
        self.pending.push(Pending { msg: m, replies: vec![reply], origin, resequenced: 0 });
    }

    /// Refuses everything waiting and every send for a second: the store failed.
    fn fail_pending(&mut self) {
        self.failing_until = Some(Instant::now() + Duration::from_secs(1));
        for p in std::mem::take(&mut self.pending) {
            for r in p.replies {
                let _ = r.send(Err(unavailable()));
            }
        }
    }

    fn ok(&self, seq: u64, duplicate: bool) -> v1::SendMessageOk {
        v1::SendMessageOk {
            conversation_id: self.id(),
            seq,
            server_time_ms: chat_protocol::unix_ms(std::time::SystemTime::now()),
            duplicate,
        }
    }

    /// Sequences everything pending and starts its append.
    fn start_commit(&mut self) -> Commit {
        // The store may need a batch cut (ScyllaDB: at a partition edge, so
        // that an append is all-or-nothing); the rest goes with the next commit.
        let limit = self.ctx.shared.store.append_run_limit(self.committed + 1).max(1);
        let n = self.pending.len().min(MAX_BATCH).min(limit);
        self.inflight = self.pending.drain(..n).collect();
        let now = chat_protocol::unix_ms(std::time::SystemTime::now());
        let mut batch = Vec::with_capacity(self.inflight.len());
        let mut ids = Vec::with_capacity(self.inflight.len());
        for (i, p) in self.inflight.iter_mut().enumerate() {
            p.msg.seq = self.committed + 1 + i as u64;
            p.msg.server_time_ms = now;
            batch.push(NewMessage {
                conversation_id: p.msg.conversation_id,
                seq: p.msg.seq,
                sender_id: p.msg.sender_id.clone(),
                client_msg_id: p.msg.client_msg_id.clone(),
                encoded: Bytes::from(p.msg.encode_to_vec()),
            });
            if !p.msg.client_msg_id.is_empty() {
                ids.push((Arc::from(p.msg.sender_id.as_str()), p.msg.client_msg_id.clone(), p.msg.seq));
            }
        }
        for (user, cmid, seq) in ids {
            self.remember(user, cmid, seq);
        }
        let frames: Vec<Pushed> = batch
            .iter()
            .zip(&self.inflight)
            .map(|(m, p)| Pushed { seq: m.seq, frame: frames::message_push(&m.encoded), origin: p.origin })
            .collect();
        let store = self.ctx.shared.store.clone();
        let fut = async move { store.append(batch).await };
        self.inflight_frames = Some(frames.into());
        Box::pin(fut)
    }

    fn remember(&mut self, user: Arc<str>, cmid: String, seq: u64) {
        let key = (user, cmid);
        if self.recent.insert(key.clone(), seq).is_none() {
            self.recent_order.push_back(key);
            if self.recent_order.len() > RECENT_IDS
                && let Some(old) = self.recent_order.pop_front()
            {
                self.recent.remove(&old);
            }
        }
    }

    async fn finish_commit(&mut self, res: Result<(), crate::store::StoreError>) {
        let batch = std::mem::take(&mut self.inflight);
        let frames = self.inflight_frames.take();
        match res {
            Ok(()) => {
                self.committed += batch.len() as u64;
                for p in batch {
                    // Writing is reading (the store moved it in the append too).
                    if let Some(m) = self.members.get_mut(p.msg.sender_id.as_str()) {
                        m.read_seq = m.read_seq.max(p.msg.seq);
                        m.delivered_seq = m.delivered_seq.max(p.msg.seq);
                    }
                    let ok = v1::SendMessageOk {
                        conversation_id: p.msg.conversation_id,
                        seq: p.msg.seq,
                        server_time_ms: p.msg.server_time_ms,
                        duplicate: false,
                    };
                    let mut replies = p.replies.into_iter();
                    if let Some(first) = replies.next() {
                        let _ = first.send(Ok(ok));
                    }
                    for r in replies {
                        let _ = r.send(Ok(v1::SendMessageOk { duplicate: true, ..ok }));
                    }
                }
                self.last_commit = Some(Instant::now());
                if let Some(frames) = frames {
                    self.fanout(Fanout::Messages(frames));
                }
            }
            Err(crate::store::StoreError::SeqTaken { seq, .. }) => self.fenced(seq, batch).await,
            Err(e) => {
                tracing::error!(conv = self.id(), error = %e, "append failed");
                for p in batch {
                    self.recent.remove(&(Arc::from(p.msg.sender_id.as_str()), p.msg.client_msg_id.clone()));
                    for r in p.replies {
                        let _ = r.send(Err(unavailable()));
                    }
                }
                self.fail_pending();
                // Re-read the head so the next seq follows what is really stored.
                if let Ok(last) = self.ctx.shared.store.last_seq(self.id()).await {
                    self.committed = last;
                }
            }
        }
    }

    /// Another sequencer stored `seq` first: in a cluster, another node that
    /// also believes it owns this conversation (membership views differ for up
    /// to a heartbeat) or that owned it a moment ago. The store's uniqueness of
    /// `(conversation, seq)` is the fence: nothing of the batch was written
    /// (a batch never exceeds the store's `append_run_limit`, within which an
    /// append is all-or-nothing).
    /// Reload the head and members from the store, then sequence the batch
    /// again (never acked, so nobody saw those seqs) — unless a message was
    /// stored meanwhile by the other node under its client id (a retry that
    /// went there), which is answered with that seq. A message fenced
    /// [`MAX_RESEQUENCE`] times is answered with a retryable `TIMEOUT` instead.
    async fn fenced(&mut self, seq: u64, batch: Vec<Pending>) {
        let conv = self.id();
        tracing::warn!(conv, seq, "seq taken by another sequencer; reloading the head");
        let store = self.ctx.shared.store.clone();
        let reloaded = async {
            let last = store.last_seq(conv).await?;
            let members = store.members(conv).await?;
            let rec = store.get_conversation(conv).await?;
            Ok::<_, crate::store::StoreError>((last, members, rec))
        }
        .await;
        let Ok((last, members, rec)) = reloaded else {
            for p in batch {
                self.recent.remove(&(Arc::from(p.msg.sender_id.as_str()), p.msg.client_msg_id.clone()));
                for r in p.replies {
                    let _ = r.send(Err(unavailable()));
                }
            }
            self.fail_pending();
            return;
        };
        self.committed = last;
        self.members = members.into_iter().map(|m| (Arc::from(m.user_id.as_str()), m)).collect();
        if let Some(rec) = rec {
            self.rec = rec;
        }
        let mut again = Vec::new();
        for mut p in batch {
            let key = (Arc::from(p.msg.sender_id.as_str()), p.msg.client_msg_id.clone());
            self.recent.remove(&key);
            // The other sequencer may have removed the sender or archived the
            // conversation meanwhile: checked again against what was reloaded.
            let refused = self.unpostable(&p);
            let stored = if p.msg.client_msg_id.is_empty() {
                Ok(None)
            } else {
                store.find_client_msg(conv, &p.msg.sender_id, &p.msg.client_msg_id).await
            };
            match stored {
                Ok(Some(seq)) => {
                    for r in p.replies {
                        let _ = r.send(Ok(self.ok(seq, true)));
                    }
                }
                Ok(None) if refused.is_some() => {
                    let e = refused.unwrap_or_else(unavailable);
                    for r in p.replies {
                        let _ = r.send(Err(e.clone()));
                    }
                }
                Ok(None) if p.resequenced < MAX_RESEQUENCE => {
                    p.resequenced += 1;
                    p.msg.seq = 0;
                    again.push(p);
                }
                Ok(None) => {
                    // Still contended: ownership is moving. TIMEOUT makes the SDK
                    // send it again (same client id) after a pause.
                    let e = WireError::limited(
                        ErrorCode::Timeout,
                        "forward_timeout_ms",
                        "another node is sequencing this conversation; retry",
                        Some(Duration::from_millis(200)),
                    );
                    for r in p.replies {
                        let _ = r.send(Err(e.clone()));
                    }
                }
                Err(_) => {
                    for r in p.replies {
                        let _ = r.send(Err(unavailable()));
                    }
                }
            }
        }
        // What is pending was checked against the old state too.
        for p in std::mem::take(&mut self.pending) {
            match self.unpostable(&p) {
                Some(e) => {
                    self.recent.remove(&(Arc::from(p.msg.sender_id.as_str()), p.msg.client_msg_id.clone()));
                    for r in p.replies {
                        let _ = r.send(Err(e.clone()));
                    }
                }
                None => again.push(p),
            }
        }
        // The fenced batch first, in its order: it arrived before what is pending.
        self.pending = again;
    }

    /// Why a user's message may not be stored (any more): the sender is no
    /// longer a member, or the conversation is archived. System lines pass.
    fn unpostable(&self, p: &Pending) -> Option<WireError> {
        if p.msg.kind != v1::MessageKind::User as i32 {
            return None;
        }
        if !self.is_member(&p.msg.sender_id) {
            return Some(self.not_member());
        }
        (self.rec.archived_at_ms != 0)
            .then(|| WireError::new(ErrorCode::Archived, "conversation is archived (read-only)"))
    }

    /// Sends to every subscribed shard; a full mailbox gets a nudge later.
    /// In a cluster, also to the other nodes (stored messages, typing,
    /// receipts, membership lines; presence travels on its own).
    fn fanout(&mut self, f: Fanout) {
        if let Some(c) = &self.ctx.shared.broker {
            c.publish_fanout(self.id(), &f);
        }
        let mesh = &self.ctx.shared.mesh;
        let conv = self.id();
        let is_messages = matches!(f, Fanout::Messages(_));
        for shard in 0..self.subscribers.len() {
            if !self.subscribers[shard] {
                continue;
            }
            if mesh.try_send(shard, ShardMsg::Fanout(conv, f.clone())).is_err() && is_messages {
                // Nothing is lost: the sessions there fill from the store on the nudge.
                self.nudge[shard] = true;
            }
        }
    }

    fn push_typing(&mut self, user: &Arc<str>, typing: bool) {
        let ev = push::Event::Typing(v1::TypingEvent { conversation_id: self.id(), user_id: user.to_string(), typing });
        self.fanout(Fanout::Ephemeral {
            frame: frames::push(ev.clone()),
            datagram: Some(frames::push_datagram(ev)),
            skip_user: Some(user.clone()),
        });
    }

    fn on_tick(&mut self) {
        // Typing that was not refreshed stops by itself.
        let now = Instant::now();
        let expired: Vec<Arc<str>> = self.typing.iter().filter(|(_, t)| **t <= now).map(|(u, _)| u.clone()).collect();
        for u in expired {
            self.typing.remove(&u);
            self.push_typing(&u, false);
        }
        self.ticks = self.ticks.wrapping_add(1);
        // Receipts, coalesced: everything that moved in the last half second, one push.
        if self.ticks.is_multiple_of(RECEIPT_PUSH_TICKS) && !self.receipts.is_empty() {
            let conv = self.id();
            let mut receipts: Vec<v1::ReceiptEvent> = std::mem::take(&mut self.receipts)
                .into_iter()
                .map(|((user, kind), seq)| v1::ReceiptEvent {
                    conversation_id: conv,
                    user_id: user.to_string(),
                    kind,
                    seq,
                })
                .collect();
            receipts.sort_by(|a, b| (&a.user_id, a.kind).cmp(&(&b.user_id, b.kind)));
            let ev = push::Event::Receipts(v1::ReceiptBatch { conversation_id: conv, receipts });
            self.fanout(Fanout::Ephemeral { frame: frames::push(ev), datagram: None, skip_user: None });
        }
        if self.ticks.is_multiple_of(WATERMARK_FLUSH_TICKS) {
            self.flush_watermarks();
            // Cluster: the head of a recently active conversation, once a
            // second, to every node (this one included), so a session that
            // lost the last fan-out fills it.
            if self.ctx.shared.broker.is_some() && self.last_commit.is_some_and(|t| t.elapsed() <= NUDGE_WINDOW) {
                self.fanout(Fanout::Nudge { head: self.committed });
            }
        }
        self.flush_watermarks();
        for _ in 0..self.undelivered.len() {
            let Some((shard, user, ev)) = self.undelivered.pop_front() else { break };
            if let Err(crate::shard::MailboxFull(ShardMsg::User(user, ev))) =
                self.ctx.shared.mesh.try_send(shard, ShardMsg::User(user, ev))
            {
                self.undelivered.push_back((shard, user, ev));
            }
        }
        // Retry nudges for shards whose mailbox was full.
        for shard in 0..self.nudge.len() {
            if self.nudge[shard] {
                let msg = ShardMsg::Fanout(self.id(), Fanout::Nudge { head: self.committed });
                self.nudge[shard] = self.ctx.shared.mesh.try_send(shard, msg).is_err();
            }
        }
    }

    /// Moves a watermark in memory; true if it moved (a flush is due).
    fn on_receipt(&mut self, user: &Arc<str>, kind: ReceiptKind, seq: u64) -> Result<bool, WireError> {
        let committed = self.committed;
        let big = self.members.len() > self.ctx.shared.cfg.session.receipts_max_members;
        let Some(m) = self.members.get_mut(user) else { return Err(self.not_member()) };
        let seq = seq.min(committed);
        let (delivered, read) = match kind {
            ReceiptKind::Read => (seq, seq),
            _ => (seq, 0),
        };
        let moved_read = read > m.read_seq;
        let moved_delivered = delivered > m.delivered_seq;
        if !moved_read && !moved_delivered {
            return Ok(false);
        }
        m.read_seq = m.read_seq.max(read);
        m.delivered_seq = m.delivered_seq.max(delivered);
        if moved_read {
            self.receipts.insert((user.clone(), ReceiptKind::Read as i32), m.read_seq);
        }
        if moved_delivered && !big {
            self.receipts.insert((user.clone(), ReceiptKind::Delivered as i32), m.delivered_seq);
        }
        let w = self.dirty_watermarks.entry(user.clone()).or_insert((0, 0));
        *w = (w.0.max(delivered), w.1.max(read));
        Ok(true)
    }

    /// Group commit for watermarks: writes what moved, off the actor's path,
    /// and answers the receipts that wait for it once it is durable. One flush
    /// at a time; what moves meanwhile goes with the next (started on the tick).
    fn flush_watermarks(&mut self) {
        if self.flushing.get() || self.dirty_watermarks.is_empty() {
            return;
        }
        self.flushing.set(true);
        let (store, conv, flushing) = (self.ctx.shared.store.clone(), self.id(), self.flushing.clone());
        let batch = std::mem::take(&mut self.dirty_watermarks);
        let waiters = std::mem::take(&mut self.watermark_waiters);
        tokio::task::spawn_local(async move {
            // Issued together, so the store's writer commits them in one fsync.
            let writes =
                batch.iter().map(|(user, &(delivered, read))| store.advance_watermarks(conv, user, delivered, read));
            let mut result = Ok(());
            for r in futures_util::future::join_all(writes).await {
                if let Err(e) = r {
                    tracing::warn!(conv, error = %e, "watermark not stored");
                    result = Err(unavailable());
                }
            }
            for w in waiters {
                let _ = w.send(result.clone());
            }
            flushing.set(false);
        });
    }

    async fn member_list(&self) -> Vec<v1::Member> {
        let ids: Vec<String> = self.members.keys().map(|u| u.to_string()).collect();
        let users: HashMap<String, crate::store::UserRecord> = match self.ctx.shared.store.get_users(&ids).await {
            Ok(v) => v.into_iter().map(|u| (u.id.clone(), u)).collect(),
            Err(_) => HashMap::new(),
        };
        let mut out: Vec<v1::Member> = self
            .members
            .values()
            .map(|m| {
                let u = users.get(&m.user_id);
                v1::Member {
                    user_id: m.user_id.clone(),
                    display_name: u.map(|u| u.display_name.clone()).unwrap_or_else(|| m.user_id.clone()),
                    role: m.role,
                    joined_at_ms: m.joined_at_ms,
                    delivered_seq: m.delivered_seq,
                    read_seq: m.read_seq,
                    user_role: u.map_or(0, |u| u.role),
                }
            })
            .collect();
        out.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        out
    }

    /// The conversation as `user` sees it (last message read from the store).
    async fn summary_for(&self, user: &str) -> v1::ConversationSummary {
        let m = self.members.get(user);
        summary(&self.ctx.shared.store, &self.rec, self.members.len(), self.committed, m).await
    }

    async fn on_admin(&mut self, caller: &Caller, op: AdminOp) -> Result<v1::ConversationSummary, WireError> {
        let kind = ConversationKind::try_from(self.rec.kind).unwrap_or(ConversationKind::Unspecified);
        let my_role = self.role_of(&caller.user);
        let forbidden = |why: &str| Err(WireError::new(ErrorCode::Forbidden, why.to_string()));
        let now = chat_protocol::unix_ms(std::time::SystemTime::now());
        let store = self.ctx.shared.store.clone();
        let backend = |e: crate::store::StoreError| {
            tracing::error!(error = %e, "membership write failed");
            unavailable()
        };
        match op {
            AdminOp::Created => {
                for user in self.members.keys().cloned().collect::<Vec<_>>() {
                    self.tell_user(&user, true).await;
                }
            }
            AdminOp::Join => {
                if self.is_member(&caller.user) {
                    return Err(WireError::new(ErrorCode::Conflict, "already a member"));
                }
                if kind != ConversationKind::Support || caller.role != Role::Admin {
                    return forbidden(
                        "only staff join, and only support conversations; ask a conversation admin to add you",
                    );
                }
                self.add_member(&caller.user, MemberRole::Admin, now).await.map_err(backend)?;
                if self.rec.support_state == v1::SupportState::Waiting as i32 {
                    let rec =
                        ConversationRecord { support_state: v1::SupportState::Assigned as i32, ..self.rec.clone() };
                    store.update_conversation(&rec).await.map_err(backend)?;
                    self.rec = rec;
                }
                self.membership_line(&caller.user, MembershipChange::Joined, &caller.user, MemberRole::Admin);
                self.tell_user(&caller.user, true).await;
                self.announce_metadata().await;
            }
            AdminOp::Leave => {
                if my_role.is_none() {
                    return Err(self.not_member());
                }
                if kind == ConversationKind::Private {
                    return forbidden("a private conversation cannot be left; archive it instead");
                }
                self.drop_member(&caller.user).await.map_err(backend)?;
                self.membership_line(&caller.user, MembershipChange::Left, &caller.user, MemberRole::Unspecified);
                self.tell_user(&caller.user, false).await;
            }
            AdminOp::Add(users) => {
                if kind == ConversationKind::Private {
                    return forbidden("a private conversation has exactly two members");
                }
                if !matches!(my_role, Some(MemberRole::Admin | MemberRole::Moderator)) {
                    return forbidden("only conversation admins and moderators add members");
                }
                if self.members.len() + users.len() > self.ctx.shared.cfg.limits.max_members {
                    return Err(WireError::limited(
                        ErrorCode::TooManyMembers,
                        "max_members",
                        format!("at most {} members", self.ctx.shared.cfg.limits.max_members),
                        None,
                    ));
                }
                let mut new: Vec<Arc<str>> = users.into_iter().filter(|u| !self.is_member(u)).map(Arc::from).collect();
                new.sort();
                new.dedup();
                // All written at once: the store's writer commits them in one fsync.
                let recs: Vec<MemberRecord> = new.iter().map(|u| self.new_member(u, MemberRole::Member, now)).collect();
                let writes = recs.iter().map(|r| store.put_member(r));
                for r in futures_util::future::join_all(writes).await {
                    r.map_err(backend)?;
                }
                for (u, rec) in new.iter().zip(recs) {
                    self.members.insert(u.clone(), rec);
                }
                for u in &new {
                    self.membership_line(u, MembershipChange::Added, &caller.user, MemberRole::Member);
                    self.tell_user(u, true).await;
                }
            }
            AdminOp::Remove(user) => {
                if kind == ConversationKind::Private {
                    return forbidden("a private conversation has exactly two members");
                }
                if my_role != Some(MemberRole::Admin) {
                    return forbidden("only conversation admins remove members");
                }
                if !self.is_member(&user) {
                    return Err(WireError::new(ErrorCode::NotFound, format!("{user} is not a member")));
                }
                let user: Arc<str> = user.into();
                self.drop_member(&user).await.map_err(backend)?;
                self.membership_line(&user, MembershipChange::Removed, &caller.user, MemberRole::Unspecified);
                self.tell_user(&user, false).await;
            }
            AdminOp::SetRole(user, role) => {
                if my_role != Some(MemberRole::Admin) {
                    return forbidden("only conversation admins change roles");
                }
                if role == MemberRole::Unspecified {
                    return Err(WireError::new(ErrorCode::InvalidArgument, "role must be member, moderator or admin"));
                }
                let Some(m) = self.members.get(user.as_str()) else {
                    return Err(WireError::new(ErrorCode::NotFound, format!("{user} is not a member")));
                };
                let rec = MemberRecord { role: role as i32, ..m.clone() };
                store.put_member(&rec).await.map_err(backend)?;
                if let Some(m) = self.members.get_mut(user.as_str()) {
                    m.role = rec.role;
                }
                let user: Arc<str> = user.into();
                self.membership_line(&user, MembershipChange::Role, &caller.user, role);
            }
            AdminOp::Archive(archive) => {
                let allowed =
                    my_role == Some(MemberRole::Admin) || (kind == ConversationKind::Private && my_role.is_some());
                if !allowed {
                    return forbidden("only conversation admins archive");
                }
                let rec = ConversationRecord { archived_at_ms: if archive { now } else { 0 }, ..self.rec.clone() };
                store.update_conversation(&rec).await.map_err(backend)?;
                self.rec = rec;
                self.announce_metadata().await;
            }
        }
        Ok(self.summary_for(&caller.user).await)
    }

    /// A membership starting at the current head (earlier messages are history).
    fn new_member(&self, user: &str, role: MemberRole, now: u64) -> MemberRecord {
        MemberRecord {
            conversation_id: self.id(),
            user_id: user.to_string(),
            role: role as i32,
            joined_at_ms: now,
            delivered_seq: self.committed,
            read_seq: self.committed,
        }
    }

    async fn add_member(
        &mut self,
        user: &Arc<str>,
        role: MemberRole,
        now: u64,
    ) -> Result<(), crate::store::StoreError> {
        let rec = self.new_member(user, role, now);
        self.ctx.shared.store.put_member(&rec).await?;
        self.members.insert(user.clone(), rec);
        Ok(())
    }

    async fn drop_member(&mut self, user: &Arc<str>) -> Result<(), crate::store::StoreError> {
        self.ctx.shared.store.remove_member(self.id(), user).await?;
        self.members.remove(user);
        self.typing.remove(user);
        Ok(())
    }

    /// Pushes a membership change to the subscribers (members see who came and went).
    fn membership_line(&mut self, user: &Arc<str>, change: MembershipChange, by: &str, role: MemberRole) {
        let ev = push::Event::Membership(v1::MembershipEvent {
            conversation_id: self.id(),
            user_id: user.to_string(),
            change: change as i32,
            by: by.to_string(),
            role: role as i32,
        });
        self.fanout(Fanout::Ephemeral { frame: frames::push(ev), datagram: None, skip_user: None });
    }

    /// Tells every shard that `user` was added to (or removed from) this conversation.
    async fn tell_user(&mut self, user: &Arc<str>, added: bool) {
        let s = self.summary_for(user).await;
        let frame = frames::push(push::Event::Conversation(v1::ConversationEvent { summary: Some(s) }));
        let ev = if added {
            UserEvent::Added(self.id(), self.committed, frame)
        } else {
            UserEvent::Removed(self.id(), frame)
        };
        self.send_user_event(user, ev);
    }

    /// Sends a user event to every shard; what a full mailbox refuses is retried each tick.
    fn send_user_event(&mut self, user: &Arc<str>, ev: UserEvent) {
        if let Some(c) = &self.ctx.shared.broker {
            c.publish_user_event(user, &ev);
        }
        for shard in 0..self.ctx.shared.mesh.len() {
            if self.ctx.shared.mesh.try_send(shard, ShardMsg::User(user.clone(), ev.clone())).is_err() {
                self.undelivered.push_back((shard, user.clone(), ev.clone()));
            }
        }
    }

    /// Pushes the new metadata (archive, support pick-up) to every member.
    async fn announce_metadata(&mut self) {
        let users: Vec<Arc<str>> = self.members.keys().cloned().collect();
        for user in users {
            let s = self.summary_for(&user).await;
            let frame = frames::push(push::Event::Conversation(v1::ConversationEvent { summary: Some(s) }));
            self.send_user_event(&user, UserEvent::Added(self.id(), self.committed, frame));
        }
    }
}

/// The one answer for "does not exist" and "not a member": telling them apart
/// would let anyone probe which conversations exist (private ids are derived
/// from the pair, so that would reveal who talks privately with whom).
pub fn no_access(conv: ConvId) -> WireError {
    WireError::new(ErrorCode::NotFound, format!("conversation {conv} does not exist or you are not a member"))
}

/// A conversation summary for one member (or a non-member, for staff).
pub async fn summary(
    store: &crate::store::Store,
    rec: &ConversationRecord,
    member_count: usize,
    last_seq: u64,
    me: Option<&MemberRecord>,
) -> v1::ConversationSummary {
    let last_message = if last_seq > 0 {
        let range = crate::store::Range {
            after: last_seq - 1,
            before: last_seq + 1,
            limit: 1,
            direction: crate::store::Direction::Forward,
        };
        match store.read_range(rec.id, range).await {
            Ok(v) => v.first().and_then(|(_, b)| v1::Message::decode(b.as_ref()).ok()),
            Err(_) => None,
        }
    } else {
        None
    };
    let read_seq = me.map_or(0, |m| m.read_seq);
    v1::ConversationSummary {
        conversation: Some(conversation_proto(rec, last_seq, member_count)),
        last_message,
        unread_count: last_seq.saturating_sub(read_seq),
        read_seq,
        my_role: me.map_or(0, |m| m.role),
    }
}

/// The wire form of a conversation record.
pub fn conversation_proto(rec: &ConversationRecord, last_seq: u64, member_count: usize) -> v1::Conversation {
    v1::Conversation {
        id: rec.id,
        kind: rec.kind,
        title: rec.title.clone(),
        case_id: rec.case_id.clone(),
        created_by: rec.created_by.clone(),
        created_at_ms: rec.created_at_ms,
        archived_at_ms: rec.archived_at_ms,
        support_state: rec.support_state,
        last_seq,
        member_count: member_count as u32,
        e2e: rec.e2e,
        retention_days: rec.retention_days,
        legal_hold: rec.legal_hold,
    }
}

fn unavailable() -> WireError {
    WireError::limited(
        ErrorCode::Unavailable,
        "store",
        "the store could not take the write; retry",
        Some(Duration::from_secs(1)),
    )
}
