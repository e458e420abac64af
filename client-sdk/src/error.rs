//! What a call of the SDK can fail with.

use chat_protocol::error::WireErrorOwned;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The connection could not be made (address, TLS, transport, handshake).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The server answered with an error.
    #[error("server error: {0}")]
    Server(WireErrorOwned),
    /// No reply within the request timeout.
    #[error("request timed out")]
    Timeout,
    /// The connection dropped while the request was in flight.
    #[error("disconnected while the request was in flight")]
    Disconnected,
    /// The outbox is full: too many sends wait for their ack.
    #[error("outbox full")]
    OutboxFull,
    /// The outbox file ([`crate::ClientConfig::outbox_file`]) cannot be
    /// read or written (the send was not queued).
    #[error("outbox file: {0}")]
    OutboxFile(String),
    /// The client was closed (or stopped after a fatal error).
    #[error("client closed")]
    Closed,
    /// An attachment transfer's stream failed (the connection dropped, or
    /// the stream was cut off); start the transfer again.
    #[error("transfer failed: {0}")]
    Transfer(String),
    /// The server sent something the SDK does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The server's error, if this is one.
    pub fn wire(&self) -> Option<&WireErrorOwned> {
        match self {
            Self::Server(e) => Some(e),
            _ => None,
        }
    }
}
