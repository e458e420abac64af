//! `loadgen`: the load generator for the scenarios of WORKLOADS.md.
//!
//! `loadgen run <scenario>` starts its own `chatd` (or uses `--server`),
//! connects the scenario's users through the Rust SDK (many connections per
//! process, raw QUIC on a few shared endpoints), creates their conversations,
//! sends open-loop with coordinated-omission correction, then checks that
//! every acked message reached every member exactly once and in order.
//! It prints a table, writes a JSON report and an SVG latency plot, and exits
//! non-zero when the run fails.
//!
//! Modules, one job each: [`cli`] (arguments), [`scenario`] (the workloads as
//! data), [`server`] (the chatd process and its CPU/memory), [`population`]
//! (users, clients, conversations), [`driver`] (schedule, senders, receivers,
//! churn), [`checker`] (lost/duplicated/reordered), [`report`] (table, JSON, plot),
//! [`hoard`], [`hoard_report`] and [`hoarder`] (the `hoard` scenario: its phases,
//! its verdict, its attackers), [`crash`] (the kill and restart of `crash`, the
//! drop of `storm`, the look at missing messages), [`recovery`] (catch-up
//! times after them) and [`uploader`] (the file uploads of `attachments`).

mod ceiling;
mod checker;
mod cli;
mod cost;
mod crash;
mod driver;
mod e2e;
mod hoard;
mod hoard_report;
mod hoarder;
mod population;
mod recovery;
mod report;
mod scenario;
mod server;
mod uploader;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, ClusterFault, Cmd, RunArgs, StoreArg, TransportArg};
use driver::{Ctl, Receiver, Run, Stream};
use indicatif::{ProgressBar, ProgressStyle};
use population::Connector;
use rand::Rng;
use report::{NodeReport, Percentiles, Report, RunReport};
use scenario::{Disruption, Name, Overrides, Plan};
use server::{ClusterStore, LocalCluster, ServerInfo, Spawned, Target};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// How long members may take to hear of their conversations before sending starts.
const ANNOUNCE_WAIT: Duration = Duration::from_secs(30);
/// Longest wait for owed deliveries after the last ack.
const DRAIN_WAIT: Duration = Duration::from_secs(15);
/// Deliveries must be still for this long before the drain ends.
const DRAIN_QUIET: Duration = Duration::from_millis(500);

fn main() -> anyhow::Result<()> {
    let Cli { cmd: Cmd::Run(args) } = Cli::parse();
    // Logs of in-process nodes (`cluster` without --server), e.g. LOADGEN_LOG=chat_server=debug.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("LOADGEN_LOG"))
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = rt.block_on(execute(&args));
    rt.shutdown_timeout(Duration::from_secs(2));
    let (report, hists) = result?;
    print!("{}", report::table(&report));
    if let Some(path) = &args.json {
        report::write_json(&report, path)?;
        println!("JSON report: {}", path.display());
    }
    let plot = args.plot.clone().unwrap_or_else(|| format!("loadgen-{}.svg", name(args.scenario)).into());
    let (delivery, ack) = &hists;
    let title = format!("loadgen {}: latency by percentile", name(args.scenario));
    if delivery.is_empty() && ack.is_empty() {
        println!("no latency samples, no plot");
    } else {
        match report::plot(&plot, &title, &[("delivery", delivery), ("ack", ack)]) {
            Ok(()) => println!("latency plot: {}", plot.display()),
            Err(e) => eprintln!("no latency plot: {e:#}"),
        }
    }
    if !report.pass {
        std::process::exit(1);
    }
    Ok(())
}

fn name(n: Name) -> String {
    format!("{n:?}").to_lowercase()
}

/// Runs the scenario (each step of `ceiling`); the report and the last run's histograms.
async fn execute(
    args: &RunArgs,
) -> anyhow::Result<(Report, (hdrhistogram::Histogram<u64>, hdrhistogram::Histogram<u64>))> {
    let o = Overrides {
        users: args.users,
        conversations: args.conversations,
        rate: args.rate,
        duration: args.duration,
        uploaders: args.uploaders,
        seed: args.seed,
    };
    let mut plan = Plan::build(args.scenario, &o)?;
    if let Some(fault) = args.disrupt {
        anyhow::ensure!(plan.name == Name::Cluster, "--disrupt applies to `cluster` only");
        anyhow::ensure!(args.server.is_empty(), "--disrupt needs the in-process cluster: drop --server");
        plan.disruption = Some(match fault {
            ClusterFault::NodeLoss => Disruption::NodeLoss { node: CLUSTER_NODES - 1 },
            ClusterFault::RedisRestart => Disruption::RedisRestart { down: Duration::from_secs(1) },
        });
    }
    anyhow::ensure!(
        args.store == StoreArg::Embedded || (plan.name == Name::Cluster && args.server.is_empty()),
        "--store applies to the in-process cluster of `cluster` only"
    );
    anyhow::ensure!(args.hoarders.is_none() || plan.name == Name::Hoard, "--hoarders applies to `hoard` only");
    anyhow::ensure!(!args.e2e || plan.name == Name::Spec, "--e2e applies to `spec` only");
    anyhow::ensure!(
        args.disrupt_at.is_none() || plan.disruption.is_some(),
        "--disrupt-at applies to `crash`, `storm` and `cluster --disrupt` only"
    );
    anyhow::ensure!(
        args.disrupt_at.is_none_or(|d| d < plan.duration),
        "--disrupt-at must come before the end of --duration ({:?})",
        plan.duration
    );
    let mut runs = Vec::new();
    let mut info = None;
    let mut hists = (driver::new_histogram(), driver::new_histogram());
    let mut highest = None;
    let mut reasons = Vec::new();
    match plan.steps {
        Some(steps) => {
            let mut search = ceiling::Search::new(steps.start, steps.max_steps, steps.precision);
            while let Some(rate) = search.next_rate() {
                eprintln!("ceiling step {}: {rate:.0} msg/s", runs.len() + 1);
                let (r, inf, h) = run_once(&plan.at_rate(rate), args).await?;
                let (held, correct) = (r.pass, r.correct());
                runs.push(r);
                info = Some(inf);
                hists = h;
                if !correct {
                    reasons.push(format!("step at {rate:.0} msg/s lost, repeated or reordered messages"));
                }
                search.record(rate, held);
            }
            let (held, failed) = search.bracket();
            highest = held;
            match (held, failed) {
                (None, _) => reasons.push("no step held".to_owned()),
                (Some(h), Some(f)) if f / h > 1.0 + steps.precision => {
                    reasons.push(format!("the step budget ran out with the ceiling between {h:.0} and {f:.0} msg/s"))
                }
                _ => {}
            }
        }
        None => {
            let (r, inf, h) = run_once(&plan, args).await?;
            reasons.extend(r.reasons.iter().cloned());
            runs.push(r);
            info = Some(inf);
            hists = h;
        }
    }
    let info = info.context("no run")?;
    let mut limits_changed = vec![
        format!(
            "connections_per_minute_per_ip={} (every client comes from 127.0.0.1)",
            plan.limits.connections_per_minute_per_ip
        ),
        format!(
            "connections_per_minute_per_user={} (clients reconnect in a loop)",
            scenario::RAISED_CONNECTIONS_PER_MINUTE
        ),
        format!(
            "conversations_per_hour={} (creators set up many conversations at once)",
            scenario::RAISED_CONVERSATIONS_PER_HOUR
        ),
    ];
    if let Some(m) = plan.limits.messages_per_minute {
        limits_changed.push(format!("messages_per_minute={m} (default 100; this scenario sends faster per user)"));
    }
    if let Some(n) = plan.limits.uploads_per_hour {
        limits_changed.push(format!("blobs.uploads_per_hour={n} (default 10; uploaders upload in a loop)"));
    }
    if info.mode == "external" {
        limits_changed =
            vec![format!("none by loadgen (external server); the scenario needs {}", limits_changed.join(", "))];
    }
    let parameters = serde_json::json!({
        "users": plan.users,
        "conversations": plan.convs.len(),
        "layout": plan.layout,
        "offered_rate": plan.rate,
        "duration_s": plan.duration.as_secs_f64(),
        "warmup_s": plan.warmup.as_secs_f64(),
        "transport": format!("{:?}", args.transport).to_lowercase(),
        "churn": plan.churn,
        "disruption": plan.disruption.map(|d| serde_json::json!({"what": d, "at_s": disrupt_after(&plan, args).as_secs_f64()})),
        "steps": plan.steps,
        "ping_every_s": plan.ping_every.map(|d| d.as_secs_f64()),
        "uploads": plan.uploads,
        "check_correctness_only": args.check_correctness_only,
        "seed": args.seed,
        "file_descriptor_limit": fd_limit(),
    });
    let pass = reasons.is_empty();
    let report = Report {
        scenario: plan.name,
        parameters,
        server: info,
        limits_changed,
        runs,
        highest_rate_that_held: highest,
        pass,
        reasons,
    };
    Ok((report, hists))
}

/// The soft limit on open files (`ulimit -n`), from /proc.
fn fd_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Where the spawned chatd's data directory goes: `--data-in`, else for
/// `hoard` tmpfs (`/dev/shm`) when there is one (the comparison of its phases
/// is about the hoarders, not the shared disk's fsync stalls), else the
/// temporary directory.
fn data_in(name: Name, args: &RunArgs) -> Option<std::path::PathBuf> {
    let shm = std::path::Path::new("/dev/shm");
    args.data_in.clone().or_else(|| (name == Name::Hoard && shm.is_dir()).then(|| shm.to_path_buf()))
}

/// When `crash` or `storm` disrupts the run, from the start of sending.
fn disrupt_after(plan: &Plan, args: &RunArgs) -> Duration {
    args.disrupt_at.unwrap_or(plan.duration.mul_f64(scenario::DISRUPT_AT))
}

/// Nodes of the in-process cluster `cluster` starts when no `--server` is given.
const CLUSTER_NODES: usize = 3;

type Hists = (hdrhistogram::Histogram<u64>, hdrhistogram::Histogram<u64>);

/// One run: server up, clients connected, conversations made, load, drain, check, server down.
async fn run_once(plan: &Plan, args: &RunArgs) -> anyhow::Result<(RunReport, ServerInfo, Hists)> {
    let mut local_cluster = None;
    let (spawned, target, info) = match args.server.as_slice() {
        [] if plan.name == Name::Cluster => {
            let store = match args.store {
                StoreArg::Embedded => ClusterStore::Embedded,
                StoreArg::Scylla => ClusterStore::Scylla(
                    args.scylla_nodes.clone().context("--store scylla needs --scylla-nodes or CHAT_SCYLLA_NODES")?,
                ),
            };
            let c = LocalCluster::start(CLUSTER_NODES, args.shards, &plan.limits, store).await?;
            let (t, i) = (c.target.clone(), c.info.clone());
            local_cluster = Some(c);
            (None, t, i)
        }
        [_, ..] if plan.name == Name::Crash => {
            anyhow::bail!(
                "crash kills the server with SIGKILL and starts it again on the same data directory, \
                 so the loadgen must start its own chatd: drop --server and --cert-hash"
            )
        }
        [_, ..] if plan.name == Name::Hoard => {
            anyhow::bail!("hoard measures the server's memory from /proc: it starts its own chatd (drop --server)")
        }
        [_, ..] => {
            let secret =
                args.token_secret.clone().unwrap_or_else(|| chat_server::config::PUBLIC_DEV_SECRET.to_string());
            let target = Target::external(&args.server, &args.cert_hash, secret)?;
            let addrs: Vec<String> = args.server.iter().map(ToString::to_string).collect();
            let info = ServerInfo {
                mode: "external",
                addr: addrs.join(","),
                shards: None,
                env: Vec::new(),
                log: None,
                data_dir: None,
            };
            (None, target, info)
        }
        [] => {
            let chatd = server::find_chatd(args.chatd.clone())?;
            let s = Spawned::start(&chatd, args.shards, &plan.limits, data_in(plan.name, args).as_deref())?;
            let (t, i) = (s.target.clone(), s.info.clone());
            (Some(s), t, i)
        }
    };
    let result = load(plan, args, target, spawned.as_ref(), local_cluster.as_ref()).await;
    let end_usage = spawned.map(Spawned::stop);
    if let Some(c) = local_cluster {
        c.stop().await;
    }
    let (mut r, hists) = result?;
    r.server = end_usage;
    r.judge(args.check_correctness_only);
    Ok((r, info, hists))
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    if pb.is_hidden() {
        eprintln!("{what} ({len})");
    }
    pb
}

async fn load(
    plan: &Plan,
    args: &RunArgs,
    target: Target,
    spawned: Option<&Spawned>,
    cluster: Option<&LocalCluster>,
) -> anyhow::Result<(RunReport, Hists)> {
    let transport = match args.transport {
        TransportArg::Quic => chat_client::Transport::Quic,
        TransportArg::Webtransport => chat_client::Transport::WebTransport,
    };
    let base = spawned.map(Spawned::usage);
    let prefix = format!("lg{:06x}-", rand::rng().random_range(0..0x100_0000u32));
    let target_addrs: Vec<String> = target.nodes.iter().map(|n| n.addr.to_string()).collect();
    let connector = Connector::new(target, transport, plan.users, prefix)?;
    let run = Run::new(plan.users, connector.nodes());
    let run = Arc::new(if args.e2e { run.with_e2e(e2e::devices(&connector, plan.users)?) } else { run });

    let pb = bar(plan.users as u64, "connect");
    let (slots, events) = connector.connect_all(plan.users, || pb.inc(1)).await?;
    pb.finish_and_clear();
    let slots = Arc::new(slots);
    let mut ctls = Vec::with_capacity(plan.users);
    let mut receivers = Vec::with_capacity(plan.users);
    for (u, ev) in events.into_iter().enumerate() {
        let r = Receiver {
            u,
            me: connector.user_id(u),
            slot: slots[u].clone(),
            connector: connector.clone(),
            run: run.clone(),
            ping_every: plan.ping_every,
            timed: plan.disruption.is_some(),
        };
        let (tx, h) = driver::spawn_receiver(r, ev);
        ctls.push(tx);
        receivers.push(h);
    }

    let pb = bar(plan.convs.len() as u64, "create");
    let ids = population::create_conversations(plan, &slots, &connector, run.e2e.is_some(), || pb.inc(1)).await?;
    if let Some(devices) = &run.e2e {
        e2e::publish(plan, &slots, devices).await?;
        e2e::start_groups(plan, &slots, devices, &connector, &ids).await?;
        let missing = e2e::wait_joined(plan, &ids, devices, ANNOUNCE_WAIT).await;
        anyhow::ensure!(missing == 0, "{missing} memberships did not join their MLS group within {ANNOUNCE_WAIT:?}");
    }
    pb.finish_and_clear();
    let memberships = plan.memberships();
    let announced = Instant::now() + ANNOUNCE_WAIT;
    loop {
        let missing =
            (0..plan.users).filter(|&u| run.convs_seen[u].load(Relaxed) < memberships[u].len() as u64).count();
        if missing == 0 {
            break;
        }
        if Instant::now() > announced {
            eprintln!("warning: {missing} users did not hear of all their conversations within {ANNOUNCE_WAIT:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let uploaders = match plan.uploads {
        Some(up) => Some((up, uploader::connect(plan, up, &ids, &connector).await?)),
        None => None,
    };
    let mut hoard = match (plan.name, spawned) {
        (Name::Hoard, Some(s)) => {
            Some(hoard::Hoard::prepare(s, &connector, plan.users, run.clone(), args.hoarders).await?)
        }
        (Name::Hoard, None) => anyhow::bail!("hoard needs a chatd of its own"),
        _ => None,
    };

    // The sending phase.
    let from = run.now_us() + 200_000;
    let until = from + plan.duration.as_micros() as u64;
    run.measure_from_us.store(from + plan.warmup.as_micros() as u64, Relaxed);
    if let Some(h) = hoard.as_mut() {
        // Phase A from the end of the warm-up, phase B from half-way.
        h.begin(&slots, from + plan.warmup.as_micros() as u64, from + plan.duration.as_micros() as u64 / 2, until);
    }
    let cpu0 = spawned.map(|s| s.usage().cpu_seconds);
    let mark0 = (mark(cpu0), run.n.acked.load(Relaxed));
    let mut senders = Vec::new();
    for (ci, c) in plan.convs.iter().enumerate() {
        if c.rate > 0.0 {
            let s = Stream { ci, conv_id: ids[ci], members: c.members.clone(), rate: c.rate };
            senders.push((ci, tokio::spawn(driver::sender(s, slots.clone(), run.clone(), from, until))));
        }
    }
    let uploading = uploaders.map(|(up, u)| uploader::spawn(u, up, run.clone(), from, until));
    let churn = plan.churn.map(|c| tokio::spawn(driver::churn(ctls.clone(), run.clone(), c.fraction, c.every, until)));
    let disrupt_at = plan.disruption.map(|d| (d, from + disrupt_after(plan, args).as_micros() as u64));
    let mut disrupted: Option<(recovery::Times, Option<f64>)> = None;
    let pb = bar(plan.duration.as_millis() as u64, "load");
    pb.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {msg} ({elapsed}/{duration})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    while run.now_us() < until {
        // Woken at hoard's phase edges too.
        let edge = hoard.as_ref().and_then(|h| h.next_edge_us()).map_or(u64::MAX, |e| e.saturating_sub(run.now_us()));
        tokio::time::sleep(Duration::from_micros(edge.clamp(1_000, 250_000))).await;
        if let Some(h) = hoard.as_mut() {
            h.poll(run.now_us());
        }
        if let Some((d, at)) = disrupt_at
            && disrupted.is_none()
            && run.now_us() >= at
        {
            disrupted = Some(crash::disrupt(d, spawned, cluster, &run, &ctls).await?);
        }
        let t = run.now_us().saturating_sub(from);
        pb.set_position(t / 1000);
        let secs = (t as f64 / 1e6).max(1e-3);
        pb.set_message(format!(
            "sent {} ({:.0}/s) acked {} delivered {} ({:.0}/s) reconnects {}",
            run.n.sent.load(Relaxed),
            run.n.sent.load(Relaxed) as f64 / secs,
            run.n.acked.load(Relaxed),
            run.n.delivered.load(Relaxed),
            run.n.delivered.load(Relaxed) as f64 / secs,
            run.n.reconnects.load(Relaxed),
        ));
    }
    let loaded = spawned.map(Spawned::usage);
    let cpu1 = loaded.map(|u| u.cpu_seconds);
    let cost = cost::Cost::between(&mark0.0, &mark(cpu1), run.n.acked.load(Relaxed).saturating_sub(mark0.1));
    let mut acked = vec![Vec::new(); plan.convs.len()];
    let mut ack_us = vec![Vec::new(); plan.convs.len()];
    for (ci, h) in senders {
        let a = h.await.context("a sender task failed")?;
        (acked[ci], ack_us[ci]) = (a.seqs, a.at_us);
    }
    if let Some(c) = churn {
        let _ = c.await;
    }
    let uploads = match uploading {
        Some(h) => Some(h.await.context("the uploaders failed")?),
        None => None,
    };
    pb.finish_and_clear();

    // Drain: wait for what the acked sends owe.
    let pb = ProgressBar::new_spinner();
    pb.set_message("waiting for deliveries");
    let deadline = Instant::now() + DRAIN_WAIT;
    let (mut last, mut still_since) = (u64::MAX, Instant::now());
    let mut drain_timed_out = true;
    while Instant::now() < deadline {
        let d = run.n.delivered.load(Relaxed);
        if d != last {
            (last, still_since) = (d, Instant::now());
        }
        if d >= run.n.expected.load(Relaxed) && still_since.elapsed() >= DRAIN_QUIET {
            drain_timed_out = false;
            break;
        }
        pb.tick();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pb.finish_and_clear();
    let hoard = match hoard {
        Some(h) => Some(h.finish().await?),
        None => None,
    };
    for c in &ctls {
        let _ = c.send(Ctl::Stop).await;
    }
    let mut logs = Vec::with_capacity(plan.users);
    for h in receivers {
        logs.push(h.await.context("a receiver task failed")?);
    }
    let members: Vec<Vec<usize>> = plan.convs.iter().map(|c| c.members.clone()).collect();
    let correctness = checker::check(&ids, &acked, &members, &logs);
    let missing = if correctness.lost > 0 {
        let m = checker::missing(&ids, &acked, &members, &logs);
        Some(crash::probe(&m, &connector, drain_timed_out).await)
    } else {
        None
    };
    let recovery = plan.disruption.zip(disrupted).map(|(d, (t, down_s))| {
        // The clients whose connection the disruption took.
        let affected: Vec<bool> = (0..plan.users)
            .map(|u| match d {
                Disruption::Kill { .. } | Disruption::Storm => true,
                Disruption::NodeLoss { node } => connector.node_of(u) == node,
                Disruption::RedisRestart { .. } => false,
            })
            .collect();
        let times = recovery::catch_up_us(t, &ids, &acked, &ack_us, &members, &logs, &affected);
        let slowest = run.slowest_ack_after_us.load(Relaxed);
        recovery::Recovery {
            disruption: d,
            disrupted_at_s: t.disrupted_us.saturating_sub(from) as f64 / 1e6,
            down_s,
            catch_up: recovery::CatchUp::of(&times),
            reconnected: recovery::CatchUp::of(&recovery::reconnect_us(t, &logs, &affected)),
            noticed: recovery::CatchUp::of(&recovery::noticed_us(t, &logs, &affected)),
            owed_deliveries: recovery::owed_deliveries(t.reference_us, &ack_us, &members),
            outage_sends: run.n.outage_sent.load(Relaxed),
            outage_acked: run.n.outage_acked.load(Relaxed),
            slowest_ack_after_ms: (slowest > 0).then(|| slowest as f64 / 1000.0),
        }
    });
    if let (Some(_), None) = (plan.disruption, &recovery) {
        anyhow::bail!("the run ended before its {:?} came", plan.disruption);
    }

    let delivery = run.delivery.merged();
    let ack = run.ack.merged();
    let secs = plan.duration.as_secs_f64();
    let n = &run.n;
    let errors = run.errors.lock().map(|e| e.clone()).unwrap_or_default();
    let r = RunReport {
        offered_rate: plan.rate,
        duration_s: secs,
        warmup_s: plan.warmup.as_secs_f64(),
        sent: n.sent.load(Relaxed),
        achieved_send_rate: correctness.acked as f64 / secs,
        deliveries: n.delivered.load(Relaxed),
        // From the first intended send to the last delivery (the drain included).
        deliveries_per_s: n.delivered.load(Relaxed) as f64
            / (n.last_delivery_us.load(Relaxed).saturating_sub(from) as f64 / 1e6).max(secs),
        delivery_latency_us: Percentiles::of(&delivery),
        ack_latency_us: Percentiles::of(&ack),
        correctness,
        send_errors: n.send_errors.load(Relaxed),
        sends_cancelled: n.cancelled.load(Relaxed),
        sends_unacked: n.unacked.load(Relaxed),
        sends_skipped: n.skipped.load(Relaxed),
        reconnects: n.reconnects.load(Relaxed),
        reconnect_failures: n.reconnect_failures.load(Relaxed),
        connections: plan.users,
        pings: (n.pings.load(Relaxed), n.ping_failures.load(Relaxed)),
        server_cpu_seconds_load: cpu0.zip(cpu1).map(|(a, b)| b - a),
        cost,
        server: None,
        bytes_per_connection: match (plan.measure_memory, base, loaded) {
            (true, Some(b), Some(l)) => Some(l.rss_bytes.saturating_sub(b.rss_bytes) as f64 / plan.users as f64),
            _ => None,
        },
        loadgen_cpu_seconds: server::usage(std::process::id()).map(|u| u.cpu_seconds),
        per_node: if run.per_node.len() > 1 {
            run.per_node
                .iter()
                .enumerate()
                .zip(&target_addrs)
                .map(|((i, n), addr)| NodeReport {
                    addr: addr.clone(),
                    users: (0..plan.users).filter(|&u| connector.node_of(u) == i).count(),
                    acked: n.acked.load(Relaxed),
                    deliveries: n.delivered.load(Relaxed),
                    delivery_latency_us: Percentiles::of(&n.delivery.merged()),
                    ack_latency_us: Percentiles::of(&n.ack.merged()),
                })
                .collect()
        } else {
            Vec::new()
        },
        errors,
        hoard,
        recovery,
        missing,
        uploads,
        pass: false,
        reasons: Vec::new(),
    };
    Ok((r, (delivery, ack)))
}

/// Where the sending phase starts or ends: `server_cpu` (a spawned server's), ours, the kernel's UDP counters.
fn mark(server_cpu: Option<f64>) -> cost::Mark {
    cost::Mark {
        server_cpu,
        loadgen_cpu: server::usage(std::process::id()).map_or(0.0, |u| u.cpu_seconds),
        udp: cost::Udp::now(),
    }
}
