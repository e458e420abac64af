//! A session's outbound task: its inbox (fan-outs of subscribed
//! conversations, events for its user) to the events stream, in order and
//! exactly once per seq, filling any gap from the store; after drops it
//! reconciles membership with the store. A write that waits past the write
//! timeout closes the connection as a slow consumer.

use super::state::Session;
use crate::command::conversations;
use crate::frames;
use crate::ids::{ConvId, Frame};
use crate::metrics::Refusal;
use crate::presence;
use crate::shard::sessions::SessionMsg;
use crate::shard::{Fanout, UserEvent};
use crate::store::{Direction, MessageStore, Range};
use crate::transport::SendStream;
use bytes::Bytes;
use chat_protocol::v1::{self, ErrorCode, push};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Messages read from the store per page when filling a gap.
const FILL_PAGE: usize = 256;
/// Cluster: how often a session looks whether remote user events may have
/// been lost (an atomic load; see `Broker::reconcile_epoch`).
const RECONCILE_CHECK: Duration = Duration::from_secs(1);
/// Cluster: a session reconciles its conversations with the store every this
/// many checks anyway (staggered), so a lost "removed" is bounded in time.
const RECONCILE_EVERY: u32 = 5;

/// The outbound half: the session's inbox to the events stream.
pub(super) struct Outbound {
    s: Rc<Session>,
    events: SendStream,
    /// Last seq written per attached conversation.
    sent: HashMap<ConvId, u64>,
    presence_seen: HashMap<Arc<str>, u64>,
}

impl Outbound {
    /// The outbound task of `s`, starting each conversation at `sent`.
    pub(super) fn new(s: Rc<Session>, events: SendStream, sent: HashMap<ConvId, u64>) -> Self {
        Self { s, events, sent, presence_seen: HashMap::new() }
    }

    pub(super) async fn run(
        mut self,
        mut inbox: mpsc::Receiver<SessionMsg>,
        initial: Vec<ConvId>,
        resync: bool,
        resume: bool,
    ) {
        if let Err(e) = self.run_inner(&mut inbox, initial, resync, resume).await {
            tracing::debug!(session = self.s.handle.id, error = %e, "outbound ended");
            self.s.conn.close(ErrorCode::SlowConsumer as u32, "outbound stream failed");
        }
    }

    /// Writes one frame (a shared buffer: no copy).
    async fn write(&mut self, frame: &Frame) -> anyhow::Result<()> {
        self.write_chunks(&mut [frame.clone()]).await
    }

    /// Writes frames in order, closing the connection as a slow consumer if
    /// the peer does not take them within the write timeout.
    async fn write_chunks(&mut self, chunks: &mut [Bytes]) -> anyhow::Result<()> {
        let t = Duration::from_millis(self.s.ctx().shared.cfg.session.write_timeout_ms);
        match tokio::time::timeout(t, self.events.write_chunks(chunks)).await {
            Ok(r) => Ok(r?),
            Err(_) => {
                self.s.ctx().shared.metrics.refused(Refusal::SlowConsumer);
                anyhow::bail!("slow consumer: a write waited {t:?}")
            }
        }
    }

    async fn run_inner(
        &mut self,
        inbox: &mut mpsc::Receiver<SessionMsg>,
        initial: Vec<ConvId>,
        resync: bool,
        resume: bool,
    ) -> anyhow::Result<()> {
        if resync {
            let ev = push::Event::Resync(v1::ResyncRequired {
                reason: "cursors belong to another store epoch".into(),
                epoch: self.s.store().epoch().to_string(),
            });
            self.write(&frames::push(ev)).await?;
        }
        // Resume: replay each gap up to the head seen at attach; what came
        // after is in the inbox or will be filled on the next message.
        for conv in initial {
            let head = self.s.store().last_seq(conv).await?;
            self.fill(conv, head).await?;
        }
        if resume {
            self.write(&frames::push(push::Event::CaughtUp(v1::CaughtUp {}))).await?;
        }
        self.send_presence_snapshot().await?;
        let cluster = self.s.ctx().shared.broker.clone();
        let mut seen_epoch = cluster.as_ref().map_or(0, |c| c.reconcile_epoch());
        let mut check = tokio::time::interval_at(tokio::time::Instant::now() + RECONCILE_CHECK, RECONCILE_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Staggered: sessions that started together do not all read the store together.
        let mut countdown = rand::random::<u32>() % RECONCILE_EVERY + 1;
        loop {
            tokio::select! {
                m = inbox.recv() => match m {
                    Some(m) => self.handle(m).await?,
                    None => return Ok(()),
                },
                _ = self.s.handle.wake.notified() => {}
                _ = check.tick(), if cluster.is_some() => {
                    let epoch = cluster.as_ref().map_or(0, |c| c.reconcile_epoch());
                    countdown = countdown.saturating_sub(1);
                    if epoch != seen_epoch {
                        // Remote events may have been lost: membership and
                        // messages both, so reconcile and fill everything.
                        seen_epoch = epoch;
                        self.s.handle.lagged.borrow_mut().extend(self.sent.keys().copied());
                        self.s.handle.lost_user_event.set(true);
                        countdown = RECONCILE_EVERY;
                    } else if countdown == 0 {
                        self.s.handle.lost_user_event.set(true);
                        countdown = RECONCILE_EVERY;
                    }
                }
            }
            self.recover().await?;
        }
    }

    /// After drops: fill lagged conversations from the store, reload the conversation list.
    async fn recover(&mut self) -> anyhow::Result<()> {
        // Membership first: nothing is filled for a conversation the user left.
        if self.s.handle.lost_user_event.replace(false) {
            // A membership event was dropped: reconcile with the store both
            // ways, so a removed member stops receiving and an added one starts.
            let convs: HashSet<ConvId> =
                self.s.store().user_conversations(&self.s.handle.user).await?.into_iter().collect();
            let gone: Vec<ConvId> = self.sent.keys().copied().filter(|c| !convs.contains(c)).collect();
            for conv in gone {
                self.revoke(conv);
            }
            for conv in convs {
                if !self.sent.contains_key(&conv)
                    && let Some(head) = self.s.attach(conv).await
                {
                    // Its members are contacts before the client hears of it
                    // (it may ask who is online at once).
                    self.refresh_contacts(conv).await;
                    // Tell the client first, so it knows the conversation starts at `head`.
                    self.s.handle.revoked.borrow_mut().remove(&conv);
                    if let Ok((rec, me)) = conversations::readable(&self.s.req, conv).await {
                        let sum = conversations::summary_of(&self.s.req, &rec, me.as_ref(), Some(head)).await?;
                        self.write(&frames::push(push::Event::Conversation(v1::ConversationEvent {
                            summary: Some(sum),
                        })))
                        .await?;
                    }
                    self.sent.insert(conv, head);
                }
            }
        }
        let lagged: Vec<ConvId> = self.s.handle.lagged.borrow_mut().drain().collect();
        for conv in lagged {
            let head = self.s.store().last_seq(conv).await?;
            self.fill(conv, head).await?;
        }
        Ok(())
    }

    /// The user is no longer a member (its event lost): nothing more of `conv` is written.
    fn revoke(&mut self, conv: ConvId) {
        self.sent.remove(&conv);
        self.s.handle.revoked.borrow_mut().insert(conv);
        self.s.detach(conv);
    }

    async fn handle(&mut self, m: SessionMsg) -> anyhow::Result<()> {
        match m {
            SessionMsg::Fanout(conv, _) if self.s.handle.revoked.borrow().contains(&conv) => {}
            SessionMsg::Fanout(conv, Fanout::Messages(list)) => {
                for p in list.iter() {
                    let Some(&sent) = self.sent.get(&conv) else { return Ok(()) };
                    if p.seq <= sent {
                        continue;
                    }
                    if p.seq > sent.saturating_add(1) {
                        self.fill(conv, p.seq - 1).await?;
                        // Removed meanwhile, or the store does not have the gap
                        // (a bogus fan-out): the next nudge fills what is stored.
                        match self.sent.get(&conv) {
                            Some(&now) if now.saturating_add(1) >= p.seq => {}
                            _ => return Ok(()),
                        }
                    }
                    // The sender's own connection has the message already: its
                    // ack carries the seq and time, and the SDK places it.
                    if p.origin != self.s.handle.id {
                        self.write(&p.frame).await?;
                        let m = &self.s.ctx().shared.metrics;
                        m.deliveries.increment(1);
                        m.delivery_seconds
                            .record(std::time::Instant::now().saturating_duration_since(p.committed).as_secs_f64());
                    }
                    self.sent.insert(conv, p.seq);
                }
            }
            SessionMsg::Fanout(conv, Fanout::Nudge { head }) => self.fill(conv, head).await?,
            SessionMsg::Fanout(_, Fanout::Ephemeral { frame, datagram, skip_user }) => {
                if skip_user.as_deref() == Some(&*self.s.handle.user) {
                    return Ok(());
                }
                if let Some(d) = datagram
                    && self.s.conn.send_datagram(d)
                {
                    return Ok(());
                }
                self.write(&frame).await?;
            }
            SessionMsg::Fanout(_, Fanout::Presence { user, online, version }) => {
                self.presence(user, online, version).await?
            }
            SessionMsg::User(UserEvent::Added(conv, since, frame)) => {
                if !self.sent.contains_key(&conv) {
                    if self.s.attach(conv).await.is_none() {
                        return Ok(());
                    }
                    // Its members are contacts before the client hears of it.
                    self.refresh_contacts(conv).await;
                    // The event first: the client learns the conversation starts after `since`.
                    self.write(&frame).await?;
                    self.sent.insert(conv, since);
                    let head = self.s.store().last_seq(conv).await?;
                    self.fill(conv, head).await?;
                    return Ok(());
                }
                self.write(&frame).await?;
            }
            SessionMsg::User(UserEvent::Removed(conv, frame)) => {
                self.sent.remove(&conv);
                self.s.detach(conv);
                // Presence is only for people still shared.
                self.s.contacts.borrow_mut().clear();
                for c in self.sent.keys().copied().collect::<Vec<_>>() {
                    self.refresh_contacts(c).await;
                }
                self.write(&frame).await?;
            }
            SessionMsg::Goodbye(frame) => self.write(&frame).await?,
            // Taken by the shard's mailbox (`SessionHandle::close`), never queued.
            SessionMsg::User(UserEvent::Close(..)) => {}
        }
        Ok(())
    }

    /// Writes every stored message of `conv` after `sent` up to `upto`
    /// (fewer if the store has fewer: the next nudge or message fills the
    /// rest). In a cluster, membership is checked first: a removal whose event
    /// was lost on the way here must not leave the conversation readable.
    async fn fill(&mut self, conv: ConvId, upto: u64) -> anyhow::Result<()> {
        let mut checked = self.s.ctx().shared.broker.is_none();
        loop {
            if self.s.handle.revoked.borrow().contains(&conv) {
                return Ok(());
            }
            let Some(&sent) = self.sent.get(&conv) else { return Ok(()) };
            if sent >= upto {
                return Ok(());
            }
            if !checked {
                checked = true;
                if self.s.store().member(conv, &self.s.handle.user).await?.is_none() {
                    tracing::debug!(session = self.s.handle.id, conv, "no longer a member: detached");
                    self.revoke(conv);
                    return Ok(());
                }
            }
            let before = upto.saturating_add(1);
            let range = Range { after: sent, before, limit: FILL_PAGE, direction: Direction::Forward };
            let rows = self.s.store().read_range(conv, range).await?;
            let Some(&(last, _)) = rows.last() else {
                tracing::debug!(conv, sent, upto, "nothing stored up to the announced head; waiting for the next");
                return Ok(());
            };
            let mut chunks: Vec<Bytes> = rows.iter().map(|(_, b)| frames::message_push(b)).collect();
            self.write_chunks(&mut chunks).await?;
            self.s.ctx().shared.metrics.deliveries.increment(chunks.len() as u64);
            self.sent.insert(conv, last);
        }
    }

    async fn presence(&mut self, user: Arc<str>, online: bool, version: u64) -> anyhow::Result<()> {
        if user == self.s.handle.user {
            return Ok(());
        }
        let seen = self.presence_seen.entry(user.clone()).or_insert(0);
        if version <= *seen {
            return Ok(());
        }
        *seen = version;
        // Presence comes only through conversations its user accepted: from
        // now on this session may ask about them too.
        self.s.contacts.borrow_mut().insert(user.clone());
        let ev = push::Event::Presence(v1::PresenceEvent { user_id: user.to_string(), online, devices: 0 });
        self.write(&frames::push(ev)).await
    }

    /// Adds the members of `conv` whose presence this user may see (those
    /// who accepted it, see [`presence::accepted`]).
    async fn refresh_contacts(&mut self, conv: ConvId) {
        let visible = presence::visible_members(self.s.store(), conv).await;
        self.s.contacts.borrow_mut().extend(visible);
    }

    /// Pushes who is online among the contacts, once after the handshake.
    async fn send_presence_snapshot(&mut self) -> anyhow::Result<()> {
        let convs: Vec<ConvId> = self.sent.keys().copied().collect();
        for conv in convs {
            self.refresh_contacts(conv).await;
        }
        let contacts: Vec<Arc<str>> =
            self.s.contacts.borrow().iter().filter(|u| **u != self.s.handle.user).cloned().collect();
        for (user, devices, version) in presence::query(self.s.ctx(), contacts).await {
            if devices > 0 {
                self.presence(user, true, version).await?;
            }
        }
        Ok(())
    }
}
