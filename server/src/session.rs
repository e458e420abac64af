//! One connection: handshake (token, resume cursors), request dispatch, and
//! the outbound path that turns fan-outs into writes on the events stream.
//!
//! Outbound is where "nothing lost, nothing repeated, nothing reordered" is
//! kept: per conversation the session remembers the last seq it wrote
//! (`sent`). A message at `sent + 1` is written; one at or below `sent` is
//! dropped; one above `sent + 1` first makes the session read the gap from the
//! store. Resume, a full queue and a lost fan-out all take that same road, so
//! there is one mechanism to trust rather than three.

use crate::conversation::{AdminOp, Caller, ConvMsg};
use crate::frames;
use crate::server::ShardCtx;
use crate::shard::{ConvId, Fanout, Frame, PresenceMsg, ShardMsg, UserEvent, user_shard};
use crate::store::{ConversationRecord, Direction, MemberRecord, MessageStore, Range, UserRecord};
use crate::transport::{Conn, ReadError, RecvStream, SendStream};
use bytes::{Bytes, BytesMut};
use chat_protocol::v1::{
    self, ConversationKind, ErrorCode, MemberRole, ReceiptKind, Role, client_frame, command, push, reply,
};
use chat_protocol::{FrameDecoder, FrameError, WireError};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use prost::Message;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};

/// What the shard hands a session.
#[derive(Debug)]
pub enum SessionMsg {
    /// A fan-out of a subscribed conversation.
    Fanout(ConvId, Fanout),
    /// An event for this user.
    User(UserEvent),
    /// The server is stopping: write this `Goodbye` push.
    Goodbye(Frame),
}

/// The shard's view of a session.
pub struct SessionHandle {
    /// Unique id.
    pub id: u64,
    /// Whose.
    pub user: Arc<str>,
    /// Its bounded inbox.
    pub tx: mpsc::Sender<SessionMsg>,
    /// Conversations it is subscribed to.
    pub attached: RefCell<HashSet<ConvId>>,
    /// Conversations whose fan-out was dropped (full inbox): fill from the store.
    pub lagged: RefCell<HashSet<ConvId>>,
    /// A user event was dropped: reload the conversation list.
    pub lost_user_event: Cell<bool>,
    /// Conversations the user was removed from: nothing more of them is
    /// written, whatever is still queued. Set by the shard's mailbox the moment
    /// the removal arrives, before the session's own queue gets to it.
    pub revoked: RefCell<HashSet<ConvId>>,
    /// Wakes the outbound task after a drop.
    pub wake: Notify,
}

impl SessionHandle {
    /// A session's handle with its inbox; subscribed to nothing yet.
    pub fn new(id: u64, user: Arc<str>, tx: mpsc::Sender<SessionMsg>) -> Self {
        Self {
            id,
            user,
            tx,
            attached: RefCell::default(),
            lagged: RefCell::default(),
            lost_user_event: Cell::new(false),
            revoked: RefCell::default(),
            wake: Notify::new(),
        }
    }

    /// Hands a fan-out to the session; stored messages are never dropped
    /// silently: a full inbox marks the conversation for a store fill.
    pub fn deliver(&self, conv: ConvId, f: &Fanout) {
        let stored = matches!(f, Fanout::Messages(_) | Fanout::Nudge { .. });
        if self.tx.try_send(SessionMsg::Fanout(conv, f.clone())).is_err() && stored {
            self.lagged.borrow_mut().insert(conv);
            self.wake.notify_one();
        }
    }

    /// Hands a user event to the session.
    pub fn deliver_user(&self, ev: &UserEvent) {
        if self.tx.try_send(SessionMsg::User(ev.clone())).is_err() {
            self.lost_user_event.set(true);
            self.wake.notify_one();
        }
    }
}

/// Most requests in flight per connection; past it the session stops reading.
const MAX_INFLIGHT: usize = 256;
/// Most bytes taken from a stream at once.
const READ_CHUNK: usize = 16 * 1024;
/// Largest `Hello` (about 70,000 resume cursors).
pub(crate) const HELLO_MAX_BYTES: usize = 1 << 20;
/// Messages read from the store per page when filling a gap.
const FILL_PAGE: usize = 256;
/// Cluster: how often a session looks whether remote user events may have
/// been lost (an atomic load; see `Cluster::reconcile_epoch`).
const RECONCILE_CHECK: Duration = Duration::from_secs(1);
/// Cluster: a session reconciles its conversations with the store every this
/// many checks anyway (staggered), so a lost "removed" is bounded in time.
const RECONCILE_EVERY: u32 = 5;
/// Default and largest conversation-list page.
const LIST_PAGE: (u32, u32) = (50, 500);

type CmdFuture = Pin<Box<dyn Future<Output = (u64, Result<reply::Result, WireError>)>>>;

fn err(code: ErrorCode, msg: impl Into<String>) -> WireError {
    WireError::new(code, msg)
}

/// Runs one connection to its end. `conn_limited` is set when the peer's
/// address is over its connection rate: it gets a precise refusal.
pub async fn run(ctx: Rc<ShardCtx>, conn: Conn, conn_limited: Option<Duration>) {
    let remote = conn.remote();
    let timeout = Duration::from_millis(ctx.shared.cfg.session.handshake_timeout_ms);
    let hs = tokio::time::timeout(timeout, handshake(&ctx, &conn, conn_limited)).await;
    let (mut ctl_tx, ctl_rx, dec, buf, hello, ident) = match hs {
        Ok(Ok(v)) => v,
        Ok(Err(Some((e, mut tx)))) => {
            tracing::info!(%remote, error = %e, "handshake refused");
            let _ = tx.write_all(&frames::error_reply(0, &e)).await;
            tx.finish();
            // Give the refusal a moment to reach the peer before the close.
            tokio::time::sleep(Duration::from_millis(50)).await;
            conn.close(e.code as u32, &e.message);
            return;
        }
        Ok(Err(None)) => return,
        Err(_) => {
            conn.close(ErrorCode::HandshakeTimeout as u32, "no hello in time");
            return;
        }
    };
    let id = ctx.shared.next_session_id();
    let (tx, rx) = mpsc::channel(ctx.shared.cfg.session.outbound_queue);
    let handle = Rc::new(SessionHandle::new(id, Arc::from(ident.user_id.as_str()), tx));
    let caller = Caller { user: handle.user.clone(), role: ident.role };
    let s = Rc::new(Session {
        ctx: ctx.clone(),
        conn: conn.clone(),
        handle: handle.clone(),
        caller,
        ident,
        contacts: RefCell::new(HashSet::new()),
        announced: Cell::new(false),
        send_blocked_until: Cell::new(None),
    });
    ctx.state.sessions.borrow_mut().add_user(&handle);
    tracing::debug!(session = id, user = %handle.user, %remote, transport = conn.kind(), "connected");

    let result = s.clone().serve(&mut ctl_tx, ctl_rx, dec, buf, hello, rx).await;
    if let Err(e) = &result {
        tracing::debug!(session = id, error = %e, "session ended");
    }
    s.cleanup().await;
}

type Handshake = (SendStream, RecvStream, FrameDecoder, BytesMut, v1::Hello, crate::auth::Identity);

/// Reads `Hello` and checks the token. An error carries the control stream to answer on.
async fn handshake(
    ctx: &ShardCtx,
    conn: &Conn,
    conn_limited: Option<Duration>,
) -> Result<Handshake, Option<(WireError, SendStream)>> {
    let (tx, mut rx) = conn.accept_bi().await.map_err(|_| None)?;
    if let Some(retry) = conn_limited {
        let e = WireError::limited(
            ErrorCode::ConnectionRateLimited,
            "connections_per_minute_per_ip",
            format!(
                "more than {} new connections per minute from this address",
                ctx.shared.cfg.limits.connections_per_minute_per_ip
            ),
            Some(retry),
        );
        return Err(Some((e, tx)));
    }
    // A Hello carries one cursor per conversation, so it may exceed the
    // command limit; it is read once per connection, before anything else.
    let mut dec = FrameDecoder::new(HELLO_MAX_BYTES.max(ctx.shared.cfg.limits.max_frame_bytes));
    let mut buf = BytesMut::new();
    let frame = loop {
        match dec.decode(&mut buf) {
            Ok(Some(f)) => break f,
            Ok(None) => {}
            Err(e) => return Err(Some((err(ErrorCode::ProtocolViolation, format!("bad hello frame: {e}")), tx))),
        }
        match rx.read_chunk(READ_CHUNK).await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            Err(ReadError::NotFrames(why)) => {
                return Err(Some((err(ErrorCode::ProtocolViolation, format!("bad hello frame: {why}")), tx)));
            }
            _ => return Err(None),
        }
    };
    dec = FrameDecoder::new(ctx.shared.cfg.limits.max_frame_bytes);
    let hello = match v1::ClientFrame::decode(frame) {
        Ok(v1::ClientFrame { kind: Some(client_frame::Kind::Hello(h)) }) => h,
        Ok(_) => return Err(Some((err(ErrorCode::ProtocolViolation, "the first frame must be Hello"), tx))),
        Err(e) => return Err(Some((err(ErrorCode::ProtocolViolation, format!("hello does not decode: {e}")), tx))),
    };
    if hello.protocol_version > chat_protocol::PROTOCOL_VERSION {
        let e = err(
            ErrorCode::UnsupportedVersion,
            format!(
                "protocol {} is not served; this server speaks {}",
                hello.protocol_version,
                chat_protocol::PROTOCOL_VERSION
            ),
        );
        return Err(Some((e, tx)));
    }
    match ctx.shared.verifier.verify(&hello.token) {
        Ok(ident) => Ok((tx, rx, dec, buf, hello, ident)),
        Err(e) => Err(Some((e, tx))),
    }
}

struct Session {
    ctx: Rc<ShardCtx>,
    conn: Conn,
    handle: Rc<SessionHandle>,
    caller: Caller,
    ident: crate::auth::Identity,
    /// Users who share a conversation with this one (presence is theirs to see).
    contacts: RefCell<HashSet<Arc<str>>>,
    /// Whether this device was counted at the user's home shard.
    announced: Cell<bool>,
    /// After a refused send, every send of this connection is refused until
    /// then, so no later message can overtake the refused one.
    send_blocked_until: Cell<Option<tokio::time::Instant>>,
}

impl Session {
    fn store(&self) -> &crate::store::Store {
        &self.ctx.shared.store
    }

    async fn serve(
        self: Rc<Self>,
        ctl_tx: &mut SendStream,
        mut ctl_rx: RecvStream,
        mut dec: FrameDecoder,
        mut buf: BytesMut,
        hello: v1::Hello,
        inbox: mpsc::Receiver<SessionMsg>,
    ) -> anyhow::Result<()> {
        let user = &self.ident;
        self.store()
            .upsert_user(&UserRecord {
                id: user.user_id.clone(),
                display_name: user.display_name.clone(),
                role: user.role as i32,
            })
            .await?;
        // Subscribe to every conversation first: from here on nothing is missed.
        let convs = self.store().user_conversations(&user.user_id).await?;
        let mut heads = Vec::with_capacity(convs.len());
        for conv in convs {
            match self.attach(conv).await {
                Some(head) => heads.push(v1::Cursor { conversation_id: conv, seq: head }),
                // Left meanwhile, or the owner could not answer: reconcile with the store later.
                None => self.handle.lost_user_event.set(true),
            }
        }
        let lim = &self.ctx.shared.cfg.limits;
        let welcome = v1::Welcome {
            user: Some(v1::User {
                id: user.user_id.clone(),
                display_name: user.display_name.clone(),
                role: user.role as i32,
            }),
            epoch: self.store().epoch().to_string(),
            session_id: self.handle.id,
            heads: heads.clone(),
            limits: Some(v1::Limits {
                max_text_bytes: lim.max_text_bytes as u32,
                max_frame_bytes: lim.max_frame_bytes as u32,
                messages_per_minute: lim.messages_per_minute,
                typing_timeout_ms: lim.typing_timeout_ms as u32,
                max_members: lim.max_members as u32,
            }),
            server_time_ms: chat_protocol::unix_ms(std::time::SystemTime::now()),
            node: self.ctx.shared.cfg.node_name.clone(),
        };
        let f = v1::ServerFrame { kind: Some(v1::server_frame::Kind::Welcome(welcome)) };
        ctl_tx.write_all(&f.encode_length_delimited_to_vec()).await?;
        let events = self.conn.open_uni().await?;

        // Where each conversation starts for this connection.
        let resume = hello.resume && hello.epoch == self.store().epoch();
        let cursors: HashMap<u64, u64> = hello.cursors.iter().map(|c| (c.conversation_id, c.seq)).collect();
        let mut sent = HashMap::new();
        let mut initial = Vec::new();
        for h in &heads {
            let start = match cursors.get(&h.conversation_id) {
                Some(&c) if resume => c.min(h.seq),
                _ => h.seq,
            };
            sent.insert(h.conversation_id, start);
            initial.push(h.conversation_id);
        }
        let resync = hello.resume && !resume;

        let out = Outbound { s: self.clone(), events, sent, presence_seen: HashMap::new() };
        let writer = tokio::task::spawn_local(out.run(inbox, initial, resync, hello.resume));

        self.announce_presence(true).await;
        let res = self.read_loop(ctl_tx, &mut ctl_rx, &mut dec, &mut buf).await;
        writer.abort();
        res
    }

    /// Subscribes to a conversation's fan-out; the head at that moment, or
    /// None if the owner refuses (no longer a member).
    async fn attach(&self, conv: ConvId) -> Option<u64> {
        self.ctx.state.sessions.borrow_mut().subscribe(conv, &self.handle);
        if self.ctx.remote_owner(conv).is_some() {
            // Owned by another node: its fan-out reaches every node, so there is
            // nothing to register there; membership and head come from the
            // shared store, read after subscribing, so nothing falls between.
            if let Ok(Some(_)) = self.store().member(conv, &self.handle.user).await
                && let Ok(head) = self.store().last_seq(conv).await
            {
                return Some(head);
            }
            self.detach(conv);
            return None;
        }
        let (tx, rx) = oneshot::channel();
        let msg = ConvMsg::Attach { shard: self.ctx.state.id, user: self.handle.user.clone(), reply: tx };
        if self.ctx.shared.mesh.to_owner(conv, msg).await.is_ok()
            && let Ok(Ok(head)) = rx.await
        {
            return Some(head);
        }
        self.detach(conv);
        None
    }

    /// Unsubscribes locally. The owner learns that this shard has nobody left
    /// lazily: the mailbox answers the next fan-out that finds no session with
    /// a `Detach`, in the same order as any later `Attach` from this shard.
    fn detach(&self, conv: ConvId) {
        self.ctx.state.sessions.borrow_mut().unsubscribe(conv, self.handle.id);
    }

    /// Registers this device with the user's home shard, and on a flip tells
    /// every conversation of the user.
    async fn announce_presence(&self, connected: bool) {
        let mesh = &self.ctx.shared.mesh;
        let (tx, rx) = oneshot::channel();
        let user = self.handle.user.clone();
        let msg = if connected {
            PresenceMsg::Connected(user.clone(), tx)
        } else {
            PresenceMsg::Disconnected(user.clone(), tx)
        };
        if mesh.send(user_shard(&user, mesh.len()), ShardMsg::Presence(msg)).await.is_err() {
            return;
        }
        let Ok(change) = rx.await else { return };
        self.announced.set(connected);
        if !change.flipped {
            return;
        }
        if self.ctx.shared.cluster.is_some() {
            // Every node announces flips to its own sessions (see `presence_fanout`).
            presence_fanout(&self.ctx, user, connected, change.version);
            return;
        }
        let convs: Vec<ConvId> = match self.store().user_conversations(&user).await {
            Ok(v) => v,
            Err(_) => return,
        };
        for conv in convs {
            let _ = mesh
                .to_owner(conv, ConvMsg::Presence { user: user.clone(), online: connected, version: change.version })
                .await;
        }
    }

    async fn cleanup(&self) {
        self.ctx.state.sessions.borrow_mut().remove(&self.handle);
        if self.announced.get() {
            self.announce_presence(false).await;
        }
        tracing::debug!(session = self.handle.id, "disconnected");
    }

    async fn read_loop(
        self: &Rc<Self>,
        ctl_tx: &mut SendStream,
        rx: &mut RecvStream,
        dec: &mut FrameDecoder,
        buf: &mut BytesMut,
    ) -> anyhow::Result<()> {
        let mut inflight: FuturesUnordered<CmdFuture> = FuturesUnordered::new();
        let mut shutdown = self.ctx.shutdown.clone();
        let bad_quota = governor::Quota::per_minute(
            std::num::NonZeroU32::new(self.ctx.shared.cfg.limits.bad_frames_per_minute.max(1)).expect("non-zero"),
        );
        let bad_frames = governor::RateLimiter::direct(bad_quota);
        let write_timeout = Duration::from_millis(self.ctx.shared.cfg.session.write_timeout_ms);
        loop {
            // Take every whole frame already buffered.
            while inflight.len() < MAX_INFLIGHT {
                let frame = match dec.decode(buf) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(FrameError::TooLarge { len, max, command_id }) => {
                        let e = WireError::limited(
                            ErrorCode::FrameTooLarge,
                            "max_frame_bytes",
                            format!("frame of {len} bytes is over the {max}-byte limit"),
                            None,
                        );
                        write_with_timeout(ctl_tx, &frames::error_reply(command_id.unwrap_or(0), &e), write_timeout)
                            .await?;
                        if bad_frames.check().is_err() {
                            return self.violation("too many bad frames").await;
                        }
                        continue;
                    }
                    Err(FrameError::BadPrefix) => return self.violation("frame length prefix is not a varint").await,
                };
                match v1::ClientFrame::decode(frame.clone()) {
                    Ok(v1::ClientFrame { kind: Some(client_frame::Kind::Command(cmd)) }) => {
                        if let Some(fut) = self.dispatch(cmd).await {
                            inflight.push(fut);
                        }
                    }
                    Ok(v1::ClientFrame { kind }) => {
                        let what = if kind.is_some() { "Hello after the handshake" } else { "an empty frame" };
                        let e = err(ErrorCode::Malformed, format!("expected a Command, got {what}"));
                        write_with_timeout(ctl_tx, &frames::error_reply(0, &e), write_timeout).await?;
                        if bad_frames.check().is_err() {
                            return self.violation("too many bad frames").await;
                        }
                    }
                    Err(de) => {
                        let id = chat_protocol::peek_command_id(&frame).unwrap_or(0);
                        let code = if de.to_string().contains("UTF-8") {
                            ErrorCode::InvalidArgument
                        } else {
                            ErrorCode::Malformed
                        };
                        let e = err(code, format!("frame does not decode: {de}"));
                        write_with_timeout(ctl_tx, &frames::error_reply(id, &e), write_timeout).await?;
                        if bad_frames.check().is_err() {
                            return self.violation("too many bad frames").await;
                        }
                    }
                }
            }
            let can_read = inflight.len() < MAX_INFLIGHT;
            tokio::select! {
                r = rx.read_chunk(READ_CHUNK), if can_read => match r {
                    Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                    Ok(None) => return Ok(()),
                    // Bytes that are not frames (a text WebSocket message): a malformed frame.
                    Err(ReadError::NotFrames(why)) => {
                        let e = err(ErrorCode::Malformed, why);
                        write_with_timeout(ctl_tx, &frames::error_reply(0, &e), write_timeout).await?;
                        if bad_frames.check().is_err() {
                            return self.violation("too many bad frames").await;
                        }
                    }
                    Err(ReadError::Transport(e)) => return Err(e.into()),
                },
                Some((id, res)) = inflight.next(), if !inflight.is_empty() => {
                    if id == 0 {
                        // The client asked for no reply.
                        continue;
                    }
                    let frame = match res {
                        Ok(r) => frames::reply(id, r),
                        Err(e) => frames::error_reply(id, &e),
                    };
                    write_with_timeout(ctl_tx, &frame, write_timeout).await?;
                }
                _ = shutdown.changed() => {
                    let e = err(ErrorCode::ShuttingDown, "server is shutting down; reconnect");
                    let goodbye = frames::push(push::Event::Goodbye(v1::Goodbye { error: Some(e.to_proto()) }));
                    let _ = self.handle.tx.try_send(SessionMsg::Goodbye(goodbye));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    self.conn.close(ErrorCode::ShuttingDown as u32, "server is shutting down");
                    return Ok(());
                }
            }
        }
    }

    async fn violation(&self, why: &str) -> anyhow::Result<()> {
        self.conn.close(ErrorCode::ProtocolViolation as u32, why);
        anyhow::bail!("protocol violation: {why}")
    }

    /// Validates a command and starts it. Sends are forwarded to the owner
    /// here, in arrival order, so one connection's messages keep their order.
    async fn dispatch(self: &Rc<Self>, cmd: v1::Command) -> Option<CmdFuture> {
        let id = cmd.id;
        let Some(body) = cmd.body else {
            let e = err(ErrorCode::UnknownCommand, "unknown or empty command");
            return Some(Box::pin(async move { (id, Err(e)) }));
        };
        if let command::Body::SetTyping(t) = &body {
            // In order with this connection's sends, so a message always clears the indicator.
            let r = match t.conversation_id {
                0 => Err(err(ErrorCode::InvalidArgument, "conversation_id is required")),
                conv if self.ctx.remote_owner(conv).is_some() => {
                    let _ = self.at_owner(conv, body.clone(), false).await;
                    Ok(reply::Result::Ok(v1::Empty {}))
                }
                conv => {
                    let msg = ConvMsg::Typing { user: self.handle.user.clone(), typing: t.typing };
                    self.ctx
                        .shared
                        .mesh
                        .to_owner(conv, msg)
                        .await
                        .map(|_| reply::Result::Ok(v1::Empty {}))
                        .map_err(|_| err(ErrorCode::Unavailable, "shard unavailable"))
                }
            };
            return Some(Box::pin(async move { (id, r) }));
        }
        if let command::Body::SendMessage(m) = body {
            return Some(match self.forward_send(m).await {
                Ok(Answer::Local(rx)) => Box::pin(async move {
                    let r = match rx.await {
                        Ok(Ok(ok)) => Ok(reply::Result::SendMessage(ok)),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(err(ErrorCode::Unavailable, "conversation owner went away; retry")),
                    };
                    (id, r)
                }),
                // A lost request comes back as a retryable TIMEOUT; the SDK sends it
                // again. Sends made meanwhile may overtake it (see deploy/CLUSTER.md).
                Ok(Answer::Remote(fut)) => Box::pin(async move { (id, Ok(fut.await)) }),
                Err(e) => Box::pin(async move { (id, Err(e)) }),
            });
        }
        let s = self.clone();
        Some(Box::pin(async move { (id, s.execute(body).await) }))
    }

    async fn forward_send(&self, m: v1::SendMessage) -> Result<Answer, WireError> {
        chat_protocol::limits::check_client_msg_id(&m.client_msg_id).map_err(|e| e.to_wire())?;
        self.ctx.shared.limits.check_body(m.body.as_ref()).map_err(|e| e.to_wire())?;
        if m.conversation_id == 0 {
            return Err(err(ErrorCode::InvalidArgument, "conversation_id is required"));
        }
        let now = tokio::time::Instant::now();
        if let Some(until) = self.send_blocked_until.get().filter(|&u| u > now) {
            return Err(WireError::limited(
                ErrorCode::RateLimited,
                "messages_per_minute",
                format!("more than {} messages per minute", self.ctx.shared.cfg.limits.messages_per_minute),
                Some(until - now),
            ));
        }
        if let Err(e) = self.ctx.check_message_rate(&self.handle.user).await {
            self.send_blocked_until.set(e.retry_after.map(|d| now + d));
            return Err(e);
        }
        let conv = m.conversation_id;
        if let Some(owner) = self.ctx.remote_owner(conv)
            && let Some(cluster) = &self.ctx.shared.cluster
        {
            let fut = cluster
                .forward(owner, conv, &self.caller, self.handle.id, Some(command::Body::SendMessage(m)), true)
                .await;
            return Ok(Answer::Remote(Box::pin(fut)));
        }
        let (tx, rx) = oneshot::channel();
        self.ctx
            .shared
            .mesh
            .to_owner(
                conv,
                ConvMsg::Send { caller: self.caller.clone(), origin: self.handle.id, msg: Box::new(m), reply: tx },
            )
            .await
            .map_err(|_| err(ErrorCode::Unavailable, "shard unavailable"))?;
        Ok(Answer::Local(rx))
    }

    /// Runs a command that belongs to `conv`'s owner: here, or forwarded to
    /// the owner node (the answer, error results included, comes back as is).
    async fn at_owner(&self, conv: ConvId, body: command::Body, want_reply: bool) -> Result<reply::Result, WireError> {
        if let Some(owner) = self.ctx.remote_owner(conv)
            && let Some(cluster) = &self.ctx.shared.cluster
        {
            let fut = cluster.forward(owner, conv, &self.caller, self.handle.id, Some(body), want_reply).await;
            return Ok(fut.await);
        }
        owner_execute(&self.ctx, self.caller.clone(), self.handle.id, body).await
    }

    /// Announces a new conversation through its owner, here or on its node.
    async fn announce_created(&self, conv: ConvId) -> Result<reply::Result, WireError> {
        if let Some(owner) = self.ctx.remote_owner(conv)
            && let Some(cluster) = &self.ctx.shared.cluster
        {
            return match cluster.forward(owner, conv, &self.caller, self.handle.id, None, true).await.await {
                reply::Result::Error(e) => {
                    Err(WireError::new(ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unavailable), e.message))
                }
                r => Ok(r),
            };
        }
        admin(&self.ctx, self.caller.clone(), conv, AdminOp::Created).await
    }

    async fn execute(&self, body: command::Body) -> Result<reply::Result, WireError> {
        use command::Body as B;
        let ok = || Ok(reply::Result::Ok(v1::Empty {}));
        if let Some(conv) = owner_conversation(&body) {
            return self.at_owner(conv, body, true).await;
        }
        match body {
            B::SendMessage(_) => unreachable!("sends are forwarded in dispatch"),
            B::GetHistory(h) => self.history(h).await,
            B::CreateConversation(c) => self.create(c).await,
            B::ListConversations(l) => self.list(l).await,
            B::GetConversation(g) => {
                let (rec, me) = self.readable(g.conversation_id).await?;
                let s = self.summary_of(&rec, me.as_ref(), None).await?;
                Ok(reply::Result::Conversation(v1::ConversationOk { summary: Some(s), existing: false }))
            }
            B::MarkDelivered(m) => {
                if m.more.len() > self.ctx.shared.limits.max_ids_per_request {
                    return Err(err(ErrorCode::InvalidArgument, "too many cursors in one MarkDelivered"));
                }
                let first =
                    (m.conversation_id != 0).then_some(v1::Cursor { conversation_id: m.conversation_id, seq: m.seq });
                // Cursors of conversations owned elsewhere go to their nodes,
                // one command per node, without waiting for an answer.
                let mut local = Vec::new();
                let mut remote: HashMap<crate::cluster::NodeId, Vec<v1::Cursor>> = HashMap::new();
                for c in first.into_iter().chain(m.more) {
                    match self.ctx.remote_owner(c.conversation_id) {
                        Some(node) => remote.entry(node).or_default().push(c),
                        None => local.push(c),
                    }
                }
                if let Some(cluster) = &self.ctx.shared.cluster {
                    for (node, cursors) in remote {
                        let Some(m) = mark_delivered(cursors) else { continue };
                        let conv = m.conversation_id;
                        // Queued in order; with no reply wanted there is nothing to await.
                        let body = Some(B::MarkDelivered(m));
                        drop(cluster.forward(node, conv, &self.caller, self.handle.id, body, false).await);
                    }
                }
                match mark_delivered(local) {
                    Some(m) => owner_execute(&self.ctx, self.caller.clone(), self.handle.id, B::MarkDelivered(m)).await,
                    None => ok(),
                }
            }
            B::SetTyping(_)
            | B::GetMembers(_)
            | B::JoinConversation(_)
            | B::LeaveConversation(_)
            | B::AddMembers(_)
            | B::RemoveMember(_)
            | B::SetMemberRole(_)
            | B::ArchiveConversation(_)
            | B::MarkRead(_) => unreachable!("routed to the owner above"),
            B::Ping(_) => Ok(reply::Result::Pong(v1::Pong {
                server_time_ms: chat_protocol::unix_ms(std::time::SystemTime::now()),
            })),
            B::ListSupportQueue(_) => {
                if self.ident.role != Role::Admin {
                    return Err(err(ErrorCode::Forbidden, "only staff (admins) see the support queue"));
                }
                let ids = self.store().support_queue().await.map_err(store_err)?;
                let mut out = Vec::new();
                for id in ids {
                    if let Ok((rec, _)) = self.readable(id).await {
                        out.push(self.summary_of(&rec, None, None).await?);
                    }
                }
                Ok(reply::Result::Conversations(v1::ConversationList { conversations: out, next: String::new() }))
            }
            B::GetPresence(g) => {
                if g.user_ids.len() > self.ctx.shared.limits.max_ids_per_request {
                    return Err(err(ErrorCode::InvalidArgument, "too many user ids"));
                }
                let contacts = self.contacts.borrow().clone();
                let asked: Vec<Arc<str>> = g
                    .user_ids
                    .iter()
                    .map(|u| Arc::from(u.as_str()))
                    .filter(|u| contacts.contains(u) || **u == *self.handle.user)
                    .collect();
                let users = query_presence(&self.ctx, asked).await;
                Ok(reply::Result::Presence(v1::PresenceList {
                    users: users
                        .into_iter()
                        .map(|(u, d, _)| v1::PresenceEvent { user_id: u.to_string(), online: d > 0, devices: d })
                        .collect(),
                }))
            }
        }
    }

    /// A conversation the caller may read: a member, or staff on a support one.
    async fn readable(&self, conv: ConvId) -> Result<(ConversationRecord, Option<MemberRecord>), WireError> {
        let not_found = || crate::conversation::no_access(conv);
        let rec = self.store().get_conversation(conv).await.map_err(store_err)?.ok_or_else(not_found)?;
        let me = self.store().member(conv, &self.handle.user).await.map_err(store_err)?;
        let staff = self.ident.role == Role::Admin && rec.kind == ConversationKind::Support as i32;
        if me.is_none() && !staff {
            return Err(crate::conversation::no_access(conv));
        }
        Ok((rec, me))
    }

    /// A conversation as the caller sees it (`head`: its last seq, if known).
    async fn summary_of(
        &self,
        rec: &ConversationRecord,
        me: Option<&MemberRecord>,
        head: Option<u64>,
    ) -> Result<v1::ConversationSummary, WireError> {
        let count = self.store().members(rec.id).await.map_err(store_err)?.len();
        let last = match head {
            Some(h) => h,
            None => self.store().last_seq(rec.id).await.map_err(store_err)?,
        };
        Ok(crate::conversation::summary(self.store(), rec, count, last, me).await)
    }

    async fn history(&self, h: v1::GetHistory) -> Result<reply::Result, WireError> {
        self.readable(h.conversation_id).await?;
        let max = self.ctx.shared.limits.max_history_page;
        let limit = if h.limit == 0 { 50 } else { h.limit.min(max) } as usize;
        let (direction, after, before) = if h.after_seq > 0 {
            (Direction::Forward, h.after_seq, if h.before_seq > 0 { h.before_seq } else { u64::MAX })
        } else {
            (Direction::Backward, 0, if h.before_seq > 0 { h.before_seq } else { u64::MAX })
        };
        let range = Range { after, before, limit: limit + 1, direction };
        let mut rows = self.store().read_range(h.conversation_id, range).await.map_err(store_err)?;
        let has_more = rows.len() > limit;
        if has_more {
            match direction {
                Direction::Forward => drop(rows.pop()),
                Direction::Backward => drop(rows.remove(0)),
            }
        }
        let messages = rows.iter().filter_map(|(_, b)| v1::Message::decode(b.as_ref()).ok()).collect();
        Ok(reply::Result::History(v1::History { conversation_id: h.conversation_id, messages, has_more }))
    }

    /// Creates a conversation. Not yet rate-limited: a client can create many
    /// private or support conversations (idle owners are evicted, so this costs
    /// store space, not memory); a per-user create limit is still to come.
    async fn create(&self, c: v1::CreateConversation) -> Result<reply::Result, WireError> {
        let kind = ConversationKind::try_from(c.kind).unwrap_or(ConversationKind::Unspecified);
        let me = self.handle.user.to_string();
        let role = self.ident.role;
        let limits = &self.ctx.shared.limits;
        limits.check_title(&c.title).map_err(|e| e.to_wire())?;
        let mut others: Vec<String> = c.members.iter().filter(|u| **u != me).cloned().collect();
        others.sort();
        others.dedup();
        for u in &others {
            chat_protocol::limits::check_user_id(u).map_err(|e| e.to_wire())?;
        }
        if others.len() + 1 > limits.max_members {
            return Err(WireError::limited(
                ErrorCode::TooManyMembers,
                "max_members",
                format!("at most {} members", limits.max_members),
                None,
            ));
        }
        let forbidden = |why: &str| Err(err(ErrorCode::Forbidden, why.to_string()));
        let id = match kind {
            ConversationKind::Private => {
                if others.len() != 1 {
                    return Err(err(ErrorCode::InvalidArgument, "a private conversation has exactly one other member"));
                }
                private_id(&me, &others[0])
            }
            ConversationKind::Group => {
                if role == Role::Client {
                    return forbidden("clients cannot create group conversations; ask your advocate");
                }
                random_id()
            }
            ConversationKind::Case => {
                if role == Role::Client {
                    return forbidden("clients cannot create case conversations; ask your advocate");
                }
                chat_protocol::limits::check_case_id(&c.case_id).map_err(|e| e.to_wire())?;
                random_id()
            }
            ConversationKind::Support => {
                if !others.is_empty() {
                    return Err(err(
                        ErrorCode::InvalidArgument,
                        "a support conversation starts with its opener only; staff join it",
                    ));
                }
                random_id()
            }
            ConversationKind::Unspecified => {
                return Err(err(ErrorCode::InvalidArgument, "conversation kind is required"));
            }
        };
        let now = chat_protocol::unix_ms(std::time::SystemTime::now());
        let rec = ConversationRecord {
            id,
            kind: kind as i32,
            title: c.title,
            case_id: if kind == ConversationKind::Case { c.case_id } else { String::new() },
            created_by: me.clone(),
            created_at_ms: now,
            archived_at_ms: 0,
            support_state: if kind == ConversationKind::Support { v1::SupportState::Waiting as i32 } else { 0 },
            e2e: false,
            retention_days: 0,
            legal_hold: false,
        };
        let creator_role = if kind == ConversationKind::Private || kind == ConversationKind::Support {
            MemberRole::Member
        } else {
            MemberRole::Admin
        };
        let member = |u: &str, r: MemberRole| MemberRecord {
            conversation_id: id,
            user_id: u.to_string(),
            role: r as i32,
            joined_at_ms: now,
            delivered_seq: 0,
            read_seq: 0,
        };
        let mut members = vec![member(&me, creator_role)];
        members.extend(others.iter().map(|u| member(u, MemberRole::Member)));
        match self.store().create_conversation(&rec, &members).await.map_err(store_err)? {
            crate::store::Created::New => self.announce_created(id).await,
            crate::store::Created::Existing(existing) => {
                let pair_ok = existing.kind == ConversationKind::Private as i32
                    && self.store().member(id, &me).await.map_err(store_err)?.is_some();
                if !pair_ok {
                    return Err(err(ErrorCode::Conflict, "conversation id collision; try again"));
                }
                let (rec, mine) = self.readable(id).await?;
                let s = self.summary_of(&rec, mine.as_ref(), None).await?;
                Ok(reply::Result::Conversation(v1::ConversationOk { summary: Some(s), existing: true }))
            }
        }
    }

    async fn list(&self, l: v1::ListConversations) -> Result<reply::Result, WireError> {
        let ids = self.store().user_conversations(&self.handle.user).await.map_err(store_err)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(rec) = self.store().get_conversation(id).await.map_err(store_err)? else { continue };
            if (!l.case_id.is_empty() && rec.case_id != l.case_id)
                || (l.kind != 0 && rec.kind != l.kind)
                || (!l.include_archived && rec.archived_at_ms != 0)
            {
                continue;
            }
            let me = self.store().member(id, &self.handle.user).await.map_err(store_err)?;
            out.push(self.summary_of(&rec, me.as_ref(), None).await?);
        }
        // Most recently active first.
        let activity = |s: &v1::ConversationSummary| {
            s.last_message.as_ref().map_or(s.conversation.as_ref().map_or(0, |c| c.created_at_ms), |m| m.server_time_ms)
        };
        out.sort_by_key(|s| std::cmp::Reverse(activity(s)));
        let limit = if l.limit == 0 { LIST_PAGE.0 } else { l.limit.min(LIST_PAGE.1) } as usize;
        let offset: usize = if l.page.is_empty() {
            0
        } else {
            l.page.parse().map_err(|_| err(ErrorCode::InvalidArgument, "bad page cursor"))?
        };
        let page: Vec<_> = out.iter().skip(offset).take(limit).cloned().collect();
        let end = offset.saturating_add(limit);
        let next = if end < out.len() { end.to_string() } else { String::new() };
        Ok(reply::Result::Conversations(v1::ConversationList { conversations: page, next }))
    }
}

fn store_err(e: crate::store::StoreError) -> WireError {
    tracing::error!(error = %e, "store error");
    WireError::limited(ErrorCode::Unavailable, "store", "storage is unavailable; retry", Some(Duration::from_secs(1)))
}

/// A private conversation's id: derived from the pair, so there is one per pair.
pub fn private_id(a: &str, b: &str) -> u64 {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"chat/private/");
    ctx.update(x.as_bytes());
    ctx.update(b"\0");
    ctx.update(y.as_bytes());
    let d = ctx.finish();
    let mut b8 = [0u8; 8];
    b8.copy_from_slice(&d.as_ref()[..8]);
    // 53 bits, so JavaScript numbers hold every id; never 0.
    (u64::from_le_bytes(b8) & ((1 << 53) - 1)).max(1)
}

/// A fresh random conversation id (53 bits, never 0).
pub fn random_id() -> u64 {
    (rand::random::<u64>() & ((1 << 53) - 1)).max(1)
}

/// Presence of users, asking each user's home shard.
async fn query_presence(ctx: &ShardCtx, users: Vec<Arc<str>>) -> Vec<(Arc<str>, u32, u64)> {
    let mesh = &ctx.shared.mesh;
    let mut by_shard: HashMap<usize, Vec<Arc<str>>> = HashMap::new();
    for u in users {
        by_shard.entry(user_shard(&u, mesh.len())).or_default().push(u);
    }
    let mut out = Vec::new();
    for (shard, users) in by_shard {
        let (tx, rx) = oneshot::channel();
        if mesh.send(shard, ShardMsg::Presence(PresenceMsg::Query(users, tx))).await.is_ok()
            && let Ok(v) = rx.await
        {
            out.extend(v);
        }
    }
    if let Some(cluster) = &ctx.shared.cluster {
        // Devices on other nodes, from their presence keys (the authority:
        // pub/sub may have lost a change).
        let remote = cluster.remote_presence(out.iter().map(|(u, _, _)| u.clone()).collect()).await;
        for (u, devices, version) in &mut out {
            if let Some(n) = remote.get(u) {
                *devices += n;
                // A user seen online only through the keys still needs a version above 0.
                *version = (*version).max(1);
            }
        }
    }
    out
}

/// Cluster: a user's presence flipped (all nodes counted): tell this node's
/// sessions of every conversation of the user. Each node does this for
/// itself, so nothing goes through the owners.
pub fn presence_fanout(ctx: &Rc<ShardCtx>, user: Arc<str>, online: bool, version: u64) {
    let ctx = ctx.clone();
    tokio::task::spawn_local(async move {
        let Ok(convs) = ctx.shared.store.user_conversations(&user).await else { return };
        let mesh = &ctx.shared.mesh;
        for conv in convs {
            for shard in 0..mesh.len() {
                let f = Fanout::Presence { user: user.clone(), online, version };
                let _ = mesh.try_send(shard, ShardMsg::Remote(conv, f));
            }
        }
    });
}

/// Cluster: users this shard holds online on another node read again from
/// the presence keys, every [`crate::cluster::Cluster::presence_resync_every`]
/// (staggered), so a lost "count 0" keeps nobody online for longer.
pub async fn presence_resync(ctx: Rc<ShardCtx>) {
    /// Users per presence-key read.
    const CHUNK: usize = 512;
    let Some(cluster) = ctx.shared.cluster.clone() else { return };
    let every = cluster.presence_resync_every().max(Duration::from_millis(100));
    let first = every.mul_f64(0.5 + rand::random::<f64>() / 2.0);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let held = ctx.state.presence.borrow().remote_users();
        for chunk in held.chunks(CHUNK) {
            let users: Vec<Arc<str>> = chunk.iter().map(|(u, _)| u.clone()).collect();
            let now = cluster.remote_presence_by_node(users).await;
            let live = ctx.state.live.borrow().clone();
            for (user, nodes) in chunk {
                let counts = now.get(user).map_or(&[][..], |v| v.as_slice());
                // What the keys say, and zero where they say nothing (a live
                // node's key that expired or was deleted).
                let mut updates: Vec<(crate::cluster::NodeId, u32)> = counts.to_vec();
                for (n, _) in nodes {
                    if live.contains(n) && !counts.iter().any(|(m, _)| m == n) {
                        updates.push((n.clone(), 0));
                    }
                }
                for (node, count) in updates {
                    // A report that arrived while the keys were read is fresher.
                    let held = nodes.iter().find(|(n, _)| *n == node).map_or(0, |(_, c)| *c);
                    if ctx.state.presence.borrow().remote_count(user, &node) != held {
                        continue;
                    }
                    let flip = ctx.state.presence.borrow_mut().set_remote(user.clone(), node, count);
                    if let Some((online, version)) = flip {
                        presence_fanout(&ctx, user.clone(), online, version);
                    }
                }
            }
        }
    }
}

/// Cluster: a node reported a user offline whom this node never saw online
/// there. If the presence keys show no device on any other node (and none is
/// here), announce offline: sessions that learned "online" from a snapshot
/// must not keep it. Runs on the user's home shard.
pub async fn presence_recheck(ctx: Rc<ShardCtx>, user: Arc<str>) {
    let Some(cluster) = ctx.shared.cluster.clone() else { return };
    let remote = cluster.remote_presence(vec![user.clone()]).await;
    if remote.get(&user).copied().unwrap_or(0) > 0 {
        return;
    }
    let version = ctx.state.presence.borrow_mut().confirm_offline(user.clone());
    if let Some(version) = version {
        presence_fanout(&ctx, user, false, version);
    }
}

/// What a send waits for: the local owner's answer, or the owner node's.
enum Answer {
    Local(oneshot::Receiver<Result<v1::SendMessageOk, WireError>>),
    Remote(Pin<Box<dyn Future<Output = reply::Result>>>),
}

/// One `MarkDelivered` for these cursors (None if there are none).
fn mark_delivered(mut cursors: Vec<v1::Cursor>) -> Option<v1::MarkDelivered> {
    if cursors.is_empty() {
        return None;
    }
    let first = cursors.remove(0);
    Some(v1::MarkDelivered { conversation_id: first.conversation_id, seq: first.seq, more: cursors })
}

/// The conversation whose owner runs this command, if it is one of those.
/// `MarkDelivered` (many conversations) is split by the session instead.
fn owner_conversation(body: &command::Body) -> Option<ConvId> {
    use command::Body as B;
    match body {
        B::SetTyping(t) => Some(t.conversation_id),
        B::GetMembers(g) => Some(g.conversation_id),
        B::JoinConversation(j) => Some(j.conversation_id),
        B::LeaveConversation(l) => Some(l.conversation_id),
        B::AddMembers(a) => Some(a.conversation_id),
        B::RemoveMember(r) => Some(r.conversation_id),
        B::SetMemberRole(r) => Some(r.conversation_id),
        B::ArchiveConversation(a) => Some(a.conversation_id),
        B::MarkRead(m) => Some(m.conversation_id),
        _ => None,
    }
}

/// Asks the actor of `conv` on this node.
async fn ask_owner<T>(
    ctx: &ShardCtx,
    conv: ConvId,
    make: impl FnOnce(oneshot::Sender<Result<T, WireError>>) -> ConvMsg,
) -> Result<T, WireError> {
    if conv == 0 {
        return Err(err(ErrorCode::InvalidArgument, "conversation_id is required"));
    }
    let (tx, rx) = oneshot::channel();
    ctx.shared.mesh.to_owner(conv, make(tx)).await.map_err(|_| err(ErrorCode::Unavailable, "shard unavailable"))?;
    rx.await.map_err(|_| err(ErrorCode::Unavailable, "conversation owner went away; retry"))?
}

async fn admin(ctx: &ShardCtx, caller: Caller, conv: ConvId, op: AdminOp) -> Result<reply::Result, WireError> {
    let s = ask_owner(ctx, conv, |reply| ConvMsg::Admin { caller, op, reply }).await?;
    Ok(reply::Result::Conversation(v1::ConversationOk { summary: Some(s), existing: false }))
}

async fn receipt(ctx: &ShardCtx, user: Arc<str>, conv: ConvId, kind: ReceiptKind, seq: u64) -> Result<(), WireError> {
    ask_owner(ctx, conv, |reply| ConvMsg::Receipt { user, kind, seq, reply: Some(reply) }).await
}

/// Runs a command at this node's actor of its conversation, for a local
/// session or for one on another node (`origin`: the sending session). The
/// caller comes from a verified token (here or at the origin node).
pub async fn owner_execute(
    ctx: &ShardCtx,
    caller: Caller,
    origin: u64,
    body: command::Body,
) -> Result<reply::Result, WireError> {
    use command::Body as B;
    let ok = || Ok(reply::Result::Ok(v1::Empty {}));
    match body {
        B::SendMessage(m) => {
            chat_protocol::limits::check_client_msg_id(&m.client_msg_id).map_err(|e| e.to_wire())?;
            ctx.shared.limits.check_body(m.body.as_ref()).map_err(|e| e.to_wire())?;
            let conv = m.conversation_id;
            let ok = ask_owner(ctx, conv, |reply| ConvMsg::Send { caller, origin, msg: Box::new(m), reply }).await?;
            Ok(reply::Result::SendMessage(ok))
        }
        B::SetTyping(t) => {
            if t.conversation_id == 0 {
                return Err(err(ErrorCode::InvalidArgument, "conversation_id is required"));
            }
            let msg = ConvMsg::Typing { user: caller.user, typing: t.typing };
            ctx.shared
                .mesh
                .to_owner(t.conversation_id, msg)
                .await
                .map_err(|_| err(ErrorCode::Unavailable, "shard unavailable"))?;
            ok()
        }
        B::GetMembers(g) => {
            let members = ask_owner(ctx, g.conversation_id, |reply| ConvMsg::Members { caller, reply }).await?;
            Ok(reply::Result::Members(v1::Members { conversation_id: g.conversation_id, members }))
        }
        B::JoinConversation(j) => admin(ctx, caller, j.conversation_id, AdminOp::Join).await,
        B::LeaveConversation(l) => admin(ctx, caller, l.conversation_id, AdminOp::Leave).await,
        B::AddMembers(a) => {
            if a.user_ids.is_empty() || a.user_ids.len() > ctx.shared.limits.max_ids_per_request {
                return Err(err(ErrorCode::InvalidArgument, "user_ids: between 1 and 1000 ids"));
            }
            for u in &a.user_ids {
                chat_protocol::limits::check_user_id(u).map_err(|e| e.to_wire())?;
            }
            admin(ctx, caller, a.conversation_id, AdminOp::Add(a.user_ids)).await
        }
        B::RemoveMember(r) => admin(ctx, caller, r.conversation_id, AdminOp::Remove(r.user_id)).await,
        B::SetMemberRole(r) => {
            let role =
                MemberRole::try_from(r.role).map_err(|_| err(ErrorCode::InvalidArgument, "unknown member role"))?;
            admin(ctx, caller, r.conversation_id, AdminOp::SetRole(r.user_id, role)).await
        }
        B::ArchiveConversation(a) => admin(ctx, caller, a.conversation_id, AdminOp::Archive(!a.unarchive)).await,
        B::MarkRead(m) => {
            receipt(ctx, caller.user, m.conversation_id, ReceiptKind::Read, m.seq).await.and_then(|_| ok())
        }
        B::MarkDelivered(m) => {
            // One command may carry many conversations; a failed one (not a
            // member any more) does not stop the others.
            if m.more.len() > ctx.shared.limits.max_ids_per_request {
                return Err(err(ErrorCode::InvalidArgument, "too many cursors in one MarkDelivered"));
            }
            let first =
                (m.conversation_id != 0).then_some(v1::Cursor { conversation_id: m.conversation_id, seq: m.seq });
            let mut failed = None;
            for c in first.into_iter().chain(m.more) {
                if let Err(e) =
                    receipt(ctx, caller.user.clone(), c.conversation_id, ReceiptKind::Delivered, c.seq).await
                {
                    failed = Some(e);
                }
            }
            failed.map_or_else(ok, Err)
        }
        _ => Err(err(ErrorCode::UnknownCommand, "not a command for a conversation's owner")),
    }
}

/// Cluster: runs a request another node forwarded here and answers it.
pub async fn serve_forwarded(ctx: Rc<ShardCtx>, req: crate::cluster::Forwarded) {
    let Some(cluster) = ctx.shared.cluster.clone() else { return };
    let result = match req.command {
        None => admin(&ctx, req.caller, req.conv, AdminOp::Created).await,
        Some(body) => owner_execute(&ctx, req.caller, req.origin, body).await,
    };
    let r = result.unwrap_or_else(|e| reply::Result::Error(e.to_proto()));
    cluster.reply(req.from, req.req_id, r);
}

async fn write_with_timeout(tx: &mut SendStream, frame: &[u8], t: Duration) -> anyhow::Result<()> {
    match tokio::time::timeout(t, tx.write_all(frame)).await {
        Ok(r) => Ok(r?),
        Err(_) => anyhow::bail!("slow consumer: a write waited {t:?}"),
    }
}

/// The outbound half: the session's inbox to the events stream.
struct Outbound {
    s: Rc<Session>,
    events: SendStream,
    /// Last seq written per attached conversation.
    sent: HashMap<ConvId, u64>,
    presence_seen: HashMap<Arc<str>, u64>,
}

impl Outbound {
    async fn run(mut self, mut inbox: mpsc::Receiver<SessionMsg>, initial: Vec<ConvId>, resync: bool, resume: bool) {
        if let Err(e) = self.run_inner(&mut inbox, initial, resync, resume).await {
            tracing::debug!(session = self.s.handle.id, error = %e, "outbound ended");
            self.s.conn.close(ErrorCode::SlowConsumer as u32, "outbound stream failed");
        }
    }

    /// Writes one frame (a shared buffer: no copy).
    async fn write(&mut self, frame: &Frame) -> anyhow::Result<()> {
        self.write_chunks(&mut [frame.clone()]).await
    }

    /// Writes frames in order, closing the connection as a slow consumer if
    /// the peer does not take them within the write timeout.
    async fn write_chunks(&mut self, chunks: &mut [Bytes]) -> anyhow::Result<()> {
        let t = Duration::from_millis(self.s.ctx.shared.cfg.session.write_timeout_ms);
        match tokio::time::timeout(t, self.events.write_chunks(chunks)).await {
            Ok(r) => Ok(r?),
            Err(_) => anyhow::bail!("slow consumer: a write waited {t:?}"),
        }
    }

    async fn run_inner(
        &mut self,
        inbox: &mut mpsc::Receiver<SessionMsg>,
        initial: Vec<ConvId>,
        resync: bool,
        resume: bool,
    ) -> anyhow::Result<()> {
        if resync {
            let ev = push::Event::Resync(v1::ResyncRequired {
                reason: "cursors belong to another store epoch".into(),
                epoch: self.s.store().epoch().to_string(),
            });
            self.write(&frames::push(ev)).await?;
        }
        // Resume: replay each gap up to the head seen at attach; what came
        // after is in the inbox or will be filled on the next message.
        for conv in initial {
            let head = self.s.store().last_seq(conv).await?;
            self.fill(conv, head).await?;
        }
        if resume {
            self.write(&frames::push(push::Event::CaughtUp(v1::CaughtUp {}))).await?;
        }
        self.send_presence_snapshot().await?;
        let cluster = self.s.ctx.shared.cluster.clone();
        let mut seen_epoch = cluster.as_ref().map_or(0, |c| c.reconcile_epoch());
        let mut check = tokio::time::interval_at(tokio::time::Instant::now() + RECONCILE_CHECK, RECONCILE_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Staggered: sessions that started together do not all read the store together.
        let mut countdown = rand::random::<u32>() % RECONCILE_EVERY + 1;
        loop {
            tokio::select! {
                m = inbox.recv() => match m {
                    Some(m) => self.handle(m).await?,
                    None => return Ok(()),
                },
                _ = self.s.handle.wake.notified() => {}
                _ = check.tick(), if cluster.is_some() => {
                    let epoch = cluster.as_ref().map_or(0, |c| c.reconcile_epoch());
                    countdown = countdown.saturating_sub(1);
                    if epoch != seen_epoch {
                        // Remote events may have been lost: membership and
                        // messages both, so reconcile and fill everything.
                        seen_epoch = epoch;
                        self.s.handle.lagged.borrow_mut().extend(self.sent.keys().copied());
                        self.s.handle.lost_user_event.set(true);
                        countdown = RECONCILE_EVERY;
                    } else if countdown == 0 {
                        self.s.handle.lost_user_event.set(true);
                        countdown = RECONCILE_EVERY;
                    }
                }
            }
            self.recover().await?;
        }
    }

    /// After drops: fill lagged conversations from the store, reload the conversation list.
    async fn recover(&mut self) -> anyhow::Result<()> {
        // Membership first: nothing is filled for a conversation the user left.
        if self.s.handle.lost_user_event.replace(false) {
            // A membership event was dropped: reconcile with the store both
            // ways, so a removed member stops receiving and an added one starts.
            let convs: HashSet<ConvId> =
                self.s.store().user_conversations(&self.s.handle.user).await?.into_iter().collect();
            let gone: Vec<ConvId> = self.sent.keys().copied().filter(|c| !convs.contains(c)).collect();
            for conv in gone {
                self.revoke(conv);
            }
            for conv in convs {
                if !self.sent.contains_key(&conv)
                    && let Some(head) = self.s.attach(conv).await
                {
                    // Tell the client first, so it knows the conversation starts at `head`.
                    self.s.handle.revoked.borrow_mut().remove(&conv);
                    if let Ok((rec, me)) = self.s.readable(conv).await {
                        let sum = self.s.summary_of(&rec, me.as_ref(), Some(head)).await?;
                        self.write(&frames::push(push::Event::Conversation(v1::ConversationEvent {
                            summary: Some(sum),
                        })))
                        .await?;
                    }
                    self.sent.insert(conv, head);
                    self.refresh_contacts(conv).await;
                }
            }
        }
        let lagged: Vec<ConvId> = self.s.handle.lagged.borrow_mut().drain().collect();
        for conv in lagged {
            let head = self.s.store().last_seq(conv).await?;
            self.fill(conv, head).await?;
        }
        Ok(())
    }

    /// The user is no longer a member (its event lost): nothing more of `conv` is written.
    fn revoke(&mut self, conv: ConvId) {
        self.sent.remove(&conv);
        self.s.handle.revoked.borrow_mut().insert(conv);
        self.s.detach(conv);
    }

    async fn handle(&mut self, m: SessionMsg) -> anyhow::Result<()> {
        match m {
            SessionMsg::Fanout(conv, _) if self.s.handle.revoked.borrow().contains(&conv) => {}
            SessionMsg::Fanout(conv, Fanout::Messages(list)) => {
                for p in list.iter() {
                    let Some(&sent) = self.sent.get(&conv) else { return Ok(()) };
                    if p.seq <= sent {
                        continue;
                    }
                    if p.seq > sent.saturating_add(1) {
                        self.fill(conv, p.seq - 1).await?;
                        // Removed meanwhile, or the store does not have the gap
                        // (a bogus fan-out): the next nudge fills what is stored.
                        match self.sent.get(&conv) {
                            Some(&now) if now.saturating_add(1) >= p.seq => {}
                            _ => return Ok(()),
                        }
                    }
                    // The sender's own connection has the message already: its
                    // ack carries the seq and time, and the SDK places it.
                    if p.origin != self.s.handle.id {
                        self.write(&p.frame).await?;
                    }
                    self.sent.insert(conv, p.seq);
                }
            }
            SessionMsg::Fanout(conv, Fanout::Nudge { head }) => self.fill(conv, head).await?,
            SessionMsg::Fanout(_, Fanout::Ephemeral { frame, datagram, skip_user }) => {
                if skip_user.as_deref() == Some(&*self.s.handle.user) {
                    return Ok(());
                }
                if let Some(d) = datagram
                    && self.s.conn.send_datagram(d)
                {
                    return Ok(());
                }
                self.write(&frame).await?;
            }
            SessionMsg::Fanout(_, Fanout::Presence { user, online, version }) => {
                self.presence(user, online, version).await?
            }
            SessionMsg::User(UserEvent::Added(conv, since, frame)) => {
                if !self.sent.contains_key(&conv) {
                    if self.s.attach(conv).await.is_none() {
                        return Ok(());
                    }
                    // The event first: the client learns the conversation starts after `since`.
                    self.write(&frame).await?;
                    self.sent.insert(conv, since);
                    let head = self.s.store().last_seq(conv).await?;
                    self.fill(conv, head).await?;
                    self.refresh_contacts(conv).await;
                    return Ok(());
                }
                self.write(&frame).await?;
            }
            SessionMsg::User(UserEvent::Removed(conv, frame)) => {
                self.sent.remove(&conv);
                self.s.detach(conv);
                // Presence is only for people still shared.
                self.s.contacts.borrow_mut().clear();
                for c in self.sent.keys().copied().collect::<Vec<_>>() {
                    self.refresh_contacts(c).await;
                }
                self.write(&frame).await?;
            }
            SessionMsg::Goodbye(frame) => self.write(&frame).await?,
        }
        Ok(())
    }

    /// Writes every stored message of `conv` after `sent` up to `upto`
    /// (fewer if the store has fewer: the next nudge or message fills the
    /// rest). In a cluster, membership is checked first: a removal whose event
    /// was lost on the way here must not leave the conversation readable.
    async fn fill(&mut self, conv: ConvId, upto: u64) -> anyhow::Result<()> {
        let mut checked = self.s.ctx.shared.cluster.is_none();
        loop {
            if self.s.handle.revoked.borrow().contains(&conv) {
                return Ok(());
            }
            let Some(&sent) = self.sent.get(&conv) else { return Ok(()) };
            if sent >= upto {
                return Ok(());
            }
            if !checked {
                checked = true;
                if self.s.store().member(conv, &self.s.handle.user).await?.is_none() {
                    tracing::debug!(session = self.s.handle.id, conv, "no longer a member: detached");
                    self.revoke(conv);
                    return Ok(());
                }
            }
            let before = upto.saturating_add(1);
            let range = Range { after: sent, before, limit: FILL_PAGE, direction: Direction::Forward };
            let rows = self.s.store().read_range(conv, range).await?;
            let Some(&(last, _)) = rows.last() else {
                tracing::debug!(conv, sent, upto, "nothing stored up to the announced head; waiting for the next");
                return Ok(());
            };
            let mut chunks: Vec<Bytes> = rows.iter().map(|(_, b)| frames::message_push(b)).collect();
            self.write_chunks(&mut chunks).await?;
            self.sent.insert(conv, last);
        }
    }

    async fn presence(&mut self, user: Arc<str>, online: bool, version: u64) -> anyhow::Result<()> {
        if user == self.s.handle.user {
            return Ok(());
        }
        let seen = self.presence_seen.entry(user.clone()).or_insert(0);
        if version <= *seen {
            return Ok(());
        }
        *seen = version;
        let ev = push::Event::Presence(v1::PresenceEvent { user_id: user.to_string(), online, devices: 0 });
        self.write(&frames::push(ev)).await
    }

    async fn refresh_contacts(&mut self, conv: ConvId) {
        if let Ok(members) = self.s.store().members(conv).await {
            let mut c = self.s.contacts.borrow_mut();
            c.extend(members.into_iter().map(|m| Arc::from(m.user_id.as_str())));
        }
    }

    /// Pushes who is online among the contacts, once after the handshake.
    async fn send_presence_snapshot(&mut self) -> anyhow::Result<()> {
        let convs: Vec<ConvId> = self.sent.keys().copied().collect();
        for conv in convs {
            self.refresh_contacts(conv).await;
        }
        let contacts: Vec<Arc<str>> =
            self.s.contacts.borrow().iter().filter(|u| **u != self.s.handle.user).cloned().collect();
        for (user, devices, version) in query_presence(&self.s.ctx, contacts).await {
            if devices > 0 {
                self.presence(user, true, version).await?;
            }
        }
        Ok(())
    }
}
