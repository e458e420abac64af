//! Thread-per-core: the one module that knows about shards.
//!
//! Each shard is one OS thread running a current-thread tokio runtime. It owns
//! the state of the conversations homed on it ([`placement::home_shard`]), the
//! sessions of the connections it accepted ([`sessions`]), and the presence
//! counts of the users homed on it ([`presence`]). Shards talk only through a
//! bounded mesh of channels ([`mesh`]) carrying [`msg::ShardMsg`]; state is
//! `Rc`/`RefCell`, never shared across threads ([`ctx`]). Other nodes are
//! reached through the [`broker::Broker`] trait.
//!
//! A message's path: session (any shard) → [`msg::ConvMsg`] to the owner's
//! shard → the conversation owner sequences and stores it → one
//! [`msg::Fanout`] per destination shard → each subscribed session.
//!
//! It does not own what handles the messages: the router of a shard's
//! mailbox is `crate::node::router`.

pub mod broker;
pub mod ctx;
pub mod mesh;
pub mod msg;
pub mod placement;
pub mod presence;
pub mod sessions;
pub mod upload_rate;
pub mod window;

pub use ctx::{ShardCtx, ShardState, Shared};
pub use mesh::{MailboxFull, Mesh};
pub use msg::{
    AdminOp, Ask, Change, ConvMsg, Fanout, Forwarded, LocalCommand, PresenceChange, PresenceMsg, Pushed, Reply,
    ShardMsg, UserEvent, UserRate,
};
pub use placement::{home_shard, owner_lost, owner_node, user_shard};
