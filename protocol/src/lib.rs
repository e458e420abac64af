//! `chat-protocol` owns the wire contract of the chat service: the protobuf
//! types generated from `schemas/chat/v1/chat.proto` (and, in [`cluster`],
//! from `schemas/chat/cluster/v1/cluster.proto`: what server nodes tell each
//! other, never seen by clients), the length-delimited
//! frame codec (which enforces its own size limit), input validation and the
//! limits it checks, wire error codes and their classes, and the client-side
//! sequencing rules (in order, no duplicates, gaps detected).
//!
//! It is sans-IO: no sockets, no runtime, no clock of its own. The server, the
//! Rust SDK and the load generator all build on it, so a frame means the same
//! thing everywhere.

pub mod codec;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
pub mod limits;
pub mod sequencer;

/// Types generated from `schemas/chat/v1/chat.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/chat.v1.rs"));
}

/// What chatd nodes tell each other over Redis (server to server only).
pub mod cluster {
    /// Types generated from `schemas/chat/cluster/v1/cluster.proto`.
    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/chat.cluster.v1.rs"));
    }
}

pub use codec::{FrameDecoder, FrameError, encode_frame, encode_frame_to_vec, peek_command_id};
pub use error::{ErrorClass, WireError};
pub use limits::{Limits, ValidationError};

/// The protocol version this crate speaks (sent in `Hello.protocol_version`).
pub const PROTOCOL_VERSION: u32 = 1;

/// ALPN of the raw QUIC transport.
pub const ALPN_CHAT: &[u8] = b"chat/1";

/// Milliseconds since the Unix epoch, the unit of every timestamp on the wire.
pub fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
