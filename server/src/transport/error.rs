//! Transport errors: a connection or stream that is gone, and bytes that
//! are not frames.

/// A transport failure (the connection or stream is gone).
#[derive(Debug, thiserror::Error)]
#[error("transport: {0}")]
pub struct TransportError(pub String);

/// A transport error from any displayable cause.
pub fn terr(e: impl std::fmt::Display) -> TransportError {
    TransportError(e.to_string())
}

/// Why a read gave no bytes.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The connection or stream is gone.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The peer sent something that is not part of the byte stream (a text
    /// WebSocket message): a malformed frame; the stream itself goes on.
    #[error("{0}")]
    NotFrames(&'static str),
}
