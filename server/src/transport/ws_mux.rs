//! The WebSocket multiplex `chat.mux.v1`, sans IO: the header every binary
//! message carries under it, the rules for stream ids, and per-stream credit.
//! A browser without WebTransport offers the subprotocol [`SUBPROTOCOL`];
//! then every binary message is `id (u32 BE) | kind (u8) | rest`, where kind
//! is data (rest: payload), fin (nothing), reset (rest: u32 code; the sender
//! abandons its half), stop (rest: u32 code; the receiver asks the sender to
//! reset its half) or credit (rest: u32 bytes the receiver can take more).
//! Stream 0 is the control stream (no credit: bounded by the socket queues);
//! the client opens transfer streams with odd ids, each new one exactly 2
//! above the last (1, 3, 5, ...). Each side may send at most [`WINDOW`] bytes
//! of a transfer stream beyond what the receiver granted. The async half
//! (the streams themselves) is [`super::ws_streams`].

use bytes::{BufMut, Bytes, BytesMut};

/// The WebSocket subprotocol a client offers to get the multiplex.
pub const SUBPROTOCOL: &str = "chat.mux.v1";
/// Bytes of the header before a payload (stream id, kind).
pub const HEADER_LEN: usize = 5;
/// Unacknowledged bytes a sender may have in flight per transfer stream.
pub const WINDOW: u64 = 256 * 1024;
/// Largest data payload the server sends in one message, so control frames
/// interleave with a large transfer.
pub const CHUNK: usize = 32 * 1024;
/// Consumed bytes that make the receiver grant credit (fewer wait for more).
const GRANT_AT: u64 = CHUNK as u64;

/// What one mux message says about its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Payload bytes.
    Data,
    /// The sender's half ends cleanly.
    Fin,
    /// The sender abandons its half (an application code).
    Reset(u32),
    /// The receiver will not read more; the sender should reset its half.
    Stop(u32),
    /// The receiver can take this many more bytes.
    Credit(u32),
}

/// A multiplex rule broken by the peer; the connection is closed with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    /// Shorter than the header.
    #[error("a chat.mux.v1 message starts with a 5-byte header (stream id, kind); this one has {0} bytes")]
    Short(usize),
    /// A kind byte no version knows.
    #[error("chat.mux.v1 message kind {0} is unknown (0 data, 1 fin, 2 reset, 3 stop, 4 credit)")]
    UnknownKind(u8),
    /// A reset, stop or credit message of the wrong size.
    #[error("a chat.mux.v1 {0} message carries exactly a 4-byte number after the header")]
    BadLength(&'static str),
    /// Something other than data on the control stream.
    #[error("stream 0 (control) carries data only")]
    ControlKind,
    /// An even id other than 0: those are not the client's.
    #[error("stream {0}: client streams have odd ids")]
    EvenId(u32),
    /// A new stream that skips ids.
    #[error("stream {id} is out of order: the next new stream is {next}")]
    OutOfOrder {
        /// The id used.
        id: u32,
        /// The id expected.
        next: u32,
    },
    /// Data, fin or reset on a stream whose sending half already ended.
    #[error("stream {0} already ended; a new transfer takes a new id")]
    Ended(u32),
    /// More data than credit.
    #[error("stream {id} sent {over} bytes past its credit ({window} bytes unacknowledged at most)")]
    OverCredit {
        /// The stream.
        id: u32,
        /// Bytes beyond the credit.
        over: u64,
        /// The window.
        window: u64,
    },
    /// Too many transfer streams open at once.
    #[error("more than {0} transfer streams open at once")]
    TooManyStreams(usize),
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Data => 0,
            Kind::Fin => 1,
            Kind::Reset(_) => 2,
            Kind::Stop(_) => 3,
            Kind::Credit(_) => 4,
        }
    }
}

/// One message: `id`, `kind`, then `payload` (data only).
pub fn encode(id: u32, kind: Kind, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER_LEN + 4 + payload.len());
    b.put_u32(id);
    b.put_u8(kind.code());
    match kind {
        Kind::Reset(n) | Kind::Stop(n) | Kind::Credit(n) => b.put_u32(n),
        Kind::Data => b.put_slice(payload),
        Kind::Fin => {}
    }
    b.freeze()
}

/// Splits one message into stream id, kind and data payload (empty unless data).
pub fn decode(mut msg: Bytes) -> Result<(u32, Kind, Bytes), MuxError> {
    if msg.len() < HEADER_LEN {
        return Err(MuxError::Short(msg.len()));
    }
    let id = u32::from_be_bytes([msg[0], msg[1], msg[2], msg[3]]);
    let code = msg[4];
    let rest = msg.split_off(HEADER_LEN);
    let number = |what| <[u8; 4]>::try_from(&rest[..]).map(u32::from_be_bytes).map_err(|_| MuxError::BadLength(what));
    let kind = match code {
        0 => return Ok((id, Kind::Data, rest)),
        1 if rest.is_empty() => Kind::Fin,
        1 => return Err(MuxError::BadLength("fin")),
        2 => Kind::Reset(number("reset")?),
        3 => Kind::Stop(number("stop")?),
        4 => Kind::Credit(number("credit")?),
        k => return Err(MuxError::UnknownKind(k)),
    };
    if id == 0 {
        return Err(MuxError::ControlKind);
    }
    Ok((id, kind, Bytes::new()))
}

/// What an id names, by the rules for client stream ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// The control stream.
    Control,
    /// A stream opened by this very message.
    New,
    /// A stream opened before (it may have ended since).
    Earlier,
}

/// The client's stream ids: odd, each new one exactly 2 above the last.
#[derive(Debug, Clone)]
pub struct Ids {
    next: u32,
}

impl Default for Ids {
    fn default() -> Self {
        Self { next: 1 }
    }
}

impl Ids {
    /// Classifies `id`, taking it if it opens a new stream.
    pub fn classify(&mut self, id: u32) -> Result<Opened, MuxError> {
        if id == 0 {
            return Ok(Opened::Control);
        }
        if id.is_multiple_of(2) {
            return Err(MuxError::EvenId(id));
        }
        if id < self.next {
            return Ok(Opened::Earlier);
        }
        if id > self.next {
            return Err(MuxError::OutOfOrder { id, next: self.next });
        }
        self.next = self.next.checked_add(2).ok_or(MuxError::OutOfOrder { id, next: u32::MAX })?;
        Ok(Opened::New)
    }
}

/// The receiving side's credit of one stream: what the peer may still send,
/// and what was consumed but not yet granted back.
#[derive(Debug, Clone)]
pub struct InCredit {
    left: u64,
    ungranted: u64,
}

impl Default for InCredit {
    fn default() -> Self {
        Self { left: WINDOW, ungranted: 0 }
    }
}

impl InCredit {
    /// Counts `n` received bytes of stream `id`; past the credit is an error.
    pub fn receive(&mut self, id: u32, n: u64) -> Result<(), MuxError> {
        if n > self.left {
            return Err(MuxError::OverCredit { id, over: n - self.left, window: WINDOW });
        }
        self.left -= n;
        Ok(())
    }

    /// Counts `n` consumed bytes; returns the credit to grant, once enough
    /// has been consumed to be worth a message.
    pub fn consume(&mut self, n: u64) -> Option<u32> {
        self.ungranted += n;
        if self.ungranted < GRANT_AT {
            return None;
        }
        let grant = u32::try_from(self.ungranted).unwrap_or(u32::MAX);
        self.ungranted -= u64::from(grant);
        self.left += u64::from(grant);
        Some(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        for kind in [Kind::Data, Kind::Fin, Kind::Reset(7), Kind::Stop(9), Kind::Credit(65536)] {
            let payload: &[u8] = if kind == Kind::Data { b"abc" } else { b"" };
            let (id, k, p) = decode(encode(5, kind, payload)).unwrap();
            assert_eq!((id, k, &p[..]), (5, kind, payload));
        }
        assert_eq!(decode(encode(0, Kind::Data, b"")).unwrap(), (0, Kind::Data, Bytes::new()));
    }

    #[test]
    fn malformed_headers_are_named() {
        assert_eq!(decode(Bytes::from_static(&[0, 0, 0])), Err(MuxError::Short(3)));
        assert_eq!(decode(Bytes::from_static(&[0, 0, 0, 1, 9])), Err(MuxError::UnknownKind(9)));
        assert_eq!(decode(Bytes::from_static(&[0, 0, 0, 1, 4, 1])), Err(MuxError::BadLength("credit")));
        assert_eq!(decode(Bytes::from_static(&[0, 0, 0, 1, 1, 1])), Err(MuxError::BadLength("fin")));
        assert_eq!(decode(encode(0, Kind::Fin, b"")), Err(MuxError::ControlKind));
        let e = decode(Bytes::from_static(&[0])).unwrap_err().to_string();
        assert!(e.contains("5-byte header"), "{e}");
    }

    #[test]
    fn ids_are_odd_and_in_order() {
        let mut ids = Ids::default();
        assert_eq!(ids.classify(0), Ok(Opened::Control));
        assert_eq!(ids.classify(1), Ok(Opened::New));
        assert_eq!(ids.classify(1), Ok(Opened::Earlier));
        assert_eq!(ids.classify(2), Err(MuxError::EvenId(2)));
        assert_eq!(ids.classify(5), Err(MuxError::OutOfOrder { id: 5, next: 3 }));
        assert_eq!(ids.classify(3), Ok(Opened::New));
    }

    #[test]
    fn credit_is_granted_as_consumed_and_enforced() {
        let mut c = InCredit::default();
        c.receive(1, WINDOW).unwrap();
        assert_eq!(c.receive(1, 10), Err(MuxError::OverCredit { id: 1, over: 10, window: WINDOW }));
        assert_eq!(c.consume(100), None, "small reads wait for more");
        assert_eq!(c.consume(GRANT_AT), Some((GRANT_AT + 100) as u32));
        c.receive(1, GRANT_AT + 100).unwrap();
        assert!(c.receive(1, 1).is_err(), "only what was granted");
    }
}
