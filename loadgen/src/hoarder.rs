//! Hoarders: raw connections of one user that ask for the largest answers the
//! server makes (history pages of 200 messages of 10 KiB), many times over,
//! and never read a byte of them. A WebSocket hoarder has a tiny socket
//! receive buffer and is never polled after the server's `Welcome`; a raw QUIC
//! hoarder (stock quinn windows) never reads its control stream and never
//! accepts the events stream. Each knows when the server closed it without
//! reading: QUIC from the connection's close (and its code), WebSocket from
//! the socket's TCP state in `/proc/net/tcp`.

use anyhow::{Context, bail};
use bytes::BytesMut;
use chat_protocol::v1::{self, client_frame, command, reply, server_frame};
use chat_protocol::{FrameDecoder, encode_frame_to_vec};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Socket receive buffer of a WebSocket hoarder, bytes (the kernel doubles
/// it and keeps a floor of about 2 KiB): the hoarder takes almost nothing.
const WS_RCVBUF: usize = 4096;
/// Requests per WebSocket message when pipelining.
const FRAMES_PER_MESSAGE: usize = 256;
/// How long the handshake (connect, upgrade, Hello, first frame) may take.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Which transport a hoarder uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// WebSocket at `/ws` on the web endpoint.
    WebSocket,
    /// Raw QUIC, ALPN `chat/1`.
    Quic,
}

/// Where and as whom hoarders connect, and what they ask for.
#[derive(Debug, Clone)]
pub struct Aim {
    /// The QUIC address.
    pub quic: SocketAddr,
    /// The web endpoint.
    pub web: SocketAddr,
    /// The server certificate's SHA-256 (hex).
    pub cert_hash: String,
    /// The hoarding user's token.
    pub token: String,
    /// The conversation whose history they ask for.
    pub conv: u64,
    /// History page asked for (messages).
    pub page: u32,
    /// Requests pipelined per connection.
    pub requests: u32,
}

/// How a connection attempt ended.
#[derive(Debug)]
pub enum Opened {
    /// Welcomed: the requests are pipelined and it never reads again.
    Accepted(Box<Hoarder>),
    /// The server answered the Hello with an error.
    Refused(Refusal),
}

/// The server's refusal of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Refusal {
    /// The error code's name.
    pub code: String,
    /// The limit it names, if any.
    pub limit: String,
    /// Its message.
    pub message: String,
}

/// When and how the server ended a hoarder.
#[derive(Debug, Clone, Serialize)]
pub struct Closed {
    /// Since the hoarder's requests went out, s.
    pub after_s: f64,
    /// How (QUIC: the close code's name; WebSocket: the TCP state seen).
    pub how: String,
}

/// One accepted hoarding connection, held open and never read.
#[derive(Debug)]
pub struct Hoarder {
    /// Its transport.
    pub kind: Kind,
    /// When its requests went out.
    pub since: Instant,
    hold: Hold,
    closed: Arc<OnceLock<Closed>>,
}

enum Hold {
    Ws { _ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, local: SocketAddr },
    Quic { conn: quinn::Connection, _streams: (quinn::SendStream, quinn::RecvStream), _endpoint: quinn::Endpoint },
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hold::Ws { local, .. } => write!(f, "websocket from {local}"),
            Hold::Quic { conn, .. } => write!(f, "quic {}", conn.stable_id()),
        }
    }
}

/// TCP sockets on loopback by (local port, remote port): state and queues.
pub type TcpTable = HashMap<(u16, u16), TcpRow>;

/// One row of `/proc/net/tcp`.
#[derive(Debug, Clone, Copy)]
pub struct TcpRow {
    /// Kernel TCP state (see [`tcp_state`]).
    pub state: u8,
    /// Bytes queued to send (unsent or unacknowledged).
    pub tx_queue: u64,
}

/// `TCP_ESTABLISHED`.
const ESTABLISHED: u8 = 1;

/// The name of a kernel TCP state.
fn tcp_state(s: u8) -> &'static str {
    match s {
        1 => "established",
        4 => "fin-wait-1 (closed by chatd, data still queued)",
        5 => "fin-wait-2",
        6 => "time-wait",
        7 => "closed",
        8 => "close-wait",
        9 => "last-ack",
        11 => "closing",
        _ => "in another state",
    }
}

/// Reads `/proc/net/tcp` (IPv4; every hoarder is on 127.0.0.1).
pub fn tcp_table() -> TcpTable {
    let mut t = TcpTable::new();
    let Ok(s) = std::fs::read_to_string("/proc/net/tcp") else { return t };
    for line in s.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port = |a: &str| a.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
        let (Some(l), Some(r), Some(st), Some(q)) = (f.get(1), f.get(2), f.get(3), f.get(4)) else { continue };
        let (Some(lp), Some(rp), Ok(state)) = (port(l), port(r), u8::from_str_radix(st, 16)) else { continue };
        let tx_queue = q.split(':').next().and_then(|x| u64::from_str_radix(x, 16).ok()).unwrap_or(0);
        t.insert((lp, rp), TcpRow { state, tx_queue });
    }
    t
}

impl Hoarder {
    /// Whether (and how) the server has closed it; `tcp` is a recent [`tcp_table`].
    pub fn closed(&self, tcp: &TcpTable, web: SocketAddr) -> Option<Closed> {
        if let Some(c) = self.closed.get() {
            return Some(c.clone());
        }
        let Hold::Ws { local, .. } = &self.hold else { return None };
        // The server's side tells first: a FIN waits behind the unread data,
        // so the hoarder's own socket may stay established.
        let how = match (tcp.get(&(web.port(), local.port())), tcp.get(&(local.port(), web.port()))) {
            (Some(s), Some(c)) if s.state == ESTABLISHED && c.state == ESTABLISHED => return None,
            (Some(s), _) if s.state != ESTABLISHED => format!("server socket {}", tcp_state(s.state)),
            (None, _) => "server socket gone".into(),
            (_, c) => format!("own socket {}", c.map_or("gone", |c| tcp_state(c.state))),
        };
        let c = Closed { after_s: self.since.elapsed().as_secs_f64(), how };
        Some(self.closed.get_or_init(|| c).clone())
    }

    /// Bytes the server's kernel holds towards this hoarder (WebSocket only; not in the server's RSS).
    pub fn server_kernel_queue(&self, tcp: &TcpTable, web: SocketAddr) -> u64 {
        match &self.hold {
            Hold::Ws { local, .. } => tcp.get(&(web.port(), local.port())).map_or(0, |r| r.tx_queue),
            Hold::Quic { .. } => 0,
        }
    }

    /// Drops the connection (QUIC: closes it first).
    pub fn close(self) {
        if let Hold::Quic { conn, .. } = &self.hold {
            conn.close(0u32.into(), b"hoard over");
        }
    }
}

/// Opens one hoarding connection of `kind` and, once welcomed, pipelines the requests.
pub async fn open(kind: Kind, aim: &Aim) -> anyhow::Result<Opened> {
    match kind {
        Kind::WebSocket => open_ws(aim).await,
        Kind::Quic => open_quic(aim).await,
    }
}

fn hello(token: &str) -> Vec<u8> {
    encode_frame_to_vec(&v1::ClientFrame {
        kind: Some(client_frame::Kind::Hello(v1::Hello {
            token: token.into(),
            client: "loadgen-hoarder".into(),
            protocol_version: chat_protocol::PROTOCOL_VERSION,
            ..Default::default()
        })),
    })
}

/// `n` GetHistory commands (ids from 1), framed, in chunks of `per` frames.
fn requests(aim: &Aim, per: usize) -> Vec<Vec<u8>> {
    let ids: Vec<u64> = (1..=u64::from(aim.requests)).collect();
    ids.chunks(per.max(1))
        .map(|chunk| {
            let mut out = Vec::new();
            for &id in chunk {
                let body = command::Body::GetHistory(v1::GetHistory {
                    conversation_id: aim.conv,
                    limit: aim.page,
                    ..Default::default()
                });
                let f =
                    v1::ClientFrame { kind: Some(client_frame::Kind::Command(v1::Command { id, body: Some(body) })) };
                out.extend(encode_frame_to_vec(&f));
            }
            out
        })
        .collect()
}

/// The first server frame: Welcome (None) or the refusal.
fn first_frame(f: v1::ServerFrame) -> anyhow::Result<Option<Refusal>> {
    match f.kind {
        Some(server_frame::Kind::Welcome(_)) => Ok(None),
        Some(server_frame::Kind::Reply(v1::Reply { result: Some(reply::Result::Error(e)), .. })) => {
            Ok(Some(Refusal { code: code_name(e.code as u64), limit: e.limit, message: e.message }))
        }
        other => bail!("expected Welcome or an error, got {other:?}"),
    }
}

/// The name of an `ErrorCode` number.
pub fn code_name(code: u64) -> String {
    i32::try_from(code)
        .ok()
        .and_then(|c| v1::ErrorCode::try_from(c).ok())
        .map_or_else(|| format!("code {code}"), |c| c.as_str_name().to_string())
}

fn decode_one(buf: &mut BytesMut) -> anyhow::Result<Option<v1::ServerFrame>> {
    let mut dec = FrameDecoder::new(usize::MAX);
    match dec.decode(buf).map_err(|e| anyhow::anyhow!("bad server frame: {e:?}"))? {
        Some(f) => Ok(Some(v1::ServerFrame::decode(f).context("not a ServerFrame")?)),
        None => Ok(None),
    }
}

async fn open_ws(aim: &Aim) -> anyhow::Result<Opened> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(WS_RCVBUF as u32)?;
    let (mut ws, local) = tokio::time::timeout(HANDSHAKE, async {
        let tcp = socket.connect(aim.web).await.context("cannot connect to the web endpoint")?;
        let local = tcp.local_addr()?;
        let (ws, _) =
            tokio_tungstenite::client_async(format!("ws://{}/ws", aim.web), tcp).await.context("websocket upgrade")?;
        anyhow::Ok((ws, local))
    })
    .await
    .context("websocket handshake timed out")??;
    ws.send(Message::Binary(hello(&aim.token).into())).await?;
    let first = tokio::time::timeout(HANDSHAKE, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => return anyhow::Ok(b),
                Some(Ok(Message::Close(f))) => bail!("closed before Welcome: {f:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("websocket: {e}"),
                None => bail!("closed before Welcome"),
            }
        }
    })
    .await
    .context("no Welcome in time")??;
    let frame = decode_one(&mut BytesMut::from(&first[..]))?.context("a partial frame")?;
    if let Some(r) = first_frame(frame)? {
        return Ok(Opened::Refused(r));
    }
    for chunk in requests(aim, FRAMES_PER_MESSAGE) {
        ws.send(Message::Binary(chunk.into())).await?;
    }
    // From here on the socket is never polled: nothing is read.
    Ok(Opened::Accepted(Box::new(Hoarder {
        kind: Kind::WebSocket,
        since: Instant::now(),
        hold: Hold::Ws { _ws: ws, local },
        closed: Arc::new(OnceLock::new()),
    })))
}

async fn open_quic(aim: &Aim) -> anyhow::Result<Opened> {
    let trust = chat_client::Trust::cert_hash_hex(&aim.cert_hash).map_err(anyhow::Error::msg)?;
    let tls = chat_client::rustls_client_config(&trust, chat_protocol::ALPN_CHAT).map_err(anyhow::Error::msg)?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    // Keep-alives: the server must close it for not reading, not for idling.
    transport.keep_alive_interval(Some(Duration::from_secs(5)));
    transport.max_idle_timeout(Some(Duration::from_secs(300).try_into()?));
    cfg.transport_config(Arc::new(transport));
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    let (conn, mut tx, mut rx) = tokio::time::timeout(HANDSHAKE, async {
        let conn = endpoint.connect_with(cfg, aim.quic, "localhost")?.await?;
        let (tx, rx) = conn.open_bi().await?;
        anyhow::Ok((conn, tx, rx))
    })
    .await
    .context("quic handshake timed out")??;
    tx.write_all(&hello(&aim.token)).await?;
    let read_first = async {
        let mut buf = BytesMut::new();
        loop {
            if let Some(f) = decode_one(&mut buf)? {
                return anyhow::Ok(f);
            }
            match rx.read_chunk(64 * 1024, true).await? {
                Some(c) => buf.extend_from_slice(&c.bytes),
                None => bail!("control stream ended before Welcome"),
            }
        }
    };
    let frame = match tokio::time::timeout(HANDSHAKE, read_first).await {
        Ok(Ok(f)) => f,
        // A refusal's close may overtake its error reply.
        Ok(Err(e)) => match conn.close_reason() {
            Some(quinn::ConnectionError::ApplicationClosed(c)) => {
                return Ok(Opened::Refused(Refusal {
                    code: code_name(c.error_code.into_inner()),
                    limit: String::new(),
                    message: String::from_utf8_lossy(&c.reason).into_owned(),
                }));
            }
            _ => return Err(e),
        },
        Err(_) => bail!("no Welcome in time"),
    };
    if let Some(r) = first_frame(frame)? {
        return Ok(Opened::Refused(r));
    }
    for chunk in requests(aim, usize::MAX) {
        tx.write_all(&chunk).await?;
    }
    let since = Instant::now();
    let closed = Arc::new(OnceLock::new());
    let (watch, cell) = (conn.clone(), closed.clone());
    tokio::spawn(async move {
        let how = match watch.closed().await {
            quinn::ConnectionError::ApplicationClosed(c) => {
                format!("closed with {}", code_name(c.error_code.into_inner()))
            }
            other => other.to_string(),
        };
        let _ = cell.set(Closed { after_s: since.elapsed().as_secs_f64(), how });
    });
    // From here on neither stream is read, and the events stream is never accepted.
    Ok(Opened::Accepted(Box::new(Hoarder {
        kind: Kind::Quic,
        since,
        hold: Hold::Quic { conn, _streams: (tx, rx), _endpoint: endpoint },
        closed,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_every_request_in_chunks() {
        let aim = Aim {
            quic: "127.0.0.1:1".parse().unwrap(),
            web: "127.0.0.1:2".parse().unwrap(),
            cert_hash: String::new(),
            token: String::new(),
            conv: 7,
            page: 200,
            requests: 600,
        };
        let chunks = requests(&aim, 256);
        assert_eq!(chunks.len(), 3);
        let mut dec = FrameDecoder::new(1 << 20);
        let mut ids = Vec::new();
        for c in chunks {
            let mut buf = BytesMut::from(&c[..]);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                let Some(client_frame::Kind::Command(cmd)) = v1::ClientFrame::decode(f).unwrap().kind else {
                    panic!("a command")
                };
                assert!(
                    matches!(cmd.body, Some(command::Body::GetHistory(ref h)) if h.limit == 200 && h.conversation_id == 7)
                );
                ids.push(cmd.id);
            }
        }
        assert_eq!(ids, (1..=600).collect::<Vec<u64>>());
    }

    #[test]
    fn names_error_codes() {
        assert_eq!(code_name(3001), "ERROR_CODE_SLOW_CONSUMER");
        assert_eq!(code_name(99_999), "code 99999");
    }
}
