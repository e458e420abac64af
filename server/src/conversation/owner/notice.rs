//! Offline notifications at the owner: when a message is stored, which
//! members may be told of it (everyone but its sender, in conversations up
//! to `notify.max_members`, each at most once per `notify.debounce_secs`
//! per conversation) and how many messages each has not read. Whether they
//! have a connected device is asked afterwards by the driver (presence);
//! only those with none are notified. Messages of case conversations a
//! service account is in are handed to its webhooks ([`Owner::hook`]).

use super::{Effect, Handles, Owner};
use crate::notify::hooks::SERVICE_PREFIX;
use chat_protocol::v1::{self, ConversationKind, MessageKind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The notification rules an owner applies (None in its config: off).
#[derive(Debug, Clone)]
pub struct NoticeRules {
    /// At most one notice per member per conversation in this time.
    pub debounce: Duration,
    /// Conversations with more members notify nobody.
    pub max_members: usize,
    /// Whether the message's text goes along.
    pub include_content: bool,
}

/// A stored message some members may be told of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Where.
    pub conversation_id: u64,
    /// Its seq.
    pub seq: u64,
    /// Who sent it.
    pub sender: Arc<str>,
    /// When it was stored, ms since the Unix epoch.
    pub sent_at_ms: u64,
    /// Its text, if the rules include it.
    pub text: Option<String>,
    /// The members to tell (if no device of theirs is connected), each with
    /// their unread count.
    pub recipients: Vec<(Arc<str>, u64)>,
}

impl<R: Handles> Owner<R> {
    /// A message of `sender` is stored: asks for a notice to the members
    /// whose debounce allows one.
    pub(super) fn notice(&mut self, now: Instant, msg: &v1::Message, sender: &Arc<str>) {
        let Some(rules) = &self.cfg.notice else { return };
        // An MLS commit changes the group's keys: nobody is told of it.
        if msg.kind != MessageKind::User as i32 || self.members.len() > rules.max_members || super::e2e::is_commit(msg)
        {
            return;
        }
        let (debounce, content) = (rules.debounce, rules.include_content);
        let mut recipients = Vec::new();
        for (user, m) in &self.members {
            // A service account has no devices: its webhooks tell it ([`Owner::hook`]).
            if user == sender || user.starts_with(SERVICE_PREFIX) {
                continue;
            }
            let due = self.notified.get(user).is_none_or(|at| now >= *at + debounce);
            if due {
                recipients.push((user.clone(), msg.seq.saturating_sub(m.read_seq)));
            }
        }
        for (user, _) in &recipients {
            self.notified.insert(user.clone(), now);
        }
        // Who left stays remembered until the debounce has passed.
        if self.notified.len() > self.members.len() * 2 {
            self.notified.retain(|_, at| now < *at + debounce);
        }
        if recipients.is_empty() {
            return;
        }
        let text = match msg.body.as_ref().and_then(|b| b.content.as_ref()) {
            Some(v1::message_body::Content::Text(t)) if content => Some(t.clone()),
            _ => None,
        };
        self.effects.push_back(Effect::Notify(Box::new(Notice {
            conversation_id: msg.conversation_id,
            seq: msg.seq,
            sender: sender.clone(),
            sent_at_ms: msg.server_time_ms,
            text,
            recipients,
        })));
    }

    /// A message is stored in a case conversation a service account is a
    /// member of: its webhooks may be told (the driver queues it; who is
    /// subscribed is matched off the shard).
    pub(super) fn hook(&mut self, msg: &v1::Message) {
        let posted = msg.kind == MessageKind::User as i32 || msg.kind == MessageKind::System as i32;
        if !posted || self.rec.kind != ConversationKind::Case as i32 {
            return;
        }
        if self.members.keys().any(|u| u.starts_with(SERVICE_PREFIX)) {
            self.effects.push_back(Effect::Hook(Box::new(msg.clone())));
        }
    }
}
