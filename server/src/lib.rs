//! `chat-server` owns the server side of the chat service. Its modules form
//! layers, each importing only the layers below it (`docs/ARCHITECTURE.md`):
//!
//! - ground floor: [`ids`], [`config`], [`files`], then [`tls`], then [`frames`], [`auth`],
//!   [`store`] (the `MessageStore` trait and its backends), [`transport`]
//!   (QUIC, WebTransport and WebSocket behind one `Conn`; admission);
//!   [`search`] (the `SearchIndex` trait, its tantivy backend and indexer);
//!   [`audit`] (the tamper-evident audit trail and its one writer per node);
//!   [`backup`] (online backup and restore of the embedded store);
//!   [`notify`] (offline notifications and the event webhooks' sender);
//! - [`shard`]: thread-per-core — the mesh, what travels on it, each shard's
//!   context and registries, placement, and the [`shard::broker::Broker`]
//!   trait through which shards reach other nodes;
//! - [`presence`] and [`conversation`] (the owner of a conversation: a sans-IO
//!   state machine and the task that performs its effects);
//! - [`retention`]: the rules of retention and legal hold, their audit, and
//!   the purge job; [`transcript`]: court-ready transcripts (PDF, JSON);
//! - [`command`]: one file per command family, validated once, executed here
//!   or at the conversation's owner;
//! - [`session`]: one connection — handshake, read loop, outbound queue;
//!   [`api`]: the server API for the firm's systems (service accounts,
//!   `/api/v1`, event webhooks' subscriptions);
//! - [`web`]: the HTTP endpoint and WebSocket upgrades; [`cluster`]: the Redis
//!   bridge implementing the broker;
//! - [`node`]: start and stop, the shard threads and the router of each
//!   shard's mailbox.
//!
//! It does not own the wire format (that is `chat-protocol`) nor any client
//! behaviour (that is `chat-client`). Start a server with [`start`].

pub mod api;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod blob;
pub mod cluster;
pub mod command;
pub mod config;
pub mod conversation;
pub mod files;
pub mod frames;
pub mod health;
pub mod ids;
pub mod metrics;
pub mod node;
pub mod notify;
pub mod presence;
#[cfg(feature = "test-support")]
pub mod redis_server;
pub mod retention;
pub mod search;
pub mod session;
pub mod shard;
pub mod store;
pub mod tls;
pub mod transcript;
pub mod transport;
pub mod web;

pub use config::Config;
pub use node::{ServerHandle, start, start_with_store};
