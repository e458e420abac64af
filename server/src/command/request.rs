//! What every command needs: who asks ([`Requester`]), the way to the
//! conversation's owner (on this node through the mesh, [`ask`]; on its node
//! through the broker, [`Requester::forward`]) and the common refusals.

use crate::ids::{Caller, ConvId, NodeId};
use crate::shard::Ask;
use crate::shard::broker::Broker;
use crate::shard::{ConvMsg, ShardCtx};
use crate::store::{Store, StoreError};
use chat_protocol::WireError;
use chat_protocol::v1::{ErrorCode, command, reply};
use futures_util::future::LocalBoxFuture;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

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

    /// Cluster: the way to the node that owns `conv`; None when this node owns it.
    pub fn remote(&self, conv: ConvId) -> Option<Remote<'_>> {
        let owner = self.ctx.remote_owner(conv)?;
        let broker = self.ctx.shared.broker.as_ref()?;
        Some(Remote { req: self, conv, owner, broker })
    }
}

/// The node that owns a conversation, as seen from a requester on another node.
pub struct Remote<'a> {
    req: &'a Requester,
    conv: ConvId,
    owner: NodeId,
    broker: &'a Arc<dyn Broker>,
}

impl Remote<'_> {
    /// Sends `body` there (in call order) and returns its answer to await
    /// (error results included, as the owner gave them; a retryable
    /// `TIMEOUT` when it was lost).
    pub async fn forward(self, body: command::Body, want_reply: bool) -> LocalBoxFuture<'static, reply::Result> {
        let req = self.req;
        self.broker.forward(self.owner, self.conv, &req.caller, req.session, Ask::Command(body), want_reply).await
    }

    /// Sends a GDPR erasure's tombstone there and returns its answer to await.
    pub async fn erase(self, d: chat_protocol::v1::DeleteMessage) -> LocalBoxFuture<'static, reply::Result> {
        let req = self.req;
        self.broker.forward(self.owner, self.conv, &req.caller, req.session, Ask::Erase(d), true).await
    }
}

/// A forwarded command's answer as a result: the owner's refusal (its code,
/// message and `retry_after`) or its reply.
pub fn answered(r: reply::Result) -> Result<reply::Result, WireError> {
    match r {
        reply::Result::Error(e) => Err(WireError {
            code: ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unavailable),
            message: e.message,
            retry_after: (e.retry_after_ms > 0).then(|| Duration::from_millis(e.retry_after_ms)),
            limit: None,
        }),
        ok => Ok(ok),
    }
}

/// Asks the owner's actor of `conv` on this node and waits for its answer.
pub async fn ask<T>(
    ctx: &ShardCtx,
    conv: ConvId,
    make: impl FnOnce(oneshot::Sender<Result<T, WireError>>) -> ConvMsg,
) -> Result<T, WireError> {
    let conv = require_conversation(conv)?;
    let (tx, rx) = oneshot::channel();
    ctx.shared.mesh.to_owner(conv, make(tx)).await.map_err(|_| shard_unavailable())?;
    rx.await.map_err(|_| err(ErrorCode::Unavailable, "conversation owner went away; retry"))?
}

/// A wire error with a message.
pub fn err(code: ErrorCode, msg: impl Into<String>) -> WireError {
    WireError::new(code, msg)
}

/// A store failure as the client sees it (logged here): retry in a second.
pub fn store_err(e: StoreError) -> WireError {
    tracing::error!(error = %e, "store error");
    WireError::limited(ErrorCode::Unavailable, "store", "storage is unavailable; retry", Some(Duration::from_secs(1)))
}

/// The one answer when a mailbox is gone.
pub fn shard_unavailable() -> WireError {
    err(ErrorCode::Unavailable, "shard unavailable")
}

/// A `conversation_id` of 0 is refused before anything is routed.
pub fn require_conversation(conv: ConvId) -> Result<ConvId, WireError> {
    if conv == 0 {
        return Err(err(ErrorCode::InvalidArgument, "conversation_id is required"));
    }
    Ok(conv)
}
