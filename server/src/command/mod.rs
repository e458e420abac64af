//! Commands: what a client asks for, one file per family, each command
//! validated in one place and then executed where it belongs —
//!
//! - here, on the session's shard, for queries that read the store
//!   ([`conversations`], [`history`], [`presence`], ping);
//! - at the conversation's owner ([`owner`]): on this node through the mesh,
//!   or on the owner node through the broker ([`Requester::at_owner`]);
//!   sends and typing are ordered by the session ([`message`], [`typing`]),
//!   membership and receipts are answered by the owner ([`membership`],
//!   [`receipts`]).
//!
//! A command arrives either from a session ([`execute`], after the session
//! has taken sends and typing in order) or forwarded from another node
//! ([`owner::serve_forwarded`]); both go through the same validation. It does
//! not own connections (that is `crate::session`) nor the owner's rules (that
//! is `crate::conversation`).

pub mod conversations;
pub mod history;
pub mod membership;
pub mod message;
pub mod owner;
pub mod presence;
pub mod receipts;
pub mod typing;

use crate::ids::{Caller, ConvId};
use crate::shard::ShardCtx;
use crate::store::{Store, StoreError};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, command, reply};
use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Who runs a command: the caller (from a verified token), the session that
/// sent it (cluster-unique; it gets no echo of its own messages) and its shard.
#[derive(Clone)]
pub struct Requester {
    /// The shard the command runs on.
    pub ctx: Rc<ShardCtx>,
    /// Who asks.
    pub caller: Caller,
    /// The sending session.
    pub session: u64,
}

impl Requester {
    /// The store.
    pub fn store(&self) -> &Store {
        &self.ctx.shared.store
    }

    /// Runs a command that belongs to `conv`'s owner: here, or forwarded to
    /// the owner node (the answer, error results included, comes back as is).
    pub async fn at_owner(
        &self,
        conv: ConvId,
        body: command::Body,
        want_reply: bool,
    ) -> Result<reply::Result, WireError> {
        if let Some(owner) = self.ctx.remote_owner(conv)
            && let Some(broker) = &self.ctx.shared.broker
        {
            let fut = broker.forward(owner, conv, &self.caller, self.session, Some(body), want_reply).await;
            return Ok(fut.await);
        }
        owner::execute(&self.ctx, self.caller.clone(), self.session, body).await
    }
}

/// Runs a command other than a send or a typing change (the session takes
/// those in arrival order, see `crate::session`): here, or at the owner.
/// `contacts` are the users who share a conversation with the caller.
pub async fn execute(
    req: &Requester,
    contacts: &RefCell<HashSet<Arc<str>>>,
    body: command::Body,
) -> Result<reply::Result, WireError> {
    use command::Body as B;
    if let Some(conv) = owner_conversation(&body) {
        return req.at_owner(conv, body, true).await;
    }
    match body {
        B::GetHistory(h) => history::get(req, h).await,
        B::CreateConversation(c) => conversations::create(req, c).await,
        B::ListConversations(l) => conversations::list(req, l).await,
        B::GetConversation(g) => conversations::get(req, g.conversation_id).await,
        B::ListSupportQueue(_) => conversations::support_queue(req).await,
        B::MarkDelivered(m) => receipts::mark_delivered(req, m).await,
        B::GetPresence(g) => presence::get(req, contacts, g).await,
        B::Ping(_) => {
            Ok(reply::Result::Pong(v1::Pong { server_time_ms: chat_protocol::unix_ms(std::time::SystemTime::now()) }))
        }
        B::SendMessage(_) | B::SetTyping(_) => {
            Err(err(ErrorCode::UnknownCommand, "sends and typing are taken in order by the session"))
        }
        _ => unreachable!("commands run at the owner were routed above"),
    }
}

/// The conversation whose owner runs this command, if it is one of those.
/// `MarkDelivered` (many conversations) is split by [`receipts`] instead.
pub fn owner_conversation(body: &command::Body) -> Option<ConvId> {
    use command::Body as B;
    match body {
        B::SetTyping(t) => Some(t.conversation_id),
        B::GetMembers(g) => Some(g.conversation_id),
        B::JoinConversation(j) => Some(j.conversation_id),
        B::LeaveConversation(l) => Some(l.conversation_id),
        B::AddMembers(a) => Some(a.conversation_id),
        B::RemoveMember(r) => Some(r.conversation_id),
        B::SetMemberRole(r) => Some(r.conversation_id),
        B::ArchiveConversation(a) => Some(a.conversation_id),
        B::MarkRead(m) => Some(m.conversation_id),
        _ => None,
    }
}

/// A wire error with a message.
pub(crate) fn err(code: ErrorCode, msg: impl Into<String>) -> WireError {
    WireError::new(code, msg)
}

/// A store failure as the client sees it (logged here): retry in a second.
pub(crate) fn store_err(e: StoreError) -> WireError {
    tracing::error!(error = %e, "store error");
    WireError::limited(ErrorCode::Unavailable, "store", "storage is unavailable; retry", Some(Duration::from_secs(1)))
}

/// The one answer when a mailbox is gone.
pub(crate) fn shard_unavailable() -> WireError {
    err(ErrorCode::Unavailable, "shard unavailable")
}

/// A `conversation_id` of 0 is refused before anything is routed.
pub(crate) fn require_conversation(conv: ConvId) -> Result<ConvId, WireError> {
    if conv == 0 {
        return Err(err(ErrorCode::InvalidArgument, "conversation_id is required"));
    }
    Ok(conv)
}
