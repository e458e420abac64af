//! `chat-server` owns the server side of the chat service: the QUIC and
//! WebTransport endpoints ([`transport`]), the thread-per-core shards and
//! their bounded mesh ([`shard`]), connections ([`session`]), the owner of
//! each conversation ([`conversation`]), tokens ([`auth`]), certificates
//! ([`tls`]), configuration ([`config`]), storage ([`store`]), the web
//! endpoint: the browser app and WebSocket sessions ([`web`]), and scale-out
//! over Redis ([`cluster`]).
//!
//! It does not own the wire format (that is `chat-protocol`) nor any client
//! behaviour (that is `chat-client`). Start a server with [`server::start`].

pub mod auth;
pub mod cluster;
pub mod config;
pub mod conversation;
pub mod frames;
pub mod server;
pub mod session;
pub mod shard;
pub mod store;
pub mod tls;
pub mod transport;
pub mod web;

pub use config::Config;
pub use server::{ServerHandle, start, start_with_store};
