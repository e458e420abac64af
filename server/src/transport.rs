//! All transports behind one small face: raw QUIC (ALPN `chat/1`) and
//! WebTransport (ALPN `h3`) accepted on the same quinn endpoint, split by the
//! negotiated ALPN, and WebSocket (accepted by [`crate::web`]) for browsers
//! without WebTransport. Sessions see a [`Conn`] and its streams and nothing else.
//!
//! A WebSocket carries exactly the bytes of the QUIC streams: every binary
//! message from the server holds one or more whole length-delimited
//! `ServerFrame`s (replies, pushes, and what QUIC sends as datagrams), and the
//! client's binary messages are fed to the same frame decoder as a QUIC control
//! stream. The session's close code `c` (an `ErrorCode`, e.g. 3002) becomes
//! the WebSocket close code `4000 + (c / 1000) * 100 + c % 1000` (4302), in the
//! application range 4000-4999; see [`ws_close_code`].

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// An accepted connection of either kind.
#[derive(Clone)]
pub enum Conn {
    /// Raw QUIC.
    Quic(quinn::Connection),
    /// A WebTransport session.
    Wt(wtransport::Connection),
    /// A WebSocket (one ordered byte stream each way, no datagrams).
    Ws(Rc<WsConn>),
}

/// The sending half of a stream.
pub enum SendStream {
    /// Raw QUIC.
    Quic(quinn::SendStream),
    /// WebTransport (its header is already written).
    Wt(wtransport::SendStream),
    /// The WebSocket's one outgoing queue (control replies and events alike).
    Ws(mpsc::Sender<Bytes>),
}

/// The receiving half of a stream.
pub enum RecvStream {
    /// Raw QUIC.
    Quic(quinn::RecvStream),
    /// WebTransport.
    Wt(wtransport::RecvStream),
    /// The WebSocket's incoming binary messages.
    Ws(WsRecv),
}

/// A transport failure (the connection or stream is gone).
#[derive(Debug, thiserror::Error)]
#[error("transport: {0}")]
pub struct TransportError(pub String);

fn terr(e: impl std::fmt::Display) -> TransportError {
    TransportError(e.to_string())
}

/// Why a read gave no bytes.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The connection or stream is gone.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The peer sent something that is not part of the byte stream (a text
    /// WebSocket message): a malformed frame; the stream itself goes on.
    #[error("{0}")]
    NotFrames(&'static str),
}

impl Conn {
    /// Waits for the client's first bidirectional stream (control).
    pub async fn accept_bi(&self) -> Result<(SendStream, RecvStream), TransportError> {
        match self {
            Conn::Quic(c) => c.accept_bi().await.map(|(s, r)| (SendStream::Quic(s), RecvStream::Quic(r))).map_err(terr),
            Conn::Wt(c) => c.accept_bi().await.map(|(s, r)| (SendStream::Wt(s), RecvStream::Wt(r))).map_err(terr),
            Conn::Ws(c) => {
                let rx = c.inbound.borrow_mut().take();
                let rx = rx.ok_or_else(|| TransportError("a websocket carries one control stream".into()))?;
                Ok((SendStream::Ws(c.out.clone()), RecvStream::Ws(WsRecv { rx, pending: None })))
            }
        }
    }

    /// Opens the server's unidirectional stream (events).
    pub async fn open_uni(&self) -> Result<SendStream, TransportError> {
        match self {
            Conn::Quic(c) => c.open_uni().await.map(SendStream::Quic).map_err(terr),
            Conn::Wt(c) => c.open_uni().await.map_err(terr)?.await.map(SendStream::Wt).map_err(terr),
            Conn::Ws(c) => Ok(SendStream::Ws(c.out.clone())),
        }
    }

    /// Sends a datagram if the peer takes datagrams of this size.
    pub fn send_datagram(&self, data: Bytes) -> bool {
        match self {
            Conn::Quic(c) => c.max_datagram_size().is_some_and(|m| data.len() <= m) && c.send_datagram(data).is_ok(),
            Conn::Wt(c) => c.max_datagram_size().is_some_and(|m| data.len() <= m) && c.send_datagram(data).is_ok(),
            // No datagrams: the session writes the frame on the stream instead.
            Conn::Ws(_) => false,
        }
    }

    /// Closes with an application error code (an `ErrorCode` number).
    pub fn close(&self, code: u32, reason: &str) {
        match self {
            Conn::Quic(c) => c.close(code.into(), reason.as_bytes()),
            Conn::Wt(c) => c.close(code.into(), reason.as_bytes()),
            Conn::Ws(c) => c.close(code, reason),
        }
    }

    /// Resolves when the connection is closed.
    pub async fn closed(&self) {
        match self {
            Conn::Quic(c) => drop(c.closed().await),
            Conn::Wt(c) => drop(c.closed().await),
            Conn::Ws(c) => drop(c.done.subscribe().wait_for(|d| *d).await),
        }
    }

    /// The peer's address.
    pub fn remote(&self) -> SocketAddr {
        match self {
            Conn::Quic(c) => c.remote_address(),
            Conn::Wt(c) => c.remote_address(),
            Conn::Ws(c) => c.remote,
        }
    }

    /// "quic", "webtransport" or "websocket".
    pub fn kind(&self) -> &'static str {
        match self {
            Conn::Quic(_) => "quic",
            Conn::Wt(_) => "webtransport",
            Conn::Ws(_) => "websocket",
        }
    }
}

impl SendStream {
    /// Writes all of `buf`. On a WebSocket `buf` must be whole frames: it
    /// becomes one binary message.
    pub async fn write_all(&mut self, buf: &[u8]) -> Result<(), TransportError> {
        match self {
            SendStream::Quic(s) => s.write_all(buf).await.map_err(terr),
            SendStream::Wt(s) => s.write_all(buf).await.map_err(terr),
            SendStream::Ws(q) => ws_queue(q, Bytes::copy_from_slice(buf)).await,
        }
    }

    /// Writes several buffers in order (one call, fewer wake-ups). On a
    /// WebSocket they must be whole frames together: one binary message.
    pub async fn write_chunks(&mut self, bufs: &mut [Bytes]) -> Result<(), TransportError> {
        match self {
            SendStream::Quic(s) => s.write_all_chunks(bufs).await.map_err(terr),
            SendStream::Wt(s) => s.quic_stream_mut().write_all_chunks(bufs).await.map_err(terr),
            SendStream::Ws(q) => {
                let msg = match bufs {
                    [] => return Ok(()),
                    // The common case (one shared frame): no copy.
                    [one] => std::mem::take(one),
                    many => {
                        let mut all = bytes::BytesMut::with_capacity(many.iter().map(Bytes::len).sum());
                        for b in many.iter_mut() {
                            all.extend_from_slice(&std::mem::take(b));
                        }
                        all.freeze()
                    }
                };
                ws_queue(q, msg).await
            }
        }
    }

    /// Finishes the stream.
    pub fn finish(&mut self) {
        match self {
            SendStream::Quic(s) => drop(s.finish()),
            SendStream::Wt(s) => drop(s.quic_stream_mut().finish()),
            // One byte stream for everything; it ends with the connection.
            SendStream::Ws(_) => {}
        }
    }
}

impl RecvStream {
    /// The next bytes received, without copying them (up to `max`); `None` at
    /// the end of the stream. No per-connection scratch buffer is needed.
    pub async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, ReadError> {
        let s = match self {
            RecvStream::Quic(s) => s,
            RecvStream::Wt(s) => s.quic_stream_mut(),
            RecvStream::Ws(r) => return r.read_chunk(max).await,
        };
        Ok(s.read_chunk(max, true).await.map_err(terr)?.map(|c| c.bytes))
    }
}

/// Accepts an incoming QUIC connection and sorts it by ALPN. WebTransport
/// requests must target `/chat`, and a browser's `Origin` must be one the
/// server allows (`allowed`); a request without `Origin` is not a browser's.
pub async fn accept(incoming: quinn::Incoming, allowed: &crate::web::Origins) -> Result<Conn, TransportError> {
    let mut connecting = incoming.accept().map_err(terr)?;
    let alpn = connecting.handshake_data().await.map_err(terr)?;
    let alpn =
        alpn.downcast::<quinn::crypto::rustls::HandshakeData>().ok().and_then(|h| h.protocol).unwrap_or_default();
    if alpn == chat_protocol::ALPN_CHAT {
        return connecting.await.map(Conn::Quic).map_err(terr);
    }
    let request = wtransport::endpoint::IncomingSessionFuture::with_quic_connecting(connecting).await.map_err(terr)?;
    if request.path() != "/chat" {
        let path = request.path().to_string();
        request.not_found().await;
        return Err(TransportError(format!("webtransport path {path} is not /chat")));
    }
    if let Some(origin) = request.origin()
        && !allowed.allows(origin)
    {
        let origin = origin.to_string();
        tracing::warn!(%origin, remote = %request.remote_address(), "webtransport session refused: origin not allowed (see web.allowed_origins)");
        request.forbidden().await;
        return Err(TransportError(format!("webtransport origin {origin} is not allowed")));
    }
    tracing::debug!(origin = ?request.origin(), "webtransport session");
    request.accept().await.map(Conn::Wt).map_err(terr)
}

/// Messages queued towards one WebSocket peer; past it writers wait (and a
/// write that waits too long makes the session close the peer as a slow consumer).
const WS_OUT_QUEUE: usize = 64;
/// Binary messages read ahead from one WebSocket peer.
const WS_IN_QUEUE: usize = 8;
/// How long queued messages may take to go out after a close was asked for,
/// and then how long the close frame may take.
const WS_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The WebSocket close code for a session close code (an `ErrorCode` number):
/// `4000 + (code / 1000) * 100 + code % 1000`, e.g. 3002 → 4302, 4001 → 4401;
/// 4000 for anything that does not fit.
pub fn ws_close_code(code: u32) -> u16 {
    let (class, n) = (code / 1000, code % 1000);
    if class <= 9 && n < 100 { (4000 + class * 100 + n) as u16 } else { 4000 }
}

/// A WebSocket connection seen as a [`Conn`]: a driver task owns the socket;
/// the session talks to it through bounded queues.
pub struct WsConn {
    remote: SocketAddr,
    /// Taken by the one `accept_bi`.
    inbound: RefCell<Option<mpsc::Receiver<WsIn>>>,
    out: mpsc::Sender<Bytes>,
    /// Set once by `close`: the close frame to send after the queue drains.
    close: watch::Sender<Option<(u16, String)>>,
    /// Flips to true when the socket is gone.
    done: watch::Sender<bool>,
}

/// What the reader hands the session.
#[derive(Debug)]
pub enum WsIn {
    /// A binary message: stream bytes.
    Data(Bytes),
    /// A text message: not frames.
    Text,
}

/// The receiving half of a WebSocket.
pub struct WsRecv {
    rx: mpsc::Receiver<WsIn>,
    /// The rest of a message longer than one read.
    pending: Option<Bytes>,
}

impl WsRecv {
    async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, ReadError> {
        let mut b = match self.pending.take() {
            Some(b) => b,
            None => match self.rx.recv().await {
                Some(WsIn::Data(b)) => b,
                Some(WsIn::Text) => {
                    return Err(ReadError::NotFrames(
                        "a text WebSocket message is not a frame; send frames as binary messages",
                    ));
                }
                None => return Ok(None),
            },
        };
        if b.len() > max.max(1) {
            self.pending = Some(b.split_off(max.max(1)));
        }
        Ok(Some(b))
    }
}

async fn ws_queue(q: &mpsc::Sender<Bytes>, msg: Bytes) -> Result<(), TransportError> {
    q.send(msg).await.map_err(|_| TransportError("websocket closed".into()))
}

impl WsConn {
    /// Starts the driver of an accepted WebSocket on the current `LocalSet`.
    /// `idle` closes a peer that sends nothing (not even a pong to our pings) for that long.
    pub fn start<S>(ws: WebSocketStream<S>, remote: SocketAddr, idle: Duration) -> Conn
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
    {
        let (in_tx, in_rx) = mpsc::channel(WS_IN_QUEUE);
        let (out_tx, out_rx) = mpsc::channel(WS_OUT_QUEUE);
        let conn = Rc::new(WsConn {
            remote,
            inbound: RefCell::new(Some(in_rx)),
            out: out_tx,
            close: watch::channel(None).0,
            done: watch::channel(false).0,
        });
        let close = conn.close.subscribe();
        let done = conn.done.clone();
        tokio::task::spawn_local(async move {
            ws_drive(ws, in_tx, out_rx, close, idle).await;
            done.send_replace(true);
        });
        Conn::Ws(conn)
    }

    fn close(&self, code: u32, reason: &str) {
        // A close reason has at most 123 bytes.
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        self.close.send_if_modified(|c| {
            if c.is_some() {
                return false;
            }
            *c = Some((ws_close_code(code), reason[..end].to_string()));
            true
        });
    }
}

/// Owns the socket: reads into `in_tx`, writes what `out_rx` holds (flushing
/// when it runs dry), pings an idle peer, and on a close request drains the
/// queue for a moment, sends the close frame and stops.
async fn ws_drive<S>(
    ws: WebSocketStream<S>,
    in_tx: mpsc::Sender<WsIn>,
    mut out_rx: mpsc::Receiver<Bytes>,
    mut close: watch::Receiver<Option<(u16, String)>>,
    idle: Duration,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let last_heard = std::cell::Cell::new(tokio::time::Instant::now());
    let reader = async {
        while let Some(m) = stream.next().await {
            last_heard.set(tokio::time::Instant::now());
            let item = match m {
                Ok(Message::Binary(b)) => WsIn::Data(b),
                Ok(Message::Text(_)) => WsIn::Text,
                Ok(Message::Close(_)) => return,
                Ok(_) => continue,
                Err(e) => return tracing::debug!(error = %e, "websocket read ended"),
            };
            if in_tx.send(item).await.is_err() {
                // The session stopped reading: it is ending, and its close
                // (or the end of its writes) finishes the socket, not this.
                std::future::pending::<()>().await;
            }
        }
    };
    let mut closing = close.clone();
    let writer = async {
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + idle / 3, idle / 3);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let msg = tokio::select! {
                biased;
                m = out_rx.recv() => match m {
                    Some(m) => m,
                    // Every sender is gone: the session ended.
                    None => return,
                },
                _ = closing.wait_for(Option::is_some) => return,
                _ = ping.tick() => {
                    if last_heard.get().elapsed() > idle {
                        return tracing::debug!("websocket peer idle; closing");
                    }
                    if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            if sink.feed(Message::Binary(msg)).await.is_err() {
                return;
            }
            if out_rx.is_empty() && sink.flush().await.is_err() {
                return;
            }
        }
    };
    let closed_by_us = tokio::select! {
        _ = reader => false,
        _ = writer => true,
        _ = async {
            let _ = close.wait_for(Option::is_some).await;
            tokio::time::sleep(WS_CLOSE_GRACE).await;
        } => true,
    };
    if !closed_by_us {
        // The peer closed: let the reply to its close frame (queued by the
        // protocol) go out, briefly.
        let _ = tokio::time::timeout(WS_CLOSE_GRACE, sink.flush()).await;
        return;
    }
    // Whatever was queued before the close goes out first.
    let _ = tokio::time::timeout(WS_CLOSE_GRACE, async {
        while let Ok(m) = out_rx.try_recv() {
            if sink.feed(Message::Binary(m)).await.is_err() {
                return;
            }
        }
        let frame = close
            .borrow()
            .clone()
            .map(|(code, reason)| CloseFrame { code: CloseCode::from(code), reason: reason.into() });
        let frame = frame.or(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }));
        let _ = sink.send(Message::Close(frame)).await;
    })
    .await;
}
