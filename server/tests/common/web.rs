//! Raw clients for the web endpoint: a minimal HTTP/1.1 client (exactly the
//! bytes we mean) and a WebSocket client speaking the protocol's frames.
#![allow(dead_code)]

use bytes::BytesMut;
use chat_protocol::v1::{self, client_frame, command, message_body, push, reply, server_frame};
use chat_protocol::{FrameDecoder, encode_frame_to_vec};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

/// How long a test waits for an answer.
pub const WAIT: Duration = Duration::from_secs(10);
/// Every response's Content-Security-Policy up to its `connect-src` origins.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                       manifest-src 'self'; worker-src 'self'; \
                       base-uri 'none'; form-action 'none'; frame-ancestors 'none'; connect-src 'self' ";

/// A token for `user` (an advocate), signed with the public dev secret.
pub fn token(user: &str) -> String {
    super::token(user, "advocate")
}

// ---- a minimal HTTP/1.1 client: exactly the bytes we mean ----

pub struct HttpResp {
    /// Status code.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpResp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn assert_secure(&self, content_type: &str) {
        assert_eq!(self.header("content-type"), Some(content_type), "content type");
        let csp = self.header("content-security-policy").expect("a CSP");
        assert!(csp.starts_with(CSP), "{csp}");
        // connect-src names origins, never a whole scheme.
        let connect = &csp[CSP.len()..];
        assert!(connect.split(' ').all(|src| src.contains("://")), "{connect}");
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(self.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(self.header("cache-control"), Some("no-cache"));
    }
}

pub async fn http_raw(addr: SocketAddr, request: String) -> HttpResp {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await.expect("response in time").unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8(out[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    HttpResp { status, headers, body: out[split + 4..].to_vec() }
}

pub async fn http(addr: SocketAddr, method: &str, path: &str, host: &str) -> HttpResp {
    let len = if method == "POST" { "Content-Length: 0\r\n" } else { "" };
    http_raw(addr, format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{len}Connection: close\r\n\r\n")).await
}

// ---- a WebSocket chat client speaking the raw protocol ----

pub type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Ws {
    /// The socket.
    pub ws: WsStream,
    /// The next command id.
    pub next_id: u64,
    /// Pushes read while waiting for replies.
    pub pushes: Vec<push::Event>,
    /// Replies read while waiting for another (replies may come in any order).
    pub replies: std::collections::HashMap<u64, reply::Result>,
}

pub async fn ws_open(web: SocketAddr, origin: Option<&str>) -> Result<WsStream, tungstenite::Error> {
    let mut req = format!("ws://{web}/ws").into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req)).await.expect("upgrade in time").map(|(ws, _)| ws)
}

pub fn hello(token: &str) -> v1::ClientFrame {
    v1::ClientFrame {
        kind: Some(client_frame::Kind::Hello(v1::Hello {
            token: token.into(),
            client: "web-test".into(),
            protocol_version: chat_protocol::PROTOCOL_VERSION,
            ..Default::default()
        })),
    }
}

pub fn command_frame(id: u64, body: command::Body) -> Vec<u8> {
    encode_frame_to_vec(&v1::ClientFrame {
        kind: Some(client_frame::Kind::Command(v1::Command { id, body: Some(body) })),
    })
}

impl Ws {
    /// Connects, says Hello, and expects Welcome.
    pub async fn connect(web: SocketAddr, user: &str) -> (Ws, v1::Welcome) {
        let mut ws =
            Ws { ws: ws_open(web, None).await.unwrap(), next_id: 1, pushes: Vec::new(), replies: Default::default() };
        ws.send_bytes(encode_frame_to_vec(&hello(&token(user)))).await;
        match ws.frame().await.kind {
            Some(server_frame::Kind::Welcome(w)) => (ws, w),
            other => panic!("expected Welcome, got {other:?}"),
        }
    }

    pub async fn send_bytes(&mut self, b: Vec<u8>) {
        self.ws.send(Message::Binary(b.into())).await.unwrap();
    }

    /// The next server frame. Every binary message must hold whole frames.
    pub async fn frame(&mut self) -> v1::ServerFrame {
        self.frames().await.remove(0)
    }

    /// The frames of the next binary message (one or more, all whole).
    pub async fn frames(&mut self) -> Vec<v1::ServerFrame> {
        // One deadline for the whole wait: the server's pings must not extend it.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let m = tokio::time::timeout_at(deadline, self.ws.next()).await.expect("a message in time");
            let data = match m.expect("socket open").expect("no socket error") {
                Message::Binary(b) => b,
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a binary message, got {other:?}"),
            };
            let mut buf = BytesMut::from(&data[..]);
            let mut dec = FrameDecoder::new(usize::MAX);
            let mut out = Vec::new();
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                out.push(v1::ServerFrame::decode(f).expect("a ServerFrame"));
            }
            assert!(buf.is_empty() && !out.is_empty(), "a message holds whole frames only ({} bytes left)", buf.len());
            return out;
        }
    }

    /// Waits for the reply to `id`, keeping pushes that come first.
    pub async fn reply(&mut self, id: u64) -> reply::Result {
        loop {
            if let Some(r) = self.replies.remove(&id) {
                return r;
            }
            for f in self.frames().await {
                match f.kind {
                    Some(server_frame::Kind::Reply(r)) => {
                        assert!(self.replies.insert(r.id, r.result.expect("a result")).is_none(), "one reply per id");
                    }
                    Some(server_frame::Kind::Push(v1::Push { event: Some(e) })) => self.pushes.push(e),
                    other => panic!("unexpected frame while waiting for reply {id}: {other:?}"),
                }
            }
        }
    }

    pub async fn request(&mut self, body: command::Body) -> reply::Result {
        let id = self.next_id;
        self.next_id += 1;
        self.send_bytes(command_frame(id, body)).await;
        self.reply(id).await
    }

    /// The next message push of `conv`.
    pub async fn message(&mut self, conv: u64) -> v1::Message {
        loop {
            let of_conv = |e: &push::Event| match e {
                push::Event::Message(m) => m.message.as_ref().is_some_and(|m| m.conversation_id == conv),
                _ => false,
            };
            if let Some(i) = self.pushes.iter().position(of_conv)
                && let push::Event::Message(m) = self.pushes.remove(i)
            {
                return m.message.unwrap();
            }
            for f in self.frames().await {
                if let Some(server_frame::Kind::Push(v1::Push { event: Some(e) })) = f.kind {
                    self.pushes.push(e);
                }
            }
        }
    }

    pub async fn ping(&mut self) {
        match self.request(command::Body::Ping(v1::Ping::default())).await {
            reply::Result::Pong(_) => {}
            other => panic!("expected Pong, got {other:?}"),
        }
    }
}

pub fn text_body(t: &str) -> Option<v1::MessageBody> {
    Some(v1::MessageBody { content: Some(message_body::Content::Text(t.into())) })
}

pub fn text_of(m: &v1::Message) -> &str {
    match m.body.as_ref().and_then(|b| b.content.as_ref()) {
        Some(message_body::Content::Text(t)) => t,
        _ => "",
    }
}

pub fn error_of(r: reply::Result) -> v1::Error {
    match r {
        reply::Result::Error(e) => e,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

// ---- tests ----
