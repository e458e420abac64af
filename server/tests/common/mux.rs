//! A raw WebSocket client speaking the multiplex `chat.mux.v1`: the control
//! stream's frames on stream 0, transfers on streams of their own with
//! credit kept by hand (so tests can hold a download still or overrun it).
#![allow(dead_code)]

use super::web::{WAIT, WsStream, command_frame, hello, token};
use bytes::BytesMut;
use chat_protocol::v1::{self, command, push, reply, server_frame};
use chat_protocol::{FrameDecoder, encode_frame_to_vec};
use chat_server::transport::ws_mux::{CHUNK, Kind, SUBPROTOCOL, WINDOW, decode, encode};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// What arrived on one transfer stream.
#[derive(Default)]
pub struct Incoming {
    /// Bytes received, not yet taken.
    pub data: BytesMut,
    /// Bytes received in all.
    pub received: u64,
    /// The server finished its half.
    pub fin: bool,
    /// The server reset its half (code).
    pub reset: Option<u32>,
    /// The server asked us to stop sending (code).
    pub stop: Option<u32>,
    /// Bytes we may still send.
    pub credit: u64,
}

/// A multiplexed WebSocket session.
pub struct MuxWs {
    /// The socket.
    pub ws: WsStream,
    next_cmd: u64,
    next_stream: u32,
    /// Control frames read while waiting for something else.
    pub control: VecDeque<v1::ServerFrame>,
    /// Transfer streams by id.
    pub streams: HashMap<u32, Incoming>,
    /// Grant credit for download data as soon as it arrives.
    pub auto_credit: bool,
}

impl MuxWs {
    /// Connects offering `chat.mux.v1` (checking the server took it), says Hello, expects Welcome.
    pub async fn connect(web: SocketAddr, user: &str) -> MuxWs {
        let mut req = format!("ws://{web}/ws").into_client_request().unwrap();
        req.headers_mut().insert("sec-websocket-protocol", SUBPROTOCOL.parse().unwrap());
        let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req)).await.unwrap().unwrap();
        assert_eq!(resp.headers().get("sec-websocket-protocol").unwrap(), SUBPROTOCOL);
        let mut m = MuxWs {
            ws,
            next_cmd: 1,
            next_stream: 1,
            control: VecDeque::new(),
            streams: HashMap::new(),
            auto_credit: true,
        };
        m.send(0, Kind::Data, &encode_frame_to_vec(&hello(&token(user)))).await;
        match m.control_frame().await.kind {
            Some(server_frame::Kind::Welcome(_)) => m,
            other => panic!("expected Welcome, got {other:?}"),
        }
    }

    /// Sends one mux message (a socket the server closed shows in the next read).
    pub async fn send(&mut self, id: u32, kind: Kind, payload: &[u8]) {
        let _ = self.ws.send(Message::Binary(encode(id, kind, payload))).await;
    }

    /// Reads one message and files it; `Err` with the close frame's code and reason when the server closed.
    pub async fn pump(&mut self) -> Result<(), (u16, String)> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let data = loop {
            let m = tokio::time::timeout_at(deadline, self.ws.next()).await.expect("a message in time");
            match m {
                Some(Ok(Message::Binary(b))) => break b,
                Some(Ok(Message::Close(f))) => {
                    return Err(f.map(|f| (f.code.into(), f.reason.to_string())).unwrap_or((1005, String::new())));
                }
                Some(Ok(_)) => continue,
                other => return Err((1006, format!("{other:?}"))),
            }
        };
        let (id, kind, payload) = decode(data).expect("the server sends well-formed mux messages");
        if id == 0 {
            let mut buf = BytesMut::from(&payload[..]);
            let mut dec = FrameDecoder::new(usize::MAX);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                self.control.push_back(v1::ServerFrame::decode(f).expect("a ServerFrame"));
            }
            assert!(buf.is_empty(), "a control message holds whole frames");
            return Ok(());
        }
        let s = self.streams.get_mut(&id).expect("a stream we opened");
        match kind {
            Kind::Data => {
                s.received += payload.len() as u64;
                s.data.extend_from_slice(&payload);
                if self.auto_credit {
                    let n = payload.len() as u32;
                    self.send(id, Kind::Credit(n), b"").await;
                }
            }
            Kind::Fin => s.fin = true,
            Kind::Reset(c) => s.reset = Some(c),
            Kind::Stop(c) => s.stop = Some(c),
            Kind::Credit(n) => s.credit += u64::from(n),
        }
        Ok(())
    }

    /// The next control frame.
    pub async fn control_frame(&mut self) -> v1::ServerFrame {
        while self.control.is_empty() {
            self.pump().await.expect("the socket stays open");
        }
        self.control.pop_front().unwrap()
    }

    /// Sends a command on the control stream; returns its id.
    pub async fn command(&mut self, body: command::Body) -> u64 {
        let id = self.next_cmd;
        self.next_cmd += 1;
        self.send(0, Kind::Data, &command_frame(id, body)).await;
        id
    }

    /// Waits for the control-stream reply to `id`, keeping other frames.
    pub async fn reply(&mut self, id: u64) -> reply::Result {
        loop {
            let pos =
                self.control.iter().position(|f| matches!(&f.kind, Some(server_frame::Kind::Reply(r)) if r.id == id));
            if let Some(i) = pos
                && let Some(server_frame::Kind::Reply(r)) = self.control.remove(i).unwrap().kind
            {
                return r.result.expect("a result");
            }
            self.pump().await.expect("the socket stays open");
        }
    }

    /// A command and its reply.
    pub async fn request(&mut self, body: command::Body) -> reply::Result {
        let id = self.command(body).await;
        self.reply(id).await
    }

    /// Waits for a message push of `conv`.
    pub async fn message(&mut self, conv: u64) -> v1::Message {
        loop {
            let pos = self.control.iter().position(|f| match &f.kind {
                Some(server_frame::Kind::Push(v1::Push { event: Some(push::Event::Message(m)) })) => {
                    m.message.as_ref().is_some_and(|m| m.conversation_id == conv)
                }
                _ => false,
            });
            if let Some(i) = pos
                && let Some(server_frame::Kind::Push(v1::Push { event: Some(push::Event::Message(m)) })) =
                    self.control.remove(i).unwrap().kind
            {
                return m.message.unwrap();
            }
            self.pump().await.expect("the socket stays open");
        }
    }

    /// Opens a transfer stream with `header` (command id 1); returns the stream id.
    pub async fn open(&mut self, header: command::Body) -> u32 {
        let id = self.next_stream;
        self.next_stream += 2;
        let header = command_frame(1, header);
        self.streams.insert(id, Incoming { credit: WINDOW - header.len() as u64, ..Default::default() });
        self.send(id, Kind::Data, &header).await;
        id
    }

    /// Sends upload bytes on `id` within the credit, reading (and waiting for
    /// credit) as needed; false (after answering with a reset) when the server asked us to stop.
    pub async fn write(&mut self, id: u32, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            if self.streams[&id].stop.is_some() {
                self.send(id, Kind::Reset(0), b"").await;
                return false;
            }
            let credit = self.streams[&id].credit;
            if credit == 0 {
                self.pump().await.expect("the socket stays open");
                continue;
            }
            let n = data.len().min(CHUNK).min(credit as usize);
            self.streams.get_mut(&id).unwrap().credit -= n as u64;
            self.send(id, Kind::Data, &data[..n]).await;
            data = &data[n..];
        }
        true
    }

    /// The reply frame a transfer stream opens with.
    pub async fn stream_reply(&mut self, id: u32) -> reply::Result {
        loop {
            let mut dec = FrameDecoder::new(usize::MAX);
            if let Some(f) = dec.decode(&mut self.streams.get_mut(&id).unwrap().data).unwrap() {
                match v1::ServerFrame::decode(f).unwrap().kind {
                    Some(server_frame::Kind::Reply(r)) => return r.result.expect("a result"),
                    other => panic!("expected a reply on stream {id}, got {other:?}"),
                }
            }
            self.pump().await.expect("the socket stays open");
        }
    }

    /// Uploads a whole file on a new stream; returns the reply.
    pub async fn upload(&mut self, conv: u64, name: &str, media_type: &str, data: &[u8]) -> reply::Result {
        let start = v1::UploadStart {
            conversation_id: conv,
            name: name.into(),
            media_type: media_type.into(),
            size: data.len() as u64,
        };
        let id = self.open(command::Body::UploadStart(start)).await;
        if self.write(id, data).await {
            self.send(id, Kind::Fin, b"").await;
        }
        self.stream_reply(id).await
    }

    /// Downloads a whole attachment on a new stream.
    pub async fn download(&mut self, conv: u64, attachment_id: &str) -> Result<Vec<u8>, v1::Error> {
        let id = self.start_download(conv, attachment_id).await;
        match self.stream_reply(id).await {
            reply::Result::Download(_) => {}
            reply::Result::Error(e) => return Err(e),
            other => panic!("expected DownloadOk, got {other:?}"),
        }
        while !self.streams[&id].fin {
            self.pump().await.expect("the socket stays open");
        }
        self.send(id, Kind::Fin, b"").await;
        Ok(self.streams.get_mut(&id).unwrap().data.split().to_vec())
    }

    /// Opens a download stream (the header only).
    pub async fn start_download(&mut self, conv: u64, attachment_id: &str) -> u32 {
        let start =
            v1::DownloadStart { conversation_id: conv, attachment_id: attachment_id.into(), ..Default::default() };
        self.open(command::Body::DownloadStart(start)).await
    }

    /// Reads until the server closes; its close code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            if let Err(c) = self.pump().await {
                return c;
            }
        }
    }
}
