//! A conversation's owner: on its home shard, it alone assigns sequence
//! numbers, stores messages in group commits, keeps the member list, typing
//! state and receipt watermarks, and fans everything out to the shards whose
//! sessions subscribe. The requests it takes travel on the mesh
//! (`crate::shard::ConvMsg`); [`owner`] is the state machine that
//! decides (no I/O, the time passed in), [`events`] the rules of edits,
//! deletes and reactions, [`driver`] the tokio task that
//! performs what it decides (store calls, mailbox sends, cluster publishes,
//! answers, one timer), [`membership`] the rules of the admin operations, and
//! [`summary`](mod@summary) how a conversation looks to one user.
//!
//! It does not own sessions, routing between shards or nodes, or storage:
//! those are `session`, `shard`/`cluster` and `store`.

pub mod driver;
pub mod events;
pub mod membership;
pub mod owner;
pub mod summary;

pub use driver::spawn;
pub use summary::{conversation_proto, no_access, summary};
