//! The driver task: owns the connection, writes commands, routes replies,
//! turns pushes into events, reconnects with backoff and resumes.

use crate::config::{ClientConfig, ResumeState};
use crate::delivery::{Delivery, Fetch, Step};
use crate::error::ClientError;
use crate::events::Event;
use crate::outbox::Outbox;
use crate::requests::{Deferred, InFlight};
use crate::transport::{self, Conn, Established, Inbound, Lost, SendHalf};
use chat_protocol::error::{ErrorClass, WireError, WireErrorOwned};
use chat_protocol::v1::{self, ClientFrame, Command, ServerFrame, client_frame, command, push, reply, server_frame};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;

/// How often delivered receipts are flushed and deadlines checked.
const TICK: Duration = Duration::from_millis(100);
/// Delivered receipts go out every this many ticks (500 ms), all conversations in one command.
const RECEIPT_TICKS: u32 = 5;

/// The stored form of a message this client sent, from the send and its ack.
/// What this client's acknowledged send or change adds to the sequence, as
/// others see it (None: a change that changed nothing).
fn own_entry(user_id: &str, sent: &command::Body, ok: &v1::SendMessageOk) -> Option<v1::Message> {
    match sent {
        command::Body::SendMessage(m) => Some(own_message(user_id, m, ok)),
        change if ok.seq != 0 => crate::view::own_event(change, user_id).map(|mut m| {
            (m.seq, m.server_time_ms) = (ok.seq, ok.server_time_ms);
            *m
        }),
        _ => None,
    }
}

fn own_message(user_id: &str, sent: &v1::SendMessage, ok: &v1::SendMessageOk) -> v1::Message {
    v1::Message {
        conversation_id: ok.conversation_id,
        seq: ok.seq,
        sender_id: user_id.to_string(),
        client_msg_id: sent.client_msg_id.clone(),
        body: sent.body.clone(),
        server_time_ms: ok.server_time_ms,
        reply_to: sent.reply_to,
        kind: v1::MessageKind::User as i32,
        attachments: ok.attachments.clone(),
        ..Default::default()
    }
}

/// One `MarkDelivered` carrying every conversation's new delivered seq.
fn delivered_command(receipts: Vec<(u64, u64)>) -> Option<command::Body> {
    let mut it = receipts.into_iter();
    let (conversation_id, seq) = it.next()?;
    let more = it.map(|(conversation_id, seq)| v1::Cursor { conversation_id, seq }).collect();
    Some(command::Body::MarkDelivered(v1::MarkDelivered { conversation_id, seq, more }))
}
/// Capacity of the channel from the reader tasks.
const INBOUND: usize = 256;
/// Messages per history page when filling a hole.
const GAP_PAGE: u32 = 200;

/// Who waits for a reply.
pub(crate) type ReplyTx = oneshot::Sender<Result<reply::Result, ClientError>>;
/// Who waits for a send's ack.
pub(crate) type AckTx = oneshot::Sender<Result<v1::SendMessageOk, ClientError>>;

/// What a [`crate::Client`] asks of the driver.
pub(crate) enum Cmd {
    /// Any command but a send.
    Request { body: command::Body, reply: ReplyTx },
    /// A send, edit, delete or reaction, through the outbox.
    Send { msg: command::Body, reply: AckTx },
    /// A fresh token for the live session and the next handshakes.
    RefreshToken { token: String, reply: ReplyTx },
    /// Stop: close the connection, fail what waits.
    Close { done: oneshot::Sender<()> },
}

/// What the handles read without asking the driver.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub welcome: Option<v1::Welcome>,
    pub resume: ResumeState,
    /// The connection of the latest session (transfers open their streams on it).
    pub conn: Option<Conn>,
    /// When the session's token lapses (ms since the Unix epoch; 0: unknown).
    pub token_expires_at_ms: u64,
}

/// Who waits for the reply to a request in flight.
enum Waiter {
    /// An application's request.
    User(ReplyTx),
    /// A `RefreshToken` with its token, kept for reconnections once accepted.
    Refresh(ReplyTx, String),
    /// The outbox entry with this key.
    Send(u64),
    /// A page of this conversation's history, to fill a hole.
    Fetch(u64),
}

/// How a session ended.
enum End {
    Closed,
    Lost(Lost),
}

/// The `Hello` of the next handshake, with what it claimed.
pub(crate) struct HelloFrame {
    pub frame: ClientFrame,
    pub epoch: String,
    pub resume: bool,
}

/// Builds the `Hello` for the current state.
pub(crate) fn hello(cfg: &ClientConfig, delivery: &Delivery) -> HelloFrame {
    let (epoch, cursors, resume) = delivery.hello();
    let hello = v1::Hello {
        token: cfg.token.clone(),
        client: format!("chat-client/{}", env!("CARGO_PKG_VERSION")),
        epoch: epoch.clone(),
        cursors,
        resume,
        protocol_version: chat_protocol::PROTOCOL_VERSION,
    };
    HelloFrame { frame: ClientFrame { kind: Some(client_frame::Kind::Hello(hello)) }, epoch, resume }
}

/// The error a failed handshake is for the caller.
pub(crate) fn lost_to_error(lost: Lost) -> ClientError {
    match lost.error {
        Some(e) => ClientError::Server(e),
        None => ClientError::Connect(lost.reason),
    }
}

fn is_fatal(lost: &Lost) -> bool {
    lost.error.as_ref().is_some_and(|e| e.class() == ErrorClass::Fatal)
}

/// The live half of the driver's state.
struct Session {
    conn: Conn,
    tx: SendHalf,
    goodbye: Option<WireErrorOwned>,
    /// Who this connection is signed in as (from the Welcome).
    user_id: String,
}

/// The task behind every [`crate::Client`] handle.
pub(crate) struct Driver {
    pub cfg: Arc<ClientConfig>,
    pub cmds: mpsc::Receiver<Cmd>,
    pub events: mpsc::Sender<Event>,
    pub shared: Arc<Mutex<Shared>>,
    pub delivery: Delivery,
    outbox: Outbox<AckTx>,
    inflight: InFlight<Waiter>,
    deferred: Deferred<(command::Body, ReplyTx)>,
    attempt: u32,
    retry_after: Option<Duration>,
    /// Ticks so far (receipts go out every few).
    ticks: u32,
    /// Which address the next connection goes to (see `ClientConfig::fallback_addrs`).
    addr_turn: usize,
}

impl Driver {
    /// A driver for `cfg`, reading `cmds`, emitting on `events`.
    pub fn new(
        cfg: Arc<ClientConfig>,
        cmds: mpsc::Receiver<Cmd>,
        events: mpsc::Sender<Event>,
        shared: Arc<Mutex<Shared>>,
        delivery: Delivery,
        outbox: Outbox<AckTx>,
    ) -> Self {
        Self {
            cfg,
            cmds,
            events,
            shared,
            delivery,
            outbox,
            inflight: InFlight::new(),
            deferred: Deferred::new(),
            attempt: 0,
            retry_after: None,
            ticks: 0,
            addr_turn: 0,
        }
    }

    /// The initial delivery state and the page size used to fill holes.
    pub fn initial_delivery(cfg: &ClientConfig) -> Delivery {
        Delivery::new(cfg.resume.as_ref(), GAP_PAGE)
    }

    /// Runs until the client is closed, every handle is dropped, or a fatal error.
    pub async fn run(mut self, first: Established, epoch: String, resume: bool) {
        let mut next = Some((first, epoch, resume));
        loop {
            let (est, epoch, resume) = match next.take() {
                Some(n) => n,
                None => match self.reconnect().await {
                    Some(n) => n,
                    None => return,
                },
            };
            match self.session(est, &epoch, resume).await {
                End::Closed => return,
                End::Lost(lost) => {
                    tracing::info!(reason = %lost.reason, "connection lost");
                    // With other nodes to go to, the next attempt tries the next one.
                    self.addr_turn = self.addr_turn.wrapping_add(1);
                    self.after_loss();
                    let fatal = is_fatal(&lost);
                    self.retry_after = lost.error.as_ref().and_then(|e| e.retry_after);
                    self.emit(Event::Disconnected {
                        reason: lost.reason.clone(),
                        error: lost.error.clone(),
                        will_retry: !fatal,
                    })
                    .await;
                    if fatal {
                        let err = lost_to_error(lost);
                        self.shutdown(&err);
                        return;
                    }
                }
            }
        }
    }

    async fn emit(&self, event: Event) {
        // A dropped `Events` only means nobody listens.
        let _ = self.events.send(event).await;
    }

    fn sync_shared(&self) {
        let state = self.delivery.resume_state();
        if let Ok(mut s) = self.shared.lock() {
            s.resume = state;
        }
    }

    /// Fails everything that waits with `err` (the client stops).
    fn shutdown(&mut self, err: &ClientError) {
        for w in self.inflight.drain() {
            if let Waiter::User(tx) | Waiter::Refresh(tx, _) = w {
                let _ = tx.send(Err(err.clone()));
            }
        }
        for ((_, tx), _) in self.deferred.drain() {
            let _ = tx.send(Err(err.clone()));
        }
        for e in self.outbox.drain() {
            let _ = e.waiter.send(Err(err.clone()));
        }
        self.sync_shared();
    }

    /// The connection dropped: requests in flight fail, sends go out again later.
    fn after_loss(&mut self) {
        tracing::debug!(
            in_flight = self.inflight.len(),
            unacked_sends = self.outbox.len(),
            "failing requests in flight"
        );
        for w in self.inflight.drain() {
            if let Waiter::User(tx) | Waiter::Refresh(tx, _) = w {
                let _ = tx.send(Err(ClientError::Disconnected));
            }
        }
        self.outbox.on_disconnect();
        self.delivery.on_disconnect();
        self.sync_shared();
    }

    // ------------------------------------------------------------ offline

    /// Waits, serving handles, and reconnects; `None` when the client stops.
    async fn reconnect(&mut self) -> Option<(Established, String, bool)> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let mut delay = self.cfg.backoff.delay(self.attempt, &mut rand::rng());
            if let Some(after) = self.retry_after.take() {
                delay = delay.max(after);
            }
            self.attempt = self.attempt.saturating_add(1);
            tracing::debug!(?delay, attempt = self.attempt, "reconnecting after a pause");
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    cmd = self.cmds.recv() => if !self.offline_cmd(cmd) { return None },
                    _ = tick.tick() => self.offline_tick(),
                }
            }
            let hello = hello(&self.cfg, &self.delivery);
            let cfg = if self.cfg.fallback_addrs.is_empty() {
                self.cfg.clone()
            } else {
                let addr = self.cfg.addr_for_attempt(self.addr_turn).to_string();
                tracing::debug!(%addr, "reconnecting to");
                Arc::new(ClientConfig { addr, ..(*self.cfg).clone() })
            };
            let attempt = transport::connect(cfg, hello.frame, self.cfg.request_timeout);
            tokio::pin!(attempt);
            let result = loop {
                tokio::select! {
                    r = &mut attempt => break r,
                    cmd = self.cmds.recv() => if !self.offline_cmd(cmd) { return None },
                    _ = tick.tick() => self.offline_tick(),
                }
            };
            match result {
                Ok(est) => return Some((est, hello.epoch, hello.resume)),
                Err(lost) if is_fatal(&lost) => {
                    tracing::warn!(reason = %lost.reason, "reconnection refused for good");
                    self.emit(Event::Disconnected {
                        reason: lost.reason.clone(),
                        error: lost.error.clone(),
                        will_retry: false,
                    })
                    .await;
                    self.shutdown(&lost_to_error(lost));
                    return None;
                }
                Err(lost) => {
                    tracing::debug!(reason = %lost.reason, "reconnection failed");
                    self.addr_turn = self.addr_turn.wrapping_add(1);
                    self.retry_after = lost.error.and_then(|e| e.retry_after);
                }
            }
        }
    }

    /// Serves a handle while disconnected; false when the client stops.
    fn offline_cmd(&mut self, cmd: Option<Cmd>) -> bool {
        match cmd {
            None => {
                self.shutdown(&ClientError::Closed);
                false
            }
            Some(Cmd::Close { done }) => {
                self.shutdown(&ClientError::Closed);
                let _ = done.send(());
                false
            }
            Some(Cmd::Request { body, reply }) => {
                self.deferred.push((body, reply), Instant::now() + self.cfg.request_timeout);
                true
            }
            Some(Cmd::RefreshToken { token, reply }) => {
                // No session to check it: the next handshake does.
                Arc::make_mut(&mut self.cfg).token = token;
                let _ = reply.send(Ok(reply::Result::TokenRefreshed(v1::TokenRefreshed { expires_at_ms: 0 })));
                true
            }
            Some(Cmd::Send { msg, reply }) => {
                if let Err((reply, e)) = self.outbox.push(msg, reply) {
                    let _ = reply.send(Err(e));
                }
                true
            }
        }
    }

    fn offline_tick(&mut self) {
        for (_, tx) in self.deferred.expired(Instant::now()) {
            let _ = tx.send(Err(ClientError::Timeout));
        }
    }

    // ------------------------------------------------------------ online

    async fn session(&mut self, est: Established, sent_epoch: &str, sent_resume: bool) -> End {
        let Established { conn, control_tx, control_rx, welcome } = est;
        let resumed = self.delivery.on_welcome(&welcome, sent_epoch, sent_resume);
        self.attempt = 0;
        if let Ok(mut s) = self.shared.lock() {
            s.welcome = Some(welcome.clone());
            s.conn = Some(conn.clone());
            s.token_expires_at_ms = welcome.token_expires_at_ms;
        }
        self.sync_shared();
        tracing::info!(session = welcome.session_id, node = %welcome.node, resumed, "connected");
        self.emit(Event::Connected { session_id: welcome.session_id, node: welcome.node.clone(), resumed }).await;

        let (itx, mut irx) = mpsc::channel(INBOUND);
        let readers = transport::spawn_readers(&conn, control_rx, itx);
        let user_id = welcome.user.as_ref().map(|u| u.id.clone()).unwrap_or_default();
        let mut s = Session { conn, tx: control_tx, goodbye: None, user_id };
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);

        let mut result = self.flush(&mut s).await;
        while result.is_ok() {
            result = tokio::select! {
                cmd = self.cmds.recv() => match cmd {
                    None => {
                        self.close_session(&mut s, "client dropped").await;
                        return End::Closed;
                    }
                    Some(Cmd::Close { done }) => {
                        self.close_session(&mut s, "client closed").await;
                        let _ = done.send(());
                        return End::Closed;
                    }
                    Some(cmd) => self.online_cmd(&mut s, cmd).await,
                },
                inbound = irx.recv() => match inbound {
                    Some(Inbound::Control(f)) => self.on_control(&mut s, f).await,
                    Some(Inbound::Event(f)) => self.on_event(&mut s, f).await,
                    Some(Inbound::Lost(lost)) => Err(lost),
                    Some(Inbound::Protocol(e)) => {
                        tracing::warn!(error = %e, "protocol error; dropping the connection");
                        s.conn.close(v1::ErrorCode::ProtocolViolation as u32, "protocol violation").await;
                        Err(Lost::new(format!("protocol error: {e}")))
                    }
                    None => Err(Lost::new("connection readers stopped")),
                },
                _ = tick.tick() => self.on_tick(&mut s).await,
            };
        }
        drop(readers);
        let mut lost = match result {
            Err(lost) => lost,
            Ok(()) => Lost::new("session ended"),
        };
        if let Some(g) = s.goodbye.take() {
            lost.reason = format!("goodbye: {g}");
            lost.error = Some(g);
        }
        s.conn.close(0, "reconnecting").await;
        End::Lost(lost)
    }

    async fn close_session(&mut self, s: &mut Session, why: &str) {
        // Last delivered receipts, best effort.
        if let Some(body) = delivered_command(self.delivery.take_receipts()) {
            let _ = self.write(s, 0, body).await;
        }
        s.conn.close(0, why).await;
        self.shutdown(&ClientError::Closed);
        self.emit(Event::Disconnected { reason: why.to_string(), error: None, will_retry: false }).await;
    }

    async fn write(&mut self, s: &mut Session, id: u64, body: command::Body) -> Result<(), Lost> {
        let frame = ClientFrame { kind: Some(client_frame::Kind::Command(Command { id, body: Some(body) })) };
        match s.tx.write_frame(&frame).await {
            Ok(()) => Ok(()),
            Err(e) => Err(Lost::new(format!("cannot write to the control stream: {e}"))),
        }
    }

    /// After a handshake: the outbox first (original order), then requests made while disconnected.
    async fn flush(&mut self, s: &mut Session) -> Result<(), Lost> {
        self.flush_outbox(s).await?;
        for ((body, reply), deadline) in self.deferred.drain() {
            if reply.is_closed() {
                continue;
            }
            let id = self.inflight.next_id();
            self.inflight.insert(id, Waiter::User(reply), deadline);
            self.write(s, id, body).await?;
        }
        Ok(())
    }

    async fn flush_outbox(&mut self, s: &mut Session) -> Result<(), Lost> {
        for (key, msg) in self.outbox.unsent() {
            let id = self.inflight.next_id();
            // A send waits for its ack across reconnects: no deadline.
            self.inflight.insert(id, Waiter::Send(key), far_future());
            self.outbox.mark_sent(key, id);
            self.write(s, id, msg).await?;
        }
        Ok(())
    }

    async fn online_cmd(&mut self, s: &mut Session, cmd: Cmd) -> Result<(), Lost> {
        match cmd {
            Cmd::Request { body, reply } => {
                let id = self.inflight.next_id();
                self.inflight.insert(id, Waiter::User(reply), Instant::now() + self.cfg.request_timeout);
                self.write(s, id, body).await
            }
            Cmd::RefreshToken { token, reply } => {
                let id = self.inflight.next_id();
                let body = command::Body::RefreshToken(v1::RefreshToken { token: token.clone() });
                self.inflight.insert(id, Waiter::Refresh(reply, token), Instant::now() + self.cfg.request_timeout);
                self.write(s, id, body).await
            }
            Cmd::Send { msg, reply } => match self.outbox.push(msg, reply) {
                Ok(_) => self.flush_outbox(s).await,
                Err((reply, e)) => {
                    let _ = reply.send(Err(e));
                    Ok(())
                }
            },
            // Handled by the caller.
            Cmd::Close { done } => {
                let _ = done.send(());
                Ok(())
            }
        }
    }

    async fn on_tick(&mut self, s: &mut Session) -> Result<(), Lost> {
        let now = Instant::now();
        for w in self.inflight.expired(now) {
            match w {
                Waiter::User(tx) | Waiter::Refresh(tx, _) => {
                    let _ = tx.send(Err(ClientError::Timeout));
                }
                Waiter::Fetch(conv) => self.delivery.on_fetch_failed(conv),
                Waiter::Send(_) => {}
            }
        }
        for (_, tx) in self.deferred.expired(now) {
            let _ = tx.send(Err(ClientError::Timeout));
        }
        for f in self.delivery.due_fetches() {
            self.fetch(s, f).await?;
        }
        // Sends the server asked to retry later, once their time has come.
        self.flush_outbox(s).await?;
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks.is_multiple_of(RECEIPT_TICKS)
            && let Some(body) = delivered_command(self.delivery.take_receipts())
        {
            // Id 0: no reply wanted; a refused receipt changes nothing for the app.
            self.write(s, 0, body).await?;
        }
        self.sync_shared();
        Ok(())
    }

    async fn on_control(&mut self, s: &mut Session, frame: ServerFrame) -> Result<(), Lost> {
        match frame.kind {
            Some(server_frame::Kind::Reply(r)) => self.on_reply(s, r).await,
            Some(server_frame::Kind::Push(p)) => self.on_push(s, p).await,
            Some(server_frame::Kind::Welcome(_)) => Err(Lost::new("protocol error: a second Welcome")),
            None => Ok(()),
        }
    }

    async fn on_event(&mut self, s: &mut Session, frame: ServerFrame) -> Result<(), Lost> {
        match frame.kind {
            Some(server_frame::Kind::Push(p)) => self.on_push(s, p).await,
            Some(server_frame::Kind::Reply(r)) => self.on_reply(s, r).await,
            Some(server_frame::Kind::Welcome(_)) => Err(Lost::new("protocol error: a Welcome on the events stream")),
            None => Ok(()),
        }
    }

    async fn on_reply(&mut self, s: &mut Session, r: v1::Reply) -> Result<(), Lost> {
        let Some(waiter) = self.inflight.complete(r.id) else {
            if let Some(reply::Result::Error(e)) = &r.result {
                tracing::warn!(id = r.id, error = %WireError::from_proto(e), "error reply to no request");
            }
            return Ok(());
        };
        match waiter {
            Waiter::User(tx) => drop(tx.send(reply_result(r.result))),
            Waiter::Refresh(tx, token) => {
                if let Some(reply::Result::TokenRefreshed(t)) = &r.result {
                    Arc::make_mut(&mut self.cfg).token = token;
                    if let Ok(mut s) = self.shared.lock() {
                        s.token_expires_at_ms = t.expires_at_ms;
                    }
                }
                let _ = tx.send(reply_result(r.result));
            }
            Waiter::Send(key) => {
                if let Some(reply::Result::Error(e)) = &r.result
                    && e.code == v1::ErrorCode::Timeout as i32
                {
                    // The request or its answer was lost between server nodes:
                    // the same send again (same client message id) is answered
                    // with the first seq if it was stored after all.
                    let wait = Duration::from_millis(e.retry_after_ms.clamp(50, 5_000));
                    self.outbox.retry_at(key, Instant::now() + wait);
                    return Ok(());
                }
                if let Some(entry) = self.outbox.take(key) {
                    let result = match r.result {
                        Some(reply::Result::SendMessage(ok)) => Ok(ok),
                        other => Err(reply_result(other).err().unwrap_or_else(|| unexpected("send_message"))),
                    };
                    // The server does not echo a message or change to the
                    // connection that sent it: the ack carries all it adds to
                    // what we sent, so it takes its place in order from here.
                    let own = result.as_ref().ok().and_then(|ok| own_entry(&s.user_id, &entry.msg, ok));
                    let _ = entry.waiter.send(result);
                    if let Some(m) = own {
                        let step = self.delivery.on_message(m);
                        self.apply(s, step).await?;
                    }
                }
            }
            Waiter::Fetch(conv) => match r.result {
                Some(reply::Result::History(h)) => {
                    let step = self.delivery.on_history(conv, h);
                    self.apply(s, step).await?;
                }
                other => {
                    tracing::warn!(conv, result = ?other, "filling a hole failed");
                    self.delivery.on_fetch_failed(conv);
                }
            },
        }
        Ok(())
    }

    /// Surfaces ready messages and asks for the page a hole needs.
    async fn apply(&mut self, s: &mut Session, step: Step) -> Result<(), Lost> {
        for m in step.ready {
            self.emit(crate::view::event_of(m)).await;
        }
        if let Some(f) = step.fetch {
            self.fetch(s, f).await?;
        }
        Ok(())
    }

    /// Asks for the page a hole needs.
    async fn fetch(&mut self, s: &mut Session, Fetch { conv, after_seq, limit }: Fetch) -> Result<(), Lost> {
        let id = self.inflight.next_id();
        self.inflight.insert(id, Waiter::Fetch(conv), Instant::now() + self.cfg.request_timeout);
        let body = command::Body::GetHistory(v1::GetHistory { conversation_id: conv, before_seq: 0, after_seq, limit });
        self.write(s, id, body).await
    }

    async fn on_push(&mut self, s: &mut Session, p: v1::Push) -> Result<(), Lost> {
        let Some(event) = p.event else { return Ok(()) };
        match event {
            push::Event::Message(m) => {
                if let Some(m) = m.message {
                    let step = self.delivery.on_message(m);
                    self.apply(s, step).await?;
                }
            }
            push::Event::Receipt(r) => self.emit(Event::Receipt(r)).await,
            push::Event::Receipts(batch) => {
                for r in batch.receipts {
                    self.emit(Event::Receipt(r)).await;
                }
            }
            push::Event::Typing(t) => self.emit(Event::Typing(t)).await,
            push::Event::Presence(pr) => self.emit(Event::Presence(pr)).await,
            push::Event::Membership(m) => self.emit(Event::Membership(m)).await,
            push::Event::Conversation(c) => {
                if let Some(summary) = c.summary {
                    if let Some(conv) = &summary.conversation {
                        self.delivery.on_conversation(conv.id, conv.last_seq);
                    }
                    self.emit(Event::Conversation(summary)).await;
                }
            }
            push::Event::Resync(r) => {
                tracing::info!(reason = %r.reason, "resync required");
                self.delivery.on_resync(&r);
                self.sync_shared();
                self.emit(Event::Resync { reason: r.reason }).await;
            }
            push::Event::CaughtUp(_) => self.emit(Event::CaughtUp).await,
            push::Event::Goodbye(g) => {
                let err = g.error.as_ref().map(WireError::from_proto);
                tracing::info!(error = ?err, "server said goodbye");
                s.goodbye = err;
            }
        }
        Ok(())
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(10 * 365 * 24 * 3600)
}

fn unexpected(want: &str) -> ClientError {
    ClientError::Protocol(format!("reply is not a {want}"))
}

/// A reply's result, with an error result turned into [`ClientError::Server`].
pub(crate) fn reply_result(result: Option<reply::Result>) -> Result<reply::Result, ClientError> {
    match result {
        Some(reply::Result::Error(e)) => Err(ClientError::Server(WireError::from_proto(&e))),
        Some(r) => Ok(r),
        None => Err(ClientError::Protocol("reply without a result".into())),
    }
}
