//! [`Conn`]: an accepted connection of any kind, and its streams; what
//! sessions see of a transport.

use super::error::{ReadError, TransportError, terr};
use super::ws::{WsConn, WsRecv};
use super::ws_out::WsOut;
use super::ws_streams::{MuxRecv, MuxSend};
use bytes::Bytes;
use std::net::SocketAddr;
use std::rc::Rc;

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
    Ws(WsOut),
    /// A stream of a multiplexed WebSocket (`chat.mux.v1`).
    Mux(MuxSend),
}

/// The receiving half of a stream.
pub enum RecvStream {
    /// Raw QUIC.
    Quic(quinn::RecvStream),
    /// WebTransport.
    Wt(wtransport::RecvStream),
    /// The WebSocket's incoming binary messages.
    Ws(WsRecv),
    /// A transfer stream of a multiplexed WebSocket.
    Mux(MuxRecv),
}

impl Conn {
    /// Waits for the client's next bidirectional stream: the first is the
    /// control stream, later ones carry transfers.
    pub async fn accept_bi(&self) -> Result<(SendStream, RecvStream), TransportError> {
        match self {
            Conn::Quic(c) => c.accept_bi().await.map(|(s, r)| (SendStream::Quic(s), RecvStream::Quic(r))).map_err(terr),
            Conn::Wt(c) => c.accept_bi().await.map(|(s, r)| (SendStream::Wt(s), RecvStream::Wt(r))).map_err(terr),
            Conn::Ws(c) => {
                let rx = c.inbound.borrow_mut().take();
                if let Some(rx) = rx {
                    return Ok((ws_control(c), RecvStream::Ws(WsRecv { rx, pending: None })));
                }
                let mux = c.mux.as_ref().ok_or_else(|| {
                    TransportError("a websocket without chat.mux.v1 carries one control stream".into())
                })?;
                mux.accept().await.map(|(s, r)| (SendStream::Mux(s), RecvStream::Mux(r)))
            }
        }
    }

    /// Opens the server's unidirectional stream (events).
    pub async fn open_uni(&self) -> Result<SendStream, TransportError> {
        match self {
            Conn::Quic(c) => c.open_uni().await.map(SendStream::Quic).map_err(terr),
            Conn::Wt(c) => c.open_uni().await.map_err(terr)?.await.map(SendStream::Wt).map_err(terr),
            Conn::Ws(c) => Ok(ws_control(c)),
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
            SendStream::Ws(q) => q.send(Bytes::copy_from_slice(buf)).await,
            SendStream::Mux(s) => s.write_all(buf).await,
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
                q.send(msg).await
            }
            SendStream::Mux(s) => s.write_chunks(bufs).await,
        }
    }

    /// Abandons the stream with an application error `code` (what was not
    /// yet sent is dropped); a plain WebSocket has no streams to reset.
    pub fn reset(&mut self, code: u32) {
        match self {
            SendStream::Quic(s) => drop(s.reset(code.into())),
            SendStream::Wt(s) => drop(s.reset(code.into())),
            SendStream::Ws(_) => {}
            SendStream::Mux(s) => s.reset(code),
        }
    }

    /// Finishes the stream.
    pub fn finish(&mut self) {
        match self {
            SendStream::Quic(s) => drop(s.finish()),
            SendStream::Wt(s) => drop(s.quic_stream_mut().finish()),
            // One byte stream for everything; it ends with the connection.
            SendStream::Ws(_) => {}
            SendStream::Mux(s) => s.finish(),
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
            RecvStream::Mux(r) => return r.read_chunk(max).await,
        };
        Ok(s.read_chunk(max, true).await.map_err(terr)?.map(|c| c.bytes))
    }
}

/// The sending half of a WebSocket's control stream (and of events, on the same bytes).
fn ws_control(c: &WsConn) -> SendStream {
    match &c.mux {
        Some(mux) => SendStream::Mux(mux.control()),
        None => SendStream::Ws(c.out.clone()),
    }
}
