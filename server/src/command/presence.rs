//! `GetPresence`: who of the asked users is online, answered only for the
//! caller and the users who share a conversation with them.

use super::request::{Requester, err};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, reply};
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Arc;

/// Answers for `contacts` (and the caller) among the asked users; others are left out.
pub async fn get(
    req: &Requester,
    contacts: &RefCell<HashSet<Arc<str>>>,
    g: v1::GetPresence,
) -> Result<reply::Result, WireError> {
    if g.user_ids.len() > req.ctx.shared.limits.max_ids_per_request {
        return Err(err(ErrorCode::InvalidArgument, "too many user ids"));
    }
    let me = &req.caller.user;
    let asked: Vec<Arc<str>> = {
        let contacts = contacts.borrow();
        g.user_ids.iter().map(|u| Arc::from(u.as_str())).filter(|u| contacts.contains(u) || *u == *me).collect()
    };
    let users = crate::presence::query(&req.ctx, asked).await;
    Ok(reply::Result::Presence(v1::PresenceList {
        users: users
            .into_iter()
            .map(|(u, d, _)| v1::PresenceEvent { user_id: u.to_string(), online: d > 0, devices: d })
            .collect(),
    }))
}
