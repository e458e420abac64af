//! A conversation's owner: on its home shard, it alone assigns sequence
//! numbers, stores messages in group commits, keeps the member list, typing
//! state and receipt watermarks, and fans everything out to the shards whose
//! sessions subscribe. This module holds the requests it takes ([`ConvMsg`],
//! [`AdminOp`], [`Caller`], [`Reply`]); [`owner`] is the state machine that
//! decides (no I/O, the time passed in), [`driver`] the tokio task that
//! performs what it decides (store calls, mailbox sends, cluster publishes,
//! answers, one timer), [`membership`] the rules of the admin operations, and
//! [`summary`](mod@summary) how a conversation looks to one user.
//!
//! It does not own sessions, routing between shards or nodes, or storage:
//! those are `session`, `shard`/`cluster` and `store`.

pub mod driver;
pub mod membership;
pub mod owner;
pub mod summary;

pub use driver::spawn;
pub use summary::{conversation_proto, no_access, summary};

use chat_protocol::WireError;
use chat_protocol::v1::{self, MemberRole, ReceiptKind, Role};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Reply channel of a request to the owner.
pub type Reply<T> = oneshot::Sender<Result<T, WireError>>;

/// Who asks (from their verified token).
#[derive(Debug, Clone)]
pub struct Caller {
    /// User id.
    pub user: Arc<str>,
    /// System role.
    pub role: Role,
}

/// Requests to a conversation's owner.
#[derive(Debug)]
pub enum ConvMsg {
    /// Store and deliver a message.
    Send {
        /// Sender.
        caller: Caller,
        /// The sending session (it gets no echo of the message).
        origin: u64,
        /// The validated request (boxed: it is most of the size of every mesh slot otherwise).
        msg: Box<v1::SendMessage>,
        /// Answered once the message is durable.
        reply: Reply<v1::SendMessageOk>,
    },
    /// A shard has subscribed sessions; the reply is the head at registration.
    Attach {
        /// The shard.
        shard: usize,
        /// Who (must be a member).
        user: Arc<str>,
        /// The head.
        reply: Reply<u64>,
    },
    /// A shard has no subscribed session left.
    Detach {
        /// The shard.
        shard: usize,
    },
    /// Typing start/stop.
    Typing {
        /// Who.
        user: Arc<str>,
        /// Started (true) or stopped.
        typing: bool,
    },
    /// A member's watermark moved.
    Receipt {
        /// Who.
        user: Arc<str>,
        /// Delivered or read.
        kind: ReceiptKind,
        /// Up to which seq.
        seq: u64,
        /// Answered when recorded.
        reply: Option<Reply<()>>,
    },
    /// A member's presence flipped; pass it on to the subscribers.
    Presence {
        /// Whose.
        user: Arc<str>,
        /// Online now.
        online: bool,
        /// Version at the user's home shard.
        version: u64,
    },
    /// A membership or metadata change.
    Admin {
        /// Who asks.
        caller: Caller,
        /// What.
        op: AdminOp,
        /// The conversation as the caller now sees it.
        reply: Reply<v1::ConversationSummary>,
    },
    /// The members, with their watermarks.
    Members {
        /// Who asks (must be a member or staff on a support conversation).
        caller: Caller,
        /// The list.
        reply: Reply<Vec<v1::Member>>,
    },
}

/// Membership and metadata operations.
#[derive(Debug, Clone)]
pub enum AdminOp {
    /// Staff picks up a support conversation.
    Join,
    /// The caller leaves.
    Leave,
    /// Add users.
    Add(Vec<String>),
    /// Remove a user.
    Remove(String),
    /// Change a member's role.
    SetRole(String, MemberRole),
    /// Archive (true) or unarchive.
    Archive(bool),
    /// A conversation was just created: announce it to its members.
    Created,
}
