//! What the SDK tells the application, in order, on one bounded channel.

use chat_protocol::error::WireErrorOwned;
use chat_protocol::v1;
use tokio::sync::mpsc;

/// Something that happened on the connection or in a conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A handshake succeeded.
    Connected {
        /// The server's id of this session.
        session_id: u64,
        /// The node serving it.
        node: String,
        /// Whether the session resumed the previous one (replay of what was missed follows).
        resumed: bool,
    },
    /// The connection was lost or closed.
    Disconnected {
        /// What happened, for logs.
        reason: String,
        /// The server's error, when it gave one (close code, goodbye or handshake error).
        error: Option<WireErrorOwned>,
        /// Whether the SDK reconnects by itself.
        will_retry: bool,
    },
    /// A message (a user's or a system line), in seq order per conversation,
    /// exactly once.
    Message(v1::Message),
    /// An edit, delete or reaction (`kind` EDIT, DELETE or REACTION) of the
    /// message at its `target_seq`: in the same order and exactly-once
    /// delivery as messages, each at a seq of its own. A
    /// [`MessageView`](crate::MessageView) applies it.
    Changed(v1::Message),
    /// A member's delivered or read watermark moved.
    Receipt(v1::ReceiptEvent),
    /// Someone started or stopped typing.
    Typing(v1::TypingEvent),
    /// A user went online or offline.
    Presence(v1::PresenceEvent),
    /// A conversation's membership changed.
    Membership(v1::MembershipEvent),
    /// A conversation appeared for the user or its metadata changed.
    Conversation(v1::ConversationSummary),
    /// The replay after a resume is complete; what follows is live.
    CaughtUp,
    /// The server could not resume: cursors were reset to the current heads;
    /// reload conversations and history.
    Resync {
        /// The server's reason.
        reason: String,
    },
}

/// The receiving end of the event channel. Keep reading it: it is bounded, and
/// a full channel stops the SDK from reading the connection.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    pub(crate) fn new(rx: mpsc::Receiver<Event>) -> Self {
        Self { rx }
    }

    /// The next event; `None` once the client is closed and everything was read.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is ready.
    pub fn try_next(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}
