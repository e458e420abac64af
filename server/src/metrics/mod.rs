//! Metrics an operator scrapes: the node's [`Metrics`] (handles registered
//! once at start, so recording is an atomic add on the message path and no
//! lock is shared between shards), what is read only at scrape time
//! ([`Sample`]: queue depths, cluster counters, Redis health), and the
//! `/metrics` HTTP endpoint on its own address ([`serve`], `metrics.listen`),
//! never on the public web port.
//!
//! The recorder is `metrics-exporter-prometheus`'s, built per node (not
//! installed globally, so several in-process nodes keep their own): counters
//! and gauges are atomics, histograms record into lock-free atomic buckets
//! that a scrape (or the upkeep every few seconds) drains into Prometheus
//! histograms. With `metrics.listen` unset nothing is registered and every
//! handle is a no-op. It does not own what is measured: each layer records
//! into the handles it is given.

pub mod serve;

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::sync::Arc;
use std::time::Duration;

/// Buckets of the latency histograms, seconds.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Buckets of the store batch-size histogram, requests or messages.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];

/// Process series `metrics-process` exports under the `chatd_` prefix (those
/// the dashboard uses; it exports a few more), checked by the tests.
pub const PROCESS_SERIES: [&str; 4] = [
    "chatd_process_resident_memory_bytes",
    "chatd_process_cpu_seconds_total",
    "chatd_process_open_fds",
    "chatd_process_threads",
];

/// The transports a connection comes over, as labelled.
pub const TRANSPORTS: [&str; 3] = ["quic", "webtransport", "websocket"];

/// Why something was refused or dropped (the `reason` label of `chatd_refusals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A per-user or per-connection rate limit (`limits.*_per_minute`, ...).
    RateLimit,
    /// Too many new connections from one address.
    ConnectionRate,
    /// A connection cap (per shard, per address, per user).
    ConnectionCap,
    /// A peer that did not take what was written in time, closed.
    SlowConsumer,
    /// The server could not take the request now (a shard, owner or store unavailable).
    Overload,
    /// A frame over its limit or that does not decode.
    BadFrame,
}

impl Refusal {
    /// Every reason, in label order.
    pub const ALL: [Refusal; 6] = [
        Refusal::RateLimit,
        Refusal::ConnectionRate,
        Refusal::ConnectionCap,
        Refusal::SlowConsumer,
        Refusal::Overload,
        Refusal::BadFrame,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::RateLimit => "rate_limit",
            Refusal::ConnectionRate => "connection_rate",
            Refusal::ConnectionCap => "connection_cap",
            Refusal::SlowConsumer => "slow_consumer",
            Refusal::Overload => "overload",
            Refusal::BadFrame => "bad_frame",
        }
    }

    /// The reason an error sent to a client stands for, if it is a refusal
    /// (not, say, a missing conversation).
    pub fn of_code(code: chat_protocol::v1::ErrorCode) -> Option<Refusal> {
        use chat_protocol::v1::ErrorCode as E;
        Some(match code {
            E::RateLimited => Refusal::RateLimit,
            E::ConnectionRateLimited => Refusal::ConnectionRate,
            E::Overloaded | E::Unavailable => Refusal::Overload,
            E::SlowConsumer => Refusal::SlowConsumer,
            E::FrameTooLarge | E::Malformed | E::ProtocolViolation => Refusal::BadFrame,
            _ => return None,
        })
    }
}

/// What the offline-notification webhook records, by outcome.
#[derive(Clone)]
pub struct NotifyMetrics {
    /// Requests the receiver accepted (2xx).
    pub sent: Counter,
    /// Notifications given up after their last attempt.
    pub failed: Counter,
    /// Notifications dropped at the full queue.
    pub dropped: Counter,
}

impl NotifyMetrics {
    /// Handles that record nothing.
    pub fn noop() -> Self {
        Self { sent: Counter::noop(), failed: Counter::noop(), dropped: Counter::noop() }
    }
}

/// What the audit writer records.
#[derive(Clone)]
pub struct AuditMetrics {
    /// Entries durably appended.
    pub entries: Counter,
    /// Writes of the trail that failed (the writer retries them; producers wait).
    pub write_errors: Counter,
}

impl AuditMetrics {
    /// Handles that record nothing.
    pub fn noop() -> Self {
        Self { entries: Counter::noop(), write_errors: Counter::noop() }
    }
}

/// What the store records: group commits (embedded) or appends (ScyllaDB).
#[derive(Clone)]
pub struct StoreMetrics {
    /// Time of one commit, seconds.
    pub commit_seconds: Histogram,
    /// Requests (embedded) or messages (ScyllaDB) in one commit.
    pub batch_size: Histogram,
    /// Appends refused because another sequencer took the seq (fencing).
    pub fencing: Counter,
}

impl StoreMetrics {
    /// Handles that record nothing.
    pub fn noop() -> Self {
        Self { commit_seconds: Histogram::noop(), batch_size: Histogram::noop(), fencing: Counter::noop() }
    }

    /// Records one commit of `size` that took `took`.
    pub fn commit(&self, size: usize, took: Duration) {
        self.commit_seconds.record(took.as_secs_f64());
        self.batch_size.record(size as f64);
    }
}

/// Redis as the cluster bridge last saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RedisHealth {
    /// Whether a heartbeat succeeded recently (within three heartbeats, at least 2 s).
    pub up: bool,
    /// Time since the last heartbeat that succeeded.
    pub last_heartbeat: Duration,
}

/// What is read at scrape time, not counted on the message path.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Messages waiting in each shard's mailbox.
    pub mailboxes: Vec<usize>,
    /// Requests waiting for the embedded store's writer (None: another backend).
    pub store_queue: Option<usize>,
    /// Cluster: commands waiting for the Redis bridge.
    pub bridge_queue: Option<usize>,
    /// Cluster: the bridge's own counters.
    pub cluster: Option<ClusterCounts>,
    /// Cluster: Redis health.
    pub redis: Option<RedisHealth>,
}

/// The cluster bridge's counters (kept by the cluster, read at scrape).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterCounts {
    /// Requests forwarded to another node that owns the conversation.
    pub forwards: u64,
    /// Fan-outs this node published.
    pub fanouts_published: u64,
    /// Fan-outs from other nodes this node received.
    pub fanouts_received: u64,
    /// Envelopes dropped for not being sealed with the cluster secret.
    pub rejected: u64,
    /// Publishes dropped at the bridge's full queue.
    pub dropped: u64,
}

/// The node's metric handles.
pub struct Metrics {
    handle: Option<PrometheusHandle>,
    /// The recorder and the process collector (RSS, CPU, descriptors) it feeds at scrape time.
    process: Option<(PrometheusRecorder, metrics_process::Collector)>,
    connections: [Gauge; 3],
    /// Messages acknowledged to their sender as stored.
    pub messages_accepted: Counter,
    /// Messages written to recipients' connections.
    pub deliveries: Counter,
    /// From the receipt of a `SendMessage` to its answer, seconds.
    pub ack_seconds: Histogram,
    /// From a message's commit to its push on a recipient's connection, seconds.
    pub delivery_seconds: Histogram,
    /// The store's commits and fencing.
    pub store: StoreMetrics,
    /// The offline-notification webhook.
    pub notify: NotifyMetrics,
    /// Service accounts' webhook events by outcome.
    pub hooks: NotifyMetrics,
    /// Committed batches the search indexer's full queue turned away.
    pub search_dropped: Counter,
    /// Audit entries written, and failed writes of the audit trail (each retried).
    pub audit: AuditMetrics,
    refusals: [Counter; 6],
    mailboxes: Vec<Gauge>,
    store_queue: Gauge,
    bridge_queue: Gauge,
    cluster: [Counter; 5],
    redis_up: Gauge,
    redis_heartbeat_age: Gauge,
}

/// Registers one metric with its help text on `r`.
struct Reg<'a>(&'a PrometheusRecorder);

static META: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, None);

impl Reg<'_> {
    fn key(name: &'static str, labels: &[(&'static str, String)]) -> Key {
        Key::from_parts(name, labels.iter().map(|(k, v)| Label::new(*k, v.clone())).collect::<Vec<_>>())
    }
    fn counter(&self, name: &'static str, help: &'static str, labels: &[(&'static str, String)]) -> Counter {
        self.0.describe_counter(name.into(), None, help.into());
        self.0.register_counter(&Self::key(name, labels), &META)
    }
    fn gauge(&self, name: &'static str, help: &'static str, labels: &[(&'static str, String)]) -> Gauge {
        self.0.describe_gauge(name.into(), None, help.into());
        self.0.register_gauge(&Self::key(name, labels), &META)
    }
    fn histogram(&self, name: &'static str, help: &'static str, labels: &[(&'static str, String)]) -> Histogram {
        self.0.describe_histogram(name.into(), None, help.into());
        self.0.register_histogram(&Self::key(name, labels), &META)
    }
}

impl Metrics {
    /// Handles that record nothing (metrics off).
    pub fn noop(shards: usize) -> Self {
        Self {
            handle: None,
            process: None,
            connections: std::array::from_fn(|_| Gauge::noop()),
            messages_accepted: Counter::noop(),
            deliveries: Counter::noop(),
            notify: NotifyMetrics::noop(),
            hooks: NotifyMetrics::noop(),
            ack_seconds: Histogram::noop(),
            delivery_seconds: Histogram::noop(),
            store: StoreMetrics::noop(),
            search_dropped: Counter::noop(),
            audit: AuditMetrics::noop(),
            refusals: std::array::from_fn(|_| Counter::noop()),
            mailboxes: (0..shards).map(|_| Gauge::noop()).collect(),
            store_queue: Gauge::noop(),
            bridge_queue: Gauge::noop(),
            cluster: std::array::from_fn(|_| Counter::noop()),
            redis_up: Gauge::noop(),
            redis_heartbeat_age: Gauge::noop(),
        }
    }

    /// A recorder of its own with every metric registered, for a node of
    /// `shards` shards on the store `backend` (`clustered`: with the cluster's
    /// and Redis's metrics, which a single node does not export).
    pub fn new(shards: usize, backend: &'static str, clustered: bool) -> Self {
        let off = Self::noop(shards);
        let builder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("chatd_store_batch_size".into()),
                    BATCH_BUCKETS,
                )
            })
            .expect("bucket lists are not empty");
        let recorder = builder.build_recorder();
        // `chatd_process_*`: resident memory, CPU seconds, open descriptors, threads.
        let process = metrics_process::Collector::new("chatd_");
        metrics::with_local_recorder(&recorder, || process.describe());
        let r = Reg(&recorder);
        let none: &[(&str, String)] = &[];
        let embedded = backend == "embedded";
        let backend = [("backend", backend.to_string())];
        let connections = TRANSPORTS.map(|t| {
            r.gauge("chatd_connections_open", "Client connections open now, by transport.", &[("transport", t.into())])
        });
        let refusals = Refusal::ALL.map(|why| {
            r.counter(
                "chatd_refusals_total",
                "Requests, frames and connections refused or dropped, by reason.",
                &[("reason", why.label().into())],
            )
        });
        let queue = |q: &str, shard: Option<usize>| {
            let mut labels = vec![("queue", q.to_string())];
            labels.extend(shard.map(|s| ("shard", s.to_string())));
            r.gauge("chatd_queue_depth", "Items waiting in a bounded queue, read at scrape time.", &labels)
        };
        let store_metrics = StoreMetrics {
            commit_seconds: r.histogram(
                "chatd_store_commit_seconds",
                "Time of one store commit (embedded: a group commit with its fsync; ScyllaDB: an append).",
                &backend,
            ),
            batch_size: r.histogram(
                "chatd_store_batch_size",
                "Requests (embedded) or messages (ScyllaDB) in one store commit.",
                &backend,
            ),
            fencing: r.counter(
                "chatd_store_fencing_total",
                "Appends refused because the seq was taken by another sequencer (fencing).",
                none,
            ),
        };
        let cluster = [
            ("chatd_cluster_forwards_total", "Requests forwarded to the node that owns the conversation."),
            ("chatd_cluster_fanouts_published_total", "Fan-outs this node published on Redis."),
            ("chatd_cluster_fanouts_received_total", "Fan-outs received from other nodes."),
            (
                "chatd_cluster_envelopes_rejected_total",
                "Envelopes from Redis dropped for not being sealed with the cluster secret.",
            ),
            ("chatd_cluster_dropped_total", "Publishes dropped at the full Redis bridge queue."),
        ]
        .map(|(name, help)| if clustered { r.counter(name, help, none) } else { Counter::noop() });
        Self {
            connections,
            messages_accepted: r.counter(
                "chatd_messages_accepted_total",
                "Messages stored and acknowledged to their sender.",
                none,
            ),
            deliveries: r.counter("chatd_deliveries_total", "Messages written to a recipient's connection.", none),
            notify: {
                let name = "chatd_notifications_total";
                let help = "Offline notifications by outcome (sent, failed after retries, dropped at a full queue).";
                let by = |o: &str| r.counter(name, help, &[("outcome", o.to_string())]);
                NotifyMetrics { sent: by("sent"), failed: by("failed"), dropped: by("dropped") }
            },
            hooks: {
                let name = "chatd_webhook_events_total";
                let help = "Service accounts' webhook events by outcome (sent, failed after retries, dropped at a full queue).";
                let by = |o: &str| r.counter(name, help, &[("outcome", o.to_string())]);
                NotifyMetrics { sent: by("sent"), failed: by("failed"), dropped: by("dropped") }
            },
            ack_seconds: r.histogram(
                "chatd_ack_latency_seconds",
                "From the receipt of a SendMessage to its answer.",
                none,
            ),
            delivery_seconds: r.histogram(
                "chatd_delivery_latency_seconds",
                "From a message's commit (or, from another node, its arrival) to its push on a recipient's connection.",
                none,
            ),
            store: store_metrics,
            audit: AuditMetrics {
                entries: r.counter("chatd_audit_entries_total", "Audit entries durably appended.", none),
                write_errors: r.counter(
                    "chatd_audit_write_errors_total",
                    "Failed writes of the audit trail (retried; producers of audit events wait meanwhile).",
                    none,
                ),
            },
            search_dropped: r.counter(
                "chatd_search_dropped_total",
                "Committed batches not indexed because the search indexer's queue was full (run `chatd reindex`).",
                none,
            ),
            refusals,
            mailboxes: (0..shards).map(|s| queue("shard_mailbox", Some(s))).collect(),
            store_queue: if embedded { queue("store_writer", None) } else { off.store_queue },
            bridge_queue: if clustered { queue("bridge", None) } else { off.bridge_queue },
            cluster,
            redis_up: match clustered {
                true => r.gauge("chatd_redis_up", "1 while Redis answers the cluster heartbeat, else 0.", none),
                false => off.redis_up,
            },
            redis_heartbeat_age: match clustered {
                true => r.gauge(
                    "chatd_redis_heartbeat_age_seconds",
                    "Time since the last cluster heartbeat that succeeded.",
                    none,
                ),
                false => off.redis_heartbeat_age,
            },
            handle: Some(recorder.handle()),
            process: Some((recorder, process)),
        }
    }

    /// Whether anything is recorded.
    pub fn enabled(&self) -> bool {
        self.handle.is_some()
    }

    /// Counts a connection over `transport` (see [`TRANSPORTS`]) while the guard lives.
    pub fn connection(self: &Arc<Self>, transport: &str) -> ConnectionGuard {
        let i = TRANSPORTS.iter().position(|t| *t == transport).unwrap_or(0);
        self.connections[i].increment(1.0);
        ConnectionGuard(self.clone(), i)
    }

    /// Counts one refusal.
    pub fn refused(&self, why: Refusal) {
        let i = Refusal::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.refusals[i].increment(1);
    }

    /// Counts an error sent to a client, if it is a refusal.
    pub fn refused_code(&self, code: i32) {
        if let Some(why) = chat_protocol::v1::ErrorCode::try_from(code).ok().and_then(Refusal::of_code) {
            self.refused(why);
        }
    }

    /// The Prometheus text exposition, after taking `sample` into the gauges.
    pub fn render(&self, sample: &Sample) -> String {
        let Some(handle) = &self.handle else { return String::new() };
        for (g, n) in self.mailboxes.iter().zip(&sample.mailboxes) {
            g.set(*n as f64);
        }
        if let Some(n) = sample.store_queue {
            self.store_queue.set(n as f64);
        }
        if let Some(n) = sample.bridge_queue {
            self.bridge_queue.set(n as f64);
        }
        if let Some(c) = sample.cluster {
            let values = [c.forwards, c.fanouts_published, c.fanouts_received, c.rejected, c.dropped];
            for (counter, v) in self.cluster.iter().zip(values) {
                counter.absolute(v);
            }
        }
        if let Some(h) = sample.redis {
            self.redis_up.set(if h.up { 1.0 } else { 0.0 });
            self.redis_heartbeat_age.set(h.last_heartbeat.as_secs_f64());
        }
        if let Some((recorder, process)) = &self.process {
            metrics::with_local_recorder(recorder, || process.collect());
        }
        handle.render()
    }

    /// Drains histogram buckets nobody scraped lately (so they stay small).
    pub fn upkeep(&self) {
        if let Some(h) = &self.handle {
            h.run_upkeep();
        }
    }
}

/// A connection counted in `chatd_connections_open` until dropped.
pub struct ConnectionGuard(Arc<Metrics>, usize);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections[self.1].decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_metrics_render_with_help_and_labels() {
        let m = Arc::new(Metrics::new(2, "embedded", false));
        let _c = m.connection("websocket");
        m.messages_accepted.increment(3);
        m.refused(Refusal::RateLimit);
        m.ack_seconds.record(0.002);
        let text = m.render(&Sample { mailboxes: vec![5, 0], ..Sample::default() });
        assert!(text.contains("# HELP chatd_messages_accepted_total"), "{text}");
        assert!(text.contains("chatd_messages_accepted_total 3"), "{text}");
        assert!(text.contains("chatd_connections_open{transport=\"websocket\"} 1"), "{text}");
        assert!(text.contains("chatd_refusals_total{reason=\"rate_limit\"} 1"), "{text}");
        assert!(text.contains("chatd_ack_latency_seconds_count 1"), "{text}");
        assert!(text.contains("chatd_queue_depth{queue=\"shard_mailbox\",shard=\"0\"} 5"), "{text}");
        assert!(!text.contains("chatd_redis_up"), "a single node has no Redis: {text}");
        for series in PROCESS_SERIES {
            assert!(text.contains(&format!("# TYPE {series} ")), "{series}: {text}");
        }
        assert!(Metrics::noop(1).render(&Sample::default()).is_empty());
    }
}
