//! A session's read loop: frames from the control stream, decoded under the
//! frame limit, each command dispatched (`crate::command`), replies written
//! in completion order; malformed frames answered precisely and counted (too
//! many close the connection).

use super::state::{READ_CHUNK, Session, err};
use crate::command::{self, message, typing};
use crate::frames;
use crate::metrics::Refusal;
use crate::shard::sessions::SessionMsg;
use crate::transport::{ReadError, RecvStream, SendStream};
use bytes::BytesMut;
use chat_protocol::v1::command as cmd;
use chat_protocol::v1::{self, ErrorCode, client_frame, push, reply};
use chat_protocol::{FrameDecoder, FrameError, WireError};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use prost::Message;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

/// Most requests in flight per connection; past it the session stops reading.
const MAX_INFLIGHT: usize = 256;

/// Commands whose answers can be large (a history page of 200 messages of
/// 10 KiB, a list of 500 summaries): see [`super::state::HEAVY_IN_FLIGHT`].
fn is_heavy(body: &cmd::Body) -> bool {
    use cmd::Body as B;
    matches!(
        body,
        B::GetHistory(_)
            | B::ListConversations(_)
            | B::GetConversation(_)
            | B::ListSupportQueue(_)
            | B::GetMembers(_)
            | B::GetPresence(_)
            | B::ListTemplates(_)
    )
}

type CmdFuture = Pin<Box<dyn Future<Output = (u64, Result<reply::Result, WireError>)>>>;

impl Session {
    pub(super) async fn read_loop(
        self: &Rc<Self>,
        ctl_tx: &mut SendStream,
        rx: &mut RecvStream,
        dec: &mut FrameDecoder,
        buf: &mut BytesMut,
    ) -> anyhow::Result<()> {
        let mut inflight: FuturesUnordered<CmdFuture> = FuturesUnordered::new();
        let mut shutdown = self.ctx().shutdown.clone();
        // The session lives as long as its token.
        let expiry = tokio::time::sleep_until(self.token_deadline());
        tokio::pin!(expiry);
        let bad_quota = governor::Quota::per_minute(
            std::num::NonZeroU32::new(self.ctx().shared.cfg.limits.bad_frames_per_minute.max(1)).expect("non-zero"),
        );
        let bad_frames = governor::RateLimiter::direct(bad_quota);
        let write_timeout = Duration::from_millis(self.ctx().shared.cfg.session.write_timeout_ms);
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
                        if self.refuse_frame(ctl_tx, command_id.unwrap_or(0), &e, &bad_frames, write_timeout).await? {
                            return self.violation("too many bad frames").await;
                        }
                        continue;
                    }
                    Err(FrameError::BadPrefix) => return self.violation("frame length prefix is not a varint").await,
                };
                match v1::ClientFrame::decode(frame.clone()) {
                    Ok(v1::ClientFrame { kind: Some(client_frame::Kind::Command(cmd)) }) => {
                        inflight.push(self.dispatch(cmd).await);
                    }
                    Ok(v1::ClientFrame { kind }) => {
                        let what = if kind.is_some() { "Hello after the handshake" } else { "an empty frame" };
                        let e = err(ErrorCode::Malformed, format!("expected a Command, got {what}"));
                        if self.refuse_frame(ctl_tx, 0, &e, &bad_frames, write_timeout).await? {
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
                        if self.refuse_frame(ctl_tx, id, &e, &bad_frames, write_timeout).await? {
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
                        if self.refuse_frame(ctl_tx, 0, &e, &bad_frames, write_timeout).await? {
                            return self.violation("too many bad frames").await;
                        }
                    }
                    Err(ReadError::Transport(e)) => return Err(e.into()),
                },
                Some((id, res)) = inflight.next(), if !inflight.is_empty() => {
                    // A refresh is verified in its future (an identity
                    // provider's key may be fetched): the lapse moves once it is done.
                    if matches!(res, Ok(reply::Result::TokenRefreshed(_))) {
                        expiry.as_mut().reset(self.token_deadline());
                    }
                    if id == 0 {
                        // The client asked for no reply.
                        continue;
                    }
                    let frame = match res {
                        Ok(r) => frames::reply(id, r),
                        Err(e) => {
                            self.ctx().shared.metrics.refused_code(e.code as i32);
                            frames::error_reply(id, &e)
                        }
                    };
                    self.write_or_close(ctl_tx, &frame, write_timeout).await?;
                }
                _ = shutdown.changed() => {
                    return self.goodbye(err(ErrorCode::ShuttingDown, "server is shutting down; reconnect")).await;
                }
                _ = &mut expiry => {
                    let e = err(ErrorCode::TokenExpired, "the session's token expired; sign in again");
                    return self.goodbye(e).await;
                }
                _ = self.handle.closing.notified() => {
                    let closing = self.handle.close_with.borrow_mut().take();
                    if let Some((code, reason)) = closing {
                        tracing::info!(session = self.handle.id, user = %self.handle.user, ?code, "session closed by an admin");
                        return self.goodbye(err(code, reason.to_string())).await;
                    }
                }
            }
        }
    }

    /// Answers a frame that is not a good command with its precise error and
    /// counts it against the bad-frame budget: `true` once the budget is
    /// spent, and the session must end.
    async fn refuse_frame(
        &self,
        ctl_tx: &mut SendStream,
        id: u64,
        e: &WireError,
        budget: &governor::DefaultDirectRateLimiter,
        write_timeout: Duration,
    ) -> anyhow::Result<bool> {
        self.refused(Refusal::BadFrame);
        self.write_or_close(ctl_tx, &frames::error_reply(id, e), write_timeout).await?;
        Ok(budget.check().is_err())
    }

    /// Says why the session ends (a `Goodbye` on the events stream, after what
    /// is queued), then closes the connection with that code.
    async fn goodbye(&self, e: WireError) -> anyhow::Result<()> {
        let goodbye = frames::push(push::Event::Goodbye(v1::Goodbye { error: Some(e.to_proto()) }));
        let _ = self.handle.tx.try_send(SessionMsg::Goodbye(goodbye));
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.conn.close(e.code as u32, &e.message);
        Ok(())
    }

    /// Takes a fresh token for this session (see [`crate::auth::Identity::refreshed_by`]).
    async fn refresh_token(&self, token: &str) -> Result<reply::Result, WireError> {
        let fresh = self.ctx().shared.verifier.verify(token).await?;
        let expires_at = self.ident.refreshed_by(&fresh)?;
        self.expires_at.set(expires_at);
        tracing::debug!(session = self.handle.id, expires_at, "token refreshed");
        Ok(reply::Result::TokenRefreshed(v1::TokenRefreshed { expires_at_ms: expires_at.saturating_mul(1000) }))
    }

    /// When the session's token lapses.
    fn token_deadline(&self) -> tokio::time::Instant {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let left = Duration::from_secs(self.expires_at.get()).saturating_sub(now);
        let now = tokio::time::Instant::now();
        // (The lifetime is capped by the verifier; a far-future one just never fires.)
        now.checked_add(left).unwrap_or_else(|| now + Duration::from_secs(10 * 365 * 86400))
    }

    /// Writes on the control stream. A peer that takes nothing for `t` is
    /// closed as a slow consumer, saying so (as on the events stream): the
    /// code reaches a QUIC peer even if it reads nothing.
    async fn write_or_close(&self, tx: &mut SendStream, frame: &[u8], t: Duration) -> anyhow::Result<()> {
        match tokio::time::timeout(t, tx.write_all(frame)).await {
            Ok(r) => Ok(r?),
            Err(_) => {
                self.refused(Refusal::SlowConsumer);
                self.conn.close(ErrorCode::SlowConsumer as u32, "replies not read in time");
                anyhow::bail!("slow consumer: a write waited {t:?}")
            }
        }
    }

    fn refused(&self, why: Refusal) {
        self.ctx().shared.metrics.refused(why);
    }

    async fn violation(&self, why: &str) -> anyhow::Result<()> {
        self.conn.close(ErrorCode::ProtocolViolation as u32, why);
        anyhow::bail!("protocol violation: {why}")
    }

    /// Starts a command: sends and typing are handed to the owner here, in
    /// arrival order, so one connection's messages keep their order (and a
    /// message always clears the typing indicator); everything else runs
    /// concurrently (at most [`MAX_INFLIGHT`] at once).
    async fn dispatch(self: &Rc<Self>, cmd: v1::Command) -> CmdFuture {
        let id = cmd.id;
        if let Some(Err(e)) = cmd.body.as_ref().map(|b| self.limits.check(b)) {
            return Box::pin(async move { (id, Err(e)) });
        }
        match cmd.body {
            None => {
                let e = err(ErrorCode::UnknownCommand, "unknown or empty command");
                Box::pin(async move { (id, Err(e)) })
            }
            Some(cmd::Body::RefreshToken(r)) => {
                let me = self.clone();
                Box::pin(async move { (id, me.refresh_token(&r.token).await) })
            }
            Some(cmd::Body::SetTyping(t)) => {
                let r = typing::from_session(&self.req, t).await;
                Box::pin(async move { (id, r) })
            }
            Some(cmd::Body::SendMessage(m)) => {
                let received = std::time::Instant::now();
                match message::from_session(&self.req, &self.send_blocked_until, m).await {
                    Ok(answer) => {
                        let metrics = self.ctx().shared.metrics.clone();
                        Box::pin(async move {
                            let r = answer.await;
                            if r.is_ok() {
                                metrics.messages_accepted.increment(1);
                                metrics.ack_seconds.record(received.elapsed().as_secs_f64());
                            }
                            (id, r)
                        })
                    }
                    Err(e) => Box::pin(async move { (id, Err(e)) }),
                }
            }
            Some(body) => {
                let s = self.clone();
                Box::pin(async move {
                    // Answers that can be large (history, lists) are made a
                    // few at a time per connection, whatever it pipelines.
                    let _turn = match is_heavy(&body) {
                        true => s.heavy.acquire().await.ok(),
                        false => None,
                    };
                    (id, command::execute(&s.req, &s.contacts, body).await)
                })
            }
        }
    }
}
