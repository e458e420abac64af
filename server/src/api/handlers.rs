//! The server API's operations, each run as the calling service account
//! through the same commands the apps use (validation, the owner's rules,
//! cluster forwarding, audit): the user directory, case conversations
//! (create, list, keep their members in step with the case team, archive),
//! one conversation, its history, and system messages.
//!
//! Keeping a case's members in step is idempotent and converges: it adds
//! and removes only the difference, so a call interrupted midway is
//! completed by the next one. The service account stays a member (the
//! conversation's admin) of what it manages.

use super::exports;
use super::json::{self, CreateCase, PostMessage, ProvisionUser, Reason, SetMembers};
use super::problem::{Answer, Out, json};
use super::route::{OPENAPI, Route, query};
use super::webhooks;
use crate::command::{self, Requester, message};
use crate::store::service_accounts::ServiceAccountRecord;
use chat_protocol::WireError;
use chat_protocol::v1::{self, ConversationKind, ErrorCode, command as cmd, reply};
use hyper::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};

/// Pages of a case's conversations read at most (500 each).
const CASE_PAGES: usize = 20;

/// Runs `route` (authenticated and in scope) with its query and body.
pub(super) async fn run(
    call: &Requester,
    account: &ServiceAccountRecord,
    route: &Route,
    q: Option<&str>,
    body: &[u8],
) -> Result<Out, WireError> {
    match route {
        Route::Transcript(id) => exports::conversation(call, *id, q).await,
        Route::CaseTranscript(case) => {
            let mut convs: Vec<(u64, u64)> = case_conversations(call, case, true)
                .await?
                .iter()
                .filter_map(|s| s.conversation.as_ref().map(|c| (c.created_at_ms, c.id)))
                .collect();
            convs.sort();
            exports::case(call, convs.into_iter().map(|(_, id)| id).collect(), case, q).await
        }
        Route::Attachment(id, att) => exports::attachment(call, *id, att).await,
        _ => json(run_json(call, account, route, q, body).await),
    }
}

/// The routes answered with JSON.
async fn run_json(
    call: &Requester,
    account: &ServiceAccountRecord,
    route: &Route,
    q: Option<&str>,
    body: &[u8],
) -> Answer {
    match route {
        Route::OpenApi | Route::Transcript(_) | Route::CaseTranscript(_) | Route::Attachment(..) => {
            Ok((StatusCode::OK, serde_json::from_str(OPENAPI).unwrap_or_default()))
        }
        Route::ProvisionUser => provision(call, parse(body)?).await,
        Route::DeactivateUser(id) => set_disabled(call, id, parse(body)?, true).await,
        Route::ReactivateUser(id) => set_disabled(call, id, parse(body)?, false).await,
        Route::CaseConversations(case) => {
            let archived = flag(q, "include_archived")?;
            let list = case_conversations(call, case, archived).await?;
            Ok((
                StatusCode::OK,
                json!({"case_id": case, "conversations": list.iter().map(json::conversation).collect::<Vec<_>>()}),
            ))
        }
        Route::CreateCaseConversation(case) => create_case(call, case, parse(body)?).await,
        Route::SetCaseMembers(case) => set_case_members(call, case, parse(body)?).await,
        Route::ArchiveCase(case) => archive_case(call, case).await,
        Route::Conversation(id) => conversation(call, *id).await,
        Route::History(id) => history(call, *id, q).await,
        Route::PostMessage(id) => post(call, *id, parse(body)?).await,
        Route::Webhooks => webhooks::list(account),
        Route::CreateWebhook => webhooks::create(call, account, parse(body)?).await,
        Route::DeleteWebhook(id) => webhooks::delete(call, account, id).await,
    }
}

/// The JSON body as `T` (unknown fields refused).
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(body)
        .map_err(|e| WireError::new(ErrorCode::Malformed, format!("the JSON body does not fit this call: {e}")))
}

fn bad(msg: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::InvalidArgument, msg)
}

/// A `true`/`false` query parameter (absent: false).
fn flag(q: Option<&str>, name: &str) -> Result<bool, WireError> {
    match query(q, name) {
        None => Ok(false),
        Some(Ok(v)) if v == "true" || v.is_empty() => Ok(true),
        Some(Ok(v)) if v == "false" => Ok(false),
        Some(_) => Err(bad(format!("query parameter {name}: true or false"))),
    }
}

/// A number query parameter (absent: 0).
fn number(q: Option<&str>, name: &str) -> Result<u64, WireError> {
    match query(q, name) {
        None => Ok(0),
        Some(Ok(v)) => v.parse().map_err(|_| bad(format!("query parameter {name}: a whole number, got {v:?}"))),
        Some(Err(v)) => Err(bad(format!("query parameter {name}: malformed {v:?}"))),
    }
}

/// Runs a command as the service account.
async fn exec(call: &Requester, body: cmd::Body) -> Result<reply::Result, WireError> {
    command::execute(call, &RefCell::new(HashSet::new()), body).await
}

fn unexpected(r: reply::Result) -> WireError {
    WireError::new(ErrorCode::Unavailable, format!("unexpected answer: {r:?}"))
}

async fn provision(call: &Requester, p: ProvisionUser) -> Answer {
    let role = json::parse_role(&p.role).ok_or_else(|| bad("role: advocate, client or admin"))?;
    match exec(call, cmd::Body::PutUser(v1::PutUser { id: p.id, display_name: p.display_name, role: role as i32 }))
        .await?
    {
        reply::Result::User(u) => Ok((StatusCode::OK, json::user(&u))),
        r => Err(unexpected(r)),
    }
}

async fn set_disabled(call: &Requester, id: &str, r: Reason, disabled: bool) -> Answer {
    let (user_id, reason) = (id.to_owned(), r.reason);
    let body = if disabled {
        cmd::Body::DisableUser(v1::DisableUser { user_id, reason })
    } else {
        cmd::Body::EnableUser(v1::EnableUser { user_id, reason })
    };
    match exec(call, body).await? {
        reply::Result::User(u) => Ok((StatusCode::OK, json::user(&u))),
        r => Err(unexpected(r)),
    }
}

/// The service account's conversations of a case, most recently active first.
async fn case_conversations(
    call: &Requester,
    case: &str,
    include_archived: bool,
) -> Result<Vec<v1::ConversationSummary>, WireError> {
    chat_protocol::limits::check_case_id(case).map_err(|e| e.to_wire())?;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut page = String::new();
    for round in 0.. {
        if round == CASE_PAGES {
            let msg = format!("this service account has too many conversations to find those of case {case:?}");
            return Err(WireError::limited(ErrorCode::Overloaded, "case_pages", msg, None));
        }
        let l = v1::ListConversations {
            case_id: case.to_owned(),
            include_archived,
            limit: 500,
            page,
            kind: ConversationKind::Case as i32,
        };
        match exec(call, cmd::Body::ListConversations(l)).await? {
            reply::Result::Conversations(list) => {
                for s in list.conversations {
                    // A conversation moving up while read may come twice.
                    if seen.insert(s.conversation.as_ref().map_or(0, |c| c.id)) {
                        out.push(s);
                    }
                }
                if list.next.is_empty() {
                    break;
                }
                page = list.next;
            }
            r => return Err(unexpected(r)),
        }
    }
    Ok(out)
}

/// The active conversations of a case, or NOT_FOUND.
async fn active_case(call: &Requester, case: &str) -> Result<Vec<u64>, WireError> {
    let ids: Vec<u64> = case_conversations(call, case, false)
        .await?
        .iter()
        .filter_map(|s| s.conversation.as_ref().map(|c| c.id))
        .collect();
    if ids.is_empty() {
        let msg = format!("case {case:?} has no active conversation of this service account; create one first");
        return Err(WireError::new(ErrorCode::NotFound, msg));
    }
    Ok(ids)
}

async fn create_case(call: &Requester, case: &str, c: CreateCase) -> Answer {
    let existing = case_conversations(call, case, false).await?;
    let title =
        |s: &v1::ConversationSummary| s.conversation.as_ref().map(|c| c.title.as_str()) == Some(c.title.as_str());
    if let Some(s) = existing.iter().find(|s| title(s)) {
        return Ok((StatusCode::OK, json!({"conversation": json::conversation(s), "existing": true})));
    }
    let create = v1::CreateConversation {
        kind: ConversationKind::Case as i32,
        title: c.title,
        case_id: case.to_owned(),
        members: c.members,
        // The API posts plaintext system messages: its conversations are plain.
        e2e: false,
    };
    match exec(call, cmd::Body::CreateConversation(create)).await? {
        reply::Result::Conversation(ok) => {
            let s = ok.summary.unwrap_or_default();
            Ok((StatusCode::CREATED, json!({"conversation": json::conversation(&s), "existing": false})))
        }
        r => Err(unexpected(r)),
    }
}

/// The case team, checked: valid ids, in the directory, not too many.
async fn team(call: &Requester, members: Vec<String>) -> Result<BTreeSet<String>, WireError> {
    for u in &members {
        chat_protocol::limits::check_user_id(u).map_err(|e| bad(format!("members: {u:?}: {}", e.to_wire().message)))?;
    }
    let team: BTreeSet<String> = members.into_iter().collect();
    let max = call.ctx.shared.limits.max_members;
    if team.len() + 1 > max {
        return Err(WireError::limited(
            ErrorCode::TooManyMembers,
            "max_members",
            format!("at most {max} members"),
            None,
        ));
    }
    let ids: Vec<String> = team.iter().cloned().collect();
    command::users::require_known(call.store(), &ids).await?;
    Ok(team)
}

async fn set_case_members(call: &Requester, case: &str, s: SetMembers) -> Answer {
    let team = team(call, s.members).await?;
    let me: &str = &call.caller.user;
    let mut done = Vec::new();
    for conv in active_case(call, case).await? {
        let current: BTreeSet<String> =
            match exec(call, cmd::Body::GetMembers(v1::GetMembers { conversation_id: conv })).await? {
                reply::Result::Members(m) => m.members.into_iter().map(|m| m.user_id).filter(|u| u != me).collect(),
                r => return Err(unexpected(r)),
            };
        let added: Vec<String> = team.difference(&current).cloned().collect();
        let removed: Vec<String> = current.difference(&team).cloned().collect();
        // Removals first: a new team as large as the old one still fits under max_members.
        for user_id in &removed {
            exec(call, cmd::Body::RemoveMember(v1::RemoveMember { conversation_id: conv, user_id: user_id.clone() }))
                .await?;
        }
        if !added.is_empty() {
            exec(call, cmd::Body::AddMembers(v1::AddMembers { conversation_id: conv, user_ids: added.clone() }))
                .await?;
        }
        done.push(json!({"id": conv.to_string(), "added": added, "removed": removed}));
    }
    Ok((StatusCode::OK, json!({"case_id": case, "conversations": done})))
}

async fn archive_case(call: &Requester, case: &str) -> Answer {
    let mut archived = Vec::new();
    for conv in active_case(call, case).await? {
        exec(call, cmd::Body::ArchiveConversation(v1::ArchiveConversation { conversation_id: conv, unarchive: false }))
            .await?;
        archived.push(conv.to_string());
    }
    Ok((StatusCode::OK, json!({"case_id": case, "archived": archived})))
}

async fn conversation(call: &Requester, id: u64) -> Answer {
    let summary = match exec(call, cmd::Body::GetConversation(v1::GetConversation { conversation_id: id })).await? {
        reply::Result::Conversation(ok) => ok.summary.unwrap_or_default(),
        r => return Err(unexpected(r)),
    };
    let members = match exec(call, cmd::Body::GetMembers(v1::GetMembers { conversation_id: id })).await? {
        reply::Result::Members(m) => m.members,
        r => return Err(unexpected(r)),
    };
    let mut doc = json::conversation(&summary);
    doc["members"] = json::members(&members);
    Ok((StatusCode::OK, doc))
}

async fn history(call: &Requester, id: u64, q: Option<&str>) -> Answer {
    let (after_seq, before_seq) = (number(q, "after")?, number(q, "before")?);
    let limit = u32::try_from(number(q, "limit")?).map_err(|_| bad("query parameter limit: too large"))?;
    let h = v1::GetHistory { conversation_id: id, before_seq, after_seq, limit };
    match exec(call, cmd::Body::GetHistory(h)).await? {
        reply::Result::History(h) => Ok((
            StatusCode::OK,
            json!({
                "conversation_id": id.to_string(),
                "messages": h.messages.iter().map(json::message).collect::<Vec<_>>(),
                "has_more": h.has_more,
                "purged_through": h.purged_through,
            }),
        )),
        r => Err(unexpected(r)),
    }
}

async fn post(call: &Requester, id: u64, p: PostMessage) -> Answer {
    let m = v1::SendMessage {
        conversation_id: id,
        client_msg_id: p.client_msg_id,
        body: Some(v1::MessageBody { content: Some(v1::message_body::Content::Text(p.text)) }),
        reply_to: 0,
        attachment_ids: Vec::new(),
    };
    let m = message::parse(&call.ctx, m)?;
    // A forwarded send answers a refusal as an error result.
    let answer = message::hand_over(call, m).await?.await?;
    match command::request::answered(answer)? {
        reply::Result::SendMessage(ok) => {
            let status = if ok.duplicate { StatusCode::OK } else { StatusCode::CREATED };
            let doc = json!({"conversation_id": id.to_string(), "seq": ok.seq, "server_time_ms": ok.server_time_ms, "duplicate": ok.duplicate});
            Ok((status, doc))
        }
        r => Err(unexpected(r)),
    }
}
