//! The rules of changing a message after it was sent: who may edit, delete
//! or react, until when and how much, and what the message looks like after.
//! Sans-IO: [`apply`] takes the target's latest state, the change and the
//! time, and returns the new state and the event entry to append (or the
//! precise refusal). The owner ([`super::owner`]) sequences what it returns.

use crate::config::MessagesConfig;
use crate::shard::Change;
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, MemberRole, MessageKind};

/// The configured rules (`[messages]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Edits allowed this long after the send, in ms (0: always).
    pub edit_window_ms: u64,
    /// Conversation admins and moderators may delete others' messages.
    pub moderators_delete: bool,
    /// Most distinct emoji on one message.
    pub max_reaction_emoji: usize,
    /// Most reactions of one user on one message.
    pub max_reactions_per_user: usize,
}

impl From<&MessagesConfig> for Rules {
    fn from(c: &MessagesConfig) -> Self {
        Self {
            edit_window_ms: c.edit_window_secs.saturating_mul(1000),
            moderators_delete: c.moderators_delete,
            max_reaction_emoji: c.max_reaction_emoji,
            max_reactions_per_user: c.max_reactions_per_user,
        }
    }
}

impl Default for Rules {
    fn default() -> Self {
        Self::from(&MessagesConfig::default())
    }
}

/// What a change does: the event to append (seq and time still 0) and the
/// target as it is after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The EDIT, DELETE or REACTION entry.
    pub event: v1::Message,
    /// The target's new latest state.
    pub latest: v1::Message,
}

/// Applies `change` by `actor` (whose role in the conversation is `role`)
/// to `target` at `now_ms`. `Ok(None)`: it changes nothing (a reaction the
/// actor already has, or one they do not have taken away).
pub fn apply(
    rules: &Rules,
    target: &v1::Message,
    actor: &str,
    role: MemberRole,
    change: &Change,
    now_ms: u64,
) -> Result<Option<Applied>, WireError> {
    if target.kind != MessageKind::User as i32 {
        return Err(WireError::new(ErrorCode::NotEditable, format!("message {} is not a user's message", target.seq)));
    }
    if target.deleted {
        return Err(WireError::new(ErrorCode::MessageDeleted, format!("message {} is deleted", target.seq)));
    }
    let mut latest = target.clone();
    let mut event = v1::Message {
        conversation_id: target.conversation_id,
        sender_id: actor.to_string(),
        client_msg_id: change.client_msg_id().to_string(),
        target_seq: target.seq,
        ..Default::default()
    };
    match change {
        Change::Edit(e) => {
            if target.sender_id != actor {
                return Err(not_yours("edit", target.seq));
            }
            let text = |b: Option<&v1::MessageBody>| {
                matches!(b.and_then(|b| b.content.as_ref()), Some(v1::message_body::Content::Text(_)))
            };
            if !text(target.body.as_ref()) || !text(e.body.as_ref()) {
                return Err(WireError::new(ErrorCode::NotEditable, "only text messages are edited, with text"));
            }
            if rules.edit_window_ms != 0 && now_ms > target.server_time_ms.saturating_add(rules.edit_window_ms) {
                return Err(WireError::limited(
                    ErrorCode::EditWindowClosed,
                    "edit_window_secs",
                    format!("message {} is past the {} s edit window", target.seq, rules.edit_window_ms / 1000),
                    None,
                ));
            }
            event.kind = MessageKind::Edit as i32;
            event.body = e.body.clone();
            latest.body = e.body.clone();
            latest.edited_at_ms = now_ms;
        }
        Change::Delete(_) | Change::Erase(_) => {
            let moderator = matches!(role, MemberRole::Admin | MemberRole::Moderator);
            let allowed = match change {
                Change::Erase(_) => target.sender_id == actor,
                _ => target.sender_id == actor || (rules.moderators_delete && moderator),
            };
            if !allowed {
                return Err(not_yours("delete", target.seq));
            }
            event.kind = MessageKind::Delete as i32;
            latest.body = None;
            latest.deleted = true;
            latest.deleted_by = actor.to_string();
            latest.reactions.clear();
            // The files' names and hashes go with the text.
            latest.attachments.clear();
        }
        Change::React(r) => {
            if !react(rules, &mut latest.reactions, actor, &r.emoji, r.on)? {
                return Ok(None);
            }
            event.kind = MessageKind::Reaction as i32;
            event.reaction = Some(v1::ReactionChange { emoji: r.emoji.clone(), on: r.on });
        }
    }
    Ok(Some(Applied { event, latest }))
}

fn not_yours(what: &str, seq: u64) -> WireError {
    WireError::new(ErrorCode::NotYourMessage, format!("you may not {what} message {seq}: it is another member's"))
}

/// Toggles `actor`'s `emoji` in `reactions`; false if nothing changed.
fn react(
    rules: &Rules,
    reactions: &mut Vec<v1::Reaction>,
    actor: &str,
    emoji: &str,
    on: bool,
) -> Result<bool, WireError> {
    let at = reactions.iter().position(|r| r.emoji == emoji);
    let has = at.is_some_and(|i| reactions[i].user_ids.iter().any(|u| u == actor));
    if on == has {
        return Ok(false);
    }
    if !on {
        let i = at.expect("has implies present");
        reactions[i].user_ids.retain(|u| u != actor);
        if reactions[i].user_ids.is_empty() {
            reactions.remove(i);
        }
        return Ok(true);
    }
    let mine = reactions.iter().filter(|r| r.user_ids.iter().any(|u| u == actor)).count();
    if mine >= rules.max_reactions_per_user {
        return Err(too_many(
            "max_reactions_per_user",
            format!("at most {} reactions of yours", rules.max_reactions_per_user),
        ));
    }
    match at {
        Some(i) => reactions[i].user_ids.push(actor.to_string()),
        None if reactions.len() >= rules.max_reaction_emoji => {
            return Err(too_many(
                "max_reaction_emoji",
                format!("at most {} different emoji on one message", rules.max_reaction_emoji),
            ));
        }
        None => reactions.push(v1::Reaction { emoji: emoji.to_string(), user_ids: vec![actor.to_string()] }),
    }
    Ok(true)
}

fn too_many(limit: &'static str, why: String) -> WireError {
    WireError::limited(ErrorCode::TooManyReactions, limit, why, None)
}

#[cfg(test)]
mod tests;
