//! A service account's event webhooks through the API: subscribe (the
//! signing secret is answered once), list, unsubscribe. Delivery is
//! `crate::notify::hooks`.

use super::json::CreateWebhook;
use super::problem::Answer;
use crate::command::Requester;
use crate::command::service_accounts::accounts::{self, AccountError};
use crate::notify::hooks::check_url;
use crate::store::service_accounts::{ServiceAccountRecord, Webhook};
use chat_protocol::WireError;
use chat_protocol::v1::ErrorCode;
use hyper::StatusCode;
use serde_json::{Value, json};

/// Webhooks per service account at most.
pub const MAX_WEBHOOKS: usize = 10;
/// Case ids one webhook may name at most.
const MAX_CASES: usize = 100;
/// A webhook URL's bytes at most.
const MAX_URL: usize = 2048;

fn view(h: &Webhook) -> Value {
    let events: Vec<&str> = h.events.iter().map(|k| k.name()).collect();
    json!({
        "id": h.id,
        "url": crate::config::redact_url(&h.url),
        "events": events,
        "case_ids": h.case_ids,
        "include_content": h.include_content,
        "created_at_ms": h.created_at_ms,
    })
}

fn account_err(e: AccountError) -> WireError {
    let code = match &e {
        AccountError::NotFound(_) | AccountError::Revoked(_) => ErrorCode::Unauthenticated,
        AccountError::Conflict(_) | AccountError::Exists(_) => ErrorCode::Conflict,
        AccountError::Invalid(_) => ErrorCode::InvalidArgument,
        AccountError::Store(_) => ErrorCode::Unavailable,
    };
    WireError::new(code, e.to_string())
}

/// `GET /webhooks`.
pub fn list(account: &ServiceAccountRecord) -> Answer {
    Ok((StatusCode::OK, json!({"webhooks": account.webhooks.iter().map(view).collect::<Vec<_>>()})))
}

/// `POST /webhooks`.
pub async fn create(call: &Requester, account: &ServiceAccountRecord, c: CreateWebhook) -> Answer {
    let bad = |m: String| WireError::new(ErrorCode::InvalidArgument, m);
    check_url(&c.url, call.ctx.shared.cfg.api.webhook_allow_private).map_err(bad)?;
    if c.url.len() > MAX_URL {
        return Err(bad(format!("url: at most {MAX_URL} bytes")));
    }
    if !c.url.starts_with("https://") && !call.ctx.shared.cfg.api.webhook_allow_http {
        return Err(bad(
            "url: webhooks go over https:// (api.webhook_allow_http allows http:// for a test receiver)".into()
        ));
    }
    if c.events.is_empty() {
        return Err(bad("events: at least one of message.posted, member.added, member.removed, \
                        conversation.archived, attachment.uploaded"
            .into()));
    }
    if c.case_ids.len() > MAX_CASES {
        return Err(bad(format!("case_ids: at most {MAX_CASES}")));
    }
    for case in &c.case_ids {
        chat_protocol::limits::check_case_id(case).map_err(|e| e.to_wire())?;
    }
    let now_ms = chat_protocol::unix_ms(std::time::SystemTime::now());
    let mut events = c.events;
    events.sort();
    events.dedup();
    let hook = Webhook {
        id: format!("{:016x}", rand::random::<u64>()),
        url: c.url,
        events,
        case_ids: c.case_ids,
        include_content: c.include_content,
        secret: hex::encode(rand::random::<[u8; 32]>()),
        created_at_ms: now_ms,
    };
    let added = hook.clone();
    // The bound is checked on the record being written (compare-and-set).
    let too_many = AccountError::Invalid(format!("at most {MAX_WEBHOOKS} webhooks per service account"));
    accounts::update(call.store(), &account.id, now_ms, move |rec, _| {
        if rec.webhooks.len() >= MAX_WEBHOOKS {
            return Err(too_many);
        }
        rec.webhooks.push(added);
        Ok(())
    })
    .await
    .map_err(account_err)?;
    let mut doc = view(&hook);
    doc["secret"] = hook.secret.into();
    Ok((StatusCode::CREATED, doc))
}

/// `DELETE /webhooks/{id}`.
pub async fn delete(call: &Requester, account: &ServiceAccountRecord, id: &str) -> Answer {
    if !account.webhooks.iter().any(|h| h.id == id) {
        return Err(WireError::new(ErrorCode::NotFound, format!("no webhook {id:?} of this service account")));
    }
    let now_ms = chat_protocol::unix_ms(std::time::SystemTime::now());
    accounts::update(call.store(), &account.id, now_ms, |rec, _| {
        rec.webhooks.retain(|h| h.id != id);
        Ok(())
    })
    .await
    .map_err(account_err)?;
    Ok((StatusCode::OK, json!({"deleted": id})))
}
