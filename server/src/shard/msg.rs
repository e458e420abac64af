//! What travels between shards (and from the cluster bridge to shards): the
//! one message type of the mesh, [`ShardMsg`], and what it carries — requests
//! to a conversation's owner ([`ConvMsg`]), fan-outs to subscribed sessions
//! ([`Fanout`]), events for one user's sessions ([`UserEvent`]), per-user
//! bookkeeping ([`PresenceMsg`]), requests forwarded by another node
//! ([`Forwarded`]) and commands the node's operator tools run on a shard
//! ([`LocalCommand`]). Data only: who handles them lives above.

use crate::ids::{Caller, ConvId, Frame, LiveSet, NodeId};
use bytes::Bytes;
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, MemberRole, ReceiptKind};
use std::sync::Arc;
use tokio::sync::oneshot;

/// What travels between shards.
#[derive(Debug)]
pub enum ShardMsg {
    /// For the actor of a conversation homed on the receiving shard.
    Conv(ConvId, ConvMsg),
    /// From a conversation's owner to a shard with subscribed sessions.
    Fanout(ConvId, Fanout),
    /// For every session of a user on the receiving shard.
    User(Arc<str>, UserEvent),
    /// Per-user bookkeeping at the user's home shard: presence and message rate.
    Presence(PresenceMsg),
    /// A renewed certificate: the endpoint takes it for new connections.
    Tls(Box<quinn::ServerConfig>),
    /// Cluster: a fan-out that did not come from a local owner (another node's
    /// owner, or a presence change): for subscribed sessions, nothing else.
    Remote(ConvId, Fanout),
    /// Cluster: the live nodes changed.
    Live(LiveSet),
    /// Cluster: a user's device count on another node, for the user's home shard.
    RemotePresence {
        /// Whose.
        user: Arc<str>,
        /// Which node.
        node: NodeId,
        /// Devices there.
        count: u32,
    },
    /// Cluster: a request another node forwarded to this one, the owner.
    Forwarded(Box<Forwarded>),
    /// A command an operator tool on this machine asked for (the control
    /// socket: `chatd gdpr erase`), run on the receiving shard.
    Local(Box<LocalCommand>),
    /// Cluster: a node (re)joined: forget the device counts it reported before.
    ForgetNode(NodeId),
    /// Cluster: what the other nodes counted of a user's messages or new
    /// connections in a window, for the user's home shard.
    RateTotal {
        /// Whose.
        user: Arc<str>,
        /// Of what (messages or connections).
        kind: UserRate,
        /// The window ([`crate::shard::window::window_of`]).
        window: u64,
        /// What the other nodes counted in it.
        others: u64,
    },
}

/// A command the node runs on one of its shards for an operator tool, as
/// `caller`, answered on `reply`.
#[derive(Debug)]
pub struct LocalCommand {
    /// On whose behalf (the node itself, as a system admin).
    pub caller: Caller,
    /// The command.
    pub body: v1::command::Body,
    /// Where its answer goes.
    pub reply: oneshot::Sender<Result<v1::reply::Result, WireError>>,
}

/// One stored message on its way to sessions.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Its seq.
    pub seq: u64,
    /// The framed push.
    pub frame: Frame,
    /// The session that sent it (0: none, e.g. a system line).
    pub origin: u64,
    /// When it was committed (from another node: when it arrived), for the delivery latency.
    pub committed: std::time::Instant,
}

/// What an owner sends to subscribed shards.
#[derive(Debug, Clone)]
pub enum Fanout {
    /// Stored messages, ascending seq, each as an encoded push frame with the
    /// session that sent it (which gets no copy: its ack stands in for it).
    Messages(Arc<[Pushed]>),
    /// An ephemeral push (typing, receipts, membership): not stored, may be
    /// dropped under pressure. `datagram` is the unprefixed form, for typing.
    Ephemeral {
        /// The framed push.
        frame: Frame,
        /// The same push without its length prefix, when it may go as a datagram.
        datagram: Option<Bytes>,
        /// Sessions of this user do not get it (their own typing).
        skip_user: Option<Arc<str>>,
    },
    /// A user's presence changed. Sessions forward it once per change.
    Presence {
        /// Whose.
        user: Arc<str>,
        /// Online now.
        online: bool,
        /// Monotonic per user: older versions are ignored.
        version: u64,
    },
    /// The head moved but a fan-out to this shard was dropped: sessions fill
    /// from the store up to `head` (`u64::MAX`: whatever is stored, when the
    /// owner that knew the head is gone).
    Nudge {
        /// The conversation's last seq.
        head: u64,
    },
}

/// An event for one user's sessions.
#[derive(Debug, Clone)]
pub enum UserEvent {
    /// The user belongs to this conversation (newly, or its metadata
    /// changed): attach if not yet attached, live from seq `since`, and push the frame.
    Added(ConvId, u64, Frame),
    /// The user no longer belongs to it: detach and push the frame.
    Removed(ConvId, Frame),
    /// Close every session of the user at once with this `chat.v1.ErrorCode`
    /// and reason (an admin revoked their sessions or disabled them).
    Close(ErrorCode, Arc<str>),
}

/// Per-user requests, handled by the user's home shard.
#[derive(Debug)]
pub enum PresenceMsg {
    /// A device connected; the reply is the new version if the user just came online.
    Connected(Arc<str>, oneshot::Sender<PresenceChange>),
    /// A device disconnected; the reply is the new version if the user just went offline.
    Disconnected(Arc<str>, oneshot::Sender<PresenceChange>),
    /// Devices connected per user.
    Query(Vec<Arc<str>>, oneshot::Sender<Vec<(Arc<str>, u32, u64)>>),
    /// Count one action against the user's rate of that kind; the reply is the refusal, if any.
    RateCheck(Arc<str>, UserRate, oneshot::Sender<Result<(), WireError>>),
}

/// What a user's home shard counts per user (the limit holds whichever
/// shards and devices the user's actions come from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRate {
    /// Messages sent (`limits.messages_per_minute`).
    Messages,
    /// Conversations created (`limits.conversations_per_hour`).
    Conversations,
    /// Attachments uploaded (`blobs.uploads_per_hour`).
    Uploads,
    /// Connections opened (`limits.connections_per_minute_per_user`).
    Connections,
    /// A service account's API requests (`api.requests_per_minute`, per node).
    Api,
    /// E2E KeyPackage claims (`limits.key_claims_per_hour`).
    KeyClaims,
}

/// The outcome of a connect or disconnect at the home shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceChange {
    /// Devices connected now.
    pub devices: u32,
    /// The user's presence version after this change.
    pub version: u64,
    /// Whether online/offline flipped.
    pub flipped: bool,
}

/// A change of an earlier message, as asked (validated by `crate::command`).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// New text.
    Edit(v1::EditMessage),
    /// Gone.
    Delete(v1::DeleteMessage),
    /// A reaction added or taken away.
    React(v1::React),
    /// A message made an erased tombstone by a GDPR erasure of its sender
    /// (made by the server, never from a client's command): a delete of the
    /// sender's own message that holds for a former member and in an
    /// archived conversation too.
    Erase(v1::DeleteMessage),
}

impl Change {
    /// The seq of the message it changes.
    pub fn target_seq(&self) -> u64 {
        match self {
            Change::Edit(e) => e.seq,
            Change::Delete(d) | Change::Erase(d) => d.seq,
            Change::React(r) => r.seq,
        }
    }

    /// The conversation.
    pub fn conversation_id(&self) -> u64 {
        match self {
            Change::Edit(e) => e.conversation_id,
            Change::Delete(d) | Change::Erase(d) => d.conversation_id,
            Change::React(r) => r.conversation_id,
        }
    }

    /// The client's id of the change (idempotency, like a send's).
    pub fn client_msg_id(&self) -> &str {
        match self {
            Change::Edit(e) => &e.client_msg_id,
            Change::Delete(d) | Change::Erase(d) => &d.client_msg_id,
            Change::React(r) => &r.client_msg_id,
        }
    }
}

/// Reply channel of a request to the owner.
pub type Reply<T> = oneshot::Sender<Result<T, WireError>>;

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
        /// The attachments it names, resolved (see `SendMessage.attachment_ids`).
        attachments: Vec<v1::Attachment>,
        /// Answered once the message is durable.
        reply: Reply<v1::SendMessageOk>,
    },
    /// Edit, delete or react: an event appended after the message it changes.
    Change {
        /// Who.
        caller: Caller,
        /// The sending session (it gets no echo of the event).
        origin: u64,
        /// The validated request.
        change: Box<Change>,
        /// Answered once the event is durable.
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
    /// The retention job is about to purge the messages at or below `through`.
    Purged {
        /// The highest purged seq.
        through: u64,
        /// Sent again once the rows are gone: the owner then tells the
        /// members, whose clients drop what they hold of them.
        done: bool,
        /// Answered once the owner refuses changes of them.
        reply: Reply<()>,
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
    /// Set the retention, days (0: forever; checked by the parser).
    SetRetention(u32),
    /// Archive for good, the first step of a conversation's erasure (system
    /// admins, members or not).
    Erase,
    /// A conversation was just created: announce it to its members.
    Created,
}

/// What a request forwarded to a conversation's owner node asks.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    /// Announce the creation of the conversation to its members.
    Created,
    /// A client's command.
    Command(v1::command::Body),
    /// A GDPR erasure's tombstone ([`Change::Erase`]).
    Erase(v1::DeleteMessage),
}

/// A request that another node forwarded to this one, the owner.
#[derive(Debug)]
pub struct Forwarded {
    /// The node waiting for the answer.
    pub from: NodeId,
    /// Its request id (0: no answer wanted).
    pub req_id: u64,
    /// The conversation.
    pub conv: ConvId,
    /// On whose behalf (verified by the origin node).
    pub caller: Caller,
    /// The sending session (cluster-unique).
    pub origin: u64,
    /// What it asks.
    pub ask: Ask,
}
