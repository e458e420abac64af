//! One connection: the handshake (token, resume cursors), the subscription
//! to the user's conversations, the read loop ([`read`]: frames in, commands
//! out) and the outbound task ([`outbound`]: fan-outs to the events stream).
//! Commands themselves are `crate::command`'s; the shard's registry of
//! sessions is `crate::shard::sessions`. Openings and refusals are audited
//! here.
//!
//! Outbound is where "nothing lost, nothing repeated, nothing reordered" is
//! kept: per conversation the session remembers the last seq it wrote
//! (`sent`). A message at `sent + 1` is written; one at or below `sent` is
//! dropped; one above `sent + 1` first makes the session read the gap from the
//! store. Resume, a full queue and a lost fan-out all take that same road, so
//! there is one mechanism to trust rather than three.

mod limits;
mod outbound;
mod read;
mod state;
mod transfer;

use crate::audit::{AuditEvent, EventKind};
use crate::auth::Identity;
use crate::command::Requester;
use crate::command::users;
use crate::frames;
use crate::ids::Caller;
use crate::metrics::Refusal;
use crate::presence;
use crate::shard::sessions::{SessionHandle, SessionMsg};
use crate::shard::{ShardCtx, UserRate};
use crate::store::{MessageStore, UserRecord};
use crate::transport::{Conn, ReadError, RecvStream, SendStream};
use bytes::BytesMut;
use chat_protocol::v1::{self, ErrorCode, client_frame};
use chat_protocol::{FrameDecoder, WireError};
use futures_util::StreamExt as _;
use outbound::Outbound;
use prost::Message;
use state::{READ_CHUNK, Session, err};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Conversations a new session attaches at once (each is a store read or
/// two, or a registration with its owner node, which go batched per owner).
const ATTACH_AT_ONCE: usize = 64;

/// Largest `Hello` (about 70,000 resume cursors).
pub(crate) const HELLO_MAX_BYTES: usize = 1 << 20;

/// Runs one connection to its end. `conn_limited` is set when the peer's
/// address is over its connection rate: it gets a precise refusal.
pub async fn run(ctx: Rc<ShardCtx>, conn: Conn, conn_limited: Option<Duration>) {
    let remote = conn.remote();
    let timeout = Duration::from_millis(ctx.shared.cfg.session.handshake_timeout_ms);
    let hs = tokio::time::timeout(timeout, handshake(&ctx, &conn, conn_limited)).await;
    let (mut ctl_tx, ctl_rx, dec, buf, hello, ident, profile) = match hs {
        Ok(Ok(v)) => v,
        Ok(Err(Some((e, tx)))) => {
            ctx.shared.metrics.refused_code(e.code as i32);
            audit_session(&ctx, &conn, EventKind::SessionRefused, "", refusal(&e)).await;
            return refuse(&conn, tx, e).await;
        }
        Ok(Err(None)) => return,
        Err(_) => {
            let e = err(ErrorCode::HandshakeTimeout, "no hello in time");
            audit_session(&ctx, &conn, EventKind::SessionRefused, "", refusal(&e)).await;
            conn.close(ErrorCode::HandshakeTimeout as u32, "no hello in time");
            return;
        }
    };
    let id = ctx.shared.next_session_id();
    let (tx, rx) = mpsc::channel(ctx.shared.cfg.session.outbound_queue);
    let handle = Rc::new(SessionHandle::new(id, Arc::from(ident.user_id.as_str()), tx));
    // Name and role come from the directory (the token's own, for a user it made).
    let role = v1::Role::try_from(profile.role).unwrap_or(ident.role);
    let caller = Caller { user: handle.user.clone(), role };
    let s = Rc::new(Session {
        req: Requester { ctx: ctx.clone(), caller, session: id },
        conn: conn.clone(),
        handle: handle.clone(),
        expires_at: Cell::new(ident.expires_at),
        ident,
        profile: v1::User { id: profile.id, display_name: profile.display_name, role: role as i32 },
        contacts: RefCell::new(HashSet::new()),
        announced: Cell::new(false),
        heavy: tokio::sync::Semaphore::new(state::HEAVY_IN_FLIGHT),
        limits: limits::ConnLimits::new(&ctx.shared.cfg.limits),
        send_blocked_until: Cell::new(None),
    });
    // Counted at the user's home shard before anything is served: past the
    // per-user cap the connection is refused (each one pins memory).
    let devices = presence::announce(&ctx, &handle.user, true).await;
    s.announced.set(devices.is_some());
    let cap = ctx.shared.cfg.limits.max_connections_per_user;
    if devices.is_some_and(|d| d > cap) {
        ctx.shared.metrics.refused(Refusal::ConnectionCap);
        s.cleanup().await;
        let e = WireError::limited(
            ErrorCode::ConnectionRateLimited,
            "max_connections_per_user",
            format!("more than {cap} connections for this user; close one"),
            Some(Duration::from_secs(5)),
        );
        audit_session(&ctx, &conn, EventKind::SessionRefused, &handle.user, refusal(&e)).await;
        return refuse(&conn, ctl_tx, e).await;
    }
    audit_session(&ctx, &conn, EventKind::SessionOpened, &handle.user, serde_json::json!({"session": id})).await;
    ctx.state.sessions.borrow_mut().add_user(&handle);
    // Disabled between the handshake's check and now: closed at once.
    if let Ok(Some(u)) = ctx.shared.store.get_users(std::slice::from_ref(&s.ident.user_id)).await.map(|mut v| v.pop())
        && u.disabled
    {
        handle.close(ErrorCode::UserDisabled, Arc::from(users::rules::disabled_error().message.as_str()));
    }
    let _open = ctx.shared.metrics.connection(conn.kind());
    tracing::debug!(session = id, user = %handle.user, %remote, transport = conn.kind(), "connected");

    let result = s.clone().serve(&mut ctl_tx, ctl_rx, dec, buf, hello, rx).await;
    if let Err(e) = &result {
        tracing::debug!(session = id, error = %e, "session ended");
    }
    s.cleanup().await;
}

/// The details of a refusal: its code and reason.
fn refusal(e: &WireError) -> serde_json::Value {
    serde_json::json!({"code": e.code.as_str_name(), "reason": e.message})
}

/// Records a session's opening or refusal, with its address and transport.
async fn audit_session(ctx: &ShardCtx, conn: &Conn, kind: EventKind, user: &str, mut details: serde_json::Value) {
    details["remote"] = conn.remote().to_string().into();
    details["transport"] = conn.kind().into();
    crate::command::audit::record(ctx, AuditEvent::new(kind, user).target(user).details(details)).await;
}

/// Answers a refused connection on its control stream with the precise
/// error, then closes it with that code.
async fn refuse(conn: &Conn, mut tx: SendStream, e: WireError) {
    tracing::info!(remote = %conn.remote(), error = %e, "connection refused");
    let _ = tx.write_all(&frames::error_reply(0, &e)).await;
    tx.finish();
    // Give the refusal a moment to reach the peer before the close.
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.close(e.code as u32, &e.message);
}

type Handshake = (SendStream, RecvStream, FrameDecoder, BytesMut, v1::Hello, Identity, UserRecord);

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
    let ident = match ctx.shared.verifier.verify(&hello.token).await {
        Ok(ident) => ident,
        Err(e) => return Err(Some((e, tx))),
    };
    // After the address's rate (before TLS), the user's own: an office
    // behind one address connects freely, one user's loop does not.
    if let Err(e) = ctx.check_user_rate(UserRate::Connections, &Arc::from(ident.user_id.as_str())).await {
        return Err(Some((e, tx)));
    }
    // The directory: a disabled user goes no further; a new one is created from the claims.
    match users::sign_in(&ctx.shared.store, &ctx.shared.audit, &ident).await {
        Ok(profile) => Ok((tx, rx, dec, buf, hello, ident, profile)),
        Err(e) => Err(Some((e, tx))),
    }
}

impl Session {
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
        // Subscribe to every conversation first: from here on nothing is missed.
        let convs = self.store().user_conversations(&user.user_id).await?;
        let mut heads = Vec::with_capacity(convs.len());
        // Several at once: in a cluster, the registrations with each owner node go as one request.
        let attached: Vec<Option<u64>> =
            futures_util::stream::iter(convs.iter().map(|&c| self.attach(c))).buffered(ATTACH_AT_ONCE).collect().await;
        for (conv, head) in convs.into_iter().zip(attached) {
            match head {
                Some(head) => heads.push(v1::Cursor { conversation_id: conv, seq: head }),
                // Left meanwhile, or the owner could not answer: reconcile with the store later.
                None => self.handle.lost_user_event.set(true),
            }
        }
        let lim = &self.ctx().shared.cfg.limits;
        let welcome = v1::Welcome {
            user: Some(self.profile.clone()),
            epoch: self.store().epoch().to_string(),
            session_id: self.handle.id,
            heads: heads.clone(),
            limits: Some(v1::Limits {
                max_text_bytes: lim.max_text_bytes as u32,
                max_frame_bytes: lim.max_frame_bytes as u32,
                messages_per_minute: lim.messages_per_minute,
                typing_timeout_ms: lim.typing_timeout_ms as u32,
                max_members: lim.max_members as u32,
                max_file_bytes: self.ctx().shared.cfg.blobs.max_file_bytes,
                uploads_per_hour: self.ctx().shared.cfg.blobs.uploads_per_hour,
            }),
            server_time_ms: chat_protocol::unix_ms(std::time::SystemTime::now()),
            node: self.ctx().shared.cfg.node_name.clone(),
            token_expires_at_ms: self.expires_at.get().saturating_mul(1000),
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

        let out = Outbound::new(self.clone(), events, sent);
        let writer = tokio::task::spawn_local(out.run(inbox, initial, resync, hello.resume));

        // Later bidirectional streams carry uploads and downloads (a WebSocket has none).
        let transfers = tokio::task::spawn_local(self.clone().accept_transfers());

        let res = self.read_loop(ctl_tx, &mut ctl_rx, &mut dec, &mut buf).await;
        writer.abort();
        transfers.abort();
        res
    }

    async fn cleanup(&self) {
        let released = self.ctx().state.sessions.borrow_mut().remove(&self.handle);
        for conv in released {
            self.ctx().released(conv);
        }
        if self.announced.get() {
            presence::announce(self.ctx(), &self.handle.user, false).await;
        }
        tracing::debug!(session = self.handle.id, "disconnected");
    }
}
