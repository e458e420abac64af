//! `SetTyping`: a typing indicator starts or stops. The session sends it to
//! the owner in order with its sends (a message always clears the
//! indicator); it is never answered with anything but "ok".

use super::request::{Requester, require_conversation, shard_unavailable};
use crate::ids::{Caller, ConvId};
use crate::shard::{ConvMsg, ShardCtx};
use chat_protocol::WireError;
use chat_protocol::v1::{self, command, reply};

/// Validates a `SetTyping`: the conversation it is for.
pub fn parse(t: &v1::SetTyping) -> Result<ConvId, WireError> {
    require_conversation(t.conversation_id)
}

/// From a session, in arrival order: to the owner here, or forwarded without
/// waiting for an answer.
pub async fn from_session(req: &Requester, t: v1::SetTyping) -> Result<reply::Result, WireError> {
    let conv = parse(&t)?;
    match req.remote(conv) {
        Some(remote) => {
            drop(remote.forward(command::Body::SetTyping(t), false).await);
            Ok(reply::Result::Ok(v1::Empty {}))
        }
        None => at_owner(&req.ctx, &req.caller, conv, t.typing).await,
    }
}

/// At the owner on this node.
pub async fn at_owner(ctx: &ShardCtx, caller: &Caller, conv: ConvId, typing: bool) -> Result<reply::Result, WireError> {
    let msg = ConvMsg::Typing { user: caller.user.clone(), typing };
    ctx.shared.mesh.to_owner(conv, msg).await.map_err(|_| shard_unavailable())?;
    Ok(reply::Result::Ok(v1::Empty {}))
}
