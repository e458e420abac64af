//! All transports behind one small face: raw QUIC (ALPN `chat/1`) and
//! WebTransport (ALPN `h3`) accepted on the same quinn endpoint, split by the
//! negotiated ALPN, and WebSocket (accepted by [`crate::web`]) for browsers
//! without WebTransport. Sessions see a [`Conn`] and its streams and nothing else.
//!
//! A WebSocket carries exactly the bytes of the QUIC streams: every binary
//! message from the server holds one or more whole length-delimited
//! `ServerFrame`s (replies, pushes, and what QUIC sends as datagrams), and the
//! client's binary messages are fed to the same frame decoder as a QUIC control
//! stream. The session's close code `c` (an `ErrorCode`, e.g. 3002) becomes
//! the WebSocket close code `4000 + (c / 1000) * 100 + c % 1000` (4302), in the
//! application range 4000-4999; see [`ws_close_code`].
//!
//! Under the subprotocol `chat.mux.v1` a WebSocket carries streams instead:
//! each binary message names its stream; stream 0 is the bytes above and
//! client-opened streams carry transfers with credit-based flow control, so
//! `accept_bi` yields transfer streams as on QUIC ([`ws_mux`], [`ws_streams`]).
//!
//! Files: [`conn`] is what sessions see, [`quic`] accepts QUIC and
//! WebTransport connections, [`ws`] drives a WebSocket, [`admission`] decides
//! who may connect at all, [`error`] says what went wrong.

pub mod admission;
pub mod conn;
pub mod error;
pub mod quic;
pub mod ws;
pub mod ws_mux;
pub mod ws_out;
pub mod ws_streams;

pub use conn::{Conn, RecvStream, SendStream};
pub use error::{ReadError, TransportError};
pub use quic::accept;
pub use ws::{WsConn, ws_close_code};
