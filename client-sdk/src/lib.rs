//! `chat-client` is the async Rust SDK of the chat service. It owns the client
//! side of a connection: raw QUIC (ALPN `chat/1`) or WebTransport, the
//! handshake, typed request/reply calls for every command of the protocol,
//! an outbox that re-sends unacknowledged messages after a reconnect with the
//! same `client_msg_id`, automatic reconnection with exponential backoff and
//! full jitter, resume from per-conversation cursors, in-order exactly-once
//! delivery of messages (through `chat_protocol::sequencer`, filling holes with
//! history), coalesced delivered receipts, and a bounded stream of typed events.
//!
//! Behaviour worth knowing:
//! - Sends survive reconnects: they resolve when the ack arrives, however many
//!   connections that takes; an error reply fails the send and drops it.
//! - Other requests in flight when the connection drops fail with
//!   [`ClientError::Disconnected`] (none is retried, reads included); requests
//!   made while disconnected wait for a connection up to the request timeout.
//! - A 4000-4999 error (handshake reply, goodbye or close code) stops the client:
//!   a `Disconnected { will_retry: false }` event, then every call fails with the error or `Closed`.
//! - The event channel is bounded; while it is full the SDK stops reading the
//!   connection (and the server eventually drops a slow consumer), so read it.
//! - Edits, deletes and reactions ([`Client::edit`], [`Client::delete`],
//!   [`Client::react`]) are entries of the conversation's sequence, surfaced
//!   as [`Event::Changed`]; a [`MessageView`] applies them to the messages it
//!   holds (history pages come in their latest state already).
//! - Certificate pinning accepts exactly the pinned end-entity SHA-256, on both
//!   transports, without the browser's 14-day / P-256 constraints.
//! - End-to-end encrypted conversations: the calls the server knows
//!   (`create_e2e_conversation`, `send_ciphertext`, the KeyPackage directory)
//!   are always there; MLS itself (openmls) is the `mls` feature's
//!   `mls::Device`, one device's keys and groups.
//!
//! ```no_run
//! # async fn demo() -> Result<(), chat_client::ClientError> {
//! use chat_client::{Client, ClientConfig, Event, Trust};
//! let trust = Trust::cert_hash_hex(&"00".repeat(32)).map_err(chat_client::ClientError::Connect)?;
//! let (client, mut events) = Client::connect(ClientConfig::new("127.0.0.1:4433", "jwt", trust)).await?;
//! client.send_text(1, "hello").await?;
//! while let Some(event) = events.next().await {
//!     if let Event::Message(m) = event { println!("{}: {:?}", m.sender_id, m.body); }
//! }
//! # Ok(()) }
//! ```

mod attachments;
mod audit;
mod backoff;
mod client;
mod config;
mod delivery;
mod driver;
mod e2e;
mod error;
mod events;
#[cfg(feature = "mls")]
pub mod mls;
mod outbox;
mod outbox_file;
mod requests;
mod retention;
mod search;
mod templates;
mod tls;
mod token;
mod transport;
mod users;
mod view;

pub use attachments::{Download, Export, Transfer};
pub use backoff::Backoff;
pub use chat_protocol::error::{ErrorClass, WireErrorOwned};
pub use chat_protocol::v1;
pub use client::Client;
pub use config::{ClientConfig, ResumeState, Transport, Trust, parse_hash};
pub use error::ClientError;
pub use events::{Event, Events};
pub use outbox::new_client_msg_id;
/// The rustls client configuration the SDK uses (pinning or roots, ring provider, one ALPN).
pub use tls::client_config as rustls_client_config;
pub use token::{TokenFuture, TokenSource};
pub use view::MessageView;
