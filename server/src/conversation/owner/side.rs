//! The owner's inputs beside the message path: subscriptions, presence,
//! typing, receipts and watermarks, mailbox refusals, timers, and the
//! application of membership changes. The message path itself (sequencing,
//! appends, fences) is in the parent module.

use super::{BIG_ROOM_TOUCH, Effect, FLUSH_EVERY, Handles, Owner, RECEIPT_PUSH, RETRY_AFTER};
use crate::conversation::membership::{Notice, Write};
use crate::conversation::summary;
use crate::frames;
use crate::shard::{Fanout, ShardMsg, UserEvent};
use chat_protocol::WireError;
use chat_protocol::v1::{self, MemberRole, MembershipChange, ReceiptKind, push};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The first point of a `period` grid from `born` that is after `now`.
fn next_on_grid(born: Instant, now: Instant, period: Duration) -> Instant {
    let since = now.saturating_duration_since(born).as_nanos();
    let period_ns = period.as_nanos().max(1);
    let steps = since / period_ns + 1;
    born + Duration::from_nanos((steps * period_ns) as u64)
}

impl<R: Handles> Owner<R> {
    /// A shard has subscribed sessions: answered with the head, if `user` is a member.
    pub fn handle_attach(&mut self, now: Instant, shard: usize, user: &str) -> Result<u64, WireError> {
        if !self.is_member(user) {
            return Err(summary::no_access(self.id()));
        }
        if let Some(s) = self.subscribers.get_mut(shard) {
            *s = true;
        }
        self.settle(now);
        Ok(self.committed)
    }

    /// A shard has no subscribed session left.
    pub fn handle_detach(&mut self, now: Instant, shard: usize) {
        if let Some(s) = self.subscribers.get_mut(shard) {
            *s = false;
        }
        self.settle(now);
    }

    /// A member's presence flipped: passed on to the subscribers.
    pub fn handle_presence(&mut self, now: Instant, user: Arc<str>, online: bool, version: u64) {
        self.fanout(Fanout::Presence { user, online, version });
        self.settle(now);
    }

    /// A member started (true) or stopped typing; it stops by itself after the typing timeout.
    pub fn handle_typing(&mut self, now: Instant, user: Arc<str>, typing: bool) {
        if !self.is_member(&user) {
            return;
        }
        let was = if typing {
            self.typing.insert(user.clone(), now + self.cfg.typing_timeout).is_some()
        } else {
            self.typing.remove(&user).is_some()
        };
        if typing || was {
            self.push_typing(&user, typing);
        }
        self.settle(now);
    }

    pub(super) fn push_typing(&mut self, user: &Arc<str>, typing: bool) {
        let ev = push::Event::Typing(v1::TypingEvent { conversation_id: self.id(), user_id: user.to_string(), typing });
        self.fanout(Fanout::Ephemeral {
            frame: frames::push(ev.clone()),
            datagram: Some(frames::push_datagram(ev)),
            skip_user: Some(user.clone()),
        });
    }

    /// A member's watermark moved. A read receipt with a reply is answered
    /// once it is durable (an unread count read right after must agree;
    /// group-committed); delivered watermarks move constantly (every device
    /// acks what it got): kept in memory, pushed coalesced, stored each second.
    pub fn handle_receipt(
        &mut self,
        now: Instant,
        user: Arc<str>,
        kind: ReceiptKind,
        seq: u64,
        reply: Option<R::Receipt>,
    ) {
        match (self.move_watermark(&user, kind, seq), reply) {
            (Ok(true), Some(r)) if kind == ReceiptKind::Read => {
                self.waiters.push(r);
                self.flush(now);
            }
            (res, Some(r)) => self.effects.push_back(Effect::Receipted(r, res.map(drop))),
            (_, None) => {}
        }
        self.settle(now);
    }

    /// Moves a watermark in memory; true if it moved (a flush is due). The
    /// delivered receipts of a member who has not accepted a private
    /// conversation are stored but not pushed: they would tell its opener
    /// that the member's device is online.
    fn move_watermark(&mut self, user: &Arc<str>, kind: ReceiptKind, seq: u64) -> Result<bool, WireError> {
        let committed = self.committed;
        let big = self.members.len() > self.cfg.receipts_max_members;
        let conv = self.id();
        let Some(m) = self.members.get_mut(user) else { return Err(summary::no_access(conv)) };
        let seq = seq.min(committed);
        let (delivered, read) = match kind {
            ReceiptKind::Read => (seq, seq),
            _ => (seq, 0),
        };
        let moved_read = read > m.read_seq;
        let moved_delivered = delivered > m.delivered_seq;
        if !moved_read && !moved_delivered {
            return Ok(false);
        }
        let was_read = m.read_seq;
        m.read_seq = m.read_seq.max(read);
        m.delivered_seq = m.delivered_seq.max(delivered);
        let (now_delivered, now_read) = (m.delivered_seq, m.read_seq);
        if moved_read {
            self.receipts.insert((user.clone(), ReceiptKind::Read as i32), now_read);
        }
        let accepted = self.members.get(user).is_some_and(|m| self.roster().accepted(m));
        if moved_delivered && !big && accepted {
            self.receipts.insert((user.clone(), ReceiptKind::Delivered as i32), now_delivered);
        }
        let w = self.dirty.entry(user.clone()).or_insert((0, 0));
        *w = (w.0.max(delivered), w.1.max(read));
        self.note_acceptance(user, was_read, now_read);
        Ok(true)
    }

    /// Group commit for watermarks: asks to write what moved (and the
    /// activity, when due), and answers the read receipts that wait for it
    /// once it is durable. One flush at a time; what moves meanwhile goes with
    /// the next.
    fn flush(&mut self, now: Instant) {
        let touch = self.touch_due.filter(|&t| t <= now).map(|_| self.activity);
        if self.flushing.is_some() || (self.dirty.is_empty() && self.waiters.is_empty() && touch.is_none()) {
            return;
        }
        self.flush_due = None;
        self.flushing = Some(std::mem::take(&mut self.waiters));
        if touch.is_some() {
            self.touch_due = None;
            self.touching = touch;
        }
        let watermarks = self.dirty.drain().map(|(user, (delivered, read))| (user, delivered, read)).collect();
        self.effects.push_back(Effect::Flush { watermarks, touch });
    }

    /// Plans storing the activity if it moved: with the next flush on the
    /// grid, and in a big room not within [`BIG_ROOM_TOUCH`] of the last time.
    fn plan_touch(&mut self, now: Instant) {
        if self.activity <= self.activity_stored || self.touching.is_some() || self.touch_due.is_some() {
            return;
        }
        let next = next_on_grid(self.born, now, FLUSH_EVERY);
        let big = self.members.len() > self.cfg.receipts_max_members;
        self.touch_due = Some(match self.touched_at {
            Some(t) if big => next.max(t + BIG_ROOM_TOUCH),
            _ => next,
        });
    }

    /// The flush asked for last returned.
    pub fn handle_flushed(&mut self, now: Instant, res: Result<(), crate::store::StoreError>) {
        if let Some(at) = self.touching.take()
            && res.is_ok()
        {
            self.activity_stored = self.activity_stored.max(at);
            self.touched_at = Some(now);
        }
        let result = res.map_err(|_| super::unavailable());
        for w in self.flushing.take().unwrap_or_default() {
            self.effects.push_back(Effect::Receipted(w, result.clone()));
        }
        // Read receipts that came meanwhile do not wait for the next second.
        if !self.waiters.is_empty() {
            self.flush(now);
        }
        self.settle(now);
    }

    /// A shard's mailbox was full and handed `msg` back: stored messages and
    /// nudges become a nudge retried later, user events are retried later,
    /// ephemeral pushes are dropped.
    pub fn handle_refused(&mut self, now: Instant, shard: usize, msg: ShardMsg) {
        match msg {
            ShardMsg::Fanout(_, Fanout::Messages(_) | Fanout::Nudge { .. }) => {
                // Nothing is lost: the sessions there fill from the store on the nudge.
                if let Some(n) = self.nudge.get_mut(shard) {
                    *n = true;
                }
            }
            ShardMsg::User(user, ev) => self.undelivered.push_back((shard, user, ev)),
            _ => {}
        }
        self.settle(now);
    }

    /// Time passed: typing expires, receipts are pushed, watermarks stored,
    /// heads nudged, refused mailboxes retried, and an idle owner stops.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Typing that was not refreshed stops by itself.
        if self.typing.values().any(|&t| t <= now) {
            let expired: Vec<Arc<str>> =
                self.typing.iter().filter(|(_, t)| **t <= now).map(|(u, _)| u.clone()).collect();
            for u in expired {
                self.typing.remove(&u);
                self.push_typing(&u, false);
            }
        }
        if self.receipts_due.is_some_and(|t| t <= now) {
            self.receipts_due = None;
            self.push_receipts();
        }
        if self.flush_due.is_some_and(|t| t <= now) {
            self.flush_due = None;
            self.flush(now);
        }
        if self.head_nudge_due.is_some_and(|t| t <= now) {
            self.head_nudge_due = None;
            // Cluster: the head of a recently active conversation, once a
            // second, to every node that needs the conversation (this one
            // included), so a session that lost the last fan-out fills it.
            if self.nudging_head(now) {
                self.fanout(Fanout::Nudge { head: self.committed });
            }
        }
        if self.retry_due.is_some_and(|t| t <= now) {
            self.retry_due = None;
            self.retry_refused();
        }
        if self.idle_deadline().is_some_and(|t| t <= now) && self.is_quiet() {
            self.effects.push_back(Effect::Stop);
            // If the driver carries on (a message came), idle counts from here.
            self.quiet_since = Some(now);
        }
        self.settle(now);
    }

    /// Receipts, coalesced: everything that moved since the last push, in one.
    fn push_receipts(&mut self) {
        if self.receipts.is_empty() {
            return;
        }
        let conv = self.id();
        let mut receipts: Vec<v1::ReceiptEvent> = self
            .receipts
            .drain()
            .map(|((user, kind), seq)| v1::ReceiptEvent { conversation_id: conv, user_id: user.to_string(), kind, seq })
            .collect();
        receipts.sort_by(|a, b| (&a.user_id, a.kind).cmp(&(&b.user_id, b.kind)));
        let ev = push::Event::Receipts(v1::ReceiptBatch { conversation_id: conv, receipts });
        self.fanout(Fanout::Ephemeral { frame: frames::push(ev), datagram: None, skip_user: None });
    }

    /// Sends again what full mailboxes refused: user events, and nudges
    /// instead of the stored messages they missed.
    fn retry_refused(&mut self) {
        for (shard, user, ev) in std::mem::take(&mut self.undelivered) {
            self.effects.push_back(Effect::ToShard(shard, ShardMsg::User(user, ev)));
        }
        for shard in 0..self.nudge.len() {
            if std::mem::take(&mut self.nudge[shard]) {
                let msg = ShardMsg::Fanout(self.id(), Fanout::Nudge { head: self.committed });
                self.effects.push_back(Effect::ToShard(shard, msg));
            }
        }
    }

    /// Cluster: whether the head moved recently enough to be nudged at `at`.
    fn nudging_head(&self, at: Instant) -> bool {
        self.cfg.cluster
            && self.last_commit.is_some_and(|t| at.saturating_duration_since(t) <= crate::shard::broker::NUDGE_WINDOW)
    }

    /// Arms the timers of what is due later.
    pub(super) fn schedule(&mut self, now: Instant) {
        if !self.receipts.is_empty() && self.receipts_due.is_none() {
            self.receipts_due = Some(next_on_grid(self.born, now, RECEIPT_PUSH));
        }
        self.plan_touch(now);
        if self.flush_due.is_none() && self.flushing.is_none() {
            let watermarks = (!self.dirty.is_empty()).then(|| next_on_grid(self.born, now, FLUSH_EVERY));
            self.flush_due = [watermarks, self.touch_due].into_iter().flatten().min();
        }
        if self.retry_due.is_none() && (!self.undelivered.is_empty() || self.nudge.contains(&true)) {
            self.retry_due = Some(now + RETRY_AFTER);
        }
        if self.head_nudge_due.is_none() && self.cfg.cluster {
            let next = next_on_grid(self.born, now, FLUSH_EVERY);
            if self.nudging_head(next) {
                self.head_nudge_due = Some(next);
            }
        }
    }

    /// Nothing subscribed, queued, in flight or due but eviction (in a
    /// cluster every shard counts as subscribed, so subscriptions do not count).
    pub(super) fn is_quiet(&self) -> bool {
        (self.cfg.cluster || !self.subscribers.contains(&true))
            && self.pending.is_empty()
            && self.parked.is_empty()
            && self.inflight.is_empty()
            && self.store_op == super::StoreOp::Idle
            && self.typing.is_empty()
            && self.receipts.is_empty()
            && self.dirty.is_empty()
            && self.activity <= self.activity_stored
            && self.waiters.is_empty()
            && self.flushing.is_none()
            && self.undelivered.is_empty()
            && !self.nudge.contains(&true)
    }

    /// A membership write of a plan is durable: the owner's state follows it.
    pub fn handle_written(&mut self, now: Instant, write: Write) {
        match write {
            Write::PutMembers(recs) => {
                for rec in recs {
                    self.members.insert(Arc::from(rec.user_id.as_str()), rec);
                }
            }
            Write::RemoveMember(user) => {
                self.members.remove(&user);
                self.typing.remove(&user);
            }
            Write::UpdateConversation(rec) => self.rec = rec,
        }
        self.settle(now);
    }

    /// Every write of a plan is durable: tells what it says. `last_message`
    /// is the message at the head (for the summaries users get).
    pub fn handle_announce(&mut self, now: Instant, notices: Vec<Notice>, last_message: Option<&v1::Message>) {
        for n in notices {
            match n {
                Notice::Line { user, change, by, role } => self.membership_line(&user, change, &by, role),
                Notice::Tell { user, added } => self.tell_user(&user, added, last_message),
                Notice::Metadata => {
                    let users: Vec<Arc<str>> = self.members.keys().cloned().collect();
                    for user in users {
                        self.tell_user(&user, true, last_message);
                    }
                }
            }
        }
        self.settle(now);
    }

    /// The conversation as `user` sees it, given the message at the head.
    pub fn summary_for(&self, user: &str, last_message: Option<&v1::Message>) -> v1::ConversationSummary {
        let me = self.members.get(user);
        let mut s = summary::build(&self.rec, self.members.len(), self.committed, me, last_message.cloned());
        s.purged_through = self.purged_through;
        s
    }

    /// Pushes a membership change to the subscribers (members see who came and went).
    fn membership_line(&mut self, user: &str, change: MembershipChange, by: &str, role: MemberRole) {
        let ev = push::Event::Membership(v1::MembershipEvent {
            conversation_id: self.id(),
            user_id: user.to_string(),
            change: change as i32,
            by: by.to_string(),
            role: role as i32,
        });
        self.fanout(Fanout::Ephemeral { frame: frames::push(ev), datagram: None, skip_user: None });
    }

    /// Tells every shard that `user` was added to (or removed from) this
    /// conversation, or that its metadata changed.
    fn tell_user(&mut self, user: &Arc<str>, added: bool, last_message: Option<&v1::Message>) {
        let s = self.summary_for(user, last_message);
        let frame = frames::push(push::Event::Conversation(v1::ConversationEvent { summary: Some(s) }));
        let ev = if added {
            UserEvent::Added(self.id(), self.committed, frame)
        } else {
            UserEvent::Removed(self.id(), frame)
        };
        if self.cfg.cluster {
            self.effects.push_back(Effect::PublishUser(user.clone(), ev.clone()));
        }
        for shard in 0..self.cfg.shards {
            self.effects.push_back(Effect::ToShard(shard, ShardMsg::User(user.clone(), ev.clone())));
        }
    }
}
