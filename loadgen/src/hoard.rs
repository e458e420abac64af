//! The `hoard` scenario (SECURITY.md, "Bounded cost per connection and per
//! user"): a background of ordinary users runs for two phases of equal length;
//! in the second, one user opens as many connections as the server lets it
//! (WebSocket and raw QUIC in turn, past `limits.max_connections_per_user`),
//! each pipelining the largest answers the server makes and never reading
//! ([`crate::hoarder`]). The phases are compared: the server's peak RSS (the
//! kernel's VmHWM, restarted at each phase) against a bound derived from the
//! server's limits, and the background's delivery latency (p99 in phase B
//! within 2x of phase A). Every hoarder must be closed as a slow consumer
//! within `session.write_timeout_ms` (plus a grace). Its figures go into the
//! run's report ([`HoardReport`], judged in [`crate::hoard_report`]).

use crate::driver::{self, Hist, Run, latency_us};
use crate::hoard_report::{self, AttackReport, Bound, HoardReport, Mark, PhaseCost, Window};
use crate::hoarder::{self, Aim, Hoarder, Kind, Opened};
use crate::population::{Connector, Slot};
use crate::report::Percentiles;
use crate::server::{self, Spawned};
use anyhow::Context;
use chat_client::v1::{self, command::Body};
use prost::Message as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Connection attempts past `max_connections_per_user` (each must be refused).
const ATTEMPTS_PAST_CAP: usize = 10;
/// GetHistory requests pipelined per connection (4x the server's 256 in flight).
const REQUESTS: u32 = 1024;
/// Messages in the hoarded conversation (one full history page).
pub const SEED_MESSAGES: u32 = 200;
/// A hoarder not closed this long after `session.write_timeout_ms` fails the run.
pub const CLOSE_GRACE: Duration = Duration::from_secs(15);
/// How often hoarders are looked at (closed? kernel queues?).
const WATCH_EVERY: Duration = Duration::from_millis(250);
/// Background users whose clients measure ping round trips.
const PINGERS: usize = 8;
/// Time between pings of one pinger.
const PING_EVERY: Duration = Duration::from_millis(200);

/// The scenario's state during a run.
pub struct Hoard {
    aim: Aim,
    answer: u64,
    user: String,
    cap: usize,
    attempts: usize,
    write_timeout: Duration,
    pid: u32,
    peak_resets: bool,
    edges: [u64; 3],
    next_edge: usize,
    marks: Vec<Mark>,
    peak_a: u64,
    run: Arc<Run>,
    pings: Arc<[Hist; 2]>,
    ping_failures: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    samples: JoinHandle<Vec<Sample>>,
    attack: Option<JoinHandle<AttackReport>>,
}

/// The effective server settings: chatd's defaults with the `CHAT_*` environment it inherits.
fn server_config() -> chat_server::config::Config {
    chat_server::config::Config::load(None).unwrap_or_default()
}

/// Seeds the hoarded conversation: user `u` creates a group of its own and
/// fills it with one page of the largest messages; the size of that page, encoded.
async fn seed(connector: &Connector, u: usize) -> anyhow::Result<(u64, u64)> {
    let (client, _events) = connector.connect(connector.config(u)?).await.context("the hoarding user")?;
    let created = client.create_conversation(v1::ConversationKind::Group, "hoard", "", Vec::new()).await?;
    let conv = created.summary.and_then(|s| s.conversation).map(|c| c.id).context("creation reply without an id")?;
    let max = server_config().limits.max_text_bytes;
    for i in 0..SEED_MESSAGES {
        let head = format!("{i:03} ");
        client.send_text(conv, format!("{head}{}", "x".repeat(max - head.len()))).await?;
    }
    let page = v1::GetHistory { conversation_id: conv, limit: SEED_MESSAGES, ..Default::default() };
    let r = client.request(Body::GetHistory(page)).await?;
    let frame = v1::ServerFrame {
        kind: Some(v1::server_frame::Kind::Reply(v1::Reply { id: u64::from(REQUESTS), result: Some(r) })),
    };
    client.close().await;
    Ok((conv, frame.encode_length_delimited_to_vec().len() as u64))
}

impl Hoard {
    /// Seeds the hoarded conversation (user `u`, after the background's users) before the load.
    /// `attempts`: connections to try (None: the cap plus [`ATTEMPTS_PAST_CAP`]; 0: no attack).
    pub async fn prepare(
        spawned: &Spawned,
        connector: &Connector,
        u: usize,
        run: Arc<Run>,
        attempts: Option<usize>,
    ) -> anyhow::Result<Self> {
        let web = spawned.web.context("hoard needs chatd's web endpoint (WebSocket), and its banner named none")?;
        let node = spawned.target.nodes.first().context("no server")?;
        eprintln!("hoard: seeding {SEED_MESSAGES} messages of the largest size");
        let (conv, answer) = seed(connector, u).await?;
        let cfg = server_config();
        let aim = Aim {
            quic: node.addr,
            web,
            cert_hash: node.cert_hash.clone(),
            token: connector.token(u),
            conv,
            page: SEED_MESSAGES,
            requests: REQUESTS,
        };
        let pid = spawned.pid();
        let stop = Arc::new(AtomicBool::new(false));
        let samples = tokio::spawn(sample_server(pid, run.clone(), stop.clone()));
        let hoard = Self {
            aim,
            answer,
            user: connector.user_id(u),
            cap: cfg.limits.max_connections_per_user as usize,
            attempts: attempts.unwrap_or(cfg.limits.max_connections_per_user as usize + ATTEMPTS_PAST_CAP),
            write_timeout: Duration::from_millis(cfg.session.write_timeout_ms),
            pid,
            peak_resets: false,
            edges: [u64::MAX; 3],
            next_edge: 0,
            marks: Vec::new(),
            peak_a: 0,
            run,
            pings: Arc::new([Hist::new(), Hist::new()]),
            ping_failures: Arc::new(AtomicU64::new(0)),
            stop,
            samples,
            attack: None,
        };
        Ok(hoard)
    }

    /// Starts the pingers and sets the phase edges: measuring from
    /// `measure_us`, phase B from `split_us`, the load ends at `until_us`.
    pub fn begin(&mut self, slots: &[Arc<Slot>], measure_us: u64, split_us: u64, until_us: u64) {
        self.edges = [measure_us, split_us, until_us];
        self.run.split_us.store(split_us, Relaxed);
        for slot in slots.iter().take(PINGERS) {
            let (slot, run, hists, fails, stop) =
                (slot.clone(), self.run.clone(), self.pings.clone(), self.ping_failures.clone(), self.stop.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(PING_EVERY);
                while !stop.load(Relaxed) {
                    every.tick().await;
                    let t = run.now_us();
                    match tokio::time::timeout(Duration::from_secs(10), slot.get().ping()).await {
                        Ok(Ok(_)) if t >= run.measure_from_us.load(Relaxed) => {
                            hists[run.phase(t)].record(0, latency_us(t, run.now_us()));
                        }
                        Ok(Ok(_)) => {}
                        _ => drop(fails.fetch_add(1, Relaxed)),
                    }
                }
            });
        }
    }

    /// The next phase edge, µs since the run's start (None after the last).
    pub fn next_edge_us(&self) -> Option<u64> {
        self.edges.get(self.next_edge).copied()
    }

    /// Takes the edges that have passed: marks, peaks, and the attack at the split.
    pub fn poll(&mut self, now_us: u64) {
        while self.next_edge_us().is_some_and(|e| e <= now_us) {
            let usage = server::usage(self.pid).unwrap_or_default();
            self.marks.push(Mark {
                server_cpu: usage.cpu_seconds,
                loadgen_cpu: server::usage(std::process::id()).map_or(0.0, |u| u.cpu_seconds),
                sent: self.run.n.sent.load(Relaxed),
            });
            match self.next_edge {
                0 => self.peak_resets = reset_peak(self.pid),
                1 => {
                    self.peak_a = usage.peak_rss_bytes;
                    self.peak_resets &= reset_peak(self.pid);
                    let sustain = Instant::now() + Duration::from_micros(self.edges[2].saturating_sub(self.edges[1]));
                    eprintln!("hoard: phase B, {} tries {} connections", self.user, self.attempts);
                    let (aim, wt, user) = (self.aim.clone(), self.write_timeout, self.user.clone());
                    self.attack = Some(tokio::spawn(attack(aim, user, self.attempts, sustain, wt)));
                }
                _ => {}
            }
            self.next_edge += 1;
        }
    }

    /// The five worst windows of sends intended in `[from_us, to_us)`.
    fn worst_windows(&self, from_us: u64, to_us: u64) -> Vec<Window> {
        let w = driver::WINDOW_US;
        let mut v: Vec<Window> = (from_us.div_ceil(w)..to_us / w)
            .filter_map(|i| {
                let worst = self.run.worst.get(i as usize)?.load(Relaxed);
                Some(((i * w - from_us) as f64 / 1e6, worst as f64 / 1e3))
            })
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v.truncate(5);
        v
    }

    /// After the load: waits for the server to close every hoarder, then the figures.
    pub async fn finish(mut self) -> anyhow::Result<HoardReport> {
        self.poll(u64::MAX);
        if self.attack.is_some() {
            eprintln!("hoard: waiting for the server to close the hoarders (write timeout {:?})", self.write_timeout);
        }
        let attack = match self.attack.take() {
            Some(h) => h.await.context("the attack task failed")?,
            None => AttackReport::default(),
        };
        let peak_b = server::usage(self.pid).map_or(0, |u| u.peak_rss_bytes);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_after = server::usage(self.pid).map_or(0, |u| u.rss_bytes);
        self.stop.store(true, Relaxed);
        let [_, split, _] = self.edges;
        let worst_windows = (self.worst_windows(self.edges[0], split), self.worst_windows(split, self.edges[2]));
        let samples = self.samples.await.unwrap_or_default();
        let sampled = |b: bool| samples.iter().filter(|x| (x.t_us >= split) == b).map(|x| x.rss).max();
        let (peak_a, peak_b, peak_method) = if self.peak_resets {
            (self.peak_a, peak_b, "VmHWM, restarted at each phase (/proc/<pid>/clear_refs)")
        } else {
            (sampled(false).unwrap_or(0), sampled(true).unwrap_or(0), "VmRSS sampled every 100 ms")
        };
        let d = [self.run.delivery_by_phase[0].merged(), self.run.delivery_by_phase[1].merged()];
        let (delivery_a, delivery_b) = (Percentiles::of(&d[0]), Percentiles::of(&d[1]));
        let p99_allowed_us = hoard_report::p99_allowed(delivery_a.p99);
        let m = &self.marks;
        let cost = match m.as_slice() {
            [a, b, c, ..] => (PhaseCost::between(*a, *b), PhaseCost::between(*b, *c)),
            _ => Default::default(),
        };
        let ms = |us: u64| us as f64 / 1e6;
        let bound = Bound::new(self.answer, self.cap as u64);
        let mut r = HoardReport {
            phase_s: (ms(self.edges[1] - self.edges[0]), ms(self.edges[2] - self.edges[1])),
            peak_rss_a: peak_a,
            peak_rss_b: peak_b,
            rss_growth: peak_b as i64 - peak_a as i64,
            peak_method,
            rss_after,
            timeline: (PER_SECOND..samples.len())
                .step_by(PER_SECOND)
                .map(|i| {
                    let (a, b) = (&samples[i - PER_SECOND], &samples[i]);
                    let secs = (b.t_us - a.t_us).max(1) as f64 / 1e6;
                    let cpu = 100.0 * (b.cpu - a.cpu) / secs;
                    (round1(b.t_us as f64 / 1e6), round1(b.rss as f64 / 1048576.0), cpu.round())
                })
                .collect(),
            split_s: split as f64 / 1e6,
            worst_windows,
            background_growth_mib_per_s: slope(
                samples
                    .iter()
                    .filter(|x| (self.edges[0]..split).contains(&x.t_us))
                    .map(|x| (x.t_us as f64 / 1e6, x.rss as f64 / 1048576.0)),
            ),
            p99_ratio: delivery_b.p99 as f64 / delivery_a.p99.max(1) as f64,
            p99_allowed_us,
            delivery_a,
            delivery_b,
            ack: (
                Percentiles::of(&self.run.ack_by_phase[0].merged()),
                Percentiles::of(&self.run.ack_by_phase[1].merged()),
            ),
            ping: (Percentiles::of(&self.pings[0].merged()), Percentiles::of(&self.pings[1].merged())),
            ping_failures: self.ping_failures.load(Relaxed),
            cost,
            bound,
            attack,
            reasons: Vec::new(),
            latency_reason: None,
        };
        r.judge(self.cap);
        Ok(r)
    }
}

/// The least-squares slope of `points` (0 with fewer than two).
fn slope(points: impl Iterator<Item = (f64, f64)>) -> f64 {
    let p: Vec<(f64, f64)> = points.collect();
    let n = p.len() as f64;
    if p.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (p.iter().map(|q| q.0).sum::<f64>() / n, p.iter().map(|q| q.1).sum::<f64>() / n);
    let sxx: f64 = p.iter().map(|q| (q.0 - mx).powi(2)).sum();
    let sxy: f64 = p.iter().map(|q| (q.0 - mx) * (q.1 - my)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

/// Restarts the server's VmHWM; false if the kernel refused.
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// One sample of the server.
struct Sample {
    t_us: u64,
    rss: u64,
    cpu: f64,
}

/// Samples per second.
const PER_SECOND: usize = 10;

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Samples the server's RSS and CPU every 100 ms until stopped.
async fn sample_server(pid: u32, run: Arc<Run>, stop: Arc<AtomicBool>) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut every = tokio::time::interval(Duration::from_micros(1_000_000 / PER_SECOND as u64));
    while !stop.load(Relaxed) {
        every.tick().await;
        if let Some(u) = server::usage(pid) {
            out.push(Sample { t_us: run.now_us(), rss: u.rss_bytes, cpu: u.cpu_seconds });
        }
    }
    out
}

/// The attack: `attempts` connections (WebSocket and QUIC in turn), then,
/// until `sustain`, every one the server closes is opened again; then waits
/// for the server to close the rest (at most the write timeout + a grace after
/// the last one's requests).
async fn attack(aim: Aim, user: String, attempts: usize, sustain: Instant, write_timeout: Duration) -> AttackReport {
    let mut r = AttackReport { user, attempts, requests_per_connection: aim.requests, ..Default::default() };
    let mut live: Vec<Hoarder> = Vec::new();
    // Closed by the server but still held open on this side, as an attacker
    // would: the server's kernel keeps their send queues a while.
    let mut dead: Vec<Hoarder> = Vec::new();
    for i in 0..attempts {
        let kind = if i % 2 == 0 { Kind::WebSocket } else { Kind::Quic };
        if let Some(h) = open(kind, &aim, &mut r).await {
            match kind {
                Kind::WebSocket => r.accepted_websocket += 1,
                Kind::Quic => r.accepted_quic += 1,
            }
            live.push(h);
        }
    }
    tracing::info!(accepted = r.accepted(), refused = r.refused.len(), "hoarders connected");
    // Hoarders to open again (a refusal is tried again at the next look).
    let mut reopen: Vec<Kind> = Vec::new();
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let tcp = hoarder::tcp_table();
        let queued: u64 = live.iter().chain(&dead).map(|h| h.server_kernel_queue(&tcp, aim.web)).sum();
        r.kernel_send_queue_peak = r.kernel_send_queue_peak.max(queued);
        r.kernel_send_queue_end = queued;
        let mut still = Vec::with_capacity(live.len());
        for h in live {
            match h.closed(&tcp, aim.web) {
                Some(c) => {
                    tracing::info!(kind = ?h.kind, after_s = c.after_s, how = %c.how, "hoarder closed by the server");
                    r.close(h.kind, &c);
                    reopen.push(h.kind);
                    dead.push(h);
                }
                None => still.push(h),
            }
        }
        live = still;
        let now = Instant::now();
        if now < sustain {
            let mut refused = Vec::new();
            for kind in reopen.drain(..) {
                match open(kind, &aim, &mut r).await {
                    Some(h) => {
                        r.reopened += 1;
                        live.push(h);
                    }
                    None => refused.push(kind),
                }
            }
            reopen = refused;
            continue;
        }
        let deadline = live.iter().map(|h| h.since + write_timeout + CLOSE_GRACE).max();
        if deadline.is_none_or(|d| now > d) {
            r.not_closed = live.len();
            break;
        }
    }
    for h in live.into_iter().chain(dead) {
        h.close();
    }
    r
}

/// One connection attempt; refusals and failures are noted in `r`.
async fn open(kind: Kind, aim: &Aim, r: &mut AttackReport) -> Option<Hoarder> {
    match hoarder::open(kind, aim).await {
        Ok(Opened::Accepted(h)) => Some(*h),
        Ok(Opened::Refused(f)) => {
            tracing::info!(?kind, code = %f.code, limit = %f.limit, "hoarder refused");
            r.refuse(f);
            None
        }
        Err(e) => {
            tracing::warn!(?kind, error = %format!("{e:#}"), "hoarder failed to connect");
            if r.failed.len() < 10 {
                r.failed.push(format!("{kind:?}: {e:#}"));
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line() {
        assert!((slope((0..10).map(|i| (i as f64, 3.0 + 1.5 * i as f64))) - 1.5).abs() < 1e-9);
        assert_eq!(slope(std::iter::once((1.0, 1.0))), 0.0);
    }
}
