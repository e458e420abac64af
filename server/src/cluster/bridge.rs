//! The bridge: one thread with its own small tokio runtime that holds this
//! node's Redis clients. It joins the cluster, then serves one loop: what
//! shards ask of it (publish, forward, reply, presence, the conversations
//! their sessions need), what other nodes
//! publish (handed to the shards' mailboxes, never waiting on one), the
//! heartbeat, a subscriber that reconnected, and the stop signal; a graceful
//! stop leaves the cluster. What the steps do is in [`super::live`],
//! [`super::forward`], [`super::presence`], [`super::register`] and
//! [`super::search`]; what the bytes mean is in [`super::wire`] and
//! [`super::search_wire`].

use super::connect;
use super::interest::{Needs, Wanted};
use super::keys::{ClusterError, FANOUT_CHANNEL, NODES_KEY, PRESENCE_CHANNEL, node_channel, node_id_key};
use super::pending::Pending;
use super::pending::{NodeAnswer, Waits};
use super::rate::{RATE_FLUSH, Rates};
use super::seal::{self, Seal};
use super::wire;
use crate::config::ClusterConfig;
use crate::ids::{ConvId, LiveSet, NodeId};
use crate::search::{IndexQuery, SearchIndex};
use crate::shard::broker::{CountsByNode, RateKey};
use crate::shard::{Fanout, Mesh, ShardMsg};
use bytes::Bytes;
use chat_protocol::cluster::v1::envelope::Body;
use chat_protocol::cluster::v1::{Forward, RemoteFanout, RemoteUserEvent};
use chat_protocol::v1::reply;
use fred::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::{mpsc, oneshot, watch};

/// Pub/sub messages the subscriber buffers before the bridge reads them
/// (fred's default is 32). Past it the bridge lags: every session reconciles.
const SUBSCRIBER_BUFFER: usize = 16 * 1024;
/// Most (shard, conversation) fan-outs kept for a retry after a full mailbox;
/// past it every session reconciles instead.
const MAX_TO_NUDGE: usize = 4096;
/// Pause before taking a fresh stream from a client that replaced its own
/// (so a closed one is never read in a tight loop).
const RENEW_PAUSE: Duration = Duration::from_millis(10);
/// Most commands the bridge takes at once before sending the wants they
/// gathered (one registration per owner for all of them).
const COMMAND_BATCH: usize = 256;

/// What shards ask of the bridge.
pub(super) enum BridgeCmd {
    /// Publish `payload` (an envelope) on `channel`.
    Publish { channel: &'static str, payload: Bytes },
    /// Publish `payload` (an envelope: a fan-out of `conv`, owned here) where it is needed.
    Fanout { conv: ConvId, payload: Bytes },
    /// `shard` has a session subscribed to `conv`; answer `ready` once this
    /// node gets the conversation's fan-outs.
    Want { conv: ConvId, shard: usize, ready: oneshot::Sender<()> },
    /// `shard` has no session of `conv` left.
    Release { conv: ConvId, shard: usize },
    /// Send `fwd` to `owner`, with the answer to `reply` if one is wanted.
    Forward { owner: NodeId, fwd: Forward, reply: Option<oneshot::Sender<reply::Result>> },
    /// Answer a forwarded request (`payload`: the encoded reply envelope).
    Reply { to: NodeId, payload: Bytes },
    /// The user's device count on this node is now `count`.
    Presence { user: Arc<str>, count: u32 },
    /// Devices of `users` on each other live node.
    QueryPresence { users: Vec<Arc<str>>, reply: oneshot::Sender<CountsByNode> },
    /// One action of `key` in `window`, for the cluster-wide count.
    RateAdd { key: RateKey, window: u64 },
    /// Send `query` to every other live node; `reply` gets what to wait for.
    Search { query: Box<IndexQuery>, reply: oneshot::Sender<Waits> },
}

/// The bridge's two queues: presence apart, so publishes never crowd it out.
pub(super) struct Inbox {
    /// Everything but presence counts.
    pub commands: mpsc::Receiver<BridgeCmd>,
    /// Presence counts.
    pub presence: mpsc::Receiver<BridgeCmd>,
}

/// How the bridge is asked to stop, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// Keep running.
    Run,
    /// Leave the cluster (live set, node-id claim, presence keys), then stop.
    Graceful,
    /// Stop at once, as a crash would.
    Kill,
}

/// The bridge's state, on its own thread.
pub(super) struct Bridge {
    pub(super) cfg: ClusterConfig,
    pub(super) node_id: NodeId,
    pub(super) mesh: Mesh,
    /// Forwarded requests waiting for their answer.
    pub(super) pending: Pending,
    /// Searches sent to other nodes waiting for their answer.
    pub(super) searches: Pending<NodeAnswer>,
    /// Other nodes' searches running on this node's index now.
    pub(super) searches_running: Cell<usize>,
    /// This node's search index (None: search is off here).
    pub(super) search_index: Option<Arc<dyn SearchIndex>>,
    /// Device counts of this node's users (non-zero only).
    pub(super) local_presence: RefCell<HashMap<Arc<str>, u32>>,
    pub(super) live: RefCell<LiveSet>,
    pub(super) heartbeat_running: Cell<bool>,
    /// Random per start: the value of this node's claim on its id.
    pub(super) incarnation: String,
    /// The live set each shard was last handed (None: not yet): a full
    /// mailbox gets it at the next beat, the heartbeat never waits on a shard.
    pub(super) live_sent: RefCell<Vec<Option<LiveSet>>>,
    /// Stored fan-outs a full mailbox refused, per (shard, conversation): the
    /// head to nudge there at the next beat.
    to_nudge: RefCell<HashMap<(usize, ConvId), u64>>,
    /// See [`crate::shard::broker::Broker::reconcile_epoch`].
    reconcile: Arc<AtomicU64>,
    /// Publish every local count again at the next beat (requests coalesce).
    pub(super) republish_due: Cell<bool>,
    /// Seals what this node publishes and opens what it receives.
    pub(super) seal: Arc<Seal>,
    /// What the bridge counts for the metrics and health.
    pub(super) counters: Arc<Counters>,
    /// Rate counts on their way to Redis.
    pub(super) rates: RefCell<Rates>,
    /// Counts dropped (bridge or pending set full).
    dropped: Arc<AtomicU64>,
    /// The conversations this node's shards need (see `interest.rs`).
    pub(super) needs: RefCell<Needs>,
    /// As an owner: which nodes need which conversations.
    pub(super) wanted: RefCell<Wanted>,
    /// Registrations gathered and not yet sent, per owner.
    pub(super) wants: RefCell<HashMap<NodeId, Batch>>,
    /// Send whole lists of needs at the next beat.
    pub(super) lists_due: Cell<bool>,
    /// When whole lists last went (again every `LIST_EVERY`).
    pub(super) lists_sent: Cell<std::time::Instant>,
}

/// What the bridge counts, read by [`super::Cluster`] for the metrics and health.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Messages dropped because they were not sealed with the cluster secret.
    pub(super) rejected: AtomicU64,
    /// Fan-outs received from other nodes.
    pub(super) fanouts_received: AtomicU64,
    /// When (unix ms) the last heartbeat succeeded.
    pub(super) last_beat_ms: AtomicU64,
}

/// Registrations with one owner not yet sent: the conversations, and who
/// waits for the owner's answer (see `register.rs`).
#[derive(Default)]
pub(super) struct Batch {
    pub(super) convs: Vec<ConvId>,
    pub(super) waiting: Vec<oneshot::Sender<()>>,
}

/// The Redis clients of a joined bridge.
struct Links {
    /// Commands and publishes.
    client: Client,
    /// Subscribed to `channels`.
    sub: Client,
    channels: Vec<String>,
}

/// Says once whether the bridge joined the cluster.
pub(super) type Ready = std::sync::mpsc::Receiver<Result<(), ClusterError>>;

/// What the subscriber hears: messages, and its reconnections.
struct Streams {
    messages: broadcast::Receiver<fred::types::Message>,
    reconnects: broadcast::Receiver<fred::types::config::Server>,
}

fn build_client(cfg: &ClusterConfig, buffer: usize) -> Result<Client, ClusterError> {
    let url = &cfg.redis_url;
    Builder::from_config(connect::redis_config(cfg)?)
        .with_performance_config(|p| {
            p.default_command_timeout = Duration::from_secs(2);
            p.broadcast_channel_capacity = buffer;
        })
        .with_connection_config(|c| c.connection_timeout = Duration::from_secs(2))
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 1_000, 2))
        .build()
        .map_err(|e| ClusterError::redis(url, e))
}

/// Publishes without waiting; the order of calls is the order on the wire
/// (one connection, tasks first polled in spawn order).
pub(super) fn publish(client: &Client, channel: String, payload: Bytes) {
    let client = client.clone();
    tokio::task::spawn_local(async move {
        let r: Result<(), Error> = client.publish(channel, payload).await;
        if let Err(e) = r {
            tracing::debug!(error = %e, "publish failed (receivers fill from the store)");
        }
    });
}

impl Bridge {
    /// A bridge for node `node_id`, not started.
    pub(super) fn new(
        cfg: ClusterConfig,
        node_id: NodeId,
        mesh: Mesh,
        reconcile: Arc<AtomicU64>,
        counters: Arc<Counters>,
        rates: Rates,
        dropped: Arc<AtomicU64>,
    ) -> Self {
        Self {
            rates: RefCell::new(rates),
            dropped,
            seal: Arc::new(Seal::new(cfg.secret.as_bytes())),
            counters,
            needs: RefCell::new(Needs::default()),
            wanted: RefCell::new(Wanted::new(node_id.clone())),
            wants: RefCell::new(HashMap::new()),
            lists_due: Cell::new(false),
            lists_sent: Cell::new(std::time::Instant::now()),
            cfg,
            node_id,
            incarnation: format!("{:016x}", rand::random::<u64>()),
            live_sent: RefCell::new(vec![None; mesh.len()]),
            to_nudge: RefCell::new(HashMap::new()),
            reconcile,
            republish_due: Cell::new(false),
            mesh,
            pending: Pending::new(),
            searches: Pending::new(),
            searches_running: Cell::new(0),
            search_index: None,
            local_presence: RefCell::new(HashMap::new()),
            live: RefCell::new(Arc::from(Vec::new())),
            heartbeat_running: Cell::new(false),
        }
    }

    /// The same bridge, answering other nodes' searches from `index`.
    pub(super) fn with_search(mut self, index: Option<Arc<dyn SearchIndex>>) -> Self {
        self.search_index = index;
        self
    }

    /// A bridge named "me" with the default config, for unit tests.
    #[cfg(test)]
    pub(super) fn for_tests(mesh: Mesh) -> Self {
        let counter = || Arc::new(AtomicU64::new(0));
        let conns = Arc::new(std::sync::Mutex::new(crate::shard::window::ClusterWindows::new(5)));
        Self::new(
            ClusterConfig::default(),
            Arc::from("me"),
            mesh,
            counter(),
            Arc::default(),
            Rates::new(&crate::config::LimitsConfig { connections_per_minute_per_ip: 5, ..Default::default() }, conns),
            counter(),
        )
    }

    /// Redis failed with `e` while joining: said with its likely cause.
    pub(super) fn redis_error(&self, e: impl std::fmt::Display) -> ClusterError {
        ClusterError::redis(&self.cfg.redis_url, connect::explain(&self.cfg, &e.to_string()))
    }

    /// `envelope`, sealed now with the cluster secret.
    pub(super) fn sealed(&self, envelope: &[u8]) -> Bytes {
        self.seal.seal(envelope, seal::now_ms())
    }

    /// Starts the bridge's thread. The receiver says once whether it joined.
    pub(super) fn spawn(
        self,
        inbox: Inbox,
        stop: watch::Receiver<Stop>,
    ) -> Result<(std::thread::JoinHandle<()>, Ready), ClusterError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("cluster-bridge".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(ClusterError::Thread(e.to_string())));
                        return;
                    }
                };
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, self.run(inbox, stop, ready_tx));
            })
            .map_err(|e| ClusterError::Thread(e.to_string()))?;
        Ok((thread, ready_rx))
    }

    /// Joins, says so on `ready`, serves until told to stop, leaves if graceful.
    async fn run(
        self,
        inbox: Inbox,
        stop: watch::Receiver<Stop>,
        ready: std::sync::mpsc::Sender<Result<(), ClusterError>>,
    ) {
        let me = Rc::new(self);
        let (links, streams) = match me.join().await {
            Ok(joined) => joined,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let how = me.serve(&links, streams, inbox, stop).await;
        if how == Stop::Graceful {
            me.leave(&links).await;
        }
        tracing::debug!(node = %me.node_id, ?how, "cluster bridge stopped");
    }

    /// Connects both clients, subscribes, claims the node id, runs the first
    /// heartbeat and tells the others.
    async fn join(&self) -> Result<(Links, Streams), ClusterError> {
        let client = build_client(&self.cfg, 32)?;
        let sub = build_client(&self.cfg, SUBSCRIBER_BUFFER)?;
        client.init().await.map_err(|e| self.redis_error(e))?;
        sub.init().await.map_err(|e| self.redis_error(e))?;
        let channels = vec![FANOUT_CHANNEL.to_string(), PRESENCE_CHANNEL.to_string(), node_channel(&self.node_id)];
        // Taken before subscribing: nothing published after it is missed.
        let streams = Streams { messages: sub.message_rx(), reconnects: sub.reconnect_rx() };
        sub.subscribe(channels.clone()).await.map_err(|e| self.redis_error(e))?;
        self.claim_node_id(&client).await?;
        self.heartbeat(&client).await.map_err(|e| self.redis_error(e))?;
        // Tell the others now rather than at their next heartbeat: until every
        // node sees the same live set, two of them may both own a conversation
        // (safe, fenced by the store, but every send then costs a retry).
        publish(&client, FANOUT_CHANNEL.to_string(), self.sealed(&wire::membership_notice(&self.node_id, false)));
        Ok((Links { client, sub, channels }, streams))
    }

    /// The loop: serves shards, other nodes and the heartbeat until told to
    /// stop (or every `Cluster` handle is gone: graceful).
    async fn serve(
        self: &Rc<Self>,
        links: &Links,
        mut streams: Streams,
        mut inbox: Inbox,
        mut stop: watch::Receiver<Stop>,
    ) -> Stop {
        let client = &links.client;
        let mut hb = tokio::time::interval(Duration::from_millis(self.cfg.heartbeat_ms));
        hb.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rates = tokio::time::interval(RATE_FLUSH);
        rates.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(cmd) = inbox.presence.recv() => self.command(client, cmd),
                cmd = inbox.commands.recv() => match cmd {
                    Some(cmd) => {
                        self.command(client, cmd);
                        // What else is queued goes too, so that wants go as one request per owner.
                        for _ in 0..COMMAND_BATCH {
                            let Ok(cmd) = inbox.commands.try_recv() else { break };
                            self.command(client, cmd);
                        }
                        self.flush_wants(client);
                    }
                    None => return Stop::Graceful,
                },
                m = streams.messages.recv() => match m {
                    Ok(m) => self.message(client, m),
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(lost = n, "cluster bridge fell behind on pub/sub; sessions reconcile with the store");
                        self.reconcile_all();
                    }
                    Err(RecvError::Closed) => {
                        // The client replaced its stream: take the new one.
                        tokio::time::sleep(RENEW_PAUSE).await;
                        streams.messages = links.sub.message_rx();
                    }
                },
                r = streams.reconnects.recv() => match r {
                    Err(RecvError::Closed) => {
                        tokio::time::sleep(RENEW_PAUSE).await;
                        streams.reconnects = links.sub.reconnect_rx();
                    }
                    _ => self.resubscribe(links),
                },
                _ = hb.tick() => self.beat(client),
                _ = rates.tick() => self.flush_rates(client),
                r = stop.changed() => {
                    let how = if r.is_ok() { *stop.borrow() } else { Stop::Graceful };
                    if how != Stop::Run {
                        return how;
                    }
                }
            }
        }
    }

    /// Leaves the cluster (each step best-effort, 2 s in all): out of the
    /// live set, the node-id claim released if still ours, a "leaving"
    /// notice, the presence keys deleted; then both clients quit.
    async fn leave(&self, links: &Links) {
        let client = &links.client;
        let users = self.presence_keys();
        let leave = async {
            let _: Result<(), _> = client.zrem(NODES_KEY, self.node_id.to_string()).await;
            let key = node_id_key(&self.node_id);
            let held: Result<Option<String>, _> = client.get(&key).await;
            if matches!(held, Ok(Some(v)) if v == self.incarnation) {
                let _: Result<(), _> = client.del(key).await;
            }
            let bye = self.sealed(&wire::membership_notice(&self.node_id, true));
            let _: Result<(), _> = client.publish(FANOUT_CHANNEL, bye).await;
            if !users.is_empty() {
                let _: Result<(), _> = client.del(users).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), leave).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), client.quit()).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), links.sub.quit()).await;
    }

    /// Every heartbeat: forget abandoned requests, retry refused fan-outs,
    /// republish presence if asked, and beat.
    fn beat(self: &Rc<Self>, client: &Client) {
        self.pending.forget_abandoned();
        self.searches.forget_abandoned();
        if let Ok(mut w) = self.rates.borrow().conns.lock() {
            w.retain_recent(seal::now_ms());
        }
        self.retry_nudges();
        self.interest_beat(client);
        if self.republish_due.replace(false) {
            self.republish_presence(client);
        }
        self.heartbeat_now(client);
    }

    /// The subscriber reconnected: a new connection has no subscriptions, so
    /// take them again. Whatever was published meanwhile is lost (membership
    /// events too): sessions reconcile with the store, and the others hear
    /// this node's presence again.
    fn resubscribe(self: &Rc<Self>, links: &Links) {
        tracing::info!("redis subscriber reconnected; subscribing again");
        let (sub, channels) = (links.sub.clone(), links.channels.clone());
        let (me, client) = (self.clone(), links.client.clone());
        tokio::task::spawn_local(async move {
            if let Err(e) = sub.subscribe(channels).await {
                tracing::warn!(error = %e, "resubscribe failed");
            }
            me.reconcile_all();
            me.republish_due.set(true);
            // What this node told owners meanwhile may be lost.
            me.lists_due.set(true);
            publish(&client, FANOUT_CHANNEL.to_string(), me.sealed(&wire::republish_request(&me.node_id)));
        });
    }

    /// One request from a shard.
    fn command(&self, client: &Client, cmd: BridgeCmd) {
        match cmd {
            BridgeCmd::Publish { channel, payload } => publish(client, channel.to_string(), self.sealed(&payload)),
            BridgeCmd::Fanout { conv, payload } => self.publish_fanout(client, conv, &payload),
            BridgeCmd::Want { conv, shard, ready } => self.want(conv, shard, ready),
            BridgeCmd::Release { conv, shard } => self.release(conv, shard),
            BridgeCmd::Reply { to, payload } => publish(client, node_channel(&to), self.sealed(&payload)),
            BridgeCmd::Forward { owner, fwd, reply } => self.send_forward(client, &owner, fwd, reply),
            BridgeCmd::Search { query, reply } => self.send_search(client, &query, reply),
            BridgeCmd::Presence { user, count } => self.set_presence(client, user, count),
            BridgeCmd::QueryPresence { users, reply } => self.query_presence(client, users, reply),
            BridgeCmd::RateAdd { key, window } => {
                if !self.rates.borrow_mut().add(key, window) {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// A pub/sub message from another node (our own are ignored, and what
    /// does not decode is dropped).
    fn message(self: &Rc<Self>, client: &Client, m: fred::types::Message) {
        let Some(bytes) = m.value.as_bytes() else {
            tracing::warn!(channel = %m.channel, "non-binary cluster message dropped");
            return;
        };
        let envelope = match self.seal.open(bytes, seal::now_ms()) {
            Ok(envelope) => envelope,
            Err(e) => {
                // Counted; logged now and then (a flood must not flood the log).
                let n = self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                if n.is_multiple_of(1000) {
                    tracing::warn!(channel = %m.channel, error = %e, rejected = n + 1, "unsealed cluster message dropped");
                }
                return;
            }
        };
        let env = match wire::decode(envelope) {
            Ok(env) => env,
            Err(e) => return tracing::warn!(channel = %m.channel, error = %e, "malformed cluster message dropped"),
        };
        if *env.from == *self.node_id {
            return;
        }
        let from: NodeId = Arc::from(env.from.as_str());
        self.note_sender(client, &from, env.body.as_ref());
        match env.body {
            Some(Body::Forward(f)) => self.forwarded(client, from, f),
            Some(Body::Reply(r)) => self.answered(&from, r),
            Some(Body::Fanout(f)) => self.remote_fanout(&from, f),
            Some(Body::User(u)) => self.remote_user_event(u),
            Some(Body::Presence(p)) => self.remote_presence(from, p),
            Some(Body::Republish(_)) => self.republish_due.set(true),
            Some(Body::Interest(i)) => self.interest(client, &from, i),
            Some(Body::Search(r)) => self.search_asked(client, from, r),
            Some(Body::SearchAnswer(a)) => self.search_answered(&from, a),
            Some(Body::Membership(_)) | None => {}
        }
    }

    /// What a message says of its sender's membership, before its content:
    /// a node that (re)started left stale counts here, forgotten before
    /// anything it publishes next; a node that joined or is leaving makes
    /// this one agree on owners now, not at the next beat.
    fn note_sender(self: &Rc<Self>, client: &Client, from: &NodeId, body: Option<&Body>) {
        if wire::is_membership(body, false) {
            // A node that restarted within `node_ttl_ms` (the live set did not
            // change) knows nothing of what this node needs.
            self.lists_due.set(true);
            for shard in 0..self.mesh.len() {
                if let Err(back) = self.mesh.try_send(shard, ShardMsg::ForgetNode(from.clone())) {
                    let mesh = self.mesh.clone();
                    tokio::task::spawn_local(async move { mesh.send(shard, back.0).await });
                }
            }
        }
        if wire::is_membership(body, true) || !self.live.borrow().contains(from) {
            self.heartbeat_now(client);
        }
    }

    /// An owner's fan-out: to every shard; a stored one a full mailbox
    /// refuses is nudged there at the next beat.
    fn remote_fanout(&self, from: &NodeId, f: RemoteFanout) {
        self.counters.fanouts_received.fetch_add(1, Ordering::Relaxed);
        let conv = f.conv;
        let fanout = match wire::fanout(f) {
            Ok(fanout) => fanout,
            Err(e) => return tracing::warn!(from = %from, error = %e, "fan-out dropped"),
        };
        let head = match &fanout {
            Fanout::Messages(list) => list.last().map(|p| p.seq),
            Fanout::Nudge { head } => Some(*head),
            _ => None,
        };
        for shard in 0..self.mesh.len() {
            if self.mesh.try_send(shard, ShardMsg::Remote(conv, fanout.clone())).is_err() {
                tracing::debug!(conv, shard, "remote fan-out refused by a full mailbox");
                if let Some(head) = head {
                    self.to_nudge(shard, conv, head);
                }
            }
        }
    }

    /// A user event: to every shard; one refused makes every session reconcile.
    fn remote_user_event(&self, u: RemoteUserEvent) {
        let (user, ev) = wire::user_event(u);
        for shard in 0..self.mesh.len() {
            if self.mesh.try_send(shard, ShardMsg::User(user.clone(), ev.clone())).is_err() {
                tracing::warn!(shard, "remote user event refused by a full mailbox; sessions reconcile");
                self.reconcile_all();
            }
        }
    }

    /// Sessions reconcile their conversations with the store (and fill them):
    /// remote user events may have been lost.
    fn reconcile_all(&self) {
        self.reconcile.fetch_add(1, Ordering::Relaxed);
    }

    /// Stored fan-outs `shard` refused (full mailbox): nudge it at the next beat.
    fn to_nudge(&self, shard: usize, conv: ConvId, head: u64) {
        let mut t = self.to_nudge.borrow_mut();
        if t.len() >= MAX_TO_NUDGE && !t.contains_key(&(shard, conv)) {
            drop(t);
            tracing::warn!("too many refused fan-outs to retry; sessions reconcile with the store");
            self.reconcile_all();
            return;
        }
        let h = t.entry((shard, conv)).or_default();
        *h = (*h).max(head);
    }

    /// Hands the refused fan-outs over again, as nudges; what is refused again waits.
    fn retry_nudges(&self) {
        let mut t = self.to_nudge.borrow_mut();
        t.retain(|&(shard, conv), &mut head| {
            self.mesh.try_send(shard, ShardMsg::Remote(conv, Fanout::Nudge { head })).is_err()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_fanouts_are_nudged_again_and_bounded() {
        let (mesh, mut rx) = Mesh::new(1, 1);
        let b = Bridge::for_tests(mesh.clone());
        // The mailbox is full: what is refused waits, the highest head kept.
        mesh.try_send(0, ShardMsg::Live(Arc::from(Vec::new()))).unwrap();
        b.to_nudge(0, 7, 5);
        b.to_nudge(0, 7, 9);
        b.to_nudge(0, 7, 3);
        b.retry_nudges();
        assert_eq!(b.to_nudge.borrow().len(), 1, "still refused: kept");
        rx[0].try_recv().unwrap();
        b.retry_nudges();
        assert!(b.to_nudge.borrow().is_empty());
        match rx[0].try_recv() {
            Ok(ShardMsg::Remote(7, Fanout::Nudge { head: 9 })) => {}
            other => panic!("{other:?}"),
        }
        // Past the bound every session reconciles instead.
        for conv in 0..MAX_TO_NUDGE as u64 {
            b.to_nudge(0, conv, 1);
        }
        assert_eq!(b.reconcile.load(Ordering::Relaxed), 0);
        b.to_nudge(0, u64::MAX, 1);
        assert_eq!(b.reconcile.load(Ordering::Relaxed), 1);
        assert_eq!(b.to_nudge.borrow().len(), MAX_TO_NUDGE);
    }
}
