//! The application's handle: typed calls for every command of the protocol.

use crate::config::{ClientConfig, ResumeState};
use crate::driver::{self, Cmd, Driver, Shared};
use crate::error::ClientError;
use crate::events::Events;
use crate::outbox::Outbox;
use crate::outbox_file::OutboxFile;
use crate::transport;
use chat_protocol::v1::{self, command::Body, message_body::Content, reply};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Capacity of the channel from handles to the driver.
const COMMANDS: usize = 256;

/// A cheap, cloneable handle to one client connection (kept alive and resumed
/// by a background task). The task stops when [`Client::close`] is called or
/// every handle is dropped.
#[derive(Clone, Debug)]
pub struct Client {
    cmds: mpsc::Sender<Cmd>,
    shared: Arc<Mutex<Shared>>,
    request_timeout: Duration,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cmd::Request { .. } => "Request",
            Cmd::Send { .. } => "Send",
            Cmd::RefreshToken { .. } => "RefreshToken",
            Cmd::Close { .. } => "Close",
        })
    }
}

/// The reply's result `pick` finds, or a protocol error naming what was expected.
pub(crate) fn want<T>(
    r: reply::Result,
    name: &str,
    pick: impl FnOnce(reply::Result) -> Option<T>,
) -> Result<T, ClientError> {
    pick(r).ok_or_else(|| ClientError::Protocol(format!("reply is not a {name}")))
}

impl Client {
    /// Connects and performs the first handshake; returns once it succeeded.
    ///
    /// A refused handshake fails with the server's error ([`ClientError::Server`],
    /// e.g. class `Fatal` for a bad token); a connection that cannot be made at
    /// all fails with [`ClientError::Connect`]. This first attempt is not
    /// retried; later losses are, silently, and reported as events. Must be
    /// called within a Tokio runtime.
    pub async fn connect(config: ClientConfig) -> Result<(Client, Events), ClientError> {
        let cfg = Arc::new(config);
        let mut outbox = Outbox::new(cfg.outbox_capacity);
        if let Some(path) = &cfg.outbox_file {
            let (file, restored) = OutboxFile::open(path).map_err(|e| ClientError::OutboxFile(e.to_string()))?;
            // Nobody awaits the acks of what an earlier run left unsent.
            outbox = outbox.with_file(file, restored, || oneshot::channel().0);
        }
        let delivery = Driver::initial_delivery(&cfg);
        let hello = driver::hello(&cfg, &delivery);
        let est =
            transport::connect(cfg.clone(), hello.frame, cfg.request_timeout).await.map_err(driver::lost_to_error)?;
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMANDS);
        let (ev_tx, ev_rx) = mpsc::channel(cfg.event_buffer.max(1));
        // What the Welcome says is readable as soon as `connect` returns; transfers
        // may start at once: the connection is known before the driver runs.
        let shared = Shared {
            welcome: Some(est.welcome.clone()),
            token_expires_at_ms: est.welcome.token_expires_at_ms,
            conn: Some(est.conn.clone()),
            ..Shared::default()
        };
        let shared = Arc::new(Mutex::new(shared));
        let request_timeout = cfg.request_timeout;
        if let Some(source) = cfg.token_source.clone() {
            tokio::spawn(crate::token::refresher(source, cmd_tx.downgrade(), shared.clone()));
        }
        let d = Driver::new(cfg, cmd_rx, ev_tx, shared.clone(), delivery, outbox);
        tokio::spawn(d.run(est, hello.epoch, hello.resume));
        Ok((Client { cmds: cmd_tx, shared, request_timeout }, Events::new(ev_rx)))
    }

    /// Hands the session a fresh token (same user and role) before its own
    /// lapses, and keeps it for reconnections; answered with the new lapse
    /// time in ms (0 while disconnected: the next handshake checks it).
    /// With [`ClientConfig::token_source`] set the SDK does this itself.
    pub async fn refresh_token(&self, token: impl Into<String>) -> Result<u64, ClientError> {
        let (tx, rx) = oneshot::channel();
        let cmd = Cmd::RefreshToken { token: token.into(), reply: tx };
        self.cmds.send(cmd).await.map_err(|_| ClientError::Closed)?;
        let r = rx.await.map_err(|_| ClientError::Closed)??;
        want(r, "token_refreshed", |r| match r {
            reply::Result::TokenRefreshed(t) => Some(t.expires_at_ms),
            _ => None,
        })
    }

    /// When the session's token lapses (ms since the Unix epoch; 0 before
    /// the first handshake).
    pub fn token_expires_at_ms(&self) -> u64 {
        self.shared.lock().map(|s| s.token_expires_at_ms).unwrap_or(0)
    }

    /// Sends one command and waits for its reply (up to the request timeout,
    /// connection included).
    pub async fn request(&self, body: Body) -> Result<reply::Result, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::Request { body, reply: tx }).await.map_err(|_| ClientError::Closed)?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(Err(_)) => Err(ClientError::Closed),
            Ok(Ok(r)) => r,
        }
    }

    /// Sends a message through the outbox (an empty `client_msg_id` is filled
    /// with 128 random bits in hex) and waits for its stored-ack, across
    /// reconnects; no timeout (wrap it in one if needed; the send still goes out).
    pub async fn send(&self, msg: v1::SendMessage) -> Result<v1::SendMessageOk, ClientError> {
        self.outbox(Body::SendMessage(msg)).await
    }

    /// Puts a send or change in the outbox and waits for its stored-ack.
    async fn outbox(&self, msg: Body) -> Result<v1::SendMessageOk, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::Send { msg, reply: tx }).await.map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// Sends a text message.
    pub async fn send_text(
        &self,
        conversation_id: u64,
        text: impl Into<String>,
    ) -> Result<v1::SendMessageOk, ClientError> {
        self.send_with_attachments(conversation_id, text, Vec::new()).await
    }

    /// Replaces the text of one's own message at `seq`; answered with the
    /// edit's own seq once durable. Like a send it goes through the outbox
    /// and waits across reconnects (so do `delete` and `react`).
    pub async fn edit(
        &self,
        conversation_id: u64,
        seq: u64,
        text: impl Into<String>,
    ) -> Result<v1::SendMessageOk, ClientError> {
        let body = Some(v1::MessageBody { content: Some(Content::Text(text.into())) });
        let client_msg_id = crate::new_client_msg_id();
        self.outbox(Body::EditMessage(v1::EditMessage { conversation_id, seq, body, client_msg_id })).await
    }

    /// Deletes the message at `seq` (one's own, or as a conversation admin or
    /// moderator anyone's); answered with the delete's own seq once durable.
    pub async fn delete(&self, conversation_id: u64, seq: u64) -> Result<v1::SendMessageOk, ClientError> {
        let client_msg_id = crate::new_client_msg_id();
        self.outbox(Body::DeleteMessage(v1::DeleteMessage { conversation_id, seq, client_msg_id })).await
    }

    /// Adds (`on`) or takes away one's reaction `emoji` on the message at
    /// `seq`; a change that changes nothing is answered with seq 0 and
    /// `duplicate` set.
    pub async fn react(
        &self,
        conversation_id: u64,
        seq: u64,
        emoji: impl Into<String>,
        on: bool,
    ) -> Result<v1::SendMessageOk, ClientError> {
        let client_msg_id = crate::new_client_msg_id();
        self.outbox(Body::React(v1::React { conversation_id, seq, emoji: emoji.into(), on, client_msg_id })).await
    }

    /// Reads history: before `before_seq` (backward), after `after_seq`
    /// (forward), or the newest when both are 0. Ascending seq order.
    pub async fn history(
        &self,
        conversation_id: u64,
        before_seq: u64,
        after_seq: u64,
        limit: u32,
    ) -> Result<v1::History, ClientError> {
        let r =
            self.request(Body::GetHistory(v1::GetHistory { conversation_id, before_seq, after_seq, limit })).await?;
        want(r, "history", |r| match r {
            reply::Result::History(h) => Some(h),
            _ => None,
        })
    }

    /// Creates a conversation (for PRIVATE: returns the pair's existing one if any).
    pub async fn create_conversation(
        &self,
        kind: v1::ConversationKind,
        title: impl Into<String>,
        case_id: impl Into<String>,
        members: Vec<String>,
    ) -> Result<v1::ConversationOk, ClientError> {
        self.create(v1::CreateConversation {
            kind: kind as i32,
            title: title.into(),
            case_id: case_id.into(),
            members,
            e2e: false,
        })
        .await
    }

    /// Creates the conversation `c` describes.
    pub(crate) async fn create(&self, c: v1::CreateConversation) -> Result<v1::ConversationOk, ClientError> {
        self.conversation_ok(Body::CreateConversation(c)).await
    }

    /// Lists the caller's conversations.
    pub async fn list_conversations(&self, query: v1::ListConversations) -> Result<v1::ConversationList, ClientError> {
        self.conversation_list(Body::ListConversations(query)).await
    }

    /// One conversation and the caller's view of it.
    pub async fn get_conversation(&self, conversation_id: u64) -> Result<v1::ConversationOk, ClientError> {
        self.conversation_ok(Body::GetConversation(v1::GetConversation { conversation_id })).await
    }

    /// The members of a conversation.
    pub async fn get_members(&self, conversation_id: u64) -> Result<v1::Members, ClientError> {
        let r = self.request(Body::GetMembers(v1::GetMembers { conversation_id })).await?;
        want(r, "members", |r| match r {
            reply::Result::Members(m) => Some(m),
            _ => None,
        })
    }

    /// Joins a conversation (staff picking up a support conversation).
    pub async fn join(&self, conversation_id: u64) -> Result<Option<v1::ConversationOk>, ClientError> {
        self.mutation(Body::JoinConversation(v1::JoinConversation { conversation_id })).await
    }

    /// Leaves a conversation.
    pub async fn leave(&self, conversation_id: u64) -> Result<Option<v1::ConversationOk>, ClientError> {
        self.mutation(Body::LeaveConversation(v1::LeaveConversation { conversation_id })).await
    }

    /// Adds members (conversation admins and moderators).
    pub async fn add_members(
        &self,
        conversation_id: u64,
        user_ids: Vec<String>,
    ) -> Result<Option<v1::ConversationOk>, ClientError> {
        self.mutation(Body::AddMembers(v1::AddMembers { conversation_id, user_ids })).await
    }

    /// Removes a member (conversation admins).
    pub async fn remove_member(
        &self,
        conversation_id: u64,
        user_id: impl Into<String>,
    ) -> Result<Option<v1::ConversationOk>, ClientError> {
        self.mutation(Body::RemoveMember(v1::RemoveMember { conversation_id, user_id: user_id.into() })).await
    }

    /// Changes a member's role (conversation admins).
    pub async fn set_member_role(
        &self,
        conversation_id: u64,
        user_id: impl Into<String>,
        role: v1::MemberRole,
    ) -> Result<Option<v1::ConversationOk>, ClientError> {
        let body =
            Body::SetMemberRole(v1::SetMemberRole { conversation_id, user_id: user_id.into(), role: role as i32 });
        self.mutation(body).await
    }

    /// Archives (or, with `unarchive`, reactivates) a conversation.
    pub async fn archive(
        &self,
        conversation_id: u64,
        unarchive: bool,
    ) -> Result<Option<v1::ConversationOk>, ClientError> {
        self.mutation(Body::ArchiveConversation(v1::ArchiveConversation { conversation_id, unarchive })).await
    }

    /// Moves the caller's read watermark to `seq`.
    pub async fn mark_read(&self, conversation_id: u64, seq: u64) -> Result<(), ClientError> {
        self.request(Body::MarkRead(v1::MarkRead { conversation_id, seq })).await.map(drop)
    }

    /// Tells the server this device received messages up to `seq` (the SDK
    /// already does this by itself for what it surfaces).
    pub async fn mark_delivered(&self, conversation_id: u64, seq: u64) -> Result<(), ClientError> {
        self.request(Body::MarkDelivered(v1::MarkDelivered { conversation_id, seq, more: vec![] })).await.map(drop)
    }

    /// Starts or stops the typing indicator.
    pub async fn set_typing(&self, conversation_id: u64, typing: bool) -> Result<(), ClientError> {
        self.request(Body::SetTyping(v1::SetTyping { conversation_id, typing })).await.map(drop)
    }

    /// A page of the support conversations waiting for staff, oldest first
    /// (system admins; `ListSupportQueue::default()` for the first page).
    pub async fn support_queue(&self, query: v1::ListSupportQueue) -> Result<v1::ConversationList, ClientError> {
        self.conversation_list(Body::ListSupportQueue(query)).await
    }

    /// Presence of users who share a conversation with the caller.
    pub async fn get_presence(&self, user_ids: Vec<String>) -> Result<Vec<v1::PresenceEvent>, ClientError> {
        let r = self.request(Body::GetPresence(v1::GetPresence { user_ids })).await?;
        want(r, "presence list", |r| match r {
            reply::Result::Presence(p) => Some(p.users),
            _ => None,
        })
    }

    /// Liveness probe; returns the server's time.
    pub async fn ping(&self) -> Result<v1::Pong, ClientError> {
        let r = self.request(Body::Ping(v1::Ping {})).await?;
        want(r, "pong", |r| match r {
            reply::Result::Pong(p) => Some(p),
            _ => None,
        })
    }

    /// The last Welcome.
    pub fn welcome(&self) -> Option<v1::Welcome> {
        self.shared.lock().ok().and_then(|s| s.welcome.clone())
    }

    /// The connection of the latest session (transfers open streams on it).
    pub(crate) fn shared_conn(&self) -> Option<transport::Conn> {
        self.shared.lock().ok().and_then(|s| s.conn.clone())
    }

    /// The user of the token, as the server knows them.
    pub fn user(&self) -> Option<v1::User> {
        self.welcome().and_then(|w| w.user)
    }

    /// The epoch and cursors to persist for resuming after a restart (refreshed
    /// every ~100 ms and on close; the cursors count messages put on the event channel).
    pub fn resume_state(&self) -> ResumeState {
        self.shared.lock().map(|s| s.resume.clone()).unwrap_or_default()
    }

    /// Stops reconnecting and closes the connection; what still waits fails with
    /// [`ClientError::Closed`].
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Close { done: tx }).await.is_ok() {
            let _ = rx.await;
        }
    }

    async fn conversation_ok(&self, body: Body) -> Result<v1::ConversationOk, ClientError> {
        let r = self.request(body).await?;
        want(r, "conversation", |r| match r {
            reply::Result::Conversation(c) => Some(c),
            _ => None,
        })
    }

    async fn conversation_list(&self, body: Body) -> Result<v1::ConversationList, ClientError> {
        let r = self.request(body).await?;
        want(r, "conversation list", |r| match r {
            reply::Result::Conversations(c) => Some(c),
            _ => None,
        })
    }

    /// A change whose reply is either the changed conversation or a plain ok.
    async fn mutation(&self, body: Body) -> Result<Option<v1::ConversationOk>, ClientError> {
        match self.request(body).await? {
            reply::Result::Conversation(c) => Ok(Some(c)),
            _ => Ok(None),
        }
    }
}
