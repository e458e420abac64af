//! The application's local view of conversations' messages: messages as they
//! arrive, with each edit, delete and reaction applied to the message it
//! names. Applying is idempotent (a history page already shows a message in
//! its latest state, and the events that led there may arrive as well).
//! Messages the server purged (retention, a conversation's erasure) are
//! dropped when an event or a history page says how far it purged.

use std::collections::BTreeMap;

use chat_protocol::v1::{self, MessageKind};

use crate::Event;

/// The event an entry of a conversation's sequence is surfaced as.
pub(crate) fn event_of(m: v1::Message) -> Event {
    if is_change(&m) { Event::Changed(m) } else { Event::Message(m) }
}

/// The event an edit, delete or reaction of `user` appends (seq and time
/// still 0: the ack has them); None for other commands.
pub(crate) fn own_event(body: &v1::command::Body, user: &str) -> Option<Box<v1::Message>> {
    use v1::command::Body;
    let (conversation_id, target_seq, client_msg_id, kind) = match body {
        Body::EditMessage(e) => (e.conversation_id, e.seq, &e.client_msg_id, MessageKind::Edit),
        Body::DeleteMessage(d) => (d.conversation_id, d.seq, &d.client_msg_id, MessageKind::Delete),
        Body::React(r) => (r.conversation_id, r.seq, &r.client_msg_id, MessageKind::Reaction),
        _ => return None,
    };
    let mut m = v1::Message {
        conversation_id,
        sender_id: user.to_string(),
        client_msg_id: client_msg_id.clone(),
        kind: kind as i32,
        target_seq,
        ..Default::default()
    };
    match body {
        Body::EditMessage(e) => m.body = e.body.clone(),
        Body::React(r) => m.reaction = Some(v1::ReactionChange { emoji: r.emoji.clone(), on: r.on }),
        _ => {}
    }
    Some(Box::new(m))
}

fn is_change(m: &v1::Message) -> bool {
    [MessageKind::Edit, MessageKind::Delete, MessageKind::Reaction].iter().any(|k| *k as i32 == m.kind)
}

/// Messages by `(conversation, seq)` in their latest state.
#[derive(Debug, Default, Clone)]
pub struct MessageView {
    messages: BTreeMap<(u64, u64), v1::Message>,
}

impl MessageView {
    /// An empty view.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in an event of the SDK: a message is added, a change applied to
    /// its target (if the view holds it), a purge told in a conversation's
    /// summary drops what it removed. Other events are ignored.
    pub fn apply_event(&mut self, e: &Event) {
        match e {
            Event::Message(m) | Event::Changed(m) => self.apply(m),
            Event::Conversation(v1::ConversationSummary { conversation: Some(c), purged_through, .. }) => {
                self.forget_through(c.id, *purged_through);
            }
            _ => {}
        }
    }

    /// Takes in a history page (messages in their latest state, and events;
    /// what the server purged meanwhile is dropped first).
    pub fn apply_history(&mut self, h: &v1::History) {
        self.forget_through(h.conversation_id, h.purged_through);
        for m in &h.messages {
            self.apply(m);
        }
    }

    /// Takes in one entry of a conversation's sequence.
    pub fn apply(&mut self, m: &v1::Message) {
        if !is_change(m) {
            self.messages.insert((m.conversation_id, m.seq), m.clone());
            return;
        }
        let Some(target) = self.messages.get_mut(&(m.conversation_id, m.target_seq)) else { return };
        match MessageKind::try_from(m.kind) {
            Ok(MessageKind::Edit) if !target.deleted => {
                target.body = m.body.clone();
                target.edited_at_ms = target.edited_at_ms.max(m.server_time_ms);
            }
            Ok(MessageKind::Delete) => {
                target.body = None;
                target.deleted = true;
                target.deleted_by = m.sender_id.clone();
                target.reactions.clear();
            }
            Ok(MessageKind::Reaction) if !target.deleted => {
                if let Some(r) = &m.reaction {
                    toggle(&mut target.reactions, &r.emoji, &m.sender_id, r.on);
                }
            }
            _ => {}
        }
    }

    /// Drops a conversation's messages at or below `through` (the server
    /// purged them; 0: nothing, as no message has seq 0); how many it held.
    pub fn forget_through(&mut self, conversation_id: u64, through: u64) -> usize {
        let gone: Vec<_> =
            self.messages.range((conversation_id, 0)..=(conversation_id, through)).map(|(k, _)| *k).collect();
        for k in &gone {
            self.messages.remove(k);
        }
        gone.len()
    }

    /// The message at `seq` of a conversation, in its latest state.
    pub fn get(&self, conversation_id: u64, seq: u64) -> Option<&v1::Message> {
        self.messages.get(&(conversation_id, seq))
    }

    /// A conversation's messages (not the events), ascending by seq.
    pub fn messages(&self, conversation_id: u64) -> impl Iterator<Item = &v1::Message> {
        self.messages.range((conversation_id, 0)..=(conversation_id, u64::MAX)).map(|(_, m)| m)
    }
}

/// Sets whether `user` has `emoji` in `reactions` (no change if it already is so).
fn toggle(reactions: &mut Vec<v1::Reaction>, emoji: &str, user: &str, on: bool) {
    let at = reactions.iter().position(|r| r.emoji == emoji);
    match (at, on) {
        (Some(i), true) if !reactions[i].user_ids.iter().any(|u| u == user) => reactions[i].user_ids.push(user.into()),
        (None, true) => reactions.push(v1::Reaction { emoji: emoji.into(), user_ids: vec![user.into()] }),
        (Some(i), false) => {
            reactions[i].user_ids.retain(|u| u != user);
            if reactions[i].user_ids.is_empty() {
                reactions.remove(i);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, kind: MessageKind, target: u64, by: &str) -> v1::Message {
        v1::Message {
            conversation_id: 1,
            seq,
            sender_id: by.into(),
            kind: kind as i32,
            target_seq: target,
            ..Default::default()
        }
    }

    #[test]
    fn changes_apply_to_their_target_once_whatever_the_repeats() {
        let mut v = MessageView::new();
        v.apply(&entry(1, MessageKind::User, 0, "ann"));
        let mut react = entry(2, MessageKind::Reaction, 1, "bob");
        react.reaction = Some(v1::ReactionChange { emoji: "👍".into(), on: true });
        v.apply(&react);
        v.apply(&react);
        assert_eq!(
            v.get(1, 1).unwrap().reactions,
            vec![v1::Reaction { emoji: "👍".into(), user_ids: vec!["bob".into()] }]
        );
        let mut edit = entry(3, MessageKind::Edit, 1, "ann");
        edit.body = Some(v1::MessageBody { content: Some(v1::message_body::Content::Text("new".into())) });
        edit.server_time_ms = 9;
        v.apply(&edit);
        assert_eq!((v.get(1, 1).unwrap().body.clone(), v.get(1, 1).unwrap().edited_at_ms), (edit.body.clone(), 9));
        v.apply(&entry(4, MessageKind::Delete, 1, "ann"));
        let m = v.get(1, 1).unwrap();
        assert!(m.deleted && m.body.is_none() && m.reactions.is_empty());
        assert_eq!(v.messages(1).count(), 1, "events are not messages");
        assert!(matches!(event_of(entry(5, MessageKind::Delete, 1, "ann")), Event::Changed(_)));
    }

    #[test]
    fn purged_messages_are_dropped_when_an_event_or_a_page_says_so() {
        let mut v = MessageView::new();
        for seq in 1..=4 {
            v.apply(&entry(seq, MessageKind::User, 0, "ann"));
        }
        v.apply(&v1::Message { conversation_id: 2, seq: 1, ..Default::default() });
        let summary = v1::ConversationSummary {
            conversation: Some(v1::Conversation { id: 1, ..Default::default() }),
            purged_through: 2,
            ..Default::default()
        };
        v.apply_event(&Event::Conversation(summary));
        assert_eq!(v.messages(1).map(|m| m.seq).collect::<Vec<_>>(), [3, 4]);
        v.apply_history(&v1::History { conversation_id: 1, purged_through: 3, ..Default::default() });
        assert_eq!(v.messages(1).map(|m| m.seq).collect::<Vec<_>>(), [4]);
        assert_eq!(v.messages(2).count(), 1, "other conversations keep theirs");
    }
}
