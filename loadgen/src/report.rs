//! The outcome of a run: the JSON report, the human table and the latency
//! plot (percentile distribution, SVG).

use crate::checker::Counts;
use crate::server::{ServerInfo, Usage};
use anyhow::Context;
use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// p99 delivery latency a scenario must stay under, µs.
pub const P99_TARGET_US: u64 = 100_000;

/// Latency summary in µs.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

impl Percentiles {
    /// From a histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// One node's figures in a cluster run.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    /// Its address.
    pub addr: String,
    /// Users connected to it.
    pub users: usize,
    /// Sends of its users that were acked.
    pub acked: u64,
    /// Load messages surfaced by its users' clients.
    pub deliveries: u64,
    /// Delivery latency of recipients on it, µs.
    pub delivery_latency_us: Percentiles,
    /// Ack latency of senders on it, µs.
    pub ack_latency_us: Percentiles,
}

/// One measured run (one step of `ceiling`).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Offered send rate, msg/s.
    pub offered_rate: f64,
    /// Sending time, s.
    pub duration_s: f64,
    /// Excluded from the histograms at the start, s.
    pub warmup_s: f64,
    /// Sends handed to the SDK.
    pub sent: u64,
    /// Acked sends per second of sending.
    pub achieved_send_rate: f64,
    /// Load-message deliveries (every member, senders' own clients included).
    pub deliveries: u64,
    /// Deliveries per second, from the start of sending to the last delivery.
    pub deliveries_per_s: f64,
    /// Send to each other recipient's SDK surfacing it, µs (after warm-up).
    pub delivery_latency_us: Percentiles,
    /// Send to the stored-ack, µs (after warm-up).
    pub ack_latency_us: Percentiles,
    /// Lost, duplicated, reordered.
    pub correctness: Counts,
    /// Sends refused with an error.
    pub send_errors: u64,
    /// Sends failed because the churn closed their client (not owed to anyone).
    pub sends_cancelled: u64,
    /// Sends without an ack when the run stopped waiting.
    pub sends_unacked: u64,
    /// Sends the loadgen skipped (it could not keep up).
    pub sends_skipped: u64,
    /// Clients dropped and resumed.
    pub reconnects: u64,
    /// Resumes that failed.
    pub reconnect_failures: u64,
    /// Connections held.
    pub connections: usize,
    /// Application pings answered / failed (idle).
    pub pings: (u64, u64),
    /// Server CPU seconds during the sending phase (spawned server).
    pub server_cpu_seconds_load: Option<f64>,
    /// The sending phase's cost per message (CPU both sides, UDP datagrams).
    pub cost: crate::cost::Cost,
    /// Per node, when the users were spread over several (empty otherwise).
    pub per_node: Vec<NodeReport>,
    /// Server usage at the end (spawned server).
    pub server: Option<Usage>,
    /// (RSS with connections - RSS before) / connections (idle).
    pub bytes_per_connection: Option<f64>,
    /// This process's CPU seconds (when close to wall time x cores, the loadgen was the bottleneck).
    pub loadgen_cpu_seconds: Option<f64>,
    /// First errors seen.
    pub errors: Vec<String>,
    /// `hoard`: the two phases compared and the attack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hoard: Option<crate::hoard_report::HoardReport>,
    /// `crash`, `storm`: the disruption and how the clients caught up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<crate::recovery::Recovery>,
    /// Owed deliveries that never came, sorted out (when there are any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<crate::crash::MissingReport>,
    /// `attachments`: the uploads beside the chat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploads: Option<crate::uploader::UploadReport>,
    /// Whether this run passed.
    pub pass: bool,
    /// Why not.
    pub reasons: Vec<String>,
}

impl RunReport {
    /// Applies the pass criteria of WORKLOADS.md (latency only unless `correctness_only`).
    pub fn judge(&mut self, correctness_only: bool) {
        let c = &self.correctness;
        for (n, what) in [(c.lost, "lost"), (c.duplicated, "duplicated"), (c.reordered, "reordered")] {
            if n > 0 {
                self.reasons.push(format!("{n} deliveries {what}"));
            }
        }
        if self.send_errors > 0 {
            self.reasons.push(format!("{} sends refused", self.send_errors));
        }
        if self.reconnect_failures > 0 {
            self.reasons.push(format!("{} reconnections failed", self.reconnect_failures));
        }
        if self.sends_unacked > 0 {
            self.reasons.push(format!("{} sends never acked", self.sends_unacked));
        }
        if let Some(r) = &self.recovery {
            self.reasons.extend(r.reasons(correctness_only));
            if !r.disruption.closes_clients() && self.sends_cancelled > 0 {
                self.reasons.push(format!("{} sends failed with their client closed", self.sends_cancelled));
            }
        }
        if let Some(u) = &self.uploads {
            self.reasons.extend(u.reasons());
        }
        if let Some(h) = &self.hoard {
            // Its own latency rule (phase B against phase A), not the absolute target.
            self.reasons.extend(h.reasons.iter().cloned());
            if !correctness_only {
                self.reasons.extend(h.latency_reason.iter().cloned());
            }
        }
        if !correctness_only {
            // `crash` and `storm` hold messages back for seconds on purpose:
            // their latency bar is the catch-up time (in `recovery`).
            if self.hoard.is_none()
                && self.recovery.is_none()
                && self.delivery_latency_us.count > 0
                && self.delivery_latency_us.p99 >= P99_TARGET_US
            {
                self.reasons.push(format!(
                    "p99 delivery {} >= {} ms",
                    ms(self.delivery_latency_us.p99),
                    P99_TARGET_US / 1000
                ));
            }
            if self.sends_skipped > 0 {
                self.reasons.push(format!("{} sends skipped by an overloaded loadgen", self.sends_skipped));
            }
        }
        self.pass = self.reasons.is_empty();
    }

    /// Whether only latency (not correctness) failed.
    pub fn correct(&self) -> bool {
        self.correctness.ok() && self.send_errors == 0 && self.reconnect_failures == 0 && self.sends_unacked == 0
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: crate::scenario::Name,
    /// What was asked.
    pub parameters: serde_json::Value,
    /// The server.
    pub server: ServerInfo,
    /// Limits changed from the defaults (say so when quoting figures).
    pub limits_changed: Vec<String>,
    /// One run, or each step of `ceiling`.
    pub runs: Vec<RunReport>,
    /// `ceiling`: the highest offered rate that held.
    pub highest_rate_that_held: Option<f64>,
    /// Overall verdict.
    pub pass: bool,
    /// Why not.
    pub reasons: Vec<String>,
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// The human table.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\nscenario {:?}  server {} ({})", r.scenario, r.server.addr, r.server.mode);
    if !r.limits_changed.is_empty() {
        let _ = writeln!(s, "limits changed: {}", r.limits_changed.join(", "));
    }
    let _ = writeln!(
        s,
        "{:>9} {:>9} {:>9} {:>10} | {:>27} | {:>27} | {:>14} | {:>8}",
        "offered/s",
        "acked/s",
        "sent",
        "deliv/s",
        "delivery ms p50/p99/p99.9",
        "ack ms p50/p99/p99.9",
        "lost/dup/reord",
        "verdict"
    );
    for run in &r.runs {
        let d = run.delivery_latency_us;
        let a = run.ack_latency_us;
        let c = run.correctness;
        let _ = writeln!(
            s,
            "{:>9.0} {:>9.0} {:>9} {:>10.0} | {:>27} | {:>27} | {:>14} | {:>8}",
            run.offered_rate,
            run.achieved_send_rate,
            run.sent,
            run.deliveries_per_s,
            format!("{}/{}/{}", ms(d.p50), ms(d.p99), ms(d.p999)),
            format!("{}/{}/{}", ms(a.p50), ms(a.p99), ms(a.p999)),
            format!("{}/{}/{}", c.lost, c.duplicated, c.reordered),
            if run.pass { "pass" } else { "FAIL" },
        );
    }
    if let Some(run) = r.runs.last() {
        let _ = writeln!(
            s,
            "delivery max {} ms, ack max {} ms; acked {}, deliveries owed {}, delivered {}",
            ms(run.delivery_latency_us.max),
            ms(run.ack_latency_us.max),
            run.correctness.acked,
            run.correctness.expected_deliveries,
            run.deliveries
        );
        if let Some(u) = run.server {
            let _ = writeln!(
                s,
                "server: {:.1} CPU s in all ({} during sending), peak RSS {:.1} MiB; loadgen {} CPU s",
                u.cpu_seconds,
                run.server_cpu_seconds_load.map(|c| format!("{c:.1}")).unwrap_or_default(),
                u.peak_rss_bytes as f64 / 1048576.0,
                run.loadgen_cpu_seconds.map(|c| format!("{c:.1}")).unwrap_or_default()
            );
        }
        if run.cost.messages > 0 {
            let _ = writeln!(s, "{}", run.cost.line());
        }
        if let Some(u) = &run.uploads {
            let _ = writeln!(s, "{}", u.line());
        }
        if let Some(b) = run.bytes_per_connection {
            let _ = writeln!(s, "connections: {}, server memory per connection: {:.0} bytes", run.connections, b);
        }
        if run.reconnects + run.reconnect_failures > 0 || run.sends_cancelled > 0 {
            let _ = writeln!(
                s,
                "reconnects: {} ({} failed); sends cancelled by a close: {}",
                run.reconnects, run.reconnect_failures, run.sends_cancelled
            );
        }
        for n in &run.per_node {
            let (d, a) = (n.delivery_latency_us, n.ack_latency_us);
            let _ = writeln!(
                s,
                "node {:<22} users {:>5}  acked {:>8}  delivered {:>9}  delivery ms p50/p99/p99.9 {}/{}/{}  ack ms p50/p99 {}/{}",
                n.addr,
                n.users,
                n.acked,
                n.deliveries,
                ms(d.p50),
                ms(d.p99),
                ms(d.p999),
                ms(a.p50),
                ms(a.p99)
            );
        }
        if let Some(h) = &run.hoard {
            s.push_str(&crate::hoard_report::table(h));
        }
        if let Some(r) = &run.recovery {
            s.push_str(&r.table());
        }
        if let Some(m) = &run.missing {
            s.push_str(&m.line());
        }
        for e in &run.errors {
            let _ = writeln!(s, "error: {e}");
        }
    }
    if let Some(h) = r.highest_rate_that_held {
        let _ = writeln!(s, "highest rate that held: {h:.0} msg/s");
    }
    let _ = writeln!(s, "{}", if r.pass { "PASS".to_string() } else { format!("FAIL: {}", r.reasons.join("; ")) });
    s
}

/// Writes the JSON report.
pub fn write_json(r: &Report, path: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    serde_json::to_writer_pretty(std::io::BufWriter::new(f), r)?;
    Ok(())
}

/// Percentile as "1 / (1 - q)" on a log axis: 0 -> 1, 0.9 -> 10, 0.99 -> 100...
fn x_of(q: f64) -> f64 {
    (1.0 / (1.0 - q.min(0.999_999))).log10()
}

/// Plots latency (ms) against percentile for each named histogram.
pub fn plot(path: &Path, title: &str, series: &[(&str, &Histogram<u64>)]) -> anyhow::Result<()> {
    let points: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(name, h)| {
            let pts = h
                .iter_quantiles(5)
                .map(|v| (x_of(v.quantile_iterated_to()), v.value_iterated_to() as f64 / 1000.0))
                .collect();
            (*name, pts)
        })
        .collect();
    let ymax = points.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y)).fold(1.0f64, f64::max) * 1.1;
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..6f64, 0f64..ymax)
        .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(7)
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 10f64.powf(-x));
            match x.round() as i32 {
                0 => "0%".into(),
                1 => "90%".into(),
                n => format!("{p:.prec$}%", prec = (n - 2).max(0) as usize),
            }
        })
        .draw()
        .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    let colors = [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44)];
    for (i, (name, pts)) in points.into_iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    Ok(())
}
