//! A session's state, shared by its read loop and its outbound task: who it
//! is, its connection, its handle in the shard's registry, and its
//! subscriptions (attach and detach).

use super::limits::ConnLimits;
use crate::auth::Identity;
use crate::command::Requester;
use crate::ids::ConvId;
use crate::shard::sessions::SessionHandle;
use crate::shard::{ConvMsg, ShardCtx};
use crate::store::{MessageStore, Store};
use crate::transport::Conn;
use chat_protocol::WireError;
use chat_protocol::v1::ErrorCode;
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Large answers (history, lists) being made at once per connection: with
/// the transport's bounded queues, what one connection that never reads can
/// make the server hold is a few such answers, not 256.
pub(super) const HEAVY_IN_FLIGHT: usize = 2;

/// Most bytes taken from a stream at once.
pub(super) const READ_CHUNK: usize = 16 * 1024;

/// A wire error with a message.
pub(super) fn err(code: ErrorCode, msg: impl Into<String>) -> WireError {
    WireError::new(code, msg)
}

/// One connection's state, shared by its read loop and its outbound task.
pub(super) struct Session {
    /// Who runs its commands, and on which shard.
    pub(super) req: Requester,
    pub(super) conn: Conn,
    pub(super) handle: Rc<SessionHandle>,
    pub(super) ident: Identity,
    /// When the session's token lapses (seconds since the Unix epoch): the
    /// one it opened with, then the last one `RefreshToken` brought.
    pub(super) expires_at: Cell<u64>,
    /// The user as the directory has them (name and role), for the `Welcome`.
    pub(super) profile: chat_protocol::v1::User,
    /// Users who share a conversation with this one (presence is theirs to see).
    pub(super) contacts: RefCell<HashSet<Arc<str>>>,
    /// Whether this device was counted at the user's home shard.
    pub(super) announced: Cell<bool>,
    /// What this connection may repeat per minute.
    pub(super) limits: ConnLimits,
    /// Turns for large answers (see [`HEAVY_IN_FLIGHT`]).
    pub(super) heavy: tokio::sync::Semaphore,
    /// After a refused send, every send of this connection is refused until
    /// then, so no later message can overtake the refused one.
    pub(super) send_blocked_until: Cell<Option<tokio::time::Instant>>,
}

impl Session {
    pub(super) fn ctx(&self) -> &Rc<ShardCtx> {
        &self.req.ctx
    }

    pub(super) fn store(&self) -> &Store {
        self.req.store()
    }

    /// Subscribes to a conversation's fan-out; the head at that moment, or
    /// None if the owner refuses (no longer a member).
    pub(crate) async fn attach(&self, conv: ConvId) -> Option<u64> {
        self.ctx().state.sessions.borrow_mut().subscribe(conv, &self.handle);
        if let Some(b) = &self.ctx().shared.broker {
            // This node gets the conversation's fan-outs from here on (its
            // owner confirmed it, if another node): what the store shows
            // below and what arrives after it leave nothing between.
            b.want(conv, self.ctx().state.id).await;
        }
        if self.ctx().remote_owner(conv).is_some() {
            // Owned by another node: membership and head come from the
            // shared store, read after registering, so nothing falls between.
            if let Ok(Some(_)) = self.store().member(conv, &self.handle.user).await
                && let Ok(head) = self.store().last_seq(conv).await
            {
                return Some(head);
            }
            self.detach(conv);
            return None;
        }
        let (tx, rx) = oneshot::channel();
        let msg = ConvMsg::Attach { shard: self.ctx().state.id, user: self.handle.user.clone(), reply: tx };
        if self.ctx().shared.mesh.to_owner(conv, msg).await.is_ok()
            && let Ok(Ok(head)) = rx.await
        {
            return Some(head);
        }
        self.detach(conv);
        None
    }

    /// Unsubscribes locally. The owner learns that this shard has nobody left
    /// lazily: the mailbox answers the next fan-out that finds no session with
    /// a `Detach`, in the same order as any later `Attach` from this shard.
    pub(crate) fn detach(&self, conv: ConvId) {
        if self.ctx().state.sessions.borrow_mut().unsubscribe(conv, self.handle.id) {
            self.ctx().released(conv);
        }
    }
}
