//! One connection over raw QUIC or WebTransport behind one small enum: open
//! the control stream and say `Hello`, read frames from the control stream,
//! the events stream and datagrams, write control frames, close.

use crate::config::{ClientConfig, Transport};
use crate::tls;
use bytes::{Bytes, BytesMut};
use chat_protocol::error::{WireError, WireErrorOwned};
use chat_protocol::v1::{ClientFrame, ServerFrame, Welcome, server_frame};
use chat_protocol::{FrameDecoder, Limits, encode_frame_to_vec};
use prost::Message as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How much is read from a stream at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Why a connection could not be made or was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lost {
    /// What happened, for logs.
    pub reason: String,
    /// The server's error (handshake reply, goodbye, close code), if any.
    pub error: Option<WireErrorOwned>,
}

impl Lost {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), error: None }
    }

    fn server(e: WireErrorOwned) -> Self {
        Self { reason: e.to_string(), error: Some(e) }
    }
}

/// The error an application close code stands for.
fn app_close(code: u64, reason: &[u8]) -> Lost {
    let e = WireErrorOwned {
        code: i32::try_from(code).unwrap_or(i32::MAX),
        message: String::from_utf8_lossy(reason).into_owned(),
        retry_after: None,
        limit: None,
    };
    Lost { reason: format!("closed by server: {e}"), error: Some(e) }
}

fn quinn_lost(e: &quinn::ConnectionError) -> Lost {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => app_close(c.error_code.into_inner(), &c.reason),
        other => Lost::new(other.to_string()),
    }
}

fn wt_lost(e: &wtransport::error::ConnectionError) -> Lost {
    match e {
        wtransport::error::ConnectionError::ApplicationClosed(c) => app_close(c.code().into_inner(), c.reason()),
        other => Lost::new(other.to_string()),
    }
}

/// A live connection.
#[derive(Clone)]
pub(crate) enum Conn {
    /// Raw QUIC, with the endpoint it owns (`None`: a shared endpoint).
    Quic(quinn::Connection, Option<quinn::Endpoint>),
    /// WebTransport.
    Wt(wtransport::Connection, Arc<wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client>>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Quic(..) => "Conn::Quic",
            Self::Wt(..) => "Conn::Wt",
        })
    }
}

impl Conn {
    /// Closes with an application code; waits briefly for the close to leave.
    pub async fn close(&self, code: u32, reason: &str) {
        match self {
            Self::Quic(c, ep) => {
                c.close(quinn::VarInt::from_u32(code), reason.as_bytes());
                // A shared endpoint lives on and sends the close by itself.
                if let Some(ep) = ep {
                    let _ = tokio::time::timeout(Duration::from_millis(500), ep.wait_idle()).await;
                }
            }
            Self::Wt(c, ep) => {
                c.close(wtransport::VarInt::from_u32(code), reason.as_bytes());
                let _ = tokio::time::timeout(Duration::from_millis(500), ep.wait_idle()).await;
            }
        }
    }

    /// Why the connection ended (waits a little for the reason to be known).
    async fn lost(&self, fallback: String) -> Lost {
        let wait = Duration::from_millis(200);
        match self {
            Self::Quic(c, _) => match tokio::time::timeout(wait, c.closed()).await {
                Ok(e) => quinn_lost(&e),
                Err(_) => Lost::new(fallback),
            },
            Self::Wt(c, _) => match tokio::time::timeout(wait, c.closed()).await {
                Ok(e) => wt_lost(&e),
                Err(_) => Lost::new(fallback),
            },
        }
    }

    /// Opens a bidirectional stream of its own (an attachment transfer).
    pub async fn open_bi(&self) -> Result<(SendHalf, RecvHalf), String> {
        match self {
            Self::Quic(c, _) => {
                c.open_bi().await.map(|(s, r)| (SendHalf::Quic(s), RecvHalf::Quic(r))).map_err(|e| e.to_string())
            }
            Self::Wt(c, _) => {
                let opening = c.open_bi().await.map_err(|e| e.to_string())?;
                opening.await.map(|(s, r)| (SendHalf::Wt(s), RecvHalf::Wt(r))).map_err(|e| e.to_string())
            }
        }
    }

    async fn accept_uni(&self) -> Result<RecvHalf, Lost> {
        match self {
            Self::Quic(c, _) => c.accept_uni().await.map(RecvHalf::Quic).map_err(|e| quinn_lost(&e)),
            Self::Wt(c, _) => c.accept_uni().await.map(RecvHalf::Wt).map_err(|e| wt_lost(&e)),
        }
    }

    async fn recv_datagram(&self) -> Result<Bytes, Lost> {
        match self {
            Self::Quic(c, _) => c.read_datagram().await.map_err(|e| quinn_lost(&e)),
            Self::Wt(c, _) => c.receive_datagram().await.map(|d| d.payload()).map_err(|e| wt_lost(&e)),
        }
    }
}

/// The sending half of the control stream.
pub(crate) enum SendHalf {
    /// Raw QUIC.
    Quic(quinn::SendStream),
    /// WebTransport.
    Wt(wtransport::SendStream),
}

impl SendHalf {
    /// Writes one encoded frame.
    pub async fn write_all(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self {
            Self::Quic(s) => s.write_all(bytes).await.map_err(|e| e.to_string()),
            Self::Wt(s) => s.write_all(bytes).await.map_err(|e| e.to_string()),
        }
    }

    /// Writes `frame` with its length prefix.
    pub async fn write_frame(&mut self, frame: &ClientFrame) -> Result<(), String> {
        self.write_all(&encode_frame_to_vec(frame)).await
    }

    /// Finishes the stream (all written).
    pub fn finish(&mut self) {
        match self {
            Self::Quic(s) => drop(s.finish()),
            Self::Wt(s) => drop(s.quic_stream_mut().finish()),
        }
    }

    /// Abandons the stream: the peer sees it reset, not finished.
    pub fn reset(&mut self) {
        match self {
            Self::Quic(s) => drop(s.reset(quinn::VarInt::from_u32(0))),
            Self::Wt(s) => drop(s.quic_stream_mut().reset(quinn::VarInt::from_u32(0))),
        }
    }
}

/// A receiving stream.
pub(crate) enum RecvHalf {
    /// Raw QUIC.
    Quic(quinn::RecvStream),
    /// WebTransport.
    Wt(wtransport::RecvStream),
}

impl RecvHalf {
    /// Reads into `buf`; None at the end of the stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, String> {
        match self {
            Self::Quic(s) => s.read(buf).await.map_err(|e| e.to_string()),
            Self::Wt(s) => s.read(buf).await.map_err(|e| e.to_string()),
        }
    }
}

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum ReadFail {
    /// The stream or connection failed.
    Transport(String),
    /// Bytes that are not a frame.
    Protocol(String),
}

/// Length-delimited `ServerFrame`s from one stream.
pub(crate) struct FrameReader {
    rx: RecvHalf,
    buf: BytesMut,
    dec: FrameDecoder,
    chunk: Box<[u8]>,
}

impl FrameReader {
    pub(crate) fn new(rx: RecvHalf) -> Self {
        Self {
            rx,
            buf: BytesMut::new(),
            dec: FrameDecoder::new(Limits::default().max_server_frame),
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
        }
    }

    /// The next frame; `None` at the end of the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<ServerFrame>, ReadFail> {
        loop {
            match self.dec.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    return ServerFrame::decode(frame)
                        .map(Some)
                        .map_err(|e| ReadFail::Protocol(format!("undecodable frame: {e}")));
                }
                Ok(None) => {}
                Err(e) => return Err(ReadFail::Protocol(e.to_string())),
            }
            match self.rx.read(&mut self.chunk).await.map_err(ReadFail::Transport)? {
                Some(n) => self.buf.extend_from_slice(&self.chunk[..n]),
                None if self.buf.is_empty() => return Ok(None),
                None => return Err(ReadFail::Protocol("stream ended inside a frame".into())),
            }
        }
    }
}

impl FrameReader {
    /// The stream and the bytes read past the last frame.
    pub(crate) fn into_parts(self) -> (RecvHalf, BytesMut) {
        (self.rx, self.buf)
    }
}

/// A connection whose handshake succeeded.
pub(crate) struct Established {
    /// The connection.
    pub conn: Conn,
    /// Where commands are written.
    pub control_tx: SendHalf,
    /// Where replies are read (bytes after the Welcome included).
    pub control_rx: FrameReader,
    /// The server's Welcome.
    pub welcome: Welcome,
}

/// Connects, opens the control stream, sends `hello` and waits for the
/// Welcome, all within `timeout`.
pub(crate) async fn connect(
    cfg: Arc<ClientConfig>,
    hello: ClientFrame,
    timeout: Duration,
) -> Result<Established, Lost> {
    match tokio::time::timeout(timeout, connect_inner(&cfg, &hello)).await {
        Ok(r) => r,
        Err(_) => Err(Lost::new("handshake timed out")),
    }
}

async fn resolve(addr: &str) -> Result<SocketAddr, Lost> {
    tokio::net::lookup_host(addr)
        .await
        .map_err(|e| Lost::new(format!("cannot resolve {addr}: {e}")))?
        .next()
        .ok_or_else(|| Lost::new(format!("{addr} resolves to nothing")))
}

fn unspecified(peer: SocketAddr) -> SocketAddr {
    if peer.is_ipv6() { SocketAddr::from(([0u16; 8], 0)) } else { SocketAddr::from(([0u8; 4], 0)) }
}

async fn connect_inner(cfg: &ClientConfig, hello: &ClientFrame) -> Result<Established, Lost> {
    let peer = resolve(&cfg.addr).await?;
    let (conn, tx, rx) = match cfg.transport {
        Transport::Quic => {
            let tls = tls::client_config(&cfg.trust, chat_protocol::ALPN_CHAT).map_err(Lost::new)?;
            let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
                .map_err(|e| Lost::new(format!("TLS setup: {e}")))?;
            let mut client = quinn::ClientConfig::new(Arc::new(crypto));
            let mut transport = quinn::TransportConfig::default();
            transport.keep_alive_interval(cfg.keep_alive);
            transport.max_idle_timeout(quinn::IdleTimeout::try_from(cfg.idle_timeout).ok());
            client.transport_config(Arc::new(transport));
            let endpoint = match &cfg.quic_endpoint {
                Some(shared) => shared.clone(),
                None => quinn::Endpoint::client(unspecified(peer))
                    .map_err(|e| Lost::new(format!("cannot bind a UDP socket: {e}")))?,
            };
            let owned = cfg.quic_endpoint.is_none().then(|| endpoint.clone());
            let conn = endpoint
                .connect_with(client, peer, &cfg.server_name)
                .map_err(|e| Lost::new(format!("cannot connect: {e}")))?
                .await
                .map_err(|e| quinn_lost(&e))?;
            let (tx, rx) = conn.open_bi().await.map_err(|e| quinn_lost(&e))?;
            (Conn::Quic(conn, owned), SendHalf::Quic(tx), RecvHalf::Quic(rx))
        }
        Transport::WebTransport => {
            let tls = tls::client_config(&cfg.trust, wtransport::tls::WEBTRANSPORT_ALPN).map_err(Lost::new)?;
            let config = wtransport::ClientConfig::builder()
                .with_bind_address(unspecified(peer))
                .with_custom_tls(tls)
                .keep_alive_interval(cfg.keep_alive)
                .max_idle_timeout(Some(cfg.idle_timeout))
                .map_err(|e| Lost::new(format!("transport setup: {e}")))?
                .build();
            let endpoint = wtransport::Endpoint::client(config)
                .map_err(|e| Lost::new(format!("cannot bind a UDP socket: {e}")))?;
            let url = format!("https://{}/chat", cfg.addr);
            let conn = endpoint.connect(&url).await.map_err(|e| match e {
                wtransport::error::ConnectingError::ConnectionError(c) => wt_lost(&c),
                other => Lost::new(format!("cannot connect to {url}: {other}")),
            })?;
            let (tx, rx) = conn
                .open_bi()
                .await
                .map_err(|e| wt_lost(&e))?
                .await
                .map_err(|e| Lost::new(format!("cannot open the control stream: {e}")))?;
            (Conn::Wt(conn, Arc::new(endpoint)), SendHalf::Wt(tx), RecvHalf::Wt(rx))
        }
    };
    handshake(conn, tx, rx, hello).await
}

async fn handshake(conn: Conn, mut tx: SendHalf, rx: RecvHalf, hello: &ClientFrame) -> Result<Established, Lost> {
    if let Err(e) = tx.write_frame(hello).await {
        return Err(conn.lost(format!("cannot send Hello: {e}")).await);
    }
    let mut reader = FrameReader::new(rx);
    let frame = match reader.next().await {
        Ok(Some(f)) => f,
        Ok(None) => {
            return Err(conn.lost("control stream closed during the handshake".into()).await);
        }
        Err(ReadFail::Transport(e)) => return Err(conn.lost(e).await),
        Err(ReadFail::Protocol(e)) => {
            conn.close(chat_protocol::v1::ErrorCode::ProtocolViolation as u32, "bad handshake frame").await;
            return Err(Lost::new(e));
        }
    };
    match frame.kind {
        Some(server_frame::Kind::Welcome(welcome)) => {
            Ok(Established { conn, control_tx: tx, control_rx: reader, welcome })
        }
        Some(server_frame::Kind::Reply(r)) => {
            let err = match r.result {
                Some(chat_protocol::v1::reply::Result::Error(e)) => WireError::from_proto(&e),
                _ => return Err(Lost::new("unexpected reply during the handshake")),
            };
            conn.close(0, "refused").await;
            Err(Lost::server(err))
        }
        _ => Err(Lost::new("unexpected frame during the handshake")),
    }
}

/// What the reader tasks pass to the driver.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A frame from the control stream.
    Control(ServerFrame),
    /// A frame from the events stream or a datagram.
    Event(ServerFrame),
    /// The connection is lost or misbehaved.
    Lost(Lost),
    /// A frame did not decode: drop the connection.
    Protocol(String),
}

/// Aborts the reader tasks of a connection when dropped.
pub(crate) struct Readers(Vec<JoinHandle<()>>);

impl Drop for Readers {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

async fn pump(conn: Conn, mut reader: FrameReader, tx: mpsc::Sender<Inbound>, control: bool) {
    loop {
        let msg = match reader.next().await {
            Ok(Some(f)) if control => Inbound::Control(f),
            Ok(Some(f)) => Inbound::Event(f),
            Ok(None) => {
                Inbound::Lost(conn.lost(format!("{} stream closed", if control { "control" } else { "events" })).await)
            }
            Err(ReadFail::Transport(e)) => Inbound::Lost(conn.lost(e).await),
            Err(ReadFail::Protocol(e)) => Inbound::Protocol(e),
        };
        let end = !matches!(msg, Inbound::Control(_) | Inbound::Event(_));
        if tx.send(msg).await.is_err() || end {
            return;
        }
    }
}

/// Starts reading the control stream, the events stream (once the server
/// opens it) and datagrams into `tx`.
pub(crate) fn spawn_readers(conn: &Conn, control: FrameReader, tx: mpsc::Sender<Inbound>) -> Readers {
    let control_task = tokio::spawn(pump(conn.clone(), control, tx.clone(), true));
    let events_conn = conn.clone();
    let events_tx = tx.clone();
    let events_task = tokio::spawn(async move {
        match events_conn.accept_uni().await {
            Ok(rx) => pump(events_conn, FrameReader::new(rx), events_tx, false).await,
            Err(lost) => {
                let _ = events_tx.send(Inbound::Lost(lost)).await;
            }
        }
    });
    let dgram_conn = conn.clone();
    let datagram_task = tokio::spawn(async move {
        // A datagram is one unprefixed ServerFrame. One that does not decode is
        // dropped (datagrams are for what may be lost); a closed connection is
        // reported by the stream readers.
        while let Ok(bytes) = dgram_conn.recv_datagram().await {
            match ServerFrame::decode(bytes) {
                Ok(f) => {
                    if tx.send(Inbound::Event(f)).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "dropping an undecodable datagram"),
            }
        }
    });
    Readers(vec![control_task, events_task, datagram_task])
}
