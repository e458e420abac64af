//! Edits, deletes and reactions at the owner: a change is checked against the
//! latest state of the message it names (the rules are in
//! `crate::conversation::events`), and its event is sequenced like a send,
//! carrying the target's new state and the version it replaces to the store
//! in the same append. The owner keeps the latest state of the messages it
//! changed lately, so that changes in flight build on each other; any other
//! target it asks the store for ([`Effect::ReadTarget`]) and parks the
//! change meanwhile, so the conversation goes on while the read is out.
//! Changes of one target are checked in the order they came.

use super::{Effect, Handles, Owner, Pending, unavailable};
use crate::conversation::events;
use crate::shard::Change;
use crate::store::StoreResult;
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, MemberRole};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Changed messages remembered at most while nothing is in flight (beyond
/// it the owner forgets them all and the store answers).
pub(super) const TARGETS: usize = 1024;

/// Changes parked at most while their targets are read; beyond, refused
/// (retryable).
pub(super) const PARKED: usize = 256;

/// The answer when too many changes wait for their targets.
fn busy() -> WireError {
    WireError::limited(
        ErrorCode::Overloaded,
        "changes_parked",
        "too many changes of this conversation wait for the store; retry",
        Some(Duration::from_millis(200)),
    )
}

/// A change waiting for the store's copy of its target.
pub(super) struct Parked<R: Handles> {
    sender: Arc<str>,
    origin: u64,
    change: Change,
    reply: R::Send,
    /// The same change sent again while parked: answered alike.
    retries: Vec<R::Send>,
}

/// A message an event changes, before and after.
#[derive(Debug)]
pub(super) struct Changed {
    /// As it was (kept as a version for the audit trail).
    pub(super) prior: v1::Message,
    /// As it is after the event.
    pub(super) latest: v1::Message,
}

impl<R: Handles> Owner<R> {
    /// The latest state of the message at `seq` if this owner changed it
    /// lately (stored or on its way); None: the store has it.
    pub fn cached_target(&self, seq: u64) -> Option<&v1::Message> {
        self.targets.get(&seq)
    }

    /// An edit, delete or reaction from `sender` (`origin` gets no echo).
    /// Checked against the latest state of its target: the owner's copy if
    /// it changed it lately, else the store's, asked for with
    /// [`Effect::ReadTarget`] (then see [`handle_target`](Self::handle_target)).
    /// Answered once the event is durable, refused, or (a reaction that
    /// changes nothing) at once with seq 0 as a duplicate.
    pub fn handle_change(&mut self, now: Instant, sender: Arc<str>, origin: u64, change: Change, reply: R::Send) {
        let cmid = change.client_msg_id();
        if let Some(p) = self.parked.iter_mut().find(|p| p.sender == sender && p.change.client_msg_id() == cmid) {
            p.retries.push(reply);
            return;
        }
        let seq = change.target_seq();
        let known = seq == 0 || seq <= self.purged_through || seq > self.committed || self.targets.contains_key(&seq);
        let reading = self.parked.iter().any(|p| p.change.target_seq() == seq);
        if known && !reading {
            self.check_and_queue(now, sender, origin, change, None, reply);
        } else if self.parked.len() >= PARKED {
            self.effects.push_back(Effect::Sent(reply, Err(busy())));
        } else {
            if !reading {
                self.effects.push_back(Effect::ReadTarget(seq));
            }
            self.parked.push_back(Parked { sender, origin, change, reply, retries: Vec::new() });
        }
        self.settle(now);
    }

    /// The store's answer to [`Effect::ReadTarget`] for `seq`: the message
    /// there (None: none). The changes parked on it are checked in order; a
    /// change sent again while parked is answered as the first was.
    pub fn handle_target(&mut self, now: Instant, seq: u64, stored: StoreResult<Option<v1::Message>>) {
        let (mine, rest): (VecDeque<_>, _) =
            std::mem::take(&mut self.parked).into_iter().partition(|p| p.change.target_seq() == seq);
        self.parked = rest;
        for p in mine {
            for reply in std::iter::once(p.reply).chain(p.retries) {
                match &stored {
                    Ok(m) => self.check_and_queue(now, p.sender.clone(), p.origin, p.change.clone(), m.clone(), reply),
                    Err(_) => self.effects.push_back(Effect::Sent(reply, Err(unavailable()))),
                }
            }
        }
        self.settle(now);
    }

    /// Checks a change by the rules and queues its event for the next
    /// append (a copy already queued or stored: answered as that one).
    fn check_and_queue(
        &mut self,
        now: Instant,
        sender: Arc<str>,
        origin: u64,
        change: Change,
        stored: Option<v1::Message>,
        reply: R::Send,
    ) {
        let cmid = change.client_msg_id().to_string();
        let Some((sender, cmid, reply)) = self.admit(now, sender, cmid, reply) else { return };
        match self.check_change(now, &sender, &change, stored) {
            Err(e) => self.effects.push_back(Effect::Sent(reply, Err(e))),
            Ok(None) => self.effects.push_back(Effect::Sent(reply, Ok(self.ok(0, true, now)))),
            Ok(Some((mut msg, changed))) => {
                msg.client_msg_id = cmid;
                self.targets.insert(changed.latest.seq, changed.latest.clone());
                let (retries, change) = (Vec::new(), Some(Box::new(changed)));
                self.pending.push_back(Pending { msg, sender, reply, retries, origin, resequenced: 0, change });
            }
        }
    }

    /// The retention job purges (or purged) the messages at or below
    /// `through`: the owner forgets what it kept of them, and a change of
    /// one is refused as a change of an unknown message from now on.
    pub fn handle_purged(&mut self, through: u64) {
        self.purged_through = self.purged_through.max(through);
        self.targets.retain(|&seq, _| seq > through);
    }

    /// How many changes wait for their target to be read.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// The event a change appends and what it does to its target, by the
    /// rules; None: it changes nothing.
    fn check_change(
        &self,
        now: Instant,
        sender: &Arc<str>,
        change: &Change,
        stored: Option<v1::Message>,
    ) -> Result<Option<(v1::Message, Changed)>, WireError> {
        // An erasure tombstones the sender's own messages wherever they are:
        // also where they are no longer a member, and in an archived
        // conversation (`events::apply` holds it to their own messages).
        if !matches!(change, Change::Erase(_))
            && let Some(e) = self.refusal(sender, 0)
        {
            return Err(e);
        }
        let seq = change.target_seq();
        let target = match self.targets.get(&seq).cloned().or(stored) {
            Some(t) if seq > self.purged_through && seq <= self.committed && t.seq == seq => t,
            _ => {
                return Err(WireError::new(
                    ErrorCode::NotFound,
                    format!("message {seq} not found in this conversation"),
                ));
            }
        };
        let role = self.members.get(sender).and_then(|m| MemberRole::try_from(m.role).ok());
        let role = role.unwrap_or(MemberRole::Member);
        let applied = events::apply(&self.cfg.rules, &target, sender, role, change, self.unix_ms(now))?;
        Ok(applied.map(|a| (a.event, Changed { prior: target, latest: a.latest })))
    }

    /// A batch did not go through as sequenced: what the owner believes of
    /// changed messages may be wrong, so it forgets it, and every change not
    /// yet stored is refused (retryable: the SDK sends it again and it is
    /// checked against what is stored then).
    pub(super) fn abandon_changes(&mut self) {
        self.targets.clear();
        for p in std::mem::take(&mut self.pending) {
            match p.change {
                Some(_) => self.drop_message(p, unavailable()),
                None => self.pending.push_back(p),
            }
        }
    }
}
