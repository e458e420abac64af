//! WebSocket sessions seen as a [`Conn`]: a driver task owns the socket and
//! the session talks to it through bounded queues; close codes map into the
//! WebSocket application range.

use super::error::ReadError;
use super::ws_out::{Queued, WsOut};
use super::ws_streams::Mux;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

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
    pub(super) remote: SocketAddr,
    /// Taken by the one `accept_bi`.
    pub(super) inbound: RefCell<Option<mpsc::Receiver<WsIn>>>,
    pub(super) out: WsOut,
    /// The multiplex, when the client asked for it (`chat.mux.v1`).
    pub(super) mux: Option<Rc<Mux>>,
    /// Set once by `close`: the close frame to send after the queue drains.
    close: watch::Sender<Option<(u16, String)>>,
    /// Flips to true when the socket is gone.
    pub(super) done: watch::Sender<bool>,
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
    pub(super) rx: mpsc::Receiver<WsIn>,
    /// The rest of a message longer than one read.
    pub(super) pending: Option<Bytes>,
}

impl WsRecv {
    pub(super) async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, ReadError> {
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

impl WsConn {
    /// Starts the driver of an accepted WebSocket on the current `LocalSet`.
    /// `idle` closes a peer that sends nothing (not even a pong to our pings) for that long.
    /// A peer that does not read has its TCP connection reset rather than
    /// closed: see [`Resettable`]. `mux`: the client negotiated `chat.mux.v1`;
    /// at most that many transfer streams may be open at once.
    pub fn start<S>(ws: WebSocketStream<S>, remote: SocketAddr, idle: Duration, mux: Option<usize>) -> Rc<Self>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Resettable + Unpin + 'static,
    {
        let (in_tx, in_rx) = mpsc::channel(WS_IN_QUEUE);
        let (out_tx, out_rx) = WsOut::new();
        let mux = mux.map(|max| Mux::new(out_tx.clone(), max));
        let conn = Rc::new(WsConn {
            remote,
            inbound: RefCell::new(Some(in_rx)),
            out: out_tx,
            mux: mux.clone(),
            close: watch::channel(None).0,
            done: watch::channel(false).0,
        });
        let close = conn.close.subscribe();
        let done = conn.done.clone();
        // Weak: the queue ends (and with it the writer) when the session lets go.
        let mux = mux.as_ref().map(Rc::downgrade);
        tokio::task::spawn_local(async move {
            let (mut sink, mut stream) = ws.split();
            let stuck = ws_drive(&mut sink, &mut stream, in_tx, out_rx, close, idle, mux.as_ref()).await;
            if let Some(mux) = mux.and_then(|m| m.upgrade()) {
                mux.shut();
            }
            if stuck && let Ok(ws) = sink.reunite(stream) {
                ws.get_ref().reset_on_close();
            }
            done.send_replace(true);
        });
        conn
    }

    pub(super) fn close(&self, code: u32, reason: &str) {
        self.close.send_if_modified(|c| {
            if c.is_some() {
                return false;
            }
            *c = Some((ws_close_code(code), close_reason(reason)));
            true
        });
    }
}

/// A close reason has at most 123 bytes: `reason` cut to fit.
fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

/// A socket we closed whose peer does not read keeps its unsent bytes in the
/// kernel (FIN-WAIT-1, up to the autotuned send buffer, ~2.7 MiB here) for as
/// long as the peer acknowledges the zero-window probes: minutes, and nothing
/// counts it against the user's connection cap. So when the close did not get
/// through, the socket is reset instead: `SO_LINGER` 0, set just before it is
/// dropped, makes the kernel drop the queue at once.
pub trait Resettable {
    /// Makes the coming close a reset, if this stream can.
    fn reset_on_close(&self);
}

impl Resettable for tokio::net::TcpStream {
    fn reset_on_close(&self) {
        if let Err(e) = socket2::SockRef::from(self).set_linger(Some(Duration::ZERO)) {
            tracing::debug!(error = %e, "cannot reset a stuck websocket");
        }
    }
}

impl Resettable for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    fn reset_on_close(&self) {
        self.get_ref().0.reset_on_close();
    }
}

/// A stream whose socket is out of reach (not expected: the web listener
/// hands over its own TCP or TLS stream) closes normally.
impl Resettable for hyper_util::rt::TokioIo<hyper::upgrade::Upgraded> {
    fn reset_on_close(&self) {}
}

/// Owns the socket: reads into `in_tx`, writes what `out_rx` holds (flushing
/// when it runs dry), pings an idle peer, and on a close request drains the
/// queue for a moment, sends the close frame and stops. Returns whether the
/// peer was stuck: the close was ours (or the peer's) and what was queued
/// and the close frame did not get into the socket within the grace.
async fn ws_drive<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    stream: &mut SplitStream<WebSocketStream<S>>,
    in_tx: mpsc::Sender<WsIn>,
    mut out_rx: mpsc::Receiver<Queued>,
    mut close: watch::Receiver<Option<(u16, String)>>,
    idle: Duration,
    mux: Option<&Weak<Mux>>,
) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let last_heard = std::cell::Cell::new(tokio::time::Instant::now());
    // Ends with the close frame to send when the peer broke the multiplex.
    let reader = async {
        while let Some(m) = stream.next().await {
            last_heard.set(tokio::time::Instant::now());
            let item = match (m, mux) {
                (Ok(Message::Binary(b)), None) => WsIn::Data(b),
                (Ok(Message::Binary(b)), Some(mux)) => match mux.upgrade().map_or(Ok(None), |m| m.route(b)) {
                    Ok(Some(control)) => WsIn::Data(control),
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::debug!(error = %e, "websocket multiplex broken; closing");
                        let code = ws_close_code(chat_protocol::v1::ErrorCode::ProtocolViolation as u32);
                        return Some(CloseFrame {
                            code: CloseCode::from(code),
                            reason: close_reason(&e.to_string()).into(),
                        });
                    }
                },
                (Ok(Message::Text(_)), _) => WsIn::Text,
                (Ok(Message::Close(_)), _) => return None,
                (Ok(_), _) => continue,
                (Err(e), _) => {
                    tracing::debug!(error = %e, "websocket read ended");
                    return None;
                }
            };
            if in_tx.send(item).await.is_err() {
                // The session stopped reading: it is ending, and its close
                // (or the end of its writes) finishes the socket, not this.
                std::future::pending::<()>().await;
            }
        }
        None
    };
    let mut closing = close.clone();
    let writer = async {
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + idle / 4, idle / 4);
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
            // The budget is given back once the socket took the message (a
            // peer that does not read makes `feed` wait: the queue stays full).
            let (msg, _share, _bulk) = msg;
            if sink.feed(Message::Binary(msg)).await.is_err() {
                return;
            }
            if out_rx.is_empty() && sink.flush().await.is_err() {
                return;
            }
        }
    };
    let mut broken = None;
    let closed_by_us = tokio::select! {
        r = reader => {
            broken = r;
            broken.is_some()
        }
        _ = writer => true,
        _ = async {
            let _ = close.wait_for(Option::is_some).await;
            tokio::time::sleep(WS_CLOSE_GRACE).await;
        } => true,
    };
    if !closed_by_us {
        // The peer closed: let the reply to its close frame (queued by the
        // protocol) go out, briefly.
        return tokio::time::timeout(WS_CLOSE_GRACE, sink.flush()).await.is_err();
    }
    // Whatever was queued before the close goes out first.
    tokio::time::timeout(WS_CLOSE_GRACE, async {
        while let Ok((m, _share, _bulk)) = out_rx.try_recv() {
            if sink.feed(Message::Binary(m)).await.is_err() {
                return;
            }
        }
        let frame = broken.or_else(|| {
            close
                .borrow()
                .clone()
                .map(|(code, reason)| CloseFrame { code: CloseCode::from(code), reason: reason.into() })
        });
        let frame = frame.or(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }));
        let _ = sink.send(Message::Close(frame)).await;
    })
    .await
    .is_err()
}
