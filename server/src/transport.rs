//! Both transports behind one small face: raw QUIC (ALPN `chat/1`) and
//! WebTransport (ALPN `h3`) accepted on the same quinn endpoint, split by the
//! negotiated ALPN. Sessions see a [`Conn`] and its streams and nothing else.

use bytes::Bytes;
use std::net::SocketAddr;

/// An accepted connection of either kind.
#[derive(Clone)]
pub enum Conn {
    /// Raw QUIC.
    Quic(quinn::Connection),
    /// A WebTransport session.
    Wt(wtransport::Connection),
}

/// The sending half of a stream.
pub enum SendStream {
    /// Raw QUIC.
    Quic(quinn::SendStream),
    /// WebTransport (its header is already written).
    Wt(wtransport::SendStream),
}

/// The receiving half of a stream.
pub enum RecvStream {
    /// Raw QUIC.
    Quic(quinn::RecvStream),
    /// WebTransport.
    Wt(wtransport::RecvStream),
}

/// A transport failure (the connection or stream is gone).
#[derive(Debug, thiserror::Error)]
#[error("transport: {0}")]
pub struct TransportError(pub String);

fn terr(e: impl std::fmt::Display) -> TransportError {
    TransportError(e.to_string())
}

impl Conn {
    /// Waits for the client's first bidirectional stream (control).
    pub async fn accept_bi(&self) -> Result<(SendStream, RecvStream), TransportError> {
        match self {
            Conn::Quic(c) => c.accept_bi().await.map(|(s, r)| (SendStream::Quic(s), RecvStream::Quic(r))).map_err(terr),
            Conn::Wt(c) => c.accept_bi().await.map(|(s, r)| (SendStream::Wt(s), RecvStream::Wt(r))).map_err(terr),
        }
    }

    /// Opens the server's unidirectional stream (events).
    pub async fn open_uni(&self) -> Result<SendStream, TransportError> {
        match self {
            Conn::Quic(c) => c.open_uni().await.map(SendStream::Quic).map_err(terr),
            Conn::Wt(c) => c.open_uni().await.map_err(terr)?.await.map(SendStream::Wt).map_err(terr),
        }
    }

    /// Sends a datagram if the peer takes datagrams of this size.
    pub fn send_datagram(&self, data: Bytes) -> bool {
        match self {
            Conn::Quic(c) => c.max_datagram_size().is_some_and(|m| data.len() <= m) && c.send_datagram(data).is_ok(),
            Conn::Wt(c) => c.max_datagram_size().is_some_and(|m| data.len() <= m) && c.send_datagram(data).is_ok(),
        }
    }

    /// Closes with an application error code (an `ErrorCode` number).
    pub fn close(&self, code: u32, reason: &str) {
        match self {
            Conn::Quic(c) => c.close(code.into(), reason.as_bytes()),
            Conn::Wt(c) => c.close(code.into(), reason.as_bytes()),
        }
    }

    /// Resolves when the connection is closed.
    pub async fn closed(&self) {
        match self {
            Conn::Quic(c) => drop(c.closed().await),
            Conn::Wt(c) => drop(c.closed().await),
        }
    }

    /// The peer's address.
    pub fn remote(&self) -> SocketAddr {
        match self {
            Conn::Quic(c) => c.remote_address(),
            Conn::Wt(c) => c.remote_address(),
        }
    }

    /// "quic" or "webtransport".
    pub fn kind(&self) -> &'static str {
        match self {
            Conn::Quic(_) => "quic",
            Conn::Wt(_) => "webtransport",
        }
    }
}

impl SendStream {
    /// Writes all of `buf`.
    pub async fn write_all(&mut self, buf: &[u8]) -> Result<(), TransportError> {
        match self {
            SendStream::Quic(s) => s.write_all(buf).await.map_err(terr),
            SendStream::Wt(s) => s.write_all(buf).await.map_err(terr),
        }
    }

    /// Writes several buffers in order (one call, fewer wake-ups).
    pub async fn write_chunks(&mut self, bufs: &mut [Bytes]) -> Result<(), TransportError> {
        match self {
            SendStream::Quic(s) => s.write_all_chunks(bufs).await.map_err(terr),
            SendStream::Wt(s) => s.quic_stream_mut().write_all_chunks(bufs).await.map_err(terr),
        }
    }

    /// Finishes the stream.
    pub fn finish(&mut self) {
        match self {
            SendStream::Quic(s) => drop(s.finish()),
            SendStream::Wt(s) => drop(s.quic_stream_mut().finish()),
        }
    }
}

impl RecvStream {
    /// The next bytes received, without copying them (up to `max`); `None` at
    /// the end of the stream. No per-connection scratch buffer is needed.
    pub async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, TransportError> {
        let s = match self {
            RecvStream::Quic(s) => s,
            RecvStream::Wt(s) => s.quic_stream_mut(),
        };
        Ok(s.read_chunk(max, true).await.map_err(terr)?.map(|c| c.bytes))
    }
}

/// Accepts an incoming QUIC connection and sorts it by ALPN. WebTransport
/// requests must target `/chat`; their `Origin` is logged (browsers send it).
pub async fn accept(incoming: quinn::Incoming) -> Result<Conn, TransportError> {
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
    tracing::debug!(origin = ?request.origin(), "webtransport session");
    request.accept().await.map(Conn::Wt).map_err(terr)
}
