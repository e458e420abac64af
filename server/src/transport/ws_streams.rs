//! The streams of a multiplexed WebSocket (`chat.mux.v1`, rules in
//! [`super::ws_mux`]): [`Mux`] routes each incoming message to its stream
//! (never waiting, so one slow stream holds up no other), queues the
//! streams the client opens for `accept_bi`, and hands out [`MuxSend`] and
//! [`MuxRecv`], which wait for credit and grant it as they are read. What a
//! stream holds unread is bounded by its credit; how many streams are open
//! at once is bounded too.

use super::error::{ReadError, TransportError};
use super::ws_mux::{self, CHUNK, Ids, InCredit, Kind, MuxError, Opened};
use super::ws_out::WsOut;
use bytes::{Bytes, BytesMut};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use tokio::sync::Notify;

/// The code of a stop or reset the server sends when it abandons a stream.
const ABANDONED: u32 = 0;

/// How the peer's half of a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Fin,
    Reset(u32),
    /// The connection is gone.
    Gone,
}

/// One transfer stream, shared by the router and the two halves.
struct Stream {
    id: u32,
    /// Received, not yet read (at most the credit).
    inbox: RefCell<BytesMut>,
    credit_in: RefCell<InCredit>,
    /// The peer's half ended.
    end: Cell<Option<End>>,
    /// Nobody reads any more: data is counted against the credit and dropped.
    unread: Cell<bool>,
    readable: Notify,
    /// Bytes we may still send.
    credit_out: Cell<u64>,
    /// The peer asked us to stop (or the connection is gone).
    stopped: Cell<Option<u32>>,
    /// Our sending half ended (fin or reset sent).
    sent_end: Cell<bool>,
    writable: Notify,
}

/// The router and the accept queue of one multiplexed WebSocket.
pub struct Mux {
    out: WsOut,
    ids: RefCell<Ids>,
    /// Streams whose peer half or our sending half is still open.
    streams: RefCell<HashMap<u32, Rc<Stream>>>,
    accepted: RefCell<VecDeque<Rc<Stream>>>,
    arrivals: Notify,
    max_streams: usize,
    gone: Cell<bool>,
}

impl Mux {
    /// A multiplex sending through `out`, with at most `max_streams` open.
    pub(super) fn new(out: WsOut, max_streams: usize) -> Rc<Self> {
        Rc::new(Self {
            out,
            ids: RefCell::default(),
            streams: RefCell::default(),
            accepted: RefCell::default(),
            arrivals: Notify::new(),
            max_streams,
            gone: Cell::new(false),
        })
    }

    /// Routes one incoming message. Returns the payload of control-stream
    /// data (for the control stream's reader); an error closes the connection.
    pub(super) fn route(&self, msg: Bytes) -> Result<Option<Bytes>, MuxError> {
        let (id, kind, payload) = ws_mux::decode(msg)?;
        let opened = self.ids.borrow_mut().classify(id)?;
        let stream = match opened {
            Opened::Control => return Ok(Some(payload)),
            Opened::New => self.open(id)?,
            Opened::Earlier => match self.streams.borrow().get(&id) {
                Some(s) => s.clone(),
                // Credit or a stop may cross our fin; anything else reuses an id.
                None if matches!(kind, Kind::Credit(_) | Kind::Stop(_)) => return Ok(None),
                None => return Err(MuxError::Ended(id)),
            },
        };
        match kind {
            Kind::Credit(n) => {
                stream.credit_out.set(stream.credit_out.get().saturating_add(n.into()));
                stream.writable.notify_one();
            }
            Kind::Stop(code) => {
                stream.stopped.set(Some(code));
                stream.writable.notify_one();
            }
            _ if stream.end.get().is_some() => return Err(MuxError::Ended(id)),
            Kind::Data => {
                stream.credit_in.borrow_mut().receive(id, payload.len() as u64)?;
                if !stream.unread.get() {
                    stream.inbox.borrow_mut().extend_from_slice(&payload);
                    stream.readable.notify_one();
                }
            }
            Kind::Fin | Kind::Reset(_) => {
                stream.end.set(Some(if let Kind::Reset(c) = kind { End::Reset(c) } else { End::Fin }));
                stream.readable.notify_one();
                self.forget_if_done(&stream);
            }
        }
        Ok(None)
    }

    fn open(&self, id: u32) -> Result<Rc<Stream>, MuxError> {
        if self.streams.borrow().len() >= self.max_streams {
            return Err(MuxError::TooManyStreams(self.max_streams));
        }
        let s = Rc::new(Stream {
            id,
            inbox: RefCell::default(),
            credit_in: RefCell::default(),
            end: Cell::new(None),
            unread: Cell::new(false),
            readable: Notify::new(),
            credit_out: Cell::new(ws_mux::WINDOW),
            stopped: Cell::new(None),
            sent_end: Cell::new(false),
            writable: Notify::new(),
        });
        self.streams.borrow_mut().insert(id, s.clone());
        self.accepted.borrow_mut().push_back(s.clone());
        self.arrivals.notify_one();
        Ok(s)
    }

    /// A stream both of whose halves ended is no longer routed to.
    fn forget_if_done(&self, s: &Stream) {
        if s.end.get().is_some() && s.sent_end.get() {
            self.streams.borrow_mut().remove(&s.id);
        }
    }

    /// The next stream the client opened; an error once the socket is gone.
    pub(super) async fn accept(self: &Rc<Self>) -> Result<(MuxSend, MuxRecv), TransportError> {
        loop {
            if self.gone.get() {
                return Err(TransportError("websocket closed".into()));
            }
            let next = self.accepted.borrow_mut().pop_front();
            if let Some(s) = next {
                return Ok((MuxSend::new(self.clone(), Some(s.clone())), MuxRecv { mux: self.clone(), s }));
            }
            self.arrivals.notified().await;
        }
    }

    /// The socket is gone: every stream's reads and writes end.
    pub(super) fn shut(&self) {
        self.gone.set(true);
        self.arrivals.notify_one();
        for s in self.streams.borrow_mut().drain().map(|(_, s)| s) {
            if s.end.get().is_none() {
                s.end.set(Some(End::Gone));
            }
            s.stopped.set(Some(ABANDONED));
            s.readable.notify_one();
            s.writable.notify_one();
        }
    }

    /// Queues a stream-level message (credit, fin, reset, stop) at once,
    /// from code that cannot wait.
    fn signal(self: &Rc<Self>, id: u32, kind: Kind) {
        let mux = self.clone();
        tokio::task::spawn_local(async move {
            let _ = mux.out.send(ws_mux::encode(id, kind, b"")).await;
        });
    }

    /// The sending half of the control stream.
    pub(super) fn control(self: &Rc<Self>) -> MuxSend {
        MuxSend::new(self.clone(), None)
    }
}

/// The sending half of a multiplexed stream (`None`: the control stream).
pub struct MuxSend {
    mux: Rc<Mux>,
    s: Option<Rc<Stream>>,
}

impl MuxSend {
    fn new(mux: Rc<Mux>, s: Option<Rc<Stream>>) -> Self {
        Self { mux, s }
    }

    /// Writes all of `buf`: on the control stream as one message (whole
    /// frames); on a transfer stream in chunks, each waiting for credit.
    pub(super) async fn write_all(&mut self, buf: &[u8]) -> Result<(), TransportError> {
        let Some(s) = &self.s else {
            return self.mux.out.send(ws_mux::encode(0, Kind::Data, buf)).await;
        };
        let mut rest = buf;
        while !rest.is_empty() {
            if let Some(code) = s.stopped.get() {
                return Err(TransportError(format!("stream {} stopped by the peer (code {code})", s.id)));
            }
            let credit = s.credit_out.get();
            if credit == 0 {
                s.writable.notified().await;
                continue;
            }
            let n = rest.len().min(CHUNK).min(usize::try_from(credit).unwrap_or(CHUNK));
            s.credit_out.set(credit - n as u64);
            self.mux.out.send_bulk(ws_mux::encode(s.id, Kind::Data, &rest[..n])).await?;
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Writes several buffers in order: on the control stream as one
    /// message (whole frames together, behind the header).
    pub(super) async fn write_chunks(&mut self, bufs: &mut [Bytes]) -> Result<(), TransportError> {
        if self.s.is_some() {
            for b in bufs.iter() {
                self.write_all(b).await?;
            }
            return Ok(());
        }
        let mut msg = BytesMut::with_capacity(ws_mux::HEADER_LEN + bufs.iter().map(Bytes::len).sum::<usize>());
        msg.extend_from_slice(&ws_mux::encode(0, Kind::Data, b""));
        for b in bufs.iter_mut() {
            msg.extend_from_slice(&std::mem::take(b));
        }
        self.mux.out.send(msg.freeze()).await
    }

    /// Ends the sending half cleanly.
    pub(super) fn finish(&mut self) {
        self.end(Kind::Fin);
    }

    /// Abandons the sending half with an application error `code`; the peer's
    /// read fails as on a QUIC reset (the control stream cannot be reset).
    pub(super) fn reset(&mut self, code: u32) {
        self.end(Kind::Reset(code));
    }

    fn end(&mut self, kind: Kind) {
        let Some(s) = &self.s else { return };
        if s.sent_end.replace(true) {
            return;
        }
        if !self.mux.gone.get() {
            self.mux.signal(s.id, kind);
        }
        self.mux.forget_if_done(s);
    }
}

impl Drop for MuxSend {
    fn drop(&mut self) {
        self.end(Kind::Reset(ABANDONED));
    }
}

/// The receiving half of a multiplexed transfer stream.
pub struct MuxRecv {
    mux: Rc<Mux>,
    s: Rc<Stream>,
}

impl MuxRecv {
    /// The next bytes received (up to `max`), granting credit for them; `None`
    /// after the peer's fin, an error after its reset or the socket's end.
    pub(super) async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, ReadError> {
        let s = &self.s;
        loop {
            let chunk = {
                let mut inbox = s.inbox.borrow_mut();
                let n = inbox.len().min(max.max(1));
                (n > 0).then(|| inbox.split_to(n).freeze())
            };
            if let Some(chunk) = chunk {
                let grant = s.credit_in.borrow_mut().consume(chunk.len() as u64);
                if let Some(n) = grant
                    && s.end.get().is_none()
                {
                    self.mux.out.send(ws_mux::encode(s.id, Kind::Credit(n), b"")).await?;
                }
                return Ok(Some(chunk));
            }
            match s.end.get() {
                Some(End::Fin) => return Ok(None),
                Some(End::Reset(code)) => {
                    return Err(TransportError(format!("stream {} reset by the peer (code {code})", s.id)).into());
                }
                Some(End::Gone) => return Err(TransportError("websocket closed".into()).into()),
                None => s.readable.notified().await,
            }
        }
    }
}

impl Drop for MuxRecv {
    fn drop(&mut self) {
        let s = &self.s;
        s.unread.set(true);
        *s.inbox.borrow_mut() = BytesMut::new();
        if s.end.get().is_none() && !self.mux.gone.get() {
            // Like QUIC's STOP_SENDING: the peer answers with a reset (or a fin).
            self.mux.signal(s.id, Kind::Stop(ABANDONED));
        }
    }
}
