//! Commands: what a client asks for, one file per family, each command
//! validated in one place and then executed where it belongs —
//!
//! - here, on the session's shard, for queries that read the store
//!   ([`conversations`], [`history`], [`presence`], ping);
//! - at the conversation's owner ([`owner`]): on this node through the mesh,
//!   or on the owner node through the broker ([`request::Remote`]);
//!   sends and typing are ordered by the session ([`message`], [`typing`]),
//!   edits, deletes and reactions are checked by the owner ([`change`]),
//!   membership and receipts are answered by the owner ([`membership`],
//!   [`receipts`]);
//! - attachments ([`attachments`]) are checked here, on transfer streams
//!   of their own that the session hands over;
//! - templates ([`templates`]) run here too: they are the caller's and the
//!   firm's, not a conversation's; so does [`search`], across the caller's
//!   conversations, against this node's index; [`audit`] (admins read the
//!   trail; the families record their events through it); the user
//!   directory and session control ([`users`]); legal holds ([`retention`])
//!   go to the store from here, a conversation's retention to its owner;
//!   a GDPR erasure ([`gdpr`]) runs here and tombstones through the owners;
//!   a conversation's erasure ([`erase_conversation`]) runs at its owner;
//!   [`service_accounts`] lets system admins manage the server API's accounts;
//!   [`key_packages`] is the MLS KeyPackage directory of end-to-end
//!   encrypted conversations.
//!
//! A command arrives either from a session ([`execute`], after the session
//! has taken sends and typing in order) or forwarded from another node
//! ([`owner::serve_forwarded`]); both go through the same validation. It does
//! not own connections (that is `crate::session`) nor the owner's rules (that
//! is `crate::conversation`).

pub mod attachments;
pub mod audit;
pub mod change;
pub mod conversations;
pub mod erase_conversation;
pub mod gdpr;
pub mod gdpr_export;
pub mod history;
pub mod key_packages;
pub mod membership;
pub mod message;
pub mod owner;
pub mod presence;
pub mod receipts;
pub mod request;
pub mod retention;
pub mod search;
pub mod service_accounts;
pub mod templates;
pub mod typing;
pub mod users;

pub use request::Requester;

use crate::ids::ConvId;
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, command, reply};
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Arc;

/// Runs a command other than a send or a typing change (the session takes
/// those in arrival order, see `crate::session`): here, or at the owner.
/// `contacts` are the users who share a conversation with the caller.
pub async fn execute(
    req: &Requester,
    contacts: &RefCell<HashSet<Arc<str>>>,
    body: command::Body,
) -> Result<reply::Result, WireError> {
    // Members named by an added-members command must be in the directory
    // (checked here, where the command enters; a forwarded one was).
    if let command::Body::AddMembers(a) = &body {
        users::require_known(req.store(), &a.user_ids).await?;
    }
    let result = if let Some(conv) = owner_conversation(&body) {
        match req.remote(conv) {
            Some(remote) => Ok(remote.forward(body, true).await.await),
            None => owner::execute(&req.ctx, req.caller.clone(), req.session, body).await,
        }
    } else {
        execute_here(req, contacts, body).await
    };
    // A conversation the caller now has (made, joined, added to): whoever it
    // shows is a contact before the answer goes out, so a presence query
    // right after it is answered (the session's own refresh comes later).
    if let Ok(reply::Result::Conversation(ok)) = &result
        && let Some(conv) = ok.summary.as_ref().and_then(|s| s.conversation.as_ref())
    {
        let visible = crate::presence::visible_members(req.store(), conv.id).await;
        contacts.borrow_mut().extend(visible);
    }
    result
}

/// The commands run on the session's shard.
async fn execute_here(
    req: &Requester,
    contacts: &RefCell<HashSet<Arc<str>>>,
    body: command::Body,
) -> Result<reply::Result, WireError> {
    use command::Body as B;
    match body {
        B::GetHistory(h) => history::get(req, h).await,
        B::CreateConversation(c) => conversations::create(req, c).await,
        B::ListConversations(l) => conversations::list(req, l).await,
        B::GetConversation(g) => conversations::get(req, g.conversation_id).await,
        B::ListSupportQueue(q) => conversations::support_queue(req, q).await,
        B::MarkDelivered(m) => receipts::mark_delivered(req, m).await,
        B::GetPresence(g) => presence::get(req, contacts, g).await,
        B::PutTemplate(p) => templates::put(req, p).await,
        B::DeleteTemplate(d) => templates::delete(req, d).await,
        B::ListTemplates(l) => templates::list(req, l).await,
        B::RenderTemplate(r) => templates::render(req, r).await,
        B::Search(s) => search::search(req, s).await,
        B::ReadAudit(r) => audit::read_audit(req, r).await,
        B::SearchUsers(q) => users::search(req, q).await,
        B::PublishKeyPackages(p) => key_packages::publish(req, p).await,
        B::CountKeyPackages(c) => key_packages::count_left(req, c).await,
        B::ClaimKeyPackages(c) => key_packages::claim(req, c).await,
        B::PutUser(p) => users::put(req, p).await,
        B::DisableUser(d) => users::set_disabled(req, &d.user_id, &d.reason, true).await,
        B::EnableUser(e) => users::set_disabled(req, &e.user_id, &e.reason, false).await,
        B::RevokeSessions(r) => users::revoke(req, r).await,
        B::SetLegalHold(s) => retention::set_hold(req, s).await,
        B::ReleaseLegalHold(r) => retention::release_hold(req, r).await,
        B::ListLegalHolds(_) => retention::list_holds(req).await,
        B::EraseUser(e) => gdpr::erase_user(req, e).await,
        b @ (B::ListServiceAccounts(_)
        | B::CreateServiceAccount(_)
        | B::RotateServiceAccount(_)
        | B::RevokeServiceAccount(_)) => service_accounts::run(req, b).await,
        B::Ping(_) => {
            Ok(reply::Result::Pong(v1::Pong { server_time_ms: chat_protocol::unix_ms(std::time::SystemTime::now()) }))
        }
        B::UploadStart(_) | B::DownloadStart(_) | B::ExportUserData(_) => Err(WireError::new(
            ErrorCode::Unsupported,
            "uploads, downloads and exports go on a stream of their own (a new bidirectional stream per transfer)",
        )),
        B::SendMessage(_) | B::SetTyping(_) | B::RefreshToken(_) => {
            Err(WireError::new(ErrorCode::UnknownCommand, "sends, typing and token refreshes are taken by the session"))
        }
        // Routed to the owner above (listed so that a new command must be placed).
        B::GetMembers(_)
        | B::JoinConversation(_)
        | B::LeaveConversation(_)
        | B::AddMembers(_)
        | B::RemoveMember(_)
        | B::SetMemberRole(_)
        | B::ArchiveConversation(_)
        | B::SetRetention(_)
        | B::EraseConversation(_)
        | B::EditMessage(_)
        | B::DeleteMessage(_)
        | B::React(_)
        | B::MarkRead(_) => Err(WireError::new(ErrorCode::UnknownCommand, "not a command for this shard")),
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
        B::SetRetention(r) => Some(r.conversation_id),
        B::EraseConversation(e) => Some(e.conversation_id),
        B::MarkRead(m) => Some(m.conversation_id),
        B::EditMessage(e) => Some(e.conversation_id),
        B::DeleteMessage(d) => Some(d.conversation_id),
        B::React(r) => Some(r.conversation_id),
        _ => None,
    }
}
