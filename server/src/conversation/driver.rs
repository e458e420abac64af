//! The tokio task around a conversation's [`Owner`]: it loads the
//! conversation, feeds the owner its mailbox, the results of the store calls
//! it asked for and one timer (from [`Owner::poll_timeout`]), and performs
//! the effects it asks for: store calls, mailbox sends, cluster publishes and
//! answers on oneshot channels; each committed batch also goes to the node's
//! search indexer (after the commit, without waiting). Admin operations are planned by
//! [`membership`], written here and applied to the owner. It decides nothing
//! of its own: every rule is in the owner or in `membership`.

use super::membership::{self, Write};
use super::owner::{
    Effect, Handles, Notice, NoticeRules, Owner, OwnerConfig, RECENT_IDS, Reloaded, epoch_at_head, unavailable,
};
use super::summary;
use crate::ids::Caller;
use crate::ids::ConvId;
use crate::notify::hooks::HookEvent;
use crate::shard::MailboxFull;
use crate::shard::ShardCtx;
use crate::shard::{AdminOp, ConvMsg, Reply};
use crate::store::{Direction, MessageStore, Range, Store, StoreResult};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// Capacity of an owner's inbox.
const INBOX: usize = 4096;

/// The driver's reply handles: oneshot senders.
#[derive(Debug)]
pub struct Oneshots;

impl Handles for Oneshots {
    type Send = Reply<v1::SendMessageOk>;
    type Receipt = Reply<()>;
}

/// Spawns the owner of `conv` on this shard and returns its inbox.
pub fn spawn(ctx: Rc<ShardCtx>, conv: ConvId) -> mpsc::Sender<ConvMsg> {
    let (tx, rx) = mpsc::channel(INBOX);
    let me = tx.downgrade();
    tokio::task::spawn_local(async move {
        let store = ctx.shared.store.clone();
        let loaded = async {
            let Some(rec) = store.get_conversation(conv).await? else { return Ok(None) };
            let members = store.members(conv).await?;
            let head = head(&store, conv, rec.e2e).await?;
            Ok::<_, crate::store::StoreError>(Some((rec, members, head)))
        }
        .await;
        match loaded {
            Ok(Some((rec, members, head))) => {
                let owner = Owner::new(owner_config(&ctx), rec, members, head, now(), unix_ms_now());
                Driver { ctx: ctx.clone(), store, owner, io: None, flush: None, reads: FuturesUnordered::new() }
                    .run(rx, &me)
                    .await;
            }
            Ok(None) => {
                // The same answer as for a conversation the caller is not in.
                refuse_all(rx, summary::no_access(conv)).await
            }
            Err(e) => {
                tracing::error!(conv, error = %e, "cannot load conversation");
                refuse_all(rx, WireError::new(ErrorCode::Unavailable, "conversation temporarily unavailable")).await
            }
        }
        remove_own_entry(&ctx, conv, &me);
    });
    tx
}

/// What an owner of this shard knows of its surroundings.
fn owner_config(ctx: &ShardCtx) -> OwnerConfig {
    let cfg = &ctx.shared.cfg;
    let store = ctx.shared.store.clone();
    OwnerConfig {
        shards: ctx.shared.mesh.len(),
        cluster: ctx.shared.broker.is_some(),
        typing_timeout: Duration::from_millis(cfg.limits.typing_timeout_ms),
        receipts_max_members: cfg.session.receipts_max_members,
        max_members: cfg.limits.max_members,
        recent_ids: RECENT_IDS,
        run_limit: Rc::new(move |next| store.append_run_limit(next)),
        rules: (&cfg.messages).into(),
        notice: ctx.shared.notifier.as_ref().map(|_| NoticeRules {
            debounce: Duration::from_secs(cfg.notify.debounce_secs),
            max_members: cfg.notify.max_members,
            include_content: cfg.notify.include_content,
        }),
    }
}

/// The time on the runtime's clock.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn unix_ms_now() -> u64 {
    chat_protocol::unix_ms(SystemTime::now())
}

/// Forgets this owner in the shard's map, unless a successor already took its place.
fn remove_own_entry(ctx: &ShardCtx, conv: ConvId, me: &mpsc::WeakSender<ConvMsg>) {
    let mut actors = ctx.state.actors.borrow_mut();
    let mine = match (actors.get(&conv), me.upgrade()) {
        (Some(current), Some(me)) => current.same_channel(&me),
        _ => false,
    };
    if mine {
        actors.remove(&conv);
    }
}

/// Answers what is queued with `err`, then stops.
async fn refuse_all(mut rx: mpsc::Receiver<ConvMsg>, err: WireError) {
    rx.close();
    while let Some(m) = rx.recv().await {
        match m {
            ConvMsg::Send { reply, .. } => drop(reply.send(Err(err.clone()))),
            ConvMsg::Change { reply, .. } => drop(reply.send(Err(err.clone()))),
            ConvMsg::Attach { reply, .. } => drop(reply.send(Err(err.clone()))),
            ConvMsg::Admin { reply, .. } => drop(reply.send(Err(err.clone()))),
            ConvMsg::Members { reply, .. } => drop(reply.send(Err(err.clone()))),
            ConvMsg::Purged { reply, .. } => drop(reply.send(Err(err.clone()))),
            ConvMsg::Receipt { reply: Some(reply), .. } => drop(reply.send(Err(err.clone()))),
            _ => {}
        }
    }
}

/// The result of the owner's sequencing store call.
enum Io {
    Committed(StoreResult<()>),
    Reloaded(StoreResult<Reloaded>),
    Head(StoreResult<u64>),
}

type Pending<T> = Pin<Box<dyn Future<Output = T>>>;

struct Driver {
    ctx: Rc<ShardCtx>,
    store: Arc<Store>,
    owner: Owner<Oneshots>,
    /// The append or reload in flight (one at a time).
    io: Option<Pending<Io>>,
    /// The watermark flush in flight.
    flush: Option<Pending<StoreResult<()>>>,
    /// Reads of changes' targets in flight (bounded by the owner's parking).
    reads: FuturesUnordered<Pending<(u64, StoreResult<Option<v1::Message>>)>>,
}

impl Driver {
    async fn run(mut self, mut rx: mpsc::Receiver<ConvMsg>, me: &mpsc::WeakSender<ConvMsg>) {
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            let stop = self.perform();
            // No await between the emptiness check and leaving the map: the
            // mailbox runs on this thread, so nothing slips in between.
            if stop && rx.is_empty() && self.io.is_none() && self.flush.is_none() && self.reads.is_empty() {
                remove_own_entry(&self.ctx, self.owner.id(), me);
                return;
            }
            let deadline = self.owner.poll_timeout();
            if deadline != armed {
                if let Some(d) = deadline {
                    timer.as_mut().reset(tokio::time::Instant::from_std(d));
                }
                armed = deadline;
            }
            let (io, flush) = (&mut self.io, &mut self.flush);
            tokio::select! {
                res = async { io.as_mut().expect("guarded").await }, if io.is_some() => {
                    self.io = None;
                    self.finish_io(res);
                }
                res = async { flush.as_mut().expect("guarded").await }, if flush.is_some() => {
                    self.flush = None;
                    self.owner.handle_flushed(now(), res);
                }
                Some((seq, res)) = self.reads.next(), if !self.reads.is_empty() => self.read_done(seq, res),
                m = rx.recv() => match m {
                    Some(m) => self.handle(m).await,
                    None => break,
                },
                () = timer.as_mut(), if armed.is_some() => {
                    armed = None;
                    self.owner.handle_timeout(now());
                }
            }
        }
        // The shard is stopping: finish what the store is doing, so that
        // those waiting get their answer.
        while let Some(io) = self.io.take() {
            let res = io.await;
            self.finish_io(res);
            self.perform();
        }
        if let Some(flush) = self.flush.take() {
            let res = flush.await;
            self.owner.handle_flushed(now(), res);
            self.perform();
        }
        while let Some((seq, res)) = self.reads.next().await {
            self.read_done(seq, res);
            self.perform();
        }
    }

    fn read_done(&mut self, seq: u64, res: StoreResult<Option<v1::Message>>) {
        if let Err(e) = &res {
            tracing::warn!(conv = self.owner.id(), seq, error = %e, "cannot read the message to change");
        }
        let now = now();
        self.owner.handle_wall_clock(now, unix_ms_now());
        self.owner.handle_target(now, seq, res);
    }

    fn finish_io(&mut self, res: Io) {
        let now = now();
        self.owner.handle_wall_clock(now, unix_ms_now());
        match res {
            Io::Committed(r) => self.owner.handle_committed(now, r),
            Io::Reloaded(r) => self.owner.handle_reloaded(now, r),
            Io::Head(r) => self.owner.handle_head(now, r),
        }
    }

    /// Performs what the owner asks; true if it asked to stop.
    fn perform(&mut self) -> bool {
        let mut stop = false;
        let conv = self.owner.id();
        while let Some(effect) = self.owner.poll_effect() {
            match effect {
                Effect::Append(batch) => {
                    let store = self.store.clone();
                    let ctx = self.ctx.clone();
                    self.io = Some(Box::pin(async move {
                        // What to index is read before the batch moves into
                        // the store, and handed over only once it committed.
                        let entries = ctx.shared.search.as_ref().map(|_| crate::search::committed_of(&batch));
                        let r = store.append(batch).await;
                        if let (Ok(()), Some(search), Some(entries)) = (&r, &ctx.shared.search, entries) {
                            search.committed(entries);
                        }
                        Io::Committed(r)
                    }));
                }
                Effect::Reload => {
                    let store = self.store.clone();
                    let e2e = self.owner.is_e2e();
                    self.io = Some(Box::pin(async move {
                        let reloaded = async {
                            let (last, mls_epoch) = head(&store, conv, e2e).await?;
                            let members = store.members(conv).await?;
                            let rec = store.get_conversation(conv).await?;
                            Ok(Reloaded { last, members, rec, mls_epoch })
                        };
                        Io::Reloaded(reloaded.await)
                    }));
                }
                Effect::ReadHead => {
                    let store = self.store.clone();
                    self.io = Some(Box::pin(async move { Io::Head(store.last_seq(conv).await) }));
                }
                Effect::Flush { watermarks, touch } => {
                    let store = self.store.clone();
                    self.flush = Some(Box::pin(async move {
                        // Issued together, so the store's writer commits them in one fsync.
                        let writes = watermarks.iter().map(|(user, d, r)| store.advance_watermarks(conv, user, *d, *r));
                        let mut result = Ok(());
                        for r in futures_util::future::join_all(writes).await {
                            if let Err(e) = r {
                                tracing::warn!(conv, error = %e, "watermark not stored");
                                result = Err(e);
                            }
                        }
                        if let Some(at) = touch
                            && let Err(e) = store.touch_conversation(conv, at).await
                        {
                            tracing::warn!(conv, error = %e, "activity not stored");
                            result = Err(e);
                        }
                        result
                    }));
                }
                Effect::ReadTarget(seq) => {
                    let store = self.store.clone();
                    self.reads.push(Box::pin(async move { (seq, read_message(&store, conv, seq).await) }));
                }
                Effect::Sent(reply, res) => drop(reply.send(res)),
                Effect::Receipted(reply, res) => drop(reply.send(res)),
                Effect::ToShard(shard, msg) => {
                    if let Err(MailboxFull(msg)) = self.ctx.shared.mesh.try_send(shard, msg) {
                        self.owner.handle_refused(now(), shard, msg);
                    }
                }
                Effect::Publish(f) => {
                    if let Some(c) = &self.ctx.shared.broker {
                        c.publish_fanout(conv, &f);
                    }
                }
                Effect::PublishUser(user, ev) => {
                    if let Some(c) = &self.ctx.shared.broker {
                        c.publish_user_event(&user, &ev);
                    }
                }
                Effect::Accepted(user) => show_presence(&self.ctx, conv, user),
                Effect::Notify(notice) => notify_offline(&self.ctx, *notice),
                Effect::Hook(msg) => self.ctx.shared.hooks.emit(HookEvent::posted(&msg)),
                Effect::Stop => stop = true,
            }
        }
        stop
    }

    async fn handle(&mut self, m: ConvMsg) {
        let now = now();
        match m {
            ConvMsg::Send { caller, origin, msg, attachments, reply } => {
                self.owner.handle_wall_clock(now, unix_ms_now());
                self.owner.handle_send(now, caller, origin, *msg, attachments, reply);
            }
            ConvMsg::Change { caller, origin, change, reply } => {
                self.owner.handle_wall_clock(now, unix_ms_now());
                self.owner.handle_change(now, caller.user, origin, *change, reply);
            }
            ConvMsg::Attach { shard, user, reply } => drop(reply.send(self.owner.handle_attach(now, shard, &user))),
            ConvMsg::Detach { shard } => self.owner.handle_detach(now, shard),
            ConvMsg::Typing { user, typing } => self.owner.handle_typing(now, user, typing),
            ConvMsg::Receipt { user, kind, seq, reply } => self.owner.handle_receipt(now, user, kind, seq, reply),
            ConvMsg::Presence { user, online, version } => self.owner.handle_presence(now, user, online, version),
            ConvMsg::Admin { caller, op, reply } => {
                // A flush's activity touch moves the members' lists: never
                // at once with a membership write (the store relies on it).
                if let Some(flush) = self.flush.take() {
                    let res = flush.await;
                    self.owner.handle_flushed(tokio::time::Instant::now().into_std(), res);
                }
                let res = self.admin(&caller, op).await;
                // What the change tells others goes out before the caller hears back.
                let _ = self.perform();
                let _ = reply.send(res);
            }
            ConvMsg::Members { caller, reply } => drop(reply.send(self.members(&caller).await)),
            ConvMsg::Purged { through, done, reply } => {
                self.owner.handle_purged(through);
                if done {
                    let last = summary::last_message(&self.store, self.owner.id(), self.owner.committed()).await;
                    self.owner.handle_announce(now, vec![membership::Notice::Metadata], last.as_ref());
                    let _ = self.perform();
                }
                drop(reply.send(Ok(())));
            }
        }
    }

    /// Plans an admin operation, performs its writes (applying each to the
    /// owner once durable), has the owner announce it, and answers with the
    /// conversation as the caller now sees it.
    async fn admin(&mut self, caller: &Caller, op: AdminOp) -> Result<v1::ConversationSummary, WireError> {
        let plan = membership::plan(&self.owner.roster(), caller, op, unix_ms_now())?;
        for write in plan.writes {
            self.write(&write).await.map_err(|e| {
                tracing::error!(error = %e, "membership write failed");
                unavailable()
            })?;
            self.owner.handle_written(now(), write);
        }
        let last = summary::last_message(&self.store, self.owner.id(), self.owner.committed()).await;
        self.owner.handle_announce(now(), plan.notices, last.as_ref());
        Ok(self.owner.summary_for(&caller.user, last.as_ref()))
    }

    async fn write(&self, write: &Write) -> StoreResult<()> {
        match write {
            Write::PutMembers(recs) => {
                // All written at once: the store's writer commits them in one fsync.
                let writes = recs.iter().map(|r| self.store.put_member(r));
                futures_util::future::join_all(writes).await.into_iter().collect()
            }
            Write::RemoveMember(user) => self.store.remove_member(self.owner.id(), user).await,
            Write::UpdateConversation(rec) => self.store.update_conversation(rec).await,
        }
    }

    /// The members with their names and watermarks, for a member (or staff on a support conversation).
    async fn members(&self, caller: &Caller) -> Result<Vec<v1::Member>, WireError> {
        let roster = self.owner.roster();
        membership::may_list_members(&roster, caller)?;
        let ids: Vec<String> = roster.members.keys().map(|u| u.to_string()).collect();
        let users = self.store.get_users(&ids).await.unwrap_or_default();
        Ok(membership::member_list(&self.owner.roster(), users, &caller.user))
    }
}

/// The highest stored seq and, in an E2E conversation, the group's epoch
/// after it (read from the head message's stamp).
async fn head(store: &Store, conv: ConvId, e2e: bool) -> StoreResult<(u64, Option<u64>)> {
    let last = store.last_seq(conv).await?;
    let message = if e2e && last > 0 { read_message(store, conv, last).await? } else { None };
    Ok((last, epoch_at_head(e2e, last, message.as_ref())))
}

/// The stored message at `seq` (None: none there).
async fn read_message(store: &Store, conv: ConvId, seq: u64) -> StoreResult<Option<v1::Message>> {
    use prost::Message as _;
    let range = Range { after: seq - 1, before: seq + 1, limit: 1, direction: Direction::Forward };
    let rows = store.read_range(conv, range).await?;
    match rows.into_iter().next() {
        Some((_, bytes)) => v1::Message::decode(bytes)
            .map(Some)
            .map_err(|e| crate::store::StoreError::Corrupt { table: "messages", detail: e.to_string() }),
        None => Ok(None),
    }
}

/// A member just accepted this private conversation: the others see whether
/// they are online now (their later changes reach this conversation anyway).
fn show_presence(ctx: &Rc<ShardCtx>, conv: ConvId, user: Arc<str>) {
    let ctx = ctx.clone();
    tokio::task::spawn_local(async move {
        for (user, devices, version) in crate::presence::query(&ctx, vec![user]).await {
            if devices > 0 {
                let _ = ctx.shared.mesh.to_owner(conv, ConvMsg::Presence { user, online: true, version }).await;
            }
        }
    });
}

/// Notice lookups (presence, the sender's name) in flight on this shard at
/// most; beyond, notices are dropped and counted.
const NOTICE_LOOKUPS: usize = 256;

thread_local! {
    static LOOKUPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Queues a webhook notification for each recipient of `notice` with no
/// connected device (presence is asked at their home shards).
fn notify_offline(ctx: &Rc<ShardCtx>, notice: Notice) {
    let Some(notifier) = ctx.shared.notifier.clone() else { return };
    if LOOKUPS.get() >= NOTICE_LOOKUPS {
        ctx.shared.metrics.notify.dropped.increment(notice.recipients.len() as u64);
        return;
    }
    LOOKUPS.set(LOOKUPS.get() + 1);
    let ctx = ctx.clone();
    tokio::task::spawn_local(async move {
        let users = notice.recipients.iter().map(|(u, _)| u.clone()).collect();
        let online: std::collections::HashSet<Arc<str>> = crate::presence::query(&ctx, users)
            .await
            .into_iter()
            .filter(|(_, devices, _)| *devices > 0)
            .map(|(u, _, _)| u)
            .collect();
        if notice.recipients.iter().any(|(u, _)| !online.contains(u)) {
            let sender = ctx.shared.store.get_users(&[notice.sender.to_string()]).await.ok();
            let sender_name = sender.and_then(|s| s.into_iter().next()).map(|u| u.display_name).unwrap_or_default();
            for (user, unread) in notice.recipients.iter().filter(|(u, _)| !online.contains(u)) {
                notifier.enqueue(crate::notify::Job {
                    event: "message",
                    recipient_id: user.to_string(),
                    conversation_id: notice.conversation_id,
                    seq: notice.seq,
                    sender_id: notice.sender.to_string(),
                    sender_name: sender_name.clone(),
                    sent_at_ms: notice.sent_at_ms,
                    unread: *unread,
                    text: notice.text.clone(),
                });
            }
        }
        LOOKUPS.set(LOOKUPS.get() - 1);
    });
}
