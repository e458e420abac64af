//! Templates and quick replies: `PutTemplate`, `DeleteTemplate`,
//! `ListTemplates` and `RenderTemplate`, run on the session's shard against
//! the store. The rules (who may, names, placeholders, limits, rendering)
//! are [`rules`], sans-IO; this file reads what they need and performs what
//! they decide. A user sees their own personal templates and the firm's;
//! rendering reads a conversation the caller is a member of.

pub mod rules;

use super::request::{Requester, err, store_err};
use crate::conversation::no_access;
use crate::store::MessageStore;
use crate::store::templates::{TemplateRecord, TemplateStore};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, Role, TemplateScope, reply};
use rules::{Fills, Saver, TemplateError, TemplateLimits};

/// The limits in force on this node.
fn limits(req: &Requester) -> TemplateLimits {
    let l = &req.ctx.shared.cfg.limits;
    TemplateLimits {
        per_user: l.templates_per_user,
        firm: l.firm_templates,
        name_bytes: l.template_name_bytes,
        body_bytes: l.max_text_bytes,
    }
}

fn now_ms() -> u64 {
    chat_protocol::unix_ms(std::time::SystemTime::now())
}

/// The template `id` among the caller's personal ones, then the firm's.
async fn find(req: &Requester, id: u64) -> Result<TemplateRecord, WireError> {
    if id == 0 {
        return Err(err(ErrorCode::InvalidArgument, "template id is required"));
    }
    for scope in [TemplateScope::Personal, TemplateScope::Firm] {
        let (scope, owner) = rules::partition(scope, &req.caller.user);
        if let Some(t) = req.store().get_template(scope, &owner, id).await.map_err(store_err)? {
            return Ok(t);
        }
    }
    Err(TemplateError::NotFound(id).to_wire())
}

/// Creates or updates a template (see `PutTemplate` in the schema).
pub async fn put(req: &Requester, p: v1::PutTemplate) -> Result<reply::Result, WireError> {
    let scope = rules::scope_of(p.scope).map_err(|e| e.to_wire())?;
    // Refused before anything is read: a client learns nothing of the firm's.
    rules::may_manage(scope, req.caller.role).map_err(|e| e.to_wire())?;
    let (scope_n, owner) = rules::partition(scope, &req.caller.user);
    let stored = req.store().templates(scope_n, &owner).await.map_err(store_err)?;
    let who = Saver { user: &req.caller.user, role: req.caller.role, now_ms: now_ms() };
    let new_id = rand::random::<u64>().max(1);
    let planned = rules::plan_put(&limits(req), who, &p, &stored, new_id).map_err(|e| e.to_wire())?;
    if !req.store().put_template(&planned.record, planned.expected).await.map_err(store_err)? {
        return Err(err(ErrorCode::Conflict, "the template was changed or removed meanwhile; reload it and try again"));
    }
    Ok(reply::Result::Template(v1::TemplateOk { template: Some(rules::to_wire(&planned.record)) }))
}

/// Deletes one of the caller's personal templates or (admins) a firm one.
pub async fn delete(req: &Requester, d: v1::DeleteTemplate) -> Result<reply::Result, WireError> {
    let t = find(req, d.id).await?;
    let scope = rules::scope_of(t.scope).map_err(|e| e.to_wire())?;
    rules::may_manage(scope, req.caller.role).map_err(|e| e.to_wire())?;
    if !req.store().delete_template(t.scope, &t.owner, t.id).await.map_err(store_err)? {
        return Err(TemplateError::NotFound(d.id).to_wire());
    }
    Ok(reply::Result::Ok(v1::Empty {}))
}

/// A page of the caller's personal templates and the firm's.
pub async fn list(req: &Requester, l: v1::ListTemplates) -> Result<reply::Result, WireError> {
    let mut all = Vec::new();
    for scope in [TemplateScope::Personal, TemplateScope::Firm] {
        let (scope, owner) = rules::partition(scope, &req.caller.user);
        all.extend(req.store().templates(scope, &owner).await.map_err(store_err)?.iter().map(rules::to_wire));
    }
    let (templates, next) = rules::page(all, &l.page, rules::PAGE_BYTES);
    Ok(reply::Result::Templates(v1::TemplateList { templates, next }))
}

/// A template filled in with the values of a conversation the caller belongs to.
pub async fn render(req: &Requester, r: v1::RenderTemplate) -> Result<reply::Result, WireError> {
    let conv = super::request::require_conversation(r.conversation_id)?;
    let t = find(req, r.template_id).await?;
    let rec = req.store().get_conversation(conv).await.map_err(store_err)?.ok_or_else(|| no_access(conv))?;
    let members = req.store().members(conv).await.map_err(store_err)?;
    if !members.iter().any(|m| *m.user_id == *req.caller.user) {
        return Err(no_access(conv));
    }
    let ids: Vec<String> = members.iter().map(|m| m.user_id.clone()).collect();
    let users = req.store().get_users(&ids).await.map_err(store_err)?;
    let mut client_names: Vec<String> = users
        .iter()
        .filter(|u| u.role == Role::Client as i32)
        .map(|u| if u.display_name.is_empty() { u.id.clone() } else { u.display_name.clone() })
        .collect();
    client_names.sort();
    let me = users.iter().find(|u| *u.id == *req.caller.user);
    let my_name = me.map(|u| u.display_name.clone()).filter(|n| !n.is_empty());
    let fills = Fills {
        client_names,
        case_id: rec.case_id,
        conversation_title: rec.title,
        my_name: my_name.unwrap_or_else(|| req.caller.user.to_string()),
        now_ms: now_ms(),
    };
    let (text, missing) = rules::render(&t.body, &fills);
    Ok(reply::Result::Rendered(v1::RenderedTemplate { template_id: t.id, conversation_id: conv, text, missing }))
}
