//! The open-loop driver: one sender task per conversation follows a schedule of
//! intended send times and never waits for an ack before the next send; a send
//! that goes out late is measured from its intended time (coordinated-omission
//! correction). One receiver task per user reads its SDK events, measures
//! delivery latency from the timestamp in the text and keeps the member's
//! correctness log. A churn task makes clients drop and resume.
//!
//! Message text: `lg <msgno> <intended µs since the run's start> <padding>`.

use crate::checker::MemberLog;
use crate::population::{Connector, Slot};
use chat_client::v1::{MessageBody, SendMessage, message_body::Content};
use chat_client::{ClientError, Event, Events};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use rand::Rng;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Histogram shards (fewer lock collisions between tasks).
const SHARDS: usize = 16;
/// Highest latency recorded, µs (larger values are clamped).
const MAX_LATENCY_US: u64 = 600_000_000;
/// Sends of one conversation waiting for their ack beyond which the loadgen skips sends.
const MAX_PENDING: usize = 20_000;
/// How long the senders wait for outstanding acks after the last send.
const ACK_WAIT: Duration = Duration::from_secs(15);
/// Padding that brings a message text to about 100 bytes.
const PADDING: &str = "the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs";
/// Control messages per receiver in flight.
const CONTROL: usize = 4;
/// Width of a window of [`Run::worst`], µs.
pub const WINDOW_US: u64 = 250_000;
/// Windows kept in [`Run::worst`] (an hour); later sends are not in it.
const WINDOWS: usize = 4 * 3600;

/// Intended send times of one stream: `first + k / rate`, in µs since the run's start.
#[derive(Debug, Clone)]
pub struct Schedule {
    first_us: u64,
    interval_us: f64,
    k: u64,
}

impl Schedule {
    /// `rate` sends per second from `from_us`, shifted by `phase` (0..1) of an interval.
    pub fn new(from_us: u64, rate: f64, phase: f64) -> Self {
        let interval_us = 1e6 / rate.max(1e-9);
        Self { first_us: from_us + (phase.clamp(0.0, 1.0) * interval_us) as u64, interval_us, k: 0 }
    }

    /// The next intended time.
    pub fn peek(&self) -> u64 {
        self.first_us + (self.k as f64 * self.interval_us) as u64
    }

    /// Every intended time up to `now_us` (and before `until_us`), in order:
    /// after a stall all missed sends go out at once, each keeping its own intended time.
    pub fn due(&mut self, now_us: u64, until_us: u64) -> Vec<u64> {
        let mut out = Vec::new();
        while self.peek() <= now_us && self.peek() < until_us {
            out.push(self.peek());
            self.k += 1;
        }
        out
    }
}

/// Latency of something intended at `intended_us` and observed at `observed_us`:
/// measured from the intended time, not from when it actually went out.
pub fn latency_us(intended_us: u64, observed_us: u64) -> u64 {
    observed_us.saturating_sub(intended_us).max(1)
}

/// Parses `lg <msgno> <t_us> ...`.
fn parse(text: &str) -> Option<(u64, u64)> {
    let mut w = text.split(' ');
    if w.next()? != "lg" {
        return None;
    }
    Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
}

/// A histogram split in a few locked shards.
pub struct Hist(Vec<Mutex<Histogram<u64>>>);

impl Hist {
    /// Empty shards.
    pub fn new() -> Self {
        Self((0..SHARDS).map(|_| Mutex::new(new_histogram())).collect())
    }

    /// Records `v` µs in shard `shard % SHARDS`.
    pub fn record(&self, shard: usize, v: u64) {
        if let Ok(mut h) = self.0[shard % SHARDS].lock() {
            h.saturating_record(v);
        }
    }

    /// All shards added up.
    pub fn merged(&self) -> Histogram<u64> {
        let mut out = new_histogram();
        for s in &self.0 {
            if let Ok(h) = s.lock() {
                let _ = out.add(&*h);
            }
        }
        out
    }
}

impl Default for Hist {
    fn default() -> Self {
        Self::new()
    }
}

/// An empty µs histogram (1 µs to 600 s, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Counters the progress bar and the report read.
#[derive(Debug, Default)]
pub struct Counters {
    /// Sends handed to the SDK.
    pub sent: AtomicU64,
    /// Sends acked.
    pub acked: AtomicU64,
    /// Deliveries owed by acked sends (acked x members).
    pub expected: AtomicU64,
    /// Load messages surfaced by the SDKs.
    pub delivered: AtomicU64,
    /// When the last one was, µs since the start.
    pub last_delivery_us: AtomicU64,
    /// Sends refused with an error.
    pub send_errors: AtomicU64,
    /// Sends dropped because their client was closed (churn).
    pub cancelled: AtomicU64,
    /// Sends still without an ack when the run stopped waiting.
    pub unacked: AtomicU64,
    /// Sends the loadgen skipped because too many were outstanding.
    pub skipped: AtomicU64,
    /// Completed reconnections.
    pub reconnects: AtomicU64,
    /// Reconnections that failed.
    pub reconnect_failures: AtomicU64,
    /// Pings answered.
    pub pings: AtomicU64,
    /// Pings that failed.
    pub ping_failures: AtomicU64,
    /// Sends handed to the SDK while the server was down (`crash`).
    pub outage_sent: AtomicU64,
    /// How many of those were acked.
    pub outage_acked: AtomicU64,
}

/// One node's share of a run (cluster runs).
pub struct NodeStats {
    /// Delivery latency of recipients on this node.
    pub delivery: Hist,
    /// Ack latency of senders on this node.
    pub ack: Hist,
    /// Load messages surfaced by clients on this node.
    pub delivered: AtomicU64,
    /// Sends of clients on this node that were acked.
    pub acked: AtomicU64,
}

/// What every task of one run shares.
pub struct Run {
    /// Time zero of every µs timestamp.
    pub start: Instant,
    /// Sends intended before this are not in the histograms (warm-up); `u64::MAX` until sending starts.
    pub measure_from_us: AtomicU64,
    /// Delivery latency (recipients other than the sender).
    pub delivery: Hist,
    /// Ack latency.
    pub ack: Hist,
    /// Sends intended before this are phase 0, the rest phase 1 (`hoard`);
    /// `u64::MAX`: one phase.
    pub split_us: AtomicU64,
    /// Delivery latency by phase (see `split_us`).
    pub delivery_by_phase: [Hist; 2],
    /// Ack latency by phase.
    pub ack_by_phase: [Hist; 2],
    /// Worst delivery latency, µs, of sends intended in each window of
    /// [`WINDOW_US`] from the run's start (after the warm-up).
    pub worst: Vec<AtomicU64>,
    /// Counters.
    pub n: Counters,
    /// Per node (users are spread over the nodes in turn): by the recipient's
    /// node for deliveries, by the sender's node for acks.
    pub per_node: Vec<NodeStats>,
    /// Distinct conversations each user's SDK announced.
    pub convs_seen: Vec<AtomicU64>,
    /// The first few send errors, for the report.
    pub errors: Mutex<Vec<String>>,
    /// The server was killed at this µs (`crash`; `u64::MAX`: not yet).
    pub down_from_us: AtomicU64,
    /// ...and listened again at this µs (`u64::MAX`: not yet).
    pub down_until_us: AtomicU64,
    /// The disruption came at this µs (`u64::MAX`: not yet, or none).
    pub disrupted_us: AtomicU64,
    /// The slowest ack of a send intended at or after `disrupted_us`, µs.
    pub slowest_ack_after_us: AtomicU64,
    /// `--e2e`: each user's MLS device (senders encrypt, receivers decrypt).
    pub e2e: Option<crate::e2e::Devices>,
}

impl Run {
    /// A run of `users` spread over `nodes` nodes, starting now.
    pub fn new(users: usize, nodes: usize) -> Self {
        Self {
            start: Instant::now(),
            measure_from_us: AtomicU64::new(u64::MAX),
            delivery: Hist::new(),
            ack: Hist::new(),
            split_us: AtomicU64::new(u64::MAX),
            delivery_by_phase: [Hist::new(), Hist::new()],
            ack_by_phase: [Hist::new(), Hist::new()],
            worst: (0..WINDOWS).map(|_| AtomicU64::new(0)).collect(),
            n: Counters::default(),
            per_node: (0..nodes.max(1))
                .map(|_| NodeStats {
                    delivery: Hist::new(),
                    ack: Hist::new(),
                    delivered: AtomicU64::new(0),
                    acked: AtomicU64::new(0),
                })
                .collect(),
            convs_seen: (0..users).map(|_| AtomicU64::new(0)).collect(),
            errors: Mutex::new(Vec::new()),
            down_from_us: AtomicU64::new(u64::MAX),
            down_until_us: AtomicU64::new(u64::MAX),
            disrupted_us: AtomicU64::new(u64::MAX),
            slowest_ack_after_us: AtomicU64::new(0),
            e2e: None,
        }
    }

    /// The same run with every conversation end-to-end encrypted by `devices`.
    pub fn with_e2e(self, devices: crate::e2e::Devices) -> Self {
        Self { e2e: Some(devices), ..self }
    }

    /// Whether the server is down now (killed, not yet listening again).
    pub fn server_down(&self) -> bool {
        let now = self.now_us();
        now >= self.down_from_us.load(Relaxed) && now < self.down_until_us.load(Relaxed)
    }

    /// µs since the start.
    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// The stats of user `u`'s node.
    pub fn node(&self, u: usize) -> &NodeStats {
        &self.per_node[u % self.per_node.len()]
    }

    /// The phase (0 or 1) of something intended at `intended_us`.
    pub fn phase(&self, intended_us: u64) -> usize {
        usize::from(intended_us >= self.split_us.load(Relaxed))
    }

    fn note_error(&self, e: String) {
        if let Ok(mut v) = self.errors.lock()
            && v.len() < 10
        {
            v.push(e);
        }
    }
}

/// What a receiver is told.
#[derive(Debug)]
pub enum Ctl {
    /// Close the client, then connect again resuming from its cursors.
    Reconnect,
    /// Close the client and return the log.
    Stop,
}

/// One sending stream: conversation `conv_id` (plan index `ci`) at `rate`.
pub struct Stream {
    /// Plan index.
    pub ci: usize,
    /// Server id.
    pub conv_id: u64,
    /// Senders, in turn.
    pub members: Vec<usize>,
    /// msg/s.
    pub rate: f64,
}

/// The acked sends of one stream.
#[derive(Debug, Default)]
pub struct Acked {
    /// Their seqs, in the order the acks came.
    pub seqs: Vec<u64>,
    /// When each ack came, µs since the run's start (same order).
    pub at_us: Vec<u64>,
}

/// Sends `s` open-loop from `from_us` to `until_us`; returns the acked seqs.
pub async fn sender(s: Stream, slots: Arc<Vec<Arc<Slot>>>, run: Arc<Run>, from_us: u64, until_us: u64) -> Acked {
    let phase = rand::rng().random::<f64>();
    let mut sched = Schedule::new(from_us, s.rate, phase);
    let mut pending = FuturesUnordered::new();
    let mut acked = Acked::default();
    let members = s.members.len() as u64;
    let mut k: u64 = 0;
    type Done = (u64, usize, bool, Result<chat_client::v1::SendMessageOk, ClientError>);
    let record = |acked: &mut Acked, (intended, u, outage, r): Done| match r {
        Ok(ok) => {
            let now = run.now_us();
            if intended >= run.measure_from_us.load(Relaxed) {
                run.ack.record(s.ci, latency_us(intended, now));
                run.node(u).ack.record(s.ci, latency_us(intended, now));
                run.ack_by_phase[run.phase(intended)].record(s.ci, latency_us(intended, now));
            }
            if intended >= run.disrupted_us.load(Relaxed) {
                run.slowest_ack_after_us.fetch_max(latency_us(intended, now), Relaxed);
            }
            run.node(u).acked.fetch_add(1, Relaxed);
            acked.seqs.push(ok.seq);
            acked.at_us.push(now);
            if outage {
                run.n.outage_acked.fetch_add(1, Relaxed);
            }
            run.n.acked.fetch_add(1, Relaxed);
            run.n.expected.fetch_add(members, Relaxed);
        }
        Err(ClientError::Closed) => {
            run.n.cancelled.fetch_add(1, Relaxed);
        }
        Err(e) => {
            run.n.send_errors.fetch_add(1, Relaxed);
            run.note_error(format!("send in conversation {}: {e}", s.conv_id));
        }
    };
    while sched.peek() < until_us {
        let wake = run.start + Duration::from_micros(sched.peek());
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {
                for intended in sched.due(run.now_us(), until_us) {
                    if pending.len() >= MAX_PENDING {
                        run.n.skipped.fetch_add(1, Relaxed);
                        continue;
                    }
                    k += 1;
                    let u = s.members[(k % members) as usize];
                    let client = slots[u].get();
                    let msgno = ((s.ci as u64) << 32) | k;
                    let text = format!("lg {msgno} {intended} {PADDING}");
                    let conv = s.conv_id;
                    run.n.sent.fetch_add(1, Relaxed);
                    let outage = run.server_down();
                    if outage {
                        run.n.outage_sent.fetch_add(1, Relaxed);
                    }
                    let content = match run.e2e.as_ref() {
                        None => Ok(Content::Text(text)),
                        Some(devices) => crate::e2e::seal(&devices[u], conv, text).map(Content::Ciphertext),
                    };
                    match content {
                        Ok(content) => {
                            let body = Some(MessageBody { content: Some(content) });
                            let m = SendMessage { conversation_id: conv, body, ..Default::default() };
                            pending.push(async move { (intended, u, outage, client.send(m).await) });
                        }
                        Err(e) => {
                            run.n.send_errors.fetch_add(1, Relaxed);
                            run.note_error(format!("encrypting in conversation {}: {e}", s.conv_id));
                        }
                    }
                }
            }
            Some(done) = pending.next(), if !pending.is_empty() => record(&mut acked, done),
        }
    }
    let drain = async {
        while let Some(done) = pending.next().await {
            record(&mut acked, done);
        }
    };
    if tokio::time::timeout(ACK_WAIT, drain).await.is_err() {
        run.n.unacked.fetch_add(pending.len() as u64, Relaxed);
    }
    acked
}

/// Everything a receiver needs besides its events.
pub struct Receiver {
    /// User index.
    pub u: usize,
    /// Its user id (its own messages are not delivery-latency samples).
    pub me: String,
    /// Its client slot.
    pub slot: Arc<Slot>,
    /// For reconnecting.
    pub connector: Connector,
    /// Shared run state.
    pub run: Arc<Run>,
    /// Application pings, if any.
    pub ping_every: Option<Duration>,
    /// Keep delivery and connection times (catch-up after a crash or storm).
    pub timed: bool,
}

/// A receiver task plus its control channel.
pub fn spawn_receiver(r: Receiver, events: Events) -> (mpsc::Sender<Ctl>, tokio::task::JoinHandle<MemberLog>) {
    let (tx, rx) = mpsc::channel(CONTROL);
    (tx, tokio::spawn(receive(r, events, rx)))
}

impl Receiver {
    fn on_event(&self, ev: Event, log: &mut MemberLog, seen: &mut HashSet<u64>) {
        match ev {
            Event::Message(m) => {
                let now = self.run.now_us();
                log.deliver_at(m.conversation_id, m.seq, now);
                let text = match (&self.run.e2e, m.body.as_ref().and_then(|b| b.content.as_ref())) {
                    // Its own message comes back from its ack, as ciphertext
                    // its device wrote: delivered, and no latency sample.
                    (Some(_), Some(chat_client::v1::message_body::Content::Ciphertext(c)))
                        if m.sender_id == self.me && !c.commit =>
                    {
                        self.run.n.delivered.fetch_add(1, Relaxed);
                        self.run.node(self.u).delivered.fetch_add(1, Relaxed);
                        return;
                    }
                    (Some(devices), _) => match crate::e2e::open(&devices[self.u], &m) {
                        Some(t) => t,
                        None => return,
                    },
                    (None, Some(chat_client::v1::message_body::Content::Text(t))) => t.clone(),
                    _ => return,
                };
                if let Some((_msgno, t_us)) = parse(&text) {
                    self.run.n.delivered.fetch_add(1, Relaxed);
                    self.run.n.last_delivery_us.fetch_max(now, Relaxed);
                    self.run.node(self.u).delivered.fetch_add(1, Relaxed);
                    if m.sender_id != self.me && t_us >= self.run.measure_from_us.load(Relaxed) {
                        self.run.delivery.record(self.u, latency_us(t_us, now));
                        self.run.node(self.u).delivery.record(self.u, latency_us(t_us, now));
                        self.run.delivery_by_phase[self.run.phase(t_us)].record(self.u, latency_us(t_us, now));
                        if let Some(w) = self.run.worst.get((t_us / WINDOW_US) as usize) {
                            w.fetch_max(latency_us(t_us, now), Relaxed);
                        }
                    }
                }
            }
            Event::Connected { .. } => log.connected_us.push(self.run.now_us()),
            Event::Disconnected { .. } => log.disconnected_us.push(self.run.now_us()),
            Event::Conversation(s) => {
                if let Some(c) = s.conversation
                    && seen.insert(c.id)
                {
                    self.run.convs_seen[self.u].fetch_add(1, Relaxed);
                }
            }
            _ => {}
        }
    }

    /// Reads what is left of a closed client's events (bounded in time).
    async fn drain(&self, events: &mut Events, log: &mut MemberLog, seen: &mut HashSet<u64>) {
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(ev) = events.next().await {
                self.on_event(ev, log, seen);
            }
        })
        .await;
    }
}

async fn receive(r: Receiver, mut events: Events, mut ctl: mpsc::Receiver<Ctl>) -> MemberLog {
    let mut log = if r.timed { MemberLog::timed() } else { MemberLog::default() };
    let mut seen = HashSet::new();
    let first_ping = r.ping_every.map(|p| p.mul_f64(rand::rng().random::<f64>()));
    let mut ping = r.ping_every.map(|p| tokio::time::interval_at((Instant::now() + first_ping.unwrap_or(p)).into(), p));
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(ev) => r.on_event(ev, &mut log, &mut seen),
                None => {
                    // The client stopped by itself (refused for good): nothing more comes.
                    r.run.note_error(format!("user {} client stopped", r.u));
                    break;
                }
            },
            c = ctl.recv() => match c {
                Some(Ctl::Reconnect) => {
                    let old = r.slot.get();
                    old.close().await;
                    r.drain(&mut events, &mut log, &mut seen).await;
                    let cfg = match r.connector.config(r.u) {
                        Ok(c) => c.resume(Some(old.resume_state())),
                        Err(_) => break,
                    };
                    match r.connector.connect(cfg).await {
                        Ok((c, e)) => {
                            r.slot.set(c);
                            events = e;
                            r.run.n.reconnects.fetch_add(1, Relaxed);
                        }
                        Err(e) => {
                            r.run.n.reconnect_failures.fetch_add(1, Relaxed);
                            r.run.note_error(format!("user {} reconnect: {e:#}", r.u));
                            break;
                        }
                    }
                }
                Some(Ctl::Stop) | None => {
                    r.slot.get().close().await;
                    r.drain(&mut events, &mut log, &mut seen).await;
                    break;
                }
            },
            _ = async { ping.as_mut().expect("guarded").tick().await }, if ping.is_some() => {
                match tokio::time::timeout(Duration::from_secs(10), r.slot.get().ping()).await {
                    Ok(Ok(_)) => r.run.n.pings.fetch_add(1, Relaxed),
                    _ => r.run.n.ping_failures.fetch_add(1, Relaxed),
                };
            }
        }
    }
    log
}

/// Every `every`, tells `fraction` of the receivers (chosen at random) to reconnect, until `until_us`.
pub async fn churn(ctls: Vec<mpsc::Sender<Ctl>>, run: Arc<Run>, fraction: f64, every: Duration, until_us: u64) {
    let n = ((ctls.len() as f64 * fraction).round() as usize).max(1).min(ctls.len());
    loop {
        tokio::time::sleep(every).await;
        if run.now_us() + (every.as_micros() as u64) / 2 >= until_us {
            return;
        }
        let picks = rand::seq::index::sample(&mut rand::rng(), ctls.len(), n);
        for i in picks {
            // A receiver still busy with its last reconnect is skipped.
            let _ = ctls[i].try_send(Ctl::Reconnect);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_open_loop() {
        // 1,000 msg/s from t = 10 ms: one send per ms, whatever happens to the previous one.
        let mut s = Schedule::new(10_000, 1_000.0, 0.0);
        assert_eq!(s.due(9_999, u64::MAX), Vec::<u64>::new());
        assert_eq!(s.due(10_000, u64::MAX), vec![10_000]);
        assert_eq!(s.due(12_500, u64::MAX), vec![11_000, 12_000]);
        assert_eq!(s.peek(), 13_000);
    }

    #[test]
    fn a_stall_sends_every_missed_message_with_its_own_intended_time() {
        let mut s = Schedule::new(0, 100.0, 0.0); // every 10 ms
        assert_eq!(s.due(0, u64::MAX), vec![0]);
        // The sender was stalled for 50 ms: five sends are due at once...
        let late = s.due(50_000, u64::MAX);
        assert_eq!(late, vec![10_000, 20_000, 30_000, 40_000, 50_000]);
        // ...and each is measured from its intended time (coordinated-omission
        // correction), not from when it went out.
        let acked_at = 50_500;
        let lat: Vec<u64> = late.iter().map(|&t| latency_us(t, acked_at)).collect();
        assert_eq!(lat, vec![40_500, 30_500, 20_500, 10_500, 500]);
    }

    #[test]
    fn schedule_stops_at_the_end_and_spreads_by_phase() {
        let mut s = Schedule::new(0, 10.0, 0.5); // every 100 ms, first at 50 ms
        assert_eq!(s.due(1_000_000, 300_000), vec![50_000, 150_000, 250_000]);
        assert_eq!(latency_us(5, 3), 1, "a clock step never gives a zero or negative sample");
    }

    #[test]
    fn parses_load_messages_only() {
        assert_eq!(parse("lg 42 1234 padding"), Some((42, 1234)));
        assert_eq!(parse("hello"), None);
        assert_eq!(parse("lg x 1"), None);
    }
}
